//! An inclusion proof a province gives whoever an entry concerns (a sanctioned organisation, say),
//! checked offline against the centre's CA alone: the entry, the node's checkpoint cosigned by the
//! centre, both certificates, and the RFC 6962 inclusion proof.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use prost::Message;
use serde::{Deserialize, Serialize};

use super::store::LogId;
use super::{ChangeEntry, checkpoint, entry_hash, merkle};

/// What `einfo proof` writes and `einfo verify-proof` reads (JSON; binary fields in base64).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// `einfo-inclusion-proof/v1`.
    pub format: String,
    /// The entry (its protobuf encoding).
    pub entry: String,
    /// The node's checkpoint with the centre's cosignature (a C2SP signed note).
    pub checkpoint: String,
    /// The node's certificate (DER), whose key signed the checkpoint.
    pub node_certificate: String,
    /// The centre's certificate (DER), whose key cosigned it.
    pub centre_certificate: String,
    /// The RFC 6962 inclusion proof of the entry in the checkpoint's tree.
    pub inclusion_proof: Vec<String>,
}

/// The format name of a [`Bundle`].
pub const FORMAT: &str = "einfo-inclusion-proof/v1";

impl Bundle {
    /// A bundle of its parts.
    pub fn new(
        entry: &ChangeEntry,
        checkpoint: &str,
        node_certificate: &[u8],
        centre_certificate: &[u8],
        proof: &[Vec<u8>],
    ) -> Self {
        Self {
            format: FORMAT.into(),
            entry: B64.encode(entry.encode_to_vec()),
            checkpoint: checkpoint.into(),
            node_certificate: B64.encode(node_certificate),
            centre_certificate: B64.encode(centre_certificate),
            inclusion_proof: proof.iter().map(|h| B64.encode(h)).collect(),
        }
    }
}

/// What a bundle proves.
#[derive(Clone, Debug)]
pub struct Proven {
    /// The entry.
    pub entry: ChangeEntry,
    /// The size of the cosigned tree that holds it.
    pub tree_size: u64,
    /// The node that signed the checkpoint (its certificate's name).
    pub node: String,
    /// The centre's key that cosigned (its certificate's name).
    pub centre: String,
    /// When the centre cosigned.
    pub cosigned_at: DateTime<Utc>,
}

/// The time of the first cosignature of `note` (unverified: to check the certificates at).
fn cosignature_time(note: &str) -> Option<DateTime<Utc>> {
    note.split_once("\n\n")?.1.lines().find_map(|line| {
        let sig = signed_note::Signature::from_bytes(line.as_bytes()).ok()?;
        let (time, rest) = sig.signature().split_first_chunk::<8>()?;
        (rest.len() == 64).then(|| DateTime::from_timestamp(u64::from_be_bytes(*time) as i64, 0))?
    })
}

/// Checks a bundle against the centre's CA (`ca_der`): the entry's content has its hash, the
/// centre's key cosigned the checkpoint, the node's key for the entry's jurisdiction signed it
/// (both certificates of the CA and valid when the centre cosigned), and the inclusion proof puts
/// the entry in that tree.
///
/// # Errors
/// The first thing that does not hold, in words.
pub fn verify(b: &Bundle, ca_der: &[u8]) -> Result<Proven, String> {
    if b.format != FORMAT {
        return Err(format!("a proof of format '{}', not {FORMAT}", b.format));
    }
    let bytes = |what: &str, s: &str| B64.decode(s).map_err(|e| format!("{what}: not base64 ({e})"));
    let entry =
        ChangeEntry::decode(bytes("entry", &b.entry)?.as_slice()).map_err(|e| format!("entry: not an entry ({e})"))?;
    if entry.hash.as_slice() != entry_hash(&entry).as_slice() {
        return Err(format!("entry {}: its content does not hash to its hash", entry.sequence));
    }
    let jurisdiction = einfo_domain::Jurisdiction::parse(&entry.jurisdiction).map_err(|e| format!("entry: {e}"))?;
    let service = super::SERVICES
        .iter()
        .find(|s| **s == entry.service)
        .ok_or_else(|| format!("entry: '{}' is not an einfo service", entry.service))?;
    let log = LogId { jurisdiction, service };
    let at = cosignature_time(&b.checkpoint).ok_or("the checkpoint carries no cosignature of the centre")?;
    let centre_cert = bytes("centre_certificate", &b.centre_certificate)?;
    let (centre, cosigned_at) = checkpoint::check_cosignature(&b.checkpoint, &centre_cert, ca_der, at)?;
    let node_cert = bytes("node_certificate", &b.node_certificate)?;
    let cp = checkpoint::check(&b.checkpoint, &node_cert, Some(ca_der), at, &log).map_err(|e| e.to_string())?;
    let proof: Vec<merkle::Hash> = b
        .inclusion_proof
        .iter()
        .map(|h| {
            bytes("inclusion_proof", h)
                .and_then(|v| merkle::hash_of(&v).ok_or("inclusion_proof: a hash of 32 bytes".into()))
        })
        .collect::<Result<_, _>>()?;
    if !merkle::check_inclusion(&proof, cp.size, cp.root, entry.sequence, &entry.hash) {
        return Err(format!(
            "the inclusion proof does not put entry {} in the tree of {} entries the checkpoint signs",
            entry.sequence, cp.size
        ));
    }
    Ok(Proven {
        node: cp.signer.map(|s| s.name).unwrap_or_default(),
        entry,
        tree_size: cp.size,
        centre: centre.name,
        cosigned_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::GENESIS_HASH;
    use crate::changelog::checkpoint::NoteKey;
    use crate::pki;
    use einfo_domain::Jurisdiction;
    use tlog_tiles::tlog::{self, HashReader};

    struct Mem(Vec<merkle::Hash>);

    impl HashReader for Mem {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<merkle::Hash>, tlog::Error> {
            Ok(indexes.iter().map(|i| self.0[*i as usize]).collect())
        }
    }

    struct World {
        ca: Vec<u8>,
        other_ca: Vec<u8>,
        node: NoteKey,
        centre: NoteKey,
        entries: Vec<ChangeEntry>,
        tree: Mem,
        now: DateTime<Utc>,
    }

    fn world() -> World {
        let now = DateTime::parse_from_rfc3339("2026-12-03T00:00:00Z").unwrap().with_timezone(&Utc);
        let ca = pki::init_ca("einfo centre", now, 3650).unwrap();
        let other = pki::init_ca("another", now, 3650).unwrap();
        let p01 = Jurisdiction::parse("provinces/2008-01").unwrap();
        let key = |name: &str, j: Jurisdiction| {
            let i = pki::issue(&ca.cert_pem, &ca.key_pem, name, &[j], &[], now, 365).unwrap();
            NoteKey::from_pems(&i.key_pem, &i.cert_pem, &ca.cert_pem, now).unwrap()
        };
        let mut prev = GENESIS_HASH.to_vec();
        let mut tree = Mem(Vec::new());
        let entries: Vec<ChangeEntry> = (1..=7u64)
            .map(|i| {
                let mut e = ChangeEntry {
                    jurisdiction: p01.to_string(),
                    service: "inspection".into(),
                    sequence: i,
                    resource: format!("provinces/2008-01/decisions/{i}"),
                    operation: "ISSUE".into(),
                    prev_hash: prev.clone(),
                    ..Default::default()
                };
                e.hash = entry_hash(&e).to_vec();
                prev = e.hash.clone();
                let stored = tlog::stored_hashes_for_record_hash(i - 1, merkle::leaf(&e.hash), &tree).unwrap();
                tree.0.extend(stored);
                e
            })
            .collect();
        World {
            ca: pki::der_of(&ca.cert_pem).unwrap(),
            other_ca: pki::der_of(&other.cert_pem).unwrap(),
            node: key("node-1", p01),
            centre: key("gateway", Jurisdiction::Central),
            entries,
            tree,
            now,
        }
    }

    fn bundle(w: &World, sequence: u64, cosigner: &NoteKey) -> Bundle {
        let size = w.entries.len() as u64;
        let root = tlog::tree_hash(size, &w.tree).unwrap();
        let log = LogId { jurisdiction: Jurisdiction::parse("provinces/2008-01").unwrap(), service: "inspection" };
        let note = w.node.sign(&checkpoint::body(&log, size, root)).unwrap();
        let cosigned = cosigner.cosign(&note, w.now + chrono::Duration::minutes(5)).unwrap();
        let proof = tlog::prove_record(size, sequence - 1, &w.tree).unwrap();
        let proof: Vec<Vec<u8>> = proof.iter().map(|h| h.0.to_vec()).collect();
        Bundle::new(&w.entries[sequence as usize - 1], &cosigned, w.node.certificate(), cosigner.certificate(), &proof)
    }

    #[test]
    fn a_true_proof_is_accepted_offline_against_the_ca_alone() {
        let w = world();
        for seq in 1..=7 {
            let b = bundle(&w, seq, &w.centre);
            let json = serde_json::to_string(&b).unwrap();
            let proven = verify(&serde_json::from_str(&json).unwrap(), &w.ca).unwrap();
            assert_eq!((proven.entry.sequence, proven.tree_size), (seq, 7));
            assert_eq!((proven.node.as_str(), proven.centre.as_str()), ("node-1", "gateway"));
            assert_eq!(proven.cosigned_at, w.now + chrono::Duration::minutes(5));
        }
    }

    #[test]
    fn a_forged_proof_is_refused() {
        let w = world();
        let good = bundle(&w, 3, &w.centre);
        let refuse = |b: &Bundle, ca: &[u8], why: &str, says: &str| {
            let e = verify(b, ca).expect_err(why);
            assert!(e.contains(says), "{why}: {e}");
        };
        // The entry altered, its hash left: its content does not hash to it.
        let mut altered = w.entries[2].clone();
        altered.resource.push('x');
        let mut b = good.clone();
        b.entry = B64.encode(altered.encode_to_vec());
        refuse(&b, &w.ca, "an altered entry", "does not hash");
        // The entry altered and hashed again: the tree does not hold it.
        altered.hash = entry_hash(&altered).to_vec();
        b.entry = B64.encode(altered.encode_to_vec());
        refuse(&b, &w.ca, "an entry the tree does not hold", "inclusion proof");
        // Another entry's proof.
        let mut b = good.clone();
        b.inclusion_proof = bundle(&w, 4, &w.centre).inclusion_proof;
        refuse(&b, &w.ca, "another entry's proof", "inclusion proof");
        // Cosigned by a province's key, or checked against another CA.
        refuse(&bundle(&w, 3, &w.node), &w.ca, "a province is not the centre", "does not act for the centre");
        refuse(&good, &w.other_ca, "another CA", "not issued by the centre's CA");
        // A checkpoint whose size was changed after signing.
        let mut b = good.clone();
        b.checkpoint = b.checkpoint.replacen("\n7\n", "\n8\n", 1);
        assert!(verify(&b, &w.ca).is_err());
    }
}
