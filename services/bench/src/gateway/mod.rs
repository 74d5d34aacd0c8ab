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
//! - the audit of each log's history at a gateway's restart: the node's checkpoint and a
//!   consistency proof, next to reading the log from its start (what it replaces);
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

mod audit;
mod fanout;
mod replication;
mod report;
mod setup;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use einfo_common::auth::BearerToken;
use einfo_proto::gateway::v1::national_service_client::NationalServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use crate::measure::{cores, init_telemetry, scratch_dir};
use crate::servers::{EchoServer, PgDb, connect};
use einfo_app::node;
use fanout::{fanout, summary_rows};
use replication::{lag, raw_insert, store_disk};
use report::{Replication, Report, print_report};
use setup::{Federation, GatewayProcess, Relays};

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

/// A client of the gateway's national service, as a central analyst.
type National = NationalServiceClient<InterceptedService<Channel, BearerToken>>;

/// Name of the national summary in the table.
const SUMMARY: &str = "GetNationalSummary";

/// Runs the benchmark and prints its table.
pub async fn run(args: BenchGatewayArgs) -> anyhow::Result<()> {
    let _telemetry = init_telemetry("einfo-bench-gateway")?;
    anyhow::ensure!(args.sites_per_province > 0, "--sites-per-province must be positive");
    println!(
        "einfo bench-gateway: 63 nodes × {} sites, national store on {}; {} s per latency phase; {} cores shared by the nodes (this process) and the gateway (child)",
        args.sites_per_province,
        args.database.label(),
        args.seconds,
        cores()
    );
    let tmp = scratch_dir("einfo-bench-gw")?;
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
        let echo = HealthClient::new(connect(echo).await?);
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

        eprintln!("· restart audit of the 63 logs: by consistency proof, and by reading them");
        report.audit = Some(audit::restart_audit(&fed).await?);

        eprintln!("· gateway on 63 × {full} sites: full initial replication");
        let url = fresh_store(args, pgs).await?;
        let store =
            url.clone().unwrap_or_else(|| format!("sqlite://{}?mode=rw", tmp.join("gateway/data/einfo.db").display()));
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
        r?;
        let sites = u64::from(full) * 63;
        let (total, kept) = store_disk(&store).await?;
        report.disk = Some((sites, total, kept));
        anyhow::Ok(())
    }
    .await;
    fed.stop().await?;
    result
}
