//! Inspection of sites with the provincial police, the culture department and other bodies, and
//! the handling of violations (item 4 of letter 3224/BTTTT-PTTH&TTĐT): plans, inspections,
//! violations against a versioned catalogue, sanction decisions with fine ranges and measures,
//! and an outbox that carries licence suspensions and revocations to registry exactly once.
#![forbid(unsafe_code)]

pub use einfo_reference::catalogue;
pub mod grpc;
pub mod migration;
pub mod outbox;
pub mod project;
pub mod registry_link;
pub mod service;
mod store;

pub use grpc::InspectionGrpc;
pub use migration::Migrator;
pub use registry_link::RegistryLink;
pub use service::{Inspection, SERVICE};
