//! Mutual TLS on every hop, with certificates of the centre's CA ([`crate::pki`]).
//!
//! A server holding a certificate ([`Tls`]) accepts only TLS 1.3 connections whose peer presents
//! a certificate the CA issued; a client ([`Transport::connect_lazy`]) presents its own and
//! checks that the server's names the jurisdictions it expects (the gateway expects a node's
//! certificate to act for every province the directory sends it there for). Which jurisdiction a
//! call may act for is then checked per call against the certificate of its connection
//! ([`crate::auth::Authenticator`]): a node's certificate for province 01 carries no token for
//! province 79, nor for the centre.
//!
//! The key, the certificate and the CA are read from files and re-read by [`Tls::reload`] (every
//! `tls.reload_interval_secs`, and on `SIGHUP`): a new connection uses what was read last, a
//! connection open already keeps what it was made with. Files that do not make a valid identity
//! (a key that is not the certificate's, a certificate the CA did not issue, or one out of its
//! validity) are refused with an error in the log, and the last good identity stays in use.
//!
//! Plaintext is [`Transport::Insecure`]: only when configured (`tls.insecure`, `--insecure`), and
//! said as a warning when a server starts.
//!
//! Certificates' validity is read on the injected clock, in the handshake too.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use einfo_domain::Jurisdiction;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tonic::transport::{Channel, Endpoint};

use crate::clock::SharedClock;
use crate::pki::Identity;

/// How long a peer has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files of a TLS identity.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The centre's CA certificate (PEM): the only issuer trusted for peers.
    pub ca: PathBuf,
    /// This process's certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS #8).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files of holder `name` in an `einfo pki` directory: `<name>.pem`, `<name>.key`, and the
    /// CA's `ca.pem`.
    pub fn of_holder(dir: &std::path::Path, name: &str) -> Self {
        let (cert, key) = crate::pki::paths(dir, name);
        Self { ca: crate::pki::paths(dir, "ca").0, cert, key }
    }
}

/// What the files held when they were read, and the TLS configurations made from it.
struct Material {
    read: [Vec<u8>; 3],
    identity: Identity,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

/// Certificates' validity, read on the injected clock.
#[derive(Debug)]
struct ClockTime(SharedClock);

impl rustls::time_provider::TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        let seconds = u64::try_from(self.0.now().timestamp()).ok()?;
        Some(UnixTime::since_unix_epoch(Duration::from_secs(seconds)))
    }
}

/// This process's TLS identity, reloadable. Clones share it.
#[derive(Clone)]
pub struct Tls {
    files: Arc<TlsFiles>,
    clock: SharedClock,
    reload_every: Duration,
    current: Arc<RwLock<Arc<Material>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).field("identity", &self.identity().name).finish()
    }
}

impl Tls {
    /// Reads the identity in `files`; certificates checked on `clock`.
    ///
    /// # Errors
    /// A file cannot be read, or they do not make a valid identity of the CA.
    pub fn load(files: TlsFiles, clock: SharedClock) -> anyhow::Result<Self> {
        let material = read(&files, &clock)?;
        Ok(Self {
            files: Arc::new(files),
            clock,
            reload_every: Duration::from_secs(60),
            current: Arc::new(RwLock::new(Arc::new(material))),
        })
    }

    /// Re-read by [`Tls::watch`] every `every` (at least a second; 60 s by default).
    pub fn with_reload_every(mut self, every: Duration) -> Self {
        self.reload_every = every.max(Duration::from_secs(1));
        self
    }

    fn material(&self) -> Arc<Material> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Who this process's certificate names (as last read).
    pub fn identity(&self) -> Identity {
        self.material().identity.clone()
    }

    /// Re-reads the files. Returns whether they changed (the new identity is in use from the next
    /// connection); when they did not, nothing happens.
    ///
    /// # Errors
    /// The files changed but do not make a valid identity: the last good one stays in use.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let old = self.material();
        let read_now = contents(&self.files)?;
        if read_now == old.read {
            return Ok(false);
        }
        let material = build(read_now, &self.clock)?;
        tracing::info!(
            name = %material.identity.name,
            serial = %material.identity.serial,
            not_after = %material.identity.not_after,
            "TLS certificate reloaded; new connections use it"
        );
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(material);
        Ok(true)
    }

    /// Reloads every [`Tls::with_reload_every`] and on `SIGHUP`, until the returned task is
    /// aborted. A failed reload is logged as an error and the last good identity kept.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(tls.reload_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            #[cfg(unix)]
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<()>();
                tokio::select! {
                    _ = tick.tick() => {}
                    () = hangup => tracing::info!("SIGHUP: reloading the TLS certificate"),
                }
                if let Err(error) = tls.reload() {
                    tracing::error!(error = %format!("{error:#}"), "TLS certificate not reloaded; keeping the last good one");
                }
            }
        })
    }

    /// The TLS connections accepted on `incoming` (TCP connections), each handshake run on its own
    /// so that a slow peer holds up no other. A peer refused (no certificate, another CA's, an
    /// expired one, a handshake not finished in time) is logged and dropped. The stream
    /// ends when `incoming` does or when it is dropped.
    pub fn accept<S>(
        &self,
        incoming: S,
    ) -> impl futures::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<TcpStream>>> + Send + 'static
    where
        S: futures::Stream<Item = std::io::Result<TcpStream>> + Send + 'static,
    {
        use futures::StreamExt as _;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let tls = self.clone();
        tokio::spawn(async move {
            let mut incoming = std::pin::pin!(incoming);
            loop {
                let tcp = tokio::select! {
                    () = tx.closed() => break,
                    next = incoming.next() => match next {
                        None => break,
                        Some(Ok(tcp)) => tcp,
                        Some(Err(error)) => {
                            // Out of file descriptors, say: pause rather than spin on the error.
                            tracing::warn!(%error, "cannot accept a connection");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.material().server.clone());
                let tx = tx.clone();
                tokio::spawn(async move {
                    let peer = tcp.peer_addr().ok();
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(Ok(stream)).await;
                        }
                        Ok(Err(error)) => tracing::warn!(?peer, %error, "TLS connection refused"),
                        Err(_) => tracing::warn!(?peer, "TLS handshake not finished in {HANDSHAKE_TIMEOUT:?}; dropped"),
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    /// Connects to `uri` (host and port; the scheme is ignored) over TLS, presenting this
    /// process's certificate, and checks that the server's acts for every one of `expect`.
    async fn connect(
        &self,
        uri: http::Uri,
        expect: Arc<[Jurisdiction]>,
    ) -> Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, BoxError> {
        let host = uri.host().ok_or("no host in the endpoint")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("'{host}' is no server name: {e}"))?;
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        let connector = tokio_rustls::TlsConnector::from(self.material().client.clone());
        let stream = connector.connect(name, tcp).await?;
        let leaf =
            stream.get_ref().1.peer_certificates().and_then(|c| c.first()).ok_or("the server sent no certificate")?;
        let named = crate::pki::named(leaf).map_err(|e| format!("the server's certificate {e}"))?;
        if let Some(missing) = expect.iter().find(|j| !named.acts_for(j)) {
            return Err(format!(
                "the server at {host}:{port} presents the certificate of {} (serial {}), which does not act for {missing}",
                named.name, named.serial
            )
            .into());
        }
        Ok(hyper_util::rt::TokioIo::new(stream))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn contents(files: &TlsFiles) -> anyhow::Result<[Vec<u8>; 3]> {
    let one = |path: &PathBuf, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
    };
    Ok([one(&files.ca, "the CA's certificate")?, one(&files.cert, "the certificate")?, one(&files.key, "the key")?])
}

fn read(files: &TlsFiles, clock: &SharedClock) -> anyhow::Result<Material> {
    build(contents(files)?, clock).with_context(|| format!("TLS identity {}", files.cert.display()))
}

fn build(read: [Vec<u8>; 3], clock: &SharedClock) -> anyhow::Result<Material> {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).context("not a PEM file");
    let ca = crate::pki::der_of(&text(&read[0])?).context("the CA's certificate")?;
    let cert = crate::pki::der_of(&text(&read[1])?).context("the certificate")?;
    let key = crate::pki::key_der_of(&text(&read[2])?).context("the key")?;
    let identity = crate::pki::verify(&cert, &ca, clock.now()).map_err(|e| anyhow::anyhow!("the certificate: {e}"))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let time: Arc<dyn rustls::time_provider::TimeProvider> = Arc::new(ClockTime(clock.clone()));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca)).context("the CA's certificate as a trust anchor")?;
    let roots = Arc::new(roots);
    let chain = vec![CertificateDer::from(cert)];
    let private = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.clone()));

    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .context("the client certificate verifier")?;
    let mut server = rustls::ServerConfig::builder_with_details(provider.clone(), time.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain.clone(), private())
        .context("the key is not the certificate's")?;
    server.alpn_protocols = vec![b"h2".to_vec()];

    let servers = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .context("the server certificate verifier")?;
    let mut client = rustls::ClientConfig::builder_with_details(provider, time)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(servers)
        .with_client_auth_cert(chain, private())
        .context("the key is not the certificate's")?;
    client.alpn_protocols = vec![b"h2".to_vec()];

    Ok(Material { read, identity, server: Arc::new(server), client: Arc::new(client) })
}

/// How a process talks to its peers: mutual TLS, or plaintext when configured so.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Mutual TLS with this identity.
    Tls(Tls),
    /// Plaintext (`--insecure`): no certificate on either side.
    Insecure,
}

impl Transport {
    /// A tonic endpoint for `url`: `https://` over TLS, `http://` only when insecure.
    ///
    /// # Errors
    /// A URL that does not parse, or whose scheme is not this transport's.
    pub fn endpoint(&self, url: &str) -> anyhow::Result<Endpoint> {
        let uri: http::Uri = url.parse().with_context(|| format!("'{url}' is not a URL"))?;
        match (self, uri.scheme_str()) {
            (Transport::Insecure, Some("http")) => Ok(Endpoint::from_shared(url.to_owned())?),
            (Transport::Tls(_), Some("https")) => {
                // tonic would refuse https:// without its own TLS: it gets http://, and the
                // connector given in `connect_lazy` does the TLS.
                let authority = uri.authority().with_context(|| format!("no host in '{url}'"))?;
                Ok(Endpoint::from_shared(format!("http://{authority}{}", uri.path()))?)
            }
            (Transport::Insecure, Some("https")) => anyhow::bail!(
                "'{url}' is https://, and this process runs without TLS (--insecure): use http://, or give it a \
                 certificate (auth.cert_file, auth.key_file, auth.ca_file)"
            ),
            (Transport::Tls(_), Some("http")) => anyhow::bail!(
                "'{url}' is plaintext http://, and this process uses mutual TLS: use https:// (or run every \
                 process with --insecure)"
            ),
            _ => anyhow::bail!("'{url}' is neither http:// nor https://"),
        }
    }

    /// A channel to `url`, connected on first use, its endpoint set up by `configure`; over TLS the
    /// server's certificate must act for every one of `expect`.
    ///
    /// # Errors
    /// As [`Transport::endpoint`].
    pub fn channel(
        &self,
        url: &str,
        expect: &[Jurisdiction],
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> anyhow::Result<Channel> {
        Ok(self.connect_lazy(&configure(self.endpoint(url)?), expect))
    }

    /// A channel to `endpoint` (from [`Transport::endpoint`]), connected on first use; over TLS the
    /// server's certificate must act for every one of `expect` (none: any holder of the CA).
    pub fn connect_lazy(&self, endpoint: &Endpoint, expect: &[Jurisdiction]) -> Channel {
        match self {
            Transport::Insecure => endpoint.connect_lazy(),
            Transport::Tls(tls) => endpoint.connect_with_connector_lazy(self.connector(tls, expect)),
        }
    }

    /// [`Transport::connect_lazy`], connected now.
    ///
    /// # Errors
    /// The server cannot be reached, or refused.
    pub async fn connect(
        &self,
        endpoint: &Endpoint,
        expect: &[Jurisdiction],
    ) -> Result<Channel, tonic::transport::Error> {
        match self {
            Transport::Insecure => endpoint.connect().await,
            Transport::Tls(tls) => endpoint.connect_with_connector(self.connector(tls, expect)).await,
        }
    }

    fn connector(
        &self,
        tls: &Tls,
        expect: &[Jurisdiction],
    ) -> impl tower::Service<
        http::Uri,
        Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
        Error = BoxError,
        Future: Send,
    > + Clone
    + Send
    + 'static {
        let tls = tls.clone();
        let expect: Arc<[Jurisdiction]> = expect.into();
        tower::service_fn(move |uri: http::Uri| {
            let tls = tls.clone();
            let expect = expect.clone();
            async move { tls.connect(uri, expect).await }
        })
    }

    /// `https` over TLS, `http` when insecure: the scheme of this process's own URLs.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Tls(_) => "https",
            Transport::Insecure => "http",
        }
    }
}
