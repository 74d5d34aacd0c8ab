//! Statistics of a jurisdiction and the site kinds.

use chrono::{DateTime, Utc};
use einfo_common::auth::Caller;
use einfo_common::error::{ApiResult, Violations};
use einfo_domain::Jurisdiction;
use einfo_proto::registry::v1 as pb;

use super::Registry;
use crate::convert::{required_instant, timestamp};
use crate::store;

impl Registry {
    /// GetStatistics: figures as the log stood at `as_of`, and dated facts in the period.
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
        if as_of > now {
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
        if req.as_of.is_none() && req.period_start.is_none() && req.period_end.is_none() {
            // Figures of now, of all time: the running counts, a few rows whatever the history.
            return Ok(figures(&j, as_of, store::current_figures(conn, &j, as_of).await?));
        }
        let seq = store::sequence_at(conn, &j, as_of).await?;
        let (pending, overdue) = store::pending_applications(conn, &j, seq, as_of).await?;
        let f = store::Figures {
            seq,
            sites: store::site_counts(conn, &j, seq).await?,
            pending,
            overdue,
            events: store::event_counts(conn, &j, seq, from, to).await?,
        };
        Ok(figures(&j, as_of, f))
    }

    /// ListSiteKinds.
    pub fn site_kinds(&self) -> pb::ListSiteKindsResponse {
        pb::ListSiteKindsResponse { kinds: self.kinds.all().to_vec() }
    }
}

/// The GetStatistics answer of a jurisdiction's figures as of `as_of`.
fn figures(j: &Jurisdiction, as_of: DateTime<Utc>, f: store::Figures) -> pb::GetStatisticsResponse {
    let mut out = pb::GetStatisticsResponse {
        jurisdiction: j.to_string(),
        as_of: Some(timestamp(as_of)),
        log_sequence: f.seq,
        sites: f.sites,
        applications_pending: f.pending,
        applications_overdue: f.overdue,
        ..Default::default()
    };
    for (event, n) in f.events {
        match event.as_str() {
            "licence_issued" => out.licences_issued = n,
            "licence_suspended" => out.licences_suspended = n,
            "licence_revoked" => out.licences_revoked = n,
            "application_received" => out.applications_received = n,
            "unlicensed_found" => out.unlicensed_found = n,
            _ => {}
        }
    }
    out
}
