//! Test helpers: a fresh database per test (SQLite in a temporary directory, or a PostgreSQL
//! database created and dropped around the test), real nodes on port 0 (every service, or one
//! [`NodeRole`] alone; restartable on the same port), tokens and clients, and a TCP proxy that
//! loses answers on demand ([`proxy`]).
//!
//! PostgreSQL is found at `EINFO_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached, a PostgreSQL test
//! panics if `CI` is set, and otherwise prints `POSTGRES UNAVAILABLE` and returns early.
#![forbid(unsafe_code)]

pub mod centre;
pub mod fixtures;
pub mod gateway;
pub mod harness;
pub mod pki;
pub mod process;
pub mod proxy;

use std::path::PathBuf;
use std::time::Duration;

use einfo_app::node::{self, Node, Options};
use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_common::clock::SharedClock;
use einfo_common::config::Settings;
use einfo_common::db::Database;
use einfo_common::tls::Transport;
use einfo_domain::Jurisdiction;
use einfo_proto::inspection::v1::inspection_service_client::InspectionServiceClient;
use einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use einfo_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use sea_orm::ConnectionTrait;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in a temporary directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server.
    Postgres,
}

/// The admin URL tests create their PostgreSQL databases through.
pub fn postgres_admin_url() -> String {
    std::env::var("EINFO_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether this runs on CI (`CI` set to anything but empty, `false` or `0`).
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A database that lives as long as the test: a directory removed on drop, or a PostgreSQL
/// database dropped on drop.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Its kind.
    pub backend: Backend,
    /// Scratch directory (data dir of nodes, SQLite file).
    pub dir: PathBuf,
    pg_name: Option<String>,
}

impl TestDb {
    /// A fresh database, or `None` when PostgreSQL is unreachable outside CI.
    pub async fn new(backend: Backend) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("einfo-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", dir.join("einfo.db").display());
                Some(Self { url, backend, dir, pg_name: None })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let conn = match tokio::time::timeout(Duration::from_secs(10), sea_orm::Database::connect(&admin)).await
                {
                    Ok(Ok(c)) => c,
                    other => {
                        let why = match other {
                            Ok(Err(e)) => e.to_string(),
                            _ => "timed out".into(),
                        };
                        if on_ci() {
                            panic!(
                                "PostgreSQL at {admin} is unreachable on CI ({why}); the PostgreSQL tests cannot run"
                            );
                        }
                        eprintln!("POSTGRES UNAVAILABLE at {admin} ({why}): this PostgreSQL test did not run");
                        let _ = std::fs::remove_dir_all(&dir);
                        return None;
                    }
                };
                let name = format!("einfo_test_{}", uuid::Uuid::new_v4().simple());
                conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
                let _ = conn.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin.clone());
                Some(Self { url: format!("{base}/{name}"), backend, dir, pg_name: Some(name) })
            }
        }
    }

    /// A new connection to it.
    pub async fn connect(&self) -> Database {
        Database::connect(&self.url).await.expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.pg_name.take() {
            let admin = postgres_admin_url();
            // Drop runs outside any runtime guarantee: use a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    if let Ok(c) = sea_orm::Database::connect(&admin).await {
                        let _ = c.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                        let _ = c.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// `provinces/2008-{code}`.
pub fn province(code: &str) -> Jurisdiction {
    Jurisdiction::parse(&format!("provinces/2008-{code}")).expect("a province of the 2008 scheme")
}

/// A registry client that sends a bearer token.
pub type RegistryClient = RegistryServiceClient<InterceptedService<Channel, BearerToken>>;
/// An inspection client that sends a bearer token.
pub type InspectionClient = InspectionServiceClient<InterceptedService<Channel, BearerToken>>;
/// A reporting client that sends a bearer token.
pub type ReportingClient = ReportingServiceClient<InterceptedService<Channel, BearerToken>>;
/// A change-log client that sends a bearer token.
pub type ChangeLogClient = ChangeLogServiceClient<InterceptedService<Channel, BearerToken>>;

pub use centre::{CentralClient, FakeCentre};
pub use einfo_app::node::Role as NodeRole;
pub use fixtures::{SiteExt, site};
pub use gateway::{DirectoryClient, NationalClient, TestGateway};
pub use harness::{eventually, eventually_within};
pub use proxy::{ProxyMode, TcpProxy};

/// A node serving on 127.0.0.1:0 for one test.
pub struct TestNode {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its token keys.
    pub keys: TokenKeys,
    /// Its settings.
    pub settings: Settings,
    /// Its database (kept until the test ends).
    pub db: TestDb,
    /// The services it runs.
    pub role: NodeRole,
    /// The clock its services read (the system's unless the test gave one).
    pub clock: SharedClock,
    /// How the test's own clients reach it: plaintext in most tests; over TLS, presenting the
    /// node's own certificate unless the test gives another (tests/it/tls.rs).
    pub client_transport: Transport,
    node: Option<Node>,
}

/// Settings for a test node on `db` hosting `provinces` of the 2008 scheme.
pub fn settings(db: &TestDb, provinces: &[&str]) -> Settings {
    let mut s = Settings {
        provinces: provinces.iter().map(|p| p.to_string()).collect(),
        data_dir: db.dir.clone(),
        database_url: Some(db.url.clone()),
        ..Default::default()
    };
    s.auth.secret = Some("einfo-test-secret-that-is-long-enough-0123456789".into());
    // Plaintext, as most tests exercise the services rather than the transport; tests/it/tls.rs
    // runs nodes and the gateway over mutual TLS.
    s.tls.insecure = true;
    s.registry.clock_interval_ms = 100;
    // Tests run many nodes at once against one PostgreSQL server (100 connections).
    s.database_pool_size = 8;
    // The shipped catalogue and the example rows the tests exercise licence measures with (no
    // example ships); a configured file wins over the centre's, so a test of the reference feed
    // sets it back to `None`.
    let catalogue = db.dir.join("test-catalogue.csv");
    std::fs::write(&catalogue, test_catalogue()).expect("write the test catalogue");
    s.inspection.catalogue_file = Some(catalogue);
    s
}

/// Rows of examples, never shipped: licence suspension and revocation, content removal and domain
/// withdrawal exercised end to end.
pub const EXAMPLE_CATALOGUE_ROWS: &str = include_str!("../data/example-catalogue-rows.csv");

/// The test nodes' violation catalogue: the shipped one and [`EXAMPLE_CATALOGUE_ROWS`].
pub fn test_catalogue() -> String {
    format!("{}{EXAMPLE_CATALOGUE_ROWS}", einfo_reference::catalogue::BUNDLED)
}

impl TestNode {
    /// A node on a fresh database hosting `provinces`; `None` when PostgreSQL is unavailable
    /// outside CI.
    pub async fn start(backend: Backend, provinces: &[&str]) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let s = settings(&db, provinces);
        Some(Self::start_on(db, s, Options::default()).await)
    }

    /// A node with these settings and options, waiting until it serves (unless a migration gate
    /// holds it).
    pub async fn start_on(db: TestDb, settings: Settings, options: Options) -> Self {
        Self::launch(db, settings, NodeRole::Node, options).await
    }

    /// A node running the services of `role` (a registry alone, an inspection alone that reaches
    /// registry at `settings.inspection.registry_endpoint`, or both), waiting until it serves.
    pub async fn start_role(db: TestDb, settings: Settings, role: NodeRole) -> Self {
        Self::launch(db, settings, role, Options::default()).await
    }

    async fn launch(db: TestDb, settings: Settings, role: NodeRole, mut options: Options) -> Self {
        init_logs();
        let gated = options.migration_gate.is_some();
        let clock = options.clock.get_or_insert_with(einfo_common::clock::system).clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let node = node::start(&settings, role, listener, options).await.expect("start node");
        let t = Self {
            addr: node.addr,
            client_transport: node.transport.clone(),
            keys: node.keys.clone().expect("a test node takes the shared test secret"),
            settings,
            db,
            role,
            clock,
            node: Some(node),
        };
        if !gated {
            t.wait_serving().await;
        }
        t
    }

    /// A node whose services read `clock`, on a fresh database hosting `provinces`; `None`
    /// when PostgreSQL is unavailable outside CI.
    pub async fn start_with_clock(backend: Backend, provinces: &[&str], clock: SharedClock) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let s = settings(&db, provinces);
        Some(Self::start_on(db, s, Options { clock: Some(clock), ..Options::default() }).await)
    }

    /// The paces of the node's background loops.
    pub fn background(&self) -> &node::Background {
        &self.node.as_ref().expect("the node is running").background
    }

    /// How many `StreamChanges` streams the node is serving.
    pub fn open_streams(&self) -> usize {
        self.node.as_ref().expect("the node is running").changelog.open_streams()
    }

    /// Runs one round of every background loop of the node and returns when all have ended,
    /// so what they do is visible; panics after 20 s.
    pub async fn run_background(&self) {
        let rounds = self.background().run_all(self.role);
        tokio::time::timeout(Duration::from_secs(20), rounds)
            .await
            .unwrap_or_else(|_| panic!("the background loops of the node at {} did not run within 20 s", self.addr));
    }

    fn options(&self) -> Options {
        Options { clock: Some(self.clock.clone()), ..Options::default() }
    }

    /// Waits until health says SERVING.
    pub async fn wait_serving(&self) {
        let ch = self.channel().await;
        let mut h = tonic_health_client(ch);
        for _ in 0..1200 {
            if let Ok(r) = h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await
                && r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("node at {} never became SERVING", self.addr);
    }

    /// The node's own transport, shared with its server: its TLS identity, which
    /// [`einfo_common::tls::Tls::reload`] re-reads.
    pub fn served_transport(&self) -> Transport {
        self.node.as_ref().expect("the node is running").transport.clone()
    }

    /// A channel to the node, over [`TestNode::client_transport`].
    pub async fn channel(&self) -> Channel {
        let endpoint = self.client_transport.endpoint(&self.url()).expect("endpoint");
        self.client_transport.connect(&endpoint, &[]).await.expect("connect to node")
    }

    /// `http://127.0.0.1:{port}`, or `https://…` when the node serves TLS.
    pub fn url(&self) -> String {
        format!("{}://{}", self.client_transport.scheme(), self.addr)
    }

    /// A token for `caller`.
    pub fn token(&self, caller: &Caller) -> String {
        self.keys.issue(caller, Duration::from_secs(3600)).expect("issue token")
    }

    /// The operator of a province (2008 scheme code).
    pub fn operator(code: &str) -> Caller {
        Caller { subject: format!("operator-{code}"), role: Role::Operator, jurisdiction: province(code) }
    }

    /// A central analyst.
    pub fn analyst() -> Caller {
        Caller { subject: "analyst".into(), role: Role::CentralAnalyst, jurisdiction: Jurisdiction::Central }
    }

    /// A registry client acting as `caller`.
    pub async fn registry_as(&self, caller: &Caller) -> RegistryClient {
        RegistryServiceClient::with_interceptor(
            self.channel().await,
            BearerToken::new(&self.token(caller)).expect("token"),
        )
    }

    /// A registry client of the operator of province `code`.
    pub async fn registry(&self, code: &str) -> RegistryClient {
        self.registry_as(&Self::operator(code)).await
    }

    /// An inspection client acting as `caller`.
    pub async fn inspection_as(&self, caller: &Caller) -> InspectionClient {
        InspectionServiceClient::with_interceptor(
            self.channel().await,
            BearerToken::new(&self.token(caller)).expect("token"),
        )
    }

    /// An inspection client of the inspector of province `code`.
    pub async fn inspection(&self, code: &str) -> InspectionClient {
        self.inspection_as(&Self::inspector(code)).await
    }

    /// The inspector of a province (2008 scheme code).
    pub fn inspector(code: &str) -> Caller {
        Caller { subject: format!("inspector-{code}"), role: Role::Inspector, jurisdiction: province(code) }
    }

    /// The reporting officer of a province (2008 scheme code).
    pub fn reporter(code: &str) -> Caller {
        Caller { subject: format!("reporter-{code}"), role: Role::Reporter, jurisdiction: province(code) }
    }

    /// A reporting client of the reporting officer of province `code`.
    pub async fn reporting(&self, code: &str) -> ReportingClient {
        ReportingServiceClient::with_interceptor(
            self.channel().await,
            BearerToken::new(&self.token(&Self::reporter(code))).expect("token"),
        )
    }

    /// A change-log client of the centre's gateway (`service` of `central`: a machine may read a
    /// log's entries, a person at the centre may not).
    pub async fn changelog(&self) -> ChangeLogClient {
        ChangeLogServiceClient::with_interceptor(
            self.channel().await,
            BearerToken::new(&self.token(&Self::central_service())).expect("token"),
        )
    }

    /// The centre's gateway as it calls nodes: the `service` of `central`.
    pub fn central_service() -> Caller {
        Caller { subject: "gateway".into(), role: Role::Service, jurisdiction: Jurisdiction::Central }
    }

    /// The last sequence of a province's registry log.
    pub async fn last_sequence(&self, code: &str) -> u64 {
        self.log_sequence(code, "registry").await
    }

    /// The last sequence of a province's log of `service` ("registry", "inspection", ...).
    pub async fn log_sequence(&self, code: &str, service: &str) -> u64 {
        let mut c = self.changelog().await;
        c.get_log_head(einfo_proto::log::v1::GetLogHeadRequest {
            jurisdiction: province(code).to_string(),
            service: service.into(),
        })
        .await
        .expect("log head")
        .into_inner()
        .sequence
    }

    /// Stops the node (the database stays until the test ends).
    /// The address serving only its health in plaintext (`health_listen`), when set.
    pub fn health_addr(&self) -> Option<std::net::SocketAddr> {
        self.node.as_ref().and_then(|n| n.health_addr)
    }

    /// Stops the node.
    pub async fn stop(&mut self) {
        if let Some(n) = self.node.take() {
            n.stop().await.expect("node stopped cleanly");
        }
    }

    /// Starts the node again on the same database and settings (a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let node = node::start(&self.settings, self.role, listener, self.options()).await.expect("restart node");
        self.addr = node.addr;
        self.node = Some(node);
        self.wait_serving().await;
    }

    /// Stops the node and starts it again on the same database, settings and port, so that
    /// clients configured with its address (another node's `registry_endpoint`) reach it again.
    pub async fn restart_same_port(&mut self) {
        self.stop().await;
        self.start_again_same_port().await;
    }

    /// Starts a node stopped with [`TestNode::stop`] again on the same database, settings and
    /// port.
    pub async fn start_again_same_port(&mut self) {
        assert!(self.node.is_none(), "the node at {} is still running", self.addr);
        // The old listener is closed by now, but the port may take a moment to become free.
        let listener = crate::bind_again(self.addr).await;
        let node = node::start(&self.settings, self.role, listener, self.options()).await.expect("restart node");
        assert_eq!(node.addr, self.addr);
        self.node = Some(node);
        self.wait_serving().await;
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(n) = self.node.take() {
            let _ = n.stopper().send(true);
        }
    }
}

/// Binds `addr` again after a server on it stopped (the port may take a moment to become free).
pub async fn bind_again(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "cannot bind {addr} again: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Waits until the server at `url` says SERVING (connecting as often as needed); panics after
/// 30 s naming `what`.
pub async fn wait_serving_at(url: &str, what: &str) {
    wait_serving_on(&Transport::Insecure, url, what).await;
}

/// [`wait_serving_at`] over `transport` (a TLS server is reached with a TLS identity).
pub async fn wait_serving_on(transport: &Transport, url: &str, what: &str) {
    let endpoint = transport.endpoint(url).expect("endpoint");
    for _ in 0..1200 {
        if let Ok(ch) = transport.connect(&endpoint, &[]).await {
            let mut h = tonic_health_client(ch);
            if let Ok(r) = h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await
                && r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} at {url} never became SERVING");
}

/// Asserts that a call failed on its connection (refused by TLS, say): no service answered it.
pub fn assert_not_connected(refused: tonic::Status) {
    use std::error::Error as _;
    // The code varies with where the connection broke (UNAVAILABLE, UNKNOWN, CANCELLED, or
    // INTERNAL when a TLS alert is read as HTTP/2); what does not is that it is the transport's.
    let transport = refused.source().is_some_and(|e| e.is::<tonic::transport::Error>());
    assert!(transport, "a failure of the connection, not an answer: {refused:?}");
}

/// A health client on a channel.
pub fn tonic_health_client(ch: Channel) -> tonic_health::pb::health_client::HealthClient<Channel> {
    tonic_health::pb::health_client::HealthClient::new(ch)
}

/// Log output for tests (`RUST_LOG` to see more), installed once.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A public key as lower-case hex (how settings take the centre's key).
pub fn hex(key: [u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// A timestamp `secs` seconds from now (negative for the past).
pub fn in_secs(secs: i64) -> prost_types::Timestamp {
    let t = einfo_common::clock::Clock::now(&einfo_common::clock::SystemClock)
        + chrono::Duration::milliseconds(secs * 1000);
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}
