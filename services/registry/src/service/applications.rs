//! Licence applications: submission, supplements, rejection and approval (which issues the
//! licence), with the statutory processing deadline.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use einfo_common::auth::Caller;
use einfo_common::changelog::{Begin, Mutation};
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
use einfo_common::fields::{new_id, next_etag, next_token, page_after, page_size, query_fingerprint};
use einfo_domain::Jurisdiction;
use einfo_domain::text::DisplayName;
use einfo_proto::methods;
use einfo_proto::registry::v1 as pb;
use pb::{ApplicationState, LicenceState};
use prost::Message;

use super::{Registry, live_site, vietnam};
use crate::convert::{self, instant, required_instant, timestamp};
use crate::store;

impl Registry {
    /// SubmitApplication.
    pub async fn submit_application(
        &self,
        caller: &Caller,
        mut req: pb::SubmitApplicationRequest,
    ) -> ApiResult<pb::LicenceApplication> {
        let input = req.application.clone().unwrap_or_default();
        let j = self.resource(&input.site, "application.site", "sites")?;
        let mut v = Violations::new();
        let received = required_instant(input.receive_time.as_ref(), "application.receive_time", &mut v);
        if received.is_some_and(|r| r > self.db.now() + Duration::minutes(5)) {
            v.add("application.receive_time", "is in the future");
        }
        let mut items = Vec::new();
        for (i, it) in input.dossier_items.iter().enumerate() {
            if let Some(n) =
                v.check(&format!("application.dossier_items[{i}]"), DisplayName::parse(it, convert::MAX_NAME))
            {
                items.push(n.into_string());
            }
        }
        v.finish()?;
        let received = received.unwrap_or_default();
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::registry::registry_service::SUBMIT_APPLICATION, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let site = live_site(&m, &input.site).await?;
        let days = self.kinds.get(&site.kind).map(|k| k.processing_working_days).unwrap_or(10);
        let app = pb::LicenceApplication {
            name: format!("{j}/applications/{}", new_id()),
            site: input.site.clone(),
            dossier_items: items,
            receive_time: Some(timestamp(received)),
            deadline: Some(timestamp(self.deadline(received, days))),
            state: ApplicationState::Received as i32,
            etag: "1".into(),
            ..Default::default()
        };
        let seq = self.save_application(&mut m, &j, &app, "SUBMIT", "").await?;
        store::put_event(m.txn(), &j, seq, &app.name, "application_received", received).await?;
        self.restatus(&mut m, &j, &app.site, "application received").await?;
        m.commit(&app).await?;
        Ok(with_overdue(app, self.db.now()))
    }

    /// The end of the statutory processing time: the start of the day after the `days`-th
    /// working day following the day of receipt (civil dates in Vietnam).
    pub fn deadline(&self, received: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let date = received.with_timezone(&vietnam()).date_naive();
        let last = self.calendar.get().add_working_days(date, days);
        let next = last.succ_opt().unwrap_or(last).and_time(NaiveTime::MIN);
        vietnam().from_local_datetime(&next).single().map(|d| d.with_timezone(&Utc)).unwrap_or(received)
    }

    async fn save_application(
        &self,
        m: &mut Mutation,
        j: &Jurisdiction,
        app: &pb::LicenceApplication,
        op: &str,
        reason: &str,
    ) -> ApiResult<u64> {
        let stored = pb::LicenceApplication { overdue: false, ..app.clone() };
        store::put_application(m.txn(), j, &stored).await?;
        let seq = m.append(&stored.name, op, &stored, reason).await?;
        store::put_application_history(m.txn(), j, seq, &stored).await?;
        Ok(seq)
    }

    /// GetApplication.
    pub async fn get_application(
        &self,
        caller: &Caller,
        req: pb::GetApplicationRequest,
    ) -> ApiResult<pb::LicenceApplication> {
        let j = self.resource(&req.name, "name", "applications")?;
        caller.authorize_read(&j)?;
        let a =
            store::get_application(self.db.conn(), &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))?;
        Ok(with_overdue(a, self.db.now()))
    }

    /// ListApplications.
    pub async fn list_applications(
        &self,
        caller: &Caller,
        req: pb::ListApplicationsRequest,
    ) -> ApiResult<pb::ListApplicationsResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        let mut v = Violations::new();
        if req.state != 0 {
            convert::known_enum::<ApplicationState>(req.state, "state", &mut v);
        }
        let size = page_size(req.page_size, &mut v);
        let fingerprint =
            query_fingerprint(&pb::ListApplicationsRequest { page_size: 0, page_token: String::new(), ..req.clone() });
        let after = page_after(&req.page_token, &fingerprint, &mut v);
        v.finish()?;
        let now = self.db.now();
        let mut apps = store::list_applications(
            self.db.conn(),
            &j,
            (req.state != 0).then_some(req.state),
            req.overdue_only.then_some(now),
            &after.unwrap_or_default(),
            size as u64 + 1,
        )
        .await?;
        let next_page_token = next_token(&mut apps, size, &fingerprint, |a| &a.name);
        Ok(pb::ListApplicationsResponse {
            applications: apps.into_iter().map(|a| with_overdue(a, now)).collect(),
            next_page_token,
        })
    }

    async fn application_step<R: Message + Default>(
        &self,
        caller: &Caller,
        name: &str,
        method: &'static str,
        request_id: &str,
        body: &impl Message,
    ) -> ApiResult<Result<(Mutation, Jurisdiction, pb::LicenceApplication), R>> {
        let j = self.resource(name, "name", "applications")?;
        let m = match self.begin(caller, &j, method, request_id, body).await? {
            Begin::Replay(r) => return Ok(Err(r)),
            Begin::Fresh(m) => m,
        };
        let app = store::get_application(m.txn(), name).await?.ok_or_else(|| ApiError::not_found(name))?;
        Ok(Ok((m, j, app)))
    }

    /// RequestSupplement.
    pub async fn request_supplement(
        &self,
        caller: &Caller,
        mut req: pb::RequestSupplementRequest,
    ) -> ApiResult<pb::LicenceApplication> {
        let mut v = Violations::new();
        let reason = convert::reason(&req.reason, "reason", &mut v);
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut app) = match self
            .application_step(
                caller,
                &req.name,
                methods::registry::registry_service::REQUEST_SUPPLEMENT,
                &request_id,
                &req,
            )
            .await?
        {
            Ok(x) => x,
            Err(replay) => return Ok(replay),
        };
        expect_app_state(&app, &[ApplicationState::Received])?;
        app.state = ApplicationState::NeedsSupplement as i32;
        app.state_reason = reason.clone();
        app.etag = next_etag(&app.etag);
        self.save_application(&mut m, &j, &app, "REQUEST_SUPPLEMENT", &reason).await?;
        m.commit(&app).await?;
        Ok(with_overdue(app, self.db.now()))
    }

    /// ReceiveSupplement.
    pub async fn receive_supplement(
        &self,
        caller: &Caller,
        mut req: pb::ReceiveSupplementRequest,
    ) -> ApiResult<pb::LicenceApplication> {
        let mut v = Violations::new();
        let received = required_instant(req.receive_time.as_ref(), "receive_time", &mut v);
        if received.is_some_and(|r| r > self.db.now() + Duration::minutes(5)) {
            v.add("receive_time", "is in the future");
        }
        v.finish()?;
        let received = received.unwrap_or_default();
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut app) = match self
            .application_step(
                caller,
                &req.name,
                methods::registry::registry_service::RECEIVE_SUPPLEMENT,
                &request_id,
                &req,
            )
            .await?
        {
            Ok(x) => x,
            Err(replay) => return Ok(replay),
        };
        expect_app_state(&app, &[ApplicationState::NeedsSupplement])?;
        let site = live_site(&m, &app.site).await?;
        let days = self.kinds.get(&site.kind).map(|k| k.processing_working_days).unwrap_or(10);
        app.state = ApplicationState::Received as i32;
        app.state_reason = String::new();
        app.deadline = Some(timestamp(self.deadline(received, days)));
        app.etag = next_etag(&app.etag);
        self.save_application(&mut m, &j, &app, "RECEIVE_SUPPLEMENT", "").await?;
        m.commit(&app).await?;
        Ok(with_overdue(app, self.db.now()))
    }

    /// RejectApplication.
    pub async fn reject_application(
        &self,
        caller: &Caller,
        mut req: pb::RejectApplicationRequest,
    ) -> ApiResult<pb::LicenceApplication> {
        let mut v = Violations::new();
        let reason = convert::reason(&req.reason, "reason", &mut v);
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut app) = match self
            .application_step(
                caller,
                &req.name,
                methods::registry::registry_service::REJECT_APPLICATION,
                &request_id,
                &req,
            )
            .await?
        {
            Ok(x) => x,
            Err(replay) => return Ok(replay),
        };
        expect_app_state(&app, &[ApplicationState::Received, ApplicationState::NeedsSupplement])?;
        app.state = ApplicationState::Rejected as i32;
        app.state_reason = reason.clone();
        app.etag = next_etag(&app.etag);
        self.save_application(&mut m, &j, &app, "REJECT", &reason).await?;
        self.restatus(&mut m, &j, &app.site.clone(), "application rejected").await?;
        m.commit(&app).await?;
        Ok(app)
    }

    /// ApproveApplication: approves and issues the licence; older licences of the site that are
    /// valid or expired are superseded.
    pub async fn approve_application(
        &self,
        caller: &Caller,
        mut req: pb::ApproveApplicationRequest,
    ) -> ApiResult<pb::ApproveApplicationResponse> {
        let input = req.licence.clone().unwrap_or_default();
        let mut v = Violations::new();
        let number =
            v.check("licence.number", DisplayName::parse(&input.number, convert::MAX_NUMBER)).map(|n| n.into_string());
        let authority = if input.issuing_authority.trim().is_empty() {
            String::new()
        } else {
            v.check("licence.issuing_authority", DisplayName::parse(&input.issuing_authority, convert::MAX_NAME))
                .map(|n| n.into_string())
                .unwrap_or_default()
        };
        let issue = required_instant(input.issue_time.as_ref(), "licence.issue_time", &mut v);
        let expire = required_instant(input.expire_time.as_ref(), "licence.expire_time", &mut v);
        if let (Some(i), Some(e)) = (issue, expire)
            && e <= i
        {
            v.add("licence.expire_time", "must be after issue_time");
        }
        v.finish()?;
        let (issue, expire) = (issue.unwrap_or_default(), expire.unwrap_or_default());
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut app) = match self
            .application_step(
                caller,
                &req.name,
                methods::registry::registry_service::APPROVE_APPLICATION,
                &request_id,
                &req,
            )
            .await?
        {
            Ok(x) => x,
            Err(replay) => return Ok(replay),
        };
        expect_app_state(&app, &[ApplicationState::Received])?;
        live_site(&m, &app.site).await?;
        for mut old in store::site_licences(m.txn(), &app.site).await? {
            if matches!(old.state(), LicenceState::Valid | LicenceState::Expired) {
                old.state = LicenceState::Superseded as i32;
                old.etag = next_etag(&old.etag);
                old.history.push(pb::LicenceEvent {
                    operation: "SUPERSEDE".into(),
                    time: Some(timestamp(m.now())),
                    reason: String::new(),
                });
                store::put_licence(m.txn(), &j, &old).await?;
                m.append(&old.name, "SUPERSEDE", &old, "").await?;
            }
        }
        let licence = pb::Licence {
            name: format!("{j}/licences/{}", new_id()),
            site: app.site.clone(),
            number: number.unwrap_or_default(),
            issuing_authority: authority,
            issue_time: Some(timestamp(issue)),
            expire_time: Some(timestamp(expire)),
            state: LicenceState::Valid as i32,
            suspended_until: None,
            application: app.name.clone(),
            history: vec![pb::LicenceEvent {
                operation: "ISSUE".into(),
                time: Some(timestamp(issue)),
                reason: String::new(),
            }],
            etag: "1".into(),
        };
        app.state = ApplicationState::Approved as i32;
        app.licence = licence.name.clone();
        app.etag = next_etag(&app.etag);
        self.save_application(&mut m, &j, &app, "APPROVE", "").await?;
        store::put_licence(m.txn(), &j, &licence).await?;
        let seq = m.append(&licence.name, "ISSUE", &licence, "").await?;
        store::put_event(m.txn(), &j, seq, &licence.name, "licence_issued", issue).await?;
        self.restatus(&mut m, &j, &app.site.clone(), "licence issued").await?;
        let resp = pb::ApproveApplicationResponse { application: Some(app), licence: Some(licence) };
        m.commit(&resp).await?;
        Ok(resp)
    }
}

fn expect_app_state(app: &pb::LicenceApplication, allowed: &[ApplicationState]) -> ApiResult<()> {
    if allowed.contains(&app.state()) {
        Ok(())
    } else {
        Err(ApiError::new(Reason::InvalidState, format!("{} is {:?}; this needs {:?}", app.name, app.state(), allowed)))
    }
}

fn with_overdue(mut a: pb::LicenceApplication, now: DateTime<Utc>) -> pb::LicenceApplication {
    a.overdue = a.state() == ApplicationState::Received && instant(a.deadline.as_ref()) <= now;
    a
}
