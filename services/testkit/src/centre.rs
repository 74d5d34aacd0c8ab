//! A fake centre for tests: the real [`einfo_central::Central`] served on 127.0.0.1:0 with its
//! own database, health and reflection, checking tokens with the same secret as test nodes
//! ([`crate::settings`]), so that one [`TokenKeys`] issues tokens for both. It can be stopped
//! and started again on the same port ("centre down"), keeping its database and signing key.

use std::net::SocketAddr;
use std::time::Duration;

use einfo_central::Central;
use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_common::clock::SharedClock;
use einfo_domain::Jurisdiction;
use einfo_proto::central::v1::central_service_client::CentralServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::{Backend, TestDb, init_logs, settings};

/// A central client that sends a bearer token.
pub type CentralClient = CentralServiceClient<InterceptedService<Channel, BearerToken>>;

/// The centre, running for one test.
pub struct FakeCentre {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The keys its tokens are checked with (the test nodes' secret).
    pub keys: TokenKeys,
    /// Its database (kept until the test ends).
    pub db: TestDb,
    /// The clock the centre reads (the system's unless the test gave one).
    pub clock: SharedClock,
    central: Option<Central>,
    running: Option<Running>,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl FakeCentre {
    /// A centre on a fresh database; `None` when PostgreSQL is unavailable outside CI.
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with_clock(backend, einfo_common::clock::system()).await
    }

    /// A centre reading `clock` (receive times, deadlines); `None` when PostgreSQL is
    /// unavailable outside CI.
    pub async fn start_with_clock(backend: Backend, clock: SharedClock) -> Option<Self> {
        init_logs();
        let db = TestDb::new(backend).await?;
        let keys = TokenKeys::from_secret(&settings(&db, &[]).token_secret().expect("test secret")).expect("keys");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("address");
        let mut c = Self { addr, keys, db, clock, central: None, running: None };
        c.launch(listener).await;
        Some(c)
    }

    fn key_path(&self) -> std::path::PathBuf {
        self.db.dir.join("centre-signing.key")
    }

    async fn launch(&mut self, listener: tokio::net::TcpListener) {
        let signer = einfo_central::load_or_create_signer(&self.key_path()).expect("signing key");
        let db = self.db.connect().await.with_clock(self.clock.clone());
        let central = Central::open(db, signer).await.expect("open the centre");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(einfo_central::serve(listener, central.clone(), self.keys.clone(), async {
            let _ = stopped.await;
        }));
        self.central = Some(central);
        self.running = Some(Running { stop, task });
        self.wait_serving().await;
    }

    async fn wait_serving(&self) {
        crate::wait_serving_at(&self.url(), "centre").await;
    }

    /// Its URL, `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The running centre's logic (e.g. [`Central::completeness`]).
    pub fn central(&self) -> &Central {
        self.central.as_ref().expect("the centre is running")
    }

    /// The public key receipts verify with.
    pub fn public_key(&self) -> [u8; 32] {
        self.central().public_key()
    }

    /// Stops serving (the database and signing key stay): calls fail with `UNAVAILABLE`.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            r.task.await.expect("centre task").expect("centre stopped cleanly");
        }
        if let Some(c) = self.central.take() {
            let _ = c.db().clone().close().await;
        }
    }

    /// Starts a stopped centre again on the same port, database and signing key.
    pub async fn start_again_same_port(&mut self) {
        assert!(self.running.is_none(), "the centre at {} is still running", self.addr);
        let listener = crate::bind_again(self.addr).await;
        self.launch(listener).await;
    }

    /// Stops the centre and starts it again on the same port, database and signing key.
    pub async fn restart_same_port(&mut self) {
        self.stop().await;
        self.start_again_same_port().await;
    }

    /// A token for `caller`.
    pub fn token(&self, caller: &Caller) -> String {
        self.keys.issue(caller, Duration::from_secs(3600)).expect("issue token")
    }

    /// A client acting as `caller`; connects lazily, so it can be made while the centre is down.
    pub fn client_as(&self, caller: &Caller) -> CentralClient {
        let ch = tonic::transport::Endpoint::from_shared(self.url()).expect("endpoint").connect_lazy();
        CentralServiceClient::with_interceptor(ch, BearerToken::new(&self.token(caller)).expect("token"))
    }

    /// The central administrator.
    pub fn admin_caller() -> Caller {
        Caller { subject: "central-admin".into(), role: Role::CentralAdmin, jurisdiction: Jurisdiction::Central }
    }

    /// A client of the central administrator.
    pub fn admin(&self) -> CentralClient {
        self.client_as(&Self::admin_caller())
    }

    /// The reporting service of a province (2008 scheme code), as it calls the centre.
    pub fn reporter_caller(code: &str) -> Caller {
        Caller { subject: format!("reporting-{code}"), role: Role::Service, jurisdiction: crate::province(code) }
    }

    /// A client of a province's reporting service (role `service`).
    pub fn province(&self, code: &str) -> CentralClient {
        self.client_as(&Self::reporter_caller(code))
    }
}

impl Drop for FakeCentre {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            r.task.abort();
        }
    }
}
