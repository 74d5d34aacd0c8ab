//! The fault harness (issue 12, point 2): from a fixed seed and for a bounded time, writers register
//! sites in every province of several nodes while faults are injected at random — a node or the
//! gateway killed with SIGKILL and started again, a node hung (SIGSTOP, then SIGCONT), the
//! node ↔ gateway connections cut or slowed through a proxy, and on PostgreSQL the node ↔ database
//! connections cut, in the middle of transactions. After each fault the harness measures how long
//! until every province is `LIVE` at the gateway again. At the end it checks the history:
//!
//! - every acknowledged write is in its node exactly once (one site of that name, and the log holds
//!   one entry per site: nothing written twice by a retry);
//! - every log the gateway kept equals its node's: same size, same head hash;
//! - the strict national total equals the sum of the nodes' own counts;
//! - no integrity alarm was raised: none of these faults is tampering.
//!
//! It prints what it did and saw. CI runs it for `EINFO_FAULTS_SECONDS` (default 15) on each
//! database; a longer run: `EINFO_FAULTS_SECONDS=600 EINFO_FAULTS_SEED=7 <it binary> faults::`.
//! Nodes and the gateway are `einfo` child processes; the nodes' stores are SQLite or PostgreSQL
//! like the gateway's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::gateway::v1::entry_service_client::EntryServiceClient;
use einfo_proto::log::v1 as logpb;
use einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient;
use einfo_proto::registry::v1 as pb;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use einfo_testkit::process::{einfo, free_port, sigkill, site, tail, wait_serving};
use einfo_testkit::proxy::{ProxyMode, TcpProxy};
use einfo_testkit::{Backend, TestDb, province};
use tokio::sync::Mutex;

use crate::gateway_crash::GatewayProcess;

const SECRET: &str = "einfo-fault-harness-secret-0123456789-abcdefgh";
/// Nodes: the 63 provinces are split between them (a strict national query needs all 63).
const NODES: usize = 2;
/// Provinces of each node with a writer.
const WRITTEN_PER_NODE: usize = 3;
/// How long the gateway has to be `LIVE` everywhere again after a fault, before the run fails.
const RECOVERY_LIMIT: Duration = Duration::from_secs(60);
/// How long one write call may take before the writer gives up on it and sends it again.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

fn seconds() -> u64 {
    std::env::var("EINFO_FAULTS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15)
}

fn seed() -> u64 {
    std::env::var("EINFO_FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(12)
}

fn token(caller: &Caller) -> BearerToken {
    let keys = TokenKeys::from_secret(SECRET.as_bytes()).expect("token keys");
    BearerToken::new(&keys.issue(caller, Duration::from_secs(12 * 3600)).expect("token")).expect("bearer")
}

fn central_service() -> Caller {
    Caller { subject: "fault-gateway".into(), role: Role::Service, jurisdiction: Jurisdiction::Central }
}

fn lazy(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

/// One `einfo serve node` child process, always on the same address, behind a proxy for the
/// gateway and (on PostgreSQL) reaching its database through another.
struct Node {
    codes: Vec<String>,
    dir: PathBuf,
    listen: String,
    database_url: Option<String>,
    child: Option<tokio::process::Child>,
    log: PathBuf,
    link: TcpProxy,
    database: Option<TcpProxy>,
    _db: TestDb,
}

impl Node {
    async fn new(index: usize, codes: &[String], backend: Backend) -> Self {
        let db = TestDb::new(backend).await.expect("a database for the node");
        let listen = format!("127.0.0.1:{}", free_port());
        let link = TcpProxy::start(listen.parse().expect("address")).await;
        let (database, database_url) = if backend == Backend::Postgres {
            let target: std::net::SocketAddr = "127.0.0.1:5432".parse().expect("address");
            let proxy = TcpProxy::start_raw(target).await;
            let url = db.url.replacen("127.0.0.1:5432", &proxy.addr().to_string(), 1);
            assert_ne!(url, db.url, "the node's database URL names 127.0.0.1:5432: {}", db.url);
            (Some(proxy), Some(url))
        } else {
            (None, None)
        };
        let mut node = Self {
            codes: codes.to_vec(),
            dir: db.dir.clone(),
            log: db.dir.join(format!("node-{index}.log")),
            listen,
            database_url,
            child: None,
            link,
            database,
            _db: db,
        };
        node.spawn().await;
        node
    }

    /// Starts the node on its address and waits until it serves.
    async fn spawn(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (out, err) = einfo_testkit::process::log_file(&self.log);
            let mut cmd = einfo();
            cmd.args([
                "serve",
                "node",
                "--insecure",
                "--provinces",
                &self.codes.join(","),
                "--listen",
                &self.listen,
                "--data-dir",
            ])
            .arg(&self.dir)
            .env("EINFO_AUTH__SECRET", SECRET)
            .env("EINFO_DATABASE_POOL_SIZE", "4")
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
            if let Some(url) = &self.database_url {
                cmd.args(["--database-url", url]);
            }
            let mut child = cmd.spawn().expect("spawn the node");
            match wait_serving(&self.listen, &mut child, &self.log).await {
                Ok(()) => {
                    self.child = Some(child);
                    return;
                }
                // The address of a node just killed can take a moment to be free again.
                Err(e) if Instant::now() < deadline => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    tracing::debug!("node at {} did not start ({e}); again", self.listen);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the node at {} did not start: {e}\n{}", self.listen, tail(&self.log)),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().and_then(tokio::process::Child::id).expect("the node runs")
    }

    async fn kill(&mut self) {
        let mut child = self.child.take().expect("the node runs");
        sigkill(&mut child, "node").await;
    }

    async fn signal(&self, signal: &str) {
        let status = tokio::process::Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }
}

type Registry =
    RegistryServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>>;

/// The operator of `code`, at the node listening on `listen`.
fn registry(listen: &str, code: &str) -> Registry {
    let caller = Caller { subject: format!("writer-{code}"), role: Role::Operator, jurisdiction: province(code) };
    RegistryServiceClient::with_interceptor(lazy(listen), token(&caller))
}

/// The display names of every site the node holds in `code`.
async fn sites_of(listen: &str, code: &str) -> Vec<String> {
    let mut client = registry(listen, code);
    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_sites(pb::ListSitesRequest {
                parent: province(code).to_string(),
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("list the node's sites")
            .into_inner();
        names.extend(page.sites.into_iter().map(|s| s.display_name));
        if page.next_page_token.is_empty() {
            return names;
        }
        page_token = page.next_page_token;
    }
}

/// What the writers were told: per province, the display names of the sites acknowledged.
type Acknowledged = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// Registers sites in `code` until `stop`, each call sent again with the same request id until it
/// is answered (a call in flight when a fault struck may or may not have been applied: the
/// request id makes the retry return the first answer rather than write twice).
async fn write(listen: String, code: String, stop: Arc<AtomicBool>, acked: Acknowledged) -> usize {
    let mut client = registry(&listen, &code);
    let parent = province(&code).to_string();
    let mut retries = 0;
    for i in 0usize.. {
        if stop.load(Ordering::SeqCst) {
            return retries;
        }
        let name = format!("Trang {code} lỗi {i}");
        let request = pb::RegisterSiteRequest {
            parent: parent.clone(),
            site: Some(site(&name, &format!("fault-{code}-{i}.vn"))),
            request_id: format!("fault-{code}-{i}"),
        };
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, client.register_site(request.clone())).await {
                Ok(Ok(_)) => break,
                Ok(Err(s)) if matches!(s.code(), tonic::Code::InvalidArgument | tonic::Code::PermissionDenied) => {
                    panic!("{code} {i}: refused {s:?}")
                }
                _ => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        acked.lock().await.entry(code.clone()).or_default().push(name);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

/// Whether every province is `LIVE` at the gateway, with its registry log at least at the
/// sequence `want` names for it, or what is not.
async fn all_live(g: &GatewayProcess, codes: &[String], want: &BTreeMap<String, u64>) -> Result<(), String> {
    let status = g
        .national(SECRET)
        .get_replication_status(gw::GetReplicationStatusRequest {})
        .await
        .map_err(|e| format!("{e:?}"))?
        .into_inner();
    let mut not = Vec::new();
    for code in codes {
        let j = province(code).to_string();
        match status.jurisdictions.iter().find(|f| f.jurisdiction == j) {
            Some(f)
                if f.state() == gw::FreshnessState::Live
                    && f.registry_sequence >= want.get(code).copied().unwrap_or(0) => {}
            Some(f) if f.state() == gw::FreshnessState::Alarm => {
                panic!("{j} in ALARM after a fault that is not tampering: {}\n{}", f.detail, tail(&g.log))
            }
            f => not.push(format!(
                "{j}: {:?}, want {:?}",
                f.map(|f| (f.state(), f.registry_sequence, &f.detail)),
                want.get(code)
            )),
        }
    }
    if not.is_empty() { Ok(()) } else { Err(format!("{} not LIVE: {}", not.len(), not.join("; "))) }
}

/// How long until every province is `LIVE` again and the gateway holds what the nodes held
/// when the fault ended (`want`).
async fn recovery(g: &GatewayProcess, codes: &[String], want: &BTreeMap<String, u64>, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let r = all_live(g, codes, want).await;
        if r.is_ok() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < RECOVERY_LIMIT,
            "not LIVE {RECOVERY_LIMIT:?} after {what}: {}\n{}",
            r.unwrap_err(),
            tail(&g.log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The registry log heads of the provinces with a writer, from their nodes (a node just started
/// again may take a moment to answer).
async fn written_heads(nodes: &[Node]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for n in nodes {
        let mut changelog = ChangeLogServiceClient::with_interceptor(lazy(&n.listen), token(&central_service()));
        for code in n.codes.iter().take(WRITTEN_PER_NODE) {
            let request =
                logpb::GetLogHeadRequest { jurisdiction: province(code).to_string(), service: "registry".into() };
            let deadline = Instant::now() + RECOVERY_LIMIT;
            let head = loop {
                match changelog.get_log_head(request.clone()).await {
                    Ok(h) => break h.into_inner().sequence,
                    Err(e) => assert!(Instant::now() < deadline, "{code}: the node's log head: {e:?}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            out.insert(code.clone(), head);
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillNode,
    HangNode,
    KillGateway,
    CutLink,
    SlowLink,
    CutDatabase,
}

async fn faults_at_random_lose_nothing_and_the_national_view_recovers(backend: Backend) {
    let Some(store) = TestDb::new(backend).await else { return };
    let (run, seed) = (Duration::from_secs(seconds()), seed());
    let mut rng = fastrand::Rng::with_seed(seed);
    let codes: Vec<String> = einfo_domain::Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect();
    let mut nodes = Vec::new();
    for (i, share) in codes.chunks(codes.len().div_ceil(NODES)).enumerate() {
        nodes.push(Node::new(i, share, backend).await);
    }
    let entries: Vec<(Jurisdiction, String)> =
        nodes.iter().flat_map(|n| n.codes.iter().map(|c| (province(c), n.link.url()))).collect();
    let directory = store.dir.join("directory.toml");
    std::fs::write(&directory, einfo_gateway::directory::render(&entries)).expect("write the directory");
    let gateway_url = (backend == Backend::Postgres).then(|| store.url.clone());
    let mut g = GatewayProcess::start(&store.dir, &directory, gateway_url.as_deref(), SECRET).await;
    recovery(&g, &codes, &BTreeMap::new(), "the first start").await;

    // The writers, one per province, talk to their node directly (not through the proxy).
    let nodes = Arc::new(Mutex::new(nodes));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acknowledged = Arc::default();
    let mut writers = Vec::new();
    {
        let held = nodes.lock().await;
        for n in held.iter() {
            for code in n.codes.iter().take(WRITTEN_PER_NODE) {
                writers.push(tokio::spawn(write(n.listen.clone(), code.clone(), stop.clone(), acked.clone())));
            }
        }
    }

    let started = Instant::now();
    let mut done: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut recoveries: Vec<Duration> = Vec::new();
    let kinds: Vec<Fault> = [Fault::KillNode, Fault::HangNode, Fault::KillGateway, Fault::CutLink, Fault::SlowLink]
        .into_iter()
        .chain((backend == Backend::Postgres).then_some(Fault::CutDatabase))
        .collect();
    while started.elapsed() < run {
        let fault = kinds[rng.usize(..kinds.len())];
        let mut held = nodes.lock().await;
        let i = rng.usize(..held.len());
        let node = &mut held[i];
        match fault {
            Fault::KillNode => {
                node.kill().await;
                tokio::time::sleep(Duration::from_millis(rng.u64(0..500))).await;
                node.spawn().await;
            }
            Fault::HangNode => {
                node.signal("-STOP").await;
                tokio::time::sleep(Duration::from_millis(rng.u64(200..2000))).await;
                node.signal("-CONT").await;
            }
            Fault::KillGateway => {
                g.kill().await;
                tokio::time::sleep(Duration::from_millis(rng.u64(0..500))).await;
                g = GatewayProcess::start(&store.dir, &directory, gateway_url.as_deref(), SECRET).await;
            }
            Fault::CutLink => node.link.cut(),
            Fault::SlowLink => {
                node.link.set_mode(ProxyMode::Delay(Duration::from_millis(rng.u64(50..400))));
                tokio::time::sleep(Duration::from_millis(rng.u64(200..1500))).await;
                node.link.set_mode(ProxyMode::Pass);
            }
            Fault::CutDatabase => node.database.as_ref().expect("a database proxy").cut(),
        }
        let want = written_heads(&held).await;
        drop(held);
        *done.entry(fault).or_default() += 1;
        recoveries.push(recovery(&g, &codes, &want, &format!("{fault:?}")).await);
        tokio::time::sleep(Duration::from_millis(rng.u64(100..800))).await;
    }

    // The writers stop; each finishes the call it was making.
    stop.store(true, Ordering::SeqCst);
    let mut retries = 0;
    for w in writers {
        retries +=
            tokio::time::timeout(Duration::from_secs(60), w).await.expect("a writer stops").expect("writer task");
    }
    let held = nodes.lock().await;

    // History: every acknowledged write once in its node; the gateway's logs equal the nodes'.
    let acked = acked.lock().await;
    let mut node_total = 0i64;
    let mut entries_client = EntryServiceClient::with_interceptor(lazy(&g.addr), token(&central_service()));
    for n in held.iter() {
        let mut changelog = ChangeLogServiceClient::with_interceptor(lazy(&n.listen), token(&central_service()));
        for code in &n.codes {
            let j = province(code).to_string();
            let names = sites_of(&n.listen, code).await;
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for name in &names {
                *counts.entry(name.as_str()).or_default() += 1;
            }
            for name in acked.get(code).into_iter().flatten() {
                assert_eq!(counts.get(name.as_str()), Some(&1), "{j}: acknowledged {name} is there once");
            }
            assert!(counts.values().all(|c| *c == 1), "{j}: a site written twice");
            let head = changelog
                .get_log_head(logpb::GetLogHeadRequest { jurisdiction: j.clone(), service: "registry".into() })
                .await
                .expect("the node's log head")
                .into_inner();
            assert_eq!(head.sequence, names.len() as u64, "{j}: one log entry per site");
            node_total += names.len() as i64;
            // The gateway catches up with the last writes, then holds what the node holds.
            let deadline = Instant::now() + RECOVERY_LIMIT;
            loop {
                let kept = entries_client
                    .get_entries(gw::GetEntriesRequest {
                        jurisdiction: j.clone(),
                        service: "registry".into(),
                        after: 0,
                        page_size: 1,
                    })
                    .await
                    .map(tonic::Response::into_inner);
                match kept {
                    Ok(k) if k.kept_sequence == head.sequence => {
                        if head.sequence > 0 {
                            assert_eq!(k.kept_hash, head.hash, "{j}: the gateway's head hash is the node's");
                        }
                        break;
                    }
                    other => assert!(
                        Instant::now() < deadline,
                        "{j}: the gateway never caught up to {}: {other:?}",
                        head.sequence
                    ),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    recovery(&g, &codes, &written_heads(&held).await, "the end of the run").await;
    let strict = g
        .national(SECRET)
        .get_national_summary(gw::GetNationalSummaryRequest {
            options: einfo_testkit::gateway::strict(gw::Grouping::Provinces63),
        })
        .await
        .expect("a strict national summary")
        .into_inner();
    assert_eq!(strict.total, node_total, "the strict national total is the nodes' sum");
    let log = g.log.clone();
    g.terminate().await;
    let alarms: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ALARM") || l.contains("alarm raised"))
        .map(str::to_owned)
        .collect();
    assert!(alarms.is_empty(), "integrity alarms:\n{}", alarms.join("\n"));

    recoveries.sort();
    let writes: usize = acked.values().map(Vec::len).sum();
    eprintln!(
        "fault harness, {backend:?}, seed {seed}, {:?}: {writes} writes acknowledged ({retries} calls sent again), \
         {} faults {done:?}; recovery to LIVE everywhere: median {:?}, max {:?}",
        started.elapsed(),
        recoveries.len(),
        recoveries.get(recoveries.len() / 2).copied().unwrap_or_default(),
        recoveries.last().copied().unwrap_or_default(),
    );
}

einfo_testkit::both_backends!(faults_at_random_lose_nothing_and_the_national_view_recovers);
