//! Statistics of a jurisdiction and the site kinds.

use chrono::{DateTime, Utc};
use einfo_common::auth::Caller;
use einfo_common::error::{ApiResult, Violations};
use einfo_domain::Jurisdiction;
use einfo_proto::registry::v1 as pb;

use einfo_common::changelog::{LogId, states_at};
use einfo_common::fields::{next_token, page_after, page_size, query_fingerprint};

use super::{Registry, SERVICE};
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
        let seq =
            einfo_common::changelog::sequence_at(conn, &LogId { jurisdiction: j, service: SERVICE }, as_of).await?;
        let (pending, overdue) = store::pending_applications(conn, &j, seq, as_of).await?;
        let f = store::Figures {
            seq,
            sites: store::site_counts(conn, &j, seq).await?,
            pending,
            overdue,
            events: store::event_counts(conn, &j, seq, from, to).await?,
            expiring: states_at::<_, pb::Licence>(conn, &LogId { jurisdiction: j, service: SERVICE }, seq)
                .await?
                .values()
                .filter(|l| store::expiring(l, as_of))
                .count() as u64,
        };
        Ok(figures(&j, as_of, f))
    }

    /// ListSitesAsOf: the register as the log stood at `as_of`, every site not voided with its
    /// licence (the one in force then, or else the last issued), a person's data masked.
    pub async fn list_sites_as_of(
        &self,
        caller: &Caller,
        req: pb::ListSitesAsOfRequest,
    ) -> ApiResult<pb::ListSitesAsOfResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        let mut v = Violations::new();
        let as_of = required_instant(req.as_of.as_ref(), "as_of", &mut v);
        // A second's leeway, as inspection gives: the reporting service asks with its own clock.
        if as_of.is_some_and(|t| t > self.db.now() + chrono::Duration::seconds(1)) {
            v.add("as_of", "is in the future; the register exists only up to now");
        }
        let size = page_size(req.page_size, &mut v);
        let fingerprint =
            query_fingerprint(&pb::ListSitesAsOfRequest { page_size: 0, page_token: String::new(), ..req.clone() });
        let after = page_after(&req.page_token, &fingerprint, &mut v);
        v.finish()?;
        let (as_of, after) = (as_of.unwrap_or_default(), after.unwrap_or_default());
        let conn = self.db.conn();
        let log = LogId { jurisdiction: j, service: SERVICE };
        let seq = einfo_common::changelog::sequence_at(conn, &log, as_of).await?;
        let sites = states_at::<_, pb::Site>(conn, &log, seq).await?;
        let mut licences: std::collections::HashMap<String, pb::Licence> = std::collections::HashMap::new();
        for l in states_at::<_, pb::Licence>(conn, &log, seq).await?.into_values() {
            let better = licences.get(&l.site).is_none_or(|held| licence_rank(&l) > licence_rank(held));
            if better {
                licences.insert(l.site.clone(), l);
            }
        }
        let mut page: Vec<(String, pb::Site)> = sites
            .into_iter()
            .filter(|(name, s)| !s.voided && name.as_str() > after.as_str())
            .take(size as usize + 1)
            .collect();
        let next_page_token = next_token(&mut page, size, &fingerprint, |(name, _)| name);
        let entries = page
            .into_iter()
            .map(|(name, mut site)| {
                einfo_common::privacy::mask_site(&mut site);
                pb::RegisterEntry { site: Some(site), licence: licences.remove(&name) }
            })
            .collect();
        Ok(pb::ListSitesAsOfResponse { entries, next_page_token, log_sequence: seq })
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
        licences_expiring: f.expiring,
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

/// Which of a site's licences the register shows: one in force (valid or suspended) before one
/// that is not, then the later issued.
fn licence_rank(l: &pb::Licence) -> (bool, i64, i32) {
    let in_force = [pb::LicenceState::Valid as i32, pb::LicenceState::Suspended as i32].contains(&l.state);
    let issued = l.issue_time.as_ref().map_or((0, 0), |t| (t.seconds, t.nanos));
    (in_force, issued.0, issued.1)
}
