//! `einfo bench-gateway`'s replication figures: the steady-state lag, and the raw batched insert
//! the full initial replication is compared with.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use einfo_common::db::{Database, stmt};
use einfo_gateway::Migrator;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::log::v1::GetLogHeadRequest;
use einfo_proto::prost::Message as _;
use einfo_proto::registry::v1 as pb;
use sea_orm::{ConnectionTrait, Value};
use sea_orm_migration::MigratorTrait as _;

use super::setup::Federation;
use super::{BenchGatewayArgs, National};
use crate::fixtures::new_site;
use crate::measure::{Stats, UNIQUE};

/// Rows per transaction of the raw baseline.
pub(super) const RAW_TXN_ROWS: usize = 1_000;
/// Rows per INSERT statement of the raw baseline.
pub(super) const RAW_STMT_ROWS: usize = 100;
/// Interval of the replication-status poll that observes the lag.
pub(super) const LAG_POLL: Duration = Duration::from_millis(1);

/// Registers sites at `lag_rate` per second, round-robin over the provinces, for twice
/// `--seconds`; each one's lag runs from its acknowledgement until the gateway reports its
/// province's registry log applied up to the node's head after it.
pub(super) async fn lag(
    args: &BenchGatewayArgs,
    fed: &Federation,
    national: &National,
) -> anyhow::Result<(Stats, u64, Duration)> {
    // One poller observes every province: per-province applied registry sequences.
    let index: std::collections::HashMap<String, usize> =
        fed.parents.iter().enumerate().map(|(i, p)| (p.clone(), i)).collect();
    let (seen_tx, seen) = tokio::sync::watch::channel(vec![0u64; fed.parents.len()]);
    let poller = {
        let national = national.clone();
        tokio::spawn(async move {
            loop {
                let mut c = national.clone();
                if let Ok(r) = c.get_replication_status(gw::GetReplicationStatusRequest {}).await {
                    let mut v = vec![0u64; index.len()];
                    for f in r.into_inner().jurisdictions {
                        if let Some(i) = index.get(&f.jurisdiction) {
                            v[*i] = f.registry_sequence;
                        }
                    }
                    seen_tx.send_if_modified(|old| {
                        let changed = *old != v;
                        *old = v;
                        changed
                    });
                }
                tokio::time::sleep(LAG_POLL).await;
                if seen_tx.is_closed() {
                    return;
                }
            }
        })
    };
    let duration = Duration::from_secs(2 * args.seconds.max(1));
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.lag_rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut probes = Vec::new();
    let mut i = 0u64;
    while started.elapsed() < duration {
        ticker.tick().await;
        let p = (i % fed.parents.len() as u64) as usize;
        i += 1;
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let (mut reg, mut log, parent, mut seen) =
            (fed.operators[p].clone(), fed.logs[p].clone(), fed.parents[p].clone(), seen.clone());
        probes.push(tokio::spawn(async move {
            let req = pb::RegisterSiteRequest {
                parent: parent.clone(),
                site: Some(new_site(n)),
                request_id: format!("bench-gw-lag-{n}"),
            };
            reg.register_site(req).await?;
            let acked = Instant::now();
            let head = log
                .get_log_head(GetLogHeadRequest { jurisdiction: parent, service: "registry".into() })
                .await?
                .into_inner()
                .sequence;
            tokio::time::timeout(Duration::from_secs(60), seen.wait_for(|v| v[p] >= head))
                .await
                .context("not replicated within 60 s")??;
            anyhow::Ok(acked.elapsed())
        }));
    }
    let mut stats = Stats::empty();
    for probe in probes {
        stats.record(probe.await.map_err(anyhow::Error::from).and_then(|r| r));
    }
    stats.elapsed = started.elapsed();
    drop(seen);
    poller.abort();
    Ok((stats, i, duration))
}

/// The raw baseline: `entries` sites of the same shape as the replicated ones (a real site's
/// encoded body, with distinct names and domains) inserted into a fresh store with the gateway's
/// schema, with multi-row INSERTs (`RAW_STMT_ROWS` rows each) into `gw_sites` and
/// `gw_site_domains`, `RAW_TXN_ROWS` sites per transaction. Returns the time it took.
pub(super) async fn raw_insert(url: &str, fed: &Federation, entries: u64) -> anyhow::Result<Duration> {
    let db = Database::connect(url).await?;
    let result = async {
        Migrator::up(db.conn(), None).await?;
        let mut c = fed.readers[0].clone();
        let sample = c
            .list_sites(pb::ListSitesRequest { parent: fed.parents[0].clone(), page_size: 1, ..Default::default() })
            .await?
            .into_inner()
            .sites
            .into_iter()
            .next()
            .context("no site to copy the shape of")?;
        let b = db.backend();
        let body = sample.encode_to_vec();
        let folded = einfo_domain::text::fold(&sample.display_name);
        let tax = sample.owner.as_ref().map(|o| o.tax_code.clone()).unwrap_or_default();
        let started = Instant::now();
        let mut next = 0u64;
        while next < entries {
            let txn_end = (next + RAW_TXN_ROWS as u64).min(entries);
            let txn = db.begin_write().await?;
            while next < txn_end {
                let end = (next + RAW_STMT_ROWS as u64).min(txn_end);
                let rows = (end - next) as usize;
                let mut sites: Vec<Value> = Vec::with_capacity(rows * 8);
                let mut domains: Vec<Value> = Vec::with_capacity(rows * 4);
                for k in next..end {
                    let p = (k % 63) as usize;
                    let name = format!("{}/sites/raw-{k}", fed.parents[p]);
                    let domain = format!("raw-{k}.vn");
                    sites.extend([
                        name.clone().into(),
                        fed.parents[p].clone().into(),
                        sample.kind.clone().into(),
                        sample.legal_status.into(),
                        0i32.into(),
                        folded.clone().into(),
                        tax.clone().into(),
                        body.clone().into(),
                    ]);
                    domains.extend([name.into(), domain.clone().into(), domain.into(), fed.parents[p].clone().into()]);
                }
                txn.txn()
                    .execute_raw(stmt(
                        b,
                        &format!(
                            "INSERT INTO gw_sites (name, jurisdiction, kind, legal_status, voided, name_folded, owner_tax_code, body) VALUES {}",
                            placeholders(rows, 8)
                        ),
                        sites,
                    ))
                    .await?;
                txn.txn()
                    .execute_raw(stmt(
                        b,
                        &format!(
                            "INSERT INTO gw_site_domains (site, ascii, registrable, jurisdiction) VALUES {}",
                            placeholders(rows, 4)
                        ),
                        domains,
                    ))
                    .await?;
                next = end;
            }
            txn.commit().await?;
        }
        let took = started.elapsed();
        let count = db
            .conn()
            .query_one_raw(stmt(b, "SELECT COUNT(*) FROM gw_sites", []))
            .await?
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        anyhow::ensure!(count as u64 == entries, "raw insert wrote {count} rows, not {entries}");
        anyhow::Ok(took)
    }
    .await;
    let _ = db.close().await;
    result
}

/// `($1, $2, …), (…)…`: `rows` tuples of `cols` placeholders.
fn placeholders(rows: usize, cols: usize) -> String {
    let mut out = String::new();
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

/// The national store's size on disk after a replication: (the whole store, the kept entries
/// with their index), in bytes. SQLite counts pages (`dbstat`); PostgreSQL its relation sizes.
pub(super) async fn store_disk(url: &str) -> anyhow::Result<(u64, u64)> {
    let db = Database::connect(url).await?;
    let b = db.backend();
    let (total, kept) = match b {
        sea_orm::DbBackend::Postgres => {
            ("SELECT pg_database_size(current_database())", "SELECT pg_total_relation_size('gw_entries')")
        }
        _ => (
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('gw_entries', 'sqlite_autoindex_gw_entries_1')",
        ),
    };
    let mut out = [0u64; 2];
    for (i, sql) in [total, kept].into_iter().enumerate() {
        let row = db.conn().query_one_raw(stmt(b, sql, [])).await?.context("no row")?;
        out[i] = row.try_get_by_index::<i64>(0)? as u64;
    }
    db.close().await?;
    Ok((out[0], out[1]))
}
