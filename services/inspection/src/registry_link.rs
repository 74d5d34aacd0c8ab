//! The inspection service's client of registry: resolves sites and applies licence measures,
//! over gRPC, acting as the `service` role of the jurisdiction concerned.

use std::time::Duration;

use einfo_common::auth::{BearerToken, Caller, Role, Signer};
use einfo_domain::Jurisdiction;
use einfo_proto::registry::v1 as reg;
use reg::registry_service_client::RegistryServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A lazily connected channel to registry and the keys to sign the service's tokens.
#[derive(Clone)]
pub struct RegistryLink {
    channel: Channel,
    keys: Signer,
}

impl RegistryLink {
    /// A link to `endpoint` (e.g. `https://127.0.0.1:50051`), whose certificate must act for
    /// `hosted`; each call may take `timeout`.
    pub fn new(
        transport: &einfo_common::tls::Transport,
        endpoint: &str,
        hosted: &[Jurisdiction],
        keys: impl Into<Signer>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let channel = transport.channel(endpoint, hosted, |e| {
            e.connect_timeout(Duration::from_secs(2)).timeout(timeout).tcp_nodelay(true)
        })?;
        Ok(Self { channel, keys: keys.into() })
    }

    fn client(
        &self,
        j: &Jurisdiction,
    ) -> Result<RegistryServiceClient<InterceptedService<Channel, BearerToken>>, tonic::Status> {
        let caller = Caller { subject: "inspection".into(), role: Role::Service, jurisdiction: *j };
        let token = self
            .keys
            .issue(&caller, Duration::from_secs(300))
            .and_then(|t| BearerToken::new(&t))
            .map_err(|e| tonic::Status::internal(format!("cannot sign a service token: {e}")))?;
        Ok(RegistryServiceClient::with_interceptor(self.channel.clone(), token))
    }

    /// GetSite in `j`.
    pub async fn get_site(&self, j: &Jurisdiction, name: &str) -> Result<reg::Site, tonic::Status> {
        Ok(self.client(j)?.get_site(reg::GetSiteRequest { name: name.to_owned() }).await?.into_inner())
    }

    /// ApplySanction in `j`.
    pub async fn apply_sanction(
        &self,
        j: &Jurisdiction,
        req: reg::ApplySanctionRequest,
    ) -> Result<reg::Licence, tonic::Status> {
        Ok(self.client(j)?.apply_sanction(req).await?.into_inner())
    }
}
