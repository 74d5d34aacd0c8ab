//! Follows the centre's feed for each hosted jurisdiction: campaigns and decisions, each applied
//! with the feed cursor in one transaction, so a node resumes after the last event it holds.

use std::time::Duration;

use einfo_domain::Jurisdiction;
use einfo_proto::central::v1 as central;

use crate::service::Reporting;
use crate::store;

/// Reads the feed of `j` from its cursor until the stream ends or fails. Returns the events applied.
pub async fn follow_once(svc: &Reporting, j: &Jurisdiction, follow: bool) -> anyhow::Result<usize> {
    let Some(centre) = svc.centre() else { return Ok(0) };
    let after = store::feed_cursor(svc.db().conn(), j).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut c = centre.streaming(j)?;
    let mut stream =
        c.stream_feed(central::StreamFeedRequest { jurisdiction: j.to_string(), after, follow }).await?.into_inner();
    let mut applied = 0;
    while let Some(msg) = stream.message().await? {
        let Some(event) = msg.event else { continue };
        if svc.apply_feed_event(j, event).await.map_err(|e| anyhow::anyhow!("{e}"))? {
            applied += 1;
        }
    }
    Ok(applied)
}

/// Follows the feed of `j`, reconnecting `interval` after a failure, until `shutdown` resolves.
pub async fn run(svc: Reporting, j: Jurisdiction, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            r = follow_once(&svc, &j, true) => match r {
                Ok(_) => tracing::info!(jurisdiction = %j, "the centre closed the feed; reconnecting"),
                Err(e) => tracing::info!(jurisdiction = %j, error = %e, "the centre's feed failed; reconnecting"),
            },
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
