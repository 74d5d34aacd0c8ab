//! The node's clock: writes time-driven transitions (licence expiry, the end of a suspension,
//! a trial or a registration) to the log as the system actor when they fall due, so every
//! reader of the log sees them.

use std::time::Duration;

use crate::service::Registry;

/// Runs until `shutdown` resolves, looking for due transitions every `interval`.
pub async fn run(registry: Registry, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {
                match registry.run_clock(chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(transitions = n, "time-driven transitions written"),
                    Err(e) => tracing::warn!(error = %e, "time-driven transitions failed; retrying on the next tick"),
                }
            }
        }
    }
}
