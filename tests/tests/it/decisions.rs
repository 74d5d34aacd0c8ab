//! Sanction decisions: a licence measure registry refuses, one order of violations everywhere,
//! a deadline that passes (72 hours on a manual clock) and a decision complied with after it,
//! corrections that keep their history, and the violation catalogue they are checked against.

use einfo_common::clock::{Clock, ManualClock};
use einfo_proto::inspection::v1 as pb;
use einfo_testkit::fixtures::{operations, run_round, secs_after, timestamp_micros};
use einfo_testkit::{Backend, TestNode, both_backends, eventually};
use pb::{DecisionState, DeliveryState, MeasureKind, OffenderKind};
use prost::Message as _;
use tonic::Code;

use crate::inspection::{
    P01, count, date, days, decision, event, get_decision, inspection, inspection_log, issue, record, register,
    statistics, suspension, violation,
};
use crate::refusals::assert_refused;

// ---------------------------------------------------------------------------- decisions

async fn a_licence_measure_registry_refuses_suspends_no_licence(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    // A site without a licence: registry refuses to suspend what does not exist.
    let site = register(&mut node.registry("01").await, P01, "general-website", "khonggiayphep.vn").await.name;
    let mut c = node.inspection("01").await;
    let ins = record(&mut c, inspection(&site, days(-2), vec![violation("EX-LICENCE-TERMS", days(-5))]), "i").await;
    let d = issue(
        &mut c,
        pb::SanctionDecision {
            measures: vec![suspension(days(30))],
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

/// A decision citing violations 2 and 0 keeps one order everywhere: the answer, `GetDecision`
/// and the log entry (which the gateway replicates) all say `[0, 2]`.
async fn a_decision_lists_its_violations_in_one_order_in_its_answer_its_record_and_its_log(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut r = node.registry("01").await;
    let mut c = node.inspection("01").await;
    let site = register(&mut r, P01, "general-website", "thu-tu.vn").await;
    let found = (0..3).map(|_| violation("ND15-99", date(2025, 1, 10))).collect();
    let ins = record(&mut c, inspection(&site.name, days(-2), found), "ins-order").await;
    // Two violations of ND15-99 (5,000,000–10,000,000 each for an organisation).
    let d = pb::SanctionDecision {
        violation_indexes: vec![2, 0],
        ..decision(&ins, OffenderKind::Organisation, 12_000_000)
    };
    let issued = issue(&mut c, d, "dec-order").await;
    assert_eq!(issued.violation_indexes, vec![0, 2], "the answer");
    assert_eq!(get_decision(&mut c, &issued.name).await.violation_indexes, vec![0, 2], "GetDecision");
    let entry = inspection_log(&node, P01).await.into_iter().rev().find(|e| e.resource == issued.name).expect("logged");
    let logged = pb::SanctionDecision::decode(entry.state.expect("a state").value.as_slice()).expect("a decision");
    assert_eq!(logged.violation_indexes, vec![0, 2], "the log entry");
    assert_eq!(logged, issued, "the log holds what was answered");
}

// ---------------------------------------------------------------------------- overdue

/// A decision due in 72 hours: the node's clock is moved past the deadline and the overdue
/// loop runs once.
async fn a_decision_past_its_deadline_becomes_overdue_and_can_still_be_complied_with(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(node) = TestNode::start_with_clock(backend, &["01"], clock.clone()).await else { return };
    let site = register(&mut node.registry("01").await, P01, "general-website", "quahan.vn").await.name;
    let mut c = node.inspection("01").await;
    let ins = record(&mut c, inspection(&site, days(-1), vec![violation("ND15-99", days(-3))]), "i").await;
    let decided = secs_after(clock.now(), -60);
    let deadline = secs_after(clock.now(), 72 * 3600);
    let d = issue(
        &mut c,
        pb::SanctionDecision {
            decision_time: Some(decided),
            compliance_deadline: Some(deadline),
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
            decision_time: Some(decided),
            compliance_deadline: Some(deadline),
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

    let overdue_loop = &node.background().inspection_outbox;
    run_round(overdue_loop).await;
    assert_eq!(get_decision(&mut c, &d.name).await, d, "not overdue before its deadline");

    // 72 hours and a second later, the overdue loop runs once.
    clock.advance(chrono::Duration::hours(72) + chrono::Duration::seconds(1));
    run_round(overdue_loop).await;
    let overdue = get_decision(&mut c, &d.name).await;
    assert_eq!(overdue.state(), DecisionState::Overdue);
    assert_ne!(overdue.etag, d.etag);

    let entries = inspection_log(&node, P01).await;
    let ops = operations(&entries);
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
    assert_eq!(last.actor.as_ref().expect("an actor").subject, "inspector-01");

    // A complied decision stays complied: the clock does not touch it again.
    clock.advance(chrono::Duration::hours(72));
    run_round(overdue_loop).await;
    assert_eq!(get_decision(&mut c, &d.name).await.state(), DecisionState::Complied);
    assert_eq!(inspection_log(&node, P01).await.pop().map(|e| e.sequence), Some(last.sequence), "nothing more written");
}

// ---------------------------------------------------------------------------- corrections

async fn a_corrected_decision_keeps_its_history_and_the_figures_follow_the_correction(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(node) = TestNode::start_with_clock(backend, &["01"], clock.clone()).await else { return };
    let mut r = node.registry("01").await;
    let mut c = node.inspection("01").await;
    let site = register(&mut r, P01, "general-website", "sua-sai.vn").await;
    let ins =
        record(&mut c, inspection(&site.name, days(-2), vec![violation("ND15-99", date(2025, 1, 10))]), "ins").await;
    let d = issue(&mut c, decision(&ins, OffenderKind::Organisation, 6_000_000), "dec").await;
    clock.advance(chrono::Duration::seconds(1));
    let before = timestamp_micros(clock.now());
    clock.advance(chrono::Duration::seconds(1));
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

// ---------------------------------------------------------------------------- catalogue

async fn the_catalogue_carries_decree_15_and_marks_examples(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.inspection("01").await;
    let now = c.list_catalogue(pb::ListCatalogueRequest::default()).await.expect("catalogue").into_inner();
    assert_eq!(now.catalogue_version, "2026.1");
    let entry = |code: &str| {
        now.entries
            .iter()
            .find(|e| e.code == code)
            .unwrap_or_else(|| panic!("{code} in force now: {:?}", now.entries))
            .clone()
    };
    let in_force_from = Some(date(2020, 4, 15));
    let decree = |article: &str, clause: &str| {
        Some(pb::LegalBasis {
            decree: "15/2020/NĐ-CP".into(),
            article: article.into(),
            clause: clause.into(),
            point: String::new(),
        })
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
    assert_eq!(e.legal_basis, decree("99", "1"));
    assert!(e.allowed_measures.is_empty());
    assert!(e.source.starts_with("Decree 15/2020/NĐ-CP Art. 99, 5–10 M VND"), "{}", e.source);

    for code in ["ND15-44", "ND15-98-3", "ND15-99"] {
        let e = entry(code);
        assert!(!e.example, "{code} is a fact, not an example");
        assert_eq!(e.effective_from, in_force_from, "{code} in force from 2020-04-15");
        assert_eq!(e.effective_to, None, "{code} still in force");
        // 99 was made precise to its clause (1) in 2026.1.
        assert_eq!(e.catalogue_version, if code == "ND15-99" { "2026.1" } else { "2020.1" });
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

/// The letter's own year: an act of 2014 is judged by Decree 174/2013/NĐ-CP, to the point, and
/// the decision cites the provision; a fine outside its range and a warning it does not allow are
/// refused, naming the provision; an act of the day before the decree took effect has no row.
async fn an_act_of_2014_is_judged_by_decree_174_2013_to_the_point(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let site = register(&mut node.registry("01").await, P01, "general-website", "duong-dan-2014.vn").await.name;
    let mut c = node.inspection("01").await;
    // Providing links to websites with unlawful content (Art. 64(1)(b)): 5–10 M VND.
    let ins = record(
        &mut c,
        inspection(&site, date(2014, 10, 6), vec![violation("ND174-64-1-b", date(2014, 9, 10))]),
        "i-2014",
    )
    .await;
    let in_2014 = |fine: i64| pb::SanctionDecision {
        decision_time: Some(date(2014, 10, 20)),
        compliance_deadline: Some(date(2014, 11, 20)),
        ..decision(&ins, OffenderKind::Organisation, fine)
    };
    let refuse = |d: pb::SanctionDecision, id: &'static str| {
        let mut c = c.clone();
        async move {
            c.issue_decision(pb::IssueDecisionRequest { parent: P01.into(), decision: Some(d), request_id: id.into() })
                .await
                .expect_err(id)
        }
    };
    let e = refuse(in_2014(12_000_000), "too-much").await;
    assert_refused(&e, Code::InvalidArgument, "FIELD_INVALID", Some("decision.fine_vnd"));
    assert!(e.message().contains("5000000–10000000 VND"), "{}", e.message());
    let e = refuse(pb::SanctionDecision { warning: true, ..in_2014(0) }, "warned").await;
    assert_refused(&e, Code::InvalidArgument, "FIELD_INVALID", Some("decision.warning"));
    assert!(
        e.message().contains("ND174-64-1-b (Điều 64 khoản 1 điểm b Nghị định 174/2013/NĐ-CP)"),
        "the provision is named: {}",
        e.message()
    );
    let d = issue(&mut c, in_2014(7_000_000), "fined").await;
    assert_eq!(
        d.legal_bases,
        vec![pb::LegalBasis {
            decree: "174/2013/NĐ-CP".into(),
            article: "64".into(),
            clause: "1".into(),
            point: "b".into()
        }]
    );
    assert_eq!(get_decision(&mut c, &d.name).await.legal_bases, d.legal_bases, "kept as issued");

    // The boundaries of Decree 174/2013: in force from 2014-01-15 to 2020-04-14.
    for (act, in_force) in
        [(date(2014, 1, 14), false), (date(2014, 1, 15), true), (date(2020, 4, 14), true), (date(2020, 4, 15), false)]
    {
        let got = c
            .record_inspection(pb::RecordInspectionRequest {
                parent: P01.into(),
                inspection: Some(inspection(&site, date(2020, 5, 1), vec![violation("ND174-64-1-b", act)])),
                request_id: format!("boundary-{}", act.seconds),
            })
            .await;
        assert_eq!(got.is_ok(), in_force, "an act of {act:?}: {got:?}");
    }
}

/// A warning (cảnh cáo) as the principal form, with no fine, only where the provision allows one;
/// a fine where it allows a fine.
async fn a_warning_is_issued_only_where_the_provision_allows_one(backend: Backend) {
    let Some(db) = einfo_testkit::TestDb::new(backend).await else { return };
    let file = db.dir.join("catalogue.csv");
    let header = einfo_reference::catalogue::COLUMNS.join(",");
    std::fs::write(
        &file,
        format!(
            "{header}\n\
             TEST-W,2026.1,Cảnh cáo hoặc phạt tiền,Warning or fine,1/2026/NĐ-CP,1,1,a,1000000,2000000,500000,1000000,CONTENT_REMOVAL,WARNING;FINE,,,2020-01-01,,test file,true\n\
             TEST-F,2026.1,Phạt tiền,Fine only,1/2026/NĐ-CP,1,2,,3000000,5000000,1500000,2500000,,FINE,,,2020-01-01,,test file,true\n"
        ),
    )
    .unwrap();
    let mut settings = einfo_testkit::settings(&db, &["01"]);
    settings.inspection.catalogue_file = Some(file);
    let node = TestNode::start_on(db, settings, Default::default()).await;
    let site = register(&mut node.registry("01").await, P01, "general-website", "canh-cao.vn").await.name;
    let mut c = node.inspection("01").await;
    let warned = record(&mut c, inspection(&site, days(-2), vec![violation("TEST-W", days(-5))]), "iw").await;
    let fined = record(&mut c, inspection(&site, days(-2), vec![violation("TEST-F", days(-5))]), "if").await;
    let warning = |ins: &pb::Inspection, fine: i64| pb::SanctionDecision {
        warning: true,
        ..decision(ins, OffenderKind::Person, fine)
    };
    let removal =
        pb::Measure { kind: pb::MeasureKind::ContentRemoval as i32, deadline: Some(days(10)), ..Default::default() };
    let d = issue(&mut c, pb::SanctionDecision { measures: vec![removal], ..warning(&warned, 0) }, "w").await;
    assert!(d.warning && d.fine_vnd == 0, "{d:?}");
    for (d, id, field) in [
        (warning(&warned, 500_000), "w-fined", "decision.fine_vnd"),
        (warning(&fined, 0), "f-warned", "decision.warning"),
    ] {
        let e = c
            .issue_decision(pb::IssueDecisionRequest { parent: P01.into(), decision: Some(d), request_id: id.into() })
            .await
            .expect_err(id);
        assert_refused(&e, Code::InvalidArgument, "FIELD_INVALID", Some(field));
    }
    issue(&mut c, decision(&fined, OffenderKind::Person, 2_000_000), "f").await;
    // The figures: two decisions, one a warning that also orders the content removed — now, and
    // as the log stood over a period that holds them.
    let now = c
        .get_statistics(pb::GetStatisticsRequest { jurisdiction: P01.into(), ..Default::default() })
        .await
        .expect("statistics")
        .into_inner();
    assert_eq!((now.decisions, now.warnings, now.content_removals), (2, 1, 1), "{now:?}");
    let dated = c
        .get_statistics(pb::GetStatisticsRequest {
            jurisdiction: P01.into(),
            as_of: now.as_of,
            period_start: Some(days(-30)),
            period_end: Some(days(1)),
        })
        .await
        .expect("statistics of a period")
        .into_inner();
    assert_eq!((dated.decisions, dated.warnings, dated.content_removals), (2, 1, 1), "{dated:?}");
    let before = c
        .get_statistics(pb::GetStatisticsRequest {
            jurisdiction: P01.into(),
            as_of: now.as_of,
            period_start: Some(days(-30)),
            period_end: Some(days(-3)),
        })
        .await
        .expect("statistics of an earlier period")
        .into_inner();
    assert_eq!((before.decisions, before.warnings, before.content_removals), (0, 0, 0), "{before:?}");
}

both_backends!(
    a_licence_measure_registry_refuses_suspends_no_licence,
    a_decision_lists_its_violations_in_one_order_in_its_answer_its_record_and_its_log,
    a_decision_past_its_deadline_becomes_overdue_and_can_still_be_complied_with,
    a_corrected_decision_keeps_its_history_and_the_figures_follow_the_correction,
    the_catalogue_carries_decree_15_and_marks_examples,
    the_catalogue_is_loaded_from_the_configured_file,
    an_act_of_2014_is_judged_by_decree_174_2013_to_the_point,
    a_warning_is_issued_only_where_the_provision_allows_one,
);
