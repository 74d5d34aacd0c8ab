//! The national gateway: the directory of provincial nodes, replication of every
//! (jurisdiction, service) change log into the national store, national queries that say
//! jurisdiction by jurisdiction how complete and fresh they are (STRICT fails naming what is
//! missing, PARTIAL answers and names it), live fan-out for questions that must be current, and
//! the centre's contract (`einfo.central.v1`, served by the `einfo-central` crate on the
//! gateway's own database).
//!
//! The national summary is served from memory: replication keeps the per-(jurisdiction, kind,
//! legal status) counts in the `gw_summary` table in the same transaction as the sites, and the
//! gateway mirrors that table after each commit, so a summary costs the same whatever the number
//! of sites.
#![forbid(unsafe_code)]

pub mod directory;
pub mod entries;
pub mod fanout;
pub mod grpc;
pub mod migration;
pub mod national;
pub mod replicate;
mod state;
pub mod store;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use einfo_central::Central;
use einfo_common::auth::{Authenticator, TokenKeys};
use einfo_common::config::GatewaySettings;
use einfo_common::db::Database;
use einfo_common::server;
use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::gateway::v1 as pb;
use sea_orm_migration::MigratorTrait;
use tokio::sync::watch;

pub use migration::Migrator;
pub use state::AuditRead;
use state::Inner;
pub(crate) use state::{LogState, freshness_of};

/// gRPC name of the national queries (for health).
pub const NATIONAL_GRPC: &str = einfo_proto::methods::gateway::NATIONAL_SERVICE;
/// gRPC name of the directory (for health).
pub const DIRECTORY_GRPC: &str = einfo_proto::methods::gateway::DIRECTORY_SERVICE;
/// gRPC name of the kept entries (for health).
pub const ENTRY_GRPC: &str = einfo_proto::methods::gateway::ENTRY_SERVICE;
/// The provincial logs replicated.
pub const SERVICES: [&str; 2] = ["registry", "inspection"];

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway(pub(crate) Arc<Inner>);

impl Gateway {
    /// Opens the gateway on `db` (migrated here): the national store, the directory (merged with
    /// `settings.directory_file` when set) and the centre. `keys`: the shared secret, when tokens
    /// signed with it are taken; `calls`: how the gateway signs its own calls to nodes.
    pub async fn open(
        db: Database,
        settings: GatewaySettings,
        keys: Option<TokenKeys>,
        calls: einfo_common::auth::Signer,
        ca_der: Option<Vec<u8>>,
        transport: einfo_common::tls::Transport,
        signer: einfo_common::receipts::ReceiptSigner,
    ) -> anyhow::Result<Self> {
        let file = settings.directory_file.as_deref().map(directory::load_file).transpose()?;
        for (j, endpoint) in file.iter().flatten() {
            transport.endpoint(endpoint).map_err(|e| anyhow::anyhow!("directory file, endpoint of {j}: {e:#}"))?;
        }
        let central = Central::open(db.clone(), signer).await?;
        Migrator::up(db.conn(), None).await?;
        if let Some(entries) = file {
            for (j, endpoint) in entries {
                store::set_endpoint(db.conn(), &j, &endpoint).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        Ok(Gateway(Arc::new(Inner::load(db, settings, keys, calls, ca_der, transport, central).await?)))
    }

    /// How the history of a log behind the cursor was last audited, if it was since the start.
    pub fn audit_read(&self, j: &Jurisdiction, service: &str) -> Option<AuditRead> {
        let service = SERVICES.iter().find(|s| **s == service)?;
        self.state().logs.get(&(*j, *service)).and_then(|l| l.audit)
    }

    /// The centre served by this gateway.
    pub fn central(&self) -> &Central {
        &self.0.central
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.0.db
    }

    /// The settings.
    pub fn settings(&self) -> &GatewaySettings {
        &self.0.settings
    }

    /// The current revision and a receiver of the next ones.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.revision.subscribe()
    }

    /// Asks background work and open streams to stop.
    pub fn stop(&self) {
        let _ = self.0.stopping.send(true);
        self.0.central.stop_streams();
    }

    /// Starts replicating every jurisdiction of the directory (and those added later).
    pub fn start_replication(&self) {
        let js: Vec<Jurisdiction> = self.state().directory.keys().copied().collect();
        for j in js {
            self.spawn_jurisdiction(j);
        }
    }

    /// Every jurisdiction a national answer accounts for: the 63 provinces (the default set),
    /// every jurisdiction of the directory, and every one the store holds data of.
    pub fn expected(&self) -> BTreeSet<Jurisdiction> {
        static P63: std::sync::LazyLock<BTreeSet<Jurisdiction>> =
            std::sync::LazyLock::new(|| Scheme::P63.provinces().iter().map(|p| p.jurisdiction()).collect());
        let st = self.state();
        let mut out = P63.clone();
        out.extend(st.directory.keys().copied());
        out.extend(st.logs.keys().map(|(j, _)| *j));
        out.extend(st.held.iter().copied());
        out
    }

    /// Freshness of `j` at `now`, with `bound` as the staleness bound.
    pub fn freshness(&self, j: &Jurisdiction, now: DateTime<Utc>, bound: Duration) -> pb::JurisdictionFreshness {
        let st = self.state();
        freshness_of(&st, j, now, bound)
    }

    /// Serves the gateway on `listener` (national queries, directory, the centre, health and
    /// reflection) until `shutdown` resolves, replicating meanwhile, and its health alone in
    /// plaintext on `health_listener` when given; each caller within `limits`,
    /// each message within `max_message_bytes` (docs/contracts.md, "Limits").
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        limits: einfo_common::caller_limits::CallerLimits,
        certified: Option<einfo_common::auth::CertVerifier>,
        health_listener: Option<tokio::net::TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let max = limits.settings().max_message_bytes;
        let names = [
            NATIONAL_GRPC,
            DIRECTORY_GRPC,
            ENTRY_GRPC,
            einfo_central::SERVICE_NAME,
            einfo_proto::methods::auth::AUTH_SERVICE,
        ];
        let (readiness, health) = server::health(&names).await;
        let mut routes = tonic::service::Routes::builder();
        routes.add_service(health.clone());
        let (health_stop, mut health_stopped) = watch::channel(false);
        if let Some(l) = health_listener {
            tokio::spawn(server::serve_health(l, health, async move {
                let _ = health_stopped.wait_for(|s| *s).await;
            }));
        }
        routes.add_service(
            einfo_central::CentralGrpc(self.0.central.clone())
                .into_server()
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );
        routes.add_service(
            grpc::NationalGrpc(self.clone())
                .into_server()
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );
        routes.add_service(
            grpc::DirectoryGrpc(self.clone())
                .into_server()
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );
        routes.add_service(
            grpc::EntryGrpc(self.clone()).into_server().max_decoding_message_size(max).max_encoding_message_size(max),
        );
        // Central staff sign in here.
        routes.add_service(
            einfo_common::accounts::AuthService::new(self.0.db.clone(), self.0.signer.clone(), [Jurisdiction::Central])
                .into_server(),
        );
        let routes = server::add_reflection(routes, &names)?.routes();
        // `open` migrated the store before this: the gateway is ready as it starts serving.
        readiness.set_serving().await;
        self.start_replication();
        let stopper = self.clone();
        server::serve_with_limits(
            listener,
            self.0.transport.clone(),
            routes,
            Authenticator::from_parts(self.0.keys.clone(), certified)
                .with_revocations(self.0.central.revocations())
                .with_revoked_certificates(self.0.central.revoked_certificates()),
            readiness,
            limits,
            async move {
                shutdown.await;
                stopper.stop();
                let _ = health_stop.send(true);
            },
        )
        .await
    }
}
