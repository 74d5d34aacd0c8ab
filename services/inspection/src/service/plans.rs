//! Inspection plans: create, read, list and advance them.

use einfo_common::auth::Caller;
use einfo_common::changelog::Begin;
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
use einfo_common::fields::{
    MAX_NAME, MAX_NUMBER, instant, name, new_id, next_etag, next_token, page_after, page_size, query_fingerprint,
    required_enum, required_instant, resource,
};
use einfo_proto::inspection::v1 as pb;
use einfo_proto::methods;
use pb::PlanState;

use super::{Inspection, event, stale};
use crate::store::{self, Table};

impl Inspection {
    /// CreatePlan.
    pub async fn create_plan(&self, caller: &Caller, mut req: pb::CreatePlanRequest) -> ApiResult<pb::InspectionPlan> {
        let j = self.parent(&req.parent, "parent")?;
        let p = req.plan.clone().unwrap_or_default();
        let mut v = Violations::new();
        let number = name(&p.decision_number, "plan.decision_number", MAX_NUMBER, &mut v);
        required_instant(p.decision_time.as_ref(), "plan.decision_time", &mut v);
        let start = required_instant(p.period_start.as_ref(), "plan.period_start", &mut v);
        let end = required_instant(p.period_end.as_ref(), "plan.period_end", &mut v);
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            v.add("plan.period_end", "must be after period_start");
        }
        let lead = name(&p.lead_unit, "plan.lead_unit", MAX_NAME, &mut v);
        self.known_agencies(&p.coordinating_agencies, "plan.coordinating_agencies", &mut v);
        self.known_agencies(&p.participating_agencies, "plan.participating_agencies", &mut v);
        let issuer_title = einfo_common::fields::text(
            &p.issuer_title,
            "plan.issuer_title",
            MAX_NAME,
            einfo_common::fields::Lines::One,
            &mut v,
        );
        for (i, s) in p.target_sites.iter().enumerate() {
            match resource(s, &format!("plan.target_sites[{i}]"), "sites", self.scheme) {
                Ok(sj) if sj == j => {}
                Ok(sj) => v.add(format!("plan.target_sites[{i}]"), format!("{s} is a site of {sj}")),
                Err(e) => v.add(format!("plan.target_sites[{i}]"), e.message),
            }
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::inspection::inspection_service::CREATE_PLAN, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let plan = pb::InspectionPlan {
            name: format!("{j}/plans/{}", new_id()),
            decision_number: number,
            lead_unit: lead,
            issuer_title,
            state: PlanState::Planned as i32,
            etag: "1".into(),
            ..p
        };
        store::put_plan(m.txn(), &j, &plan.name, &plan).await?;
        let seq = m.append(&plan.name, "CREATE", &plan, "").await?;
        let at = instant(plan.decision_time.as_ref());
        event(&m, &j, seq, &plan.name, "plan", 0, at, round_code(&plan), "", 0).await?;
        m.commit(&plan).await?;
        Ok(plan)
    }

    fn known_agencies(&self, codes: &[String], field: &str, v: &mut Violations) {
        for (i, a) in codes.iter().enumerate() {
            if !self.agencies.iter().any(|x| &x.code == a) {
                v.add(format!("{field}[{i}]"), format!("unknown agency '{a}' (see ListAgencies)"));
            }
        }
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
        self.known_agencies(&req.participating_agencies, "participating_agencies", &mut v);
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::inspection::inspection_service::ADVANCE_PLAN, &request_id, &req)
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
        let joint_before = round_code(&plan);
        if !req.participating_agencies.is_empty() {
            plan.participating_agencies = req.participating_agencies.clone();
        }
        plan.etag = next_etag(&plan.etag);
        store::put_plan(m.txn(), &j, &plan.name, &plan).await?;
        let seq = m.append(&plan.name, "ADVANCE", &plan, "").await?;
        if round_code(&plan) != joint_before {
            let at = instant(plan.decision_time.as_ref());
            event(&m, &j, seq, &plan.name, "plan", 0, at, round_code(&plan), "", 0).await?;
        }
        m.commit(&plan).await?;
        Ok(plan)
    }
}

/// How a round counts: "joint" when another body took part (the agencies recorded as taking
/// part, or, until they are, the coordinating agencies planned), "" otherwise.
pub(crate) fn round_code(plan: &pb::InspectionPlan) -> &'static str {
    let others =
        if plan.participating_agencies.is_empty() { &plan.coordinating_agencies } else { &plan.participating_agencies };
    if others.is_empty() { "" } else { "joint" }
}
