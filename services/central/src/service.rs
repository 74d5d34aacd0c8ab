//! The centre's logic: campaigns, the per-province feed, submissions with signed receipts,
//! return / accept / exceptions, timeliness and reference data. No tonic server types, no SQL.
//! Every mutation is one transaction with its entry in the centre's change log
//! (`central/central`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use einfo_common::auth::{Caller, Role};
use einfo_common::changelog::{self, Begin, LogId, Mutation};
use einfo_common::db::Database;
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
use einfo_common::fields::{MAX_NAME, new_id, reason, required_instant, timestamp};
use einfo_common::receipts::ReceiptSigner;
use einfo_common::reference::{Kind, version_of};
use einfo_domain::{Jurisdiction, WorkingCalendar};
use einfo_proto::central::v1 as pb;
use einfo_proto::methods;
use einfo_proto::reporting::v1::Timeliness;
use futures::Stream;
use prost::Message;
use sea_orm_migration::MigratorTrait;
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use unicode_normalization::UnicodeNormalization;

use crate::store::{self, Target};

/// Name of the centre's service in its change log.
pub const SERVICE: &str = "central";

/// The violation catalogue a new centre starts its reference feed with (sequence 1).
pub const VIOLATION_CATALOGUE: &str = einfo_reference::catalogue::BUNDLED;
/// The holidays a new centre starts its reference feed with (sequence 2).
pub const HOLIDAYS: &str = include_str!("../../domain/data/holidays.csv");
/// The indicator catalogue a new centre starts its reference feed with (sequence 3).
pub const INDICATORS: &str = einfo_reference::indicators::BUNDLED;

/// What a new centre's reference feed holds, in sequence order from 1.
const SEED: [(Kind, &str); 3] =
    [(Kind::ViolationCatalogue, VIOLATION_CATALOGUE), (Kind::Holidays, HOLIDAYS), (Kind::Indicators, INDICATORS)];

const PAGE: u64 = 500;
/// How often a follower looks for events committed by another process.
const POLL: Duration = Duration::from_secs(1);

/// A stream of feed events.
pub type FeedStream = Pin<Box<dyn Stream<Item = Result<pb::StreamFeedResponse, tonic::Status>> + Send>>;
/// A stream of reference data.
pub type ReferenceStream = Pin<Box<dyn Stream<Item = Result<pb::StreamReferenceDataResponse, tonic::Status>> + Send>>;

/// One row of [`Central::completeness`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completeness {
    /// The target.
    pub jurisdiction: Jurisdiction,
    /// ON_TIME / LATE by the first received submission against the deadline in force; MISSING
    /// while none.
    pub timeliness: Timeliness,
    /// When the first submission was received (central clock).
    pub first_receive_time: Option<DateTime<Utc>>,
    /// The deadline in force.
    pub deadline: DateTime<Utc>,
}

/// The centre.
#[derive(Clone)]
pub struct Central {
    db: Database,
    signer: Arc<ReceiptSigner>,
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    revoked: einfo_common::reference::Current<einfo_common::auth::Revocations>,
    revoked_certificates: einfo_common::reference::Current<einfo_common::auth::Revocations>,
}

fn log() -> LogId {
    LogId { jurisdiction: Jurisdiction::Central, service: SERVICE }
}

/// Timeliness of a first receipt against the deadline in force: on time when received before it.
pub fn timeliness(first_receive: Option<DateTime<Utc>>, deadline: DateTime<Utc>) -> Timeliness {
    match first_receive {
        None => Timeliness::Missing,
        Some(t) if t < deadline => Timeliness::OnTime,
        Some(_) => Timeliness::Late,
    }
}

fn text(value: &str, field: &str, v: &mut Violations) -> String {
    let t = optional_text(value, field, v);
    if t.is_empty() {
        v.add(field, "is required");
    }
    t
}

/// [`text`] that may be empty.
fn optional_text(value: &str, field: &str, v: &mut Violations) -> String {
    let t: String = value.trim().nfc().collect();
    if t.chars().count() > MAX_NAME {
        v.add(field, format!("is longer than {MAX_NAME} characters"));
    }
    t
}

/// A province jurisdiction (either scheme).
fn province(value: &str, field: &str, v: &mut Violations) -> Option<Jurisdiction> {
    match Jurisdiction::parse(value) {
        Ok(j) if j.is_central() => {
            v.add(field, "must be a province, not central");
            None
        }
        Ok(j) => Some(j),
        Err(e) => {
            v.add(field, e);
            None
        }
    }
}

/// A campaign name `campaigns/{id}`.
fn campaign_name(value: &str, field: &str, v: &mut Violations) {
    let ok = value.strip_prefix("campaigns/").is_some_and(|id| {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !ok {
        v.add(field, format!("'{value}' is not a campaign name of the form campaigns/{{id}}"));
    }
}

/// Checks a piece of reference data with the parser nodes load it with.
fn reference_content(kind: &str, content: &[u8], v: &mut Violations) -> Option<Kind> {
    let Some(k) = Kind::parse(kind) else {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        v.add("kind", format!("'{kind}' is not a kind of reference data; one of {}", names.join(", ")));
        return None;
    };
    if content.is_empty() {
        v.add("content", "is required");
        return None;
    }
    let text = match std::str::from_utf8(content) {
        Ok(t) => t,
        Err(e) => {
            v.add("content", format!("is not UTF-8: {e}"));
            return None;
        }
    };
    let parsed = match k {
        Kind::ViolationCatalogue => einfo_reference::catalogue::Catalogue::from_csv(text).map(|_| ()),
        Kind::Indicators => einfo_reference::indicators::Catalogue::from_csv(text).map(|_| ()),
        Kind::Holidays => WorkingCalendar::from_csv(text).map(|_| ()).map_err(anyhow::Error::from),
        Kind::RevokedTokens => einfo_common::auth::Revocations::from_csv(text).map(|_| ()),
        Kind::RevokedCertificates => einfo_common::auth::Revocations::certificates_from_csv(text).map(|_| ()),
    };
    match parsed {
        Ok(()) => Some(k),
        Err(e) => {
            v.add("content", format!("is not a valid {k} file: {e}"));
            None
        }
    }
}

/// Streams pages read by `read` after `after` in sequence order; with `follow`, waits for
/// commits (or polls, for commits of another process) and sends what follows, until the
/// receiver goes away or the centre stops.
fn follow_pages<T, R, Fut>(
    db: &Database,
    stopping: &tokio::sync::watch::Sender<bool>,
    mut after: u64,
    follow: bool,
    read: R,
    sequence: fn(&T) -> u64,
) -> tokio_stream::wrappers::ReceiverStream<Result<T, tonic::Status>>
where
    T: Send + 'static,
    R: Fn(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ApiResult<Vec<T>>> + Send,
{
    let mut commits = db.subscribe_commits();
    let mut stopping = stopping.subscribe();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let page = match read(after).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            let full = page.len() as u64 == PAGE;
            for item in page {
                after = sequence(&item);
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
            if full {
                continue;
            }
            if !follow || *stopping.borrow() {
                return;
            }
            tokio::select! {
                _ = commits.changed() => {}
                _ = stopping.changed() => return,
                _ = tokio::time::sleep(POLL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

fn admin_only(caller: &Caller) -> ApiResult<()> {
    if caller.role == Role::CentralAdmin {
        Ok(())
    } else {
        Err(ApiError::new(Reason::RoleNotAllowed, format!("role {} may not do this; central-admin may", caller.role)))
    }
}

impl Central {
    /// The centre on `db` (migrated here), signing receipts with `signer`.
    pub async fn open(db: Database, signer: ReceiptSigner) -> anyhow::Result<Self> {
        changelog::Migrator::up(db.conn(), None).await?;
        crate::Migrator::up(db.conn(), None).await?;
        db.ensure_log(&log()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Self::seed_reference(&db).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let latest = |kind: Kind| {
            let db = db.clone();
            async move { store::latest_reference(db.conn(), kind.as_str()).await.map(|i| i.map(|i| i.content)) }
        };
        let revoked = match latest(Kind::RevokedTokens).await? {
            Some(content) => einfo_common::auth::Revocations::from_csv(&String::from_utf8_lossy(&content))?,
            None => einfo_common::auth::Revocations::default(),
        };
        let revoked_certificates = match latest(Kind::RevokedCertificates).await? {
            Some(content) => {
                einfo_common::auth::Revocations::certificates_from_csv(&String::from_utf8_lossy(&content))?
            }
            None => einfo_common::auth::Revocations::default(),
        };
        Ok(Self {
            db,
            signer: Arc::new(signer),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            revoked: einfo_common::reference::Current::new(revoked),
            revoked_certificates: einfo_common::reference::Current::new(revoked_certificates),
        })
    }

    /// The tokens the centre revoked, as last published: what the centre's own servers refuse
    /// (nodes follow the same list through the reference feed).
    pub fn revocations(&self) -> einfo_common::reference::Current<einfo_common::auth::Revocations> {
        self.revoked.clone()
    }

    /// The certificates the centre revoked, as last published.
    pub fn revoked_certificates(&self) -> einfo_common::reference::Current<einfo_common::auth::Revocations> {
        self.revoked_certificates.clone()
    }

    /// Starts an empty reference feed with the files built in. Not logged: it is where a new
    /// centre starts, not a change.
    async fn seed_reference(db: &Database) -> ApiResult<()> {
        let w = db.begin_write().await?;
        if store::reference_empty(&w.txn).await? {
            let now = db.now();
            for (i, (kind, content)) in SEED.into_iter().enumerate() {
                let item = pb::ReferenceData {
                    sequence: i as u64 + 1,
                    kind: kind.as_str().into(),
                    version: version_of(content.as_bytes()),
                    content: content.as_bytes().to_vec(),
                    publish_time: None,
                };
                store::seed_reference(&w.txn, &item, now).await?;
            }
        }
        w.commit().await?;
        Ok(())
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The centre's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signer.public_key()
    }

    /// Ends every following feed stream (on shutdown).
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    async fn begin<R: Message + Default>(
        &self,
        caller: &Caller,
        method: &'static str,
        request_id: &str,
        body: &impl Message,
    ) -> ApiResult<Begin<R>> {
        // Central callers are never the system actor, so there is always a key.
        self.db.begin_request(log(), caller, method, request_id, body).await
    }

    // ------------------------------------------------------------------ campaigns

    /// CreateCampaign (central admin): names the campaign and puts it on each target's feed.
    pub async fn create_campaign(
        &self,
        caller: &Caller,
        mut req: pb::CreateCampaignRequest,
    ) -> ApiResult<pb::Campaign> {
        admin_only(caller)?;
        let c = req.campaign.clone().unwrap_or_default();
        let mut v = Violations::new();
        let reference = text(&c.reference, "campaign.reference", &mut v);
        let title = text(&c.title, "campaign.title", &mut v);
        let recipient = optional_text(&c.recipient, "campaign.recipient", &mut v);
        let issuer = optional_text(&c.issuer, "campaign.issuer", &mut v);
        let start = required_instant(c.period_start.as_ref(), "campaign.period_start", &mut v);
        let end = required_instant(c.period_end.as_ref(), "campaign.period_end", &mut v);
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            v.add("campaign.period_end", "must be after period_start");
        }
        let as_of = required_instant(c.as_of.as_ref(), "campaign.as_of", &mut v);
        let deadline = required_instant(c.deadline.as_ref(), "campaign.deadline", &mut v);
        let lock = required_instant(c.lock_time.as_ref(), "campaign.lock_time", &mut v);
        if let (Some(d), Some(l)) = (deadline, lock)
            && l < d
        {
            v.add("campaign.lock_time", "must not be before the deadline");
        }
        if c.targets.is_empty() {
            v.add("campaign.targets", "name at least one province");
        }
        let mut targets: Vec<Jurisdiction> = Vec::new();
        for (i, t) in c.targets.iter().enumerate() {
            let f = format!("campaign.targets[{i}]");
            if let Some(j) = province(t, &f, &mut v) {
                if targets.contains(&j) {
                    v.add(f, format!("{j} is named twice"));
                } else {
                    targets.push(j);
                }
            }
        }
        if c.indicators.is_empty() {
            v.add("campaign.indicators", "name at least one indicator");
        }
        let mut codes: Vec<&str> = Vec::new();
        for (i, ind) in c.indicators.iter().enumerate() {
            let code = ind.code.trim();
            if code.is_empty() {
                v.add(format!("campaign.indicators[{i}].code"), "is required");
            } else if codes.contains(&code) {
                v.add(format!("campaign.indicators[{i}].code"), format!("'{code}' is named twice"));
            } else {
                codes.push(code);
            }
        }
        if c.narrative_sections.is_empty() {
            v.add("campaign.narrative_sections", "name at least one section");
        }
        for (i, s) in c.narrative_sections.iter().enumerate() {
            if s.trim().is_empty() {
                v.add(format!("campaign.narrative_sections[{i}]"), "is required");
            }
        }
        v.finish()?;
        let (Some(start), Some(end), Some(as_of), Some(deadline), Some(lock)) = (start, end, as_of, deadline, lock)
        else {
            return Err(ApiError::internal(anyhow::anyhow!("validated times missing")));
        };
        let request_id = std::mem::take(&mut req.request_id);
        let mut m =
            match self.begin(caller, methods::central::central_service::CREATE_CAMPAIGN, &request_id, &req).await? {
                Begin::Replay(r) => return Ok(r),
                Begin::Fresh(m) => m,
            };
        let campaign = pb::Campaign {
            name: format!("campaigns/{}", new_id()),
            reference,
            title,
            period_start: Some(timestamp(start)),
            period_end: Some(timestamp(end)),
            as_of: Some(timestamp(as_of)),
            deadline: Some(timestamp(deadline)),
            lock_time: Some(timestamp(lock)),
            targets: targets.iter().map(|j| j.to_string()).collect(),
            indicators: c
                .indicators
                .iter()
                .map(|i| pb::Indicator { code: i.code.trim().into(), ..i.clone() })
                .collect(),
            narrative_sections: c.narrative_sections.iter().map(|s| s.trim().to_owned()).collect(),
            recipient,
            issuer,
            reference_time: c.reference_time,
        };
        store::put_campaign(m.txn(), &campaign).await?;
        for j in &targets {
            let t = Target { jurisdiction: j.to_string(), deadline, lock_time: lock, first_receive: None };
            store::put_target(m.txn(), &campaign.name, &t).await?;
            let event = pb::FeedEvent { sequence: 0, event: Some(pb::feed_event::Event::Campaign(campaign.clone())) };
            store::append_feed(m.txn(), &t.jurisdiction, event).await?;
        }
        m.append(&campaign.name, "CREATE", &campaign, "").await?;
        m.commit(&campaign).await?;
        Ok(campaign)
    }

    // ------------------------------------------------------------------ the feed

    /// StreamFeed: events of a jurisdiction's feed after `after`; with `follow`, new ones as
    /// they commit. A province reads its own feed; the centre reads every feed.
    pub fn stream_feed(&self, caller: &Caller, req: pb::StreamFeedRequest) -> ApiResult<FeedStream> {
        let mut v = Violations::new();
        let j = province(&req.jurisdiction, "jurisdiction", &mut v);
        v.finish()?;
        let j = j.ok_or_else(|| ApiError::internal(anyhow::anyhow!("validated jurisdiction missing")))?;
        caller.authorize_read(&j)?;
        let db = self.db.clone();
        let jurisdiction = j.to_string();
        let read = move |after| {
            let (db, jurisdiction) = (db.clone(), jurisdiction.clone());
            async move { store::read_feed(db.conn(), &jurisdiction, after, PAGE).await }
        };
        let events = follow_pages(&self.db, &self.stopping, req.after, req.follow, read, |e| e.sequence);
        Ok(Box::pin(events.map(|r| r.map(|e| pb::StreamFeedResponse { event: Some(e) }))))
    }

    // ------------------------------------------------------------------ submissions

    /// Submit: checks the content hash and that the submitter reports for a target of the
    /// campaign, and answers with a signed receipt; the same (campaign, jurisdiction, version,
    /// content hash) gets the first receipt back.
    pub async fn submit(&self, caller: &Caller, req: pb::SubmitRequest) -> ApiResult<pb::SubmitResponse> {
        let s = req.submission.unwrap_or_default();
        let mut v = Violations::new();
        campaign_name(&s.campaign, "submission.campaign", &mut v);
        let j = province(&s.jurisdiction, "submission.jurisdiction", &mut v);
        if let Some(j) = &j {
            let prefix = format!("{j}/reports/");
            if s.report.strip_prefix(&prefix).is_none_or(|id| id.is_empty()) {
                v.add("submission.report", format!("must be a report of {j}: {prefix}{{id}}"));
            }
        }
        if s.version == 0 {
            v.add("submission.version", "must be at least 1");
        }
        if s.content.is_empty() {
            v.add("submission.content", "is required");
        }
        if s.content_hash.len() != 32 {
            v.add("submission.content_hash", "must be the 32 bytes of SHA-256 of content");
        } else if Sha256::digest(&s.content)[..] != s.content_hash[..] {
            v.add("submission.content_hash", "is not the SHA-256 of content");
        }
        v.finish()?;
        let j = j.ok_or_else(|| ApiError::internal(anyhow::anyhow!("validated jurisdiction missing")))?;
        if caller.role.is_central() || caller.role == Role::System {
            return Err(ApiError::new(Reason::RoleNotAllowed, format!("role {} does not submit reports", caller.role)));
        }
        if caller.jurisdiction != j {
            return Err(ApiError::new(
                Reason::NotYourJurisdiction,
                format!("caller acts for {} and may not submit for {j}", caller.jurisdiction),
            ));
        }
        let Begin::Fresh(mut m) = self.db.begin_mutation::<pb::SubmitResponse>(log(), caller, None).await? else {
            return Err(ApiError::internal(anyhow::anyhow!("a mutation without idempotency key was replayed")));
        };
        let jurisdiction = j.to_string();
        if store::campaign(m.txn(), &s.campaign).await?.is_none() {
            return Err(ApiError::not_found(&s.campaign));
        }
        if store::target(m.txn(), &s.campaign, &jurisdiction).await?.is_none() {
            return Err(ApiError::new(Reason::InvalidState, format!("{j} is not a target of {}", s.campaign)));
        }
        if let Some((hash, receipt)) = store::receipt(m.txn(), &s.campaign, &jurisdiction, s.version).await? {
            if hash == s.content_hash {
                return Ok(pb::SubmitResponse { receipt: Some(receipt) });
            }
            return Err(ApiError::new(
                Reason::InvalidState,
                format!("version {} of {} was received before with other content", s.version, s.report),
            ));
        }
        let now = m.now();
        let body = pb::ReceiptBody {
            receipt_id: new_id(),
            campaign: s.campaign.clone(),
            jurisdiction: jurisdiction.clone(),
            report: s.report.clone(),
            version: s.version,
            content_hash: s.content_hash.clone(),
            receive_time: Some(timestamp(now)),
        };
        let receipt = self.signer.sign(body);
        store::put_receipt(m.txn(), &receipt, &s.content, now).await?;
        store::set_first_receive(m.txn(), &s.campaign, &jurisdiction, now).await?;
        m.append(&format!("{}/{jurisdiction}/versions/{}", s.campaign, s.version), "RECEIVE", &receipt, "").await?;
        let resp = pb::SubmitResponse { receipt: Some(receipt) };
        m.commit(&resp).await?;
        Ok(resp)
    }

    // ------------------------------------------------------------------ decisions

    async fn decide(
        &self,
        m: &mut Mutation,
        target: &Target,
        decision: pb::CentralDecision,
    ) -> ApiResult<pb::CentralDecision> {
        let op = match decision.kind() {
            pb::DecisionKind::Returned => "RETURN",
            pb::DecisionKind::Accepted => "ACCEPT",
            _ => "EXCEPTION",
        };
        let event = pb::FeedEvent { sequence: 0, event: Some(pb::feed_event::Event::Decision(decision.clone())) };
        store::append_feed(m.txn(), &target.jurisdiction, event).await?;
        m.append(&format!("{}/{}", decision.campaign, decision.jurisdiction), op, &decision, &decision.comment).await?;
        Ok(decision)
    }

    /// Reads the target of a decision inside its mutation.
    async fn decision_target(m: &Mutation, campaign: &str, j: &Jurisdiction) -> ApiResult<Target> {
        if store::campaign(m.txn(), campaign).await?.is_none() {
            return Err(ApiError::not_found(campaign));
        }
        store::target(m.txn(), campaign, &j.to_string())
            .await?
            .ok_or_else(|| ApiError::new(Reason::InvalidState, format!("{j} is not a target of {campaign}")))
    }

    /// Checks that `version` is the latest version received.
    async fn received(m: &Mutation, campaign: &str, j: &Jurisdiction, version: u32) -> ApiResult<()> {
        let latest = store::latest_version(m.txn(), campaign, &j.to_string()).await?;
        if latest == 0 || version > latest {
            return Err(ApiError::new(
                Reason::InvalidState,
                format!("version {version} of {j} for {campaign} was not received"),
            ));
        }
        if version < latest {
            return Err(ApiError::new(
                Reason::InvalidState,
                format!("version {version} of {j} for {campaign} was superseded by version {latest}"),
            ));
        }
        Ok(())
    }

    /// Return (central admin): sends a received version back with a comment.
    pub async fn return_version(&self, caller: &Caller, mut req: pb::ReturnRequest) -> ApiResult<pb::CentralDecision> {
        admin_only(caller)?;
        let mut v = Violations::new();
        campaign_name(&req.campaign, "campaign", &mut v);
        let j = province(&req.jurisdiction, "jurisdiction", &mut v);
        if req.version == 0 {
            v.add("version", "must be at least 1");
        }
        let comment = reason(&req.comment, "comment", &mut v);
        v.finish()?;
        let j = j.ok_or_else(|| ApiError::internal(anyhow::anyhow!("validated jurisdiction missing")))?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self.begin(caller, methods::central::central_service::RETURN, &request_id, &req).await? {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let target = Self::decision_target(&m, &req.campaign, &j).await?;
        Self::received(&m, &req.campaign, &j, req.version).await?;
        let decision = pb::CentralDecision {
            campaign: req.campaign.clone(),
            jurisdiction: j.to_string(),
            kind: pb::DecisionKind::Returned as i32,
            version: req.version,
            comment,
            decide_time: Some(timestamp(m.now())),
            ..Default::default()
        };
        let d = self.decide(&mut m, &target, decision).await?;
        m.commit(&d).await?;
        Ok(d)
    }

    /// Accept (central admin): accepts a received version.
    pub async fn accept(&self, caller: &Caller, mut req: pb::AcceptRequest) -> ApiResult<pb::CentralDecision> {
        admin_only(caller)?;
        let mut v = Violations::new();
        campaign_name(&req.campaign, "campaign", &mut v);
        let j = province(&req.jurisdiction, "jurisdiction", &mut v);
        if req.version == 0 {
            v.add("version", "must be at least 1");
        }
        v.finish()?;
        let j = j.ok_or_else(|| ApiError::internal(anyhow::anyhow!("validated jurisdiction missing")))?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self.begin(caller, methods::central::central_service::ACCEPT, &request_id, &req).await? {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let target = Self::decision_target(&m, &req.campaign, &j).await?;
        Self::received(&m, &req.campaign, &j, req.version).await?;
        let decision = pb::CentralDecision {
            campaign: req.campaign.clone(),
            jurisdiction: j.to_string(),
            kind: pb::DecisionKind::Accepted as i32,
            version: req.version,
            decide_time: Some(timestamp(m.now())),
            ..Default::default()
        };
        let d = self.decide(&mut m, &target, decision).await?;
        m.commit(&d).await?;
        Ok(d)
    }

    /// GrantException (central admin): extends the deadline and/or the lock time of one
    /// (campaign, jurisdiction).
    pub async fn grant_exception(
        &self,
        caller: &Caller,
        mut req: pb::GrantExceptionRequest,
    ) -> ApiResult<pb::CentralDecision> {
        admin_only(caller)?;
        let mut v = Violations::new();
        campaign_name(&req.campaign, "campaign", &mut v);
        let j = province(&req.jurisdiction, "jurisdiction", &mut v);
        let deadline =
            req.extended_deadline.as_ref().and_then(|t| required_instant(Some(t), "extended_deadline", &mut v));
        let lock =
            req.extended_lock_time.as_ref().and_then(|t| required_instant(Some(t), "extended_lock_time", &mut v));
        if req.extended_deadline.is_none() && req.extended_lock_time.is_none() {
            v.add("extended_deadline", "set extended_deadline, extended_lock_time or both");
        }
        let comment = reason(&req.comment, "comment", &mut v);
        v.finish()?;
        let j = j.ok_or_else(|| ApiError::internal(anyhow::anyhow!("validated jurisdiction missing")))?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m =
            match self.begin(caller, methods::central::central_service::GRANT_EXCEPTION, &request_id, &req).await? {
                Begin::Replay(r) => return Ok(r),
                Begin::Fresh(m) => m,
            };
        let mut target = Self::decision_target(&m, &req.campaign, &j).await?;
        if let Some(d) = deadline {
            target.deadline = d;
        }
        if let Some(l) = lock {
            target.lock_time = l;
        }
        if target.lock_time < target.deadline {
            return Err(ApiError::field(
                if lock.is_some() { "extended_lock_time" } else { "extended_deadline" },
                "the lock time would fall before the deadline",
            ));
        }
        store::extend_target(m.txn(), &req.campaign, &target).await?;
        let decision = pb::CentralDecision {
            campaign: req.campaign.clone(),
            jurisdiction: j.to_string(),
            kind: pb::DecisionKind::Exception as i32,
            comment,
            extended_deadline: deadline.map(timestamp),
            extended_lock_time: lock.map(timestamp),
            decide_time: Some(timestamp(m.now())),
            ..Default::default()
        };
        let d = self.decide(&mut m, &target, decision).await?;
        m.commit(&d).await?;
        Ok(d)
    }

    // ------------------------------------------------------------------ reads

    /// GetPublicKey.
    pub fn get_public_key(&self) -> pb::GetPublicKeyResponse {
        pb::GetPublicKeyResponse { key_id: self.signer.key_id(), public_key: self.signer.public_key().to_vec() }
    }

    // ------------------------------------------------------------------ reference data

    /// StreamReferenceData (any authenticated caller): every version of every kind after
    /// `after`, in sequence order; with `follow`, then each new version as it is published.
    pub fn stream_reference_data(&self, req: pb::StreamReferenceDataRequest) -> ReferenceStream {
        let db = self.db.clone();
        let read = move |after| {
            let db = db.clone();
            async move { store::read_reference(db.conn(), after, PAGE).await }
        };
        let items = follow_pages(&self.db, &self.stopping, req.after, req.follow, read, |d| d.sequence);
        Box::pin(items.map(|r| r.map(|d| pb::StreamReferenceDataResponse { data: Some(d) })))
    }

    /// PublishReferenceData (central admin): checks the content with the parser nodes use and
    /// appends it to the reference feed. The same content as the version in force of its kind
    /// returns that version, with no new sequence.
    pub async fn publish_reference_data(
        &self,
        caller: &Caller,
        mut req: pb::PublishReferenceDataRequest,
    ) -> ApiResult<pb::ReferenceData> {
        admin_only(caller)?;
        let mut v = Violations::new();
        let kind = reference_content(&req.kind, &req.content, &mut v);
        v.finish()?;
        let kind = kind.ok_or_else(|| ApiError::internal(anyhow::anyhow!("validated kind missing")))?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, methods::central::central_service::PUBLISH_REFERENCE_DATA, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let version = version_of(&req.content);
        if let Some(current) = store::latest_reference(m.txn(), kind.as_str()).await?
            && current.version == version
        {
            m.commit(&current).await?;
            return Ok(current);
        }
        let now = m.now();
        let mut item = pb::ReferenceData {
            sequence: 0,
            kind: kind.as_str().into(),
            version,
            content: std::mem::take(&mut req.content),
            publish_time: Some(timestamp(now)),
        };
        item.sequence = store::append_reference(m.txn(), &item, now).await?;
        m.append(&format!("reference/{kind}"), "PUBLISH", &item, "").await?;
        m.commit(&item).await?;
        // Checked by `reference_content` before anything was written.
        let text = String::from_utf8_lossy(&item.content);
        match kind {
            Kind::RevokedTokens => {
                self.revoked.set(einfo_common::auth::Revocations::from_csv(&text).map_err(ApiError::internal)?)
            }
            Kind::RevokedCertificates => self
                .revoked_certificates
                .set(einfo_common::auth::Revocations::certificates_from_csv(&text).map_err(ApiError::internal)?),
            _ => {}
        }
        Ok(item)
    }

    /// ExportCampaign (central staff): the national workbook of a campaign, from the latest
    /// version received of each target.
    pub async fn export_campaign(
        &self,
        caller: &Caller,
        req: pb::ExportCampaignRequest,
    ) -> ApiResult<pb::ExportCampaignResponse> {
        if !caller.role.is_central() {
            return Err(ApiError::new(
                Reason::RoleNotAllowed,
                format!("role {} may not do this; central staff may", caller.role),
            ));
        }
        let mut v = Violations::new();
        campaign_name(&req.campaign, "campaign", &mut v);
        let format = req.format();
        if format == pb::WorkbookFormat::Unspecified {
            v.add("format", "is required: XLSX or CSV");
        }
        v.finish()?;
        let conn = self.db.conn();
        let campaign = store::campaign(conn, &req.campaign).await?.ok_or_else(|| ApiError::not_found(&req.campaign))?;
        let mut latest: std::collections::HashMap<String, (u32, Option<Vec<u8>>)> =
            store::latest_contents(conn, &req.campaign).await?.into_iter().map(|(j, v, c)| (j, (v, c))).collect();
        let mut rows = Vec::new();
        for t in store::targets(conn, &req.campaign).await? {
            let got =
                match latest.remove(&t.jurisdiction) {
                    None => None,
                    Some((v, None)) => Some((v, None)),
                    Some((v, Some(bytes))) => Some((
                        v,
                        Some(einfo_proto::reporting::v1::ReportVersion::decode(bytes.as_slice()).map_err(|e| {
                            ApiError::internal(anyhow::anyhow!("version {v} of {}: {e}", t.jurisdiction))
                        })?),
                    )),
                };
            rows.push(crate::workbook::Row { target: t, latest: got });
        }
        let base = format!("{}-national", campaign.name.trim_start_matches("campaigns/"));
        Ok(match format {
            pb::WorkbookFormat::Csv => pb::ExportCampaignResponse {
                file_name: format!("{base}.csv"),
                content_type: "text/csv; charset=utf-8".into(),
                content: crate::workbook::to_csv(&campaign, &rows, |j| crate::workbook::name_on_deadline(&campaign, j))
                    .map_err(ApiError::internal)?,
            },
            _ => {
                let indicators = self.indicators().await?;
                let violations = self.violation_catalogue().await?;
                let sheets = crate::workbook::sheets(&campaign, &rows, &indicators, &violations);
                pb::ExportCampaignResponse {
                    file_name: format!("{base}.xlsx"),
                    content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
                    content: crate::workbook::to_xlsx(&campaign, &sheets).map_err(ApiError::internal)?,
                }
            }
        })
    }

    /// The indicator catalogue in force at the centre (the latest it published).
    async fn indicators(&self) -> ApiResult<einfo_reference::indicators::Catalogue> {
        match store::latest_reference(self.db.conn(), Kind::Indicators.as_str()).await? {
            Some(r) => einfo_reference::indicators::Catalogue::from_csv(&String::from_utf8_lossy(&r.content))
                .map_err(ApiError::internal),
            None => Ok(einfo_reference::indicators::Catalogue::bundled()),
        }
    }

    /// The violation catalogue in force at the centre (the latest it published).
    async fn violation_catalogue(&self) -> ApiResult<einfo_reference::catalogue::Catalogue> {
        match store::latest_reference(self.db.conn(), Kind::ViolationCatalogue.as_str()).await? {
            Some(r) => einfo_reference::catalogue::Catalogue::from_csv(&String::from_utf8_lossy(&r.content))
                .map_err(ApiError::internal),
            None => Ok(einfo_reference::catalogue::Catalogue::bundled()),
        }
    }

    /// Timeliness of every target of a campaign, by jurisdiction (for the gateway).
    pub async fn completeness(&self, campaign: &str) -> ApiResult<Vec<Completeness>> {
        if store::campaign(self.db.conn(), campaign).await?.is_none() {
            return Err(ApiError::not_found(campaign));
        }
        store::targets(self.db.conn(), campaign)
            .await?
            .into_iter()
            .map(|t| {
                Ok(Completeness {
                    jurisdiction: Jurisdiction::parse(&t.jurisdiction).map_err(ApiError::internal)?,
                    timeliness: timeliness(t.first_receive, t.deadline),
                    first_receive_time: t.first_receive,
                    deadline: t.deadline,
                })
            })
            .collect()
    }
}
