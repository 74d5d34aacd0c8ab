//! Integrity alarms of the national gateway, caused by altering a node's change log in its
//! database: an entry altered behind the gateway's cursor is found by the periodic audit, a
//! history rewritten consistently (chain and tree recomputed) by the consistency proof asked on
//! reconnection, and either freezes that province alone; an entry altered ahead of the cursor stops
//! replication just before it; clearing the alarm takes a comment, and with `resync` after the
//! row is restored the national figures are exact again.

use einfo_common::db::stmt;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::fixtures::{register_in, rewrite_history};
use einfo_testkit::gateway::{gateway_settings, partial};
use einfo_testkit::{Backend, TestDb, TestGateway, TestNode, both_backends, eventually, province, site};
use sea_orm::ConnectionTrait;
use tonic_types::StatusExt;

fn j(code: &str) -> String {
    province(code).to_string()
}

async fn register(node: &TestNode, code: &str, domain: &str) -> pb::Site {
    register_in(node, code, site(&format!("Trang {domain}"), &[domain])).await
}

/// A node hosting 01 and 79 with `n01` and `n79` sites, and a gateway following it with
/// `audit_interval_ms`, synced.
async fn start(backend: Backend, n01: usize, n79: usize, audit_interval_ms: u64) -> Option<(TestNode, TestGateway)> {
    let node = TestNode::start(backend, &["01", "79"]).await?;
    for i in 0..n01 {
        register(&node, "01", &format!("hn{i}.vn")).await;
    }
    for i in 0..n79 {
        register(&node, "79", &format!("hcm{i}.vn")).await;
    }
    let db = TestDb::new(backend).await?;
    let mut s = gateway_settings(&db);
    s.gateway.audit_interval_ms = audit_interval_ms;
    let url = format!("http://{}", node.addr);
    let g = TestGateway::start_with(db, s, &[(province("01"), url.clone()), (province("79"), url)]).await;
    g.wait_caught_up(&[&node]).await;
    Some((node, g))
}

async fn freshness(g: &TestGateway, code: &str) -> gw::JurisdictionFreshness {
    g.status().await.into_iter().find(|f| f.jurisdiction == j(code)).expect("a freshness")
}

async fn wait_alarm(g: &TestGateway, code: &str) -> gw::JurisdictionFreshness {
    eventually(&format!("the alarm of {code}"), || async {
        let f = freshness(g, code).await;
        (f.state() == gw::FreshnessState::Alarm).then_some(f)
    })
    .await
}

/// Sites of a province in the national summary.
async fn national_total(g: &TestGateway, code: &str) -> i64 {
    let s = g
        .national()
        .get_national_summary(gw::GetNationalSummaryRequest { options: partial(gw::Grouping::Provinces63) })
        .await
        .expect("summary")
        .into_inner();
    s.units.iter().find(|u| u.unit == j(code)).map_or(0, |u| u.total)
}

/// Whether the national store holds a site with `domain`.
async fn held(g: &TestGateway, domain: &str) -> bool {
    let r = g
        .national()
        .search_sites(gw::SearchSitesRequest {
            options: partial(gw::Grouping::Provinces63),
            domain: domain.into(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    !r.sites.is_empty()
}

/// Reads column `column` (bytes or text) of an entry of a province's registry log.
async fn read_column<T: sea_orm::TryGetable>(node: &TestNode, code: &str, seq: u64, column: &str) -> T {
    let db = node.db.connect().await;
    let row = db
        .conn()
        .query_one_raw(stmt(
            db.backend(),
            &format!("SELECT {column} FROM change_log WHERE jurisdiction = $1 AND service = 'registry' AND seq = $2"),
            [j(code).into(), (seq as i64).into()],
        ))
        .await
        .unwrap()
        .expect("the entry");
    let v = row.try_get_by_index(0).unwrap();
    db.close().await.unwrap();
    v
}

/// Writes column `column` of an entry of a province's registry log, behind the node's back.
async fn write_column(node: &TestNode, code: &str, seq: u64, column: &str, value: sea_orm::Value) {
    let db = node.db.connect().await;
    let r = db
        .conn()
        .execute_raw(stmt(
            db.backend(),
            &format!(
                "UPDATE change_log SET {column} = $1 WHERE jurisdiction = $2 AND service = 'registry' AND seq = $3"
            ),
            [value, j(code).into(), (seq as i64).into()],
        ))
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    db.close().await.unwrap();
}

async fn an_entry_altered_behind_the_cursor_raises_the_alarm_and_freezes_that_province_alone(backend: Backend) {
    // A periodic audit every 300 ms: no reconnection is needed to find the alteration.
    let Some((node, g)) = start(backend, 3, 2, 300).await else { return };
    assert_eq!((national_total(&g, "01").await, national_total(&g, "79").await), (3, 2));
    let head = node.last_sequence("01").await;

    write_column(&node, "01", 1, "reason", "sửa lén".into()).await;
    let f = wait_alarm(&g, "01").await;
    assert!(f.detail.contains("entry 1"), "{}", f.detail);
    assert!(f.detail.contains("audit"), "{}", f.detail);
    assert_eq!(f.registry_sequence, head);

    // 01's national data stops changing; 79 on the same node carries on.
    register(&node, "01", "hn-new.vn").await;
    register(&node, "01", "hn-new2.vn").await;
    register(&node, "79", "hcm-new.vn").await;
    g.wait_caught_up_on(&node, &["79"]).await;
    assert!(held(&g, "hcm-new.vn").await, "79 carries on");
    // Frozen at once, not after a while: the replicator ends 01's registry stream before it
    // raises the alarm and opens none while the alarm holds. 79's entry, written after 01's two
    // on the same node, shows the gateway kept reading that node meanwhile.
    assert_eq!((national_total(&g, "01").await, national_total(&g, "79").await), (3, 3));
    assert!(!held(&g, "hn-new.vn").await, "01 is frozen");
    let f = freshness(&g, "01").await;
    assert_eq!((f.state(), f.registry_sequence), (gw::FreshnessState::Alarm, head));

    // Answers name 01 as missing, in alarm.
    let s = g
        .national()
        .get_national_summary(gw::GetNationalSummaryRequest { options: partial(gw::Grouping::Provinces63) })
        .await
        .unwrap()
        .into_inner();
    let m = s.missing.iter().find(|f| f.jurisdiction == j("01")).expect("01 is missing");
    assert_eq!(m.state(), gw::FreshnessState::Alarm);
    assert!(!s.missing.iter().any(|f| f.jurisdiction == j("79")));

    // The alarm survives a restart of the gateway.
    let mut g = g;
    g.stop().await;
    g.start_again_same_port().await;
    assert_eq!(freshness(&g, "01").await.state(), gw::FreshnessState::Alarm);
    assert_eq!(national_total(&g, "01").await, 3);
}

async fn an_entry_altered_ahead_of_the_cursor_stops_replication_just_before_it(backend: Backend) {
    let Some((node, mut g)) = start(backend, 1, 2, 0).await else { return };
    g.stop().await;
    let mut seqs = Vec::new();
    for d in ["truoc.vn", "sua.vn", "sau.vn"] {
        register(&node, "79", d).await;
        seqs.push(node.last_sequence("79").await);
    }
    // The second new entry's state has one bit flipped.
    let mut state: Vec<u8> = read_column(&node, "79", seqs[1], "state").await;
    let middle = state.len() / 2;
    state[middle] ^= 0x01;
    write_column(&node, "79", seqs[1], "state", state.into()).await;
    register(&node, "01", "hn-sau.vn").await;

    g.start_again_same_port().await;
    let f = wait_alarm(&g, "79").await;
    assert!(f.detail.contains(&format!("entry {}", seqs[1])), "{}", f.detail);
    assert!(f.registry_sequence < seqs[1], "nothing from the altered entry on: {f:?}");
    assert!(!held(&g, "sua.vn").await && !held(&g, "sau.vn").await, "nothing from the altered entry on");
    let before = national_total(&g, "79").await;
    assert!(before == 2 || (before == 3 && held(&g, "truoc.vn").await), "at most the entry before: {before}");
    // 01 on the same node carries on.
    g.wait_caught_up_on(&node, &["01"]).await;
    assert!(held(&g, "hn-sau.vn").await);
    assert_eq!(national_total(&g, "01").await, 2);
}

async fn clearing_an_alarm_takes_a_comment_and_a_resync_after_the_repair_makes_the_figures_exact(backend: Backend) {
    let Some((mut node, g)) = start(backend, 3, 1, 0).await else { return };
    let original: String = read_column(&node, "01", 2, "reason").await;
    // The history rewritten from entry 2 on, chain and tree recomputed: the audit on
    // reconnection finds it, by the consistency proof the node cannot give.
    rewrite_history(&node, "01", 2, "sửa lén").await;
    node.restart_same_port().await;
    let f = wait_alarm(&g, "01").await;
    assert!(f.detail.contains("history was rewritten"), "{}", f.detail);
    register(&node, "01", "trong-bao-dong.vn").await;

    // A comment is required.
    let e = g
        .directory()
        .clear_alarm(gw::ClearAlarmRequest { jurisdiction: j("01"), resync: true, comment: "  ".into() })
        .await
        .expect_err("no comment");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let fields: Vec<String> =
        e.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, vec!["comment"]);
    assert_eq!(freshness(&g, "01").await.state(), gw::FreshnessState::Alarm, "still in alarm");
    let e = g
        .directory()
        .clear_alarm(gw::ClearAlarmRequest { jurisdiction: j("79"), resync: false, comment: "nhầm".into() })
        .await
        .expect_err("79 is not in alarm");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);

    // The history restored from a backup, the alarm cleared with a resync: exact again, the site
    // registered during the alarm included.
    rewrite_history(&node, "01", 2, &original).await;
    let cleared = g
        .directory()
        .clear_alarm(gw::ClearAlarmRequest {
            jurisdiction: j("01"),
            resync: true,
            comment: "Đã khôi phục bản ghi 2 từ bản sao lưu".into(),
        })
        .await
        .expect("cleared")
        .into_inner()
        .freshness
        .unwrap();
    assert_ne!(cleared.state(), gw::FreshnessState::Alarm);
    g.wait_caught_up_on(&node, &["01", "79"]).await;
    assert_eq!((national_total(&g, "01").await, national_total(&g, "79").await), (4, 1));
    assert!(held(&g, "trong-bao-dong.vn").await);
    assert_eq!(freshness(&g, "01").await.registry_sequence, node.last_sequence("01").await);
    // Followed live again.
    register(&node, "01", "sau-khi-go.vn").await;
    g.wait_caught_up_on(&node, &["01"]).await;
    assert_eq!(national_total(&g, "01").await, 5);
}

both_backends!(
    an_entry_altered_behind_the_cursor_raises_the_alarm_and_freezes_that_province_alone,
    an_entry_altered_ahead_of_the_cursor_stops_replication_just_before_it,
    clearing_an_alarm_takes_a_comment_and_a_resync_after_the_repair_makes_the_figures_exact,
);
