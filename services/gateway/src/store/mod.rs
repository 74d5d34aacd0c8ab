//! SQL of the national store, for both databases: applying replicated entries (idempotently,
//! with the cursor in the same transaction) and the national queries.

use einfo_common::db::stmt;
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
    Accepted, Evidence, accept, evidence, frontier, frontier_of_kept, keep_evidence, latest, set_frontier,
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

/// Rows per multi-row statement, largest first: a batch is cut greedily into these sizes, so
/// that only a few distinct statements are ever prepared (and stay in the statement cache).
const CHUNKS: [usize; 4] = [128, 16, 4, 1];

/// Cuts `n` rows into consecutive ranges of the sizes of [`CHUNKS`].
fn chunks(n: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    for size in CHUNKS {
        while n - at >= size {
            out.push(at..at + size);
            at += size;
        }
    }
    out
}

/// `INSERT INTO {table} ({columns}) VALUES (…), (…)` for `rows` rows, then `tail`.
fn insert_sql(table: &str, columns: &[&str], rows: usize, tail: &str) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for k in 0..columns.len() {
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * columns.len() + k + 1));
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

fn ts_micros(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

async fn count<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> ApiResult<i64> {
    let row = c.query_one_raw(stmt(b(c), sql, values)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once_in_order_with_few_distinct_sizes() {
        for n in 0..600 {
            let cs = chunks(n);
            let mut at = 0;
            for c in &cs {
                assert_eq!(c.start, at);
                assert!(CHUNKS.contains(&c.len()));
                at = c.end;
            }
            assert_eq!(at, n);
        }
        assert_eq!(chunks(1000).len(), 7 + 6 + 2);
    }

    #[test]
    fn a_multi_row_insert_numbers_its_placeholders_row_by_row() {
        assert_eq!(
            insert_sql("t", &["a", "b"], 2, "ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
    }
}
