//! `einfo recover --from-gateway` rebuilds a node's registry and inspection from the entries the
//! centre kept (issue 12, point 4): the rules that apply an entry to the service tables
//! (`einfo_registry::project`, `einfo_inspection::project`) are held to the write path's. A node
//! whose every table holds data (the release fixtures' federation, plus a site updated and voided)
//! is replicated; a node on an empty store recovers everything from the gateway; both stores then
//! hold the same rows in every registry and inspection table, and the same log entries.

use einfo_app::recover::{Outcome, Source};
use einfo_common::db::Database;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::{Backend, TestDb, both_backends, eventually, fixtures, settings};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

const P01: &str = "provinces/2008-01";

/// Tables that are not rebuilt from entries: a cache of registry's site names, filled on demand.
const NOT_FROM_ENTRIES: [&str; 1] = ["insp_sites"];

/// Columns that count delivery attempts (retries are not in the log).
const ATTEMPT_COLUMNS: [&str; 2] = ["attempts", "next_attempt"];

async fn columns(db: &Database, table: &str) -> Vec<String> {
    let sql = match db.backend() {
        DbBackend::Postgres => format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
        ),
        _ => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
    };
    let rows = db.conn().query_all_raw(Statement::from_string(db.backend(), sql)).await.expect("columns");
    rows.iter().map(|r| r.try_get_by_index::<String>(0).expect("a name")).collect()
}

/// Every row of the registry's and inspection's tables and of their logs, as text, sorted.
async fn rows(db: &Database) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for table in einfo_app::verify::table_names(db.conn()).await.expect("tables") {
        let ours =
            table.starts_with("reg_") || table.starts_with("insp_") || table == "change_log" || table == "log_heads";
        if !ours || NOT_FROM_ENTRIES.contains(&table.as_str()) {
            continue;
        }
        let cols: Vec<String> =
            columns(db, &table).await.into_iter().filter(|c| !ATTEMPT_COLUMNS.contains(&c.as_str())).collect();
        let text = match db.backend() {
            DbBackend::Postgres => format!(
                "concat_ws('|', {})",
                cols.iter().map(|c| format!("COALESCE(CAST({c} AS TEXT), 'NULL')")).collect::<Vec<_>>().join(", ")
            ),
            _ => cols.iter().map(|c| format!("quote({c})")).collect::<Vec<_>>().join(" || '|' || "),
        };
        let filter = if table == "change_log" || table == "log_heads" {
            " WHERE service IN ('registry', 'inspection')"
        } else {
            ""
        };
        let sql = format!("SELECT {text} FROM {table}{filter}");
        let got = db.conn().query_all_raw(Statement::from_string(db.backend(), sql)).await.expect("rows");
        let mut lines: Vec<String> = got.iter().map(|r| r.try_get_by_index::<String>(0).expect("a row")).collect();
        lines.sort();
        out.push((table, lines));
    }
    out
}

async fn recovery_rebuilds_every_table_the_write_path_wrote(backend: Backend) {
    let Some((g, node)) = crate::fixtures::populate(backend).await else { return };
    // A site registered, renamed and voided: the site paths the fixtures do not take.
    let mut r = node.registry("01").await;
    let s = fixtures::register(&mut r, P01, fixtures::site("Trang khôi phục", &["khoi-phuc.vn"])).await;
    let s = r
        .update_site(pb::UpdateSiteRequest {
            site: Some(pb::Site {
                name: s.name.clone(),
                etag: s.etag.clone(),
                display_name: "Trang khôi phục mới".into(),
                domains: vec!["khoi-phuc-moi.vn".into()],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into(), "domains".into()] }),
            request_id: "renamed".into(),
        })
        .await
        .expect("updated")
        .into_inner();
    r.void_site(pb::VoidSiteRequest {
        name: s.name.clone(),
        etag: s.etag.clone(),
        reason: "trùng lặp".into(),
        request_id: "voided".into(),
    })
    .await
    .expect("voided");
    let heads = (node.log_sequence("01", "registry").await, node.log_sequence("01", "inspection").await);
    eventually("the gateway holds both logs", || async {
        let f = g.status().await.into_iter().find(|f| f.jurisdiction == P01)?;
        (f.registry_sequence == heads.0 && f.inspection_sequence == heads.1).then_some(())
    })
    .await;
    let written = rows(&node.db.connect().await).await;
    assert!(written.iter().all(|(t, lines)| !lines.is_empty() || t == "insp_outbox"), "{written:?}");

    // A node that lost its disk and had no backup: an empty store, recovered from the gateway.
    let Some(empty) = TestDb::new(backend).await else { return };
    let s = settings(&empty, &["01"]);
    let outcomes = einfo_app::recover::recover(&s, &Source { gateway: g.url(), token: None }).await.expect("recovered");
    let got: Vec<(String, Outcome)> = outcomes.into_iter().map(|o| (o.log, o.outcome)).collect();
    assert_eq!(
        got,
        vec![
            (format!("{P01}/registry"), Outcome::Recovered { from: 0, to: heads.0 }),
            (format!("{P01}/inspection"), Outcome::Recovered { from: 0, to: heads.1 }),
        ]
    );
    let recovered = rows(&empty.connect().await).await;
    for ((table, want), (t, have)) in written.iter().zip(&recovered) {
        assert_eq!(table, t);
        assert_eq!(want, have, "{table}: the recovered rows differ from the written ones");
    }
    assert_eq!(written.len(), recovered.len());

    // Run again, it finds nothing to do.
    let again = einfo_app::recover::recover(&s, &Source { gateway: g.url(), token: None }).await.expect("again");
    assert!(again.iter().all(|o| matches!(o.outcome, Outcome::UpToDate(_))), "{again:?}");
}

both_backends!(recovery_rebuilds_every_table_the_write_path_wrote);
