//! The `einfo` binary's commands: `verify` on a tampered log, `token` against a node, a
//! misspelt configuration key, `up` with its gateway and `national summary`, a bad gateway
//! directory file, `serve reporting` alone beside another node; and the SQLite
//! settings a node opens its database with.

use std::time::Duration;

use einfo_app::node;
use einfo_common::auth::BearerToken;
use einfo_common::config::Settings;
use einfo_proto::registry::v1 as pb;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use einfo_testkit::process::{
    could_not_listen, einfo, free_port, log_file, site, start_on_free_port, terminate, wait_for, wait_serving,
};
use einfo_testkit::{Backend, FakeCentre, TestDb, TestNode, both_backends, eventually, fixtures};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

async fn register(c: &mut einfo_testkit::RegistryClient, i: usize) -> pb::Site {
    fixtures::register(c, "provinces/2008-01", site(&format!("Trang {i}"), &format!("trang{i}.vn"))).await
}

async fn run_verify(url: &str) -> (Option<i32>, String, String) {
    let out = einfo().args(["verify", "--database-url", url]).output().await.expect("run einfo verify");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn einfo_verify_reports_a_tampered_entry(backend: Backend) {
    let Some(mut node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    for i in 0..3 {
        register(&mut c, i).await;
    }
    drop(c);
    node.stop().await;

    let (code, stdout, stderr) = run_verify(&node.db.url).await;
    assert_eq!(code, Some(0), "an untouched log verifies:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("a node's store"), "{stdout}");
    assert!(stdout.contains("3 entries") && stdout.contains("0 broken"), "{stdout}");

    let conn = sea_orm::Database::connect(&node.db.url).await.expect("connect");
    let changed = conn
        .execute_raw(Statement::from_string(
            conn.get_database_backend(),
            "UPDATE change_log SET resource = resource || '-forged' WHERE seq = 2",
        ))
        .await
        .expect("tamper with entry 2");
    assert_eq!(changed.rows_affected(), 1);
    conn.close().await.expect("close");

    let (code, stdout, stderr) = run_verify(&node.db.url).await;
    assert_eq!(code, Some(1), "a tampered log fails verification:\n{stdout}\n{stderr}");
    assert!(stdout.contains("BROKEN") && stdout.contains("entry 2"), "verify names entry 2:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("entry 1:") && !stdout.contains("entry 3:"), "only the first bad entry:\n{stdout}");
    assert!(stdout.contains("1 broken"), "{stdout}");
}

/// The tables of the store at `url`.
async fn table_names(url: &str) -> Vec<String> {
    let conn = sea_orm::Database::connect(url).await.expect("connect");
    let names = einfo_app::verify::table_names(&conn).await.expect("the tables");
    conn.close().await.expect("close");
    names
}

/// `einfo verify` pointed at the gateway's store says so, verifies the centre's log, and
/// leaves the store as it was (it once ran the node's migrations on it); pointed at a data
/// directory with no store, it says so and creates nothing.
async fn einfo_verify_reads_the_gateway_store_without_migrating_it(backend: Backend) {
    let Some(mut g) = einfo_testkit::TestGateway::start(backend, &[]).await else { return };
    g.centre_admin()
        .create_campaign(einfo_proto::central::v1::CreateCampaignRequest {
            campaign: Some(einfo_testkit::fixtures::campaign_for(&["01"], &["sites_by_kind_status"])),
            request_id: "a-campaign".into(),
        })
        .await
        .expect("a campaign");
    g.stop().await;
    let before = table_names(&g.db.url).await;
    assert!(before.iter().any(|t| t == "gw_cursors") && !before.iter().any(|t| t == "reg_sites"), "{before:?}");

    let (code, stdout, stderr) = run_verify(&g.db.url).await;
    assert_eq!(code, Some(0), "the gateway's store verifies:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("the gateway's store"), "{stdout}");
    assert!(stdout.contains("ok      central/central") && stdout.contains("0 broken"), "{stdout}");
    assert_eq!(table_names(&g.db.url).await, before, "nothing migrated, nothing created");

    let empty = g.db.dir.join("no-store-here");
    std::fs::create_dir_all(&empty).expect("a directory");
    let out = einfo().args(["verify", "--data-dir"]).arg(&empty).output().await.expect("run einfo verify");
    assert!(!out.status.success(), "a directory without a store does not verify");
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!empty.join("einfo.db").exists(), "no database was created");
}

/// `einfo health` asks a server's plaintext health address: it fails while the node migrates
/// (NOT_SERVING) and where nothing listens, and succeeds once the node serves.
async fn einfo_health_succeeds_only_when_the_server_serves() {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let mut s = einfo_testkit::settings(&db, &["01"]);
    s.health_listen = Some("127.0.0.1:0".parse().expect("an address"));
    let (gate, held) = tokio::sync::oneshot::channel();
    let node =
        TestNode::start_on(db, s, einfo_app::node::Options { migration_gate: Some(held), ..Default::default() }).await;
    let addr = node.health_addr().expect("a health address").to_string();
    let run = |addr: String| async move {
        let out = einfo().args(["health", "--addr", &addr]).output().await.expect("run einfo health");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), said)
    };
    let (code, said) = run(addr.clone()).await;
    assert_eq!(code, Some(1), "migrating: {said}");
    assert!(said.contains("is NOT_SERVING"), "{said}");
    let _ = gate.send(());
    node.wait_serving().await;
    let (code, said) = run(addr).await;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("is SERVING"), "{said}");
    let (code, said) = run(format!("127.0.0.1:{}", free_port())).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("cannot reach the health address"), "{said}");
}

both_backends!(einfo_verify_reports_a_tampered_entry, einfo_verify_reads_the_gateway_store_without_migrating_it
    ; plain: sqlite_runs_with_synchronous_full_and_wal, einfo_health_succeeds_only_when_the_server_serves, einfo_token_prints_a_token_the_node_accepts, einfo_pki_makes_a_ca_and_certificates_naming_the_provinces, einfo_token_uses_the_configured_secret_file, a_misspelt_configuration_key_is_refused, einfo_up_starts_a_gateway_and_nodes_for_all_63_provinces_and_the_national_summary_follows_them, einfo_serve_gateway_refuses_a_bad_directory_file_naming_the_entry, einfo_serve_reporting_alone_compiles_figures_from_a_remote_registry
);

/// `einfo pki init` and `einfo pki issue`: the CA and a node's certificate naming the provinces it
/// hosts, keys readable by their owner only, nothing overwritten, the certificate verified against
/// the CA.
async fn einfo_pki_makes_a_ca_and_certificates_naming_the_provinces() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = TestDb::new(Backend::Sqlite).await.expect("a directory");
    let dir = db.dir.join("pki");
    let run = |args: Vec<String>| async move {
        let out = einfo().args(&args).output().await.expect("run einfo pki");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let d = dir.display().to_string();
    let (ok, out) = run(vec!["pki".into(), "init".into(), "--dir".into(), d.clone()]).await;
    assert!(ok && out.contains("certificate authority einfo centre CA"), "{out}");
    let (ok, out) = run(vec!["pki".into(), "init".into(), "--dir".into(), d.clone()]).await;
    assert!(!ok && out.contains("never overwritten"), "{out}");
    let issue = |name: &str, rest: &[&str]| {
        let mut a: Vec<String> =
            vec!["pki".into(), "issue".into(), "--dir".into(), d.clone(), "--name".into(), name.into()];
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    };
    let (ok, out) = run(issue("node-1", &["--provinces", "01,79", "--dns", "node-1.einfo.local"])).await;
    assert!(ok && out.contains("acting for provinces/2008-01, provinces/2008-79"), "{out}");
    let (ok, out) = run(issue("gateway", &["--central"])).await;
    assert!(ok && out.contains("acting for central"), "{out}");
    let (ok, out) = run(issue("nobody", &[])).await;
    assert!(!ok && out.contains("--provinces"), "{out}");
    let (ok, out) = run(issue("bad", &["--provinces", "99"])).await;
    assert!(!ok, "{out}");
    for key in ["ca.key", "node-1.key", "gateway.key"] {
        let mode = std::fs::metadata(dir.join(key)).expect("a key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let pem = |n: &str| std::fs::read_to_string(dir.join(n)).expect("a certificate");
    let ca = einfo_common::pki::der_of(&pem("ca.pem")).expect("the CA");
    let now = einfo_common::clock::Clock::now(&*einfo_common::clock::system());
    let id = einfo_common::pki::verify(&einfo_common::pki::der_of(&pem("node-1.pem")).unwrap(), &ca, now)
        .expect("issued by the CA");
    assert_eq!(id.acts_for, vec![einfo_testkit::province("01"), einfo_testkit::province("79")]);
}

async fn pragma(c: &impl ConnectionTrait, name: &str) -> sea_orm::QueryResult {
    c.query_one_raw(Statement::from_string(DbBackend::Sqlite, format!("PRAGMA {name}")))
        .await
        .expect("pragma")
        .expect("a row")
}

async fn sqlite_runs_with_synchronous_full_and_wal() {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let s = Settings { provinces: vec!["01".into()], data_dir: db.dir.join("node"), ..Default::default() };
    assert!(s.database_url.is_none(), "the node's own SQLite database under data_dir");
    let database = node::open_database(&s).await.expect("open the node's database");
    assert!(s.data_dir.join("einfo.db").exists(), "the database is created under data_dir");
    // Every pooled connection, not just the first: hold several at once.
    let mut txns = Vec::new();
    for _ in 0..4 {
        txns.push(database.conn().begin().await.expect("begin"));
    }
    for t in &txns {
        // 2 is FULL.
        assert_eq!(pragma(t, "synchronous").await.try_get_by_index::<i32>(0).unwrap(), 2);
        assert_eq!(pragma(t, "journal_mode").await.try_get_by_index::<String>(0).unwrap(), "wal");
        assert_eq!(pragma(t, "foreign_keys").await.try_get_by_index::<i32>(0).unwrap(), 1);
    }
    for t in txns {
        t.rollback().await.expect("rollback");
    }
    database.close().await.expect("close");
}

async fn einfo_token_prints_a_token_the_node_accepts() {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let data_dir = db.dir.join("node");
    // A data directory with no secret (a mistyped --data-dir, say) is refused, naming the file
    // and the setting, and no secret is made up in it.
    let out = einfo()
        .args(["token", "--jurisdiction", "provinces/2008-01", "--data-dir"])
        .arg(&data_dir)
        .output()
        .await
        .expect("run einfo token");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "einfo token without a secret succeeded: {stderr}");
    assert!(stderr.contains("token-secret") && stderr.contains("auth.secret_file"), "{stderr}");
    assert!(!data_dir.join("token-secret").exists(), "no secret was made up under the data dir");

    // With the secret in the data directory (where `einfo up` writes it) the token is signed with it.
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("token-secret"), "the-secret-of-this-node-that-is-long-enough-0123\n").unwrap();
    let out = einfo()
        .args(["token", "--jurisdiction", "provinces/2008-01", "--subject", "tester", "--data-dir"])
        .arg(&data_dir)
        .output()
        .await
        .expect("run einfo token");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "einfo token failed: {stderr}");
    let token = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    // A node on the same data dir and no configured secret: it reads {data_dir}/token-secret.
    let mut s = einfo_testkit::settings(&db, &["01", "79"]);
    s.auth.secret = None;
    s.data_dir = data_dir.clone();
    let node = TestNode::start_on(db, s, Default::default()).await;
    let ch = node.channel().await;
    let mut c = RegistryServiceClient::with_interceptor(ch.clone(), BearerToken::new(&token).expect("bearer"));
    let registered = register(&mut c, 1).await;
    assert!(registered.name.starts_with("provinces/2008-01/sites/"));

    // The log names the token's subject as the actor.
    let mut log = node.changelog().await;
    let mut entries = log
        .stream_changes(einfo_proto::log::v1::StreamChangesRequest {
            jurisdiction: "provinces/2008-01".into(),
            service: "registry".into(),
            ..Default::default()
        })
        .await
        .expect("stream changes")
        .into_inner();
    let first = einfo_testkit::fixtures::next_entry(&mut entries).await.expect("an entry").expect("one entry");
    assert_eq!(first.resource, registered.name);
    let actor = first.actor.expect("actor");
    assert_eq!((actor.subject.as_str(), actor.role.as_str()), ("tester", "operator"));

    // The token carries the jurisdiction it was issued for, and nothing else: the node hosts 79
    // too, but this operator may not write there.
    let err = c
        .register_site(pb::RegisterSiteRequest {
            parent: "provinces/2008-79".into(),
            site: Some(site("Trang HCM", "trang-hcm.vn")),
            request_id: "r79".into(),
        })
        .await
        .expect_err("another province");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    // A token signed with another secret is refused.
    let other = einfo_common::auth::TokenKeys::from_secret(b"another-secret-that-is-long-enough-0123456789")
        .unwrap()
        .issue(&TestNode::operator("01"), Duration::from_secs(60))
        .unwrap();
    let mut c = RegistryServiceClient::with_interceptor(ch, BearerToken::new(&other).expect("bearer"));
    let err = c.get_site(pb::GetSiteRequest { name: registered.name }).await.expect_err("foreign token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
}

async fn einfo_token_uses_the_configured_secret_file() {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let secret_file = db.dir.join("shared-secret");
    std::fs::write(&secret_file, "a-secret-in-a-file-that-is-long-enough-0123456789\n").unwrap();
    let config = db.dir.join("einfo.toml");
    std::fs::write(&config, format!("[auth]\nsecret_file = {:?}\n", secret_file.display().to_string())).unwrap();
    let out = einfo()
        .args(["token", "--jurisdiction", "provinces/2008-01", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(db.dir.join("elsewhere"))
        .output()
        .await
        .expect("run einfo token");
    assert!(out.status.success(), "einfo token failed: {}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut s = Settings::default();
    s.auth.secret_file = Some(secret_file);
    let keys = einfo_common::auth::TokenKeys::from_secret(&s.token_secret().unwrap()).unwrap();
    let caller = keys.verify(&token).expect("signed with the secret in the file");
    assert_eq!(caller.jurisdiction.to_string(), "provinces/2008-01");
    assert!(!db.dir.join("elsewhere").join("token-secret").exists(), "no secret generated beside the configured one");
}

async fn a_misspelt_configuration_key_is_refused() {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let config = db.dir.join("bad.toml");
    std::fs::write(&config, "sheme = \"2008\"\nprovinces = [\"01\"]\n").unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let run = einfo()
        .args(["serve", "node", "--insecure", "--listen", &listen, "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(db.dir.join("node"))
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("einfo refuses at once instead of serving")
        .expect("run einfo serve node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a misspelt key must not start a node: {stderr}");
    assert!(stderr.contains("sheme"), "the message names the key: {stderr}");
    assert!(!db.dir.join("node").exists(), "nothing was created: {stderr}");

    // The same from the environment.
    let out = einfo()
        .args(["serve", "node", "--insecure", "--provinces", "01", "--listen", &listen, "--data-dir"])
        .arg(db.dir.join("node"))
        .env("EINFO_SHEME", "2008")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out).await.expect("refused at once").expect("run einfo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a misspelt variable must not start a node: {stderr}");
    assert!(stderr.contains("sheme"), "the message names the key: {stderr}");
}

/// Runs `einfo national summary` against `einfo up`'s gateway; (exit code, stdout, stderr).
async fn national_summary(port: u16, data_dir: &std::path::Path) -> (Option<i32>, String, String) {
    let run = einfo()
        .args([
            "national",
            "summary",
            "--gateway",
            &format!("https://127.0.0.1:{port}"),
            "--mode",
            "strict",
            "--data-dir",
        ])
        .arg(data_dir)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("einfo national summary answers")
        .expect("run einfo national summary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The total column of the summary row that starts with `unit`.
fn row_total(summary: &str, unit: &str) -> Option<i64> {
    // A row ends with: total, operating, on trial.
    summary.lines().find(|l| l.split_whitespace().next() == Some(unit))?.split_whitespace().rev().nth(2)?.parse().ok()
}

/// Waits until `einfo up`'s gateway reports every one of the 63 provinces LIVE. `Err` with the
/// log when `up` exits first (e.g. a port was taken).
async fn wait_all_live(
    port: u16,
    data_dir: &std::path::Path,
    child: &mut tokio::process::Child,
    log: &std::path::Path,
) -> Result<(), String> {
    use einfo_proto::gateway::v1 as gw;
    // One client for every look, made once the gateway's certificate is there (written before
    // anything listens): one connection, not one per look, so the test takes no port `up` may want.
    let mut national = None;
    let pki = data_dir.join("pki");
    wait_for(child, log, Duration::from_secs(120), "the 63 provinces live", || {
        let read = |n: &str| std::fs::read_to_string(pki.join(n));
        if national.is_none()
            && let (Ok(key), Ok(cert), Ok(ca)) = (read("gateway.key"), read("gateway.pem"), read("ca.pem"))
        {
            let now = einfo_common::clock::Clock::now(&*einfo_common::clock::system());
            let issuer = einfo_common::auth::CertIssuer::new(&key, &cert, &ca, now)
                .unwrap_or_else(|e| panic!("the gateway's certificate einfo up wrote is unusable: {e}"));
            let token = issuer.issue(&TestNode::analyst(), Duration::from_secs(600)).expect("token");
            // Over mutual TLS, presenting the gateway's certificate.
            let tls = einfo_testkit::pki::transport(&pki, "gateway");
            let ch = tls
                .channel(&format!("https://127.0.0.1:{port}"), &[einfo_domain::Jurisdiction::Central], |e| e)
                .unwrap();
            national = Some(gw::national_service_client::NationalServiceClient::with_interceptor(
                ch,
                BearerToken::new(&token).expect("bearer"),
            ));
        }
        let national = national.clone();
        async move {
            let mut national = national.ok_or("no certificate of the gateway yet")?;
            let r = national.get_replication_status(gw::GetReplicationStatusRequest {}).await;
            let js = r.map_err(|e| format!("{e:?}"))?.into_inner().jurisdictions;
            let live = js.iter().filter(|f| f.state() == gw::FreshnessState::Live).count();
            if live == 63 && js.len() == 63 { Ok(()) } else { Err(format!("{live} of {} live", js.len())) }
        }
    })
    .await
}

/// `einfo up` starts the gateway and nodes hosting the 63 provinces; the gateway replicates them
/// all, `einfo national summary --mode strict` prints a complete table (63 rows and the national
/// row), a site registered at a node reaches it, and SIGTERM stops everything cleanly.
async fn einfo_up_starts_a_gateway_and_nodes_for_all_63_provinces_and_the_national_summary_follows_them() {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    // Twelve consecutive ports, free a moment ago, below the kernel's ephemeral range (32768 and
    // up), where the many outgoing connections of other tests take theirs; retry elsewhere if
    // another program took one (each try that fails does so within a second).
    let mut started = None;
    let mut base = 20_000 + fastrand::u16(..1000) * 12;
    for _ in 0..10 {
        let port = loop {
            let candidate = base;
            base = if base + 24 < 32_000 { base + 12 } else { 20_000 };
            if (0..12).all(|i| std::net::TcpListener::bind(("127.0.0.1", candidate + i)).is_ok()) {
                break candidate;
            }
        };
        let data_dir = db.dir.join(format!("up-{port}"));
        let stdout = db.dir.join(format!("up-{port}.out"));
        let log = db.dir.join(format!("up-{port}.log"));
        let (_, err) = log_file(&log);
        let mut child = einfo()
            .args(["up", "--seconds", "600", "--port", &port.to_string(), "--data-dir"])
            .arg(&data_dir)
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(err)
            .spawn()
            .expect("spawn einfo up");
        match wait_all_live(port, &data_dir, &mut child, &log).await {
            Ok(()) => {
                started = Some((child, port, data_dir, stdout, log));
                break;
            }
            Err(_) if could_not_listen(&log, 0) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    let (mut child, port, data_dir, stdout, log) = started.expect("einfo up could not find free ports");

    // It prints what it started once everything is live; its logs are in a file, and the
    // terminal shows no INFO line and no ERROR.
    let printed = eventually("einfo up says it is ready", || async {
        std::fs::read_to_string(&stdout).ok().filter(|p| p.contains("ready: 11 nodes host the 63 provinces"))
    })
    .await;
    assert!(printed.contains(&format!("gateway  127.0.0.1:{port}")), "{printed}");
    let terminal = std::fs::read_to_string(&log).expect("up's standard error");
    assert!(!terminal.contains(" INFO ") && !terminal.contains("ERROR"), "a quiet start:\n{terminal}");
    let logged = std::fs::read_to_string(data_dir.join("einfo-up.log")).expect("the log file");
    assert!(logged.contains(" INFO ") && logged.contains("gRPC server listening"), "{logged}");
    {
        // No shared secret: a CA, the gateway's and each node's key, readable by their owner only.
        use std::os::unix::fs::PermissionsExt as _;
        assert!(!data_dir.join("token-secret").exists(), "einfo up shares no secret");
        for key in ["ca.key", "gateway.key", "node-00.key"] {
            let mode = std::fs::metadata(data_dir.join("pki").join(key)).expect("a key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{key} is readable by its owner only");
        }
    }
    let nodes: Vec<(&str, Vec<&str>)> = printed
        .lines()
        .filter(|l| l.starts_with("node "))
        .map(|l| {
            let mut words = l.split_whitespace().skip(2);
            let addr = words.next().unwrap_or_default();
            (addr, l.rsplit("provinces ").next().unwrap_or("").split(',').collect())
        })
        .collect();
    let mut hosted: Vec<&str> = nodes.iter().flat_map(|(_, codes)| codes.iter().copied()).collect();
    hosted.sort();
    let all: Vec<String> = einfo_domain::Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect();
    let mut all: Vec<&str> = all.iter().map(String::as_str).collect();
    all.sort();
    assert_eq!(hosted, all, "every province is hosted exactly once:\n{printed}");
    assert!(nodes.len() >= 5, "several nodes: {printed}");

    let (code, summary, stderr) = national_summary(port, &data_dir).await;
    assert_eq!(code, Some(0), "a strict summary of a live federation answers:\n{summary}\n{stderr}");
    let rows = summary.lines().filter(|l| l.starts_with("provinces/2008-")).count();
    assert_eq!(rows, 63, "one row per province:\n{summary}");
    assert_eq!(row_total(&summary, "national"), Some(0), "an empty federation:\n{summary}");
    assert!(summary.contains("complete: every one of 63 jurisdictions is live"), "{summary}");
    // In plaintext the connection fails, and the command says the server may speak TLS.
    let out = einfo()
        .args(["national", "summary", "--gateway", &format!("http://127.0.0.1:{port}"), "--data-dir"])
        .arg(&data_dir)
        .output()
        .await
        .expect("run einfo national summary");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("may speak mutual TLS — use https://"), "{said}");

    // A site registered at the node hosting Hà Nội, with an operator token signed with that node's
    // key (`einfo token --data-dir` finds it), is replicated.
    let (node_addr, _) = nodes.iter().find(|(_, codes)| codes.contains(&"01")).expect("a node hosts 01");
    let out = einfo()
        .args(["token", "--jurisdiction", "provinces/2008-01", "--data-dir"])
        .arg(&data_dir)
        .output()
        .await
        .expect("run einfo token");
    assert!(out.status.success(), "einfo token failed: {}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    // Every hop is mutual TLS: in plaintext, or without a certificate of the federation's CA, the
    // node cannot be reached; with the certificate of the node acting for Hà Nội, it can.
    let url = format!("https://{node_addr}");
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{node_addr}")).unwrap().connect_lazy();
    let mut c = RegistryServiceClient::with_interceptor(plain, BearerToken::new(&token).expect("bearer"));
    let refused = c.get_site(pb::GetSiteRequest::default()).await.expect_err("a plaintext call to a TLS node fails");
    einfo_testkit::assert_not_connected(refused);
    let pki = data_dir.join("pki");
    let now = einfo_common::clock::Clock::now(&*einfo_common::clock::system());
    let holder = einfo_common::pki::holder_for(&pki, &einfo_testkit::province("01"), now)
        .expect("the federation's certificates")
        .expect("a node acts for 01");
    let ch =
        einfo_testkit::pki::transport(&pki, &holder).channel(&url, &[einfo_testkit::province("01")], |e| e).unwrap();
    let mut c = RegistryServiceClient::with_interceptor(ch, BearerToken::new(&token).expect("bearer"));
    register(&mut c, 1).await;
    let summary = eventually("the site in the national summary", || async {
        let (code, summary, stderr) = national_summary(port, &data_dir).await;
        assert_eq!(code, Some(0), "{summary}\n{stderr}");
        (row_total(&summary, "national") == Some(1)).then_some(summary)
    })
    .await;
    assert_eq!(row_total(&summary, "provinces/2008-01"), Some(1), "{summary}");
    assert!(summary.contains("complete: every one of 63 jurisdictions is live"), "{summary}");

    // The operator's command finds the node and a certificate acting for Hà Nội in up's data
    // directory; the site is counted nationally within seconds (JSON for scripts), 34 units under
    // the 2025 grouping.
    let out = einfo()
        .args(["site", "register", "--province", "01", "--name", "Tin tức Thủ đô", "--domain", "tintucthudo.vn"])
        .args(["--owner", "Công ty Thủ đô", "--tax-code", "0100109106", "--profile"])
        .arg(data_dir.join("no-profile.json"))
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .await
        .expect("run einfo site register");
    assert!(out.status.success(), "einfo site register: {}", String::from_utf8_lossy(&out.stderr));
    let summary_json = |grouping: &'static str| {
        let data_dir = data_dir.clone();
        async move {
            let out = einfo()
                .args(["national", "summary", "--json", "--grouping", grouping, "--gateway"])
                .arg(format!("https://127.0.0.1:{port}"))
                .arg("--data-dir")
                .arg(&data_dir)
                .output()
                .await
                .expect("run einfo national summary --json");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON")
        }
    };
    let json = eventually("the site registered from the terminal counted nationally", || async {
        let j = summary_json("63").await;
        (j["total"] == 2).then_some(j)
    })
    .await;
    assert_eq!(json["units"].as_array().unwrap().len(), 63);
    let hanoi = json["units"].as_array().unwrap().iter().find(|u| u["unit"] == "provinces/2008-01").unwrap().clone();
    assert_eq!(hanoi["total"], 2, "{hanoi}");
    assert_eq!(summary_json("34").await["units"].as_array().unwrap().len(), 34);
    // The centre's other questions from a terminal: every province live, a search across the
    // country without accents.
    let ask = |args: &'static [&'static str]| {
        let data_dir = data_dir.clone();
        async move {
            let out = einfo()
                .args(["national"])
                .args(args)
                .args(["--json", "--gateway"])
                .arg(format!("https://127.0.0.1:{port}"))
                .arg("--profile")
                .arg(data_dir.join("no-profile.json"))
                .arg("--data-dir")
                .arg(&data_dir)
                .output()
                .await
                .expect("run einfo national");
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON")
        }
    };
    let fresh = ask(&["freshness"]).await;
    assert_eq!(fresh.as_array().unwrap().len(), 63, "{fresh}");
    assert!(fresh.as_array().unwrap().iter().all(|f| f["state"] == "live"), "{fresh}");
    let found = ask(&["search", "--query", "tin tuc thu do"]).await;
    assert_eq!(found["sites"][0]["jurisdiction"], "provinces/2008-01", "{found}");
    assert_eq!(ask(&["conflicts"]).await, serde_json::json!([]));

    // SIGTERM stops the gateway and every node, and `up` exits cleanly long before --seconds.
    terminate(&mut child, &log, Duration::from_secs(30), "einfo up").await;
}

/// A directory file naming a jurisdiction that does not exist, or an endpoint that is not one,
/// stops `einfo serve gateway` at once with a message naming the entry.
async fn einfo_serve_gateway_refuses_a_bad_directory_file_naming_the_entry() {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let good = "\"provinces/2008-48\" = \"http://127.0.0.1:1\"";
    // (the bad entry, what the message must name, why it is bad)
    let cases = [
        ("\"provinces/2008-99\" = \"http://127.0.0.1:1\"", "provinces/2008-99", "no province 99 in the 2008 scheme"),
        ("\"provinces/2025-02\" = \"http://127.0.0.1:1\"", "provinces/2025-02", "Hà Giang merged away: no 02 in 2025"),
        ("\"hanoi\" = \"http://127.0.0.1:1\"", "hanoi", "not a jurisdiction name"),
        ("\"central\" = \"http://127.0.0.1:1\"", "central", "the centre is not a province"),
        ("\"provinces/2008-01\" = \"ftp://127.0.0.1:1\"", "provinces/2008-01", "not http or https"),
        ("\"provinces/2008-01\" = \"127.0.0.1:50051\"", "provinces/2008-01", "no scheme"),
        ("\"provinces/2008-01\" = \"http://\"", "provinces/2008-01", "no host"),
        ("\"provinces/2008-01\" = \"http://bad host:1\"", "provinces/2008-01", "a space in the host"),
    ];
    // The cases run at once: each child migrates a fresh store before it reads the file.
    let runs = cases.iter().enumerate().map(|(i, (entry, _, why))| {
        let file = db.dir.join(format!("directory-{i}.toml"));
        std::fs::write(&file, format!("[endpoints]\n{good}\n{entry}\n")).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let run = einfo()
            .args(["serve", "gateway", "--insecure", "--listen", &listen, "--directory"])
            .arg(&file)
            .arg("--data-dir")
            .arg(db.dir.join(format!("gateway-{i}")))
            .output();
        async move {
            tokio::time::timeout(Duration::from_secs(30), run)
                .await
                .unwrap_or_else(|_| panic!("{why}: einfo serves instead of refusing {entry}"))
                .expect("run einfo serve gateway")
        }
    });
    let outs = futures::future::join_all(runs).await;
    for ((entry, named, why), out) in cases.iter().zip(outs) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{why}: {entry} must not start a gateway: {stderr}");
        assert!(stderr.contains(named), "{why}: the message names {named}: {stderr}");
        assert!(!stderr.contains("provinces/2008-48"), "{why}: the good entry is not blamed: {stderr}");
    }
}

/// `einfo serve reporting` as a process of its own: it serves only the reporting service, takes
/// its campaign from the centre and compiles its figures from the registry and inspection of
/// another node.
async fn einfo_serve_reporting_alone_compiles_figures_from_a_remote_registry() {
    use einfo_proto::central::v1 as central;
    use einfo_proto::reporting::v1 as rep;
    use tonic_health::pb::health_check_response::ServingStatus;

    let centre = FakeCentre::start(Backend::Sqlite).await.expect("sqlite");
    let node = TestNode::start(Backend::Sqlite, &["01"]).await.expect("sqlite");
    let mut c = node.registry("01").await;
    register(&mut c, 1).await;
    let registry_sequence = node.last_sequence("01").await;

    let dir = node.db.dir.join("reporting");
    let log = node.db.dir.join("reporting.log");
    let own = format!("http://{}", node.addr);
    let command = |addr: &str| {
        let mut cmd = einfo();
        cmd.args(["serve", "reporting", "--insecure", "--provinces", "01", "--listen", addr, "--data-dir"])
            .arg(&dir)
            .env("EINFO_AUTH__SECRET", node.settings.auth.secret.clone().expect("test secret"))
            .env("EINFO_REPORTING__REGISTRY_ENDPOINT", &own)
            .env("EINFO_REPORTING__INSPECTION_ENDPOINT", &own)
            .env("EINFO_REPORTING__CENTRE_ENDPOINT", centre.url())
            .env("EINFO_REPORTING__FEED_INTERVAL_MS", "100");
        cmd
    };
    let (mut child, addr) =
        start_on_free_port(&log, command, async |child, addr| wait_serving(addr, child, &log).await).await;
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();

    // Health names the reporting service, and only it of the provincial services.
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let check = |service: &str| tonic_health::pb::HealthCheckRequest { service: service.into() };
    let status = health.check(check("einfo.reporting.v1.ReportingService")).await.expect("reporting is known");
    assert_eq!(status.into_inner().status, ServingStatus::Serving as i32);
    let err = health.check(check("einfo.registry.v1.RegistryService")).await.expect_err("no registry here");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // A campaign from the centre reaches it.
    let campaign = centre
        .admin()
        .create_campaign(central::CreateCampaignRequest {
            campaign: Some(fixtures::campaign_for(&["01"], &["sites_by_kind_status"])),
            request_id: "campaign-1".into(),
        })
        .await
        .expect("campaign created")
        .into_inner();
    let reporter = einfo_common::auth::Caller {
        subject: "reporter-01".into(),
        role: einfo_common::auth::Role::Reporter,
        jurisdiction: einfo_testkit::province("01"),
    };
    let reporting = rep::reporting_service_client::ReportingServiceClient::with_interceptor(
        ch,
        BearerToken::new(&node.token(&reporter)).expect("bearer"),
    );
    wait_for(&mut child, &log, Duration::from_secs(20), "the campaign held by reporting", || {
        let mut reporting = reporting.clone();
        let name = campaign.name.clone();
        async move {
            let r = reporting.list_campaigns(rep::ListCampaignsRequest { parent: "provinces/2008-01".into() }).await;
            let held = r.map_err(|e| format!("{e:?}"))?.into_inner().campaigns.iter().any(|c| c.name == name);
            if held { Ok(()) } else { Err("not yet".into()) }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut reporting = reporting;

    // Its figures come from the other node's registry, with that registry's log sequence.
    let compiled = reporting
        .compile_report(rep::CompileReportRequest {
            parent: "provinces/2008-01".into(),
            campaign: campaign.name.clone(),
            request_id: "compile-1".into(),
        })
        .await
        .expect("compiled")
        .into_inner();
    let values = compiled.report.and_then(|r| r.current).map(|v| v.values).unwrap_or_default();
    let figure = values
        .iter()
        .find(|v| v.indicator == "sites_by_kind_status" && v.dimension == "general-website/UNLICENSED")
        .unwrap_or_else(|| panic!("a figure for the registered site: {values:?}"));
    assert_eq!(figure.computed, 1);
    let provenance = figure.provenance.as_ref().expect("provenance");
    assert_eq!((provenance.service.as_str(), provenance.log_sequence), ("registry", registry_sequence));
}
