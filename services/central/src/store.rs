//! SQL of the centre's tables, for both databases.

use chrono::{DateTime, Utc};
use einfo_common::db::{from_micros, micros, stmt};
use einfo_common::error::{ApiError, ApiResult};
use einfo_proto::central::v1 as pb;
use prost::Message;
use sea_orm::ConnectionTrait;

fn decode<M: Message + Default>(bytes: &[u8]) -> ApiResult<M> {
    M::decode(bytes).map_err(ApiError::internal)
}

/// Stores a new campaign.
pub async fn put_campaign<C: ConnectionTrait>(c: &C, campaign: &pb::Campaign) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO central_campaigns (name, body) VALUES ($1, $2)",
        [campaign.name.clone().into(), campaign.encode_to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// A campaign by name.
pub async fn campaign<C: ConnectionTrait>(c: &C, name: &str) -> ApiResult<Option<pb::Campaign>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT body FROM central_campaigns WHERE name = $1",
            [name.into()],
        ))
        .await?;
    row.map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).transpose()
}

/// What the centre keeps about one (campaign, target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The jurisdiction.
    pub jurisdiction: String,
    /// Deadline in force.
    pub deadline: DateTime<Utc>,
    /// Lock time in force.
    pub lock_time: DateTime<Utc>,
    /// When the first submission was received.
    pub first_receive: Option<DateTime<Utc>>,
}

/// Adds a target of a campaign.
pub async fn put_target<C: ConnectionTrait>(c: &C, campaign: &str, t: &Target) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO central_targets (campaign, jurisdiction, deadline, lock_time, first_receive) VALUES ($1, $2, $3, $4, NULL)",
        [campaign.into(), t.jurisdiction.clone().into(), micros(t.deadline).into(), micros(t.lock_time).into()],
    ))
    .await?;
    Ok(())
}

fn target_from(r: &sea_orm::QueryResult) -> ApiResult<Target> {
    Ok(Target {
        jurisdiction: r.try_get_by_index(0)?,
        deadline: from_micros(r.try_get_by_index(1)?),
        lock_time: from_micros(r.try_get_by_index(2)?),
        first_receive: r.try_get_by_index::<Option<i64>>(3)?.map(from_micros),
    })
}

/// One target of a campaign.
pub async fn target<C: ConnectionTrait>(c: &C, campaign: &str, jurisdiction: &str) -> ApiResult<Option<Target>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT jurisdiction, deadline, lock_time, first_receive FROM central_targets WHERE campaign = $1 AND jurisdiction = $2",
            [campaign.into(), jurisdiction.into()],
        ))
        .await?;
    row.as_ref().map(target_from).transpose()
}

/// Every target of a campaign, by jurisdiction.
pub async fn targets<C: ConnectionTrait>(c: &C, campaign: &str) -> ApiResult<Vec<Target>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            "SELECT jurisdiction, deadline, lock_time, first_receive FROM central_targets WHERE campaign = $1 ORDER BY jurisdiction",
            [campaign.into()],
        ))
        .await?;
    rows.iter().map(target_from).collect()
}

/// Moves the deadline and lock time in force of a target.
pub async fn extend_target<C: ConnectionTrait>(c: &C, campaign: &str, t: &Target) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "UPDATE central_targets SET deadline = $1, lock_time = $2 WHERE campaign = $3 AND jurisdiction = $4",
        [micros(t.deadline).into(), micros(t.lock_time).into(), campaign.into(), t.jurisdiction.clone().into()],
    ))
    .await?;
    Ok(())
}

/// Records the first receipt of a target (no-op once set).
pub async fn set_first_receive<C: ConnectionTrait>(
    c: &C,
    campaign: &str,
    jurisdiction: &str,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "UPDATE central_targets SET first_receive = $1 WHERE campaign = $2 AND jurisdiction = $3 AND first_receive IS NULL",
        [micros(at).into(), campaign.into(), jurisdiction.into()],
    ))
    .await?;
    Ok(())
}

/// Appends an event to a jurisdiction's feed; returns its sequence. Runs under the centre's
/// log lock, so the next sequence is the head plus one.
pub async fn append_feed<C: ConnectionTrait>(c: &C, jurisdiction: &str, mut event: pb::FeedEvent) -> ApiResult<u64> {
    let b = c.get_database_backend();
    let row = c
        .query_one_raw(stmt(
            b,
            "SELECT COALESCE(MAX(seq), 0) FROM central_feed WHERE jurisdiction = $1",
            [jurisdiction.into()],
        ))
        .await?;
    let last = row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0);
    event.sequence = last as u64 + 1;
    c.execute_raw(stmt(
        b,
        "INSERT INTO central_feed (jurisdiction, seq, body) VALUES ($1, $2, $3)",
        [jurisdiction.into(), (event.sequence as i64).into(), event.encode_to_vec().into()],
    ))
    .await?;
    Ok(event.sequence)
}

/// Up to `limit` events of a feed after `after`.
pub async fn read_feed<C: ConnectionTrait>(
    c: &C,
    jurisdiction: &str,
    after: u64,
    limit: u64,
) -> ApiResult<Vec<pb::FeedEvent>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            "SELECT body FROM central_feed WHERE jurisdiction = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            [jurisdiction.into(), (after as i64).into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
}

/// A receipt already given for a version: (content hash, receipt).
pub async fn receipt<C: ConnectionTrait>(
    c: &C,
    campaign: &str,
    jurisdiction: &str,
    version: u32,
) -> ApiResult<Option<(Vec<u8>, pb::Receipt)>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT content_hash, receipt FROM central_receipts WHERE campaign = $1 AND jurisdiction = $2 AND version = $3",
            [campaign.into(), jurisdiction.into(), i64::from(version).into()],
        ))
        .await?;
    row.map(|r| Ok((r.try_get_by_index(0)?, decode(&r.try_get_by_index::<Vec<u8>>(1)?)?))).transpose()
}

/// The latest version received of a (campaign, jurisdiction), 0 when none.
pub async fn latest_version<C: ConnectionTrait>(c: &C, campaign: &str, jurisdiction: &str) -> ApiResult<u32> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT COALESCE(MAX(version), 0) FROM central_receipts WHERE campaign = $1 AND jurisdiction = $2",
            [campaign.into(), jurisdiction.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) as u32)
}

/// Stores a receipt with the content it acknowledges.
pub async fn put_receipt<C: ConnectionTrait>(
    c: &C,
    r: &pb::Receipt,
    content: &[u8],
    at: DateTime<Utc>,
) -> ApiResult<()> {
    let b = r.body.clone().unwrap_or_default();
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO central_receipts (campaign, jurisdiction, version, content_hash, receive_time, receipt, content)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            b.campaign.into(),
            b.jurisdiction.into(),
            i64::from(b.version).into(),
            b.content_hash.into(),
            micros(at).into(),
            r.encode_to_vec().into(),
            content.to_vec().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The latest version the centre received of each jurisdiction of a campaign: (jurisdiction,
/// version, its content when kept).
pub async fn latest_contents<C: ConnectionTrait>(
    c: &C,
    campaign: &str,
) -> ApiResult<Vec<(String, u32, Option<Vec<u8>>)>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            "SELECT r.jurisdiction, r.version, r.content FROM central_receipts r
             JOIN (SELECT jurisdiction, MAX(version) AS version FROM central_receipts WHERE campaign = $1
                   GROUP BY jurisdiction) last
               ON r.jurisdiction = last.jurisdiction AND r.version = last.version
             WHERE r.campaign = $1 ORDER BY r.jurisdiction",
            [campaign.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index::<i64>(1)? as u32, r.try_get_by_index(2)?)))
        .collect()
}

fn reference_from(r: &sea_orm::QueryResult) -> ApiResult<pb::ReferenceData> {
    Ok(pb::ReferenceData {
        sequence: r.try_get_by_index::<i64>(0)? as u64,
        kind: r.try_get_by_index(1)?,
        version: r.try_get_by_index(2)?,
        content: r.try_get_by_index(3)?,
        publish_time: Some(einfo_common::fields::timestamp(from_micros(r.try_get_by_index(4)?))),
    })
}

const REFERENCE_COLUMNS: &str = "seq, kind, version, content, publish_time";

/// Stores an item of the reference feed at its `sequence` unless that sequence is taken
/// (seeding, which two processes opening one database may race on).
pub async fn seed_reference<C: ConnectionTrait>(c: &C, item: &pb::ReferenceData, at: DateTime<Utc>) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        &format!("INSERT INTO central_reference ({REFERENCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING"),
        [
            (item.sequence as i64).into(),
            item.kind.clone().into(),
            item.version.clone().into(),
            item.content.clone().into(),
            micros(at).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Whether the reference feed holds anything.
pub async fn reference_empty<C: ConnectionTrait>(c: &C) -> ApiResult<bool> {
    let row = c.query_one_raw(stmt(c.get_database_backend(), "SELECT COUNT(*) FROM central_reference", [])).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) == 0)
}

/// Appends a version to the reference feed; returns its sequence. Runs under the centre's log
/// lock, so the next sequence is the head plus one.
pub async fn append_reference<C: ConnectionTrait>(
    c: &C,
    item: &pb::ReferenceData,
    at: DateTime<Utc>,
) -> ApiResult<u64> {
    let b = c.get_database_backend();
    let row = c.query_one_raw(stmt(b, "SELECT COALESCE(MAX(seq), 0) FROM central_reference", [])).await?;
    let seq = row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) as u64 + 1;
    seed_reference(c, &pb::ReferenceData { sequence: seq, ..item.clone() }, at).await?;
    Ok(seq)
}

/// The version of `kind` in force (its latest), if any.
pub async fn latest_reference<C: ConnectionTrait>(c: &C, kind: &str) -> ApiResult<Option<pb::ReferenceData>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            &format!("SELECT {REFERENCE_COLUMNS} FROM central_reference WHERE kind = $1 ORDER BY seq DESC LIMIT 1"),
            [kind.into()],
        ))
        .await?;
    row.as_ref().map(reference_from).transpose()
}

/// Up to `limit` items of the reference feed after `after`.
pub async fn read_reference<C: ConnectionTrait>(c: &C, after: u64, limit: u64) -> ApiResult<Vec<pb::ReferenceData>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            &format!("SELECT {REFERENCE_COLUMNS} FROM central_reference WHERE seq > $1 ORDER BY seq LIMIT $2"),
            [(after as i64).into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter().map(reference_from).collect()
}
