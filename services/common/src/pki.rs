//! The federation's identities: the centre's certificate authority (the trust anchor) and the
//! certificates it issues, each naming the jurisdictions its holder acts for.
//!
//! Keys are Ed25519. A certificate the CA issues carries, as URI subject alternative names,
//! `urn:einfo:jurisdiction:provinces/2008-01` for each jurisdiction its holder acts for (a node:
//! the provinces it hosts; the gateway: `central`), DNS names for TLS, and both TLS usages (a
//! node serves and calls). [`verify`] checks a certificate against the CA — the CA's signature,
//! the validity window at the time asked, that it is no CA itself — and returns the [`Identity`]
//! it names. Private keys are written readable by their owner only (mode 0600) and never
//! logged.
//!
//! `einfo pki init` makes the CA, `einfo pki issue` a holder's key and certificate; tokens signed
//! by a holder's key and mutual TLS build on this (issue 13).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use einfo_domain::Jurisdiction;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};

/// The prefix of the URI subject alternative names that name a jurisdiction.
pub const JURISDICTION_URI: &str = "urn:einfo:jurisdiction:";

/// A key pair and its certificate, as PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS #8).
    pub key_pem: String,
    /// The certificate's serial number, hex.
    pub serial: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("serial", &self.serial).field("key_pem", &"<hidden>").finish()
    }
}

/// Who a certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The holder's name (the certificate's common name).
    pub name: String,
    /// The certificate's serial number, hex.
    pub serial: String,
    /// The jurisdictions the holder acts for.
    pub acts_for: Vec<Jurisdiction>,
    /// The end of the certificate's validity.
    pub not_after: DateTime<Utc>,
    /// The certificate's raw public key (32 bytes for Ed25519): what checks the holder's signatures.
    pub public_key: Vec<u8>,
}

impl Identity {
    /// Whether the holder acts for `j`.
    pub fn acts_for(&self, j: &Jurisdiction) -> bool {
        self.acts_for.contains(j)
    }
}

fn time(t: DateTime<Utc>) -> anyhow::Result<time::OffsetDateTime> {
    Ok(time::OffsetDateTime::from_unix_timestamp(t.timestamp())?)
}

fn serial() -> anyhow::Result<(SerialNumber, String)> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a serial number: {e}"))?;
    // A positive INTEGER whose first byte is not zero: DER would drop a leading zero byte, and the
    // serial read back from the certificate would differ from the one returned here.
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok((SerialNumber::from_slice(&bytes), hex::encode(bytes)))
}

/// A new certificate authority named `name`, valid from `now` for `days`.
///
/// # Errors
/// Key generation or signing failed.
pub fn init_ca(name: &str, now: DateTime<Utc>, days: i64) -> anyhow::Result<Issued> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.distinguished_name.push(DnType::OrganizationName, "einfo");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = time(now)?;
    params.not_after = time(now + chrono::Duration::days(days))?;
    let (number, hex) = serial()?;
    params.serial_number = Some(number);
    let cert = params.self_signed(&key)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial: hex })
}

/// A key and certificate for `name`, acting for `acts_for`, reachable at `dns_names`, issued by
/// the CA (`ca_cert_pem`, `ca_key_pem`), valid from `now` for `days`.
///
/// # Errors
/// No jurisdiction, a CA that does not parse, or signing failed.
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    name: &str,
    acts_for: &[Jurisdiction],
    dns_names: &[String],
    now: DateTime<Utc>,
    days: i64,
) -> anyhow::Result<Issued> {
    anyhow::ensure!(!acts_for.is_empty(), "a certificate names at least one jurisdiction its holder acts for");
    let ca_key = KeyPair::from_pem(ca_key_pem).context("the CA's key")?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).context("the CA's certificate")?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.distinguished_name.push(DnType::OrganizationName, "einfo");
    for j in acts_for {
        params.subject_alt_names.push(SanType::URI(format!("{JURISDICTION_URI}{j}").try_into()?));
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = time(now)?;
    params.not_after = time(now + chrono::Duration::days(days))?;
    let (number, hex) = serial()?;
    params.serial_number = Some(number);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial: hex })
}

/// The DER of the first certificate in `pem`.
///
/// # Errors
/// No certificate in it.
pub fn der_of(pem: &str) -> anyhow::Result<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| anyhow::anyhow!("not a PEM: {e}"))?;
    anyhow::ensure!(p.label == "CERTIFICATE", "a PEM '{}', not a CERTIFICATE", p.label);
    Ok(p.contents)
}

/// The DER (PKCS #8) of the private key in `pem`.
///
/// # Errors
/// No private key in it.
pub fn key_der_of(pem: &str) -> anyhow::Result<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| anyhow::anyhow!("not a PEM: {e}"))?;
    anyhow::ensure!(p.label == "PRIVATE KEY", "a PEM '{}', not a PRIVATE KEY (PKCS #8)", p.label);
    Ok(p.contents)
}

/// Checks the certificate `cert_der` against the CA `ca_der` at `now` and returns who it names.
///
/// # Errors
/// A certificate that does not parse, is not signed by the CA, is outside its validity, is a CA,
/// or names no jurisdiction (or one that does not parse).
pub fn verify(cert_der: &[u8], ca_der: &[u8], now: DateTime<Utc>) -> Result<Identity, String> {
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| format!("the CA's certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| format!("not a certificate: {e}"))?;
    cert.verify_signature(Some(ca.public_key())).map_err(|_| "not issued by the centre's CA".to_string())?;
    if cert.issuer() != ca.subject() {
        return Err("not issued by the centre's CA (issuer name differs)".into());
    }
    let at = x509_parser::time::ASN1Time::from_timestamp(now.timestamp()).map_err(|e| e.to_string())?;
    if !cert.validity().is_valid_at(at) {
        return Err(format!(
            "outside its validity ({} to {})",
            cert.validity().not_before.to_datetime(),
            cert.validity().not_after.to_datetime()
        ));
    }
    if cert.is_ca() {
        return Err("a CA certificate does not act for a jurisdiction".into());
    }
    identity(&cert)
}

/// Who the certificate `cert_der` names, read without checking who issued it: for a certificate
/// the TLS handshake has already verified against the CA.
///
/// # Errors
/// A certificate that does not parse or names no jurisdiction (or one that does not parse).
pub fn named(cert_der: &[u8]) -> Result<Identity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| format!("not a certificate: {e}"))?;
    identity(&cert)
}

fn identity(cert: &x509_parser::certificate::X509Certificate<'_>) -> Result<Identity, String> {
    let name = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default().to_owned();
    let mut acts_for = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for g in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = g
                && let Some(j) = uri.strip_prefix(JURISDICTION_URI)
            {
                acts_for.push(Jurisdiction::parse(j).map_err(|e| format!("names jurisdiction '{j}': {e}"))?);
            }
        }
    }
    if acts_for.is_empty() {
        return Err("names no jurisdiction its holder acts for".into());
    }
    let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0).unwrap_or_default();
    Ok(Identity {
        name,
        serial: cert.tbs_certificate.raw_serial_as_string().replace(':', ""),
        acts_for,
        not_after,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// The DNS names and IP addresses a certificate is valid for (its TLS names), as text.
///
/// # Errors
/// A certificate that does not parse.
pub fn addresses(cert_der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| format!("not a certificate: {e}"))?;
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for g in &san.value.general_names {
            match g {
                GeneralName::DNSName(d) => out.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => out.push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default()).to_string()),
                    16 => out.push(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default()).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The serial number of a certificate, hex (as [`Issued::serial`] and [`Identity::serial`]).
///
/// # Errors
/// A certificate that does not parse.
pub fn serial_of(cert_der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| format!("not a certificate: {e}"))?;
    Ok(cert.tbs_certificate.raw_serial_as_string().replace(':', ""))
}

/// Adds the certificate of `name` to `revoked-certificates.csv` in `dir` (the list the centre
/// publishes as reference data `revoked-certificates`), with `now`; returns its serial and the
/// whole list. A certificate listed already is not listed twice.
///
/// # Errors
/// The certificate or the list cannot be read or written.
pub fn revoke(dir: &Path, name: &str, now: DateTime<Utc>) -> anyhow::Result<(String, String)> {
    let pem = std::fs::read_to_string(paths(dir, name).0)
        .with_context(|| format!("cannot read {}", paths(dir, name).0.display()))?;
    let serial = serial_of(&der_of(&pem)?).map_err(|e| anyhow::anyhow!(e))?;
    let list = dir.join("revoked-certificates.csv");
    let mut text = std::fs::read_to_string(&list).unwrap_or_else(|_| "serial,revoked_at\n".to_owned());
    if !text.lines().any(|l| l.split(',').next() == Some(serial.as_str())) {
        text.push_str(&format!("{serial},{}\n", now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        std::fs::write(&list, &text).with_context(|| format!("write {}", list.display()))?;
    }
    Ok((serial, text))
}

/// The holder in `dir` (an `einfo pki` directory) whose certificate acts for `j`, if any: the first
/// by name, the CA excluded.
///
/// # Errors
/// The directory or the CA's certificate cannot be read.
pub fn holder_for(dir: &Path, j: &Jurisdiction, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
    let ca = der_of(&std::fs::read_to_string(paths(dir, "ca").0)?)?;
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".pem").map(str::to_owned))
        .filter(|n| n != "ca")
        .collect();
    names.sort();
    for name in names {
        let Ok(pem) = std::fs::read_to_string(paths(dir, &name).0) else { continue };
        if let Ok(id) = der_of(&pem).map_err(|e| e.to_string()).and_then(|d| verify(&d, &ca, now))
            && id.acts_for(j)
        {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Where `einfo pki` keeps a holder's files in a directory: `<name>.pem` and `<name>.key`.
pub fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")))
}

/// Writes `issued` as `<name>.pem` and `<name>.key` (0600) in `dir`; refuses to overwrite.
///
/// # Errors
/// A file exists, or cannot be written.
pub fn write(dir: &Path, name: &str, issued: &Issued) -> anyhow::Result<(PathBuf, PathBuf)> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let (cert, key) = paths(dir, name);
    for p in [&cert, &key] {
        anyhow::ensure!(!p.exists(), "{} exists: a key or certificate is never overwritten", p.display());
    }
    let mut k = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)
        .with_context(|| format!("create {}", key.display()))?;
    k.write_all(issued.key_pem.as_bytes())?;
    k.sync_all()?;
    std::fs::write(&cert, &issued.cert_pem).with_context(|| format!("write {}", cert.display()))?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn p(code: &str) -> Jurisdiction {
        Jurisdiction::parse(&format!("provinces/2008-{code}")).unwrap()
    }

    #[test]
    fn a_certificate_of_the_ca_names_the_jurisdictions_its_holder_acts_for() {
        let now = at("2026-12-03T00:00:00Z");
        let ca = init_ca("einfo centre", now, 3650).unwrap();
        let node =
            issue(&ca.cert_pem, &ca.key_pem, "node-1", &[p("01"), p("79")], &["node-1".into()], now, 365).unwrap();
        let id = verify(&der_of(&node.cert_pem).unwrap(), &der_of(&ca.cert_pem).unwrap(), now).unwrap();
        assert_eq!(id.name, "node-1");
        assert_eq!(id.acts_for, vec![p("01"), p("79")]);
        assert_eq!(id.serial, node.serial);
        assert!(id.acts_for(&p("01")) && !id.acts_for(&p("02")));
        let gateway = issue(&ca.cert_pem, &ca.key_pem, "gateway", &[Jurisdiction::Central], &[], now, 365).unwrap();
        let id = verify(&der_of(&gateway.cert_pem).unwrap(), &der_of(&ca.cert_pem).unwrap(), now).unwrap();
        assert_eq!(id.acts_for, vec![Jurisdiction::Central]);
    }

    #[test]
    fn the_serial_returned_is_the_serial_in_the_certificate() {
        // One serial in 128 drew a first byte of zero, which DER drops: the serial returned
        // then differed from the certificate's (and from what `einfo pki revoke` lists).
        let now = at("2026-12-03T00:00:00Z");
        let ca = init_ca("einfo centre", now, 3650).unwrap();
        for _ in 0..600 {
            let node = issue(&ca.cert_pem, &ca.key_pem, "node-1", &[p("01")], &[], now, 1).unwrap();
            assert_eq!(serial_of(&der_of(&node.cert_pem).unwrap()).unwrap(), node.serial);
        }
    }

    #[test]
    fn a_certificate_of_another_ca_an_expired_one_and_the_ca_itself_are_refused() {
        let now = at("2026-12-03T00:00:00Z");
        let ca = init_ca("einfo centre", now, 3650).unwrap();
        let other = init_ca("einfo centre", now, 3650).unwrap();
        let forged = issue(&other.cert_pem, &other.key_pem, "node-1", &[p("01")], &[], now, 365).unwrap();
        let ca_der = der_of(&ca.cert_pem).unwrap();
        let e = verify(&der_of(&forged.cert_pem).unwrap(), &ca_der, now).unwrap_err();
        assert!(e.contains("not issued by the centre's CA"), "{e}");
        let node = issue(&ca.cert_pem, &ca.key_pem, "node-1", &[p("01")], &[], now, 30).unwrap();
        let e = verify(&der_of(&node.cert_pem).unwrap(), &ca_der, at("2027-02-01T00:00:00Z")).unwrap_err();
        assert!(e.contains("outside its validity"), "{e}");
        let e = verify(&der_of(&node.cert_pem).unwrap(), &ca_der, at("2026-12-02T00:00:00Z")).unwrap_err();
        assert!(e.contains("outside its validity"), "{e}");
        let e = verify(&ca_der, &ca_der, now).unwrap_err();
        assert!(e.contains("CA"), "{e}");
        assert!(issue(&ca.cert_pem, &ca.key_pem, "none", &[], &[], now, 30).is_err());
    }

    #[test]
    fn keys_are_written_for_their_owner_only_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("einfo-pki-{}", uuid::Uuid::new_v4().simple()));
        let ca = init_ca("einfo centre", at("2026-12-03T00:00:00Z"), 10).unwrap();
        let (cert, key) = write(&dir, "ca", &ca).unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&cert).unwrap().contains("BEGIN CERTIFICATE"));
        assert!(write(&dir, "ca", &ca).unwrap_err().to_string().contains("never overwritten"));
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"), "a key is never printed");
        let node = issue(&ca.cert_pem, &ca.key_pem, "node-1", &[p("01")], &[], at("2026-12-03T00:00:00Z"), 5).unwrap();
        write(&dir, "node-1", &node).unwrap();
        let (serial, list) = revoke(&dir, "node-1", at("2026-12-04T00:00:00Z")).unwrap();
        assert_eq!(serial, node.serial);
        let (_, again) = revoke(&dir, "node-1", at("2026-12-05T00:00:00Z")).unwrap();
        assert_eq!(list, again, "listed once");
        let parsed = crate::auth::Revocations::certificates_from_csv(&list).unwrap();
        assert!(parsed.contains(&node.serial) && list.lines().count() == 2, "one certificate listed: {list}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
