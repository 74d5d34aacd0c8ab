//! Reporting: campaigns from the (fake) centre, reports compiled from registry and inspection,
//! overrides, narrative, versions, delivery with verified receipts, timeliness, locks, exports.

use einfo_app::node::Options;
use einfo_common::clock::{Clock, ManualClock, SharedClock, system};
use einfo_proto::central::v1 as central;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;
use einfo_proto::reporting::v1 as pb;
use einfo_testkit::ReportingClient;
use einfo_testkit::fixtures::{apply, register_found, run_round, secs_after};
use einfo_testkit::{Backend, FakeCentre, InspectionClient, TestDb, TestNode, both_backends, eventually, in_secs};
use pb::{ReportState, Timeliness};
use sea_orm::ConnectionTrait;
use tonic_types::StatusExt;

use crate::refusals::reason;

const P01: &str = "provinces/2008-01";
const P79: &str = "provinces/2008-79";
const DAY: i64 = 86_400;

/// A centre and a node hosting `provinces` that follows it, both reading `clock`; `None` when
/// PostgreSQL is unavailable outside CI. `key` replaces the centre's public key in the node's
/// settings.
pub(crate) async fn start(
    backend: Backend,
    provinces: &[&str],
    key: Option<[u8; 32]>,
    clock: SharedClock,
) -> Option<(FakeCentre, TestNode)> {
    let centre = FakeCentre::start_with_clock(backend, clock.clone()).await?;
    let db = TestDb::new(backend).await?;
    let mut s = einfo_testkit::settings(&db, provinces);
    s.reporting.centre_endpoint = Some(centre.url());
    s.reporting.centre_public_key_hex = key.map(einfo_testkit::hex);
    s.reporting.feed_interval_ms = 100;
    s.reporting.outbox_interval_ms = 50;
    s.inspection.outbox_interval_ms = 50;
    let node = TestNode::start_on(db, s, Options { clock: Some(clock), ..Options::default() }).await;
    Some((centre, node))
}

const INDICATORS: &[&str] = &[
    "sites_by_kind_status",
    "licences_issued",
    "applications_received",
    "applications_pending",
    "applications_overdue",
    "unlicensed_found",
    "inspections",
    "sites_inspected",
    "violations_by_code",
    "sanction_decisions",
    "fines_imposed_vnd",
    "licences_suspended",
    "licences_revoked",
];

/// Issues a campaign to `targets`, deadline and lock `deadline_secs` / `lock_secs` from now by
/// the centre's clock, and waits until each target's node has it.
async fn campaign(
    centre: &FakeCentre,
    node: &TestNode,
    targets: &[&str],
    deadline_secs: i64,
    lock_secs: i64,
) -> central::Campaign {
    let now = centre.clock.now();
    let c = centre
        .admin()
        .create_campaign(central::CreateCampaignRequest {
            campaign: Some(central::Campaign {
                reference: "3224/BTTTT-PTTH&TTĐT".into(),
                title: "Báo cáo tình hình quản lý trang thông tin điện tử".into(),
                period_start: Some(secs_after(now, -90 * DAY)),
                period_end: Some(secs_after(now, DAY)),
                as_of: Some(secs_after(now, DAY)),
                deadline: Some(secs_after(now, deadline_secs)),
                lock_time: Some(secs_after(now, lock_secs)),
                targets: targets.iter().map(|t| t.to_string()).collect(),
                indicators: INDICATORS
                    .iter()
                    .map(|c| central::Indicator { code: c.to_string(), ..Default::default() })
                    .collect(),
                narrative_sections: vec!["assessment".into(), "difficulties".into(), "recommendations".into()],
                ..Default::default()
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("campaign created")
        .into_inner();
    for t in targets {
        let code = t.rsplit('-').next().unwrap();
        let mut r = node.reporting(code).await;
        eventually("the campaign reaches the node", || {
            let mut r = r.clone();
            let name = c.name.clone();
            async move {
                let got = r.list_campaigns(pb::ListCampaignsRequest { parent: t.to_string() }).await.ok()?;
                got.into_inner().campaigns.iter().any(|x| x.name == name).then_some(())
            }
        })
        .await;
        let _ = &mut r;
    }
    c
}

pub(crate) async fn compile(r: &mut ReportingClient, parent: &str, campaign: &str) -> pb::CompileReportResponse {
    r.compile_report(pb::CompileReportRequest {
        parent: parent.into(),
        campaign: campaign.into(),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("compiled")
    .into_inner()
}

async fn get(r: &mut ReportingClient, name: &str, version: u32) -> pb::GetReportResponse {
    r.get_report(pb::GetReportRequest { name: name.into(), version }).await.expect("report read").into_inner()
}

pub(crate) async fn submit(r: &mut ReportingClient, report: &pb::Report) -> pb::Report {
    r.submit_report(pb::SubmitReportRequest {
        name: report.name.clone(),
        etag: report.etag.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("submitted")
    .into_inner()
}

pub(crate) async fn narrative(
    r: &mut ReportingClient,
    report: &pb::Report,
    section: &str,
    text: &str,
) -> Result<pb::Report, tonic::Status> {
    r.set_narrative(pb::SetNarrativeRequest {
        name: report.name.clone(),
        etag: report.etag.clone(),
        section: section.into(),
        text: text.into(),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .map(|r| r.into_inner())
}

/// Waits until version `v` of a report carries its receipt.
pub(crate) async fn receipt(r: &ReportingClient, name: &str, v: u32) -> pb::GetReportResponse {
    eventually("the centre's receipt is stored", || {
        let mut r = r.clone();
        let name = name.to_owned();
        async move {
            let got = r.get_report(pb::GetReportRequest { name, version: v }).await.ok()?.into_inner();
            got.version.as_ref()?.receipt.as_ref()?;
            Some(got)
        }
    })
    .await
}

/// Waits until a report satisfies `f`.
async fn report_until(r: &ReportingClient, name: &str, what: &str, f: impl Fn(&pb::Report) -> bool) -> pb::Report {
    eventually(what, || {
        let mut r = r.clone();
        let name = name.to_owned();
        let ok = &f;
        async move {
            let got = r.get_report(pb::GetReportRequest { name, version: 0 }).await.ok()?.into_inner().report?;
            ok(&got).then_some(got)
        }
    })
    .await
}

fn time(t: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let t = t.expect("a time");
    (t.seconds, t.nanos)
}

// ------------------------------------------------------------------ seeds

async fn inspect(c: &mut InspectionClient, parent: &str, site: &str, codes: &[&str], id: &str) -> insp::Inspection {
    c.record_inspection(insp::RecordInspectionRequest {
        parent: parent.into(),
        inspection: Some(einfo_testkit::fixtures::violations_found(site, codes, 5, 20)),
        request_id: id.into(),
    })
    .await
    .expect("inspection recorded")
    .into_inner()
}

async fn sanction(
    c: &mut InspectionClient,
    parent: &str,
    i: &insp::Inspection,
    kind: insp::OffenderKind,
    fine: i64,
    id: &str,
) {
    c.issue_decision(insp::IssueDecisionRequest {
        parent: parent.into(),
        decision: Some(insp::SanctionDecision {
            number: "45/QĐ-XPVPHC".into(),
            decision_time: Some(in_secs(-DAY)),
            inspection: i.name.clone(),
            offender_kind: kind as i32,
            offender_name: "Công ty Cổ phần Truyền thông".into(),
            fine_vnd: fine,
            compliance_deadline: Some(in_secs(30 * DAY)),
            site: i.site.clone(),
            ..Default::default()
        }),
        request_id: id.into(),
    })
    .await
    .expect("decision issued");
}

/// Province 01: three general websites found unlicensed, a social network licensed on its
/// application, a general website whose application (60 days old) is pending and overdue; one
/// inspection with two violations and a fine of 20,000,000 VND.
async fn seed_01(node: &TestNode) {
    let mut c = node.registry("01").await;
    let mut first = None;
    for d in ["mot.vn", "hai.vn", "ba.vn"] {
        let s = register_found(&mut c, P01, "general-website", d, reg::DiscoverySource::Sweep).await;
        first.get_or_insert(s.name);
    }
    let social = register_found(&mut c, P01, "social-network", "mangxahoi.vn", reg::DiscoverySource::Application).await;
    let app = apply(&mut c, &social.name, DAY).await;
    c.approve_application(reg::ApproveApplicationRequest {
        name: app.name.clone(),
        licence: Some(reg::Licence {
            number: "1/GP-STTTT".into(),
            issuing_authority: "Sở Thông tin và Truyền thông".into(),
            issue_time: Some(in_secs(-3600)),
            expire_time: Some(in_secs(365 * DAY)),
            ..Default::default()
        }),
        request_id: "approve".into(),
    })
    .await
    .expect("approved");
    let waiting = register_found(&mut c, P01, "general-website", "cho.vn", reg::DiscoverySource::Application).await;
    assert!(apply(&mut c, &waiting.name, 60 * DAY).await.overdue);
    let mut i = node.inspection_as(&TestNode::inspector("01")).await;
    let x = inspect(&mut i, P01, &first.unwrap(), &["ND15-44", "ND15-99"], "i1").await;
    sanction(&mut i, P01, &x, insp::OffenderKind::Organisation, 20_000_000, "d1").await;
}

/// Province 79: a social network and a general website found by a sweep; one inspection with
/// one violation and a fine of 3,000,000 VND on a person.
async fn seed_79(node: &TestNode) {
    let mut c = node.registry("79").await;
    let s = register_found(&mut c, P79, "social-network", "bay.vn", reg::DiscoverySource::Sweep).await;
    register_found(&mut c, P79, "general-website", "tam.vn", reg::DiscoverySource::Sweep).await;
    let mut i = node.inspection_as(&TestNode::inspector("79")).await;
    let x = inspect(&mut i, P79, &s.name, &["ND15-99"], "j1").await;
    sanction(&mut i, P79, &x, insp::OffenderKind::Person, 3_000_000, "e1").await;
}

fn figures(v: &pb::ReportVersion) -> Vec<(String, String, i64)> {
    v.values.iter().map(|x| (x.indicator.clone(), x.dimension.clone(), x.computed)).collect()
}

fn f(indicator: &str, dimension: &str, value: i64) -> (String, String, i64) {
    (indicator.into(), dimension.into(), value)
}

fn expected_01() -> Vec<(String, String, i64)> {
    vec![
        f("sites_by_kind_status", "general-website/APPLIED", 1),
        f("sites_by_kind_status", "general-website/UNLICENSED", 3),
        f("sites_by_kind_status", "social-network/LICENSED", 1),
        f("licences_issued", "", 1),
        f("applications_received", "", 2),
        f("applications_pending", "", 1),
        f("applications_overdue", "", 1),
        f("unlicensed_found", "", 3),
        f("inspections", "", 1),
        f("sites_inspected", "", 1),
        f("violations_by_code", "ND15-44", 1),
        f("violations_by_code", "ND15-99", 1),
        f("sanction_decisions", "", 1),
        f("fines_imposed_vnd", "", 20_000_000),
        f("licences_suspended", "", 0),
        f("licences_revoked", "", 0),
    ]
}

fn expected_79() -> Vec<(String, String, i64)> {
    vec![
        f("sites_by_kind_status", "general-website/UNLICENSED", 1),
        f("sites_by_kind_status", "social-network/UNLICENSED", 1),
        f("licences_issued", "", 0),
        f("applications_received", "", 0),
        f("applications_pending", "", 0),
        f("applications_overdue", "", 0),
        f("unlicensed_found", "", 2),
        f("inspections", "", 1),
        f("sites_inspected", "", 1),
        f("violations_by_code", "ND15-99", 1),
        f("sanction_decisions", "", 1),
        f("fines_imposed_vnd", "", 3_000_000),
        f("licences_suspended", "", 0),
        f("licences_revoked", "", 0),
    ]
}

// ------------------------------------------------------------------ tests

async fn two_provinces_compile_their_own_figures_and_a_recompile_reports_exactly_the_change(backend: Backend) {
    let Some((centre, node)) = start(backend, &["01", "79"], None, system()).await else { return };
    seed_01(&node).await;
    seed_79(&node).await;
    let c = campaign(&centre, &node, &[P01, P79], 3600, 7200).await;
    let mut r01 = node.reporting("01").await;
    let mut r79 = node.reporting("79").await;

    let got = compile(&mut r01, P01, &c.name).await;
    let report = got.report.clone().unwrap();
    let id = c.name.trim_start_matches("campaigns/");
    assert_eq!(report.name, format!("{P01}/reports/{id}"));
    assert_eq!(report.state(), ReportState::Draft);
    assert_eq!(report.timeliness(), Timeliness::Missing);
    let draft = report.current.clone().unwrap();
    assert_eq!(figures(&draft), expected_01());
    assert_eq!(got.changes.len(), expected_01().len(), "the first compilation lists every figure");
    let (reg_seq, insp_seq) = (node.log_sequence("01", "registry").await, node.log_sequence("01", "inspection").await);
    for v in &draft.values {
        let p = v.provenance.as_ref().unwrap();
        let want = if p.service == "registry" { reg_seq } else { insp_seq };
        assert_eq!(p.log_sequence, want, "{} {}", v.indicator, v.dimension);
        assert!(p.compile_time.is_some());
    }
    assert_eq!(
        draft.values.iter().find(|v| v.indicator == "fines_imposed_vnd").unwrap().provenance.as_ref().unwrap().service,
        "inspection"
    );

    let got79 = compile(&mut r79, P79, &c.name).await;
    assert_eq!(figures(got79.report.as_ref().unwrap().current.as_ref().unwrap()), expected_79());

    // An override without a justification is refused; with one, it is kept across recompiles.
    let err = r01
        .override_value(pb::OverrideValueRequest {
            name: report.name.clone(),
            etag: report.etag.clone(),
            indicator: "unlicensed_found".into(),
            value: 5,
            request_id: "o0".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.get_error_details().bad_request().unwrap().field_violations[0].field, "justification");
    r01.override_value(pb::OverrideValueRequest {
        name: report.name.clone(),
        etag: report.etag.clone(),
        indicator: "unlicensed_found".into(),
        value: 5,
        justification: "Hai trang phát hiện sau ngày chốt số liệu".into(),
        request_id: "o1".into(),
        ..Default::default()
    })
    .await
    .expect("overridden")
    .into_inner();

    // A new unlicensed site: re-compiling reports exactly that change.
    let mut c01 = node.registry("01").await;
    register_found(&mut c01, P01, "general-website", "bon.vn", reg::DiscoverySource::Sweep).await;
    let again = compile(&mut r01, P01, &c.name).await;
    assert_eq!(
        again.changes,
        vec![
            pb::ValueChange {
                indicator: "sites_by_kind_status".into(),
                dimension: "general-website/UNLICENSED".into(),
                before: 3,
                after: 4
            },
            pb::ValueChange { indicator: "unlicensed_found".into(), dimension: String::new(), before: 3, after: 4 },
        ]
    );
    let v = again.report.unwrap().current.unwrap();
    let u = v.values.iter().find(|x| x.indicator == "unlicensed_found").unwrap();
    assert_eq!((u.computed, u.overridden, u.override_value), (4, true, 5));
    assert_eq!(u.justification, "Hai trang phát hiện sau ngày chốt số liệu");
    // Nothing new: nothing changed.
    assert!(compile(&mut r01, P01, &c.name).await.changes.is_empty());
    // 79's report is untouched by 01's site.
    assert_eq!(
        figures(get(&mut r79, &format!("{P79}/reports/{id}"), 0).await.version.as_ref().unwrap()),
        expected_79()
    );
}

async fn a_submission_made_while_the_centre_is_down_is_received_once_and_the_receipt_time_decides(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some((mut centre, node)) = start(backend, &["01"], None, clock.clone()).await else { return };
    let c = campaign(&centre, &node, &[P01], 3, 3600).await;
    let mut r = node.reporting("01").await;
    let report = compile(&mut r, P01, &c.name).await.report.unwrap();
    centre.stop().await;
    let submitted = submit(&mut r, &report).await;
    assert_eq!(submitted.state(), ReportState::Submitted);
    assert_eq!(submitted.timeliness(), Timeliness::Missing);
    let submit_time = time(&submitted.current.as_ref().unwrap().submit_time);
    assert!(submit_time < time(&c.deadline), "submitted before the deadline on the province's clock");
    // The centre comes back after the deadline, and the submission's next attempt is due (past
    // the longest backoff of the attempts made while it was down).
    clock.advance(chrono::Duration::seconds(60));
    centre.start_again_same_port().await;
    clock.advance(chrono::Duration::seconds(31));
    run_round(&node.background().reporting_outbox).await;
    let got = receipt(&r, &submitted.name, 1).await;
    let report = got.report.unwrap();
    let body = got.version.unwrap().receipt.unwrap().body.unwrap();
    assert!(time(&body.receive_time) > time(&c.deadline));
    assert_eq!(time(&report.first_receive_time), time(&body.receive_time));
    assert_eq!(report.timeliness(), Timeliness::Late, "the receipt's time decides, not the province's");
    assert_eq!(time(&report.current.as_ref().unwrap().submit_time), submit_time, "the province's own time is kept");
    let completeness = centre.central().completeness(&c.name).await.expect("completeness");
    assert_eq!(completeness[0].timeliness, Timeliness::Late);
    // Received once, however many attempts it took: ten more rounds of the outbox send nothing.
    for _ in 0..10 {
        run_round(&node.background().reporting_outbox).await;
    }
    let conn = centre.db.connect().await;
    let row = conn
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            conn.backend(),
            "SELECT COUNT(*) FROM change_log WHERE operation = 'RECEIVE'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 1);
    conn.close().await.unwrap();
}

async fn return_edit_resubmit_accept_keeps_every_version_and_a_late_resubmission_stays_on_time(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some((centre, node)) = start(backend, &["01"], None, clock.clone()).await else { return };
    let c = campaign(&centre, &node, &[P01], 3, 3600).await;
    let mut r = node.reporting("01").await;
    let report = compile(&mut r, P01, &c.name).await.report.unwrap();
    let report = narrative(&mut r, &report, "assessment", "Công tác quản lý được tăng cường.").await.unwrap();
    let v1 = submit(&mut r, &report).await;
    let got = receipt(&r, &v1.name, 1).await;
    assert_eq!(got.report.as_ref().unwrap().timeliness(), Timeliness::OnTime);

    // A submitted version is frozen.
    let err = narrative(&mut r, &got.report.clone().unwrap(), "difficulties", "Thiếu nhân lực.").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&err), "INVALID_STATE");

    // Returned with a comment.
    centre
        .admin()
        .r#return(central::ReturnRequest {
            campaign: c.name.clone(),
            jurisdiction: P01.into(),
            version: 1,
            comment: "Bổ sung phần khó khăn, vướng mắc".into(),
            request_id: "ret-1".into(),
        })
        .await
        .expect("returned");
    let returned = report_until(&r, &v1.name, "the report is returned", |x| x.state() == ReportState::Returned).await;
    assert_eq!(returned.centre_comment, "Bổ sung phần khó khăn, vướng mắc");
    assert_eq!(returned.current.as_ref().unwrap().version, 2);

    // Edited and resubmitted after the deadline: the first receipt still decides.
    clock.advance(chrono::Duration::milliseconds(3200));
    let edited = narrative(&mut r, &returned, "difficulties", "Thiếu nhân lực chuyên trách.").await.unwrap();
    let v2 = submit(&mut r, &edited).await;
    assert_eq!(v2.submitted_versions, 2);
    let got = receipt(&r, &v2.name, 2).await;
    assert!(
        time(&got.version.as_ref().unwrap().receipt.as_ref().unwrap().body.as_ref().unwrap().receive_time)
            > time(&c.deadline)
    );
    assert_eq!(got.report.as_ref().unwrap().timeliness(), Timeliness::OnTime);

    centre
        .admin()
        .accept(central::AcceptRequest {
            campaign: c.name.clone(),
            jurisdiction: P01.into(),
            version: 2,
            request_id: "acc-2".into(),
        })
        .await
        .expect("accepted");
    report_until(&r, &v1.name, "the report is accepted", |x| x.state() == ReportState::Accepted).await;

    let one = get(&mut r, &v1.name, 1).await.version.unwrap();
    let two = get(&mut r, &v1.name, 2).await.version.unwrap();
    assert_eq!((one.version, two.version), (1, 2));
    assert_eq!(one.narrative.len(), 1);
    assert_eq!(two.narrative.len(), 2);
    assert_eq!(two.narrative[1].text, "Thiếu nhân lực chuyên trách.");
    assert!(one.receipt.is_some() && two.receipt.is_some());
    assert!(r.get_report(pb::GetReportRequest { name: v1.name.clone(), version: 3 }).await.is_err());
}

async fn an_edit_after_the_lock_is_refused_until_an_exception_reopens_it(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some((centre, node)) = start(backend, &["01"], None, clock.clone()).await else { return };
    let c = campaign(&centre, &node, &[P01], 2, 3).await;
    let mut r = node.reporting("01").await;
    let report = compile(&mut r, P01, &c.name).await.report.unwrap();
    clock.advance(chrono::Duration::milliseconds(3200));
    let err = narrative(&mut r, &report, "assessment", "Muộn").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&err), "LOCKED");
    let err = r
        .compile_report(pb::CompileReportRequest {
            parent: P01.into(),
            campaign: c.name.clone(),
            request_id: "late".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "LOCKED");

    let new_lock = secs_after(clock.now(), 3600);
    centre
        .admin()
        .grant_exception(central::GrantExceptionRequest {
            campaign: c.name.clone(),
            jurisdiction: P01.into(),
            extended_deadline: Some(secs_after(clock.now(), 1800)),
            extended_lock_time: Some(new_lock),
            comment: "Hệ thống của Cục gián đoạn".into(),
            request_id: "exc".into(),
        })
        .await
        .expect("exception granted");
    // Applying the exception changes the report (a new etag) and the lock in force; GetReport reads
    // the two apart, so wait for both.
    let reopened = report_until(&r, &report.name, "the exception reaches the node", |x| {
        x.etag != report.etag && x.lock_time.is_some_and(|t| t.seconds == new_lock.seconds)
    })
    .await;
    narrative(&mut r, &reopened, "assessment", "Đã bổ sung").await.expect("editable again");
}

async fn a_receipt_that_does_not_verify_is_rejected_and_retried(backend: Backend) {
    let wrong = einfo_common::receipts::ReceiptSigner::generate().unwrap().public_key();
    let clock = ManualClock::starting_now();
    let Some((centre, mut node)) = start(backend, &["01"], Some(wrong), clock.clone()).await else { return };
    let c = campaign(&centre, &node, &[P01], 3600, 7200).await;
    let mut r = node.reporting("01").await;
    let report = compile(&mut r, P01, &c.name).await.report.unwrap();
    let submitted = submit(&mut r, &report).await;
    // The centre answers, but its receipt does not verify with the key the node trusts.
    let db = node.db.connect().await;
    let error = eventually("the rejection is recorded", || {
        let db = db.clone();
        async move {
            let row = db
                .conn()
                .query_one_raw(sea_orm::Statement::from_string(
                    db.backend(),
                    "SELECT last_error, state FROM rep_outbox",
                ))
                .await
                .ok()??;
            let e: String = row.try_get_by_index(0).ok()?;
            (!e.is_empty()).then_some((e, row.try_get_by_index::<i32>(1).ok()?))
        }
    })
    .await;
    assert!(error.0.starts_with("receipt rejected"), "{}", error.0);
    assert_eq!(error.1, 1, "still pending");
    let got = get(&mut r, &submitted.name, 1).await;
    assert!(got.version.unwrap().receipt.is_none(), "a receipt that does not verify is not stored");
    assert_eq!(got.report.unwrap().timeliness(), Timeliness::Missing);
    db.close().await.unwrap();

    // With the centre's real key the same submission is delivered, once its retry is due, and its
    // receipt kept.
    node.settings.reporting.centre_public_key_hex = Some(einfo_testkit::hex(centre.public_key()));
    node.restart().await;
    clock.advance(chrono::Duration::seconds(31));
    run_round(&node.background().reporting_outbox).await;
    let r = node.reporting("01").await;
    let got = receipt(&r, &submitted.name, 1).await;
    einfo_common::receipts::verify(&centre.public_key(), got.version.as_ref().unwrap().receipt.as_ref().unwrap())
        .expect("the stored receipt verifies");
    assert_eq!(got.report.unwrap().timeliness(), Timeliness::OnTime);

    // The restarted node resumed the feed after its cursor: the campaign was received once.
    let db = node.db.connect().await;
    let row = db
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            db.backend(),
            "SELECT COUNT(*) FROM change_log WHERE service = 'reporting' AND operation = 'RECEIVE'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 1);
    db.close().await.unwrap();
}

/// Parses CSV text into rows of cells.
fn parse_csv(data: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data)
        .records()
        .map(|r| r.expect("a CSV row").iter().map(|s| s.to_owned()).collect())
        .collect()
}

async fn the_xlsx_exports_figures_sheet_has_the_same_figures_and_vietnamese_text_as_the_csv(backend: Backend) {
    let Some(soffice) = ["libreoffice", "soffice"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        if einfo_testkit::on_ci() {
            panic!("libreoffice is not installed on CI (ensure_debian_packages libreoffice-calc in .ci/run)");
        }
        eprintln!("LIBREOFFICE UNAVAILABLE: this export test did not run");
        return;
    };
    let Some((centre, node)) = start(backend, &["01"], None, system()).await else { return };
    seed_01(&node).await;
    let c = campaign(&centre, &node, &[P01], 3600, 7200).await;
    let mut r = node.reporting("01").await;
    let report = compile(&mut r, P01, &c.name).await.report.unwrap();
    let report = r
        .override_value(pb::OverrideValueRequest {
            name: report.name.clone(),
            etag: report.etag.clone(),
            indicator: "fines_imposed_vnd".into(),
            value: 25_000_000,
            justification: "Bổ sung quyết định số 46/QĐ-XPVPHC, \"đã nộp\"".into(),
            request_id: "o1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let report =
        narrative(&mut r, &report, "recommendations", "Đề nghị Bộ hướng dẫn; tăng cường phối hợp.").await.unwrap();

    let export = |format: pb::ExportFormat| {
        let mut r = r.clone();
        let name = report.name.clone();
        async move {
            r.export_report(pb::ExportReportRequest { name, version: 0, format: format as i32 })
                .await
                .expect("exported")
                .into_inner()
        }
    };
    let csv_file = export(pb::ExportFormat::Csv).await;
    let xlsx_file = export(pb::ExportFormat::Xlsx).await;
    assert!(csv_file.file_name.ends_with(".csv") && xlsx_file.file_name.ends_with(".xlsx"));
    let ours = parse_csv(&csv_file.content);
    assert!(ours.iter().any(|row| row.iter().any(|c| c == "Đề nghị Bộ hướng dẫn; tăng cường phối hợp.")));
    assert!(ours.iter().any(|row| row[0] == "fines_imposed_vnd" && row[3] == "20000000" && row[4] == "25000000"));

    let dir = node.db.dir.join("export");
    std::fs::create_dir_all(&dir).unwrap();
    let xlsx = dir.join("report.xlsx");
    std::fs::write(&xlsx, &xlsx_file.content).unwrap();
    let out = tokio::process::Command::new(soffice)
        .arg(format!("-env:UserInstallation=file://{}", dir.join("profile").display()))
        // The figures are the workbook's fourth sheet (after the written report and its two
        // annexes): the 12th token of the filter's options picks the sheet.
        .args([
            "--headless",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,4",
            "--outdir",
        ])
        .arg(&dir)
        .arg(&xlsx)
        .output()
        .await
        .expect("libreoffice runs");
    assert!(out.status.success(), "libreoffice failed: {}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "csv"))
        .expect("libreoffice wrote a CSV");
    let converted = std::fs::read(csv).expect("libreoffice wrote the CSV");
    let theirs = parse_csv(&converted);
    // LibreOffice pads rows to the widest; trailing empty cells are not content.
    let trim = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rows.into_iter()
            .map(|mut row| {
                while row.last().is_some_and(|c| c.is_empty()) {
                    row.pop();
                }
                row
            })
            .collect()
    };
    assert_eq!(trim(theirs), trim(ours));
}

both_backends!(
    two_provinces_compile_their_own_figures_and_a_recompile_reports_exactly_the_change,
    a_submission_made_while_the_centre_is_down_is_received_once_and_the_receipt_time_decides,
    return_edit_resubmit_accept_keeps_every_version_and_a_late_resubmission_stays_on_time,
    an_edit_after_the_lock_is_refused_until_an_exception_reopens_it,
    a_receipt_that_does_not_verify_is_rejected_and_retried,
    the_xlsx_exports_figures_sheet_has_the_same_figures_and_vietnamese_text_as_the_csv,
);
