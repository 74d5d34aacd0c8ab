//! Today's databases, kept: a node store and a gateway store written by the schema of release
//! 0.1.0, as SQLite files and PostgreSQL dumps under `tests/fixtures/databases/0.1.0`, with data
//! in every table. `a_database_of_release_0_1_0_upgrades_and_every_chain_verifies` opens copies
//! with the current code, migrates them and verifies every chain; every later schema change
//! keeps it green, so a province's database from this release always upgrades.
//!
//! `write_the_release_fixtures` made them. It is listed only when `EINFO_TEST_WRITE_FIXTURES`
//! names the directory to write into (`EINFO_TEST_WRITE_FIXTURES=tests/fixtures/databases/0.2.0
//! cargo nextest run -p einfo-tests -E 'test(write_the_release)'`),
//! and only to add a new release's fixtures beside the old ones: it never overwrites a release's
//! files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use einfo_app::node::{Options, Role};
use einfo_common::db::Database;
use einfo_proto::central::v1 as central;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as pb;
use einfo_proto::reporting::v1 as rep;
use einfo_testkit::fixtures::{campaign_for, license, register, violations_found};
use einfo_testkit::harness::{Trial, plain};
use einfo_testkit::{Backend, TestDb, TestGateway, TestNode, eventually, in_secs, province, settings, site};
use sea_orm::ConnectionTrait;

const RELEASE: &str = "0.1.0";
const P01: &str = "provinces/2008-01";
const DAY: i64 = 86_400;

fn release_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("databases").join(RELEASE)
}

/// Running counts, which a migration may count afresh: their rows that count nothing are not
/// data.
const RUNNING_COUNTS: [&str; 3] = ["reg_site_counts", "reg_event_counts", "gw_summary"];

/// The tables of a store, with their row counts (sea-orm's migration bookkeeping included; of
/// the running counts, the rows that count something).
async fn tables(db: &Database) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for name in einfo_app::verify::table_names(db.conn()).await.expect("tables") {
        let filter = if RUNNING_COUNTS.contains(&name.as_str()) { " WHERE count <> 0" } else { "" };
        let count = db
            .conn()
            .query_one_raw(sea_orm::Statement::from_string(
                db.backend(),
                format!("SELECT COUNT(*) FROM {name}{filter}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        out.push((name, count.try_get_by_index::<i64>(0).expect("a count")));
    }
    out
}

/// Every chain of `db` verifies; returns the logs and their lengths.
async fn verified(db: &Database) -> Vec<(String, u64)> {
    let reports = einfo_app::verify::verify_all(db.conn()).await.expect("verify");
    reports
        .into_iter()
        .map(|r| match r.result {
            Ok(n) => (r.log, n),
            Err(e) => panic!("{}: {e}", r.log),
        })
        .collect()
}

/// A federation of one node hosting 01 whose centre is a gateway, with something in every
/// table of both stores, driven through the public APIs.
pub(crate) async fn populate(backend: Backend) -> Option<(TestGateway, TestNode)> {
    let g = TestGateway::start(backend, &[]).await?;
    let db = TestDb::new(backend).await?;
    let mut s = settings(&db, &["01"]);
    s.reporting.centre_endpoint = Some(g.url());
    // No configured key: the node pins the centre's on first contact (rep_centre_key).
    let node = TestNode::start_on(db, s, Options::default()).await;
    g.directory()
        .set_endpoint(gw::SetEndpointRequest {
            entry: Some(gw::DirectoryEntry { jurisdiction: P01.into(), endpoint: format!("http://{}", node.addr) }),
        })
        .await
        .expect("directory entry");

    // Registry: sites, an application approved into a licence, a trial record.
    let mut r = node.registry("01").await;
    let mut sites = Vec::new();
    for (i, domain) in ["báo-hà-nội.vn", "tin-tuc.com.vn", "mang-xa-hoi.vn"].iter().enumerate() {
        sites.push(register(&mut r, P01, site(&format!("Trang tin điện tử số {i}"), &[domain])).await);
    }
    let licence = license(&mut r, &sites[0], in_secs(365 * DAY)).await;
    r.add_site_record(pb::AddSiteRecordRequest {
        site: sites[2].name.clone(),
        record: Some(pb::SiteRecord {
            kind: pb::SiteRecordKind::Trial as i32,
            reference: "5/CV-STTTT".into(),
            start_time: Some(in_secs(-DAY)),
            end_time: Some(in_secs(30 * DAY)),
            ..Default::default()
        }),
        request_id: "trial".into(),
    })
    .await
    .expect("trial recorded");

    // Inspection: a plan, an inspection with a violation, a decision that suspends the licence
    // (through the outbox to registry), and an event on the decision.
    let mut c = node.inspection_as(&TestNode::inspector("01")).await;
    c.create_plan(insp::CreatePlanRequest {
        parent: P01.into(),
        plan: Some(insp::InspectionPlan {
            decision_number: "123/QĐ-STTTT".into(),
            decision_time: Some(in_secs(-10 * DAY)),
            period_start: Some(in_secs(-30 * DAY)),
            period_end: Some(in_secs(-DAY)),
            lead_unit: "Thanh tra Sở".into(),
            coordinating_agencies: vec!["police".into(), "culture".into()],
            target_sites: vec![sites[0].name.clone()],
            ..Default::default()
        }),
        request_id: "plan".into(),
    })
    .await
    .expect("plan");
    let ins = c
        .record_inspection(insp::RecordInspectionRequest {
            parent: P01.into(),
            inspection: Some(violations_found(&sites[0].name, &["EX-LICENCE-TERMS"], 1, 20)),
            request_id: "inspection".into(),
        })
        .await
        .expect("inspection")
        .into_inner();
    let decision = c
        .issue_decision(insp::IssueDecisionRequest {
            parent: P01.into(),
            decision: Some(insp::SanctionDecision {
                number: "45/QĐ-XPVPHC".into(),
                decision_time: Some(in_secs(0)),
                inspection: ins.name.clone(),
                offender_kind: insp::OffenderKind::Organisation as i32,
                offender_name: "Công ty Cổ phần Truyền thông Hà Nội".into(),
                fine_vnd: 25_000_000,
                measures: vec![insp::Measure {
                    kind: insp::MeasureKind::LicenceSuspension as i32,
                    until: Some(in_secs(60 * DAY)),
                    ..Default::default()
                }],
                compliance_deadline: Some(in_secs(30 * DAY)),
                site: ins.site.clone(),
                ..Default::default()
            }),
            request_id: "decision".into(),
        })
        .await
        .expect("decision")
        .into_inner();
    let mut rc = r.clone();
    let suspended = licence.name.clone();
    eventually("the suspension reaches registry", || {
        let mut rc = rc.clone();
        let name = suspended.clone();
        async move {
            let l = rc.get_licence(pb::GetLicenceRequest { name }).await.ok()?.into_inner();
            (l.state() == pb::LicenceState::Suspended).then_some(())
        }
    })
    .await;
    let _ = &mut rc;
    // Registry applied it before inspection records the delivery on the decision (a new etag).
    let decision = eventually("the delivery recorded on the decision", || {
        let mut c = c.clone();
        let name = decision.name.clone();
        async move {
            let d = c.get_decision(insp::GetDecisionRequest { name }).await.ok()?.into_inner();
            (d.delivery_state() == insp::DeliveryState::Delivered).then_some(d)
        }
    })
    .await;
    c.record_decision_event(insp::RecordDecisionEventRequest {
        name: decision.name.clone(),
        etag: decision.etag.clone(),
        event: insp::DecisionEvent::Payment as i32,
        amount_vnd: 25_000_000,
        note: "Nộp phạt tại Kho bạc Nhà nước".into(),
        request_id: "paid".into(),
    })
    .await
    .expect("fine paid");

    // Reporting: a campaign from the centre, a report compiled and submitted, its receipt kept.
    let campaign = g
        .centre_admin()
        .create_campaign(central::CreateCampaignRequest {
            campaign: Some(campaign_for(&["01"], &["sites_by_kind_status", "inspections", "fines_imposed_vnd"])),
            request_id: "campaign".into(),
        })
        .await
        .expect("campaign")
        .into_inner();
    let mut rp = node.reporting("01").await;
    let name = campaign.name.clone();
    eventually("the campaign reaches the node", || {
        let mut rp = rp.clone();
        let name = name.clone();
        async move {
            let got = rp.list_campaigns(rep::ListCampaignsRequest { parent: P01.into() }).await.ok()?.into_inner();
            got.campaigns.iter().any(|c| c.name == name).then_some(())
        }
    })
    .await;
    let report = rp
        .compile_report(rep::CompileReportRequest {
            parent: P01.into(),
            campaign: campaign.name.clone(),
            request_id: "compile".into(),
        })
        .await
        .expect("compiled")
        .into_inner()
        .report
        .expect("a report");
    let submitted = rp
        .submit_report(rep::SubmitReportRequest {
            name: report.name.clone(),
            etag: report.etag.clone(),
            request_id: "submit".into(),
        })
        .await
        .expect("submitted")
        .into_inner();
    eventually("the centre's receipt is kept", || {
        let mut rp = rp.clone();
        let name = submitted.name.clone();
        async move {
            let got = rp.get_report(rep::GetReportRequest { name, version: 1 }).await.ok()?.into_inner();
            got.version.as_ref()?.receipt.as_ref().map(|_| ())
        }
    })
    .await;
    let _ = &mut rp;

    // The gateway holds every log up to the node's head, and one integrity alarm (a store of
    // this release can hold one).
    let head = node.last_sequence("01").await;
    g.wait_synced(&[(province("01"), head)], Duration::from_secs(30)).await;
    let inspection_head = node.log_sequence("01", "inspection").await;
    eventually("the inspection log is replicated", || async {
        let f = g.status().await.into_iter().find(|f| f.jurisdiction == P01)?;
        (f.inspection_sequence >= inspection_head).then_some(())
    })
    .await;
    einfo_gateway::store::raise_alarm(
        g.gateway().db().conn(),
        &province("79"),
        "a fixture's alarm",
        g.gateway().db().now(),
    )
    .await
    .expect("an alarm");
    Some((g, node))
}

fn assert_every_table_holds_data(what: &str, tables: &[(String, i64)]) {
    let empty: Vec<&str> = tables.iter().filter(|(_, n)| *n == 0).map(|(t, _)| t.as_str()).collect();
    assert!(empty.is_empty(), "{what}: empty tables {empty:?} (all: {tables:?})");
}

/// Writes the release's fixtures: the SQLite files (a clean copy with `VACUUM INTO`) and the
/// PostgreSQL dumps (`pg_dump --inserts`, restorable without psql).
async fn write_the_release_fixtures() {
    let dir = PathBuf::from(std::env::var_os("EINFO_TEST_WRITE_FIXTURES").expect("the directory to write into"));
    assert!(!dir.exists(), "{} exists: a release's fixtures are never rewritten", dir.display());
    std::fs::create_dir_all(&dir).expect("create the fixture directory");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (mut g, mut node) = populate(backend).await.expect("PostgreSQL is needed to write the fixtures");
        node.stop().await;
        g.stop().await;
        for (store, db) in [("node", &node.db), ("gateway", &g.db)] {
            let conn = db.connect().await;
            assert_every_table_holds_data(store, &tables(&conn).await);
            match backend {
                Backend::Sqlite => {
                    let file = dir.join(format!("{store}.sqlite"));
                    conn.conn()
                        .execute_unprepared(&format!("VACUUM INTO '{}'", file.display()))
                        .await
                        .expect("vacuum into the fixture");
                }
                Backend::Postgres => {
                    let out = std::process::Command::new("pg_dump")
                        .args(["--inserts", "--no-owner", "--no-privileges", "--dbname", &db.url])
                        .output()
                        .expect("run pg_dump");
                    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
                    std::fs::write(dir.join(format!("{store}.postgres.sql")), out.stdout).expect("write the dump");
                }
            }
            conn.close().await.expect("close");
        }
    }
}

/// A fresh test database holding a copy of the release's `store`.
async fn restored(backend: Backend, store: &str) -> Option<(TestDb, Database)> {
    let db = TestDb::new(backend).await?;
    match backend {
        Backend::Sqlite => {
            let file = db.dir.join("einfo.db");
            std::fs::copy(release_dir().join(format!("{store}.sqlite")), &file).expect("copy the fixture");
        }
        Backend::Postgres => {
            let dump = std::fs::read_to_string(release_dir().join(format!("{store}.postgres.sql"))).expect("the dump");
            // psql's own commands (`\restrict` in newer dumps) are not SQL.
            let sql: String = dump.lines().filter(|l| !l.starts_with('\\')).collect::<Vec<_>>().join("\n");
            let conn = db.connect().await;
            conn.conn().execute_unprepared(&sql).await.expect("restore the dump");
            conn.close().await.expect("close");
        }
    }
    let conn = db.connect().await;
    Some((db, conn))
}

async fn a_database_of_release_0_1_0_upgrades_and_every_chain_verifies(backend: Backend) {
    // The node store: every service's migrations run over it, then every chain verifies.
    let Some((_db, node)) = restored(backend, "node").await else { return };
    let before = tables(&node).await;
    assert_every_table_holds_data("node fixture", &before);
    einfo_app::node::migrate(&node, Role::Node).await.expect("the node's migrations upgrade it");
    // Trial operation became a flag beside the legal status (registry schema 4): the fixture's
    // site on trial, stored as TRIAL, is counted on trial, and the registry's clock logs it anew
    // with its status derived by today's rule (new entries; the chain is not rewritten).
    let one = |sql: &str| {
        let sql = sea_orm::Statement::from_string(node.backend(), sql.to_owned());
        let conn = node.conn().clone();
        async move { conn.query_one_raw(sql).await.expect("query").expect("a row").try_get_by_index::<i64>(0).unwrap() }
    };
    assert_eq!(one("SELECT COUNT(*) FROM reg_sites WHERE legal_status = 4").await, 1, "the fixture's site on trial");
    assert_eq!(one("SELECT COUNT(*) FROM reg_site_counts WHERE trial = 1 AND count = 1").await, 1, "counted on trial");
    let registry_log = "SELECT COUNT(*) FROM change_log WHERE service = 'registry'";
    let entries_before = one(registry_log).await;
    let p01 = einfo_domain::Jurisdiction::parse(P01).unwrap();
    let registry = einfo_registry::Registry::new(node.clone(), einfo_domain::Scheme::P63, [p01]);
    registry.run_clock(einfo_common::clock::system().now()).await.expect("the registry's clock");
    assert_eq!(one("SELECT COUNT(*) FROM reg_sites WHERE legal_status = 4").await, 0, "no site stored as TRIAL");
    assert!(one(registry_log).await > entries_before, "logged anew");
    let logs = verified(&node).await;
    let names: BTreeSet<&str> = logs.iter().map(|(l, _)| l.as_str()).collect();
    for log in ["provinces/2008-01/registry", "provinces/2008-01/inspection", "provinces/2008-01/reporting"] {
        assert!(names.contains(log), "{log} in {logs:?}");
    }
    assert!(logs.iter().all(|(_, n)| *n > 0), "{logs:?}");
    // Nothing was lost by the upgrade.
    let after = tables(&node).await;
    for (t, n) in &before {
        let now = after.iter().find(|(a, _)| a == t).map(|(_, n)| *n);
        assert!(now.is_some_and(|m| m >= *n), "{t}: {n} rows before the upgrade, {now:?} after");
    }
    node.close().await.expect("close");

    // The gateway store: opened by the gateway (which migrates it), its centre's chain verifies.
    let Some((db, conn)) = restored(backend, "gateway").await else { return };
    assert_every_table_holds_data("gateway fixture", &tables(&conn).await);
    conn.close().await.expect("close");
    let mut s = einfo_testkit::gateway::gateway_settings(&db);
    s.database_url = Some(db.url.clone());
    let g = TestGateway::start_with(db, s, &[]).await;
    let status = g.status().await;
    let f = status.iter().find(|f| f.jurisdiction == P01).expect("01 in the restored directory");
    assert!(f.registry_sequence > 0 && f.inspection_sequence > 0, "cursors kept: {f:?}");
    assert!(status.iter().any(|f| f.state() == gw::FreshnessState::Alarm), "the alarm kept: {status:?}");
    // The summary counted afresh with the operating state and trial: the fixture's site on trial
    // (TRIAL, from a node of release 0.1) is on trial, and the cells add up to the sites.
    let gw_db = g.gateway().db();
    let one = |sql: &str| {
        let sql = sea_orm::Statement::from_string(gw_db.backend(), sql.to_owned());
        let conn = gw_db.conn().clone();
        async move { conn.query_one_raw(sql).await.expect("query").expect("a row").try_get_by_index::<i64>(0).unwrap() }
    };
    assert_eq!(one("SELECT COUNT(*) FROM gw_summary WHERE trial = 1 AND count = 1").await, 1, "on trial");
    assert!(one("SELECT COUNT(*) FROM gw_summary WHERE operating = 1 AND count > 0").await > 0, "operating");
    assert_eq!(
        one("SELECT COUNT(*) FROM gw_sites WHERE voided = 0").await,
        one("SELECT CAST(SUM(count) AS BIGINT) FROM gw_summary").await,
        "the cells add up to the sites"
    );
    let logs = verified(g.gateway().db()).await;
    assert!(!logs.is_empty() && logs.iter().all(|(_, n)| *n > 0), "the centre's logs: {logs:?}");
    // Release 0.1 did not keep the entries it applied: verify says so for each log, and fails none.
    let kept = einfo_app::verify::verify_kept(g.gateway().db().conn()).await.expect("verify the kept entries");
    assert!(!kept.is_empty(), "the logs the gateway applied");
    for r in &kept {
        assert!(r.result.is_ok() && r.note.contains("applied before the centre kept entries"), "{r:?}");
    }
}

pub(crate) fn trials() -> Vec<Trial> {
    let mut out = Vec::new();
    out.extend(einfo_testkit::harness::both(
        einfo_testkit::harness::name(module_path!(), "a_database_of_release_0_1_0_upgrades_and_every_chain_verifies"),
        a_database_of_release_0_1_0_upgrades_and_every_chain_verifies,
    ));
    if std::env::var_os("EINFO_TEST_WRITE_FIXTURES").is_some() {
        out.push(plain(
            einfo_testkit::harness::name(module_path!(), "write_the_release_fixtures"),
            write_the_release_fixtures,
        ));
    }
    out
}
