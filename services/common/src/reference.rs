//! Reference data a node follows from the centre (`StreamReferenceData`): the violation
//! catalogue, the indicator catalogue and the holidays (working-day calendar).
//!
//! Each service holds its data in a [`Current`], swapped while it runs. A [`Follower`] streams
//! the centre's items after the node's cursor, checks each with the parser the service loads it
//! with, stores the content and the cursor in one transaction (tables `reference_*`) and only
//! then installs it, so a restarted node starts from the latest version it applied rather than
//! the one built in ([`Follower::restore`]). An item that does not parse is logged loudly and
//! skipped: the cursor moves past it and the version in force stays.
//!
//! The parsers live with the services (inspection, reporting, the domain's calendar), which
//! depend on this crate; the node assembly registers them with [`Follower::kind`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use einfo_domain::Jurisdiction;
use einfo_proto::central::v1 as pb;
use pb::central_service_client::CentralServiceClient;
use sea_orm::ConnectionTrait;
use sea_orm_migration::prelude::*;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::auth::{BearerToken, Caller, Role, Signer};
use crate::db::{Database, execute_ddl, micros, stmt};

/// The kinds of reference data, named as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `violation-catalogue`: inspection's catalogue of violations (danh mục hành vi vi phạm).
    ViolationCatalogue,
    /// `indicators`: reporting's indicator catalogue (chỉ tiêu báo cáo).
    Indicators,
    /// `holidays`: the working-day calendar (ngày nghỉ lễ, ngày làm bù).
    Holidays,
    /// `revoked-tokens`: the ids of bearer tokens the centre revoked ([`crate::auth::Revocations`]).
    RevokedTokens,
    /// `revoked-certificates`: the serial numbers of certificates the centre's CA revoked.
    RevokedCertificates,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] =
        [Kind::ViolationCatalogue, Kind::Indicators, Kind::Holidays, Kind::RevokedTokens, Kind::RevokedCertificates];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ViolationCatalogue => "violation-catalogue",
            Kind::Indicators => "indicators",
            Kind::Holidays => "holidays",
            Kind::RevokedTokens => "revoked-tokens",
            Kind::RevokedCertificates => "revoked-certificates",
        }
    }

    /// The kind of a wire name.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The version of a piece of reference data: the hex of the first 8 bytes of its SHA-256.
pub fn version_of(content: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(content)[..8])
}

/// A value in force that can be replaced while readers hold the previous one: readers take an
/// `Arc` and keep a consistent version for as long as they need it.
pub struct Current<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Current<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Current<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(value))))
    }

    /// The value in force.
    pub fn get(&self) -> Arc<T> {
        // A writer cannot panic half-way through replacing an `Arc`, so a poisoned lock still
        // holds a whole value.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the value in force.
    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

/// Migrations of the node's reference-data tables, tracked in their own table.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Reference)]
    }

    fn migration_table_name() -> DynIden {
        "einfo_migrations_reference".into_iden()
    }
}

struct M0001Reference;

impl MigrationName for M0001Reference {
    fn name(&self) -> &str {
        "m0001_reference"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Reference {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                // The latest version applied of each kind, as the centre sent it.
                "CREATE TABLE reference_applied (
                    kind TEXT PRIMARY KEY,
                    seq BIGINT NOT NULL,
                    version TEXT NOT NULL,
                    content BLOB NOT NULL,
                    apply_time BIGINT NOT NULL)",
                // One row: the last sequence of the centre's reference feed the node has seen.
                "CREATE TABLE reference_cursor (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL)",
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("reference tables are never dropped".into()))
    }
}

/// Puts a checked version in force.
pub type Install = Box<dyn FnOnce() + Send>;
type Check = Arc<dyn Fn(&str) -> anyhow::Result<Install> + Send + Sync>;

/// What [`Follower::apply`] did with an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Stored and put in force.
    Installed,
    /// Refused (unknown kind, not UTF-8, or the parser's error); the cursor moved past it.
    Skipped(String),
    /// At or before the cursor: seen before, nothing done.
    Seen,
}

/// Follows the centre's reference data for the services of one node.
#[derive(Clone)]
pub struct Follower {
    db: Database,
    kinds: HashMap<Kind, Check>,
}

impl Follower {
    /// A follower storing in `db` (migrated with [`Migrator`]), handling no kind yet.
    pub fn new(db: Database) -> Self {
        Self { db, kinds: HashMap::new() }
    }

    /// Handles `kind`: `parse` checks and reads the content, `install` puts the value in force.
    /// A kind handled by no service of the process is still stored (and checked) with an
    /// `install` that does nothing, so a node that later runs that service finds it.
    pub fn kind<T: Send + 'static>(
        mut self,
        kind: Kind,
        parse: impl Fn(&str) -> anyhow::Result<T> + Send + Sync + 'static,
        install: impl Fn(T) + Clone + Send + Sync + 'static,
    ) -> Self {
        let check: Check = Arc::new(move |content: &str| {
            let value = parse(content)?;
            let install = install.clone();
            Ok(Box::new(move || install(value)) as Install)
        });
        self.kinds.insert(kind, check);
        self
    }

    /// The last sequence of the centre's feed the node has seen (0 when none).
    pub async fn cursor(&self) -> Result<u64, DbErr> {
        cursor(self.db.conn()).await
    }

    /// Puts in force every stored version (at start, before serving). A stored version that no
    /// longer parses (a parser made stricter since) is logged and the built-in one stays.
    /// Returns the kinds and versions installed.
    pub async fn restore(&self) -> Result<Vec<(Kind, String)>, DbErr> {
        let c = self.db.conn();
        let rows = c
            .query_all_raw(stmt(
                c.get_database_backend(),
                "SELECT kind, version, content FROM reference_applied ORDER BY seq",
                [],
            ))
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let (name, version, content): (String, String, Vec<u8>) =
                (r.try_get_by_index(0)?, r.try_get_by_index(1)?, r.try_get_by_index(2)?);
            let Some(kind) = Kind::parse(&name) else { continue };
            match self.check(kind, &content) {
                Ok(install) => {
                    install();
                    tracing::info!(%kind, %version, "reference data restored");
                    out.push((kind, version));
                }
                Err(e) => {
                    tracing::error!(%kind, %version, error = %e, "stored reference data no longer loads; the built-in version stays")
                }
            }
        }
        Ok(out)
    }

    fn check(&self, kind: Kind, content: &[u8]) -> anyhow::Result<Install> {
        let check = self.kinds.get(&kind).ok_or_else(|| anyhow::anyhow!("this node handles no {kind}"))?;
        let text = std::str::from_utf8(content).map_err(|e| anyhow::anyhow!("the content is not UTF-8: {e}"))?;
        check(text)
    }

    /// Applies one item of the feed: checked, then stored with the cursor in one transaction,
    /// then put in force. An item that fails the check moves the cursor only.
    pub async fn apply(&self, item: pb::ReferenceData) -> Result<Applied, DbErr> {
        let checked = match Kind::parse(&item.kind) {
            None => Err(anyhow::anyhow!("unknown kind '{}'", item.kind)),
            Some(kind) => self.check(kind, &item.content).map(|i| (kind, i)),
        };
        let w = self.db.begin_write().await?;
        let b = w.txn.get_database_backend();
        if item.sequence <= cursor(&w.txn).await? {
            return Ok(Applied::Seen);
        }
        let outcome = match checked {
            Ok((kind, install)) => {
                w.txn
                    .execute_raw(stmt(
                        b,
                        "INSERT INTO reference_applied (kind, seq, version, content, apply_time) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (kind) DO UPDATE SET seq = excluded.seq, version = excluded.version,
                         content = excluded.content, apply_time = excluded.apply_time",
                        [
                            kind.as_str().into(),
                            (item.sequence as i64).into(),
                            item.version.clone().into(),
                            item.content.clone().into(),
                            micros(self.db.now()).into(),
                        ],
                    ))
                    .await?;
                Ok(install)
            }
            Err(e) => Err(e),
        };
        w.txn
            .execute_raw(stmt(
                b,
                "INSERT INTO reference_cursor (id, seq) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                [(item.sequence as i64).into()],
            ))
            .await?;
        w.commit().await?;
        match outcome {
            Ok(install) => {
                install();
                tracing::info!(kind = %item.kind, version = %item.version, sequence = item.sequence, "reference data applied");
                Ok(Applied::Installed)
            }
            Err(e) => {
                tracing::error!(
                    kind = %item.kind,
                    version = %item.version,
                    sequence = item.sequence,
                    error = %e,
                    "REFERENCE DATA REFUSED: the centre's item does not load here; skipped, the version in force stays"
                );
                Ok(Applied::Skipped(e.to_string()))
            }
        }
    }
}

async fn cursor<C: ConnectionTrait>(c: &C) -> Result<u64, DbErr> {
    let row =
        c.query_one_raw(stmt(c.get_database_backend(), "SELECT seq FROM reference_cursor WHERE id = 1", [])).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) as u64)
}

/// A lazily connected link to the centre's reference feed, calling as the `service` role of a
/// hosted jurisdiction (any authenticated caller may read reference data).
#[derive(Clone)]
pub struct CentreFeed {
    channel: Channel,
    keys: Signer,
    caller: Caller,
}

impl CentreFeed {
    /// A link to the centre at `endpoint`, acting for `jurisdiction`.
    pub fn new(
        transport: &crate::tls::Transport,
        endpoint: &str,
        keys: impl Into<Signer>,
        jurisdiction: Jurisdiction,
    ) -> anyhow::Result<Self> {
        let channel = transport.channel(endpoint, &[Jurisdiction::Central], |e| {
            e.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true)
        })?;
        Ok(Self {
            channel,
            keys: keys.into(),
            caller: Caller { subject: "reference".into(), role: Role::Service, jurisdiction },
        })
    }

    fn client(&self) -> anyhow::Result<CentralServiceClient<InterceptedService<Channel, BearerToken>>> {
        let token = self.keys.issue(&self.caller, Duration::from_secs(300))?;
        Ok(CentralServiceClient::with_interceptor(self.channel.clone(), BearerToken::new(&token)?))
    }
}

/// Reads the centre's reference feed from the node's cursor until the stream ends (at once
/// without `follow`) or fails. Returns the items installed.
pub async fn follow_once(f: &Follower, centre: &CentreFeed, follow: bool) -> anyhow::Result<usize> {
    let after = f.cursor().await?;
    let mut stream =
        centre.client()?.stream_reference_data(pb::StreamReferenceDataRequest { after, follow }).await?.into_inner();
    let mut installed = 0;
    while let Some(msg) = stream.message().await? {
        let Some(item) = msg.data else { continue };
        if f.apply(item).await? == Applied::Installed {
            installed += 1;
        }
    }
    Ok(installed)
}

/// Follows the centre's reference feed, reconnecting `interval` after the stream ends or fails,
/// until `shutdown` resolves.
pub async fn run(f: Follower, centre: CentreFeed, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            r = follow_once(&f, &centre, true) => match r {
                Ok(_) => tracing::info!("the centre closed the reference feed; reconnecting"),
                Err(e) => tracing::info!(error = %e, "the centre's reference feed failed; reconnecting"),
            },
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_wire_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("holiday"), None);
    }

    #[test]
    fn a_reader_keeps_the_version_it_took_while_a_new_one_is_put_in_force() {
        let c = Current::new(1);
        let held = c.get();
        c.set(2);
        assert_eq!((*held, *c.get()), (1, 2));
    }
}
