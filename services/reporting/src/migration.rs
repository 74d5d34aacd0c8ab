//! The reporting service's tables. Rows hold the protobuf state of their resource beside the
//! columns queries filter on.

use einfo_common::db::execute_ddl;
use sea_orm_migration::prelude::*;

/// Reporting migrations, tracked apart from other services'.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Reporting)]
    }

    fn migration_table_name() -> DynIden {
        "einfo_migrations_reporting".into_iden()
    }
}

struct M0001Reporting;

impl MigrationName for M0001Reporting {
    fn name(&self) -> &str {
        "m0001_reporting"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Reporting {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                // Campaigns as received for a jurisdiction, with the exception granted to it (0: none).
                "CREATE TABLE rep_campaigns (
                    jurisdiction TEXT NOT NULL,
                    name TEXT NOT NULL,
                    body BLOB NOT NULL,
                    ext_deadline BIGINT NOT NULL,
                    ext_lock BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, name))",
                // The last feed event applied, per jurisdiction.
                "CREATE TABLE rep_feed (jurisdiction TEXT PRIMARY KEY, cursor_seq BIGINT NOT NULL)",
                "CREATE TABLE rep_reports (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    campaign TEXT NOT NULL,
                    body BLOB NOT NULL)",
                "CREATE TABLE rep_versions (
                    report TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    body BLOB NOT NULL,
                    PRIMARY KEY (report, version))",
                "CREATE TABLE rep_outbox (
                    report TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    jurisdiction TEXT NOT NULL,
                    submission BLOB NOT NULL,
                    state INTEGER NOT NULL,
                    attempts INTEGER NOT NULL,
                    next_attempt BIGINT NOT NULL,
                    last_error TEXT NOT NULL,
                    PRIMARY KEY (report, version))",
                "CREATE INDEX rep_outbox_due ON rep_outbox (state, next_attempt)",
                // The centre's public key, pinned at first use when not configured.
                "CREATE TABLE rep_centre_key (id INTEGER PRIMARY KEY, public_key BLOB NOT NULL)",
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("reporting tables are never dropped".into()))
    }
}
