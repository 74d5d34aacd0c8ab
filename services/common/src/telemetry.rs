//! Telemetry set up in one function, so every einfo process logs and traces the same way.
//!
//! [`init`] installs the global `tracing` subscriber (human or JSON log lines on stderr, filtered by
//! `RUST_LOG` or [`TelemetrySettings::log_filter`]), an OpenTelemetry layer, and the W3C
//! `traceparent` propagator used by [`crate::trace_context`].
//!
//! The OpenTelemetry layer is installed even when no collector is configured: without it a
//! `tracing` span carries no OpenTelemetry context, so a service could not pass an incoming trace
//! on to the services it calls. Spans are exported (OTLP over gRPC) only when
//! [`TelemetrySettings::otlp_endpoint`] is set; otherwise they are dropped when they end.

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

/// How long one OTLP export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`TelemetryGuard`]'s drop waits for the last spans to leave; a collector that is
/// down must not keep a stopping service alive.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// Logging and tracing settings, part of every service's configuration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `tracing_subscriber::EnvFilter` directives, e.g. `info,einfo_registry=debug`.
    /// `RUST_LOG`, when set and non-empty, takes precedence.
    pub log_filter: String,
    /// One JSON object per log line instead of human-readable text.
    pub json_logs: bool,
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`. Spans are exported only when set.
    pub otlp_endpoint: Option<String>,
    /// A file the logs are appended to, by `log_filter`; the terminal (standard error) then shows
    /// warnings and errors only. Unset: every log line goes to standard error.
    pub log_file: Option<std::path::PathBuf>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { log_filter: "info".to_owned(), json_logs: false, otlp_endpoint: None, log_file: None }
    }
}

/// Keeps trace export alive; dropping it flushes the spans still buffered and stops the exporter,
/// waiting at most a few seconds. Hold it in `main` until the server has stopped.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    /// The provider whose exporter must be flushed on drop; `None` when nothing is exported or
    /// when an earlier [`init`] in this process already owns the subscriber.
    exporting_provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard").field("exporting", &self.exporting_provider.is_some()).finish()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.exporting_provider.take() {
            shutdown_provider(&provider);
        }
    }
}

/// Flushes and stops `provider` within [`SHUTDOWN_TIMEOUT`].
///
/// The batch processor exports from its own thread, but the tonic exporter's connection is driven
/// by the tokio runtime. On a multi-thread runtime `block_in_place` lets the other workers keep
/// driving it while this thread waits; on a current-thread runtime the export cannot progress
/// while we block, so the wait simply ends at the timeout and the last spans are lost.
fn shutdown_provider(provider: &SdkTracerProvider) {
    let shutdown = || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
    let result = match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(shutdown)
        }
        _ => shutdown(),
    };
    if let Err(error) = result {
        // The subscriber may already be gone at process exit; stderr always works.
        eprintln!("einfo telemetry: trace exporter shutdown failed: {error}");
    }
}

/// Installs the global subscriber and the global W3C trace-context propagator.
///
/// Must run inside a tokio runtime when `otlp_endpoint` is set (the exporter's channel is created
/// on it). Safe to call more than once in one process (tests): the first subscriber stays, later
/// calls only re-install the propagator and return a guard that does nothing.
///
/// # Errors
/// An invalid filter in `RUST_LOG` or `log_filter`, or an OTLP endpoint the exporter refuses.
pub fn init(service_name: &str, settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    if tracing::dispatcher::has_been_set() {
        return Ok(TelemetryGuard { exporting_provider: None });
    }

    let filter = log_filter(settings)?;
    let provider = tracer_provider(service_name, settings)?;
    let exporting = settings.otlp_endpoint.is_some();

    // With a log file, the file takes the filtered logs and the terminal shows warnings and errors.
    let (file_layer, log_filter) = match &settings.log_file {
        None => (None, filter),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_filter(filter);
            (Some(layer), EnvFilter::new("warn"))
        }
    };
    let fmt_layer = if settings.json_logs {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(json::JsonFields)
            .event_format(json::JsonFormat)
            .with_filter(log_filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(log_filter)
            .boxed()
    };
    // The OpenTelemetry layer has its own filter, independent of the log filter: quieting the
    // logs must not drop the request spans that carry trace context from hop to hop, and the
    // debug/trace spans of hyper and h2 are not worth exporting.
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service_name.to_owned()))
        .with_filter(LevelFilter::INFO)
        .boxed();

    let installed = Registry::default().with(fmt_layer).with(file_layer).with(otel_layer).try_init().is_ok();
    if !installed {
        // Another thread won the race; our provider is unused.
        if exporting {
            shutdown_provider(&provider);
        }
        return Ok(TelemetryGuard { exporting_provider: None });
    }

    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(TelemetryGuard {
        // A provider with no exporter has nothing to flush; never shutting it down keeps trace
        // context alive for later `init` callers in the same process, which share its subscriber.
        exporting_provider: exporting.then_some(provider),
    })
}

fn log_filter(settings: &TelemetrySettings) -> anyhow::Result<EnvFilter> {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).with_context(|| format!("invalid RUST_LOG filter {directives:?}"))
        }
        _ => EnvFilter::try_new(&settings.log_filter)
            .with_context(|| format!("invalid log_filter {:?}", settings.log_filter)),
    }
}

fn tracer_provider(service_name: &str, settings: &TelemetrySettings) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let builder = match &settings.otlp_endpoint {
        Some(endpoint) => {
            anyhow::ensure!(
                tokio::runtime::Handle::try_current().is_ok(),
                "telemetry::init with an OTLP endpoint must run inside a tokio runtime"
            );
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .with_context(|| format!("cannot build the OTLP exporter for {endpoint:?}"))?;
            builder.with_batch_exporter(exporter)
        }
        None => builder,
    };
    Ok(builder.build())
}

/// JSON log lines without `tracing-subscriber`'s `json` feature (not enabled in this workspace):
/// `{"timestamp","level","target","fields":{..},"spans":[{"name",..fields}]}`.
mod json {
    use std::fmt;

    use serde_json::{Map, Value};
    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::field::RecordFields;
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
    use tracing_subscriber::registry::LookupSpan;

    /// Formats span fields as a JSON object, so [`JsonFormat`] can nest them.
    pub(super) struct JsonFields;

    /// Formats each event as one JSON object per line.
    pub(super) struct JsonFormat;

    #[derive(Default)]
    struct JsonVisitor(Map<String, Value>);

    impl Visit for JsonVisitor {
        fn record_f64(&mut self, field: &Field, value: f64) {
            self.0.insert(field.name().to_owned(), value.into());
        }
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.0.insert(field.name().to_owned(), value.into());
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0.insert(field.name().to_owned(), value.into());
        }
        fn record_bool(&mut self, field: &Field, value: bool) {
            self.0.insert(field.name().to_owned(), value.into());
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.into());
        }
        fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
            // `{:#}`-like chain: the cause is usually what an operator needs.
            let mut text = value.to_string();
            let mut source = value.source();
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            self.0.insert(field.name().to_owned(), text.into());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}").into());
        }
    }

    impl<'writer> FormatFields<'writer> for JsonFields {
        fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
            let mut visitor = JsonVisitor::default();
            fields.record(&mut visitor);
            write!(writer, "{}", Value::Object(visitor.0))
        }

        fn add_fields(
            &self,
            current: &'writer mut FormattedFields<Self>,
            fields: &tracing::span::Record<'_>,
        ) -> fmt::Result {
            let mut visitor = JsonVisitor(parse_object(&current.fields));
            fields.record(&mut visitor);
            current.fields = Value::Object(visitor.0).to_string();
            Ok(())
        }
    }

    fn parse_object(text: &str) -> Map<String, Value> {
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    impl<S> FormatEvent<S, JsonFields> for JsonFormat
    where
        S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, JsonFields>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let metadata = event.metadata();
            let mut fields = JsonVisitor::default();
            event.record(&mut fields);

            let mut line = Map::new();
            line.insert(
                "timestamp".to_owned(),
                crate::clock::Clock::now(&crate::clock::SystemClock)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .into(),
            );
            line.insert("level".to_owned(), metadata.level().as_str().into());
            line.insert("target".to_owned(), metadata.target().into());
            line.insert("fields".to_owned(), Value::Object(fields.0));
            if let Some(scope) = ctx.event_scope() {
                let spans = scope
                    .from_root()
                    .map(|span| {
                        let mut object = span
                            .extensions()
                            .get::<FormattedFields<JsonFields>>()
                            .map(|formatted| parse_object(&formatted.fields))
                            .unwrap_or_default();
                        object.insert("name".to_owned(), span.name().into());
                        Value::Object(object)
                    })
                    .collect();
                line.insert("spans".to_owned(), Value::Array(spans));
            }
            writeln!(writer, "{}", Value::Object(line))
        }
    }

    #[cfg(test)]
    mod tests {
        use std::io;
        use std::sync::{Arc, Mutex};

        use tracing_subscriber::layer::SubscriberExt as _;

        use super::*;

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);

        impl io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().expect("buffer lock").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        #[test]
        fn a_json_log_line_carries_the_event_fields_and_its_spans_fields() {
            let buffer = Buffer::default();
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || writer.clone())
                    .fmt_fields(JsonFields)
                    .event_format(JsonFormat),
            );

            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!("grpc.request", rpc.method = "/a.B/C", late = tracing::field::Empty);
                span.record("late", 7);
                let _entered = span.enter();
                tracing::warn!(province = "HN", count = 3, "registry refused");
            });

            let text = String::from_utf8(buffer.0.lock().expect("buffer lock").clone()).expect("utf-8 log");
            let line: Value = serde_json::from_str(text.trim()).expect("one JSON object");
            assert_eq!(line["level"], "WARN");
            assert_eq!(line["fields"]["message"], "registry refused");
            assert_eq!(line["fields"]["province"], "HN");
            assert_eq!(line["fields"]["count"], 3);
            assert_eq!(line["spans"][0]["name"], "grpc.request");
            assert_eq!(line["spans"][0]["rpc.method"], "/a.B/C");
            assert_eq!(line["spans"][0]["late"], 7);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use opentelemetry::trace::{Span as _, Tracer as _};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_collector_that_is_down_does_not_hold_shutdown_past_its_timeout() {
        let settings = TelemetrySettings {
            // Port 1 on loopback: nothing listens, connections are refused.
            otlp_endpoint: Some("http://127.0.0.1:1".to_owned()),
            ..TelemetrySettings::default()
        };
        let provider = tracer_provider("einfo-test", &settings).expect("provider");
        provider.tracer("test").start("unexportable").end();

        let started = Instant::now();
        shutdown_provider(&provider);

        assert!(started.elapsed() < SHUTDOWN_TIMEOUT + Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
    }

    #[test]
    fn settings_refuse_unknown_keys_and_default_to_info_text_logs() {
        let defaults: TelemetrySettings = serde_json::from_str("{}").expect("all keys optional");
        assert_eq!(defaults, TelemetrySettings::default());
        assert_eq!(defaults.log_filter, "info");
        assert!(!defaults.json_logs);
        assert!(defaults.otlp_endpoint.is_none());

        let misspelt = serde_json::from_str::<TelemetrySettings>(r#"{"otlp_endpiont":"x"}"#);
        assert!(misspelt.is_err(), "a misspelt key is refused");
    }
}
