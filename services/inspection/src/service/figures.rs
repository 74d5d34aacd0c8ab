//! Reference data (the violation catalogue, the agencies) and the statistics of a jurisdiction.

use chrono::{DateTime, Duration, Utc};
use einfo_common::auth::Caller;
use einfo_common::error::{ApiResult, Violations};
use einfo_common::fields::{required_instant, timestamp};
use einfo_proto::inspection::v1 as pb;

use super::Inspection;
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
        let seq = store::sequence_at(conn, &j, as_of).await?;
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
        Ok(out)
    }
}
