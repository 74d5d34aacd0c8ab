//! A version of a report for people and for machines: the written report (the document of
//! [`crate::document`]) as XLSX or PDF, and its figures as a table with their codes — the
//! workbook's second sheet, or UTF-8 CSV with the same rows.

use einfo_common::auth::Caller;
use einfo_common::error::Reason;
use einfo_common::error::{ApiError, ApiResult};
use einfo_common::fields::instant;
use einfo_proto::central::v1 as central;
use einfo_proto::reporting::v1 as pb;
use einfo_reference::kinds::Kinds;
use rust_xlsxwriter::{Format, Workbook};

use crate::document::{self, Document, Inputs, day_in_vietnam};
use crate::indicators::Catalogue;
use crate::service::Reporting;

/// A cell of the table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A number.
    Number(i64),
    /// Nothing.
    Empty,
}

/// The column heads.
pub const HEADER: [&str; 6] =
    ["Mã chỉ tiêu", "Chỉ tiêu", "Phân tổ", "Giá trị tính toán", "Giá trị báo cáo", "Giải trình"];

fn t(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

/// The rows of a version: a title row, the heads, one row per figure, then one per narrative
/// section (its text in the last column).
pub fn rows(report: &pb::Report, v: &pb::ReportVersion, c: &central::Campaign, cat: &Catalogue) -> Vec<Vec<Cell>> {
    let mut out = vec![
        vec![
            t(c.reference.clone()),
            t(c.title.clone()),
            t(report.jurisdiction.clone()),
            Cell::Number(v.version as i64),
            Cell::Empty,
            Cell::Empty,
        ],
        HEADER.iter().map(|h| t(*h)).collect(),
    ];
    for x in &v.values {
        let name = cat.get(&x.indicator).map(|r| r.name_vi.clone()).unwrap_or_default();
        let reported = if x.overridden { x.override_value } else { x.computed };
        out.push(vec![
            t(x.indicator.clone()),
            t(name),
            if x.dimension.is_empty() { Cell::Empty } else { t(x.dimension.clone()) },
            Cell::Number(x.computed),
            Cell::Number(reported),
            if x.overridden { t(x.justification.clone()) } else { Cell::Empty },
        ]);
    }
    for n in &v.narrative {
        out.push(vec![t("narrative"), t(n.section.clone()), Cell::Empty, Cell::Empty, Cell::Empty, t(n.text.clone())]);
    }
    out
}

/// The rows as CSV (UTF-8, comma, double quotes where needed).
pub fn to_csv(rows: &[Vec<Cell>]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(r.iter().map(|c| match c {
            Cell::Text(s) => s.clone(),
            Cell::Number(n) => n.to_string(),
            Cell::Empty => String::new(),
        }))?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The rows as a sheet of `wb` named `sheet`.
pub fn write_sheet(wb: &mut Workbook, rows: &[Vec<Cell>], sheet: &str) -> anyhow::Result<()> {
    let ws = wb.add_worksheet();
    ws.set_name(sheet)?;
    let integer = Format::new().set_num_format("0");
    let bold = Format::new().set_bold();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let (r, c) = (r as u32, c as u16);
            match cell {
                Cell::Text(s) if r == 1 => ws.write_string_with_format(r, c, s, &bold).map(|_| ())?,
                Cell::Text(s) => ws.write_string(r, c, s).map(|_| ())?,
                Cell::Number(n) => ws.write_number_with_format(r, c, *n as f64, &integer).map(|_| ())?,
                Cell::Empty => {}
            }
        }
    }
    ws.set_column_width(1, 50)?;
    ws.set_column_width(5, 60)?;
    Ok(())
}

impl Reporting {
    /// ExportReport.
    pub async fn export_report(
        &self,
        caller: &Caller,
        req: pb::ExportReportRequest,
    ) -> ApiResult<pb::ExportReportResponse> {
        let format = req.format();
        if format == pb::ExportFormat::Unspecified {
            return Err(ApiError::field("format", "is required: XLSX, PDF or CSV"));
        }
        let (report, v, campaign) = self.version_for_export(caller, &req.name, req.version).await?;
        let indicators = self.catalogue();
        let data = rows(&report, &v, &campaign, &indicators);
        let base = format!(
            "{}-{}-v{}",
            report.jurisdiction.replace('/', "-"),
            campaign.name.trim_start_matches("campaigns/"),
            v.version
        );
        if format == pb::ExportFormat::Csv {
            return Ok(pb::ExportReportResponse {
                file_name: format!("{base}.csv"),
                content_type: "text/csv; charset=utf-8".into(),
                content: to_csv(&data).map_err(ApiError::internal)?,
            });
        }
        // The document's date: its submission, or today for the draft.
        let at = v.submit_time.as_ref().map_or_else(|| self.db().now(), |t| instant(Some(t)));
        let violations = self.violation_catalogue();
        let doc = Document::new(&Inputs {
            report: &report,
            version: &v,
            campaign: &campaign,
            indicators: &indicators,
            violations: &violations,
            kinds: &Kinds::bundled(),
            day: day_in_vietnam(at),
        });
        if format == pb::ExportFormat::Xlsx {
            return Ok(pb::ExportReportResponse {
                file_name: format!("{base}.xlsx"),
                content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
                content: document::to_xlsx(&doc, Some(&data)).map_err(ApiError::internal)?,
            });
        }
        let xlsx = document::to_xlsx(&doc, None).map_err(ApiError::internal)?;
        let office = self.office();
        let pdf = document::to_pdf(&xlsx, &office.command, office.timeout).await.map_err(|e| {
            ApiError::new(
                Reason::PdfUnavailable,
                format!(
                    "the PDF is made by LibreOffice on the node (reporting.office_command = '{}'): {e:#}; \
                     the XLSX export is the same document",
                    office.command.display()
                ),
            )
        })?;
        Ok(pb::ExportReportResponse {
            file_name: format!("{base}.pdf"),
            content_type: "application/pdf".into(),
            content: pdf,
        })
    }
}
