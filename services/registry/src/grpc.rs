//! The thin gRPC adapter of `einfo.registry.v1.RegistryService`: takes the caller from the
//! request, calls [`Registry`], maps errors through the one table.

use einfo_common::auth::caller;
use einfo_proto::registry::v1 as pb;
use pb::registry_service_server::{RegistryService, RegistryServiceServer};
use tonic::{Request, Response, Status};

use crate::service::Registry;

/// The gRPC face of a [`Registry`].
#[derive(Clone)]
pub struct RegistryGrpc(pub Registry);

impl RegistryGrpc {
    /// The tonic server.
    pub fn into_server(self) -> RegistryServiceServer<Self> {
        RegistryServiceServer::new(self)
    }
}

macro_rules! rpcs {
    ($($fn:ident($req:ty) -> $resp:ty => $method:ident;)*) => {
        #[tonic::async_trait]
        impl RegistryService for RegistryGrpc {
            $(
                async fn $fn(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    let caller = caller(&req)?;
                    Ok(Response::new(self.0.$method(&caller, req.into_inner()).await?))
                }
            )*

            async fn list_site_kinds(
                &self,
                _req: Request<pb::ListSiteKindsRequest>,
            ) -> Result<Response<pb::ListSiteKindsResponse>, Status> {
                Ok(Response::new(self.0.site_kinds()))
            }
        }
    };
}

rpcs! {
    register_site(pb::RegisterSiteRequest) -> pb::Site => register_site;
    get_site(pb::GetSiteRequest) -> pb::Site => get_site;
    list_sites(pb::ListSitesRequest) -> pb::ListSitesResponse => list_sites;
    update_site(pb::UpdateSiteRequest) -> pb::Site => update_site;
    correct_site(pb::CorrectSiteRequest) -> pb::Site => correct_site;
    void_site(pb::VoidSiteRequest) -> pb::Site => void_site;
    add_site_record(pb::AddSiteRecordRequest) -> pb::SiteRecord => add_site_record;
    submit_application(pb::SubmitApplicationRequest) -> pb::LicenceApplication => submit_application;
    get_application(pb::GetApplicationRequest) -> pb::LicenceApplication => get_application;
    list_applications(pb::ListApplicationsRequest) -> pb::ListApplicationsResponse => list_applications;
    request_supplement(pb::RequestSupplementRequest) -> pb::LicenceApplication => request_supplement;
    receive_supplement(pb::ReceiveSupplementRequest) -> pb::LicenceApplication => receive_supplement;
    approve_application(pb::ApproveApplicationRequest) -> pb::ApproveApplicationResponse => approve_application;
    reject_application(pb::RejectApplicationRequest) -> pb::LicenceApplication => reject_application;
    get_licence(pb::GetLicenceRequest) -> pb::Licence => get_licence;
    list_licences(pb::ListLicencesRequest) -> pb::ListLicencesResponse => list_licences;
    amend_licence(pb::AmendLicenceRequest) -> pb::Licence => amend_licence;
    renew_licence(pb::RenewLicenceRequest) -> pb::Licence => renew_licence;
    suspend_licence(pb::SuspendLicenceRequest) -> pb::Licence => suspend_licence;
    revoke_licence(pb::RevokeLicenceRequest) -> pb::Licence => revoke_licence;
    apply_sanction(pb::ApplySanctionRequest) -> pb::Licence => apply_sanction;
    import_sites(pb::ImportSitesRequest) -> pb::ImportSitesResponse => import_sites;
    get_statistics(pb::GetStatisticsRequest) -> pb::GetStatisticsResponse => statistics;
    list_sites_as_of(pb::ListSitesAsOfRequest) -> pb::ListSitesAsOfResponse => list_sites_as_of;
}
