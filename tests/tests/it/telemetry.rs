//! `telemetry::init` sends spans to an OTLP/gRPC collector, and the guard flushes them on drop.
//! Its own test binary: `init` installs process-wide state.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use einfo_common::telemetry::{self, TelemetrySettings};

/// The parts of `ExportTraceServiceRequest` this test reads; prost skips the other fields.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpans {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<SpanName>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SpanName {
    #[prost(string, tag = "5")]
    name: String,
}

/// A collector that answers every export and remembers the span names it received.
#[derive(Clone, Default)]
struct FakeCollector {
    span_names: Arc<Mutex<Vec<String>>>,
}

impl tonic::server::NamedService for FakeCollector {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tower::Service<http::Request<tonic::body::Body>> for FakeCollector {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let span_names = Arc::clone(&self.span_names);
        Box::pin(async move {
            let export = tower::service_fn(move |request: tonic::Request<ExportRequest>| {
                let names = request
                    .into_inner()
                    .resource_spans
                    .into_iter()
                    .flat_map(|resource| resource.scope_spans)
                    .flat_map(|scope| scope.spans)
                    .map(|span| span.name);
                span_names.lock().expect("lock").extend(names);
                // An empty message decodes as an empty ExportTraceServiceResponse.
                std::future::ready(Ok::<_, tonic::Status>(tonic::Response::new(())))
            });
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<(), ExportRequest>::new());
            Ok(grpc.unary(export, request).await)
        })
    }
}

async fn spans_reach_the_collector_when_the_guard_is_dropped() {
    let collector = FakeCollector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("bound address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(collector.clone())
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let settings =
        TelemetrySettings { otlp_endpoint: Some(format!("http://{address}")), ..TelemetrySettings::default() };

    let guard = telemetry::init("einfo-telemetry-test", &settings).expect("first init");
    let second = telemetry::init("einfo-telemetry-test", &settings).expect("a second init is fine");
    // The second guard owns nothing: dropping it must not stop the first one's export.
    drop(second);
    tracing::info_span!("telemetry test span").in_scope(|| tracing::info!("inside the span"));
    drop(guard);

    let names = collector.span_names.lock().expect("lock").clone();
    assert!(names.iter().any(|name| name == "telemetry test span"), "exported spans: {names:?}");
}

einfo_testkit::plain_tests!(spans_reach_the_collector_when_the_guard_is_dropped,);
