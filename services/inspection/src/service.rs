//! The inspection service's logic: plans, inspections, violations, sanction decisions and their
//! statistics. No tonic server types, no SQL. Every mutation is one transaction with its log
//! entries; a licence measure is queued in the outbox in the same transaction as its decision.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use einfo_common::auth::Caller;
use einfo_common::changelog::{Begin, Idempotency, LogId, Mutation};
use einfo_common::db::{Database, micros};
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
use einfo_common::fields::{
    MAX_NAME, MAX_TEXT, instant, jurisdiction, known_enum, new_id, next_etag, next_token, page_after, page_size,
    query_fingerprint, reason, required_enum, required_instant, resource, timestamp,
};
use einfo_common::reference::Current;
use einfo_domain::text::DisplayName;
use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::inspection::v1 as pb;
use einfo_proto::registry::v1 as reg;
use pb::{DecisionState, DeliveryState, MeasureKind, OffenderKind, PlanState};
use prost::Message;

use crate::catalogue::{Catalogue, agencies};
use crate::registry_link::RegistryLink;
use crate::store::{self, Table};

/// Name of this service in logs.
pub const SERVICE: &str = "inspection";

/// The inspection service of the provinces a node hosts.
#[derive(Clone)]
pub struct Inspection {
    db: Database,
    scheme: Scheme,
    hosted: Arc<HashSet<Jurisdiction>>,
    catalogue: Current<Catalogue>,
    agencies: Arc<Vec<pb::Agency>>,
    registry: RegistryLink,
}

fn text(value: &str, field: &str, max: usize, v: &mut Violations) -> String {
    if value.trim().is_empty() {
        v.add(field, "is required");
        return String::new();
    }
    v.check(field, DisplayName::parse(value, max)).map(|n| n.into_string()).unwrap_or_default()
}

impl Inspection {
    /// For `hosted` provinces of `scheme`, on a migrated database, with a link to registry.
    pub fn new(
        db: Database,
        scheme: Scheme,
        hosted: impl IntoIterator<Item = Jurisdiction>,
        registry: RegistryLink,
        catalogue: Catalogue,
    ) -> Self {
        Self {
            db,
            scheme,
            hosted: Arc::new(hosted.into_iter().collect()),
            catalogue: Current::new(catalogue),
            agencies: Arc::new(agencies()),
            registry,
        }
    }

    /// Puts another violation catalogue in force (reference data from the centre). Checks
    /// started before keep the catalogue they began with.
    pub fn set_catalogue(&self, catalogue: Catalogue) {
        self.catalogue.set(catalogue);
    }

    /// The violation catalogue in force.
    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue.get()
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The provinces hosted.
    pub fn hosted(&self) -> impl Iterator<Item = &Jurisdiction> {
        self.hosted.iter()
    }

    /// The link to registry.
    pub fn registry(&self) -> &RegistryLink {
        &self.registry
    }

    fn check_hosted(&self, j: Jurisdiction) -> ApiResult<Jurisdiction> {
        if self.hosted.contains(&j) {
            Ok(j)
        } else {
            Err(ApiError::new(Reason::JurisdictionNotHosted, format!("this node does not host {j}")))
        }
    }

    fn parent(&self, value: &str, field: &str) -> ApiResult<Jurisdiction> {
        self.check_hosted(jurisdiction(value, field, self.scheme)?)
    }

    fn named(&self, value: &str, field: &str, collection: &str) -> ApiResult<Jurisdiction> {
        self.check_hosted(resource(value, field, collection, self.scheme)?)
    }

    async fn begin<R: Message + Default>(
        &self,
        caller: &Caller,
        j: &Jurisdiction,
        method: &'static str,
        request_id: &str,
        body: &impl Message,
    ) -> ApiResult<Begin<R>> {
        caller.authorize_write(j)?;
        let idempotency = Idempotency::of_request(caller, method, request_id, body)?;
        self.db.begin_mutation(LogId { jurisdiction: *j, service: SERVICE }, caller, idempotency).await
    }

    /// Checks that `site` is a site of `j` known to registry, asking registry when it is not
    /// known here yet; returns its display name.
    async fn resolve_site(&self, j: &Jurisdiction, site: &str, field: &str) -> ApiResult<String> {
        let sj = resource(site, field, "sites", self.scheme)?;
        if sj != *j {
            return Err(ApiError::field(field, format!("{site} is a site of {sj}, not of {j}")));
        }
        if let Some(name) = store::known_site(self.db.conn(), site).await? {
            return Ok(name);
        }
        match self.registry.get_site(j, site).await {
            Ok(s) if s.voided => Err(ApiError::field(field, format!("{site} was voided in registry"))),
            Ok(s) => {
                store::remember_site(self.db.conn(), j, site, &s.display_name).await?;
                Ok(s.display_name)
            }
            Err(st) if st.code() == tonic::Code::NotFound => {
                Err(ApiError::field(field, format!("registry has no site {site}")))
            }
            Err(st) => {
                Err(ApiError::new(Reason::Unavailable, format!("registry could not resolve {site}: {}", st.message())))
            }
        }
    }

    // ------------------------------------------------------------------ plans

    /// CreatePlan.
    pub async fn create_plan(&self, caller: &Caller, mut req: pb::CreatePlanRequest) -> ApiResult<pb::InspectionPlan> {
        let j = self.parent(&req.parent, "parent")?;
        let p = req.plan.clone().unwrap_or_default();
        let mut v = Violations::new();
        let number = text(&p.decision_number, "plan.decision_number", 100, &mut v);
        required_instant(p.decision_time.as_ref(), "plan.decision_time", &mut v);
        let start = required_instant(p.period_start.as_ref(), "plan.period_start", &mut v);
        let end = required_instant(p.period_end.as_ref(), "plan.period_end", &mut v);
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            v.add("plan.period_end", "must be after period_start");
        }
        let lead = text(&p.lead_unit, "plan.lead_unit", MAX_NAME, &mut v);
        for (i, a) in p.coordinating_agencies.iter().enumerate() {
            if !self.agencies.iter().any(|x| &x.code == a) {
                v.add(format!("plan.coordinating_agencies[{i}]"), format!("unknown agency '{a}' (see ListAgencies)"));
            }
        }
        for (i, s) in p.target_sites.iter().enumerate() {
            match resource(s, &format!("plan.target_sites[{i}]"), "sites", self.scheme) {
                Ok(sj) if sj == j => {}
                Ok(sj) => v.add(format!("plan.target_sites[{i}]"), format!("{s} is a site of {sj}")),
                Err(e) => v.add(format!("plan.target_sites[{i}]"), e.message),
            }
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m =
            match self.begin(caller, &j, "/einfo.inspection.v1.InspectionService/CreatePlan", &request_id, &req).await?
            {
                Begin::Replay(r) => return Ok(r),
                Begin::Fresh(m) => m,
            };
        let plan = pb::InspectionPlan {
            name: format!("{j}/plans/{}", new_id()),
            decision_number: number,
            lead_unit: lead,
            state: PlanState::Planned as i32,
            etag: "1".into(),
            ..p
        };
        store::put_plan(m.txn(), &j, &plan.name, &plan).await?;
        let seq = m.append(&plan.name, "CREATE", &plan, "").await?;
        let at = instant(plan.decision_time.as_ref());
        event(&m, &j, seq, &plan.name, "plan", 0, at, "", "", 0).await?;
        m.commit(&plan).await?;
        Ok(plan)
    }

    /// GetPlan.
    pub async fn get_plan(&self, caller: &Caller, req: pb::GetPlanRequest) -> ApiResult<pb::InspectionPlan> {
        let j = self.named(&req.name, "name", "plans")?;
        caller.authorize_read(&j)?;
        store::get(self.db.conn(), Table::Plans, &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))
    }

    /// ListPlans.
    pub async fn list_plans(&self, caller: &Caller, req: pb::ListPlansRequest) -> ApiResult<pb::ListPlansResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        let mut v = Violations::new();
        let size = page_size(req.page_size, &mut v);
        let fp = query_fingerprint(&pb::ListPlansRequest { page_size: 0, page_token: String::new(), ..req.clone() });
        let after = page_after(&req.page_token, &fp, &mut v);
        v.finish()?;
        let mut plans: Vec<pb::InspectionPlan> =
            store::list(self.db.conn(), Table::Plans, &j, None, &after.unwrap_or_default(), size as u64 + 1).await?;
        let next_page_token = next_token(&mut plans, size, &fp, |p| &p.name);
        Ok(pb::ListPlansResponse { plans, next_page_token })
    }

    /// AdvancePlan: planned → in progress → closed.
    pub async fn advance_plan(
        &self,
        caller: &Caller,
        mut req: pb::AdvancePlanRequest,
    ) -> ApiResult<pb::InspectionPlan> {
        let j = self.named(&req.name, "name", "plans")?;
        let mut v = Violations::new();
        required_enum::<PlanState>(req.state, "state", "IN_PROGRESS or CLOSED", &mut v);
        if req.etag.is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, "/einfo.inspection.v1.InspectionService/AdvancePlan", &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let mut plan: pb::InspectionPlan =
            store::get(m.txn(), Table::Plans, &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))?;
        if plan.etag != req.etag {
            return Err(stale(&req.etag, &plan.etag));
        }
        let allowed = matches!(
            (plan.state(), req.state()),
            (PlanState::Planned, PlanState::InProgress)
                | (PlanState::InProgress, PlanState::Closed)
                | (PlanState::Planned, PlanState::Closed)
        );
        if !allowed {
            return Err(ApiError::new(
                Reason::InvalidState,
                format!("a plan cannot go from {:?} to {:?}", plan.state(), req.state()),
            ));
        }
        plan.state = req.state;
        plan.etag = next_etag(&plan.etag);
        store::put_plan(m.txn(), &j, &plan.name, &plan).await?;
        m.append(&plan.name, "ADVANCE", &plan, "").await?;
        m.commit(&plan).await?;
        Ok(plan)
    }

    // ------------------------------------------------------------------ inspections

    /// Checks the violations of an inspection against the catalogue.
    fn check_violations(&self, list: &[pb::Violation], prefix: &str, v: &mut Violations) {
        let catalogue = self.catalogue.get();
        for (i, x) in list.iter().enumerate() {
            let f = |s: &str| format!("{prefix}[{i}].{s}");
            let at = required_instant(x.act_time.as_ref(), &f("act_time"), v);
            if !catalogue.knows(&x.code) {
                v.add(f("code"), format!("'{}' is not in the violation catalogue", x.code));
            } else if let Some(at) = at
                && catalogue.in_force(&x.code, at).is_none()
            {
                v.add(f("act_time"), format!("no entry of '{}' was in force on that date", x.code));
            }
            if x.description.chars().count() > MAX_TEXT {
                v.add(f("description"), format!("is longer than {MAX_TEXT} characters"));
            }
        }
    }

    /// RecordInspection: the site is resolved in registry.
    pub async fn record_inspection(
        &self,
        caller: &Caller,
        mut req: pb::RecordInspectionRequest,
    ) -> ApiResult<pb::Inspection> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_write(&j)?;
        let x = req.inspection.clone().unwrap_or_default();
        let mut v = Violations::new();
        required_instant(x.inspect_time.as_ref(), "inspection.inspect_time", &mut v);
        required_enum::<pb::InspectionType>(
            x.r#type,
            "inspection.type",
            "SCHEDULED, UNSCHEDULED, COMPLAINT or REFERRAL",
            &mut v,
        );
        required_enum::<pb::InspectionResult>(x.result, "inspection.result", "COMPLIANT or VIOLATIONS_FOUND", &mut v);
        match (x.result(), x.violations.is_empty()) {
            (pb::InspectionResult::ViolationsFound, true) => {
                v.add("inspection.violations", "VIOLATIONS_FOUND needs at least one violation")
            }
            (pb::InspectionResult::Compliant, false) => {
                v.add("inspection.result", "a compliant inspection records no violation")
            }
            _ => {}
        }
        let inspectors: Vec<String> = x
            .inspectors
            .iter()
            .enumerate()
            .map(|(i, n)| text(n, &format!("inspection.inspectors[{i}]"), MAX_NAME, &mut v))
            .collect();
        if x.findings.chars().count() > MAX_TEXT * 5 {
            v.add("inspection.findings", "is too long");
        }
        for (i, e) in x.evidence.iter().enumerate() {
            if !(e.url.starts_with("https://") || e.url.starts_with("http://")) || e.url.len() > 2000 {
                v.add(format!("inspection.evidence[{i}].url"), "must be an http(s) URL of at most 2000 characters");
            }
            required_instant(e.capture_time.as_ref(), &format!("inspection.evidence[{i}].capture_time"), &mut v);
            if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                v.add(
                    format!("inspection.evidence[{i}].sha256"),
                    "must be 64 hex digits (SHA-256 of the captured content)",
                );
            }
        }
        self.check_violations(&x.violations, "inspection.violations", &mut v);
        if !x.plan.is_empty() {
            match resource(&x.plan, "inspection.plan", "plans", self.scheme) {
                Ok(pj) if pj == j => {}
                Ok(pj) => v.add("inspection.plan", format!("{} is a plan of {pj}", x.plan)),
                Err(e) => v.add("inspection.plan", e.message),
            }
        }
        if let Err(e) = resource(&x.site, "inspection.site", "sites", self.scheme) {
            v.add("inspection.site", e.message);
        }
        v.finish()?;
        let display = self.resolve_site(&j, &x.site, "inspection.site").await?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, "/einfo.inspection.v1.InspectionService/RecordInspection", &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        if !x.plan.is_empty() {
            let plan: Option<pb::InspectionPlan> = store::get(m.txn(), Table::Plans, &x.plan).await?;
            match plan {
                None => return Err(ApiError::field("inspection.plan", format!("no plan {}", x.plan))),
                Some(p) if p.state() == PlanState::Closed => {
                    return Err(ApiError::new(Reason::InvalidState, format!("{} is closed", x.plan)));
                }
                Some(_) => {}
            }
        }
        let ins = pb::Inspection {
            name: format!("{j}/inspections/{}", new_id()),
            inspectors,
            site_display_name: display,
            violations: x
                .violations
                .iter()
                .map(|y| pb::Violation {
                    description: unicode_normalization::UnicodeNormalization::nfc(y.description.trim()).collect(),
                    ..y.clone()
                })
                .collect(),
            ..x
        };
        store::put_inspection(m.txn(), &j, &ins.name, &ins.site, &ins).await?;
        let seq = m.append(&ins.name, "CREATE", &ins, "").await?;
        let at = instant(ins.inspect_time.as_ref());
        event(&m, &j, seq, &ins.name, "inspection", 0, at, "", &ins.site, 0).await?;
        for (i, y) in ins.violations.iter().enumerate() {
            event(&m, &j, seq, &ins.name, "violation", i as i32, at, &y.code, &ins.site, 0).await?;
        }
        m.commit(&ins).await?;
        Ok(ins)
    }

    /// GetInspection.
    pub async fn get_inspection(&self, caller: &Caller, req: pb::GetInspectionRequest) -> ApiResult<pb::Inspection> {
        let j = self.named(&req.name, "name", "inspections")?;
        caller.authorize_read(&j)?;
        store::get(self.db.conn(), Table::Inspections, &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))
    }

    /// ListInspections.
    pub async fn list_inspections(
        &self,
        caller: &Caller,
        req: pb::ListInspectionsRequest,
    ) -> ApiResult<pb::ListInspectionsResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        let mut v = Violations::new();
        let size = page_size(req.page_size, &mut v);
        let fp =
            query_fingerprint(&pb::ListInspectionsRequest { page_size: 0, page_token: String::new(), ..req.clone() });
        let after = page_after(&req.page_token, &fp, &mut v);
        v.finish()?;
        let filter = (!req.site.is_empty()).then(|| ("site", req.site.clone().into()));
        let mut inspections: Vec<pb::Inspection> =
            store::list(self.db.conn(), Table::Inspections, &j, filter, &after.unwrap_or_default(), size as u64 + 1)
                .await?;
        let next_page_token = next_token(&mut inspections, size, &fp, |p| &p.name);
        Ok(pb::ListInspectionsResponse { inspections, next_page_token })
    }

    // ------------------------------------------------------------------ decisions

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
        let number = text(&d.number, "decision.number", 100, &mut v);
        let decided = required_instant(d.decision_time.as_ref(), "decision.decision_time", &mut v);
        let deadline = required_instant(d.compliance_deadline.as_ref(), "decision.compliance_deadline", &mut v);
        if let (Some(a), Some(b)) = (decided, deadline)
            && b < a
        {
            v.add("decision.compliance_deadline", "is before the decision date");
        }
        required_enum::<OffenderKind>(d.offender_kind, "decision.offender_kind", "ORGANISATION or PERSON", &mut v);
        let offender = text(&d.offender_name, "decision.offender_name", MAX_NAME, &mut v);
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
        if chosen.is_empty() {
            v.add("decision.violation_indexes", "the decision sanctions no violation");
        }
        let (lo, hi, allowed) = self.ranges(&chosen, d.offender_kind(), &mut v);
        if v.is_empty() && (d.fine_vnd < lo || d.fine_vnd > hi) {
            v.add(
                "decision.fine_vnd",
                format!("{} VND is outside the range in force for this offender kind: {lo}–{hi} VND", d.fine_vnd),
            );
        }
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
            .begin(caller, &j, "/einfo.inspection.v1.InspectionService/IssueDecision", &request_id, &req)
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
        let mut decision = pb::SanctionDecision {
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
        decision.violation_indexes.sort_unstable();
        m.commit(&decision).await?;
        Ok(decision)
    }

    /// The fine range (the sum of the ranges in force on each violation's date for the offender
    /// kind) and the measures allowed for these violations of an inspection.
    fn ranges(
        &self,
        chosen: &[(usize, &pb::Violation)],
        kind: OffenderKind,
        v: &mut Violations,
    ) -> (i64, i64, HashSet<i32>) {
        let (mut lo, mut hi) = (0i64, 0i64);
        let mut allowed: HashSet<i32> = HashSet::new();
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
                    lo += a;
                    hi += b;
                    allowed.extend(e.allowed_measures.iter().copied());
                }
            }
        }
        (lo, hi, allowed)
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
        const ALLOWED: &[&str] =
            &["number", "decision_time", "offender_kind", "offender_name", "fine_vnd", "compliance_deadline"];
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
            .begin(caller, &j, "/einfo.inspection.v1.InspectionService/CorrectDecision", &request_id, &req)
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
                _ => d.compliance_deadline = input.compliance_deadline,
            }
        }
        let mut v = Violations::new();
        d.number = text(&d.number, "decision.number", 100, &mut v);
        d.offender_name = text(&d.offender_name, "decision.offender_name", MAX_NAME, &mut v);
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
        let (lo, hi, _) = self.ranges(&chosen, d.offender_kind(), &mut v);
        if v.is_empty() && (d.fine_vnd < lo || d.fine_vnd > hi) {
            v.add(
                "decision.fine_vnd",
                format!("{} VND is outside the range in force for this offender kind: {lo}–{hi} VND", d.fine_vnd),
            );
        }
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
        if req.note.chars().count() > MAX_TEXT {
            v.add("note", "is too long");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, "/einfo.inspection.v1.InspectionService/RecordDecisionEvent", &request_id, &req)
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
        let seq = m.append(&d.name, op, &d, req.note.trim()).await?;
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
            .begin(caller, &j, "/einfo.inspection.v1.InspectionService/VoidDecision", &request_id, &req)
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

    /// Writes OVERDUE for every issued decision whose compliance deadline passed by `now`, as the
    /// system actor. Returns how many.
    pub async fn run_clock(&self, now: DateTime<Utc>) -> ApiResult<usize> {
        let mut n = 0;
        for j in self.hosted.iter() {
            for name in store::overdue_decisions(self.db.conn(), j, now).await? {
                let caller = Caller::system(*j);
                let Begin::Fresh(mut m) = self.begin::<pb::SanctionDecision>(&caller, j, "", "", &()).await? else {
                    continue;
                };
                let Some(mut d) = store::get::<_, pb::SanctionDecision>(m.txn(), Table::Decisions, &name).await? else {
                    continue;
                };
                // A voided decision is a tombstone: it has no deadline left to miss.
                if d.voided || d.state() != DecisionState::Issued || instant(d.compliance_deadline.as_ref()) > now {
                    continue;
                }
                d.state = DecisionState::Overdue as i32;
                d.etag = next_etag(&d.etag);
                store::put_decision(m.txn(), j, &d.name, d.state, instant(d.compliance_deadline.as_ref()), &d).await?;
                m.append(&d.name, "OVERDUE", &d, "compliance deadline passed").await?;
                m.commit(&d).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    // ------------------------------------------------------------------ reference data and figures

    /// ListCatalogue.
    pub fn list_catalogue(&self, req: pb::ListCatalogueRequest) -> ApiResult<pb::ListCatalogueResponse> {
        let catalogue = self.catalogue.get();
        let entries = if req.all_versions {
            catalogue.all().to_vec()
        } else {
            let mut v = Violations::new();
            let at = match &req.as_of {
                None => Utc::now(),
                Some(t) => required_instant(Some(t), "as_of", &mut v).unwrap_or_else(Utc::now),
            };
            v.finish()?;
            catalogue.all_in_force(at)
        };
        Ok(pb::ListCatalogueResponse { entries, catalogue_version: catalogue.version().to_owned() })
    }

    /// ListAgencies.
    pub fn list_agencies(&self) -> pb::ListAgenciesResponse {
        pb::ListAgenciesResponse { agencies: self.agencies.to_vec() }
    }

    /// GetStatistics: figures of a period as the log stood at `as_of`.
    pub async fn statistics(
        &self,
        caller: &Caller,
        req: pb::GetStatisticsRequest,
    ) -> ApiResult<pb::GetStatisticsResponse> {
        let j = self.parent(&req.jurisdiction, "jurisdiction")?;
        caller.authorize_read(&j)?;
        let now = Utc::now();
        let mut v = Violations::new();
        let as_of = match &req.as_of {
            None => now,
            Some(t) => required_instant(Some(t), "as_of", &mut v).unwrap_or(now),
        };
        if as_of > now + Duration::seconds(1) {
            v.add("as_of", "is in the future; figures exist only up to now");
        }
        let (from, to) = match (&req.period_start, &req.period_end) {
            (None, None) => (DateTime::<Utc>::UNIX_EPOCH, as_of),
            (s, e) => {
                let s = required_instant(s.as_ref(), "period_start", &mut v);
                let e = required_instant(e.as_ref(), "period_end", &mut v);
                if let (Some(s), Some(e)) = (s, e)
                    && e <= s
                {
                    v.add("period_end", "must be after period_start");
                }
                (s.unwrap_or_default(), e.unwrap_or_default())
            }
        };
        v.finish()?;
        let conn = self.db.conn();
        let seq = store::sequence_at(conn, &j, as_of).await?;
        let mut out = pb::GetStatisticsResponse {
            jurisdiction: j.to_string(),
            as_of: Some(timestamp(as_of)),
            log_sequence: seq,
            ..Default::default()
        };
        for (event, code, count, sites, amount) in store::event_figures(conn, &j, seq, from, to).await? {
            match event.as_str() {
                "plan" => out.plans = count,
                "inspection" => {
                    out.inspections = count;
                    out.sites_inspected = sites;
                }
                "violation" => out.violations.push(pb::ViolationCount { code, count }),
                "decision" => {
                    out.decisions = count;
                    out.fines_imposed_vnd = amount;
                }
                "suspended" => out.licences_suspended = count,
                "revoked" => out.licences_revoked = count,
                _ => {}
            }
        }
        out.violations.sort_by(|a, b| a.code.cmp(&b.code));
        out.fines_collected_vnd = store::collected(conn, &j, seq, from, to).await?;
        Ok(out)
    }
}

fn stale(sent: &str, current: &str) -> ApiError {
    ApiError::new(Reason::StaleEtag, format!("etag '{sent}' is stale; the current one is '{current}'"))
}

#[allow(clippy::too_many_arguments)]
async fn event(
    m: &Mutation,
    j: &Jurisdiction,
    seq: u64,
    resource: &str,
    event: &str,
    idx: i32,
    at: DateTime<Utc>,
    code: &str,
    site: &str,
    amount: i64,
) -> ApiResult<()> {
    store::put_event(m.txn(), store::Event { jurisdiction: j, seq, resource, event, idx, at, code, site, amount }).await
}

/// Keeps the unused-import lint honest for helpers only some builds use.
#[allow(dead_code)]
fn _uses() {
    let mut v = Violations::new();
    known_enum::<PlanState>(0, "", &mut v);
}
