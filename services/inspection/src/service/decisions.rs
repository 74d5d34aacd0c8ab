//! Sanction decisions: issue (with the fine checked against the catalogue ranges), correct,
//! read, list and void them, record compliance, appeals and payments, and the outcome of a
//! licence measure's delivery to registry.

use std::collections::HashSet;

use einfo_common::auth::Caller;
use einfo_common::changelog::Begin;
use einfo_common::db::micros;
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
use einfo_common::fields::{
    Lines, MAX_NAME, MAX_NOTES, MAX_NUMBER, instant, name, new_id, next_etag, next_token, page_after, page_size,
    query_fingerprint, reason, required_enum, required_instant, resource,
};
use einfo_domain::Jurisdiction;
use einfo_proto::inspection::v1 as pb;
use einfo_proto::methods;
use einfo_proto::registry::v1 as reg;
use einfo_reference::catalogue::cite;
use pb::{DecisionState, DeliveryState, MeasureKind, OffenderKind, PrincipalForm};

use super::{Inspection, event, stale};
use crate::store::{self, Table};

impl Inspection {
    /// IssueDecision: checks the fine against the catalogue ranges in force on each violation's
    /// date for the offender kind, and each measure against what the entries allow; a licence
    /// suspension or revocation is queued for registry in the same transaction.
    pub async fn issue_decision(
        &self,
        caller: &Caller,
        mut req: pb::IssueDecisionRequest,
    ) -> ApiResult<pb::SanctionDecision> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_write(&j)?;
        let d = req.decision.clone().unwrap_or_default();
        let mut v = Violations::new();
        let number = name(&d.number, "decision.number", MAX_NUMBER, &mut v);
        let decided = required_instant(d.decision_time.as_ref(), "decision.decision_time", &mut v);
        let deadline = required_instant(d.compliance_deadline.as_ref(), "decision.compliance_deadline", &mut v);
        if let (Some(a), Some(b)) = (decided, deadline)
            && b < a
        {
            v.add("decision.compliance_deadline", "is before the decision date");
        }
        required_enum::<OffenderKind>(d.offender_kind, "decision.offender_kind", "ORGANISATION or PERSON", &mut v);
        let offender = name(&d.offender_name, "decision.offender_name", MAX_NAME, &mut v);
        if d.fine_vnd < 0 {
            v.add("decision.fine_vnd", "must not be negative");
        }
        for (i, ms) in d.measures.iter().enumerate() {
            required_enum::<MeasureKind>(ms.kind, &format!("decision.measures[{i}].kind"), "a measure", &mut v);
            if ms.kind() == MeasureKind::LicenceSuspension {
                match required_instant(ms.until.as_ref(), &format!("decision.measures[{i}].until"), &mut v) {
                    Some(u) if decided.is_some_and(|a| u <= a) => {
                        v.add(format!("decision.measures[{i}].until"), "must be after the decision date")
                    }
                    _ => {}
                }
            }
            if ms.kind() == MeasureKind::ContentRemoval {
                required_instant(ms.deadline.as_ref(), &format!("decision.measures[{i}].deadline"), &mut v);
            }
        }
        let licence_measures = d
            .measures
            .iter()
            .filter(|x| matches!(x.kind(), MeasureKind::LicenceSuspension | MeasureKind::LicenceRevocation))
            .count();
        if licence_measures > 1 {
            v.add("decision.measures", "at most one licence suspension or revocation per decision");
        }
        if d.inspection.is_empty() {
            v.add("decision.inspection", "is required");
        } else {
            match resource(&d.inspection, "decision.inspection", "inspections", self.scheme) {
                Ok(ij) if ij == j => {}
                Ok(ij) => v.add("decision.inspection", format!("{} is an inspection of {ij}", d.inspection)),
                Err(e) => v.add("decision.inspection", e.message),
            }
        }
        if d.site.is_empty() {
            v.add("decision.site", "is required");
        }
        v.finish()?;
        let mut v = Violations::new();
        self.resolve_site(&j, &d.site, "decision.site").await?;
        let ins: pb::Inspection = store::get(self.db.conn(), Table::Inspections, &d.inspection)
            .await?
            .ok_or_else(|| ApiError::field("decision.inspection", format!("no inspection {}", d.inspection)))?;
        if ins.site != d.site {
            return Err(ApiError::field("decision.site", format!("is not the site of {}", d.inspection)));
        }
        let chosen: Vec<(usize, &pb::Violation)> = if d.violation_indexes.is_empty() {
            ins.violations.iter().enumerate().collect()
        } else {
            let mut out = Vec::new();
            for (i, idx) in d.violation_indexes.iter().enumerate() {
                match ins.violations.get(*idx as usize) {
                    // Each violation is sanctioned once: a repeated index would add its range twice.
                    Some(_) if d.violation_indexes[..i].contains(idx) => {
                        v.add(format!("decision.violation_indexes[{i}]"), format!("violation {idx} is already listed"))
                    }
                    Some(x) => out.push((*idx as usize, x)),
                    None => v.add(
                        format!("decision.violation_indexes[{i}]"),
                        format!("the inspection has no violation {idx}"),
                    ),
                }
            }
            out
        };
        // One order everywhere: the answer, the stored decision, its log entry and the gateway.
        let mut chosen = chosen;
        chosen.sort_by_key(|(i, _)| *i);
        if chosen.is_empty() {
            v.add("decision.violation_indexes", "the decision sanctions no violation");
        }
        let law = self.ranges(&chosen, d.offender_kind(), &mut v);
        law.check_principal(&d, &mut v);
        let allowed = &law.allowed;
        for (i, ms) in d.measures.iter().enumerate() {
            if !allowed.contains(&ms.kind) {
                v.add(
                    format!("decision.measures[{i}].kind"),
                    format!("{:?} is not allowed by the catalogue entries of the violations sanctioned", ms.kind()),
                );
            }
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::inspection::inspection_service::ISSUE_DECISION, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let decided = decided.unwrap_or_default();
        let licence_measure = d
            .measures
            .iter()
            .find(|x| matches!(x.kind(), MeasureKind::LicenceSuspension | MeasureKind::LicenceRevocation))
            .cloned();
        let decision = pb::SanctionDecision {
            name: format!("{j}/decisions/{}", new_id()),
            number,
            offender_name: offender,
            state: DecisionState::Issued as i32,
            fine_collected_vnd: 0,
            delivery_state: if licence_measure.is_some() { DeliveryState::Pending } else { DeliveryState::Unspecified }
                as i32,
            delivery_error: String::new(),
            etag: "1".into(),
            voided: false,
            reason: String::new(),
            violation_indexes: chosen.iter().map(|(i, _)| *i as u32).collect(),
            legal_bases: law.bases.clone(),
            ..d
        };
        store::put_decision(m.txn(), &j, &decision.name, decision.state, deadline.unwrap_or_default(), &decision)
            .await?;
        let seq = m.append(&decision.name, "ISSUE", &decision, "").await?;
        event(&m, &j, seq, &decision.name, "decision", 0, decided, "", &decision.site, decision.fine_vnd).await?;
        if let Some(ms) = licence_measure {
            // Counted as suspended or revoked once registry applies it (see `record_delivery`).
            let measure = match ms.kind() {
                MeasureKind::LicenceSuspension => reg::SanctionMeasure::Suspend,
                _ => reg::SanctionMeasure::Revoke,
            };
            store::enqueue(
                m.txn(),
                &store::OutboxItem {
                    // Derived from the decision so every retry, across restarts, sends the same key.
                    request_id: format!("sanction:{}", decision.name),
                    jurisdiction: j.to_string(),
                    decision: decision.name.clone(),
                    site: decision.site.clone(),
                    measure: measure as i32,
                    until: ms.until.as_ref().map(|u| micros(instant(Some(u)))).unwrap_or(0),
                    attempts: 0,
                },
                m.now(),
            )
            .await?;
        }
        m.commit(&decision).await?;
        Ok(decision)
    }

    /// The fine range (the sum of the ranges in force on each violation's date for the offender
    /// kind) and the measures allowed for these violations of an inspection.
    fn ranges(&self, chosen: &[(usize, &pb::Violation)], kind: OffenderKind, v: &mut Violations) -> Law {
        let mut law = Law::default();
        let catalogue = self.catalogue.get();
        for (idx, x) in chosen {
            match catalogue.in_force(&x.code, instant(x.act_time.as_ref())) {
                None => v.add(
                    format!("decision.violation_indexes[{idx}]"),
                    format!("no catalogue entry of '{}' in force on its date", x.code),
                ),
                Some(e) => {
                    let (a, b) = match kind {
                        OffenderKind::Person => (e.fine_min_person_vnd, e.fine_max_person_vnd),
                        _ => (e.fine_min_organisation_vnd, e.fine_max_organisation_vnd),
                    };
                    law.lo += a;
                    law.hi += b;
                    law.allowed.extend(e.allowed_measures.iter().copied());
                    let basis = e.legal_basis.clone().unwrap_or_default();
                    let cited = cite(&basis);
                    let forms = |f: PrincipalForm| e.principal_forms.contains(&(f as i32));
                    if !forms(PrincipalForm::Warning) {
                        law.no_warning.push(format!("{} ({cited})", e.code));
                    }
                    if !forms(PrincipalForm::Fine) {
                        law.no_fine.push(format!("{} ({cited})", e.code));
                    }
                    law.bases.push(basis);
                }
            }
        }
        law
    }

    /// CorrectDecision: number, date, offender, fine and compliance deadline, with a reason; the
    /// fine is checked again against the ranges.
    pub async fn correct_decision(
        &self,
        caller: &Caller,
        mut req: pb::CorrectDecisionRequest,
    ) -> ApiResult<pb::SanctionDecision> {
        let input = req.decision.clone().unwrap_or_default();
        let j = self.named(&input.name, "decision.name", "decisions")?;
        let paths = req.update_mask.clone().map(|m| m.paths).unwrap_or_default();
        const ALLOWED: &[&str] = &[
            "number",
            "decision_time",
            "offender_kind",
            "offender_name",
            "fine_vnd",
            "warning",
            "compliance_deadline",
        ];
        let mut v = Violations::new();
        let why = reason(&req.reason, "reason", &mut v);
        if paths.is_empty() {
            v.add("update_mask", "name at least one field to correct");
        }
        for (i, p) in paths.iter().enumerate() {
            if !ALLOWED.contains(&p.as_str()) {
                v.add(
                    format!("update_mask.paths[{i}]"),
                    format!("'{p}' cannot be corrected; allowed: {}", ALLOWED.join(", ")),
                );
            }
        }
        if input.etag.is_empty() {
            v.add("decision.etag", "is required: send the etag you read");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::inspection::inspection_service::CORRECT_DECISION, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let mut d: pb::SanctionDecision = store::get(m.txn(), Table::Decisions, &input.name)
            .await?
            .ok_or_else(|| ApiError::not_found(&input.name))?;
        if d.voided {
            return Err(ApiError::new(Reason::Voided, format!("{} was voided", d.name)));
        }
        if d.etag != input.etag {
            return Err(stale(&input.etag, &d.etag));
        }
        for p in &paths {
            match p.as_str() {
                "number" => d.number = input.number.clone(),
                "decision_time" => d.decision_time = input.decision_time,
                "offender_kind" => d.offender_kind = input.offender_kind,
                "offender_name" => d.offender_name = input.offender_name.clone(),
                "fine_vnd" => d.fine_vnd = input.fine_vnd,
                "warning" => d.warning = input.warning,
                _ => d.compliance_deadline = input.compliance_deadline,
            }
        }
        let mut v = Violations::new();
        d.number = name(&d.number, "decision.number", MAX_NUMBER, &mut v);
        d.offender_name = name(&d.offender_name, "decision.offender_name", MAX_NAME, &mut v);
        required_enum::<OffenderKind>(d.offender_kind, "decision.offender_kind", "ORGANISATION or PERSON", &mut v);
        let decided = required_instant(d.decision_time.as_ref(), "decision.decision_time", &mut v);
        let deadline = required_instant(d.compliance_deadline.as_ref(), "decision.compliance_deadline", &mut v);
        if let (Some(a), Some(b)) = (decided, deadline)
            && b < a
        {
            v.add("decision.compliance_deadline", "is before the decision date");
        }
        let ins: pb::Inspection = store::get(m.txn(), Table::Inspections, &d.inspection).await?.ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("inspection {} of {} is missing", d.inspection, d.name))
        })?;
        let chosen: Vec<(usize, &pb::Violation)> = d
            .violation_indexes
            .iter()
            .filter_map(|i| ins.violations.get(*i as usize).map(|x| (*i as usize, x)))
            .collect();
        self.ranges(&chosen, d.offender_kind(), &mut v).check_principal(&d, &mut v);
        if d.fine_vnd < d.fine_collected_vnd {
            v.add("decision.fine_vnd", format!("is below the {} VND already collected", d.fine_collected_vnd));
        }
        v.finish()?;
        d.reason = why.clone();
        d.etag = next_etag(&d.etag);
        store::put_decision(m.txn(), &j, &d.name, d.state, deadline.unwrap_or_default(), &d).await?;
        let seq = m.append(&d.name, "CORRECT", &d, &why).await?;
        event(&m, &j, seq, &d.name, "decision", 0, decided.unwrap_or_default(), "", &d.site, d.fine_vnd).await?;
        m.commit(&d).await?;
        Ok(d)
    }

    /// GetDecision.
    pub async fn get_decision(&self, caller: &Caller, req: pb::GetDecisionRequest) -> ApiResult<pb::SanctionDecision> {
        let j = self.named(&req.name, "name", "decisions")?;
        caller.authorize_read(&j)?;
        store::get(self.db.conn(), Table::Decisions, &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))
    }

    /// ListDecisions.
    pub async fn list_decisions(
        &self,
        caller: &Caller,
        req: pb::ListDecisionsRequest,
    ) -> ApiResult<pb::ListDecisionsResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        let mut v = Violations::new();
        let size = page_size(req.page_size, &mut v);
        let fp =
            query_fingerprint(&pb::ListDecisionsRequest { page_size: 0, page_token: String::new(), ..req.clone() });
        let after = page_after(&req.page_token, &fp, &mut v);
        v.finish()?;
        let mut decisions: Vec<pb::SanctionDecision> =
            store::list(self.db.conn(), Table::Decisions, &j, None, &after.unwrap_or_default(), size as u64 + 1)
                .await?;
        let next_page_token = next_token(&mut decisions, size, &fp, |p| &p.name);
        Ok(pb::ListDecisionsResponse { decisions, next_page_token })
    }

    /// RecordDecisionEvent: compliance, appeal, or a payment.
    pub async fn record_decision_event(
        &self,
        caller: &Caller,
        mut req: pb::RecordDecisionEventRequest,
    ) -> ApiResult<pb::SanctionDecision> {
        let j = self.named(&req.name, "name", "decisions")?;
        let mut v = Violations::new();
        required_enum::<pb::DecisionEvent>(req.event, "event", "COMPLIED, APPEALED or PAYMENT", &mut v);
        if req.event == pb::DecisionEvent::Payment as i32 && req.amount_vnd <= 0 {
            v.add("amount_vnd", "a payment must be positive");
        }
        if req.etag.is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        let note = einfo_common::fields::text(&req.note, "note", MAX_NOTES, Lines::Many, &mut v);
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::inspection::inspection_service::RECORD_DECISION_EVENT, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let mut d: pb::SanctionDecision =
            store::get(m.txn(), Table::Decisions, &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))?;
        if d.voided {
            return Err(ApiError::new(Reason::Voided, format!("{} was voided", d.name)));
        }
        if d.etag != req.etag {
            return Err(stale(&req.etag, &d.etag));
        }
        let op = match req.event() {
            pb::DecisionEvent::Complied | pb::DecisionEvent::Appealed => {
                if !matches!(d.state(), DecisionState::Issued | DecisionState::Overdue) {
                    return Err(ApiError::new(Reason::InvalidState, format!("{} is {:?}", d.name, d.state())));
                }
                let (state, op) = if req.event() == pb::DecisionEvent::Complied {
                    (DecisionState::Complied, "COMPLY")
                } else {
                    (DecisionState::Appealed, "APPEAL")
                };
                d.state = state as i32;
                op
            }
            _ => {
                if d.fine_collected_vnd + req.amount_vnd > d.fine_vnd {
                    return Err(ApiError::field(
                        "amount_vnd",
                        format!("would collect more than the fine of {} VND", d.fine_vnd),
                    ));
                }
                d.fine_collected_vnd += req.amount_vnd;
                "PAYMENT"
            }
        };
        d.etag = next_etag(&d.etag);
        store::put_decision(m.txn(), &j, &d.name, d.state, instant(d.compliance_deadline.as_ref()), &d).await?;
        let seq = m.append(&d.name, op, &d, &note).await?;
        if op == "PAYMENT" {
            event(&m, &j, seq, &d.name, "payment", 0, m.now(), "", &d.site, req.amount_vnd).await?;
        }
        m.commit(&d).await?;
        Ok(d)
    }

    /// VoidDecision: a tombstone; a licence measure not yet delivered is cancelled (one already
    /// applied in registry stays until registry corrects it).
    pub async fn void_decision(
        &self,
        caller: &Caller,
        mut req: pb::VoidDecisionRequest,
    ) -> ApiResult<pb::SanctionDecision> {
        let j = self.named(&req.name, "name", "decisions")?;
        let mut v = Violations::new();
        let why = reason(&req.reason, "reason", &mut v);
        if req.etag.is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::inspection::inspection_service::VOID_DECISION, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let mut d: pb::SanctionDecision =
            store::get(m.txn(), Table::Decisions, &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))?;
        if d.voided {
            return Err(ApiError::new(Reason::Voided, format!("{} is already voided", d.name)));
        }
        if d.etag != req.etag {
            return Err(stale(&req.etag, &d.etag));
        }
        let key = format!("sanction:{}", d.name);
        if store::outbox_state(m.txn(), &key).await? == Some(1) {
            store::settle(m.txn(), &key, 3, "decision voided before delivery").await?;
            d.delivery_state = DeliveryState::Refused as i32;
            d.delivery_error = "decision voided before delivery".into();
        }
        d.voided = true;
        d.reason = why.clone();
        d.etag = next_etag(&d.etag);
        // State column 0: a voided decision is never due for anything again.
        store::put_decision(m.txn(), &j, &d.name, 0, instant(d.compliance_deadline.as_ref()), &d).await?;
        let seq = m.append(&d.name, "VOID", &d, &why).await?;
        event(&m, &j, seq, &d.name, "void", 0, m.now(), "", &d.site, 0).await?;
        m.commit(&d).await?;
        Ok(d)
    }

    /// Records the outcome of an outbox delivery on its decision (as the system actor).
    pub async fn record_delivery(
        &self,
        j: &Jurisdiction,
        decision: &str,
        request_id: &str,
        outcome: Result<(), String>,
    ) -> ApiResult<()> {
        let caller = Caller::system(*j);
        let Begin::Fresh(mut m) = self.begin::<pb::SanctionDecision>(&caller, j, "", "", &()).await? else {
            return Ok(());
        };
        if store::outbox_state(m.txn(), request_id).await? != Some(1) {
            return Ok(());
        }
        let (state, op, error) = match &outcome {
            Ok(()) => (DeliveryState::Delivered, "DELIVERED", String::new()),
            Err(e) => (DeliveryState::Refused, "DELIVERY_REFUSED", e.clone()),
        };
        store::settle(m.txn(), request_id, if outcome.is_ok() { 2 } else { 3 }, &error).await?;
        if let Some(mut d) = store::get::<_, pb::SanctionDecision>(m.txn(), Table::Decisions, decision).await? {
            d.delivery_state = state as i32;
            d.delivery_error = error.clone();
            d.etag = next_etag(&d.etag);
            store::put_decision(m.txn(), j, &d.name, d.state, instant(d.compliance_deadline.as_ref()), &d).await?;
            let seq = m.append(&d.name, op, &d, &error).await?;
            // A licence is suspended or revoked through the decision only once registry applied
            // the measure; a refused one changed no licence.
            let applied = d.measures.iter().map(|x| x.kind()).find(|k| {
                outcome.is_ok() && matches!(k, MeasureKind::LicenceSuspension | MeasureKind::LicenceRevocation)
            });
            if let Some(k) = applied {
                let ev = if k == MeasureKind::LicenceSuspension { "suspended" } else { "revoked" };
                let at = instant(d.decision_time.as_ref());
                event(&m, j, seq, &d.name, ev, 0, at, "", &d.site, 0).await?;
            }
        }
        m.commit(&()).await?;
        Ok(())
    }
}

/// What the provisions in force on the acts' dates allow a decision on them.
#[derive(Default)]
struct Law {
    /// The fine range: the sum of the provisions' ranges for the offender kind.
    lo: i64,
    hi: i64,
    /// The measures any of them allows.
    allowed: HashSet<i32>,
    /// The provisions applied, in the violations' order.
    bases: Vec<pb::LegalBasis>,
    /// The provisions (code and citation) that allow no warning, or no fine.
    no_warning: Vec<String>,
    no_fine: Vec<String>,
}

impl Law {
    /// Checks the decision's principal form: a warning (no fine) only where every provision allows
    /// one; a fine only where every provision allows one, within the summed range.
    fn check_principal(&self, d: &pb::SanctionDecision, v: &mut Violations) {
        if !v.is_empty() {
            return;
        }
        if d.warning {
            if d.fine_vnd != 0 {
                v.add("decision.fine_vnd", "a warning carries no fine: 0, or no warning");
            }
            if !self.no_warning.is_empty() {
                v.add(
                    "decision.warning",
                    format!("no warning is allowed by {}: a fine is the principal form", self.no_warning.join(", ")),
                );
            }
        } else if !self.no_fine.is_empty() {
            v.add("decision.fine_vnd", format!("no fine is allowed by {}: a warning is", self.no_fine.join(", ")));
        } else if d.fine_vnd < self.lo || d.fine_vnd > self.hi {
            v.add(
                "decision.fine_vnd",
                format!(
                    "{} VND is outside the range in force for this offender kind: {}–{} VND",
                    d.fine_vnd, self.lo, self.hi
                ),
            );
        }
    }
}
