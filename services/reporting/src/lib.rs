//! The province's reports to the centre (item 5 of letter 3224/BTTTT-PTTH&TTĐT): campaigns
//! followed from the centre's feed, figures compiled from registry and inspection by the rules of
//! an indicator catalogue, with provenance; overrides with a justification, narrative, frozen
//! versions, an outbox that delivers each submitted version until the centre's signed receipt
//! comes back; the written report (`document`: XLSX, PDF) and its figures (CSV).
#![forbid(unsafe_code)]

pub mod annex;
pub mod document;
pub mod export;
pub mod feed;
pub mod grpc;
pub use einfo_reference::indicators;
pub mod links;
pub mod migration;
pub mod outbox;
pub mod service;
mod store;

pub use grpc::ReportingGrpc;
pub use links::{CentreLink, StatisticsLinks};
pub use migration::Migrator;
pub use service::{Reporting, SERVICE};
