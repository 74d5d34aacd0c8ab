//! Caller identity: who is calling (subject), in what role, for which jurisdiction.
//!
//! One interceptor ([`Authenticator`]) reads `authorization: Bearer <JWT>` (HS256, issuer
//! `einfo`) and puts a [`Caller`] in the request's extensions; handlers read it with
//! [`caller`]. A request without a token passes the interceptor (health and reflection need no
//! identity) and is refused by any handler that asks for a caller. This is the seam for the full
//! security model (mutual TLS, per-province keys) that comes later.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock as _;

use einfo_domain::Jurisdiction;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, Reason};

const ISSUER: &str = "einfo";

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A provincial operator: keeps the province's register.
    Operator,
    /// A provincial inspector.
    Inspector,
    /// A provincial reporting officer.
    Reporter,
    /// Another einfo service acting for a jurisdiction (e.g. inspection calling registry).
    Service,
    /// A central administrator.
    CentralAdmin,
    /// A central analyst (reads everything, writes nothing).
    CentralAnalyst,
    /// The node itself (time-driven transitions). Never issued in a token.
    System,
}

impl Role {
    /// The name used in tokens and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Inspector => "inspector",
            Role::Reporter => "reporter",
            Role::Service => "service",
            Role::CentralAdmin => "central-admin",
            Role::CentralAnalyst => "central-analyst",
            Role::System => "system",
        }
    }

    /// Whether the role acts for the centre.
    pub fn is_central(self) -> bool {
        matches!(self, Role::CentralAdmin | Role::CentralAnalyst)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "operator" => Role::Operator,
            "inspector" => Role::Inspector,
            "reporter" => Role::Reporter,
            "service" => Role::Service,
            "central-admin" => Role::CentralAdmin,
            "central-analyst" => Role::CentralAnalyst,
            other => return Err(format!("unknown role '{other}'")),
        })
    }
}

/// The identity of a request, established once by [`Authenticator`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Token subject.
    pub subject: String,
    /// Role.
    pub role: Role,
    /// Jurisdiction the caller acts for.
    pub jurisdiction: Jurisdiction,
}

impl Caller {
    /// The node itself, for time-driven transitions.
    pub fn system(jurisdiction: Jurisdiction) -> Self {
        Caller { subject: "system".into(), role: Role::System, jurisdiction }
    }

    /// Refuses unless the caller may write records of `target`: only a provincial caller of that
    /// same jurisdiction (or the node itself) writes a province's records.
    pub fn authorize_write(&self, target: &Jurisdiction) -> ApiResult<()> {
        if self.role.is_central() {
            return Err(ApiError::new(
                Reason::RoleNotAllowed,
                format!("role {} may not change the records of {target}", self.role),
            ));
        }
        if &self.jurisdiction != target {
            return Err(ApiError::new(
                Reason::NotYourJurisdiction,
                format!("caller acts for {} and may not change the records of {target}", self.jurisdiction),
            ));
        }
        Ok(())
    }

    /// Refuses unless the caller may read records of `target`: the centre reads all, a province its own.
    pub fn authorize_read(&self, target: &Jurisdiction) -> ApiResult<()> {
        // A central role, or a service of the centre (its gateway replicating).
        if self.role.is_central() || self.jurisdiction.is_central() || &self.jurisdiction == target {
            Ok(())
        } else {
            Err(ApiError::new(
                Reason::NotYourJurisdiction,
                format!("caller acts for {} and may not read the records of {target}", self.jurisdiction),
            ))
        }
    }

    /// The identity used to scope idempotency keys: subject and jurisdiction.
    pub fn scope(&self) -> String {
        format!("{}@{}", self.subject, self.jurisdiction)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    jur: String,
    iss: String,
    iat: u64,
    exp: u64,
    /// The token's id (a UUID), for revocation and the access log.
    jti: String,
}

/// The clock difference a token's expiry is allowed between issuer and server.
pub const LEEWAY_SECS: u64 = 5;

/// The longest a token may live unless configured otherwise (`auth.max_token_lifetime_hours`).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Signs and checks bearer tokens with one shared secret (HS256). A token lives at most
/// [`TokenKeys::max_lifetime`] (from its issue to its expiry, checked on both sides), its expiry
/// is checked with [`LEEWAY_SECS`] of leeway, and it carries an id (`jti`).
#[derive(Clone)]
pub struct TokenKeys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    max_lifetime: Duration,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys from a secret of at least 32 bytes.
    pub fn from_secret(secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(secret.len() >= 32, "the token secret must be at least 32 bytes");
        Ok(Self {
            encoding: Arc::new(EncodingKey::from_secret(secret)?),
            decoding: Arc::new(DecodingKey::from_secret(secret)?),
            max_lifetime: DEFAULT_MAX_LIFETIME,
        })
    }

    /// With another maximum lifetime.
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// Issues a token for `caller`, valid for `ttl` (at most the maximum lifetime).
    pub fn issue(&self, caller: &Caller, ttl: Duration) -> anyhow::Result<String> {
        // Tokens are checked against the system clock by jsonwebtoken, so they are issued by it.
        let now = u64::try_from(crate::clock::SystemClock.now().timestamp())?;
        anyhow::ensure!(
            ttl <= self.max_lifetime,
            "a token lives at most {} s (auth.max_token_lifetime_hours), not {} s",
            self.max_lifetime.as_secs(),
            ttl.as_secs()
        );
        self.issue_between(caller, now, now + ttl.as_secs())
    }

    /// Issues a token for `caller` issued at `iat` and expiring at `exp` (UNIX seconds), whatever
    /// the maximum lifetime: for tests of expired and over-long tokens.
    pub fn issue_between(&self, caller: &Caller, iat: u64, exp: u64) -> anyhow::Result<String> {
        anyhow::ensure!(caller.role != Role::System, "no token is issued for the system role");
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims_of(caller, iat, exp), &self.encoding)?)
    }

    /// Checks a token and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        self.verify_token(token).map(|(caller, _)| caller)
    }

    /// Checks a token and returns its caller and its id (`jti`).
    pub fn verify_token(&self, token: &str) -> Result<(Caller, String), String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation(Algorithm::HS256))
            .map_err(|e| format!("invalid token: {e}"))?;
        check_claims(data.claims, self.max_lifetime)
    }
}

/// What jsonwebtoken checks of every token signed with `alg`: issuer, required claims, expiry
/// with [`LEEWAY_SECS`].
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    v.leeway = LEEWAY_SECS;
    v
}

/// The checks every token's claims pass, whoever signed it: its lifetime, its id, and a role that
/// acts for the kind of jurisdiction it names. Returns the caller and the token's id.
fn check_claims(c: Claims, max_lifetime: Duration) -> Result<(Caller, String), String> {
    if c.exp.saturating_sub(c.iat) > max_lifetime.as_secs() {
        return Err(format!(
            "invalid token: it lives {} s, more than the {} s allowed",
            c.exp.saturating_sub(c.iat),
            max_lifetime.as_secs()
        ));
    }
    if c.jti.is_empty() {
        return Err("invalid token: it has no id (jti)".into());
    }
    let role: Role = c.role.parse()?;
    let jurisdiction = Jurisdiction::parse(&c.jur).map_err(|e| format!("invalid token jurisdiction: {e}"))?;
    // A person's role acts for the centre or for a province by its kind; a service (a machine) for
    // either: a node's services for its provinces, the centre's gateway for the centre.
    if role != Role::Service && role.is_central() != jurisdiction.is_central() {
        return Err(format!("role {role} does not act for {jurisdiction}"));
    }
    Ok((Caller { subject: c.sub, role, jurisdiction }, c.jti))
}

fn claims_of(caller: &Caller, iat: u64, exp: u64) -> Claims {
    Claims {
        sub: caller.subject.clone(),
        role: caller.role.as_str().into(),
        jur: caller.jurisdiction.to_string(),
        iss: ISSUER.into(),
        iat,
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
    }
}

/// Signs tokens with a holder's private key (Ed25519, `EdDSA`), its certificate from the centre's
/// CA in the token's `x5c` header: a node signs for the provinces its certificate names, the
/// centre's gateway for central roles, and no one for anything else.
#[derive(Clone)]
pub struct CertIssuer {
    key: Arc<EncodingKey>,
    /// The same key for notes, with the certificate and whom it names.
    note: Arc<crate::changelog::checkpoint::NoteKey>,
    max_lifetime: Duration,
}

impl fmt::Debug for CertIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertIssuer").field("identity", self.note.holder()).finish_non_exhaustive()
    }
}

impl CertIssuer {
    /// From a holder's key and certificate (PEM), checked against the CA's certificate at `now`.
    ///
    /// # Errors
    /// A key or certificate that does not parse, or a certificate the CA did not issue.
    pub fn new(
        key_pem: &str,
        cert_pem: &str,
        ca_pem: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Self> {
        let cert_der = crate::pki::der_of(cert_pem)?;
        let identity =
            crate::pki::verify(&cert_der, &crate::pki::der_of(ca_pem)?, now).map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = EncodingKey::from_ed_der(&crate::pki::key_der_of(key_pem)?);
        let note = Arc::new(crate::changelog::checkpoint::NoteKey::new(key_pem, cert_der, identity)?);
        Ok(Self { key: Arc::new(key), note, max_lifetime: DEFAULT_MAX_LIFETIME })
    }

    /// From the files of a holder's key and certificate and of the CA's certificate.
    ///
    /// # Errors
    /// A file that cannot be read, or as [`CertIssuer::new`].
    pub fn from_files(
        key: &std::path::Path,
        cert: &std::path::Path,
        ca: &std::path::Path,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Self> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
        };
        Self::new(&read(key)?, &read(cert)?, &read(ca)?, now)
    }

    /// Holder `name` of an `einfo pki` directory: its `<name>.key` and `<name>.pem`, and `ca.pem`.
    ///
    /// # Errors
    /// As [`CertIssuer::from_files`].
    pub fn from_dir(dir: &std::path::Path, name: &str, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Self> {
        let (cert, key) = crate::pki::paths(dir, name);
        Self::from_files(&key, &cert, &crate::pki::paths(dir, "ca").0, now)
    }

    /// With another maximum token lifetime.
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// Issues a token for `caller`, valid for `ttl`: only for a jurisdiction the certificate names.
    ///
    /// # Errors
    /// A jurisdiction the certificate does not name, the system role, or a ttl over the maximum.
    pub fn issue(&self, caller: &Caller, ttl: Duration) -> anyhow::Result<String> {
        anyhow::ensure!(caller.role != Role::System, "no token is issued for the system role");
        let identity = self.note.holder();
        anyhow::ensure!(
            identity.acts_for(&caller.jurisdiction),
            "{} signs only for {}, not for {}",
            identity.name,
            identity.acts_for.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            caller.jurisdiction
        );
        anyhow::ensure!(ttl <= self.max_lifetime, "a token lives at most {} s", self.max_lifetime.as_secs());
        let now = u64::try_from(crate::clock::SystemClock.now().timestamp())?;
        self.sign(&claims_of(caller, now, now + ttl.as_secs()))
    }

    fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        use base64::Engine as _;
        let mut header = Header::new(Algorithm::EdDSA);
        header.x5c = Some(vec![base64::engine::general_purpose::STANDARD.encode(self.note.certificate())]);
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// How a process signs the tokens of its own calls (inspection → registry, reporting → the
/// centre, the reference feed, the gateway → nodes): with its certificate's key when it holds one,
/// else with the shared secret.
#[derive(Clone, Debug)]
pub enum Signer {
    /// The shared secret (HS256).
    Secret(TokenKeys),
    /// The key of a certificate of the centre's CA.
    Holder(CertIssuer),
}

impl Signer {
    /// The key that signs notes (checkpoints, cosignatures): a holder's certificate key; none for
    /// the shared secret.
    pub fn note_key(&self) -> Option<&crate::changelog::checkpoint::NoteKey> {
        match self {
            Signer::Secret(_) => None,
            Signer::Holder(h) => Some(&h.note),
        }
    }

    /// The longest a token it signs may live.
    pub fn max_lifetime(&self) -> Duration {
        match self {
            Signer::Secret(k) => k.max_lifetime,
            Signer::Holder(h) => h.max_lifetime,
        }
    }

    /// A token for `caller`, valid for `ttl`.
    ///
    /// # Errors
    /// As [`TokenKeys::issue`] or [`CertIssuer::issue`]: a holder signs only for the
    /// jurisdictions its certificate names.
    pub fn issue(&self, caller: &Caller, ttl: Duration) -> anyhow::Result<String> {
        match self {
            Signer::Secret(k) => k.issue(caller, ttl),
            Signer::Holder(h) => h.issue(caller, ttl),
        }
    }
}

impl From<TokenKeys> for Signer {
    fn from(k: TokenKeys) -> Self {
        Signer::Secret(k)
    }
}

impl From<CertIssuer> for Signer {
    fn from(h: CertIssuer) -> Self {
        Signer::Holder(h)
    }
}

/// Checks tokens signed by holders of the centre's CA ([`CertIssuer`]) with public keys only: the
/// certificate in the token's `x5c` must be the CA's, valid now, and name the token's
/// jurisdiction; central roles only from a certificate that acts for the centre.
#[derive(Clone)]
pub struct CertVerifier {
    ca_der: Arc<Vec<u8>>,
    max_lifetime: Duration,
    clock: crate::clock::SharedClock,
}

impl fmt::Debug for CertVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertVerifier(..)")
    }
}

impl CertVerifier {
    /// Trusting the CA of `ca_pem`; certificates' validity read on `clock`.
    ///
    /// # Errors
    /// A CA certificate that does not parse.
    pub fn new(ca_pem: &str, clock: crate::clock::SharedClock) -> anyhow::Result<Self> {
        Ok(Self { ca_der: Arc::new(crate::pki::der_of(ca_pem)?), max_lifetime: DEFAULT_MAX_LIFETIME, clock })
    }

    /// With another maximum token lifetime.
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// The CA's certificate (DER).
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// Checks a token and returns its caller, its id and the identity that signed it.
    pub fn verify_token(&self, token: &str) -> Result<(Caller, String, crate::pki::Identity), String> {
        use base64::Engine as _;
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("invalid token: {e}"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(format!("invalid token: signed with {:?}, not EdDSA", header.alg));
        }
        let cert =
            header.x5c.as_ref().and_then(|c| c.first()).ok_or("invalid token: no certificate (x5c) of its signer")?;
        let cert_der = base64::engine::general_purpose::STANDARD
            .decode(cert)
            .map_err(|e| format!("invalid token: x5c is not base64: {e}"))?;
        let identity = crate::pki::verify(&cert_der, &self.ca_der, self.clock.now())
            .map_err(|e| format!("invalid token: its signer's certificate is {e}"))?;
        let key = DecodingKey::from_ed_components(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&identity.public_key),
        )
        .map_err(|e| format!("invalid token: {e}"))?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation(Algorithm::EdDSA))
            .map_err(|e| format!("invalid token: {e}"))?;
        let (caller, jti) = check_claims(data.claims, self.max_lifetime)?;
        if !identity.acts_for(&caller.jurisdiction) {
            return Err(format!(
                "invalid token: signed by {}, which does not act for {}",
                identity.name, caller.jurisdiction
            ));
        }
        Ok((caller, jti, identity))
    }
}

/// The ids of tokens (or serial numbers of certificates) the centre revoked, published by a
/// central admin as reference data and followed by every node. Each line's instant (the token's
/// expiry, the certificate's revocation) is checked when the list is read, for the list's readers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revocations {
    ids: std::collections::HashSet<String>,
}

impl Revocations {
    /// Reads `jti,expires_at` lines (a header, then one token id — a UUID — and its token's expiry,
    /// RFC 3339, per line): reference data `revoked-tokens`.
    ///
    /// # Errors
    /// A line that is not an id and an instant, with its line number.
    pub fn from_csv(text: &str) -> anyhow::Result<Self> {
        Self::read(text, ["jti", "expires_at"], |id| {
            uuid::Uuid::parse_str(id).map(|u| u.to_string()).map_err(|e| format!("is not a token id (a UUID): {e}"))
        })
    }

    /// Reads `serial,revoked_at` lines (a header, then a certificate's serial number — hex, as
    /// `einfo pki` prints it — and when it was revoked, RFC 3339, per line): reference data
    /// `revoked-certificates`.
    ///
    /// # Errors
    /// A line that is not a serial and an instant, with its line number.
    pub fn certificates_from_csv(text: &str) -> anyhow::Result<Self> {
        Self::read(text, ["serial", "revoked_at"], |id| {
            let hex = id.to_ascii_lowercase();
            if !hex.is_empty() && hex.len() <= 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(hex)
            } else {
                Err("is not a certificate serial number (hex, at most 20 bytes)".into())
            }
        })
    }

    fn read(text: &str, columns: [&str; 2], id: impl Fn(&str) -> Result<String, String>) -> anyhow::Result<Self> {
        let mut r = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        let header = r.headers()?.clone();
        anyhow::ensure!(
            header.iter().collect::<Vec<_>>() == columns,
            "the header must be '{}', not '{}'",
            columns.join(","),
            header.iter().collect::<Vec<_>>().join(",")
        );
        let mut ids = std::collections::HashSet::new();
        for (i, row) in r.records().enumerate() {
            let line = i + 2;
            let row = row.map_err(|e| anyhow::anyhow!("line {line}: {e}"))?;
            let key = id(&row[0]).map_err(|e| anyhow::anyhow!("line {line}: {} '{}' {e}", columns[0], &row[0]))?;
            chrono::DateTime::parse_from_rfc3339(&row[1]).map_err(|e| {
                anyhow::anyhow!("line {line}: {} '{}' is not an RFC 3339 instant: {e}", columns[1], &row[1])
            })?;
            ids.insert(key);
        }
        Ok(Self { ids })
    }

    /// Whether the token (or certificate) with this id is revoked.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

/// The interceptor that establishes the [`Caller`] of every request.
#[derive(Clone)]
pub struct Authenticator {
    keys: Option<TokenKeys>,
    certified: Option<CertVerifier>,
    revoked: crate::reference::Current<Revocations>,
    revoked_certificates: crate::reference::Current<Revocations>,
    /// Who the certificates of the connections name, read once per certificate rather than on
    /// every call (parsing one costs tens of microseconds).
    peers: Arc<std::sync::Mutex<HashMap<Vec<u8>, Arc<crate::pki::Identity>>>>,
}

/// The most certificates [`Authenticator`] remembers; past it, it starts again.
const PEERS_REMEMBERED: usize = 4096;

impl Authenticator {
    /// With these keys and no revocation.
    pub fn new(keys: TokenKeys) -> Self {
        Self::from_parts(Some(keys), None)
    }

    /// Taking shared-secret tokens when `keys` is set, and tokens of the CA's holders when
    /// `certified` is.
    pub fn from_parts(keys: Option<TokenKeys>, certified: Option<CertVerifier>) -> Self {
        Self {
            keys,
            certified,
            revoked: crate::reference::Current::new(Revocations::default()),
            revoked_certificates: crate::reference::Current::new(Revocations::default()),
            peers: Arc::default(),
        }
    }

    /// Who the certificate `leaf` (a connection's, checked by the TLS handshake) names.
    fn peer(&self, leaf: &[u8]) -> Result<Arc<crate::pki::Identity>, String> {
        let mut peers = self.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(id) = peers.get(leaf) {
            return Ok(id.clone());
        }
        let id = Arc::new(crate::pki::named(leaf)?);
        if peers.len() >= PEERS_REMEMBERED {
            peers.clear();
        }
        peers.insert(leaf.to_vec(), id.clone());
        Ok(id)
    }

    /// Checks a token: one signed by a holder of the centre's CA when it says `EdDSA` and a CA is
    /// configured, a shared-secret one otherwise.
    fn verify(&self, token: &str) -> Result<(Caller, String), String> {
        // A shared-secret token, the common case, is checked without reading its header twice;
        // the header is read only when that check fails.
        let shared = self.keys.as_ref().map(|k| k.verify_token(token));
        if let Some(Ok(found)) = shared {
            return Ok(found);
        }
        let eddsa = jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == Algorithm::EdDSA);
        match (&self.certified, eddsa, shared) {
            (Some(v), true, _) => {
                let (caller, jti, signer) = v.verify_token(token)?;
                if self.revoked_certificates.get().contains(&signer.serial) {
                    return Err(format!(
                        "invalid token: the certificate {} of {} was revoked by the centre",
                        signer.serial, signer.name
                    ));
                }
                Ok((caller, jti))
            }
            (None, true, _) => Err("invalid token: signed by a certificate holder, and this server trusts no CA \
                                    (auth.ca_file)"
                .into()),
            (_, false, Some(refused)) => refused,
            (_, false, None) => {
                Err("invalid token: this server takes only tokens signed by holders of the centre's CA".into())
            }
        }
    }

    /// Refusing the tokens signed with a certificate listed in `revoked` (by serial).
    pub fn with_revoked_certificates(mut self, revoked: crate::reference::Current<Revocations>) -> Self {
        self.revoked_certificates = revoked;
        self
    }

    /// Refusing the tokens listed in `revoked` (as it is when each call arrives).
    pub fn with_revocations(mut self, revoked: crate::reference::Current<Revocations>) -> Self {
        self.revoked = revoked;
        self
    }
}

impl tonic::service::Interceptor for Authenticator {
    /// Establishes the caller and, for an einfo method, refuses a call without a valid token
    /// (`UNAUTHENTICATED`) or by a role the method does not allow (`PERMISSION_DENIED`,
    /// `ROLE_NOT_ALLOWED`; [`crate::authz::POLICY`]) before any handler runs.
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let method = crate::server::RpcPath::of(&req).map(str::to_owned);
        let roles = method.as_deref().and_then(crate::authz::roles_of);
        let unauthenticated = |why: String| -> tonic::Status { ApiError::new(Reason::Unauthenticated, why).into() };
        // Over mutual TLS, the certificate of the connection: refused when revoked, and bounding
        // the jurisdiction a token may act for below.
        let connection = match req.peer_certs() {
            None => None,
            Some(certs) => {
                let leaf = certs.first().ok_or_else(|| unauthenticated("the connection has no certificate".into()))?;
                let id = self.peer(leaf).map_err(|e| unauthenticated(format!("the connection's certificate {e}")))?;
                if self.revoked_certificates.get().contains(&id.serial) {
                    return Err(unauthenticated(format!(
                        "the certificate {} of {} was revoked by the centre",
                        id.serial, id.name
                    )));
                }
                Some(id)
            }
        };
        let Some(value) = req.metadata().get("authorization") else {
            return match (&method, roles) {
                (Some(m), Some(roles)) if !roles.is_empty() => {
                    Err(unauthenticated(format!("{m} needs a bearer token")))
                }
                _ => Ok(req),
            };
        };
        let value = value.to_str().map_err(|_| unauthenticated("authorization header is not ASCII".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthenticated("authorization must be 'Bearer <token>'".into()))?;
        let (caller, jti) = self.verify(token).map_err(unauthenticated)?;
        if self.revoked.get().contains(&jti) {
            return Err(unauthenticated(format!("token {jti} was revoked by the centre")));
        }
        if let Some(id) = &connection
            && !id.acts_for(&Jurisdiction::Central)
            && !id.acts_for(&caller.jurisdiction)
        {
            let names: Vec<String> = id.acts_for.iter().map(ToString::to_string).collect();
            return Err(ApiError::new(
                Reason::NotYourJurisdiction,
                format!(
                    "the token acts for {}, and this connection's certificate ({}, serial {}) acts only for {}",
                    caller.jurisdiction,
                    id.name,
                    id.serial,
                    names.join(", ")
                ),
            )
            .into());
        }
        if let (Some(m), Some(roles)) = (&method, roles)
            && !roles.is_empty()
            && !roles.contains(&caller.role)
        {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let name = m.rsplit('/').next().unwrap_or(m);
            return Err(ApiError::new(
                Reason::RoleNotAllowed,
                format!("role {} may not call {name}; {} may (docs/roles.md)", caller.role, allowed.join(", ")),
            )
            .into());
        }
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// The caller of a request, or `UNAUTHENTICATED`.
pub fn caller<T>(req: &tonic::Request<T>) -> ApiResult<Caller> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::new(Reason::Unauthenticated, "a bearer token is required"))
}

/// Adds `authorization: Bearer <token>` to outgoing requests.
#[derive(Clone)]
pub struct BearerToken(pub tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    /// From a token string.
    pub fn new(token: &str) -> anyhow::Result<Self> {
        Ok(Self(format!("Bearer {token}").parse()?))
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        crate::trace_context::inject_current(req.metadata_mut());
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(&[7u8; 32]).unwrap()
    }

    #[test]
    fn a_token_round_trips_to_the_same_caller() {
        let c = Caller {
            subject: "op1".into(),
            role: Role::Operator,
            jurisdiction: Jurisdiction::parse("provinces/2008-01").unwrap(),
        };
        let t = keys().issue(&c, Duration::from_secs(60)).unwrap();
        assert_eq!(keys().verify(&t).unwrap(), c);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let c = Caller {
            subject: "op1".into(),
            role: Role::Operator,
            jurisdiction: Jurisdiction::parse("provinces/2008-01").unwrap(),
        };
        let t = TokenKeys::from_secret(&[8u8; 32]).unwrap().issue(&c, Duration::from_secs(60)).unwrap();
        let mut req = tonic::Request::new(());
        req.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
        let err = Authenticator::new(keys()).call(req).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    /// A CA, a node acting for 01 and 79 and the gateway acting for the centre, issued now.
    fn federation() -> (crate::pki::Issued, CertIssuer, CertIssuer, CertVerifier) {
        let now = crate::clock::SystemClock.now();
        let ca = crate::pki::init_ca("einfo centre CA", now - chrono::Duration::days(1), 3650).unwrap();
        let hn = Jurisdiction::parse("provinces/2008-01").unwrap();
        let hcm = Jurisdiction::parse("provinces/2008-79").unwrap();
        let issuer = |name: &str, acts_for: &[Jurisdiction]| {
            let held =
                crate::pki::issue(&ca.cert_pem, &ca.key_pem, name, acts_for, &[], now - chrono::Duration::hours(1), 30)
                    .unwrap();
            CertIssuer::new(&held.key_pem, &held.cert_pem, &ca.cert_pem, now).unwrap()
        };
        let node = issuer("node-1", &[hn, hcm]);
        let gateway = issuer("gateway", &[Jurisdiction::Central]);
        let verifier = CertVerifier::new(&ca.cert_pem, crate::clock::system()).unwrap();
        (ca, node, gateway, verifier)
    }

    fn caller(role: Role, j: &str) -> Caller {
        Caller { subject: "someone".into(), role, jurisdiction: Jurisdiction::parse(j).unwrap() }
    }

    #[test]
    fn a_node_signs_for_the_provinces_its_certificate_names_and_the_centre_for_central_roles() {
        let (_, node, gateway, verifier) = federation();
        let t = node.issue(&caller(Role::Operator, "provinces/2008-79"), Duration::from_secs(60)).unwrap();
        let (c, jti, signer) = verifier.verify_token(&t).unwrap();
        assert_eq!(c, caller(Role::Operator, "provinces/2008-79"));
        assert!(!jti.is_empty());
        assert_eq!(signer.name, "node-1");
        let t = gateway.issue(&caller(Role::CentralAdmin, "central"), Duration::from_secs(60)).unwrap();
        assert_eq!(verifier.verify_token(&t).unwrap().0.role, Role::CentralAdmin);
        // A node cannot sign for another province or for the centre.
        let e = node.issue(&caller(Role::Operator, "provinces/2008-02"), Duration::from_secs(60)).unwrap_err();
        assert!(e.to_string().contains("signs only for provinces/2008-01, provinces/2008-79"), "{e}");
        assert!(node.issue(&caller(Role::CentralAdmin, "central"), Duration::from_secs(60)).is_err());
        assert!(gateway.issue(&caller(Role::Operator, "provinces/2008-01"), Duration::from_secs(60)).is_err());
    }

    #[test]
    fn a_token_a_node_forges_for_another_province_or_the_centre_is_refused() {
        let (_, node, _, verifier) = federation();
        let now = crate::clock::SystemClock.now().timestamp() as u64;
        for (role, j) in [(Role::Operator, "provinces/2008-02"), (Role::CentralAdmin, "central")] {
            // Signed with the node's own key, bypassing the issuer's check.
            let forged = node.sign(&claims_of(&caller(role, j), now, now + 60)).unwrap();
            let e = verifier.verify_token(&forged).unwrap_err();
            assert!(e.contains("signed by node-1, which does not act for"), "{e}");
        }
    }

    #[test]
    fn a_token_of_another_ca_an_expired_certificate_or_a_shared_secret_is_refused() {
        let (_, node, _, verifier) = federation();
        let (_, other, _, _) = federation();
        let t = other.issue(&caller(Role::Operator, "provinces/2008-01"), Duration::from_secs(60)).unwrap();
        let e = verifier.verify_token(&t).unwrap_err();
        assert!(e.contains("not issued by the centre's CA"), "{e}");
        let t = node.issue(&caller(Role::Operator, "provinces/2008-01"), Duration::from_secs(60)).unwrap();
        let later = crate::clock::ManualClock::at(crate::clock::SystemClock.now() + chrono::Duration::days(40));
        let expired = CertVerifier { clock: later, ..verifier.clone() };
        let e = expired.verify_token(&t).unwrap_err();
        assert!(e.contains("outside its validity"), "{e}");
        let hs = keys().issue(&caller(Role::Operator, "provinces/2008-01"), Duration::from_secs(60)).unwrap();
        let e = verifier.verify_token(&hs).unwrap_err();
        assert!(e.contains("not EdDSA"), "{e}");
    }

    #[test]
    fn a_province_writes_only_its_own_jurisdiction() {
        let hn = Jurisdiction::parse("provinces/2008-01").unwrap();
        let hcm = Jurisdiction::parse("provinces/2008-79").unwrap();
        let c = Caller { subject: "op1".into(), role: Role::Operator, jurisdiction: hn };
        assert!(c.authorize_write(&hn).is_ok());
        assert_eq!(c.authorize_write(&hcm).unwrap_err().reason, Reason::NotYourJurisdiction);
    }
}
