//! `einfo bench-gateway`: the national gateway over 63 provincial nodes (one per province of the
//! 2008 scheme, each on its own SQLite database, started in this process), with the gateway as a
//! child process (`einfo serve gateway`) so that its peak memory is its own. In one run:
//!
//! - full initial replication of 63 × N sites into an empty national store (time and entries/s),
//!   next to a raw batched insert of as many rows of the same shape into a fresh store of the
//!   same kind;
//! - steady-state replication lag (a `RegisterSite` acknowledged → the entry applied nationally)
//!   while sites are registered at a modest rate across the provinces;
//! - `GetNationalSummary` next to a bare echo RPC, at a small and at the full data size;
//! - `GetLiveSummary` (fan-out to the 63 nodes) next to each node's own `GetStatistics`, once
//!   over bare loopback and once with a provincial network's round trip emulated;
//! - the gateway's peak memory (`VmHWM`).
//!
//! It prints figures; a missed target is information, never a failing exit.
//!
//! Why the nodes run in this process: 63 node processes would each carry a runtime and pools for
//! nothing the figures need, and only the gateway's memory is measured. The nodes still serve
//! over loopback, each on its own listener and database, so the gateway replicates 63 real logs
//! and a fan-out calls 63 real servers.
//!
//! Why a relay in front of each node: in a federation every province's node is a machine of its
//! own, reached over a network with a round trip of some milliseconds; here the 63 nodes share
//! this machine's cores, so one fan-out costs the sum of 63 nodes' work. The gateway reaches
//! each node through a relay in this process that holds each chunk for half the round trip in
//! each direction (none at first, `--network-rtt-ms` for the second fan-out phase), so the
//! fan-out is measured both as this machine can run it and as a federation would see it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_common::config::Settings;
use einfo_common::db::{Database, stmt};
use einfo_domain::Jurisdiction;
use einfo_gateway::Migrator;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::gateway::v1::national_service_client::NationalServiceClient;
use einfo_proto::log::v1::GetLogHeadRequest;
use einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient;
use einfo_proto::prost::Message as _;
use einfo_proto::registry::v1 as pb;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, Value};
use sea_orm_migration::MigratorTrait as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use crate::bench::{self, BenchArgs, EchoServer, Op, PgDb, Row, Stats, op, phase};
use crate::node::{self, Role as NodeRole};

/// Flags of `einfo bench-gateway`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchGatewayArgs {
    /// Sites seeded into each of the 63 provinces (one node each).
    #[arg(long, default_value_t = 10_000)]
    pub sites_per_province: u32,
    /// The smaller size the national summary is measured at too, before the rest is seeded
    /// (0: skip).
    #[arg(long, default_value_t = 1_000)]
    pub small_sites_per_province: u32,
    /// Seconds each latency phase runs after its warm-up.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// The gateway's national store (the nodes always run on SQLite).
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    pub database: StoreKind,
    /// Admin PostgreSQL URL (with `--database postgres`): fresh databases `einfo_bench_<uuid>`
    /// are created through it and dropped at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// Sites registered per second across the provinces while the replication lag is measured.
    #[arg(long, default_value_t = 20)]
    pub lag_rate: u32,
    /// The round trip (ms) emulated between the gateway and each node in the second fan-out
    /// phase: a provincial department's link to the ministry (0: skip that phase).
    #[arg(long, default_value_t = 20)]
    pub network_rtt_ms: u64,
    /// The `einfo` binary the gateway runs from (default: this one), to compare two builds of
    /// the gateway in the same kind of run.
    #[arg(long)]
    pub gateway_binary: Option<PathBuf>,
}

/// The kind of national store.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// An SQLite file in the gateway's data directory.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

impl StoreKind {
    fn label(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

type Registry = RegistryServiceClient<InterceptedService<Channel, BearerToken>>;
type National = NationalServiceClient<InterceptedService<Channel, BearerToken>>;

/// Rows per transaction of the raw baseline.
const RAW_TXN_ROWS: usize = 1_000;
/// Rows per INSERT statement of the raw baseline.
const RAW_STMT_ROWS: usize = 100;
/// Sites per `ImportSites` call when seeding.
const IMPORT_BATCH: u32 = 2_000;
/// `ImportSites` calls in flight while seeding (each node has its own database).
const IMPORT_CONCURRENCY: usize = 4;
/// Longest wait for a full replication.
const REPLICATION_LIMIT: Duration = Duration::from_secs(1800);
/// Interval of the replication-status poll that observes the lag.
const LAG_POLL: Duration = Duration::from_millis(1);

const ECHO: &str = "echo (Health/Check)";
const SUMMARY: &str = "GetNationalSummary";

/// The figures, printed at the end.
#[derive(Default)]
struct Report {
    seeding: Vec<(u32, u64, Duration)>,
    replication: Vec<Replication>,
    raw: Option<(u64, Duration)>,
    summary: Vec<(u32, Row)>,
    lag: Option<(Stats, u64, Duration)>,
    /// (emulated round trip ms, figures).
    fanout: Vec<(u64, FanOut)>,
    memory_kib: Option<(u64, u64)>,
}

struct Replication {
    sites_per_province: u32,
    entries: u64,
    time: Duration,
}

struct FanOut {
    fanout: Stats,
    /// (province, p50 ms, p99 ms, samples) of the slowest node by p99.
    slowest: (String, f64, f64, u64),
    /// (p50 ms, p99 ms, samples) of every node's calls together.
    pooled: (f64, f64, u64),
    /// Single-node calls in flight at once.
    single: usize,
    /// Median over the nodes of their p99.
    median_p99: f64,
    /// Sum over the nodes of their p50: the work one fan-out asks of this machine.
    sum_p50: f64,
    failures: u64,
}

/// Runs the benchmark and prints its table.
pub async fn run(args: BenchGatewayArgs) -> anyhow::Result<()> {
    let telemetry = einfo_common::telemetry::TelemetrySettings { log_filter: "warn".into(), ..Default::default() };
    let _telemetry = einfo_common::telemetry::init("einfo-bench-gateway", &telemetry)?;
    anyhow::ensure!(args.sites_per_province > 0, "--sites-per-province must be positive");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "einfo bench-gateway: 63 nodes × {} sites, national store on {}; {} s per latency phase; {cores} cores shared by the nodes (this process) and the gateway (child)",
        args.sites_per_province,
        args.database.label(),
        args.seconds
    );
    let tmp = std::env::temp_dir().join(format!("einfo-bench-gw-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let echo = EchoServer::start().await?;
    let mut report = Report::default();
    let mut pgs = Vec::new();
    let result = bench_on(&args, &tmp, echo.addr, &mut report, &mut pgs).await;
    for pg in pgs {
        pg.drop_database().await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    echo.stop().await?;
    print_report(&args, &report);
    result
}

/// The 63 nodes and the clients the benchmark calls them with.
struct Federation {
    codes: Vec<String>,
    nodes: Vec<node::Node>,
    keys: TokenKeys,
    secret: String,
    operators: Vec<Registry>,
    readers: Vec<Registry>,
    logs: Vec<ChangeLogServiceClient<InterceptedService<Channel, BearerToken>>>,
    parents: Vec<String>,
    gateway_binary: Option<PathBuf>,
}

impl Federation {
    async fn start(dir: &Path, gateway_binary: Option<PathBuf>) -> anyhow::Result<Self> {
        let codes = bench::p63_codes();
        let secret = bench::random_secret();
        let mut started = Vec::new();
        for (i, code) in codes.iter().enumerate() {
            let mut s = Settings {
                provinces: vec![code.clone()],
                data_dir: dir.join(format!("node-{i:02}")),
                database_url: None,
                ..Default::default()
            };
            s.auth.secret = Some(secret.clone());
            // Each start in a task of its own: `server::health` blocks on the health reporter's
            // lock, which never completes once the task's cooperative budget is spent (as it is
            // with 63 starts polled by one task).
            started.push(tokio::spawn(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                node::start(&s, NodeRole::Node, listener, Default::default()).await
            }));
        }
        let nodes: Vec<node::Node> =
            futures::future::join_all(started).await.into_iter().map(|r| r?).collect::<anyhow::Result<_>>()?;
        let keys = TokenKeys::from_secret(secret.as_bytes())?;
        let central = central_token(&keys)?;
        let (mut operators, mut readers, mut logs, mut parents) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (n, code) in nodes.iter().zip(&codes) {
            bench::wait_serving(n.addr, Duration::from_secs(120)).await?;
            let channel = bench::connect(n.addr).await?;
            operators.push(bench::registry_client(&channel, &keys, code)?);
            readers.push(RegistryServiceClient::with_interceptor(channel.clone(), central.clone()));
            logs.push(ChangeLogServiceClient::with_interceptor(channel, central.clone()));
            parents.push(bench::jurisdiction(code)?.to_string());
        }
        Ok(Self { codes, nodes, keys, secret, operators, readers, logs, parents, gateway_binary })
    }

    /// Seeds sites `from..to` of every province through `ImportSites`.
    async fn seed(&self, from: u32, to: u32) -> anyhow::Result<(u64, Duration)> {
        let jobs: Vec<(usize, u32)> = (0..self.codes.len())
            .flat_map(|p| (from..to).step_by(IMPORT_BATCH as usize).map(move |s| (p, s)))
            .collect();
        let started = Instant::now();
        let mut seeded = 0u64;
        let mut last_report = Instant::now();
        let mut done = futures::stream::iter(jobs)
            .map(|(p, start)| async move {
                let count = IMPORT_BATCH.min(to - start);
                bench::import(&self.operators[p], &self.codes[p], "gw", start, count).await.map(|n| n.len())
            })
            .buffer_unordered(IMPORT_CONCURRENCY);
        while let Some(r) = done.next().await {
            seeded += r? as u64;
            if last_report.elapsed() > Duration::from_secs(15) {
                last_report = Instant::now();
                eprintln!(
                    "    seeded {seeded} sites in {:.0} s ({:.0} rows/s)",
                    started.elapsed().as_secs_f64(),
                    seeded as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        Ok((seeded, started.elapsed()))
    }

    /// Every node's registry log head.
    async fn heads(&self) -> anyhow::Result<Vec<u64>> {
        let mut out = Vec::new();
        for (c, parent) in self.logs.iter().zip(&self.parents) {
            let mut c = c.clone();
            let h =
                c.get_log_head(GetLogHeadRequest { jurisdiction: parent.clone(), service: "registry".into() }).await?;
            out.push(h.into_inner().sequence);
        }
        Ok(out)
    }

    async fn stop(self) -> anyhow::Result<()> {
        for n in self.nodes {
            n.stop().await?;
        }
        Ok(())
    }
}

/// Relays in front of the 63 nodes (see the module's documentation): each chunk is held for
/// `one_way` in each direction.
struct Relays {
    addrs: Vec<SocketAddr>,
    /// Microseconds each chunk is held, in each direction.
    one_way: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Relays {
    async fn start(targets: &[SocketAddr]) -> anyhow::Result<Self> {
        let one_way = Arc::new(AtomicU64::new(0));
        let (mut addrs, mut tasks) = (Vec::new(), Vec::new());
        for &target in targets {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(listener.local_addr()?);
            let one_way = one_way.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let one_way = one_way.clone();
                    tokio::spawn(async move {
                        let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { return };
                        let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                        let (ri, wi) = inbound.into_split();
                        let (ro, wo) = outbound.into_split();
                        tokio::join!(relay(ri, wo, one_way.clone()), relay(ro, wi, one_way));
                    });
                }
            }));
        }
        Ok(Self { addrs, one_way, tasks })
    }

    fn set_round_trip(&self, rtt: Duration) {
        self.one_way.store(rtt.as_micros() as u64 / 2, Ordering::Relaxed);
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Copies `from` to `to`, each chunk written `one_way` after it was read (chunks stay in order
/// and in flight together, as on a link with that latency).
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    one_way: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            let due = tokio::time::Instant::now() + Duration::from_micros(one_way.load(Ordering::Relaxed));
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((due, bytes)) = rx.recv().await {
            // The timer rounds up to the next millisecond: with no delay set, no timer at all.
            if due > tokio::time::Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

fn central_token(keys: &TokenKeys) -> anyhow::Result<BearerToken> {
    let caller =
        Caller { subject: "bench-central".into(), role: Role::CentralAnalyst, jurisdiction: Jurisdiction::Central };
    BearerToken::new(&keys.issue(&caller, Duration::from_secs(24 * 3600))?)
}

/// The gateway as a child process.
struct GatewayProcess {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    log: PathBuf,
    started: Instant,
}

impl GatewayProcess {
    /// Starts the gateway with each province at `endpoints` (the nodes' relays).
    async fn start(
        fed: &Federation,
        endpoints: &[SocketAddr],
        dir: &Path,
        database_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let entries: Vec<(Jurisdiction, String)> = fed
            .codes
            .iter()
            .zip(endpoints)
            .map(|(c, a)| Ok((bench::jurisdiction(c)?, format!("http://{a}"))))
            .collect::<anyhow::Result<_>>()?;
        let directory = dir.join("directory.toml");
        std::fs::write(&directory, einfo_gateway::directory::render(&entries))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()));
        let log = dir.join("gateway.log");
        let log_file = std::fs::File::create(&log)?;
        let binary = match &fed.gateway_binary {
            Some(b) => b.clone(),
            None => std::env::current_exe()?,
        };
        let mut cmd = tokio::process::Command::new(binary);
        cmd.args(["serve", "gateway", "--listen", &addr.to_string(), "--directory"])
            .arg(&directory)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("EINFO_AUTH__SECRET", &fed.secret)
            .env("RUST_LOG", "warn")
            .env_remove("EINFO_DATABASE_URL")
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        let started = Instant::now();
        let child = cmd.spawn().context("cannot start the gateway")?;
        let pid = child.id().context("the gateway exited at once")?;
        Ok(Self { child, pid, addr, log, started })
    }

    async fn client(&self, keys: &TokenKeys) -> anyhow::Result<National> {
        let channel = bench::connect(self.addr).await?;
        Ok(NationalServiceClient::with_interceptor(channel, central_token(keys)?).max_decoding_message_size(64 << 20))
    }

    /// Waits until every province is LIVE with its registry log applied up to `heads`; returns
    /// the time since the process started.
    async fn wait_replicated(&mut self, fed: &Federation, heads: &[u64]) -> anyhow::Result<Duration> {
        let limit = self.started + REPLICATION_LIMIT;
        tokio::select! {
            r = bench::wait_serving(self.addr, REPLICATION_LIMIT) => r?,
            s = self.child.wait() => anyhow::bail!("the gateway exited ({s:?}): {}", bench::tail(&self.log)),
        }
        let client = self.client(&fed.keys).await?;
        let want: std::collections::HashMap<&str, u64> =
            fed.parents.iter().map(String::as_str).zip(heads.iter().copied()).collect();
        let total: u64 = heads.iter().sum();
        let mut last_report = Instant::now();
        loop {
            let mut c = client.clone();
            let status = c.get_replication_status(gw::GetReplicationStatusRequest {}).await?.into_inner();
            let mut live = 0;
            let mut applied = 0u64;
            for f in &status.jurisdictions {
                let Some(head) = want.get(f.jurisdiction.as_str()) else { continue };
                applied += f.registry_sequence.min(*head);
                if f.state() == gw::FreshnessState::Live && f.registry_sequence == *head {
                    live += 1;
                }
            }
            if live == want.len() {
                return Ok(self.started.elapsed());
            }
            if last_report.elapsed() > Duration::from_secs(15) {
                last_report = Instant::now();
                let t = self.started.elapsed().as_secs_f64();
                eprintln!(
                    "    replicated {applied} of {total} entries in {t:.0} s ({:.0}/s), {live} of 63 live",
                    applied as f64 / t
                );
            }
            anyhow::ensure!(Instant::now() < limit, "replication not complete after {} s", REPLICATION_LIMIT.as_secs());
            if let Ok(Some(s)) = self.child.try_wait() {
                anyhow::bail!("the gateway exited ({s:?}): {}", bench::tail(&self.log));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// (VmHWM, VmRSS) in KiB.
    fn memory(&self) -> anyhow::Result<(u64, u64)> {
        bench::memory_of(self.pid)
    }

    async fn stop(mut self) {
        bench::stop_child(&mut self.child, self.pid).await;
    }
}

/// A fresh national store's URL in `dir` (SQLite) or a fresh PostgreSQL database.
async fn fresh_store(args: &BenchGatewayArgs, pgs: &mut Vec<PgDb>) -> anyhow::Result<Option<String>> {
    match args.database {
        StoreKind::Sqlite => Ok(None),
        StoreKind::Postgres => {
            let pg = PgDb::create(&args.database_url)
                .await
                .with_context(|| format!("PostgreSQL unavailable at {}", node::redact(&args.database_url)))?;
            let url = pg.url.clone();
            pgs.push(pg);
            Ok(Some(url))
        }
    }
}

async fn bench_on(
    args: &BenchGatewayArgs,
    tmp: &Path,
    echo: SocketAddr,
    report: &mut Report,
    pgs: &mut Vec<PgDb>,
) -> anyhow::Result<()> {
    eprintln!("· starting 63 nodes");
    let fed = Federation::start(&tmp.join("nodes"), args.gateway_binary.clone()).await?;
    let relays = Relays::start(&fed.nodes.iter().map(|n| n.addr).collect::<Vec<_>>()).await?;
    let result = async {
        let echo = HealthClient::new(bench::connect(echo).await?);
        let full = args.sites_per_province;
        let small = args.small_sites_per_province.min(full);
        let mut seeded_to = 0;

        // The summary at the small size, on a gateway of its own.
        if small > 0 && small < full {
            eprintln!("· seeding 63 × {small} sites");
            let (n, t) = fed.seed(0, small).await?;
            report.seeding.push((small, n, t));
            seeded_to = small;
            eprintln!("· gateway on 63 × {small} sites");
            let heads = fed.heads().await?;
            let url = fresh_store(args, pgs).await?;
            let mut g = GatewayProcess::start(&fed, &relays.addrs, &tmp.join("gateway-small"), url.as_deref()).await?;
            let r = async {
                let time = g.wait_replicated(&fed, &heads).await?;
                report.replication.push(Replication { sites_per_province: small, entries: heads.iter().sum(), time });
                let national = g.client(&fed.keys).await?;
                for row in summary_rows(args, &national, &echo).await {
                    report.summary.push((small, row));
                }
                anyhow::Ok(())
            }
            .await;
            g.stop().await;
            r?;
        }

        eprintln!("· seeding 63 × {} sites", full - seeded_to);
        let (n, t) = fed.seed(seeded_to, full).await?;
        report.seeding.push((full - seeded_to, n, t));
        let heads = fed.heads().await?;
        let entries: u64 = heads.iter().sum();

        eprintln!("· raw batched insert of {entries} rows ({})", args.database.label());
        let raw_url = match fresh_store(args, pgs).await? {
            Some(u) => u,
            None => format!("sqlite://{}?mode=rwc", tmp.join("raw.db").display()),
        };
        report.raw = Some((entries, raw_insert(&raw_url, &fed, entries).await?));

        eprintln!("· gateway on 63 × {full} sites: full initial replication");
        let url = fresh_store(args, pgs).await?;
        let mut g = GatewayProcess::start(&fed, &relays.addrs, &tmp.join("gateway"), url.as_deref()).await?;
        let r = async {
            let time = g.wait_replicated(&fed, &heads).await?;
            report.replication.push(Replication { sites_per_province: full, entries, time });
            let national = g.client(&fed.keys).await?;
            eprintln!("· national summary and echo");
            for row in summary_rows(args, &national, &echo).await {
                report.summary.push((full, row));
            }
            eprintln!("· fan-out");
            report.fanout.push((0, fanout(args, &fed, &relays, &national, 0).await?));
            eprintln!("· steady-state replication lag at {} sites/s", args.lag_rate);
            report.lag = Some(lag(args, &fed, &national).await?);
            if args.network_rtt_ms > 0 {
                eprintln!("· fan-out with a {} ms round trip to each node", args.network_rtt_ms);
                relays.set_round_trip(Duration::from_millis(args.network_rtt_ms));
                let f = fanout(args, &fed, &relays, &national, args.network_rtt_ms).await;
                relays.set_round_trip(Duration::ZERO);
                report.fanout.push((args.network_rtt_ms, f?));
            }
            report.memory_kib = Some(g.memory()?);
            anyhow::Ok(())
        }
        .await;
        g.stop().await;
        r
    }
    .await;
    fed.stop().await?;
    result
}

/// `GetNationalSummary` (STRICT) next to the echo call, at concurrency 1 and 32.
async fn summary_rows(args: &BenchGatewayArgs, national: &National, echo: &HealthClient<Channel>) -> Vec<Row> {
    let summary = {
        let national = national.clone();
        op(move |_, _| {
            let mut c = national.clone();
            async move {
                let options = gw::QueryOptions { mode: gw::QueryMode::Strict as i32, ..Default::default() };
                let s = c.get_national_summary(gw::GetNationalSummaryRequest { options: Some(options) }).await?;
                anyhow::ensure!(s.into_inner().complete, "summary not complete");
                Ok(())
            }
        })
    };
    let mut rows = Vec::new();
    for conc in [1, 32] {
        let group = vec![
            phase(ECHO, "-", bench::health_op(echo.clone())),
            phase(SUMMARY, args.database.label(), summary.clone()),
        ];
        rows.extend(bench::measure(&measure_args(args.seconds), conc, group).await);
    }
    rows
}

fn measure_args(seconds: u64) -> BenchArgs {
    BenchArgs {
        seconds,
        warmup_seconds: 1,
        database_url: String::new(),
        skip_postgres: true,
        skip_memory: true,
        sites_per_province: 0,
        only: None,
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

/// `GetLiveSummary` over the 63 nodes, taking turns with each node's own `GetStatistics` (asked
/// round-robin through the same relays as the gateway's, one call at a time, each node's
/// latencies kept apart).
///
/// Over an emulated round trip the single-node calls run 8 at a time (to 8 different nodes, a
/// light load), so that each node gets enough calls for a p99 in the same time.
async fn fanout(
    args: &BenchGatewayArgs,
    fed: &Federation,
    relays: &Relays,
    national: &National,
    rtt_ms: u64,
) -> anyhow::Result<FanOut> {
    let single = if rtt_ms > 0 { 8 } else { 1 };
    let central = central_token(&fed.keys)?;
    let mut readers = Vec::new();
    for a in &relays.addrs {
        readers.push(RegistryServiceClient::with_interceptor(bench::connect(*a).await?, central.clone()));
    }
    let failures = Arc::new(AtomicU64::new(0));
    let live = {
        let (national, failures) = (national.clone(), failures.clone());
        op(move |_, _| {
            let (mut c, failures) = (national.clone(), failures.clone());
            async move {
                let r = c.get_live_summary(gw::GetLiveSummaryRequest { node_timeout: None }).await?.into_inner();
                if !r.failures.is_empty() || r.units.len() != 63 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        })
    };
    let per_node: Arc<Mutex<Vec<Histogram<u64>>>> =
        Arc::new(Mutex::new(fed.codes.iter().map(|_| histogram()).collect()));
    let stats: Op = {
        let (readers, parents, per_node) = (Arc::new(readers), Arc::new(fed.parents.clone()), per_node.clone());
        op(move |_, n| {
            let p = (n % readers.len() as u64) as usize;
            let (mut c, parent, per_node) = (readers[p].clone(), parents[p].clone(), per_node.clone());
            async move {
                let t = Instant::now();
                c.get_statistics(pb::GetStatisticsRequest { jurisdiction: parent, ..Default::default() }).await?;
                let us = t.elapsed().as_micros() as u64;
                per_node.lock().unwrap_or_else(|e| e.into_inner())[p].saturating_record(us);
                Ok(())
            }
        })
    };
    // Warm-up, then turns: 1 s of fan-out, 3 s of single nodes (so that each node gets enough
    // calls for a p99).
    bench::run_for(1, Duration::from_secs(1), &live).await;
    bench::run_for(single, Duration::from_secs(2), &stats).await;
    for h in per_node.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
        h.reset();
    }
    failures.store(0, Ordering::Relaxed);
    let mut fan = Stats::empty();
    for _ in 0..args.seconds.max(1) {
        fan.merge(bench::run_for(1, Duration::from_secs(1), &live).await);
        bench::run_for(single, Duration::from_secs(3), &stats).await;
    }
    let hists = per_node.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let (slow, h) =
        hists.iter().enumerate().max_by_key(|(_, h)| h.value_at_quantile(0.99)).context("no node measured")?;
    let mut p99s: Vec<f64> = hists.iter().map(|h| ms(h, 0.99)).collect();
    p99s.sort_by(f64::total_cmp);
    let mut pooled = histogram();
    for h in &hists {
        pooled.add(h)?;
    }
    Ok(FanOut {
        pooled: (ms(&pooled, 0.5), ms(&pooled, 0.99), pooled.len()),
        single,
        slowest: (fed.codes[slow].clone(), ms(h, 0.5), ms(h, 0.99), h.len()),
        median_p99: p99s[p99s.len() / 2],
        sum_p50: hists.iter().map(|h| ms(h, 0.5)).sum(),
        failures: failures.load(Ordering::Relaxed) + fan.errors,
        fanout: fan,
    })
}

/// Registers sites at `lag_rate` per second, round-robin over the provinces, for twice
/// `--seconds`; each one's lag runs from its acknowledgement until the gateway reports its
/// province's registry log applied up to the node's head after it.
async fn lag(args: &BenchGatewayArgs, fed: &Federation, national: &National) -> anyhow::Result<(Stats, u64, Duration)> {
    // One poller observes every province: per-province applied registry sequences.
    let index: std::collections::HashMap<String, usize> =
        fed.parents.iter().enumerate().map(|(i, p)| (p.clone(), i)).collect();
    let (seen_tx, seen) = tokio::sync::watch::channel(vec![0u64; fed.parents.len()]);
    let poller = {
        let national = national.clone();
        tokio::spawn(async move {
            loop {
                let mut c = national.clone();
                if let Ok(r) = c.get_replication_status(gw::GetReplicationStatusRequest {}).await {
                    let mut v = vec![0u64; index.len()];
                    for f in r.into_inner().jurisdictions {
                        if let Some(i) = index.get(&f.jurisdiction) {
                            v[*i] = f.registry_sequence;
                        }
                    }
                    seen_tx.send_if_modified(|old| {
                        let changed = *old != v;
                        *old = v;
                        changed
                    });
                }
                tokio::time::sleep(LAG_POLL).await;
                if seen_tx.is_closed() {
                    return;
                }
            }
        })
    };
    let duration = Duration::from_secs(2 * args.seconds.max(1));
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.lag_rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut probes = Vec::new();
    let mut i = 0u64;
    while started.elapsed() < duration {
        ticker.tick().await;
        let p = (i % fed.parents.len() as u64) as usize;
        i += 1;
        let n = bench::UNIQUE.fetch_add(1, Ordering::Relaxed);
        let (mut reg, mut log, parent, mut seen) =
            (fed.operators[p].clone(), fed.logs[p].clone(), fed.parents[p].clone(), seen.clone());
        probes.push(tokio::spawn(async move {
            let req = pb::RegisterSiteRequest {
                parent: parent.clone(),
                site: Some(bench::new_site(n)),
                request_id: format!("bench-gw-lag-{n}"),
            };
            reg.register_site(req).await?;
            let acked = Instant::now();
            let head = log
                .get_log_head(GetLogHeadRequest { jurisdiction: parent, service: "registry".into() })
                .await?
                .into_inner()
                .sequence;
            tokio::time::timeout(Duration::from_secs(60), seen.wait_for(|v| v[p] >= head))
                .await
                .context("not replicated within 60 s")??;
            anyhow::Ok(acked.elapsed())
        }));
    }
    let mut stats = Stats::empty();
    for probe in probes {
        match probe.await.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(d) => {
                stats.ops += 1;
                stats.hist.saturating_record(d.as_micros() as u64);
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    stats.elapsed = started.elapsed();
    drop(seen);
    poller.abort();
    Ok((stats, i, duration))
}

/// The raw baseline: `entries` sites of the same shape as the replicated ones (a real site's
/// encoded body, with distinct names and domains) inserted into a fresh store with the gateway's
/// schema, with multi-row INSERTs (`RAW_STMT_ROWS` rows each) into `gw_sites` and
/// `gw_site_domains`, `RAW_TXN_ROWS` sites per transaction. Returns the time it took.
async fn raw_insert(url: &str, fed: &Federation, entries: u64) -> anyhow::Result<Duration> {
    let db = Database::connect(url).await?;
    let result = async {
        Migrator::up(db.conn(), None).await?;
        let mut c = fed.readers[0].clone();
        let sample = c
            .list_sites(pb::ListSitesRequest { parent: fed.parents[0].clone(), page_size: 1, ..Default::default() })
            .await?
            .into_inner()
            .sites
            .into_iter()
            .next()
            .context("no site to copy the shape of")?;
        let b = db.backend();
        let body = sample.encode_to_vec();
        let folded = einfo_domain::text::fold(&sample.display_name);
        let tax = sample.owner.as_ref().map(|o| o.tax_code.clone()).unwrap_or_default();
        let started = Instant::now();
        let mut next = 0u64;
        while next < entries {
            let txn_end = (next + RAW_TXN_ROWS as u64).min(entries);
            let txn = db.begin_write().await?;
            while next < txn_end {
                let end = (next + RAW_STMT_ROWS as u64).min(txn_end);
                let rows = (end - next) as usize;
                let mut sites: Vec<Value> = Vec::with_capacity(rows * 8);
                let mut domains: Vec<Value> = Vec::with_capacity(rows * 4);
                for k in next..end {
                    let p = (k % 63) as usize;
                    let name = format!("{}/sites/raw-{k}", fed.parents[p]);
                    let domain = format!("raw-{k}.vn");
                    sites.extend([
                        name.clone().into(),
                        fed.parents[p].clone().into(),
                        sample.kind.clone().into(),
                        sample.legal_status.into(),
                        0i32.into(),
                        folded.clone().into(),
                        tax.clone().into(),
                        body.clone().into(),
                    ]);
                    domains.extend([name.into(), domain.clone().into(), domain.into(), fed.parents[p].clone().into()]);
                }
                txn.txn()
                    .execute_raw(stmt(
                        b,
                        &format!(
                            "INSERT INTO gw_sites (name, jurisdiction, kind, legal_status, voided, name_folded, owner_tax_code, body) VALUES {}",
                            placeholders(rows, 8)
                        ),
                        sites,
                    ))
                    .await?;
                txn.txn()
                    .execute_raw(stmt(
                        b,
                        &format!(
                            "INSERT INTO gw_site_domains (site, ascii, registrable, jurisdiction) VALUES {}",
                            placeholders(rows, 4)
                        ),
                        domains,
                    ))
                    .await?;
                next = end;
            }
            txn.commit().await?;
        }
        let took = started.elapsed();
        let count = db
            .conn()
            .query_one_raw(stmt(b, "SELECT COUNT(*) FROM gw_sites", []))
            .await?
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        anyhow::ensure!(count as u64 == entries, "raw insert wrote {count} rows, not {entries}");
        anyhow::Ok(took)
    }
    .await;
    let _ = db.close().await;
    result
}

/// `($1, $2, …), (…)…`: `rows` tuples of `cols` placeholders.
fn placeholders(rows: usize, cols: usize) -> String {
    let mut out = String::new();
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

// ------------------------------------------------------------------------------------ output

fn ratio_line(what: &str, value: f64, target: f64, le: bool) -> String {
    let met = if le { value <= target } else { value >= target };
    format!(
        "{what}: {value:.2} (target {} {target:.2})  {}",
        if le { "≤" } else { "≥" },
        if met { "target met" } else { "MISSED" }
    )
}

fn print_report(args: &BenchGatewayArgs, r: &Report) {
    let db = args.database.label();
    println!();
    println!(
        "Seeding the 63 nodes through ImportSites ({IMPORT_BATCH} rows per call, {IMPORT_CONCURRENCY} calls in flight):"
    );
    for (per, n, t) in &r.seeding {
        println!(
            "  +{per} sites/province: {n} sites in {:.1} s ({:.0} rows/s)",
            t.as_secs_f64(),
            *n as f64 / t.as_secs_f64()
        );
    }

    println!(
        "\nFull initial replication (gateway child process start → every province LIVE at its node's head), store {db}:"
    );
    let raw_rate = r.raw.map(|(n, t)| n as f64 / t.as_secs_f64());
    for rep in &r.replication {
        let rate = rep.entries as f64 / rep.time.as_secs_f64();
        println!(
            "  63 × {:>6} sites: {:>8} entries in {:>7.1} s = {:>8.0} entries/s",
            rep.sites_per_province,
            rep.entries,
            rep.time.as_secs_f64(),
            rate
        );
    }
    if let Some((n, t)) = r.raw {
        println!(
            "  raw batched insert ({RAW_STMT_ROWS} rows per INSERT, {RAW_TXN_ROWS} per transaction, gw_sites + gw_site_domains): {n} rows in {:.1} s = {:.0} rows/s",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64()
        );
    }
    if let (Some(full), Some(raw)) = (r.replication.last(), raw_rate) {
        let ratio = full.entries as f64 / full.time.as_secs_f64() / raw;
        println!("  {}", ratio_line("replication / raw insert", ratio, 0.25, false));
    }

    if let Some((s, sent, dur)) = &r.lag {
        println!(
            "\nSteady-state replication lag (RegisterSite ack → applied nationally, seen by polling GetReplicationStatus every {} ms):",
            LAG_POLL.as_millis()
        );
        println!(
            "  {sent} sites registered over {:.0} s across the 63 provinces: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} errors)",
            dur.as_secs_f64(),
            s.ms(0.5),
            s.ms(0.99),
            s.hist.max() as f64 / 1000.0,
            s.errors
        );
        if let Some(e) = &s.first_error {
            println!("  first error: {e}");
        }
    }

    println!("\nNational summary (STRICT, every province live) next to the echo RPC:");
    println!(
        "  {:<10} {:<22} {:<9} {:>4} {:>11} {:>9} {:>9} {:>8} {:>7}",
        "sites/prov", "operation", "store", "conc", "ops/s", "p50 ms", "p99 ms", "ops", "errors"
    );
    for (per, row) in &r.summary {
        let s = &row.stats;
        println!(
            "  {:<10} {:<22} {:<9} {:>4} {:>11.0} {:>9.2} {:>9.2} {:>8} {:>7}",
            per,
            row.what,
            row.db,
            row.conc,
            s.ops_per_sec(),
            s.ms(0.5),
            s.ms(0.99),
            s.ops,
            s.errors
        );
    }
    for (per, row) in r.summary.iter().filter(|(_, row)| row.what == SUMMARY) {
        if let Some((_, e)) = r.summary.iter().find(|(p, e)| p == per && e.what == ECHO && e.conc == row.conc) {
            let ratio = row.stats.ms(0.99) / e.stats.ms(0.99).max(0.001);
            println!(
                "  {}",
                ratio_line(&format!("{per} sites/province, c={}: summary p99 / echo p99", row.conc), ratio, 5.0, true)
            );
        }
    }
    for (_, row) in r.summary.iter().filter(|(_, row)| row.stats.first_error.is_some()) {
        println!(
            "  first error of {} c={}: {}",
            row.what,
            row.conc,
            row.stats.first_error.as_deref().unwrap_or_default()
        );
    }

    for (rtt, f) in &r.fanout {
        match rtt {
            0 => println!(
                "\nFan-out GetLiveSummary over the 63 nodes (concurrency 1) next to the nodes' own GetStatistics, over bare loopback (63 nodes sharing this machine's cores):"
            ),
            ms => println!(
                "\nFan-out GetLiveSummary over the 63 nodes (concurrency 1) next to the nodes' own GetStatistics, with a {ms} ms round trip emulated to each node:"
            ),
        }
        println!(
            "  GetLiveSummary: {} calls, p50 {:.2} ms, p99 {:.2} ms ({} incomplete or failed)",
            f.fanout.ops,
            f.fanout.ms(0.5),
            f.fanout.ms(0.99),
            f.failures
        );
        let (code, p50, p99, n) = &f.slowest;
        println!(
            "  slowest node by p99: province {code}: p50 {p50:.2} ms, p99 {p99:.2} ms ({n} calls); median node p99 {:.2} ms",
            f.median_p99
        );
        let (p50, p99all, n) = f.pooled;
        println!(
            "  every node's calls together: p50 {p50:.2} ms, p99 {p99all:.2} ms ({n} calls, {} at a time)",
            f.single
        );
        println!(
            "  sum over the 63 nodes of their GetStatistics p50: {:.1} ms (one fan-out's work; on this machine's cores it cannot take less than about that / cores)",
            f.sum_p50
        );
        println!("  {}", ratio_line("fan-out p99 / slowest node p99", f.fanout.ms(0.99) / p99.max(0.001), 2.0, true));
    }

    if let Some((hwm, rss)) = r.memory_kib {
        let mib = |k: u64| k as f64 / 1024.0;
        println!("\nGateway peak memory (VmHWM of the child process, after replication and every phase above):");
        println!("  {:.1} MiB (VmRSS at the end {:.1} MiB)", mib(hwm), mib(rss));
        println!("  {}", ratio_line("peak MiB", mib(hwm), 256.0, true));
    }
}
