//! `einfo backup` and `einfo restore`: a consistent copy of a SQLite store taken while its server
//! runs, and that copy put back in place of the store, with the server stopped.
//!
//! The copy is SQLite's `VACUUM INTO`: it reads the store in one read transaction (writers go on;
//! the copy is the store as of that transaction's start, whole and compact) and writes a new
//! database file. Every chain of the copy is verified before the backup is reported done, and again
//! before a restore puts it in place. A restore never deletes: the store it replaces is moved aside
//! beside it (`einfo.db.replaced-<time>`). PostgreSQL stores are backed up with PostgreSQL's own
//! tools (`pg_dump --format=custom`, `pg_restore`; docs/contracts.md, "Backups"): these commands refuse them
//! rather than half-do it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sea_orm::ConnectionTrait;

use crate::verify::{self, LogReport, StoreKind};

/// What a backup or a restore checked: the store's kind and the outcome of each of its logs.
#[derive(Debug)]
pub struct Checked {
    /// A node's store or the gateway's.
    pub kind: StoreKind,
    /// Every log, verified.
    pub logs: Vec<LogReport>,
}

impl Checked {
    /// Entries in all logs.
    pub fn entries(&self) -> u64 {
        self.logs.iter().filter_map(|l| l.result.as_ref().ok()).sum()
    }
}

/// The file of a SQLite database URL (`sqlite://PATH?…`), or an error naming PostgreSQL's tools.
///
/// # Errors
/// A URL that is not SQLite's.
pub fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        anyhow::bail!(
            "{} is not a SQLite store: back up PostgreSQL with pg_dump --format=custom and restore it with \
             pg_restore (docs/contracts.md, \"Backups\")",
            crate::node::redact(url)
        );
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    anyhow::ensure!(!path.is_empty() && path != ":memory:", "{url} names no database file");
    Ok(PathBuf::from(path))
}

/// The database file of a SQLite URL; `None` for PostgreSQL and in-memory databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    url.starts_with("sqlite:").then(|| sqlite_path(url).ok()).flatten()
}

/// An exclusive lock on a SQLite store, held by the process that serves it (a node or the
/// gateway) for as long as it runs, and by a restore: a second server on the same store, or a
/// restore under a running server, is refused instead of corrupting it. It is an advisory lock on
/// `<store>.lock` beside the database (`flock`): the kernel lets it go when the process ends,
/// killed or not.
#[derive(Debug)]
pub struct StoreLock {
    _file: std::fs::File,
}

/// Takes the lock of the store at `url`; `None` for PostgreSQL (its server arbitrates).
///
/// # Errors
/// Another process holds it, or the lock file cannot be opened.
pub fn lock_store(url: &str) -> anyhow::Result<Option<StoreLock>> {
    let Some(store) = sqlite_file(url) else { return Ok(None) };
    let path = PathBuf::from(format!("{}.lock", store.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(StoreLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("{} is in use by another einfo process (it holds {})", store.display(), path.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("lock {}", path.display())),
    }
}

/// The URL of the SQLite store at `path` (read-only once opened by [`verify::open_read_only`]).
fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Verifies the store at `path` read-only; an error names the first broken log.
async fn check(path: &Path) -> anyhow::Result<Checked> {
    let (kind, logs) = verify::check(&sqlite_url(path)).await?;
    if let Some(broken) = logs.iter().find(|l| l.result.is_err()) {
        let e = broken.result.as_ref().err().map(ToString::to_string).unwrap_or_default();
        anyhow::bail!("{}: {} is broken: {e}", path.display(), broken.log);
    }
    Ok(Checked { kind, logs })
}

/// Copies the store at `url` (SQLite) to the new file `to`, while its server may run, and
/// verifies the copy.
///
/// # Errors
/// A PostgreSQL store, a `to` that exists, a store that does not open, or a copy that does not
/// verify (the copy is then removed).
pub async fn backup(url: &str, to: &Path) -> anyhow::Result<Checked> {
    let from = sqlite_path(url)?;
    anyhow::ensure!(from.exists(), "no store at {}", from.display());
    anyhow::ensure!(!to.exists(), "{} exists: a backup is written to a new file", to.display());
    let target = to.to_str().with_context(|| format!("{} is not valid UTF-8", to.display()))?;
    let conn = verify::open_read_only(&sqlite_url(&from)).await?;
    // The store must be einfo's before anything is written.
    verify::store_kind(&conn).await?;
    let sql = format!("VACUUM INTO '{}'", target.replace('\'', "''"));
    conn.execute_unprepared(&sql).await.with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    conn.close().await?;
    match check(to).await {
        Ok(c) => Ok(c),
        Err(e) => {
            let _ = std::fs::remove_file(to);
            Err(e.context("the copy does not verify and was removed"))
        }
    }
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The backup, verified.
    pub checked: Checked,
    /// Where the store it replaced was moved (none when there was no store).
    pub replaced: Option<PathBuf>,
}

/// Puts the backup `from` in place of the store at `url` (SQLite), with its server stopped: the
/// backup is verified first, the store it replaces (and its `-wal` and `-shm` files) is moved
/// aside, named with `stamp`, and nothing is deleted.
///
/// # Errors
/// A PostgreSQL store, a backup that does not verify or is of another kind than the store, or a
/// store in use (its server holds its [`StoreLock`]).
pub async fn restore(url: &str, from: &Path, stamp: &str) -> anyhow::Result<Restored> {
    let store = sqlite_path(url)?;
    let checked = check(from).await.with_context(|| format!("the backup {}", from.display()))?;
    let _lock = lock_store(url).context("stop its server before restoring")?;
    let mut replaced = None;
    if store.exists() {
        // Its kind must be the backup's.
        let conn = verify::open_read_only(&sqlite_url(&store)).await?;
        let kind = verify::store_kind(&conn).await.with_context(|| format!("the store {}", store.display()))?;
        anyhow::ensure!(
            kind == checked.kind,
            "the backup is {} and {} is {kind}: not restored",
            checked.kind,
            store.display()
        );
        conn.close().await?;
        // A free name: two restores within one second get `-2`, `-3`, … after the time.
        let base = format!("{}.replaced-{stamp}", store.file_name().and_then(|n| n.to_str()).unwrap_or("einfo.db"));
        let aside = (1..)
            .map(|i| store.with_file_name(if i == 1 { base.clone() } else { format!("{base}-{i}") }))
            .find(|p| !p.exists())
            .unwrap_or_else(|| store.with_file_name(base.clone()));
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", store.display()));
            if side.exists() {
                std::fs::rename(&side, format!("{}{suffix}", aside.display()))
                    .with_context(|| format!("move {} aside", side.display()))?;
            }
        }
        std::fs::rename(&store, &aside).with_context(|| format!("move {} aside", store.display()))?;
        replaced = Some(aside);
    }
    let part = store.with_extension("restoring");
    std::fs::copy(from, &part).with_context(|| format!("copy {} to {}", from.display(), part.display()))?;
    std::fs::File::open(&part)?.sync_all()?;
    if checked.kind == StoreKind::Node {
        // Written before the store is in place: a node never starts on a restored store unmarked.
        crate::recover::mark_pending(url, from)?;
    }
    std::fs::rename(&part, &store).with_context(|| format!("put {} in place", store.display()))?;
    Ok(Restored { checked, replaced })
}
