//! `einfo`: runs provincial nodes and services, verifies logs offline, issues tokens, and starts
//! a local federation.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use einfo_cli::node::{self, Role};
use einfo_common::auth::{Caller, TokenKeys};
use einfo_common::config::Settings;
use einfo_common::telemetry;
use einfo_domain::{Jurisdiction, Scheme};

#[derive(Parser)]
#[command(
    name = "einfo",
    version,
    about = "Registry, inspection and reporting of general information websites and social networks, federated across Vietnam's provinces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a service.
    #[command(subcommand)]
    Serve(Serve),
    /// Check every hash chain in a database offline; exits 1 if any is broken.
    Verify(DbArgs),
    /// Print a bearer token signed with a node's secret.
    Token(TokenArgs),
    /// Start a local federation on SQLite: the 63 provinces on several nodes.
    Up(UpArgs),
    /// Measure GetSite and RegisterSite on SQLite and PostgreSQL against baselines, and a node's peak memory.
    Bench(einfo_cli::bench::BenchArgs),
}

#[derive(Subcommand)]
enum Serve {
    /// A provincial node: every provincial service for the listed provinces.
    Node(ServeArgs),
    /// The registry service alone.
    Registry(ServeArgs),
    /// The inspection service alone; set `inspection.registry_endpoint` (or
    /// `EINFO_INSPECTION__REGISTRY_ENDPOINT`) to the registry it uses.
    Inspection(ServeArgs),
    /// The reporting service alone; set `reporting.registry_endpoint` and
    /// `reporting.inspection_endpoint` to the services it compiles figures from, and
    /// `reporting.centre_endpoint` to the centre.
    Reporting(ServeArgs),
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Configuration file (TOML); `EINFO_…` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for the embedded SQLite database and the token secret.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `postgres://user@host/db` to use PostgreSQL instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Province codes to host, comma-separated: 01,79.
    #[arg(long, value_delimiter = ',')]
    provinces: Vec<String>,
    /// Province scheme: 2008 (63 provinces, default) or 2025 (34 provinces).
    #[arg(long)]
    scheme: Option<Scheme>,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Role: operator, inspector, reporter, service, central-admin, central-analyst.
    #[arg(long, default_value = "operator")]
    role: String,
    /// Jurisdiction: provinces/2008-01, or central.
    #[arg(long)]
    jurisdiction: String,
    /// Subject (who).
    #[arg(long, default_value = "cli")]
    subject: String,
    /// Validity in hours.
    #[arg(long, default_value_t = 12)]
    ttl_hours: u64,
}

#[derive(Args)]
struct UpArgs {
    /// Where the federation keeps its databases.
    #[arg(long, default_value = ".einfo/up")]
    data_dir: PathBuf,
    /// First port; node i listens on port + i.
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
}

fn settings(db: &DbArgs) -> anyhow::Result<Settings> {
    let mut s = Settings::load(db.config.as_deref())?;
    if let Some(d) = &db.data_dir {
        s.data_dir = d.clone();
    }
    if let Some(u) = &db.database_url {
        s.database_url = Some(u.clone());
    }
    Ok(s)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(Serve::Node(a)) => serve(a, Role::Node).await,
        Command::Serve(Serve::Registry(a)) => serve(a, Role::Registry).await,
        Command::Serve(Serve::Inspection(a)) => serve(a, Role::Inspection).await,
        Command::Serve(Serve::Reporting(a)) => serve(a, Role::Reporting).await,
        Command::Verify(a) => verify(a).await,
        Command::Token(a) => token(a),
        Command::Up(a) => up(a).await,
        Command::Bench(a) => einfo_cli::bench::run(a).await,
    }
}

async fn serve(a: ServeArgs, role: Role) -> anyhow::Result<()> {
    let mut s = settings(&a.db)?;
    if !a.provinces.is_empty() {
        s.provinces = a.provinces.clone();
    }
    if let Some(sc) = a.scheme {
        s.scheme = sc;
    }
    if let Some(l) = a.listen {
        s.listen = l;
    }
    let name = match role {
        Role::Node => "einfo-node",
        Role::Registry => "einfo-registry",
        Role::Inspection => "einfo-inspection",
        Role::Reporting => "einfo-reporting",
    };
    let _telemetry = telemetry::init(name, &s.telemetry)?;
    let listener =
        tokio::net::TcpListener::bind(s.listen).await.with_context(|| format!("cannot listen on {}", s.listen))?;
    let node = node::start(&s, role, listener, Default::default()).await?;
    node.wait().await
}

async fn verify(a: DbArgs) -> anyhow::Result<()> {
    let s = settings(&a)?;
    let db = node::open_database(&s).await?;
    einfo_cli::node::migrate(&db, Role::Node).await?;
    let reports = einfo_cli::verify::verify_all(&db).await?;
    let mut broken = 0;
    for r in &reports {
        match &r.result {
            Ok(n) => println!("ok      {}  {n} entries", r.log),
            Err(e) => {
                broken += 1;
                println!("BROKEN  {}  {e}", r.log);
            }
        }
    }
    println!("{} logs, {} broken", reports.len(), broken);
    if broken > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn token(a: TokenArgs) -> anyhow::Result<()> {
    let s = settings(&a.db)?;
    let keys = TokenKeys::from_secret(&s.token_secret()?)?;
    let caller = Caller {
        subject: a.subject,
        role: a.role.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        jurisdiction: Jurisdiction::parse(&a.jurisdiction)?,
    };
    println!("{}", keys.issue(&caller, Duration::from_secs(a.ttl_hours * 3600))?);
    Ok(())
}

/// Province groups of the local federation: a few multi-province nodes and some single ones.
fn federation_groups() -> Vec<Vec<String>> {
    let codes: Vec<String> = Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect();
    let mut groups = Vec::new();
    let mut rest = codes.as_slice();
    for size in [20, 20, 15] {
        groups.push(rest[..size].to_vec());
        rest = &rest[size..];
    }
    groups.extend(rest.iter().map(|c| vec![c.clone()]));
    groups
}

async fn up(a: UpArgs) -> anyhow::Result<()> {
    let _telemetry = telemetry::init("einfo-up", &Default::default())?;
    std::fs::create_dir_all(&a.data_dir)?;
    let secret_file = a.data_dir.join("token-secret");
    if !secret_file.exists() {
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        std::fs::write(&secret_file, secret)?;
    }
    let keys = TokenKeys::from_secret(std::fs::read_to_string(&secret_file)?.trim().as_bytes())?;

    // The centre: the intake of reports (campaigns, signed receipts), on its own SQLite database.
    let centre_dir = a.data_dir.join("centre");
    std::fs::create_dir_all(&centre_dir)?;
    let centre_db =
        einfo_common::db::Database::connect(&format!("sqlite://{}?mode=rwc", centre_dir.join("central.db").display()))
            .await?;
    let signer = einfo_central::load_or_create_signer(&centre_dir.join("receipt-key"))?;
    let public_key = hex_encode(&signer.public_key());
    let central = einfo_central::Central::open(centre_db, signer).await?;
    let centre_addr = SocketAddr::from(([127, 0, 0, 1], a.port));
    let centre_listener =
        tokio::net::TcpListener::bind(centre_addr).await.with_context(|| format!("cannot listen on {centre_addr}"))?;
    let (stop_centre, stopped) = tokio::sync::oneshot::channel::<()>();
    let centre = tokio::spawn(einfo_central::serve(centre_listener, central, keys, async move {
        let _ = stopped.await;
    }));
    println!("centre   {centre_addr}  (receipt key {public_key})");

    let mut nodes = Vec::new();
    for (i, group) in federation_groups().into_iter().enumerate() {
        let mut s = Settings {
            provinces: group.clone(),
            data_dir: a.data_dir.join(format!("node-{i:02}")),
            listen: SocketAddr::from(([127, 0, 0, 1], a.port + 1 + i as u16)),
            ..Default::default()
        };
        s.auth.secret_file = Some(secret_file.clone());
        s.reporting.centre_endpoint = Some(format!("http://{centre_addr}"));
        s.reporting.centre_public_key_hex = Some(public_key.clone());
        let listener =
            tokio::net::TcpListener::bind(s.listen).await.with_context(|| format!("cannot listen on {}", s.listen))?;
        let n = node::start(&s, Role::Node, listener, Default::default()).await?;
        println!("node {i:02}  {}  provinces {}", n.addr, group.join(","));
        nodes.push(n);
    }
    println!("\n{} nodes host the 63 provinces and report to the centre. Tokens:", nodes.len());
    println!("  einfo token --data-dir {} --jurisdiction provinces/2008-01", a.data_dir.display());
    println!("  einfo token --data-dir {} --jurisdiction central --role central-admin", a.data_dir.display());
    match a.seconds {
        Some(sec) => tokio::time::sleep(Duration::from_secs(sec)).await,
        None => einfo_common::server::shutdown_signal().await,
    }
    for n in nodes {
        n.stop().await?;
    }
    let _ = stop_centre.send(());
    centre.await??;
    Ok(())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
