//! The national store's tables (prefixed `gw_`). Rows hold the replicated protobuf state beside
//! the columns queries filter on. Instants are microseconds since the epoch.

use einfo_common::db::execute_ddl;
use sea_orm_migration::prelude::*;

/// Gateway migrations, tracked apart from other services'.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Gateway),
            Box::new(M0002KeptEntries),
            Box::new(M0003Checkpoints),
            Box::new(M0004SiteDimensions),
        ]
    }

    fn migration_table_name() -> DynIden {
        "einfo_migrations_gateway".into_iden()
    }
}

struct M0001Gateway;

impl MigrationName for M0001Gateway {
    fn name(&self) -> &str {
        "m0001_gateway"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Gateway {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                "CREATE TABLE gw_directory (jurisdiction TEXT PRIMARY KEY, endpoint TEXT NOT NULL)",
                // Where replication of each (jurisdiction, service) log stands: the last entry
                // applied and its hash, written in the same transaction as the data.
                "CREATE TABLE gw_cursors (
                    jurisdiction TEXT NOT NULL,
                    service TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    hash BLOB NOT NULL,
                    apply_time BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, service))",
                "CREATE TABLE gw_alarms (
                    jurisdiction TEXT PRIMARY KEY,
                    detail TEXT NOT NULL,
                    raise_time BIGINT NOT NULL)",
                "CREATE TABLE gw_sites (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    legal_status INTEGER NOT NULL,
                    voided INTEGER NOT NULL,
                    name_folded TEXT NOT NULL,
                    owner_tax_code TEXT NOT NULL,
                    body BLOB NOT NULL)",
                "CREATE INDEX gw_sites_jurisdiction ON gw_sites (jurisdiction)",
                "CREATE INDEX gw_sites_tax ON gw_sites (owner_tax_code)",
                "CREATE TABLE gw_site_domains (
                    site TEXT NOT NULL,
                    ascii TEXT NOT NULL,
                    registrable TEXT NOT NULL,
                    jurisdiction TEXT NOT NULL,
                    PRIMARY KEY (site, ascii))",
                "CREATE INDEX gw_site_domains_ascii ON gw_site_domains (ascii)",
                "CREATE INDEX gw_site_domains_registrable ON gw_site_domains (registrable)",
                "CREATE TABLE gw_licences (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    state INTEGER NOT NULL,
                    expire_time BIGINT NOT NULL,
                    body BLOB NOT NULL)",
                "CREATE INDEX gw_licences_expiry ON gw_licences (state, expire_time)",
                "CREATE TABLE gw_applications (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    state INTEGER NOT NULL,
                    deadline BIGINT NOT NULL,
                    body BLOB NOT NULL)",
                "CREATE INDEX gw_applications_deadline ON gw_applications (state, deadline)",
                "CREATE TABLE gw_inspections (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    inspect_time BIGINT NOT NULL)",
                "CREATE INDEX gw_inspections_time ON gw_inspections (inspect_time)",
                "CREATE TABLE gw_violations (
                    inspection TEXT NOT NULL,
                    idx INTEGER NOT NULL,
                    jurisdiction TEXT NOT NULL,
                    code TEXT NOT NULL,
                    inspect_time BIGINT NOT NULL,
                    PRIMARY KEY (inspection, idx))",
                "CREATE INDEX gw_violations_time ON gw_violations (inspect_time)",
                "CREATE TABLE gw_decisions (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    decision_time BIGINT NOT NULL,
                    fine_vnd BIGINT NOT NULL,
                    suspensions INTEGER NOT NULL,
                    revocations INTEGER NOT NULL,
                    voided INTEGER NOT NULL)",
                "CREATE INDEX gw_decisions_time ON gw_decisions (decision_time)",
                // Sites by (jurisdiction, kind, legal status), kept by replication in the same
                // transaction as the sites: the national summary never scans the sites.
                "CREATE TABLE gw_summary (
                    jurisdiction TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    legal_status INTEGER NOT NULL,
                    count BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, kind, legal_status))",
            ],
        )
        .await
    }
}

/// The entries the centre received, kept verbatim: the encoded `ChangeEntry` (canonical, so the
/// same bytes the node hashed) and its hash, by (jurisdiction, service, sequence). Entries set
/// aside by a resync after an integrity alarm are moved, not deleted: they are the centre's
/// evidence of what it had received before the province's history changed.
struct M0002KeptEntries;

impl MigrationName for M0002KeptEntries {
    fn name(&self) -> &str {
        "m0002_kept_entries"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002KeptEntries {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                "CREATE TABLE gw_entries (
                    jurisdiction TEXT NOT NULL,
                    service TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    hash BLOB NOT NULL,
                    body BLOB NOT NULL,
                    PRIMARY KEY (jurisdiction, service, seq))",
                "CREATE TABLE gw_entries_set_aside (
                    jurisdiction TEXT NOT NULL,
                    service TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    hash BLOB NOT NULL,
                    body BLOB NOT NULL,
                    set_aside_time BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, service, set_aside_time, seq))",
            ],
        )
        .await
    }
}

/// The nodes' signed checkpoints the centre accepted (with its cosignature), the right edge of
/// the Merkle tree of what it applied of each log (beside the cursor), and the evidence kept when
/// a node's checkpoints disagree with what the centre holds.
struct M0003Checkpoints;

impl MigrationName for M0003Checkpoints {
    fn name(&self) -> &str {
        "m0003_checkpoints"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0003Checkpoints {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                "ALTER TABLE gw_cursors ADD COLUMN frontier BLOB",
                "CREATE TABLE gw_checkpoints (
                    jurisdiction TEXT NOT NULL,
                    service TEXT NOT NULL,
                    size BIGINT NOT NULL,
                    root BLOB NOT NULL,
                    note TEXT NOT NULL,
                    certificate BLOB NOT NULL,
                    accepted_at BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, service, size))",
                "CREATE TABLE gw_evidence (
                    jurisdiction TEXT NOT NULL,
                    service TEXT NOT NULL,
                    raised_at BIGINT NOT NULL,
                    detail TEXT NOT NULL,
                    held_note TEXT NOT NULL,
                    held_certificate BLOB NOT NULL,
                    new_note TEXT NOT NULL,
                    new_certificate BLOB NOT NULL,
                    PRIMARY KEY (jurisdiction, service, raised_at))",
            ],
        )
        .await
    }
}

/// The summary gains the operating state and the trial flag as dimensions (issue 14, point 4):
/// each site row gets both from its replicated state (a site an older node derived as `TRIAL`
/// is on trial), and the summary cells are counted afresh from the sites.
struct M0004SiteDimensions;

impl MigrationName for M0004SiteDimensions {
    fn name(&self) -> &str {
        "m0004_site_dimensions"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0004SiteDimensions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use einfo_common::db::{site_dimensions, stmt};
        const PAGE: i64 = 1000;
        let c = manager.get_connection();
        execute_ddl(
            c,
            &[
                "ALTER TABLE gw_sites ADD COLUMN operating INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE gw_sites ADD COLUMN trial INTEGER NOT NULL DEFAULT 0",
            ],
        )
        .await?;
        let b = c.get_database_backend();
        let mut after = String::new();
        loop {
            let rows = c
                .query_all_raw(stmt(
                    b,
                    "SELECT name, body FROM gw_sites WHERE name > $1 ORDER BY name LIMIT $2",
                    [after.clone().into(), PAGE.into()],
                ))
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get_by_index(0)?;
            for r in &rows {
                let Some((operating, trial)) = site_dimensions(&r.try_get_by_index::<Vec<u8>>(1)?)? else { continue };
                let name: String = r.try_get_by_index(0)?;
                c.execute_raw(stmt(
                    b,
                    "UPDATE gw_sites SET operating = $1, trial = $2 WHERE name = $3",
                    [operating.into(), trial.into(), name.into()],
                ))
                .await?;
            }
        }
        execute_ddl(
            c,
            &[
                "DROP TABLE gw_summary",
                "CREATE TABLE gw_summary (
                    jurisdiction TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    legal_status INTEGER NOT NULL,
                    operating INTEGER NOT NULL,
                    trial INTEGER NOT NULL,
                    count BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, kind, legal_status, operating, trial))",
                "INSERT INTO gw_summary (jurisdiction, kind, legal_status, operating, trial, count)
                 SELECT jurisdiction, kind, legal_status, operating, trial, COUNT(*) FROM gw_sites WHERE voided = 0
                 GROUP BY jurisdiction, kind, legal_status, operating, trial",
            ],
        )
        .await
    }
}
