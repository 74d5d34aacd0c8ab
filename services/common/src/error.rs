//! The one table of einfo's error reasons and the gRPC code each maps to.
//!
//! Every failure a caller can act on is an [`ApiError`] with a [`Reason`]; the reason decides the
//! `tonic::Code` in exactly one place ([`Reason::code`]) and travels as a `google.rpc.ErrorInfo`
//! (domain [`ERROR_DOMAIN`]) so that two causes sharing a code stay distinguishable.
//! `INVALID_ARGUMENT` always carries `google.rpc.BadRequest` field violations. Internal failures
//! are logged once, with their cause chain, and reach the caller as a plain message.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use tonic::Code;
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// `google.rpc.ErrorInfo.domain` of every einfo error.
pub const ERROR_DOMAIN: &str = "einfo";

macro_rules! reasons {
    ($($variant:ident => $code:ident, $name:literal, $doc:literal;)*) => {
        /// Why a call failed: one row per cause, each with its gRPC code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $(#[doc = $doc] $variant,)*
        }

        impl Reason {
            /// The gRPC code of this reason.
            pub fn code(self) -> Code {
                match self { $(Reason::$variant => Code::$code,)* }
            }
            /// The `ErrorInfo.reason` string.
            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $name,)* }
            }
            /// Every reason, for documentation and tests.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];
        }
    };
}

reasons! {
    FieldInvalid => InvalidArgument, "FIELD_INVALID", "A request field is malformed or breaks a rule (see BadRequest).";
    MalformedMessage => InvalidArgument, "MALFORMED_MESSAGE", "The request is not a valid protobuf message of its type (truncated, or bytes of another kind).";
    WrongScheme => InvalidArgument, "WRONG_SCHEME", "A jurisdiction of another province scheme than the node's.";
    PageTokenMismatch => InvalidArgument, "PAGE_TOKEN_MISMATCH", "A page token issued for another query.";
    NotFound => NotFound, "NOT_FOUND", "The named resource does not exist.";
    JurisdictionNotHosted => NotFound, "JURISDICTION_NOT_HOSTED", "The province exists but this node does not host it.";
    AlreadyExists => AlreadyExists, "ALREADY_EXISTS", "A resource with this identity exists.";
    DomainTaken => AlreadyExists, "DOMAIN_TAKEN", "Another site of the jurisdiction holds the domain.";
    StaleEtag => Aborted, "STALE_ETAG", "The etag sent is not the current one: read again, then retry.";
    ConcurrentRequest => Aborted, "CONCURRENT_REQUEST", "Another request with the same request_id is being processed: retry.";
    RequestIdReused => FailedPrecondition, "REQUEST_ID_REUSED", "The request_id was used before with a different request body.";
    HistoryMismatch => FailedPrecondition, "HISTORY_MISMATCH", "The reader's cursor hash differs from this node's log: restored or forked history.";
    InvalidState => FailedPrecondition, "INVALID_STATE", "The resource's state does not allow this operation.";
    Voided => FailedPrecondition, "VOIDED", "The resource was voided.";
    Locked => FailedPrecondition, "LOCKED", "The report is past its lock time and no exception reopened it.";
    PdfUnavailable => FailedPrecondition, "PDF_UNAVAILABLE", "The node cannot make the PDF: LibreOffice (`reporting.office_command`) is missing or failed; the XLSX export is the same document.";
    NotYourJurisdiction => PermissionDenied, "NOT_YOUR_JURISDICTION", "The caller acts for another jurisdiction.";
    RoleNotAllowed => PermissionDenied, "ROLE_NOT_ALLOWED", "The caller's role may not do this.";
    Unauthenticated => Unauthenticated, "UNAUTHENTICATED", "No valid bearer token.";
    Unavailable => Unavailable, "UNAVAILABLE", "A dependency is unreachable: retry later.";
    NotReady => Unavailable, "NOT_READY", "The server is starting and its migrations have not finished: retry after the RetryInfo delay.";
    ServiceNotRun => Unimplemented, "SERVICE_NOT_RUN", "This process does not run the service of that log (e.g. a node running registry alone asked for an inspection log).";
    JurisdictionsUnavailable => Unavailable, "JURISDICTIONS_UNAVAILABLE", "A STRICT national query lacks jurisdictions that are unreachable, in alarm or stale; ErrorInfo metadata `jurisdictions` names them.";
    CallerLimit => ResourceExhausted, "CALLER_LIMIT", "The caller has too many streams or calls open, or starts calls faster than its rate; ErrorInfo metadata `limit` says which (`streams`, `calls`, `rate`); retry after the RetryInfo delay.";
    Internal => Internal, "INTERNAL", "A fault on the server; it has been logged.";
}

/// One field violation: the field path (`site.owner.tax_code`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field, dotted, with `[i]` for list items.
    pub field: String,
    /// What is wrong, for a person.
    pub description: String,
}

/// A failure with its reason, a message and, for invalid arguments, the fields at fault.
#[derive(Debug)]
pub struct ApiError {
    /// Why.
    pub reason: Reason,
    /// For a person.
    pub message: String,
    /// Field violations (non-empty for `INVALID_ARGUMENT`).
    pub violations: Vec<Violation>,
    /// Cause of an internal error; logged, never sent.
    pub source: Option<anyhow::Error>,
    /// Sent as `ErrorInfo.metadata` (e.g. the jurisdictions a national query lacks).
    pub metadata: BTreeMap<String, String>,
    /// Sent as `google.rpc.RetryInfo`: when the caller may try again.
    pub retry_delay: Option<std::time::Duration>,
}

/// Result of an einfo operation.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A failure of the given reason.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            violations: Vec::new(),
            source: None,
            metadata: BTreeMap::new(),
            retry_delay: None,
        }
    }

    /// `INVALID_ARGUMENT` for one field.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::fields(vec![Violation { field: field.into(), description: description.into() }])
    }

    /// `INVALID_ARGUMENT` for several fields.
    pub fn fields(violations: Vec<Violation>) -> Self {
        let message =
            violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ");
        Self {
            reason: Reason::FieldInvalid,
            message,
            violations,
            source: None,
            metadata: BTreeMap::new(),
            retry_delay: None,
        }
    }

    /// An `INVALID_ARGUMENT` of a specific reason (e.g. `WrongScheme`) naming one field.
    pub fn field_with(reason: Reason, field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut e = Self::field(field, description);
        e.reason = reason;
        e
    }

    /// `NOT_FOUND` for a resource name.
    pub fn not_found(name: impl fmt::Display) -> Self {
        Self::new(Reason::NotFound, format!("{name} not found"))
    }

    /// An internal failure; the cause is logged, not sent.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self {
            reason: Reason::Internal,
            message: "internal error".into(),
            violations: Vec::new(),
            source: Some(source.into()),
            metadata: BTreeMap::new(),
            retry_delay: None,
        }
    }

    /// Adds an `ErrorInfo.metadata` entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Adds a `RetryInfo` delay.
    pub fn with_retry_delay(mut self, delay: std::time::Duration) -> Self {
        self.retry_delay = Some(delay);
        self
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.reason.code()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.message)?;
        if let Some(s) = &self.source {
            write!(f, " ({s:#})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::internal(e)
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        if let Some(source) = &e.source {
            tracing::error!(reason = e.reason.as_str(), error = format!("{source:#}"), "internal error");
        }
        let code = e.code();
        let mut details = ErrorDetails::new();
        details.set_error_info(e.reason.as_str(), ERROR_DOMAIN, e.metadata.into_iter().collect::<HashMap<_, _>>());
        if let Some(delay) = e.retry_delay {
            details.set_retry_info(Some(delay));
        }
        if !e.violations.is_empty() {
            details.set_bad_request(
                e.violations
                    .iter()
                    .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                    .collect::<Vec<_>>(),
            );
        }
        tonic::Status::with_error_details(code, e.message, details)
    }
}

/// The einfo reason an error status carries (its `ErrorInfo` of domain [`ERROR_DOMAIN`]).
pub fn reason_of(status: &tonic::Status) -> Option<Reason> {
    let info = status.get_details_error_info()?;
    if info.domain != ERROR_DOMAIN {
        return None;
    }
    Reason::ALL.iter().copied().find(|r| r.as_str() == info.reason)
}

/// Collects field violations while a request is parsed, so that all of them are reported at once.
#[derive(Default, Debug)]
pub struct Violations(Vec<Violation>, Option<Reason>);

impl Violations {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl fmt::Display) {
        self.0.push(Violation { field: field.into(), description: description.to_string() });
    }
    /// Records a violation whose cause has its own `INVALID_ARGUMENT` reason (e.g.
    /// `PAGE_TOKEN_MISMATCH`); the error then carries that reason.
    pub fn add_with(&mut self, reason: Reason, field: impl Into<String>, description: impl fmt::Display) {
        self.add(field, description);
        self.1.get_or_insert(reason);
    }
    /// Keeps the value of a parse, or records its error against `field`.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e);
                None
            }
        }
    }
    /// Ok when nothing was recorded.
    pub fn finish(self) -> ApiResult<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut e = ApiError::fields(self.0);
        if let Some(r) = self.1 {
            e.reason = r;
        }
        Err(e)
    }
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_argument_carries_field_violations_and_a_reason() {
        let status: tonic::Status = ApiError::field("site.domains[0]", "not a domain").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let d = status.get_error_details();
        let br = d.bad_request().expect("bad request");
        assert_eq!(br.field_violations[0].field, "site.domains[0]");
        assert_eq!(d.error_info().unwrap().reason, "FIELD_INVALID");
    }

    #[test]
    fn the_codec_refuses_a_malformed_message_with_a_reason_of_this_table() {
        assert_eq!(Reason::MalformedMessage.as_str(), einfo_proto::codec::MALFORMED_MESSAGE);
        assert_eq!(Reason::MalformedMessage.code(), Code::InvalidArgument);
    }

    #[test]
    fn reasons_are_unique() {
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let status: tonic::Status = ApiError::internal(anyhow::anyhow!("password=secret")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
