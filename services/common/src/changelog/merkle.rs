//! The Merkle tree of each log (RFC 6962 / RFC 9162), kept beside the hash chain.
//!
//! Leaf `i` (0-based) is the record hash of entry `i + 1`'s chain hash:
//! `SHA-256(0x00 ‖ entry.hash)`; interior nodes are `SHA-256(0x01 ‖ left ‖ right)`. The node keeps
//! every hash of a complete subtree in `log_tree`, numbered as Go's `sumdb/tlog` numbers them
//! ([`tlog::stored_hash_index`]): about two rows per entry, written in the transaction that
//! appends the entries. The tree's root, inclusion proofs and consistency proofs are computed by
//! `tlog_tiles` (a port of `sumdb/tlog`) from the few stored hashes each needs, read in one query.
//!
//! A reader that holds the entries (the gateway) needs none of this: it folds the leaves into a
//! [`Frontier`] of at most 64 hashes, which gives the root of every size it reaches.

use std::cell::RefCell;
use std::collections::HashMap;

use sea_orm::{ConnectionTrait, Value};
pub use tlog_tiles::tlog::Hash;
use tlog_tiles::tlog::{self, HashReader};

use super::store::LogId;
use crate::db::stmt;
use crate::error::{ApiError, ApiResult};

/// The leaf of an entry whose chain hash is `entry_hash`.
pub fn leaf(entry_hash: &[u8]) -> Hash {
    tlog::record_hash(entry_hash)
}

/// A hash from bytes; `None` unless exactly 32.
pub fn hash_of(bytes: &[u8]) -> Option<Hash> {
    Some(Hash(bytes.try_into().ok()?))
}

/// Hashes from bytes, each of 32.
///
/// # Errors
/// A hash of another length, named by its position.
pub fn hashes_of(field: &str, list: &[Vec<u8>]) -> ApiResult<Vec<Hash>> {
    list.iter()
        .enumerate()
        .map(|(i, b)| hash_of(b).ok_or_else(|| ApiError::field(field, format!("hash {i} is not 32 bytes"))))
        .collect()
}

/// A reader of stored hashes that first only records which it is asked for (their indexes
/// depend on the sizes alone), then answers from what was fetched.
enum Reader {
    Record(RefCell<Vec<u64>>),
    Answer(HashMap<u64, Hash>),
}

impl HashReader for Reader {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
        match self {
            Reader::Record(asked) => {
                asked.borrow_mut().extend_from_slice(indexes);
                Ok(vec![Hash([0; 32]); indexes.len()])
            }
            Reader::Answer(known) => {
                indexes.iter().map(|i| known.get(i).copied().ok_or(tlog::Error::IndexesNotInTree)).collect()
            }
        }
    }
}

/// Reads the stored hashes of `log` at `indexes`, in one statement per 500.
async fn fetch<C: ConnectionTrait>(c: &C, log: &LogId, indexes: &[u64]) -> ApiResult<HashMap<u64, Hash>> {
    let mut out = HashMap::with_capacity(indexes.len());
    for part in indexes.chunks(500) {
        let list = (0..part.len()).map(|i| format!("${}", i + 3)).collect::<Vec<_>>().join(", ");
        let mut values: Vec<Value> = vec![log.jurisdiction.to_string().into(), log.service.into()];
        values.extend(part.iter().map(|i| Value::from(*i as i64)));
        let rows = c
            .query_all_raw(stmt(
                c.get_database_backend(),
                &format!("SELECT idx, hash FROM log_tree WHERE jurisdiction = $1 AND service = $2 AND idx IN ({list})"),
                values,
            ))
            .await?;
        for r in rows {
            let idx: i64 = r.try_get_by_index(0)?;
            let hash: Vec<u8> = r.try_get_by_index(1)?;
            let hash = hash_of(&hash)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("{log}: tree hash {idx} is not 32 bytes")))?;
            out.insert(idx as u64, hash);
        }
    }
    Ok(out)
}

/// Runs `f` (one of `tlog`'s functions) over the stored hashes of `log`: once to learn which it
/// reads, then with those fetched.
async fn with_tree<C: ConnectionTrait, T>(
    c: &C,
    log: &LogId,
    f: impl Fn(&Reader) -> Result<T, tlog::Error>,
) -> ApiResult<T> {
    let recorder = Reader::Record(RefCell::new(Vec::new()));
    f(&recorder).map_err(|e| ApiError::internal(anyhow::anyhow!("{log}: {e}")))?;
    let Reader::Record(asked) = recorder else { unreachable!("made above") };
    let known = fetch(c, log, &asked.into_inner()).await?;
    f(&Reader::Answer(known)).map_err(|e| {
        ApiError::internal(anyhow::anyhow!("{log}: the tree misses hashes it should hold ({e}); run einfo verify"))
    })
}

/// Adds the leaves of entries `first_seq ..` (their chain hashes, in order) to the tree of `log`,
/// which holds the entries before `first_seq`.
pub async fn extend<C: ConnectionTrait>(c: &C, log: &LogId, first_seq: u64, entry_hashes: &[&[u8]]) -> ApiResult<()> {
    if entry_hashes.is_empty() {
        return Ok(());
    }
    let first = first_seq - 1;
    let own_from = tlog::stored_hash_index(0, first);
    // What the new records read of older ones; those they read of each other are made here.
    let recorder = Reader::Record(RefCell::new(Vec::new()));
    for i in 0..entry_hashes.len() as u64 {
        tlog::stored_hashes_for_record_hash(first + i, Hash([0; 32]), &recorder).map_err(ApiError::internal)?;
    }
    let Reader::Record(asked) = recorder else { unreachable!("made above") };
    let mut older: Vec<u64> = asked.into_inner().into_iter().filter(|i| *i < own_from).collect();
    older.sort_unstable();
    older.dedup();
    let mut known = fetch(c, log, &older).await?;
    let mut rows: Vec<(u64, Hash)> = Vec::with_capacity(entry_hashes.len() * 2);
    for (i, h) in entry_hashes.iter().enumerate() {
        let n = first + i as u64;
        let reader = Reader::Answer(std::mem::take(&mut known));
        let made = tlog::stored_hashes_for_record_hash(n, leaf(h), &reader).map_err(|e| {
            ApiError::internal(anyhow::anyhow!("{log}: the tree misses hashes before entry {} ({e})", n + 1))
        })?;
        let Reader::Answer(k) = reader else { unreachable!("made above") };
        known = k;
        let at = tlog::stored_hash_index(0, n);
        for (k, h) in made.into_iter().enumerate() {
            known.insert(at + k as u64, h);
            rows.push((at + k as u64, h));
        }
    }
    insert(c, log, &rows).await
}

async fn insert<C: ConnectionTrait>(c: &C, log: &LogId, rows: &[(u64, Hash)]) -> ApiResult<()> {
    const COLUMNS: [&str; 4] = ["jurisdiction", "service", "idx", "hash"];
    for range in crate::db::chunks(rows.len()) {
        let part = &rows[range];
        let sql = crate::db::insert_sql("log_tree", &COLUMNS, part.len(), "");
        let mut values: Vec<Value> = Vec::with_capacity(part.len() * COLUMNS.len());
        for (idx, h) in part {
            values.extend([
                log.jurisdiction.to_string().into(),
                log.service.into(),
                (*idx as i64).into(),
                h.0.to_vec().into(),
            ]);
        }
        c.execute_raw(stmt(c.get_database_backend(), &sql, values)).await?;
    }
    Ok(())
}

/// The root of the tree of the first `size` entries of `log`.
pub async fn root<C: ConnectionTrait>(c: &C, log: &LogId, size: u64) -> ApiResult<Hash> {
    with_tree(c, log, |r| tlog::tree_hash(size, r)).await
}

/// The proof that entry `sequence` is in the tree of size `size` (RFC 6962's audit path).
pub async fn inclusion<C: ConnectionTrait>(c: &C, log: &LogId, size: u64, sequence: u64) -> ApiResult<Vec<Hash>> {
    if sequence == 0 || sequence > size {
        return Err(ApiError::field("inclusion_of", format!("entry {sequence} is not in a tree of {size} entries")));
    }
    with_tree(c, log, |r| tlog::prove_record(size, sequence - 1, r)).await
}

/// The proof that the tree of size `size` extends the tree of size `old` (RFC 6962's
/// consistency proof).
pub async fn consistency<C: ConnectionTrait>(c: &C, log: &LogId, size: u64, old: u64) -> ApiResult<Vec<Hash>> {
    if old == 0 || old > size {
        return Err(ApiError::field(
            "consistency_from",
            format!("a tree of {old} entries cannot be a prefix of one of {size}"),
        ));
    }
    with_tree(c, log, |r| tlog::prove_tree(size, old, r)).await
}

/// The number of entries the tree of `log` holds (0 when none).
pub async fn size<C: ConnectionTrait>(c: &C, log: &LogId) -> ApiResult<u64> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT COUNT(*) FROM log_tree WHERE jurisdiction = $1 AND service = $2 AND idx >= 0",
            [log.jurisdiction.to_string().into(), log.service.into()],
        ))
        .await?;
    let stored = row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) as u64;
    // stored_hash_count is increasing: find the size whose count it is.
    let (mut lo, mut hi) = (0u64, stored);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if tlog::stored_hash_count(mid) <= stored {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    if tlog::stored_hash_count(lo) != stored {
        return Err(ApiError::internal(anyhow::anyhow!(
            "{log}: the tree holds {stored} hashes, no whole number of entries"
        )));
    }
    Ok(lo)
}

/// Builds the tree of every log whose entries it does not hold yet (a store written before
/// trees were kept), reading the entries in pages.
pub async fn build_missing<C: ConnectionTrait>(c: &C) -> ApiResult<()> {
    for (j, s) in super::list_logs(c).await? {
        // A node's services, and the centre's own log (`einfo_central::SERVICE`).
        let Some(service) = super::SERVICES.iter().chain(&["central"]).find(|x| **x == s) else {
            return Err(ApiError::internal(anyhow::anyhow!("a log of unknown service '{s}' ({j})")));
        };
        let Ok(jurisdiction) = einfo_domain::Jurisdiction::parse(&j) else { continue };
        let log = LogId { jurisdiction, service };
        let mut at = size(c, &log).await?;
        loop {
            let page = super::read_entries(c, &log, at, 2000).await?;
            if page.is_empty() {
                break;
            }
            let hashes: Vec<&[u8]> = page.iter().map(|e| e.hash.as_slice()).collect();
            extend(c, &log, at + 1, &hashes).await?;
            at += page.len() as u64;
        }
    }
    Ok(())
}

/// The right edge of a tree: the roots of its complete subtrees, largest first. Enough to add
/// leaves and to compute the root, in at most 64 hashes whatever the size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frontier {
    size: u64,
    /// (height, hash) of each complete subtree, left to right; heights strictly decrease.
    nodes: Vec<(u8, Hash)>,
}

impl Frontier {
    /// The number of leaves added.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the leaf of an entry whose chain hash is `entry_hash`.
    pub fn push(&mut self, entry_hash: &[u8]) {
        let mut node = (0u8, leaf(entry_hash));
        while let Some(&(h, left)) = self.nodes.last() {
            if h != node.0 {
                break;
            }
            self.nodes.pop();
            node = (h + 1, tlog::node_hash(left, node.1));
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// The root of the tree of [`Frontier::size`] leaves (RFC 6962's hash of the empty string
    /// when none).
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(&(_, mut acc)) = it.next() else { return tlog::EMPTY_HASH };
        for &(_, left) in it {
            acc = tlog::node_hash(left, acc);
        }
        acc
    }

    /// Its bytes, to keep beside a cursor: the size (8 bytes, big-endian), then each subtree's
    /// hash (its height follows from the size's bits).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.size.to_be_bytes().to_vec();
        for (_, h) in &self.nodes {
            out.extend_from_slice(&h.0);
        }
        out
    }

    /// From [`Frontier::to_bytes`].
    ///
    /// # Errors
    /// Bytes that are not a frontier's.
    pub fn from_bytes(b: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(b.len() >= 8, "a frontier starts with its size");
        let size = u64::from_be_bytes(b[..8].try_into()?);
        let heights: Vec<u8> = (0..64u8).rev().filter(|h| size >> h & 1 == 1).collect();
        let rest = &b[8..];
        anyhow::ensure!(rest.len() == heights.len() * 32, "a frontier of {size} leaves holds {} hashes", heights.len());
        let nodes =
            heights.into_iter().zip(rest.chunks(32)).map(|(h, c)| (h, Hash(c.try_into().expect("32")))).collect();
        Ok(Self { size, nodes })
    }
}

/// Checks that `proof` shows the tree (`size`, `root`) contains the entry with chain hash
/// `entry_hash` at `sequence`.
pub fn check_inclusion(proof: &[Hash], size: u64, root: Hash, sequence: u64, entry_hash: &[u8]) -> bool {
    sequence >= 1 && tlog::check_record(&proof.to_vec(), size, root, sequence - 1, leaf(entry_hash)).is_ok()
}

/// Checks that `proof` shows the tree (`size`, `root`) extends the tree (`old`, `old_root`).
pub fn check_consistency(proof: &[Hash], size: u64, root: Hash, old: u64, old_root: Hash) -> bool {
    if old == size {
        return proof.is_empty() && root == old_root;
    }
    tlog::check_tree(&proof.to_vec(), size, root, old, old_root).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory store of a tree built with `tlog` itself.
    struct Mem(Vec<Hash>);

    impl HashReader for Mem {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
            Ok(indexes.iter().map(|i| self.0[*i as usize]).collect())
        }
    }

    fn entry(i: u64) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(i.to_be_bytes()).to_vec()
    }

    #[test]
    fn the_frontier_gives_the_root_tlog_computes_for_every_size() {
        let mut mem = Mem(Vec::new());
        let mut f = Frontier::default();
        assert_eq!(f.root(), tlog::EMPTY_HASH);
        for n in 0..300u64 {
            let stored = tlog::stored_hashes(n, &entry(n), &mem).unwrap();
            mem.0.extend(stored);
            f.push(&entry(n));
            assert_eq!(f.root(), tlog::tree_hash(n + 1, &mem).unwrap(), "size {}", n + 1);
            assert_eq!(Frontier::from_bytes(&f.to_bytes()).unwrap(), f);
        }
    }

    #[test]
    fn proofs_check_and_a_changed_leaf_or_root_does_not() {
        let mut mem = Mem(Vec::new());
        let mut roots = vec![tlog::EMPTY_HASH];
        for n in 0..40u64 {
            mem.0.extend(tlog::stored_hashes(n, &entry(n), &mem).unwrap());
            roots.push(tlog::tree_hash(n + 1, &mem).unwrap());
        }
        for size in 1..=40u64 {
            for seq in 1..=size {
                let p = tlog::prove_record(size, seq - 1, &mem).unwrap();
                assert!(check_inclusion(&p, size, roots[size as usize], seq, &entry(seq - 1)));
                assert!(!check_inclusion(&p, size, roots[size as usize], seq, &entry(seq)));
            }
            for old in 1..=size {
                let p = tlog::prove_tree(size, old, &mem).unwrap();
                assert!(check_consistency(&p, size, roots[size as usize], old, roots[old as usize]));
                if old < size {
                    assert!(!check_consistency(&p, size, roots[size as usize], old, roots[old as usize - 1]));
                }
            }
        }
    }

    #[test]
    fn a_frontier_of_the_wrong_length_is_refused() {
        let mut f = Frontier::default();
        for n in 0..5 {
            f.push(&entry(n));
        }
        let mut b = f.to_bytes();
        b.pop();
        assert!(Frontier::from_bytes(&b).is_err());
    }
}
