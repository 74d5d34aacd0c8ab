//! Per-caller limits, as a tower layer: how many server streams and how many other calls one
//! caller may have open at once, and how fast it may start them (a token bucket read on the
//! injected [`Clock`](crate::clock::Clock)). A caller is a token's subject and jurisdiction
//! ([`Caller::scope`]); requests without a [`Caller`] (health, reflection, calls the handler will
//! refuse) pass uncounted.
//!
//! Over a limit the call is answered `RESOURCE_EXHAUSTED` (reason `CALLER_LIMIT`, `ErrorInfo`
//! metadata `limit` = `streams`, `calls` or `rate`) with a `RetryInfo` delay, before any handler
//! runs. A call holds its place until its response body is dropped, so a stream counts for as
//! long as it is open.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use einfo_proto::methods;
use tonic::body::Body;

use crate::auth::Caller;
use crate::clock::SharedClock;
use crate::config::LimitsSettings;
use crate::error::{ApiError, Reason};

/// The server-streaming methods: they count against `streams_per_caller`, every other call
/// against `calls_per_caller`.
pub const STREAMING_METHODS: &[&str] = &[
    methods::log::change_log_service::STREAM_CHANGES,
    methods::central::central_service::STREAM_FEED,
    methods::central::central_service::STREAM_REFERENCE_DATA,
    methods::gateway::national_service::WATCH_NATIONAL_SUMMARY,
];

/// How long a caller over a concurrency limit is told to wait: a stream or call of its own must
/// end first, which the server cannot foresee.
pub const CONCURRENCY_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Callers remembered before those with nothing open and a full bucket are forgotten.
const PRUNE_ABOVE: usize = 4096;

/// The limits and what each caller uses of them; cheap to clone (shared).
#[derive(Clone)]
pub struct CallerLimits(Arc<Shared>);

struct Shared {
    settings: LimitsSettings,
    clock: SharedClock,
    callers: Mutex<HashMap<String, Arc<Usage>>>,
}

struct Usage {
    streams: AtomicUsize,
    calls: AtomicUsize,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// Why a call was refused, with how long to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Too many streams open.
    Streams,
    /// Too many calls in flight.
    Calls,
    /// Calls started faster than the rate; a token comes back after the delay.
    Rate(Duration),
}

impl Refusal {
    fn into_error(self, settings: &LimitsSettings) -> ApiError {
        let (limit, message, delay) = match self {
            Refusal::Streams => (
                "streams",
                format!("the caller has {} streams open, the most it may", settings.streams_per_caller),
                CONCURRENCY_RETRY_DELAY,
            ),
            Refusal::Calls => (
                "calls",
                format!("the caller has {} calls in flight, the most it may", settings.calls_per_caller),
                CONCURRENCY_RETRY_DELAY,
            ),
            Refusal::Rate(delay) => (
                "rate",
                format!(
                    "the caller starts calls faster than {} a second (bursts of {})",
                    settings.calls_per_second, settings.burst
                ),
                delay,
            ),
        };
        ApiError::new(Reason::CallerLimit, message).with_metadata("limit", limit).with_retry_delay(delay)
    }
}

/// A place held by one call; given back when dropped.
pub struct Permit {
    usage: Arc<Usage>,
    stream: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let counter = if self.stream { &self.usage.streams } else { &self.usage.calls };
        counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CallerLimits {
    /// These limits, with buckets refilled by `clock`.
    pub fn new(settings: LimitsSettings, clock: SharedClock) -> Self {
        Self(Arc::new(Shared { settings, clock, callers: Mutex::new(HashMap::new()) }))
    }

    /// The settings.
    pub fn settings(&self) -> &LimitsSettings {
        &self.0.settings
    }

    /// Admits one call of `caller` (a stream when `stream`), or says why not.
    ///
    /// # Errors
    /// The limit the call would break.
    pub fn admit(&self, caller: &Caller, stream: bool) -> Result<Permit, Refusal> {
        let s = &self.0.settings;
        let usage = self.usage(&caller.scope());
        let (counter, cap, refusal) = if stream {
            (&usage.streams, s.streams_per_caller, Refusal::Streams)
        } else {
            (&usage.calls, s.calls_per_caller, Refusal::Calls)
        };
        if counter.fetch_add(1, Ordering::AcqRel) >= cap {
            counter.fetch_sub(1, Ordering::AcqRel);
            return Err(refusal);
        }
        let permit = Permit { usage: usage.clone(), stream };
        self.take_token(&usage)?;
        Ok(permit)
    }

    fn usage(&self, scope: &str) -> Arc<Usage> {
        let mut callers = self.0.callers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = callers.get(scope) {
            return u.clone();
        }
        if callers.len() >= PRUNE_ABOVE {
            let now = self.0.clock.now();
            callers.retain(|_, u| Arc::strong_count(u) > 1 || !self.refilled(u, now));
        }
        let bucket = Bucket { tokens: f64::from(self.0.settings.burst), at: self.0.clock.now() };
        let u =
            Arc::new(Usage { streams: AtomicUsize::new(0), calls: AtomicUsize::new(0), bucket: Mutex::new(bucket) });
        callers.insert(scope.to_owned(), u.clone());
        u
    }

    /// Whether a caller's bucket would be full now (forgetting it loses nothing).
    fn refilled(&self, u: &Usage, now: DateTime<Utc>) -> bool {
        let b = u.bucket.lock().unwrap_or_else(|p| p.into_inner());
        self.tokens_at(&b, now) >= f64::from(self.0.settings.burst)
    }

    fn tokens_at(&self, b: &Bucket, now: DateTime<Utc>) -> f64 {
        let s = &self.0.settings;
        let elapsed = (now - b.at).to_std().unwrap_or_default().as_secs_f64();
        (b.tokens + elapsed * f64::from(s.calls_per_second)).min(f64::from(s.burst))
    }

    fn take_token(&self, usage: &Usage) -> Result<(), Refusal> {
        let now = self.0.clock.now();
        let mut b = usage.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let tokens = self.tokens_at(&b, now);
        // A clock set back must not give tokens twice: refill from the later instant only.
        b.at = b.at.max(now);
        if tokens >= 1.0 {
            b.tokens = tokens - 1.0;
            return Ok(());
        }
        b.tokens = tokens;
        let rate = f64::from(self.0.settings.calls_per_second.max(1));
        let wait = Duration::from_secs_f64((1.0 - tokens) / rate).max(Duration::from_millis(1));
        // Whole milliseconds, rounded up, so that a caller waiting that long finds a token.
        Err(Refusal::Rate(Duration::from_millis(
            u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX),
        )))
    }
}

/// The layer: put it inside the interceptor that establishes the [`Caller`].
#[derive(Clone)]
pub struct CallerLimitsLayer(CallerLimits);

impl CallerLimitsLayer {
    /// With these limits.
    pub fn new(limits: CallerLimits) -> Self {
        Self(limits)
    }
}

impl<S> tower::Layer<S> for CallerLimitsLayer {
    type Service = CallerLimitsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CallerLimitsService { limits: self.0.clone(), inner }
    }
}

/// The service of [`CallerLimitsLayer`].
#[derive(Clone)]
pub struct CallerLimitsService<S> {
    limits: CallerLimits,
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for CallerLimitsService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: http_body::Body<Data = bytes_of::Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let permit = match request.extensions().get::<Caller>() {
            None => None,
            Some(caller) => {
                let stream = STREAMING_METHODS.contains(&request.uri().path());
                match self.limits.admit(caller, stream) {
                    Ok(p) => Some(p),
                    Err(refusal) => {
                        tracing::debug!(caller = %caller.scope(), ?refusal, path = request.uri().path(), "call refused: caller limit");
                        let status: tonic::Status = refusal.into_error(self.limits.settings()).into();
                        return Box::pin(std::future::ready(Ok(status.into_http::<Body>())));
                    }
                }
            }
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|body| match permit {
                None => Body::new(body),
                Some(permit) => Body::new(Held { inner: Body::new(body), _permit: permit }),
            }))
        })
    }
}

/// `tonic`'s `Bytes` (the data type of its bodies), named without a direct dependency on `bytes`.
mod bytes_of {
    pub use tonic::codegen::Bytes;
}

/// A response body that holds its call's [`Permit`] until it is dropped.
struct Held {
    inner: Body,
    _permit: Permit,
}

impl http_body::Body for Held {
    type Data = bytes_of::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use einfo_domain::Jurisdiction;

    use super::*;
    use crate::auth::Role;
    use crate::clock::ManualClock;

    fn settings() -> LimitsSettings {
        LimitsSettings {
            streams_per_caller: 2,
            calls_per_caller: 3,
            calls_per_second: 10,
            burst: 4,
            ..Default::default()
        }
    }

    fn caller(subject: &str) -> Caller {
        Caller {
            subject: subject.into(),
            role: Role::Operator,
            jurisdiction: Jurisdiction::parse("provinces/2008-01").expect("jurisdiction"),
        }
    }

    #[test]
    fn streams_and_calls_are_capped_per_caller_and_a_closed_one_frees_its_place() {
        let limits = CallerLimits::new(settings(), ManualClock::starting_now());
        let a = caller("a");
        let s1 = limits.admit(&a, true).expect("first stream");
        let _s2 = limits.admit(&a, true).expect("second stream");
        assert_eq!(limits.admit(&a, true).err(), Some(Refusal::Streams));
        assert!(limits.admit(&caller("b"), true).is_ok(), "another caller has its own count");
        assert!(limits.admit(&a, false).is_ok(), "calls are counted apart from streams");
        drop(s1);
        assert!(limits.admit(&a, true).is_ok(), "a closed stream gives its place back");
    }

    #[test]
    fn the_rate_refills_with_the_clock_and_says_when_a_token_comes_back() {
        let clock = ManualClock::starting_now();
        let limits = CallerLimits::new(settings(), clock.clone());
        let a = caller("a");
        for i in 0..4 {
            drop(limits.admit(&a, false).unwrap_or_else(|e| panic!("call {i} of the burst: {e:?}")));
        }
        assert_eq!(limits.admit(&a, false).err(), Some(Refusal::Rate(Duration::from_millis(100))));
        clock.advance(chrono::Duration::milliseconds(100));
        assert!(limits.admit(&a, false).is_ok(), "one token back after 1/rate");
        assert!(limits.admit(&a, false).is_err());
        clock.advance(chrono::Duration::seconds(60));
        for _ in 0..4 {
            assert!(limits.admit(&a, false).is_ok(), "the bucket refills to the burst, no further");
        }
        assert!(limits.admit(&a, false).is_err());
    }
}
