//! `einfo verify`: checks every chain in a database offline and reports the first bad entry of
//! each broken log.

use einfo_common::changelog::{LogId, list_logs, verify_log};
use einfo_common::db::Database;
use einfo_domain::Jurisdiction;

/// The outcome for one log.
#[derive(Debug)]
pub struct LogReport {
    /// `jurisdiction/service`.
    pub log: String,
    /// Entries verified, or the first bad one.
    pub result: Result<u64, String>,
}

/// Verifies every log of a database.
pub async fn verify_all(db: &Database) -> anyhow::Result<Vec<LogReport>> {
    let mut out = Vec::new();
    for (j, service) in list_logs(db.conn()).await.map_err(|e| anyhow::anyhow!("{e}"))? {
        let log = format!("{j}/{service}");
        let jurisdiction = match Jurisdiction::parse(&j) {
            Ok(j) => j,
            Err(e) => {
                out.push(LogReport { log, result: Err(format!("unreadable jurisdiction: {e}")) });
                continue;
            }
        };
        let known = einfo_common::changelog::SERVICES.into_iter().chain([einfo_central::SERVICE]);
        let service: &'static str = match known.into_iter().find(|k| *k == service) {
            Some(k) => k,
            None => {
                let other = service;
                out.push(LogReport { log, result: Err(format!("unknown service '{other}'")) });
                continue;
            }
        };
        let id = LogId { jurisdiction, service };
        let result = verify_log(db.conn(), &id).await.map_err(|e| anyhow::anyhow!("{e}"))?.map_err(|b| b.to_string());
        out.push(LogReport { log, result });
    }
    Ok(out)
}
