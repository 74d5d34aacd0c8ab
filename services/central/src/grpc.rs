//! The thin gRPC adapter of `einfo.central.v1.CentralService`.

use einfo_common::auth::caller;
use einfo_proto::central::v1 as pb;
use pb::central_service_server::{CentralService, CentralServiceServer};
use tonic::{Request, Response, Status};

use crate::service::{Central, FeedStream, ReferenceStream};

/// The gRPC face of a [`Central`].
#[derive(Clone)]
pub struct CentralGrpc(pub Central);

impl CentralGrpc {
    /// The tonic server.
    pub fn into_server(self) -> CentralServiceServer<Self> {
        CentralServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl CentralService for CentralGrpc {
    type StreamFeedStream = FeedStream;
    type StreamReferenceDataStream = ReferenceStream;

    async fn stream_feed(&self, req: Request<pb::StreamFeedRequest>) -> Result<Response<FeedStream>, Status> {
        let caller = caller(&req)?;
        Ok(Response::new(self.0.stream_feed(&caller, req.into_inner())?))
    }

    async fn submit(&self, req: Request<pb::SubmitRequest>) -> Result<Response<pb::SubmitResponse>, Status> {
        let caller = caller(&req)?;
        Ok(Response::new(self.0.submit(&caller, req.into_inner()).await?))
    }

    /// Needs no token: the public key is public.
    async fn get_public_key(
        &self,
        _req: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::GetPublicKeyResponse>, Status> {
        Ok(Response::new(self.0.get_public_key()))
    }

    async fn stream_reference_data(
        &self,
        req: Request<pb::StreamReferenceDataRequest>,
    ) -> Result<Response<ReferenceStream>, Status> {
        caller(&req)?;
        Ok(Response::new(self.0.stream_reference_data(req.into_inner())))
    }

    async fn publish_reference_data(
        &self,
        req: Request<pb::PublishReferenceDataRequest>,
    ) -> Result<Response<pb::ReferenceData>, Status> {
        let caller = caller(&req)?;
        Ok(Response::new(self.0.publish_reference_data(&caller, req.into_inner()).await?))
    }

    async fn create_campaign(&self, req: Request<pb::CreateCampaignRequest>) -> Result<Response<pb::Campaign>, Status> {
        let caller = caller(&req)?;
        Ok(Response::new(self.0.create_campaign(&caller, req.into_inner()).await?))
    }

    async fn r#return(&self, req: Request<pb::ReturnRequest>) -> Result<Response<pb::CentralDecision>, Status> {
        let caller = caller(&req)?;
        Ok(Response::new(self.0.return_version(&caller, req.into_inner()).await?))
    }

    async fn accept(&self, req: Request<pb::AcceptRequest>) -> Result<Response<pb::CentralDecision>, Status> {
        let caller = caller(&req)?;
        Ok(Response::new(self.0.accept(&caller, req.into_inner()).await?))
    }

    async fn grant_exception(
        &self,
        req: Request<pb::GrantExceptionRequest>,
    ) -> Result<Response<pb::CentralDecision>, Status> {
        let caller = caller(&req)?;
        Ok(Response::new(self.0.grant_exception(&caller, req.into_inner()).await?))
    }

    async fn export_campaign(
        &self,
        req: Request<pb::ExportCampaignRequest>,
    ) -> Result<Response<pb::ExportCampaignResponse>, Status> {
        let caller = caller(&req)?;
        Ok(Response::new(self.0.export_campaign(&caller, req.into_inner()).await?))
    }
}
