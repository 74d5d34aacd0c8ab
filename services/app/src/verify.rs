//! `einfo verify`: checks every chain in a store offline and reports the first bad entry of each
//! broken log. It tells a node's store from the gateway's, opens either read-only and never
//! migrates what it checks.

use anyhow::Context;
use einfo_common::changelog::{LogId, list_logs, verify_log};
use einfo_domain::Jurisdiction;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

/// Which process wrote a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// A provincial node's (registry, inspection, reporting).
    Node,
    /// The national gateway's (the national store and the centre).
    Gateway,
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreKind::Node => "a node's store",
            StoreKind::Gateway => "the gateway's store",
        })
    }
}

/// Opens the store at `url` without writing to it: SQLite read-only (`mode=ro`: a missing file
/// is an error, not a new database); PostgreSQL is read in a read-only transaction by [`check`].
pub async fn open_read_only(url: &str) -> anyhow::Result<DatabaseConnection> {
    let url = match url.strip_prefix("sqlite:") {
        Some(rest) => format!("sqlite:{}?mode=ro", rest.split('?').next().unwrap_or(rest)),
        None => url.to_owned(),
    };
    let mut opts = sea_orm::ConnectOptions::new(url.clone());
    opts.sqlx_logging(false).max_connections(1);
    sea_orm::Database::connect(opts)
        .await
        .with_context(|| format!("cannot open {} read-only", crate::node::redact(&url)))
}

/// The tables of a store, by name.
pub async fn table_names<C: ConnectionTrait>(c: &C) -> anyhow::Result<Vec<String>> {
    let sql = match c.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    };
    let rows = c.query_all_raw(sea_orm::Statement::from_string(c.get_database_backend(), sql)).await?;
    Ok(rows.iter().map(|r| r.try_get_by_index(0)).collect::<Result<_, _>>()?)
}

/// What kind of store this is, by its tables; an error when it holds no einfo log.
pub async fn store_kind<C: ConnectionTrait>(c: &C) -> anyhow::Result<StoreKind> {
    let tables = table_names(c).await?;
    let has = |t: &str| tables.iter().any(|x| x == t);
    anyhow::ensure!(has("log_heads") && has("change_log"), "no einfo log here (no log_heads / change_log table)");
    Ok(if has("gw_cursors") { StoreKind::Gateway } else { StoreKind::Node })
}

/// Opens the store read-only, tells its kind and verifies every chain, all in one read-only
/// transaction.
pub async fn check(url: &str) -> anyhow::Result<(StoreKind, Vec<LogReport>)> {
    let conn = open_read_only(url).await?;
    let txn = conn.begin_with_config(None, Some(sea_orm::AccessMode::ReadOnly)).await?;
    let kind = store_kind(&txn).await?;
    let mut reports = verify_all(&txn).await?;
    if kind == StoreKind::Gateway {
        reports.extend(verify_kept(&txn).await?);
    }
    txn.rollback().await?;
    conn.close().await?;
    Ok((kind, reports))
}

/// The outcome for one log.
#[derive(Debug)]
pub struct LogReport {
    /// `jurisdiction/service`.
    pub log: String,
    /// Entries verified, or the first bad one.
    pub result: Result<u64, String>,
    /// What else a reader should know (empty when nothing).
    pub note: String,
}

/// Verifies the entries a gateway kept, log by log: each kept body is the entry of its
/// province, service and sequence, the chain holds from 1, and it ends at the national cursor.
pub async fn verify_kept<C: ConnectionTrait>(db: &C) -> anyhow::Result<Vec<LogReport>> {
    let mut out = Vec::new();
    for (j, service) in einfo_gateway::store::kept_logs(db).await? {
        let k = einfo_gateway::store::verify_kept(db, &j, &service).await?;
        let note = match k.missing {
            0 => String::new(),
            n => format!("entries 1 to {n} were applied before the centre kept entries; its next audit fetches them"),
        };
        let result = match (k.broken, k.off_cursor) {
            (Some(b), _) => Err(format!("entry {}: {}", b.sequence, b.problem)),
            (None, Some(problem)) => Err(problem),
            (None, None) => Ok(k.kept.saturating_sub(k.missing)),
        };
        out.push(LogReport { log: format!("{j}/{service} (kept at the centre)"), result, note });
    }
    Ok(out)
}

/// Verifies every log of a store.
pub async fn verify_all<C: ConnectionTrait>(db: &C) -> anyhow::Result<Vec<LogReport>> {
    let mut out = Vec::new();
    for (j, service) in list_logs(db).await.map_err(|e| anyhow::anyhow!("{e}"))? {
        let log = format!("{j}/{service}");
        let jurisdiction = match Jurisdiction::parse(&j) {
            Ok(j) => j,
            Err(e) => {
                out.push(LogReport { log, result: Err(format!("unreadable jurisdiction: {e}")), note: String::new() });
                continue;
            }
        };
        let known = einfo_common::changelog::SERVICES.into_iter().chain([einfo_central::SERVICE]);
        let service: &'static str = match known.into_iter().find(|k| *k == service) {
            Some(k) => k,
            None => {
                let other = service;
                out.push(LogReport { log, result: Err(format!("unknown service '{other}'")), note: String::new() });
                continue;
            }
        };
        let id = LogId { jurisdiction, service };
        let result = verify_log(db, &id).await.map_err(|e| anyhow::anyhow!("{e}"))?.map_err(|b| b.to_string());
        out.push(LogReport { log, result, note: String::new() });
    }
    Ok(out)
}
