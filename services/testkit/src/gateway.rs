//! A national gateway for tests: the real [`einfo_gateway::Gateway`] (with the centre it serves)
//! on 127.0.0.1:0 with its own database, checking tokens with the test nodes' secret, retrying
//! quickly; restartable on the same port and database.

use std::net::SocketAddr;
use std::time::Duration;

use einfo_app::gateway::RunningGateway;
use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_common::clock::SharedClock;
use einfo_common::config::Settings;
use einfo_common::tls::Transport;
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as pb;
use einfo_proto::gateway::v1::directory_service_client::DirectoryServiceClient;
use einfo_proto::gateway::v1::national_service_client::NationalServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::{Backend, CentralClient, TestDb, TestNode, init_logs, settings};

/// A national-service client that sends a bearer token.
pub type NationalClient = NationalServiceClient<InterceptedService<Channel, BearerToken>>;
/// A directory client that sends a bearer token.
pub type DirectoryClient = DirectoryServiceClient<InterceptedService<Channel, BearerToken>>;

/// The gateway, running for one test.
pub struct TestGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The keys tokens are issued with (the test nodes' secret).
    pub keys: TokenKeys,
    /// Its settings (change them, then restart, to test another configuration).
    pub settings: Settings,
    /// Its database (kept until the test ends).
    pub db: TestDb,
    /// The clock the gateway and its centre read (the system's unless the test gave one).
    pub clock: SharedClock,
    /// Plaintext in most tests; the gateway's own TLS identity when its settings give one.
    pub transport: Transport,
    running: Option<RunningGateway>,
}

/// Gateway settings for tests: fast retries, a 10 s staleness bound.
pub fn gateway_settings(db: &TestDb) -> Settings {
    let mut s = settings(db, &[]);
    s.gateway.retry_initial_ms = 50;
    s.gateway.retry_max_ms = 500;
    s.gateway.max_staleness_ms = 10_000;
    s.gateway.fanout_timeout_ms = 2_000;
    s.gateway.signing_key_file = Some(db.dir.join("centre.key"));
    s
}

impl TestGateway {
    /// A gateway on a fresh database with `directory` (jurisdiction, endpoint); `None` when
    /// PostgreSQL is unavailable outside CI.
    pub async fn start(backend: Backend, directory: &[(Jurisdiction, String)]) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let s = gateway_settings(&db);
        Some(Self::start_with(db, s, directory).await)
    }

    /// A gateway with these settings, its directory file written from `directory`.
    pub async fn start_with(db: TestDb, s: Settings, directory: &[(Jurisdiction, String)]) -> Self {
        Self::start_with_clock(db, s, directory, einfo_common::clock::system()).await
    }

    /// [`TestGateway::start_with`] reading `clock`.
    pub async fn start_with_clock(
        db: TestDb,
        mut s: Settings,
        directory: &[(Jurisdiction, String)],
        clock: SharedClock,
    ) -> Self {
        init_logs();
        let file = db.dir.join("directory.toml");
        std::fs::write(&file, einfo_gateway::directory::render(directory)).expect("write directory");
        s.gateway.directory_file = Some(file);
        let keys = TokenKeys::from_secret(&s.token_secret().expect("test secret")).expect("keys");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let running =
            einfo_app::gateway::start_with_clock(&s, listener, clock.clone()).await.expect("start the gateway");
        let transport = s.transport(clock.clone()).expect("the gateway's transport");
        let mut g = Self { addr: running.addr, keys, settings: s, db, clock, transport, running: Some(running) };
        g.wait_serving().await;
        // The directory file is read at each start; later changes go through the RPC.
        g.settings.gateway.directory_file = None;
        g
    }

    async fn wait_serving(&self) {
        crate::wait_serving_on(&self.transport, &self.url(), "gateway").await;
    }

    /// `http://127.0.0.1:{port}`, or `https://…` when the gateway serves TLS.
    pub fn url(&self) -> String {
        format!("{}://{}", self.transport.scheme(), self.addr)
    }

    /// The running gateway.
    pub fn gateway(&self) -> &einfo_gateway::Gateway {
        &self.running.as_ref().expect("the gateway is running").gateway
    }

    /// Stops the gateway (the database stays).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("gateway stopped cleanly");
        }
    }

    /// Starts a stopped gateway again on the same port and database.
    pub async fn start_again_same_port(&mut self) {
        assert!(self.running.is_none(), "the gateway at {} is still running", self.addr);
        let listener = crate::bind_again(self.addr).await;
        self.running = Some(
            einfo_app::gateway::start_with_clock(&self.settings, listener, self.clock.clone())
                .await
                .expect("restart the gateway"),
        );
        self.wait_serving().await;
    }

    fn token(&self, caller: &Caller) -> BearerToken {
        BearerToken::new(&self.keys.issue(caller, Duration::from_secs(3600)).expect("issue token")).expect("token")
    }

    fn channel(&self) -> Channel {
        self.transport.channel(&self.url(), &[], |e| e).expect("endpoint")
    }

    /// The central administrator.
    pub fn admin_caller() -> Caller {
        Caller { subject: "central-admin".into(), role: Role::CentralAdmin, jurisdiction: Jurisdiction::Central }
    }

    /// A central analyst.
    pub fn analyst_caller() -> Caller {
        Caller { subject: "analyst".into(), role: Role::CentralAnalyst, jurisdiction: Jurisdiction::Central }
    }

    /// National queries as `caller`.
    pub fn national_as(&self, caller: &Caller) -> NationalClient {
        NationalServiceClient::with_interceptor(self.channel(), self.token(caller))
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    /// National queries as a central analyst.
    pub fn national(&self) -> NationalClient {
        self.national_as(&Self::analyst_caller())
    }

    /// The directory as the central administrator.
    pub fn directory(&self) -> DirectoryClient {
        DirectoryServiceClient::with_interceptor(self.channel(), self.token(&Self::admin_caller()))
    }

    /// The centre this gateway serves, as the central administrator.
    pub fn centre_admin(&self) -> CentralClient {
        einfo_proto::central::v1::central_service_client::CentralServiceClient::with_interceptor(
            self.channel(),
            self.token(&Self::admin_caller()),
        )
    }

    /// The centre as a province's reporting service.
    pub fn centre_as_province(&self, code: &str) -> CentralClient {
        einfo_proto::central::v1::central_service_client::CentralServiceClient::with_interceptor(
            self.channel(),
            self.token(&crate::FakeCentre::reporter_caller(code)),
        )
    }

    /// The replication state of every jurisdiction.
    pub async fn status(&self) -> Vec<pb::JurisdictionFreshness> {
        self.national()
            .get_replication_status(pb::GetReplicationStatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .jurisdictions
    }

    /// Waits until every one of `jurisdictions` is LIVE with its registry log applied up to at
    /// least the given sequence; panics after `within`.
    pub async fn wait_synced(&self, want: &[(Jurisdiction, u64)], within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let status = self.status().await;
            let behind: Vec<String> = want
                .iter()
                .filter(|(j, seq)| {
                    !status.iter().any(|f| {
                        f.jurisdiction == j.to_string()
                            && f.state() == pb::FreshnessState::Live
                            && f.registry_sequence >= *seq
                    })
                })
                .map(|(j, seq)| {
                    let f = status.iter().find(|f| f.jurisdiction == j.to_string());
                    format!(
                        "{j} (want {seq}, have {:?})",
                        f.map(|f| (f.state(), f.registry_sequence, f.detail.clone()))
                    )
                })
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "not synced within {within:?}: {}", behind.join("; "));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the gateway is LIVE on every province of `nodes` with both of its logs
    /// (registry and inspection) applied up to the heads the nodes have now; panics after 30 s.
    pub async fn wait_caught_up(&self, nodes: &[&TestNode]) {
        let mut want = Vec::new();
        for n in nodes {
            want.extend(log_heads(n, &n.settings.provinces).await);
        }
        self.wait_at_least(&want).await;
    }

    /// [`TestGateway::wait_caught_up`] for provinces `codes` (2008 scheme) of `node` alone (the
    /// others may be in alarm, or behind on purpose).
    pub async fn wait_caught_up_on(&self, node: &TestNode, codes: &[&str]) {
        let want = log_heads(node, codes).await;
        self.wait_at_least(&want).await;
    }

    /// Waits until each (jurisdiction, registry sequence, inspection sequence) of `want` is LIVE
    /// with both logs applied up to at least those sequences.
    async fn wait_at_least(&self, want: &[(String, u64, u64)]) {
        let what = format!("the gateway LIVE at (jurisdiction, registry, inspection) {want:?}");
        crate::eventually_within(Duration::from_secs(30), &what, || async {
            let status = self.status().await;
            want.iter()
                .all(|(j, registry, inspection)| {
                    status.iter().any(|f| {
                        f.jurisdiction == *j
                            && f.state() == pb::FreshnessState::Live
                            && f.registry_sequence >= *registry
                            && f.inspection_sequence >= *inspection
                    })
                })
                .then_some(())
        })
        .await;
    }
}

/// (jurisdiction, registry log head, inspection log head) of provinces `codes` of `node`.
async fn log_heads<S: AsRef<str>>(node: &TestNode, codes: &[S]) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for code in codes {
        let code = code.as_ref();
        let registry = node.log_sequence(code, "registry").await;
        let inspection = node.log_sequence(code, "inspection").await;
        out.push((crate::province(code).to_string(), registry, inspection));
    }
    out
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.gateway.stop();
        }
    }
}

/// A partial-mode option set for `grouping`.
pub fn partial(grouping: pb::Grouping) -> Option<pb::QueryOptions> {
    Some(pb::QueryOptions { mode: pb::QueryMode::Partial as i32, grouping: grouping as i32, max_staleness: None })
}

/// A strict-mode option set for `grouping`.
pub fn strict(grouping: pb::Grouping) -> Option<pb::QueryOptions> {
    Some(pb::QueryOptions { mode: pb::QueryMode::Strict as i32, grouping: grouping as i32, max_staleness: None })
}
