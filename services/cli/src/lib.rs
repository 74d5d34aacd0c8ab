//! The `einfo` binary's library: node assembly (used by the binary and by the tests), the
//! offline chain verifier, and the benchmark.
#![forbid(unsafe_code)]

pub mod bench;
pub mod bench_gateway;
pub mod gateway;
pub mod node;
pub mod verify;
