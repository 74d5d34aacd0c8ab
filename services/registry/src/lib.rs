//! The register of general information websites and social networks of the provinces a node
//! hosts (items 2 and 3 of letter 3224/BTTTT-PTTH&TTĐT): sites, owners, domains, licence
//! applications, licences, registrations and trial records, with derived legal status,
//! time-driven transitions, bulk import and statistics. Every change goes to the
//! province's hash-chained registry log.
#![forbid(unsafe_code)]

pub mod clock;
pub mod convert;
pub mod grpc;
pub mod import;
pub mod kinds;
pub mod migration;
pub mod project;
pub mod service;
pub mod status;
mod store;

pub use grpc::RegistryGrpc;
pub use migration::Migrator;
pub use service::{Registry, SERVICE};
