//! A provincial node: the services of the provinces it hosts behind one gRPC listener, on one
//! database. Serving starts at once with health NOT_SERVING; migrations run; then SERVING.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use einfo_common::auth::{Authenticator, TokenKeys};
use einfo_common::changelog::{self, ChangeLogService, LogId};
use einfo_common::config::Settings;
use einfo_common::db::Database;
use einfo_common::server;
use einfo_domain::Jurisdiction;
use einfo_registry::{Registry, RegistryGrpc};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// gRPC names of the services a node runs, for health.
pub const REGISTRY_GRPC: &str = "einfo.registry.v1.RegistryService";
/// gRPC name of the change-log service.
pub const CHANGELOG_GRPC: &str = "einfo.log.v1.ChangeLogService";

/// Which services a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every provincial service (registry now; inspection and reporting join as they land).
    Node,
    /// Registry alone.
    Registry,
}

/// Options that tests set; the defaults are what `einfo serve` uses.
#[derive(Default)]
pub struct Options {
    /// When set, migrations wait until it resolves (to observe NOT_SERVING).
    pub migration_gate: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// A running node.
pub struct Node {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The keys its tokens are checked with.
    pub keys: TokenKeys,
    /// The jurisdictions it hosts.
    pub hosted: Vec<Jurisdiction>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Node {
    /// Asks the node to stop and waits until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("node task panicked")?
    }

    /// Waits until the node stops by itself (a signal) or fails.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("node task panicked")?
    }

    /// A handle that stops the node when told.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// The jurisdictions named by `settings.provinces` under `settings.scheme`.
pub fn hosted(settings: &Settings) -> anyhow::Result<Vec<Jurisdiction>> {
    anyhow::ensure!(!settings.provinces.is_empty(), "name the provinces to host, e.g. --provinces 01,79");
    let mut out = Vec::new();
    for code in &settings.provinces {
        let j =
            Jurisdiction::province(settings.scheme, code.trim()).map_err(|e| anyhow::anyhow!("--provinces: {e}"))?;
        if !out.contains(&j) {
            out.push(j);
        }
    }
    Ok(out)
}

/// Opens the database of `settings` (creating the data directory for SQLite).
pub async fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
    }
    let url = settings.database_url();
    Database::connect(&url).await.with_context(|| format!("cannot open database {}", redact(&url)))
}

/// Runs every migration of the services of `role`.
pub async fn migrate(db: &Database, role: Role) -> anyhow::Result<()> {
    changelog::Migrator::up(db.conn(), None).await.context("change-log migrations")?;
    match role {
        Role::Node | Role::Registry => {
            einfo_registry::Migrator::up(db.conn(), None).await.context("registry migrations")?
        }
    }
    Ok(())
}

/// Starts a node on `listener`. It runs until [`Node::stop`] or SIGTERM/SIGINT.
pub async fn start(
    settings: &Settings,
    role: Role,
    listener: TcpListener,
    mut options: Options,
) -> anyhow::Result<Node> {
    let hosted = hosted(settings)?;
    let db = open_database(settings).await?;
    let keys = TokenKeys::from_secret(&settings.token_secret()?)?;
    let addr = listener.local_addr()?;

    let names = [REGISTRY_GRPC, CHANGELOG_GRPC];
    let (health, health_service) = server::health(&names);
    let registry = Registry::new(db.clone(), settings.scheme, hosted.clone());
    let log_service = ChangeLogService::new(db.clone(), hosted.clone(), &[einfo_registry::SERVICE]);
    let mut routes = tonic::service::Routes::builder();
    routes
        .add_service(health_service)
        .add_service(RegistryGrpc(registry.clone()).into_server())
        .add_service(log_service.into_server());
    let routes = server::add_reflection(routes)?.routes();

    let (stop, mut stopped) = watch::channel(false);
    let mut stopped2 = stop.subscribe();
    let shutdown = async move {
        tokio::select! {
            _ = server::shutdown_signal() => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
    };
    let served = tokio::spawn(server::serve(listener, routes, Authenticator::new(keys.clone()), shutdown));
    tracing::info!(%addr, provinces = ?hosted.iter().map(|j| j.to_string()).collect::<Vec<_>>(), "node listening; migrating");

    let interval = Duration::from_millis(settings.registry.clock_interval_ms.max(10));
    let hosted_for_task = hosted.clone();
    let stop_after_serve = stop.clone();
    let task = tokio::spawn(async move {
        if let Some(gate) = options.migration_gate.take() {
            let _ = gate.await;
        }
        migrate(&db, role).await?;
        for j in &hosted_for_task {
            db.ensure_log(&LogId { jurisdiction: *j, service: einfo_registry::SERVICE })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        server::set_serving(&health, &names).await;
        tracing::info!("migrations done; serving");
        let stop_clock = async move {
            let _ = stopped2.wait_for(|s| *s).await;
        };
        let clock = tokio::spawn(einfo_registry::clock::run(registry, interval, stop_clock));
        let result = served.await.context("server task panicked")?;
        // Stopped by a signal or by `stop`: either way the clock stops before the pool closes.
        let _ = stop_after_serve.send(true);
        let _ = clock.await;
        db.close().await?;
        result
    });
    Ok(Node { addr, keys, hosted, stop, task })
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
