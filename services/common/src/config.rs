//! Layered configuration: defaults, then a TOML file, then `EINFO_…` environment variables
//! (`__` separates levels: `EINFO_TELEMETRY__OTLP_ENDPOINT`). Typed at load; unknown keys are
//! refused so a misspelt setting fails loudly instead of being ignored. Secrets are never logged
//! (`AuthSettings`'s `Debug` hides them). Tests build [`Settings`] as values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use einfo_domain::Scheme;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::telemetry::TelemetrySettings;

/// Settings of one einfo process.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Province scheme of the node: 2008 (63 provinces, the default) or 2025 (34 provinces).
    pub scheme: Scheme,
    /// Codes of the provinces this node hosts, e.g. ["01", "79"].
    pub provinces: Vec<String>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// A second address serving only `grpc.health.v1`, in plaintext and without tokens, for
    /// Kubernetes' gRPC probes and container health checks; unset: none.
    pub health_listen: Option<SocketAddr>,
    /// Directory for the embedded SQLite database and the generated token secret.
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; unset for SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// Most connections the PostgreSQL pool opens (SQLite uses 8 readers and one writer).
    pub database_pool_size: u32,
    /// Logging and tracing.
    pub telemetry: TelemetrySettings,
    /// Bearer tokens, and the certificate that is also this process's TLS identity.
    pub auth: AuthSettings,
    /// Transport security.
    pub tls: TlsSettings,
    /// Registry service.
    pub registry: RegistrySettings,
    /// Inspection service.
    pub inspection: InspectionSettings,
    /// Reporting service.
    pub reporting: ReportingSettings,
    /// The national gateway (`einfo serve gateway`).
    pub gateway: GatewaySettings,
    /// What one server gives one message and one caller (docs/contracts.md, "Limits").
    pub limits: LimitsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            scheme: Scheme::P63,
            provinces: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            health_listen: None,
            data_dir: PathBuf::from(".einfo"),
            database_url: None,
            database_pool_size: 32,
            telemetry: TelemetrySettings::default(),
            auth: AuthSettings::default(),
            tls: TlsSettings::default(),
            registry: RegistrySettings::default(),
            inspection: InspectionSettings::default(),
            reporting: ReportingSettings::default(),
            gateway: GatewaySettings::default(),
            limits: LimitsSettings::default(),
        }
    }
}

/// Transport security ([`Settings::transport`]): mutual TLS with the certificate of `auth`
/// (`cert_file`, `key_file`, `ca_file`) unless `insecure`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// Plaintext, without certificates (`--insecure`): for a machine of one's own only. A server
    /// started so says it in a warning.
    pub insecure: bool,
    /// How often the certificate, key and CA files are re-read (also on `SIGHUP`), in seconds.
    pub reload_interval_secs: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self { insecure: false, reload_interval_secs: 60 }
    }
}

/// How a server takes and signs tokens ([`Settings::token_auth`]).
#[derive(Clone, Debug)]
pub struct TokenAuth {
    /// The shared secret, when tokens signed with it are taken.
    pub keys: Option<crate::auth::TokenKeys>,
    /// How the server signs its own calls.
    pub signer: crate::auth::Signer,
    /// The CA's holders' tokens, when taken.
    pub certified: Option<crate::auth::CertVerifier>,
}

/// Bearer-token settings.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// The HS256 secret (at least 32 bytes). If unset, `secret_file` is read; if that is unset
    /// too, `{data_dir}/token-secret` is used, created with a random secret on first start.
    pub secret: Option<String>,
    /// A file holding the secret.
    pub secret_file: Option<PathBuf>,
    /// The longest a bearer token may live, from its issue to its expiry, in hours (default 12):
    /// longer tokens are neither issued nor accepted.
    pub max_token_lifetime_hours: Option<u64>,
    /// The centre's CA certificate (PEM, `einfo pki init`): when set, the server also takes tokens
    /// signed by holders of certificates it issued, for the jurisdictions each names.
    pub ca_file: Option<PathBuf>,
    /// This server's certificate from the centre's CA (PEM, `einfo pki issue`): with `key_file`
    /// and `ca_file`, it signs its own calls with that key, and needs no shared secret.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM, PKCS #8).
    pub key_file: Option<PathBuf>,
}

impl AuthSettings {
    /// This server as a holder of the centre's CA, when `cert_file`, `key_file` and `ca_file` are
    /// set; its certificate checked at `now`.
    ///
    /// # Errors
    /// Only some of the three are set, a file cannot be read, or the certificate is not the CA's.
    pub fn holder(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Option<crate::auth::CertIssuer>> {
        let (cert, key, ca) = match (&self.cert_file, &self.key_file, &self.ca_file) {
            (None, None, _) => return Ok(None),
            (Some(c), Some(k), Some(a)) => (c, k, a),
            _ => anyhow::bail!("auth.cert_file and auth.key_file go together, with auth.ca_file"),
        };
        Ok(Some(crate::auth::CertIssuer::from_files(key, cert, ca, now)?.with_max_lifetime(self.max_token_lifetime())))
    }

    /// The verifier of certificate holders' tokens, when `ca_file` is set; certificates' validity
    /// read on `clock`.
    ///
    /// # Errors
    /// The CA file cannot be read or holds no certificate.
    pub fn cert_verifier(&self, clock: crate::clock::SharedClock) -> anyhow::Result<Option<crate::auth::CertVerifier>> {
        let Some(path) = &self.ca_file else { return Ok(None) };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read auth.ca_file {}: {e}", path.display()))?;
        Ok(Some(crate::auth::CertVerifier::new(&pem, clock)?.with_max_lifetime(self.max_token_lifetime())))
    }

    /// The longest a token may live.
    pub fn max_token_lifetime(&self) -> std::time::Duration {
        self.max_token_lifetime_hours
            .map_or(crate::auth::DEFAULT_MAX_LIFETIME, |h| std::time::Duration::from_secs(h * 3600))
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("secret_file", &self.secret_file)
            .field("max_token_lifetime_hours", &self.max_token_lifetime_hours)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// Registry settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// How often the node looks for time-driven transitions (licence expiry, end of a
    /// suspension or a trial), in milliseconds.
    pub clock_interval_ms: u64,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self { clock_interval_ms: 1000 }
    }
}

/// Inspection settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InspectionSettings {
    /// Registry to resolve sites in and to send licence measures to, e.g. `http://127.0.0.1:50051`.
    /// Unset: the node's own listener (registry runs in the same node).
    pub registry_endpoint: Option<String>,
    /// How often the outbox is looked at, in milliseconds.
    pub outbox_interval_ms: u64,
    /// How long one call to registry may take, in milliseconds.
    pub registry_timeout_ms: u64,
    /// The violation catalogue to load at start (CSV, see `services/inspection/data/README.md`);
    /// unset: the catalogue shipped with the service, then each version the centre publishes.
    /// Set, it wins over the centre's: the centre's versions are stored but not used.
    pub catalogue_file: Option<PathBuf>,
}

impl Default for InspectionSettings {
    fn default() -> Self {
        Self { registry_endpoint: None, outbox_interval_ms: 500, registry_timeout_ms: 5000, catalogue_file: None }
    }
}

/// Reporting settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportingSettings {
    /// The centre (`einfo.central.v1.CentralService`), e.g. `https://cuc.example.vn`. Every
    /// service of the process follows its reference data (violation catalogue, indicators,
    /// holidays) from there too. Unset: no campaigns are received, nothing is delivered, and the
    /// reference data is the version built in (or the last one applied before).
    pub centre_endpoint: Option<String>,
    /// The centre's Ed25519 public key (32 bytes) in hex, to verify receipts.
    pub centre_public_key_hex: Option<String>,
    /// A file holding that key in hex. With neither set, the key is fetched with GetPublicKey
    /// once and pinned.
    pub centre_public_key_file: Option<PathBuf>,
    /// How long the centre's feeds (campaigns, reference data) wait before reconnecting, in
    /// milliseconds.
    pub feed_interval_ms: u64,
    /// How often the submission outbox is looked at, in milliseconds.
    pub outbox_interval_ms: u64,
    /// How long one call to another service may take, in milliseconds.
    pub call_timeout_ms: u64,
    /// Registry to compile figures from. Unset: the node's own listener.
    pub registry_endpoint: Option<String>,
    /// Inspection to compile figures from. Unset: the node's own listener.
    pub inspection_endpoint: Option<String>,
    /// LibreOffice's command, which makes the written report's PDF from its XLSX (`soffice`,
    /// looked up on PATH, or a full path). Without it a PDF export is refused
    /// (`PDF_UNAVAILABLE`); the XLSX is the same document.
    pub office_command: PathBuf,
    /// The longest a PDF conversion may take, in seconds.
    pub office_timeout_secs: u64,
}

impl Default for ReportingSettings {
    fn default() -> Self {
        Self {
            centre_endpoint: None,
            centre_public_key_hex: None,
            centre_public_key_file: None,
            feed_interval_ms: 1000,
            outbox_interval_ms: 500,
            call_timeout_ms: 5000,
            registry_endpoint: None,
            inspection_endpoint: None,
            office_command: "soffice".into(),
            office_timeout_secs: 120,
        }
    }
}

impl ReportingSettings {
    /// The centre's public key from the settings, if configured.
    pub fn centre_public_key(&self) -> anyhow::Result<Option<[u8; 32]>> {
        let text = match (&self.centre_public_key_hex, &self.centre_public_key_file) {
            (Some(h), _) => h.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("cannot read centre public key {}: {e}", f.display()))?,
            (None, None) => return Ok(None),
        };
        let bytes = hex::decode(text.trim()).map_err(|e| anyhow::anyhow!("centre public key: {e}"))?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|_| anyhow::anyhow!("centre public key: an Ed25519 key is 32 bytes"))?;
        Ok(Some(key))
    }
}

/// The national gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// The directory file (TOML, `[endpoints]` of `"provinces/2008-01" = "http://host:port"`),
    /// loaded into the directory when the gateway starts; admins change it by RPC after that.
    pub directory_file: Option<PathBuf>,
    /// The centre's receipt signing key (created when missing); default `{data_dir}/centre.key`.
    pub signing_key_file: Option<PathBuf>,
    /// A jurisdiction not known to be in sync for longer than this is stale.
    pub max_staleness_ms: u64,
    /// First retry delay after a node could not be reached; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// How often each replicated log is verified again from its start (catches an entry
    /// altered behind the cursor); 0 turns the periodic audit off (it still runs on reconnect).
    pub audit_interval_ms: u64,
    /// Per-node timeout of live fan-out queries.
    pub fanout_timeout_ms: u64,
    /// Nodes asked at once by a fan-out. The default, 64, asks all 63 provinces in one wave, so
    /// a fan-out takes about as long as its slowest node rather than a multiple of a node's
    /// latency; a call in flight costs the gateway one HTTP/2 stream.
    pub fanout_concurrency: usize,
    /// Entries applied per transaction at most.
    pub batch_entries: usize,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            directory_file: None,
            signing_key_file: None,
            max_staleness_ms: 60_000,
            retry_initial_ms: 200,
            retry_max_ms: 10_000,
            audit_interval_ms: 600_000,
            fanout_timeout_ms: 2_000,
            fanout_concurrency: 64,
            batch_entries: 1_000,
        }
    }
}

/// What a server gives one message and one caller. A caller is a token's subject and
/// jurisdiction ([`crate::auth::Caller::scope`]); calls without a token are not counted (they are
/// refused by the handler, or are health and reflection).
///
/// The defaults leave the national gateway, one caller with many streams to a node, well inside:
/// a node hosting all 63 provinces serves it 63 × 3 follow streams plus as many audit reads at
/// most (378), and a national fan-out asks it at most 63 calls at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSettings {
    /// Largest message a server decodes or encodes, in bytes (default 32 MiB: an `ImportSites`
    /// of the 50,000 rows registry accepts at most, at 650 bytes a row on average).
    pub max_message_bytes: usize,
    /// Server streams (e.g. `StreamChanges`) one caller may have open at once.
    pub streams_per_caller: usize,
    /// Other calls one caller may have in flight at once.
    pub calls_per_caller: usize,
    /// Calls and streams one caller may start per second, sustained. The default stops a
    /// runaway client, not a busy one: a single client calling in a loop on loopback stays below.
    pub calls_per_second: u32,
    /// Calls and streams one caller may start at once after a quiet time (the bucket's size).
    pub burst: u32,
    /// A following `StreamChanges` that sent nothing for this long (no new entry, or a reader
    /// that does not read) is ended; readers reconnect from their cursor. Milliseconds.
    pub stream_idle_timeout_ms: u64,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 32 * 1024 * 1024,
            streams_per_caller: 1024,
            calls_per_caller: 256,
            calls_per_second: 5000,
            burst: 10_000,
            stream_idle_timeout_ms: 30 * 60 * 1000,
        }
    }
}

impl Settings {
    /// Defaults, then `file` if given, then the `EINFO_` environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(f) = file {
            anyhow::ensure!(f.exists(), "configuration file {} does not exist", f.display());
            fig = fig.merge(Toml::file(f));
        }
        // `EINFO_TEST_…` variables belong to the test helpers, not to a process's settings.
        fig = fig.merge(
            Env::prefixed("EINFO_")
                .filter(|k| !k.as_str().to_ascii_lowercase().starts_with("test_"))
                .split("__")
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        );
        Ok(fig.extract()?)
    }

    /// The database URL: the configured one, or SQLite under `data_dir`.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("einfo.db").display()),
        }
    }

    /// How a server takes and signs tokens: the shared secret when there is one (required unless
    /// the server holds a certificate of the centre's CA), its certificate's key for its own calls
    /// when it holds one, and the CA's holders' tokens when `auth.ca_file` is set.
    ///
    /// # Errors
    /// No secret and no certificate, or a file that cannot be read.
    pub fn token_auth(&self, clock: crate::clock::SharedClock) -> anyhow::Result<TokenAuth> {
        let holder = self.auth.holder(clock.now())?;
        let explicit = self.auth.secret.is_some() || self.auth.secret_file.is_some();
        let keys = match self.token_secret() {
            Ok(secret) => {
                Some(crate::auth::TokenKeys::from_secret(&secret)?.with_max_lifetime(self.auth.max_token_lifetime()))
            }
            Err(_) if holder.is_some() && !explicit => None,
            Err(e) => return Err(e),
        };
        let signer = match (&holder, &keys) {
            (Some(h), _) => crate::auth::Signer::Holder(h.clone()),
            (None, Some(k)) => crate::auth::Signer::Secret(k.clone()),
            (None, None) => anyhow::bail!("no token secret and no certificate to sign with"),
        };
        Ok(TokenAuth { keys, signer, certified: self.auth.cert_verifier(clock)? })
    }

    /// The transport: mutual TLS with the certificate of `auth`, plaintext when `tls.insecure`.
    ///
    /// # Errors
    /// Not insecure and no certificate, key and CA configured, or files that do not make a valid
    /// identity of the CA.
    pub fn transport(&self, clock: crate::clock::SharedClock) -> anyhow::Result<crate::tls::Transport> {
        if self.tls.insecure {
            return Ok(crate::tls::Transport::Insecure);
        }
        match (&self.auth.ca_file, &self.auth.cert_file, &self.auth.key_file) {
            (Some(ca), Some(cert), Some(key)) => Ok(crate::tls::Transport::Tls(
                crate::tls::Tls::load(
                    crate::tls::TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() },
                    clock,
                )?
                .with_reload_every(std::time::Duration::from_secs(self.tls.reload_interval_secs)),
            )),
            _ => anyhow::bail!(
                "no TLS identity: set auth.cert_file, auth.key_file and auth.ca_file (EINFO_AUTH__CERT_FILE, …; \
                 `einfo pki issue` makes them), or run with --insecure (tls.insecure) for plaintext"
            ),
        }
    }

    /// Reads the token secret: `auth.secret`, else `auth.secret_file`, else `token-secret` in
    /// the data directory (where `einfo up` writes one). It is never created here: a mistyped
    /// `--data-dir` would otherwise yield a new secret that no server shares, with no word why.
    pub fn token_secret(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(s) = &self.auth.secret {
            return Ok(s.as_bytes().to_vec());
        }
        let path = self.auth.secret_file.clone().unwrap_or_else(|| self.data_dir.join("token-secret"));
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(s.trim().as_bytes().to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.auth.secret_file.is_none() => {
                Err(anyhow::anyhow!(
                    "no token secret: {} does not exist. Set auth.secret_file (EINFO_AUTH__SECRET_FILE) to the \
                     secret the servers share, or check --data-dir ({}); `einfo up` writes one in its data directory",
                    path.display(),
                    self.data_dir.display()
                ))
            }
            Err(e) => Err(anyhow::anyhow!("cannot read token secret {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own signature
    fn the_environment_overrides_the_file_and_unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "einfo.toml",
                "scheme = \"2025\"\nprovinces = [\"01\"]\n[registry]\nclock_interval_ms = 50\n",
            )?;
            jail.set_env("EINFO_REGISTRY__CLOCK_INTERVAL_MS", "70");
            jail.set_env("EINFO_TEST_DATABASE_URL", "postgres://ignored");
            let s = Settings::load(Some(Path::new("einfo.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.scheme, Scheme::P34);
            assert_eq!(s.registry.clock_interval_ms, 70);
            jail.create_file("bad.toml", "sheme = \"2025\"\n")?;
            assert!(Settings::load(Some(Path::new("bad.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = AuthSettings {
            secret: Some("hunter2hunter2hunter2hunter2hunter2".into()),
            secret_file: None,
            max_token_lifetime_hours: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
