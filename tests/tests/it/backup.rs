//! `einfo backup`, `einfo restore` and `einfo recover` (issue 12, point 4): a node's SQLite store
//! copied while the node writes, the copy put back with the node stopped, the entries it lost
//! taken back from the gateway's copy before it serves again, and the national gateway telling a
//! node restored from an older backup (*behind*: its shorter history agrees with what the centre
//! received) from a forked one (an alarm), on both databases for the gateway's store.

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
    let r = crate::gateway_entries::entries_as(g, &TestNode::central_service())
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

async fn a_node_restored_from_a_backup_recovers_what_the_centre_received_and_a_write_before_that_is_a_fork(
    backend: Backend,
) {
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

    // 500 more entries, all received by the gateway.
    register_many(&node, 20, 500).await;
    let s = gateway_settings(&store);
    let g = TestGateway::start_with(store, s, &[(province("01"), format!("http://{}", node.addr))]).await;
    eventually("the gateway LIVE at 520", || async {
        let f = freshness(&g).await;
        (f.state() == gw::FreshnessState::Live && f.registry_sequence == 520).then_some(())
    })
    .await;
    let (kept_before, hash_before) = kept(&g).await;
    assert_eq!(kept_before, 520);

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
    assert!(out.contains("restored") && out.contains("20 entries") && out.contains("einfo recover"), "{out}");
    assert_eq!(replaced_stores(&node.db.dir).len(), 1, "the store it replaced is kept aside");

    // The restored node takes no write before it has recovered: it does not start.
    let refused = start_node(&node).await.expect_err("a restored node does not serve before recovery").to_string();
    assert!(refused.contains("restored from a backup") && refused.contains("einfo recover"), "{refused}");

    // Meanwhile the gateway, which has not heard from the node, keeps the 520 entries.
    assert_eq!(kept(&g).await, (kept_before, hash_before.clone()));

    // Recovered from the gateway's copy: the 500 entries are back, verified, in the log and in
    // the tables, and the node serves again.
    let (ok, out) = recover(&node, &["--from-gateway", &g.url()]).await;
    assert!(ok, "{out}");
    assert!(out.contains("recovered  provinces/2008-01/registry  entries 21..=520 (500 entries)"), "{out}");
    assert!(out.contains("up to date provinces/2008-01/inspection  0 entries"), "{out}");
    assert!(out.contains("2 logs, 500 entries recovered, 0 forked"), "{out}");
    let (ok, out) = run(&["verify", "--database-url", &url]).await;
    assert!(ok && out.contains("ok      provinces/2008-01/registry  520 entries"), "{out}");
    node.start_again_same_port().await;
    assert_eq!(node.last_sequence("01").await, 520, "all 500 entries are back");
    let mut r = node.registry("01").await;
    let listed = r
        .list_sites(einfo_proto::registry::v1::ListSitesRequest {
            parent: PROVINCE.into(),
            name_query: "Trang sao lưu 519".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.sites.len(), 1, "the last site written before the loss is served again");
    let mut c = node.changelog().await;
    let head = c
        .get_log_head(einfo_proto::log::v1::GetLogHeadRequest {
            jurisdiction: PROVINCE.into(),
            service: "registry".into(),
        })
        .await
        .expect("head")
        .into_inner();
    assert_eq!((head.sequence, head.hash), (kept_before, hash_before.clone()), "the chains agree");

    // A write after recovery continues the centre's history: the gateway is LIVE again with it.
    register_many(&node, 2000, 1).await;
    eventually("the gateway LIVE at 521", || async {
        let f = freshness(&g).await;
        (f.state() == gw::FreshnessState::Live && f.registry_sequence == 521).then_some(())
    })
    .await;
    let (kept_after, _) = kept(&g).await;
    assert_eq!(kept_after, 521);

    // Restored again from the old backup, and served without recovery (the operator accepted the
    // loss): the gateway sees a node behind it, not a fork; no alarm, nothing replicated.
    node.stop().await;
    let (ok, out) = run(&["restore", "--database-url", &url, "--from", backup_arg]).await;
    assert!(ok, "{out}");
    let (ok, out) = recover(&node, &["--accept-loss"]).await;
    assert!(ok && out.contains("will serve what its backup held"), "{out}");
    node.start_again_same_port().await;
    assert_eq!(node.last_sequence("01").await, 20, "the node holds what the backup held");
    let f = eventually("the gateway to see the node behind it", || async {
        let f = freshness(&g).await;
        (f.state() == gw::FreshnessState::Behind).then_some(f)
    })
    .await;
    assert!(f.detail.contains("ends at entry 20, the centre received 521"), "{}", f.detail);
    assert!(f.detail.contains("501 entries it lost"), "{}", f.detail);
    let refused = g
        .national()
        .get_national_summary(gw::GetNationalSummaryRequest {
            options: einfo_testkit::gateway::strict(gw::Grouping::Provinces63),
        })
        .await
        .expect_err("a strict summary without 01 live");
    assert!(refused.message().contains("provinces/2008-01 (BEHIND)"), "{}", refused.message());

    // A write before the rest is back makes another history: the gateway raises the integrity
    // alarm and keeps what it had; recovery refuses the forked log and writes nothing to it.
    register_many(&node, 1000, 1).await;
    let f = eventually("the alarm for the forked history", || async {
        let f = freshness(&g).await;
        (f.state() == gw::FreshnessState::Alarm).then_some(f)
    })
    .await;
    assert!(f.detail.contains("ends at entry 21 with another hash than the centre's entry 21"), "{}", f.detail);
    assert_eq!(kept(&g).await.0, 521);
    node.stop().await;
    let (ok, out) = recover(&node, &["--from-gateway", &g.url()]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "FORKED     provinces/2008-01/registry  the centre's entry 22 does not follow the node's entry 21"
        ),
        "{out}"
    );
    let (ok, out) = run(&["verify", "--database-url", &url]).await;
    assert!(ok && out.contains("ok      provinces/2008-01/registry  21 entries"), "{out}");
}

/// `einfo_app::node::start` on the node's settings (a new port); the node is stopped at once.
async fn start_node(node: &TestNode) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let n = einfo_app::node::start(&node.settings, einfo_app::node::Role::Node, listener, Default::default()).await?;
    n.stop().await
}

/// `einfo recover` on the node's store, with its secret in the environment.
async fn recover(node: &TestNode, args: &[&str]) -> (bool, String) {
    let url = node.settings.database_url();
    let secret = node.settings.auth.secret.clone().expect("the test secret");
    let out = einfo()
        .args(["recover", "--database-url", &url, "--provinces", "01"])
        .args(args)
        .env("EINFO_AUTH__SECRET", secret)
        .env("EINFO_TLS__INSECURE", "true")
        .output()
        .await
        .expect("run einfo recover");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
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
    a_node_restored_from_a_backup_recovers_what_the_centre_received_and_a_write_before_that_is_a_fork;
    plain: a_second_server_on_a_sqlite_store_is_refused_while_the_first_runs
);
