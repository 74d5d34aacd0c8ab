//! The thin gRPC adapter of `einfo.inspection.v1.InspectionService`.

use einfo_common::auth::caller;
use einfo_proto::inspection::v1 as pb;
use pb::inspection_service_server::{InspectionService, InspectionServiceServer};
use tonic::{Request, Response, Status};

use crate::service::Inspection;

/// The gRPC face of an [`Inspection`].
#[derive(Clone)]
pub struct InspectionGrpc(pub Inspection);

impl InspectionGrpc {
    /// The tonic server.
    pub fn into_server(self) -> InspectionServiceServer<Self> {
        InspectionServiceServer::new(self)
    }
}

macro_rules! rpcs {
    ($($fn:ident($req:ty) -> $resp:ty => $method:ident;)*) => {
        #[tonic::async_trait]
        impl InspectionService for InspectionGrpc {
            $(
                async fn $fn(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    let caller = caller(&req)?;
                    Ok(Response::new(self.0.$method(&caller, req.into_inner()).await?))
                }
            )*

            async fn list_catalogue(
                &self,
                req: Request<pb::ListCatalogueRequest>,
            ) -> Result<Response<pb::ListCatalogueResponse>, Status> {
                Ok(Response::new(self.0.list_catalogue(req.into_inner())?))
            }

            async fn list_agencies(
                &self,
                _req: Request<pb::ListAgenciesRequest>,
            ) -> Result<Response<pb::ListAgenciesResponse>, Status> {
                Ok(Response::new(self.0.list_agencies()))
            }
        }
    };
}

rpcs! {
    create_plan(pb::CreatePlanRequest) -> pb::InspectionPlan => create_plan;
    get_plan(pb::GetPlanRequest) -> pb::InspectionPlan => get_plan;
    list_plans(pb::ListPlansRequest) -> pb::ListPlansResponse => list_plans;
    advance_plan(pb::AdvancePlanRequest) -> pb::InspectionPlan => advance_plan;
    record_inspection(pb::RecordInspectionRequest) -> pb::Inspection => record_inspection;
    get_inspection(pb::GetInspectionRequest) -> pb::Inspection => get_inspection;
    list_inspections(pb::ListInspectionsRequest) -> pb::ListInspectionsResponse => list_inspections;
    issue_decision(pb::IssueDecisionRequest) -> pb::SanctionDecision => issue_decision;
    get_decision(pb::GetDecisionRequest) -> pb::SanctionDecision => get_decision;
    list_decisions(pb::ListDecisionsRequest) -> pb::ListDecisionsResponse => list_decisions;
    record_decision_event(pb::RecordDecisionEventRequest) -> pb::SanctionDecision => record_decision_event;
    correct_decision(pb::CorrectDecisionRequest) -> pb::SanctionDecision => correct_decision;
    void_decision(pb::VoidDecisionRequest) -> pb::SanctionDecision => void_decision;
    get_statistics(pb::GetStatisticsRequest) -> pb::GetStatisticsResponse => statistics;
    list_decisions_as_of(pb::ListDecisionsAsOfRequest) -> pb::ListDecisionsAsOfResponse => list_decisions_as_of;
}
