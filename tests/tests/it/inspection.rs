//! Inspection: bad input (one row per rule), the figures of two provinces on one node, and the
//! life of a plan. The builders here serve [`crate::decisions`] too.

use chrono::{FixedOffset, TimeZone};
use einfo_common::clock::{Clock, ManualClock};
use einfo_proto::inspection::v1 as pb;
use einfo_proto::log::v1 as log;
use einfo_proto::registry::v1 as reg;
use einfo_testkit::fixtures::{self, license, register_found, timestamp_micros};
use einfo_testkit::{Backend, InspectionClient, RegistryClient, TestNode, both_backends, eventually, in_secs};
use pb::{DecisionState, DeliveryState, InspectionResult, InspectionType, MeasureKind, OffenderKind, PlanState};
use tonic::Code;

use crate::refusals::{self, assert_refused, problems};

pub(crate) const P01: &str = "provinces/2008-01";
const P79: &str = "provinces/2008-79";
const DAY: i64 = 86_400;

// ---------------------------------------------------------------------------- helpers

/// Midnight (Asia/Ho_Chi_Minh) of a civil date.
pub(crate) fn date(y: i32, m: u32, d: u32) -> prost_types::Timestamp {
    let t = FixedOffset::east_opt(7 * 3600).unwrap().with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

/// A timestamp `n` days from now (negative for the past).
pub(crate) fn days(n: i64) -> prost_types::Timestamp {
    in_secs(n * DAY)
}

fn parent(name: &str) -> &str {
    if name.starts_with(P79) { P79 } else { P01 }
}

/// Registers `Trang {domain}`, a site of `kind` found by a sweep.
pub(crate) async fn register(c: &mut RegistryClient, parent: &str, kind: &str, domain: &str) -> reg::Site {
    register_found(c, parent, kind, domain, reg::DiscoverySource::Sweep).await
}

/// A social network with a valid licence (issued a day ago, for a year).
async fn licensed(c: &mut RegistryClient, parent: &str, domain: &str) -> reg::Site {
    let s = register(c, parent, "social-network", domain).await;
    license(c, &s, days(365)).await;
    s
}

fn plan(target_sites: &[&str]) -> pb::InspectionPlan {
    pb::InspectionPlan {
        decision_number: "123/QĐ-STTTT".into(),
        decision_time: Some(days(-10)),
        period_start: Some(days(-30)),
        period_end: Some(days(-1)),
        lead_unit: "Thanh tra Sở".into(),
        coordinating_agencies: vec!["police".into(), "culture".into()],
        target_sites: target_sites.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn create_plan(c: &mut InspectionClient, parent: &str, plan: pb::InspectionPlan, id: &str) -> pb::InspectionPlan {
    c.create_plan(pb::CreatePlanRequest { parent: parent.into(), plan: Some(plan), request_id: id.into() })
        .await
        .expect("plan created")
        .into_inner()
}

async fn advance(c: &mut InspectionClient, p: &pb::InspectionPlan, to: PlanState) -> pb::InspectionPlan {
    c.advance_plan(pb::AdvancePlanRequest {
        name: p.name.clone(),
        etag: p.etag.clone(),
        state: to as i32,
        request_id: format!("advance-{}-{to:?}", p.name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{} advanced to {to:?}: {e:?}", p.name))
    .into_inner()
}

pub(crate) fn violation(code: &str, act_time: prost_types::Timestamp) -> pb::Violation {
    pb::Violation {
        code: code.into(),
        description: format!("Hành vi {code}"),
        act_time: Some(act_time),
        ..Default::default()
    }
}

pub(crate) fn inspection(site: &str, when: prost_types::Timestamp, violations: Vec<pb::Violation>) -> pb::Inspection {
    pb::Inspection {
        site: site.into(),
        inspect_time: Some(when),
        r#type: InspectionType::Unscheduled as i32,
        inspectors: vec!["Nguyễn Văn An".into(), "Trần Thị Bình".into()],
        findings: "Kiểm tra trang chủ và máy chủ".into(),
        evidence: vec![pb::Evidence {
            url: format!("https://{}/", site.rsplit('/').next().unwrap_or("x")),
            capture_time: Some(when),
            sha256: "ab".repeat(32),
        }],
        result: if violations.is_empty() {
            InspectionResult::Compliant as i32
        } else {
            InspectionResult::ViolationsFound as i32
        },
        violations,
        ..Default::default()
    }
}

pub(crate) async fn record(c: &mut InspectionClient, x: pb::Inspection, id: &str) -> pb::Inspection {
    c.record_inspection(pb::RecordInspectionRequest {
        parent: parent(&x.site).into(),
        inspection: Some(x),
        request_id: id.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("inspection {id} recorded: {e:?}"))
    .into_inner()
}

/// A licence suspension until `until`.
pub(crate) fn suspension(until: prost_types::Timestamp) -> pb::Measure {
    pb::Measure { kind: MeasureKind::LicenceSuspension as i32, until: Some(until), ..Default::default() }
}

pub(crate) fn decision(ins: &pb::Inspection, kind: OffenderKind, fine_vnd: i64) -> pb::SanctionDecision {
    pb::SanctionDecision {
        number: "45/QĐ-XPVPHC".into(),
        decision_time: Some(days(-1)),
        inspection: ins.name.clone(),
        offender_kind: kind as i32,
        offender_name: "Công ty Cổ phần Truyền thông".into(),
        fine_vnd,
        compliance_deadline: Some(days(30)),
        site: ins.site.clone(),
        ..Default::default()
    }
}

pub(crate) async fn issue(c: &mut InspectionClient, d: pb::SanctionDecision, id: &str) -> pb::SanctionDecision {
    c.issue_decision(pb::IssueDecisionRequest {
        parent: parent(&d.site).into(),
        decision: Some(d),
        request_id: id.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("decision {id} issued: {e:?}"))
    .into_inner()
}

pub(crate) async fn event(
    c: &mut InspectionClient,
    d: &pb::SanctionDecision,
    ev: pb::DecisionEvent,
    amount_vnd: i64,
    id: &str,
) -> pb::SanctionDecision {
    c.record_decision_event(pb::RecordDecisionEventRequest {
        name: d.name.clone(),
        etag: d.etag.clone(),
        event: ev as i32,
        amount_vnd,
        note: String::new(),
        request_id: id.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("{ev:?} on {} ({id}): {e:?}", d.name))
    .into_inner()
}

pub(crate) async fn get_decision(c: &mut InspectionClient, name: &str) -> pb::SanctionDecision {
    c.get_decision(pb::GetDecisionRequest { name: name.into() }).await.expect("decision read").into_inner()
}

/// Waits until registry acknowledged the licence measure of a decision.
async fn delivered(node: &TestNode, name: &str) -> pb::SanctionDecision {
    let code = if name.starts_with(P79) { "79" } else { "01" };
    let mut c = node.inspection(code).await;
    eventually(&format!("the licence measure of {name} delivered"), || {
        let mut c = c.clone();
        async move {
            let d = get_decision(&mut c, name).await;
            assert_ne!(d.delivery_state(), DeliveryState::Refused, "registry refused: {}", d.delivery_error);
            (d.delivery_state() == DeliveryState::Delivered).then_some(d)
        }
    })
    .await;
    get_decision(&mut c, name).await
}

/// Every entry of a province's inspection log.
pub(crate) async fn inspection_log(node: &TestNode, jurisdiction: &str) -> Vec<log::ChangeEntry> {
    fixtures::log_entries(node, jurisdiction, "inspection").await
}

/// The last sequences of the inspection logs of 01 and 79.
async fn sequences(node: &TestNode) -> (u64, u64) {
    (node.log_sequence("01", "inspection").await, node.log_sequence("79", "inspection").await)
}

// ---------------------------------------------------------------------------- 1. bad input

/// The call a row makes, as the operator of 01.
enum Call {
    CreatePlan(pb::CreatePlanRequest),
    AdvancePlan(pb::AdvancePlanRequest),
    RecordInspection(pb::RecordInspectionRequest),
    IssueDecision(pb::IssueDecisionRequest),
}

impl Call {
    async fn run(self, c: &mut InspectionClient) -> Result<(), tonic::Status> {
        match self {
            Call::CreatePlan(r) => c.create_plan(r).await.map(drop),
            Call::AdvancePlan(r) => c.advance_plan(r).await.map(drop),
            Call::RecordInspection(r) => c.record_inspection(r).await.map(drop),
            Call::IssueDecision(r) => c.issue_decision(r).await.map(drop),
        }
    }
}

/// One rule broken, by one of these calls.
type Row = refusals::Row<Call>;

/// What the seeded node holds for the rows to aim at.
struct Seeded {
    /// A site of 01 known to registry.
    site: String,
    /// A site of 79 known to registry.
    site_79: String,
    /// An inspection of `site` with one ND15-99 violation, recorded with request id "seed-inspection".
    inspection: pb::Inspection,
    /// An inspection of a site of 79, recorded by the operator of 79.
    inspection_79: pb::Inspection,
    /// A plan advanced once, and the etag it had before.
    plan: pb::InspectionPlan,
    plan_stale_etag: String,
}

async fn seed_bad_input(node: &TestNode) -> Seeded {
    let site = register(&mut node.registry("01").await, P01, "general-website", "kiemtra.vn").await;
    let site_79 = register(&mut node.registry("79").await, P79, "general-website", "kiemtra79.vn").await;
    let mut c = node.inspection("01").await;
    let inspection_79 = record(
        &mut node.inspection("79").await,
        inspection(&site_79.name, days(-2), vec![violation("ND15-99", days(-5))]),
        "seed-inspection-79",
    )
    .await;
    let inspection =
        record(&mut c, inspection(&site.name, days(-2), vec![violation("ND15-99", days(-5))]), "seed-inspection").await;
    let p0 = create_plan(&mut c, P01, plan(&[&site.name]), "seed-plan").await;
    let plan = advance(&mut c, &p0, PlanState::InProgress).await;
    assert_ne!(plan.etag, p0.etag);
    Seeded { site: site.name, site_79: site_79.name, inspection, inspection_79, plan, plan_stale_etag: p0.etag }
}

fn rows(s: &Seeded) -> Vec<Row> {
    let invalid = |reason, call, field| Row { reason, call, code: Code::InvalidArgument, info: "FIELD_INVALID", field };
    let record_req = |x: pb::Inspection, id: &str| {
        Call::RecordInspection(pb::RecordInspectionRequest {
            parent: P01.into(),
            inspection: Some(x),
            request_id: id.into(),
        })
    };
    let issue_req = |d: pb::SanctionDecision, id: &str| {
        Call::IssueDecision(pb::IssueDecisionRequest { parent: P01.into(), decision: Some(d), request_id: id.into() })
    };
    let plan_req = |p: pb::InspectionPlan, id: &str| {
        Call::CreatePlan(pb::CreatePlanRequest { parent: P01.into(), plan: Some(p), request_id: id.into() })
    };
    let ok_inspection = || inspection(&s.site, days(-1), vec![violation("ND15-99", days(-3))]);
    // ND15-99 for a person: 2,500,000–5,000,000 VND.
    let ok_decision = || decision(&s.inspection, OffenderKind::Person, 3_000_000);
    let unknown_site = format!("{P01}/sites/00000000000000000000000000000dead");

    vec![
        invalid(
            "a person fined 8,000,000 VND on ND15-99 (a person's range is 2,500,000–5,000,000)",
            issue_req(decision(&s.inspection, OffenderKind::Person, 8_000_000), "r-fine-range"),
            Some("decision.fine_vnd"),
        ),
        invalid(
            "an organisation fined 4,000,000 VND on ND15-99 (an organisation's range is 5,000,000–10,000,000)",
            issue_req(decision(&s.inspection, OffenderKind::Organisation, 4_000_000), "r-fine-range-org"),
            Some("decision.fine_vnd"),
        ),
        invalid(
            "an ND15-44 violation committed on 2019-01-01, before the entry took effect (2020-04-15)",
            record_req(inspection(&s.site, days(-1), vec![violation("ND15-44", date(2019, 1, 1))]), "r-before-effect"),
            Some("inspection.violations[0].act_time"),
        ),
        invalid(
            "a violation code the catalogue does not have",
            record_req(inspection(&s.site, days(-1), vec![violation("ND15-999", days(-3))]), "r-unknown-code"),
            Some("inspection.violations[0].code"),
        ),
        invalid(
            "a decision on a well-formed site of 01 that registry does not have",
            issue_req(pb::SanctionDecision { site: unknown_site.clone(), ..ok_decision() }, "r-decision-unknown-site"),
            Some("decision.site"),
        ),
        invalid(
            "a decision on a site of another province",
            issue_req(pb::SanctionDecision { site: s.site_79.clone(), ..ok_decision() }, "r-decision-other-site"),
            Some("decision.site"),
        ),
        invalid(
            "a decision in 01 on an inspection of 79",
            issue_req(
                pb::SanctionDecision { inspection: s.inspection_79.name.clone(), ..ok_decision() },
                "r-decision-other-inspection",
            ),
            Some("decision.inspection"),
        ),
        invalid(
            "the same violation sanctioned twice in one decision (a person fined 8,000,000 on ND15-99 twice)",
            issue_req(
                pb::SanctionDecision {
                    violation_indexes: vec![0, 0],
                    ..decision(&s.inspection, OffenderKind::Person, 8_000_000)
                },
                "r-duplicate-index",
            ),
            Some("decision.violation_indexes[1]"),
        ),
        invalid(
            "a compliance deadline before the decision date",
            issue_req(
                pb::SanctionDecision {
                    decision_time: Some(days(-1)),
                    compliance_deadline: Some(days(-2)),
                    ..ok_decision()
                },
                "r-deadline-before-decision",
            ),
            Some("decision.compliance_deadline"),
        ),
        invalid(
            "an empty decision number",
            issue_req(pb::SanctionDecision { number: "  ".into(), ..ok_decision() }, "r-empty-number"),
            Some("decision.number"),
        ),
        invalid(
            "a licence revocation on an ND15-99 violation, whose entry allows no measure",
            issue_req(
                pb::SanctionDecision {
                    measures: vec![pb::Measure { kind: MeasureKind::LicenceRevocation as i32, ..Default::default() }],
                    ..ok_decision()
                },
                "r-measure-not-allowed",
            ),
            Some("decision.measures[0].kind"),
        ),
        invalid(
            "an inspection of a site registry does not know",
            record_req(pb::Inspection { site: unknown_site.clone(), ..ok_inspection() }, "r-inspection-unknown-site"),
            Some("inspection.site"),
        ),
        invalid(
            "evidence whose sha256 is not 64 hex digits",
            record_req(
                pb::Inspection {
                    evidence: vec![pb::Evidence {
                        url: "https://kiemtra.vn/".into(),
                        capture_time: Some(days(-1)),
                        sha256: "z".repeat(64),
                    }],
                    ..ok_inspection()
                },
                "r-bad-sha256",
            ),
            Some("inspection.evidence[0].sha256"),
        ),
        invalid(
            "VIOLATIONS_FOUND with no violation",
            record_req(
                pb::Inspection {
                    result: InspectionResult::ViolationsFound as i32,
                    violations: vec![],
                    ..ok_inspection()
                },
                "r-violations-found-none",
            ),
            Some("inspection.violations"),
        ),
        invalid(
            "a plan coordinating with an agency the list does not have",
            plan_req(
                pb::InspectionPlan { coordinating_agencies: vec!["army".into()], ..plan(&[&s.site]) },
                "r-unknown-agency",
            ),
            Some("plan.coordinating_agencies[0]"),
        ),
        invalid(
            "a plan period that ends before it starts",
            plan_req(
                pb::InspectionPlan { period_start: Some(days(-1)), period_end: Some(days(-30)), ..plan(&[&s.site]) },
                "r-period-backwards",
            ),
            Some("plan.period_end"),
        ),
        Row {
            reason: "advancing a plan with the etag it had before its last change",
            call: Call::AdvancePlan(pb::AdvancePlanRequest {
                name: s.plan.name.clone(),
                etag: s.plan_stale_etag.clone(),
                state: PlanState::Closed as i32,
                request_id: "r-stale-etag".into(),
                ..Default::default()
            }),
            code: Code::Aborted,
            info: "STALE_ETAG",
            field: None,
        },
        Row {
            reason: "the operator of 01 recording an inspection in 79 (both hosted here)",
            call: Call::RecordInspection(pb::RecordInspectionRequest {
                parent: P79.into(),
                inspection: Some(inspection(&s.site_79, days(-1), vec![])),
                request_id: "r-other-province".into(),
            }),
            code: Code::PermissionDenied,
            info: "NOT_YOUR_JURISDICTION",
            field: None,
        },
        Row {
            reason: "a request_id used before with another body",
            call: record_req(ok_inspection(), "seed-inspection"),
            code: Code::FailedPrecondition,
            info: "REQUEST_ID_REUSED",
            field: Some("request_id"),
        },
    ]
}

async fn each_bad_input_is_refused_with_its_code_reason_and_field_and_changes_nothing(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    let seeded = seed_bad_input(&node).await;
    let mut c = node.inspection("01").await;
    let mut failures = Vec::new();
    for row in rows(&seeded) {
        let before = sequences(&node).await;
        let result = row.call.run(&mut c).await;
        let after = sequences(&node).await;
        let mut problems = problems(result, row.code, row.info, row.field);
        if before != after {
            problems.push(format!("inspection log sequences (01, 79) moved from {before:?} to {after:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", row.reason, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{backend:?}: {} rule(s) not kept:\n  {}", failures.len(), failures.join("\n  "));
    // The seed wrote exactly: in 01 the inspection, the plan and its advance; in 79 the inspection.
    assert_eq!(sequences(&node).await, (3, 1));
}

// ---------------------------------------------------------------------------- 2. statistics

pub(crate) fn count(code: &str, count: u64) -> pb::ViolationCount {
    pb::ViolationCount { code: code.into(), count }
}

pub(crate) async fn statistics(
    c: &mut InspectionClient,
    jurisdiction: &str,
    as_of: Option<prost_types::Timestamp>,
) -> pb::GetStatisticsResponse {
    c.get_statistics(pb::GetStatisticsRequest { jurisdiction: jurisdiction.into(), as_of, ..Default::default() })
        .await
        .expect("statistics")
        .into_inner()
}

/// Province 01 as of the checkpoint in [`seed_01`]: two plans, four inspections of three sites
/// (one inspected twice), two decisions (20 M for an organisation, 3 M for a person), 5 M paid.
fn expected_01_at_checkpoint(as_of: Option<prost_types::Timestamp>) -> pb::GetStatisticsResponse {
    pb::GetStatisticsResponse {
        jurisdiction: P01.into(),
        as_of,
        log_sequence: 10,
        plans: 2,
        joint_rounds: 2,
        inspections: 4,
        sites_inspected: 3,
        violations: vec![count("EX-LICENCE-TERMS", 1), count("ND15-44", 1), count("ND15-99", 2)],
        decisions: 2,
        fines_imposed_vnd: 23_000_000,
        fines_collected_vnd: 5_000_000,
        licences_suspended: 0,
        licences_revoked: 0,
        handled: vec![],
        warnings: 0,
        content_removals: 0,
    }
}

/// Province 01 in the end: a third decision (25 M, a licence suspension, delivered) and a fourth
/// (6 M, 1 M paid) voided, which counts for nothing.
fn expected_01(as_of: Option<prost_types::Timestamp>) -> pb::GetStatisticsResponse {
    pb::GetStatisticsResponse {
        log_sequence: 15,
        decisions: 3,
        fines_imposed_vnd: 48_000_000,
        licences_suspended: 1,
        ..expected_01_at_checkpoint(as_of)
    }
}

/// Province 79: one plan (advanced twice), three inspections of three sites, three decisions
/// (60 M with confiscation, paid in full and complied with; 7 M for a person on two violations; a
/// licence revocation with 20 M, delivered).
fn expected_79(as_of: Option<prost_types::Timestamp>) -> pb::GetStatisticsResponse {
    pb::GetStatisticsResponse {
        jurisdiction: P79.into(),
        as_of,
        log_sequence: 12,
        plans: 1,
        joint_rounds: 1,
        inspections: 3,
        sites_inspected: 3,
        violations: vec![count("EX-LICENCE-TERMS", 1), count("ND15-98-3", 1), count("ND15-99", 2)],
        decisions: 3,
        fines_imposed_vnd: 87_000_000,
        fines_collected_vnd: 60_000_000,
        licences_suspended: 0,
        licences_revoked: 1,
        handled: vec![],
        warnings: 0,
        content_removals: 0,
    }
}

/// Seeds province 01 and returns the checkpoint: a time after its tenth inspection-log entry and
/// before its eleventh (a second after the one, a second before the other, on `clock`).
async fn seed_01(node: &TestNode, clock: &ManualClock) -> prost_types::Timestamp {
    let mut r = node.registry("01").await;
    let s1 = register(&mut r, P01, "general-website", "mot.vn").await.name;
    let s2 = register(&mut r, P01, "general-website", "hai.vn").await.name;
    let s3 = licensed(&mut r, P01, "mangxahoi.vn").await.name;
    let mut c = node.inspection("01").await;

    let p1 = create_plan(&mut c, P01, plan(&[&s1, &s2]), "p1").await; // 1
    create_plan(&mut c, P01, plan(&[&s3]), "p2").await; // 2
    let p1 = advance(&mut c, &p1, PlanState::InProgress).await; // 3
    let i1 = record(
        &mut c,
        pb::Inspection {
            plan: p1.name.clone(),
            r#type: InspectionType::Scheduled as i32,
            ..inspection(&s1, days(-5), vec![violation("ND15-44", days(-20)), violation("ND15-99", days(-20))])
        },
        "i1",
    )
    .await; // 4
    let i2 = record(&mut c, inspection(&s1, days(-4), vec![violation("ND15-99", days(-6))]), "i2").await; // 5
    record(&mut c, inspection(&s2, days(-3), vec![]), "i3").await; // 6
    let i4 = record(
        &mut c,
        pb::Inspection {
            r#type: InspectionType::Complaint as i32,
            ..inspection(&s3, days(-2), vec![violation("EX-LICENCE-TERMS", days(-7))])
        },
        "i4",
    )
    .await; // 7
    // ND15-44 + ND15-99 for an organisation: 15,000,000–30,000,000.
    let d1 = issue(&mut c, decision(&i1, OffenderKind::Organisation, 20_000_000), "d1").await; // 8
    issue(&mut c, decision(&i2, OffenderKind::Person, 3_000_000), "d2").await; // 9
    let d1 = event(&mut c, &d1, pb::DecisionEvent::Payment, 5_000_000, "d1-paid").await; // 10
    assert_eq!(d1.fine_collected_vnd, 5_000_000);

    clock.advance(chrono::Duration::seconds(1));
    let checkpoint = timestamp_micros(clock.now());
    clock.advance(chrono::Duration::seconds(1));

    let d3 = issue(
        &mut c,
        pb::SanctionDecision {
            measures: vec![suspension(days(30))],
            ..decision(&i4, OffenderKind::Organisation, 25_000_000)
        },
        "d3",
    )
    .await; // 11
    assert_eq!(d3.delivery_state(), DeliveryState::Pending);
    delivered(node, &d3.name).await; // 12, by the node
    let d4 = issue(&mut c, decision(&i2, OffenderKind::Organisation, 6_000_000), "d4").await; // 13
    let d4 = event(&mut c, &d4, pb::DecisionEvent::Payment, 1_000_000, "d4-paid").await; // 14
    let d4 = c
        .void_decision(pb::VoidDecisionRequest {
            name: d4.name.clone(),
            etag: d4.etag.clone(),
            reason: "ghi nhầm".into(),
            request_id: "d4-void".into(),
        })
        .await
        .expect("voided")
        .into_inner(); // 15
    assert!(d4.voided);
    checkpoint
}

async fn seed_79(node: &TestNode) {
    let mut r = node.registry("79").await;
    let t1 = register(&mut r, P79, "social-network", "bay.vn").await.name;
    let t2 = register(&mut r, P79, "general-website", "tam.vn").await.name;
    let t3 = licensed(&mut r, P79, "chin.vn").await.name;
    let mut c = node.inspection("79").await;

    let q = create_plan(&mut c, P79, plan(&[&t1, &t2]), "q1").await; // 1
    let q = advance(&mut c, &q, PlanState::InProgress).await; // 2
    let j1 = record(
        &mut c,
        pb::Inspection { plan: q.name.clone(), ..inspection(&t1, days(-4), vec![violation("ND15-98-3", days(-10))]) },
        "j1",
    )
    .await; // 3
    advance(&mut c, &q, PlanState::Closed).await; // 4
    let j2 = record(
        &mut c,
        inspection(&t2, days(-3), vec![violation("ND15-99", days(-9)), violation("ND15-99", days(-8))]),
        "j2",
    )
    .await; // 5
    let j3 = record(&mut c, inspection(&t3, days(-2), vec![violation("EX-LICENCE-TERMS", days(-9))]), "j3").await; // 6
    // ND15-98-3 for an organisation: 50,000,000–70,000,000, confiscation allowed.
    let e1 = issue(
        &mut c,
        pb::SanctionDecision {
            measures: vec![pb::Measure { kind: MeasureKind::Confiscation as i32, ..Default::default() }],
            ..decision(&j1, OffenderKind::Organisation, 60_000_000)
        },
        "e1",
    )
    .await; // 7
    let e1 = event(&mut c, &e1, pb::DecisionEvent::Payment, 60_000_000, "e1-paid").await; // 8
    let e1 = event(&mut c, &e1, pb::DecisionEvent::Complied, 0, "e1-complied").await; // 9
    assert_eq!(e1.state(), DecisionState::Complied);
    // Two ND15-99 for a person: 5,000,000–10,000,000.
    issue(&mut c, decision(&j2, OffenderKind::Person, 7_000_000), "e2").await; // 10
    let e3 = issue(
        &mut c,
        pb::SanctionDecision {
            measures: vec![pb::Measure { kind: MeasureKind::LicenceRevocation as i32, ..Default::default() }],
            ..decision(&j3, OffenderKind::Organisation, 20_000_000)
        },
        "e3",
    )
    .await; // 11
    delivered(node, &e3.name).await; // 12, by the node
}

async fn two_provinces_on_one_node_have_their_own_inspection_figures(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(node) = TestNode::start_with_clock(backend, &["01", "79"], clock.clone()).await else { return };
    let before_all = timestamp_micros(clock.now());
    clock.advance(chrono::Duration::seconds(1));
    let checkpoint = seed_01(&node, &clock).await;
    seed_79(&node).await;
    assert_eq!(sequences(&node).await, (15, 12));

    let mut analyst = node.inspection_as(&TestNode::analyst()).await;
    let got = statistics(&mut analyst, P01, None).await;
    assert_eq!(got, expected_01(got.as_of));
    assert_eq!(got.log_sequence, node.log_sequence("01", "inspection").await);
    let got = statistics(&mut analyst, P79, None).await;
    assert_eq!(got, expected_79(got.as_of));
    assert_eq!(got.log_sequence, node.log_sequence("79", "inspection").await);

    // Each province's records are its own.
    for (p, code) in [(P01, "01"), (P79, "79")] {
        let mut c = node.inspection(code).await;
        let ins = c
            .list_inspections(pb::ListInspectionsRequest { parent: p.into(), ..Default::default() })
            .await
            .expect("inspections listed")
            .into_inner()
            .inspections;
        assert_eq!(ins.len(), if code == "01" { 4 } else { 3 });
        assert!(ins.iter().all(|i| i.name.starts_with(p) && i.site.starts_with(p)), "{ins:?}");
        let ds = c
            .list_decisions(pb::ListDecisionsRequest { parent: p.into(), ..Default::default() })
            .await
            .expect("decisions listed")
            .into_inner()
            .decisions;
        assert_eq!(ds.len(), if code == "01" { 4 } else { 3 });
        assert!(ds.iter().all(|d| d.name.starts_with(p)), "{ds:?}");
    }

    // The province's operator reads its own figures, not the other province's.
    let mut op01 = node.inspection("01").await;
    let own = statistics(&mut op01, P01, None).await;
    assert_eq!(own, expected_01(own.as_of));
    let err = op01
        .get_statistics(pb::GetStatisticsRequest { jurisdiction: P79.into(), ..Default::default() })
        .await
        .expect_err("another province's figures");
    assert_eq!(err.code(), Code::PermissionDenied);

    // As of a past time: only what was committed by then.
    let then = statistics(&mut analyst, P01, Some(checkpoint)).await;
    assert_eq!(then, expected_01_at_checkpoint(Some(checkpoint)));
    let empty = statistics(&mut analyst, P01, Some(before_all)).await;
    assert_eq!(
        empty,
        pb::GetStatisticsResponse { jurisdiction: P01.into(), as_of: Some(before_all), ..Default::default() }
    );
    let empty = statistics(&mut analyst, P79, Some(checkpoint)).await;
    assert_eq!(
        empty,
        pb::GetStatisticsResponse { jurisdiction: P79.into(), as_of: Some(checkpoint), ..Default::default() },
        "79 had committed nothing by 01's checkpoint"
    );

    // The delivered measures reached registry.
    let log01 = inspection_log(&node, P01).await;
    let delivered: Vec<_> = log01.iter().filter(|e| e.operation == "DELIVERED").collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].sequence, 12);
    assert_eq!(delivered[0].actor.as_ref().expect("an actor").subject, "system");
}

// ---------------------------------------------------------------------------- 3. plans

async fn a_plan_moves_forward_only_and_a_closed_plan_takes_no_inspection(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let site = register(&mut node.registry("01").await, P01, "general-website", "kehoach.vn").await.name;
    let mut c = node.inspection("01").await;
    let p = create_plan(&mut c, P01, plan(&[&site]), "p").await;
    assert_eq!(p.state(), PlanState::Planned);
    assert!(p.name.starts_with(&format!("{P01}/plans/")));

    let p = advance(&mut c, &p, PlanState::InProgress).await;
    assert_eq!(p.state(), PlanState::InProgress);
    let in_plan = |id: &str| pb::RecordInspectionRequest {
        parent: P01.into(),
        inspection: Some(pb::Inspection {
            plan: p.name.clone(),
            r#type: InspectionType::Scheduled as i32,
            ..inspection(&site, days(-1), vec![])
        }),
        request_id: id.into(),
    };
    let ins =
        c.record_inspection(in_plan("in-progress")).await.expect("an inspection in a plan under way").into_inner();
    assert_eq!(ins.plan, p.name);

    let back = |p: &pb::InspectionPlan, to: PlanState, id: &str| pb::AdvancePlanRequest {
        name: p.name.clone(),
        etag: p.etag.clone(),
        state: to as i32,
        request_id: id.into(),
        ..Default::default()
    };
    let before = node.log_sequence("01", "inspection").await;
    let err = c.advance_plan(back(&p, PlanState::Planned, "back-to-planned")).await.expect_err("backwards");
    assert_refused(&err, Code::FailedPrecondition, "INVALID_STATE", None);
    assert_eq!(node.log_sequence("01", "inspection").await, before);

    let p = advance(&mut c, &p, PlanState::Closed).await;
    assert_eq!(p.state(), PlanState::Closed);
    let before = node.log_sequence("01", "inspection").await;
    for (to, id) in [(PlanState::InProgress, "reopen"), (PlanState::Planned, "replan")] {
        let err = c.advance_plan(back(&p, to, id)).await.expect_err("backwards");
        assert_refused(&err, Code::FailedPrecondition, "INVALID_STATE", None);
    }
    let err = c.record_inspection(in_plan("closed")).await.expect_err("an inspection in a closed plan");
    assert_refused(&err, Code::FailedPrecondition, "INVALID_STATE", None);
    assert_eq!(node.log_sequence("01", "inspection").await, before, "refusals change nothing");

    let read = c.get_plan(pb::GetPlanRequest { name: p.name.clone() }).await.expect("plan read").into_inner();
    assert_eq!(read, p);
    let ops: Vec<String> = inspection_log(&node, P01).await.into_iter().map(|e| e.operation).collect();
    assert_eq!(ops, ["CREATE", "ADVANCE", "CREATE", "ADVANCE"]);
}

/// The department counts rounds (cuộc), not site visits: a joint round with the police over three
/// sites counts one round, one joint round and three sites inspected; a round only the department
/// took part in is a round, not a joint one; a round planned with the police in which only the
/// market surveillance took part is joint by who took part.
async fn a_joint_round_with_police_over_three_sites_counts_one_round_one_joint_round_three_sites(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut r = node.registry("01").await;
    let mut sites = Vec::new();
    for d in ["cuoc-1.vn", "cuoc-2.vn", "cuoc-3.vn"] {
        sites.push(register(&mut r, P01, "general-website", d).await.name);
    }
    let names: Vec<&str> = sites.iter().map(String::as_str).collect();
    let mut c = node.inspection("01").await;
    let joint = create_plan(
        &mut c,
        P01,
        pb::InspectionPlan {
            round_kind: pb::RoundKind::Check as i32,
            issuer_title: "Giám đốc Sở Thông tin và Truyền thông".into(),
            coordinating_agencies: vec!["police".into()],
            ..plan(&names)
        },
        "joint",
    )
    .await;
    assert_eq!(joint.round_kind(), pb::RoundKind::Check);
    let joint = advance(&mut c, &joint, PlanState::InProgress).await;
    // The first visit finds nothing; the second a violation dealt with by a reminder; the third
    // one referred to the police.
    let handlings = [None, Some(pb::Handling::Reminder), Some(pb::Handling::ReferralPolice)];
    for (i, (site, how)) in sites.iter().zip(handlings).enumerate() {
        let found =
            how.map(|h| pb::Violation { handling: h as i32, ..violation("ND15-99", days(-3)) }).into_iter().collect();
        let x = pb::Inspection {
            plan: joint.name.clone(),
            r#type: pb::InspectionType::Scheduled as i32,
            ..inspection(site, days(-2), found)
        };
        record(&mut c, x, &format!("visit-{i}")).await;
    }
    let closed = c
        .advance_plan(pb::AdvancePlanRequest {
            name: joint.name.clone(),
            etag: joint.etag.clone(),
            state: PlanState::Closed as i32,
            participating_agencies: vec!["police".into()],
            request_id: "close-joint".into(),
        })
        .await
        .expect("closed")
        .into_inner();
    assert_eq!(closed.participating_agencies, ["police"]);
    let s = statistics(&mut c, P01, None).await;
    assert_eq!((s.plans, s.joint_rounds, s.inspections, s.sites_inspected), (1, 1, 3, 3));
    let handled = |h: pb::Handling| pb::HandlingCount { handling: h as i32, count: 1 };
    assert_eq!(s.handled, vec![handled(pb::Handling::Reminder), handled(pb::Handling::ReferralPolice)]);

    // Alone: a round, not a joint one.
    create_plan(&mut c, P01, pb::InspectionPlan { coordinating_agencies: vec![], ..plan(&names[..1]) }, "alone").await;
    let s = statistics(&mut c, P01, None).await;
    assert_eq!((s.plans, s.joint_rounds), (2, 1));
    // Planned alone, and the market surveillance took part: joint by who took part.
    let p =
        create_plan(&mut c, P01, pb::InspectionPlan { coordinating_agencies: vec![], ..plan(&names[..1]) }, "later")
            .await;
    c.advance_plan(pb::AdvancePlanRequest {
        name: p.name.clone(),
        etag: p.etag.clone(),
        state: PlanState::Closed as i32,
        participating_agencies: vec!["market".into()],
        request_id: "close-later".into(),
    })
    .await
    .expect("closed");
    let s = statistics(&mut c, P01, None).await;
    assert_eq!((s.plans, s.joint_rounds), (3, 2));
    // An agency that does not exist is refused on its field.
    let e = c
        .advance_plan(pb::AdvancePlanRequest {
            name: p.name.clone(),
            etag: "x".into(),
            state: PlanState::Closed as i32,
            participating_agencies: vec!["army".into()],
            request_id: "bad-agency".into(),
        })
        .await
        .expect_err("unknown agency");
    crate::refusals::assert_refused(
        &e,
        tonic::Code::InvalidArgument,
        "FIELD_INVALID",
        Some("participating_agencies[0]"),
    );
}

both_backends!(
    a_joint_round_with_police_over_three_sites_counts_one_round_one_joint_round_three_sites,
    each_bad_input_is_refused_with_its_code_reason_and_field_and_changes_nothing,
    two_provinces_on_one_node_have_their_own_inspection_figures,
    a_plan_moves_forward_only_and_a_closed_plan_takes_no_inspection,
);
