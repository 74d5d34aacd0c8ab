//! `einfo.log.v1.ChangeLogService`: serves a node's logs to readers (the gateway, tests).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use einfo_domain::Jurisdiction;
use einfo_proto::log::v1::change_log_service_server::ChangeLogService as Api;
use einfo_proto::log::v1::{GetLogHeadRequest, GetLogHeadResponse, StreamChangesRequest, StreamChangesResponse};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::store::{LogId, head, read_entries};
use crate::auth::caller;
use crate::db::Database;
use crate::error::{ApiError, ApiResult, Reason};

/// Entries read from the database at once. A page is read only when the stream's channel
/// ([`BUFFER`]) has room for all of it, so a stream nobody reads holds [`BUFFER`] entries at most
/// (plus what tonic and HTTP/2 hold of the messages being sent), whatever the log's length, while
/// a reader that reads finds the next page read before it has taken the last.
const PAGE: usize = 8;
/// What a stream buffers at most: a page being read by its reader and half of one more.
const BUFFER: usize = PAGE + PAGE / 2;
/// How often a follower looks for entries committed by another process, and whether its reader
/// has stalled past the idle timeout.
const POLL: Duration = Duration::from_secs(1);
/// How long a follow stream's reader may take nothing while entries wait before the stream is
/// ended, unless told otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Serves the logs of the jurisdictions a node hosts, for the services it runs.
#[derive(Clone)]
pub struct ChangeLogService {
    db: Database,
    hosted: Arc<HashSet<Jurisdiction>>,
    services: Arc<Vec<&'static str>>,
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    idle_timeout: Duration,
    open: Arc<AtomicUsize>,
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
        }
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
        let stream = async_stream(move |tx| async move {
            let _open = open;
            let mut after = r.after;
            loop {
                // Room for a whole page before reading it. A follow stream whose reader takes
                // nothing for the idle timeout while entries wait is ended; a quiet log's stream,
                // whose reader waits for the next entry, is not.
                let waiting_since = db.now();
                let stalled = || follow && db.now() - waiting_since >= idle_timeout;
                let mut permits = loop {
                    tokio::select! {
                        p = tx.reserve_many(PAGE) => match p {
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
                    permit.send(Ok(StreamChangesResponse { entry: Some(e) }));
                }
                drop(permits);
                if full {
                    continue;
                }
                if !follow {
                    return;
                }
                tokio::select! {
                    _ = commits.changed() => {}
                    () = tokio::time::sleep(POLL) => {}
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
