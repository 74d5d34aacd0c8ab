//! A national gateway killed with SIGKILL in the middle of replication, twice, and started again
//! on the same store ends with exactly what the nodes hold: every site once, none missing, and
//! summary counts equal to each node's own statistics (nothing counted twice). On SQLite and on
//! PostgreSQL for the gateway's store; the nodes run in-process on SQLite, and a writer keeps
//! registering, re-classifying and voiding sites the whole time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::gateway::v1::national_service_client::NationalServiceClient;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::process::{einfo, sigkill, site, start_on_free_port, tail, terminate, wait_for};
use einfo_testkit::{Backend, NationalClient, RegistryClient, TestDb, TestNode, eventually, province};
use sea_orm::ConnectionTrait;

/// Which provinces each node hosts, and how many sites each province takes before each gateway
/// start.
struct Layout {
    nodes: Vec<Vec<String>>,
    seed_per_province: usize,
}

impl Layout {
    /// Five provinces on three nodes, 600 sites each per round.
    fn few() -> Self {
        let nodes = [&["01", "79"][..], &["48", "31"], &["92"]];
        Self {
            nodes: nodes.iter().map(|n| n.iter().map(|c| (*c).to_owned()).collect()).collect(),
            seed_per_province: 600,
        }
    }

    /// The 63 provinces on three nodes of 21 each, 250 sites each per round: every node's
    /// provinces share its one connection to the gateway.
    fn many() -> Self {
        let codes: Vec<String> = einfo_domain::Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect();
        Self { nodes: codes.chunks(21).map(<[String]>::to_vec).collect(), seed_per_province: 250 }
    }

    fn codes(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().flatten().map(String::as_str)
    }

    /// (node index, province code) of every province.
    fn placed(&self) -> impl Iterator<Item = (usize, &str)> {
        self.nodes.iter().enumerate().flat_map(|(i, codes)| codes.iter().map(move |c| (i, c.as_str())))
    }
}
/// Entries per replication transaction: small, so a kill has many commit points to land between.
const BATCH_ENTRIES: &str = "50";
/// Calls the writers make after the gateway's last start, before they stop.
const WRITES_AFTER_RESTART: usize = 60;

/// (kind, legal status) → sites, voided ones excluded.
type Cells = BTreeMap<(String, i32), i64>;
/// (name, kind, legal status, voided).
type SiteRow = (String, String, i32, bool);

/// One `einfo serve gateway` child process.
pub(crate) struct GatewayProcess {
    pub(crate) child: tokio::process::Child,
    pub(crate) addr: String,
    pub(crate) log: PathBuf,
}

impl GatewayProcess {
    /// Starts the gateway and returns as soon as its national service answers (replication
    /// starts just before), so the caller can watch replication from its first batches.
    pub(crate) async fn start(dir: &Path, directory: &Path, database_url: Option<&str>, secret: &str) -> Self {
        let log = dir.join("gateway.log");
        let command = |addr: &str| {
            let mut cmd = einfo();
            cmd.args(["serve", "gateway", "--insecure", "--listen", addr, "--data-dir"])
                .arg(dir)
                .arg("--directory")
                .arg(directory)
                .env("EINFO_AUTH__SECRET", secret)
                .env("EINFO_GATEWAY__BATCH_ENTRIES", BATCH_ENTRIES)
                .env("EINFO_GATEWAY__RETRY_INITIAL_MS", "50")
                .env("EINFO_GATEWAY__RETRY_MAX_MS", "500")
                // Tests run many servers at once against one PostgreSQL server.
                .env("EINFO_DATABASE_POOL_SIZE", "8");
            if let Some(url) = database_url {
                cmd.args(["--database-url", url]);
            }
            cmd
        };
        let answering = async |child: &mut tokio::process::Child, addr: &str| {
            let national = national(addr, secret);
            wait_for(child, &log, Duration::from_secs(30), "the gateway answering", || {
                let mut national = national.clone();
                async move {
                    let r = national.get_replication_status(gw::GetReplicationStatusRequest {}).await;
                    r.map(|_| ()).map_err(|e| format!("{e:?}"))
                }
            })
            .await
        };
        let (child, addr) = start_on_free_port(&log, command, answering).await;
        Self { child, addr, log }
    }

    pub(crate) fn national(&self, secret: &str) -> NationalClient {
        national(&self.addr, secret)
    }

    pub(crate) async fn kill(&mut self) {
        sigkill(&mut self.child, "gateway").await;
    }

    /// SIGTERM, and the gateway exits cleanly (its store closed) within 20 s.
    pub(crate) async fn terminate(mut self) {
        terminate(&mut self.child, &self.log, Duration::from_secs(20), "the gateway").await;
    }
}

/// National queries to the gateway at `addr` as a central analyst.
fn national(addr: &str, secret: &str) -> NationalClient {
    let keys = TokenKeys::from_secret(secret.as_bytes()).expect("token keys");
    let caller = Caller { subject: "analyst".into(), role: Role::CentralAnalyst, jurisdiction: Jurisdiction::Central };
    let token = keys.issue(&caller, Duration::from_secs(3600)).expect("issue token");
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy();
    NationalServiceClient::with_interceptor(ch, BearerToken::new(&token).expect("bearer token"))
}

/// Sum of the registry sequences the gateway has applied for `js`.
async fn applied(national: &mut NationalClient, js: &[Jurisdiction]) -> Option<u64> {
    let status = national.get_replication_status(gw::GetReplicationStatusRequest {}).await.ok()?.into_inner();
    Some(
        status
            .jurisdictions
            .iter()
            .filter(|f| js.iter().any(|j| j.to_string() == f.jurisdiction))
            .map(|f| f.registry_sequence)
            .sum(),
    )
}

/// Watches replication and kills the gateway once it has applied `fraction` of the entries it
/// had left to reach `target` (some, but not all); returns how many it had applied in all.
/// Panics if replication finished between two looks.
async fn kill_mid_replication(
    g: &mut GatewayProcess,
    secret: &str,
    js: &[Jurisdiction],
    target: u64,
    fraction: f64,
) -> u64 {
    let national = g.national(secret);
    let first = applied(&mut national.clone(), js).await.expect("the gateway answers");
    let at = first + ((target.saturating_sub(first)) as f64 * fraction) as u64;
    let log = g.log.clone();
    let what = format!("replication from {first} to at least {at} of {target}");
    let now = wait_for(&mut g.child, &g.log, Duration::from_secs(60), &what, || {
        let mut national = national.clone();
        let log = &log;
        async move {
            let now = applied(&mut national, js).await.unwrap_or(first);
            assert!(
                now < target,
                "replication finished ({now} of {target} applied) before the gateway could be killed in the middle; its log:\n{}",
                tail(log)
            );
            if now > first && now >= at { Ok(now) } else { Err(format!("{now} applied")) }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    g.kill().await;
    now
}

/// Imports the layout's sites into every province, a few provinces at a time (one CSV each).
async fn seed(nodes: &[TestNode], layout: &Layout, round: usize) {
    let per_province = layout.seed_per_province;
    let mut imports = Vec::new();
    for (i, code) in layout.placed() {
        {
            let node = &nodes[i];
            let mut c = node.registry(code).await;
            let code = code.to_string();
            imports.push(tokio::spawn(async move {
                let mut csv = String::from(
                    "kind,display_name,domains,owner_kind,owner_name,owner_tax_code,hosting,operational_state,discovery_source,notes\n",
                );
                for i in 0..per_province {
                    let kind = if i % 3 == 0 { "social-network" } else { "general-website" };
                    csv.push_str(&format!(
                        "{kind},Trang {code} đợt {round} số {i},seed-{code}-{round}-{i}.vn,organisation,Công ty {i},0100109106,in_vietnam,active,sweep,\n"
                    ));
                }
                let r = c
                    .import_sites(pb::ImportSitesRequest {
                        parent: province(&code).to_string(),
                        csv: csv.into_bytes(),
                        dry_run: false,
                        request_id: format!("seed-{code}-{round}"),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("import into {code}: {e:?}"))
                    .into_inner();
                assert_eq!(r.sites.len(), per_province, "{code}: {:?}", r.errors);
            }));
        }
    }
    // At most four imports in flight: each holds the node's writer for its whole CSV.
    while !imports.is_empty() {
        let rest = imports.split_off(imports.len().min(4));
        for i in std::mem::replace(&mut imports, rest) {
            i.await.expect("import task");
        }
    }
}

/// The registry log head of every province, summed.
async fn heads(nodes: &[TestNode], layout: &Layout) -> u64 {
    let mut sum = 0;
    for (i, code) in layout.placed() {
        sum += nodes[i].last_sequence(code).await;
    }
    sum
}

/// Registers sites in `code` until `stop`, re-classifying every 7th and voiding every 11th of
/// those it registered, counting each call in `written` too; returns the number of calls, or the
/// first error. It paces itself (a few milliseconds between registrations): a load, not a check.
async fn keep_writing(
    mut c: RegistryClient,
    code: String,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
) -> Result<usize, String> {
    let parent = province(&code).to_string();
    let mut mine: Vec<pb::Site> = Vec::new();
    let mut calls = 0;
    for i in 0usize.. {
        if stop.load(Ordering::SeqCst) {
            return Ok(calls);
        }
        let s = c
            .register_site(pb::RegisterSiteRequest {
                parent: parent.clone(),
                site: Some(site(&format!("Trang viết {code} {i}"), &format!("live-{code}-{i}.vn"))),
                request_id: format!("live-{code}-{i}"),
            })
            .await
            .map_err(|e| format!("register {code} {i}: {e:?}"))?
            .into_inner();
        mine.push(s);
        calls += 1;
        written.fetch_add(1, Ordering::SeqCst);
        if i % 7 == 3 {
            let mut s = mine[i - 3].clone();
            s.kind = "social-network".into();
            mine[i - 3] = c
                .update_site(pb::UpdateSiteRequest {
                    site: Some(s),
                    update_mask: Some(prost_types::FieldMask { paths: vec!["kind".into()] }),
                    request_id: format!("kind-{code}-{i}"),
                })
                .await
                .map_err(|e| format!("update {code} {i}: {e:?}"))?
                .into_inner();
            calls += 1;
            written.fetch_add(1, Ordering::SeqCst);
        }
        if i % 11 == 5 {
            let s = &mine[i - 5];
            mine[i - 5] = c
                .void_site(pb::VoidSiteRequest {
                    name: s.name.clone(),
                    etag: s.etag.clone(),
                    reason: "đăng ký trùng".into(),
                    request_id: format!("void-{code}-{i}"),
                })
                .await
                .map_err(|e| format!("void {code} {i}: {e:?}"))?
                .into_inner();
            calls += 1;
            written.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    unreachable!()
}

/// What a node holds of one province: its sites and its statistics.
struct NodeView {
    sites: BTreeSet<SiteRow>,
    cells: Cells,
    log_sequence: u64,
}

async fn node_view(node: &TestNode, code: &str) -> NodeView {
    let mut c = node.registry_as(&TestNode::analyst()).await;
    let parent = province(code).to_string();
    let mut sites = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let r = c
            .list_sites(pb::ListSitesRequest {
                parent: parent.clone(),
                page_size: 1000,
                page_token: page_token.clone(),
                show_voided: true,
                ..Default::default()
            })
            .await
            .expect("list sites")
            .into_inner();
        for s in r.sites {
            assert!(sites.insert((s.name.clone(), s.kind, s.legal_status, s.voided)), "{} listed twice", s.name);
        }
        if r.next_page_token.is_empty() {
            break;
        }
        page_token = r.next_page_token;
    }
    let stats = c
        .get_statistics(pb::GetStatisticsRequest { jurisdiction: parent, ..Default::default() })
        .await
        .expect("statistics")
        .into_inner();
    let cells = stats.sites.into_iter().map(|s| ((s.kind, s.legal_status), s.count as i64)).collect();
    NodeView { sites, cells, log_sequence: stats.log_sequence }
}

/// Waits until every province is LIVE with its registry log applied exactly up to the node's
/// log head (and the inspection log, empty here, too).
async fn wait_live_at_heads(g: &mut GatewayProcess, secret: &str, nodes: &[TestNode], layout: &Layout) {
    let mut want = Vec::new();
    for (i, code) in layout.placed() {
        let registry = nodes[i].last_sequence(code).await;
        let inspection = nodes[i].log_sequence(code, "inspection").await;
        want.push((province(code).to_string(), registry, inspection));
    }
    let national = g.national(secret);
    let want = &want;
    wait_for(&mut g.child, &g.log, Duration::from_secs(60), "every province LIVE at its node's heads", || {
        let mut national = national.clone();
        async move {
            let status = national
                .get_replication_status(gw::GetReplicationStatusRequest {})
                .await
                .expect("replication status")
                .into_inner()
                .jurisdictions;
            let behind: Vec<String> = want
                .iter()
                .filter_map(|(j, registry, inspection)| {
                    let f = status.iter().find(|f| &f.jurisdiction == j);
                    let at = f.map(|f| (f.state(), f.registry_sequence, f.inspection_sequence));
                    (at != Some((gw::FreshnessState::Live, *registry, *inspection))).then(|| {
                        format!("{j}: want LIVE at {registry}/{inspection}, have {at:?} {:?}", f.map(|f| &f.detail))
                    })
                })
                .collect();
            if behind.is_empty() { Ok(()) } else { Err(behind.join("\n")) }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// What the gateway's store holds of `j`, read from its database after it stopped.
async fn stored(conn: &sea_orm::DatabaseConnection, j: &str) -> (BTreeSet<SiteRow>, usize, Cells, u64) {
    let b = conn.get_database_backend();
    let rows = conn
        .query_all_raw(einfo_common::db::stmt(
            b,
            "SELECT name, kind, legal_status, voided FROM gw_sites WHERE jurisdiction = $1",
            [j.into()],
        ))
        .await
        .expect("read gw_sites");
    let sites: BTreeSet<SiteRow> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
                r.try_get_by_index::<i32>(3).unwrap() != 0,
            )
        })
        .collect();
    let cells = conn
        .query_all_raw(einfo_common::db::stmt(
            b,
            "SELECT kind, legal_status, count FROM gw_summary WHERE jurisdiction = $1 AND count <> 0",
            [j.into()],
        ))
        .await
        .expect("read gw_summary")
        .iter()
        .map(|r| ((r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap()), r.try_get_by_index(2).unwrap()))
        .collect();
    let cursor = conn
        .query_one_raw(einfo_common::db::stmt(
            b,
            "SELECT seq FROM gw_cursors WHERE jurisdiction = $1 AND service = 'registry'",
            [j.into()],
        ))
        .await
        .expect("read gw_cursors")
        .map_or(0, |r| r.try_get_by_index::<i64>(0).unwrap() as u64);
    (sites, rows.len(), cells, cursor)
}

fn cells_of(cells: &[gw::SummaryCell]) -> Cells {
    cells.iter().map(|c| ((c.kind.clone(), c.legal_status), c.count)).collect()
}

async fn a_gateway_killed_mid_replication_resumes_without_duplicates_or_gaps(backend: Backend) {
    killed_mid_replication(backend, Layout::few()).await
}

/// The same with nodes hosting 21 provinces each (a gateway restarted with such a backlog once
/// stalled for hours).
async fn a_gateway_killed_mid_replication_over_nodes_of_21_provinces_resumes(backend: Backend) {
    killed_mid_replication(backend, Layout::many()).await
}

async fn killed_mid_replication(backend: Backend, layout: Layout) {
    let Some(store) = TestDb::new(backend).await else { return };
    let mut nodes = Vec::new();
    for codes in &layout.nodes {
        let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
        nodes.push(TestNode::start(Backend::Sqlite, &codes).await.expect("sqlite"));
    }
    let secret = nodes[0].settings.auth.secret.clone().expect("the test nodes' secret");
    let js: Vec<Jurisdiction> = layout.codes().map(province).collect();
    let entries: Vec<(Jurisdiction, String)> =
        layout.placed().map(|(i, c)| (province(c), format!("http://{}", nodes[i].addr))).collect();
    let directory = store.dir.join("directory.toml");
    std::fs::write(&directory, einfo_gateway::directory::render(&entries)).expect("write the directory");
    let url = (backend == Backend::Postgres).then(|| store.url.clone());
    let started = std::time::Instant::now();

    seed(&nodes, &layout, 0).await;
    let target = heads(&nodes, &layout).await;
    let seeded = started.elapsed();

    // A writer in a province of the first node and one of the last, for the whole run.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let (first, last) = (layout.nodes[0][0].clone(), layout.nodes[2].last().expect("a province").clone());
    let writers = vec![
        tokio::spawn(keep_writing(nodes[0].registry(&first).await, first.clone(), stop.clone(), written.clone())),
        tokio::spawn(keep_writing(nodes[2].registry(&last).await, last.clone(), stop.clone(), written.clone())),
    ];

    // First kill: in the middle of the first replication.
    let mut g = GatewayProcess::start(&store.dir, &directory, url.as_deref(), &secret).await;
    let first_target = target;
    let first_kill = kill_mid_replication(&mut g, &secret, &js, target, 0.3).await;

    // While it is down, the nodes take another round of sites; the second kill lands in
    // the middle of catching up on them.
    seed(&nodes, &layout, 1).await;
    let target = heads(&nodes, &layout).await;
    let mut g = GatewayProcess::start(&store.dir, &directory, url.as_deref(), &secret).await;
    let second_kill = kill_mid_replication(&mut g, &secret, &js, target, 0.6).await;

    let restarted = std::time::Instant::now();
    let mut g = GatewayProcess::start(&store.dir, &directory, url.as_deref(), &secret).await;
    // The writers go on while the restarted gateway catches up: WRITES_AFTER_RESTART more calls
    // (or a writer stopped, on an error its result reports).
    let at_restart = written.load(Ordering::SeqCst);
    eventually("the writers to write while the restarted gateway catches up", || async {
        let more = written.load(Ordering::SeqCst) - at_restart;
        (more >= WRITES_AFTER_RESTART || writers.iter().any(|w| w.is_finished())).then_some(())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut writes = 0;
    for w in writers {
        writes += w.await.expect("writer task").unwrap_or_else(|e| panic!("the writer failed: {e}"));
    }
    wait_live_at_heads(&mut g, &secret, &nodes, &layout).await;
    let caught_up = restarted.elapsed();

    // The nodes' own view, province by province.
    let mut views = BTreeMap::new();
    for (i, code) in layout.placed() {
        views.insert(province(code).to_string(), node_view(&nodes[i], code).await);
    }
    let mut national_total = Cells::new();
    for v in views.values() {
        for (k, n) in &v.cells {
            *national_total.entry(k.clone()).or_default() += n;
        }
    }

    // The gateway's summary, from memory: each province as its node counts it, the other
    // provinces empty, and the national total the sum over the nodes.
    let summary = g
        .national(&secret)
        .get_national_summary(gw::GetNationalSummaryRequest {
            options: Some(gw::QueryOptions {
                mode: gw::QueryMode::Partial as i32,
                grouping: gw::Grouping::Provinces63 as i32,
                max_staleness: None,
            }),
        })
        .await
        .expect("national summary")
        .into_inner();
    for u in &summary.units {
        let want = views.get(&u.unit).map(|v| v.cells.clone()).unwrap_or_default();
        assert_eq!(cells_of(&u.cells), want, "summary of {}", u.unit);
        assert_eq!(u.total, want.values().sum::<i64>(), "total of {}", u.unit);
    }
    assert_eq!(cells_of(&summary.totals), national_total, "national cells");
    assert_eq!(summary.total, national_total.values().sum::<i64>(), "national total");
    let log = g.log.clone();
    g.terminate().await;
    // A crash and a restart are routine: no integrity alarm, no error, in any of the three runs.
    let errors: Vec<String> =
        std::fs::read_to_string(&log).unwrap().lines().filter(|l| l.contains("ERROR")).map(str::to_owned).collect();
    assert!(errors.is_empty(), "the gateway logged errors:\n{}", errors.join("\n"));

    // The store itself, opened after the gateway stopped.
    let conn = sea_orm::Database::connect(match &url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}?mode=ro", store.dir.join("einfo.db").display()),
    })
    .await
    .expect("open the gateway's store");
    let mut stored_total = Cells::new();
    for (j, v) in &views {
        let (sites, rows, cells, cursor) = stored(&conn, j).await;
        assert_eq!(rows, v.sites.len(), "{j}: one row per site");
        let missing: Vec<_> = v.sites.difference(&sites).take(5).collect();
        let extra: Vec<_> = sites.difference(&v.sites).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{j}: missing from the store {missing:?}, not on the node {extra:?}"
        );
        assert_eq!(cells, v.cells, "{j}: gw_summary against the node's statistics");
        assert_eq!(cursor, v.log_sequence, "{j}: the cursor is the node's log head");
        for (k, n) in cells {
            *stored_total.entry(k).or_default() += n;
        }
    }
    let others = conn
        .query_one_raw(einfo_common::db::stmt(
            conn.get_database_backend(),
            &format!(
                "SELECT COUNT(*) FROM gw_sites WHERE jurisdiction NOT IN ({})",
                (1..=views.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
            ),
            views.keys().map(|j| j.clone().into()),
        ))
        .await
        .expect("count other sites")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(others, 0, "no site of a province the directory does not name");
    assert_eq!(stored_total, national_total, "gw_summary summed over the provinces");
    conn.close().await.expect("close the store");

    let sites: usize = views.values().map(|v| v.sites.len()).sum();
    eprintln!(
        "{backend:?}: {sites} sites; killed at {first_kill} of {first_target}, then at {second_kill} of \
         {target} applied entries; {writes} writes meanwhile; seeded in {seeded:?}, caught up {caught_up:?} after the last start; {:?} in all",
        started.elapsed()
    );
}

einfo_testkit::both_backends!(
    a_gateway_killed_mid_replication_resumes_without_duplicates_or_gaps,
    a_gateway_killed_mid_replication_over_nodes_of_21_provinces_resumes,
);
