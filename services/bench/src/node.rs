//! `einfo bench`: throughput and latency of `GetSite` and `RegisterSite` on SQLite and
//! PostgreSQL, side by side with baselines measured in the same run — a bare tonic unary RPC (the
//! health service's `Check` on a server without layers) and a raw single-row INSERT and
//! primary-key SELECT on the same kind of database with the same durability settings — and the
//! peak memory of a node hosting the 63 provinces of the 2008 scheme.
//!
//! It prints figures. A missed target is information, never a failing exit. Every loop is
//! bounded by a deadline, and everything runs on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use einfo_common::config::Settings;
use einfo_common::db::{Database, adapt, stmt};
use einfo_proto::registry::v1 as pb;
use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use tonic_health::pb::health_client::HealthClient;

use crate::fixtures::{RegistryClient, import, jurisdiction, new_site, p63_codes, random_secret, registry_client};
use crate::measure::{
    ECHO, Op, Row, Schedule, cores, init_telemetry, measure, op, phase, print_row, scratch_dir, spread,
};
use crate::memory::{bench_memory, print_memory};
use crate::servers::{EchoServer, PgDb, connect, health_op, wait_serving};
use einfo_app::node::{self, Role as NodeRole};

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

impl BenchArgs {
    /// How [`measure`] runs this benchmark's phases.
    pub(crate) fn schedule(&self) -> Schedule<'_> {
        Schedule { seconds: self.seconds, warmup_seconds: self.warmup_seconds, only: self.only.as_deref() }
    }
}

/// Concurrency levels of every measured operation.
const LEVELS: [usize; 2] = [1, 32];
/// Sites per province imported before the `GetSite` phases (into the provinces the workers use).
const READ_SITES_PER_PROVINCE: u32 = 250;
/// Rows in `bench_rows` before the raw SELECT phases.
const RAW_ROWS: u32 = 10_000;
/// Size of a raw row's body: about an encoded `Site`.
const RAW_BODY: usize = 320;
/// Names of the operations in the table.
const NODE_HEALTH: &str = "node Health/Check";
/// The echo over mutual TLS (TLS 1.3, Ed25519 certificates, einfo's acceptor and connector).
const ECHO_TLS: &str = "echo, mutual TLS";
const GET_SITE: &str = "GetSite";
const REGISTER_SITE: &str = "RegisterSite";
const RAW_SELECT: &str = "raw SELECT by key";
const RAW_INSERT: &str = "raw INSERT autocommit";

/// Runs the benchmark and prints its table.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let _telemetry = init_telemetry("einfo-bench")?;
    println!(
        "einfo bench: {} s per phase after {} s of warm-up; concurrency {:?}; {} cores; client and server share this process",
        args.seconds,
        args.warmup_seconds,
        LEVELS,
        cores()
    );
    let mut rows: Vec<Row> = Vec::new();

    let echo = EchoServer::start().await?;
    let tmp = scratch_dir("einfo-bench")?;
    // The same echo over mutual TLS, with einfo's acceptor and connector and certificates of a
    // CA made for the run: what TLS adds to a call.
    let (tls_server, tls_client) = bench_pki(&tmp.join("pki"))?;
    let echo_tls = EchoServer::start_with(Some(tls_server)).await?;
    let tls_echo = tls_client.channel(&format!("https://{}", echo_tls.addr), &[], |e| e.tcp_nodelay(true))?;
    let echoes = Echoes { plain: echo.addr, tls: HealthClient::new(tls_echo) };
    let result = async {
        eprintln!("· SQLite (and the echo baseline)");
        let dir = tmp.join("sqlite");
        std::fs::create_dir_all(&dir)?;
        let url = format!("sqlite://{}?mode=rwc", dir.join("einfo.db").display());
        let raw_url = format!("sqlite://{}?mode=rwc", dir.join("raw.db").display());
        bench_database(&args, "sqlite", &url, &raw_url, &dir, Some(&echoes), &mut rows).await?;

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
    echo_tls.stop().await?;
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

/// The echo baselines: plaintext, and over mutual TLS.
struct Echoes {
    plain: SocketAddr,
    tls: HealthClient<tonic::transport::Channel>,
}

/// A CA in `dir` and two holders of it, the echo server and its client, as TLS identities.
fn bench_pki(dir: &Path) -> anyhow::Result<(einfo_common::tls::Tls, einfo_common::tls::Transport)> {
    use einfo_common::{pki, tls};
    let now = einfo_common::clock::Clock::now(&*einfo_common::clock::system());
    let since = now - chrono::Duration::hours(1);
    let ca = pki::init_ca("einfo bench CA", since, 2)?;
    pki::write(dir, "ca", &ca)?;
    let names = ["127.0.0.1".to_owned()];
    for name in ["server", "client"] {
        let held =
            pki::issue(&ca.cert_pem, &ca.key_pem, name, &[einfo_domain::Jurisdiction::Central], &names, since, 2)?;
        pki::write(dir, name, &held)?;
    }
    let load = |name: &str| tls::Tls::load(tls::TlsFiles::of_holder(dir, name), einfo_common::clock::system());
    Ok((load("server")?, tls::Transport::Tls(load("client")?)))
}

/// The rows of one database. Each measured operation runs right after (or before) its baseline,
/// so that a change in the machine's load between phases shifts both alike.
async fn bench_database(
    args: &BenchArgs,
    db_label: &'static str,
    url: &str,
    raw_url: &str,
    dir: &Path,
    echo: Option<&Echoes>,
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
    // Plaintext, as the baselines (a bare tonic call, the echo server) are.
    settings.tls.insecure = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let node = node::start(&settings, NodeRole::Node, listener, Default::default()).await?;
    let raw = Raw::open(raw_url).await;
    let result = async {
        let raw = raw?;
        wait_serving(node.addr, Duration::from_secs(120)).await?;
        let channel = connect(node.addr).await?;
        let keys = node.keys.as_ref().context("the bench's node takes shared-secret tokens")?;
        let clients: Arc<Vec<RegistryClient>> =
            Arc::new(codes.iter().map(|c| registry_client(&channel, keys, c)).collect::<anyhow::Result<_>>()?);
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
            Some(e) => Some((HealthClient::new(connect(e.plain).await?), e.tls.clone())),
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
            if let Some((echo, echo_tls)) = &echo {
                group.push(phase(ECHO, "-", health_op(echo.clone())));
                group.push(phase(ECHO_TLS, "-", health_op(echo_tls.clone())));
                // Diagnostic: the node's own server stack (trace layer, no token, no database).
                group.push(phase(NODE_HEALTH, "-", health_op(HealthClient::new(channel.clone()))));
            }
            group.push(phase(GET_SITE, db_label, get_site.clone()));
            group.push(phase(RAW_SELECT, db_label, raw.select_op()));
            rows.extend(measure(&args.schedule(), conc, group).await);
        }
        // Each worker writes to its own province (a node hosts many): writers of different
        // provinces do not share a log lock.
        for conc in LEVELS {
            let group = vec![
                phase(REGISTER_SITE, db_label, register_site(|w| w)),
                phase(RAW_INSERT, db_label, raw.insert_op()),
            ];
            rows.extend(measure(&args.schedule(), conc, group).await);
        }
        // Every writer on one province: they queue on that province's log lock.
        rows.extend(
            measure(&args.schedule(), 32, vec![phase("RegisterSite 1 province", db_label, register_site(|_| 0))]).await,
        );
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
