//! Inspection: bad input (one row per rule), figures of two provinces on one node, the violation
//! catalogue, decisions that become overdue, and the life of a plan.

use std::time::Duration;

use chrono::{FixedOffset, TimeZone};
use einfo_proto::inspection::v1 as pb;
use einfo_proto::log::v1 as log;
use einfo_proto::registry::v1 as reg;
use einfo_testkit::{Backend, InspectionClient, RegistryClient, TestNode, both_backends, in_secs};
use futures::StreamExt;
use pb::{DecisionState, DeliveryState, InspectionResult, InspectionType, MeasureKind, OffenderKind, PlanState};
use tonic::Code;
use tonic_types::StatusExt;

const P01: &str = "provinces/2008-01";
const P79: &str = "provinces/2008-79";
const DAY: i64 = 86_400;

// ---------------------------------------------------------------------------- helpers

/// Midnight (Asia/Ho_Chi_Minh) of a civil date.
fn date(y: i32, m: u32, d: u32) -> prost_types::Timestamp {
    let t = FixedOffset::east_opt(7 * 3600).unwrap().with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

/// A timestamp `n` days from now (negative for the past).
fn days(n: i64) -> prost_types::Timestamp {
    in_secs(n * DAY)
}

/// Now, to the microsecond (what the node keeps).
fn now_micros() -> prost_types::Timestamp {
    let t = in_secs(0);
    prost_types::Timestamp { seconds: t.seconds, nanos: t.nanos / 1000 * 1000 }
}

fn parent(name: &str) -> &str {
    if name.starts_with(P79) { P79 } else { P01 }
}

async fn register(c: &mut RegistryClient, parent: &str, kind: &str, domain: &str) -> reg::Site {
    c.register_site(reg::RegisterSiteRequest {
        parent: parent.into(),
        site: Some(reg::Site {
            kind: kind.into(),
            display_name: format!("Trang {domain}"),
            domains: vec![domain.into()],
            owner: Some(reg::Owner {
                kind: reg::OwnerKind::Organisation as i32,
                display_name: "Công ty Cổ phần Truyền thông".into(),
                tax_code: "0100109106".into(),
                ..Default::default()
            }),
            hosting: reg::Hosting::InVietnam as i32,
            operational_state: reg::OperationalState::Active as i32,
            discovery_source: reg::DiscoverySource::Sweep as i32,
            ..Default::default()
        }),
        request_id: format!("register-{domain}"),
    })
    .await
    .expect("site registered")
    .into_inner()
}

/// A social network with a valid licence (issued a day ago, for a year).
async fn licensed(c: &mut RegistryClient, parent: &str, domain: &str) -> (reg::Site, reg::Licence) {
    let s = register(c, parent, "social-network", domain).await;
    let app = c
        .submit_application(reg::SubmitApplicationRequest {
            application: Some(reg::LicenceApplication {
                site: s.name.clone(),
                dossier_items: vec!["đơn đề nghị".into(), "đề án".into()],
                receive_time: Some(days(-3)),
                ..Default::default()
            }),
            request_id: format!("submit-{domain}"),
        })
        .await
        .expect("application submitted")
        .into_inner();
    let licence = c
        .approve_application(reg::ApproveApplicationRequest {
            name: app.name.clone(),
            licence: Some(reg::Licence {
                number: format!("{domain}/GP-STTTT"),
                issuing_authority: "Sở Thông tin và Truyền thông".into(),
                issue_time: Some(days(-1)),
                expire_time: Some(days(365)),
                ..Default::default()
            }),
            request_id: format!("approve-{domain}"),
        })
        .await
        .expect("application approved")
        .into_inner()
        .licence
        .expect("a licence");
    (s, licence)
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
    })
    .await
    .unwrap_or_else(|e| panic!("{} advanced to {to:?}: {e:?}", p.name))
    .into_inner()
}

fn violation(code: &str, act_time: prost_types::Timestamp) -> pb::Violation {
    pb::Violation { code: code.into(), description: format!("Hành vi {code}"), act_time: Some(act_time) }
}

fn inspection(site: &str, when: prost_types::Timestamp, violations: Vec<pb::Violation>) -> pb::Inspection {
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

async fn record(c: &mut InspectionClient, x: pb::Inspection, id: &str) -> pb::Inspection {
    c.record_inspection(pb::RecordInspectionRequest {
        parent: parent(&x.site).into(),
        inspection: Some(x),
        request_id: id.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("inspection {id} recorded: {e:?}"))
    .into_inner()
}

fn decision(ins: &pb::Inspection, kind: OffenderKind, fine_vnd: i64) -> pb::SanctionDecision {
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

async fn issue(c: &mut InspectionClient, d: pb::SanctionDecision, id: &str) -> pb::SanctionDecision {
    c.issue_decision(pb::IssueDecisionRequest {
        parent: parent(&d.site).into(),
        decision: Some(d),
        request_id: id.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("decision {id} issued: {e:?}"))
    .into_inner()
}

async fn event(
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

async fn get_decision(c: &mut InspectionClient, name: &str) -> pb::SanctionDecision {
    c.get_decision(pb::GetDecisionRequest { name: name.into() }).await.expect("decision read").into_inner()
}

/// Polls `check` every 100 ms until it gives a value, failing after 15 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
async fn inspection_log(node: &TestNode, jurisdiction: &str) -> Vec<log::ChangeEntry> {
    let mut c = node.changelog().await;
    let mut stream = c
        .stream_changes(log::StreamChangesRequest {
            jurisdiction: jurisdiction.into(),
            service: "inspection".into(),
            after: 0,
            after_hash: Vec::new(),
            follow: false,
        })
        .await
        .expect("stream opened")
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.next().await {
        out.push(r.expect("an entry").entry.expect("entry set"));
    }
    out
}

/// The last sequences of the inspection logs of 01 and 79.
async fn sequences(node: &TestNode) -> (u64, u64) {
    (node.log_sequence("01", "inspection").await, node.log_sequence("79", "inspection").await)
}

/// Asserts a refusal: its code, `ErrorInfo` reason and `BadRequest` fields.
fn assert_refused(status: &tonic::Status, code: Code, info: &str, field: Option<&str>) {
    assert_eq!(status.code(), code, "{status:?}");
    let details = status.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some(info), "{status:?}");
    let fields: Vec<String> =
        details.bad_request().map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect()).unwrap_or_default();
    let expected: Vec<String> = field.map(|f| vec![f.to_string()]).unwrap_or_default();
    assert_eq!(fields, expected, "{status:?}");
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

/// One rule broken.
struct Row {
    /// The rule, for a person.
    reason: &'static str,
    /// The call breaking it.
    call: Call,
    /// The gRPC code expected.
    code: Code,
    /// The `ErrorInfo.reason` expected.
    info: &'static str,
    /// The `BadRequest` field path expected, when the error names a field.
    field: Option<&'static str>,
}

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
        let mut problems = Vec::new();
        match result {
            Ok(()) => problems.push(format!("succeeded; expected {:?} {}", row.code, row.info)),
            Err(status) => {
                if status.code() != row.code {
                    problems.push(format!("code {:?}, expected {:?} ({})", status.code(), row.code, status.message()));
                }
                let details = status.get_error_details();
                let info = details.error_info().map(|i| i.reason.clone());
                if info.as_deref() != Some(row.info) {
                    problems.push(format!("ErrorInfo reason {info:?}, expected {}", row.info));
                }
                let fields: Vec<String> = details
                    .bad_request()
                    .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
                    .unwrap_or_default();
                match row.field {
                    Some(f) if fields != [f] => {
                        problems.push(format!("BadRequest fields {fields:?}, expected [{f:?}] ({})", status.message()))
                    }
                    None if !fields.is_empty() => problems.push(format!("BadRequest fields {fields:?}, expected none")),
                    _ => {}
                }
                if row.code == Code::InvalidArgument && row.field.is_none() {
                    problems.push("an INVALID_ARGUMENT row must name its field".into());
                }
            }
        }
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

fn count(code: &str, count: u64) -> pb::ViolationCount {
    pb::ViolationCount { code: code.into(), count }
}

async fn statistics(
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
        inspections: 4,
        sites_inspected: 3,
        violations: vec![count("EX-LICENCE-TERMS", 1), count("ND15-44", 1), count("ND15-99", 2)],
        decisions: 2,
        fines_imposed_vnd: 23_000_000,
        fines_collected_vnd: 5_000_000,
        licences_suspended: 0,
        licences_revoked: 0,
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
        inspections: 3,
        sites_inspected: 3,
        violations: vec![count("EX-LICENCE-TERMS", 1), count("ND15-98-3", 1), count("ND15-99", 2)],
        decisions: 3,
        fines_imposed_vnd: 87_000_000,
        fines_collected_vnd: 60_000_000,
        licences_suspended: 0,
        licences_revoked: 1,
    }
}

/// Seeds province 01 and returns the checkpoint: a time after its tenth inspection-log entry and
/// before its eleventh.
async fn seed_01(node: &TestNode) -> prost_types::Timestamp {
    let mut r = node.registry("01").await;
    let s1 = register(&mut r, P01, "general-website", "mot.vn").await.name;
    let s2 = register(&mut r, P01, "general-website", "hai.vn").await.name;
    let (s3, _) = licensed(&mut r, P01, "mangxahoi.vn").await;
    let s3 = s3.name;
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

    let checkpoint = now_micros();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let d3 = issue(
        &mut c,
        pb::SanctionDecision {
            measures: vec![pb::Measure {
                kind: MeasureKind::LicenceSuspension as i32,
                until: Some(days(30)),
                ..Default::default()
            }],
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
    let (t3, _) = licensed(&mut r, P79, "chin.vn").await;
    let t3 = t3.name;
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
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    let before_all = now_micros();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let checkpoint = seed_01(&node).await;
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

async fn a_licence_measure_registry_refuses_suspends_no_licence(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    // A site without a licence: registry refuses to suspend what does not exist.
    let site = register(&mut node.registry("01").await, P01, "general-website", "khonggiayphep.vn").await.name;
    let mut c = node.inspection("01").await;
    let ins = record(&mut c, inspection(&site, days(-2), vec![violation("EX-LICENCE-TERMS", days(-5))]), "i").await;
    let d = issue(
        &mut c,
        pb::SanctionDecision {
            measures: vec![pb::Measure {
                kind: MeasureKind::LicenceSuspension as i32,
                until: Some(days(30)),
                ..Default::default()
            }],
            ..decision(&ins, OffenderKind::Organisation, 20_000_000)
        },
        "d",
    )
    .await;
    let refused = eventually("registry's refusal recorded", || {
        let mut c = c.clone();
        let name = d.name.clone();
        async move {
            let d = get_decision(&mut c, &name).await;
            (d.delivery_state() == DeliveryState::Refused).then_some(d)
        }
    })
    .await;
    assert!(!refused.delivery_error.is_empty());
    let got = statistics(&mut c, P01, None).await;
    assert_eq!(
        got,
        pb::GetStatisticsResponse {
            jurisdiction: P01.into(),
            as_of: got.as_of,
            log_sequence: 3,
            inspections: 1,
            sites_inspected: 1,
            violations: vec![count("EX-LICENCE-TERMS", 1)],
            decisions: 1,
            fines_imposed_vnd: 20_000_000,
            ..Default::default()
        },
        "the decision counts, the suspension registry refused does not"
    );
}

// ---------------------------------------------------------------------------- 3. catalogue

async fn the_catalogue_carries_decree_15_and_marks_examples(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.inspection("01").await;
    let now = c.list_catalogue(pb::ListCatalogueRequest::default()).await.expect("catalogue").into_inner();
    assert_eq!(now.catalogue_version, "2020.1");
    let entry = |code: &str| {
        now.entries
            .iter()
            .find(|e| e.code == code)
            .unwrap_or_else(|| panic!("{code} in force now: {:?}", now.entries))
            .clone()
    };
    let in_force_from = Some(date(2020, 4, 15));
    let decree = |article: &str, clause: &str| {
        Some(pb::LegalBasis { decree: "15/2020/NĐ-CP".into(), article: article.into(), clause: clause.into() })
    };

    let e = entry("ND15-44");
    assert_eq!(
        (e.fine_min_organisation_vnd, e.fine_max_organisation_vnd, e.fine_min_person_vnd, e.fine_max_person_vnd),
        (10_000_000, 20_000_000, 5_000_000, 10_000_000)
    );
    assert_eq!(e.legal_basis, decree("44", ""));
    assert!(e.allowed_measures.is_empty());
    assert!(e.source.starts_with("Decree 15/2020/NĐ-CP Art. 44, 10–20 M VND"), "{}", e.source);

    let e = entry("ND15-98-3");
    assert_eq!(
        (e.fine_min_organisation_vnd, e.fine_max_organisation_vnd, e.fine_min_person_vnd, e.fine_max_person_vnd),
        (50_000_000, 70_000_000, 25_000_000, 35_000_000)
    );
    assert_eq!(e.legal_basis, decree("98", "3"));
    assert_eq!(e.allowed_measures, vec![MeasureKind::Confiscation as i32]);
    assert!(e.source.starts_with("Decree 15/2020/NĐ-CP Art. 98(3), 50–70 M VND"), "{}", e.source);

    let e = entry("ND15-99");
    assert_eq!(
        (e.fine_min_organisation_vnd, e.fine_max_organisation_vnd, e.fine_min_person_vnd, e.fine_max_person_vnd),
        (5_000_000, 10_000_000, 2_500_000, 5_000_000)
    );
    assert_eq!(e.legal_basis, decree("99", ""));
    assert!(e.allowed_measures.is_empty());
    assert!(e.source.starts_with("Decree 15/2020/NĐ-CP Art. 99, 5–10 M VND"), "{}", e.source);

    for code in ["ND15-44", "ND15-98-3", "ND15-99"] {
        let e = entry(code);
        assert!(!e.example, "{code} is a fact, not an example");
        assert_eq!(e.effective_from, in_force_from, "{code} in force from 2020-04-15");
        assert_eq!(e.effective_to, None, "{code} still in force");
        assert_eq!(e.catalogue_version, "2020.1");
        assert!(!e.description_vi.is_empty() && !e.description_en.is_empty());
    }
    let examples: Vec<&pb::CatalogueEntry> = now.entries.iter().filter(|e| e.code.starts_with("EX-")).collect();
    assert!(!examples.is_empty(), "example entries exercise licence measures");
    for e in &examples {
        assert!(e.example, "{} is an example", e.code);
        assert!(e.source.contains("EXAMPLE"), "{}: {}", e.code, e.source);
    }
    assert!(now.entries.iter().all(|e| e.example == e.code.starts_with("EX-")), "{:?}", now.entries);
    assert!(now.entries.iter().all(|e| !e.source.is_empty()));

    let old = c
        .list_catalogue(pb::ListCatalogueRequest { as_of: Some(date(2019, 1, 1)), all_versions: false })
        .await
        .expect("catalogue of 2019")
        .into_inner();
    for code in ["ND15-44", "ND15-98-3", "ND15-99"] {
        assert!(old.entries.iter().all(|e| e.code != code), "{code} was not in force on 2019-01-01");
    }
    assert!(
        old.entries.iter().all(|e| e.effective_from.as_ref().is_some_and(|f| f.seconds <= date(2019, 1, 1).seconds)),
        "{:?}",
        old.entries
    );
    // The day before Decree 15 took effect, and the day it did.
    let eve = c
        .list_catalogue(pb::ListCatalogueRequest {
            as_of: Some(in_secs_at(date(2020, 4, 15), -1)),
            all_versions: false,
        })
        .await
        .expect("catalogue of 2020-04-14")
        .into_inner();
    assert!(eve.entries.iter().all(|e| !e.code.starts_with("ND15-")), "{:?}", eve.entries);
    let day = c
        .list_catalogue(pb::ListCatalogueRequest { as_of: Some(date(2020, 4, 15)), all_versions: false })
        .await
        .expect("catalogue of 2020-04-15")
        .into_inner();
    assert_eq!(day.entries.iter().filter(|e| e.code.starts_with("ND15-")).count(), 3);

    let all = c
        .list_catalogue(pb::ListCatalogueRequest { as_of: None, all_versions: true })
        .await
        .expect("every version")
        .into_inner();
    assert!(all.entries.len() >= now.entries.len());
}

/// `t` shifted by `secs` seconds.
fn in_secs_at(t: prost_types::Timestamp, secs: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.seconds + secs, nanos: t.nanos }
}

// ---------------------------------------------------------------------------- 4. overdue

async fn a_decision_past_its_deadline_becomes_overdue_and_can_still_be_complied_with(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let site = register(&mut node.registry("01").await, P01, "general-website", "quahan.vn").await.name;
    let mut c = node.inspection("01").await;
    let ins = record(&mut c, inspection(&site, days(-1), vec![violation("ND15-99", days(-3))]), "i").await;
    let d = issue(
        &mut c,
        pb::SanctionDecision {
            decision_time: Some(in_secs(-60)),
            compliance_deadline: Some(in_secs(2)),
            ..decision(&ins, OffenderKind::Organisation, 7_000_000)
        },
        "d",
    )
    .await;
    assert_eq!(d.state(), DecisionState::Issued);
    // Another decision with the same deadline, voided at once: a tombstone has no deadline.
    let wrong = issue(
        &mut c,
        pb::SanctionDecision {
            number: "46/QĐ-XPVPHC".into(),
            decision_time: Some(in_secs(-60)),
            compliance_deadline: Some(in_secs(2)),
            ..decision(&ins, OffenderKind::Organisation, 7_000_000)
        },
        "wrong",
    )
    .await;
    let wrong = c
        .void_decision(pb::VoidDecisionRequest {
            name: wrong.name.clone(),
            etag: wrong.etag.clone(),
            reason: "ghi nhầm".into(),
            request_id: "void-wrong".into(),
        })
        .await
        .expect("voided")
        .into_inner();

    let overdue = eventually("the decision to become OVERDUE", || {
        let mut c = c.clone();
        let name = d.name.clone();
        async move {
            let d = get_decision(&mut c, &name).await;
            (d.state() == DecisionState::Overdue).then_some(d)
        }
    })
    .await;
    assert_ne!(overdue.etag, d.etag);

    let entries = inspection_log(&node, P01).await;
    let ops: Vec<&str> = entries.iter().map(|e| e.operation.as_str()).collect();
    let e = entries
        .iter()
        .find(|e| e.operation == "OVERDUE" && e.resource == d.name)
        .unwrap_or_else(|| panic!("no OVERDUE entry for {}; log: {ops:?}", d.name));
    let actor = e.actor.clone().expect("an actor");
    assert_eq!((actor.subject.as_str(), actor.role.as_str()), ("system", "system"), "OVERDUE is written by the node");
    assert_eq!(actor.jurisdiction, P01);
    let state = e.state.as_ref().expect("a state").to_msg::<pb::SanctionDecision>().expect("a decision");
    assert_eq!(state.state(), DecisionState::Overdue);
    assert_eq!(entries.iter().filter(|e| e.operation == "OVERDUE").count(), 1, "written once: {ops:?}");
    assert!(
        entries.iter().all(|e| e.resource != wrong.name || e.operation != "OVERDUE"),
        "a voided decision does not become overdue: {ops:?}"
    );
    assert_eq!(get_decision(&mut c, &wrong.name).await, wrong, "the voided decision is left as it was");

    let complied = event(&mut c, &overdue, pb::DecisionEvent::Complied, 0, "complied").await;
    assert_eq!(complied.state(), DecisionState::Complied);
    assert_eq!(get_decision(&mut c, &d.name).await.state(), DecisionState::Complied);
    let last = inspection_log(&node, P01).await.pop().expect("an entry");
    assert_eq!((last.operation.as_str(), last.resource.as_str()), ("COMPLY", d.name.as_str()));
    assert_eq!(last.actor.expect("an actor").subject, "operator-01");

    // A complied decision stays complied: the clock does not touch it again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get_decision(&mut c, &d.name).await.state(), DecisionState::Complied);
}

// ---------------------------------------------------------------------------- 5. plans

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

// ---------------------------------------------------------------------------- corrections

async fn a_corrected_decision_keeps_its_history_and_the_figures_follow_the_correction(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut r = node.registry("01").await;
    let mut c = node.inspection("01").await;
    let site = register(&mut r, P01, "general-website", "sua-sai.vn").await;
    let ins =
        record(&mut c, inspection(&site.name, days(-2), vec![violation("ND15-99", date(2025, 1, 10))]), "ins").await;
    let d = issue(&mut c, decision(&ins, OffenderKind::Organisation, 6_000_000), "dec").await;
    let before = now_micros();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let seq = node.log_sequence("01", "inspection").await;

    // A fine outside the range is refused on correction too, and changes nothing.
    let bad = c
        .correct_decision(pb::CorrectDecisionRequest {
            decision: Some(pb::SanctionDecision {
                name: d.name.clone(),
                etag: d.etag.clone(),
                fine_vnd: 12_000_000,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["fine_vnd".into()] }),
            reason: "nhập sai số tiền".into(),
            request_id: "fix-bad".into(),
        })
        .await
        .expect_err("outside the range");
    assert_refused(&bad, Code::InvalidArgument, "FIELD_INVALID", Some("decision.fine_vnd"));
    // Measures cannot be corrected.
    let bad = c
        .correct_decision(pb::CorrectDecisionRequest {
            decision: Some(pb::SanctionDecision { name: d.name.clone(), etag: d.etag.clone(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["measures".into()] }),
            reason: "x".into(),
            request_id: "fix-measures".into(),
        })
        .await
        .expect_err("measures are not corrected");
    assert_refused(&bad, Code::InvalidArgument, "FIELD_INVALID", Some("update_mask.paths[0]"));
    assert_eq!(node.log_sequence("01", "inspection").await, seq);

    let fixed = c
        .correct_decision(pb::CorrectDecisionRequest {
            decision: Some(pb::SanctionDecision {
                name: d.name.clone(),
                etag: d.etag.clone(),
                fine_vnd: 9_000_000,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["fine_vnd".into()] }),
            reason: "nhập sai số tiền".into(),
            request_id: "fix".into(),
        })
        .await
        .expect("corrected")
        .into_inner();
    assert_eq!(fixed.fine_vnd, 9_000_000);
    assert_eq!(fixed.reason, "nhập sai số tiền");
    assert_eq!(fixed.number, d.number, "fields outside the mask are kept");
    let entries = inspection_log(&node, P01).await;
    let last = entries.last().expect("entries");
    assert_eq!((last.operation.as_str(), last.reason.as_str()), ("CORRECT", "nhập sai số tiền"));

    // Figures now count the corrected fine once; as of before the correction, the first one.
    let now = statistics(&mut c, P01, None).await;
    assert_eq!((now.decisions, now.fines_imposed_vnd), (1, 9_000_000));
    let then = statistics(&mut c, P01, Some(before)).await;
    assert_eq!((then.decisions, then.fines_imposed_vnd), (1, 6_000_000));
}

async fn the_catalogue_is_loaded_from_the_configured_file(backend: Backend) {
    let Some(db) = einfo_testkit::TestDb::new(backend).await else { return };
    let file = db.dir.join("catalogue.csv");
    std::fs::write(
        &file,
        "code,catalogue_version,description_vi,description_en,decree,article,clause,fine_min_organisation_vnd,fine_max_organisation_vnd,fine_min_person_vnd,fine_max_person_vnd,allowed_measures,effective_from,effective_to,source,example\n\
         TEST-1,2026.1,Thử nghiệm,Test,1/2026/NĐ-CP,1,,1000000,2000000,500000,1000000,CONTENT_REMOVAL,2026-01-01,,test file,true\n",
    )
    .unwrap();
    let mut settings = einfo_testkit::settings(&db, &["01"]);
    settings.inspection.catalogue_file = Some(file);
    let node = TestNode::start_on(db, settings, Default::default()).await;
    let mut c = node.inspection("01").await;
    let all = c
        .list_catalogue(pb::ListCatalogueRequest { all_versions: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<String> = all.entries.into_iter().map(|e| e.code).collect();
    assert_eq!(codes, vec!["TEST-1".to_string()]);
    assert_eq!(all.catalogue_version, "2026.1");
}

both_backends!(
    each_bad_input_is_refused_with_its_code_reason_and_field_and_changes_nothing,
    two_provinces_on_one_node_have_their_own_inspection_figures,
    a_licence_measure_registry_refuses_suspends_no_licence,
    the_catalogue_carries_decree_15_and_marks_examples,
    a_decision_past_its_deadline_becomes_overdue_and_can_still_be_complied_with,
    a_plan_moves_forward_only_and_a_closed_plan_takes_no_inspection,
    a_corrected_decision_keeps_its_history_and_the_figures_follow_the_correction,
    the_catalogue_is_loaded_from_the_configured_file,
);
