//! `einfo backup` and `einfo restore` (issue 12, point 4, in part): a node's SQLite store copied
//! while the node writes, the copy put back with the node stopped, and the national gateway
//! telling a node restored from an older backup (*behind*: its shorter history agrees with what
//! the centre received) from a forked one (an alarm), on both databases for the gateway's store.

use std::path::Path;

use einfo_proto::gateway::v1 as gw;
use einfo_testkit::gateway::gateway_settings;
use einfo_testkit::process::einfo;
use einfo_testkit::{Backend, TestDb, TestGateway, TestNode, both_backends, eventually, fixtures, province};

const PROVINCE: &str = "provinces/2008-01";

/// Runs `einfo` with `args` to the end; (success, stdout and stderr).
async fn run(args: &[&str]) -> (bool, String) {
    let out = einfo().args(args).output().await.expect("run einfo");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn register_many(node: &TestNode, from: usize, count: usize) {
    let mut c = node.registry("01").await;
    for i in from..from + count {
        fixtures::register(
            &mut c,
            PROVINCE,
            fixtures::site(&format!("Trang sao lưu {i}"), &[&format!("backup-{i}.vn")]),
        )
        .await;
    }
}

async fn freshness(g: &TestGateway) -> gw::JurisdictionFreshness {
    let status =
        g.national().get_replication_status(gw::GetReplicationStatusRequest {}).await.expect("status").into_inner();
    status.jurisdictions.into_iter().find(|f| f.jurisdiction == PROVINCE).expect("01 in the status")
}

async fn kept(g: &TestGateway) -> (u64, Vec<u8>) {
    let r = crate::gateway_entries::entries_as(g, &TestGateway::analyst_caller())
        .get_entries(gw::GetEntriesRequest {
            jurisdiction: PROVINCE.into(),
            service: "registry".into(),
            after: 0,
            page_size: 1,
        })
        .await
        .expect("kept entries")
        .into_inner();
    (r.kept_sequence, r.kept_hash)
}

fn replaced_stores(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the node's directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("einfo.db.replaced-") && !n.ends_with("-wal") && !n.ends_with("-shm"))
        .collect();
    names.sort();
    names
}

async fn a_node_restored_from_an_older_backup_is_behind_and_a_write_after_it_is_a_fork(backend: Backend) {
    let Some(store) = TestDb::new(backend).await else { return };
    let mut node = TestNode::start(Backend::Sqlite, &["01"]).await.expect("a SQLite node");
    let url = node.settings.database_url();
    let backup = node.db.dir.join("before.einfo.db");
    let backup_arg = backup.to_str().expect("a UTF-8 path");
    register_many(&node, 0, 20).await;

    // Backed up while the node runs; the copy verifies.
    let (ok, out) = run(&["backup", "--database-url", &url, "--to", backup_arg]).await;
    assert!(ok, "{out}");
    assert!(out.contains("backed up") && out.contains("a node's store") && out.contains("20 entries"), "{out}");
    let (ok, out) = run(&["backup", "--database-url", &url, "--to", backup_arg]).await;
    assert!(!ok && out.contains("exists: a backup is written to a new file"), "{out}");
    let (ok, out) = run(&["backup", "--database-url", "postgres://postgres@127.0.0.1:5432/none", "--to", "x.db"]).await;
    assert!(!ok && out.contains("pg_dump"), "PostgreSQL is backed up with its own tools: {out}");

    // 30 more sites, all received by the gateway.
    register_many(&node, 20, 30).await;
    let s = gateway_settings(&store);
    let g = TestGateway::start_with(store, s, &[(province("01"), format!("http://{}", node.addr))]).await;
    eventually("the gateway LIVE at 50", || async {
        let f = freshness(&g).await;
        (f.state() == gw::FreshnessState::Live && f.registry_sequence == 50).then_some(())
    })
    .await;
    let (kept_before, hash_before) = kept(&g).await;
    assert_eq!(kept_before, 50);

    // A restore refuses a store in use, and goes through with the node stopped.
    let (ok, out) = run(&["restore", "--database-url", &url, "--from", backup_arg]).await;
    assert!(
        !ok && out.contains("stop its server before restoring") && out.contains("is in use by another einfo process"),
        "{out}"
    );
    assert!(replaced_stores(&node.db.dir).is_empty(), "nothing moved aside by a refused restore");
    node.stop().await;
    let (ok, out) = run(&["restore", "--database-url", &url, "--from", backup_arg]).await;
    assert!(ok, "{out}");
    assert!(out.contains("restored") && out.contains("20 entries") && out.contains("BEHIND"), "{out}");
    assert_eq!(replaced_stores(&node.db.dir).len(), 1, "the store it replaced is kept aside");
    node.start_again_same_port().await;
    assert_eq!(node.last_sequence("01").await, 20, "the node holds what the backup held");

    // The gateway sees a node behind it, not a fork: no alarm, nothing replicated, nothing lost.
    let f = eventually("the gateway to see the node behind it", || async {
        let f = freshness(&g).await;
        (f.state() == gw::FreshnessState::Behind).then_some(f)
    })
    .await;
    assert!(f.detail.contains("ends at entry 20, the centre received 50"), "{}", f.detail);
    assert!(f.detail.contains("30 entries it lost"), "{}", f.detail);
    assert_eq!(kept(&g).await, (kept_before, hash_before.clone()), "the centre keeps the 50 entries it received");
    let refused = g
        .national()
        .get_national_summary(gw::GetNationalSummaryRequest {
            options: einfo_testkit::gateway::strict(gw::Grouping::Provinces63),
        })
        .await
        .expect_err("a strict summary without 01 live");
    assert!(refused.message().contains("provinces/2008-01 (BEHIND)"), "{}", refused.message());

    // A write on the restored node before it holds the rest again makes another history: the
    // gateway raises the integrity alarm, and still keeps what it had.
    register_many(&node, 1000, 1).await;
    let f = eventually("the alarm for the forked history", || async {
        let f = freshness(&g).await;
        (f.state() == gw::FreshnessState::Alarm).then_some(f)
    })
    .await;
    assert!(f.detail.contains("ends at entry 21 with another hash than the centre's entry 21"), "{}", f.detail);
    assert_eq!(kept(&g).await, (kept_before, hash_before));
}

/// Two servers on one SQLite store would corrupt it: the second is refused, naming the store,
/// and starts once the first has stopped.
async fn a_second_server_on_a_sqlite_store_is_refused_while_the_first_runs() {
    let mut node = TestNode::start(Backend::Sqlite, &["01"]).await.expect("a SQLite node");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let second =
        einfo_app::node::start(&node.settings, einfo_app::node::Role::Node, listener, Default::default()).await;
    let e = second.err().expect("a second node on the same store is refused").to_string();
    assert!(e.contains("is in use by another einfo process"), "{e}");
    node.stop().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let again = einfo_app::node::start(&node.settings, einfo_app::node::Role::Node, listener, Default::default())
        .await
        .expect("the store is free once the first node stopped");
    again.stop().await.expect("stops");
}

both_backends!(
    a_node_restored_from_an_older_backup_is_behind_and_a_write_after_it_is_a_fork;
    plain: a_second_server_on_a_sqlite_store_is_refused_while_the_first_runs
);
