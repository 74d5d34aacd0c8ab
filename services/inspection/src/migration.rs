//! The inspection service's tables. Each row holds the full protobuf state of its resource
//! (the bytes the change log records) beside the columns queries filter on.

use einfo_common::db::execute_ddl;
use sea_orm_migration::prelude::*;

/// Inspection migrations, tracked apart from other services'.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Inspection)]
    }

    fn migration_table_name() -> DynIden {
        "einfo_migrations_inspection".into_iden()
    }
}

struct M0001Inspection;

impl MigrationName for M0001Inspection {
    fn name(&self) -> &str {
        "m0001_inspection"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001Inspection {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                "CREATE TABLE insp_plans (name TEXT PRIMARY KEY, jurisdiction TEXT NOT NULL, body BLOB NOT NULL)",
                "CREATE INDEX insp_plans_jurisdiction ON insp_plans (jurisdiction, name)",
                "CREATE TABLE insp_inspections (name TEXT PRIMARY KEY, jurisdiction TEXT NOT NULL, site TEXT NOT NULL, body BLOB NOT NULL)",
                "CREATE INDEX insp_inspections_jurisdiction ON insp_inspections (jurisdiction, name)",
                "CREATE TABLE insp_decisions (
                    name TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    state INTEGER NOT NULL,
                    deadline BIGINT NOT NULL,
                    body BLOB NOT NULL)",
                "CREATE INDEX insp_decisions_jurisdiction ON insp_decisions (jurisdiction, name)",
                "CREATE INDEX insp_decisions_due ON insp_decisions (state, deadline)",
                "CREATE TABLE insp_sites (name TEXT PRIMARY KEY, jurisdiction TEXT NOT NULL, display_name TEXT NOT NULL)",
                "CREATE TABLE insp_outbox (
                    request_id TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    decision TEXT NOT NULL,
                    site TEXT NOT NULL,
                    measure INTEGER NOT NULL,
                    until BIGINT NOT NULL,
                    state INTEGER NOT NULL,
                    attempts INTEGER NOT NULL,
                    next_attempt BIGINT NOT NULL,
                    last_error TEXT NOT NULL)",
                "CREATE INDEX insp_outbox_due ON insp_outbox (state, next_attempt)",
                "CREATE TABLE insp_events (
                    jurisdiction TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    resource TEXT NOT NULL,
                    event TEXT NOT NULL,
                    idx INTEGER NOT NULL,
                    event_time BIGINT NOT NULL,
                    code TEXT NOT NULL,
                    site TEXT NOT NULL,
                    amount BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, seq, resource, event, idx))",
                "CREATE INDEX insp_events_resource ON insp_events (resource, event)",
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("inspection tables are never dropped".into()))
    }
}
