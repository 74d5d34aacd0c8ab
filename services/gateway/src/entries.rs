//! The entries the centre kept: served back (`GetEntries`), and the national projections
//! rebuilt from them (`einfo gateway rebuild`).

use einfo_common::auth::{Caller, Role};
use einfo_common::changelog::{ChainVerifier, GENESIS_HASH};
use einfo_common::db::Database;
use einfo_common::error::{ApiError, ApiResult, Reason};
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as pb;

use crate::{Gateway, SERVICES, store};

/// The most entries one `GetEntries` answer holds (and the default).
pub const MAX_PAGE: u64 = 1000;

/// The most bytes of entries one `GetEntries` answer holds (at least one entry whatever its
/// size): half of the 4 MiB a tonic client decodes by default, so that a page of large entries
/// (sites of 100 domains) still reaches a client that did not raise its limit.
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// How many of `sizes` (encoded lengths, in order) fit in `max` bytes; at least one.
fn fitting(sizes: impl IntoIterator<Item = usize>, max: usize) -> usize {
    let mut total = 0;
    let mut n = 0;
    for size in sizes {
        total += size;
        if n > 0 && total > max {
            break;
        }
        n += 1;
    }
    n
}

/// Whether `caller` may read the kept entries of `j`, which hold personal data unmasked: its own
/// province's roles (as the role table allows) and the centre's own services; not the centre's
/// people.
fn may_read(caller: &Caller, j: &Jurisdiction) -> ApiResult<()> {
    match caller.role {
        Role::Service if caller.jurisdiction.is_central() => Ok(()),
        Role::System => Err(ApiError::new(Reason::RoleNotAllowed, "role system is never issued in a token")),
        _ if caller.jurisdiction == *j => Ok(()),
        _ => Err(ApiError::new(
            Reason::NotYourJurisdiction,
            format!(
                "{} may read the entries the centre kept of its own province only, not of {j}",
                caller.jurisdiction
            ),
        )),
    }
}

impl Gateway {
    /// `GetEntries`: kept entries of one log after `after`, each verified against the chain
    /// from the entry before it (so what is served is what was received).
    pub async fn get_entries(&self, caller: &Caller, req: &pb::GetEntriesRequest) -> ApiResult<pb::GetEntriesResponse> {
        let j = match Jurisdiction::parse(&req.jurisdiction) {
            Ok(j) if j.is_central() => return Err(ApiError::field("jurisdiction", "must be a province, not central")),
            Ok(j) => j,
            Err(e) => return Err(ApiError::field("jurisdiction", e.to_string())),
        };
        let Some(service) = SERVICES.into_iter().find(|s| *s == req.service) else {
            return Err(ApiError::field("service", format!("must be one of {}", SERVICES.join(", "))));
        };
        let limit = match req.page_size {
            0 => MAX_PAGE,
            n if n < 0 => return Err(ApiError::field("page_size", "must not be negative")),
            n => (n as u64).min(MAX_PAGE),
        };
        may_read(caller, &j)?;
        let js = j.to_string();
        let txn = self.db().begin_read().await?;
        let (kept_sequence, kept_hash) =
            store::cursor_of(&txn, &js, service).await?.unwrap_or((0, GENESIS_HASH.to_vec()));
        if req.after > kept_sequence {
            return Err(ApiError::field(
                "after",
                format!("the centre holds {js}/{service} up to entry {kept_sequence}, not {}", req.after),
            ));
        }
        // The hash of entry `after`, to verify the page from.
        let start_hash = if req.after == 0 {
            GENESIS_HASH.to_vec()
        } else {
            match store::kept_hash(&txn, &js, service, req.after).await? {
                Some(hash) => hash,
                None => return Err(not_kept(&js, service, kept_sequence)),
            }
        };
        let rows = store::kept_after(&txn, &js, service, req.after, limit).await?;
        drop(txn);
        let mut v = ChainVerifier::new(format!("{js}/{service}"), req.after, &start_hash);
        let mut entries = Vec::with_capacity(rows.len());
        for k in rows {
            let Some(e) = k.entry else {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "{js}/{service}: kept entry {} does not decode",
                    k.seq
                )));
            };
            if e.sequence != k.seq {
                return Err(not_kept(&js, service, kept_sequence));
            }
            v.check(&e).map_err(|b| ApiError::internal(anyhow::anyhow!("a kept entry does not verify: {b}")))?;
            entries.push(e);
        }
        if entries.is_empty() && req.after < kept_sequence {
            return Err(not_kept(&js, service, kept_sequence));
        }
        entries.truncate(fitting(entries.iter().map(prost::Message::encoded_len), MAX_PAGE_BYTES));
        Ok(pb::GetEntriesResponse { entries, kept_sequence, kept_hash })
    }
}

/// Entries the projections hold but the centre has not kept yet (a store upgraded from 0.1,
/// before its first audit of the log fetched them from the node).
fn not_kept(js: &str, service: &str, upto: u64) -> ApiError {
    let mut e = ApiError::new(
        Reason::Unavailable,
        format!(
            "{js}/{service}: entries up to {upto} were applied before the centre kept entries; \
             it fetches them from the node at its next audit of the log"
        ),
    );
    e.retry_delay = Some(std::time::Duration::from_secs(10));
    e
}

/// What [`rebuild`] did.
#[derive(Debug, Default)]
pub struct Rebuilt {
    /// Logs rebuilt.
    pub logs: usize,
    /// Entries applied.
    pub entries: u64,
    /// Logs whose entries were applied before the centre kept them (a store upgraded from 0.1
    /// whose gateway has not yet audited them): they are emptied, and replicated again from
    /// their nodes when the gateway starts.
    pub not_kept: Vec<String>,
}

/// Rebuilds the national projections (sites, licences, applications, inspections, decisions,
/// summary cells and cursors) from the kept entries, in one transaction, after verifying every
/// kept log chain by chain. The kept entries are the truth: a cursor that says otherwise is a
/// projection too, and is rebuilt with the rest. The directory, the alarms and the centre's data are left as they are.
/// A kept log that does not verify stops the rebuild, naming its province and sequence, and
/// changes nothing. Run it with the gateway stopped.
pub async fn rebuild(db: &Database) -> anyhow::Result<Rebuilt> {
    let txn = db.begin_write().await?;
    let c = txn.txn();
    let logs = store::kept_logs(c).await?;
    let mut out = Rebuilt::default();
    for (j, service) in &logs {
        let report = store::verify_kept(c, j, service).await?;
        if let Some(b) = report.broken {
            anyhow::bail!("the kept entries do not verify, nothing was changed: {b}");
        }
        if report.missing > 0 {
            out.not_kept.push(format!("{j}/{service}"));
        }
    }
    for j in logs.iter().map(|(j, _)| j.as_str()).collect::<std::collections::BTreeSet<_>>() {
        let jurisdiction = Jurisdiction::parse(j)?;
        store::forget(c, &jurisdiction).await?;
    }
    let mut delta = store::Delta::default();
    for (j, service) in &logs {
        if out.not_kept.contains(&format!("{j}/{service}")) {
            // Applied from its node again, from the start, when the gateway starts.
            continue;
        }
        let Some(service) = SERVICES.into_iter().find(|s| s == service) else { continue };
        let jurisdiction = Jurisdiction::parse(j)?;
        let mut after = 0;
        loop {
            let page = store::kept_after(c, j, service, after, MAX_PAGE).await?;
            if page.is_empty() {
                break;
            }
            let entries: Vec<_> = page.into_iter().filter_map(|k| k.entry).collect();
            after = entries.last().map_or(after, |e| e.sequence);
            store::apply(c, &jurisdiction, service, &entries, db.now(), &mut delta, store::Entries::AlreadyKept)
                .await?;
            out.entries += entries.len() as u64;
        }
        out.logs += 1;
    }
    store::write_delta(c, &delta).await?;
    txn.commit().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::fitting;

    #[test]
    fn a_page_holds_what_fits_in_its_bytes_and_at_least_one_entry() {
        assert_eq!(fitting([10, 10, 10], 25), 2);
        assert_eq!(fitting([10, 10, 10], 30), 3);
        assert_eq!(fitting([40, 10], 25), 1, "one entry even when it alone is larger");
        assert_eq!(fitting([], 25), 0);
    }
}
