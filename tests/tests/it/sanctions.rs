//! Sanctions reach the register exactly once: a sanction decision's licence suspension or
//! revocation goes from inspection to registry through the outbox, across a registry that is
//! down, a lost acknowledgement and a restart of inspection, and takes effect once.

use chrono::{TimeZone, Utc};
use einfo_app::node::Options;
use einfo_common::clock::{Clock, ManualClock, SharedClock};
use einfo_common::db::{Database, stmt};
use einfo_proto::inspection::v1 as insp;
use einfo_proto::log::v1 as log;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::fixtures::{self, licence_state, license, operations, run_round, secs_after, site_status};
use einfo_testkit::{
    Backend, InspectionClient, NodeRole, ProxyMode, RegistryClient, SiteExt, TcpProxy, TestDb, TestNode, both_backends,
    eventually, in_secs, settings, site,
};
use sea_orm::ConnectionTrait;

const P01: &str = "provinces/2008-01";
/// An example catalogue entry: allows a licence suspension or revocation; an organisation is
/// fined 20,000,000–30,000,000 VND.
const CODE: &str = "EX-LICENCE-TERMS";
const FINE: i64 = 25_000_000;

async fn register(c: &mut RegistryClient, domain: &str) -> pb::Site {
    let site = site(&format!("Trang tin {domain}"), &[domain]).found_by(pb::DiscoverySource::Application);
    fixtures::register(c, P01, site).await
}

/// A site with a valid licence issued a day ago, valid for a year.
async fn licensed_site(c: &mut RegistryClient, domain: &str) -> (pb::Site, pb::Licence) {
    let s = register(c, domain).await;
    let licence = license(c, &s, in_secs(365 * 86_400)).await;
    assert_eq!(licence.state(), pb::LicenceState::Valid);
    assert_eq!(site_status(c, &s.name).await, pb::LegalStatus::Licensed);
    (s, licence)
}

/// An inspection of `site` that found one violation of [`CODE`], committed on 2025-01-10.
async fn record_inspection(c: &mut InspectionClient, site: &pb::Site) -> insp::Inspection {
    let act = Utc.with_ymd_and_hms(2025, 1, 10, 3, 0, 0).unwrap();
    let ins = c
        .record_inspection(insp::RecordInspectionRequest {
            parent: P01.into(),
            inspection: Some(insp::Inspection {
                site: site.name.clone(),
                inspect_time: Some(in_secs(-3600)),
                r#type: insp::InspectionType::Unscheduled as i32,
                inspectors: vec!["Nguyễn Văn An".into()],
                findings: "Trang đăng nội dung ngoài phạm vi giấy phép".into(),
                result: insp::InspectionResult::ViolationsFound as i32,
                violations: vec![insp::Violation {
                    code: CODE.into(),
                    description: "Đăng tin tổng hợp ngoài nội dung được cấp phép".into(),
                    act_time: Some(prost_types::Timestamp { seconds: act.timestamp(), nanos: 0 }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: format!("inspect-{}", site.name),
        })
        .await
        .expect("inspection recorded")
        .into_inner();
    assert_eq!(ins.site, site.name);
    assert_eq!(ins.site_display_name, site.display_name, "the site was resolved in registry");
    ins
}

/// Issues a decision on `ins` with the licence `measure` and a fine in range.
async fn issue(c: &mut InspectionClient, ins: &insp::Inspection, measure: insp::Measure) -> insp::SanctionDecision {
    let d = c
        .issue_decision(insp::IssueDecisionRequest {
            parent: P01.into(),
            decision: Some(insp::SanctionDecision {
                number: "45/QĐ-XPVPHC".into(),
                decision_time: Some(in_secs(0)),
                inspection: ins.name.clone(),
                offender_kind: insp::OffenderKind::Organisation as i32,
                offender_name: "Công ty Cổ phần Truyền thông Hà Nội".into(),
                fine_vnd: FINE,
                measures: vec![measure],
                compliance_deadline: Some(in_secs(30 * 86_400)),
                site: ins.site.clone(),
                ..Default::default()
            }),
            request_id: format!("decide-{}", ins.name),
        })
        .await
        .expect("decision issued")
        .into_inner();
    assert_eq!(d.state(), insp::DecisionState::Issued);
    assert_eq!(d.fine_vnd, FINE);
    assert_eq!(d.delivery_state(), insp::DeliveryState::Pending, "a licence measure waits in the outbox");
    d
}

fn revocation() -> insp::Measure {
    insp::Measure { kind: insp::MeasureKind::LicenceRevocation as i32, ..Default::default() }
}

async fn decision(c: &mut InspectionClient, name: &str) -> insp::SanctionDecision {
    c.get_decision(insp::GetDecisionRequest { name: name.into() }).await.expect("decision read").into_inner()
}

/// Every entry of province 01's log of `service` on `node`.
async fn log_entries(node: &TestNode, service: &str) -> Vec<log::ChangeEntry> {
    fixtures::log_entries(node, P01, service).await
}

/// The registry log's entries on `licence` after sequence `after`.
async fn licence_changes(registry: &TestNode, licence: &str, after: u64) -> Vec<log::ChangeEntry> {
    log_entries(registry, "registry")
        .await
        .into_iter()
        .filter(|e| e.sequence > after && e.resource == licence)
        .collect()
}

/// Asserts that the licence changed exactly once after `after`, by `op` on behalf of
/// `decision` (by the inspection service of province 01).
async fn assert_changed_once(registry: &TestNode, licence: &str, after: u64, op: &str, decision: &str) {
    let changes = licence_changes(registry, licence, after).await;
    assert_eq!(operations(&changes), vec![op], "exactly one change of {licence}");
    let e = &changes[0];
    assert!(e.reason.contains(decision), "the {op} entry names the decision: {:?}", e.reason);
    let actor = e.actor.clone().expect("an actor");
    assert_eq!(
        (actor.subject.as_str(), actor.role.as_str(), actor.jurisdiction.as_str()),
        ("inspection", "service", P01)
    );
    let entries = log_entries(registry, "registry").await;
    let naming: Vec<_> = entries.iter().filter(|e| e.reason.contains(decision)).collect();
    assert_eq!(naming.len(), 1, "one registry entry for {decision}: {:?}", operations(&entries));
}

/// Waits until registry says `status` for `site` and the decision says `delivery`.
async fn until_applied(
    rc: &mut RegistryClient,
    ic: &mut InspectionClient,
    site: &str,
    status: pb::LegalStatus,
    d: &str,
    delivery: insp::DeliveryState,
) -> insp::SanctionDecision {
    eventually(&format!("{site} {status:?} and {d} {delivery:?}"), || {
        let (mut rc, mut ic) = (rc.clone(), ic.clone());
        async move {
            let s = site_status(&mut rc, site).await;
            let got = decision(&mut ic, d).await;
            (s == status && got.delivery_state() == delivery).then_some(got)
        }
    })
    .await
}

/// Waits until the revocation of decision `d` reached registry (the site REVOKED, the decision
/// DELIVERED) and asserts that it revoked `licence`, changing it once after `before`.
async fn revoked_once(registry: &TestNode, ic: &mut InspectionClient, site: &str, licence: &str, d: &str, before: u64) {
    let mut rc = registry.registry("01").await;
    let d = until_applied(&mut rc, ic, site, pb::LegalStatus::Revoked, d, insp::DeliveryState::Delivered).await;
    assert_eq!(d.delivery_error, "");
    assert_eq!(licence_state(&mut rc, licence).await, pb::LicenceState::Revoked);
    assert_changed_once(registry, licence, before, "REVOKE", &d.name).await;
}

/// The outbox row of a decision, read from inspection's database: (request id, state, attempts).
async fn outbox_row(db: &Database, decision: &str) -> (String, i32, i32) {
    let row = db
        .conn()
        .query_one_raw(stmt(
            db.backend(),
            "SELECT request_id, state, attempts FROM insp_outbox WHERE decision = $1",
            [decision.into()],
        ))
        .await
        .expect("outbox read")
        .expect("an outbox row for the decision");
    (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap())
}

/// A registry-only node, and the settings of an inspection-only node on its own database that
/// reaches registry at `endpoint` (filled in by the caller), with a quick outbox.
async fn split(backend: Backend) -> Option<(TestNode, TestDb, einfo_common::config::Settings)> {
    let reg_db = TestDb::new(backend).await?;
    let insp_db = TestDb::new(backend).await?;
    let s = settings(&reg_db, &["01"]);
    let registry = TestNode::start_role(reg_db, s, NodeRole::Registry).await;
    let mut s = settings(&insp_db, &["01"]);
    s.inspection.outbox_interval_ms = 100;
    s.inspection.registry_timeout_ms = 1000;
    Some((registry, insp_db, s))
}

/// One node hosting 01 whose outbox runs every 100 ms, reading `clock`.
async fn quick_node(backend: Backend, clock: SharedClock) -> Option<TestNode> {
    let db = TestDb::new(backend).await?;
    let mut s = settings(&db, &["01"]);
    s.inspection.outbox_interval_ms = 100;
    Some(TestNode::start_on(db, s, Options { clock: Some(clock), ..Options::default() }).await)
}

async fn a_revocation_makes_the_site_revoked_in_registry(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut rc = node.registry("01").await;
    let mut ic = node.inspection_as(&TestNode::inspector("01")).await;
    let (s, licence) = licensed_site(&mut rc, "thuhoi.vn").await;
    let ins = record_inspection(&mut ic, &s).await;
    let before = node.last_sequence("01").await;

    let d = issue(&mut ic, &ins, revocation()).await;
    revoked_once(&node, &mut ic, &s.name, &licence.name, &d.name, before).await;
}

async fn a_decision_issued_while_registry_is_down_reaches_it_after_a_restart(backend: Backend) {
    let Some((mut registry, insp_db, mut s)) = split(backend).await else { return };
    s.inspection.registry_endpoint = Some(format!("http://{}", registry.addr));
    let inspection = TestNode::start_role(insp_db, s, NodeRole::Inspection).await;
    let mut ic = inspection.inspection_as(&TestNode::inspector("01")).await;
    let mut rc = registry.registry("01").await;
    let (site, licence) = licensed_site(&mut rc, "maychu-tat.vn").await;
    let ins = record_inspection(&mut ic, &site).await;
    let before = registry.last_sequence("01").await;

    registry.stop().await;
    let d = issue(&mut ic, &ins, revocation()).await;
    // Registry is down: the outbox keeps the measure and retries.
    for _ in 0..10 {
        run_round(&inspection.background().inspection_outbox).await;
        let got = decision(&mut ic, &d.name).await;
        assert_eq!(got.delivery_state(), insp::DeliveryState::Pending, "nothing can be delivered yet");
        assert_eq!(got.delivery_error, "");
    }
    let (request_id, state, attempts) = outbox_row(&inspection.db.connect().await, &d.name).await;
    assert_eq!(state, 1, "still pending");
    assert!(attempts >= 1, "delivery was attempted while registry was down");
    assert_eq!(request_id, format!("sanction:{}", d.name));

    registry.start_again_same_port().await;
    revoked_once(&registry, &mut ic, &site.name, &licence.name, &d.name, before).await;
}

async fn a_lost_acknowledgement_is_retried_and_the_licence_changes_once(backend: Backend) {
    let Some((registry, insp_db, mut s)) = split(backend).await else { return };
    let proxy = TcpProxy::start(registry.addr).await;
    s.inspection.registry_endpoint = Some(proxy.url());
    let mut inspection = TestNode::start_role(insp_db, s, NodeRole::Inspection).await;
    let mut ic = inspection.inspection_as(&TestNode::inspector("01")).await;
    let mut rc = registry.registry("01").await;
    let (site, licence) = licensed_site(&mut rc, "mat-hoi-dap.vn").await;
    // Through the proxy, passing: inspection resolves the site in registry.
    let ins = record_inspection(&mut ic, &site).await;
    let before = registry.last_sequence("01").await;

    proxy.set_mode(ProxyMode::DropResponses);
    let d = issue(&mut ic, &ins, revocation()).await;
    // Registry receives the call and commits; inspection never hears of it.
    eventually("the REVOKE in registry's log", || {
        let (registry, licence) = (&registry, &licence.name);
        async move { (!licence_changes(registry, licence, before).await.is_empty()).then_some(()) }
    })
    .await;
    assert_eq!(site_status(&mut rc, &site.name).await, pb::LegalStatus::Revoked);
    // The call timed out for inspection, which tries again with the same request id.
    let insp_db = inspection.db.connect().await;
    eventually("a second delivery attempt", || {
        let (db, d) = (&insp_db, &d.name);
        async move { (outbox_row(db, d).await.2 >= 2).then_some(()) }
    })
    .await;
    assert!(proxy.dropped_frames() > 0, "the answers were dropped");
    let (request_id, state, _) = outbox_row(&insp_db, &d.name).await;
    assert_eq!((request_id.as_str(), state), (format!("sanction:{}", d.name).as_str(), 1));
    assert_eq!(decision(&mut ic, &d.name).await.delivery_state(), insp::DeliveryState::Pending);
    assert_changed_once(&registry, &licence.name, before, "REVOKE", &d.name).await;
    insp_db.close().await.expect("close");

    // Inspection restarts (same database and settings) while answers are still lost; then the
    // network heals.
    inspection.restart().await;
    proxy.set_mode(ProxyMode::Pass);
    let mut ic = inspection.inspection_as(&TestNode::inspector("01")).await;
    revoked_once(&registry, &mut ic, &site.name, &licence.name, &d.name, before).await;
}

async fn a_suspension_lapses_on_its_date(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(node) = quick_node(backend, clock.clone()).await else { return };
    let mut rc = node.registry("01").await;
    let mut ic = node.inspection_as(&TestNode::inspector("01")).await;
    let (s, licence) = licensed_site(&mut rc, "tamdung.vn").await;
    let ins = record_inspection(&mut ic, &s).await;
    let before = node.last_sequence("01").await;

    let until = secs_after(clock.now(), 86_400);
    let measure =
        insp::Measure { kind: insp::MeasureKind::LicenceSuspension as i32, until: Some(until), ..Default::default() };
    let d = issue(&mut ic, &ins, measure).await;
    until_applied(&mut rc, &mut ic, &s.name, pb::LegalStatus::Suspended, &d.name, insp::DeliveryState::Delivered).await;
    let l =
        rc.get_licence(pb::GetLicenceRequest { name: licence.name.clone() }).await.expect("licence read").into_inner();
    assert_eq!(l.state(), pb::LicenceState::Suspended);
    assert_eq!(l.suspended_until.map(|t| t.seconds), Some(until.seconds));

    // The day after: the node's clock lapses the suspension.
    clock.advance(chrono::Duration::seconds(86_400 + 1));
    node.run_background().await;
    assert_eq!(site_status(&mut rc, &s.name).await, pb::LegalStatus::Licensed, "the suspension lapsed");
    assert_eq!(licence_state(&mut rc, &licence.name).await, pb::LicenceState::Valid);
    let changes = licence_changes(&node, &licence.name, before).await;
    assert_eq!(operations(&changes), vec!["SUSPEND", "SUSPENSION_LAPSE"]);
    assert!(changes[0].reason.contains(&d.name), "the SUSPEND entry names the decision");
    let lapse = &changes[1];
    let actor = lapse.actor.clone().expect("an actor");
    assert_eq!((actor.subject.as_str(), actor.role.as_str()), ("system", "system"), "the node lapses it");
    let lapsed = lapse.state.as_ref().expect("a state").to_msg::<pb::Licence>().expect("a licence");
    assert_eq!(lapsed.state(), pb::LicenceState::Valid);
    assert!(lapsed.suspended_until.is_none());
    let entries = log_entries(&node, "registry").await;
    let next = entries.iter().find(|e| e.sequence == lapse.sequence + 1).expect("an entry after the lapse");
    assert_eq!((next.operation.as_str(), next.resource.as_str()), ("STATUS", s.name.as_str()));
    let status = next.state.as_ref().expect("a state").to_msg::<pb::Site>().expect("a site");
    assert_eq!(status.legal_status(), pb::LegalStatus::Licensed);
    // The decision's delivery is settled once; the lapse is registry's own business.
    let got = decision(&mut ic, &d.name).await;
    assert_eq!(got.delivery_state(), insp::DeliveryState::Delivered);
}

async fn a_revocation_of_an_unlicensed_site_is_refused_once(backend: Backend) {
    let Some(node) = quick_node(backend, einfo_common::clock::system()).await else { return };
    let mut rc = node.registry("01").await;
    let mut ic = node.inspection_as(&TestNode::inspector("01")).await;
    let s = register(&mut rc, "khong-giay-phep.vn").await;
    assert_eq!(s.legal_status(), pb::LegalStatus::Unlicensed);
    let ins = record_inspection(&mut ic, &s).await;
    let registry_before = node.last_sequence("01").await;

    let d = issue(&mut ic, &ins, revocation()).await;
    let refused = eventually("the refusal", || {
        let mut ic = ic.clone();
        let name = d.name.clone();
        async move {
            let got = decision(&mut ic, &name).await;
            (got.delivery_state() == insp::DeliveryState::Refused).then_some(got)
        }
    })
    .await;
    assert!(refused.delivery_error.contains("no licence"), "the refusal says why: {:?}", refused.delivery_error);
    assert_eq!(site_status(&mut rc, &s.name).await, pb::LegalStatus::Unlicensed);

    // Settled for good: ten outbox passes later nothing more was tried or written anywhere.
    let db = node.db.connect().await;
    let row = outbox_row(&db, &d.name).await;
    assert_eq!(row.1, 3, "the outbox item is settled as refused");
    let inspection_seq = node.log_sequence("01", "inspection").await;
    for _ in 0..10 {
        run_round(&node.background().inspection_outbox).await;
    }
    assert_eq!(outbox_row(&db, &d.name).await, row, "no further attempt");
    assert_eq!(node.log_sequence("01", "inspection").await, inspection_seq, "inspection's log is unchanged");
    assert_eq!(node.last_sequence("01").await, registry_before, "registry's log is unchanged");
    let again = decision(&mut ic, &d.name).await;
    assert_eq!((again.delivery_state(), again.etag.as_str()), (insp::DeliveryState::Refused, refused.etag.as_str()));
    let refusals = log_entries(&node, "inspection")
        .await
        .into_iter()
        .filter(|e| e.resource == d.name && e.operation == "DELIVERY_REFUSED")
        .count();
    assert_eq!(refusals, 1, "the refusal is recorded once");
    db.close().await.expect("close");
}

both_backends!(
    a_revocation_makes_the_site_revoked_in_registry,
    a_decision_issued_while_registry_is_down_reaches_it_after_a_restart,
    a_lost_acknowledgement_is_retried_and_the_licence_changes_once,
    a_suspension_lapses_on_its_date,
    a_revocation_of_an_unlicensed_site_is_refused_once,
);
