//! The entries the centre received, kept verbatim beside the projections: what it can prove
//! later it received, rebuild its projections from, and give a province back.
//!
//! An entry is kept as its protobuf encoding. `ChangeEntry` has no maps, so its encoding is
//! canonical: the bytes kept are the bytes the node hashed, and [`ChainVerifier`] checks them
//! again whenever they are read.

use einfo_common::changelog::{ChainBreak, ChainVerifier, ChangeEntry, GENESIS_HASH};
use einfo_common::db::{micros, stmt};
use einfo_common::error::{ApiError, ApiResult};
use prost::Message;
use sea_orm::{ConnectionTrait, Value};

use super::{b, chunks, insert_sql};

const COLUMNS: [&str; 5] = ["jurisdiction", "service", "seq", "hash", "body"];

/// Keeps `entries` of the log (`jurisdiction`, `service`); an entry already kept at its sequence
/// is left as it is (a replay after a crash, the backfill of an older store).
pub async fn keep<C: ConnectionTrait>(
    c: &C,
    jurisdiction: &str,
    service: &str,
    entries: &[&ChangeEntry],
) -> ApiResult<()> {
    for range in chunks(entries.len()) {
        let rows = &entries[range];
        let sql = insert_sql("gw_entries", &COLUMNS, rows.len(), "ON CONFLICT (jurisdiction, service, seq) DO NOTHING");
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * COLUMNS.len());
        for e in rows {
            values.extend([
                jurisdiction.into(),
                service.into(),
                (e.sequence as i64).into(),
                e.hash.clone().into(),
                e.encode_to_vec().into(),
            ]);
        }
        c.execute_raw(stmt(b(c), &sql, values)).await?;
    }
    Ok(())
}

/// How many entries of a log are kept at or before `upto`.
pub async fn kept_count<C: ConnectionTrait>(c: &C, jurisdiction: &str, service: &str, upto: u64) -> ApiResult<u64> {
    let n = super::count(
        c,
        "SELECT COUNT(*) FROM gw_entries WHERE jurisdiction = $1 AND service = $2 AND seq <= $3",
        vec![jurisdiction.into(), service.into(), (upto as i64).into()],
    )
    .await?;
    Ok(n as u64)
}

/// Up to `limit` kept entries of a log after `after`, in order, decoded (not verified).
pub async fn kept_after<C: ConnectionTrait>(
    c: &C,
    jurisdiction: &str,
    service: &str,
    after: u64,
    limit: u64,
) -> ApiResult<Vec<KeptEntry>> {
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT seq, hash, body FROM gw_entries WHERE jurisdiction = $1 AND service = $2 AND seq > $3
             ORDER BY seq LIMIT $4",
            [jurisdiction.into(), service.into(), (after as i64).into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let seq = r.try_get_by_index::<i64>(0)? as u64;
            let hash: Vec<u8> = r.try_get_by_index(1)?;
            let body: Vec<u8> = r.try_get_by_index(2)?;
            Ok(KeptEntry { seq, hash, entry: ChangeEntry::decode(body.as_slice()).ok() })
        })
        .collect()
}

/// The hash the centre kept for entry `seq` of a log; `None` when it did not keep that entry.
pub async fn kept_hash<C: ConnectionTrait>(
    c: &C,
    jurisdiction: &str,
    service: &str,
    seq: u64,
) -> ApiResult<Option<Vec<u8>>> {
    let row = c
        .query_one_raw(stmt(
            b(c),
            "SELECT hash FROM gw_entries WHERE jurisdiction = $1 AND service = $2 AND seq = $3",
            [jurisdiction.into(), service.into(), (seq as i64).into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index::<Vec<u8>>(0)).transpose()?)
}

/// One kept row: its key columns and the entry its body decodes to (`None` when it does not).
#[derive(Debug)]
pub struct KeptEntry {
    /// The `seq` column.
    pub seq: u64,
    /// The `hash` column.
    pub hash: Vec<u8>,
    /// The decoded body.
    pub entry: Option<ChangeEntry>,
}

/// Every log the store has a cursor or kept entries of, as (jurisdiction, service), in order.
pub async fn kept_logs<C: ConnectionTrait>(c: &C) -> ApiResult<Vec<(String, String)>> {
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT jurisdiction, service FROM gw_cursors
             UNION SELECT DISTINCT jurisdiction, service FROM gw_entries
             ORDER BY 1, 2",
            [],
        ))
        .await?;
    rows.iter().map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?))).collect()
}

/// What the centre holds of one log.
#[derive(Debug)]
pub struct KeptLog {
    /// The last entry kept and verified (0 when none).
    pub kept: u64,
    /// Entries before the first kept one: applied by a store of 0.1, before the centre kept
    /// entries, and not yet fetched again from the node (its next audit does).
    pub missing: u64,
    /// The cursor: the last entry applied to the projections (0 when none).
    pub cursor: u64,
    /// The first bad entry, if any.
    pub broken: Option<ChainBreak>,
    /// The kept chain verifies but does not end at the cursor (sequence and hash): what is
    /// wrong, if so.
    pub off_cursor: Option<String>,
}

/// Reads a log's kept entries in order and verifies them: each body decodes to the entry of this
/// log and sequence whose hash is its `hash` column, and the chain is unbroken and dense; and
/// whether it ends at the cursor (same sequence and hash). Kept entries begin at sequence 1, except in a store
/// upgraded from 0.1, where those applied before are [`KeptLog::missing`] until the gateway's
/// next audit fetches them: the chain is then verified from the first kept entry on.
pub async fn verify_kept<C: ConnectionTrait>(c: &C, jurisdiction: &str, service: &str) -> ApiResult<KeptLog> {
    let name = format!("{jurisdiction}/{service}");
    let broken = |sequence: u64, problem: String| ChainBreak { log: name.clone(), sequence, problem };
    let (cursor, cursor_hash) = super::cursor_of(c, jurisdiction, service).await?.unwrap_or((0, GENESIS_HASH.to_vec()));
    let mut log = KeptLog { kept: 0, missing: 0, cursor, broken: None, off_cursor: None };
    let mut v: Option<ChainVerifier> = None;
    let mut after = 0;
    loop {
        let page = kept_after(c, jurisdiction, service, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for k in page {
            let Some(e) = k.entry else {
                log.broken = Some(broken(k.seq, "the kept bytes are not a ChangeEntry".into()));
                return Ok(log);
            };
            let v = v.get_or_insert_with(|| {
                // The first kept entry: from genesis, or after the entries not kept yet.
                log.missing = k.seq.saturating_sub(1);
                let start = if k.seq > 1 { e.prev_hash.clone() } else { GENESIS_HASH.to_vec() };
                ChainVerifier::new(name.clone(), k.seq.saturating_sub(1), &start)
            });
            let problem = if e.sequence != k.seq || e.jurisdiction != jurisdiction || e.service != service {
                Some(format!("the kept bytes are entry {}/{}/{}", e.jurisdiction, e.service, e.sequence))
            } else if e.hash != k.hash {
                Some("the kept bytes carry another hash than the one kept beside them".into())
            } else {
                v.check(&e).err().map(|b| b.problem)
            };
            if let Some(problem) = problem {
                log.broken = Some(broken(k.seq, problem));
                return Ok(log);
            }
            log.kept = k.seq;
        }
    }
    let ends_at_cursor = match &v {
        Some(v) => v.last_sequence() == cursor && v.last_hash() == cursor_hash.as_slice(),
        None => true,
    };
    if v.is_none() {
        log.missing = cursor;
    }
    if !ends_at_cursor {
        log.off_cursor = Some(format!(
            "the kept entries end at {} but the national store's cursor is at {cursor} (another entry, or another hash)",
            log.kept
        ));
    }
    Ok(log)
}

/// Moves every kept entry of `jurisdiction` aside (a resync after an integrity alarm): the
/// history received before is evidence, and is not lost; the log is then kept again from 1.
pub async fn set_aside<C: ConnectionTrait>(
    c: &C,
    jurisdiction: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO gw_entries_set_aside (jurisdiction, service, seq, hash, body, set_aside_time)
         SELECT jurisdiction, service, seq, hash, body, $2 FROM gw_entries WHERE jurisdiction = $1",
        [jurisdiction.into(), micros(now).into()],
    ))
    .await?;
    c.execute_raw(stmt(b(c), "DELETE FROM gw_entries WHERE jurisdiction = $1", [jurisdiction.into()])).await?;
    Ok(())
}

/// The store's bytes of kept entries: (entries, bytes of their bodies and hashes).
pub async fn kept_size<C: ConnectionTrait>(c: &C) -> ApiResult<(u64, u64)> {
    let row = c
        .query_one_raw(stmt(
            b(c),
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(body) + LENGTH(hash)), 0) AS BIGINT) FROM gw_entries",
            [],
        ))
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("COUNT gave no row")))?;
    Ok((row.try_get_by_index::<i64>(0)? as u64, row.try_get_by_index::<i64>(1)? as u64))
}
