//! Request-field rules every service shares: timestamps, jurisdictions and resource names,
//! reasons, enum values, request ids, page sizes and page tokens, etags and new ids.

use base64::Engine;
use chrono::{DateTime, FixedOffset, Utc};
use einfo_domain::{Jurisdiction, Scheme};
use prost::Message;

use crate::changelog::body_hash;
use crate::error::{ApiError, ApiResult, Reason, Violations};

/// Longest display name, in characters.
pub const MAX_NAME: usize = 300;
/// Longest free text (notes, reasons), in characters.
pub const MAX_TEXT: usize = 2000;
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
    if value.chars().count() > MAX_NAME {
        v.add(field, format!("is longer than {MAX_NAME} characters"));
        return Vec::new();
    }
    let words: Vec<String> = einfo_domain::text::fold(value).split_whitespace().map(str::to_owned).collect();
    if words.len() > MAX_QUERY_WORDS {
        v.add(field, format!("has {} words; a query has at most {MAX_QUERY_WORDS}", words.len()));
        return Vec::new();
    }
    words
}

/// Civil dates are dates in Asia/Ho_Chi_Minh (UTC+7, no daylight saving since 1975).
pub fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("+07:00 is a valid offset")
}

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

/// A required free-text reason, NFC-normalised.
pub fn reason(value: &str, field: &str, v: &mut Violations) -> String {
    let t = value.trim();
    if t.is_empty() {
        v.add(field, "is required");
    } else if t.chars().count() > MAX_TEXT {
        v.add(field, format!("is longer than {MAX_TEXT} characters"));
    }
    unicode_normalization::UnicodeNormalization::nfc(t).collect()
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
