//! A gateway restarted while a node that hosts every province still has a backlog catches up:
//! every province returns to LIVE, and the gateway's cursor and head hash of every log equal the
//! node's. It once stalled for hours: on reconnection each log audited its history *instead of*
//! reading its follow stream, and the unread follow streams of a few provinces filled the
//! flow-control window of the one connection all of the node's provinces share, so no audit
//! could read either.

use std::time::Duration;

use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::gateway::v1 as gw;
use einfo_proto::log::v1 as logpb;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::{Backend, TestDb, TestGateway, TestNode, eventually_within, settings};
use futures::StreamExt as _;
use sea_orm::ConnectionTrait;

/// Sites imported into each province before the gateway first starts: enough that each
/// province's follow stream holds more than its flow-control window.
const BACKLOG: u32 = 400;
/// Sites registered in each province while the gateway is down.
const MORE: u32 = 20;

pub(crate) fn csv(code: &str, tag: &str, start: u32, count: u32) -> Vec<u8> {
    let mut s = einfo_registry::import::COLUMNS.join(",");
    s.push('\n');
    for i in start..start + count {
        s.push_str(&format!(
            "general-website,Trang tin {tag} {code} số {i},{tag}-p{code}-s{i}.vn,organisation,Công ty {code} {i},{},in_vietnam,active,sweep,\n",
            einfo_testkit::fixtures::TAX_CODE
        ));
    }
    s.into_bytes()
}

/// Imports `count` sites into every province, a few provinces at a time.
pub(crate) async fn import_everywhere(node: &TestNode, codes: &[String], tag: &str, count: u32) {
    let calls = codes.iter().map(|code| async move {
        let mut c = node.registry(code).await;
        let r = c
            .import_sites(pb::ImportSitesRequest {
                parent: einfo_testkit::province(code).to_string(),
                csv: csv(code, tag, 0, count),
                dry_run: false,
                request_id: format!("{tag}-{code}"),
            })
            .await
            .unwrap_or_else(|e| panic!("import into {code}: {e:?}"))
            .into_inner();
        assert!(r.errors.is_empty(), "{code}: {:?}", r.errors.first());
    });
    futures::stream::iter(calls).buffer_unordered(4).collect::<Vec<()>>().await;
}

/// The gateway's stored cursor (sequence, hash) of every log.
pub(crate) async fn stored_cursors(g: &TestGateway) -> Vec<(String, String, i64, Vec<u8>)> {
    let db = g.gateway().db();
    let rows = db
        .conn()
        .query_all_raw(sea_orm::Statement::from_string(
            db.backend(),
            "SELECT jurisdiction, service, seq, hash FROM gw_cursors ORDER BY jurisdiction, service",
        ))
        .await
        .expect("cursors");
    rows.iter()
        .map(|r| {
            (
                r.try_get_by_index(0).expect("jurisdiction"),
                r.try_get_by_index(1).expect("service"),
                r.try_get_by_index(2).expect("seq"),
                r.try_get_by_index(3).expect("hash"),
            )
        })
        .collect()
}

async fn a_gateway_restarted_mid_replication_over_a_node_hosting_all_63_provinces_catches_up(backend: Backend) {
    let codes: Vec<String> = Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect();
    let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    let Some(db) = TestDb::new(backend).await else { return };
    let s = settings(&db, &refs);
    let node = TestNode::start_on(db, s, Default::default()).await;
    import_everywhere(&node, &codes, "backlog", BACKLOG).await;

    let directory: Vec<(Jurisdiction, String)> =
        codes.iter().map(|c| (einfo_testkit::province(c), format!("http://{}", node.addr))).collect();
    let Some(mut g) = TestGateway::start(backend, &directory).await else { return };
    // Stopped mid-replication: a third of the backlog applied, twenty provinces begun, and the
    // API showing, for a province catching up, the node's head beside its cursor.
    let total = u64::from(BACKLOG) * codes.len() as u64;
    let behind_seen = std::cell::Cell::new(false);
    eventually_within(Duration::from_secs(120), "a third of the backlog replicated", || {
        let status = g.status();
        let behind_seen = &behind_seen;
        async move {
            let status = status.await;
            // Not yet live at all, so STALE ("catching up") until its first catch-up ends.
            let behind =
                status.iter().any(|f| f.state() == gw::FreshnessState::Stale && f.registry_head > f.registry_sequence);
            behind_seen.set(behind_seen.get() || behind);
            let applied: u64 = status.iter().map(|f| f.registry_sequence).sum();
            (applied * 3 >= total && status.iter().filter(|f| f.registry_sequence > 0).count() >= 20).then_some(())
        }
    })
    .await;
    assert!(behind_seen.get(), "a province catching up shows its node's head ahead of its cursor");
    g.stop().await;

    // Writes go on while the gateway is down.
    import_everywhere(&node, &codes, "more", MORE).await;
    g.start_again_same_port().await;
    let mut want = Vec::new();
    for code in &codes {
        want.push((einfo_testkit::province(code), node.last_sequence(code).await));
    }
    g.wait_synced(&want, Duration::from_secs(120)).await;
    let status = g.status().await;
    assert!(status.iter().all(|f| f.state() == gw::FreshnessState::Live), "every province LIVE: {status:?}");
    for (j, head) in &want {
        let f = status.iter().find(|f| f.jurisdiction == j.to_string()).expect("listed");
        assert_eq!((f.registry_sequence, f.registry_head), (*head, *head), "{j}: nothing left to apply");
    }

    // The gateway's cursor and head hash of every log equal the node's.
    let cursors = stored_cursors(&g).await;
    let mut log = node.changelog().await;
    for code in &codes {
        let j = einfo_testkit::province(code).to_string();
        for service in ["registry", "inspection"] {
            let head = log
                .get_log_head(logpb::GetLogHeadRequest { jurisdiction: j.clone(), service: service.into() })
                .await
                .expect("the node's head")
                .into_inner();
            let stored = cursors.iter().find(|(cj, cs, _, _)| *cj == j && cs == service);
            match stored {
                Some((_, _, seq, hash)) => {
                    assert_eq!((*seq as u64, hash.as_slice()), (head.sequence, head.hash.as_slice()), "{j}/{service}")
                }
                None => assert_eq!(head.sequence, 0, "{j}/{service} has entries the gateway never stored"),
            }
        }
    }
}

einfo_testkit::both_backends!(a_gateway_restarted_mid_replication_over_a_node_hosting_all_63_provinces_catches_up);
