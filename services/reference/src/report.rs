//! What a written report calls things, shared by the province's document and the centre's
//! national workbook: the legal statuses as Table I's columns, the narrative sections, and a
//! version's figures as reported.

use std::collections::BTreeMap;

use einfo_proto::reporting::v1 as pb;

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
    ("REFERRAL_CENTRE", "chuyển Bộ, Cục xử lý"),
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
