//! The reporting service's logic. No tonic server types, no SQL. Every mutation is one
//! transaction with its log entry (service `reporting`); a submitted version is queued in the
//! outbox in the same transaction that freezes it; a feed event is applied in the same
//! transaction that moves the feed cursor.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use einfo_common::auth::Caller;
use einfo_common::changelog::{Begin, LogId};
use einfo_common::db::{Database, from_micros, micros};
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
use einfo_common::fields::{self, check_request_id, instant, jurisdiction, next_etag, resource, timestamp};
use einfo_common::reference::Current;
use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::central::v1 as central;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::methods;
use einfo_proto::registry::v1 as reg;
use einfo_proto::reporting::v1 as pb;
use pb::{ReportState, Timeliness};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::indicators::{Catalogue, Source, evaluate};
use crate::links::{CentreLink, StatisticsLinks};
use crate::store::{self, HeldCampaign};

/// Name of this service in logs.
pub const SERVICE: &str = "reporting";

/// The reporting service of the provinces a node hosts.
#[derive(Clone)]
pub struct Reporting {
    db: Database,
    scheme: Scheme,
    hosted: Arc<HashSet<Jurisdiction>>,
    catalogue: Current<Catalogue>,
    violations: Current<einfo_reference::catalogue::Catalogue>,
    office: Arc<Office>,
    stats: StatisticsLinks,
    centre: Option<CentreLink>,
}

/// How the node makes a PDF of the written report: LibreOffice's command, and how long a
/// conversion may take.
#[derive(Clone, Debug)]
pub struct Office {
    /// The command, e.g. `soffice` (looked up on PATH) or a full path.
    pub command: std::path::PathBuf,
    /// The longest a conversion may take.
    pub timeout: std::time::Duration,
}

impl Default for Office {
    fn default() -> Self {
        Self { command: "soffice".into(), timeout: std::time::Duration::from_secs(120) }
    }
}

/// The id of a campaign name `campaigns/{id}`.
fn campaign_id(name: &str, field: &str) -> ApiResult<String> {
    match name.strip_prefix("campaigns/") {
        Some(id) if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            Ok(id.to_owned())
        }
        _ => Err(ApiError::field(field, format!("'{name}' is not a campaign name campaigns/{{id}}"))),
    }
}

fn stale(sent: &str, current: &str) -> ApiError {
    ApiError::new(Reason::StaleEtag, format!("etag '{sent}' is stale; the current one is '{current}'"))
}

fn opt_instant(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.map(|t| instant(Some(t))).filter(|t| *t > DateTime::<Utc>::MIN_UTC)
}

/// The deadline in force: the exception's, or the campaign's.
pub fn deadline_in_force(h: &HeldCampaign) -> Option<DateTime<Utc>> {
    if h.ext_deadline > 0 { Some(from_micros(h.ext_deadline)) } else { opt_instant(h.campaign.deadline.as_ref()) }
}

/// The lock time in force: the exception's, or the campaign's.
pub fn lock_in_force(h: &HeldCampaign) -> Option<DateTime<Utc>> {
    if h.ext_lock > 0 { Some(from_micros(h.ext_lock)) } else { opt_instant(h.campaign.lock_time.as_ref()) }
}

/// Fills the fields of a report that follow from its campaign: the deadline and lock time in
/// force and the timeliness (the first received submission against the deadline in force).
fn fill(r: &mut pb::Report, h: &HeldCampaign) {
    let deadline = deadline_in_force(h);
    r.deadline = deadline.map(timestamp);
    r.lock_time = lock_in_force(h).map(timestamp);
    r.timeliness = match (opt_instant(r.first_receive_time.as_ref()), deadline) {
        (None, _) => Timeliness::Missing,
        (Some(_), None) => Timeliness::OnTime,
        (Some(t), Some(d)) if t < d => Timeliness::OnTime,
        (Some(_), Some(_)) => Timeliness::Late,
    } as i32;
}

/// Refuses an edit of a frozen report, or one after the lock time in force.
fn check_editable(r: Option<&pb::Report>, h: &HeldCampaign, now: DateTime<Utc>) -> ApiResult<()> {
    if let Some(r) = r
        && matches!(r.state(), ReportState::Submitted | ReportState::Accepted)
    {
        return Err(ApiError::new(
            Reason::InvalidState,
            format!("{} is {:?}: a submitted version is frozen", r.name, r.state()),
        ));
    }
    if let Some(lock) = lock_in_force(h)
        && now >= lock
    {
        return Err(ApiError::new(
            Reason::Locked,
            format!(
                "the campaign {} locked its reports at {lock}; only an exception of the centre reopens them",
                h.campaign.name
            ),
        ));
    }
    Ok(())
}

type Key = (String, String);

impl Reporting {
    /// For `hosted` provinces of `scheme`, on a migrated database, with links to registry and
    /// inspection and, when configured, the centre.
    pub fn new(
        db: Database,
        scheme: Scheme,
        hosted: impl IntoIterator<Item = Jurisdiction>,
        catalogue: Catalogue,
        stats: StatisticsLinks,
        centre: Option<CentreLink>,
    ) -> Self {
        Self {
            db,
            scheme,
            hosted: Arc::new(hosted.into_iter().collect()),
            catalogue: Current::new(catalogue),
            violations: Current::new(einfo_reference::catalogue::Catalogue::bundled()),
            office: Arc::new(Office::default()),
            stats,
            centre,
        }
    }

    /// Names the violation catalogue the written report cites acts from (the one inspection
    /// judges by).
    pub fn set_violation_catalogue(&self, catalogue: einfo_reference::catalogue::Catalogue) {
        self.violations.set(catalogue);
    }

    /// The violation catalogue in force.
    pub fn violation_catalogue(&self) -> Arc<einfo_reference::catalogue::Catalogue> {
        self.violations.get()
    }

    /// Makes PDFs with `office`.
    #[must_use]
    pub fn with_office(mut self, office: Office) -> Self {
        self.office = Arc::new(office);
        self
    }

    /// How PDFs are made.
    pub fn office(&self) -> Arc<Office> {
        self.office.clone()
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The provinces hosted.
    pub fn hosted(&self) -> impl Iterator<Item = &Jurisdiction> {
        self.hosted.iter()
    }

    /// The link to the centre, if configured.
    pub fn centre(&self) -> Option<&CentreLink> {
        self.centre.as_ref()
    }

    /// The indicator catalogue in force.
    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue.get()
    }

    /// Puts another indicator catalogue in force (reference data from the centre): compiles
    /// started from now on use it.
    pub fn set_catalogue(&self, catalogue: Catalogue) {
        self.catalogue.set(catalogue);
    }

    fn check_hosted(&self, j: Jurisdiction) -> ApiResult<Jurisdiction> {
        if self.hosted.contains(&j) {
            Ok(j)
        } else {
            Err(ApiError::new(Reason::JurisdictionNotHosted, format!("this node does not host {j}")))
        }
    }

    fn parent(&self, value: &str, field: &str) -> ApiResult<Jurisdiction> {
        self.check_hosted(jurisdiction(value, field, self.scheme)?)
    }

    fn named(&self, value: &str) -> ApiResult<Jurisdiction> {
        self.check_hosted(resource(value, "name", "reports", self.scheme)?)
    }

    async fn begin<R: Message + Default>(
        &self,
        caller: &Caller,
        j: &Jurisdiction,
        method: &'static str,
        request_id: &str,
        body: &impl Message,
    ) -> ApiResult<Begin<R>> {
        caller.authorize_write(j)?;
        self.db.begin_request(LogId { jurisdiction: *j, service: SERVICE }, caller, method, request_id, body).await
    }

    async fn held<C: sea_orm::ConnectionTrait>(
        &self,
        c: &C,
        j: &Jurisdiction,
        campaign: &str,
    ) -> ApiResult<HeldCampaign> {
        store::campaign(c, j, campaign)
            .await?
            .ok_or_else(|| ApiError::new(Reason::NotFound, format!("{j} has received no campaign {campaign}")))
    }

    // ------------------------------------------------------------------ reads

    /// ListCampaigns.
    pub async fn list_campaigns(
        &self,
        caller: &Caller,
        req: pb::ListCampaignsRequest,
    ) -> ApiResult<pb::ListCampaignsResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        Ok(pb::ListCampaignsResponse { campaigns: store::campaigns(self.db.conn(), &j).await? })
    }

    /// GetReport: the current version, or a submitted one.
    pub async fn get_report(&self, caller: &Caller, req: pb::GetReportRequest) -> ApiResult<pb::GetReportResponse> {
        let j = self.named(&req.name)?;
        caller.authorize_read(&j)?;
        // One snapshot for the three reads: an exception granted between reading the report and
        // its campaign would otherwise pair the old etag with the new lock time.
        let snapshot = self.db.begin_read().await?;
        let submitted = if req.version == 0 {
            None
        } else {
            Some(
                store::version(&snapshot, &req.name, req.version)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("version {} of {}", req.version, req.name)))?,
            )
        };
        let mut report = store::report(&snapshot, &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))?;
        let held = self.held(&snapshot, &j, &report.campaign).await?;
        snapshot.commit().await?;
        fill(&mut report, &held);
        let version = submitted.unwrap_or_else(|| report.current.clone().unwrap_or_default());
        Ok(pb::GetReportResponse { report: Some(report), version: Some(version) })
    }

    /// The last delivery error of a submitted version still waiting for a receipt.
    pub async fn delivery_error(&self, report: &str, version: u32) -> ApiResult<Option<String>> {
        store::delivery_error(self.db.conn(), report, version).await
    }

    // ------------------------------------------------------------------ compile

    /// The rules a campaign asks for (every rule when it names none), in catalogue order.
    fn rules_for<'a>(catalogue: &'a Catalogue, c: &central::Campaign) -> Vec<&'a crate::indicators::Rule> {
        let asked: HashSet<&str> = c.indicators.iter().map(|i| i.code.as_str()).collect();
        for code in &asked {
            if catalogue.get(code).is_none() {
                tracing::warn!(campaign = %c.name, indicator = code, "the campaign asks for an indicator this node has no rule for");
            }
        }
        catalogue.rules().iter().filter(|r| asked.is_empty() || asked.contains(r.code.as_str())).collect()
    }

    /// CompileReport: figures from registry and inspection as of the campaign's cut-off (or now,
    /// while the cut-off is still ahead), over the campaign's period. Overrides and narrative
    /// are kept; the answer lists the figures that changed.
    pub async fn compile_report(
        &self,
        caller: &Caller,
        mut req: pb::CompileReportRequest,
    ) -> ApiResult<pb::CompileReportResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_write(&j)?;
        let id = campaign_id(&req.campaign, "campaign")?;
        check_request_id(&req.request_id)?;
        let held = self.held(self.db.conn(), &j, &req.campaign).await?;
        let c = &held.campaign;
        let now = self.db.now();
        let as_of = opt_instant(c.as_of.as_ref()).map_or(now, |t| t.min(now));
        let (period_start, period_end) = (c.period_start, c.period_end);
        let at = timestamp(as_of);
        let (start, end) = (period_start.unwrap_or_default(), period_end.unwrap_or(at));
        let (r, i, register, decisions) = tokio::join!(
            self.stats.registry_statistics(
                &j,
                reg::GetStatisticsRequest {
                    jurisdiction: j.to_string(),
                    as_of: Some(timestamp(as_of)),
                    period_start,
                    period_end
                }
            ),
            self.stats.inspection_statistics(
                &j,
                insp::GetStatisticsRequest {
                    jurisdiction: j.to_string(),
                    as_of: Some(timestamp(as_of)),
                    period_start,
                    period_end
                }
            ),
            self.stats.register(&j, at),
            self.stats.decisions(&j, at, start, end),
        );
        let unavailable = |what: &str, st: tonic::Status| {
            ApiError::new(Reason::Unavailable, format!("{what} statistics: {}", st.message()))
        };
        let r = r.map_err(|st| unavailable("registry", st))?;
        let i = i.map_err(|st| unavailable("inspection", st))?;
        let register = register.map_err(|st| unavailable("registry register", st))?;
        let decisions = decisions.map_err(|st| unavailable("inspection decisions", st))?;
        let annexes = crate::annex::annexes(at, &register, &decisions);

        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::reporting::reporting_service::COMPILE_REPORT, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let name = format!("{j}/reports/{id}");
        let existing = store::report(m.txn(), &name).await?;
        check_editable(existing.as_ref(), &held, m.now())?;
        let compile_time = timestamp(m.now());

        let mut fresh: BTreeMap<(usize, String, String), pb::IndicatorValue> = BTreeMap::new();
        let catalogue = self.catalogue.get();
        for rule in Self::rules_for(&catalogue, c) {
            let (service, seq) = match rule.source {
                Source::Registry => ("registry", r.log_sequence),
                Source::Inspection => ("inspection", i.log_sequence),
            };
            for (dimension, value) in evaluate(rule, &r, &i) {
                fresh.insert(
                    (catalogue.position(&rule.code), rule.code.clone(), dimension.clone()),
                    pb::IndicatorValue {
                        indicator: rule.code.clone(),
                        dimension,
                        computed: value,
                        provenance: Some(pb::Provenance {
                            service: service.into(),
                            log_sequence: seq,
                            compile_time: Some(compile_time),
                        }),
                        ..Default::default()
                    },
                );
            }
        }
        let first = existing.is_none();
        let mut report = existing.unwrap_or_else(|| pb::Report {
            name: name.clone(),
            campaign: c.name.clone(),
            jurisdiction: j.to_string(),
            state: ReportState::Draft as i32,
            current: Some(pb::ReportVersion { version: 1, ..Default::default() }),
            etag: "0".into(),
            ..Default::default()
        });
        let mut current = report.current.take().unwrap_or_default();
        let old: BTreeMap<Key, pb::IndicatorValue> =
            current.values.drain(..).map(|v| ((v.indicator.clone(), v.dimension.clone()), v)).collect();
        let mut changes = Vec::new();
        for v in fresh.values_mut() {
            let key = (v.indicator.clone(), v.dimension.clone());
            let before = old.get(&key);
            if let Some(o) = before {
                v.overridden = o.overridden;
                v.override_value = o.override_value;
                v.justification = o.justification.clone();
            }
            let b = before.map_or(0, |o| o.computed);
            if first || b != v.computed {
                changes.push(pb::ValueChange {
                    indicator: v.indicator.clone(),
                    dimension: v.dimension.clone(),
                    before: b,
                    after: v.computed,
                });
            }
        }
        // A cell that is no longer reported is zero now; an override on it is kept.
        for (key, o) in &old {
            if fresh.values().any(|v| (&v.indicator, &v.dimension) == (&key.0, &key.1)) {
                continue;
            }
            if o.computed != 0 {
                changes.push(pb::ValueChange {
                    indicator: key.0.clone(),
                    dimension: key.1.clone(),
                    before: o.computed,
                    after: 0,
                });
            }
            if o.overridden {
                let mut kept = o.clone();
                kept.computed = 0;
                let service = catalogue.get(&key.0).map_or("registry", |r| r.source.as_str());
                kept.provenance = Some(pb::Provenance {
                    service: service.into(),
                    log_sequence: if service == "registry" { r.log_sequence } else { i.log_sequence },
                    compile_time: Some(compile_time),
                });
                fresh.insert((catalogue.position(&key.0), key.0.clone(), key.1.clone()), kept);
            }
        }
        current.values = fresh.into_values().collect();
        current.annexes = Some(annexes);
        report.current = Some(current);
        report.etag = next_etag(&report.etag);
        store::put_report(m.txn(), &j, &report).await?;
        fill(&mut report, &held);
        m.append(&report.name, if first { "CREATE" } else { "COMPILE" }, &report, "").await?;
        let response = pb::CompileReportResponse { report: Some(report), changes };
        m.commit(&response).await?;
        Ok(response)
    }

    // ------------------------------------------------------------------ edits

    /// Reads the report of an edit inside the mutation and checks its etag and editability.
    async fn editable(
        &self,
        m: &einfo_common::changelog::Mutation,
        j: &Jurisdiction,
        name: &str,
        etag: &str,
    ) -> ApiResult<(pb::Report, HeldCampaign)> {
        let report = store::report(m.txn(), name).await?.ok_or_else(|| ApiError::not_found(name))?;
        let held = self.held(m.txn(), j, &report.campaign).await?;
        check_editable(Some(&report), &held, m.now())?;
        if report.etag != etag {
            return Err(stale(etag, &report.etag));
        }
        Ok((report, held))
    }

    /// OverrideValue: the reported value of a figure, with a justification; the computed value
    /// stays beside it.
    pub async fn override_value(&self, caller: &Caller, mut req: pb::OverrideValueRequest) -> ApiResult<pb::Report> {
        let j = self.named(&req.name)?;
        let mut v = Violations::new();
        let justification = if req.justification.trim().is_empty() {
            v.add("justification", "is required: say why the computed value is not the one to report");
            String::new()
        } else {
            fields::reason(&req.justification, "justification", &mut v)
        };
        if req.indicator.is_empty() {
            v.add("indicator", "is required");
        }
        if req.etag.is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::reporting::reporting_service::OVERRIDE_VALUE, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let (mut report, held) = self.editable(&m, &j, &req.name, &req.etag).await?;
        let current = report.current.get_or_insert_default();
        let Some(value) =
            current.values.iter_mut().find(|x| x.indicator == req.indicator && x.dimension == req.dimension)
        else {
            return Err(ApiError::field(
                "indicator",
                format!("the report has no figure {} '{}'", req.indicator, req.dimension),
            ));
        };
        value.overridden = true;
        value.override_value = req.value;
        value.justification = justification;
        report.etag = next_etag(&report.etag);
        store::put_report(m.txn(), &j, &report).await?;
        fill(&mut report, &held);
        m.append(&report.name, "OVERRIDE", &report, "").await?;
        m.commit(&report).await?;
        Ok(report)
    }

    /// SetNarrative: one of the campaign's narrative sections.
    pub async fn set_narrative(&self, caller: &Caller, mut req: pb::SetNarrativeRequest) -> ApiResult<pb::Report> {
        let j = self.named(&req.name)?;
        let mut v = Violations::new();
        let text = fields::text(&req.text, "text", fields::MAX_NARRATIVE, fields::Lines::Many, &mut v);
        if req.section.is_empty() {
            v.add("section", "is required");
        }
        if req.etag.is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::reporting::reporting_service::SET_NARRATIVE, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let (mut report, held) = self.editable(&m, &j, &req.name, &req.etag).await?;
        let sections = &held.campaign.narrative_sections;
        let Some(pos) = sections.iter().position(|s| s == &req.section) else {
            return Err(ApiError::field(
                "section",
                format!("the campaign asks for the sections {sections:?}, not '{}'", req.section),
            ));
        };
        let current = report.current.get_or_insert_default();
        current.narrative.retain(|n| n.section != req.section);
        current.narrative.push(pb::NarrativeSection { section: req.section.clone(), text });
        current.narrative.sort_by_key(|n| sections.iter().position(|s| s == &n.section).unwrap_or(pos));
        report.etag = next_etag(&report.etag);
        store::put_report(m.txn(), &j, &report).await?;
        fill(&mut report, &held);
        m.append(&report.name, "NARRATIVE", &report, "").await?;
        m.commit(&report).await?;
        Ok(report)
    }

    /// SetReportDocument: the draft's document details (number, issuer, place, signer,
    /// recipients); they replace the draft's and are frozen with it on submission.
    pub async fn set_report_document(
        &self,
        caller: &Caller,
        mut req: pb::SetReportDocumentRequest,
    ) -> ApiResult<pb::Report> {
        let j = self.named(&req.name)?;
        let mut v = Violations::new();
        if req.etag.is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        let d = req.document.clone().unwrap_or_default();
        let line = |value: &str, field: &str, max: usize, v: &mut Violations| {
            fields::text(value, &format!("document.{field}"), max, fields::Lines::One, v)
        };
        let number = line(&d.number, "number", 20, &mut v);
        if !number.is_empty() && !number.chars().all(|c| c.is_ascii_digit()) {
            v.add("document.number", "is the register's number: digits only, e.g. 125");
        }
        let abbreviation = line(&d.issuer_abbreviation, "issuer_abbreviation", 40, &mut v);
        if abbreviation.chars().any(|c| c.is_whitespace() || c == '/') {
            v.add("document.issuer_abbreviation", "is written without spaces or '/', e.g. STTTT");
        }
        let document = pb::ReportDocument {
            number,
            issuer_abbreviation: abbreviation,
            issuer: line(&d.issuer, "issuer", fields::MAX_NAME, &mut v),
            place: line(&d.place, "place", fields::MAX_NAME, &mut v),
            signer_authority: line(&d.signer_authority, "signer_authority", fields::MAX_NAME, &mut v),
            signer_title: line(&d.signer_title, "signer_title", fields::MAX_NAME, &mut v),
            signer_name: line(&d.signer_name, "signer_name", fields::MAX_NAME, &mut v),
            copies_to: d
                .copies_to
                .iter()
                .enumerate()
                .map(|(i, c)| line(c, &format!("copies_to[{i}]"), fields::MAX_NAME, &mut v))
                .collect(),
            filed_by: line(&d.filed_by, "filed_by", 40, &mut v),
        };
        if d.copies_to.len() > 20 {
            v.add("document.copies_to", "names at most 20 recipients");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::reporting::reporting_service::SET_REPORT_DOCUMENT, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let (mut report, held) = self.editable(&m, &j, &req.name, &req.etag).await?;
        report.current.get_or_insert_default().document = Some(document);
        report.etag = next_etag(&report.etag);
        store::put_report(m.txn(), &j, &report).await?;
        fill(&mut report, &held);
        m.append(&report.name, "DOCUMENT", &report, "").await?;
        m.commit(&report).await?;
        Ok(report)
    }

    /// SubmitReport: freezes the current version and queues it for the centre.
    pub async fn submit_report(&self, caller: &Caller, mut req: pb::SubmitReportRequest) -> ApiResult<pb::Report> {
        let j = self.named(&req.name)?;
        if req.etag.is_empty() {
            return Err(ApiError::field("etag", "is required: send the etag you read"));
        }
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::reporting::reporting_service::SUBMIT_REPORT, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let mut report = store::report(m.txn(), &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))?;
        let held = self.held(m.txn(), &j, &report.campaign).await?;
        if !matches!(report.state(), ReportState::Draft | ReportState::Returned) {
            return Err(ApiError::new(
                Reason::InvalidState,
                format!("{} is {:?}: only a draft or a returned report is submitted", report.name, report.state()),
            ));
        }
        if report.etag != req.etag {
            return Err(stale(&req.etag, &report.etag));
        }
        let mut version = report.current.take().unwrap_or_default();
        version.submit_time = Some(timestamp(m.now()));
        version.receipt = None;
        let content = version.encode_to_vec();
        let submission = central::Submission {
            campaign: report.campaign.clone(),
            jurisdiction: j.to_string(),
            report: report.name.clone(),
            version: version.version,
            content_hash: Sha256::digest(&content).to_vec(),
            content,
            submit_time: version.submit_time,
        };
        store::put_version(m.txn(), &report.name, &version).await?;
        store::enqueue(
            m.txn(),
            &store::OutboxItem {
                report: report.name.clone(),
                version: version.version,
                jurisdiction: j.to_string(),
                submission: submission.encode_to_vec(),
                attempts: 0,
            },
            m.now(),
        )
        .await?;
        report.submitted_versions = version.version;
        report.current = Some(version);
        report.state = ReportState::Submitted as i32;
        report.etag = next_etag(&report.etag);
        store::put_report(m.txn(), &j, &report).await?;
        fill(&mut report, &held);
        m.append(&report.name, "SUBMIT", &report, "").await?;
        m.commit(&report).await?;
        Ok(report)
    }

    // ------------------------------------------------------------------ the centre's side

    /// Applies one feed event for `j` and moves the feed cursor, in one transaction. Events at
    /// or below the cursor are skipped (a resumed stream may repeat one).
    pub async fn apply_feed_event(&self, j: &Jurisdiction, event: central::FeedEvent) -> ApiResult<bool> {
        let system = Caller::system(*j);
        let mut m = match self.begin::<pb::Report>(&system, j, "", "", &event).await? {
            Begin::Replay(_) => return Ok(false),
            Begin::Fresh(m) => m,
        };
        if event.sequence <= store::feed_cursor(m.txn(), j).await? {
            return Ok(false);
        }
        match event.event.clone() {
            Some(central::feed_event::Event::Campaign(c)) => match campaign_id(&c.name, "campaign.name") {
                Ok(id) => {
                    store::put_campaign(m.txn(), j, &c).await?;
                    m.append(&format!("{j}/campaigns/{id}"), "RECEIVE", &c, "").await?;
                }
                // A malformed event must not stall the feed: it is skipped, loudly.
                Err(e) => {
                    tracing::error!(jurisdiction = %j, sequence = event.sequence, error = %e, "a campaign the node cannot hold; skipped")
                }
            },
            Some(central::feed_event::Event::Decision(d)) => self.apply_decision(&mut m, j, d).await?,
            None => tracing::warn!(jurisdiction = %j, sequence = event.sequence, "an empty feed event; skipped"),
        }
        store::set_feed_cursor(m.txn(), j, event.sequence).await?;
        m.commit(&pb::Report::default()).await?;
        Ok(true)
    }

    async fn apply_decision(
        &self,
        m: &mut einfo_common::changelog::Mutation,
        j: &Jurisdiction,
        d: central::CentralDecision,
    ) -> ApiResult<()> {
        let id = match campaign_id(&d.campaign, "decision.campaign") {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(jurisdiction = %j, error = %e, "a decision about no campaign the node can hold; skipped");
                return Ok(());
            }
        };
        let name = format!("{j}/reports/{id}");
        if d.jurisdiction != j.to_string() {
            tracing::warn!(jurisdiction = %j, decision_for = d.jurisdiction, "a decision for another jurisdiction; skipped");
            return Ok(());
        }
        if d.kind() == central::DecisionKind::Exception {
            store::extend(
                m.txn(),
                j,
                &d.campaign,
                opt_instant(d.extended_deadline.as_ref()).map_or(0, micros),
                opt_instant(d.extended_lock_time.as_ref()).map_or(0, micros),
            )
            .await?;
        }
        let Some(mut report) = store::report(m.txn(), &name).await? else {
            m.append(&name, "DECISION", &d, "").await?;
            return Ok(());
        };
        let applies = d.version == report.submitted_versions;
        match d.kind() {
            central::DecisionKind::Returned if applies && report.state() == ReportState::Submitted => {
                let mut draft = report.current.clone().unwrap_or_default();
                draft.version = report.submitted_versions + 1;
                draft.submit_time = None;
                draft.receipt = None;
                report.current = Some(draft);
                report.state = ReportState::Returned as i32;
                report.centre_comment = d.comment.clone();
            }
            central::DecisionKind::Accepted if applies && report.state() == ReportState::Submitted => {
                report.state = ReportState::Accepted as i32;
                if !d.comment.is_empty() {
                    report.centre_comment = d.comment.clone();
                }
            }
            central::DecisionKind::Exception => {
                if !d.comment.is_empty() {
                    report.centre_comment = d.comment.clone();
                }
            }
            kind => {
                tracing::warn!(report = %name, ?kind, version = d.version, state = ?report.state(), "a decision that does not apply to the report's state; recorded only");
                m.append(&name, "DECISION", &d, "").await?;
                return Ok(());
            }
        }
        report.etag = next_etag(&report.etag);
        store::put_report(m.txn(), j, &report).await?;
        let held = self.held(m.txn(), j, &report.campaign).await?;
        fill(&mut report, &held);
        let op = match d.kind() {
            central::DecisionKind::Returned => "RETURNED",
            central::DecisionKind::Accepted => "ACCEPTED",
            _ => "EXCEPTION",
        };
        m.append(&name, op, &report, "").await?;
        Ok(())
    }

    /// Records a verified receipt: on the version, on the current version if it is that one,
    /// and as the first receipt of the (campaign, jurisdiction) if none came before; the
    /// outbox item is settled in the same transaction.
    pub async fn record_receipt(&self, j: &Jurisdiction, receipt: central::Receipt) -> ApiResult<()> {
        let body = receipt.body.clone().unwrap_or_default();
        let system = Caller::system(*j);
        let mut m = match self.begin::<pb::Report>(&system, j, "", "", &receipt).await? {
            Begin::Replay(_) => return Ok(()),
            Begin::Fresh(m) => m,
        };
        let mut report =
            store::report(m.txn(), &body.report).await?.ok_or_else(|| ApiError::not_found(&body.report))?;
        let mut version = store::version(m.txn(), &body.report, body.version)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("version {} of {}", body.version, body.report)))?;
        version.receipt = Some(receipt.clone());
        store::put_version(m.txn(), &body.report, &version).await?;
        if let Some(c) = report.current.as_mut()
            && c.version == body.version
        {
            c.receipt = Some(receipt.clone());
        }
        if report.first_receive_time.is_none() {
            report.first_receive_time = body.receive_time;
        }
        report.etag = next_etag(&report.etag);
        store::put_report(m.txn(), j, &report).await?;
        store::delivered(m.txn(), &body.report, body.version).await?;
        let held = self.held(m.txn(), j, &report.campaign).await?;
        fill(&mut report, &held);
        m.append(&report.name, "RECEIPT", &report, "").await?;
        m.commit(&report).await?;
        Ok(())
    }

    /// The centre's public key: configured, or pinned (in the database) at the first
    /// GetPublicKey.
    pub async fn centre_key(&self, j: &Jurisdiction) -> Result<[u8; 32], String> {
        let centre = self.centre.as_ref().ok_or("no centre is configured")?;
        if let Some(k) = centre.configured_key() {
            return Ok(k);
        }
        let mut pinned = centre.pinned().lock().await;
        if let Some(k) = *pinned {
            return Ok(k);
        }
        let stored = store::pinned_key(self.db.conn()).await.map_err(|e| e.to_string())?;
        let key: Vec<u8> = match stored {
            Some(k) => k,
            None => {
                let mut c = centre.client(j).map_err(|e| e.message().to_owned())?;
                let got = c
                    .get_public_key(central::GetPublicKeyRequest {})
                    .await
                    .map_err(|e| format!("GetPublicKey: {}", e.message()))?
                    .into_inner();
                store::pin_key(self.db.conn(), &got.public_key).await.map_err(|e| e.to_string())?;
                store::pinned_key(self.db.conn()).await.map_err(|e| e.to_string())?.unwrap_or(got.public_key)
            }
        };
        let key: [u8; 32] = key.try_into().map_err(|_| "the centre's public key is not 32 bytes".to_string())?;
        *pinned = Some(key);
        Ok(key)
    }

    /// The report (with campaign-derived fields) and a version of it, for exports.
    pub(crate) async fn version_for_export(
        &self,
        caller: &Caller,
        name: &str,
        version: u32,
    ) -> ApiResult<(pb::Report, pb::ReportVersion, central::Campaign)> {
        let got = self.get_report(caller, pb::GetReportRequest { name: name.to_owned(), version }).await?;
        let report = got.report.unwrap_or_default();
        let j = self.named(name)?;
        let held = self.held(self.db.conn(), &j, &report.campaign).await?;
        Ok((report, got.version.unwrap_or_default(), held.campaign))
    }
}
