//! Licences: read, list, amend, renew, suspend and revoke them, and apply a sanction decision.

use chrono::Duration;
use einfo_common::auth::Caller;
use einfo_common::changelog::{Begin, Mutation};
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
use einfo_common::fields::{next_etag, next_token, page_after, page_size, query_fingerprint};
use einfo_domain::Jurisdiction;
use einfo_domain::text::DisplayName;
use einfo_proto::methods;
use einfo_proto::registry::v1 as pb;
use pb::LicenceState;
use prost::Message;

use super::{Registry, live_site};
use crate::convert::{self, instant, required_instant, timestamp};
use crate::store;

impl Registry {
    /// GetLicence.
    pub async fn get_licence(&self, caller: &Caller, req: pb::GetLicenceRequest) -> ApiResult<pb::Licence> {
        let j = self.resource(&req.name, "name", "licences")?;
        caller.authorize_read(&j)?;
        store::get_licence(self.db.conn(), &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))
    }

    /// ListLicences.
    pub async fn list_licences(
        &self,
        caller: &Caller,
        req: pb::ListLicencesRequest,
    ) -> ApiResult<pb::ListLicencesResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        let mut v = Violations::new();
        if req.expiring_within_days < 0 || req.expiring_within_days > 3650 {
            v.add("expiring_within_days", "must be between 0 and 3650");
        }
        if !req.site.is_empty()
            && let Err(e) = self.resource(&req.site, "site", "sites")
        {
            return Err(e);
        }
        let size = page_size(req.page_size, &mut v);
        let fingerprint =
            query_fingerprint(&pb::ListLicencesRequest { page_size: 0, page_token: String::new(), ..req.clone() });
        let after = page_after(&req.page_token, &fingerprint, &mut v);
        v.finish()?;
        let before =
            (req.expiring_within_days > 0).then(|| self.db.now() + Duration::days(req.expiring_within_days as i64));
        let mut licences = store::list_licences(
            self.db.conn(),
            &j,
            before,
            (!req.site.is_empty()).then_some(req.site.as_str()),
            &after.unwrap_or_default(),
            size as u64 + 1,
        )
        .await?;
        let next_page_token = next_token(&mut licences, size, &fingerprint, |l| &l.name);
        Ok(pb::ListLicencesResponse { licences, next_page_token })
    }

    async fn licence_step(
        &self,
        caller: &Caller,
        name: &str,
        method: &'static str,
        request_id: &str,
        body: &impl Message,
    ) -> ApiResult<Result<(Mutation, Jurisdiction, pb::Licence), pb::Licence>> {
        let j = self.resource(name, "name", "licences")?;
        let m = match self.begin(caller, &j, method, request_id, body).await? {
            Begin::Replay(r) => return Ok(Err(r)),
            Begin::Fresh(m) => m,
        };
        let l = store::get_licence(m.txn(), name).await?.ok_or_else(|| ApiError::not_found(name))?;
        Ok(Ok((m, j, l)))
    }

    pub(super) async fn save_licence(
        &self,
        m: &mut Mutation,
        j: &Jurisdiction,
        l: &mut pb::Licence,
        op: &str,
        reason: &str,
        event: Option<&str>,
    ) -> ApiResult<()> {
        l.etag = next_etag(&l.etag);
        l.history.push(pb::LicenceEvent {
            operation: op.into(),
            time: Some(timestamp(m.now())),
            reason: reason.into(),
        });
        store::put_licence(m.txn(), j, l).await?;
        let seq = m.append(&l.name, op, &*l, reason).await?;
        if let Some(e) = event {
            store::put_event(m.txn(), j, seq, &l.name, e, m.now()).await?;
        }
        self.restatus(m, j, &l.site.clone(), &format!("licence {}", op.to_ascii_lowercase())).await
    }

    /// AmendLicence.
    pub async fn amend_licence(&self, caller: &Caller, mut req: pb::AmendLicenceRequest) -> ApiResult<pb::Licence> {
        let input = req.licence.clone().unwrap_or_default();
        let j = self.resource(&input.name, "licence.name", "licences")?;
        let _ = j;
        let paths = req.update_mask.clone().map(|m| m.paths).unwrap_or_default();
        let mut v = Violations::new();
        let reason = convert::reason(&req.reason, "reason", &mut v);
        if paths.is_empty() {
            v.add("update_mask", "name at least one field to change");
        }
        for (i, p) in paths.iter().enumerate() {
            if !["number", "issuing_authority", "expire_time"].contains(&p.as_str()) {
                v.add(
                    format!("update_mask.paths[{i}]"),
                    format!("unknown or read-only field '{p}'; allowed: number, issuing_authority, expire_time"),
                );
            }
        }
        if input.etag.is_empty() {
            v.add("licence.etag", "is required: send the etag you read");
        }
        let number = paths
            .iter()
            .any(|p| p == "number")
            .then(|| {
                v.check("licence.number", DisplayName::parse(&input.number, convert::MAX_NUMBER))
                    .map(|n| n.into_string())
            })
            .flatten();
        // Like ApproveApplication: an issuing authority may be cleared, and is a name when set.
        let authority = paths.iter().any(|p| p == "issuing_authority").then(|| {
            if input.issuing_authority.trim().is_empty() {
                String::new()
            } else {
                v.check("licence.issuing_authority", DisplayName::parse(&input.issuing_authority, convert::MAX_NAME))
                    .map(|n| n.into_string())
                    .unwrap_or_default()
            }
        });
        let expire = paths
            .iter()
            .any(|p| p == "expire_time")
            .then(|| required_instant(input.expire_time.as_ref(), "licence.expire_time", &mut v))
            .flatten();
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut l) = match self
            .licence_step(caller, &input.name, methods::registry::registry_service::AMEND_LICENCE, &request_id, &req)
            .await?
        {
            Ok(x) => x,
            Err(replay) => return Ok(replay),
        };
        if l.etag != input.etag {
            return Err(ApiError::new(
                Reason::StaleEtag,
                format!("etag '{}' is stale; the current one is '{}'", input.etag, l.etag),
            ));
        }
        expect_licence_state(&l, &[LicenceState::Valid, LicenceState::Suspended, LicenceState::Expired])?;
        if let Some(n) = number {
            l.number = n;
        }
        if let Some(a) = authority {
            l.issuing_authority = a;
        }
        if let Some(e) = expire {
            if e <= instant(l.issue_time.as_ref()) {
                return Err(ApiError::field("licence.expire_time", "must be after issue_time"));
            }
            l.expire_time = Some(timestamp(e));
            if l.state() == LicenceState::Expired && e > m.now() {
                l.state = LicenceState::Valid as i32;
            }
        }
        self.save_licence(&mut m, &j, &mut l, "AMEND", &reason, None).await?;
        m.commit(&l).await?;
        Ok(l)
    }

    /// RenewLicence.
    pub async fn renew_licence(&self, caller: &Caller, mut req: pb::RenewLicenceRequest) -> ApiResult<pb::Licence> {
        self.resource(&req.name, "name", "licences")?;
        let mut v = Violations::new();
        let expire = required_instant(req.expire_time.as_ref(), "expire_time", &mut v);
        v.finish()?;
        let expire = expire.unwrap_or_default();
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut l) = match self
            .licence_step(caller, &req.name, methods::registry::registry_service::RENEW_LICENCE, &request_id, &req)
            .await?
        {
            Ok(x) => x,
            Err(replay) => return Ok(replay),
        };
        expect_licence_state(&l, &[LicenceState::Valid, LicenceState::Expired])?;
        if expire <= instant(l.expire_time.as_ref()) || expire <= m.now() {
            return Err(ApiError::field("expire_time", "must be after the current expiry and in the future"));
        }
        l.expire_time = Some(timestamp(expire));
        l.state = LicenceState::Valid as i32;
        self.save_licence(&mut m, &j, &mut l, "RENEW", "", None).await?;
        m.commit(&l).await?;
        Ok(l)
    }

    /// SuspendLicence.
    pub async fn suspend_licence(&self, caller: &Caller, mut req: pb::SuspendLicenceRequest) -> ApiResult<pb::Licence> {
        self.resource(&req.name, "name", "licences")?;
        let mut v = Violations::new();
        let reason = convert::reason(&req.reason, "reason", &mut v);
        let until = required_instant(req.until.as_ref(), "until", &mut v);
        if until.is_some_and(|u| u <= self.db.now()) {
            v.add("until", "must be in the future");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut l) = match self
            .licence_step(caller, &req.name, methods::registry::registry_service::SUSPEND_LICENCE, &request_id, &req)
            .await?
        {
            Ok(x) => x,
            Err(replay) => return Ok(replay),
        };
        expect_licence_state(&l, &[LicenceState::Valid])?;
        l.state = LicenceState::Suspended as i32;
        l.suspended_until = until.map(timestamp);
        self.save_licence(&mut m, &j, &mut l, "SUSPEND", &reason, Some("licence_suspended")).await?;
        m.commit(&l).await?;
        Ok(l)
    }

    /// RevokeLicence.
    pub async fn revoke_licence(&self, caller: &Caller, mut req: pb::RevokeLicenceRequest) -> ApiResult<pb::Licence> {
        self.resource(&req.name, "name", "licences")?;
        let mut v = Violations::new();
        let reason = convert::reason(&req.reason, "reason", &mut v);
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut l) = match self
            .licence_step(caller, &req.name, methods::registry::registry_service::REVOKE_LICENCE, &request_id, &req)
            .await?
        {
            Ok(x) => x,
            Err(replay) => return Ok(replay),
        };
        expect_licence_state(&l, &[LicenceState::Valid, LicenceState::Suspended, LicenceState::Expired])?;
        l.state = LicenceState::Revoked as i32;
        l.suspended_until = None;
        self.save_licence(&mut m, &j, &mut l, "REVOKE", &reason, Some("licence_revoked")).await?;
        m.commit(&l).await?;
        Ok(l)
    }

    /// ApplySanction: a sanction decision's suspension or revocation of the site's current licence.
    pub async fn apply_sanction(&self, caller: &Caller, mut req: pb::ApplySanctionRequest) -> ApiResult<pb::Licence> {
        let j = self.resource(&req.site, "site", "sites")?;
        let mut v = Violations::new();
        let measure = match pb::SanctionMeasure::try_from(req.measure) {
            Ok(pb::SanctionMeasure::Unspecified) => {
                v.add("measure", "is required: SUSPEND or REVOKE");
                pb::SanctionMeasure::Unspecified
            }
            Ok(m) => m,
            Err(_) => {
                v.add("measure", format!("unknown enum value {}", req.measure));
                pb::SanctionMeasure::Unspecified
            }
        };
        let until = if measure == pb::SanctionMeasure::Suspend {
            required_instant(req.until.as_ref(), "until", &mut v)
        } else {
            None
        };
        let reason = convert::reason(&format!("sanction decision {}", req.decision.trim()), "decision", &mut v);
        if req.decision.trim().is_empty() {
            v.add("decision", "is required");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m =
            match self.begin(caller, &j, methods::registry::registry_service::APPLY_SANCTION, &request_id, &req).await?
            {
                Begin::Replay(r) => return Ok(r),
                Begin::Fresh(m) => m,
            };
        live_site(&m, &req.site).await?;
        let current = store::site_licences(m.txn(), &req.site)
            .await?
            .into_iter()
            .filter(|l| l.state() != LicenceState::Superseded)
            .max_by_key(|l| (instant(l.issue_time.as_ref()), l.name.clone()));
        let Some(mut l) = current else {
            return Err(ApiError::new(Reason::InvalidState, format!("{} has no licence to {measure:?}", req.site)));
        };
        match measure {
            pb::SanctionMeasure::Suspend => {
                expect_licence_state(&l, &[LicenceState::Valid])?;
                l.state = LicenceState::Suspended as i32;
                l.suspended_until = until.map(timestamp);
                self.save_licence(&mut m, &j, &mut l, "SUSPEND", &reason, Some("licence_suspended")).await?;
            }
            _ => {
                expect_licence_state(&l, &[LicenceState::Valid, LicenceState::Suspended, LicenceState::Expired])?;
                l.state = LicenceState::Revoked as i32;
                l.suspended_until = None;
                self.save_licence(&mut m, &j, &mut l, "REVOKE", &reason, Some("licence_revoked")).await?;
            }
        }
        m.commit(&l).await?;
        Ok(l)
    }
}

fn expect_licence_state(l: &pb::Licence, allowed: &[LicenceState]) -> ApiResult<()> {
    if allowed.contains(&l.state()) {
        Ok(())
    } else {
        Err(ApiError::new(Reason::InvalidState, format!("{} is {:?}; this needs {:?}", l.name, l.state(), allowed)))
    }
}
