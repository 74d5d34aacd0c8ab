//! What the centre holds of each log's Merkle tree: the right edge of the tree of what it applied
//! (beside the cursor), the nodes' checkpoints it accepted, and the evidence it kept when a node's
//! checkpoint disagreed with what it holds.

use einfo_common::changelog::GENESIS_HASH;
use einfo_common::changelog::merkle::Frontier;
use einfo_common::db::{micros, stmt};
use einfo_common::error::{ApiError, ApiResult};
use sea_orm::ConnectionTrait;

use super::b;

/// The cursor of a log (sequence, hash; (0, genesis) when none) and the tree's right edge of the
/// entries applied, when it was kept for exactly that sequence (a store of an earlier release kept
/// none): one read of the cursor's row.
pub async fn cursor_and_frontier<C: ConnectionTrait>(
    c: &C,
    j: &str,
    service: &str,
) -> ApiResult<(u64, Vec<u8>, Option<Frontier>)> {
    let row = c
        .query_one_raw(stmt(
            b(c),
            "SELECT seq, hash, frontier FROM gw_cursors WHERE jurisdiction = $1 AND service = $2",
            [j.into(), service.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok((0, GENESIS_HASH.to_vec(), Some(Frontier::default()))) };
    let seq = row.try_get_by_index::<i64>(0)? as u64;
    let hash = row.try_get_by_index(1)?;
    let frontier = match row.try_get_by_index::<Option<Vec<u8>>>(2)? {
        Some(bytes) => Some(Frontier::from_bytes(&bytes).map_err(ApiError::internal)?).filter(|f| f.size() == seq),
        None => None,
    };
    Ok((seq, hash, frontier))
}

/// Stores the right edge beside the cursor (which [`super::apply`] moved in the same
/// transaction).
pub async fn set_frontier<C: ConnectionTrait>(c: &C, j: &str, service: &str, f: &Frontier) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "UPDATE gw_cursors SET frontier = $1 WHERE jurisdiction = $2 AND service = $3",
        [f.to_bytes().into(), j.into(), service.into()],
    ))
    .await?;
    Ok(())
}

/// The right edge of the tree of the first `upto` kept entries of a log, read from the hashes
/// kept; `None` when some of them are not kept.
pub async fn frontier_of_kept<C: ConnectionTrait>(
    c: &C,
    j: &str,
    service: &str,
    upto: u64,
) -> ApiResult<Option<Frontier>> {
    let mut f = Frontier::default();
    while f.size() < upto {
        let rows = c
            .query_all_raw(stmt(
                b(c),
                "SELECT seq, hash FROM gw_entries WHERE jurisdiction = $1 AND service = $2 AND seq > $3 AND seq <= $4
                 ORDER BY seq LIMIT 10000",
                [j.into(), service.into(), (f.size() as i64).into(), (upto as i64).into()],
            ))
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        for r in rows {
            if r.try_get_by_index::<i64>(0)? as u64 != f.size() + 1 {
                return Ok(None);
            }
            f.push(&r.try_get_by_index::<Vec<u8>>(1)?);
        }
    }
    Ok(Some(f))
}

/// A checkpoint accepted.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The tree's size.
    pub size: u64,
    /// The note as the centre keeps it (with its cosignature when it gave one).
    pub note: String,
    /// The signer's certificate (DER); empty for an unsigned checkpoint.
    pub certificate: Vec<u8>,
}

/// Keeps a checkpoint the centre accepted (the first of each size).
pub async fn accept<C: ConnectionTrait>(
    c: &C,
    j: &str,
    service: &str,
    a: &Accepted,
    root: &[u8],
    at: chrono::DateTime<chrono::Utc>,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO gw_checkpoints (jurisdiction, service, size, root, note, certificate, accepted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        [
            j.into(),
            service.into(),
            (a.size as i64).into(),
            root.to_vec().into(),
            a.note.clone().into(),
            a.certificate.clone().into(),
            micros(at).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The accepted checkpoint of the largest size of a log.
pub async fn latest<C: ConnectionTrait>(c: &C, j: &str, service: &str) -> ApiResult<Option<Accepted>> {
    let row = c
        .query_one_raw(stmt(
            b(c),
            "SELECT size, note, certificate FROM gw_checkpoints WHERE jurisdiction = $1 AND service = $2
             ORDER BY size DESC LIMIT 1",
            [j.into(), service.into()],
        ))
        .await?;
    row.map(|r| {
        Ok(Accepted {
            size: r.try_get_by_index::<i64>(0)? as u64,
            note: r.try_get_by_index(1)?,
            certificate: r.try_get_by_index(2)?,
        })
    })
    .transpose()
}

/// Evidence of a node's checkpoint that disagrees with what the centre holds.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// The log, as `jurisdiction/service`.
    pub log: String,
    /// When the alarm was raised.
    pub raised_at: chrono::DateTime<chrono::Utc>,
    /// What disagreed.
    pub detail: String,
    /// The last checkpoint the centre had accepted (none: empty).
    pub held: Accepted,
    /// The checkpoint that disagreed.
    pub new: Accepted,
}

/// Keeps evidence (the first for a log at an instant).
pub async fn keep_evidence<C: ConnectionTrait>(c: &C, j: &str, service: &str, e: &Evidence) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO gw_evidence (jurisdiction, service, raised_at, detail, held_note, held_certificate, new_note, new_certificate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        [
            j.into(),
            service.into(),
            micros(e.raised_at).into(),
            e.detail.clone().into(),
            e.held.note.clone().into(),
            e.held.certificate.clone().into(),
            e.new.note.clone().into(),
            e.new.certificate.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The evidence kept for a jurisdiction, oldest first.
pub async fn evidence<C: ConnectionTrait>(c: &C, j: &str) -> ApiResult<Vec<Evidence>> {
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT service, raised_at, detail, held_note, held_certificate, new_note, new_certificate
             FROM gw_evidence WHERE jurisdiction = $1 ORDER BY raised_at",
            [j.into()],
        ))
        .await?;
    let size = |note: &str| note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
    rows.iter()
        .map(|r| {
            let (held_note, new_note): (String, String) = (r.try_get_by_index(3)?, r.try_get_by_index(5)?);
            Ok(Evidence {
                log: format!("{j}/{}", r.try_get_by_index::<String>(0)?),
                raised_at: einfo_common::db::from_micros(r.try_get_by_index(1)?),
                detail: r.try_get_by_index(2)?,
                held: Accepted { size: size(&held_note), note: held_note, certificate: r.try_get_by_index(4)? },
                new: Accepted { size: size(&new_note), note: new_note, certificate: r.try_get_by_index(6)? },
            })
        })
        .collect()
}
