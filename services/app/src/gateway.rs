//! Starting the national gateway (`einfo serve gateway`, `einfo up`, the tests).

use std::net::SocketAddr;

use anyhow::Context;
use einfo_common::config::Settings;
use einfo_gateway::Gateway;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::node;

/// A running gateway.
pub struct RunningGateway {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The address serving only its health in plaintext (`health_listen`), when set.
    pub health_addr: Option<SocketAddr>,
    /// The gateway.
    pub gateway: Gateway,
    /// The centre's public key (receipts), hex.
    pub public_key_hex: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningGateway {
    /// Asks the gateway to stop and waits until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("gateway task panicked")?
    }

    /// Waits until it stops by itself (a signal) or fails.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("gateway task panicked")?
    }
}

/// Opens the gateway's store (migrating it), then serves on `listener` until stopped or
/// SIGTERM/SIGINT.
pub async fn start(settings: &Settings, listener: TcpListener) -> anyhow::Result<RunningGateway> {
    start_with_clock(settings, listener, einfo_common::clock::system()).await
}

/// [`start`] with the clock the gateway and the centre read (tests pass a manual one).
pub async fn start_with_clock(
    settings: &Settings,
    listener: TcpListener,
    clock: einfo_common::clock::SharedClock,
) -> anyhow::Result<RunningGateway> {
    // A bad directory file is refused before anything is created.
    if let Some(f) = &settings.gateway.directory_file {
        einfo_gateway::directory::load_file(f)?;
    }
    let store_lock = crate::backup::lock_store(&settings.database_url())?;
    let limits = einfo_common::caller_limits::CallerLimits::new(settings.limits.clone(), clock.clone());
    let auth = settings.token_auth(clock.clone())?;
    let certified = auth.certified.clone();
    let transport = settings.transport(clock.clone())?;
    let db = node::open_database(settings).await?.with_clock(clock);
    let key_file = settings.gateway.signing_key_file.clone().unwrap_or_else(|| settings.data_dir.join("centre.key"));
    let signer = einfo_central::load_or_create_signer(&key_file)
        .with_context(|| format!("receipt signing key {}", key_file.display()))?;
    let public_key_hex = signer.public_key().iter().map(|b| format!("{b:02x}")).collect();
    let ca_der = certified.as_ref().map(|c| c.ca_der().to_vec());
    let gateway =
        Gateway::open(db, settings.gateway.clone(), auth.keys, auth.signer, ca_der, transport, signer).await?;
    let addr = listener.local_addr()?;
    let health_listener = einfo_common::server::bind_health(settings.health_listen).await?;
    let health_addr = health_listener.as_ref().map(tokio::net::TcpListener::local_addr).transpose()?;
    let (stop, mut stopped) = watch::channel(false);
    let shutdown = async move {
        tokio::select! {
            _ = einfo_common::server::shutdown_signal() => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
    };
    let served = gateway.clone();
    let db = gateway.db().clone();
    let task = tokio::spawn(async move {
        // Held while the gateway runs.
        let _store_lock = store_lock;
        let r = served.serve(listener, limits, certified, health_listener, shutdown).await;
        db.close().await?;
        r
    });
    tracing::info!(%addr, "gateway listening");
    Ok(RunningGateway { addr, health_addr, gateway, public_key_hex, stop, task })
}

/// `einfo gateway rebuild`: the national projections rebuilt from the entries the gateway kept
/// (with the gateway stopped). Refuses a store that is not a gateway's; migrates the gateway's
/// own tables first, as starting the gateway would.
pub async fn rebuild(settings: &Settings) -> anyhow::Result<einfo_gateway::entries::Rebuilt> {
    let url = settings.database_url();
    // Opened read-only first, so that a wrong path or a node's store is refused untouched.
    let conn = crate::verify::open_read_only(&url).await?;
    let kind = crate::verify::store_kind(&conn).await;
    conn.close().await?;
    anyhow::ensure!(
        matches!(kind, Ok(crate::verify::StoreKind::Gateway)),
        "{} is not a gateway's store: nothing to rebuild",
        node::redact(&url)
    );
    let _lock = crate::backup::lock_store(&url).context("stop the gateway before rebuilding")?;
    let db = node::open_database(settings).await?;
    <einfo_gateway::Migrator as sea_orm_migration::MigratorTrait>::up(db.conn(), None).await?;
    let out = einfo_gateway::entries::rebuild(&db).await;
    db.close().await?;
    out
}
