//! A centre's CA and its holders' certificates in a test's directory, for servers that sign
//! with their own keys (`auth.ca_file`, `auth.cert_file`, `auth.key_file`).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use einfo_common::auth::CertIssuer;
use einfo_common::changelog::checkpoint::NoteKey;
use einfo_common::config::Settings;
use einfo_common::pki;
use einfo_common::tls::{Tls, TlsFiles, Transport};
use einfo_domain::Jurisdiction;

/// A client's transport: mutual TLS presenting the certificate of `name` in the `einfo pki`
/// directory `dir` (`einfo up` writes one in `<data dir>/pki`).
pub fn transport(dir: &std::path::Path, name: &str) -> Transport {
    Transport::Tls(Tls::load(TlsFiles::of_holder(dir, name), einfo_common::clock::system()).expect("a TLS identity"))
}

/// The names the test certificates are valid for: the tests listen on the loopback.
fn addresses() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

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
            let held =
                pki::issue(&ca.cert_pem, &ca.key_pem, name, acts_for, &addresses(), since, 30).expect("a holder");
            pki::write(&dir, name, &held).expect("a holder written");
        }
        Self { dir, now }
    }

    /// Issues `name` a new key and certificate acting for `acts_for`, replacing its files (a
    /// rotation); returns the new certificate's serial.
    pub fn reissue(&self, name: &str, acts_for: &[Jurisdiction]) -> String {
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("a PEM");
        let (ca_cert, ca_key) = pki::paths(&self.dir, "ca");
        let since = self.now - chrono::Duration::hours(1);
        let held =
            pki::issue(&read(ca_cert), &read(ca_key), name, acts_for, &addresses(), since, 30).expect("a holder");
        let (cert, key) = pki::paths(&self.dir, name);
        let _ = (std::fs::remove_file(&cert), std::fs::remove_file(&key));
        pki::write(&self.dir, name, &held).expect("a holder written");
        held.serial
    }

    /// Makes `s` serve and call over mutual TLS with the certificate of `name` (and sign with
    /// it, keeping its shared secret).
    pub fn tls(&self, s: &mut Settings, name: &str) {
        self.signs_with(s, name);
        s.tls.insecure = false;
    }

    /// A client's transport: mutual TLS presenting the certificate of `name`.
    pub fn transport(&self, name: &str) -> Transport {
        transport(&self.dir, name)
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
