//! Delivers licence measures of sanction decisions to registry, exactly once.
//!
//! A decision and its outbox row are written in one transaction. This loop sends each pending
//! row to registry's `ApplySanction` with a request id derived from the decision, so every retry
//! — after a lost acknowledgement, a registry that was down, or a restart of either service —
//! carries the same id, and registry's idempotency makes it take effect once. Transient failures
//! are retried with exponential backoff; a refusal (the site has no licence, say) is recorded on
//! the decision and not retried. The same loop writes decisions that became overdue.

use std::time::Duration;

use einfo_common::clock::{Pace, run_paced};
use einfo_common::db::from_micros;
use einfo_common::fields::timestamp;
use einfo_domain::Jurisdiction;
use einfo_proto::registry::v1 as reg;
use tonic::Code;

use crate::service::Inspection;
use crate::store;

const BATCH: u64 = 50;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Codes after which a retry cannot succeed.
fn permanent(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::PermissionDenied
            | Code::AlreadyExists
    )
}

/// One pass: tries every due item once. Returns how many were settled (delivered or refused).
pub async fn deliver_due(svc: &Inspection) -> anyhow::Result<usize> {
    let now = svc.db().now();
    let due = store::due_outbox(svc.db().conn(), now, BATCH).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut settled = 0;
    for item in due {
        let j = Jurisdiction::parse(&item.jurisdiction)?;
        let req = reg::ApplySanctionRequest {
            site: item.site.clone(),
            measure: item.measure,
            until: (item.until > 0).then(|| timestamp(from_micros(item.until))),
            decision: item.decision.clone(),
            request_id: item.request_id.clone(),
        };
        match svc.registry().apply_sanction(&j, req).await {
            Ok(licence) => {
                tracing::info!(decision = %item.decision, licence = %licence.name, "sanction applied in registry");
                svc.record_delivery(&j, &item.decision, &item.request_id, Ok(()))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                settled += 1;
            }
            Err(st) if permanent(st.code()) => {
                tracing::warn!(decision = %item.decision, code = ?st.code(), message = st.message(), "registry refused the sanction");
                let why = format!("{:?}: {}", st.code(), st.message());
                svc.record_delivery(&j, &item.decision, &item.request_id, Err(why))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                settled += 1;
            }
            Err(st) => {
                let attempts = item.attempts + 1;
                let backoff = Duration::from_millis(200u64.saturating_mul(1 << attempts.min(16))).min(MAX_BACKOFF);
                tracing::info!(decision = %item.decision, attempts, ?backoff, code = ?st.code(), "registry unreachable; will retry");
                store::retry_later(
                    svc.db().conn(),
                    &item.request_id,
                    attempts,
                    now + chrono::Duration::from_std(backoff).unwrap_or_default(),
                    &format!("{:?}: {}", st.code(), st.message()),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
    }
    Ok(settled)
}

/// Runs the outbox and the overdue clock at every round of `pace` until `shutdown` resolves.
pub async fn run(svc: Inspection, pace: Pace, shutdown: impl std::future::Future<Output = ()>) {
    run_paced(pace, shutdown, || async {
        if let Err(e) = deliver_due(&svc).await {
            tracing::warn!(error = %e, "outbox pass failed; retrying on the next tick");
        }
        match svc.run_clock(svc.db().now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(decisions = n, "decisions marked overdue"),
            Err(e) => tracing::warn!(error = %e, "overdue pass failed; retrying on the next tick"),
        }
    })
    .await
}
