//! `einfo recover --from-gateway`: a node restored from an older backup takes back, from the
//! national gateway's kept copy, the entries it lost — verified by the hash chain, written to its
//! logs verbatim and applied to its tables — before it serves again.
//!
//! For each log the gateway replicates (registry and inspection) of each hosted province: the
//! node's head (sequence, hash) is read; the centre's copy is read after it, page by page; every
//! entry must continue the node's chain (its `prev_hash` is the hash of the node's last entry, its
//! own hash verifies, sequences are dense) or nothing of that page is written. Each page is one
//! transaction: the entries go into the log as they are, each is applied to the service's tables
//! (`einfo_registry::project`, `einfo_inspection::project`), and the head moves. An interrupted
//! recovery resumes where it stopped. A log whose history differs from the centre's (a write made
//! on the restored node before recovery, say) is refused, naming the entry, and left as it is.
//!
//! What the centre never had cannot come back: the entries the node wrote after the gateway's
//! last replication, the reporting log (reports reach the centre as signed submissions, not as a
//! replicated log), and the idempotency keys of the recovered writes (a client that retries one
//! of them with its old request id makes a new change).
//!
//! `einfo restore` of a node's store leaves a marker beside it (`<store>.recover-pending`); the
//! node refuses to start while it is there, so that a restored node takes no write that would
//! fork its history from the centre's. `einfo recover` removes it once every log is recovered;
//! `einfo recover --accept-loss` removes it without recovering, for a node whose centre is gone.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use einfo_common::auth::{BearerToken, Caller, Role};
use einfo_common::changelog::{self, ChainVerifier, ChangeEntry, LogId};
use einfo_common::config::Settings;
use einfo_common::db::Database;
use einfo_proto::gateway::v1 as gw;

use crate::node;

/// The logs the gateway keeps, and so the logs a node can recover from it.
const RECOVERABLE: [&str; 2] = ["registry", "inspection"];

/// Entries asked for per page (the gateway's maximum).
const PAGE: i32 = 1000;

/// The marker a restore leaves beside a SQLite node store: recovery pending.
pub fn marker(url: &str) -> Option<PathBuf> {
    let store = crate::backup::sqlite_path(url).ok()?;
    Some(PathBuf::from(format!("{}.recover-pending", store.display())))
}

/// Leaves the marker beside a restored node's store.
///
/// # Errors
/// The marker cannot be written.
pub fn mark_pending(url: &str, backup: &std::path::Path) -> anyhow::Result<()> {
    let Some(path) = marker(url) else { return Ok(()) };
    std::fs::write(
        &path,
        format!(
            "This store was restored from {}.\nRun `einfo recover --from-gateway <gateway>` to take back what the national \
             gateway received after it, or `einfo recover --accept-loss` to serve without it.\n",
            backup.display()
        ),
    )
    .with_context(|| format!("write {}", path.display()))
}

/// Refuses to serve a store whose recovery is pending.
///
/// # Errors
/// The marker is there.
pub fn refuse_if_pending(url: &str) -> anyhow::Result<()> {
    match marker(url) {
        Some(path) if path.exists() => anyhow::bail!(
            "this store was restored from a backup and has not recovered what the centre received since ({} is there): \
             run `einfo recover --from-gateway <gateway>` first, or `einfo recover --accept-loss` to serve without it",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// What recovery did to one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Entries taken back: the node's log now ends where the centre's copy does.
    Recovered {
        /// The node's last sequence before.
        from: u64,
        /// Its last sequence after (the centre's).
        to: u64,
    },
    /// The node holds everything the centre holds (and perhaps more it has not replicated yet).
    UpToDate(u64),
    /// The histories differ: nothing was written to this log.
    Forked(String),
}

/// One log's outcome.
#[derive(Clone, Debug)]
pub struct LogOutcome {
    /// `jurisdiction/service`.
    pub log: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Where the entries come from and who asks for them.
pub struct Source {
    /// The gateway's endpoint.
    pub gateway: String,
    /// A token the gateway accepts for each province, or `None` to sign one per province as the
    /// node signs its own calls — with its certificate's key, or its shared secret (role
    /// `service`, as the node's services call each other).
    pub token: Option<String>,
}

/// Recovers every log of every province the node hosts from the gateway, with the node stopped.
/// Returns each log's outcome; the pending marker is removed when none forked.
///
/// # Errors
/// The store is in use or does not open, the gateway cannot be reached or refuses, an entry does
/// not decode or apply.
pub async fn recover(settings: &Settings, source: &Source) -> anyhow::Result<Vec<LogOutcome>> {
    let url = settings.database_url();
    let _lock = crate::backup::lock_store(&url).context("stop the node before recovering")?;
    let hosted = node::hosted(settings)?;
    let db = node::open_database(settings).await?;
    node::migrate(&db, node::Role::Node).await?;
    // The node's own identity reaches the gateway, whose certificate must act for the centre.
    let transport = settings.transport(einfo_common::clock::system())?;
    let endpoint = transport
        .endpoint(&source.gateway)
        .with_context(|| format!("gateway endpoint '{}'", source.gateway))?
        .connect_timeout(Duration::from_secs(10));
    let channel = transport
        .connect(&endpoint, &[einfo_domain::Jurisdiction::Central])
        .await
        .with_context(|| format!("cannot reach the gateway at {}", source.gateway))?;
    // Without a token given, one is signed per province as the node signs its own calls.
    let signer = match &source.token {
        Some(_) => None,
        None => Some(settings.token_auth(einfo_common::clock::system())?.signer),
    };
    let mut out = Vec::new();
    for j in &hosted {
        let token = match &signer {
            Some(k) => {
                let caller = Caller { subject: "einfo-recover".into(), role: Role::Service, jurisdiction: *j };
                k.issue(&caller, Duration::from_secs(3600))?
            }
            None => source.token.clone().unwrap_or_default(),
        };
        let mut client =
            gw::entry_service_client::EntryServiceClient::with_interceptor(channel.clone(), BearerToken::new(&token)?)
                .max_decoding_message_size(settings.limits.max_message_bytes.max(4 << 20));
        for service in RECOVERABLE {
            let log = LogId { jurisdiction: *j, service };
            let outcome = recover_log(&db, &mut client, &log).await.with_context(|| format!("recovering {log}"))?;
            out.push(LogOutcome { log: log.to_string(), outcome });
        }
    }
    db.close().await?;
    if out.iter().all(|l| !matches!(l.outcome, Outcome::Forked(_)))
        && let Some(m) = marker(&url).filter(|m| m.exists())
    {
        std::fs::remove_file(&m).with_context(|| format!("remove {}", m.display()))?;
    }
    Ok(out)
}

/// Removes the pending marker without recovering: the node serves what its backup held.
///
/// # Errors
/// The store is in use, or the marker cannot be removed.
pub fn accept_loss(settings: &Settings) -> anyhow::Result<bool> {
    let url = settings.database_url();
    let _lock = crate::backup::lock_store(&url).context("stop the node first")?;
    match marker(&url).filter(|m| m.exists()) {
        Some(m) => {
            std::fs::remove_file(&m).with_context(|| format!("remove {}", m.display()))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

type Client = gw::entry_service_client::EntryServiceClient<
    tonic::codegen::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

async fn page(client: &mut Client, log: &LogId, after: u64, size: i32) -> anyhow::Result<gw::GetEntriesResponse> {
    let r = client
        .get_entries(gw::GetEntriesRequest {
            jurisdiction: log.jurisdiction.to_string(),
            service: log.service.into(),
            after,
            page_size: size,
        })
        .await
        .map_err(|s| anyhow::anyhow!("the gateway refused GetEntries: {:?}: {}", s.code(), s.message()))?;
    Ok(r.into_inner())
}

async fn recover_log(db: &Database, client: &mut Client, log: &LogId) -> anyhow::Result<Outcome> {
    db.ensure_log(log).await?;
    let (from, from_hash) = changelog::head(db.conn(), log).await?;
    // The centre's last entry of this log (a one-entry page answers it).
    let probe = page(client, log, 0, 1).await?;
    let (kept, kept_hash) = (probe.kept_sequence, probe.kept_hash);
    if kept <= from {
        if kept == 0 {
            return Ok(Outcome::UpToDate(from));
        }
        let local = changelog::read_entries(db.conn(), log, kept - 1, 1).await?;
        return Ok(match local.first() {
            Some(e) if e.hash == kept_hash => Outcome::UpToDate(from),
            _ => Outcome::Forked(format!(
                "the node's entry {kept} is not the one the centre received: the histories differ; nothing written"
            )),
        });
    }
    let mut verifier = ChainVerifier::new(log.to_string(), from, &from_hash);
    while verifier.last_sequence() < kept {
        let got = page(client, log, verifier.last_sequence(), PAGE).await?;
        anyhow::ensure!(!got.entries.is_empty(), "the gateway answered no entries after {}", verifier.last_sequence());
        for e in &got.entries {
            if e.jurisdiction != log.jurisdiction.to_string() || e.service != log.service {
                anyhow::bail!(
                    "the gateway answered entry {} of {}/{} for {log}",
                    e.sequence,
                    e.jurisdiction,
                    e.service
                );
            }
            if let Err(b) = verifier.check(e) {
                if e.sequence == from + 1 && e.prev_hash != from_hash {
                    return Ok(Outcome::Forked(format!(
                        "the centre's entry {} does not follow the node's entry {from}: the histories differ; nothing written",
                        e.sequence
                    )));
                }
                anyhow::bail!("the centre's copy does not verify: {b}");
            }
        }
        write_page(db, log, &got.entries).await?;
    }
    Ok(Outcome::Recovered { from, to: verifier.last_sequence() })
}

/// Writes verified entries that continue the log, applies them, and moves its head: one
/// transaction.
async fn write_page(db: &Database, log: &LogId, entries: &[ChangeEntry]) -> anyhow::Result<()> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else { return Ok(()) };
    let w = db.begin_write().await?;
    let txn = &w.txn;
    let (seq, hash) = changelog::head(txn, log).await?;
    anyhow::ensure!(
        seq + 1 == first.sequence && hash == first.prev_hash,
        "{log} changed while it was recovered (its head is entry {seq})"
    );
    for e in entries {
        changelog::insert_entry(txn, e).await?;
        match log.service {
            einfo_registry::SERVICE => einfo_registry::project::apply_entry(txn, &log.jurisdiction, e).await?,
            einfo_inspection::SERVICE => einfo_inspection::project::apply_entry(txn, &log.jurisdiction, e).await?,
            other => anyhow::bail!("{other} is not recovered from the gateway"),
        }
    }
    let hashes: Vec<&[u8]> = entries.iter().map(|e| e.hash.as_slice()).collect();
    changelog::merkle::extend(txn, log, first.sequence, &hashes).await?;
    changelog::set_head(txn, log, last.sequence, &last.hash).await?;
    w.txn.commit().await?;
    Ok(())
}
