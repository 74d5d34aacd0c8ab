//! Server assembly, so every einfo server looks the same from outside: gRPC health (serving only
//! once migrations ran), reflection for `grpcurl` listing what the server serves, W3C trace
//! context, the caller's interceptor (auth), and a graceful stop on SIGTERM.
//!
//! Until [`Readiness::set_serving`] is called, health says `NOT_SERVING` and every other call is
//! answered `UNAVAILABLE` (reason `NOT_READY`, with a `RetryInfo` delay): no service answers
//! before its migrations are done.
//!
//! ```ignore
//! let (readiness, health_service) = server::health(&[REGISTRY_SERVICE_NAME]).await;
//! let mut routes = Routes::builder();
//! routes.add_service(health_service).add_service(registry_server);
//! let routes = server::add_reflection(routes, &[REGISTRY_SERVICE_NAME])?.routes();
//! let listener = TcpListener::bind(settings.listen).await?;
//! let served = tokio::spawn(server::serve(listener, routes, auth, readiness.clone(), server::shutdown_signal()));
//! run_migrations().await?;
//! readiness.set_serving().await;
//! served.await??;
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tonic::service::{Interceptor, InterceptorLayer, Routes, RoutesBuilder};
use tonic::transport::server::TcpIncoming;
pub use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;

use crate::caller_limits::{CallerLimits, CallerLimitsLayer};
use crate::config::LimitsSettings;
use crate::error::{ApiError, Reason};
use crate::trace_context::TraceContextLayer;

/// How long in-flight calls may run after the shutdown signal. Streams that never end on their
/// own (a health `Watch`, a change-log subscription) would otherwise hold the process forever.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 pings keep idle connections through NATs and load balancers and find dead peers.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Paths that skip the interceptor given to [`serve`]: probes (Kubernetes, load balancers) carry
/// no credentials, and the schema that reflection serves is public.
const UNAUTHENTICATED_PREFIXES: &[&str] =
    &["/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"];

/// The request path (`/package.Service/Method`), put into each request's extensions by [`serve`]
/// before the interceptor runs: a tonic interceptor sees metadata and extensions but not the URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcPath(pub String);

impl RpcPath {
    /// The path of an intercepted request, if it came through [`serve`].
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&str> {
        request.extensions().get::<Self>().map(|path| path.0.as_str())
    }
}

/// How long a caller that reached a server still migrating is told to wait before retrying.
pub const NOT_READY_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Whether a server is ready: health's statuses and the gate in front of every other call.
#[derive(Clone)]
pub struct Readiness {
    reporter: HealthReporter,
    names: Arc<Vec<String>>,
    ready: Arc<AtomicBool>,
}

impl Readiness {
    /// Marks the whole server (`""`) and each of its services `SERVING`, and opens the gate.
    pub async fn set_serving(&self) {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        set_all(&self.reporter, &names, ServingStatus::Serving).await;
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Whether [`Readiness::set_serving`] was called.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// The health service and the server's [`Readiness`]. The whole server (`""`) and each of
/// `service_names` start `NOT_SERVING`; call [`Readiness::set_serving`] once migrations ran.
///
/// Async on purpose: blocking on the reporter's (tokio) lock from inside a task can spin forever
/// once the task's cooperative budget is spent, e.g. when one task starts many servers.
pub async fn health(service_names: &[&str]) -> (Readiness, HealthServer<impl Health>) {
    let (reporter, service) = tonic_health::server::health_reporter();
    set_all(&reporter, service_names, ServingStatus::NotServing).await;
    let names = Arc::new(service_names.iter().map(|n| (*n).to_owned()).collect());
    (Readiness { reporter, names, ready: Arc::new(AtomicBool::new(false)) }, service)
}

/// Serves `grpc.health.v1` alone, in plaintext and without tokens, on `listener` until `shutdown`
/// resolves: the address (`health_listen`) that Kubernetes' gRPC probes and container health
/// checks use, whatever the main address asks of its callers. It answers what the main server's
/// `health` answers (the same reporter).
///
/// # Errors
/// The server failed.
pub async fn serve_health<H: Health>(
    listener: tokio::net::TcpListener,
    health: HealthServer<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local_addr = listener.local_addr()?;
    tracing::info!(%local_addr, "health listening (plaintext)");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder().add_service(health).serve_with_incoming_shutdown(incoming, shutdown).await?;
    Ok(())
}

/// Binds `health_listen`, when set.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind_health(addr: Option<std::net::SocketAddr>) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    Ok(Some(
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind health_listen {addr}: {e}"))?,
    ))
}

async fn set_all(reporter: &HealthReporter, service_names: &[&str], status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in service_names {
        reporter.set_service_status(name, status).await;
    }
}

/// Adds server reflection, both `grpc.reflection.v1` and `v1alpha` (grpcio-reflection and older
/// grpcurl speak only v1alpha), listing what this server serves: `served` (the einfo services
/// of its routes), `grpc.health.v1` and reflection itself. The schema of every einfo service
/// stays resolvable (one descriptor set holds them all), but only the served ones are listed.
///
/// # Errors
/// A descriptor set that does not decode (a build problem, caught by this crate's tests).
pub fn add_reflection(mut routes: RoutesBuilder, served: &[&str]) -> anyhow::Result<RoutesBuilder> {
    const HEALTH: &str = "grpc.health.v1.Health";
    const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
    const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";
    let builder = || {
        let mut b = tonic_reflection::server::Builder::configure()
            // Registered by hand so that each version also lists the other one.
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(einfo_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
        for name in served.iter().copied().chain([HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA]) {
            b = b.with_service_name(name);
        }
        b
    };
    routes.add_service(builder().build_v1()?).add_service(builder().build_v1alpha()?);
    Ok(routes)
}

/// Resolves on SIGTERM (what Kubernetes and `docker stop` send) or SIGINT (ctrl-c).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// [`serve_with_limits`] with the default [`LimitsSettings`] and the system clock.
///
/// # Errors
/// A transport failure of the server itself; failed connections are only logged.
pub async fn serve<I>(
    listener: tokio::net::TcpListener,
    routes: Routes,
    interceptor: I,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    I: Interceptor + Clone + Send + Sync + 'static,
{
    let limits = CallerLimits::new(LimitsSettings::default(), crate::clock::system());
    let transport = crate::tls::Transport::Insecure;
    serve_with_drain_timeout(listener, transport, routes, interceptor, readiness, limits, shutdown, DRAIN_TIMEOUT).await
}

/// Serves `routes` on `listener` over `transport` until `shutdown` resolves, then lets in-flight
/// calls finish for at most [`DRAIN_TIMEOUT`].
///
/// Over TLS every connection is mutual TLS 1.3 with a certificate of the centre's CA, the
/// certificate files re-read while it serves ([`crate::tls`]); plaintext (`--insecure`) is said
/// in a warning at start.
///
/// Every request gets, outermost first: a `grpc.request` span parented on the caller's trace
/// ([`TraceContextLayer`]), its [`RpcPath`] in the extensions, `interceptor` — except health
/// and reflection calls, which skip it — then the per-caller `limits` ([`CallerLimitsLayer`]).
/// Connections use `TCP_NODELAY`, TCP keepalive and HTTP/2 keepalive pings. The size of a
/// message is limited where each service's server is built (`max_decoding_message_size` and
/// `max_encoding_message_size`, `limits.max_message_bytes`), not here: tonic sets it per service.
///
/// # Errors
/// A transport failure of the server itself; failed connections are only logged.
pub async fn serve_with_limits<I>(
    listener: tokio::net::TcpListener,
    transport: crate::tls::Transport,
    routes: Routes,
    interceptor: I,
    readiness: Readiness,
    limits: CallerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    I: Interceptor + Clone + Send + Sync + 'static,
{
    serve_with_drain_timeout(listener, transport, routes, interceptor, readiness, limits, shutdown, DRAIN_TIMEOUT).await
}

#[allow(clippy::too_many_arguments)]
async fn serve_with_drain_timeout<I>(
    listener: tokio::net::TcpListener,
    transport: crate::tls::Transport,
    routes: Routes,
    interceptor: I,
    readiness: Readiness,
    limits: CallerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> anyhow::Result<()>
where
    I: Interceptor + Clone + Send + Sync + 'static,
{
    let local_addr = listener.local_addr()?;
    // `serve_with_incoming_shutdown` ignores the builder's TCP options: they go on the incoming.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(TCP_KEEPALIVE));

    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    };

    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .layer(TraceContextLayer)
        .layer(tower::util::MapRequestLayer::new(|mut request: http::Request<tonic::body::Body>| {
            let path = RpcPath(request.uri().path().to_owned());
            request.extensions_mut().insert(path);
            request
        }))
        .layer(InterceptorLayer::new(ExceptUnauthenticated(UntilReady { readiness, inner: interceptor })))
        .layer(CallerLimitsLayer::new(limits))
        .add_routes(routes);
    type Served = std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;
    let (server, _watch): (Served, _) = match &transport {
        crate::tls::Transport::Tls(tls) => {
            let id = tls.identity();
            tracing::info!(%local_addr, certificate = %id.name, serial = %id.serial, "gRPC server listening, mutual TLS");
            let watch = AbortOnDrop(tls.watch());
            (Box::pin(router.serve_with_incoming_shutdown(tls.accept(incoming), signal)), Some(watch))
        }
        crate::tls::Transport::Insecure => {
            tracing::warn!(
                %local_addr,
                "gRPC server listening in PLAINTEXT (--insecure): no TLS, peers are not authenticated by certificate"
            );
            (Box::pin(router.serve_with_incoming_shutdown(incoming, signal)), None)
        }
    };
    let drain_deadline = async {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(drain_timeout).await;
        } else {
            // The server ended before any shutdown signal; let its own result decide.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result?,
        () = drain_deadline => {
            tracing::warn!(?drain_timeout, "calls still running after the drain timeout; stopping anyway");
        }
    }
    tracing::info!(%local_addr, "gRPC server stopped");
    Ok(())
}

/// Aborts a task when dropped: a task that lives only as long as what holds it.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Answers `UNAVAILABLE` (`NOT_READY`, with a retry delay) until the server is ready, then runs
/// the inner interceptor.
#[derive(Clone)]
struct UntilReady<I> {
    readiness: Readiness,
    inner: I,
}

impl<I: Interceptor> Interceptor for UntilReady<I> {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if !self.readiness.is_ready() {
            return Err(ApiError::new(Reason::NotReady, "the server is starting: its migrations have not finished")
                .with_retry_delay(NOT_READY_RETRY_DELAY)
                .into());
        }
        self.inner.call(request)
    }
}

/// Runs the inner interceptor for every path but those in [`UNAUTHENTICATED_PREFIXES`].
#[derive(Clone)]
struct ExceptUnauthenticated<I>(I);

impl<I: Interceptor> Interceptor for ExceptUnauthenticated<I> {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let exempt = RpcPath::of(&request)
            .is_some_and(|path| UNAUTHENTICATED_PREFIXES.iter().any(|prefix| path.starts_with(prefix)));
        if exempt { Ok(request) } else { self.0.call(request) }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio_stream::StreamExt as _;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    #[tokio::test]
    async fn a_call_that_never_ends_does_not_hold_shutdown_past_the_drain_timeout() {
        let (readiness, health_service) = health(&[]).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let drain_timeout = Duration::from_millis(300);
        let server = tokio::spawn(serve_with_drain_timeout(
            listener,
            crate::tls::Transport::Insecure,
            Routes::new(health_service),
            Ok::<tonic::Request<()>, tonic::Status>,
            readiness,
            CallerLimits::new(LimitsSettings::default(), crate::clock::system()),
            async {
                let _ = stopped.await;
            },
            drain_timeout,
        ));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let mut client = HealthClient::new(channel);
        // A health Watch stream only ends when the client goes away.
        let mut watch = client.watch(HealthCheckRequest { service: String::new() }).await.expect("watch").into_inner();
        watch.next().await.expect("first status").expect("status");

        let asked_to_stop = Instant::now();
        stop.send(()).expect("server still running");
        let result = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returned within the drain timeout")
            .expect("serve task did not panic");

        assert!(result.is_ok(), "{result:?}");
        assert!(asked_to_stop.elapsed() >= drain_timeout);
    }

    #[test]
    fn health_and_reflection_skip_the_interceptor_and_everything_else_goes_through_it() {
        let refuse_all = |_: tonic::Request<()>| -> Result<tonic::Request<()>, tonic::Status> {
            Err(tonic::Status::unauthenticated("no token"))
        };
        let cases = [
            ("/grpc.health.v1.Health/Check", true, "probes carry no token"),
            ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true, "schema is public"),
            ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", true, "schema is public"),
            ("/einfo.log.v1.ChangeLogService/Read", false, "einfo data needs a caller"),
            ("/grpc.health.v1.HealthX/Check", false, "a prefix match is on the whole service name"),
        ];
        for (path, passes, reason) in cases {
            let mut request = tonic::Request::new(());
            request.extensions_mut().insert(RpcPath(path.to_owned()));
            let result = ExceptUnauthenticated(refuse_all).call(request);
            assert_eq!(result.is_ok(), passes, "{path}: {reason}");
        }
        let without_path = ExceptUnauthenticated(refuse_all).call(tonic::Request::new(()));
        assert!(without_path.is_err(), "a request of unknown path is checked");
    }
}
