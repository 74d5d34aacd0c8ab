//! The change log: order under concurrent writers, tamper detection, reader cursors, the state
//! and actor of each entry, and who may read which log.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use einfo_common::changelog::{ChainVerifier, ChangeEntry, GENESIS_HASH, LogId, verify_log};
use einfo_common::db::stmt;
use einfo_proto::log::v1 as logpb;
use einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::fixtures::next_entry;
use einfo_testkit::{Backend, ChangeLogClient, RegistryClient, TestNode, both_backends, fixtures, province, site};
use sea_orm::ConnectionTrait;
use tonic::Code;

use crate::refusals::reason;

/// Longest a test may wait for the log before it fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(120);

async fn register(c: &mut RegistryClient, code: &str, domain: &str) -> pb::Site {
    fixtures::register(c, &province(code).to_string(), site(&format!("Trang {domain}"), &[domain])).await
}

fn request(code: &str, after: u64, after_hash: Vec<u8>, follow: bool) -> logpb::StreamChangesRequest {
    logpb::StreamChangesRequest {
        jurisdiction: province(code).to_string(),
        service: "registry".into(),
        after,
        after_hash,
        follow,
    }
}

/// Every entry of a log after `after`, without following.
async fn read_all(c: &mut ChangeLogClient, code: &str, after: u64, after_hash: Vec<u8>) -> Vec<ChangeEntry> {
    let mut stream =
        c.stream_changes(request(code, after, after_hash, false)).await.expect("stream opens").into_inner();
    let mut out = Vec::new();
    while let Some(e) =
        tokio::time::timeout(PATIENCE, next_entry(&mut stream)).await.expect("stream ends").expect("entry")
    {
        out.push(e);
    }
    out
}

fn registry_log(code: &str) -> LogId {
    LogId { jurisdiction: province(code), service: "registry" }
}

// ------------------------------------------------------------------ concurrent writers

const WRITERS: usize = 32;
const SITES_PER_WRITER: usize = 10;

async fn concurrent_writers_make_one_dense_chain_that_a_follower_reads_whole_and_in_order(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let total = (WRITERS * SITES_PER_WRITER) as u64;

    // The follower subscribes from the start before anything is written.
    let mut stream = node
        .changelog()
        .await
        .stream_changes(request("01", 0, Vec::new(), true))
        .await
        .expect("follow opens")
        .into_inner();
    let reader = tokio::spawn(async move {
        let mut entries = Vec::new();
        while (entries.len() as u64) < total {
            let e =
                next_entry(&mut stream).await.expect("follow stream stays healthy").expect("follow stream stays open");
            entries.push(e);
        }
        // Nothing more: no entry is sent twice (checkpoints of what was sent may come).
        let extra = tokio::time::timeout(Duration::from_millis(1500), next_entry(&mut stream)).await;
        assert!(extra.is_err(), "the follower got more than {total} entries: {extra:?}");
        entries
    });

    // One client connection per writer; all start together.
    let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut c = node.registry("01").await;
        let start = start.clone();
        writers.push(tokio::spawn(async move {
            start.wait().await;
            let mut names = Vec::new();
            for i in 0..SITES_PER_WRITER {
                let s = register(&mut c, "01", &format!("w{w}-s{i}.vn")).await;
                names.push(s.name);
            }
            names
        }));
    }
    let written = tokio::time::timeout(PATIENCE, async {
        let mut names = BTreeSet::new();
        for w in writers {
            names.extend(w.await.expect("writer task"));
        }
        names
    })
    .await
    .expect("all writers finished in time");
    assert_eq!(written.len() as u64, total, "every registration made its own site");

    let entries = tokio::time::timeout(PATIENCE, reader).await.expect("the follower saw every entry in time").unwrap();
    let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=total).collect::<Vec<_>>(), "sequences are dense, from 1, in order");
    let mut v = ChainVerifier::new("provinces/2008-01/registry", 0, &GENESIS_HASH);
    for e in &entries {
        v.check(e).unwrap_or_else(|b| panic!("the followed chain breaks: {b}"));
    }
    let logged: BTreeSet<String> = entries.iter().map(|e| e.resource.clone()).collect();
    assert_eq!(logged, written, "each registered site is logged exactly once");
    assert!(entries.iter().all(|e| e.operation == "CREATE"));

    // The database agrees, read through a connection of its own.
    let db = node.db.connect().await;
    assert_eq!(verify_log(db.conn(), &registry_log("01")).await.unwrap(), Ok(total));
    let head = node
        .changelog()
        .await
        .get_log_head(logpb::GetLogHeadRequest { jurisdiction: province("01").to_string(), service: "registry".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(head.sequence, total);
    assert_eq!(head.hash, v.last_hash());
    db.close().await.unwrap();
}

// ------------------------------------------------------------------ tampering

async fn an_entry_altered_in_the_database_is_found_by_the_verifier_and_by_einfo_verify(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    let mut hanoi = node.registry("01").await;
    for i in 0..5 {
        register(&mut hanoi, "01", &format!("hn{i}.vn")).await;
    }
    let mut hcm = node.registry("79").await;
    for i in 0..3 {
        register(&mut hcm, "79", &format!("hcm{i}.vn")).await;
    }

    let db = node.db.connect().await;
    let b = db.backend();
    let reports = einfo_app::verify::verify_all(db.conn()).await.unwrap();
    let report = |reports: &[einfo_app::verify::LogReport], log: &str| {
        reports
            .iter()
            .find(|r| r.log == log)
            .unwrap_or_else(|| panic!("no report for {log}: {reports:?}"))
            .result
            .clone()
    };
    assert_eq!(report(&reports, "provinces/2008-01/registry"), Ok(5));
    assert_eq!(report(&reports, "provinces/2008-79/registry"), Ok(3));

    // 01: entry 3 names another resource.
    let changed = db
        .conn()
        .execute_raw(stmt(
            b,
            "UPDATE change_log SET resource = $1 WHERE jurisdiction = $2 AND service = $3 AND seq = $4",
            ["x".into(), "provinces/2008-01".into(), "registry".into(), 3i64.into()],
        ))
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    // 79: one bit of entry 2's state is flipped.
    let row = db
        .conn()
        .query_one_raw(stmt(
            b,
            "SELECT state FROM change_log WHERE jurisdiction = $1 AND service = $2 AND seq = $3",
            ["provinces/2008-79".into(), "registry".into(), 2i64.into()],
        ))
        .await
        .unwrap()
        .expect("entry 2 of 79");
    let mut state: Vec<u8> = row.try_get_by_index(0).unwrap();
    let middle = state.len() / 2;
    state[middle] ^= 0x01;
    db.conn()
        .execute_raw(stmt(
            b,
            "UPDATE change_log SET state = $1 WHERE jurisdiction = $2 AND service = $3 AND seq = $4",
            [state.into(), "provinces/2008-79".into(), "registry".into(), 2i64.into()],
        ))
        .await
        .unwrap();

    let broken = verify_log(db.conn(), &registry_log("01")).await.unwrap().expect_err("altered resource is found");
    assert_eq!(broken.sequence, 3, "{broken}");
    let broken = verify_log(db.conn(), &registry_log("79")).await.unwrap().expect_err("altered state is found");
    assert_eq!(broken.sequence, 2, "{broken}");

    let reports = einfo_app::verify::verify_all(db.conn()).await.unwrap();
    let hanoi_report = report(&reports, "provinces/2008-01/registry").expect_err("01 is reported broken");
    assert!(hanoi_report.contains("entry 3"), "{hanoi_report}");
    let hcm_report = report(&reports, "provinces/2008-79/registry").expect_err("79 is reported broken");
    assert!(hcm_report.contains("entry 2"), "{hcm_report}");

    // A reader checking what the node serves finds the same entry.
    let served = read_all(&mut node.changelog().await, "01", 0, Vec::new()).await;
    assert_eq!(served.len(), 5);
    let mut v = ChainVerifier::new("provinces/2008-01/registry", 0, &GENESIS_HASH);
    let broken = served.iter().try_for_each(|e| v.check(e)).expect_err("the served chain is broken");
    assert_eq!(broken.sequence, 3);
    db.close().await.unwrap();
}

// ------------------------------------------------------------------ cursors

async fn a_cursor_with_another_hash_is_a_history_mismatch_and_the_right_hash_resumes_after_it(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    for i in 0..5 {
        register(&mut c, "01", &format!("cursor{i}.vn")).await;
    }
    let mut log = node.changelog().await;
    let all = read_all(&mut log, "01", 0, Vec::new()).await;
    assert_eq!(all.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);

    // After entry 2, with the hash of entry 3, or with none: the histories differ.
    for wrong in [all[2].hash.clone(), Vec::new(), vec![0; 32]] {
        let err = log.stream_changes(request("01", 2, wrong.clone(), false)).await.expect_err("a wrong cursor hash");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert_eq!(reason(&err), "HISTORY_MISMATCH", "{err:?}");
    }

    // From the start, a hash other than the genesis one makes no sense.
    let err = log.stream_changes(request("01", 0, all[0].hash.clone(), false)).await.expect_err("a hash with after 0");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(read_all(&mut log, "01", 0, GENESIS_HASH.to_vec()).await, all, "the genesis hash is the start");

    // The right hash resumes after it.
    let rest = read_all(&mut log, "01", 2, all[1].hash.clone()).await;
    assert_eq!(rest, all[2..].to_vec());
    // At the head, with its hash: nothing, and no error.
    assert!(read_all(&mut log, "01", 5, all[4].hash.clone()).await.is_empty());

    // Past the head: this node's history is shorter than the reader's.
    for beyond in [6, 1000] {
        let err = log
            .stream_changes(request("01", beyond, all[4].hash.clone(), false))
            .await
            .expect_err("a cursor past the head");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert_eq!(reason(&err), "HISTORY_MISMATCH", "{err:?}");
    }

    // A follower resuming from the middle gets what follows, then what is written next.
    let mut stream = log.stream_changes(request("01", 4, all[3].hash.clone(), true)).await.unwrap().into_inner();
    let fifth = tokio::time::timeout(PATIENCE, next_entry(&mut stream)).await.unwrap().unwrap().unwrap();
    assert_eq!(fifth, all[4]);
    let sixth_site = register(&mut c, "01", "cursor5.vn").await;
    let sixth = tokio::time::timeout(PATIENCE, next_entry(&mut stream)).await.unwrap().unwrap().unwrap();
    assert_eq!(sixth.sequence, 6);
    assert_eq!(sixth.resource, sixth_site.name);
    assert_eq!(sixth.prev_hash, all[4].hash);
}

// ------------------------------------------------------------------ state and actor

async fn every_entry_carries_the_full_new_state_and_the_caller_as_actor(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let created = register(&mut c, "01", "trangthai.vn").await;
    let updated = c
        .update_site(pb::UpdateSiteRequest {
            site: Some(pb::Site {
                name: created.name.clone(),
                etag: created.etag.clone(),
                display_name: "Trang trạng thái mới".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
            request_id: "r2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let corrected = c
        .correct_site(pb::CorrectSiteRequest {
            site: Some(pb::Site {
                name: created.name.clone(),
                etag: updated.etag.clone(),
                kind: "social-network".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["kind".into()] }),
            reason: "nhập sai loại".into(),
            request_id: "r3".into(),
        })
        .await
        .unwrap()
        .into_inner();

    let entries = read_all(&mut node.changelog().await, "01", 0, Vec::new()).await;
    assert_eq!(entries.len(), 3);
    let expected = [("CREATE", &created, ""), ("UPDATE", &updated, ""), ("CORRECT", &corrected, "nhập sai loại")];
    for (e, (operation, site, why)) in entries.iter().zip(expected) {
        assert_eq!(e.operation, operation);
        assert_eq!(e.resource, site.name);
        assert_eq!(e.reason, why);
        assert_eq!(e.jurisdiction, "provinces/2008-01");
        assert_eq!(e.service, "registry");
        assert_eq!(e.schema_version, 1);
        assert!(e.server_time.is_some());
        let any = e.state.as_ref().expect("a state");
        assert!(any.type_url.ends_with("einfo.registry.v1.Site"), "{}", any.type_url);
        let state: pb::Site = any.to_msg().expect("the state decodes as a Site");
        assert_eq!(&state, site, "the {operation} entry holds the full new state");
        let actor = e.actor.as_ref().expect("an actor");
        assert_eq!(actor.subject, "operator-01");
        assert_eq!(actor.role, "operator");
        assert_eq!(actor.jurisdiction, "provinces/2008-01");
    }
    // The update entry keeps the fields the mask did not name.
    let updated_state: pb::Site = entries[1].state.as_ref().unwrap().to_msg().unwrap();
    assert_eq!(updated_state.domains, created.domains);
    assert_eq!(updated_state.owner, created.owner);

    // The actor is whoever called: another operator of the same province.
    let other = einfo_common::auth::Caller { subject: "clerk-7".into(), ..TestNode::operator("01") };
    let mut c2 = node.registry_as(&other).await;
    register(&mut c2, "01", "clerk.vn").await;
    let entries = read_all(&mut node.changelog().await, "01", 3, entries[2].hash.clone()).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].actor.as_ref().unwrap().subject, "clerk-7");
}

// ------------------------------------------------------------------ access

async fn a_provinces_caller_reads_its_own_log_but_not_another_provinces(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    register(&mut node.registry("01").await, "01", "cuaminh.vn").await;
    register(&mut node.registry("79").await, "79", "cuanguoikhac.vn").await;

    let mut hanoi: ChangeLogClient = ChangeLogServiceClient::with_interceptor(
        node.channel().await,
        einfo_common::auth::BearerToken::new(&node.token(&TestNode::operator("01"))).unwrap(),
    );
    let own = read_all(&mut hanoi, "01", 0, Vec::new()).await;
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].jurisdiction, "provinces/2008-01");

    for follow in [false, true] {
        let err = hanoi.stream_changes(request("79", 0, Vec::new(), follow)).await.expect_err("another province's log");
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert_eq!(reason(&err), "NOT_YOUR_JURISDICTION", "{err:?}");
    }
    let err = hanoi
        .get_log_head(logpb::GetLogHeadRequest { jurisdiction: province("79").to_string(), service: "registry".into() })
        .await
        .expect_err("another province's head");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // The centre reads both.
    let mut centre = node.changelog().await;
    assert_eq!(read_all(&mut centre, "01", 0, Vec::new()).await.len(), 1);
    assert_eq!(read_all(&mut centre, "79", 0, Vec::new()).await.len(), 1);
}

both_backends!(
    concurrent_writers_make_one_dense_chain_that_a_follower_reads_whole_and_in_order,
    an_entry_altered_in_the_database_is_found_by_the_verifier_and_by_einfo_verify,
    a_cursor_with_another_hash_is_a_history_mismatch_and_the_right_hash_resumes_after_it,
    every_entry_carries_the_full_new_state_and_the_caller_as_actor,
    a_provinces_caller_reads_its_own_log_but_not_another_provinces,
);
