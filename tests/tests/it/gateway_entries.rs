//! The centre keeps what it received: every replicated entry verbatim beside the projections,
//! served back by `GetEntries` to its own province and to the centre (and to no other
//! province), the projections rebuilt from the kept entries (`einfo gateway rebuild`) or, for a
//! lost store, from the nodes, with the same strict national totals; a store from before the
//! centre kept entries filled in by its first audit; `einfo verify` over the kept entries, naming
//! the province and sequence of a changed byte.

use std::collections::BTreeMap;

use einfo_common::auth::{BearerToken, Caller, Role};
use einfo_domain::Scheme;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::gateway::v1::entry_service_client::EntryServiceClient;
use einfo_proto::log::v1 as logpb;
use einfo_testkit::gateway::strict;
use einfo_testkit::process::einfo;
use einfo_testkit::{Backend, TestDb, TestGateway, TestNode, both_backends, eventually, in_secs};
use prost::Message;
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;

use crate::gateway::{DAY, federation, j, licensed, register};
use crate::gateway_campaigns::{inspect, sanction};
use crate::gateway_restart::import_everywhere;
use crate::refusals::{Row, assert_refused};

type EntryClient =
    EntryServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>>;

pub(crate) fn entries_as(g: &TestGateway, caller: &Caller) -> EntryClient {
    let token = g.keys.issue(caller, std::time::Duration::from_secs(3600)).expect("token");
    let channel = tonic::transport::Endpoint::from_shared(g.url()).expect("endpoint").connect_lazy();
    EntryServiceClient::with_interceptor(channel, BearerToken::new(&token).expect("token"))
}

fn operator_of(code: &str) -> Caller {
    TestNode::operator(code)
}

fn get(jurisdiction: &str, service: &str, after: u64, page_size: i32) -> gw::GetEntriesRequest {
    gw::GetEntriesRequest { jurisdiction: jurisdiction.into(), service: service.into(), after, page_size }
}

/// Every kept entry of a log, paged `page` at a time.
async fn all_kept(c: &mut EntryClient, jurisdiction: &str, service: &str, page: i32) -> (Vec<logpb::ChangeEntry>, u64) {
    let mut out: Vec<logpb::ChangeEntry> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.sequence);
        let r = c.get_entries(get(jurisdiction, service, after, page)).await.expect("GetEntries").into_inner();
        assert!(r.entries.len() <= page as usize, "at most page_size entries");
        if r.entries.is_empty() {
            return (out, r.kept_sequence);
        }
        out.extend(r.entries);
    }
}

/// The strict national summary's cells, by (unit, kind, legal status), and its totals.
async fn strict_figures(g: &TestGateway) -> BTreeMap<(String, String, i32), i64> {
    let s = g
        .national()
        .get_national_summary(gw::GetNationalSummaryRequest { options: strict(gw::Grouping::Provinces63) })
        .await
        .expect("a STRICT summary: every province live")
        .into_inner();
    assert!(s.complete && s.missing.is_empty());
    let mut f = BTreeMap::new();
    for u in &s.units {
        for c in &u.cells {
            f.insert((u.unit.clone(), c.kind.clone(), c.legal_status), c.count);
        }
    }
    for t in &s.totals {
        f.insert(("total".into(), t.kind.clone(), t.legal_status), t.count);
    }
    f
}

/// What the projections hold, read back as text rows per table (instants of application aside).
async fn projections(db: &TestDb) -> BTreeMap<&'static str, Vec<String>> {
    let conn = db.connect().await;
    let queries: [(&str, &str); 9] = [
        (
            "gw_sites",
            "SELECT name, jurisdiction, kind, legal_status, voided, name_folded, owner_tax_code, body FROM gw_sites ORDER BY name",
        ),
        ("gw_site_domains", "SELECT site, ascii, registrable, jurisdiction FROM gw_site_domains ORDER BY site, ascii"),
        ("gw_licences", "SELECT name, jurisdiction, state, expire_time, body FROM gw_licences ORDER BY name"),
        ("gw_applications", "SELECT name, jurisdiction, state, deadline, body FROM gw_applications ORDER BY name"),
        ("gw_inspections", "SELECT name, jurisdiction, inspect_time FROM gw_inspections ORDER BY name"),
        (
            "gw_violations",
            "SELECT inspection, idx, jurisdiction, code, inspect_time FROM gw_violations ORDER BY inspection, idx",
        ),
        (
            "gw_decisions",
            "SELECT name, jurisdiction, decision_time, fine_vnd, suspensions, revocations, voided FROM gw_decisions ORDER BY name",
        ),
        (
            "gw_summary",
            "SELECT jurisdiction, kind, legal_status, count FROM gw_summary WHERE count <> 0 ORDER BY jurisdiction, kind, legal_status",
        ),
        ("gw_cursors", "SELECT jurisdiction, service, seq, hash FROM gw_cursors ORDER BY jurisdiction, service"),
    ];
    let mut out = BTreeMap::new();
    for (table, sql) in queries {
        let rows = conn.conn().query_all_raw(Statement::from_string(conn.backend(), sql)).await.expect(table);
        let text = rows
            .iter()
            .map(|r| {
                let cols = sql.split(" FROM ").next().unwrap().trim_start_matches("SELECT ").split(", ").count();
                (0..cols)
                    .map(|i| {
                        r.try_get_by_index::<String>(i)
                            .or_else(|_| r.try_get_by_index::<i64>(i).map(|v| v.to_string()))
                            .or_else(|_| r.try_get_by_index::<i32>(i).map(|v| v.to_string()))
                            .or_else(|_| r.try_get_by_index::<Vec<u8>>(i).map(|v| hex_of(&v)))
                            .unwrap_or_else(|e| panic!("{table} column {i}: {e:?}"))
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        out.insert(table, text);
    }
    conn.close().await.expect("close");
    out
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn exec(db: &TestDb, sql: &str) {
    let conn = db.connect().await;
    conn.conn().execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.expect("close");
}

/// A node hosting the 63 provinces with a few sites each, a licence, an application, a voided
/// site, an inspection and a decision; a gateway caught up with it.
async fn seeded(backend: Backend) -> Option<(Vec<TestNode>, TestGateway)> {
    let codes: Vec<String> = Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect();
    let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    let (nodes, g) = federation(backend, &[&refs]).await?;
    let node = &nodes[0];
    import_everywhere(node, &codes, "kept", 2).await;
    licensed(node, "01", "giayphep.vn", in_secs(90 * DAY)).await;
    let target = register(node, "01", "Trang bị kiểm tra", &["kiemtra.vn"]).await;
    let mut i01 = node.inspection("01").await;
    let x = inspect(&mut i01, "01", &target.name, &["ND15-44"], 5).await;
    sanction(&mut i01, "01", &x, 20_000_000).await;
    let gone = register(node, "79", "Trang nhập trùng", &["nhaptrung.vn"]).await;
    node.registry("79")
        .await
        .void_site(einfo_proto::registry::v1::VoidSiteRequest {
            name: gone.name.clone(),
            etag: gone.etag.clone(),
            reason: "nhập trùng".into(),
            request_id: "void-gone".into(),
        })
        .await
        .expect("voided");
    einfo_testkit::fixtures::apply(
        &mut node.registry("48").await,
        &register(node, "48", "Trang xin phép", &["xinphep.vn"]).await.name,
        60,
    )
    .await;
    g.wait_caught_up(&[node]).await;
    Some((nodes, g))
}

async fn the_centre_serves_what_it_kept_to_its_province_and_the_centre_only(backend: Backend) {
    let Some((nodes, g)) = seeded(backend).await else { return };
    let node = &nodes[0];
    for (code, service) in [("01", "registry"), ("01", "inspection"), ("79", "registry")] {
        // What the node's own log says, entry by entry, byte for byte.
        let theirs = einfo_testkit::fixtures::log_entries(node, &j(code), service).await;
        let (ours, kept) = all_kept(&mut entries_as(&g, &operator_of(code)), &j(code), service, 3).await;
        assert_eq!(kept, theirs.len() as u64, "{code}/{service}: kept up to the node's head");
        assert_eq!(
            ours.iter().map(Message::encode_to_vec).collect::<Vec<_>>(),
            theirs.iter().map(Message::encode_to_vec).collect::<Vec<_>>(),
            "{code}/{service}: the centre gives back exactly what the node wrote"
        );
    }
    // The centre's own services read any province; the inspector of 01 reads 01. The entries hold
    // personal data unmasked: the centre's people read none.
    let (all, _) = all_kept(&mut entries_as(&g, &TestNode::central_service()), &j("79"), "registry", 1000).await;
    assert!(!all.is_empty());
    for person in [TestGateway::analyst_caller(), TestGateway::admin_caller()] {
        let e = entries_as(&g, &person).get_entries(get(&j("79"), "registry", 0, 0)).await.expect_err("a person");
        assert_refused(&e, Code::PermissionDenied, "ROLE_NOT_ALLOWED", None);
    }
    let inspector =
        Caller { subject: "insp".into(), role: Role::Inspector, jurisdiction: einfo_testkit::province("01") };
    entries_as(&g, &inspector).get_entries(get(&j("01"), "inspection", 0, 0)).await.expect("its own province");

    // Refusals.
    let mut c01 = entries_as(&g, &operator_of("01"));
    let head01 = all_kept(&mut c01, &j("01"), "registry", 1000).await.1;
    let rows: Vec<Row<(EntryClient, gw::GetEntriesRequest)>> = vec![
        Row {
            reason: "another province",
            call: (entries_as(&g, &operator_of("79")), get(&j("01"), "registry", 0, 0)),
            code: Code::PermissionDenied,
            info: "NOT_YOUR_JURISDICTION",
            field: None,
        },
        Row {
            reason: "a province that is not one",
            call: (c01.clone(), get("provinces/2008-99", "registry", 0, 0)),
            code: Code::InvalidArgument,
            info: "FIELD_INVALID",
            field: Some("jurisdiction"),
        },
        Row {
            reason: "the centre's own log",
            call: (c01.clone(), get("central", "registry", 0, 0)),
            code: Code::InvalidArgument,
            info: "FIELD_INVALID",
            field: Some("jurisdiction"),
        },
        Row {
            reason: "a log the gateway does not replicate",
            call: (c01.clone(), get(&j("01"), "reporting", 0, 0)),
            code: Code::InvalidArgument,
            info: "FIELD_INVALID",
            field: Some("service"),
        },
        Row {
            reason: "past what the centre holds",
            call: (c01.clone(), get(&j("01"), "registry", head01 + 1, 0)),
            code: Code::InvalidArgument,
            info: "FIELD_INVALID",
            field: Some("after"),
        },
        Row {
            reason: "a negative page",
            call: (c01.clone(), get(&j("01"), "registry", 0, -1)),
            code: Code::InvalidArgument,
            info: "FIELD_INVALID",
            field: Some("page_size"),
        },
    ];
    for Row { reason, call: (mut c, req), code, info, field } in rows {
        let e = c.get_entries(req).await.expect_err(reason);
        assert_refused(&e, code, info, field);
    }
    let e = EntryServiceClient::new(tonic::transport::Endpoint::from_shared(g.url()).unwrap().connect_lazy())
        .get_entries(get(&j("01"), "registry", 0, 0))
        .await
        .expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated);
}

async fn a_national_store_rebuilt_from_its_kept_entries_or_from_the_nodes_gives_the_same_strict_totals(
    backend: Backend,
) {
    let Some((nodes, mut g)) = seeded(backend).await else { return };
    let before = strict_figures(&g).await;
    assert!(before.keys().any(|(u, _, _)| u == &j("79")), "the seed counts in 79");
    g.stop().await;
    let tables = projections(&g.db).await;
    assert!(tables.values().all(|rows| !rows.is_empty()), "every projection holds rows: {:?}", tables.keys());

    // The projections damaged, then rebuilt from the kept entries alone.
    exec(&g.db, "DELETE FROM gw_sites WHERE jurisdiction = 'provinces/2008-01'").await;
    exec(&g.db, "UPDATE gw_summary SET count = count + 7").await;
    exec(&g.db, "DELETE FROM gw_decisions").await;
    exec(&g.db, "DELETE FROM gw_cursors WHERE jurisdiction = 'provinces/2008-79'").await;
    let r = einfo_app::gateway::rebuild(&g.settings).await.expect("rebuild");
    assert_eq!(r.logs, 63 + 1, "the registry log of every province and the inspection log of 01");
    assert!(r.not_kept.is_empty(), "{:?}", r.not_kept);
    assert_eq!(projections(&g.db).await, tables, "the rebuilt projections equal the ones replication made");
    g.start_again_same_port().await;
    g.wait_caught_up(&[&nodes[0]]).await;
    assert_eq!(strict_figures(&g).await, before, "the same strict totals after the rebuild");

    // A lost store: a new gateway on an empty database replicates everything again from the nodes.
    let Some(fresh) = TestGateway::start(backend, &crate::gateway::directory_of(&nodes)).await else { return };
    fresh.wait_caught_up(&[&nodes[0]]).await;
    assert_eq!(strict_figures(&fresh).await, before, "the same strict totals from the nodes");
}

async fn a_store_from_before_the_centre_kept_entries_is_filled_in_and_verified(backend: Backend) {
    let Some((nodes, mut g)) = seeded(backend).await else { return };
    let before = strict_figures(&g).await;
    g.stop().await;
    // As a store of release 0.1 is: projections and cursors, no kept entries.
    exec(&g.db, "DELETE FROM gw_entries").await;
    let (code, out, _) = verify(&g.db).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("applied before the centre kept entries"), "verify says what is not kept yet:\n{out}");

    // Restarted, with a write in 01 on the way: the first audit of each log keeps what it reads.
    g.start_again_same_port().await;
    register(&nodes[0], "01", "Trang sau nâng cấp", &["saunangcap.vn"]).await;
    g.wait_caught_up(&[&nodes[0]]).await;
    eventually("every log kept again from sequence 1", || async {
        let (code, out, _) = verify(&g.db).await;
        (code == Some(0)
            && !out.contains("before the centre kept")
            && out.matches("(kept at the centre)").count() == 64)
            .then_some(())
    })
    .await;
    let theirs = einfo_testkit::fixtures::log_entries(&nodes[0], &j("01"), "registry").await;
    let (ours, _) = all_kept(&mut entries_as(&g, &operator_of("01")), &j("01"), "registry", 1000).await;
    assert_eq!(ours, theirs, "01's registry log kept whole, before and after the upgrade");

    // A rebuild of a store that kept nothing empties the logs it cannot rebuild; they are
    // replicated again from their nodes, with the same totals.
    g.stop().await;
    exec(&g.db, "DELETE FROM gw_entries").await;
    let r = einfo_app::gateway::rebuild(&g.settings).await.expect("rebuild");
    assert_eq!((r.logs, r.not_kept.len()), (0, 63 + 1), "nothing kept to rebuild from");
    g.start_again_same_port().await;
    g.wait_caught_up(&[&nodes[0]]).await;
    let mut want = before;
    *want
        .entry((j("01"), "general-website".into(), einfo_proto::registry::v1::LegalStatus::Unlicensed as i32))
        .or_default() += 1;
    *want
        .entry(("total".into(), "general-website".into(), einfo_proto::registry::v1::LegalStatus::Unlicensed as i32))
        .or_default() += 1;
    assert_eq!(strict_figures(&g).await, want, "the same strict totals, with the site registered since");
}

async fn verify(db: &TestDb) -> (Option<i32>, String, String) {
    let out = einfo().args(["verify", "--database-url", &db.url]).output().await.expect("run einfo verify");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn a_byte_changed_in_a_kept_entry_is_named_by_province_and_sequence(backend: Backend) {
    let Some((_nodes, mut g)) = seeded(backend).await else { return };
    g.stop().await;
    let (code, out, err) = verify(&g.db).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.starts_with("the gateway's store"), "{out}");
    assert_eq!(
        out.matches("(kept at the centre)").count(),
        64,
        "the registry log of the 63 provinces, the inspection log of 01:\n{out}"
    );

    // One byte of the display name in entry 2 of 01's registry log: 'T' becomes 'X'.
    let conn = g.db.connect().await;
    let select =
        "SELECT body FROM gw_entries WHERE jurisdiction = 'provinces/2008-01' AND service = 'registry' AND seq = 2";
    let row = conn.conn().query_one_raw(Statement::from_string(conn.backend(), select)).await.unwrap().unwrap();
    let mut body: Vec<u8> = row.try_get_by_index(0).unwrap();
    let at = body.windows(5).position(|w| w == b"Trang").expect("the name in the body");
    body[at] = b'X';
    conn.conn()
        .execute_raw(einfo_common::db::stmt(
            conn.backend(),
            "UPDATE gw_entries SET body = $1 WHERE jurisdiction = 'provinces/2008-01' AND service = 'registry' AND seq = 2",
            [body.into()],
        ))
        .await
        .unwrap();
    conn.close().await.unwrap();
    let tables = projections(&g.db).await;

    let (code, out, _) = verify(&g.db).await;
    assert_eq!(code, Some(1), "{out}");
    let broken: Vec<&str> = out.lines().filter(|l| l.starts_with("BROKEN")).collect();
    assert_eq!(broken.len(), 1, "{out}");
    assert!(
        broken[0].contains("provinces/2008-01/registry (kept at the centre)") && broken[0].contains("entry 2:"),
        "the province and the sequence: {}",
        broken[0]
    );
    // A rebuild refuses the changed history and changes nothing.
    let e = einfo_app::gateway::rebuild(&g.settings).await.expect_err("a kept entry does not verify");
    assert!(e.to_string().contains("provinces/2008-01/registry: entry 2"), "{e}");
    assert_eq!(projections(&g.db).await, tables, "nothing changed");
}

both_backends!(
    the_centre_serves_what_it_kept_to_its_province_and_the_centre_only,
    a_national_store_rebuilt_from_its_kept_entries_or_from_the_nodes_gives_the_same_strict_totals,
    a_store_from_before_the_centre_kept_entries_is_filled_in_and_verified,
    a_byte_changed_in_a_kept_entry_is_named_by_province_and_sequence
);
