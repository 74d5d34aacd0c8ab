//! Signed receipts of the centre: Ed25519 over the protobuf encoding of `ReceiptBody`
//! (no maps, prost's canonical field order). The centre signs; provinces verify with its public key.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use einfo_proto::central::v1::{Receipt, ReceiptBody};
use prost::Message;
use sha2::{Digest, Sha256};

/// The centre's signing key.
#[derive(Clone)]
pub struct ReceiptSigner {
    key: SigningKey,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceiptSigner({})", self.key_id())
    }
}

impl ReceiptSigner {
    /// From the 32 secret bytes.
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(secret) }
    }

    /// A new random key.
    pub fn generate() -> anyhow::Result<Self> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness for a signing key: {e}"))?;
        Ok(Self::from_bytes(&secret))
    }

    /// The 32 secret bytes (to store the key).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Id of the key: the first 8 bytes of SHA-256 of the public key, in hex.
    pub fn key_id(&self) -> String {
        key_id(&self.public_key())
    }

    /// Signs a receipt body.
    pub fn sign(&self, body: ReceiptBody) -> Receipt {
        let signature = self.key.sign(&body.encode_to_vec()).to_bytes().to_vec();
        Receipt { body: Some(body), key_id: self.key_id(), signature }
    }
}

/// Id of a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

/// Checks a receipt against the centre's public key.
pub fn verify(public_key: &[u8; 32], receipt: &Receipt) -> Result<(), String> {
    let body = receipt.body.as_ref().ok_or("the receipt has no body")?;
    if receipt.key_id != key_id(public_key) {
        return Err(format!(
            "the receipt was signed with key {}, not the centre's key {}",
            receipt.key_id,
            key_id(public_key)
        ));
    }
    let key = VerifyingKey::from_bytes(public_key).map_err(|e| format!("bad public key: {e}"))?;
    let sig: [u8; 64] = receipt.signature.as_slice().try_into().map_err(|_| "a signature is 64 bytes".to_string())?;
    key.verify(&body.encode_to_vec(), &Signature::from_bytes(&sig))
        .map_err(|_| "the signature does not match the receipt".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> ReceiptBody {
        ReceiptBody {
            receipt_id: "r1".into(),
            campaign: "campaigns/1".into(),
            jurisdiction: "provinces/2008-01".into(),
            report: "provinces/2008-01/reports/1".into(),
            version: 1,
            content_hash: vec![7; 32],
            receive_time: Some(prost_types::Timestamp { seconds: 1_416_416_400, nanos: 0 }),
        }
    }

    #[test]
    fn a_signed_receipt_verifies_and_a_tampered_one_does_not() {
        let s = ReceiptSigner::generate().unwrap();
        let mut r = s.sign(body());
        assert_eq!(verify(&s.public_key(), &r), Ok(()));
        r.body.as_mut().unwrap().receive_time.as_mut().unwrap().seconds += 1;
        assert!(verify(&s.public_key(), &r).is_err());
        let other = ReceiptSigner::generate().unwrap();
        assert!(verify(&other.public_key(), &s.sign(body())).is_err());
    }
}
