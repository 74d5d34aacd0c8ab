//! The thin gRPC adapter of `einfo.reporting.v1.ReportingService`.

use einfo_common::auth::caller;
use einfo_proto::reporting::v1 as pb;
use pb::reporting_service_server::{ReportingService, ReportingServiceServer};
use tonic::{Request, Response, Status};

use crate::service::Reporting;

/// The gRPC face of a [`Reporting`].
#[derive(Clone)]
pub struct ReportingGrpc(pub Reporting);

impl ReportingGrpc {
    /// The tonic server.
    pub fn into_server(self) -> ReportingServiceServer<Self> {
        ReportingServiceServer::new(self)
    }
}

macro_rules! rpcs {
    ($($fn:ident($req:ty) -> $resp:ty => $method:ident;)*) => {
        #[tonic::async_trait]
        impl ReportingService for ReportingGrpc {
            $(
                async fn $fn(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    let caller = caller(&req)?;
                    Ok(Response::new(self.0.$method(&caller, req.into_inner()).await?))
                }
            )*
        }
    };
}

rpcs! {
    list_campaigns(pb::ListCampaignsRequest) -> pb::ListCampaignsResponse => list_campaigns;
    compile_report(pb::CompileReportRequest) -> pb::CompileReportResponse => compile_report;
    get_report(pb::GetReportRequest) -> pb::GetReportResponse => get_report;
    override_value(pb::OverrideValueRequest) -> pb::Report => override_value;
    set_narrative(pb::SetNarrativeRequest) -> pb::Report => set_narrative;
    set_report_document(pb::SetReportDocumentRequest) -> pb::Report => set_report_document;
    submit_report(pb::SubmitReportRequest) -> pb::Report => submit_report;
    export_report(pb::ExportReportRequest) -> pb::ExportReportResponse => export_report;
}
