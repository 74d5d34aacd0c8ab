//! Reference data (the violation catalogue, the agencies) and the statistics of a jurisdiction.

use chrono::{DateTime, Duration, Utc};
use einfo_common::auth::Caller;
use einfo_common::changelog::{LogId, states_at};
use einfo_common::error::{ApiResult, Violations};
use einfo_common::fields::{next_token, page_after, page_size, query_fingerprint, required_instant, timestamp};
use einfo_proto::inspection::v1 as pb;

use super::{Inspection, SERVICE};
use crate::store;

impl Inspection {
    /// ListCatalogue.
    pub fn list_catalogue(&self, req: pb::ListCatalogueRequest) -> ApiResult<pb::ListCatalogueResponse> {
        let catalogue = self.catalogue.get();
        let entries = if req.all_versions {
            catalogue.all().to_vec()
        } else {
            let mut v = Violations::new();
            let at = match &req.as_of {
                None => self.db.now(),
                Some(t) => required_instant(Some(t), "as_of", &mut v).unwrap_or_else(|| self.db.now()),
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

    /// ListDecisionsAsOf: the decisions dated in a period as the log stood at `as_of`, not
    /// voided, each with the violations it sanctions (from its inspection as it stood then).
    pub async fn list_decisions_as_of(
        &self,
        caller: &Caller,
        req: pb::ListDecisionsAsOfRequest,
    ) -> ApiResult<pb::ListDecisionsAsOfResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        let mut v = Violations::new();
        let as_of = required_instant(req.as_of.as_ref(), "as_of", &mut v);
        if as_of.is_some_and(|t| t > self.db.now() + Duration::seconds(1)) {
            v.add("as_of", "is in the future; decisions exist only up to now");
        }
        let from = required_instant(req.period_start.as_ref(), "period_start", &mut v);
        let to = required_instant(req.period_end.as_ref(), "period_end", &mut v);
        if let (Some(s), Some(e)) = (from, to)
            && e <= s
        {
            v.add("period_end", "must be after period_start");
        }
        let size = page_size(req.page_size, &mut v);
        let fingerprint =
            query_fingerprint(&pb::ListDecisionsAsOfRequest { page_size: 0, page_token: String::new(), ..req.clone() });
        let after = page_after(&req.page_token, &fingerprint, &mut v);
        v.finish()?;
        let (as_of, from, to) = (as_of.unwrap_or_default(), from.unwrap_or_default(), to.unwrap_or_default());
        let after = after.unwrap_or_default();
        let conn = self.db.conn();
        let log = LogId { jurisdiction: j, service: SERVICE };
        let seq = einfo_common::changelog::sequence_at(conn, &log, as_of).await?;
        let dated = |d: &pb::SanctionDecision| {
            let t = einfo_common::fields::instant(d.decision_time.as_ref());
            from <= t && t < to
        };
        let mut page: Vec<(String, pb::SanctionDecision)> = states_at::<_, pb::SanctionDecision>(conn, &log, seq)
            .await?
            .into_iter()
            .filter(|(name, d)| !d.voided && dated(d) && name.as_str() > after.as_str())
            .take(size as usize + 1)
            .collect();
        let next_page_token = next_token(&mut page, size, &fingerprint, |(name, _)| name);
        let inspections =
            if page.is_empty() { Default::default() } else { states_at::<_, pb::Inspection>(conn, &log, seq).await? };
        let entries = page
            .into_iter()
            .map(|(_, decision)| {
                let found = inspections.get(&decision.inspection).map_or(&[][..], |i| i.violations.as_slice());
                let violations = if decision.violation_indexes.is_empty() {
                    found.to_vec()
                } else {
                    decision.violation_indexes.iter().filter_map(|i| found.get(*i as usize).cloned()).collect()
                };
                pb::DecisionEntry { decision: Some(decision), violations }
            })
            .collect();
        Ok(pb::ListDecisionsAsOfResponse { entries, next_page_token, log_sequence: seq })
    }

    /// GetStatistics: figures of a period as the log stood at `as_of`.
    pub async fn statistics(
        &self,
        caller: &Caller,
        req: pb::GetStatisticsRequest,
    ) -> ApiResult<pb::GetStatisticsResponse> {
        let j = self.parent(&req.jurisdiction, "jurisdiction")?;
        caller.authorize_read(&j)?;
        let now = self.db.now();
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
        let seq =
            einfo_common::changelog::sequence_at(conn, &LogId { jurisdiction: j, service: SERVICE }, as_of).await?;
        let mut out = pb::GetStatisticsResponse {
            jurisdiction: j.to_string(),
            as_of: Some(timestamp(as_of)),
            log_sequence: seq,
            ..Default::default()
        };
        for (event, code, count, sites, amount) in store::event_figures(conn, &j, seq, from, to).await? {
            match event.as_str() {
                "plan" => {
                    out.plans += count;
                    if code == "joint" {
                        out.joint_rounds += count;
                    }
                }
                "inspection" => {
                    out.inspections = count;
                    out.sites_inspected = sites;
                }
                "violation" => out.violations.push(pb::ViolationCount { code, count }),
                "handled" => {
                    let handling = pb::Handling::from_str_name(&code).unwrap_or_default() as i32;
                    out.handled.push(pb::HandlingCount { handling, count });
                }
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
        out.handled.sort_by_key(|h| h.handling);
        out.fines_collected_vnd = store::collected(conn, &j, seq, from, to).await?;
        // Warnings and removals ordered: from the decisions of the period as they stood at `seq`
        // (a corrected decision counts as corrected, a voided one not at all).
        let log = LogId { jurisdiction: j, service: SERVICE };
        for d in states_at::<_, pb::SanctionDecision>(conn, &log, seq).await?.values() {
            let t = einfo_common::fields::instant(d.decision_time.as_ref());
            if d.voided || t < from || t >= to {
                continue;
            }
            out.warnings += u64::from(d.warning);
            out.content_removals += u64::from(d.measures.iter().any(|m| m.kind() == pb::MeasureKind::ContentRemoval));
        }
        Ok(out)
    }
}
