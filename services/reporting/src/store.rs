//! SQL of the reporting tables, for both databases.

use chrono::{DateTime, Utc};
use einfo_common::db::{micros, stmt};
use einfo_common::error::{ApiError, ApiResult};
use einfo_domain::Jurisdiction;
use prost::Message;
use sea_orm::ConnectionTrait;

fn decode<M: Message + Default>(bytes: &[u8]) -> ApiResult<M> {
    M::decode(bytes).map_err(ApiError::internal)
}

/// A campaign as held for a jurisdiction, with the exception granted to it.
#[derive(Clone, Debug)]
pub struct HeldCampaign {
    /// As received.
    pub campaign: einfo_proto::central::v1::Campaign,
    /// Extended deadline, microseconds; 0: none.
    pub ext_deadline: i64,
    /// Extended lock time, microseconds; 0: none.
    pub ext_lock: i64,
}

/// The campaign `name` held for `j`.
pub async fn campaign<C: ConnectionTrait>(c: &C, j: &Jurisdiction, name: &str) -> ApiResult<Option<HeldCampaign>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT body, ext_deadline, ext_lock FROM rep_campaigns WHERE jurisdiction = $1 AND name = $2",
            [j.to_string().into(), name.into()],
        ))
        .await?;
    row.map(|r| {
        Ok(HeldCampaign {
            campaign: decode(&r.try_get_by_index::<Vec<u8>>(0)?)?,
            ext_deadline: r.try_get_by_index(1)?,
            ext_lock: r.try_get_by_index(2)?,
        })
    })
    .transpose()
}

/// Every campaign held for `j`, by name.
pub async fn campaigns<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
) -> ApiResult<Vec<einfo_proto::central::v1::Campaign>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            "SELECT body FROM rep_campaigns WHERE jurisdiction = $1 ORDER BY name",
            [j.to_string().into()],
        ))
        .await?;
    rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
}

/// Stores a campaign received for `j`, keeping any exception granted.
pub async fn put_campaign<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    campaign: &einfo_proto::central::v1::Campaign,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO rep_campaigns (jurisdiction, name, body, ext_deadline, ext_lock) VALUES ($1, $2, $3, 0, 0)
         ON CONFLICT (jurisdiction, name) DO UPDATE SET body = excluded.body",
        [j.to_string().into(), campaign.name.clone().into(), campaign.encode_to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// Records an exception: a new deadline and/or lock time (0 keeps the current one).
pub async fn extend<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    campaign: &str,
    deadline: i64,
    lock: i64,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "UPDATE rep_campaigns SET
            ext_deadline = CASE WHEN $3 > 0 THEN $3 ELSE ext_deadline END,
            ext_lock = CASE WHEN $4 > 0 THEN $4 ELSE ext_lock END
         WHERE jurisdiction = $1 AND name = $2",
        [j.to_string().into(), campaign.into(), deadline.into(), lock.into()],
    ))
    .await?;
    Ok(())
}

/// The last feed sequence applied for `j` (0: none).
pub async fn feed_cursor<C: ConnectionTrait>(c: &C, j: &Jurisdiction) -> ApiResult<u64> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT cursor_seq FROM rep_feed WHERE jurisdiction = $1",
            [j.to_string().into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) as u64)
}

/// Moves the feed cursor of `j`.
pub async fn set_feed_cursor<C: ConnectionTrait>(c: &C, j: &Jurisdiction, seq: u64) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO rep_feed (jurisdiction, cursor_seq) VALUES ($1, $2)
         ON CONFLICT (jurisdiction) DO UPDATE SET cursor_seq = excluded.cursor_seq",
        [j.to_string().into(), (seq as i64).into()],
    ))
    .await?;
    Ok(())
}

/// A report by name.
pub async fn report<C: ConnectionTrait>(c: &C, name: &str) -> ApiResult<Option<einfo_proto::reporting::v1::Report>> {
    let row = c
        .query_one_raw(stmt(c.get_database_backend(), "SELECT body FROM rep_reports WHERE name = $1", [name.into()]))
        .await?;
    row.map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).transpose()
}

/// Inserts or replaces a report.
pub async fn put_report<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    report: &einfo_proto::reporting::v1::Report,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO rep_reports (name, jurisdiction, campaign, body) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        [
            report.name.clone().into(),
            j.to_string().into(),
            report.campaign.clone().into(),
            report.encode_to_vec().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// A submitted version.
pub async fn version<C: ConnectionTrait>(
    c: &C,
    report: &str,
    version: u32,
) -> ApiResult<Option<einfo_proto::reporting::v1::ReportVersion>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT body FROM rep_versions WHERE report = $1 AND version = $2",
            [report.into(), (version as i32).into()],
        ))
        .await?;
    row.map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).transpose()
}

/// Inserts or replaces a submitted version.
pub async fn put_version<C: ConnectionTrait>(
    c: &C,
    report: &str,
    v: &einfo_proto::reporting::v1::ReportVersion,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO rep_versions (report, version, body) VALUES ($1, $2, $3)
         ON CONFLICT (report, version) DO UPDATE SET body = excluded.body",
        [report.into(), (v.version as i32).into(), v.encode_to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// A submission waiting for the centre.
#[derive(Clone, Debug)]
pub struct OutboxItem {
    /// Report name.
    pub report: String,
    /// Version.
    pub version: u32,
    /// Jurisdiction.
    pub jurisdiction: String,
    /// The encoded `einfo.central.v1.Submission`, the same bytes on every attempt.
    pub submission: Vec<u8>,
    /// Attempts so far.
    pub attempts: i32,
}

/// Pending (1) and delivered (2).
const PENDING: i32 = 1;
const DELIVERED: i32 = 2;

/// Queues a submission.
pub async fn enqueue<C: ConnectionTrait>(c: &C, item: &OutboxItem, now: DateTime<Utc>) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO rep_outbox (report, version, jurisdiction, submission, state, attempts, next_attempt, last_error)
         VALUES ($1, $2, $3, $4, $5, 0, $6, '')",
        [
            item.report.clone().into(),
            (item.version as i32).into(),
            item.jurisdiction.clone().into(),
            item.submission.clone().into(),
            PENDING.into(),
            micros(now).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Submissions due for an attempt.
pub async fn due_outbox<C: ConnectionTrait>(c: &C, now: DateTime<Utc>, limit: u64) -> ApiResult<Vec<OutboxItem>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            "SELECT report, version, jurisdiction, submission, attempts FROM rep_outbox
             WHERE state = $1 AND next_attempt <= $2 ORDER BY next_attempt, report, version LIMIT $3",
            [PENDING.into(), micros(now).into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxItem {
                report: r.try_get_by_index(0)?,
                version: r.try_get_by_index::<i32>(1)? as u32,
                jurisdiction: r.try_get_by_index(2)?,
                submission: r.try_get_by_index(3)?,
                attempts: r.try_get_by_index(4)?,
            })
        })
        .collect()
}

/// Puts an item off until `next`, recording why.
pub async fn retry_later<C: ConnectionTrait>(
    c: &C,
    report: &str,
    version: u32,
    attempts: i32,
    next: DateTime<Utc>,
    error: &str,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "UPDATE rep_outbox SET attempts = $3, next_attempt = $4, last_error = $5 WHERE report = $1 AND version = $2",
        [report.into(), (version as i32).into(), attempts.into(), micros(next).into(), error.into()],
    ))
    .await?;
    Ok(())
}

/// Marks an item delivered.
pub async fn delivered<C: ConnectionTrait>(c: &C, report: &str, version: u32) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "UPDATE rep_outbox SET state = $3, last_error = '' WHERE report = $1 AND version = $2",
        [report.into(), (version as i32).into(), DELIVERED.into()],
    ))
    .await?;
    Ok(())
}

/// The last delivery error of a version still pending ("" when none or delivered).
pub async fn delivery_error<C: ConnectionTrait>(c: &C, report: &str, version: u32) -> ApiResult<Option<String>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT last_error FROM rep_outbox WHERE report = $1 AND version = $2 AND state = $3",
            [report.into(), (version as i32).into(), PENDING.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index(0)).transpose()?)
}

/// The centre's pinned public key.
pub async fn pinned_key<C: ConnectionTrait>(c: &C) -> ApiResult<Option<Vec<u8>>> {
    let row = c
        .query_one_raw(stmt(c.get_database_backend(), "SELECT public_key FROM rep_centre_key WHERE id = 1", []))
        .await?;
    Ok(row.map(|r| r.try_get_by_index(0)).transpose()?)
}

/// Pins the centre's public key (the first one stays).
pub async fn pin_key<C: ConnectionTrait>(c: &C, key: &[u8]) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO rep_centre_key (id, public_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        [key.to_vec().into()],
    ))
    .await?;
    Ok(())
}
