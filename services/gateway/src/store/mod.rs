//! SQL of the national store, for both databases: applying replicated entries (idempotently,
//! with the cursor in the same transaction) and the national queries.

use einfo_common::db::{chunks, insert_sql, stmt};
use einfo_common::error::{ApiError, ApiResult};
use prost::Message;
use sea_orm::{ConnectionTrait, Value};

mod apply;
mod checkpoints;
mod directory;
mod kept;
mod queries;

pub use apply::{CellKey, Delta, Entries, apply, cursor, cursor_of, cursors, forget, summary_cells, write_delta};
pub use checkpoints::{
    Accepted, Evidence, accept, cursor_and_frontier, evidence, frontier_of_kept, keep_evidence, latest, set_frontier,
};
pub use directory::{alarms, clear_alarm, directory, raise_alarm, remove_endpoint, set_endpoint};
pub use kept::{
    KeptEntry, KeptLog, keep, kept_after, kept_count, kept_hash, kept_logs, kept_size, set_aside, verify_kept,
};
pub use queries::{Enforcement, Search, conflicts, enforcement, expiring_licences, overdue_applications, search};

fn b<C: ConnectionTrait>(c: &C) -> sea_orm::DbBackend {
    c.get_database_backend()
}

fn decode<M: Message + Default>(bytes: &[u8]) -> ApiResult<M> {
    M::decode(bytes).map_err(ApiError::internal)
}

fn ts_micros(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

async fn count<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> ApiResult<i64> {
    let row = c.query_one_raw(stmt(b(c), sql, values)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}
