//! The `einfo` command line: parses arguments and calls the assembly (`einfo-app`) and the
//! benchmarks (`einfo-bench`). The binary is [`main`]; the integration tests run the same
//! function as a child process of their own binary.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::Channel;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use einfo_app::node::{self, Role};

mod desk;
mod render;
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
    /// Copy a SQLite store to a new file while its server runs (a consistent copy), and verify it.
    Backup(BackupArgs),
    /// Put a backup in place of a SQLite store, with its server stopped; the store it replaces is
    /// moved aside, never deleted.
    Restore(RestoreArgs),
    /// Take back, from the national gateway's kept copy, the entries a node restored from a backup
    /// lost (registry and inspection logs), verified by the hash chain; with the node stopped.
    Recover(RecoverArgs),
    /// Print a bearer token signed with a node's secret.
    Token(TokenArgs),
    /// Ask a server's plaintext health address (`--health-listen`) whether it serves: exit 0 when
    /// SERVING, 1 otherwise — a container's health check.
    Health(HealthArgs),
    /// Fetch from a node the proof that an entry of a province's log (a sanction decision, say)
    /// is in a checkpoint the centre cosigned, for whoever the entry concerns; JSON on stdout.
    Proof(ProofArgs),
    /// Check a proof written by `einfo proof` offline, against the centre's CA certificate alone;
    /// exits 1 if it does not hold.
    VerifyProof(VerifyProofArgs),
    /// The centre's certificate authority and the certificates it issues to nodes and the gateway.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Staff accounts on a node's database (its provinces' staff) or the gateway's (central
    /// staff): add, disable, list.
    #[command(subcommand)]
    User(UserCommand),
    /// Sign in: exchange an account's password (read from standard input) for a token, kept in
    /// the profile file for the commands that follow.
    Login(LoginArgs),
    /// Start a local federation on SQLite: the 63 provinces on several nodes, and the gateway.
    Up(UpArgs),
    /// A province's sites: register, show, list, update, void, import (CSV or XLSX). Exit codes:
    /// 0 done, 1 refused by the server, 2 usage, 3 the server could not be reached.
    #[command(subcommand)]
    Site(desk::SiteCommand),
    /// A province's licence applications: submit, supplement, approve, reject, list.
    #[command(subcommand)]
    Application(desk::ApplicationCommand),
    /// A province's licences: show, list, renew, suspend, revoke.
    #[command(subcommand)]
    Licence(desk::LicenceCommand),
    /// A province's rounds, inspections and sanction decisions: plan, record, decide, list.
    #[command(subcommand)]
    Inspection(desk::InspectionCommand),
    /// A province's reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Ask the national gateway.
    #[command(subcommand)]
    National(National),
    /// Look after the national gateway's store.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Measure GetSite and RegisterSite on SQLite and PostgreSQL against baselines, and a node's peak memory.
    Bench(einfo_bench::BenchArgs),
    /// Measure the national gateway over 63 nodes: replication, lag, summary, fan-out, memory.
    BenchGateway(einfo_bench::BenchGatewayArgs),
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
    /// The national gateway: replication into the national store, national queries, the
    /// directory and the centre's contract. `gateway.directory_file` names the nodes.
    Gateway(GatewayArgs),
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Write a province's report for a campaign to a file: the written report as XLSX or PDF
    /// (made by LibreOffice on the node), or its figures as CSV.
    Export(ReportExportArgs),
    #[command(flatten)]
    Work(desk::ReportWork),
}

#[derive(Args)]
struct ReportExportArgs {
    /// The campaign: `campaigns/{id}`.
    #[arg(long)]
    campaign: String,
    /// The province: `provinces/2008-01`, or its code in the 2008 scheme (`01`).
    #[arg(long)]
    province: String,
    /// xlsx, pdf or csv.
    #[arg(long, default_value = "xlsx")]
    format: String,
    /// A submitted version; 0 for the current one (the draft, or the last submitted).
    #[arg(long, default_value_t = 0)]
    version: u32,
    /// Where to write; the node's suggested file name in the current directory when unset.
    #[arg(long)]
    output: Option<PathBuf>,
    /// The node hosting the province; by default the one `einfo up`'s directory names for it.
    #[arg(long)]
    node: Option<String>,
    /// `einfo up`'s data directory: its `pki` (a certificate acting for the province signs the
    /// request), or a `token-secret`, and its `directory.toml`.
    #[arg(long, default_value = ".einfo/up")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum National {
    /// Print the national table: sites by province × legal status, with totals and the
    /// provinces missing or stale.
    Summary(NationalArgs),
    /// Write a campaign's national workbook (a sheet per table, one row per province, national
    /// totals, and the timeliness of every province), or its figures as CSV.
    Export(NationalExportArgs),
    #[command(flatten)]
    Work(desk::NationalWork),
}

#[derive(Args)]
struct NationalExportArgs {
    /// The campaign: `campaigns/{id}`.
    #[arg(long)]
    campaign: String,
    /// xlsx or csv.
    #[arg(long, default_value = "xlsx")]
    format: String,
    /// Where to write; the suggested file name in the current directory when unset.
    #[arg(long)]
    output: Option<PathBuf>,
    /// The gateway's endpoint (it serves the centre's contract).
    #[arg(long, default_value = "https://127.0.0.1:50051")]
    gateway: String,
    /// `einfo up`'s data directory: its `pki` (the gateway's key signs), or a `token-secret`.
    #[arg(long, default_value = ".einfo/up")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an account; its password is read from standard input (one line).
    Add(UserAddArgs),
    /// Disable an account: it can no longer sign in (its tokens expire within hours).
    Disable(UserNameArgs),
    /// List the accounts.
    List(DbArgs),
}

#[derive(Args)]
struct UserAddArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The account's name: a-z, 0-9, '.', '_', '-'.
    #[arg(long)]
    username: String,
    /// operator, inspector or reporter (a province's staff); central-admin or central-analyst.
    #[arg(long)]
    role: String,
    /// `provinces/2008-01`, or `central`.
    #[arg(long)]
    jurisdiction: String,
}

#[derive(Args)]
struct UserNameArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The account's name.
    #[arg(long)]
    username: String,
}

#[derive(Args)]
struct LoginArgs {
    /// The server that holds the account: the node of its province, or the gateway for central
    /// staff.
    #[arg(long, default_value = "https://127.0.0.1:50051")]
    server: String,
    /// The account's name.
    #[arg(long)]
    username: String,
    /// The jurisdiction signed in for: `provinces/2008-01`, or `central`.
    #[arg(long)]
    jurisdiction: String,
    /// Where the token is kept (readable by its owner only); default `einfo/profile.json` in the
    /// user's configuration directory (`$XDG_CONFIG_HOME`, else `~/.config`).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// For an https:// server: the `einfo pki` directory holding the CA's certificate (`ca.pem`)
    /// and a certificate acting for the jurisdiction, presented to the server.
    #[arg(long, default_value = ".einfo/up/pki")]
    pki_dir: PathBuf,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Make the centre's certificate authority: `ca.pem` and `ca.key` (readable by its owner only)
    /// in `--dir`. Never overwrites.
    Init(PkiInitArgs),
    /// Issue a key and certificate to a node (naming the provinces it hosts) or to the centre's
    /// gateway (`--central`): `<name>.pem` and `<name>.key` in `--dir`, beside the CA.
    Issue(PkiIssueArgs),
    /// Revoke a certificate: add it to `revoked-certificates.csv` in `--dir` and, with `--publish`,
    /// publish the list through the centre's reference feed (as central admin, signed with the
    /// `gateway` certificate in `--dir`); every server then refuses the tokens it signs.
    Revoke(PkiRevokeArgs),
}

#[derive(Args)]
struct PkiRevokeArgs {
    /// Where the CA's files are.
    #[arg(long)]
    dir: PathBuf,
    /// The holder whose certificate is revoked.
    #[arg(long)]
    name: String,
    /// The gateway (the centre) to publish the list to: https://host:port (the centre's
    /// certificate in `--dir` is presented to it).
    #[arg(long)]
    publish: Option<String>,
}

#[derive(Args)]
struct PkiInitArgs {
    /// Where the CA's files go.
    #[arg(long)]
    dir: PathBuf,
    /// The CA's name.
    #[arg(long, default_value = "einfo centre CA")]
    name: String,
    /// Validity in days.
    #[arg(long, default_value_t = 3650)]
    days: i64,
}

#[derive(Args)]
struct PkiIssueArgs {
    /// Where the CA's files are, and where the new ones go.
    #[arg(long)]
    dir: PathBuf,
    /// The holder's name: the files' names and the certificate's common name.
    #[arg(long)]
    name: String,
    /// The provinces the holder acts for (a node: those it hosts), comma-separated codes.
    #[arg(long, value_delimiter = ',')]
    provinces: Vec<String>,
    /// Province scheme of `--provinces`: 2008 (default) or 2025.
    #[arg(long)]
    scheme: Option<Scheme>,
    /// The holder acts for the centre (the gateway).
    #[arg(long, conflicts_with = "provinces")]
    central: bool,
    /// DNS names the holder is reached at (for TLS), comma-separated.
    #[arg(long, value_delimiter = ',')]
    dns: Vec<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Rebuild the national projections (sites, licences, applications, inspections, decisions,
    /// summary, cursors) from the entries the gateway kept, after verifying them chain by chain.
    /// Run it with the gateway stopped.
    Rebuild(DbArgs),
}

#[derive(Args)]
struct GatewayArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory file (TOML `[endpoints]`: jurisdiction = endpoint).
    #[arg(long)]
    directory: Option<PathBuf>,
    /// A second address serving only `grpc.health.v1`, in plaintext and without tokens.
    #[arg(long)]
    health_listen: Option<SocketAddr>,
    /// Plaintext, without TLS (`tls.insecure`): for a machine of one's own only.
    #[arg(long)]
    insecure: bool,
}

#[derive(Args)]
struct NationalArgs {
    /// The gateway's endpoint.
    #[arg(long, default_value = "https://127.0.0.1:50051")]
    gateway: String,
    /// `einfo up`'s data directory: its `pki` (the gateway's key signs), or a `token-secret`.
    #[arg(long, default_value = ".einfo/up")]
    data_dir: PathBuf,
    /// strict (fail when any province is missing or stale) or partial.
    #[arg(long, default_value = "partial")]
    mode: String,
    /// 63 or 34 provinces.
    #[arg(long, default_value_t = 63)]
    grouping: u8,
    /// Print JSON rather than a table.
    #[arg(long)]
    json: bool,
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

/// The provinces a node hosts.
#[derive(Args)]
struct HostedArgs {
    /// Province codes to host, comma-separated: 01,79.
    #[arg(long, value_delimiter = ',')]
    provinces: Vec<String>,
    /// Province scheme: 2008 (63 provinces, default) or 2025 (34 provinces).
    #[arg(long)]
    scheme: Option<Scheme>,
}

impl HostedArgs {
    /// Puts the provinces and scheme given into `s`.
    fn apply(&self, s: &mut Settings) {
        if !self.provinces.is_empty() {
            s.provinces = self.provinces.clone();
        }
        if let Some(sc) = self.scheme {
            s.scheme = sc;
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    hosted: HostedArgs,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A second address serving only `grpc.health.v1`, in plaintext and without tokens (for
    /// Kubernetes' gRPC probes and container health checks).
    #[arg(long)]
    health_listen: Option<SocketAddr>,
    /// Plaintext, without TLS (`tls.insecure`): for a machine of one's own only. Without it the
    /// server needs a certificate of the centre's CA (`auth.cert_file`, `auth.key_file`,
    /// `auth.ca_file`).
    #[arg(long)]
    insecure: bool,
}

#[derive(Args)]
struct BackupArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The new file to write the copy to.
    #[arg(long)]
    to: PathBuf,
}

#[derive(Args)]
struct RestoreArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The backup to put in place.
    #[arg(long)]
    from: PathBuf,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["from_gateway", "accept_loss"])))]
struct RecoverArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The provinces the node hosts (as it is served).
    #[command(flatten)]
    hosted: HostedArgs,
    /// The national gateway's endpoint: https://host:port (the node's certificate is presented),
    /// or http://host:port when every process runs with --insecure.
    #[arg(long)]
    from_gateway: Option<String>,
    /// A token the gateway accepts for the province (default: one signed with the node's secret).
    #[arg(long)]
    token: Option<String>,
    /// Recover nothing: let a restored node serve what its backup held.
    #[arg(long)]
    accept_loss: bool,
}

#[derive(Args)]
struct HealthArgs {
    /// The server's health address (`--health-listen`), host:port.
    #[arg(long)]
    addr: SocketAddr,
    /// The service asked about (`einfo.registry.v1.RegistryService`, say); empty: the server.
    #[arg(long, default_value = "")]
    service: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    timeout_secs: u64,
}

#[derive(Args)]
struct ProofArgs {
    /// The node's endpoint.
    #[arg(long)]
    node: String,
    /// The province: `provinces/2008-01`.
    #[arg(long)]
    jurisdiction: String,
    /// The log: registry or inspection.
    #[arg(long, default_value = "inspection")]
    service: String,
    /// The entry's sequence in its log.
    #[arg(long)]
    sequence: u64,
    /// `einfo up`'s data directory: its `pki` (a certificate acting for the province signs the
    /// request), or a `token-secret`.
    #[arg(long, default_value = ".einfo/up")]
    data_dir: PathBuf,
}

#[derive(Args)]
struct VerifyProofArgs {
    /// The proof (JSON written by `einfo proof`).
    file: PathBuf,
    /// The centre's CA certificate (PEM).
    #[arg(long, default_value = ".einfo/up/pki/ca.pem")]
    ca: PathBuf,
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
    /// Sign with the key of this certificate holder (`einfo pki issue --name`) instead of the
    /// shared secret: its `<holder>.key` and `<holder>.pem`, and the CA's `ca.pem`, in `--pki-dir`.
    #[arg(long, requires = "pki_dir")]
    holder: Option<String>,
    /// Where the holder's key and certificate and the CA's certificate are.
    #[arg(long)]
    pki_dir: Option<PathBuf>,
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

pub use desk::exit_code;

/// Runs `einfo` and turns its outcome into the process's exit code: 0 done, 1 refused (or any
/// other failure), 2 usage, 3 unreachable, the error printed on standard error.
pub fn main_exit() -> std::process::ExitCode {
    match main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::from(exit_code(&e) as u8)
        }
    }
}

/// Runs `einfo` with the process's arguments on a new runtime.
pub fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(Serve::Node(a)) => serve(a, Role::Node).await,
        Command::Serve(Serve::Registry(a)) => serve(a, Role::Registry).await,
        Command::Serve(Serve::Inspection(a)) => serve(a, Role::Inspection).await,
        Command::Serve(Serve::Reporting(a)) => serve(a, Role::Reporting).await,
        Command::Verify(a) => verify(a).await,
        Command::Backup(a) => backup(a).await,
        Command::Restore(a) => restore(a).await,
        Command::Recover(a) => recover(a).await,
        Command::Token(a) => token(a),
        Command::Health(a) => health(a).await,
        Command::Proof(a) => proof(a).await,
        Command::VerifyProof(a) => verify_proof(&a),
        Command::Pki(PkiCommand::Init(a)) => pki_init(a),
        Command::Pki(PkiCommand::Issue(a)) => pki_issue(a),
        Command::Pki(PkiCommand::Revoke(a)) => pki_revoke(a).await,
        Command::User(c) => user(c).await,
        Command::Login(a) => login(a).await,
        Command::Up(a) => up(a).await,
        Command::Serve(Serve::Gateway(a)) => serve_gateway(a).await,
        Command::National(National::Summary(a)) => national_summary(a).await,
        Command::Report(ReportCommand::Export(a)) => report_export(a).await,
        Command::Report(ReportCommand::Work(c)) => desk::report(c).await,
        Command::Site(c) => desk::site(c).await,
        Command::Application(c) => desk::application(c).await,
        Command::Licence(c) => desk::licence(c).await,
        Command::Inspection(c) => desk::inspection(c).await,
        Command::National(National::Export(a)) => national_export(a).await,
        Command::National(National::Work(c)) => desk::national(c).await,
        Command::Gateway(GatewayCommand::Rebuild(a)) => rebuild(a).await,
        Command::Bench(a) => einfo_bench::run(a).await,
        Command::BenchGateway(a) => einfo_bench::run_gateway(a).await,
    }
}

async fn serve(a: ServeArgs, role: Role) -> anyhow::Result<()> {
    let mut s = settings(&a.db)?;
    a.hosted.apply(&mut s);
    if let Some(l) = a.listen {
        s.listen = l;
    }
    if a.health_listen.is_some() {
        s.health_listen = a.health_listen;
    }
    s.tls.insecure |= a.insecure;
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
    let (kind, reports) = einfo_app::verify::check(&s.database_url()).await?;
    println!("{kind}");
    let mut broken = 0;
    for r in &reports {
        match &r.result {
            Ok(n) if r.note.is_empty() => println!("ok      {}  {n} entries", r.log),
            Ok(n) => println!("ok      {}  {n} entries; {}", r.log, r.note),
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

async fn backup(a: BackupArgs) -> anyhow::Result<()> {
    let s = settings(&a.db)?;
    let c = einfo_app::backup::backup(&s.database_url(), &a.to).await?;
    println!(
        "backed up {} ({}, {} logs, {} entries, every chain verified)",
        a.to.display(),
        c.kind,
        c.logs.len(),
        c.entries()
    );
    Ok(())
}

async fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    let s = settings(&a.db)?;
    let stamp = now().format("%Y%m%dT%H%M%SZ").to_string();
    let r = einfo_app::backup::restore(&s.database_url(), &a.from, &stamp).await?;
    if let Some(aside) = &r.replaced {
        println!("moved the store it replaces to {}", aside.display());
    }
    println!(
        "restored {} ({}, {} logs, {} entries, every chain verified)",
        a.from.display(),
        r.checked.kind,
        r.checked.logs.len(),
        r.checked.entries()
    );
    if r.checked.kind == einfo_app::verify::StoreKind::Node {
        println!(
            "the node may be behind what the national gateway received from it (the gateway reports it as BEHIND \
             and replicates nothing from it until the entries it lost are back); it does not start until \
             `einfo recover --from-gateway <gateway>` takes them back (or `einfo recover --accept-loss`)"
        );
    }
    Ok(())
}

async fn recover(a: RecoverArgs) -> anyhow::Result<()> {
    use einfo_app::recover::Outcome;
    let mut s = settings(&a.db)?;
    a.hosted.apply(&mut s);
    let Some(gateway) = a.from_gateway else {
        if einfo_app::recover::accept_loss(&s)? {
            println!(
                "the node will serve what its backup held; the entries the centre received after it stay at the centre only"
            );
        } else {
            println!("no recovery was pending");
        }
        return Ok(());
    };
    let outcomes = einfo_app::recover::recover(&s, &einfo_app::recover::Source { gateway, token: a.token }).await?;
    let mut forked = 0;
    let mut entries = 0;
    for l in &outcomes {
        match &l.outcome {
            Outcome::Recovered { from, to } => {
                entries += to - from;
                println!("recovered  {}  entries {}..={to} ({} entries)", l.log, from + 1, to - from);
            }
            Outcome::UpToDate(n) => println!("up to date {}  {n} entries", l.log),
            Outcome::Forked(why) => {
                forked += 1;
                println!("FORKED     {}  {why}", l.log);
            }
        }
    }
    println!("{} logs, {entries} entries recovered, {forked} forked", outcomes.len());
    if forked > 0 {
        println!(
            "a forked log holds writes the centre never received and lacks some it did: nothing was written to it; \
             the gateway raises its integrity alarm for it (see docs/contracts.md, \"Backups\")"
        );
        std::process::exit(1);
    }
    Ok(())
}

async fn rebuild(a: DbArgs) -> anyhow::Result<()> {
    let s = settings(&a)?;
    let r = einfo_app::gateway::rebuild(&s).await?;
    println!("rebuilt {} logs from {} kept entries", r.logs, r.entries);
    for log in &r.not_kept {
        println!(
            "not kept  {log}  (applied before the centre kept entries: replicated again from its node at the next start)"
        );
    }
    Ok(())
}

/// The time now, on the system clock (the commands run once; servers are given their clock).
/// A token for `caller`, signed by `einfo up`'s certificate that acts for its jurisdiction in
/// `<data_dir>/pki`, else with the shared secret in `<data_dir>/token-secret`.
fn local_token(data_dir: &std::path::Path, caller: &Caller) -> anyhow::Result<einfo_common::auth::BearerToken> {
    let pki = data_dir.join("pki");
    let ttl = Duration::from_secs(600);
    let signed = if pki.join("ca.pem").exists() {
        let now = now();
        let holder = einfo_common::pki::holder_for(&pki, &caller.jurisdiction, now)?
            .with_context(|| format!("no certificate in {} acts for {}", pki.display(), caller.jurisdiction))?;
        einfo_common::auth::CertIssuer::from_dir(&pki, &holder, now)?.issue(caller, ttl)?
    } else {
        let secret_file = data_dir.join("token-secret");
        let secret = std::fs::read_to_string(&secret_file)
            .with_context(|| format!("cannot read {} nor the token secret {}", pki.display(), secret_file.display()))?;
        TokenKeys::from_secret(secret.trim().as_bytes())?.issue(caller, ttl)?
    };
    einfo_common::auth::BearerToken::new(&signed)
}

/// A channel to `url` for a command: plaintext for `http://`; for `https://`, mutual TLS with the
/// certificate in `pki` (an `einfo pki` directory: the CA's `ca.pem` and holders' certificates)
/// that acts for `acting_for`.
async fn connect(url: &str, pki: &std::path::Path, acting_for: &Jurisdiction) -> anyhow::Result<Channel> {
    use einfo_common::tls::{Tls, TlsFiles, Transport};
    let transport = if url.starts_with("https://") {
        let now = now();
        let holder = einfo_common::pki::holder_for(pki, acting_for, now)
            .with_context(|| format!("the certificates in {} (--pki-dir)", pki.display()))?
            .with_context(|| format!("no certificate in {} acts for {acting_for}", pki.display()))?;
        Transport::Tls(Tls::load(TlsFiles::of_holder(pki, &holder), einfo_common::clock::system())?)
    } else {
        Transport::Insecure
    };
    let endpoint = transport.endpoint(url)?.connect_timeout(Duration::from_secs(10));
    transport.connect(&endpoint, &[]).await.with_context(|| format!("cannot reach {url}"))
}

async fn health(a: HealthArgs) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let limit = Duration::from_secs(a.timeout_secs.max(1));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", a.addr))?
        .connect_timeout(limit)
        .timeout(limit)
        .connect()
        .await
        .with_context(|| format!("cannot reach the health address {}", a.addr))?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest { service: a.service.clone() })
        .await
        .map_err(|s| anyhow::anyhow!("{} answered {:?}: {}", a.addr, s.code(), s.message()))?
        .into_inner()
        .status();
    let what = if a.service.is_empty() { "the server".to_owned() } else { a.service.clone() };
    anyhow::ensure!(status == ServingStatus::Serving, "{what} at {} is {}", a.addr, status.as_str_name());
    println!("{what} at {} is SERVING", a.addr);
    Ok(())
}

/// A word for a failed call to a plaintext `url` whose connection broke: a server of a federation
/// speaks mutual TLS, and plaintext fails on the connection rather than with an answer.
fn tls_hint(url: &str, s: &tonic::Status) -> &'static str {
    use std::error::Error as _;
    let connection = s.source().is_some_and(|e| e.is::<tonic::transport::Error>());
    if connection && url.starts_with("http://") {
        " (the connection failed: the server may speak mutual TLS — use https://)"
    } else {
        ""
    }
}

/// One line of standard input, without its line end: a password, never echoed by this program
/// (pipe it, or type it at a terminal with echo off).
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

async fn user_db(db: &DbArgs) -> anyhow::Result<einfo_common::db::Database> {
    use sea_orm_migration::MigratorTrait as _;
    let s = settings(db)?;
    let d = einfo_app::node::open_database(&s).await?;
    einfo_common::changelog::Migrator::up(d.conn(), None).await?;
    Ok(d)
}

async fn user(c: UserCommand) -> anyhow::Result<()> {
    let api = |e: einfo_common::error::ApiError| anyhow::anyhow!("{e}");
    match c {
        UserCommand::Add(a) => {
            let jurisdiction = Jurisdiction::parse(&a.jurisdiction).context("--jurisdiction")?;
            let role: einfo_common::auth::Role = a.role.parse().map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
            let password = read_password()?;
            let db = user_db(&a.db).await?;
            let added = einfo_common::accounts::add(db.conn(), &a.username, &jurisdiction, role, &password, db.now())
                .await
                .map_err(api)?;
            println!("added {} ({} of {})", added.username, added.role, added.jurisdiction);
        }
        UserCommand::Disable(a) => {
            let db = user_db(&a.db).await?;
            anyhow::ensure!(
                einfo_common::accounts::disable(db.conn(), &a.username).await.map_err(api)?,
                "no account '{}'",
                a.username
            );
            println!("disabled {}", a.username);
        }
        UserCommand::List(a) => {
            let db = user_db(&a).await?;
            for u in einfo_common::accounts::list(db.conn()).await.map_err(api)? {
                println!(
                    "{:<24} {:<16} {:<20} {}{}",
                    u.username,
                    u.role.as_str(),
                    u.jurisdiction.to_string(),
                    u.created_at.format("%Y-%m-%d"),
                    if u.disabled { "  disabled" } else { "" }
                );
            }
        }
    }
    Ok(())
}

/// The profile file: `--profile`, else `einfo/profile.json` in the user's configuration
/// directory.
fn profile_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").context("no HOME to keep the profile in; give --profile")?)
            .join(".config"),
    };
    Ok(base.join("einfo").join("profile.json"))
}

async fn login(a: LoginArgs) -> anyhow::Result<()> {
    use einfo_proto::auth::v1 as authpb;
    let password = read_password()?;
    let acting_for = Jurisdiction::parse(&a.jurisdiction).context("--jurisdiction")?;
    let channel = connect(&a.server, &a.pki_dir, &acting_for).await?;
    let got = authpb::auth_service_client::AuthServiceClient::new(channel)
        .login(authpb::LoginRequest { username: a.username.clone(), password, jurisdiction: a.jurisdiction.clone() })
        .await
        .map_err(|s| anyhow::anyhow!("not signed in: {}{}", s.message(), tls_hint(&a.server, &s)))?
        .into_inner();
    let until = got.expire_time.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0)).unwrap_or_default();
    let path = profile_path(a.profile)?;
    let profile = serde_json::json!({
        "server": a.server,
        "username": a.username,
        "role": got.role,
        "jurisdiction": got.jurisdiction,
        "token": got.token,
        "expire_time": until.to_rfc3339(),
    });
    write_private(&path, serde_json::to_string_pretty(&profile)?.as_bytes())?;
    println!(
        "signed in as {} ({} of {}) until {}; token kept in {}",
        a.username,
        got.role,
        got.jurisdiction,
        until.to_rfc3339(),
        path.display()
    );
    Ok(())
}

/// Writes `bytes` to `path` readable by its owner only (replacing what was there).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    Ok(())
}

async fn proof(a: ProofArgs) -> anyhow::Result<()> {
    use einfo_proto::log::v1 as logpb;
    let jurisdiction = Jurisdiction::parse(&a.jurisdiction).context("--jurisdiction")?;
    let caller = Caller { subject: "cli".into(), role: einfo_common::auth::Role::Operator, jurisdiction };
    let token = local_token(&a.data_dir, &caller)?;
    let channel = connect(&a.node, &a.data_dir.join("pki"), &caller.jurisdiction).await?;
    let mut c = logpb::change_log_service_client::ChangeLogServiceClient::with_interceptor(channel, token);
    let got = c
        .get_checkpoint(logpb::GetCheckpointRequest {
            jurisdiction: a.jurisdiction.clone(),
            service: a.service.clone(),
            inclusion_of: a.sequence,
            cosigned: true,
            ..Default::default()
        })
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}{}", s.code(), s.message(), tls_hint(&a.node, &s)))?
        .into_inner();
    let checkpoint = got.checkpoint.context("the node sent no checkpoint")?;
    let entry = got.entry.context("the node sent no entry")?;
    let bundle = einfo_common::changelog::proof::Bundle::new(
        &entry,
        &checkpoint.note,
        &checkpoint.certificate,
        &got.cosigner_certificate,
        &got.inclusion_proof,
    );
    println!("{}", serde_json::to_string_pretty(&bundle)?);
    Ok(())
}

async fn report_export(a: ReportExportArgs) -> anyhow::Result<()> {
    use einfo_proto::reporting::v1 as rpb;
    let jurisdiction = match Jurisdiction::parse(&a.province) {
        Ok(j) => j,
        Err(_) => Jurisdiction::parse(&format!("provinces/2008-{}", a.province)).with_context(|| {
            format!("--province '{}': a jurisdiction (provinces/2008-01) or a code (01)", a.province)
        })?,
    };
    let format = match a.format.to_ascii_lowercase().as_str() {
        "xlsx" => rpb::ExportFormat::Xlsx,
        "pdf" => rpb::ExportFormat::Pdf,
        "csv" => rpb::ExportFormat::Csv,
        other => anyhow::bail!("--format '{other}': xlsx, pdf or csv"),
    };
    let id = a.campaign.strip_prefix("campaigns/").unwrap_or(&a.campaign);
    let node = match a.node {
        Some(n) => n,
        None => {
            let file = a.data_dir.join("directory.toml");
            einfo_gateway::directory::load_file(&file)
                .with_context(|| format!("no --node, and {} cannot be read", file.display()))?
                .into_iter()
                .find(|(j, _)| *j == jurisdiction)
                .map(|(_, url)| url)
                .with_context(|| format!("no --node, and {} names no node for {jurisdiction}", file.display()))?
        }
    };
    let caller = Caller { subject: "cli".into(), role: einfo_common::auth::Role::Reporter, jurisdiction };
    let token = local_token(&a.data_dir, &caller)?;
    let channel = connect(&node, &a.data_dir.join("pki"), &jurisdiction).await?;
    let mut c = rpb::reporting_service_client::ReportingServiceClient::with_interceptor(channel, token)
        .max_decoding_message_size(64 * 1024 * 1024);
    let got = c
        .export_report(rpb::ExportReportRequest {
            name: format!("{jurisdiction}/reports/{id}"),
            version: a.version,
            format: format as i32,
        })
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}{}", s.code(), s.message(), tls_hint(&node, &s)))?
        .into_inner();
    write_export(a.output, &got.file_name, &got.content, &got.content_type)
}

async fn national_export(a: NationalExportArgs) -> anyhow::Result<()> {
    use einfo_proto::central::v1 as cpb;
    let format = match a.format.to_ascii_lowercase().as_str() {
        "xlsx" => cpb::WorkbookFormat::Xlsx,
        "csv" => cpb::WorkbookFormat::Csv,
        other => anyhow::bail!("--format '{other}': xlsx or csv"),
    };
    let caller = Caller {
        subject: "cli".into(),
        role: einfo_common::auth::Role::CentralAnalyst,
        jurisdiction: Jurisdiction::Central,
    };
    let token = local_token(&a.data_dir, &caller)?;
    let channel = connect(&a.gateway, &a.data_dir.join("pki"), &Jurisdiction::Central).await?;
    let mut c = cpb::central_service_client::CentralServiceClient::with_interceptor(channel, token)
        .max_decoding_message_size(64 * 1024 * 1024);
    let campaign =
        if a.campaign.starts_with("campaigns/") { a.campaign.clone() } else { format!("campaigns/{}", a.campaign) };
    let got = c
        .export_campaign(cpb::ExportCampaignRequest { campaign, format: format as i32 })
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}{}", s.code(), s.message(), tls_hint(&a.gateway, &s)))?
        .into_inner();
    write_export(a.output, &got.file_name, &got.content, &got.content_type)
}

/// Writes an export where asked (else under its suggested name) and says so.
fn write_export(output: Option<PathBuf>, file_name: &str, content: &[u8], content_type: &str) -> anyhow::Result<()> {
    let out = output.unwrap_or_else(|| PathBuf::from(file_name));
    std::fs::write(&out, content).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} bytes, {content_type})", out.display(), content.len());
    Ok(())
}

fn verify_proof(a: &VerifyProofArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let bundle: einfo_common::changelog::proof::Bundle =
        serde_json::from_str(&text).with_context(|| format!("{} is not a proof of einfo proof", a.file.display()))?;
    let ca = std::fs::read_to_string(&a.ca).with_context(|| format!("cannot read the CA {}", a.ca.display()))?;
    match einfo_common::changelog::proof::verify(&bundle, &einfo_common::pki::der_of(&ca)?) {
        Ok(p) => {
            let e = &p.entry;
            let at = e.server_time.map(|t| t.seconds).and_then(|s| chrono::DateTime::from_timestamp(s, 0));
            println!(
                "verified: entry {} of {}/{} ({} {}, {})",
                e.sequence,
                e.jurisdiction,
                e.service,
                e.operation,
                e.resource,
                at.map_or_else(String::new, |t| t.to_rfc3339())
            );
            println!(
                "  in the tree of {} entries signed by {}, cosigned by the centre ({}) at {}",
                p.tree_size,
                p.node,
                p.centre,
                p.cosigned_at.to_rfc3339()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("not verified: {e}");
            std::process::exit(1);
        }
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    einfo_common::clock::Clock::now(&*einfo_common::clock::system())
}

fn pki_init(a: PkiInitArgs) -> anyhow::Result<()> {
    let now = now();
    let ca = einfo_common::pki::init_ca(&a.name, now, a.days)?;
    let (cert, key) = einfo_common::pki::write(&a.dir, "ca", &ca)?;
    println!("certificate authority {} (serial {}): {}, key {}", a.name, ca.serial, cert.display(), key.display());
    Ok(())
}

fn pki_issue(a: PkiIssueArgs) -> anyhow::Result<()> {
    use einfo_common::pki;
    let acts_for: Vec<Jurisdiction> = if a.central {
        vec![Jurisdiction::Central]
    } else {
        anyhow::ensure!(!a.provinces.is_empty(), "name the provinces the holder acts for (--provinces), or --central");
        let scheme = a.scheme.unwrap_or(Scheme::P63);
        a.provinces.iter().map(|c| Jurisdiction::province(scheme, c)).collect::<Result<_, _>>()?
    };
    let (ca_cert, ca_key) = pki::paths(&a.dir, "ca");
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {} (run `einfo pki init` first)", p.display()))
    };
    let now = now();
    let issued = pki::issue(&read(&ca_cert)?, &read(&ca_key)?, &a.name, &acts_for, &a.dns, now, a.days)?;
    let (cert, key) = pki::write(&a.dir, &a.name, &issued)?;
    let names: Vec<String> = acts_for.iter().map(ToString::to_string).collect();
    println!(
        "issued {} (serial {}) acting for {}: {}, key {}",
        a.name,
        issued.serial,
        names.join(", "),
        cert.display(),
        key.display()
    );
    Ok(())
}

async fn pki_revoke(a: PkiRevokeArgs) -> anyhow::Result<()> {
    use einfo_proto::central::v1 as central;
    let now = now();
    let (serial, list) = einfo_common::pki::revoke(&a.dir, &a.name, now)?;
    let listed = list.lines().count().saturating_sub(1);
    println!("revoked {} (serial {serial}); {listed} in {}", a.name, a.dir.join("revoked-certificates.csv").display());
    let Some(gateway) = a.publish else {
        println!("publish the list as central admin: PublishReferenceData, kind revoked-certificates (or --publish)");
        return Ok(());
    };
    let issuer =
        einfo_common::auth::CertIssuer::from_dir(&a.dir, "gateway", now).context("the centre's certificate signs")?;
    let admin = Caller {
        subject: "einfo-pki".into(),
        role: einfo_common::auth::Role::CentralAdmin,
        jurisdiction: Jurisdiction::Central,
    };
    let token = einfo_common::auth::BearerToken::new(&issuer.issue(&admin, Duration::from_secs(300))?)?;
    let channel = connect(&gateway, &a.dir, &Jurisdiction::Central).await?;
    let item = central::central_service_client::CentralServiceClient::with_interceptor(channel, token)
        .publish_reference_data(central::PublishReferenceDataRequest {
            kind: "revoked-certificates".into(),
            content: list.into_bytes(),
            request_id: format!("revoke-{serial}-{}", now.timestamp()),
        })
        .await
        .map_err(|s| {
            anyhow::anyhow!("the centre refused the list: {:?}: {}{}", s.code(), s.message(), tls_hint(&gateway, &s))
        })?
        .into_inner();
    println!("published as reference data revoked-certificates, version {} (sequence {})", item.version, item.sequence);
    Ok(())
}

fn token(a: TokenArgs) -> anyhow::Result<()> {
    let caller = Caller {
        subject: a.subject,
        role: a.role.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        jurisdiction: Jurisdiction::parse(&a.jurisdiction)?,
    };
    let ttl = Duration::from_secs(a.ttl_hours * 3600);
    // `einfo up`'s data directory holds its federation's certificates: sign with the one that acts
    // for the jurisdiction (the node hosting the province, or the gateway for the centre).
    let up_pki = a.db.data_dir.as_ref().map(|d| d.join("pki")).filter(|p| p.join("ca.pem").exists());
    let (holder, pki_dir) = match (a.holder.clone(), a.pki_dir.clone(), up_pki) {
        (Some(h), Some(d), _) => (Some(h), Some(d)),
        (None, None, Some(d)) => {
            let now = now();
            let h = einfo_common::pki::holder_for(&d, &caller.jurisdiction, now)?
                .with_context(|| format!("no certificate in {} acts for {}", d.display(), caller.jurisdiction))?;
            (Some(h), Some(d))
        }
        _ => (None, None),
    };
    if let (Some(holder), Some(dir)) = (&holder, &pki_dir) {
        let now = now();
        let issuer = einfo_common::auth::CertIssuer::from_dir(dir, holder, now)?;
        println!("{}", issuer.issue(&caller, ttl)?);
        return Ok(());
    }
    let s = settings(&a.db)?;
    let keys = TokenKeys::from_secret(&s.token_secret()?)?.with_max_lifetime(s.auth.max_token_lifetime());
    println!("{}", keys.issue(&caller, ttl)?);
    Ok(())
}

/// Waits until every province of the gateway's directory is live, or `within` has passed;
/// returns (live, all).
async fn until_live(gateway: &einfo_gateway::Gateway, within: Duration) -> (usize, usize) {
    use einfo_proto::gateway::v1::FreshnessState;
    let deadline = tokio::time::Instant::now() + within;
    let bound = Duration::from_millis(gateway.settings().max_staleness_ms);
    loop {
        let at = now();
        let all = Scheme::P63.provinces();
        let live = all
            .iter()
            .filter(|p| gateway.freshness(&p.jurisdiction(), at, bound).state() == FreshnessState::Live)
            .count();
        if live == all.len() || tokio::time::Instant::now() >= deadline {
            return (live, all.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn up(a: UpArgs) -> anyhow::Result<()> {
    // The logs go to a file in the data directory; the terminal shows warnings and errors only.
    std::fs::create_dir_all(&a.data_dir).with_context(|| format!("create {}", a.data_dir.display()))?;
    let log_file = a.data_dir.join("einfo-up.log");
    let settings = telemetry::TelemetrySettings { log_file: Some(log_file.clone()), ..Default::default() };
    let _telemetry = telemetry::init("einfo-up", &settings)?;
    let layout = einfo_app::federation::Layout { data_dir: a.data_dir.clone(), port: a.port };
    let federation = einfo_app::federation::Federation::start(&layout).await?;
    let gateway_addr = federation.gateway.addr;
    let (live, total) = until_live(&federation.gateway.gateway, Duration::from_secs(120)).await;
    println!("gateway  {gateway_addr}  (centre receipt key {})", federation.gateway.public_key_hex);
    for (i, (n, group)) in federation.nodes.iter().enumerate() {
        println!("node {i:02}  {}  provinces {}", n.addr, group.join(","));
    }
    println!("data     {}  (logs: {})", a.data_dir.display(), log_file.display());
    if live == total {
        println!(
            "\nready: {} nodes host the {total} provinces, every one live at the gateway.",
            federation.nodes.len()
        );
    } else {
        println!("\nstarted, {live} of {total} provinces live at the gateway so far (the rest follow; see the log).");
    }
    println!(
        "Sign in: einfo user add --data-dir {}/gateway --username cuc.admin --role central-admin --jurisdiction \
         central (password on stdin), then einfo login --server https://{gateway_addr} --username cuc.admin \
         --jurisdiction central --pki-dir {}/pki",
        a.data_dir.display(),
        a.data_dir.display()
    );
    println!("Try:");
    println!("  einfo national summary --gateway https://{gateway_addr} --data-dir {}", a.data_dir.display());
    println!(
        "  einfo site register --data-dir {} --province 01 --name 'Tin tức Thủ đô' --domain tintucthudo.vn \
         --owner 'Công ty Thủ đô' --tax-code 0100109106",
        a.data_dir.display()
    );
    println!("  einfo site list --data-dir {} --province 01", a.data_dir.display());
    // Ctrl-C or SIGTERM stops it early even with --seconds: the nodes and the gateway stop on
    // the signal by themselves, and the federation must not linger half-stopped.
    let deadline = async {
        match a.seconds {
            Some(sec) => tokio::time::sleep(Duration::from_secs(sec)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = deadline => {}
        _ = einfo_common::server::shutdown_signal() => {}
    }
    federation.stop().await
}

async fn serve_gateway(a: GatewayArgs) -> anyhow::Result<()> {
    let mut s = settings(&a.db)?;
    if let Some(l) = a.listen {
        s.listen = l;
    }
    if let Some(d) = a.directory {
        s.gateway.directory_file = Some(d);
    }
    if a.health_listen.is_some() {
        s.health_listen = a.health_listen;
    }
    s.tls.insecure |= a.insecure;
    let _telemetry = telemetry::init("einfo-gateway", &s.telemetry)?;
    let listener =
        tokio::net::TcpListener::bind(s.listen).await.with_context(|| format!("cannot listen on {}", s.listen))?;
    let g = einfo_app::gateway::start(&s, listener).await?;
    println!("gateway listening on {}", g.addr);
    g.wait().await
}

async fn national_summary(a: NationalArgs) -> anyhow::Result<()> {
    use einfo_proto::gateway::v1 as gw;
    let caller = Caller {
        subject: "cli".into(),
        role: einfo_common::auth::Role::CentralAnalyst,
        jurisdiction: Jurisdiction::Central,
    };
    // Signed with the gateway's key of `einfo up`'s federation, else with a shared secret there.
    let token = local_token(&a.data_dir, &caller)?;
    let mode = match a.mode.as_str() {
        "strict" => gw::QueryMode::Strict,
        "partial" => gw::QueryMode::Partial,
        m => anyhow::bail!("--mode: '{m}' is neither strict nor partial"),
    };
    let grouping = match a.grouping {
        63 => gw::Grouping::Provinces63,
        34 => gw::Grouping::Provinces34,
        g => anyhow::bail!("--grouping: {g} is neither 63 nor 34"),
    };
    let channel = connect(&a.gateway, &a.data_dir.join("pki"), &Jurisdiction::Central).await?;
    let mut client = gw::national_service_client::NationalServiceClient::with_interceptor(channel, token);
    let summary = client
        .get_national_summary(gw::GetNationalSummaryRequest {
            options: Some(gw::QueryOptions { mode: mode as i32, grouping: grouping as i32, max_staleness: None }),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}{}", s.code(), s.message(), tls_hint(&a.gateway, &s)))?
        .into_inner();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&render::summary_json(&summary))?);
    } else {
        print!("{}", render::render_summary(&summary));
    }
    Ok(())
}
