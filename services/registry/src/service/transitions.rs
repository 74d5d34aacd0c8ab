//! Time-driven transitions (licence expiry, the end of a suspension or of a record) and the
//! re-derivation of a site's legal status.

use chrono::{DateTime, Utc};
use einfo_common::auth::Caller;
use einfo_common::changelog::{Begin, Mutation};
use einfo_common::error::ApiResult;
use einfo_common::fields::next_etag;
use einfo_domain::Jurisdiction;
use einfo_proto::registry::v1 as pb;
use pb::LicenceState;

use super::Registry;
use crate::convert::{instant, timestamp};
use crate::{status, store};

impl Registry {
    /// Writes every time-driven transition due at `now` in every hosted province, as the
    /// system actor: licence expiry, the end of a suspension, the end of a trial or a
    /// registration; and the re-derivation of sites stored with a status that is no longer
    /// derived (`TRIAL`, before schema version 4), logged as new entries. Returns how many
    /// transitions were written.
    pub async fn run_clock(&self, now: DateTime<Utc>) -> ApiResult<usize> {
        use std::sync::atomic::Ordering;
        let mut written = 0;
        let rederive = !self.rederived.load(Ordering::Relaxed);
        let mut stored_as_trial = 0;
        for j in self.hosted.iter() {
            let due = store::due(self.db.conn(), j, now).await?;
            for l in due.expiring.iter().chain(due.lapsing.iter()) {
                written += self.transition_licence(j, &l.name, now).await? as usize;
            }
            for r in &due.ending {
                written += self.end_record(j, r).await? as usize;
            }
            if rederive {
                let sites = store::stored_as_trial(self.db.conn(), j).await?;
                stored_as_trial += sites.len();
                for site in &sites {
                    written += self.rederive(j, site).await? as usize;
                }
            }
        }
        if rederive && stored_as_trial == 0 {
            self.rederived.store(true, Ordering::Relaxed);
        }
        Ok(written)
    }

    async fn transition_licence(&self, j: &Jurisdiction, name: &str, now: DateTime<Utc>) -> ApiResult<bool> {
        let caller = Caller::system(*j);
        let Begin::Fresh(mut m) = self.begin::<pb::Licence>(&caller, j, "", "", &()).await? else { return Ok(false) };
        let Some(mut l) = store::get_licence(m.txn(), name).await? else { return Ok(false) };
        let expired = instant(l.expire_time.as_ref()) <= now;
        let (op, state) = match l.state() {
            LicenceState::Valid if expired => ("EXPIRE", LicenceState::Expired),
            LicenceState::Suspended if instant(l.suspended_until.as_ref()) <= now => {
                ("SUSPENSION_LAPSE", if expired { LicenceState::Expired } else { LicenceState::Valid })
            }
            // Changed since it was found due.
            _ => return Ok(false),
        };
        l.state = state as i32;
        if op == "SUSPENSION_LAPSE" {
            l.suspended_until = None;
        }
        self.save_licence(&mut m, j, &mut l, op, "", None).await?;
        m.commit(&l).await?;
        Ok(true)
    }

    async fn end_record(&self, j: &Jurisdiction, r: &pb::SiteRecord) -> ApiResult<bool> {
        let caller = Caller::system(*j);
        let Begin::Fresh(mut m) = self.begin::<pb::SiteRecord>(&caller, j, "", "", &()).await? else {
            return Ok(false);
        };
        store::put_record(m.txn(), j, r, true).await?;
        m.append(&r.name, "RECORD_END", r, "").await?;
        self.restatus(&mut m, j, &r.site, "record ended").await?;
        m.commit(r).await?;
        Ok(true)
    }

    async fn rederive(&self, j: &Jurisdiction, name: &str) -> ApiResult<bool> {
        let caller = Caller::system(*j);
        let Begin::Fresh(mut m) = self.begin::<pb::Site>(&caller, j, "", "", &()).await? else { return Ok(false) };
        self.restatus(&mut m, j, name, "trial operation is a flag beside the legal status (registry schema 4)").await?;
        let site = store::get_site(m.txn(), name).await?.unwrap_or_default();
        Ok(!m.commit(&site).await?.is_empty())
    }

    /// Re-derives a site's legal status and trial flag; when either changed, stores and logs the
    /// site.
    pub(super) async fn restatus(
        &self,
        m: &mut Mutation,
        j: &Jurisdiction,
        site_name: &str,
        why: &str,
    ) -> ApiResult<()> {
        let Some(mut site) = store::get_site(m.txn(), site_name).await? else { return Ok(()) };
        let now = m.now();
        let licences = store::site_licences(m.txn(), site_name).await?;
        let records = store::site_records(m.txn(), site_name).await?;
        let apps = store::site_applications(m.txn(), site_name).await?;
        let derived = status::derive(&licences, &records, &apps, now);
        if derived.status as i32 == site.legal_status && derived.trial == site.trial {
            return Ok(());
        }
        let before = site.clone();
        site.legal_status = derived.status as i32;
        site.trial = derived.trial;
        site.etag = next_etag(&site.etag);
        site.update_time = Some(timestamp(now));
        store::put_site(m.txn(), &site).await?;
        let seq = m.append(&site.name, "STATUS", &site, why).await?;
        store::put_site_history(m.txn(), j, seq, Some(&before), &site).await
    }
}
