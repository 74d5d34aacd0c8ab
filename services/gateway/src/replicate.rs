//! Replication of one (jurisdiction, service) log into the national store.
//!
//! The replicator reads the stored cursor (sequence and hash), asks the node for its log head,
//! then follows `StreamChanges(after = cursor, after_hash)`. Each entry is verified against the
//! chain (density, `prev_hash`, its own hash) before it is applied; a batch is applied with the
//! cursor in one transaction, so a crash loses nothing and applies nothing twice. A broken chain,
//! or `FAILED_PRECONDITION` on the cursor's hash (an altered or forked history), raises the
//! jurisdiction's integrity alarm and stops its replication until an operator clears it. On
//! every (re)connection, and every `audit_interval_ms`, the log is also read again from its start
//! up to the cursor and verified, which finds an entry altered behind the cursor. An unreachable
//! node is retried with exponential backoff.

use std::time::Duration;

use einfo_common::auth::BearerToken;
use einfo_common::changelog::{ChainVerifier, ChangeEntry, GENESIS_HASH};
use einfo_common::error::Reason;
use einfo_domain::Jurisdiction;
use einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient;
use einfo_proto::log::v1::{GetLogHeadRequest, GetLogHeadResponse, StreamChangesRequest};
use futures::FutureExt;
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

fn client(gw: &Gateway, endpoint: &str) -> Result<Client, Stop> {
    let channel = gw.channel(endpoint).map_err(|e| Stop::Unreachable(e.to_string()))?;
    let token = gw.token().map_err(|e| Stop::Unreachable(e.to_string()))?;
    Ok(ChangeLogServiceClient::with_interceptor(channel, token).max_decoding_message_size(64 * 1024 * 1024))
}

async fn follow(gw: &Gateway, j: &Jurisdiction, service: &'static str, endpoint: &str) -> Stop {
    let mut c = match client(gw, endpoint) {
        Ok(c) => c,
        Err(s) => return s,
    };
    let (seq, hash) = match store::cursor(gw.db().conn(), j, service).await {
        Ok(c) => c.unwrap_or((0, GENESIS_HASH.to_vec())),
        Err(e) => return Stop::Unreachable(format!("national store: {e}")),
    };
    // A store of 0.1 applied entries without keeping them: the first audit keeps what it reads.
    let mut backfill = match store::kept_count(gw.db().conn(), &j.to_string(), service, seq).await {
        Ok(n) => n < seq,
        Err(e) => return Stop::Unreachable(format!("national store: {e}")),
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
    // restarted with a backlog stalled for hours.
    let mut next_audit = if seq > 0 { Some(tokio::time::Instant::now()) } else { periodic() };
    let mut auditing: Option<futures::future::BoxFuture<'static, Result<(), Stop>>> = None;
    loop {
        let first = tokio::select! {
            m = stream.message() => m,
            r = async { auditing.as_mut().expect("guarded by the condition").await }, if auditing.is_some() => {
                auditing = None;
                if let Err(stop) = r {
                    return stop;
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
                auditing = Some(Box::pin(audit(c.clone(), j.to_string(), service, upto, hash, keeper)));
                next_audit = None;
                continue;
            }
        };
        let mut batch: Vec<ChangeEntry> = match first {
            Ok(Some(r)) => r.entry.into_iter().collect(),
            Ok(None) => return Stop::Ended,
            Err(s) => return classify(&s),
        };
        let mut failure = None;
        while batch.len() < batch_max {
            match stream.message().now_or_never() {
                Some(Ok(Some(r))) => batch.extend(r.entry),
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
        for e in batch {
            match verifier.check(&e) {
                Ok(()) => good.push(e),
                Err(b) => {
                    failure = Some(Stop::Integrity(b.to_string()));
                    break;
                }
            }
        }
        if !good.is_empty() {
            if let Err(e) = apply(gw, j, service, &good).await {
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
        if let Some(f) = failure {
            return f;
        }
    }
}

/// Applies a verified batch with its cursor in one transaction, then mirrors the summary
/// changes in memory.
async fn apply(gw: &Gateway, j: &Jurisdiction, service: &'static str, entries: &[ChangeEntry]) -> anyhow::Result<()> {
    let mut delta = store::Delta::default();
    let txn = gw.db().begin_write().await?;
    let err = |e: einfo_common::error::ApiError| anyhow::anyhow!("{e}");
    store::apply(txn.txn(), j, service, entries, gw.db().now(), &mut delta, store::Entries::Keep).await.map_err(err)?;
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
) -> Result<(), Stop> {
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
    while v.last_sequence() < seq {
        match stream.message().await {
            Ok(Some(r)) => {
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
    Ok(())
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
            Ok(()) => panic!("an audit of 4 entries of 10 passed"),
        }
        task.abort();
    }
}
