//! Inspections: record, read and list them, with their violations checked against the catalogue.

use einfo_common::auth::Caller;
use einfo_common::changelog::Begin;
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
use einfo_common::fields::{
    Lines, MAX_FINDINGS, MAX_NAME, MAX_NOTES, MAX_URL, instant, name, new_id, next_token, page_after, page_size,
    query_fingerprint, required_enum, required_instant, resource, text,
};
use einfo_proto::inspection::v1 as pb;
use einfo_proto::methods;
use pb::PlanState;

use super::{Inspection, event};
use crate::store::{self, Table};

/// The fact a violation dealt with without a sanction leaves: its handling's name.
pub(crate) fn handled(y: &pb::Violation) -> Option<&'static str> {
    match y.handling() {
        pb::Handling::Unspecified => None,
        h => Some(h.as_str_name()),
    }
}

impl Inspection {
    /// Checks the violations of an inspection against the catalogue; their descriptions,
    /// normalised.
    fn check_violations(&self, list: &[pb::Violation], prefix: &str, v: &mut Violations) -> Vec<String> {
        let mut descriptions = Vec::with_capacity(list.len());
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
            if pb::Handling::try_from(x.handling).is_err() {
                v.add(f("handling"), format!("{} is not a Handling", x.handling));
            }
            descriptions.push(text(&x.description, &f("description"), MAX_NOTES, Lines::Many, v));
        }
        descriptions
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
            .map(|(i, n)| name(n, &format!("inspection.inspectors[{i}]"), MAX_NAME, &mut v))
            .collect();
        let findings = text(&x.findings, "inspection.findings", MAX_FINDINGS, Lines::Many, &mut v);
        let mut evidence = x.evidence.clone();
        for (i, e) in evidence.iter_mut().enumerate() {
            let field = format!("inspection.evidence[{i}].url");
            match einfo_domain::FreeText::parse(&e.url, MAX_URL, Lines::One) {
                Err(err) => v.add(field, err),
                Ok(url) if !(url.as_str().starts_with("https://") || url.as_str().starts_with("http://")) => {
                    v.add(field, format!("must be an http(s) URL of at most {MAX_URL} characters"))
                }
                Ok(url) => e.url = url.into_string(),
            }
            required_instant(e.capture_time.as_ref(), &format!("inspection.evidence[{i}].capture_time"), &mut v);
            if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                v.add(
                    format!("inspection.evidence[{i}].sha256"),
                    "must be 64 hex digits (SHA-256 of the captured content)",
                );
            }
        }
        let descriptions = self.check_violations(&x.violations, "inspection.violations", &mut v);
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
            .begin(caller, &j, methods::inspection::inspection_service::RECORD_INSPECTION, &request_id, &req)
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
            findings,
            evidence,
            site_display_name: display,
            violations: x
                .violations
                .iter()
                .zip(descriptions)
                .map(|(y, description)| pb::Violation { description, ..y.clone() })
                .collect(),
            ..x
        };
        store::put_inspection(m.txn(), &j, &ins.name, &ins.site, &ins).await?;
        let seq = m.append(&ins.name, "CREATE", &ins, "").await?;
        let at = instant(ins.inspect_time.as_ref());
        event(&m, &j, seq, &ins.name, "inspection", 0, at, "", &ins.site, 0).await?;
        for (i, y) in ins.violations.iter().enumerate() {
            event(&m, &j, seq, &ins.name, "violation", i as i32, at, &y.code, &ins.site, 0).await?;
            if let Some(how) = handled(y) {
                event(&m, &j, seq, &ins.name, "handled", i as i32, at, how, &ins.site, 0).await?;
            }
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
}
