//! A version of a report as a table: XLSX (numbers as numbers) or UTF-8 CSV, the same rows.

use einfo_common::auth::Caller;
use einfo_common::error::{ApiError, ApiResult};
use einfo_proto::central::v1 as central;
use einfo_proto::reporting::v1 as pb;
use rust_xlsxwriter::{Format, Workbook};

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

/// The rows as an XLSX workbook of one sheet.
pub fn to_xlsx(rows: &[Vec<Cell>], sheet: &str) -> anyhow::Result<Vec<u8>> {
    let mut wb = Workbook::new();
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
    Ok(wb.save_to_buffer()?)
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
            return Err(ApiError::field("format", "is required: XLSX or CSV"));
        }
        let (report, v, campaign) = self.version_for_export(caller, &req.name, req.version).await?;
        let rows = rows(&report, &v, &campaign, &self.catalogue());
        let base = format!(
            "{}-{}-v{}",
            report.jurisdiction.replace('/', "-"),
            campaign.name.trim_start_matches("campaigns/"),
            v.version
        );
        Ok(match format {
            pb::ExportFormat::Csv => pb::ExportReportResponse {
                file_name: format!("{base}.csv"),
                content_type: "text/csv; charset=utf-8".into(),
                content: to_csv(&rows).map_err(ApiError::internal)?,
            },
            _ => pb::ExportReportResponse {
                file_name: format!("{base}.xlsx"),
                content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
                content: to_xlsx(&rows, "Báo cáo").map_err(ApiError::internal)?,
            },
        })
    }
}
