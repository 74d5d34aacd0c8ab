//! The written report (văn bản báo cáo) of a version: what the central department reads.
//!
//! One model, [`Document`], laid out on a grid of cells: the heading of an administrative
//! document, the title and the reference it answers, three tables that add up, the narrative
//! sections, the signature block and the recipients. [`to_xlsx`] writes it as the first sheet of a
//! workbook (A4, the margins of the rules, Times New Roman), which the tests read back and compare
//! with a golden file; the PDF is a workbook of the document alone converted by LibreOffice
//! ([`to_pdf`]).
//!
//! The heading follows the rules in force on the document's date: Circular 01/2011/TT-BNV until
//! Decree 30/2020/NĐ-CP took effect on the day it was signed, 2020-03-05 (its Art. 37), then the
//! decree's Appendix I. Both put the national motto at the top right, the parent body and the
//! issuing body at the top left, the number and reference under the issuing body, place and date
//! under the motto (days below 10 and months 1 and 2 with a leading zero), the document type and
//! its subject centred, the signer's authority, title and name at the bottom right, and
//! "Nơi nhận" at the bottom left. They differ, as far as einfo prints them, in where the page
//! number goes: the bottom right under 01/2011, centred at the top under 30/2020. (Sources:
//! `data/research/document-format.md`.) Neither rule hides the first page's number in what
//! einfo writes: the workbook writer cannot give the first page its own header.
//!
//! The tables' layout is einfo's own. Table I: sites by kind × legal status, with row and column
//! totals, and of the total how many operate and how many are on trial. Table II: inspections and
//! their handling, violations by the provision they broke (cited to the point, with the act).
//! Table III: licensing work. A table shows the figures the campaign asked for; a figure the
//! province overrode is printed as reported.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
pub use einfo_common::fields::day_in_vietnam;
use einfo_common::fields::instant;
use einfo_domain::Jurisdiction;
use einfo_proto::central::v1 as central;
use einfo_proto::reporting::v1 as pb;
use einfo_reference::catalogue::Catalogue as Violations;
use einfo_reference::kinds::Kinds;
use einfo_reference::report::{
    DECISION_LIST, SECTIONS, SITE_LIST, decision_list_cells, reported, single_figures, site_list_cells, status_columns,
};
use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, FormatUnderline, Workbook, Worksheet};

use crate::indicators::{Catalogue, Source};

/// Decree 30/2020/NĐ-CP took effect on the day it was signed (its Art. 37).
fn decree_30_2020() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 3, 5).unwrap_or_default()
}

/// The issuing body's name by period, where a source names it; outside these periods the
/// province must say (ReportDocument.issuer). Circular 09/2014/TT-BTTTT (in force 2014-10-03)
/// names the provincial "Sở Thông tin và Truyền thông" in its Art. 7; the 2025 reorganisation
/// (Decrees 43/2025/NĐ-CP and 45/2025/NĐ-CP of 2025-02-28) moved the field to other departments.
/// The end is taken as 2025-03-01; the decrees' own effective dates were not read
/// (`services/reference/data/research/licensing-authority.md`).
const ISSUERS: [(&str, &str, &str); 1] = [("Sở Thông tin và Truyền thông", "2014-10-03", "2025-03-01")];

/// The issuing body named in einfo's data for a document dated `day`.
pub fn issuer_on(day: NaiveDate) -> Option<&'static str> {
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default();
    ISSUERS.iter().find(|(_, from, to)| date(from) <= day && day < date(to)).map(|(name, ..)| *name)
}

/// "ngày 05 tháng 01 năm 2020", "ngày 29 tháng 6 năm 2019": days below 10 and the months 1 and 2
/// with a leading zero (Circular 01/2011/TT-BNV Art. 9(1)(b); Decree 30/2020/NĐ-CP Appendix I).
pub fn date_words(day: NaiveDate) -> String {
    let month = if day.month() <= 2 { format!("{:02}", day.month()) } else { day.month().to_string() };
    format!("ngày {:02} tháng {month} năm {}", day.day(), day.year())
}

/// dd/mm/yyyy.
pub fn date_short(day: NaiveDate) -> String {
    day.format("%d/%m/%Y").to_string()
}

/// How a cell looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    /// The parent body: capitals, not bold.
    Parent,
    /// The issuing body: capitals, bold, underlined.
    Issuer,
    /// The national motto's first line: capitals, bold.
    Motto,
    /// The motto's second line: bold, underlined.
    Motto2,
    /// Place and date: italic.
    PlaceDate,
    /// Centred plain text (the number and reference).
    Centred,
    /// The document type: capitals, bold, centred, larger.
    Title,
    /// The subject under the type: bold, centred.
    Subject,
    /// A paragraph of the body: justified, wrapped.
    Body,
    /// A section heading: bold.
    Heading,
    /// A table's column head: bold, centred, wrapped, bordered.
    TableHead,
    /// A table's text cell: wrapped, bordered.
    TableText,
    /// A table's count: bordered, right-aligned.
    TableNumber,
    /// An amount in đồng: bordered, thousands grouped the Vietnamese way.
    TableMoney,
    /// A total row's text: bold, bordered.
    TotalText,
    /// A total: bold, bordered.
    TotalNumber,
    /// A total amount in đồng: bold, bordered, thousands grouped.
    TotalMoney,
    /// The signer's authority and title: capitals, bold, centred.
    Signer,
    /// The signer's name: bold, centred.
    SignerName,
    /// "Nơi nhận:": bold italic, small.
    CopiesHead,
    /// A recipient line: small.
    Copies,
}

/// What a cell holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A whole number.
    Number(i64),
}

/// A cell, or a merged range from `col` to `last` on one row.
#[derive(Clone, Debug)]
pub struct Placed {
    /// Row, from 0.
    pub row: u32,
    /// First column.
    pub col: u16,
    /// Last column (== `col` for one cell).
    pub last: u16,
    /// The content.
    pub value: Value,
    /// The look.
    pub look: Look,
}

/// A sheet of the written report, laid out: the report itself, or an annex.
#[derive(Clone, Debug)]
pub struct Sheet {
    /// The sheet's name.
    pub name: String,
    /// Column widths (characters).
    pub widths: Vec<f64>,
    /// Every cell written.
    pub cells: Vec<Placed>,
    /// Row heights in points, where a row needs more than one line.
    pub heights: BTreeMap<u32, f64>,
    /// The page number's place: top centre (Decree 30/2020) or bottom right (Circular 01/2011).
    pub page_number_on_top: bool,
    /// Printed across the page (the annexes' wide lists).
    pub landscape: bool,
}

/// The written report: the report's sheet, then its annexes.
#[derive(Clone, Debug)]
pub struct Document {
    /// The sheets, in order.
    pub sheets: Vec<Sheet>,
}

/// The document's sheet.
pub const SHEET: &str = "Báo cáo";
/// The annexes' sheets: the list of sites, the list of sanction decisions.
pub const ANNEX_SHEETS: [&str; 2] = ["Phụ lục 1", "Phụ lục 2"];

/// What a report version is made into a document with.
pub struct Inputs<'a> {
    /// The report.
    pub report: &'a pb::Report,
    /// The version.
    pub version: &'a pb::ReportVersion,
    /// Its campaign.
    pub campaign: &'a central::Campaign,
    /// The indicator catalogue.
    pub indicators: &'a Catalogue,
    /// The violation catalogue (acts and their provisions).
    pub violations: &'a Violations,
    /// The kinds of site.
    pub kinds: &'a Kinds,
    /// The document's date: its submission, or today for a draft.
    pub day: NaiveDate,
}

/// Column widths (characters): STT, the row's name, then the figures.
const FIRST: f64 = 4.5;
const NAME: f64 = 19.0;
const FIGURE: f64 = 7.0;

struct Layout {
    width: u16,
    widths: Vec<f64>,
    row: u32,
    cells: Vec<Placed>,
    heights: BTreeMap<u32, f64>,
}

impl Layout {
    fn put(&mut self, col: u16, last: u16, value: Value, look: Look) {
        self.cells.push(Placed { row: self.row, col, last, value, look });
    }

    fn text(&mut self, col: u16, last: u16, text: impl Into<String>, look: Look) {
        self.put(col, last, Value::Text(text.into()), look);
    }

    /// A line across the page.
    fn line(&mut self, text: impl Into<String>, look: Look) {
        let text = text.into();
        let lines = self.lines_needed(&text, self.width_chars(0, self.width - 1));
        self.text(0, self.width - 1, text, look);
        self.tall(lines);
        self.row += 1;
    }

    fn width_chars(&self, col: u16, last: u16) -> f64 {
        (col..=last).map(|c| self.column(c)).sum()
    }

    fn column(&self, c: u16) -> f64 {
        self.widths.get(usize::from(c)).copied().unwrap_or(FIGURE)
    }

    /// The laid-out sheet.
    fn sheet(self, name: &str, page_number_on_top: bool, landscape: bool) -> Sheet {
        Sheet {
            name: name.to_owned(),
            widths: self.widths,
            cells: self.cells,
            heights: self.heights,
            page_number_on_top,
            landscape,
        }
    }

    /// Lines a text needs in a cell `chars` wide (Times New Roman 13 is about 1.15 characters of
    /// the column unit per character).
    fn lines_needed(&self, text: &str, chars: f64) -> usize {
        let per_line = (chars / 1.15).max(1.0);
        text.split('\n').map(|l| ((l.chars().count() as f64) / per_line).ceil().max(1.0) as usize).sum()
    }

    fn tall(&mut self, lines: usize) {
        if lines > 1 {
            let h = self.heights.entry(self.row).or_insert(0.0);
            *h = h.max(lines as f64 * 17.0);
        }
    }

    fn skip(&mut self) {
        self.row += 1;
    }
}

/// A row of a simple table: STT, what, how many (or an amount).
struct Line {
    label: String,
    value: Value,
    money: bool,
}

impl Document {
    /// Lays out the written report of `x`.
    pub fn new(x: &Inputs<'_>) -> Document {
        let figures = reported(x.version);
        let asked = |code: &str| x.campaign.indicators.iter().any(|i| i.code == code);
        let jurisdiction = Jurisdiction::parse(&x.report.jurisdiction).ok();
        let province = jurisdiction.as_ref().and_then(|j| j.info());
        let province_name = province.map(|p| p.name_on(x.day).0.to_owned()).unwrap_or_default();

        // Table I's columns: the statuses, an old TRIAL where any figure has it, the total, and
        // (when asked) operating and on trial.
        let site_kinds: Vec<&str> = figures
            .keys()
            .filter(|(i, _)| i == "sites_by_kind_status")
            .filter_map(|(_, d)| d.split_once('/').map(|(k, _)| k))
            .collect();
        let statuses = status_columns([&figures]);
        let operating = asked("sites_operating_by_kind_status");
        let trial = asked("sites_trial_by_kind_status");
        let width = (2 + statuses.len() + 1 + usize::from(operating) + usize::from(trial)) as u16;
        let mut widths = vec![FIRST, NAME];
        widths.resize(usize::from(width), FIGURE);
        let mut l = Layout { width, widths, row: 0, cells: Vec::new(), heights: BTreeMap::new() };

        // The heading: the bodies at the left, the motto at the right.
        let split = 4_u16;
        let doc = x.version.document.clone().unwrap_or_default();
        let issuer = Some(doc.issuer.trim()).filter(|s| !s.is_empty()).or_else(|| issuer_on(x.day)).map(str::to_owned);
        l.text(0, split - 1, format!("UBND {}", province_name.to_uppercase()), Look::Parent);
        l.text(split, width - 1, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", Look::Motto);
        l.skip();
        l.text(0, split - 1, issuer.as_deref().unwrap_or("……………………").to_uppercase(), Look::Issuer);
        l.text(split, width - 1, "Độc lập - Tự do - Hạnh phúc", Look::Motto2);
        l.tall(l.lines_needed(issuer.as_deref().unwrap_or(""), l.width_chars(0, split - 1)));
        l.skip();
        l.skip();
        let number = match doc.number.trim().parse::<u64>() {
            Ok(n) => format!("{n:02}"),
            Err(_) if doc.number.trim().is_empty() => "      ".to_owned(),
            Err(_) => doc.number.trim().to_owned(),
        };
        let abbreviation = Some(doc.issuer_abbreviation.trim()).filter(|a| !a.is_empty()).unwrap_or("……");
        let reference = format!("Số: {number}/BC-{abbreviation}");
        l.text(0, split - 1, reference.clone(), Look::Centred);
        let place = Some(doc.place.trim()).filter(|p| !p.is_empty()).unwrap_or("……………");
        l.text(split, width - 1, format!("{place}, {}", date_words(x.day)), Look::PlaceDate);
        l.skip();
        l.skip();

        // The type and subject, whom it is addressed to, and what it answers.
        l.line("BÁO CÁO", Look::Title);
        l.line(x.campaign.title.clone(), Look::Subject);
        l.skip();
        if !x.campaign.recipient.trim().is_empty() {
            l.line(format!("Kính gửi: {}.", x.campaign.recipient.trim()), Look::Centred);
            l.skip();
        }
        let mut answers = format!("Thực hiện Công văn số {}", x.campaign.reference);
        if let Some(t) = &x.campaign.reference_time {
            answers.push_str(&format!(" ngày {}", date_short(day_in_vietnam(instant(Some(t))))));
        }
        if !x.campaign.issuer.trim().is_empty() {
            answers.push_str(&format!(" của {}", x.campaign.issuer.trim()));
        }
        let reporter = issuer.clone().unwrap_or_else(|| "Sở".to_owned());
        answers.push_str(&format!(", {reporter} {} báo cáo như sau:", province_name));
        l.line(answers, Look::Body);

        // Table I.
        let kinds: Vec<(String, String)> = x
            .kinds
            .all()
            .iter()
            .map(|k| (k.code.clone(), k.name_vi.clone()))
            .chain(
                // A kind in the figures but not in the catalogue: named by its code.
                site_kinds.iter().filter(|k| x.kinds.get(k).is_none()).map(|k| ((*k).to_owned(), (*k).to_owned())),
            )
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        if asked("sites_by_kind_status") {
            l.skip();
            l.line(
                "I. TÌNH HÌNH HOẠT ĐỘNG CỦA TRANG THÔNG TIN ĐIỆN TỬ TỔNG HỢP, MẠNG XÃ HỘI TRÊN ĐỊA BÀN",
                Look::Heading,
            );
            l.line("Bảng 1. Số trang theo loại và tình trạng pháp lý", Look::Heading);
            let mut heads: Vec<String> = vec!["STT".into(), "Loại".into()];
            heads.extend(statuses.iter().map(|(_, name)| (*name).to_owned()));
            heads.push("Tổng cộng".into());
            if operating {
                heads.push("Trong đó: đang hoạt động".into());
            }
            if trial {
                heads.push("Trong đó: thử nghiệm".into());
            }
            head_row(&mut l, &heads);
            let figure = |indicator: &str, kind: &str, status: &str| -> i64 {
                figures.get(&(indicator.to_owned(), format!("{kind}/{status}"))).copied().unwrap_or(0)
            };
            let mut column_totals = vec![0_i64; heads.len() - 2];
            for (i, (code, name)) in kinds.iter().enumerate() {
                let mut row: Vec<i64> = statuses.iter().map(|(s, _)| figure("sites_by_kind_status", code, s)).collect();
                row.push(row.iter().sum());
                let sum_of = |indicator: &str| statuses.iter().map(|(s, _)| figure(indicator, code, s)).sum::<i64>();
                if operating {
                    row.push(sum_of("sites_operating_by_kind_status"));
                }
                if trial {
                    row.push(sum_of("sites_trial_by_kind_status"));
                }
                for (t, n) in column_totals.iter_mut().zip(&row) {
                    *t += n;
                }
                number_row(&mut l, &(i + 1).to_string(), name, &row, false);
            }
            number_row(&mut l, "", "Tổng cộng", &column_totals, true);
        }

        // Table II: inspections and their handling, then violations by provision.
        let lines = |source: Source| -> Vec<Line> {
            single_figures(x.indicators, source, asked)
                .into_iter()
                .map(|f| Line { label: f.label, value: Value::Number(f.pick.of(&figures)), money: f.money })
                .collect()
        };
        let inspection = lines(Source::Inspection);
        let violations: Vec<(String, i64)> = figures
            .iter()
            .filter(|((i, _), _)| i == "violations_by_code")
            .map(|((_, code), n)| (x.violations.act(code), *n))
            .collect();
        if !inspection.is_empty() || asked("violations_by_code") {
            l.skip();
            l.line("II. CÔNG TÁC THANH TRA, KIỂM TRA VÀ XỬ LÝ VI PHẠM", Look::Heading);
            l.line("Bảng 2. Thanh tra, kiểm tra và xử lý vi phạm", Look::Heading);
            simple_table(&mut l, &inspection);
            if asked("violations_by_code") {
                l.line("Bảng 2a. Vi phạm theo hành vi và căn cứ pháp lý", Look::Heading);
                let lines: Vec<Line> = violations
                    .iter()
                    .map(|(label, n)| Line { label: label.clone(), value: Value::Number(*n), money: false })
                    .collect();
                simple_table(&mut l, &lines);
                simple_total(&mut l, violations.iter().map(|(_, n)| n).sum());
            }
        }

        // Table III: licensing work (the registry's figures other than Table I's).
        let licensing = lines(Source::Registry);
        if !licensing.is_empty() {
            l.skip();
            l.line("III. CÔNG TÁC CẤP PHÉP", Look::Heading);
            l.line("Bảng 3. Hồ sơ và giấy phép", Look::Heading);
            simple_table(&mut l, &licensing);
        }

        // The narrative sections, in the campaign's order.
        let numerals = ["IV", "V", "VI", "VII", "VIII", "IX", "X"];
        for (i, code) in x.campaign.narrative_sections.iter().enumerate() {
            let name = SECTIONS.iter().find(|(c, _)| c == code).map_or(code.as_str(), |(_, n)| n);
            let text = x.version.narrative.iter().find(|n| &n.section == code).map(|n| n.text.as_str());
            l.skip();
            l.line(format!("{}. {}", numerals.get(i).copied().unwrap_or(""), name.to_uppercase()), Look::Heading);
            for paragraph in text.unwrap_or("").split('\n').filter(|p| !p.trim().is_empty()) {
                l.line(paragraph.trim(), Look::Body);
            }
        }
        l.skip();
        l.line(format!("Trên đây là báo cáo của {reporter} {province_name}./."), Look::Body);
        l.skip();

        // Recipients at the left, the signature block at the right.
        let sign_col = split + 1;
        l.text(0, split, "Nơi nhận:", Look::CopiesHead);
        l.text(sign_col, width - 1, doc.signer_authority.trim().to_uppercase(), Look::Signer);
        l.skip();
        let mut copies: Vec<String> = vec!["- Như trên;".into()];
        copies.extend(doc.copies_to.iter().filter(|c| !c.trim().is_empty()).map(|c| format!("- {};", c.trim())));
        let filed = Some(doc.filed_by.trim()).filter(|f| !f.is_empty()).map_or("VT".to_owned(), |f| format!("VT, {f}"));
        copies.push(format!("- Lưu: {filed}."));
        let signer = [
            (doc.signer_title.trim().to_uppercase(), Look::Signer),
            (String::new(), Look::SignerName),
            (String::new(), Look::SignerName),
            (String::new(), Look::SignerName),
            (doc.signer_name.trim().to_owned(), Look::SignerName),
        ];
        for i in 0..copies.len().max(signer.len()) {
            if let Some(c) = copies.get(i) {
                l.text(0, split, c.clone(), Look::Copies);
            }
            if let Some((s, look)) = signer.get(i).filter(|(s, _)| !s.is_empty()) {
                l.text(sign_col, width - 1, s.clone(), *look);
            }
            l.skip();
        }
        let on_top = x.day >= decree_30_2020();
        let mut sheets = vec![l.sheet(SHEET, on_top, false)];
        if let Some(a) = &x.version.annexes {
            let of = format!(
                "(Kèm theo Báo cáo số {} ngày {} của {} {})",
                reference.trim_start_matches("Số: "),
                date_short(x.day),
                reporter,
                province_name
            );
            sheets.push(sites_annex(x, a, &province_name, &of).sheet(ANNEX_SHEETS[0], on_top, true));
            sheets.push(decisions_annex(x, a, &of).sheet(ANNEX_SHEETS[1], on_top, true));
        }
        Document { sheets }
    }
}

impl Sheet {
    /// Writes the sheet as a worksheet of `wb`.
    pub fn write(&self, wb: &mut Workbook) -> anyhow::Result<()> {
        let ws = wb.add_worksheet();
        ws.set_name(&self.name)?;
        page_setup(ws, self.page_number_on_top, self.landscape)?;
        for (c, w) in self.widths.iter().enumerate() {
            ws.set_column_width(c as u16, *w)?;
        }
        for (row, h) in &self.heights {
            ws.set_row_height(*row, *h)?;
        }
        for p in &self.cells {
            let f = format(p.look);
            if p.last > p.col {
                ws.merge_range(p.row, p.col, p.row, p.last, "", &f)?;
            }
            match &p.value {
                Value::Text(s) => ws.write_string_with_format(p.row, p.col, s, &f).map(|_| ())?,
                Value::Number(n) => ws.write_number_with_format(p.row, p.col, *n as f64, &f).map(|_| ())?,
            }
        }
        Ok(())
    }
}

/// The heading of an annex: its number, its title, what it holds for, and which report it is
/// attached to.
fn annex_heading(l: &mut Layout, number: &str, title: &str, holds: &str, of: &str) {
    l.line(number, Look::Subject);
    l.line(title, Look::Subject);
    l.line(holds, Look::PlaceDate);
    l.line(of, Look::PlaceDate);
    l.skip();
}

/// A row of a list: one cell per column, as tall as its tallest.
fn list_row(l: &mut Layout, cells: Vec<(Value, Look)>) {
    let mut lines = 1;
    for (i, (value, look)) in cells.into_iter().enumerate() {
        let c = i as u16;
        if let Value::Text(t) = &value {
            lines = lines.max(l.lines_needed(t, l.column(c) * 1.1));
        }
        l.put(c, c, value, look);
    }
    l.tall(lines);
    l.row += 1;
}

/// A row across a list: a group's name, or "Không có." under an empty list.
fn list_band(l: &mut Layout, text: &str, look: Look) {
    l.text(0, l.width - 1, text, look);
    l.row += 1;
}

fn text(s: impl Into<String>) -> (Value, Look) {
    (Value::Text(s.into()), Look::TableText)
}

/// Annex 1: the register, by kind, as it stood at the cut-off.
fn sites_annex(x: &Inputs<'_>, a: &pb::Annexes, province: &str, of: &str) -> Layout {
    let widths = vec![FIRST + 0.5, 26.0, 22.0, 28.0, 26.0, 14.0];
    let mut l = Layout { width: widths.len() as u16, widths, row: 0, cells: Vec::new(), heights: BTreeMap::new() };
    let as_of = day_in_vietnam(instant(a.as_of.as_ref()));
    annex_heading(
        &mut l,
        "Phụ lục 1",
        &format!("DANH SÁCH TRANG THÔNG TIN ĐIỆN TỬ TỔNG HỢP, MẠNG XÃ HỘI TRÊN ĐỊA BÀN {}", province.to_uppercase()),
        &format!("(Tính đến ngày {})", date_short(as_of)),
        of,
    );
    let heads: Vec<String> = SITE_LIST.iter().map(|h| (*h).to_owned()).collect();
    head_row(&mut l, &heads);
    if a.sites.is_empty() {
        list_band(&mut l, "Không có.", Look::TableText);
    }
    let numerals = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII"];
    let mut kinds: Vec<&str> = a.sites.iter().map(|s| s.kind.as_str()).collect();
    kinds.dedup();
    for (k, kind) in kinds.iter().enumerate() {
        let name = x.kinds.get(kind).map_or((*kind).to_owned(), |k| k.name_vi.clone());
        list_band(&mut l, &format!("{}. {name}", numerals.get(k).copied().unwrap_or("")), Look::TotalText);
        for (i, s) in a.sites.iter().filter(|s| s.kind == *kind).enumerate() {
            let mut cells = vec![(Value::Text((i + 1).to_string()), Look::TableText)];
            cells.extend(site_list_cells(s).into_iter().map(text));
            list_row(&mut l, cells);
        }
    }
    l
}

/// Annex 2: the sanction decisions dated in the campaign's period, with the total of the fines.
fn decisions_annex(x: &Inputs<'_>, a: &pb::Annexes, of: &str) -> Layout {
    let widths = vec![FIRST + 0.5, 24.0, 22.0, 36.0, 18.0, 17.0, 14.0];
    let mut l = Layout { width: widths.len() as u16, widths, row: 0, cells: Vec::new(), heights: BTreeMap::new() };
    let start = x.campaign.period_start.as_ref().map(|t| day_in_vietnam(instant(Some(t))));
    let end = x.campaign.period_end.as_ref().or(a.as_of.as_ref()).map(|t| {
        // The period's end is exclusive: its last day is the day before.
        day_in_vietnam(instant(Some(t)) - chrono::Duration::microseconds(1))
    });
    let holds = match (start, end) {
        (Some(s), Some(e)) => format!("(Từ ngày {} đến ngày {})", date_short(s), date_short(e)),
        (None, Some(e)) => format!("(Đến ngày {})", date_short(e)),
        _ => String::new(),
    };
    annex_heading(&mut l, "Phụ lục 2", "DANH SÁCH QUYẾT ĐỊNH XỬ PHẠT VI PHẠM HÀNH CHÍNH", &holds, of);
    let heads: Vec<String> = DECISION_LIST.iter().map(|h| (*h).to_owned()).collect();
    head_row(&mut l, &heads);
    if a.decisions.is_empty() {
        list_band(&mut l, "Không có.", Look::TableText);
        return l;
    }
    for (i, d) in a.decisions.iter().enumerate() {
        let mut cells = vec![(Value::Text((i + 1).to_string()), Look::TableText)];
        cells.extend(decision_list_cells(d, x.violations).into_iter().map(text));
        cells.push((Value::Number(d.fine_vnd), Look::TableMoney));
        list_row(&mut l, cells);
    }
    let last = l.width - 1;
    l.text(0, last - 1, "Tổng cộng", Look::TotalText);
    l.put(last, last, Value::Number(a.decisions.iter().map(|d| d.fine_vnd).sum()), Look::TotalMoney);
    l.row += 1;
    l
}

/// A4 portrait, the margins of both rules (top and bottom 20 mm, left 30 mm, right 15 mm, in
/// inches), one page wide, no gridlines, the page number where the rule in force puts it.
fn page_setup(ws: &mut Worksheet, page_number_on_top: bool, landscape: bool) -> anyhow::Result<()> {
    const MM: f64 = 1.0 / 25.4;
    ws.set_paper_size(9); // A4
    if landscape {
        ws.set_landscape();
    }
    ws.set_margins(30.0 * MM, 15.0 * MM, 20.0 * MM, 20.0 * MM, 10.0 * MM, 10.0 * MM);
    ws.set_print_fit_to_pages(1, 0);
    ws.set_screen_gridlines(false);
    if page_number_on_top {
        ws.set_header("&C&\"Times New Roman\"&13&P");
    } else {
        ws.set_footer("&R&\"Times New Roman\"&13&P");
    }
    Ok(())
}

fn format(look: Look) -> Format {
    let base = Format::new().set_font_name("Times New Roman").set_font_size(13).set_align(FormatAlign::VerticalCenter);
    let centred = |f: Format| f.set_align(FormatAlign::Center).set_text_wrap();
    let cell = |f: Format| f.set_border(FormatBorder::Thin).set_text_wrap();
    match look {
        Look::Parent => centred(base.set_font_size(12)),
        Look::Issuer => centred(base.set_font_size(12).set_bold().set_underline(FormatUnderline::Single)),
        Look::Motto => centred(base.set_font_size(12).set_bold()),
        Look::Motto2 => centred(base.set_bold().set_underline(FormatUnderline::Single)),
        Look::PlaceDate => centred(base.set_italic()),
        Look::Centred => centred(base),
        Look::Title => centred(base.set_font_size(14).set_bold()),
        Look::Subject => centred(base.set_bold()),
        Look::Body => base.set_align(FormatAlign::Justify).set_text_wrap(),
        Look::Heading => base.set_bold().set_text_wrap(),
        Look::TableHead => centred(cell(base.set_font_size(11).set_bold())),
        Look::TableText => cell(base.set_font_size(11)),
        Look::TableNumber => cell(base.set_font_size(11)).set_align(FormatAlign::Right).set_num_format("0"),
        Look::TableMoney => cell(base.set_font_size(11)).set_align(FormatAlign::Right).set_num_format("[$-42A]#,##0"),
        Look::TotalText => cell(base.set_font_size(11).set_bold()),
        Look::TotalNumber => cell(base.set_font_size(11).set_bold()).set_align(FormatAlign::Right).set_num_format("0"),
        Look::TotalMoney => {
            cell(base.set_font_size(11).set_bold()).set_align(FormatAlign::Right).set_num_format("[$-42A]#,##0")
        }
        Look::Signer => centred(base.set_bold()),
        Look::SignerName => centred(base.set_bold()),
        Look::CopiesHead => base.set_font_size(12).set_bold().set_italic(),
        Look::Copies => base.set_font_size(11),
    }
}

/// A table's head row, sized for its longest head.
fn head_row(l: &mut Layout, heads: &[String]) {
    let lines = heads.iter().enumerate().map(|(i, h)| l.lines_needed(h, l.column(i as u16) * 1.1)).max().unwrap_or(1);
    for (i, h) in heads.iter().enumerate() {
        let i = i as u16;
        l.text(i, i, h.clone(), Look::TableHead);
    }
    l.tall(lines.max(2));
    l.row += 1;
}

/// A row of counts: STT, name, figures.
fn number_row(l: &mut Layout, stt: &str, name: &str, figures: &[i64], total: bool) {
    let (text, number) =
        if total { (Look::TotalText, Look::TotalNumber) } else { (Look::TableText, Look::TableNumber) };
    l.text(0, 0, stt, text);
    l.text(1, 1, name, text);
    for (i, n) in figures.iter().enumerate() {
        let c = 2 + i as u16;
        l.put(c, c, Value::Number(*n), number);
    }
    let lines = l.lines_needed(name, NAME * 1.1);
    l.tall(lines);
    l.row += 1;
}

/// A table of (STT, what, how many): the label across the middle columns, the figure in the
/// last two.
fn simple_table(l: &mut Layout, lines: &[Line]) {
    let last = l.width - 1;
    let value_col = last - 1;
    l.text(0, 0, "STT", Look::TableHead);
    l.text(1, value_col - 1, "Nội dung", Look::TableHead);
    l.text(value_col, last, "Số lượng", Look::TableHead);
    l.row += 1;
    for (i, line) in lines.iter().enumerate() {
        l.text(0, 0, (i + 1).to_string(), Look::TableText);
        let lines_needed = l.lines_needed(&line.label, l.width_chars(1, value_col - 1) * 1.1);
        l.text(1, value_col - 1, line.label.clone(), Look::TableText);
        l.put(value_col, last, line.value.clone(), if line.money { Look::TableMoney } else { Look::TableNumber });
        l.tall(lines_needed);
        l.row += 1;
    }
}

/// The total row under a [`simple_table`].
fn simple_total(l: &mut Layout, total: i64) {
    let value_col = l.width - 2;
    l.text(0, 0, "", Look::TotalText);
    l.text(1, value_col - 1, "Tổng cộng", Look::TotalText);
    l.put(value_col, value_col + 1, Value::Number(total), Look::TotalNumber);
    l.row += 1;
}

/// The written report as XLSX: the document and its annexes, then, when given, the figures with
/// their codes (`data`). The PDF is made from the document alone: LibreOffice prints every sheet.
pub fn to_xlsx(doc: &Document, data: Option<&[Vec<crate::export::Cell>]>) -> anyhow::Result<Vec<u8>> {
    let mut wb = Workbook::new();
    for sheet in &doc.sheets {
        sheet.write(&mut wb)?;
    }
    if let Some(data) = data {
        crate::export::write_sheet(&mut wb, data, "Số liệu")?;
    }
    Ok(wb.save_to_buffer()?)
}

/// Converts a workbook to PDF with LibreOffice (`office` is its command, e.g. `soffice`), every
/// sheet of it, in a directory of its own with a profile of its own, within `timeout`.
///
/// # Errors
/// LibreOffice is missing, fails, or takes longer than `timeout`.
pub async fn to_pdf(xlsx: &[u8], office: &Path, timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("report.xlsx");
    std::fs::write(&input, xlsx)?;
    let profile = format!("-env:UserInstallation=file://{}", dir.path().join("profile").display());
    let run = tokio::process::Command::new(office)
        .arg(profile)
        .args(["--headless", "--norestore", "--convert-to", "pdf", "--outdir"])
        .arg(dir.path())
        .arg(&input)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| anyhow::anyhow!("LibreOffice took longer than {} s", timeout.as_secs()))?
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", office.display()))?;
    let pdf = dir.path().join("report.pdf");
    if !out.status.success() || !pdf.exists() {
        anyhow::bail!(
            "LibreOffice did not convert the report ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(std::fs::read(pdf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn dates_are_written_as_the_rules_say() {
        assert_eq!(date_words(day(2020, 1, 5)), "ngày 05 tháng 01 năm 2020");
        assert_eq!(date_words(day(2019, 6, 29)), "ngày 29 tháng 6 năm 2019");
        assert_eq!(date_words(day(2014, 11, 18)), "ngày 18 tháng 11 năm 2014");
        assert_eq!(date_words(day(2014, 2, 9)), "ngày 09 tháng 02 năm 2014");
        assert_eq!(date_short(day(2014, 11, 6)), "06/11/2014");
    }

    #[test]
    fn the_issuer_is_named_only_where_a_source_names_it() {
        assert_eq!(issuer_on(day(2014, 11, 18)), Some("Sở Thông tin và Truyền thông"));
        assert_eq!(issuer_on(day(2014, 10, 2)), None);
        assert_eq!(issuer_on(day(2025, 2, 28)), Some("Sở Thông tin và Truyền thông"));
        assert_eq!(issuer_on(day(2025, 3, 1)), None);
    }

    #[tokio::test]
    async fn without_libreoffice_the_pdf_is_refused_saying_which_command_failed() {
        let e = to_pdf(b"not used", Path::new("/nonexistent/soffice"), Duration::from_secs(5)).await.unwrap_err();
        assert!(e.to_string().contains("cannot run /nonexistent/soffice"), "{e}");
    }

    #[test]
    fn a_day_in_vietnam_is_utc_plus_seven() {
        let t = chrono::DateTime::parse_from_rfc3339("2014-11-19T18:00:00Z").unwrap().to_utc();
        assert_eq!(day_in_vietnam(t), day(2014, 11, 20));
    }
}
