//! What every einfo service shares: layered configuration, telemetry, server assembly (health,
//! reflection, trace context, graceful shutdown), the error-code table, caller identity, the
//! database, the hash-chained change log with idempotent mutations, and the reference data nodes
//! follow from the centre.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod auth;
pub mod authz;
pub mod caller_limits;
pub mod changelog;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod fields;
pub mod pki;
pub mod privacy;
pub mod receipts;
pub mod reference;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod trace_context;

pub use auth::{Caller, Role};
pub use error::{ApiError, ApiResult, Reason};
