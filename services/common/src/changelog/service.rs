//! `einfo.log.v1.ChangeLogService`: serves a node's logs to readers (the gateway, tests).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use einfo_domain::Jurisdiction;
use einfo_proto::log::v1::change_log_service_server::ChangeLogService as Api;
use einfo_proto::log::v1::{
    AddCosignatureRequest, AddCosignatureResponse, Checkpoint, GetCheckpointRequest, GetCheckpointResponse,
    GetLogHeadRequest, GetLogHeadResponse, StreamChangesRequest, StreamChangesResponse,
};
use futures::Stream;
use sea_orm::ConnectionTrait;
use tonic::{Request, Response, Status};

use super::checkpoint::NoteKey;
use super::store::{LogId, head, read_entries};
use super::{checkpoint, merkle};
use crate::auth::caller;
use crate::db::{Database, micros, stmt};
use crate::error::{ApiError, ApiResult, Reason};

/// Entries read from the database at once. A page is read only when the stream's channel
/// ([`BUFFER`]) has room for all of it, so a stream nobody reads holds [`BUFFER`] entries at most
/// (plus what tonic and HTTP/2 hold of the messages being sent), whatever the log's length, while
/// a reader that reads finds the next page read before it has taken the last.
const PAGE: usize = 8;
/// What a stream buffers at most: a page being read by its reader and half of one more (room
/// for a page and a checkpoint is reserved before a page is read).
const BUFFER: usize = PAGE + PAGE / 2;
/// How often a follower looks for entries committed by another process, and whether its reader
/// has stalled past the idle timeout.
const POLL: Duration = Duration::from_secs(1);
/// How long a follow stream's reader may take nothing while entries wait before the stream is
/// ended, unless told otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often a stream sends a checkpoint at most: one is sent as soon as the stream has sent
/// every committed entry, then no more than this often while entries keep coming.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Serves the logs of the jurisdictions a node hosts, for the services it runs.
#[derive(Clone)]
pub struct ChangeLogService {
    db: Database,
    hosted: Arc<HashSet<Jurisdiction>>,
    services: Arc<Vec<&'static str>>,
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    idle_timeout: Duration,
    open: Arc<AtomicUsize>,
    key: Option<NoteKey>,
    ca_der: Option<Arc<Vec<u8>>>,
}

/// Counts one open stream for as long as it lives.
struct OpenStream(Arc<AtomicUsize>);

impl OpenStream {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::AcqRel);
        Self(open.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ChangeLogService {
    /// For these jurisdictions and services.
    pub fn new(db: Database, hosted: impl IntoIterator<Item = Jurisdiction>, services: &[&'static str]) -> Self {
        Self {
            db,
            hosted: Arc::new(hosted.into_iter().collect()),
            services: Arc::new(services.to_vec()),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            open: Arc::new(AtomicUsize::new(0)),
            key: None,
            ca_der: None,
        }
    }

    /// Signs checkpoints with `key` (the node's certificate key; unsigned without one) and checks
    /// the centre's cosignatures against the CA `ca_der` (kept unchecked without one).
    #[must_use]
    pub fn with_signing(mut self, key: Option<NoteKey>, ca_der: Option<Vec<u8>>) -> Self {
        self.key = key;
        self.ca_der = ca_der.map(Arc::new);
        self
    }

    /// Ends a follow stream whose reader took nothing for `timeout` by the database's clock while
    /// entries waited for it (`limits.stream_idle_timeout_ms`): the stream's buffer is full and
    /// stays full. A stream whose reader waits at the head of a quiet log is not ended. The
    /// stream ends as a finished one (status OK, after what was buffered): a reader that comes
    /// back reconnects from its cursor. Checked every second.
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How many `StreamChanges` streams are being served: each counts from its opening until
    /// the task that feeds it has ended (its end sent, its reader gone, or its idle timeout).
    pub fn open_streams(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Ends every following stream (at shutdown: a reader that follows would otherwise hold the
    /// server's graceful drain until its timeout). Readers reconnect and resume from their cursor.
    pub fn stop_streams(&self) {
        let _ = self.stopping.send(true);
    }

    /// The tonic server.
    pub fn into_server(self) -> einfo_proto::log::v1::change_log_service_server::ChangeLogServiceServer<Self> {
        einfo_proto::log::v1::change_log_service_server::ChangeLogServiceServer::new(self)
    }

    fn resolve<T>(&self, req: &Request<T>, jurisdiction: &str, service: &str) -> ApiResult<LogId> {
        let caller = caller(req)?;
        let j = Jurisdiction::parse(jurisdiction).map_err(|e| ApiError::field("jurisdiction", e.to_string()))?;
        caller.authorize_read(&j)?;
        if !self.hosted.contains(&j) {
            return Err(ApiError::new(Reason::JurisdictionNotHosted, format!("this node does not host {j}")));
        }
        let Some(service) = self.services.iter().find(|s| **s == service) else {
            if !super::SERVICES.contains(&service) {
                return Err(ApiError::field(
                    "service",
                    format!("'{service}' is not an einfo service; expected one of {:?}", super::SERVICES),
                ));
            }
            return Err(ApiError::new(
                Reason::ServiceNotRun,
                format!("this process does not run {service}; it runs {:?}", self.services),
            ));
        };
        Ok(LogId { jurisdiction: j, service })
    }
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<StreamChangesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Api for ChangeLogService {
    type StreamChangesStream = EntryStream;

    async fn stream_changes(&self, req: Request<StreamChangesRequest>) -> Result<Response<EntryStream>, Status> {
        let log = self.resolve(&req, &req.get_ref().jurisdiction, &req.get_ref().service)?;
        let r = req.into_inner();
        if r.after > 0 {
            let at = read_entries(self.db.conn(), &log, r.after - 1, 1).await?;
            match at.first() {
                Some(e) if e.sequence == r.after && e.hash == r.after_hash => {}
                Some(e) if e.sequence == r.after => {
                    return Err(ApiError::new(
                        Reason::HistoryMismatch,
                        format!("entry {} of {log} has another hash than the reader's: the histories differ", r.after),
                    )
                    .into());
                }
                _ => {
                    let (seq, _) = head(self.db.conn(), &log).await?;
                    return Err(ApiError::new(
                        Reason::HistoryMismatch,
                        format!(
                            "{log} ends at {seq}, before the reader's cursor {}: restored or forked history",
                            r.after
                        ),
                    )
                    .into());
                }
            }
        } else if !r.after_hash.is_empty() && r.after_hash != super::GENESIS_HASH {
            return Err(ApiError::field("after_hash", "must be empty when after is 0").into());
        }
        let db = self.db.clone();
        let follow = r.follow;
        let idle_timeout = chrono::Duration::from_std(self.idle_timeout).unwrap_or(chrono::Duration::MAX);
        let mut commits = db.subscribe_commits();
        let mut stopping = self.stopping.subscribe();
        let open = OpenStream::new(&self.open);
        let key = self.key.clone();
        let stream = async_stream(move |tx| async move {
            let _open = open;
            let mut after = r.after;
            // The size of the last checkpoint sent, and when.
            let mut signed = 0;
            let mut signed_at: Option<tokio::time::Instant> = None;
            loop {
                // Room for a whole page and a checkpoint before reading it. A follow stream whose
                // reader takes nothing for the idle timeout while entries wait is ended; a quiet
                // log's stream, whose reader waits for the next entry, is not.
                let waiting_since = db.now();
                let stalled = || follow && db.now() - waiting_since >= idle_timeout;
                let mut permits = loop {
                    tokio::select! {
                        p = tx.reserve_many(PAGE + 1) => match p {
                            Ok(p) => break p,
                            Err(_) => return,
                        },
                        () = tokio::time::sleep(POLL) => if stalled() {
                            tracing::info!(%log, after, "a follow stream's reader took nothing for the idle timeout: stream ended");
                            return;
                        },
                        _ = stopping.wait_for(|s| *s) => return,
                    }
                };
                let page = match read_entries(db.conn(), &log, after, PAGE as u64).await {
                    Ok(p) => p,
                    Err(e) => {
                        if let Some(permit) = permits.next() {
                            permit.send(Err(e.into()));
                        }
                        return;
                    }
                };
                let full = page.len() == PAGE;
                for (e, permit) in page.into_iter().zip(&mut permits) {
                    after = e.sequence;
                    permit.send(Ok(StreamChangesResponse { entry: Some(e), checkpoint: None }));
                }
                if full {
                    continue;
                }
                // Every committed entry is sent: a checkpoint of them, unless one was sent less
                // than CHECKPOINT_EVERY ago (then when that has passed, if nothing came since).
                let now = tokio::time::Instant::now();
                if after > signed && (signed_at.is_none_or(|t| now >= t + CHECKPOINT_EVERY) || !follow) {
                    let m = match sign(&db, key.as_ref(), &log, after).await {
                        Ok(c) => Ok(StreamChangesResponse { entry: None, checkpoint: Some(c) }),
                        Err(e) => Err(e.into()),
                    };
                    let failed = m.is_err();
                    if let Some(permit) = permits.next() {
                        permit.send(m);
                    }
                    if failed {
                        return;
                    }
                    (signed, signed_at) = (after, Some(now));
                }
                drop(permits);
                if !follow {
                    return;
                }
                let due = (after > signed).then(|| signed_at.map_or(now, |t| t + CHECKPOINT_EVERY));
                tokio::select! {
                    _ = commits.changed() => {}
                    () = tokio::time::sleep(POLL) => {}
                    () = async { tokio::time::sleep_until(due.unwrap_or(now)).await }, if due.is_some() => {}
                    () = tx.closed() => return,
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_log_head(&self, req: Request<GetLogHeadRequest>) -> Result<Response<GetLogHeadResponse>, Status> {
        let log = self.resolve(&req, &req.get_ref().jurisdiction, &req.get_ref().service)?;
        let (sequence, hash) = head(self.db.conn(), &log).await?;
        Ok(Response::new(GetLogHeadResponse { sequence, hash }))
    }

    async fn get_checkpoint(
        &self,
        req: Request<GetCheckpointRequest>,
    ) -> Result<Response<GetCheckpointResponse>, Status> {
        let log = self.resolve(&req, &req.get_ref().jurisdiction, &req.get_ref().service)?;
        let r = req.into_inner();
        let conn = self.db.conn();
        let (head, _) = head(conn, &log).await?;
        let mut out = GetCheckpointResponse::default();
        let size = if r.cosigned {
            let (size, note, cosigner) =
                newest_cosigned(&self.db, &log, r.inclusion_of.max(1)).await?.ok_or_else(|| {
                    ApiError::not_found(format!(
                        "a checkpoint of {log} holding entry {} cosigned by the centre (none received yet)",
                        r.inclusion_of.max(1)
                    ))
                })?;
            let certificate = self.key.as_ref().map(|k| k.certificate().to_vec()).unwrap_or_default();
            out.checkpoint = Some(Checkpoint { note, certificate });
            out.cosigner_certificate = cosigner;
            size
        } else {
            let size = if r.size == 0 { head } else { r.size };
            if size > head {
                return Err(ApiError::field("size", format!("{log} holds {head} entries, fewer than {size}")).into());
            }
            out.checkpoint = Some(sign(&self.db, self.key.as_ref(), &log, size).await?);
            size
        };
        if r.consistency_from > 0 {
            out.consistency_proof = merkle::consistency(conn, &log, size, r.consistency_from)
                .await?
                .into_iter()
                .map(|h| h.0.to_vec())
                .collect();
        }
        if r.inclusion_of > 0 {
            out.inclusion_proof =
                merkle::inclusion(conn, &log, size, r.inclusion_of).await?.into_iter().map(|h| h.0.to_vec()).collect();
            out.entry = read_entries(conn, &log, r.inclusion_of - 1, 1).await?.into_iter().next();
        }
        Ok(Response::new(out))
    }

    async fn add_cosignature(
        &self,
        req: Request<AddCosignatureRequest>,
    ) -> Result<Response<AddCosignatureResponse>, Status> {
        let log = self.resolve(&req, &req.get_ref().jurisdiction, &req.get_ref().service)?;
        let cosigner = caller(&req)?;
        if !cosigner.jurisdiction.is_central() {
            return Err(ApiError::new(
                Reason::NotYourJurisdiction,
                format!("only the centre cosigns a checkpoint; the caller acts for {}", cosigner.jurisdiction),
            )
            .into());
        }
        let r = req.into_inner();
        let now = self.db.now();
        let c = checkpoint::check(&r.note, &[], None, now, &log).map_err(|e| ApiError::field("note", e.to_string()))?;
        let (head, _) = head(self.db.conn(), &log).await?;
        if c.size == 0 || c.size > head || merkle::root(self.db.conn(), &log, c.size).await? != c.root {
            return Err(ApiError::field("note", format!("not a checkpoint of {log} at size {}", c.size)).into());
        }
        match &self.ca_der {
            Some(ca) => {
                checkpoint::check_cosignature(&r.note, &r.certificate, ca, now)
                    .map_err(|e| ApiError::field("note", e))?;
            }
            None => {
                signed_note::Note::from_bytes(r.note.as_bytes())
                    .map_err(|e| ApiError::field("note", format!("not a signed note: {e}")))?;
            }
        }
        let done = self
            .db
            .conn()
            .execute_raw(stmt(
                self.db.backend(),
                "INSERT INTO log_cosignatures (jurisdiction, service, size, note, certificate, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                [
                    log.jurisdiction.to_string().into(),
                    log.service.into(),
                    (c.size as i64).into(),
                    r.note.into(),
                    r.certificate.into(),
                    micros(now).into(),
                ],
            ))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(AddCosignatureResponse { kept: done.rows_affected() == 1 }))
    }
}

/// The checkpoint of `log` at `size`, signed with `key` (unsigned without one).
async fn sign(db: &Database, key: Option<&NoteKey>, log: &LogId, size: u64) -> ApiResult<Checkpoint> {
    let root = merkle::root(db.conn(), log, size).await?;
    let text = checkpoint::body(log, size, root);
    Ok(match key {
        Some(k) => {
            Checkpoint { note: k.sign(&text).map_err(ApiError::internal)?, certificate: k.certificate().to_vec() }
        }
        None => Checkpoint { note: text, certificate: Vec::new() },
    })
}

/// The newest checkpoint of `log` of at least `size` entries the centre cosigned: its size, note
/// and the cosigner's certificate.
async fn newest_cosigned(db: &Database, log: &LogId, size: u64) -> ApiResult<Option<(u64, String, Vec<u8>)>> {
    let row = db
        .conn()
        .query_one_raw(stmt(
            db.backend(),
            "SELECT size, note, certificate FROM log_cosignatures WHERE jurisdiction = $1 AND service = $2 AND size >= $3
             ORDER BY size DESC LIMIT 1",
            [log.jurisdiction.to_string().into(), log.service.into(), (size as i64).into()],
        ))
        .await?;
    row.map(|r| Ok((r.try_get_by_index::<i64>(0)? as u64, r.try_get_by_index(1)?, r.try_get_by_index(2)?))).transpose()
}

/// A stream fed by a task through a bounded channel of [`BUFFER`] entries (back-pressure: the task waits
/// for the reader before it reads more).
fn async_stream<F, Fut>(f: F) -> EntryStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<StreamChangesResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(BUFFER);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
