//! What a written report calls things, shared by the province's document and the centre's
//! national workbook: the legal statuses as Table I's columns, the narrative sections, and a
//! version's figures as reported.

use std::collections::BTreeMap;

use einfo_domain::calendar::day_in_vietnam;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;
use einfo_proto::reporting::v1 as pb;

use crate::catalogue::Catalogue as Violations;
use crate::indicators::{Catalogue, Source};

/// A version's figures as reported, by (indicator, dimension).
pub type Figures = BTreeMap<(String, String), i64>;

/// The legal statuses (as the figures' dimensions write them) and the names a report prints for
/// them, in the order of Table I's columns.
pub const STATUSES: [(&str, &str); 7] = [
    ("LICENSED", "Đã được cấp phép"),
    ("APPLIED", "Đang đề nghị cấp phép"),
    ("REGISTERED", "Đã đăng ký, thông báo"),
    ("UNLICENSED", "Hoạt động không phép"),
    ("SUSPENDED", "Bị đình chỉ"),
    ("REVOKED", "Bị thu hồi giấy phép"),
    ("EXPIRED", "Giấy phép hết hạn"),
];

/// A status an older node may still report (before trial became a flag beside the status): a
/// column of its own where it appears, so that rows still add up.
pub const OLD_TRIAL: (&str, &str) = ("TRIAL", "Thử nghiệm (theo cách tính cũ)");

/// Narrative sections the campaigns use, by code; another code prints as the campaign wrote it.
pub const SECTIONS: [(&str, &str); 5] = [
    ("assessment", "Đánh giá chung"),
    ("results", "Kết quả thực hiện"),
    ("difficulties", "Khó khăn, vướng mắc"),
    ("recommendations", "Kiến nghị, đề xuất"),
    ("proposals", "Kiến nghị, đề xuất"),
];

/// How violations are dealt with without a sanction (the dimensions of `violations_handled`),
/// and what a report calls each after the indicator's name.
pub const HANDLINGS: [(&str, &str); 4] = [
    ("REMINDER", "nhắc nhở"),
    ("REMOVAL_REQUEST", "yêu cầu gỡ bỏ thông tin vi phạm"),
    ("REFERRAL_POLICE", "chuyển cơ quan công an"),
    ("REFERRAL_CENTRE", "kiến nghị, chuyển Bộ, Cục xử lý"),
];

/// The figures of a version as reported (an override where there is one), by (indicator,
/// dimension).
pub fn reported(v: &pb::ReportVersion) -> Figures {
    v.values
        .iter()
        .map(|x| ((x.indicator.clone(), x.dimension.clone()), if x.overridden { x.override_value } else { x.computed }))
        .collect()
}

/// Table I's status columns for these figures: the seven, and the old TRIAL where any
/// `sites_by_kind_status` figure of any of them has it.
pub fn status_columns<'a>(figures: impl IntoIterator<Item = &'a Figures>) -> Vec<(&'static str, &'static str)> {
    let mut out = STATUSES.to_vec();
    let old = format!("/{}", OLD_TRIAL.0);
    if figures.into_iter().any(|f| f.keys().any(|(i, d)| i == "sites_by_kind_status" && d.ends_with(&old))) {
        out.push(OLD_TRIAL);
    }
    out
}

/// The indicator fields Table I prints (sites by kind and status, operating, on trial).
const TABLE_I_FIELDS: [&str; 3] = ["sites", "sites_operating", "sites_trial"];

/// What a cell of a report's table reads from a version's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    /// One figure: (indicator, dimension).
    Exact(String, String),
    /// The sum over kinds of `sites_by_kind_status`'s figures of one status ("LICENSED", …).
    Status(&'static str),
    /// The sum of every figure of an indicator.
    All(&'static str),
}

impl Pick {
    /// The figure it reads.
    pub fn of(&self, figures: &Figures) -> i64 {
        match self {
            Pick::Exact(i, d) => figures.get(&(i.clone(), d.clone())).copied().unwrap_or(0),
            Pick::Status(status) => figures
                .iter()
                .filter(|((i, d), _)| {
                    i == "sites_by_kind_status" && d.rsplit_once('/').is_some_and(|(_, s)| s == *status)
                })
                .map(|(_, n)| *n)
                .sum(),
            Pick::All(indicator) => figures.iter().filter(|((i, _), _)| i == indicator).map(|(_, n)| *n).sum(),
        }
    }
}

/// A figure a report's table prints on a line of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleFigure {
    /// What it is, as the report says it.
    pub label: String,
    /// Where it is read.
    pub pick: Pick,
    /// An amount in đồng.
    pub money: bool,
}

/// The figures of `source` that the campaign asked for (`asked` says which indicator codes) and
/// that a table prints one per line, in catalogue order: each indicator of a single figure, and
/// `violations_handled` once per handling. Table I's figures and the violations by provision are
/// printed otherwise.
pub fn single_figures(indicators: &Catalogue, source: Source, asked: impl Fn(&str) -> bool) -> Vec<SingleFigure> {
    indicators
        .rules()
        .iter()
        .filter(|r| r.source == source && asked(&r.code))
        .filter(|r| r.field != "violations" && !TABLE_I_FIELDS.contains(&r.field.as_str()))
        .flat_map(|r| -> Vec<SingleFigure> {
            if r.field == "handled" {
                return HANDLINGS
                    .iter()
                    .map(|(d, how)| SingleFigure {
                        label: format!("{}: {how}", r.name_vi),
                        pick: Pick::Exact(r.code.clone(), (*d).to_owned()),
                        money: false,
                    })
                    .collect();
            }
            vec![SingleFigure {
                label: r.name_vi.clone(),
                pick: Pick::Exact(r.code.clone(), String::new()),
                money: r.field.ends_with("_vnd"),
            }]
        })
        .collect()
}

/// The heads of annex 1, the list of sites.
pub const SITE_LIST: [&str; 6] = [
    "STT",
    "Tên trang thông tin điện tử tổng hợp, mạng xã hội",
    "Tên miền",
    "Cơ quan, tổ chức, cá nhân chủ quản",
    "Giấy phép (số, ngày cấp) hoặc tình trạng",
    "Tình trạng hoạt động",
];

/// The heads of annex 2, the list of sanction decisions.
pub const DECISION_LIST: [&str; 7] = [
    "STT",
    "Tổ chức, cá nhân vi phạm",
    "Trang thông tin điện tử, mạng xã hội",
    "Hành vi vi phạm (căn cứ pháp lý)",
    "Hình thức xử phạt, biện pháp khắc phục",
    "Số, ngày quyết định",
    "Số tiền phạt (đồng)",
];

/// dd/mm/yyyy of an instant, in Vietnam; empty when unset.
pub fn day_text(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| day_in_vietnam(t).format("%d/%m/%Y").to_string())
        .unwrap_or_default()
}

/// What a report calls a legal status.
pub fn status_name(status: i32) -> &'static str {
    let code = reg::LegalStatus::try_from(status).map_or("", |s| s.as_str_name().trim_start_matches("LEGAL_STATUS_"));
    STATUSES.iter().chain([&OLD_TRIAL]).find(|(c, _)| *c == code).map_or("Chưa xác định", |(_, name)| name)
}

/// What a report calls an operational state.
fn operation_name(state: i32) -> &'static str {
    match reg::OperationalState::try_from(state) {
        Ok(reg::OperationalState::Active) => "Đang hoạt động",
        Ok(reg::OperationalState::Inactive) => "Ngừng hoạt động",
        Ok(reg::OperationalState::Unreachable) => "Không truy cập được",
        _ => "",
    }
}

/// What a report calls a measure.
fn measure_name(kind: i32) -> &'static str {
    match insp::MeasureKind::try_from(kind) {
        Ok(insp::MeasureKind::LicenceSuspension) => "Đình chỉ giấy phép",
        Ok(insp::MeasureKind::LicenceRevocation) => "Thu hồi giấy phép",
        Ok(insp::MeasureKind::DomainWithdrawal) => "Thu hồi tên miền",
        Ok(insp::MeasureKind::ContentRemoval) => "Buộc gỡ bỏ thông tin vi phạm",
        Ok(insp::MeasureKind::Confiscation) => "Tịch thu tang vật, phương tiện vi phạm",
        _ => "",
    }
}

/// The owner's or offender's number on a line of its own: "Mã số thuế: 0100109106" for an
/// organisation, "Số định danh: *********345" for a person (masked); nothing when there is none.
fn number_line(number: &str, person: bool) -> String {
    match number {
        "" => String::new(),
        n if person => format!("\nSố định danh: {n}"),
        n => format!("\nMã số thuế: {n}"),
    }
}

/// A site's cells in annex 1 after its STT: name, domains, owner (with the tax code, or a
/// person's masked number), the licence's number and date or else the legal status (and trial),
/// whether it operates.
pub fn site_list_cells(s: &pb::AnnexSite) -> [String; 5] {
    let person = s.owner_number.starts_with('*') || s.owner_number.len() == 12;
    let mut licence = if s.licence_number.is_empty() {
        status_name(s.legal_status).to_owned()
    } else {
        let mut g = format!("Giấy phép số {}", s.licence_number);
        let issued = day_text(s.licence_issue_time.as_ref());
        if !issued.is_empty() {
            g.push_str(&format!(" ngày {issued}"));
        }
        if s.legal_status != reg::LegalStatus::Licensed as i32 {
            g.push_str(&format!("\n{}", status_name(s.legal_status)));
        }
        g
    };
    if s.trial {
        licence.push_str("\nĐang thử nghiệm");
    }
    [
        s.display_name.clone(),
        s.domains.join("\n"),
        format!("{}{}", s.owner, number_line(&s.owner_number, person)),
        licence,
        operation_name(s.operational_state).to_owned(),
    ]
}

/// A decision's cells in annex 2 after its STT and before its amount: the offender (a person
/// marked so, with the masked number where known), the site, the acts cited to the point, the
/// forms and measures, the number and date.
pub fn decision_list_cells(d: &pb::AnnexDecision, violations: &Violations) -> [String; 5] {
    let person = d.offender_kind == insp::OffenderKind::Person as i32;
    let mut forms = vec![if d.warning { "Cảnh cáo" } else { "Phạt tiền" }];
    forms.extend(d.measures.iter().map(|m| measure_name(*m)).filter(|m| !m.is_empty()));
    [
        format!("{}{}{}", d.offender, if person { " (cá nhân)" } else { "" }, number_line(&d.offender_number, person)),
        d.site.clone(),
        d.violations.iter().map(|code| violations.act(code)).collect::<Vec<_>>().join("\n"),
        forms.join("\n"),
        format!("{}\nngày {}", d.number, day_text(d.decision_time.as_ref())),
    ]
}
