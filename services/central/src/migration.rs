//! The centre's tables (prefixed `central_`). Rows hold the protobuf bodies beside the columns
//! queries filter on.

use einfo_common::db::execute_ddl;
use sea_orm_migration::prelude::*;

/// Centre migrations, tracked apart from other services'.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Central), Box::new(M0002Reference), Box::new(M0003SubmissionContent)]
    }

    fn migration_table_name() -> DynIden {
        "einfo_migrations_central".into_iden()
    }
}

struct M0001Central;

impl MigrationName for M0001Central {
    fn name(&self) -> &str {
        "m0001_central"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Central {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                "CREATE TABLE central_campaigns (name TEXT PRIMARY KEY, body BLOB NOT NULL)",
                // One row per (campaign, target): the deadline and lock time in force and the
                // first receipt, which decides timeliness.
                "CREATE TABLE central_targets (
                    campaign TEXT NOT NULL,
                    jurisdiction TEXT NOT NULL,
                    deadline BIGINT NOT NULL,
                    lock_time BIGINT NOT NULL,
                    first_receive BIGINT,
                    PRIMARY KEY (campaign, jurisdiction))",
                // Per-jurisdiction feeds, dense from 1.
                "CREATE TABLE central_feed (
                    jurisdiction TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    body BLOB NOT NULL,
                    PRIMARY KEY (jurisdiction, seq))",
                "CREATE TABLE central_receipts (
                    campaign TEXT NOT NULL,
                    jurisdiction TEXT NOT NULL,
                    version BIGINT NOT NULL,
                    content_hash BLOB NOT NULL,
                    receive_time BIGINT NOT NULL,
                    receipt BLOB NOT NULL,
                    PRIMARY KEY (campaign, jurisdiction, version))",
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("central tables are never dropped".into()))
    }
}

struct M0002Reference;

impl MigrationName for M0002Reference {
    fn name(&self) -> &str {
        "m0002_central_reference"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002Reference {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                // The reference feed, dense from 1: every version of every kind ever published;
                // the one in force of a kind is its row with the highest sequence.
                "CREATE TABLE central_reference (
                    seq BIGINT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    version TEXT NOT NULL,
                    content BLOB NOT NULL,
                    publish_time BIGINT NOT NULL)",
                "CREATE INDEX central_reference_kind ON central_reference (kind, seq)",
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("central tables are never dropped".into()))
    }
}

/// The centre keeps what it received, not only its receipt: each version's content (an encoded
/// `einfo.reporting.v1.ReportVersion`) beside its receipt, for the national workbook. Versions
/// received before this migration have none.
struct M0003SubmissionContent;

impl MigrationName for M0003SubmissionContent {
    fn name(&self) -> &str {
        "m0003_central_submission_content"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0003SubmissionContent {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(manager.get_connection(), &["ALTER TABLE central_receipts ADD COLUMN content BLOB"]).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("central tables are never dropped".into()))
    }
}
