//! Replication of one (jurisdiction, service) log into the national store.
//!
//! The replicator reads the stored cursor (sequence and hash), asks the node for its log head,
//! then follows `StreamChanges(after = cursor, after_hash)`. Each entry is verified against the
//! chain (density, `prev_hash`, its own hash) before it is applied; a batch is applied with the
//! cursor in one transaction, so a crash loses nothing and applies nothing twice. A broken chain,
//! or `FAILED_PRECONDITION` on the cursor's hash (an altered or forked history), raises the
//! jurisdiction's integrity alarm and stops its replication until an operator clears it.
//!
//! The gateway also keeps the right edge of the Merkle tree of what it applied ([`Frontier`],
//! beside the cursor). On every (re)connection it asks the node for a signed checkpoint of its
//! head with the consistency proof from the cursor, and checks it against the root of what it
//! holds: a log rewritten behind the cursor, however consistently, cannot prove that, and the
//! audit reads a few hundred bytes whatever the log's length. Each checkpoint the stream sends
//! must be the tree of the entries sent before it. A checkpoint that disagrees raises the alarm
//! and is kept as evidence with the last one accepted; one accepted is kept, cosigned (when the
//! gateway holds a certificate) and given back to the node. A node of an earlier release, or a
//! store whose tree edge is unknown, is audited by reading its log from the start instead, and so
//! is every log every `audit_interval_ms` (which also finds an entry altered in a node's
//! database behind its own tree). An unreachable node is retried with exponential backoff.

use std::time::Duration;

use einfo_common::auth::BearerToken;
use einfo_common::changelog::checkpoint::{self, CheckError, Checked};
use einfo_common::changelog::merkle::{self, Frontier, Hash};
use einfo_common::changelog::{ChainVerifier, ChangeEntry, GENESIS_HASH, LogId};
use einfo_common::error::Reason;
use einfo_common::server::AbortOnDrop;
use einfo_domain::Jurisdiction;
use einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient;
use einfo_proto::log::v1::{
    AddCosignatureRequest, Checkpoint, GetCheckpointRequest, GetLogHeadRequest, GetLogHeadResponse,
    StreamChangesRequest,
};
use futures::FutureExt;
use prost::Message;
use tonic::Code;
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

use crate::{Gateway, store};

type Client = ChangeLogServiceClient<InterceptedService<Channel, BearerToken>>;

/// Why following a log stopped.
enum Stop {
    /// The node's history does not verify: raise the alarm.
    Integrity(String),
    /// The node could not be reached or failed: retry later.
    Unreachable(String),
    /// The node does not run this service.
    Absent,
    /// The node's log is a prefix of what the centre holds: it was restored or lost its store.
    Behind(String),
    /// The stream ended normally (the node shut down).
    Ended,
}

fn classify(s: &tonic::Status) -> Stop {
    match s.code() {
        Code::FailedPrecondition => Stop::Integrity(format!("the node refused the cursor: {}", s.message())),
        _ if einfo_common::error::reason_of(s) == Some(Reason::ServiceNotRun) => Stop::Absent,
        _ => Stop::Unreachable(format!("{:?}: {}", s.code(), s.message())),
    }
}

/// Replicates `service` of `j` until the gateway stops.
pub async fn run(gw: Gateway, j: Jurisdiction, service: &'static str) {
    let initial = Duration::from_millis(gw.settings().retry_initial_ms.max(10));
    let max = Duration::from_millis(gw.settings().retry_max_ms.max(gw.settings().retry_initial_ms).max(10));
    let mut backoff = initial;
    let mut stopping = gw.stopping();
    let mut changes = gw.0.directory_changed.subscribe();
    loop {
        if *stopping.borrow() {
            return;
        }
        changes.borrow_and_update();
        let endpoint = gw.state().directory.get(&j).cloned();
        let (Some(endpoint), false) = (endpoint, gw.in_alarm(&j)) else {
            set(&gw, &j, service, |l| {
                l.connected = false;
                l.caught_up = false;
            });
            tokio::select! {
                _ = changes.changed() => continue,
                _ = stopping.wait_for(|s| *s) => return,
            }
        };
        // Another jurisdiction's directory change or alarm leaves this stream alone.
        let moved = async {
            loop {
                if changes.changed().await.is_err() {
                    return futures::future::pending().await;
                }
                if gw.in_alarm(&j) || gw.state().directory.get(&j) != Some(&endpoint) {
                    return;
                }
            }
        };
        let outcome = tokio::select! {
            r = follow(&gw, &j, service, &endpoint) => r,
            _ = moved => Stop::Ended,
            _ = stopping.wait_for(|s| *s) => return,
        };
        let was_live = gw.state().logs.get(&(j, service)).is_some_and(|l| l.connected && l.caught_up);
        set(&gw, &j, service, |l| {
            if was_live {
                l.last_live = Some(gw.db().now());
            }
            l.connected = false;
            l.caught_up = false;
        });
        let wait = match outcome {
            Stop::Integrity(detail) => {
                gw.raise_alarm(&j, &format!("{service} log: {detail}")).await;
                continue;
            }
            Stop::Absent => {
                set(&gw, &j, service, |l| l.absent = true);
                max
            }
            Stop::Behind(detail) => {
                tracing::warn!(jurisdiction = %j, service, detail, "the node is behind the centre");
                set(&gw, &j, service, |l| l.behind = detail);
                max
            }
            Stop::Ended => {
                backoff = initial;
                initial
            }
            Stop::Unreachable(e) => {
                tracing::debug!(jurisdiction = %j, service, error = %e, "node unreachable; retrying");
                set(&gw, &j, service, |l| l.error = e);
                let w = backoff;
                backoff = (backoff * 2).min(max);
                w
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changes.changed() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// Changes the in-memory state of a log and bumps the revision.
fn set(gw: &Gateway, j: &Jurisdiction, service: &'static str, f: impl FnOnce(&mut crate::LogState)) {
    {
        let mut st = gw.state();
        f(st.logs.entry((*j, service)).or_default());
    }
    gw.bump();
}

/// A node whose log ends before the centre's cursor: behind, when its last entry is the one the
/// centre kept at that sequence (a restored backup, or a store lost and started empty); a fork
/// otherwise, or when the centre did not keep that entry and cannot tell.
async fn behind_or_forked(
    gw: &Gateway,
    j: &Jurisdiction,
    service: &'static str,
    head: &GetLogHeadResponse,
    seq: u64,
) -> Stop {
    let lost = seq - head.sequence;
    let behind = || {
        Stop::Behind(format!(
            "the node's {service} log ends at entry {}, the centre received {seq}: the node was restored from an \
             older backup or lost its store; nothing is replicated from it until it holds the {lost} entries it \
             lost again (the centre keeps them: GetEntries)",
            head.sequence
        ))
    };
    if head.sequence == 0 {
        return behind();
    }
    match store::kept_hash(gw.db().conn(), &j.to_string(), service, head.sequence).await {
        Ok(kept) => match kept {
            Some(hash) if hash == head.hash => behind(),
            Some(_) => Stop::Integrity(format!(
                "the node's {service} log ends at entry {} with another hash than the centre's entry {}: the histories differ",
                head.sequence, head.sequence
            )),
            None => Stop::Integrity(format!(
                "the node's {service} log ends at entry {}, before the centre's cursor {seq}, and the centre did not keep \
                 that entry to tell a restored node from a forked one",
                head.sequence
            )),
        },
        Err(e) => Stop::Unreachable(format!("national store: {e}")),
    }
}

fn client(gw: &Gateway, endpoint: &str, j: &Jurisdiction) -> Result<Client, Stop> {
    let channel = gw.channel(endpoint, j).map_err(|e| Stop::Unreachable(e.to_string()))?;
    let token = gw.token().map_err(|e| Stop::Unreachable(e.to_string()))?;
    Ok(ChangeLogServiceClient::with_interceptor(channel, token).max_decoding_message_size(64 * 1024 * 1024))
}

async fn follow(gw: &Gateway, j: &Jurisdiction, service: &'static str, endpoint: &str) -> Stop {
    let mut c = match client(gw, endpoint, j) {
        Ok(c) => c,
        Err(s) => return s,
    };
    let jn = j.to_string();
    let (seq, hash, kept_frontier) = match store::cursor_and_frontier(gw.db().conn(), &jn, service).await {
        Ok(c) => c,
        Err(e) => return Stop::Unreachable(format!("national store: {e}")),
    };
    let log = LogId { jurisdiction: *j, service };
    // A store of 0.1 applied entries without keeping them: the first audit keeps what it reads.
    let mut backfill = match store::kept_count(gw.db().conn(), &jn, service, seq).await {
        Ok(n) => n < seq,
        Err(e) => return Stop::Unreachable(format!("national store: {e}")),
    };
    // The tree's edge of what was applied; a store of an earlier release computes it once from
    // the entries it kept.
    let mut frontier = match kept_frontier {
        Some(f) => Some(f),
        None if !backfill => match store::frontier_of_kept(gw.db().conn(), &jn, service, seq).await {
            Ok(f) => f,
            Err(e) => return Stop::Unreachable(format!("national store: {e}")),
        },
        None => None,
    };
    let head = match tokio::time::timeout(
        Duration::from_secs(10),
        c.get_log_head(GetLogHeadRequest { jurisdiction: j.to_string(), service: service.into() }),
    )
    .await
    {
        Ok(Ok(h)) => h.into_inner(),
        Ok(Err(s)) => return classify(&s),
        Err(_) => return Stop::Unreachable("GetLogHead timed out".into()),
    };
    if head.sequence < seq {
        return behind_or_forked(gw, j, service, &head, seq).await;
    }
    // The history behind the cursor, audited by a consistency proof when the node can give one
    // (and the store kept every entry: else the audit reads them, to keep them). `accepted`: the
    // size of the last checkpoint accepted on this connection, not accepted (and cosigned) twice.
    let proved = match (&frontier, seq) {
        (Some(f), 1..) if !backfill => match audit_by_proof(gw, &mut c, endpoint, &log, f).await {
            Ok(accepted) => accepted,
            Err(stop) => return stop,
        },
        _ => None,
    };
    let mut accepted = proved.unwrap_or(0);
    let mut stream = match c
        .stream_changes(StreamChangesRequest {
            jurisdiction: j.to_string(),
            service: service.into(),
            after: seq,
            after_hash: if seq == 0 { Vec::new() } else { hash.clone() },
            follow: true,
        })
        .await
    {
        Ok(s) => s.into_inner(),
        Err(s) => return classify(&s),
    };
    let caught_up = head.sequence <= seq;
    set(gw, j, service, |l| {
        l.connected = true;
        l.caught_up = caught_up;
        l.seq = seq;
        l.head = head.sequence;
        l.error.clear();
        l.absent = false;
        l.behind.clear();
    });
    let mut verifier = ChainVerifier::new(format!("{j}/{service}"), seq, &hash);
    let batch_max = gw.settings().batch_entries.max(1);
    let audit_every = gw.settings().audit_interval_ms;
    let periodic = || (audit_every > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(audit_every));
    // On every (re)connection the history behind the cursor is audited first, then every
    // `audit_interval_ms`. The audit reads the log on a second call *while this loop keeps
    // reading the follow stream*: the calls of every jurisdiction of a node share one
    // connection, whose flow-control window a few unread follow streams fill, so an audit run
    // in place of reading (as it once was) waits for data that cannot come, and a gateway
    // restarted with a backlog stalled for hours. It runs as a task of its own: polled only
    // inside this loop's `select!`, it would sit idle in a write transaction (keeping entries)
    // whenever the loop waits elsewhere — for a pool connection, say, held by a transaction
    // waiting on that one's locks.
    let mut next_audit = if seq > 0 && proved.is_none() { Some(tokio::time::Instant::now()) } else { periodic() };
    let mut auditing: Option<AbortOnDrop<Result<u64, Stop>>> = None;
    loop {
        let first = tokio::select! {
            m = stream.message() => m,
            r = async { (&mut auditing.as_mut().expect("guarded by the condition").0).await }, if auditing.is_some() => {
                auditing = None;
                let r = r.unwrap_or_else(|e| Err(Stop::Unreachable(format!("the audit task failed: {e}"))));
                match r {
                    Ok(bytes) => set(gw, j, service, |l| l.audit = Some(crate::AuditRead { by_proof: false, bytes })),
                    Err(stop) => return stop,
                }
                next_audit = periodic();
                continue;
            }
            _ = async {
                match next_audit {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => futures::future::pending().await,
                }
            }, if auditing.is_none() => {
                let (upto, hash) = (verifier.last_sequence(), verifier.last_hash().to_vec());
                let keeper = std::mem::take(&mut backfill).then(|| gw.clone());
                auditing = Some(AbortOnDrop(tokio::spawn(audit(c.clone(), j.to_string(), service, upto, hash, keeper))));
                next_audit = None;
                continue;
            }
        };
        let mut batch = match first {
            Ok(Some(r)) => vec![r],
            Ok(None) => return Stop::Ended,
            Err(s) => return classify(&s),
        };
        let mut failure = None;
        while batch.len() < batch_max {
            match stream.message().now_or_never() {
                Some(Ok(Some(r))) => batch.push(r),
                Some(Ok(None)) => {
                    failure = Some(Stop::Ended);
                    break;
                }
                Some(Err(s)) => {
                    failure = Some(classify(&s));
                    break;
                }
                None => break,
            }
        }
        let mut good = Vec::with_capacity(batch.len());
        let mut signed: Option<(Checkpoint, Checked)> = None;
        for m in batch {
            if let Some(e) = m.entry {
                if let Err(b) = verifier.check(&e) {
                    failure = Some(Stop::Integrity(b.to_string()));
                    break;
                }
                if let Some(f) = frontier.as_mut() {
                    f.push(&e.hash);
                }
                good.push(e);
            }
            // A checkpoint must be the tree of every entry sent before it. Without the tree's
            // edge (a store of an earlier release, until its entries are kept) it is not checked.
            if let (Some(cp), Some(f)) = (m.checkpoint, frontier.as_ref()) {
                match take(gw, &log, &cp) {
                    Ok(c) if c.size == f.size() && c.root == f.root() => signed = Some((cp, c)),
                    Ok(c) => {
                        let detail = format!(
                            "the node's signed checkpoint of {} entries is not the tree of the {} entries it sent",
                            c.size,
                            f.size()
                        );
                        return fork(gw, &log, &cp, detail).await;
                    }
                    Err(stop) => {
                        // Nothing of this batch is applied: which of the entries and the
                        // checkpoint is wrong is not known.
                        return stop;
                    }
                }
            }
        }
        if !good.is_empty() {
            if let Err(e) = apply(gw, j, service, &good, frontier.as_ref()).await {
                return Stop::Unreachable(format!("national store: {e}"));
            }
            let last = good.last().map_or(seq, |e| e.sequence);
            let now = gw.db().now();
            set(gw, j, service, |l| {
                l.seq = last;
                l.head = l.head.max(last);
                l.apply_time = Some(now);
                if last >= head.sequence {
                    l.caught_up = true;
                }
                if l.caught_up {
                    l.last_live = Some(now);
                }
            });
        }
        if let Some((cp, checked)) = signed.filter(|(_, c)| c.size > accepted) {
            if let Err(stop) = accept(gw, endpoint, &log, cp, &checked).await {
                return stop;
            }
            accepted = checked.size;
        }
        if let Some(f) = failure {
            return f;
        }
    }
}

/// Checks a node's checkpoint of `log`: signed by a certificate of the centre's CA acting for
/// the jurisdiction (when the gateway trusts a CA).
fn take(gw: &Gateway, log: &LogId, cp: &Checkpoint) -> Result<Checked, Stop> {
    checkpoint::check(&cp.note, &cp.certificate, gw.0.ca_der.as_deref(), gw.db().now(), log).map_err(|e| match e {
        CheckError::Certificate(_) => Stop::Unreachable(format!("the node's checkpoint: {e}")),
        CheckError::Invalid(_) => Stop::Integrity(format!("the node's checkpoint: {e}")),
    })
}

/// Keeps a checkpoint the gateway accepted; cosigns it when the gateway holds a certificate and
/// the checkpoint is signed, and gives the cosignature back to the node (without waiting: a node
/// that does not take it loses nothing of the centre's).
async fn accept(gw: &Gateway, endpoint: &str, log: &LogId, cp: Checkpoint, checked: &Checked) -> Result<(), Stop> {
    let now = gw.db().now();
    let mut kept = store::Accepted { size: checked.size, note: cp.note, certificate: cp.certificate };
    let cosigner = gw.0.signer.note_key().filter(|_| checked.signer.is_some());
    let cosigned = match cosigner.map(|k| (k, k.cosign(&kept.note, now))) {
        Some((k, Ok(note))) => {
            kept.note = note;
            Some(k.certificate().to_vec())
        }
        Some((_, Err(e))) => {
            tracing::warn!(log = %log, error = %e, "could not cosign a checkpoint");
            None
        }
        None => None,
    };
    let j = log.jurisdiction.to_string();
    store::accept(gw.db().conn(), &j, log.service, &kept, &checked.root.0, now)
        .await
        .map_err(|e| Stop::Unreachable(format!("national store: {e}")))?;
    if let Some(certificate) = cosigned {
        // A client of its own: its token is fresh, whatever the age of the stream's.
        let Ok(mut c) = client(gw, endpoint, &log.jurisdiction) else { return Ok(()) };
        let request =
            AddCosignatureRequest { jurisdiction: j, service: log.service.into(), note: kept.note, certificate };
        let log = log.to_string();
        tokio::spawn(async move {
            if let Err(e) = c.add_cosignature(request).await {
                tracing::debug!(%log, error = %e, "the node did not take the centre's cosignature");
            }
        });
    }
    Ok(())
}

/// Keeps the evidence of a node's checkpoint that disagrees with what the centre holds (the
/// checkpoint, and the last one the centre accepted of that log), and says so.
async fn fork(gw: &Gateway, log: &LogId, cp: &Checkpoint, detail: String) -> Stop {
    let j = log.jurisdiction.to_string();
    let conn = gw.db().conn();
    let held = match store::latest(conn, &j, log.service).await {
        Ok(h) => h.unwrap_or(store::Accepted { size: 0, note: String::new(), certificate: Vec::new() }),
        Err(e) => return Stop::Unreachable(format!("national store: {e}")),
    };
    let new = store::Accepted {
        size: checkpoint::check(&cp.note, &[], None, gw.db().now(), log).map_or(0, |c| c.size),
        note: cp.note.clone(),
        certificate: cp.certificate.clone(),
    };
    let evidence =
        store::Evidence { log: log.to_string(), raised_at: gw.db().now(), detail: detail.clone(), held, new };
    if let Err(e) = store::keep_evidence(conn, &j, log.service, &evidence).await {
        return Stop::Unreachable(format!("national store: {e}"));
    }
    Stop::Integrity(format!("{detail}; both checkpoints are kept as evidence"))
}

/// Audits the history behind the cursor by the node's signed checkpoint of its head and the
/// consistency proof from the cursor, against the root of what the gateway applied (`held`).
/// Returns the size of the checkpoint accepted; `Ok(None)`: the node gives no checkpoints (an
/// earlier release), audit it by reading.
async fn audit_by_proof(
    gw: &Gateway,
    c: &mut Client,
    endpoint: &str,
    log: &LogId,
    held: &Frontier,
) -> Result<Option<u64>, Stop> {
    let seq = held.size();
    let asked = c.get_checkpoint(GetCheckpointRequest {
        jurisdiction: log.jurisdiction.to_string(),
        service: log.service.into(),
        consistency_from: seq,
        ..Default::default()
    });
    let r = match tokio::time::timeout(Duration::from_secs(10), asked).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(s)) if s.code() == Code::Unimplemented && einfo_common::error::reason_of(&s).is_none() => {
            return Ok(None);
        }
        Ok(Err(s)) => return Err(classify(&s)),
        Err(_) => return Err(Stop::Unreachable("GetCheckpoint timed out".into())),
    };
    let bytes = r.encoded_len() as u64;
    let cp = r.checkpoint.unwrap_or_default();
    let checked = take(gw, log, &cp)?;
    if checked.size < seq {
        return Err(Stop::Unreachable(format!(
            "the node's checkpoint holds {} entries, fewer than the centre's {seq}; asked again at the next connection",
            checked.size
        )));
    }
    let proof: Option<Vec<Hash>> = r.consistency_proof.iter().map(|h| merkle::hash_of(h)).collect();
    if !proof.is_some_and(|p| merkle::check_consistency(&p, checked.size, checked.root, seq, held.root())) {
        let detail = format!(
            "the node's signed checkpoint of {} entries does not extend the {seq} entries the centre holds: its history \
             was rewritten",
            checked.size
        );
        return Err(fork(gw, log, &cp, detail).await);
    }
    accept(gw, endpoint, log, cp, &checked).await?;
    set(gw, &log.jurisdiction, log.service, |l| l.audit = Some(crate::AuditRead { by_proof: true, bytes }));
    Ok(Some(checked.size))
}

/// Applies a verified batch with its cursor in one transaction, then mirrors the summary
/// changes in memory.
async fn apply(
    gw: &Gateway,
    j: &Jurisdiction,
    service: &'static str,
    entries: &[ChangeEntry],
    frontier: Option<&Frontier>,
) -> anyhow::Result<()> {
    let mut delta = store::Delta::default();
    let txn = gw.db().begin_write().await?;
    let err = |e: einfo_common::error::ApiError| anyhow::anyhow!("{e}");
    store::apply(txn.txn(), j, service, entries, gw.db().now(), &mut delta, store::Entries::Keep).await.map_err(err)?;
    if let Some(f) = frontier {
        store::set_frontier(txn.txn(), &j.to_string(), service, f).await.map_err(err)?;
    }
    store::write_delta(txn.txn(), &delta).await.map_err(err)?;
    txn.commit().await?;
    let mut st = gw.state();
    st.summaries.clear();
    st.held.insert(*j);
    for (k, by) in delta.0 {
        if by != 0 {
            let n = st.cells.entry(k.clone()).or_default();
            *n += by;
            if *n == 0 {
                st.cells.remove(&k);
            }
        }
    }
    Ok(())
}

/// Reads the log from its start up to `seq` and verifies it ends at `hash`: finds an entry
/// altered (or a history rewritten) behind the cursor. With `keeper` (a store that applied
/// entries before it kept them), it also keeps what it read, once the whole history verified.
async fn audit(
    mut c: Client,
    j: String,
    service: &'static str,
    seq: u64,
    hash: Vec<u8>,
    keeper: Option<Gateway>,
) -> Result<u64, Stop> {
    let mut stream = c
        .stream_changes(StreamChangesRequest {
            jurisdiction: j.clone(),
            service: service.into(),
            after: 0,
            after_hash: Vec::new(),
            follow: false,
        })
        .await
        .map_err(|s| classify(&s))?
        .into_inner();
    let mut v = ChainVerifier::new(format!("{j}/{service}"), 0, &GENESIS_HASH);
    let mut read = Vec::new();
    let mut bytes = 0;
    while v.last_sequence() < seq {
        match stream.message().await {
            Ok(Some(r)) => {
                bytes += r.encoded_len() as u64;
                let Some(e) = r.entry else { continue };
                v.check(&e).map_err(|b| Stop::Integrity(format!("audit: {b}")))?;
                if keeper.is_some() {
                    read.push(e);
                }
            }
            // Not a short log: the node ended the read (it stops, and ends every stream it
            // serves). A log that really ends before the cursor is found at the next
            // connection, whose head check tells a restored node from a forked one.
            Ok(None) => {
                return Err(Stop::Unreachable(format!(
                    "the node ended the audit's read at entry {} before the centre's cursor {seq}; audited again at \
                     the next connection",
                    v.last_sequence()
                )));
            }
            Err(s) => return Err(classify(&s)),
        }
    }
    if v.last_hash() != hash.as_slice() {
        return Err(Stop::Integrity(format!(
            "audit: entry {seq} has another hash than the one replicated: the history was rewritten"
        )));
    }
    if let Some(gw) = keeper {
        for part in read.chunks(1000) {
            let refs: Vec<&ChangeEntry> = part.iter().collect();
            let kept = async {
                let txn = gw.db().begin_write().await?;
                store::keep(txn.txn(), &j, service, &refs).await?;
                txn.commit().await?;
                Ok::<_, einfo_common::error::ApiError>(())
            };
            kept.await.map_err(|e| Stop::Unreachable(format!("national store: {e}")))?;
        }
        tracing::info!(jurisdiction = %j, service, entries = read.len(), "entries applied before this release are now kept");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use einfo_common::changelog::entry_hash;
    use einfo_proto::log::v1::change_log_service_server::{ChangeLogService, ChangeLogServiceServer};
    use einfo_proto::log::v1::{GetLogHeadResponse, StreamChangesResponse};

    /// A node whose log holds `entries` but whose streams end after the first `served` (as when
    /// it stops mid-read).
    struct Stopping {
        entries: Vec<ChangeEntry>,
        served: usize,
    }

    #[tonic::async_trait]
    impl ChangeLogService for Stopping {
        type StreamChangesStream = futures::stream::BoxStream<'static, Result<StreamChangesResponse, tonic::Status>>;

        async fn stream_changes(
            &self,
            _: tonic::Request<StreamChangesRequest>,
        ) -> Result<tonic::Response<Self::StreamChangesStream>, tonic::Status> {
            let served: Vec<_> = self.entries[..self.served]
                .iter()
                .map(|e| Ok(StreamChangesResponse { entry: Some(e.clone()), checkpoint: None }))
                .collect();
            Ok(tonic::Response::new(Box::pin(futures::stream::iter(served))))
        }

        async fn get_log_head(
            &self,
            _: tonic::Request<GetLogHeadRequest>,
        ) -> Result<tonic::Response<GetLogHeadResponse>, tonic::Status> {
            let last = self.entries.last().expect("entries");
            Ok(tonic::Response::new(GetLogHeadResponse { sequence: last.sequence, hash: last.hash.clone() }))
        }

        // A node of an earlier release: no checkpoints, so the gateway audits by reading.
        async fn get_checkpoint(
            &self,
            _: tonic::Request<einfo_proto::log::v1::GetCheckpointRequest>,
        ) -> Result<tonic::Response<einfo_proto::log::v1::GetCheckpointResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("GetCheckpoint"))
        }

        async fn add_cosignature(
            &self,
            _: tonic::Request<einfo_proto::log::v1::AddCosignatureRequest>,
        ) -> Result<tonic::Response<einfo_proto::log::v1::AddCosignatureResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("AddCosignature"))
        }
    }

    fn chain(n: u64) -> Vec<ChangeEntry> {
        let mut prev = GENESIS_HASH.to_vec();
        (1..=n)
            .map(|i| {
                let mut e = ChangeEntry {
                    jurisdiction: "provinces/2008-01".into(),
                    service: "registry".into(),
                    sequence: i,
                    resource: format!("provinces/2008-01/sites/{i}"),
                    operation: "CREATE".into(),
                    prev_hash: prev.clone(),
                    ..Default::default()
                };
                e.hash = entry_hash(&e).to_vec();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    /// A node stopped while the gateway audits it ends the audit's stream early and cleanly: that
    /// is a read to do again, not a log shorter than the cursor (an integrity alarm, as it was).
    #[tokio::test]
    async fn an_audit_read_ended_early_by_the_node_is_not_an_integrity_alarm() {
        let entries = chain(10);
        let (seq, hash) = (10, entries[9].hash.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tonic::transport::Server::builder()
            .add_service(ChangeLogServiceServer::new(Stopping { entries, served: 4 }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let task = tokio::spawn(server);
        let channel = Channel::from_shared(format!("http://{addr}")).expect("url").connect().await.expect("connect");
        let client = ChangeLogServiceClient::with_interceptor(channel, BearerToken::new("t").expect("token"));
        match audit(client, "provinces/2008-01".into(), "registry", seq, hash, None).await {
            Err(Stop::Unreachable(detail)) => {
                assert!(detail.contains("ended the audit's read at entry 4 before the centre's cursor 10"), "{detail}")
            }
            Err(Stop::Integrity(detail)) => panic!("an alarm for a read cut short: {detail}"),
            Err(_) => panic!("another stop"),
            Ok(_) => panic!("an audit of 4 entries of 10 passed"),
        }
        task.abort();
    }
}
