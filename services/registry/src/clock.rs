//! The node's clock: writes time-driven transitions (licence expiry, the end of a suspension,
//! a trial or a registration) to the log as the system actor when they fall due, so every
//! reader of the log sees them.

use einfo_common::clock::{Pace, run_paced};

use crate::service::Registry;

/// Runs until `shutdown` resolves, looking for due transitions at every round of `pace`.
pub async fn run(registry: Registry, pace: Pace, shutdown: impl std::future::Future<Output = ()>) {
    run_paced(pace, shutdown, || async {
        match registry.run_clock(registry.db().now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(transitions = n, "time-driven transitions written"),
            Err(e) => tracing::warn!(error = %e, "time-driven transitions failed; retrying on the next tick"),
        }
    })
    .await
}
