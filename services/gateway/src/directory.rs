//! The directory: jurisdiction → node endpoint. Loaded from a TOML file at start
//! (`[endpoints]` table of `"provinces/2008-01" = "http://10.0.0.5:50051"`; many jurisdictions may
//! share one endpoint), kept in the national store, and changed by admins over
//! `DirectoryService`. Integrity alarms are cleared here too.

use std::collections::BTreeMap;
use std::path::Path;

use einfo_common::error::{ApiError, ApiResult, Reason};
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as pb;
use serde::Deserialize;

use crate::{Gateway, store};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    endpoints: BTreeMap<String, String>,
}

/// Reads a directory file.
pub fn load_file(path: &Path) -> anyhow::Result<Vec<(Jurisdiction, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read directory file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("directory file {}: {e}", path.display()))
}

/// Parses a directory file's text.
pub fn parse(text: &str) -> anyhow::Result<Vec<(Jurisdiction, String)>> {
    let f: File = toml::from_str(text)?;
    f.endpoints
        .into_iter()
        .map(|(j, e)| {
            let j = Jurisdiction::parse(&j).map_err(|err| anyhow::anyhow!("'{j}': {err}"))?;
            anyhow::ensure!(!j.is_central(), "'central' is not a province");
            check_endpoint(&e).map_err(|err| anyhow::anyhow!("endpoint of {j}: {err}"))?;
            Ok((j, e))
        })
        .collect()
}

/// Writes a directory file for `entries`.
pub fn render(entries: &[(Jurisdiction, String)]) -> String {
    let mut out = String::from("# einfo gateway directory: jurisdiction = node endpoint\n[endpoints]\n");
    for (j, e) in entries {
        out.push_str(&format!("\"{j}\" = \"{e}\"\n"));
    }
    out
}

fn check_endpoint(e: &str) -> Result<(), String> {
    let ok = (e.starts_with("http://") || e.starts_with("https://"))
        && e.len() <= 2048
        && tonic::transport::Endpoint::from_shared(e.to_owned()).is_ok()
        && e.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
    if ok { Ok(()) } else { Err(format!("'{e}' is not an http:// or https:// endpoint")) }
}

fn province(value: &str, field: &str) -> ApiResult<Jurisdiction> {
    match Jurisdiction::parse(value) {
        Ok(j) if j.is_central() => Err(ApiError::field(field, "must be a province, not central")),
        Ok(j) => Ok(j),
        Err(e) => Err(ApiError::field(field, e.to_string())),
    }
}

impl Gateway {
    /// Every directory entry, ordered by jurisdiction.
    pub fn list_endpoints(&self) -> Vec<pb::DirectoryEntry> {
        self.state()
            .directory
            .iter()
            .map(|(j, e)| pb::DirectoryEntry { jurisdiction: j.to_string(), endpoint: e.clone() })
            .collect()
    }

    /// Sets the endpoint of a jurisdiction; its replicators reconnect there at once.
    pub async fn set_endpoint(&self, entry: &pb::DirectoryEntry) -> ApiResult<pb::DirectoryEntry> {
        let j = province(&entry.jurisdiction, "entry.jurisdiction")?;
        let endpoint = entry.endpoint.trim().to_owned();
        check_endpoint(&endpoint).map_err(|e| ApiError::field("entry.endpoint", e))?;
        // https:// under mutual TLS, http:// only when the gateway runs --insecure.
        self.0.transport.endpoint(&endpoint).map_err(|e| ApiError::field("entry.endpoint", format!("{e:#}")))?;
        store::set_endpoint(self.db().conn(), &j, &endpoint).await?;
        self.state().directory.insert(j, endpoint.clone());
        self.0.directory_changed.send_modify(|v| *v += 1);
        self.spawn_jurisdiction(j);
        self.bump();
        tracing::info!(jurisdiction = %j, %endpoint, "directory entry set");
        Ok(pb::DirectoryEntry { jurisdiction: j.to_string(), endpoint })
    }

    /// Removes a jurisdiction from the directory.
    pub async fn remove_endpoint(&self, jurisdiction: &str) -> ApiResult<()> {
        let j = province(jurisdiction, "jurisdiction")?;
        if !self.state().directory.contains_key(&j) {
            return Err(ApiError::not_found(j));
        }
        store::remove_endpoint(self.db().conn(), &j).await?;
        self.state().directory.remove(&j);
        self.0.directory_changed.send_modify(|v| *v += 1);
        self.bump();
        tracing::info!(jurisdiction = %j, "directory entry removed");
        Ok(())
    }

    /// Raises the integrity alarm of `j`: its logs stop being applied until an operator acts.
    pub(crate) async fn raise_alarm(&self, j: &Jurisdiction, detail: &str) {
        tracing::error!(jurisdiction = %j, detail, "INTEGRITY ALARM: replication of this jurisdiction is stopped");
        let now = self.db().now();
        if let Err(e) = store::raise_alarm(self.db().conn(), j, detail, now).await {
            tracing::error!(jurisdiction = %j, error = %e, "the alarm could not be stored; it holds in memory");
        }
        self.state().alarms.entry(*j).or_insert_with(|| (detail.to_owned(), now));
        self.0.directory_changed.send_modify(|v| *v += 1);
        self.bump();
    }

    /// Whether `j` is in alarm.
    pub fn in_alarm(&self, j: &Jurisdiction) -> bool {
        self.state().alarms.contains_key(j)
    }

    /// Clears the alarm of `j`; with `resync`, forgets its national data first, so it is
    /// replicated again from the start.
    pub async fn clear_alarm(&self, req: &pb::ClearAlarmRequest) -> ApiResult<pb::JurisdictionFreshness> {
        let j = province(&req.jurisdiction, "jurisdiction")?;
        if req.comment.trim().is_empty() {
            return Err(ApiError::field("comment", "is required: say what was found"));
        }
        if !self.in_alarm(&j) && !req.resync {
            return Err(ApiError::new(Reason::InvalidState, format!("{j} is not in alarm")));
        }
        let txn = self.db().begin_write().await?;
        if req.resync {
            store::forget(txn.txn(), &j).await?;
            store::set_aside(txn.txn(), &j.to_string(), self.db().now()).await?;
        }
        store::clear_alarm(txn.txn(), &j).await?;
        txn.commit().await?;
        {
            let mut st = self.state();
            st.alarms.remove(&j);
            if req.resync {
                let js = j.to_string();
                st.cells.retain(|(cj, ..), _| *cj != js);
                st.summaries.clear();
                for s in crate::SERVICES {
                    st.logs.insert((j, s), Default::default());
                }
            }
        }
        tracing::warn!(jurisdiction = %j, resync = req.resync, comment = req.comment.trim(), "integrity alarm cleared");
        self.0.directory_changed.send_modify(|v| *v += 1);
        self.bump();
        Ok(self.freshness(&j, self.db().now(), std::time::Duration::from_millis(self.settings().max_staleness_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_file_is_read_and_bad_entries_are_named() {
        let entries = parse(
            "[endpoints]\n\"provinces/2008-01\" = \"http://127.0.0.1:1\"\n\"provinces/2008-79\" = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(parse(&render(&entries)).unwrap(), entries);
        let e = parse("[endpoints]\n\"provinces/2008-99\" = \"http://x:1\"\n").unwrap_err().to_string();
        assert!(e.contains("provinces/2008-99"), "{e}");
        let e = parse("[endpoints]\n\"provinces/2008-01\" = \"ftp://x\"\n").unwrap_err().to_string();
        assert!(e.contains("provinces/2008-01"), "{e}");
        assert!(parse("[endpoint]\n").is_err());
    }
}
