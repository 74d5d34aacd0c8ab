//! The registry's tables. Each row holds the full protobuf state of its resource (the same
//! bytes the change log records) beside the columns that queries filter on.

use einfo_common::db::execute_ddl;
use sea_orm_migration::prelude::*;

/// Registry migrations, tracked apart from other services' so services can share a database.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Registry),
            Box::new(M0002RunningCounts),
            Box::new(M0003PersonalDataReads),
            Box::new(M0004SiteDimensions),
        ]
    }

    fn migration_table_name() -> DynIden {
        "einfo_migrations_registry".into_iden()
    }
}

struct M0001Registry;

impl MigrationName for M0001Registry {
    fn name(&self) -> &str {
        "m0001_registry"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Registry {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                "CREATE TABLE reg_sites (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    legal_status INTEGER NOT NULL,
                    name_folded TEXT NOT NULL,
                    owner_tax_code TEXT NOT NULL,
                    voided INTEGER NOT NULL,
                    revision BIGINT NOT NULL,
                    state BLOB NOT NULL)",
                "CREATE INDEX reg_sites_jurisdiction ON reg_sites (jurisdiction, name)",
                "CREATE INDEX reg_sites_tax ON reg_sites (jurisdiction, owner_tax_code)",
                "CREATE TABLE reg_site_domains (
                    jurisdiction TEXT NOT NULL,
                    ascii TEXT NOT NULL,
                    registrable TEXT NOT NULL,
                    site TEXT NOT NULL,
                    PRIMARY KEY (jurisdiction, ascii))",
                "CREATE INDEX reg_site_domains_registrable ON reg_site_domains (jurisdiction, registrable)",
                "CREATE INDEX reg_site_domains_site ON reg_site_domains (site)",
                "CREATE TABLE reg_applications (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    site TEXT NOT NULL,
                    state INTEGER NOT NULL,
                    deadline BIGINT NOT NULL,
                    revision BIGINT NOT NULL,
                    body BLOB NOT NULL)",
                "CREATE INDEX reg_applications_jurisdiction ON reg_applications (jurisdiction, name)",
                "CREATE INDEX reg_applications_site ON reg_applications (site)",
                "CREATE TABLE reg_licences (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    site TEXT NOT NULL,
                    state INTEGER NOT NULL,
                    issue_time BIGINT NOT NULL,
                    expire_time BIGINT NOT NULL,
                    suspended_until BIGINT NOT NULL,
                    revision BIGINT NOT NULL,
                    body BLOB NOT NULL)",
                "CREATE INDEX reg_licences_jurisdiction ON reg_licences (jurisdiction, name)",
                "CREATE INDEX reg_licences_site ON reg_licences (site)",
                "CREATE INDEX reg_licences_due ON reg_licences (state, expire_time)",
                "CREATE TABLE reg_records (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    site TEXT NOT NULL,
                    start_time BIGINT NOT NULL,
                    end_time BIGINT NOT NULL,
                    ended INTEGER NOT NULL,
                    body BLOB NOT NULL)",
                "CREATE INDEX reg_records_site ON reg_records (site)",
                "CREATE TABLE reg_history (
                    jurisdiction TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    resource TEXT NOT NULL,
                    resource_type TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    status INTEGER NOT NULL,
                    deadline BIGINT NOT NULL,
                    voided INTEGER NOT NULL,
                    PRIMARY KEY (jurisdiction, seq, resource))",
                "CREATE INDEX reg_history_resource ON reg_history (jurisdiction, resource_type, resource, seq)",
                "CREATE TABLE reg_events (
                    jurisdiction TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    resource TEXT NOT NULL,
                    event TEXT NOT NULL,
                    event_time BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, seq, resource, event))",
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("registry tables are never dropped".into()))
    }
}

/// Running figures, so that the figures of now cost a read of a few rows instead of a pass over
/// the history: sites by (kind, legal status) and dated facts by event, both kept in the same
/// transaction as the entry that changes them (`store::put_history`, `store::put_event`). A
/// database made before this migration has them computed once from its history.
struct M0002RunningCounts;

impl MigrationName for M0002RunningCounts {
    fn name(&self) -> &str {
        "m0002_running_counts"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002RunningCounts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let c = manager.get_connection();
        execute_ddl(
            c,
            &[
                "CREATE TABLE reg_site_counts (
                    jurisdiction TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    legal_status INTEGER NOT NULL,
                    count BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, kind, legal_status))",
                "CREATE TABLE reg_event_counts (
                    jurisdiction TEXT NOT NULL,
                    event TEXT NOT NULL,
                    count BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, event))",
                "CREATE INDEX reg_applications_pending ON reg_applications (jurisdiction, state, deadline)",
                "CREATE INDEX reg_events_resource ON reg_events (jurisdiction, resource)",
                // The counts as they were then (M0004 counts them again with more dimensions).
                "INSERT INTO reg_site_counts (jurisdiction, kind, legal_status, count)
                 SELECT h.jurisdiction, h.kind, h.status, COUNT(*) FROM reg_history h
                 JOIN (SELECT jurisdiction, resource, MAX(seq) AS seq FROM reg_history
                       WHERE resource_type = 'site' GROUP BY jurisdiction, resource) last
                   ON h.jurisdiction = last.jurisdiction AND h.resource = last.resource AND h.seq = last.seq
                 WHERE h.voided = 0
                 GROUP BY h.jurisdiction, h.kind, h.status",
                "INSERT INTO reg_event_counts (jurisdiction, event, count)
                 SELECT e.jurisdiction, e.event, COUNT(*) FROM reg_events e
                 WHERE NOT EXISTS (SELECT 1 FROM reg_history h WHERE h.jurisdiction = e.jurisdiction
                                   AND h.resource_type = 'site' AND h.resource = e.resource AND h.voided = 1)
                 GROUP BY e.jurisdiction, e.event",
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("registry tables are never dropped".into()))
    }
}

/// Who read a person's identification number, address and contact unmasked, what and when
/// (`einfo_common::privacy`).
struct M0003PersonalDataReads;

impl MigrationName for M0003PersonalDataReads {
    fn name(&self) -> &str {
        "m0003_personal_data_reads"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0003PersonalDataReads {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                "CREATE TABLE personal_data_reads (
                    read_at BIGINT NOT NULL,
                    subject TEXT NOT NULL,
                    role TEXT NOT NULL,
                    caller_jurisdiction TEXT NOT NULL,
                    method TEXT NOT NULL,
                    resource TEXT NOT NULL)",
                "CREATE INDEX personal_data_reads_resource ON personal_data_reads (resource, read_at)",
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("the access log is never dropped".into()))
    }
}

/// Trial operation becomes a flag beside the legal status, and the operating state a dimension
/// of the figures (issue 14, point 4): every site snapshot in the history gains its operating
/// state and trial flag, read from the log entry that made it (an entry of an earlier version
/// is on trial when its status was `TRIAL`); the running counts are keyed by (kind, legal status,
/// operating, trial) and counted afresh. Sites still stored as `TRIAL` are re-derived by the
/// registry's clock as new log entries: the chain is never rewritten.
struct M0004SiteDimensions;

impl MigrationName for M0004SiteDimensions {
    fn name(&self) -> &str {
        "m0004_site_dimensions"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0004SiteDimensions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let c = manager.get_connection();
        execute_ddl(
            c,
            &[
                "ALTER TABLE reg_history ADD COLUMN operating INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE reg_history ADD COLUMN trial INTEGER NOT NULL DEFAULT 0",
                "DROP TABLE reg_site_counts",
                "CREATE TABLE reg_site_counts (
                    jurisdiction TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    legal_status INTEGER NOT NULL,
                    operating INTEGER NOT NULL,
                    trial INTEGER NOT NULL,
                    count BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, kind, legal_status, operating, trial))",
                "CREATE INDEX reg_sites_status ON reg_sites (jurisdiction, legal_status)",
            ],
        )
        .await?;
        backfill_site_dimensions(c).await?;
        crate::store::rebuild_counts(c).await.map_err(|e| DbErr::Migration(e.to_string()))
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("registry tables are never dropped".into()))
    }
}

/// Sets each site snapshot's operating state and trial flag from the entry that made it, a
/// page of snapshots at a time (only the ones that differ from the defaults are written).
async fn backfill_site_dimensions(c: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    use einfo_common::db::{site_dimensions, stmt};
    const PAGE: i64 = 1000;
    let b = c.get_database_backend();
    let (mut jurisdiction, mut seq) = (String::new(), -1_i64);
    loop {
        let rows = c
            .query_all_raw(stmt(
                b,
                "SELECT h.jurisdiction, h.seq, l.state FROM reg_history h
                 JOIN change_log l ON l.jurisdiction = h.jurisdiction AND l.service = 'registry' AND l.seq = h.seq
                 WHERE h.resource_type = 'site' AND (h.jurisdiction > $1 OR (h.jurisdiction = $1 AND h.seq > $2))
                 ORDER BY h.jurisdiction, h.seq LIMIT $3",
                [jurisdiction.clone().into(), seq.into(), PAGE.into()],
            ))
            .await?;
        let Some(last) = rows.last() else { return Ok(()) };
        (jurisdiction, seq) = (last.try_get_by_index(0)?, last.try_get_by_index(1)?);
        for r in &rows {
            let Some((operating, trial)) = site_dimensions(&r.try_get_by_index::<Vec<u8>>(2)?)? else { continue };
            let (j, s): (String, i64) = (r.try_get_by_index(0)?, r.try_get_by_index(1)?);
            c.execute_raw(stmt(
                b,
                "UPDATE reg_history SET operating = $1, trial = $2 WHERE jurisdiction = $3 AND seq = $4 AND resource_type = 'site'",
                [operating.into(), trial.into(), j.into(), s.into()],
            ))
            .await?;
        }
    }
}
