//! The reporting service's clients: registry and inspection (their GetStatistics), and the
//! centre. Provincial services are called as the `service` role of the jurisdiction concerned
//! (subject `reporting`), like inspection calls registry.

use std::sync::Arc;
use std::time::Duration;

use central::central_service_client::CentralServiceClient;
use einfo_common::auth::{BearerToken, Caller, Role, Signer};
use einfo_common::tls::Transport;
use einfo_domain::Jurisdiction;
use einfo_proto::central::v1 as central;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;
use insp::inspection_service_client::InspectionServiceClient;
use reg::registry_service_client::RegistryServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A channel to `endpoint`, whose server must act for every one of `expect`.
fn channel(
    transport: &Transport,
    endpoint: &str,
    expect: &[Jurisdiction],
    timeout: Option<Duration>,
) -> anyhow::Result<Channel> {
    transport.channel(endpoint, expect, |e| {
        let e = e.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true);
        match timeout {
            Some(t) => e.timeout(t),
            None => e,
        }
    })
}

fn token(keys: &Signer, j: &Jurisdiction) -> Result<BearerToken, tonic::Status> {
    let caller = Caller { subject: "reporting".into(), role: Role::Service, jurisdiction: *j };
    keys.issue(&caller, Duration::from_secs(300))
        .and_then(|t| BearerToken::new(&t))
        .map_err(|e| tonic::Status::internal(format!("cannot sign a service token: {e}")))
}

/// Lazily connected channels to registry and inspection.
#[derive(Clone)]
pub struct StatisticsLinks {
    registry: Channel,
    inspection: Channel,
    keys: Signer,
}

impl StatisticsLinks {
    /// Links to `registry` and `inspection` (e.g. `http://127.0.0.1:50051`); each call may take `timeout`.
    /// Links to registry and inspection serving `hosted` (their certificates must act for them).
    pub fn new(
        transport: &Transport,
        hosted: &[Jurisdiction],
        registry: &str,
        inspection: &str,
        keys: impl Into<Signer>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            registry: channel(transport, registry, hosted, Some(timeout))?,
            inspection: channel(transport, inspection, hosted, Some(timeout))?,
            keys: keys.into(),
        })
    }

    /// Registry's GetStatistics in `j`.
    pub async fn registry_statistics(
        &self,
        j: &Jurisdiction,
        req: reg::GetStatisticsRequest,
    ) -> Result<reg::GetStatisticsResponse, tonic::Status> {
        let mut c = RegistryServiceClient::with_interceptor(self.registry.clone(), token(&self.keys, j)?);
        Ok(c.get_statistics(req).await?.into_inner())
    }

    /// Inspection's GetStatistics in `j`.
    pub async fn inspection_statistics(
        &self,
        j: &Jurisdiction,
        req: insp::GetStatisticsRequest,
    ) -> Result<insp::GetStatisticsResponse, tonic::Status> {
        let mut c = InspectionServiceClient::with_interceptor(self.inspection.clone(), token(&self.keys, j)?);
        Ok(c.get_statistics(req).await?.into_inner())
    }

    /// Registry's register of `j` as it stood at `as_of`, every page.
    pub async fn register(
        &self,
        j: &Jurisdiction,
        as_of: prost_types::Timestamp,
    ) -> Result<Vec<reg::RegisterEntry>, tonic::Status> {
        let mut c = RegistryServiceClient::with_interceptor(self.registry.clone(), token(&self.keys, j)?);
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let req = reg::ListSitesAsOfRequest {
                parent: j.to_string(),
                as_of: Some(as_of),
                page_size: 1000,
                page_token: std::mem::take(&mut page_token),
            };
            let page = c.list_sites_as_of(req).await?.into_inner();
            out.extend(page.entries);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// Inspection's decisions of `j` dated in [`start`, `end`) as they stood at `as_of`, every page.
    pub async fn decisions(
        &self,
        j: &Jurisdiction,
        as_of: prost_types::Timestamp,
        start: prost_types::Timestamp,
        end: prost_types::Timestamp,
    ) -> Result<Vec<insp::DecisionEntry>, tonic::Status> {
        let mut c = InspectionServiceClient::with_interceptor(self.inspection.clone(), token(&self.keys, j)?);
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let req = insp::ListDecisionsAsOfRequest {
                parent: j.to_string(),
                as_of: Some(as_of),
                period_start: Some(start),
                period_end: Some(end),
                page_size: 1000,
                page_token: std::mem::take(&mut page_token),
            };
            let page = c.list_decisions_as_of(req).await?.into_inner();
            out.extend(page.entries);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }
}

/// A lazily connected channel to the centre, and its public key when configured.
#[derive(Clone)]
pub struct CentreLink {
    channel: Channel,
    calls: Channel,
    keys: Signer,
    configured_key: Option<[u8; 32]>,
    pinned: Arc<tokio::sync::Mutex<Option<[u8; 32]>>>,
}

/// A client of the centre that sends a token.
pub type CentreClient = CentralServiceClient<InterceptedService<Channel, BearerToken>>;

impl CentreLink {
    /// A link to the centre at `endpoint`; `public_key` from the settings, if any (otherwise it
    /// is fetched once with GetPublicKey and pinned). Unary calls may take `timeout`; the feed
    /// stream has none.
    pub fn new(
        transport: &Transport,
        endpoint: &str,
        public_key: Option<[u8; 32]>,
        keys: impl Into<Signer>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            channel: channel(transport, endpoint, &[Jurisdiction::Central], None)?,
            calls: channel(transport, endpoint, &[Jurisdiction::Central], Some(timeout))?,
            keys: keys.into(),
            configured_key: public_key,
            pinned: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// A client for the feed (no call timeout), acting for `j`.
    pub fn streaming(&self, j: &Jurisdiction) -> Result<CentreClient, tonic::Status> {
        Ok(CentralServiceClient::with_interceptor(self.channel.clone(), token(&self.keys, j)?))
    }

    /// A client for unary calls, acting for `j`.
    pub fn client(&self, j: &Jurisdiction) -> Result<CentreClient, tonic::Status> {
        Ok(CentralServiceClient::with_interceptor(self.calls.clone(), token(&self.keys, j)?))
    }

    /// The key configured in the settings, if any.
    pub fn configured_key(&self) -> Option<[u8; 32]> {
        self.configured_key
    }

    /// The key pinned in memory, if fetched before.
    pub(crate) fn pinned(&self) -> &tokio::sync::Mutex<Option<[u8; 32]>> {
        &self.pinned
    }
}
