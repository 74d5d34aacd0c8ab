//! How einfo's processes are put together: a provincial node (every provincial service, or one
//! alone), the national gateway, a local federation of both (`einfo up`), and the offline chain
//! verifier. The `einfo` binary parses arguments and calls this; the test kit and the
//! benchmarks start the same processes through it.
#![forbid(unsafe_code)]

pub mod backup;
pub mod federation;
pub mod gateway;
pub mod node;
pub mod recover;
pub mod verify;
