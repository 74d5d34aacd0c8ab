//! Request-field rules every service shares: timestamps, jurisdictions and resource names,
//! free text and its limits, reasons, enum values, request ids, page sizes and page tokens, etags and new ids.

use base64::Engine;
use chrono::{DateTime, Utc};
use einfo_domain::{Jurisdiction, Scheme};
use prost::Message;

use crate::changelog::body_hash;
use crate::error::{ApiError, ApiResult, Reason, Violations};

pub use einfo_domain::text::Lines;

// The text limits below are engineering limits (what fits a screen, a log entry and a report
// cell), not legal figures; `docs/contracts.md` lists every text field with its limit.

/// Longest display name (sites, owners, people, units, dossier items), in characters.
pub const MAX_NAME: usize = 300;
/// Longest document number (licence, decision), in characters.
pub const MAX_NUMBER: usize = 100;
/// Longest single line that is not a name (an address), in characters.
pub const MAX_LINE: usize = 500;
/// Longest reason or justification, in characters.
pub const MAX_TEXT: usize = 2000;
/// Longest note or description, in characters.
pub const MAX_NOTES: usize = 4000;
/// Longest findings of an inspection, in characters.
pub const MAX_FINDINGS: usize = 10_000;
/// Longest narrative section of a report, in characters.
pub const MAX_NARRATIVE: usize = 20_000;
/// Longest URL (evidence), in characters.
pub const MAX_URL: usize = 2000;
/// Largest page.
pub const MAX_PAGE: i32 = 1000;
/// Page size when none is asked.
pub const DEFAULT_PAGE: i32 = 100;
/// Most words a name query may have (every word must match, so more would match nothing a
/// person names a site with, and each costs the database a condition).
pub const MAX_QUERY_WORDS: usize = 16;

/// The words of a name query, folded (no accents, lower case): at most [`MAX_NAME`] characters
/// and [`MAX_QUERY_WORDS`] words, or a violation of `field`.
pub fn name_query(value: &str, field: &str, v: &mut Violations) -> Vec<String> {
    if let Err(e) = einfo_domain::FreeText::parse(value, MAX_NAME, Lines::One) {
        v.add(field, e);
        return Vec::new();
    }
    let words: Vec<String> = einfo_domain::text::fold(value).split_whitespace().map(str::to_owned).collect();
    if words.len() > MAX_QUERY_WORDS {
        v.add(field, format!("has {} words; a query has at most {MAX_QUERY_WORDS}", words.len()));
        return Vec::new();
    }
    words
}

pub use einfo_domain::calendar::{day_in_vietnam, vietnam};

/// An instant as a protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// The instant of an optional timestamp; the earliest instant when unset.
pub fn instant(t: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A required, valid timestamp, truncated to the microsecond.
pub fn required_instant(t: Option<&prost_types::Timestamp>, field: &str, v: &mut Violations) -> Option<DateTime<Utc>> {
    match t {
        None => {
            v.add(field, "is required");
            None
        }
        Some(ts) => match DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32) {
            Some(d) if ts.nanos >= 0 && d.timestamp() > 0 => DateTime::from_timestamp_micros(d.timestamp_micros()),
            _ => {
                v.add(field, "is not a valid time");
                None
            }
        },
    }
}

/// A jurisdiction field: a province of the node's scheme.
pub fn jurisdiction(value: &str, field: &str, scheme: Scheme) -> ApiResult<Jurisdiction> {
    let j = Jurisdiction::parse(value).map_err(|e| ApiError::field(field, e.to_string()))?;
    match j.scheme() {
        None => Err(ApiError::field(field, "must be a province, not central")),
        Some(s) if s != scheme => Err(ApiError::field_with(
            Reason::WrongScheme,
            field,
            format!("{j} is under the {s} scheme but this node keeps the {scheme} scheme"),
        )),
        Some(_) => Ok(j),
    }
}

/// A resource name `provinces/{scheme}-{code}/{collection}/{id}`: its jurisdiction.
pub fn resource(value: &str, field: &str, collection: &str, scheme: Scheme) -> ApiResult<Jurisdiction> {
    let (j, rest) = Jurisdiction::parse_prefix(value).map_err(|e| ApiError::field(field, e.to_string()))?;
    let ok = rest.strip_prefix(collection).and_then(|r| r.strip_prefix('/')).is_some_and(|id| {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !ok {
        return Err(ApiError::field(
            field,
            format!("'{value}' is not a name of the form provinces/{{scheme}}-{{code}}/{collection}/{{id}}"),
        ));
    }
    jurisdiction(&j.to_string(), field, scheme)
}

/// Free text of `field` ([`einfo_domain::FreeText`]: NFC, trimmed, at most `max` characters,
/// no control character but tab and line feed in [`Lines::Many`] text), or a violation of
/// `field` and "". May be empty.
pub fn text(value: &str, field: &str, max: usize, lines: Lines, v: &mut Violations) -> String {
    v.check(field, einfo_domain::FreeText::parse(value, max, lines)).map(|t| t.into_string()).unwrap_or_default()
}

/// Like [`text`], and required: empty (after trimming) is a violation.
pub fn required_text(value: &str, field: &str, max: usize, lines: Lines, v: &mut Violations) -> String {
    match einfo_domain::FreeText::parse(value, max, lines) {
        Ok(t) if t.is_empty() => {
            v.add(field, "is required");
            String::new()
        }
        r => v.check(field, r).map(|t| t.into_string()).unwrap_or_default(),
    }
}

/// A required display name of `field` ([`einfo_domain::DisplayName`]: whitespace collapsed,
/// NFC, 1 to `max` characters, no control character), or a violation and "".
pub fn name(value: &str, field: &str, max: usize, v: &mut Violations) -> String {
    if value.trim().is_empty() {
        v.add(field, "is required");
        return String::new();
    }
    v.check(field, einfo_domain::DisplayName::parse(value, max)).map(|n| n.into_string()).unwrap_or_default()
}

/// A required free-text reason: multi-line, at most [`MAX_TEXT`] characters.
pub fn reason(value: &str, field: &str, v: &mut Violations) -> String {
    required_text(value, field, MAX_TEXT, Lines::Many, v)
}

/// Checks that an enum field holds a value the contract defines.
pub fn known_enum<E: TryFrom<i32>>(value: i32, field: &str, v: &mut Violations) {
    if E::try_from(value).is_err() {
        v.add(field, format!("unknown enum value {value}"));
    }
}

/// A required, known enum value other than UNSPECIFIED (0).
pub fn required_enum<E: TryFrom<i32>>(value: i32, field: &str, what: &str, v: &mut Violations) {
    if value == 0 {
        v.add(field, format!("is required: {what}"));
    } else {
        known_enum::<E>(value, field, v);
    }
}

/// A request id: required, at most 128 printable ASCII characters.
pub fn check_request_id(id: &str) -> ApiResult<()> {
    if id.is_empty() {
        return Err(ApiError::field("request_id", "is required (a UUID is fine): it makes retries safe"));
    }
    if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::field("request_id", "must be at most 128 printable ASCII characters"));
    }
    Ok(())
}

/// The page size to use: 0 → the default, at most [`MAX_PAGE`]; negative is an error.
pub fn page_size(requested: i32, v: &mut Violations) -> i32 {
    match requested {
        n if n < 0 => {
            v.add("page_size", "must not be negative");
            0
        }
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// Identifies a query by its filters (the request with paging fields cleared), so that a page
/// token cannot be replayed against another query.
pub fn query_fingerprint(filters: &impl Message) -> String {
    hex::encode(&body_hash(filters)[..8])
}

/// The name after which a page starts, from a page token of the same query.
pub fn page_after(token: &str, fingerprint: &str, v: &mut Violations) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    let decoded =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok().and_then(|b| String::from_utf8(b).ok());
    match decoded.as_deref().and_then(|s| s.split_once('|')) {
        Some((fp, after)) if fp == fingerprint => Some(after.to_owned()),
        Some(_) => {
            v.add_with(Reason::PageTokenMismatch, "page_token", "was issued for another query");
            None
        }
        None => {
            v.add("page_token", "is not a page token of this service");
            None
        }
    }
}

/// Cuts a page fetched with one extra item and returns the next page token (empty at the end).
pub fn next_token<T>(items: &mut Vec<T>, size: i32, fingerprint: &str, name: impl Fn(&T) -> &String) -> String {
    if items.len() as i32 > size {
        items.truncate(size as usize);
        let last = items.last().map(name).cloned().unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{fingerprint}|{last}"))
    } else {
        String::new()
    }
}

/// The etag after a write (etags are revision numbers).
pub fn next_etag(etag: &str) -> String {
    (etag.parse::<u64>().unwrap_or(0) + 1).to_string()
}

/// A new resource id: a UUIDv7 (time-ordered, so names list in creation order).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The violations a check recorded, as (field, description).
    fn recorded(v: Violations) -> Vec<(String, String)> {
        v.finish()
            .err()
            .map(|e| e.violations.into_iter().map(|x| (x.field, x.description)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_control_character_is_a_violation_of_the_field_naming_the_character() {
        let mut v = Violations::new();
        assert_eq!(text("ghi\u{0}chú", "site.notes", MAX_NOTES, Lines::Many, &mut v), "");
        assert_eq!(
            recorded(v),
            vec![(
                "site.notes".to_string(),
                "contains U+0000 at character 4, a control character that cannot be shown (tab and line feed are allowed here)"
                    .to_string()
            )]
        );
    }

    #[test]
    fn multi_line_text_keeps_its_line_breaks_and_single_line_text_refuses_them() {
        let mut v = Violations::new();
        assert_eq!(text(" a\r\n\tb ", "note", 10, Lines::Many, &mut v), "a\n\tb");
        assert!(v.is_empty());
        let mut v = Violations::new();
        text("a\tb", "site.owner.address", 10, Lines::One, &mut v);
        assert_eq!(recorded(v)[0].0, "site.owner.address");
    }

    #[test]
    fn a_required_text_or_name_may_not_be_blank_and_a_reason_is_required_multi_line_text() {
        let mut v = Violations::new();
        required_text(" \n ", "reason", MAX_TEXT, Lines::Many, &mut v);
        name("  ", "decision.number", MAX_NUMBER, &mut v);
        assert_eq!(reason("Vì\nhai lý do", "reason", &mut v), "Vì\nhai lý do");
        reason(&"a".repeat(MAX_TEXT + 1), "reason", &mut v);
        let got: Vec<String> = recorded(v).into_iter().map(|(f, d)| format!("{f}: {d}")).collect();
        assert_eq!(
            got,
            vec![
                "reason: is required".to_string(),
                "decision.number: is required".to_string(),
                format!("reason: is {} characters long; at most {MAX_TEXT} are allowed", MAX_TEXT + 1),
            ]
        );
    }

    #[test]
    fn a_name_query_with_a_control_character_is_refused() {
        let mut v = Violations::new();
        assert!(name_query("ha\u{0}noi", "name_query", &mut v).is_empty());
        assert_eq!(recorded(v).len(), 1);
        let mut v = Violations::new();
        assert_eq!(name_query("Hà  Nội", "name_query", &mut v), vec!["ha", "noi"]);
        assert!(v.is_empty());
    }

    proptest! {
        /// Whatever a client sends, every text rule answers a value or exactly one violation of
        /// the field, never a panic; a value comes with no violation and is what it claims.
        #[test]
        fn every_text_rule_answers_a_value_or_one_violation(
            input in prop_oneof![any::<String>(), "[a-zà-ỹ \\t\\r\\n\\x00\\x1b\\x7f\\u{85}\\u{202E}]{0,30}"],
            max in 0usize..40,
        ) {
            for lines in [Lines::One, Lines::Many] {
                let mut v = Violations::new();
                let out = text(&input, "f", max, lines, &mut v);
                let errors = recorded(v);
                prop_assert!(errors.len() <= 1);
                if errors.is_empty() {
                    prop_assert!(out.chars().count() <= max);
                    prop_assert!(out.chars().all(|c| !c.is_control() || (lines == Lines::Many && matches!(c, '\t' | '\n'))));
                } else {
                    prop_assert_eq!(&errors[0].0, "f");
                    prop_assert_eq!(out, "");
                }
                let mut v = Violations::new();
                let out = required_text(&input, "f", max, lines, &mut v);
                prop_assert!(recorded(v).len() == usize::from(out.is_empty()));
            }
            let mut v = Violations::new();
            let out = name(&input, "f", max, &mut v);
            prop_assert!(recorded(v).len() == usize::from(out.is_empty()));
            let mut v = Violations::new();
            let words = name_query(&input, "f", &mut v);
            let errors = recorded(v);
            prop_assert!(errors.len() <= 1 && (errors.is_empty() || words.is_empty()));
        }
    }
}
