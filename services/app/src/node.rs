//! A provincial node: the services of the provinces it hosts behind one gRPC listener, on one
//! database. Serving starts at once with health NOT_SERVING; migrations run; the reference data
//! applied before is put back in force; then SERVING.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use einfo_common::auth::{Authenticator, Revocations, TokenKeys};
use einfo_common::caller_limits::CallerLimits;
use einfo_common::changelog::{self, ChangeLogService, LogId};
use einfo_common::clock::{Pace, SharedClock};
use einfo_common::config::Settings;
use einfo_common::db::Database;
use einfo_common::reference::{self, CentreFeed, Current, Follower, Kind};
use einfo_common::server;
use einfo_domain::{Jurisdiction, WorkingCalendar};
use einfo_inspection::{Inspection, InspectionGrpc, RegistryLink};
use einfo_proto::methods;
use einfo_registry::{Registry, RegistryGrpc};
use einfo_reporting::{CentreLink, Reporting, ReportingGrpc, StatisticsLinks};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// gRPC names of the services a node runs, for health and reflection (generated from the protos).
pub const REGISTRY_GRPC: &str = methods::registry::REGISTRY_SERVICE;
/// gRPC name of the inspection service.
pub const INSPECTION_GRPC: &str = methods::inspection::INSPECTION_SERVICE;
/// gRPC name of the reporting service.
pub const REPORTING_GRPC: &str = methods::reporting::REPORTING_SERVICE;
/// gRPC name of the change-log service.
pub const CHANGELOG_GRPC: &str = methods::log::CHANGE_LOG_SERVICE;

/// Which services a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every provincial service: registry, inspection and reporting.
    Node,
    /// Registry alone.
    Registry,
    /// Inspection alone; it reaches registry at `inspection.registry_endpoint`.
    Inspection,
    /// Reporting alone; it reaches registry and inspection at `reporting.registry_endpoint` and
    /// `reporting.inspection_endpoint`.
    Reporting,
}

impl Role {
    fn registry(self) -> bool {
        matches!(self, Role::Node | Role::Registry)
    }
    fn inspection(self) -> bool {
        matches!(self, Role::Node | Role::Inspection)
    }
    fn reporting(self) -> bool {
        matches!(self, Role::Node | Role::Reporting)
    }
    /// The services (log names) this role runs.
    pub fn services(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.registry() {
            out.push(einfo_registry::SERVICE);
        }
        if self.inspection() {
            out.push(einfo_inspection::SERVICE);
        }
        if self.reporting() {
            out.push(einfo_reporting::SERVICE);
        }
        out
    }
    fn grpc_names(self) -> Vec<&'static str> {
        let mut out = vec![CHANGELOG_GRPC, einfo_proto::methods::auth::AUTH_SERVICE];
        if self.registry() {
            out.push(REGISTRY_GRPC);
        }
        if self.inspection() {
            out.push(INSPECTION_GRPC);
        }
        if self.reporting() {
            out.push(REPORTING_GRPC);
        }
        out
    }
}

/// Options that tests set; the defaults are what `einfo serve` uses.
#[derive(Default)]
pub struct Options {
    /// When set, migrations wait until it resolves (to observe NOT_SERVING).
    pub migration_gate: Option<tokio::sync::oneshot::Receiver<()>>,
    /// The clock every service of the node reads (the system's by default).
    pub clock: Option<SharedClock>,
}

/// The paces of a node's background loops: a test asks one for a round and waits until it ran.
#[derive(Clone, Debug)]
pub struct Background {
    /// Registry's time-driven transitions (expiry, the end of a suspension, a trial).
    pub registry_clock: Pace,
    /// Inspection's outbox to registry and its overdue decisions.
    pub inspection_outbox: Pace,
    /// Reporting's submissions to the centre.
    pub reporting_outbox: Pace,
}

impl Background {
    fn new(settings: &Settings) -> Self {
        let every = |ms: u64| Pace::every(Duration::from_millis(ms.max(10)));
        Self {
            registry_clock: every(settings.registry.clock_interval_ms),
            inspection_outbox: every(settings.inspection.outbox_interval_ms),
            reporting_outbox: every(settings.reporting.outbox_interval_ms),
        }
    }

    /// Runs one round of every loop the node runs, one after the other (registry's clock,
    /// then inspection's outbox, then reporting's), and returns once all have finished.
    pub async fn run_all(&self, role: Role) {
        if role.registry() {
            self.registry_clock.run_now().await;
        }
        if role.inspection() {
            self.inspection_outbox.run_now().await;
        }
        if role.reporting() {
            self.reporting_outbox.run_now().await;
        }
    }
}

/// A running node.
pub struct Node {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The address serving only its health in plaintext (`health_listen`), when set.
    pub health_addr: Option<SocketAddr>,
    /// The shared secret its tokens are checked with, when it takes such tokens.
    pub keys: Option<TokenKeys>,
    /// The jurisdictions it hosts.
    pub hosted: Vec<Jurisdiction>,
    /// Its background loops.
    pub background: Background,
    /// Its change-log service (how many streams it serves).
    pub changelog: ChangeLogService,
    /// How it talks to its peers (its TLS identity, which [`einfo_common::tls::Tls::reload`]
    /// re-reads).
    pub transport: einfo_common::tls::Transport,
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
    Database::connect_with_pool(&url, settings.database_pool_size)
        .await
        .with_context(|| format!("cannot open database {}", redact(&url)))
}

/// Runs every migration of the services of `role`.
pub async fn migrate(db: &Database, role: Role) -> anyhow::Result<()> {
    changelog::Migrator::up(db.conn(), None).await.context("change-log migrations")?;
    reference::Migrator::up(db.conn(), None).await.context("reference-data migrations")?;
    if role.registry() {
        einfo_registry::Migrator::up(db.conn(), None).await.context("registry migrations")?;
    }
    if role.inspection() {
        einfo_inspection::Migrator::up(db.conn(), None).await.context("inspection migrations")?;
    }
    if role.reporting() {
        einfo_reporting::Migrator::up(db.conn(), None).await.context("reporting migrations")?;
    }
    Ok(())
}

/// The reference data the node follows from the centre, each kind checked with the parser its
/// service loads it with and put in force in that service when this process runs it. A kind
/// whose service does not run here is still checked and stored. A configured
/// `inspection.catalogue_file` wins over the centre's violation catalogue: the operator chose it.
fn follower(
    db: &Database,
    settings: &Settings,
    registry: Option<&Registry>,
    inspection: Option<&Inspection>,
    reporting: Option<&Reporting>,
    revoked: &Current<Revocations>,
    revoked_certificates: &Current<Revocations>,
) -> Follower {
    let revoked = revoked.clone();
    let revoked_certificates = revoked_certificates.clone();
    let follows_catalogue = settings.inspection.catalogue_file.is_none();
    let catalogue_target = inspection.filter(|_| follows_catalogue).cloned();
    let catalogue_reporting = reporting.filter(|_| follows_catalogue).cloned();
    if inspection.is_some() && catalogue_target.is_none() {
        tracing::info!("inspection.catalogue_file is set: the centre's violation catalogue is stored but not used");
    }
    let registry = registry.cloned();
    let reporting = reporting.cloned();
    Follower::new(db.clone())
        .kind(Kind::ViolationCatalogue, einfo_inspection::catalogue::Catalogue::from_csv, move |c| {
            if let Some(r) = &catalogue_reporting {
                r.set_violation_catalogue(c.clone());
            }
            if let Some(i) = &catalogue_target {
                i.set_catalogue(c);
            }
        })
        .kind(
            Kind::Holidays,
            |text| Ok(WorkingCalendar::from_csv(text)?),
            move |c| {
                if let Some(r) = &registry {
                    r.set_calendar(c);
                }
            },
        )
        .kind(Kind::Indicators, einfo_reporting::indicators::Catalogue::from_csv, move |c| {
            if let Some(r) = &reporting {
                r.set_catalogue(c);
            }
        })
        // Every server of the node refuses a revoked token from the moment the list arrives.
        .kind(Kind::RevokedTokens, Revocations::from_csv, move |r| revoked.set(r))
        .kind(Kind::RevokedCertificates, Revocations::certificates_from_csv, move |r| revoked_certificates.set(r))
}

/// The violation catalogue the operator configured (`inspection.catalogue_file`), or the one
/// built in.
fn configured_catalogue(settings: &Settings) -> anyhow::Result<einfo_inspection::catalogue::Catalogue> {
    Ok(match &settings.inspection.catalogue_file {
        None => einfo_inspection::catalogue::Catalogue::bundled(),
        Some(f) => {
            let data = std::fs::read_to_string(f).with_context(|| format!("cannot read catalogue {}", f.display()))?;
            einfo_inspection::catalogue::Catalogue::from_csv(&data)
                .with_context(|| format!("catalogue {}", f.display()))?
        }
    })
}

/// Starts a node on `listener`. It runs until [`Node::stop`] or SIGTERM/SIGINT.
pub async fn start(
    settings: &Settings,
    role: Role,
    listener: TcpListener,
    mut options: Options,
) -> anyhow::Result<Node> {
    let hosted = hosted(settings)?;
    anyhow::ensure!(
        role != Role::Inspection || settings.inspection.registry_endpoint.is_some(),
        "inspection alone needs the registry it uses: set inspection.registry_endpoint (EINFO_INSPECTION__REGISTRY_ENDPOINT)"
    );
    anyhow::ensure!(
        role != Role::Reporting
            || (settings.reporting.registry_endpoint.is_some() && settings.reporting.inspection_endpoint.is_some()),
        "reporting alone needs the services it compiles from: set reporting.registry_endpoint and reporting.inspection_endpoint"
    );
    crate::recover::refuse_if_pending(&settings.database_url())?;
    let store_lock = crate::backup::lock_store(&settings.database_url())?;
    let mut db = open_database(settings).await?;
    let clock = options.clock.take();
    if let Some(clock) = clock.clone() {
        db = db.with_clock(clock);
    }
    let clock = clock.unwrap_or_else(einfo_common::clock::system);
    let limits = CallerLimits::new(settings.limits.clone(), clock.clone());
    let auth = settings.token_auth(clock.clone())?;
    let transport = settings.transport(clock)?;
    let max_message = settings.limits.max_message_bytes;
    let keys = auth.signer.clone();
    let addr = listener.local_addr()?;

    let names = role.grpc_names();
    let (readiness, health_service) = server::health(&names).await;
    let services = role.services();
    let mut routes = tonic::service::Routes::builder();
    routes.add_service(health_service.clone());
    let changelog = ChangeLogService::new(db.clone(), hosted.clone(), &services)
        .with_idle_timeout(Duration::from_millis(settings.limits.stream_idle_timeout_ms))
        .with_signing(auth.signer.note_key().cloned(), auth.certified.as_ref().map(|c| c.ca_der().to_vec()));
    routes.add_service(
        changelog.clone().into_server().max_decoding_message_size(max_message).max_encoding_message_size(max_message),
    );
    // The staff of the provinces it hosts sign in here.
    routes.add_service(
        einfo_common::accounts::AuthService::new(db.clone(), keys.clone(), hosted.iter().copied()).into_server(),
    );
    let registry = role.registry().then(|| Registry::new(db.clone(), settings.scheme, hosted.clone()));
    if let Some(r) = &registry {
        routes.add_service(
            RegistryGrpc(r.clone())
                .into_server()
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        );
    }
    // Read once: inspection judges by it, reporting cites its acts.
    let catalogue = if role.inspection() || role.reporting() { Some(configured_catalogue(settings)?) } else { None };
    let inspection = if role.inspection() {
        let endpoint = settings.inspection.registry_endpoint.clone().unwrap_or_else(|| own_url(&transport, addr));
        let link = RegistryLink::new(
            &transport,
            &endpoint,
            &hosted,
            keys.clone(),
            Duration::from_millis(settings.inspection.registry_timeout_ms),
        )
        .with_context(|| format!("inspection.registry_endpoint '{endpoint}'"))?;
        let catalogue = catalogue.clone().context("the catalogue is read when inspection runs")?;
        tracing::info!(version = catalogue.version(), entries = catalogue.all().len(), "violation catalogue loaded");
        let i = Inspection::new(db.clone(), settings.scheme, hosted.clone(), link, catalogue);
        routes.add_service(
            InspectionGrpc(i.clone())
                .into_server()
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        );
        Some(i)
    } else {
        None
    };
    let reporting = if role.reporting() {
        let own = own_url(&transport, addr);
        let rs = &settings.reporting;
        let timeout = Duration::from_millis(rs.call_timeout_ms);
        let stats = StatisticsLinks::new(
            &transport,
            &hosted,
            rs.registry_endpoint.as_deref().unwrap_or(&own),
            rs.inspection_endpoint.as_deref().unwrap_or(&own),
            keys.clone(),
            timeout,
        )
        .context("reporting.registry_endpoint / reporting.inspection_endpoint")?;
        let centre = match &rs.centre_endpoint {
            None => {
                tracing::warn!(
                    "reporting.centre_endpoint is not set: no campaigns are received and nothing is delivered"
                );
                None
            }
            Some(e) => Some(
                CentreLink::new(&transport, e, rs.centre_public_key()?, keys.clone(), timeout)
                    .with_context(|| format!("reporting.centre_endpoint '{e}'"))?,
            ),
        };
        let r = Reporting::new(
            db.clone(),
            settings.scheme,
            hosted.clone(),
            einfo_reporting::indicators::Catalogue::bundled(),
            stats,
            centre,
        )
        .with_office(einfo_reporting::service::Office {
            command: rs.office_command.clone(),
            timeout: Duration::from_secs(rs.office_timeout_secs),
        });
        if let Some(c) = &catalogue {
            r.set_violation_catalogue(c.clone());
        }
        routes.add_service(
            ReportingGrpc(r.clone())
                .into_server()
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        );
        Some(r)
    } else {
        None
    };
    let routes = server::add_reflection(routes, &names)?.routes();
    let revoked = Current::new(Revocations::default());
    let revoked_certificates = Current::new(Revocations::default());
    let follower = follower(
        &db,
        settings,
        registry.as_ref(),
        inspection.as_ref(),
        reporting.as_ref(),
        &revoked,
        &revoked_certificates,
    );
    let centre_feed = match &settings.reporting.centre_endpoint {
        None => None,
        Some(e) => Some(
            CentreFeed::new(&transport, e, keys.clone(), hosted[0])
                .with_context(|| format!("reporting.centre_endpoint '{e}'"))?,
        ),
    };

    let (stop, mut stopped) = watch::channel(false);
    let changelog_handle = changelog.clone();
    let shutdown = async move {
        tokio::select! {
            _ = server::shutdown_signal() => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
        changelog.stop_streams();
    };
    let health_listener = server::bind_health(settings.health_listen).await?;
    let health_addr = health_listener.as_ref().map(tokio::net::TcpListener::local_addr).transpose()?;
    if let Some(l) = health_listener {
        let mut stopped = stop.subscribe();
        tokio::spawn(server::serve_health(l, health_service.clone(), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
    }
    let served = tokio::spawn(server::serve_with_limits(
        listener,
        transport.clone(),
        routes,
        Authenticator::from_parts(auth.keys.clone(), auth.certified.clone())
            .with_revocations(revoked.clone())
            .with_revoked_certificates(revoked_certificates.clone()),
        readiness.clone(),
        limits,
        shutdown,
    ));
    tracing::info!(%addr, provinces = ?hosted.iter().map(|j| j.to_string()).collect::<Vec<_>>(), ?services, "listening; migrating");

    let background = Background::new(settings);
    let paces = background.clone();
    let feed_interval = Duration::from_millis(settings.reporting.feed_interval_ms.max(10));
    let hosted_for_task = hosted.clone();
    let stop_after_serve = stop.clone();
    let task = tokio::spawn(async move {
        // Held while the node runs.
        let _store_lock = store_lock;
        if let Some(gate) = options.migration_gate.take() {
            let _ = gate.await;
        }
        migrate(&db, role).await?;
        for j in &hosted_for_task {
            for service in &services {
                db.ensure_log(&LogId { jurisdiction: *j, service }).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        follower.restore().await.context("reference data applied before")?;
        readiness.set_serving().await;
        tracing::info!("migrations done; serving");
        let stopped_signal = |tx: &watch::Sender<bool>| {
            let mut rx = tx.subscribe();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut background = Vec::new();
        if let Some(centre) = centre_feed {
            background.push(tokio::spawn(reference::run(
                follower,
                centre,
                feed_interval,
                stopped_signal(&stop_after_serve),
            )));
        }
        if let Some(r) = registry {
            background.push(tokio::spawn(einfo_registry::clock::run(
                r,
                paces.registry_clock.clone(),
                stopped_signal(&stop_after_serve),
            )));
        }
        if let Some(i) = inspection {
            background.push(tokio::spawn(einfo_inspection::outbox::run(
                i,
                paces.inspection_outbox.clone(),
                stopped_signal(&stop_after_serve),
            )));
        }
        if let Some(r) = reporting {
            if r.centre().is_some() {
                for j in r.hosted().copied().collect::<Vec<_>>() {
                    background.push(tokio::spawn(einfo_reporting::feed::run(
                        r.clone(),
                        j,
                        feed_interval,
                        stopped_signal(&stop_after_serve),
                    )));
                }
            }
            background.push(tokio::spawn(einfo_reporting::outbox::run(
                r,
                paces.reporting_outbox.clone(),
                stopped_signal(&stop_after_serve),
            )));
        }
        let result = served.await.context("server task panicked")?;
        // Stopped by a signal or by `stop`: either way the background work stops before the pool closes.
        let _ = stop_after_serve.send(true);
        for b in background {
            let _ = b.await;
        }
        db.close().await?;
        result
    });
    Ok(Node {
        addr,
        health_addr,
        keys: auth.keys,
        hosted,
        background,
        changelog: changelog_handle,
        transport,
        stop,
        task,
    })
}

/// The URL of a node's own address, for its services to call each other: over TLS its
/// certificate must name the address (`einfo pki issue --dns 127.0.0.1`); an unspecified address
/// (`0.0.0.0`) is called on the loopback.
fn own_url(transport: &einfo_common::tls::Transport, addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() { std::net::Ipv4Addr::LOCALHOST.into() } else { addr.ip() };
    format!("{}://{}", transport.scheme(), SocketAddr::new(ip, addr.port()))
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
