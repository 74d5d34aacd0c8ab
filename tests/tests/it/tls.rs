//! Mutual TLS on every hop: a node and the gateway serve only peers holding a certificate of the
//! centre's CA, a connection's certificate bounds the jurisdiction its calls may act for, the
//! gateway follows a province only from a node whose certificate acts for it, and a certificate
//! rotates without a restart.

use std::time::Duration;

use einfo_common::auth::{BearerToken, Caller};
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::log::v1 as logpb;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::fixtures::register_in;
use einfo_testkit::gateway::gateway_settings;
use einfo_testkit::pki::TestPki;
use einfo_testkit::process::{einfo, free_port};
use einfo_testkit::{Backend, TestDb, TestGateway, TestNode, eventually, province, site};
use tonic::transport::Channel;

/// A CA with a node for 01, a node for 79 and the centre's gateway.
fn pki(db: &TestDb) -> TestPki {
    TestPki::new(
        db.dir.join("pki"),
        &[
            ("node-01", vec![province("01")]),
            ("node-79", vec![province("79")]),
            ("gateway", vec![Jurisdiction::Central]),
        ],
    )
}

/// A node hosting `codes` over mutual TLS with the certificate of `holder`; the test's own
/// clients reach it presenting the centre's certificate (their tokens act for any jurisdiction).
async fn tls_node(pki: &TestPki, db: TestDb, codes: &[&str], holder: &str) -> TestNode {
    let mut s = einfo_testkit::settings(&db, codes);
    pki.tls(&mut s, holder);
    let mut node = TestNode::start_on(db, s, Default::default()).await;
    node.client_transport = pki.transport("gateway");
    node
}

/// A registry GetSite as `caller` over `channel`: `Ok` when a service answered (found or not),
/// the status otherwise.
async fn get_site(node: &TestNode, channel: Channel, caller: &Caller) -> Result<(), tonic::Status> {
    let token = BearerToken::new(&node.token(caller)).expect("bearer");
    let mut c = pb::registry_service_client::RegistryServiceClient::with_interceptor(channel, token);
    match c.get_site(pb::GetSiteRequest { name: format!("{}/sites/s-1", caller.jurisdiction) }).await {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(s),
    }
}

/// A channel to `url` with tonic's own TLS: the CA trusted, no client certificate presented.
fn without_certificate(pki: &TestPki, url: &str) -> Channel {
    let ca = std::fs::read_to_string(einfo_common::pki::paths(&pki.dir, "ca").0).expect("the CA");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .domain_name("localhost");
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect_lazy()
}

/// Only a client holding a certificate of the centre's CA connects: plaintext, no certificate, or
/// one of another CA never reaches a service; a certificate of the CA does.
async fn a_client_without_a_certificate_of_the_centres_ca_cannot_connect() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let pki = pki(&db);
    let other_dir = db.dir.join("other-ca");
    let other = TestPki::new(other_dir, &[("gateway", vec![Jurisdiction::Central])]);
    let node = tls_node(&pki, db, &["01"], "node-01").await;
    let operator = TestNode::operator("01");
    let url = node.url();
    assert!(url.starts_with("https://"), "{url}");

    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr)).expect("url").connect_lazy();
    einfo_testkit::assert_not_connected(get_site(&node, plain, &operator).await.expect_err("plaintext is refused"));
    einfo_testkit::assert_not_connected(
        get_site(&node, without_certificate(&pki, &url), &operator).await.expect_err("no certificate is refused"),
    );
    let foreign = other.transport("gateway").channel(&url, &[], |e| e).expect("channel");
    einfo_testkit::assert_not_connected(
        get_site(&node, foreign, &operator).await.expect_err("another CA's certificate is refused"),
    );

    let own = pki.transport("node-01").channel(&url, &[province("01")], |e| e).expect("channel");
    get_site(&node, own, &operator).await.expect("the node's own certificate, for its province");
}

/// The certificate of a connection bounds what its calls act for: with the certificate of the
/// node of 79, no token — of 01, nor of the centre — reads 01's log, nor writes 01's register;
/// with 01's certificate, 01's token does.
async fn a_node_certificate_for_another_province_cannot_stream_or_write_that_provinces_log() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let pki = pki(&db);
    let node = tls_node(&pki, db, &["01", "79"], "node-01").await;
    register_in(&node, "01", site("Trang Hà Nội", &["ha-noi-tls.vn"])).await;
    let head = node.last_sequence("01").await;
    let url = node.url();
    let as_79 = || pki.transport("node-79").channel(&url, &[], |e| e).expect("channel");
    let stream = |channel: Channel, caller: Caller| {
        let token = BearerToken::new(&node.token(&caller)).expect("bearer");
        async move {
            let mut c = logpb::change_log_service_client::ChangeLogServiceClient::with_interceptor(channel, token);
            let request = logpb::StreamChangesRequest {
                jurisdiction: "provinces/2008-01".into(),
                service: "registry".into(),
                ..Default::default()
            };
            match c.stream_changes(request).await {
                Ok(mut s) => s.get_mut().message().await.map(|m| m.is_some()),
                Err(e) => Err(e),
            }
        }
    };
    let operator_01 = TestNode::operator("01");
    let refused = stream(as_79(), operator_01.clone()).await.expect_err("79's certificate, 01's token");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("node-79"), "the message names the certificate: {}", refused.message());
    // The centre's gateway's token, which reads any log, under 79's certificate.
    let refused = stream(as_79(), TestNode::central_service()).await.expect_err("79's certificate, a central token");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("acts only for provinces/2008-79"), "{}", refused.message());
    let refused = stream(as_79(), TestNode::operator("79")).await.expect_err("79's certificate and token, 01's log");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // A write under 79's certificate with 01's token changes nothing.
    let token = BearerToken::new(&node.token(&TestNode::operator("01"))).expect("bearer");
    let mut c = pb::registry_service_client::RegistryServiceClient::with_interceptor(as_79(), token);
    let refused = c
        .register_site(pb::RegisterSiteRequest {
            parent: "provinces/2008-01".into(),
            site: Some(site("Trang giả", &["gia-mao.vn"])),
            request_id: "tls-impostor-1".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert_eq!(node.last_sequence("01").await, head, "the log of 01 is unchanged");

    let as_01 = pki.transport("node-01").channel(&url, &[], |e| e).expect("channel");
    assert!(stream(as_01, operator_01).await.expect("01's certificate and token read 01's log"), "an entry");
}

/// The gateway follows a province over mutual TLS, and only from a node whose certificate acts
/// for it: a node holding 01's certificate that claims to host 79 is refused, and the province
/// says why.
async fn the_gateway_follows_a_province_only_from_a_node_whose_certificate_acts_for_it() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let Some(impostor_db) = TestDb::new(Backend::Sqlite).await else { return };
    let Some(gateway_db) = TestDb::new(Backend::Sqlite).await else { return };
    let pki = pki(&db);
    let node = tls_node(&pki, db, &["01"], "node-01").await;
    let impostor = tls_node(&pki, impostor_db, &["79"], "node-01").await;
    register_in(&node, "01", site("Trang Hà Nội", &["ha-noi-tls.vn"])).await;
    register_in(&impostor, "79", site("Trang giả", &["gia-mao-79.vn"])).await;

    let mut gs = gateway_settings(&gateway_db);
    pki.tls(&mut gs, "gateway");
    let directory = [(province("01"), node.url()), (province("79"), impostor.url())];
    let g = TestGateway::start_with(gateway_db, gs, &directory).await;
    assert!(g.url().starts_with("https://"), "{}", g.url());
    g.wait_caught_up_on(&node, &["01"]).await;
    let detail = eventually("79 refused, with the reason", || async {
        let status = g.status().await;
        let f = status.iter().find(|f| f.jurisdiction == "provinces/2008-79")?;
        (f.detail.contains("does not act for provinces/2008-79"))
            .then(|| (f.state(), f.registry_sequence, f.detail.clone()))
    })
    .await;
    assert_ne!(detail.0, gw::FreshnessState::Live, "{detail:?}");
    assert_eq!(detail.1, 0, "nothing of 79 was taken: {detail:?}");

    // A plaintext endpoint is refused by a gateway that speaks TLS, and changes nothing.
    let refused = g
        .directory()
        .set_endpoint(gw::SetEndpointRequest {
            entry: Some(gw::DirectoryEntry {
                jurisdiction: "provinces/2008-01".into(),
                endpoint: format!("http://{}", node.addr),
            }),
        })
        .await
        .expect_err("http:// under mutual TLS");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("entry.endpoint") && refused.message().contains("https://"), "{refused:?}");
    let entries = g.directory().list_endpoints(gw::ListEndpointsRequest {}).await.expect("list").into_inner();
    let held = entries.entries.iter().find(|e| e.jurisdiction == "provinces/2008-01").expect("01's entry");
    assert_eq!(held.endpoint, node.url());
}

/// A certificate is re-read from its files while the node serves: a rotated certificate is
/// presented to the next connection, and files that do not make an identity are refused with the
/// last good one kept.
async fn a_certificate_rotates_without_a_restart() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let pki = pki(&db);
    let mut s = einfo_testkit::settings(&db, &["01"]);
    pki.tls(&mut s, "node-01");
    let node = TestNode::start_on(db, s, Default::default()).await;
    let served = node.served_transport();
    let einfo_common::tls::Transport::Tls(tls) = served else { panic!("the node serves TLS") };
    let url = node.url();
    let client = pki.transport("gateway");
    let expecting_79 = || client.channel(&url, &[province("79")], |e| e).expect("channel");
    let health = |ch: Channel| async move {
        tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await
    };
    let refused = health(expecting_79()).await.expect_err("the certificate acts for 01 only");
    assert!(format!("{refused:?}").contains("does not act for provinces/2008-79"), "{refused:?}");

    // Nothing changed: nothing reloaded.
    assert!(!tls.reload().expect("the same files"), "unchanged files are not reloaded");
    let serial = pki.reissue("node-01", &[province("01"), province("79")]);
    assert!(tls.reload().expect("the new files make an identity"), "reloaded");
    assert_eq!(tls.identity().serial, serial);
    health(expecting_79()).await.expect("the next connection is given the new certificate");

    // A key that is not the certificate's: refused, the last good identity kept.
    let (_, key) = einfo_common::pki::paths(&pki.dir, "node-01");
    let (_, other_key) = einfo_common::pki::paths(&pki.dir, "node-79");
    std::fs::copy(&other_key, &key).expect("overwrite the key");
    let e = tls.reload().expect_err("a key of another certificate");
    assert!(format!("{e:#}").contains("not the certificate's"), "{e:#}");
    assert_eq!(tls.identity().serial, serial, "the last good identity is kept");
    health(expecting_79()).await.expect("still served");
}

/// Without a certificate a server does not start unless told `--insecure`, which it says in a
/// warning.
async fn a_server_without_a_certificate_starts_only_when_told_insecure_and_says_so() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let listen = format!("127.0.0.1:{}", free_port());
    let run = einfo()
        .args(["serve", "node", "--provinces", "01", "--listen", &listen, "--data-dir"])
        .arg(db.dir.join("refused"))
        .env("EINFO_AUTH__SECRET", "einfo-test-secret-that-is-long-enough-0123456789")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run).await.expect("refused at once").expect("run einfo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "no certificate and no --insecure must not serve: {stderr}");
    assert!(stderr.contains("no TLS identity") && stderr.contains("--insecure"), "{stderr}");

    let log = db.dir.join("insecure.log");
    let (mut child, _addr) = einfo_testkit::process::start_on_free_port(
        &log,
        |addr| {
            let mut c = einfo();
            c.args(["serve", "node", "--insecure", "--provinces", "01", "--listen", addr, "--data-dir"])
                .arg(db.dir.join("insecure"))
                .env("EINFO_AUTH__SECRET", "einfo-test-secret-that-is-long-enough-0123456789");
            c
        },
        async |child, addr| einfo_testkit::process::wait_serving(addr, child, &log).await,
    )
    .await;
    let text = std::fs::read_to_string(&log).expect("the log");
    assert!(text.contains("WARN") && text.contains("PLAINTEXT (--insecure)"), "{text}");
    einfo_testkit::process::terminate(&mut child, &log, Duration::from_secs(30), "einfo serve node").await;
}

einfo_testkit::plain_tests!(
    a_client_without_a_certificate_of_the_centres_ca_cannot_connect,
    a_node_certificate_for_another_province_cannot_stream_or_write_that_provinces_log,
    the_gateway_follows_a_province_only_from_a_node_whose_certificate_acts_for_it,
    a_certificate_rotates_without_a_restart,
    a_server_without_a_certificate_starts_only_when_told_insecure_and_says_so,
);
