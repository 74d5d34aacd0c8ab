//! W3C trace context (`traceparent` / `tracestate`) on every gRPC hop.
//!
//! A request that crosses the gateway and two provincial services must show up as one trace.
//! Servers read the caller's context with [`TraceContextLayer`] (every einfo server gets it from
//! [`crate::server::serve`]); clients pass theirs on with [`TraceContextInterceptor`]. Both use
//! the global propagator that [`crate::telemetry::init`] installs, and do nothing without it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Server side: opens a `grpc.request` span per request, parented on the caller's trace.
///
/// For `tonic::transport::Server::builder().layer(TraceContextLayer)`. The span carries
/// `rpc.method` (the request path) and `otel.kind = "server"`; when the server answers
/// trailers-only (every handler error does) it also gets `rpc.grpc.status_code`, and the codes
/// that mean a server fault mark the OpenTelemetry span as an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContextService { inner }
    }
}

/// The service [`TraceContextLayer`] wraps around a server's routes.
#[derive(Clone, Debug)]
pub struct TraceContextService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for TraceContextService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let span = tracing::info_span!(
            "grpc.request",
            rpc.system = "grpc",
            rpc.method = path,
            otel.name = path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let parent = extract(request.headers());
        if parent.span().span_context().is_valid() {
            // Fails only when no OpenTelemetry layer is installed; the span is then log-only.
            let _ = span.set_parent(parent);
        }

        // Entered while the inner service is called too: interceptors (auth) run synchronously in
        // `call`, and their logs belong to this request.
        let response = span.in_scope(|| self.inner.call(request));
        let recorder = span.clone();
        Box::pin(
            async move {
                let result = response.await;
                if let Ok(response) = &result {
                    record_status(&recorder, response.headers());
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Records a trailers-only `grpc-status`; a status sent in trailers after a body is not seen here.
fn record_status(span: &tracing::Span, headers: &http::HeaderMap) {
    let Some(code) =
        headers.get("grpc-status").and_then(|value| value.to_str().ok()).and_then(|value| value.parse::<i32>().ok())
    else {
        return;
    };
    span.record("rpc.grpc.status_code", code);
    // OpenTelemetry's gRPC conventions: on the server only these codes are the server's fault;
    // NOT_FOUND, INVALID_ARGUMENT and the like are the caller's.
    let server_fault = matches!(
        tonic::Code::from_i32(code),
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    );
    if server_fault {
        span.record("otel.status_code", "error");
    }
}

/// Client side: sends the current span's trace context with every call.
///
/// `SomeClient::with_interceptor(channel, TraceContextInterceptor)`; to combine it with another
/// interceptor, call [`inject_current`] from that one instead.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        inject_current(request.metadata_mut());
        Ok(request)
    }
}

/// Writes the current `tracing` span's trace context into outgoing gRPC metadata.
pub fn inject_current(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

/// Reads a caller's trace context from HTTP headers (for gRPC metadata, pass
/// `request.metadata().as_ref()`). Without `traceparent` the context holds no valid span.
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Propagator keys and values are ASCII; anything else cannot travel as metadata.
        if let (Ok(key), Ok(value)) =
            (AsciiMetadataKey::from_bytes(key.as_bytes()), AsciiMetadataValue::try_from(value))
        {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{TraceId, TracerProvider as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tonic::service::Interceptor as _;
    use tower::{Layer as _, ServiceExt as _};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// A subscriber whose spans carry OpenTelemetry contexts; nothing is exported.
    fn subscriber_with_opentelemetry() -> impl tracing::Subscriber + Send + Sync {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let tracer = SdkTracerProvider::builder().build().tracer("trace_context tests");
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    fn trace_id_of(context: &opentelemetry::Context) -> TraceId {
        context.span().span_context().trace_id()
    }

    #[test]
    fn a_context_injected_from_a_span_is_extracted_with_the_same_trace_id() {
        tracing::subscriber::with_default(subscriber_with_opentelemetry(), || {
            let span = tracing::info_span!("client call");
            let _entered = span.enter();
            let original = trace_id_of(&span.context());
            assert_ne!(original, TraceId::INVALID, "the span has an OpenTelemetry context");

            let mut metadata = MetadataMap::new();
            inject_current(&mut metadata);
            let extracted = extract(&metadata.into_headers());

            assert!(extracted.span().span_context().is_remote());
            assert_eq!(trace_id_of(&extracted), original);
        });
    }

    #[test]
    fn the_client_interceptor_sends_the_current_trace_as_traceparent() {
        tracing::subscriber::with_default(subscriber_with_opentelemetry(), || {
            let span = tracing::info_span!("client call");
            let _entered = span.enter();

            let request = TraceContextInterceptor.call(tonic::Request::new(())).expect("the interceptor never refuses");

            let traceparent = request.metadata().get("traceparent").expect("traceparent sent").to_str().expect("ascii");
            let trace_id = trace_id_of(&span.context()).to_string();
            assert!(traceparent.contains(&trace_id), "{traceparent} carries {trace_id}");
        });
    }

    #[tokio::test]
    async fn the_server_layer_runs_the_handler_inside_the_callers_trace() {
        let _default = tracing::subscriber::set_default(subscriber_with_opentelemetry());
        let seen = Arc::new(Mutex::new(None));
        let handler = {
            let seen = Arc::clone(&seen);
            tower::service_fn(move |_request: http::Request<()>| {
                let seen = Arc::clone(&seen);
                async move {
                    *seen.lock().expect("lock") = Some(trace_id_of(&tracing::Span::current().context()));
                    Ok::<_, std::convert::Infallible>(http::Response::new(()))
                }
            })
        };
        let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let request = http::Request::builder()
            .uri("/einfo.log.v1.ChangeLogService/Read")
            .header("traceparent", format!("00-{caller_trace}-00f067aa0ba902b7-01"))
            .body(())
            .expect("request");

        TraceContextLayer.layer(handler).oneshot(request).await.expect("handler answers");

        let seen = seen.lock().expect("lock").expect("handler ran");
        assert_eq!(seen.to_string(), caller_trace);
    }
}
