//! The change log: one append-only, hash-chained log per (jurisdiction, service).
//!
//! Every mutation appends its entries in the same database transaction as the change itself,
//! under the log's lock, so sequence order is commit order. An entry's hash is
//! `SHA-256(prev_hash ‖ protobuf encoding of the entry with its hash field empty)`; the first
//! entry chains from 32 zero bytes. The encoding is canonical because `ChangeEntry` and every
//! state message contain no maps and prost writes fields in ascending tag order, omitting
//! defaults. Instants are kept to the microsecond (what both databases store), so an entry read
//! back encodes to the same bytes it was hashed from. Nothing is ever deleted: corrections and
//! voids are new entries. See `docs/contracts.md`.

pub mod checkpoint;
pub mod merkle;
mod migration;
pub mod proof;
mod service;
mod store;

pub use einfo_proto::log::v1::{Actor, ChangeEntry};
pub use migration::Migrator;
pub use service::ChangeLogService;
pub use store::{
    Begin, Idempotency, LogId, Mutation, head, insert_entry, list_logs, read_entries, sequence_at, set_head, states_at,
    verify_log,
};

use prost::Message;
use sha2::{Digest, Sha256};

/// Hash that the first entry of every log chains from.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Version of the state schemas written by this release.
pub const SCHEMA_VERSION: u32 = 1;

/// The services that keep a log, by the name logs and the gateway use.
pub const SERVICES: [&str; 3] = ["registry", "inspection", "reporting"];

/// The hash of `entry`: SHA-256 over its previous hash and its encoding with `hash` empty.
pub fn entry_hash(entry: &ChangeEntry) -> [u8; 32] {
    let mut unhashed = entry.clone();
    unhashed.hash.clear();
    let mut h = Sha256::new();
    h.update(&entry.prev_hash);
    h.update(unhashed.encode_to_vec());
    h.finalize().into()
}

/// SHA-256 of a message's encoding: the body hash of an idempotent request (with its
/// `request_id` cleared by the caller).
pub fn body_hash<M: Message>(m: &M) -> [u8; 32] {
    Sha256::digest(m.encode_to_vec()).into()
}

/// The first bad entry a verifier found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{log}: entry {sequence}: {problem}")]
pub struct ChainBreak {
    /// The log, as `jurisdiction/service`.
    pub log: String,
    /// Sequence of the first bad entry.
    pub sequence: u64,
    /// What is wrong with it.
    pub problem: String,
}

/// Walks entries in order and checks density, the chain and every hash, starting after an
/// entry whose sequence and hash are known (`0` and [`GENESIS_HASH`] for the start).
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    log: String,
    last_sequence: u64,
    last_hash: Vec<u8>,
}

impl ChainVerifier {
    /// A verifier for a log, starting after (`sequence`, `hash`).
    pub fn new(log: impl Into<String>, sequence: u64, hash: &[u8]) -> Self {
        Self { log: log.into(), last_sequence: sequence, last_hash: hash.to_vec() }
    }

    /// Checks the next entry.
    pub fn check(&mut self, e: &ChangeEntry) -> Result<(), ChainBreak> {
        let fail = |problem: String| ChainBreak { log: self.log.clone(), sequence: e.sequence, problem };
        if e.sequence != self.last_sequence + 1 {
            return Err(fail(format!("expected sequence {}, found {}", self.last_sequence + 1, e.sequence)));
        }
        if e.prev_hash != self.last_hash {
            return Err(fail("prev_hash is not the hash of the previous entry".into()));
        }
        if e.hash.as_slice() != entry_hash(e).as_slice() {
            return Err(fail("hash does not match the entry's content".into()));
        }
        self.last_sequence = e.sequence;
        self.last_hash = e.hash.clone();
        Ok(())
    }

    /// Last sequence checked.
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// Hash of the last entry checked.
    pub fn last_hash(&self) -> &[u8] {
        &self.last_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<ChangeEntry> {
        let mut prev = GENESIS_HASH.to_vec();
        (1..=n)
            .map(|i| {
                let mut e = ChangeEntry {
                    jurisdiction: "provinces/2008-01".into(),
                    service: "registry".into(),
                    sequence: i,
                    resource: format!("provinces/2008-01/sites/{i}"),
                    operation: "CREATE".into(),
                    prev_hash: prev.clone(),
                    ..Default::default()
                };
                e.hash = entry_hash(&e).to_vec();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn a_well_formed_chain_verifies() {
        let mut v = ChainVerifier::new("t", 0, &GENESIS_HASH);
        for e in chain(5) {
            v.check(&e).unwrap();
        }
        assert_eq!(v.last_sequence(), 5);
    }

    #[test]
    fn an_altered_entry_is_the_first_bad_one() {
        let mut entries = chain(5);
        entries[2].resource.push('x');
        let mut v = ChainVerifier::new("t", 0, &GENESIS_HASH);
        let err = entries.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(err.sequence, 3);
    }

    #[test]
    fn a_gap_is_found() {
        let mut entries = chain(5);
        entries.remove(1);
        let mut v = ChainVerifier::new("t", 0, &GENESIS_HASH);
        let err = entries.iter().try_for_each(|e| v.check(e)).unwrap_err();
        assert_eq!(err.sequence, 3);
    }
}
