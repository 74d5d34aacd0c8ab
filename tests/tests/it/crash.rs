//! A node killed with SIGKILL in the middle of a load keeps every write it acknowledged, and its
//! hash chains still verify: on SQLite (WAL, `synchronous=FULL`) and on PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_proto::registry::v1 as pb;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use einfo_testkit::process::{einfo, sigkill, site, start_on_free_port, tail, wait_for, wait_serving};
use einfo_testkit::{Backend, RegistryClient, TestDb, province};

const SECRET: &str = "einfo-crash-test-secret-0123456789-abcdefghij";
const WRITERS: usize = 8;
/// Writes acknowledged before the kill.
const LOAD: usize = 25 * WRITERS;

/// One `einfo serve node` child process.
struct NodeProcess {
    child: tokio::process::Child,
    addr: String,
    log: PathBuf,
}

impl NodeProcess {
    async fn start(dir: &Path, database_url: Option<&str>) -> Self {
        let log = dir.join("node.log");
        let command = |addr: &str| {
            let mut cmd = einfo();
            cmd.args(["serve", "node", "--insecure", "--provinces", "01", "--listen", addr, "--data-dir"])
                .arg(dir)
                .env("EINFO_AUTH__SECRET", SECRET);
            if let Some(url) = database_url {
                cmd.args(["--database-url", url]);
            }
            cmd
        };
        let (child, addr) =
            start_on_free_port(&log, command, async |child, addr| wait_serving(addr, child, &log).await).await;
        Self { child, addr, log }
    }

    async fn kill(&mut self) {
        sigkill(&mut self.child, "node").await;
    }

    async fn registry(&self) -> RegistryClient {
        let keys = TokenKeys::from_secret(SECRET.as_bytes()).expect("token keys");
        let caller = Caller { subject: "operator-01".into(), role: Role::Operator, jurisdiction: province("01") };
        let token = keys.issue(&caller, Duration::from_secs(3600)).expect("issue token");
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the node");
        RegistryServiceClient::with_interceptor(ch, BearerToken::new(&token).expect("bearer token"))
    }
}

/// What one writer saw: the sites it was told were registered, and the errors it got before the
/// node was killed (there should be none).
#[derive(Default)]
struct Seen {
    acknowledged: Vec<pb::Site>,
    early_errors: Vec<String>,
}

async fn a_node_killed_with_sigkill_mid_load_keeps_every_acknowledged_write(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let dir = db.dir.clone();
    let url = (backend == Backend::Postgres).then(|| db.url.clone());

    let mut node = NodeProcess::start(&dir, url.as_deref()).await;
    let killed = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client = node.registry().await;
        let killed = killed.clone();
        let seen = seen.clone();
        writers.push(tokio::spawn(async move {
            for i in 0u64.. {
                let req = pb::RegisterSiteRequest {
                    parent: "provinces/2008-01".into(),
                    site: Some(site(&format!("Trang {w}-{i}"), &format!("crash-{w}-{i}.vn"))),
                    request_id: format!("crash-{w}-{i}"),
                };
                match client.register_site(req.clone()).await {
                    Ok(r) => seen.lock().unwrap().acknowledged.push(r.into_inner()),
                    // In flight when the node died (or sent to a dead node): the client does
                    // not know whether it committed, and will retry it.
                    Err(_) if killed.load(Ordering::SeqCst) => return Some(req),
                    Err(e) => seen.lock().unwrap().early_errors.push(format!("writer {w}, call {i}: {e:?}")),
                }
            }
            None
        }));
    }

    // The kill lands in the middle of a steady load: once LOAD writes were acknowledged (how
    // long that takes depends on the machine, not on the test).
    let seen_ref = &seen;
    wait_for(&mut node.child, &node.log, Duration::from_secs(60), &format!("{LOAD} writes acknowledged"), || async {
        let acknowledged = seen_ref.lock().unwrap().acknowledged.len();
        if acknowledged >= LOAD { Ok(()) } else { Err(format!("{acknowledged} acknowledged")) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let before_kill = seen.lock().unwrap().acknowledged.len();
    killed.store(true, Ordering::SeqCst);
    node.kill().await;
    let mut unanswered = Vec::new();
    for w in writers {
        unanswered.extend(
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("every writer notices the dead node")
                .expect("writer task"),
        );
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.early_errors.is_empty(),
        "calls failed before the kill: {:#?}\nnode log:\n{}",
        seen.early_errors,
        tail(&node.log)
    );
    assert!(
        before_kill >= WRITERS,
        "the load acknowledged only {before_kill} writes before the kill; node log:\n{}",
        tail(&node.log)
    );

    // The same data directory (and database), a new process.
    let mut node = NodeProcess::start(&dir, url.as_deref()).await;
    let mut client = node.registry().await;
    for s in &seen.acknowledged {
        let got = client
            .get_site(pb::GetSiteRequest { name: s.name.clone() })
            .await
            .unwrap_or_else(|e| {
                panic!("acknowledged site {} ({}) is lost after the crash: {e:?}", s.name, s.display_name)
            })
            .into_inner();
        assert_eq!((&got.display_name, &got.domains, &got.etag), (&s.display_name, &s.domains, &s.etag), "{}", s.name);
    }
    // The calls the kill left unanswered, retried with the same request_id: each ends with
    // exactly one site, whether it had committed before the kill (a replay) or not.
    let mut retried = Vec::new();
    for req in &unanswered {
        let s = client
            .register_site(req.clone())
            .await
            .unwrap_or_else(|e| panic!("retry of {} after the crash: {e:?}", req.request_id))
            .into_inner();
        let again = client.register_site(req.clone()).await.expect("a second retry").into_inner();
        assert_eq!(again.name, s.name, "a retry returns the first answer");
        retried.push(s.name);
    }
    let mut names: Vec<&String> = seen.acknowledged.iter().map(|s| &s.name).chain(&retried).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), seen.acknowledged.len() + retried.len(), "one site per request");

    // Every site has its log entry and no entry exists without its site: the change and its
    // entry commit together, and nothing else was written.
    let mut listed = 0usize;
    let mut page_token = String::new();
    loop {
        let r = client
            .list_sites(pb::ListSitesRequest {
                parent: "provinces/2008-01".into(),
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("list sites")
            .into_inner();
        listed += r.sites.len();
        if r.next_page_token.is_empty() {
            break;
        }
        page_token = r.next_page_token;
    }
    assert_eq!(listed, names.len(), "the sites are exactly those of the acknowledged and retried requests");
    node.kill().await;

    let mut verify = einfo();
    verify.arg("verify");
    match &url {
        Some(u) => verify.args(["--database-url", u]),
        None => verify.arg("--data-dir").arg(&dir),
    };
    let out = verify.output().await.expect("run einfo verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "einfo verify failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" 0 broken"), "einfo verify said:\n{stdout}\n{stderr}");
    let entries: usize = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("ok")?
                .trim()
                .strip_prefix("provinces/2008-01/registry")?
                .trim()
                .strip_suffix(" entries")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no line for the registry log of 01 in:\n{stdout}"));
    assert_eq!(entries, listed, "one CREATE entry per surviving site");
    eprintln!(
        "{backend:?}: {} writes acknowledged ({before_kill} before the kill), {} retried, {listed} sites",
        seen.acknowledged.len(),
        retried.len()
    );
}

einfo_testkit::both_backends!(a_node_killed_with_sigkill_mid_load_keeps_every_acknowledged_write);
