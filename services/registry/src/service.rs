//! The registry's logic: no tonic, no SQL. Each mutation parses its request, takes the log's
//! lock through an idempotent [`Mutation`], changes rows and appends the full new state of every
//! resource it touched, then commits all of it at once.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use einfo_common::auth::Caller;
use einfo_common::changelog::{Begin, Idempotency, LogId, Mutation};
use einfo_common::db::Database;
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
pub use einfo_common::fields::vietnam;
use einfo_common::fields::{new_id, next_etag, next_token, page_after, page_size, query_fingerprint};
use einfo_common::reference::Current;
use einfo_domain::calendar::WorkingCalendar;
use einfo_domain::text::{DisplayName, fold};
use einfo_domain::{DomainName, Jurisdiction, Scheme, TaxCode};
use einfo_proto::registry::v1 as pb;
use pb::{ApplicationState, LegalStatus, LicenceState};
use prost::Message;

use crate::convert::{self, instant, required_instant, timestamp};
use crate::kinds::Kinds;
use crate::{status, store};

/// Name of this service in logs and resource routing.
pub const SERVICE: &str = "registry";

/// The registry of the provinces a node hosts.
#[derive(Clone)]
pub struct Registry {
    db: Database,
    scheme: Scheme,
    hosted: Arc<HashSet<Jurisdiction>>,
    kinds: Arc<Kinds>,
    calendar: Current<WorkingCalendar>,
}

impl Registry {
    /// A registry for `hosted` provinces of `scheme`, on a migrated database.
    pub fn new(db: Database, scheme: Scheme, hosted: impl IntoIterator<Item = Jurisdiction>) -> Self {
        Self {
            db,
            scheme,
            hosted: Arc::new(hosted.into_iter().collect()),
            kinds: Arc::new(Kinds::bundled()),
            calendar: Current::new(WorkingCalendar::bundled().clone()),
        }
    }

    /// The provinces hosted.
    pub fn hosted(&self) -> impl Iterator<Item = &Jurisdiction> {
        self.hosted.iter()
    }

    /// Puts another working-day calendar in force (holidays from the centre): deadlines
    /// computed from now on count working days by it; deadlines already set stay.
    pub fn set_calendar(&self, calendar: WorkingCalendar) {
        self.calendar.set(calendar);
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    fn check_hosted(&self, j: &Jurisdiction) -> ApiResult<()> {
        if self.hosted.contains(j) {
            Ok(())
        } else {
            Err(ApiError::new(Reason::JurisdictionNotHosted, format!("this node does not host {j}")))
        }
    }

    fn parent(&self, value: &str, field: &str) -> ApiResult<Jurisdiction> {
        let j = convert::jurisdiction(value, field, self.scheme)?;
        self.check_hosted(&j)?;
        Ok(j)
    }

    fn resource(&self, value: &str, field: &str, collection: &str) -> ApiResult<Jurisdiction> {
        let j = convert::resource(value, field, collection, self.scheme)?;
        self.check_hosted(&j)?;
        Ok(j)
    }

    /// Authorises a write to `j`, checks the request id, and opens an idempotent mutation of
    /// `j`'s registry log. `body` is the request with its `request_id` cleared.
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

    // ---------------------------------------------------------------- sites

    /// RegisterSite.
    pub async fn register_site(&self, caller: &Caller, mut req: pb::RegisterSiteRequest) -> ApiResult<pb::Site> {
        let j = self.parent(&req.parent, "parent")?;
        let mut v = Violations::new();
        let site = convert::site(&req.site.clone().unwrap_or_default(), "site", &self.kinds, &mut v);
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m =
            match self.begin(caller, &j, "/einfo.registry.v1.RegistryService/RegisterSite", &request_id, &req).await? {
                Begin::Replay(r) => return Ok(r),
                Begin::Fresh(m) => m,
            };
        let site = self.create_site(&mut m, &j, site).await?;
        m.commit(&site).await?;
        Ok(site)
    }

    async fn create_site(&self, m: &mut Mutation, j: &Jurisdiction, mut site: pb::Site) -> ApiResult<pb::Site> {
        domains_free(m, j, &site.domains, "").await?;
        let now = m.now();
        site.name = format!("{j}/sites/{}", new_id());
        site.jurisdiction = j.to_string();
        site.legal_status = LegalStatus::Unlicensed as i32;
        site.etag = "1".into();
        site.create_time = Some(timestamp(now));
        site.update_time = Some(timestamp(now));
        store::put_site(m.txn(), &site).await?;
        store::add_domains(m.txn(), &site).await?;
        let seq = m.append(&site.name, "CREATE", &site, "").await?;
        site_history(m, j, seq, None, &site).await?;
        if site.discovery_source != pb::DiscoverySource::Application as i32 {
            store::put_event(m.txn(), j, seq, &site.name, "unlicensed_found", now).await?;
        }
        Ok(site)
    }

    /// GetSite.
    pub async fn get_site(&self, caller: &Caller, req: pb::GetSiteRequest) -> ApiResult<pb::Site> {
        let j = self.resource(&req.name, "name", "sites")?;
        caller.authorize_read(&j)?;
        store::get_site(self.db.conn(), &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))
    }

    /// ListSites.
    pub async fn list_sites(&self, caller: &Caller, req: pb::ListSitesRequest) -> ApiResult<pb::ListSitesResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        let mut v = Violations::new();
        let mut f =
            store::SiteFilter { jurisdiction: j.to_string(), show_voided: req.show_voided, ..Default::default() };
        if !req.kind.is_empty() {
            if self.kinds.get(&req.kind).is_none() {
                v.add("kind", format!("unknown kind '{}'", req.kind));
            }
            f.kind = Some(req.kind.clone());
        }
        if req.legal_status != 0 {
            convert::known_enum::<LegalStatus>(req.legal_status, "legal_status", &mut v);
            f.legal_status = Some(req.legal_status);
        }
        if !req.domain.is_empty()
            && let Some(d) = v.check("domain", DomainName::parse(&req.domain))
        {
            if d.ascii() == d.registrable() {
                f.registrable = Some(d.registrable().to_owned());
                f.domain = Some(String::new());
            } else {
                f.domain = Some(d.ascii().to_owned());
                f.registrable = Some(String::new());
            }
        }
        if !req.owner_tax_code.is_empty() {
            f.owner_tax_code = v.check("owner_tax_code", TaxCode::parse(&req.owner_tax_code)).map(|t| t.canonical());
        }
        f.name_words = fold(&req.name_query).split_whitespace().map(str::to_owned).collect();
        let size = page_size(req.page_size, &mut v);
        let fingerprint =
            query_fingerprint(&pb::ListSitesRequest { page_size: 0, page_token: String::new(), ..req.clone() });
        let after = page_after(&req.page_token, &fingerprint, &mut v);
        v.finish()?;
        let after = after.unwrap_or_default();
        let mut sites = store::list_sites(self.db.conn(), &f, &after, size as u64 + 1).await?;
        let next_page_token = next_token(&mut sites, size, &fingerprint, |s| &s.name);
        Ok(pb::ListSitesResponse { sites, next_page_token })
    }

    /// UpdateSite.
    pub async fn update_site(&self, caller: &Caller, req: pb::UpdateSiteRequest) -> ApiResult<pb::Site> {
        let (site, mask, request_id) =
            (req.site.clone().unwrap_or_default(), req.update_mask.clone(), req.request_id.clone());
        self.change_site(
            caller,
            site,
            mask,
            None,
            "UpdateSite",
            request_id,
            pb::UpdateSiteRequest { request_id: String::new(), ..req },
        )
        .await
    }

    /// CorrectSite.
    pub async fn correct_site(&self, caller: &Caller, req: pb::CorrectSiteRequest) -> ApiResult<pb::Site> {
        let mut v = Violations::new();
        let reason = convert::reason(&req.reason, "reason", &mut v);
        v.finish()?;
        let (site, mask, request_id) =
            (req.site.clone().unwrap_or_default(), req.update_mask.clone(), req.request_id.clone());
        self.change_site(
            caller,
            site,
            mask,
            Some(reason),
            "CorrectSite",
            request_id,
            pb::CorrectSiteRequest { request_id: String::new(), ..req },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn change_site(
        &self,
        caller: &Caller,
        input: pb::Site,
        mask: Option<prost_types::FieldMask>,
        reason: Option<String>,
        method: &'static str,
        request_id: String,
        body: impl Message,
    ) -> ApiResult<pb::Site> {
        let j = self.resource(&input.name, "site.name", "sites")?;
        let paths = mask.map(|m| m.paths).unwrap_or_default();
        let mut v = Violations::new();
        if paths.is_empty() {
            v.add("update_mask", "name at least one field to change");
        }
        for (i, p) in paths.iter().enumerate() {
            if !SITE_MASK_PATHS.contains(&p.as_str()) {
                v.add(
                    format!("update_mask.paths[{i}]"),
                    format!("unknown or read-only field '{p}'; allowed: {}", SITE_MASK_PATHS.join(", ")),
                );
            }
        }
        if input.etag.is_empty() {
            v.add("site.etag", "is required: send the etag you read");
        }
        v.finish()?;
        let method: &'static str = match method {
            "UpdateSite" => "/einfo.registry.v1.RegistryService/UpdateSite",
            _ => "/einfo.registry.v1.RegistryService/CorrectSite",
        };
        let mut m = match self.begin(caller, &j, method, &request_id, &body).await? {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let current = store::get_site(m.txn(), &input.name).await?.ok_or_else(|| ApiError::not_found(&input.name))?;
        if current.voided {
            return Err(ApiError::new(Reason::Voided, format!("{} was voided", input.name)));
        }
        if current.etag != input.etag {
            return Err(ApiError::new(
                Reason::StaleEtag,
                format!("etag '{}' is stale; the current one is '{}'", input.etag, current.etag),
            ));
        }
        let mut merged = current.clone();
        apply_mask(&mut merged, &input, &paths);
        let mut v = Violations::new();
        let normalised = convert::site(&merged, "site", &self.kinds, &mut v);
        v.finish()?;
        domains_free(&m, &j, &normalised.domains, &current.name).await?;
        let now = m.now();
        let site = pb::Site {
            name: current.name.clone(),
            jurisdiction: current.jurisdiction.clone(),
            legal_status: current.legal_status,
            etag: next_etag(&current.etag),
            create_time: current.create_time,
            update_time: Some(timestamp(now)),
            voided: false,
            reason: reason.clone().unwrap_or_default(),
            ..normalised
        };
        store::put_site(m.txn(), &site).await?;
        store::set_domains(m.txn(), &site).await?;
        let op = if reason.is_some() { "CORRECT" } else { "UPDATE" };
        let seq = m.append(&site.name, op, &site, reason.as_deref().unwrap_or("")).await?;
        site_history(&m, &j, seq, Some(&current), &site).await?;
        m.commit(&site).await?;
        Ok(site)
    }

    /// VoidSite.
    pub async fn void_site(&self, caller: &Caller, mut req: pb::VoidSiteRequest) -> ApiResult<pb::Site> {
        let j = self.resource(&req.name, "name", "sites")?;
        let mut v = Violations::new();
        let reason = convert::reason(&req.reason, "reason", &mut v);
        if req.etag.is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m =
            match self.begin(caller, &j, "/einfo.registry.v1.RegistryService/VoidSite", &request_id, &req).await? {
                Begin::Replay(r) => return Ok(r),
                Begin::Fresh(m) => m,
            };
        let mut site = store::get_site(m.txn(), &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))?;
        if site.voided {
            return Err(ApiError::new(Reason::Voided, format!("{} is already voided", req.name)));
        }
        if site.etag != req.etag {
            return Err(ApiError::new(
                Reason::StaleEtag,
                format!("etag '{}' is stale; the current one is '{}'", req.etag, site.etag),
            ));
        }
        let before = site.clone();
        site.voided = true;
        site.reason = reason.clone();
        site.etag = next_etag(&site.etag);
        site.update_time = Some(timestamp(m.now()));
        store::put_site(m.txn(), &site).await?;
        store::set_domains(m.txn(), &site).await?;
        let seq = m.append(&site.name, "VOID", &site, &reason).await?;
        site_history(&m, &j, seq, Some(&before), &site).await?;
        m.commit(&site).await?;
        Ok(site)
    }

    /// AddSiteRecord.
    pub async fn add_site_record(
        &self,
        caller: &Caller,
        mut req: pb::AddSiteRecordRequest,
    ) -> ApiResult<pb::SiteRecord> {
        let j = self.resource(&req.site, "site", "sites")?;
        let input = req.record.clone().unwrap_or_default();
        let mut v = Violations::new();
        match pb::SiteRecordKind::try_from(input.kind) {
            Ok(pb::SiteRecordKind::Unspecified) => v.add("record.kind", "is required: REGISTRATION or TRIAL"),
            Ok(_) => {}
            Err(_) => v.add("record.kind", format!("unknown enum value {}", input.kind)),
        }
        let start = required_instant(input.start_time.as_ref(), "record.start_time", &mut v);
        let end = match (&input.end_time, input.kind()) {
            (None, pb::SiteRecordKind::Trial) => {
                v.add("record.end_time", "a trial record needs an end");
                None
            }
            (None, _) => None,
            (Some(t), _) => required_instant(Some(t), "record.end_time", &mut v),
        };
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            v.add("record.end_time", "must be after start_time");
        }
        if input.reference.chars().count() > convert::MAX_NAME {
            v.add("record.reference", "is too long");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, "/einfo.registry.v1.RegistryService/AddSiteRecord", &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        live_site(&m, &req.site).await?;
        let record = pb::SiteRecord {
            name: format!("{j}/records/{}", new_id()),
            site: req.site.clone(),
            kind: input.kind,
            reference: input.reference.trim().to_owned(),
            start_time: start.map(timestamp),
            end_time: end.map(timestamp),
        };
        store::put_record(m.txn(), &j, &record, false).await?;
        m.append(&record.name, "RECORD_ADD", &record, "").await?;
        self.restatus(&mut m, &j, &req.site, "record added").await?;
        m.commit(&record).await?;
        Ok(record)
    }

    // ---------------------------------------------------------------- applications

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
        if received.is_some_and(|r| r > Utc::now() + Duration::minutes(5)) {
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
            .begin(caller, &j, "/einfo.registry.v1.RegistryService/SubmitApplication", &request_id, &req)
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
        Ok(with_overdue(app, Utc::now()))
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
        store::put_history(
            m.txn(),
            store::HistoryRow {
                jurisdiction: j,
                seq,
                resource: &stored.name,
                resource_type: "application",
                before: None,
                kind: "",
                status: stored.state,
                deadline: einfo_common::db::micros(instant(stored.deadline.as_ref())),
                voided: false,
            },
        )
        .await?;
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
        Ok(with_overdue(a, Utc::now()))
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
        let now = Utc::now();
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
                "/einfo.registry.v1.RegistryService/RequestSupplement",
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
        Ok(with_overdue(app, Utc::now()))
    }

    /// ReceiveSupplement.
    pub async fn receive_supplement(
        &self,
        caller: &Caller,
        mut req: pb::ReceiveSupplementRequest,
    ) -> ApiResult<pb::LicenceApplication> {
        let mut v = Violations::new();
        let received = required_instant(req.receive_time.as_ref(), "receive_time", &mut v);
        if received.is_some_and(|r| r > Utc::now() + Duration::minutes(5)) {
            v.add("receive_time", "is in the future");
        }
        v.finish()?;
        let received = received.unwrap_or_default();
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut app) = match self
            .application_step(
                caller,
                &req.name,
                "/einfo.registry.v1.RegistryService/ReceiveSupplement",
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
        Ok(with_overdue(app, Utc::now()))
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
                "/einfo.registry.v1.RegistryService/RejectApplication",
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
        let number = v.check("licence.number", DisplayName::parse(&input.number, 100)).map(|n| n.into_string());
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
                "/einfo.registry.v1.RegistryService/ApproveApplication",
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

    // ---------------------------------------------------------------- licences

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
            (req.expiring_within_days > 0).then(|| Utc::now() + Duration::days(req.expiring_within_days as i64));
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

    async fn save_licence(
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
            .then(|| v.check("licence.number", DisplayName::parse(&input.number, 100)).map(|n| n.into_string()))
            .flatten();
        let expire = paths
            .iter()
            .any(|p| p == "expire_time")
            .then(|| required_instant(input.expire_time.as_ref(), "licence.expire_time", &mut v))
            .flatten();
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut l) = match self
            .licence_step(caller, &input.name, "/einfo.registry.v1.RegistryService/AmendLicence", &request_id, &req)
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
        if paths.iter().any(|p| p == "issuing_authority") {
            l.issuing_authority = input.issuing_authority.trim().to_owned();
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
            .licence_step(caller, &req.name, "/einfo.registry.v1.RegistryService/RenewLicence", &request_id, &req)
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
        if until.is_some_and(|u| u <= Utc::now()) {
            v.add("until", "must be in the future");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let (mut m, j, mut l) = match self
            .licence_step(caller, &req.name, "/einfo.registry.v1.RegistryService/SuspendLicence", &request_id, &req)
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
            .licence_step(caller, &req.name, "/einfo.registry.v1.RegistryService/RevokeLicence", &request_id, &req)
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
        let mut m = match self
            .begin(caller, &j, "/einfo.registry.v1.RegistryService/ApplySanction", &request_id, &req)
            .await?
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

    // ---------------------------------------------------------------- time-driven transitions

    /// Writes every time-driven transition due at `now` in every hosted province, as the
    /// system actor: licence expiry, the end of a suspension, the end of a trial or a
    /// registration. Returns how many transitions were written.
    pub async fn run_clock(&self, now: DateTime<Utc>) -> ApiResult<usize> {
        let mut written = 0;
        for j in self.hosted.iter() {
            let due = store::due(self.db.conn(), j, now).await?;
            for l in due.expiring.iter().chain(due.lapsing.iter()) {
                written += self.transition_licence(j, &l.name, now).await? as usize;
            }
            for r in &due.ending {
                written += self.end_record(j, r).await? as usize;
            }
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

    /// Re-derives a site's legal status; when it changed, stores and logs the site.
    async fn restatus(&self, m: &mut Mutation, j: &Jurisdiction, site_name: &str, why: &str) -> ApiResult<()> {
        let Some(mut site) = store::get_site(m.txn(), site_name).await? else { return Ok(()) };
        let now = m.now();
        let licences = store::site_licences(m.txn(), site_name).await?;
        let records = store::site_records(m.txn(), site_name).await?;
        let apps = store::site_applications(m.txn(), site_name).await?;
        let status = status::derive(&licences, &records, &apps, now) as i32;
        if status == site.legal_status {
            return Ok(());
        }
        let before = site.clone();
        site.legal_status = status;
        site.etag = next_etag(&site.etag);
        site.update_time = Some(timestamp(now));
        store::put_site(m.txn(), &site).await?;
        let seq = m.append(&site.name, "STATUS", &site, why).await?;
        site_history(m, j, seq, Some(&before), &site).await
    }

    // ---------------------------------------------------------------- import

    /// ImportSites: a dry run reports every bad row; an import is all-or-nothing and idempotent.
    pub async fn import_sites(
        &self,
        caller: &Caller,
        mut req: pb::ImportSitesRequest,
    ) -> ApiResult<pb::ImportSitesResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_write(&j)?;
        let (sites, mut errors) = crate::import::parse(&req.csv, &self.kinds)?;
        let row_count = sites.len() as u32;
        if req.dry_run || !errors.is_empty() {
            errors.extend(held_domains(self.db.conn(), &j, &sites).await?);
            errors.sort_by_key(|e| e.line);
            if req.dry_run {
                return Ok(pb::ImportSitesResponse { errors, row_count, sites: Vec::new() });
            }
            return Err(import_error(&errors));
        }
        let request_id = std::mem::take(&mut req.request_id);
        let mut m =
            match self.begin(caller, &j, "/einfo.registry.v1.RegistryService/ImportSites", &request_id, &req).await? {
                Begin::Replay(r) => return Ok(r),
                Begin::Fresh(m) => m,
            };
        // Checked under the log's lock, after the idempotency key: a retry of an import that
        // succeeded finds its own sites holding the domains and must get the first answer.
        let held = held_domains(m.txn(), &j, &sites).await?;
        if !held.is_empty() {
            return Err(import_error(&held));
        }
        let mut names = Vec::with_capacity(sites.len());
        for (_, s) in sites {
            names.push(self.create_site(&mut m, &j, s).await?.name);
        }
        let resp = pb::ImportSitesResponse { errors: Vec::new(), row_count, sites: names };
        m.commit(&resp).await?;
        Ok(resp)
    }

    // ---------------------------------------------------------------- statistics

    /// GetStatistics: figures as the log stood at `as_of`, and dated facts in the period.
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
        sites: f
            .sites
            .into_iter()
            .map(|(kind, legal_status, count)| pb::SiteCount { kind, legal_status, count })
            .collect(),
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

/// The rows of an import whose domains are already held in the jurisdiction.
async fn held_domains<C: sea_orm::ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    sites: &[(u32, pb::Site)],
) -> ApiResult<Vec<pb::ImportRowError>> {
    let all: Vec<String> = sites.iter().flat_map(|(_, s)| s.domains.clone()).collect();
    let mut errors = Vec::new();
    for (d, holder) in store::domain_holders(c, j, &all, "").await? {
        if let Some((line, _)) = sites.iter().find(|(_, s)| s.domains.contains(&d)) {
            errors.push(pb::ImportRowError {
                line: *line,
                field: "domains".into(),
                description: format!("{d} is held by {holder}"),
            });
        }
    }
    errors.sort_by_key(|e| e.line);
    Ok(errors)
}

/// An import refused for its bad rows: a field violation `csv.line[N].column` per error.
fn import_error(errors: &[pb::ImportRowError]) -> ApiError {
    ApiError::fields(
        errors
            .iter()
            .map(|e| einfo_common::error::Violation {
                field: format!("csv.line[{}].{}", e.line, e.field),
                description: e.description.clone(),
            })
            .collect(),
    )
}

/// Fields of a site an update or a correction may name.
const SITE_MASK_PATHS: &[&str] = &[
    "kind",
    "display_name",
    "domains",
    "owner",
    "owner.kind",
    "owner.display_name",
    "owner.tax_code",
    "owner.address",
    "owner.legal_representative",
    "owner.contact",
    "hosting",
    "operational_state",
    "discovery_source",
    "notes",
];

fn owner_mut(t: &mut pb::Site) -> &mut pb::Owner {
    t.owner.get_or_insert_with(Default::default)
}

fn apply_mask(target: &mut pb::Site, src: &pb::Site, paths: &[String]) {
    let src_owner = src.owner.clone().unwrap_or_default();
    for p in paths {
        match p.as_str() {
            "kind" => target.kind = src.kind.clone(),
            "display_name" => target.display_name = src.display_name.clone(),
            "domains" => target.domains = src.domains.clone(),
            "owner" => target.owner = src.owner.clone(),
            "owner.kind" => owner_mut(target).kind = src_owner.kind,
            "owner.display_name" => owner_mut(target).display_name = src_owner.display_name.clone(),
            "owner.tax_code" => owner_mut(target).tax_code = src_owner.tax_code.clone(),
            "owner.address" => owner_mut(target).address = src_owner.address.clone(),
            "owner.legal_representative" => {
                owner_mut(target).legal_representative = src_owner.legal_representative.clone()
            }
            "owner.contact" => owner_mut(target).contact = src_owner.contact.clone(),
            "hosting" => target.hosting = src.hosting,
            "operational_state" => target.operational_state = src.operational_state,
            "discovery_source" => target.discovery_source = src.discovery_source,
            "notes" => target.notes = src.notes.clone(),
            _ => {}
        }
    }
}

async fn domains_free(m: &Mutation, j: &Jurisdiction, domains: &[String], except: &str) -> ApiResult<()> {
    let held = store::domain_holders(m.txn(), j, domains, except).await?;
    if let Some((d, holder)) = held.first() {
        return Err(ApiError::new(Reason::DomainTaken, format!("{d} is already held by {holder} in {j}")));
    }
    Ok(())
}

async fn live_site(m: &Mutation, name: &str) -> ApiResult<pb::Site> {
    let site = store::get_site(m.txn(), name).await?.ok_or_else(|| ApiError::not_found(name))?;
    if site.voided {
        return Err(ApiError::new(Reason::Voided, format!("{name} was voided")));
    }
    Ok(site)
}

/// Records a site's new snapshot; `before` is the site as it stood before this entry (its row in
/// `reg_sites`, which is its last snapshot), `None` for a new site.
async fn site_history(
    m: &Mutation,
    j: &Jurisdiction,
    seq: u64,
    before: Option<&pb::Site>,
    site: &pb::Site,
) -> ApiResult<()> {
    store::put_history(
        m.txn(),
        store::HistoryRow {
            before: before.map(|b| (b.kind.as_str(), b.legal_status, b.voided)),
            jurisdiction: j,
            seq,
            resource: &site.name,
            resource_type: "site",
            kind: &site.kind,
            status: site.legal_status,
            deadline: 0,
            voided: site.voided,
        },
    )
    .await
}

fn expect_app_state(app: &pb::LicenceApplication, allowed: &[ApplicationState]) -> ApiResult<()> {
    if allowed.contains(&app.state()) {
        Ok(())
    } else {
        Err(ApiError::new(Reason::InvalidState, format!("{} is {:?}; this needs {:?}", app.name, app.state(), allowed)))
    }
}

fn expect_licence_state(l: &pb::Licence, allowed: &[LicenceState]) -> ApiResult<()> {
    if allowed.contains(&l.state()) {
        Ok(())
    } else {
        Err(ApiError::new(Reason::InvalidState, format!("{} is {:?}; this needs {:?}", l.name, l.state(), allowed)))
    }
}

fn with_overdue(mut a: pb::LicenceApplication, now: DateTime<Utc>) -> pb::LicenceApplication {
    a.overdue = a.state() == ApplicationState::Received && instant(a.deadline.as_ref()) <= now;
    a
}
