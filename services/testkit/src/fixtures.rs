//! Request builders and readers the tests share: one site shape, changed only where a test is
//! about it; registering and licensing it; reading logs; times on a manual clock.
//!
//! ```ignore
//! let s = site("Báo Hà Nội", &["báo.vn"]).of_kind("social-network").found_by(DiscoverySource::Referral);
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use einfo_common::clock::Pace;
use einfo_proto::log::v1 as log;
use einfo_proto::registry::v1 as pb;

use crate::{RegistryClient, TestNode, in_secs};

/// The owner every test site has unless a test changes it.
pub const OWNER: &str = "Công ty Cổ phần Truyền thông Hà Nội";
/// A tax code with a valid check digit (mã số thuế), the owner's.
pub const TAX_CODE: &str = "0100109106";

/// A general website hosted in Vietnam, operating, found by a sweep, owned by an organisation
/// ([`OWNER`], [`TAX_CODE`]), with these domains.
pub fn site(name: &str, domains: &[&str]) -> pb::Site {
    pb::Site {
        kind: "general-website".into(),
        display_name: name.into(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        owner: Some(pb::Owner {
            kind: pb::OwnerKind::Organisation as i32,
            display_name: OWNER.into(),
            tax_code: TAX_CODE.into(),
            ..Default::default()
        }),
        hosting: pb::Hosting::InVietnam as i32,
        operational_state: pb::OperationalState::Active as i32,
        discovery_source: pb::DiscoverySource::Sweep as i32,
        ..Default::default()
    }
}

/// Changes to a test site, one aspect each.
pub trait SiteExt: Sized {
    /// Another kind (`social-network`, …).
    fn of_kind(self, kind: &str) -> Self;
    /// Found another way (application, complaint, referral).
    fn found_by(self, source: pb::DiscoverySource) -> Self;
    /// Another owner (an organisation).
    fn owned_by(self, name: &str, tax_code: &str) -> Self;
}

impl SiteExt for pb::Site {
    fn of_kind(mut self, kind: &str) -> Self {
        self.kind = kind.into();
        self
    }

    fn found_by(mut self, source: pb::DiscoverySource) -> Self {
        self.discovery_source = source as i32;
        self
    }

    fn owned_by(mut self, name: &str, tax_code: &str) -> Self {
        let owner = self.owner.get_or_insert_with(Default::default);
        owner.display_name = name.into();
        owner.tax_code = tax_code.into();
        self
    }
}

/// Registers `site` in `parent` with the request id `register-{its first domain}` (a character
/// outside printable ASCII, as in an IDN, written as `~{hex}`: request ids are ASCII).
pub async fn register(c: &mut RegistryClient, parent: &str, site: pb::Site) -> pb::Site {
    let domain = site.domains.first().map_or("", String::as_str);
    let ascii: String = domain
        .chars()
        .map(|ch| if ch.is_ascii_graphic() { ch.to_string() } else { format!("~{:x}", u32::from(ch)) })
        .collect();
    let request_id = format!("register-{ascii}");
    c.register_site(pb::RegisterSiteRequest { parent: parent.into(), site: Some(site), request_id })
        .await
        .expect("site registered")
        .into_inner()
}

/// Registers `Trang {domain}`, a site of `kind` found by `source`, in `parent`.
pub async fn register_found(
    c: &mut RegistryClient,
    parent: &str,
    kind: &str,
    domain: &str,
    source: pb::DiscoverySource,
) -> pb::Site {
    register(c, parent, site(&format!("Trang {domain}"), &[domain]).of_kind(kind).found_by(source)).await
}

/// Submits an application for the site `site`, received `received_secs_ago` seconds ago, with
/// the request id `submit-{site}`.
pub async fn apply(c: &mut RegistryClient, site: &str, received_secs_ago: i64) -> pb::LicenceApplication {
    c.submit_application(pb::SubmitApplicationRequest {
        application: Some(pb::LicenceApplication {
            site: site.into(),
            dossier_items: vec!["đơn đề nghị".into()],
            receive_time: Some(in_secs(-received_secs_ago)),
            ..Default::default()
        }),
        request_id: format!("submit-{site}"),
    })
    .await
    .expect("application submitted")
    .into_inner()
}

/// A licence for a registered `site`: an application received a day ago, approved with a
/// licence numbered `{first domain}/GP-STTTT`, issued a day ago, that expires at `expire`.
pub async fn license(c: &mut RegistryClient, site: &pb::Site, expire: prost_types::Timestamp) -> pb::Licence {
    let domain = site.domains.first().map_or("", String::as_str);
    let app = apply(c, &site.name, 86_400).await;
    c.approve_application(pb::ApproveApplicationRequest {
        name: app.name,
        licence: Some(pb::Licence {
            number: format!("{domain}/GP-STTTT"),
            issuing_authority: "Sở Thông tin và Truyền thông Hà Nội".into(),
            issue_time: Some(in_secs(-86_400)),
            expire_time: Some(expire),
            ..Default::default()
        }),
        request_id: format!("approve-{domain}"),
    })
    .await
    .expect("application approved")
    .into_inner()
    .licence
    .expect("a licence")
}

/// The legal status of a site.
pub async fn site_status(c: &mut RegistryClient, name: &str) -> pb::LegalStatus {
    c.get_site(pb::GetSiteRequest { name: name.into() }).await.expect("site read").into_inner().legal_status()
}

/// The state of a licence.
pub async fn licence_state(c: &mut RegistryClient, name: &str) -> pb::LicenceState {
    c.get_licence(pb::GetLicenceRequest { name: name.into() }).await.expect("licence read").into_inner().state()
}

/// Every entry of the log of `service` ("registry", "inspection", …) of `jurisdiction` on
/// `node`, read as the centre's gateway reads it.
pub async fn log_entries(node: &TestNode, jurisdiction: &str, service: &str) -> Vec<log::ChangeEntry> {
    let mut c = node.changelog().await;
    let mut stream = c
        .stream_changes(log::StreamChangesRequest {
            jurisdiction: jurisdiction.into(),
            service: service.into(),
            after: 0,
            after_hash: Vec::new(),
            follow: false,
        })
        .await
        .expect("stream opened")
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = next_entry(&mut stream).await.expect("an entry") {
        out.push(e);
    }
    out
}

/// The operations of log entries, in order.
pub fn operations(entries: &[log::ChangeEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.operation.as_str()).collect()
}

/// The time `secs` seconds after `now` (before, when negative): how a test on a manual clock
/// says "in 72 hours" (`secs_after(clock.now(), 72 * 3600)`).
pub fn secs_after(now: DateTime<Utc>, secs: i64) -> prost_types::Timestamp {
    einfo_common::fields::timestamp(now + chrono::Duration::seconds(secs))
}

/// `t` to the microsecond, as a node keeps times (an `as_of` a node answers with unchanged).
pub fn timestamp_micros(t: DateTime<Utc>) -> prost_types::Timestamp {
    let t = einfo_common::fields::timestamp(t);
    prost_types::Timestamp { seconds: t.seconds, nanos: t.nanos / 1000 * 1000 }
}

/// Runs one round of a node's background loop (`node.background().inspection_outbox`, …) and
/// returns once it ended, so what it did is visible; panics after 20 s.
pub async fn run_round(pace: &Pace) {
    tokio::time::timeout(Duration::from_secs(20), pace.run_now())
        .await
        .unwrap_or_else(|_| panic!("a round of the background loop did not end within 20 s"));
}

/// Registers `site` in province `code` (2008 scheme) of `node`, as the province's operator, with
/// the request id of [`register`].
pub async fn register_in(node: &TestNode, code: &str, site: pb::Site) -> pb::Site {
    register(&mut node.registry(code).await, &crate::province(code).to_string(), site).await
}

/// A campaign the centre accepts: reporting on the last 90 days as of tomorrow, due in 10 days,
/// locked in 20, asking `targets` (2008 scheme codes) for `indicators` and an assessment.
pub fn campaign_for(targets: &[&str], indicators: &[&str]) -> einfo_proto::central::v1::Campaign {
    use einfo_proto::central::v1 as central;
    central::Campaign {
        reference: "3224/BTTTT-PTTH&TTĐT".into(),
        title: "Báo cáo tình hình quản lý trang thông tin điện tử".into(),
        period_start: Some(in_secs(-90 * 86_400)),
        period_end: Some(in_secs(86_400)),
        as_of: Some(in_secs(86_400)),
        deadline: Some(in_secs(10 * 86_400)),
        lock_time: Some(in_secs(20 * 86_400)),
        targets: targets.iter().map(|c| crate::province(c).to_string()).collect(),
        indicators: indicators
            .iter()
            .map(|c| central::Indicator { code: (*c).to_owned(), ..Default::default() })
            .collect(),
        narrative_sections: vec!["assessment".into()],
        ..Default::default()
    }
}

/// An unscheduled inspection of `site` made `days_ago` days ago that found the violations
/// `codes`, each committed `acted_days_ago` days ago, with one piece of evidence.
pub fn violations_found(
    site: &str,
    codes: &[&str],
    days_ago: i64,
    acted_days_ago: i64,
) -> einfo_proto::inspection::v1::Inspection {
    use einfo_proto::inspection::v1 as insp;
    let when = in_secs(-days_ago * 86_400);
    insp::Inspection {
        site: site.into(),
        inspect_time: Some(when),
        r#type: insp::InspectionType::Unscheduled as i32,
        inspectors: vec!["Nguyễn Văn An".into()],
        findings: "Kiểm tra trang chủ".into(),
        evidence: vec![insp::Evidence {
            url: "https://example.vn/".into(),
            capture_time: Some(when),
            sha256: "ab".repeat(32),
        }],
        result: insp::InspectionResult::ViolationsFound as i32,
        violations: codes
            .iter()
            .map(|c| insp::Violation {
                code: (*c).to_owned(),
                description: format!("Hành vi {c}"),
                act_time: Some(in_secs(-acted_days_ago * 86_400)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The next entry of a change stream, passing over the checkpoints sent between entries; `None`
/// at the stream's end.
pub async fn next_entry(
    stream: &mut tonic::Streaming<log::StreamChangesResponse>,
) -> Result<Option<log::ChangeEntry>, tonic::Status> {
    loop {
        match stream.message().await? {
            None => return Ok(None),
            Some(log::StreamChangesResponse { entry: Some(e), .. }) => return Ok(Some(e)),
            Some(_) => {}
        }
    }
}

/// Rewrites the registry log of province `code` on `node`'s database from entry `seq` on, as an
/// administrator of the node's database could, consistently: the entry's reason is replaced,
/// every later entry chained again, the head moved and the Merkle tree rebuilt. Nothing the node
/// itself checks can tell.
pub async fn rewrite_history(node: &crate::TestNode, code: &str, seq: u64, reason: &str) {
    use einfo_common::changelog::{LogId, entry_hash, merkle, read_entries, set_head};
    use einfo_common::db::stmt;
    use sea_orm::ConnectionTrait;
    let db = node.db.connect().await;
    let log = LogId { jurisdiction: crate::province(code), service: "registry" };
    let mut entries = read_entries(db.conn(), &log, seq - 1, 1_000_000).await.expect("the entries");
    let mut prev = entries.first().expect("entry seq").prev_hash.clone();
    for e in &mut entries {
        if e.sequence == seq {
            e.reason = reason.into();
        }
        e.prev_hash = prev.clone();
        e.hash = entry_hash(e).to_vec();
        prev = e.hash.clone();
        db.conn()
            .execute_raw(stmt(
                db.backend(),
                "UPDATE change_log SET reason = $1, prev_hash = $2, hash = $3 WHERE jurisdiction = $4 AND service = $5 AND seq = $6",
                [
                    e.reason.clone().into(),
                    e.prev_hash.clone().into(),
                    e.hash.clone().into(),
                    log.jurisdiction.to_string().into(),
                    log.service.into(),
                    (e.sequence as i64).into(),
                ],
            ))
            .await
            .expect("rewritten");
    }
    let last = entries.last().expect("entries");
    set_head(db.conn(), &log, last.sequence, &last.hash).await.expect("head moved");
    db.conn()
        .execute_raw(stmt(
            db.backend(),
            "DELETE FROM log_tree WHERE jurisdiction = $1 AND service = $2",
            [log.jurisdiction.to_string().into(), log.service.into()],
        ))
        .await
        .expect("tree dropped");
    merkle::build_missing(db.conn()).await.expect("tree rebuilt");
    db.close().await.expect("closed");
}
