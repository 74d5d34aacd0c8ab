//! Opening the database: SQLite (the embedded default) or PostgreSQL (production), and the
//! small SQL helpers every store uses.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, so an acknowledged write survives a power
//! loss, and with a busy timeout. Writers are serialised in-process (one write lock per
//! database) and start their transactions with `BEGIN IMMEDIATE`, so they never deadlock on a
//! lock upgrade. On PostgreSQL, writers of one log serialise on that log's head row instead
//! (`SELECT … FOR UPDATE`), so unrelated logs commit in parallel.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionOptions,
    TransactionTrait, Value,
};

/// An open database.
#[derive(Clone, Debug)]
pub struct Database {
    conn: DatabaseConnection,
    /// SQLite only: the one connection mutations run on. SQLite drops a connection's whole page
    /// cache when another connection wrote since its last transaction, so mutations spread over
    /// the pool would each start cold; on a connection of their own they find their pages cached.
    writer: Option<DatabaseConnection>,
    write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    /// The clock of the process: every transaction and every service of a node reads the same
    /// one, so a test that moves it moves the whole node.
    clock: SharedClock,
}

impl Database {
    /// Opens `url`: `sqlite://path?mode=rwc` or `postgres://…` (a pool of at most 32).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with_pool(url, 32).await
    }

    /// Opens `url` with a PostgreSQL pool of at most `pool_size` connections.
    pub async fn connect_with_pool(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.sqlx_logging(false)
            .test_before_acquire(false)
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30));
        let sqlite = url.starts_with("sqlite:");
        if sqlite {
            opts.max_connections(8).min_connections(1).map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(true)
            });
        } else {
            opts.max_connections(pool_size.max(2)).min_connections(1);
        }
        let writer = if sqlite {
            let mut w = opts.clone();
            w.max_connections(1).min_connections(1);
            Some(sea_orm::Database::connect(w).await?)
        } else {
            None
        };
        let conn = sea_orm::Database::connect(opts).await?;
        Ok(Self {
            conn,
            writer,
            write_lock: sqlite.then(|| Arc::new(tokio::sync::Mutex::new(()))),
            commits: Arc::new(tokio::sync::watch::Sender::new(0)),
            clock: crate::clock::system(),
        })
    }

    /// The same database read through `clock` (tests pass a manual clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The current instant by the process's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The sea-orm connection.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// SQLite or PostgreSQL.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// The connection mutations run on: SQLite's single writer connection, or the pool.
    pub(crate) fn write_conn(&self) -> &DatabaseConnection {
        self.writer.as_ref().unwrap_or(&self.conn)
    }

    /// The in-process write lock (SQLite only).
    pub(crate) fn write_lock(&self) -> Option<&Arc<tokio::sync::Mutex<()>>> {
        self.write_lock.as_ref()
    }

    /// Counts commits made through this handle; followers of the log wait on it.
    pub(crate) fn commits(&self) -> Arc<tokio::sync::watch::Sender<u64>> {
        self.commits.clone()
    }

    /// Starts a write transaction the way every writer does: on SQLite under the in-process
    /// write lock, on the writer connection, with `BEGIN IMMEDIATE`. Mutations of a log start
    /// here; node-wide state outside any log (the reference data applied) uses it directly.
    pub async fn begin_write(&self) -> Result<WriteTxn, sea_orm::DbErr> {
        let guard = match self.write_lock() {
            Some(l) => Some(l.clone().lock_owned().await),
            None => None,
        };
        let txn = self
            .write_conn()
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(WriteTxn { txn, guard })
    }

    /// A read-only transaction whose statements all see one snapshot: several reads that must
    /// agree (a report and the campaign its etag depends on) go through it. SQLite's read
    /// transactions are snapshots already; PostgreSQL's default (READ COMMITTED) takes a new
    /// snapshot per statement, so it asks for REPEATABLE READ.
    pub async fn begin_read(&self) -> Result<DatabaseTransaction, sea_orm::DbErr> {
        match self.backend() {
            DbBackend::Postgres => {
                self.conn
                    .begin_with_config(
                        Some(sea_orm::IsolationLevel::RepeatableRead),
                        Some(sea_orm::AccessMode::ReadOnly),
                    )
                    .await
            }
            _ => self.conn.begin().await,
        }
    }

    /// Closes the pool.
    pub async fn close(self) -> anyhow::Result<()> {
        if let Some(w) = self.writer {
            w.close().await?;
        }
        self.conn.close().await?;
        Ok(())
    }
}

/// A write transaction from [`Database::begin_write`]; dropping it without [`WriteTxn::commit`]
/// rolls back.
pub struct WriteTxn {
    /// The transaction.
    pub txn: DatabaseTransaction,
    /// SQLite only: the write lock, held until the transaction ends.
    pub guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTxn {
    /// The transaction.
    pub fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), sea_orm::DbErr> {
        self.txn.commit().await
    }
}

/// A statement written with PostgreSQL placeholders (`$1`, `$2`…), made to run on `backend`
/// (SQLite reads them as `?1`, `?2`…). Types: `BLOB` becomes `BYTEA` on PostgreSQL.
pub fn stmt(backend: DbBackend, sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(backend, adapt(backend, sql), values)
}

/// Rows per multi-row statement (multi-row `INSERT`s cut with [`chunks`] and built by
/// [`insert_sql`]), largest first: a batch is cut greedily into these sizes, so
/// that only a few distinct statements are ever prepared (and stay in the statement cache).
pub const CHUNKS: [usize; 4] = [128, 16, 4, 1];

/// Cuts `n` rows into consecutive ranges of the sizes of [`CHUNKS`].
pub fn chunks(n: usize) -> Vec<std::ops::Range<usize>> {
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
pub fn insert_sql(table: &str, columns: &[&str], rows: usize, tail: &str) -> String {
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

/// Rewrites placeholders and types of `sql` for `backend`.
pub fn adapt(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Sqlite => {
            let mut out = String::with_capacity(sql.len());
            let mut chars = sql.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => sql.replace("BLOB", "BYTEA"),
    }
}

/// Executes DDL statements in order (used by migrations).
pub async fn execute_ddl<C: ConnectionTrait>(conn: &C, statements: &[&str]) -> Result<(), sea_orm::DbErr> {
    let backend = conn.get_database_backend();
    for s in statements {
        conn.execute_unprepared(&adapt(backend, s)).await?;
    }
    Ok(())
}

/// Microseconds since the Unix epoch, the form every instant is stored in.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// The instant of a stored microsecond count.
pub fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Whether a database error is a unique-constraint violation.
pub fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// A site's operating code and trial flag as the count tables store them, read from its encoded
/// state (for the migrations that made them dimensions); `None` when both are the defaults, so
/// there is nothing to write.
///
/// # Errors
/// The bytes are not a `Site`.
pub fn site_dimensions(body: &[u8]) -> Result<Option<(i32, i32)>, sea_orm::DbErr> {
    use prost::Message;
    let site = einfo_proto::registry::v1::Site::decode(body)
        .map_err(|e| sea_orm::DbErr::Migration(format!("a site's state does not decode: {e}")))?;
    let (operating, trial) = (site.operating().code(), i32::from(site.on_trial()));
    Ok((operating != 0 || trial != 0).then_some((operating, trial)))
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

    #[test]
    fn placeholders_are_adapted_for_sqlite() {
        assert_eq!(adapt(DbBackend::Sqlite, "a = $1 AND b = $12"), "a = ?1 AND b = ?12");
        assert_eq!(adapt(DbBackend::Postgres, "x BLOB"), "x BYTEA");
    }

    #[tokio::test]
    async fn sqlite_runs_with_wal_and_synchronous_full() {
        let dir = std::env::temp_dir().join(format!("einfo-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Database::connect(&format!("sqlite://{}?mode=rwc", dir.join("t.db").display())).await.unwrap();
        let row = db
            .conn()
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA synchronous"))
            .await
            .unwrap()
            .unwrap();
        // 2 is FULL.
        assert_eq!(row.try_get_by_index::<i32>(0).unwrap(), 2);
        let row = db
            .conn()
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA journal_mode"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "wal");
        let _ = std::fs::remove_dir_all(dir);
    }
}
