//! A centre's CA and its holders' certificates in a test's directory, for servers that sign
//! with their own keys (`auth.ca_file`, `auth.cert_file`, `auth.key_file`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use einfo_common::auth::CertIssuer;
use einfo_common::changelog::checkpoint::NoteKey;
use einfo_common::config::Settings;
use einfo_common::pki;
use einfo_domain::Jurisdiction;

/// A CA and the holders it issued, written under `dir`.
pub struct TestPki {
    /// Where the PEM files are.
    pub dir: PathBuf,
    /// The instant the certificates were checked at.
    pub now: DateTime<Utc>,
}

impl TestPki {
    /// A CA valid from an hour ago for 30 days, and a certificate for each (name, jurisdictions).
    pub fn new(dir: PathBuf, holders: &[(&str, Vec<Jurisdiction>)]) -> Self {
        let now = einfo_common::clock::Clock::now(&*einfo_common::clock::system());
        let since = now - chrono::Duration::hours(1);
        let ca = pki::init_ca("einfo centre CA", since, 30).expect("a CA");
        pki::write(&dir, "ca", &ca).expect("the CA written");
        for (name, acts_for) in holders {
            let held = pki::issue(&ca.cert_pem, &ca.key_pem, name, acts_for, &[], since, 30).expect("a holder");
            pki::write(&dir, name, &held).expect("a holder written");
        }
        Self { dir, now }
    }

    /// Makes `s` sign with the certificate of `name` and trust the CA, with no shared secret.
    pub fn holder(&self, s: &mut Settings, name: &str) {
        s.auth.secret = None;
        self.signs_with(s, name);
    }

    /// Makes `s` sign with the certificate of `name` and trust the CA, keeping its shared secret
    /// (the test's tokens still use it).
    pub fn signs_with(&self, s: &mut Settings, name: &str) {
        let (cert, key) = pki::paths(&self.dir, name);
        s.auth.ca_file = Some(pki::paths(&self.dir, "ca").0);
        s.auth.cert_file = Some(cert);
        s.auth.key_file = Some(key);
    }

    /// The token issuer of `name`.
    pub fn issuer(&self, name: &str) -> CertIssuer {
        CertIssuer::from_dir(&self.dir, name, self.now).expect("an issuer")
    }

    /// The note key of `name`.
    pub fn note_key(&self, name: &str) -> NoteKey {
        let (cert, key) = pki::paths(&self.dir, name);
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("a PEM");
        NoteKey::from_pems(&read(key), &read(cert), &read(pki::paths(&self.dir, "ca").0), self.now).expect("a note key")
    }

    /// The CA's certificate (DER).
    pub fn ca_der(&self) -> Vec<u8> {
        pki::der_of(&std::fs::read_to_string(pki::paths(&self.dir, "ca").0).expect("the CA")).expect("a certificate")
    }
}
