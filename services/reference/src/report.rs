//! What a written report calls things, shared by the province's document and the centre's
//! national workbook: the legal statuses as Table I's columns, the narrative sections, and a
//! version's figures as reported.

use std::collections::BTreeMap;

use einfo_proto::reporting::v1 as pb;

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
pub fn reported(v: &pb::ReportVersion) -> BTreeMap<(String, String), i64> {
    v.values
        .iter()
        .map(|x| ((x.indicator.clone(), x.dimension.clone()), if x.overridden { x.override_value } else { x.computed }))
        .collect()
}

/// Table I's status columns for these figures: the seven, and the old TRIAL where any
/// `sites_by_kind_status` figure has it.
pub fn status_columns(figures: &BTreeMap<(String, String), i64>) -> Vec<(&'static str, &'static str)> {
    let mut out = STATUSES.to_vec();
    let old = figures.keys().any(|(i, d)| i == "sites_by_kind_status" && d.ends_with(&format!("/{}", OLD_TRIAL.0)));
    if old {
        out.push(OLD_TRIAL);
    }
    out
}

/// The sum over kinds of `indicator`'s figures of `status` ("LICENSED", …).
pub fn sum_of_status(figures: &BTreeMap<(String, String), i64>, indicator: &str, status: &str) -> i64 {
    figures
        .iter()
        .filter(|((i, d), _)| i == indicator && d.rsplit_once('/').is_some_and(|(_, s)| s == status))
        .map(|(_, n)| *n)
        .sum()
}
