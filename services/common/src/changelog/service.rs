//! `einfo.log.v1.ChangeLogService`: serves a node's logs to readers (the gateway, tests).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
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

const PAGE: u64 = 500;
/// How often a follower looks for entries committed by another process.
const POLL: Duration = Duration::from_secs(1);

/// Serves the logs of the jurisdictions a node hosts, for the services it runs.
#[derive(Clone)]
pub struct ChangeLogService {
    db: Database,
    hosted: Arc<HashSet<Jurisdiction>>,
    services: Arc<Vec<&'static str>>,
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

impl ChangeLogService {
    /// For these jurisdictions and services.
    pub fn new(db: Database, hosted: impl IntoIterator<Item = Jurisdiction>, services: &[&'static str]) -> Self {
        Self {
            db,
            hosted: Arc::new(hosted.into_iter().collect()),
            services: Arc::new(services.to_vec()),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
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
        let mut commits = db.subscribe_commits();
        let mut stopping = self.stopping.subscribe();
        let stream = async_stream(move |tx| async move {
            let mut after = r.after;
            loop {
                let page = match read_entries(db.conn(), &log, after, PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                let full = page.len() as u64 == PAGE;
                for e in page {
                    after = e.sequence;
                    if tx.send(Ok(StreamChangesResponse { entry: Some(e) })).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                if !follow {
                    return;
                }
                tokio::select! {
                    _ = commits.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = tx.closed() => return,
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

/// A stream fed by a task through a bounded channel (back-pressure: the task waits for the
/// reader).
fn async_stream<F, Fut>(f: F) -> EntryStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<StreamChangesResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
