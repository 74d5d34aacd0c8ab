//! `einfo bench`: throughput and latency of `GetSite` and `RegisterSite` on SQLite and
//! PostgreSQL, side by side with baselines measured in the same run — a bare tonic unary RPC (the
//! health service's `Check` on a server without layers) and a raw single-row INSERT and
//! primary-key SELECT on the same kind of database with the same durability settings — and the
//! peak memory of a node hosting the 63 provinces of the 2008 scheme.
//!
//! It prints figures. A missed target is information, never a failing exit. Every loop is
//! bounded by a deadline, and everything runs on loopback.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_common::config::Settings;
use einfo_common::db::{Database, adapt, stmt};
use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::registry::v1 as pb;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::node::{self, Role as NodeRole};

/// Flags of `einfo bench`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Seconds each measured phase runs, after its warm-up.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Seconds of warm-up before each measured phase (not counted).
    #[arg(long, default_value_t = 1)]
    pub warmup_seconds: u64,
    /// Admin PostgreSQL URL: a fresh database `einfo_bench_<uuid>` is created through it and
    /// dropped at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// Skip the PostgreSQL rows.
    #[arg(long)]
    pub skip_postgres: bool,
    /// Skip the peak-memory measurement of a node hosting the 63 provinces.
    #[arg(long)]
    pub skip_memory: bool,
    /// Sites seeded into each of the 63 provinces for the memory measurement.
    #[arg(long, default_value_t = 10_000)]
    pub sites_per_province: u32,
    /// Measure only the operations whose name contains one of these comma-separated texts (e.g.
    /// `GetSite,raw SELECT`), for profiling.
    #[arg(long)]
    pub only: Option<String>,
}

pub(crate) type RegistryClient = RegistryServiceClient<InterceptedService<Channel, BearerToken>>;

/// Concurrency levels of every measured operation.
const LEVELS: [usize; 2] = [1, 32];
/// Sites per province imported before the `GetSite` phases (into the provinces the workers use).
const READ_SITES_PER_PROVINCE: u32 = 250;
/// Rows in `bench_rows` before the raw SELECT phases.
const RAW_ROWS: u32 = 10_000;
/// Size of a raw row's body: about an encoded `Site`.
const RAW_BODY: usize = 320;
/// Rows per `ImportSites` call when seeding the memory node.
const IMPORT_BATCH: u32 = 2_000;
/// `ImportSites` calls in flight while seeding.
const IMPORT_CONCURRENCY: usize = 3;
/// Names of the operations in the table.
const ECHO: &str = "echo (Health/Check)";
const NODE_HEALTH: &str = "node Health/Check";
const GET_SITE: &str = "GetSite";
const REGISTER_SITE: &str = "RegisterSite";
const RAW_SELECT: &str = "raw SELECT by key";
const RAW_INSERT: &str = "raw INSERT autocommit";
/// A tax code with a valid check digit, for every generated owner.
pub(crate) const TAX_CODE: &str = "0100109106";

/// Runs the benchmark and prints its table.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let telemetry = einfo_common::telemetry::TelemetrySettings { log_filter: "warn".into(), ..Default::default() };
    let _telemetry = einfo_common::telemetry::init("einfo-bench", &telemetry)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "einfo bench: {} s per phase after {} s of warm-up; concurrency {:?}; {cores} cores; client and server share this process",
        args.seconds, args.warmup_seconds, LEVELS
    );
    let mut rows: Vec<Row> = Vec::new();

    let echo = EchoServer::start().await?;
    let tmp = std::env::temp_dir().join(format!("einfo-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = async {
        eprintln!("· SQLite (and the echo baseline)");
        let dir = tmp.join("sqlite");
        std::fs::create_dir_all(&dir)?;
        let url = format!("sqlite://{}?mode=rwc", dir.join("einfo.db").display());
        let raw_url = format!("sqlite://{}?mode=rwc", dir.join("raw.db").display());
        bench_database(&args, "sqlite", &url, &raw_url, &dir, Some(echo.addr), &mut rows).await?;

        if args.skip_postgres {
            eprintln!("· PostgreSQL skipped (--skip-postgres)");
        } else {
            match PgDb::create(&args.database_url).await {
                Ok(pg) => {
                    eprintln!("· PostgreSQL ({})", pg.name);
                    let dir = tmp.join("postgres");
                    std::fs::create_dir_all(&dir)?;
                    let r = bench_database(&args, "postgres", &pg.url, &pg.url, &dir, None, &mut rows).await;
                    pg.drop_database().await;
                    r?;
                }
                Err(e) => println!(
                    "PostgreSQL unavailable at {} ({e:#}): PostgreSQL rows skipped",
                    node::redact(&args.database_url)
                ),
            }
        }
        anyhow::Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&tmp);
    echo.stop().await?;
    result?;

    print_table(&rows);
    print_targets(&rows);

    if args.skip_memory {
        println!("\nPeak memory: skipped (--skip-memory)");
    } else {
        eprintln!("· peak memory of a node hosting 63 provinces × {} sites", args.sites_per_province);
        let mem = bench_memory(&args).await?;
        print_memory(&args, &mem);
    }
    Ok(())
}

// ------------------------------------------------------------------------------------ harness

/// The figures of one measured phase.
pub(crate) struct Stats {
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    pub(crate) hist: Histogram<u64>,
    pub(crate) first_error: Option<String>,
}

impl Stats {
    pub(crate) fn empty() -> Self {
        Stats {
            ops: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
            first_error: None,
        }
    }

    pub(crate) fn merge(&mut self, other: Stats) {
        let _ = self.hist.add(&other.hist);
        self.ops += other.ops;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile in milliseconds (recorded in microseconds).
    pub(crate) fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// One line of the table.
pub(crate) struct Row {
    pub(crate) what: &'static str,
    pub(crate) db: &'static str,
    pub(crate) conc: usize,
    pub(crate) stats: Stats,
}

/// A process-wide counter: every operation gets a number no other one has (unique request ids,
/// domains and keys across phases and warm-ups).
pub(crate) static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// One measured operation, called as `op(worker, unique)`; each worker waits for its call to
/// finish before the next.
pub(crate) type Op = Arc<dyn Fn(usize, u64) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

pub(crate) fn op<F, Fut>(f: F) -> Op
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Arc::new(move |w, n| f(w, n).boxed())
}

/// An operation to measure and the row it makes.
pub(crate) struct Phase {
    what: &'static str,
    db: &'static str,
    op: Op,
}

pub(crate) fn phase(what: &'static str, db: &'static str, op: Op) -> Phase {
    Phase { what, db, op }
}

/// Runs `op` on `conc` workers until `dur` has passed.
pub(crate) async fn run_for(conc: usize, dur: Duration, op: &Op) -> Stats {
    let start = Instant::now();
    let deadline = start + dur;
    let workers: Vec<_> = (0..conc)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
                let (mut ops, mut errors, mut first_error) = (0u64, 0u64, None);
                while Instant::now() < deadline {
                    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    match op(w, n).await {
                        Ok(()) => {
                            ops += 1;
                            hist.saturating_record(t.elapsed().as_micros() as u64);
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                (hist, ops, errors, first_error)
            })
        })
        .collect();
    let mut total = Stats::empty();
    for w in workers {
        match w.await {
            Ok((hist, ops, errors, first_error)) => {
                let _ = total.hist.add(&hist);
                total.ops += ops;
                total.errors += errors;
                if total.first_error.is_none() {
                    total.first_error = first_error;
                }
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| format!("worker panicked: {e}"));
            }
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// Measures `phases` side by side at concurrency `conc`: each warms up, then they take turns
/// in one-second slices (in alternating order) until each has run `--seconds`. A change in the
/// machine's load during the group then weighs on every phase of it alike, so their ratios hold.
pub(crate) async fn measure(args: &BenchArgs, conc: usize, phases: Vec<Phase>) -> Vec<Row> {
    let phases: Vec<Phase> = phases
        .into_iter()
        .filter(|p| match &args.only {
            Some(only) => only.split(',').any(|o| p.what.to_lowercase().contains(&o.trim().to_lowercase())),
            None => true,
        })
        .collect();
    if phases.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = phases.iter().map(|p| format!("{} {}", p.what, p.db)).collect();
    eprintln!("    c={conc}: {}", names.join(" | "));
    if args.warmup_seconds > 0 {
        for p in &phases {
            run_for(conc, Duration::from_secs(args.warmup_seconds), &p.op).await;
        }
    }
    let mut stats: Vec<Stats> = phases.iter().map(|_| Stats::empty()).collect();
    for slice in 0..args.seconds.max(1) {
        let mut order: Vec<usize> = (0..phases.len()).collect();
        if slice % 2 == 1 {
            order.reverse();
        }
        for i in order {
            stats[i].merge(run_for(conc, Duration::from_secs(1), &phases[i].op).await);
        }
    }
    phases
        .into_iter()
        .zip(stats)
        .map(|(p, stats)| {
            eprintln!(
                "      {:<24} {:<8} {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms{}",
                p.what,
                p.db,
                stats.ops_per_sec(),
                stats.ms(0.5),
                stats.ms(0.99),
                if stats.errors > 0 { format!("  {} errors", stats.errors) } else { String::new() }
            );
            Row { what: p.what, db: p.db, conc, stats }
        })
        .collect()
}

/// A cheap, well-spread hash of an operation number (picks rows at random without a generator).
pub(crate) fn spread(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

// ------------------------------------------------------------------------------------ echo

/// A plain tonic server on 127.0.0.1:0 serving only the health service, without layers: the
/// floor under any unary call on this machine.
pub(crate) struct EchoServer {
    pub(crate) addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    _reporter: tonic_health::server::HealthReporter,
}

impl EchoServer {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
        // TCP_NODELAY as einfo's own server sets it: a transport setting, not a layer.
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
            incoming,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self { addr, stop, task, _reporter: reporter })
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        Ok(self.task.await??)
    }
}

/// `Health/Check` calls on `client`.
pub(crate) fn health_op(client: HealthClient<Channel>) -> Op {
    op(move |_, _| {
        let mut c = client.clone();
        async move {
            c.check(HealthCheckRequest { service: String::new() }).await?;
            Ok(())
        }
    })
}

pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?.connect().await?)
}

// ------------------------------------------------------------------------------------ node

/// The 63 province codes of the 2008 scheme.
pub(crate) fn p63_codes() -> Vec<String> {
    Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect()
}

pub(crate) fn jurisdiction(code: &str) -> anyhow::Result<Jurisdiction> {
    Ok(Jurisdiction::province(Scheme::P63, code)?)
}

/// A registry client acting as the operator of province `code`.
pub(crate) fn registry_client(channel: &Channel, keys: &TokenKeys, code: &str) -> anyhow::Result<RegistryClient> {
    let caller =
        Caller { subject: format!("bench-operator-{code}"), role: Role::Operator, jurisdiction: jurisdiction(code)? };
    let token = keys.issue(&caller, Duration::from_secs(24 * 3600))?;
    Ok(RegistryServiceClient::with_interceptor(channel.clone(), BearerToken::new(&token)?))
}

/// Waits until the health service at `addr` says SERVING (the node has migrated).
pub(crate) async fn wait_serving(addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(ch) = connect(addr).await {
            let mut h = HealthClient::new(ch);
            if let Ok(r) = h.check(HealthCheckRequest { service: String::new() }).await
                && r.into_inner().status == ServingStatus::Serving as i32
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the node at {addr} did not become SERVING within {} s", limit.as_secs())
}

pub(crate) fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// A CSV file of `count` sites of province `code`, numbered from `start`; every domain is unique
/// for a given `tag`.
fn sites_csv(code: &str, tag: &str, start: u32, count: u32) -> Vec<u8> {
    let mut s = einfo_registry::import::COLUMNS.join(",");
    s.push('\n');
    for i in start..start + count {
        let _ = writeln!(
            s,
            "general-website,Trang thông tin điện tử {tag} {code} số {i},{tag}-p{code}-s{i}.vn,organisation,Công ty Truyền thông {code} {i},{TAX_CODE},in_vietnam,active,sweep,"
        );
    }
    s.into_bytes()
}

/// Imports `count` sites into province `code` in one call and returns their names.
pub(crate) async fn import(
    client: &RegistryClient,
    code: &str,
    tag: &str,
    start: u32,
    count: u32,
) -> anyhow::Result<Vec<String>> {
    let mut c = client.clone();
    let r = c
        .import_sites(pb::ImportSitesRequest {
            parent: jurisdiction(code)?.to_string(),
            csv: sites_csv(code, tag, start, count),
            dry_run: false,
            request_id: format!("bench-import-{tag}-{code}-{start}"),
        })
        .await
        .with_context(|| format!("ImportSites into {code}"))?
        .into_inner();
    anyhow::ensure!(r.errors.is_empty(), "ImportSites into {code} refused rows: {:?}", r.errors.first());
    Ok(r.sites)
}

/// A new site with one domain made from `n`.
pub(crate) fn new_site(n: u64) -> pb::Site {
    pb::Site {
        kind: "general-website".into(),
        display_name: format!("Trang thông tin điện tử số {n}"),
        domains: vec![format!("reg-{n}.vn")],
        owner: Some(pb::Owner {
            kind: pb::OwnerKind::Organisation as i32,
            display_name: "Công ty Cổ phần Truyền thông Hà Nội".into(),
            tax_code: TAX_CODE.into(),
            ..Default::default()
        }),
        hosting: pb::Hosting::InVietnam as i32,
        operational_state: pb::OperationalState::Active as i32,
        discovery_source: pb::DiscoverySource::Sweep as i32,
        ..Default::default()
    }
}

/// The rows of one database. Each measured operation runs right after (or before) its baseline,
/// so that a change in the machine's load between phases shifts both alike.
async fn bench_database(
    args: &BenchArgs,
    db_label: &'static str,
    url: &str,
    raw_url: &str,
    dir: &Path,
    echo: Option<SocketAddr>,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let codes = p63_codes();
    let mut settings = Settings {
        provinces: codes.clone(),
        data_dir: dir.to_path_buf(),
        database_url: Some(url.to_owned()),
        ..Default::default()
    };
    settings.auth.secret = Some(random_secret());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let node = node::start(&settings, NodeRole::Node, listener, Default::default()).await?;
    let raw = Raw::open(raw_url).await;
    let result = async {
        let raw = raw?;
        wait_serving(node.addr, Duration::from_secs(120)).await?;
        let channel = connect(node.addr).await?;
        let clients: Arc<Vec<RegistryClient>> =
            Arc::new(codes.iter().map(|c| registry_client(&channel, &node.keys, c)).collect::<anyhow::Result<_>>()?);
        let parents: Arc<Vec<String>> =
            Arc::new(codes.iter().map(|c| jurisdiction(c).map(|j| j.to_string())).collect::<anyhow::Result<_>>()?);

        // Sites to read: one province per worker of the widest level.
        let readers = LEVELS.iter().copied().max().unwrap_or(1).min(codes.len());
        let mut names = Vec::with_capacity(readers);
        for (i, code) in codes.iter().take(readers).enumerate() {
            names.push(import(&clients[i], code, "read", 0, READ_SITES_PER_PROVINCE).await?);
        }
        let names = Arc::new(names);
        let echo = match echo {
            Some(addr) => Some(HealthClient::new(connect(addr).await?)),
            None => None,
        };

        let get_site = {
            let (clients, names) = (clients.clone(), names.clone());
            op(move |w, n| {
                let p = w % names.len();
                let mut c = clients[p].clone();
                let name = names[p][(spread(n) % names[p].len() as u64) as usize].clone();
                async move {
                    c.get_site(pb::GetSiteRequest { name }).await?;
                    Ok(())
                }
            })
        };
        // `province(worker)` is the province a worker writes to.
        let register_site = |province: fn(usize) -> usize| {
            let (clients, parents) = (clients.clone(), parents.clone());
            op(move |w, n| {
                let p = province(w) % clients.len();
                let mut c = clients[p].clone();
                let req = pb::RegisterSiteRequest {
                    parent: parents[p].clone(),
                    site: Some(new_site(n)),
                    request_id: format!("bench-{n}"),
                };
                async move {
                    c.register_site(req).await?;
                    Ok(())
                }
            })
        };

        for conc in LEVELS {
            let mut group = Vec::new();
            if let Some(echo) = &echo {
                group.push(phase(ECHO, "-", health_op(echo.clone())));
                // Diagnostic: the node's own server stack (trace layer, no token, no database).
                group.push(phase(NODE_HEALTH, "-", health_op(HealthClient::new(channel.clone()))));
            }
            group.push(phase(GET_SITE, db_label, get_site.clone()));
            group.push(phase(RAW_SELECT, db_label, raw.select_op()));
            rows.extend(measure(args, conc, group).await);
        }
        // Each worker writes to its own province (a node hosts many): writers of different
        // provinces do not share a log lock.
        for conc in LEVELS {
            let group = vec![
                phase(REGISTER_SITE, db_label, register_site(|w| w)),
                phase(RAW_INSERT, db_label, raw.insert_op()),
            ];
            rows.extend(measure(args, conc, group).await);
        }
        // Every writer on one province: they queue on that province's log lock.
        rows.extend(measure(args, 32, vec![phase("RegisterSite 1 province", db_label, register_site(|_| 0))]).await);
        raw.db.close().await
    }
    .await;
    node.stop().await?;
    result
}

// ------------------------------------------------------------------------------------ raw SQL

/// The raw baseline: single-row INSERTs (each its own autocommit statement) and primary-key
/// SELECTs on `bench_rows`, through [`Database::connect`]'s pool, so with the node's durability
/// settings (WAL and `synchronous=FULL` on SQLite).
struct Raw {
    db: Database,
    body: Arc<Vec<u8>>,
    /// SQLite only: writers are serialised in-process, as einfo's own are. Left to SQLite's busy
    /// handler they would sleep and retry, which no SQLite application does on purpose.
    serialise: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Raw {
    /// Opens `url`, creates `bench_rows` and fills it with [`RAW_ROWS`] rows to read.
    async fn open(url: &str) -> anyhow::Result<Self> {
        let db = Database::connect(url).await?;
        let b = db.backend();
        db.conn()
            .execute_unprepared(&adapt(b, "CREATE TABLE bench_rows (id TEXT PRIMARY KEY, body BLOB NOT NULL)"))
            .await?;
        let body: Arc<Vec<u8>> = Arc::new((0..RAW_BODY).map(|i| (i * 7 % 251) as u8).collect());
        let txn = db.conn().begin().await?;
        for i in 0..RAW_ROWS {
            txn.execute_raw(stmt(
                b,
                "INSERT INTO bench_rows (id, body) VALUES ($1, $2)",
                [format!("seed-{i}").into(), body.to_vec().into()],
            ))
            .await?;
        }
        txn.commit().await?;
        let serialise = (b == DbBackend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Self { db, body, serialise })
    }

    fn select_op(&self) -> Op {
        let conn = self.db.conn().clone();
        let b = self.db.backend();
        op(move |_, n| {
            let conn = conn.clone();
            let id = format!("seed-{}", spread(n) % RAW_ROWS as u64);
            async move {
                let row = conn
                    .query_one_raw(stmt(b, "SELECT body FROM bench_rows WHERE id = $1", [id.into()]))
                    .await?
                    .context("row missing")?;
                let _: Vec<u8> = row.try_get_by_index(0)?;
                Ok(())
            }
        })
    }

    fn insert_op(&self) -> Op {
        let (conn, body, serialise) = (self.db.conn().clone(), self.body.clone(), self.serialise.clone());
        let b = self.db.backend();
        op(move |_, n| {
            let (conn, body, serialise) = (conn.clone(), body.clone(), serialise.clone());
            async move {
                let _guard = match &serialise {
                    Some(m) => Some(m.lock().await),
                    None => None,
                };
                conn.execute_raw(stmt(
                    b,
                    "INSERT INTO bench_rows (id, body) VALUES ($1, $2)",
                    [format!("ins-{n}").into(), body.to_vec().into()],
                ))
                .await?;
                Ok(())
            }
        })
    }
}

// ------------------------------------------------------------------------------------ PostgreSQL

/// A fresh PostgreSQL database, dropped by [`PgDb::drop_database`].
pub(crate) struct PgDb {
    admin: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl PgDb {
    pub(crate) async fn create(admin: &str) -> anyhow::Result<Self> {
        let conn = tokio::time::timeout(Duration::from_secs(10), sea_orm::Database::connect(admin))
            .await
            .context("timed out connecting")??;
        let name = format!("einfo_bench_{}", uuid::Uuid::new_v4().simple());
        conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
        let _ = conn.close().await;
        let (path, query) = match admin.split_once('?') {
            Some((p, q)) => (p, format!("?{q}")),
            None => (admin, String::new()),
        };
        let base = path.rsplit_once('/').map(|(b, _)| b).unwrap_or(path);
        Ok(Self { admin: admin.to_owned(), url: format!("{base}/{name}{query}"), name })
    }

    pub(crate) async fn drop_database(self) {
        let dropped = async {
            let conn = sea_orm::Database::connect(&self.admin).await?;
            conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await?;
            conn.close().await?;
            anyhow::Ok(())
        };
        if let Err(e) = dropped.await {
            eprintln!("could not drop database {}: {e:#}", self.name);
        }
    }
}

// ------------------------------------------------------------------------------------ memory

struct Memory {
    idle_hwm_kib: u64,
    seeded_hwm_kib: u64,
    final_hwm_kib: u64,
    final_rss_kib: u64,
    seeded: u64,
    seed_time: Duration,
    db_bytes: u64,
    load: Vec<Row>,
}

/// `VmHWM` and `VmRSS` of a process, in KiB.
pub(crate) fn memory_of(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// A node as a child process (`einfo serve node` hosting the 63 provinces on SQLite), seeded
/// through `ImportSites`, then read with `GetSite` and `ListSites`; its `VmHWM` is read from
/// `/proc`.
async fn bench_memory(args: &BenchArgs) -> anyhow::Result<Memory> {
    let dir = std::env::temp_dir().join(format!("einfo-bench-mem-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let result = memory_on(args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn memory_on(args: &BenchArgs, dir: &Path) -> anyhow::Result<Memory> {
    let codes = p63_codes();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let secret = random_secret();
    let log = dir.join("node.log");
    let log_file = std::fs::File::create(&log)?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["serve", "node", "--provinces", &codes.join(","), "--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.join("data"))
        .env("EINFO_AUTH__SECRET", &secret)
        .env("RUST_LOG", "warn")
        .env_remove("EINFO_DATABASE_URL")
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the node")?;
    let pid = child.id().context("the node exited at once")?;
    let result = async {
        tokio::select! {
            r = wait_serving(addr, Duration::from_secs(120)) => r?,
            s = child.wait() => anyhow::bail!("the node exited ({s:?}): {}", tail(&log)),
        }
        let (idle_hwm_kib, _) = memory_of(pid)?;
        let keys = TokenKeys::from_secret(secret.as_bytes())?;
        let channel = connect(addr).await?;
        let clients: Arc<Vec<RegistryClient>> =
            Arc::new(codes.iter().map(|c| registry_client(&channel, &keys, c)).collect::<anyhow::Result<_>>()?);

        // Seed: every province in batches of IMPORT_BATCH rows, a few calls in flight.
        let per = args.sites_per_province;
        let jobs: Vec<(usize, u32)> =
            (0..codes.len()).flat_map(|p| (0..per).step_by(IMPORT_BATCH as usize).map(move |s| (p, s))).collect();
        let started = Instant::now();
        let mut sample: Vec<Vec<String>> = vec![Vec::new(); codes.len()];
        let mut seeded = 0u64;
        let mut done = futures::stream::iter(jobs)
            .map(|(p, start)| {
                let (clients, code) = (clients.clone(), codes[p].clone());
                async move {
                    let count = IMPORT_BATCH.min(per - start);
                    import(&clients[p], &code, "mem", start, count).await.map(|names| (p, names))
                }
            })
            .buffer_unordered(IMPORT_CONCURRENCY);
        let mut last_report = Instant::now();
        while let Some(r) = done.next().await {
            let (p, names) = r?;
            seeded += names.len() as u64;
            if sample[p].len() < 200 {
                sample[p].extend(names.into_iter().step_by(10).take(200));
            }
            if last_report.elapsed() > Duration::from_secs(15) {
                last_report = Instant::now();
                eprintln!(
                    "    seeded {seeded} sites in {:.0} s ({:.0} rows/s)",
                    started.elapsed().as_secs_f64(),
                    seeded as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        drop(done);
        let seed_time = started.elapsed();
        let (seeded_hwm_kib, _) = memory_of(pid)?;

        // A short read load across the 63 provinces.
        let sample = Arc::new(sample);
        let get_site = {
            let (clients, sample) = (clients.clone(), sample.clone());
            op(move |w, n| {
                let p = (w + n as usize) % clients.len();
                let mut c = clients[p].clone();
                let names = &sample[p];
                let name = (!names.is_empty()).then(|| names[(spread(n) % names.len() as u64) as usize].clone());
                async move {
                    c.get_site(pb::GetSiteRequest { name: name.context("no site to read")? }).await?;
                    Ok(())
                }
            })
        };
        let list_sites = {
            let clients = clients.clone();
            let parents: Arc<Vec<String>> =
                Arc::new(codes.iter().map(|c| jurisdiction(c).map(|j| j.to_string())).collect::<anyhow::Result<_>>()?);
            op(move |w, n| {
                let p = (w + n as usize) % clients.len();
                let mut c = clients[p].clone();
                let parent = parents[p].clone();
                async move {
                    let r = c.list_sites(pb::ListSitesRequest { parent, page_size: 100, ..Default::default() }).await?;
                    anyhow::ensure!(!r.into_inner().sites.is_empty(), "empty page");
                    Ok(())
                }
            })
        };
        let load = measure(
            args,
            32,
            vec![phase("GetSite (63×N node)", "sqlite", get_site), phase("ListSites 100 (63×N)", "sqlite", list_sites)],
        )
        .await;
        let (final_hwm_kib, final_rss_kib) = memory_of(pid)?;
        Ok(Memory {
            idle_hwm_kib,
            seeded_hwm_kib,
            final_hwm_kib,
            final_rss_kib,
            seeded,
            seed_time,
            db_bytes: dir_bytes(&dir.join("data")),
            load,
        })
    }
    .await;
    stop_child(&mut child, pid).await;
    result
}

/// SIGTERM (a graceful stop), then SIGKILL if the node is still there after a while.
pub(crate) async fn stop_child(child: &mut tokio::process::Child, pid: u32) {
    let _ = tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// The last lines of a log file, for an error message.
pub(crate) fn tail(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

// ------------------------------------------------------------------------------------ output

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<26} {:<9} {:>4} {:>11} {:>9} {:>9} {:>8} {:>7}",
        "operation", "database", "conc", "ops/s", "p50 ms", "p99 ms", "ops", "errors"
    );
    println!("{}", "-".repeat(90));
    for r in rows {
        print_row(r);
    }
    for r in rows.iter().filter(|r| r.stats.first_error.is_some()) {
        println!(
            "  first error of {} {} c={}: {}",
            r.what,
            r.db,
            r.conc,
            r.stats.first_error.as_deref().unwrap_or_default()
        );
    }
    println!(
        "Notes: operations measured together (echo, node Health/Check, GetSite, raw SELECT; RegisterSite, raw INSERT) took turns in 1 s slices.
       node Health/Check: the node's server stack (trace layer) without a token or the database, for comparison.
       RegisterSite workers each write to their own province (the node hosts the 63); \"1 province\" puts all 32 on one log.
       raw INSERT on SQLite: writers serialised in-process (as einfo does); raw rows carry a {RAW_BODY}-byte body."
    );
}

pub(crate) fn print_row(r: &Row) {
    let s = &r.stats;
    println!(
        "{:<26} {:<9} {:>4} {:>11.0} {:>9.2} {:>9.2} {:>8} {:>7}",
        r.what,
        r.db,
        r.conc,
        s.ops_per_sec(),
        s.ms(0.5),
        s.ms(0.99),
        s.ops,
        s.errors
    );
}

fn find<'a>(rows: &'a [Row], what: &str, db: &str, conc: usize) -> Option<&'a Row> {
    rows.iter().find(|r| r.what == what && r.db == db && r.conc == conc)
}

/// "target met", or by how much it was missed.
pub(crate) fn verdict(ratio: f64, target: f64) -> String {
    if ratio >= target {
        "target met".into()
    } else {
        format!(
            "missed by {:.1} points (needs {:.0}% more throughput)",
            (target - ratio) * 100.0,
            (target / ratio - 1.0) * 100.0
        )
    }
}

fn print_targets(rows: &[Row]) {
    println!("\nTargets (throughput ratios within this run; information, not a verdict on the build):");
    let checks: [(&str, &str, &str, &str, f64); 4] = [
        (GET_SITE, ECHO, "sqlite", "-", 0.50),
        (GET_SITE, RAW_SELECT, "postgres", "postgres", 0.60),
        (REGISTER_SITE, RAW_INSERT, "sqlite", "sqlite", 0.40),
        (REGISTER_SITE, RAW_INSERT, "postgres", "postgres", 0.40),
    ];
    for (what, base, db, base_db, target) in checks {
        for conc in LEVELS {
            let (Some(a), Some(b)) = (find(rows, what, db, conc), find(rows, base, base_db, conc)) else {
                continue;
            };
            let ratio = a.stats.ops_per_sec() / b.stats.ops_per_sec().max(f64::MIN_POSITIVE);
            println!(
                "  {:<13} {:<9} c={:<3} {:>8.0} / {:<22} {:>8.0} = {:>6.1}%  (target ≥ {:.0}%)  {}",
                what,
                db,
                conc,
                a.stats.ops_per_sec(),
                base,
                b.stats.ops_per_sec(),
                ratio * 100.0,
                target * 100.0,
                verdict(ratio, target)
            );
        }
    }
}

fn print_memory(args: &BenchArgs, m: &Memory) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("\nNode hosting the 63 provinces × {} sites (child process, SQLite):", args.sites_per_province);
    println!(
        "  seeded {} sites through ImportSites ({} rows per call, {} calls in flight) in {:.1} s: {:.0} rows/s",
        m.seeded,
        IMPORT_BATCH,
        IMPORT_CONCURRENCY,
        m.seed_time.as_secs_f64(),
        m.seeded as f64 / m.seed_time.as_secs_f64()
    );
    println!(
        "  peak memory (VmHWM): {:.1} MiB  (idle after start {:.1} MiB, after seeding {:.1} MiB; VmRSS at the end {:.1} MiB)",
        mib(m.final_hwm_kib),
        mib(m.idle_hwm_kib),
        mib(m.seeded_hwm_kib),
        mib(m.final_rss_kib)
    );
    println!("  database files: {:.1} MiB", m.db_bytes as f64 / (1024.0 * 1024.0));
    println!("  read load on it:");
    for r in &m.load {
        print!("  ");
        print_row(r);
    }
}
