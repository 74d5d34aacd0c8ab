//! One log entry's effect on the inspection tables, for entries that come back from the centre
//! (`einfo recover --from-gateway`): the entry holds the full new state of the plan, inspection or
//! decision it names; the dated facts and the outbox of licence measures are derived from it by
//! the write path's rules. The entry itself is written to the log by the caller, in the same
//! transaction. The sites known to inspection (`insp_sites`) are a cache of registry's names,
//! filled again on demand, and are left as they are.
//!
//! The test `recover::recovery_rebuilds_every_table_the_write_path_wrote` holds these rules to
//! the write path's, row for row.

use einfo_common::changelog::ChangeEntry;
use einfo_common::db::micros;
use einfo_common::error::{ApiError, ApiResult};
use einfo_common::fields::instant;
use einfo_domain::Jurisdiction;
use einfo_proto::inspection::v1 as pb;
use einfo_proto::registry::v1 as reg;
use pb::MeasureKind;
use prost::Message;
use sea_orm::ConnectionTrait;

use crate::store::{self, Event, Table};

fn decode<M: Message + Default>(e: &ChangeEntry, state: &prost_types::Any) -> ApiResult<M> {
    M::decode(state.value.as_slice()).map_err(|err| {
        ApiError::internal(anyhow::anyhow!("entry {} of {}/{}: {err}", e.sequence, e.jurisdiction, e.service))
    })
}

/// The key of a decision's licence measure in the outbox (as `IssueDecision` makes it).
fn outbox_key(decision: &str) -> String {
    format!("sanction:{decision}")
}

/// Applies entry `e` of `j`'s inspection log to the inspection tables on `c` (a transaction).
///
/// # Errors
/// A state that does not decode as its type, a type inspection never writes, or a database
/// error.
pub async fn apply_entry<C: ConnectionTrait>(c: &C, j: &Jurisdiction, e: &ChangeEntry) -> ApiResult<()> {
    let Some(state) = &e.state else {
        return Err(ApiError::internal(anyhow::anyhow!("entry {} of {j}/inspection holds no state", e.sequence)));
    };
    let at = instant(e.server_time.as_ref());
    let event = |resource, event, idx, at, code, site, amount| Event {
        jurisdiction: j,
        seq: e.sequence,
        resource,
        event,
        idx,
        at,
        code,
        site,
        amount,
    };
    match state.type_url.rsplit('/').next().unwrap_or_default() {
        "einfo.inspection.v1.InspectionPlan" => {
            let plan: pb::InspectionPlan = decode(e, state)?;
            store::put_plan(c, j, &plan.name, &plan).await?;
            // The round's event, again when advancing changed whether it is joint (the latest
            // event of a resource counts), as the write path records it.
            let code = crate::service::plans::round_code(&plan);
            let changed =
                e.operation == "ADVANCE" && store::plan_event_code(c, &plan.name).await?.as_deref() != Some(code);
            if e.operation == "CREATE" || changed {
                let when = instant(plan.decision_time.as_ref());
                store::put_event(c, event(&plan.name, "plan", 0, when, code, "", 0)).await?;
            }
        }
        "einfo.inspection.v1.Inspection" => {
            let ins: pb::Inspection = decode(e, state)?;
            store::put_inspection(c, j, &ins.name, &ins.site, &ins).await?;
            if e.operation == "CREATE" {
                let when = instant(ins.inspect_time.as_ref());
                store::put_event(c, event(&ins.name, "inspection", 0, when, "", &ins.site, 0)).await?;
                for (i, y) in ins.violations.iter().enumerate() {
                    store::put_event(c, event(&ins.name, "violation", i as i32, when, &y.code, &ins.site, 0)).await?;
                    if let Some(how) = crate::service::inspections::handled(y) {
                        store::put_event(c, event(&ins.name, "handled", i as i32, when, how, &ins.site, 0)).await?;
                    }
                }
            }
        }
        "einfo.inspection.v1.SanctionDecision" => {
            let d: pb::SanctionDecision = decode(e, state)?;
            let before: Option<pb::SanctionDecision> = store::get(c, Table::Decisions, &d.name).await?;
            let column_state = if d.voided { 0 } else { d.state };
            store::put_decision(c, j, &d.name, column_state, instant(d.compliance_deadline.as_ref()), &d).await?;
            let decided = instant(d.decision_time.as_ref());
            let key = outbox_key(&d.name);
            match e.operation.as_str() {
                "ISSUE" | "CORRECT" => {
                    store::put_event(c, event(&d.name, "decision", 0, decided, "", &d.site, d.fine_vnd)).await?;
                }
                "PAYMENT" => {
                    let paid = d.fine_collected_vnd - before.map_or(0, |b| b.fine_collected_vnd);
                    store::put_event(c, event(&d.name, "payment", 0, at, "", &d.site, paid)).await?;
                }
                "VOID" => {
                    if store::outbox_state(c, &key).await? == Some(1) {
                        store::settle(c, &key, 3, &d.delivery_error).await?;
                    }
                    store::put_event(c, event(&d.name, "void", 0, at, "", &d.site, 0)).await?;
                }
                "DELIVERED" | "DELIVERY_REFUSED" => {
                    let delivered = e.operation == "DELIVERED";
                    store::settle(c, &key, if delivered { 2 } else { 3 }, &d.delivery_error).await?;
                    let applied = d.measures.iter().map(|x| x.kind()).find(|k| {
                        delivered && matches!(k, MeasureKind::LicenceSuspension | MeasureKind::LicenceRevocation)
                    });
                    if let Some(k) = applied {
                        let ev = if k == MeasureKind::LicenceSuspension { "suspended" } else { "revoked" };
                        store::put_event(c, event(&d.name, ev, 0, decided, "", &d.site, 0)).await?;
                    }
                }
                // COMPLY, APPEAL, OVERDUE: the decision's row only.
                _ => {}
            }
            if e.operation == "ISSUE"
                && let Some(ms) = d
                    .measures
                    .iter()
                    .find(|x| matches!(x.kind(), MeasureKind::LicenceSuspension | MeasureKind::LicenceRevocation))
            {
                let measure = match ms.kind() {
                    MeasureKind::LicenceSuspension => reg::SanctionMeasure::Suspend,
                    _ => reg::SanctionMeasure::Revoke,
                };
                store::enqueue(
                    c,
                    &store::OutboxItem {
                        request_id: key,
                        jurisdiction: j.to_string(),
                        decision: d.name.clone(),
                        site: d.site.clone(),
                        measure: measure as i32,
                        until: ms.until.as_ref().map(|u| micros(instant(Some(u)))).unwrap_or(0),
                        attempts: 0,
                    },
                    at,
                )
                .await?;
            }
        }
        other => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "entry {} of {j}/inspection holds a {other}, which inspection never writes",
                e.sequence
            )));
        }
    }
    Ok(())
}
