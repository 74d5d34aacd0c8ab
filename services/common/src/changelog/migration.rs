//! Tables of the change log and of idempotency keys, shared by every service of a node.

use sea_orm_migration::prelude::*;

use crate::db::execute_ddl;

/// Migrations of the shared tables, tracked in their own table so that each service's
/// migrator can run beside it.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001ChangeLog), Box::new(M0002MerkleTree), Box::new(M0003Accounts)]
    }

    fn migration_table_name() -> DynIden {
        "einfo_migrations_common".into_iden()
    }
}

struct M0001ChangeLog;

impl MigrationName for M0001ChangeLog {
    fn name(&self) -> &str {
        "m0001_change_log"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0001ChangeLog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &[
                "CREATE TABLE log_heads (
                    jurisdiction TEXT NOT NULL,
                    service TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    hash BLOB NOT NULL,
                    PRIMARY KEY (jurisdiction, service))",
                "CREATE TABLE change_log (
                    jurisdiction TEXT NOT NULL,
                    service TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    resource TEXT NOT NULL,
                    operation TEXT NOT NULL,
                    state_type TEXT NOT NULL,
                    state BLOB NOT NULL,
                    actor_subject TEXT NOT NULL,
                    actor_role TEXT NOT NULL,
                    actor_jurisdiction TEXT NOT NULL,
                    server_time BIGINT NOT NULL,
                    schema_version INTEGER NOT NULL,
                    prev_hash BLOB NOT NULL,
                    hash BLOB NOT NULL,
                    reason TEXT NOT NULL,
                    PRIMARY KEY (jurisdiction, service, seq))",
                "CREATE INDEX change_log_time ON change_log (jurisdiction, service, server_time)",
                "CREATE TABLE idempotency_keys (
                    scope TEXT NOT NULL,
                    method TEXT NOT NULL,
                    request_id TEXT NOT NULL,
                    body_hash BLOB NOT NULL,
                    response BLOB NOT NULL,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (scope, method, request_id))",
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("the change log is never dropped".into()))
    }
}

/// The Merkle tree of every log, built for the entries a store already holds, and the centre's
/// cosignatures of the node's checkpoints.
struct M0002MerkleTree;

impl MigrationName for M0002MerkleTree {
    fn name(&self) -> &str {
        "m0002_merkle_tree"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0002MerkleTree {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let c = manager.get_connection();
        execute_ddl(
            c,
            &[
                "CREATE TABLE log_tree (
                    jurisdiction TEXT NOT NULL,
                    service TEXT NOT NULL,
                    idx BIGINT NOT NULL,
                    hash BLOB NOT NULL,
                    PRIMARY KEY (jurisdiction, service, idx))",
                "CREATE TABLE log_cosignatures (
                    jurisdiction TEXT NOT NULL,
                    service TEXT NOT NULL,
                    size BIGINT NOT NULL,
                    note TEXT NOT NULL,
                    certificate BLOB NOT NULL,
                    received_at BIGINT NOT NULL,
                    PRIMARY KEY (jurisdiction, service, size))",
            ],
        )
        .await?;
        super::merkle::build_missing(c).await.map_err(|e| DbErr::Migration(format!("building the logs' trees: {e}")))
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("the change log is never dropped".into()))
    }
}

/// Staff accounts, held by the issuer of their jurisdiction (`crate::accounts`).
struct M0003Accounts;

impl MigrationName for M0003Accounts {
    fn name(&self) -> &str {
        "m0003_accounts"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for M0003Accounts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_ddl(
            manager.get_connection(),
            &["CREATE TABLE accounts (
                    username TEXT PRIMARY KEY,
                    jurisdiction TEXT NOT NULL,
                    role TEXT NOT NULL,
                    password_hash TEXT NOT NULL,
                    disabled INTEGER NOT NULL,
                    created_at BIGINT NOT NULL)"],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("accounts are never dropped".into()))
    }
}
