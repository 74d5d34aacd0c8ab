//! The national workbook of a campaign: what the central department compiles from the
//! provinces' reports. One sheet per table of the written report, one row per province of the
//! campaign's scheme (63 or 34) with the national totals; a sheet of violations by province and
//! provision; and the timeliness of every target by the centre's receipts. Figures are those of
//! the latest version the centre received of each province, as reported (overrides included); a
//! province that sent nothing has empty cells, not zeros.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use einfo_common::fields::{instant, vietnam};
use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::central::v1 as pb;
use einfo_proto::reporting::v1 as rep;
use einfo_reference::catalogue::Catalogue as Violations;
use einfo_reference::indicators::{Catalogue as Indicators, Source};
use einfo_reference::kinds::Kinds;
use einfo_reference::report::{
    DECISION_LIST, Figures, Pick, SITE_LIST, decision_list_cells, reported, single_figures, site_list_cells,
    status_columns,
};
use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook};

use crate::store::Target;

/// One target of the campaign, as the centre holds it.
pub struct Row {
    /// The target.
    pub target: Target,
    /// The latest version received, with its content decoded (`None`: nothing received, or a
    /// version received before the centre kept contents).
    pub latest: Option<(u32, Option<rep::ReportVersion>)>,
}

/// What the centre says of a target's timeliness ([`crate::timeliness`]) and any exception
/// (a deadline in force other than the campaign's).
pub fn timeliness(campaign: &pb::Campaign, t: &Target) -> (&'static str, String) {
    let state = match crate::timeliness(t.first_receive, t.deadline) {
        rep::Timeliness::OnTime => "Đúng hạn",
        rep::Timeliness::Late => "Trễ hạn",
        _ => "Chưa nộp",
    };
    let campaign_deadline = campaign.deadline.map(|d| d.seconds).unwrap_or_default();
    let exception = if t.deadline.timestamp() != campaign_deadline {
        format!("Gia hạn đến {}", when(t.deadline))
    } else {
        String::new()
    };
    (state, exception)
}

/// An instant in UTC+07:00.
fn local(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&vietnam())
}

/// The day of the campaign's deadline in Vietnam: the day provinces are named as.
fn deadline_day(campaign: &pb::Campaign) -> NaiveDate {
    local(instant(campaign.deadline.as_ref())).date_naive()
}

/// dd/mm/yyyy HH:MM in UTC+07:00.
fn when(t: DateTime<Utc>) -> String {
    local(t).format("%d/%m/%Y %H:%M").to_string()
}

/// A cell of a sheet.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A number.
    Number(i64),
    /// Nothing (a province that sent nothing).
    Empty,
}

/// A sheet: its name and rows (the first is the head).
pub struct Sheet {
    /// Name.
    pub name: String,
    /// Rows, the head first.
    pub rows: Vec<Vec<Cell>>,
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

/// The provinces of the campaign's scheme, in code order, named as on `day`.
fn provinces(scheme: Scheme, day: NaiveDate) -> Vec<(String, String)> {
    scheme
        .provinces()
        .iter()
        .map(|p| (Jurisdiction::Province(scheme, p.code).to_string(), p.name_on(day).0.to_owned()))
        .collect()
}

/// A table with one row per province: a column per (head, what it reads of a version's figures);
/// a national total row sums what was received.
fn per_province(
    name: &str,
    columns: &[(String, Pick)],
    rows: &[(String, String)],
    received: &BTreeMap<String, Figures>,
) -> Sheet {
    let mut out = vec![
        [text("STT"), text("Tỉnh, thành phố")]
            .into_iter()
            .chain(columns.iter().map(|(h, _)| text(h.clone())))
            .collect(),
    ];
    let mut totals = vec![0_i64; columns.len()];
    for (i, (j, province)) in rows.iter().enumerate() {
        let mut row = vec![Cell::Number(i as i64 + 1), text(province.clone())];
        match received.get(j) {
            Some(f) => {
                for (k, (_, pick)) in columns.iter().enumerate() {
                    let n = pick.of(f);
                    totals[k] += n;
                    row.push(Cell::Number(n));
                }
            }
            None => row.extend(columns.iter().map(|_| Cell::Empty)),
        }
        out.push(row);
    }
    out.push([Cell::Empty, text("Tổng cộng")].into_iter().chain(totals.into_iter().map(Cell::Number)).collect());
    Sheet { name: name.to_owned(), rows: out }
}

/// The sheets of the national workbook.
pub fn sheets(
    campaign: &pb::Campaign,
    targets: &[Row],
    indicators: &Indicators,
    violations: &Violations,
) -> Vec<Sheet> {
    let asked = |code: &str| campaign.indicators.iter().any(|i| i.code == code);
    let scheme = targets
        .iter()
        .find_map(|r| Jurisdiction::parse(&r.target.jurisdiction).ok())
        .and_then(|j| match j {
            Jurisdiction::Province(s, _) => Some(s),
            Jurisdiction::Central => None,
        })
        .unwrap_or(Scheme::P63);
    let rows = provinces(scheme, deadline_day(campaign));
    let name_of = |j: &str| name_on_deadline(campaign, j);
    let received: BTreeMap<String, Figures> = targets
        .iter()
        .filter_map(|r| match &r.latest {
            Some((_, Some(v))) => Some((r.target.jurisdiction.clone(), reported(v))),
            _ => None,
        })
        .collect();

    let mut out = Vec::new();
    // Timeliness, by the centre's receipts.
    let mut t = vec![
        ["STT", "Tỉnh, thành phố", "Hạn nộp", "Nhận lần đầu", "Tình trạng", "Ngoại lệ", "Phiên bản mới nhất"]
            .into_iter()
            .map(text)
            .collect::<Vec<_>>(),
    ];
    let mut targets_in_order: Vec<&Row> = targets.iter().collect();
    targets_in_order.sort_by(|a, b| a.target.jurisdiction.cmp(&b.target.jurisdiction));
    for (i, r) in targets_in_order.iter().enumerate() {
        let (state, exception) = timeliness(campaign, &r.target);
        t.push(vec![
            Cell::Number(i as i64 + 1),
            text(name_of(&r.target.jurisdiction)),
            text(when(r.target.deadline)),
            r.target.first_receive.map_or(Cell::Empty, |f| text(when(f))),
            text(state),
            if exception.is_empty() { Cell::Empty } else { text(exception) },
            match &r.latest {
                Some((v, Some(_))) => Cell::Number(i64::from(*v)),
                Some((v, None)) => text(format!("{v} (nội dung không được lưu)")),
                None => Cell::Empty,
            },
        ]);
    }
    out.push(Sheet { name: "Tiến độ".into(), rows: t });

    // Table I: sites by legal status, summed over kinds; operating and on trial where asked.
    if asked("sites_by_kind_status") {
        let mut columns: Vec<(String, Pick)> =
            status_columns(received.values()).into_iter().map(|(s, head)| (head.to_owned(), Pick::Status(s))).collect();
        columns.push(("Tổng cộng".into(), Pick::All("sites_by_kind_status")));
        for (code, head) in [
            ("sites_operating_by_kind_status", "Trong đó: đang hoạt động"),
            ("sites_trial_by_kind_status", "Trong đó: thử nghiệm"),
        ] {
            if asked(code) {
                columns.push((head.into(), Pick::All(code)));
            }
        }
        out.push(per_province("Bảng 1", &columns, &rows, &received));
    }

    // Tables II and III: the single figures of inspection, and of registry.
    for (sheet, source) in [("Bảng 2", Source::Inspection), ("Bảng 3", Source::Registry)] {
        let columns: Vec<(String, Pick)> =
            single_figures(indicators, source, asked).into_iter().map(|f| (f.label, f.pick)).collect();
        if !columns.is_empty() {
            out.push(per_province(sheet, &columns, &rows, &received));
        }
    }

    // Violations by province and provision.
    if asked("violations_by_code") {
        let mut v =
            vec![["STT", "Tỉnh, thành phố", "Hành vi vi phạm", "Số vi phạm"].into_iter().map(text).collect::<Vec<_>>()];
        let mut total = 0;
        for (j, f) in &received {
            for ((_, code), n) in f.iter().filter(|((i, _), _)| i == "violations_by_code") {
                let label = violations.act(code);
                total += n;
                v.push(vec![Cell::Number(v.len() as i64), text(name_of(j)), text(label), Cell::Number(*n)]);
            }
        }
        v.push(vec![Cell::Empty, text("Tổng cộng"), Cell::Empty, Cell::Number(total)]);
        out.push(Sheet { name: "Vi phạm".into(), rows: v });
    }

    // The provinces' annexes, one after the other, each row with its province.
    let annexes: Vec<(&str, &rep::Annexes)> = targets_in_order
        .iter()
        .filter_map(|r| match &r.latest {
            Some((_, Some(v))) => v.annexes.as_ref().map(|a| (r.target.jurisdiction.as_str(), a)),
            _ => None,
        })
        .collect();
    if !annexes.is_empty() {
        let kinds = Kinds::bundled();
        let mut sites = vec![
            ["STT", "Tỉnh, thành phố", "Loại"]
                .into_iter()
                .chain(SITE_LIST.into_iter().skip(1))
                .map(text)
                .collect::<Vec<_>>(),
        ];
        let mut decisions =
            vec![["STT", "Tỉnh, thành phố"].into_iter().chain(DECISION_LIST.into_iter().skip(1)).map(text).collect()];
        let mut fines = 0;
        for (j, a) in &annexes {
            for s in &a.sites {
                let kind = kinds.get(&s.kind).map_or(s.kind.clone(), |k| k.name_vi.clone());
                let row = [Cell::Number(sites.len() as i64), text(name_of(j)), text(kind)];
                sites.push(row.into_iter().chain(site_list_cells(s).into_iter().map(text)).collect());
            }
            for d in &a.decisions {
                fines += d.fine_vnd;
                let row = [Cell::Number(decisions.len() as i64), text(name_of(j))];
                decisions.push(
                    row.into_iter()
                        .chain(decision_list_cells(d, violations).into_iter().map(text))
                        .chain([Cell::Number(d.fine_vnd)])
                        .collect(),
                );
            }
        }
        let mut total = vec![Cell::Empty, text("Tổng cộng")];
        total.extend((2..DECISION_LIST.len()).map(|_| Cell::Empty));
        total.push(Cell::Number(fines));
        decisions.push(total);
        out.push(Sheet { name: "Phụ lục 1".into(), rows: sites });
        out.push(Sheet { name: "Phụ lục 2".into(), rows: decisions });
    }
    out
}

/// The workbook as XLSX.
pub fn to_xlsx(campaign: &pb::Campaign, sheets: &[Sheet]) -> anyhow::Result<Vec<u8>> {
    let mut wb = Workbook::new();
    let font = |f: Format| f.set_font_name("Times New Roman").set_font_size(11).set_border(FormatBorder::Thin);
    let head = font(Format::new()).set_bold().set_text_wrap().set_align(FormatAlign::Center);
    let plain = font(Format::new()).set_text_wrap();
    let number = font(Format::new()).set_num_format("[$-42A]#,##0");
    let bold = font(Format::new()).set_bold();
    let bold_number = font(Format::new()).set_bold().set_num_format("[$-42A]#,##0");
    for s in sheets {
        let ws = wb.add_worksheet();
        ws.set_name(&s.name)?;
        ws.set_landscape();
        ws.set_paper_size(9);
        ws.set_print_fit_to_pages(1, 0);
        // In a header '&' starts a code ("&T" is the time): the reference's own are doubled, and
        // the font size is ended by a space before any digit.
        ws.set_header(format!("&C&\"Times New Roman\"&11 {} — {}", campaign.reference.replace('&', "&&"), s.name));
        ws.set_column_width(0, 5)?;
        ws.set_column_width(1, 22)?;
        let width = |c: usize| -> usize {
            match (s.name.as_str(), c) {
                (_, 0) => 5,
                (_, 1) => 22,
                ("Vi phạm", 2) => 70,
                ("Phụ lục 2", 4) => 40,
                ("Phụ lục 1", 2..=7) | ("Phụ lục 2", 2..=6) => 26,
                _ => 14,
            }
        };
        for c in 2..s.rows.first().map_or(0, Vec::len) {
            ws.set_column_width(c as u16, width(c) as f64)?;
        }
        let last = s.rows.len().saturating_sub(1);
        for (r, row) in s.rows.iter().enumerate() {
            // Wrapped text in a row tall enough for its longest cell (a spreadsheet does not grow
            // a row for wrapped text it did not lay out itself): lines of each cell's width, and
            // its own line breaks (an owner and a number, a decision's number and date).
            let lines = row
                .iter()
                .enumerate()
                .map(|(c, cell)| match cell {
                    Cell::Text(t) => t
                        .split('\n')
                        .map(|l| l.chars().count().div_ceil(width(c).saturating_sub(2).max(1)).max(1))
                        .sum(),
                    _ => 1,
                })
                .max()
                .unwrap_or(1);
            if lines > 1 {
                ws.set_row_height(r as u32, 15.0 * lines as f64)?;
            }
            let total = r == last && row.get(1) == Some(&text("Tổng cộng"));
            for (c, cell) in row.iter().enumerate() {
                let (r16, c16) = (r as u32, c as u16);
                let f = match (r, total) {
                    (0, _) => &head,
                    (_, true) => &bold,
                    _ => &plain,
                };
                match cell {
                    Cell::Text(t) => ws.write_string_with_format(r16, c16, t, f).map(|_| ())?,
                    Cell::Number(n) => ws
                        .write_number_with_format(r16, c16, *n as f64, if total { &bold_number } else { &number })
                        .map(|_| ())?,
                    Cell::Empty => ws.write_blank(r16, c16, f).map(|_| ())?,
                }
            }
        }
    }
    Ok(wb.save_to_buffer()?)
}

/// The figures as CSV, one row per (province, figure): jurisdiction, province, version,
/// timeliness, indicator, dimension, value.
pub fn to_csv(campaign: &pb::Campaign, targets: &[Row], names: impl Fn(&str) -> String) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["jurisdiction", "province", "version", "timeliness", "indicator", "dimension", "value"])?;
    let mut ordered: Vec<&Row> = targets.iter().collect();
    ordered.sort_by(|a, b| a.target.jurisdiction.cmp(&b.target.jurisdiction));
    for r in ordered {
        let j = &r.target.jurisdiction;
        let (state, _) = timeliness(campaign, &r.target);
        match &r.latest {
            Some((v, Some(version))) => {
                for ((indicator, dimension), n) in reported(version) {
                    w.write_record([
                        j.as_str(),
                        &names(j),
                        &v.to_string(),
                        state,
                        &indicator,
                        &dimension,
                        &n.to_string(),
                    ])?;
                }
            }
            Some((v, None)) => w.write_record([j.as_str(), &names(j), &v.to_string(), state, "", "", ""])?,
            None => w.write_record([j.as_str(), &names(j), "", state, "", "", ""])?,
        }
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The province's name on the campaign's deadline, by jurisdiction.
pub fn name_on_deadline(campaign: &pb::Campaign, j: &str) -> String {
    let day = deadline_day(campaign);
    Jurisdiction::parse(j)
        .ok()
        .and_then(|j| j.info().map(|p| p.name_on(day).0.to_owned()))
        .unwrap_or_else(|| j.to_owned())
}
