//! The national gateway's lists and figures, and the centre it serves, on small federations with
//! literal figures: expiring licences, overdue applications, enforcement figures, campaign
//! completeness (the deadline passed on the gateway's manual clock), signed receipts (and a
//! tampered one refused by the node), and the campaign feed resumed after a node restart.

use einfo_app::node::Options;
use einfo_common::clock::{Clock, ManualClock};
use einfo_common::receipts::verify;
use einfo_proto::central::v1 as central;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as pb;
use einfo_proto::reporting::v1 as rep;
use einfo_testkit::fixtures::{apply, register_in, secs_after, violations_found};
use einfo_testkit::gateway::{gateway_settings, partial, strict};
use einfo_testkit::{
    Backend, InspectionClient, ProxyMode, SiteExt, TcpProxy, TestDb, TestGateway, TestNode, both_backends, eventually,
    in_secs, province, settings, site,
};
use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::gateway::{DAY, federation, j, licensed, missing_names, register, unconfigured};
use crate::refusals::fields;

// ------------------------------------------------------------------ national lists and figures

pub(crate) async fn inspect(
    c: &mut InspectionClient,
    code: &str,
    site: &str,
    codes: &[&str],
    days_ago: i64,
) -> insp::Inspection {
    c.record_inspection(insp::RecordInspectionRequest {
        parent: j(code),
        inspection: Some(violations_found(site, codes, days_ago, days_ago + 10)),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("inspection recorded")
    .into_inner()
}

pub(crate) async fn sanction(c: &mut InspectionClient, code: &str, i: &insp::Inspection, fine: i64) {
    c.issue_decision(insp::IssueDecisionRequest {
        parent: j(code),
        decision: Some(insp::SanctionDecision {
            number: "45/QĐ-XPVPHC".into(),
            decision_time: Some(in_secs(-DAY)),
            inspection: i.name.clone(),
            offender_kind: insp::OffenderKind::Organisation as i32,
            offender_name: "Công ty Cổ phần Truyền thông".into(),
            fine_vnd: fine,
            compliance_deadline: Some(in_secs(30 * DAY)),
            site: i.site.clone(),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("decision issued");
}

fn days(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: n * DAY, nanos: 0 })
}

async fn expiring_licences_overdue_applications_and_enforcement_figures_are_national_and_exact(backend: Backend) {
    let Some((nodes, g)) = federation(backend, &[&["01", "79"]]).await else { return };
    let node = &nodes[0];
    let soon = licensed(node, "01", "sapheth.vn", in_secs(10 * DAY)).await;
    let later = licensed(node, "01", "conlau.vn", in_secs(100 * DAY)).await;
    let sooner = licensed(node, "79", "ganhet.vn", in_secs(3 * DAY)).await;
    // An application received 60 days ago (10 working days allowed) and a fresh one.
    let applying = |name: &str, domain: &str| site(name, &[domain]).found_by(pb::DiscoverySource::Application);
    let old = register_in(node, "01", applying("Chờ lâu", "cholau.vn")).await;
    let old = apply(&mut node.registry("01").await, &old.name, 60 * DAY).await;
    assert!(old.overdue);
    let fresh = register_in(node, "79", applying("Mới nộp", "moinop.vn")).await;
    assert!(!apply(&mut node.registry("79").await, &fresh.name, 0).await.overdue);
    // 01: an inspection 5 days ago with two violations, fined 20,000,000 VND. 79: one with one
    // violation, fined 6,000,000 VND, and one 40 days ago (outside the period) with one more.
    let targets = [
        register(node, "01", "Vi phạm Hà Nội", &["vipham-hn.vn"]).await,
        register(node, "79", "Vi phạm Sài Gòn", &["vipham-sg.vn"]).await,
    ];
    let mut i01 = node.inspection_as(&TestNode::inspector("01")).await;
    let x = inspect(&mut i01, "01", &targets[0].name, &["ND15-44", "ND15-99"], 5).await;
    sanction(&mut i01, "01", &x, 20_000_000).await;
    let mut i79 = node.inspection_as(&TestNode::inspector("79")).await;
    let y = inspect(&mut i79, "79", &targets[1].name, &["ND15-99"], 5).await;
    sanction(&mut i79, "79", &y, 6_000_000).await;
    inspect(&mut i79, "79", &targets[1].name, &["ND15-44"], 40).await;
    g.wait_caught_up(&[node]).await;

    // Expiring licences: by expiry, within the window only.
    let expiring = |within: Option<prost_types::Duration>, page_size: i32| {
        let g = &g;
        async move {
            g.national()
                .list_expiring_licences(gw::ListExpiringLicencesRequest {
                    options: partial(gw::Grouping::Provinces63),
                    within,
                    page_size,
                })
                .await
                .map(|r| r.into_inner())
        }
    };
    let names = |r: &gw::ListExpiringLicencesResponse| -> Vec<(String, String)> {
        r.licences.iter().map(|l| (l.jurisdiction.clone(), l.licence.as_ref().unwrap().name.clone())).collect()
    };
    let r = expiring(days(30), 0).await.unwrap();
    assert_eq!(names(&r), vec![(j("79"), sooner.name.clone()), (j("01"), soon.name.clone())]);
    assert_eq!(r.total, 2);
    assert_eq!(missing_names(&r.missing), unconfigured(&["01", "79"]));
    let r = expiring(days(5), 0).await.unwrap();
    assert_eq!(names(&r), vec![(j("79"), sooner.name.clone())], "10 days is not within 5");
    assert_eq!(expiring(None, 0).await.unwrap().total, 2, "30 days by default");
    let r = expiring(days(365), 1).await.unwrap();
    assert_eq!((names(&r), r.total), (vec![(j("79"), sooner.name.clone())], 3), "a page of one, all counted");
    let r = expiring(days(365), 0).await.unwrap();
    assert_eq!(names(&r).last().unwrap().1, later.name);
    let e = expiring(Some(prost_types::Duration { seconds: -1, nanos: 0 }), 0).await.unwrap_err();
    assert_eq!(fields(&e), vec!["within"]);
    // Units follow the grouping: 79 is in the merged Hồ Chí Minh City of the 34 provinces.
    let r = g
        .national()
        .list_expiring_licences(gw::ListExpiringLicencesRequest {
            options: partial(gw::Grouping::Provinces34),
            within: days(5),
            page_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.licences[0].unit, province("79").successor().unwrap().to_string());

    // Overdue applications: the old one only.
    let r = g
        .national()
        .list_overdue_applications(gw::ListOverdueApplicationsRequest {
            options: partial(gw::Grouping::Provinces63),
            page_size: 0,
        })
        .await
        .expect("overdue")
        .into_inner();
    let overdue: Vec<(String, String)> =
        r.applications.iter().map(|a| (a.jurisdiction.clone(), a.application.as_ref().unwrap().name.clone())).collect();
    assert_eq!(overdue, vec![(j("01"), old.name.clone())]);
    assert_eq!(r.total, 1);

    // Enforcement in the last 30 days.
    let r = g
        .national()
        .get_enforcement_summary(gw::GetEnforcementSummaryRequest {
            options: partial(gw::Grouping::Provinces63),
            period_start: Some(in_secs(-30 * DAY)),
            period_end: Some(in_secs(3600)),
        })
        .await
        .expect("enforcement")
        .into_inner();
    let by_code = |v: &[(&str, i64)]| -> Vec<gw::ViolationCount> {
        v.iter().map(|(code, count)| gw::ViolationCount { code: code.to_string(), count: *count }).collect()
    };
    let figures = |unit: &str, inspections, violations: &[(&str, i64)], decisions, fines_vnd| gw::EnforcementFigures {
        unit: unit.to_owned(),
        inspections,
        violations: violations.iter().map(|(_, n)| n).sum(),
        violations_by_code: by_code(violations),
        decisions,
        fines_vnd,
        suspensions: 0,
        revocations: 0,
    };
    assert_eq!(
        r.units,
        vec![
            figures(&j("01"), 1, &[("ND15-44", 1), ("ND15-99", 1)], 1, 20_000_000),
            figures(&j("79"), 1, &[("ND15-99", 1)], 1, 6_000_000),
        ]
    );
    assert_eq!(r.totals, Some(figures("", 2, &[("ND15-44", 1), ("ND15-99", 2)], 2, 26_000_000)));
    assert_eq!(missing_names(&r.missing), unconfigured(&["01", "79"]));
    // The last 60 days take in 79's older inspection too.
    let r = g
        .national()
        .get_enforcement_summary(gw::GetEnforcementSummaryRequest {
            options: partial(gw::Grouping::Provinces63),
            period_start: Some(in_secs(-60 * DAY)),
            period_end: Some(in_secs(3600)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.totals, Some(figures("", 3, &[("ND15-44", 2), ("ND15-99", 2)], 2, 26_000_000)));
    let e = g
        .national()
        .get_enforcement_summary(gw::GetEnforcementSummaryRequest {
            options: partial(gw::Grouping::Provinces63),
            period_start: Some(in_secs(0)),
            period_end: Some(in_secs(-DAY)),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&e), vec!["period_end"]);
    let e = g
        .national()
        .get_enforcement_summary(gw::GetEnforcementSummaryRequest {
            options: strict(gw::Grouping::Provinces63),
            period_start: Some(in_secs(-DAY)),
            period_end: Some(in_secs(0)),
        })
        .await
        .expect_err("STRICT with unconfigured provinces");
    assert_eq!(e.code(), Code::Unavailable);

    // The same questions from a terminal, as central staff.
    let expiring = national_cli(&g, &["expiring", "--days", "30"]).await;
    assert_eq!(expiring["total"], 2, "{expiring}");
    assert_eq!(national_cli(&g, &["overdue"]).await["total"], 1);
    let rfc = |t: prost_types::Timestamp| chrono::DateTime::from_timestamp(t.seconds, 0).unwrap().to_rfc3339();
    let (from, to) = (rfc(in_secs(-30 * DAY)), rfc(in_secs(3600)));
    let enforcement = national_cli(&g, &["enforcement", "--from", &from, "--to", &to]).await;
    assert_eq!(
        (enforcement["totals"]["decisions"].as_i64(), enforcement["totals"]["fines_vnd"].as_i64()),
        (Some(2), Some(26_000_000))
    );
}

/// `einfo national … --json` against `g`, with a token signed from the test secret: its JSON.
async fn national_cli(g: &TestGateway, args: &[&str]) -> serde_json::Value {
    let dir = g.db.dir.join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token-secret"), g.settings.auth.secret.clone().expect("the test secret")).unwrap();
    let out = einfo_testkit::process::einfo()
        .arg("national")
        .args(args)
        .args(["--json", "--gateway", &g.url(), "--profile"])
        .arg(dir.join("no-profile.json"))
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .await
        .expect("run einfo national");
    assert!(out.status.success(), "einfo national {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

// ------------------------------------------------------------------ the centre

fn campaign(targets: &[&str], deadline: prost_types::Timestamp) -> central::Campaign {
    central::Campaign {
        reference: "3224/BTTTT-PTTH&TTĐT".into(),
        title: "Báo cáo quản lý trang thông tin điện tử".into(),
        period_start: Some(in_secs(-90 * DAY)),
        period_end: Some(in_secs(-DAY)),
        as_of: Some(in_secs(-3600)),
        deadline: Some(deadline),
        lock_time: Some(in_secs(30 * DAY)),
        targets: targets.iter().map(|c| j(c)).collect(),
        indicators: vec![central::Indicator {
            code: "sites_by_kind_status".into(),
            name_vi: "Số trang theo loại và trạng thái".into(),
            name_en: "Sites by kind and status".into(),
        }],
        narrative_sections: vec!["assessment".into()],
        ..Default::default()
    }
}

async fn create_campaign(g: &TestGateway, targets: &[&str], deadline: prost_types::Timestamp) -> central::Campaign {
    g.centre_admin()
        .create_campaign(central::CreateCampaignRequest {
            campaign: Some(campaign(targets, deadline)),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("campaign created")
        .into_inner()
}

fn submission(campaign: &str, code: &str, content: &[u8]) -> central::Submission {
    central::Submission {
        campaign: campaign.into(),
        jurisdiction: j(code),
        report: format!("{}/reports/{}", j(code), campaign.trim_start_matches("campaigns/")),
        version: 1,
        content: content.to_vec(),
        content_hash: Sha256::digest(content).to_vec(),
        submit_time: Some(in_secs(0)),
    }
}

async fn submit_to(g: &TestGateway, code: &str, s: central::Submission) -> central::Receipt {
    g.centre_as_province(code)
        .submit(central::SubmitRequest { submission: Some(s) })
        .await
        .expect("received")
        .into_inner()
        .receipt
        .expect("a receipt")
}

async fn campaign_completeness_counts_expected_submitted_on_time_late_and_missing(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let clock = ManualClock::starting_now();
    let s = gateway_settings(&db);
    let g = TestGateway::start_with_clock(db, s, &[], clock.clone()).await;
    let c = create_campaign(&g, &["01", "79", "48", "77"], secs_after(clock.now(), 3)).await;
    submit_to(&g, "01", submission(&c.name, "01", b"report of 01")).await;
    // The deadline passes on the centre's clock.
    clock.advance(chrono::Duration::milliseconds(3500));
    submit_to(&g, "79", submission(&c.name, "79", b"report of 79")).await;
    submit_to(&g, "77", submission(&c.name, "77", b"report of 77")).await;

    let completeness = |grouping: gw::Grouping| {
        let g = &g;
        let name = c.name.clone();
        async move {
            g.national()
                .get_campaign_completeness(gw::GetCampaignCompletenessRequest {
                    campaign: name,
                    grouping: grouping as i32,
                })
                .await
                .map(|r| r.into_inner())
        }
    };
    let unit = |unit: String, expected, submitted, on_time, late, missing| gw::UnitCompleteness {
        unit,
        expected,
        submitted,
        on_time,
        late,
        missing,
    };
    let r = completeness(gw::Grouping::Provinces63).await.expect("completeness");
    assert_eq!(r.totals, Some(unit(String::new(), 4, 3, 1, 2, 1)));
    assert_eq!(
        r.units,
        vec![
            unit(j("01"), 1, 1, 1, 0, 0),
            unit(j("48"), 1, 0, 0, 0, 1),
            unit(j("77"), 1, 1, 0, 1, 0),
            unit(j("79"), 1, 1, 0, 1, 0),
        ]
    );
    let targets: Vec<(String, String, bool)> = r
        .targets
        .iter()
        .map(|t| (t.jurisdiction.clone(), t.timeliness.clone(), t.first_receive_time.is_some()))
        .collect();
    assert_eq!(
        targets,
        vec![
            (j("01"), "ON_TIME".into(), true),
            (j("48"), "MISSING".into(), false),
            (j("77"), "LATE".into(), true),
            (j("79"), "LATE".into(), true),
        ]
    );
    assert!(r.targets.iter().all(|t| t.deadline == c.deadline));
    // In 34 provinces 77 (Bà Rịa – Vũng Tàu) and 79 are one unit: Hồ Chí Minh City.
    let r = completeness(gw::Grouping::Provinces34).await.unwrap();
    let hcm = province("79").successor().unwrap().to_string();
    assert_eq!(province("77").successor().unwrap().to_string(), hcm);
    let got = r.units.iter().find(|u| u.unit == hcm).expect("the merged unit");
    assert_eq!(got, &unit(hcm.clone(), 2, 2, 0, 2, 0));
    assert_eq!(r.units.len(), 3);
    assert_eq!(r.totals, Some(unit(String::new(), 4, 3, 1, 2, 1)));

    // The same from a terminal: `einfo national campaign`, as central staff.
    let got = national_cli(&g, &["campaign", "--campaign", &c.name]).await;
    let counts: Vec<i64> =
        ["expected", "submitted", "on_time", "late", "missing"].iter().map(|k| got[k].as_i64().unwrap()).collect();
    assert_eq!(counts, [4, 3, 1, 2, 1], "{got}");
    assert_eq!(got["targets"][1]["timeliness"], "MISSING");

    let e = g
        .national()
        .get_campaign_completeness(gw::GetCampaignCompletenessRequest { campaign: " ".into(), grouping: 0 })
        .await
        .unwrap_err();
    assert_eq!(fields(&e), vec!["campaign"]);
    let e = g
        .national()
        .get_campaign_completeness(gw::GetCampaignCompletenessRequest {
            campaign: "campaigns/none".into(),
            grouping: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

/// A node hosting `provinces` whose centre is the gateway at `endpoint` (the gateway itself or
/// a proxy in front of it), trusting the gateway's public key.
async fn node_reporting_to(
    backend: Backend,
    g: &TestGateway,
    endpoint: String,
    provinces: &[&str],
) -> Option<TestNode> {
    let db = TestDb::new(backend).await?;
    let mut s = settings(&db, provinces);
    s.reporting.centre_endpoint = Some(endpoint);
    s.reporting.centre_public_key_hex = Some(einfo_testkit::hex(g.gateway().central().public_key()));
    s.reporting.feed_interval_ms = 100;
    s.reporting.outbox_interval_ms = 50;
    Some(TestNode::start_on(db, s, Options::default()).await)
}

/// The campaigns a node holds for province `code`, by name.
async fn campaigns_of(node: &TestNode, code: &str) -> Vec<String> {
    let mut r = node.reporting(code).await;
    let mut names: Vec<String> = r
        .list_campaigns(rep::ListCampaignsRequest { parent: j(code) })
        .await
        .expect("campaigns")
        .into_inner()
        .campaigns
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    names
}

async fn count_received_campaigns(node: &TestNode) -> i64 {
    let db = node.db.connect().await;
    let row = db
        .conn()
        .query_one_raw(einfo_common::db::stmt(
            db.backend(),
            "SELECT COUNT(*) FROM change_log WHERE service = $1 AND operation = $2",
            ["reporting".into(), "RECEIVE".into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let n = row.try_get_by_index::<i64>(0).unwrap();
    db.close().await.unwrap();
    n
}

/// The sequence of the last event of the centre's feed for province `code`.
async fn last_feed_event(g: &TestGateway, code: &str) -> u64 {
    let mut feed = g
        .centre_as_province(code)
        .stream_feed(central::StreamFeedRequest { jurisdiction: j(code), after: 0, follow: false })
        .await
        .expect("the feed")
        .into_inner();
    let mut last = 0;
    while let Some(r) = feed.message().await.expect("a feed event") {
        last = r.event.expect("an event").sequence;
    }
    last
}

/// The last feed event the node applied for province `code` (its feed cursor).
async fn feed_cursor(node: &TestNode, code: &str) -> u64 {
    let db = node.db.connect().await;
    let row = db
        .conn()
        .query_one_raw(einfo_common::db::stmt(
            db.backend(),
            "SELECT cursor_seq FROM rep_feed WHERE jurisdiction = $1",
            [j(code).into()],
        ))
        .await
        .expect("read the feed cursor");
    db.close().await.expect("close");
    row.map_or(0, |r| r.try_get_by_index::<i64>(0).expect("cursor_seq") as u64)
}

async fn a_receipt_of_the_gateway_verifies_with_its_key_and_a_tampered_one_is_refused(backend: Backend) {
    let Some(g) = TestGateway::start(backend, &[]).await else { return };
    let key = g.centre_admin().get_public_key(central::GetPublicKeyRequest {}).await.unwrap().into_inner();
    assert_eq!(key.public_key, g.gateway().central().public_key().to_vec());
    let pk: [u8; 32] = key.public_key.as_slice().try_into().unwrap();

    // Directly: the receipt verifies; a flipped byte of its body or its signature does not.
    let c = create_campaign(&g, &["01"], in_secs(3600)).await;
    let r = submit_to(&g, "01", submission(&c.name, "01", b"report")).await;
    assert_eq!(verify(&pk, &r), Ok(()));
    assert_eq!(r.key_id, key.key_id);
    let mut body = r.clone();
    body.body.as_mut().unwrap().content_hash[0] ^= 1;
    assert!(verify(&pk, &body).is_err());
    let mut sig = r.clone();
    sig.signature[10] ^= 1;
    assert!(verify(&pk, &sig).is_err());

    // Through a node: a receipt tampered on its way is refused and not stored; once the path is
    // clean, the retried delivery's receipt is stored and verifies.
    let proxy = TcpProxy::start(g.addr).await;
    let Some(node) = node_reporting_to(backend, &g, proxy.url(), &["79"]).await else { return };
    let c = create_campaign(&g, &["79"], in_secs(3600)).await;
    eventually("the campaign reaches the node", || async {
        campaigns_of(&node, "79").await.contains(&c.name).then_some(())
    })
    .await;
    let mut r79 = node.reporting("79").await;
    let report = r79
        .compile_report(rep::CompileReportRequest {
            parent: j("79"),
            campaign: c.name.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("compiled")
        .into_inner()
        .report
        .unwrap();
    proxy.set_mode(ProxyMode::CorruptResponses);
    let submitted = r79
        .submit_report(rep::SubmitReportRequest {
            name: report.name.clone(),
            etag: report.etag.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("submitted")
        .into_inner();
    let db = node.db.connect().await;
    let error = eventually("the node rejects the tampered receipt", || {
        let db = db.clone();
        async move {
            let row = db
                .conn()
                .query_one_raw(einfo_common::db::stmt(db.backend(), "SELECT last_error FROM rep_outbox", []))
                .await
                .ok()??;
            let e: String = row.try_get_by_index(0).ok()?;
            (!e.is_empty()).then_some(e)
        }
    })
    .await;
    db.close().await.unwrap();
    assert!(error.starts_with("receipt rejected"), "{error}");
    assert!(proxy.corrupted_frames() > 0);
    let got =
        r79.get_report(rep::GetReportRequest { name: submitted.name.clone(), version: 1 }).await.unwrap().into_inner();
    assert!(got.version.unwrap().receipt.is_none(), "a tampered receipt is not stored");

    proxy.set_mode(ProxyMode::Pass);
    let stored = eventually("the true receipt is stored", || {
        let mut r = r79.clone();
        let name = submitted.name.clone();
        async move {
            let got = r.get_report(rep::GetReportRequest { name, version: 1 }).await.ok()?.into_inner();
            got.version?.receipt
        }
    })
    .await;
    assert_eq!(verify(&pk, &stored), Ok(()));
    let rows = g.gateway().central().completeness(&c.name).await.unwrap();
    assert_eq!(rows[0].timeliness, einfo_proto::reporting::v1::Timeliness::OnTime);
}

async fn the_campaign_feed_of_the_gateway_resumes_after_a_node_restart_without_repeating(backend: Backend) {
    let Some(g) = TestGateway::start(backend, &[]).await else { return };
    let Some(mut node) = node_reporting_to(backend, &g, g.url(), &["01"]).await else { return };
    let first = create_campaign(&g, &["01"], in_secs(3600)).await;
    eventually("the first campaign reaches the node", || async {
        (campaigns_of(&node, "01").await == vec![first.name.clone()]).then_some(())
    })
    .await;
    node.stop().await;
    let second = create_campaign(&g, &["01"], in_secs(7200)).await;
    create_campaign(&g, &["79"], in_secs(7200)).await;
    node.start_again_same_port().await;
    let mut both = vec![first.name.clone(), second.name.clone()];
    both.sort();
    eventually("the second campaign reaches the restarted node", || async {
        (campaigns_of(&node, "01").await == both).then_some(())
    })
    .await;
    // Nothing more can arrive once the node's feed cursor is at the centre's last event for 01:
    // an event at or before the cursor is skipped in the transaction that would apply it.
    let last = last_feed_event(&g, "01").await;
    assert_eq!(last, 2, "two campaigns target 01");
    eventually("the node applied the centre's last event for 01", || async {
        (feed_cursor(&node, "01").await == last).then_some(())
    })
    .await;
    assert_eq!(campaigns_of(&node, "01").await, both, "each once");
    assert_eq!(count_received_campaigns(&node).await, 2, "each received once");
}

both_backends!(
    expiring_licences_overdue_applications_and_enforcement_figures_are_national_and_exact,
    campaign_completeness_counts_expected_submitted_on_time_late_and_missing,
    a_receipt_of_the_gateway_verifies_with_its_key_and_a_tampered_one_is_refused,
    the_campaign_feed_of_the_gateway_resumes_after_a_node_restart_without_repeating,
);
