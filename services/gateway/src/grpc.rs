//! The tonic services: `NationalService` (central admins and analysts) and `DirectoryService`
//! (central admins).

use std::pin::Pin;
use std::time::Duration;

use einfo_common::auth::{Role, caller};
use einfo_common::error::{ApiError, ApiResult, Reason};
use einfo_proto::gateway::v1 as pb;
use einfo_proto::gateway::v1::directory_service_server::{DirectoryService, DirectoryServiceServer};
use einfo_proto::gateway::v1::entry_service_server::{EntryService, EntryServiceServer};
use einfo_proto::gateway::v1::national_service_server::{NationalService, NationalServiceServer};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::Gateway;
use crate::fanout::request_deadline;

/// The shortest interval between two summaries of a watch.
const WATCH_MIN_INTERVAL: Duration = Duration::from_millis(200);
/// A watch re-checks freshness at least this often (staleness grows with time alone).
const WATCH_TICK: Duration = Duration::from_secs(1);

fn central_reader<T>(req: &Request<T>) -> ApiResult<()> {
    let c = caller(req)?;
    if matches!(c.role, Role::CentralAdmin | Role::CentralAnalyst) {
        Ok(())
    } else {
        Err(ApiError::new(
            Reason::RoleNotAllowed,
            format!("role {} may not read the national view; central-admin and central-analyst may", c.role),
        ))
    }
}

fn central_admin<T>(req: &Request<T>) -> ApiResult<()> {
    let c = caller(req)?;
    if c.role == Role::CentralAdmin {
        Ok(())
    } else {
        Err(ApiError::new(
            Reason::RoleNotAllowed,
            format!("role {} may not change the directory; central-admin may", c.role),
        ))
    }
}

/// `NationalService` over a [`Gateway`].
#[derive(Clone)]
pub struct NationalGrpc(pub Gateway);

impl NationalGrpc {
    /// The tonic server.
    pub fn into_server(self) -> NationalServiceServer<Self> {
        NationalServiceServer::new(self).max_encoding_message_size(64 * 1024 * 1024)
    }
}

type SummaryStream = Pin<Box<dyn Stream<Item = Result<pb::WatchNationalSummaryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NationalService for NationalGrpc {
    type WatchNationalSummaryStream = SummaryStream;

    async fn get_national_summary(
        &self,
        req: Request<pb::GetNationalSummaryRequest>,
    ) -> Result<Response<pb::NationalSummary>, Status> {
        central_reader(&req)?;
        let o = self.0.options(req.get_ref().options.as_ref())?;
        Ok(Response::new(self.0.summary(&o)?))
    }

    async fn watch_national_summary(
        &self,
        req: Request<pb::WatchNationalSummaryRequest>,
    ) -> Result<Response<SummaryStream>, Status> {
        central_reader(&req)?;
        let mut o = self.0.options(req.get_ref().options.as_ref())?;
        o.strict = false;
        let gw = self.0.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut revisions = gw.subscribe();
            let mut stopping = gw.stopping();
            let mut last: Option<(u64, Vec<(String, i32)>)> = None;
            loop {
                let summary = match gw.summary(&o) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                let key =
                    (summary.revision, summary.freshness.iter().map(|f| (f.jurisdiction.clone(), f.state)).collect());
                if last.as_ref() != Some(&key) {
                    last = Some(key);
                    if tx.send(Ok(pb::WatchNationalSummaryResponse { summary: Some(summary) })).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(WATCH_MIN_INTERVAL).await;
                }
                tokio::select! {
                    _ = revisions.changed() => {}
                    _ = tokio::time::sleep(WATCH_TICK) => {}
                    _ = tx.closed() => return,
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn list_expiring_licences(
        &self,
        req: Request<pb::ListExpiringLicencesRequest>,
    ) -> Result<Response<pb::ListExpiringLicencesResponse>, Status> {
        central_reader(&req)?;
        Ok(Response::new(self.0.expiring_licences(req.get_ref()).await?))
    }

    async fn list_overdue_applications(
        &self,
        req: Request<pb::ListOverdueApplicationsRequest>,
    ) -> Result<Response<pb::ListOverdueApplicationsResponse>, Status> {
        central_reader(&req)?;
        Ok(Response::new(self.0.overdue_applications(req.get_ref()).await?))
    }

    async fn get_enforcement_summary(
        &self,
        req: Request<pb::GetEnforcementSummaryRequest>,
    ) -> Result<Response<pb::GetEnforcementSummaryResponse>, Status> {
        central_reader(&req)?;
        Ok(Response::new(self.0.enforcement(req.get_ref()).await?))
    }

    async fn get_campaign_completeness(
        &self,
        req: Request<pb::GetCampaignCompletenessRequest>,
    ) -> Result<Response<pb::GetCampaignCompletenessResponse>, Status> {
        central_reader(&req)?;
        Ok(Response::new(self.0.completeness(req.get_ref()).await?))
    }

    async fn search_sites(
        &self,
        req: Request<pb::SearchSitesRequest>,
    ) -> Result<Response<pb::SearchSitesResponse>, Status> {
        central_reader(&req)?;
        Ok(Response::new(self.0.search(req.get_ref()).await?))
    }

    async fn list_conflicts(
        &self,
        req: Request<pb::ListConflictsRequest>,
    ) -> Result<Response<pb::ListConflictsResponse>, Status> {
        central_reader(&req)?;
        Ok(Response::new(self.0.conflicts(req.get_ref()).await?))
    }

    async fn find_domain_holders(
        &self,
        req: Request<pb::FindDomainHoldersRequest>,
    ) -> Result<Response<pb::FindDomainHoldersResponse>, Status> {
        central_reader(&req)?;
        let overall = request_deadline(req.metadata());
        Ok(Response::new(self.0.find_domain_holders(req.get_ref(), overall).await?))
    }

    async fn get_live_summary(
        &self,
        req: Request<pb::GetLiveSummaryRequest>,
    ) -> Result<Response<pb::GetLiveSummaryResponse>, Status> {
        central_reader(&req)?;
        let overall = request_deadline(req.metadata());
        Ok(Response::new(self.0.live_summary(req.get_ref(), overall).await?))
    }

    async fn get_replication_status(
        &self,
        req: Request<pb::GetReplicationStatusRequest>,
    ) -> Result<Response<pb::GetReplicationStatusResponse>, Status> {
        central_reader(&req)?;
        Ok(Response::new(self.0.replication_status()))
    }
}

/// `DirectoryService` over a [`Gateway`].
#[derive(Clone)]
pub struct DirectoryGrpc(pub Gateway);

impl DirectoryGrpc {
    /// The tonic server.
    pub fn into_server(self) -> DirectoryServiceServer<Self> {
        DirectoryServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl DirectoryService for DirectoryGrpc {
    async fn list_endpoints(
        &self,
        req: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        central_reader(&req)?;
        Ok(Response::new(pb::ListEndpointsResponse { entries: self.0.list_endpoints() }))
    }

    async fn set_endpoint(&self, req: Request<pb::SetEndpointRequest>) -> Result<Response<pb::DirectoryEntry>, Status> {
        central_admin(&req)?;
        let entry = req.get_ref().entry.clone().ok_or_else(|| ApiError::field("entry", "is required"))?;
        Ok(Response::new(self.0.set_endpoint(&entry).await?))
    }

    async fn remove_endpoint(
        &self,
        req: Request<pb::RemoveEndpointRequest>,
    ) -> Result<Response<pb::RemoveEndpointResponse>, Status> {
        central_admin(&req)?;
        self.0.remove_endpoint(&req.get_ref().jurisdiction).await?;
        Ok(Response::new(pb::RemoveEndpointResponse {}))
    }

    async fn clear_alarm(
        &self,
        req: Request<pb::ClearAlarmRequest>,
    ) -> Result<Response<pb::ClearAlarmResponse>, Status> {
        central_admin(&req)?;
        Ok(Response::new(pb::ClearAlarmResponse { freshness: Some(self.0.clear_alarm(req.get_ref()).await?) }))
    }
}

/// `EntryService` over a [`Gateway`].
#[derive(Clone)]
pub struct EntryGrpc(pub Gateway);

impl EntryGrpc {
    /// The tonic server.
    pub fn into_server(self) -> EntryServiceServer<Self> {
        EntryServiceServer::new(self).max_encoding_message_size(64 * 1024 * 1024)
    }
}

#[tonic::async_trait]
impl EntryService for EntryGrpc {
    async fn get_entries(
        &self,
        req: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let c = caller(&req)?;
        Ok(Response::new(self.0.get_entries(&c, req.get_ref()).await?))
    }
}
