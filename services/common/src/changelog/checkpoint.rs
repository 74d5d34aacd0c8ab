//! Signed checkpoints of a log and the centre's cosignatures.
//!
//! A checkpoint is C2SP `tlog-checkpoint`: three lines, the origin (`einfo/<jurisdiction>/
//! <service>`), the tree's size and its root (base64). The node signs it as a C2SP `signed-note`
//! with the Ed25519 key of its certificate from the centre's CA (key name: the certificate's
//! name; key id: the note's rule over `0x01 ‖ public key`). The gateway, having checked it,
//! adds a C2SP `tlog-cosignature/v1` line with its own key (`0x04 ‖ public key`; the signature
//! over `cosignature/v1\ntime <seconds>\n` and the checkpoint, prefixed with the time): the
//! province then holds what the centre accepted, and the centre cannot deny it.
//!
//! A node without a certificate (a development federation on a shared secret) serves its
//! checkpoints unsigned: the checkpoint's text alone, which a gateway trusting no CA takes for
//! the consistency of the tree, never as evidence.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use einfo_domain::Jurisdiction;
use signed_note::{Note, NoteError, VerificationError, Verifier};
use tlog_tiles::checkpoint::Checkpoint;

use super::merkle::Hash;
use super::store::LogId;
use crate::pki::Identity;

const ALG_ED25519: u8 = 0x01;
const ALG_COSIGNATURE: u8 = 0x04;

/// The origin line of a log's checkpoints.
pub fn origin(log: &LogId) -> String {
    format!("einfo/{}/{}", log.jurisdiction, log.service)
}

/// The text of the checkpoint of `log` at (`size`, `root`).
pub fn body(log: &LogId, size: u64, root: Hash) -> String {
    let c = Checkpoint::new(&origin(log), size, root, "").expect("an einfo origin is never empty");
    String::from_utf8(c.to_bytes()).expect("a checkpoint is text")
}

/// A key that signs notes: a holder's certificate key (a node's, the gateway's).
#[derive(Clone)]
pub struct NoteKey {
    name: String,
    key: Arc<rcgen::KeyPair>,
    certificate: Vec<u8>,
    holder: Identity,
}

impl std::fmt::Debug for NoteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteKey").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The key name a note gives a holder: its certificate's name, without what a key name may not
/// hold (spaces, `+`).
fn key_name(holder: &Identity) -> String {
    let name: String = holder.name.chars().map(|c| if c.is_whitespace() || c == '+' { '-' } else { c }).collect();
    if name.is_empty() { "einfo".into() } else { name }
}

fn key_id(name: &str, alg: u8, public: &[u8]) -> u32 {
    let mut k = vec![alg];
    k.extend_from_slice(public);
    signed_note::key_id(name, &k)
}

impl NoteKey {
    /// From a holder's key (PKCS #8 PEM), its certificate (DER) and who the certificate names.
    ///
    /// # Errors
    /// A key that does not parse or is not the certificate's.
    pub fn new(key_pem: &str, certificate: Vec<u8>, holder: Identity) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| anyhow::anyhow!("the holder's key: {e}"))?;
        anyhow::ensure!(key.public_key_raw() == holder.public_key.as_slice(), "the key is not the certificate's");
        Ok(Self { name: key_name(&holder), key: Arc::new(key), certificate, holder })
    }

    /// From a holder's key and certificate (PEM), checked against the CA's certificate at `now`.
    ///
    /// # Errors
    /// What does not parse, a certificate the CA did not issue, or a key not the certificate's.
    pub fn from_pems(key_pem: &str, cert_pem: &str, ca_pem: &str, now: DateTime<Utc>) -> anyhow::Result<Self> {
        let cert = crate::pki::der_of(cert_pem)?;
        let holder =
            crate::pki::verify(&cert, &crate::pki::der_of(ca_pem)?, now).map_err(|e| anyhow::anyhow!("{e}"))?;
        Self::new(key_pem, cert, holder)
    }

    /// The certificate (DER) whose key this is.
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// Whom the certificate names.
    pub fn holder(&self) -> &Identity {
        &self.holder
    }

    fn raw_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        use rcgen::SigningKey;
        self.key.sign(msg).map_err(|_| signature::Error::new())
    }

    /// `text` (a checkpoint) as a note signed by this key.
    ///
    /// # Errors
    /// A text that is not a note's, or a signing failure.
    pub fn sign(&self, text: &str) -> anyhow::Result<String> {
        let mut note = Note::new(text.as_bytes(), &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
        note.add_sigs(&[&NoteSigner(self)]).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(String::from_utf8(note.to_bytes())?)
    }

    /// `note` with this key's cosignature at `time` added.
    ///
    /// # Errors
    /// A note that does not parse, or a signing failure.
    pub fn cosign(&self, note: &str, time: DateTime<Utc>) -> anyhow::Result<String> {
        let mut n = Note::from_bytes(note.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
        n.add_sigs(&[&Cosigner { key: self, time: time.timestamp().max(0) as u64 }])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(String::from_utf8(n.to_bytes())?)
    }
}

struct NoteSigner<'a>(&'a NoteKey);

impl signed_note::Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn key_id(&self) -> u32 {
        key_id(&self.0.name, ALG_ED25519, &self.0.holder.public_key)
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        self.0.raw_sign(msg)
    }
}

struct Cosigner<'a> {
    key: &'a NoteKey,
    time: u64,
}

fn cosigned_message(time: u64, text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(text);
    m
}

impl signed_note::Signer for Cosigner<'_> {
    fn name(&self) -> &str {
        &self.key.name
    }
    fn key_id(&self) -> u32 {
        key_id(&self.key.name, ALG_COSIGNATURE, &self.key.holder.public_key)
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut out = self.time.to_be_bytes().to_vec();
        out.extend(self.key.raw_sign(&cosigned_message(self.time, msg))?);
        Ok(out)
    }
}

/// Checks a signature or cosignature by one holder's public key.
struct HolderVerifier {
    name: String,
    id: u32,
    public: ed25519_dalek::VerifyingKey,
    cosignature: bool,
    /// The time of the last cosignature checked (seconds).
    time: std::cell::Cell<u64>,
}

impl HolderVerifier {
    fn new(holder: &Identity, cosignature: bool) -> Result<Self, String> {
        let bytes: [u8; 32] = holder
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| "the certificate's key is not an Ed25519 key".to_string())?;
        let public = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| e.to_string())?;
        let name = key_name(holder);
        let alg = if cosignature { ALG_COSIGNATURE } else { ALG_ED25519 };
        Ok(Self { id: key_id(&name, alg, &holder.public_key), name, public, cosignature, time: 0.into() })
    }
}

impl Verifier for HolderVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use ed25519_dalek::Verifier as _;
        let (msg, sig) = if self.cosignature {
            let Some((time, sig)) = sig.split_first_chunk::<8>() else { return false };
            let time = u64::from_be_bytes(*time);
            self.time.set(time);
            (cosigned_message(time, msg), sig)
        } else {
            (msg.to_vec(), sig)
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else { return false };
        self.public.verify(&msg, &sig).is_ok()
    }
}

/// A checkpoint read and checked.
#[derive(Clone, Debug)]
pub struct Checked {
    /// Its origin.
    pub origin: String,
    /// The tree's size.
    pub size: u64,
    /// The tree's root.
    pub root: Hash,
    /// Who signed it; `None` for an unsigned checkpoint.
    pub signer: Option<Identity>,
}

/// Why a checkpoint was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The signer's certificate is not one of the CA's valid now (expired, another CA's): a
    /// matter of configuration.
    #[error("the signer's certificate: {0}")]
    Certificate(String),
    /// The checkpoint is not what it claims: unsigned, signed by another key, for another
    /// jurisdiction or log, or malformed.
    #[error("{0}")]
    Invalid(String),
}

/// Reads a checkpoint note. With a CA (`ca_der`), the note must be signed by the key of
/// `certificate`, a certificate of that CA valid at `now` naming the log's jurisdiction; without
/// one, signatures are not checked (a development federation).
///
/// # Errors
/// What is wrong, in words.
pub fn check(
    note: &str,
    certificate: &[u8],
    ca_der: Option<&[u8]>,
    now: DateTime<Utc>,
    log: &LogId,
) -> Result<Checked, CheckError> {
    let invalid = CheckError::Invalid;
    let (text, signer) = match ca_der {
        Some(ca) => {
            if certificate.is_empty() {
                return Err(invalid("the checkpoint is not signed by a certificate of the centre's CA".into()));
            }
            let holder = crate::pki::verify(certificate, ca, now).map_err(CheckError::Certificate)?;
            if !holder.acts_for(&log.jurisdiction) {
                return Err(invalid(format!("the signer's certificate does not act for {}", log.jurisdiction)));
            }
            let n = Note::from_bytes(note.as_bytes()).map_err(|e| invalid(format!("not a signed note: {e}")))?;
            verify_by(&n, &holder, false).map_err(invalid)?;
            (n.text().to_vec(), Some(holder))
        }
        None => {
            let text = note.split_once("\n\n").map_or(note, |(t, _)| t);
            let text = if text.ends_with('\n') { text.to_owned() } else { format!("{text}\n") };
            (text.into_bytes(), None)
        }
    };
    let c = Checkpoint::from_bytes(&text).map_err(|e| invalid(format!("not a checkpoint: {e}")))?;
    if c.origin() != origin(log) {
        return Err(invalid(format!("a checkpoint of '{}', not of '{}'", c.origin(), origin(log))));
    }
    Ok(Checked { origin: c.origin().to_owned(), size: c.size(), root: *c.hash(), signer })
}

fn verify_by(n: &Note, holder: &Identity, cosignature: bool) -> Result<u64, String> {
    let v = HolderVerifier::new(holder, cosignature)?;
    n.verify(&Single(&v)).map_err(|e| match e {
        NoteError::UnverifiedNote => {
            format!("no {} by {}", if cosignature { "cosignature" } else { "signature" }, holder.name)
        }
        e => e.to_string(),
    })?;
    Ok(v.time.get())
}

struct Single<'a>(&'a HolderVerifier);

impl signed_note::Verifiers for Single<'_> {
    fn verifier(&self, name: &str, id: u32) -> Result<&dyn Verifier, VerificationError> {
        if name == self.0.name && id == self.0.id {
            Ok(self.0)
        } else {
            Err(VerificationError::UnknownKey { name: name.to_owned(), id })
        }
    }
}

/// Checks the centre's cosignature on `note` by the key of `certificate` (a certificate of the CA
/// `ca_der` acting for the centre, valid at `now`) and returns its holder and the time it
/// cosigned.
///
/// # Errors
/// What is wrong, in words.
pub fn check_cosignature(
    note: &str,
    certificate: &[u8],
    ca_der: &[u8],
    now: DateTime<Utc>,
) -> Result<(Identity, DateTime<Utc>), String> {
    let holder =
        crate::pki::verify(certificate, ca_der, now).map_err(|e| format!("the cosigner's certificate: {e}"))?;
    if !holder.acts_for(&Jurisdiction::Central) {
        return Err("the cosigner's certificate does not act for the centre".into());
    }
    let n = Note::from_bytes(note.as_bytes()).map_err(|e| format!("not a signed note: {e}"))?;
    let time = verify_by(&n, &holder, true)?;
    let at = DateTime::from_timestamp(time as i64, 0).ok_or("a cosignature's time out of range")?;
    Ok((holder, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki;

    fn p(code: &str) -> Jurisdiction {
        Jurisdiction::parse(&format!("provinces/2008-{code}")).unwrap()
    }

    struct Fixture {
        ca: Vec<u8>,
        node: NoteKey,
        other: NoteKey,
        gateway: NoteKey,
        now: DateTime<Utc>,
        log: LogId,
    }

    fn fixture() -> Fixture {
        let now = DateTime::parse_from_rfc3339("2026-12-03T00:00:00Z").unwrap().with_timezone(&Utc);
        let ca = pki::init_ca("einfo centre", now, 3650).unwrap();
        let key = |name: &str, j: Jurisdiction| {
            let i = pki::issue(&ca.cert_pem, &ca.key_pem, name, &[j], &[], now, 365).unwrap();
            NoteKey::from_pems(&i.key_pem, &i.cert_pem, &ca.cert_pem, now).unwrap()
        };
        Fixture {
            ca: pki::der_of(&ca.cert_pem).unwrap(),
            node: key("node-1", p("01")),
            other: key("node-2", p("79")),
            gateway: key("gateway", Jurisdiction::Central),
            now,
            log: LogId { jurisdiction: p("01"), service: "registry" },
        }
    }

    #[test]
    fn a_checkpoint_signed_by_the_node_is_read_back_and_cosigned_by_the_centre() {
        let f = fixture();
        let root = super::super::merkle::leaf(b"x");
        let text = body(&f.log, 7, root);
        assert_eq!(text.lines().next(), Some("einfo/provinces/2008-01/registry"));
        let note = f.node.sign(&text).unwrap();
        let c = check(&note, f.node.certificate(), Some(&f.ca), f.now, &f.log).unwrap();
        assert_eq!((c.size, c.root), (7, root));
        assert_eq!(c.signer.unwrap().name, "node-1");

        let at = f.now + chrono::Duration::seconds(42);
        let cosigned = f.gateway.cosign(&note, at).unwrap();
        let (who, when) = check_cosignature(&cosigned, f.gateway.certificate(), &f.ca, f.now).unwrap();
        assert_eq!((who.name.as_str(), when), ("gateway", at));
        // The node's signature still holds beside the cosignature.
        check(&cosigned, f.node.certificate(), Some(&f.ca), f.now, &f.log).unwrap();
        // A node's signature is no cosignature, and a node is not the centre.
        assert!(
            check_cosignature(&note, f.gateway.certificate(), &f.ca, f.now).unwrap_err().contains("no cosignature")
        );
        let by_node = f.node.cosign(&note, at).unwrap();
        assert!(check_cosignature(&by_node, f.node.certificate(), &f.ca, f.now).unwrap_err().contains("centre"));
    }

    #[test]
    fn a_forged_or_foreign_checkpoint_is_refused() {
        let f = fixture();
        let note = f.node.sign(&body(&f.log, 7, super::super::merkle::leaf(b"x"))).unwrap();
        let forged = note.replacen("\n7\n", "\n8\n", 1);
        assert!(
            check(&forged, f.node.certificate(), Some(&f.ca), f.now, &f.log)
                .unwrap_err()
                .to_string()
                .contains("signature")
        );
        // Province 79's node cannot sign for province 01.
        let by_other = f.other.sign(&body(&f.log, 7, super::super::merkle::leaf(b"x"))).unwrap();
        assert!(
            check(&by_other, f.other.certificate(), Some(&f.ca), f.now, &f.log)
                .unwrap_err()
                .to_string()
                .contains("does not act")
        );
        // Signed by another key than the certificate's.
        assert!(
            check(&by_other, f.node.certificate(), Some(&f.ca), f.now, &f.log)
                .unwrap_err()
                .to_string()
                .contains("no signature")
        );
        // Unsigned, when the reader trusts a CA.
        let text = body(&f.log, 7, super::super::merkle::leaf(b"x"));
        assert!(check(&text, &[], Some(&f.ca), f.now, &f.log).is_err());
        // Another log's checkpoint.
        let reg79 = LogId { jurisdiction: p("01"), service: "inspection" };
        assert!(
            check(&note, f.node.certificate(), Some(&f.ca), f.now, &reg79).unwrap_err().to_string().contains("not of")
        );
        // Without a CA, the text alone is read.
        assert_eq!(check(&text, &[], None, f.now, &f.log).unwrap().size, 7);
        assert_eq!(check(&note, &[], None, f.now, &f.log).unwrap().size, 7);
    }
}
