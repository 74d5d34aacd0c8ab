//! einfo's benchmarks: `einfo bench` (a node's reads and writes on SQLite and PostgreSQL beside
//! a bare tonic call and raw statements, and a node's peak memory) and `einfo bench-gateway`
//! (the national gateway over 63 nodes). They print figures side by side with their parts
//! measured in the same run; a missed target is information, never a failing exit.
#![forbid(unsafe_code)]

mod fixtures;
mod gateway;
mod measure;
mod memory;
mod node;
mod servers;

pub use gateway::{BenchGatewayArgs, run as run_gateway};
pub use node::{BenchArgs, run};
