//! Roles per method (issue 13, point 2): every RPC of every service, called with every role a
//! token can name, for its own province and for another, and with no token, an expired one, an
//! over-long one and one signed with another secret. The outcome is the one `authz::POLICY`
//! declares: a role not allowed is refused with `PERMISSION_DENIED` / `ROLE_NOT_ALLOWED` before
//! any handler runs; an allowed role is never refused for its role and never succeeds for another
//! province; a call without a valid token is `UNAUTHENTICATED`, with `ErrorInfo`. Nothing moves
//! any log. The registry's rows are also checked against a literal list, so that a change of the
//! table shows in review.

use std::time::Duration;

use einfo_common::auth::{Caller, Role, TokenKeys};
use einfo_common::authz::{POLICY, TOKEN_ROLES, roles_of};
use einfo_common::error::{Reason, reason_of};
use einfo_domain::Jurisdiction;
use einfo_testkit::gateway::gateway_settings;
use einfo_testkit::pki::TestPki;
use einfo_testkit::{Backend, TestDb, TestGateway, TestNode, both_backends, province};
use tonic::Code;

use crate::fuzz_requests::call;

/// The registry's rows, as reviewed: method, then the roles allowed.
const REGISTRY: &str = "\
RegisterSite operator
GetSite operator inspector reporter service central-admin central-analyst
ListSites operator inspector reporter service central-admin central-analyst
UpdateSite operator
CorrectSite operator
VoidSite operator
AddSiteRecord operator
SubmitApplication operator
GetApplication operator inspector reporter service central-admin central-analyst
ListApplications operator inspector reporter service central-admin central-analyst
RequestSupplement operator
ReceiveSupplement operator
ApproveApplication operator
RejectApplication operator
GetLicence operator inspector reporter service central-admin central-analyst
ListLicences operator inspector reporter service central-admin central-analyst
AmendLicence operator
RenewLicence operator
SuspendLicence operator
RevokeLicence operator
ApplySanction service
ImportSites operator
GetStatistics operator inspector reporter service central-admin central-analyst
ListSiteKinds operator inspector reporter service central-admin central-analyst
ListSitesAsOf operator inspector reporter service central-admin central-analyst
";

/// Methods that name no jurisdiction: any allowed role may succeed whatever province it is of.
const ANY_PROVINCE: &[&str] = &["ListSiteKinds", "ListCatalogue", "ListAgencies", "GetPublicKey"];

async fn registry_rows_are_the_reviewed_ones() {
    let rows: String = POLICY
        .iter()
        .filter(|p| p.method.starts_with("/einfo.registry."))
        .map(|p| {
            let name = p.method.rsplit('/').next().unwrap_or_default();
            let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
            format!("{name} {}\n", roles.join(" "))
        })
        .collect();
    assert_eq!(rows, REGISTRY);
}

/// A body whose first field is the string `s` (most requests' first field is a parent, a name or a
/// jurisdiction).
fn naming(s: &str) -> Vec<u8> {
    let mut out = vec![0x0a, s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

async fn heads(node: &TestNode) -> Vec<u64> {
    let mut out = Vec::new();
    for code in ["01", "79"] {
        for service in ["registry", "inspection", "reporting"] {
            out.push(node.log_sequence(code, service).await);
        }
    }
    out
}

async fn every_method_answers_every_role_as_the_table_says(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    let Some(db) = TestDb::new(backend).await else { return };
    let s = gateway_settings(&db);
    let g = TestGateway::start_with(db, s, &[]).await;
    let secret = node.settings.auth.secret.clone().expect("the test secret");
    let keys = TokenKeys::from_secret(secret.as_bytes()).expect("keys");
    let node_channel = node.channel().await;
    let gateway_channel = tonic::transport::Endpoint::from_shared(g.url()).expect("url").connect_lazy();
    let before = heads(&node).await;
    let (own, other) = (province("01"), province("79"));
    let mut calls = 0;
    let mut refused_by_role = 0;

    for policy in POLICY {
        let method = policy.method;
        let name = method.rsplit('/').next().unwrap_or_default();
        let channel = if method.starts_with("/einfo.central.") || method.starts_with("/einfo.gateway.") {
            gateway_channel.clone()
        } else {
            node_channel.clone()
        };
        for role in TOKEN_ROLES {
            // A province's roles act for 01 and name 01 (own) or 79 (another province); central
            // roles name 01.
            let caller_j = if role.is_central() { Jurisdiction::Central } else { own };
            let targets: &[Jurisdiction] = if role.is_central() { &[own] } else { &[own, other] };
            for &target in targets {
                let j = caller_j;
                let caller = Caller { subject: format!("matrix-{role}"), role, jurisdiction: j };
                let token = keys.issue(&caller, Duration::from_secs(600)).expect("token");
                let got =
                    call(channel.clone(), method, Some(&token), naming(&target.to_string()), Duration::from_secs(1))
                        .await;
                calls += 1;
                let roles = roles_of(method).expect("declared");
                let allowed = roles.is_empty() || roles.contains(&role);
                match (&got, allowed) {
                    (Err(s), false) => {
                        assert_eq!(
                            (s.code(), reason_of(s)),
                            (Code::PermissionDenied, Some(Reason::RoleNotAllowed)),
                            "{name} as {role} of {j} on {target}: {s:?}"
                        );
                        assert!(s.message().contains(&format!("role {role} may not call {name}")), "{}", s.message());
                        refused_by_role += 1;
                    }
                    (Ok(()), false) => {
                        panic!("{name} as {role} of {j} on {target} passed; the table does not allow it")
                    }
                    (Err(s), true) => {
                        assert_ne!(
                            reason_of(s),
                            Some(Reason::RoleNotAllowed),
                            "{name} as {role} of {j} on {target}: {s:?}"
                        );
                        assert_ne!(s.code(), Code::Unauthenticated, "{name} as {role} of {j} on {target}: {s:?}");
                        assert!(
                            !matches!(s.code(), Code::Internal | Code::Unknown | Code::Unimplemented),
                            "{name} as {role} of {j} on {target}: {s:?}"
                        );
                    }
                    (Ok(()), true) => {
                        assert!(
                            target == own || ANY_PROVINCE.contains(&name),
                            "{name} as {role} of {j} on {target} succeeded on the records of {target}"
                        );
                    }
                }
            }
        }

        // Without a valid token, every method is refused before its handler.
        let analyst = Caller { subject: "m".into(), role: Role::CentralAnalyst, jurisdiction: Jurisdiction::Central };
        // Tokens are checked against the system clock (jsonwebtoken).
        let now = einfo_common::clock::Clock::now(&*einfo_common::clock::system()).timestamp() as u64;
        let expired = keys.issue_between(&analyst, now - 120, now - 60).expect("an expired token");
        let too_long = keys.issue_between(&analyst, now, now + 13 * 3600).expect("an over-long token");
        let foreign = TokenKeys::from_secret(b"another-secret-that-is-long-enough-0123456789")
            .expect("keys")
            .issue(&analyst, Duration::from_secs(600))
            .expect("token");
        for (what, token) in
            [("no token", None), ("expired", Some(&expired)), ("13 h", Some(&too_long)), ("foreign", Some(&foreign))]
        {
            let got = call(
                channel.clone(),
                method,
                token.map(String::as_str),
                naming("provinces/2008-01"),
                Duration::from_secs(1),
            )
            .await;
            calls += 1;
            if roles_of(method).expect("declared").is_empty() && token.is_none() {
                // Public: the handler judges the body (sign-in refuses one naming no jurisdiction).
                if let Err(s) = got {
                    assert_eq!(s.code(), Code::InvalidArgument, "{name} is public: {s:?}");
                }
                continue;
            }
            let s = got.expect_err(&format!("{name} with {what}"));
            assert_eq!(
                (s.code(), reason_of(&s)),
                (Code::Unauthenticated, Some(Reason::Unauthenticated)),
                "{name} with {what}: {s:?}"
            );
        }
    }
    assert_eq!(heads(&node).await, before, "no call of the matrix changed a log");
    println!("{calls} calls, {refused_by_role} refused for the role");
    assert!(refused_by_role > 200, "{refused_by_role}");
}

/// A node that trusts the centre's CA (`auth.ca_file`) takes tokens signed by a certificate
/// holder (minted with `einfo token --holder`) for the provinces the certificate names, still
/// checks the role per method, and refuses a holder of another CA; a node that trusts no CA
/// refuses such tokens, saying so.
async fn a_node_trusting_the_ca_takes_tokens_of_its_holders_for_their_provinces() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let dir = db.dir.join("pki");
    let other_dir = db.dir.join("other-pki");
    for d in [&dir, &other_dir] {
        TestPki::new(d.clone(), &[("so-01", vec![province("01")])]);
    }
    let mut s = einfo_testkit::settings(&db, &["01", "79"]);
    s.auth.ca_file = Some(dir.join("ca.pem"));
    let node = TestNode::start_on(db, s.clone(), Default::default()).await;
    let untrusting = TestNode::start(Backend::Sqlite, &["01"]).await.expect("a node");

    let mint = |pki_dir: std::path::PathBuf, role: &str, jurisdiction: &str| {
        let (role, jurisdiction) = (role.to_owned(), jurisdiction.to_owned());
        async move {
            let out = einfo_testkit::process::einfo()
                .args(["token", "--holder", "so-01", "--role", &role, "--jurisdiction", &jurisdiction])
                .arg("--pki-dir")
                .arg(&pki_dir)
                .output()
                .await
                .expect("run einfo token");
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (
                out.status.success(),
                if text.is_empty() { String::from_utf8_lossy(&out.stderr).into_owned() } else { text },
            )
        }
    };
    async fn list(node: &TestNode, token: String) -> Result<(), tonic::Status> {
        let mut c = einfo_proto::registry::v1::registry_service_client::RegistryServiceClient::with_interceptor(
            node.channel().await,
            einfo_common::auth::BearerToken::new(&token).expect("bearer"),
        );
        c.list_sites(einfo_proto::registry::v1::ListSitesRequest {
            parent: "provinces/2008-01".into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
    }

    let (ok, operator) = mint(dir.clone(), "operator", "provinces/2008-01").await;
    assert!(ok, "{operator}");
    list(&node, operator.clone()).await.expect("the holder's token for its own province");
    let (ok, out) = mint(dir.clone(), "operator", "provinces/2008-79").await;
    assert!(!ok && out.contains("signs only for provinces/2008-01"), "{out}");
    let (ok, out) = mint(dir.clone(), "central-admin", "central").await;
    assert!(!ok && out.contains("signs only for provinces/2008-01"), "{out}");

    // The role per method still holds for a holder's token.
    let (_, inspector) = mint(dir.clone(), "inspector", "provinces/2008-01").await;
    let channel = node.channel().await;
    let mut c = einfo_proto::registry::v1::registry_service_client::RegistryServiceClient::with_interceptor(
        channel,
        einfo_common::auth::BearerToken::new(&inspector).expect("bearer"),
    );
    let e = c
        .register_site(einfo_proto::registry::v1::RegisterSiteRequest {
            parent: "provinces/2008-01".into(),
            ..Default::default()
        })
        .await
        .expect_err("an inspector does not register sites");
    assert_eq!(reason_of(&e), Some(Reason::RoleNotAllowed));

    // A holder of another CA, and a node that trusts no CA.
    let (_, foreign) = mint(other_dir.clone(), "operator", "provinces/2008-01").await;
    let e = list(&node, foreign).await.expect_err("another CA's holder");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("not issued by the centre's CA"), "{}", e.message());
    let e = list(&untrusting, operator).await.expect_err("a node that trusts no CA");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("trusts no CA (auth.ca_file)"), "{}", e.message());
}

/// A federation with no shared secret: a node holding a certificate for 01 and the gateway one for
/// the centre sign their own calls with their keys (the gateway replicating the node as a central
/// analyst, the node following the centre's feed as a service of 01), take the tokens of the CA's
/// holders, and refuse a shared-secret token; every hop is mutual TLS, and a revoked certificate's
/// connection is refused whoever signed its token.
async fn a_federation_without_a_shared_secret_replicates_and_follows_the_centre() {
    use einfo_proto::central::v1 as central;
    use einfo_proto::gateway::v1 as gw;
    use einfo_proto::reporting::v1 as rep;
    let Some(node_db) = TestDb::new(Backend::Sqlite).await else { return };
    let Some(gateway_db) = TestDb::new(Backend::Sqlite).await else { return };
    let pki = TestPki::new(
        node_db.dir.join("pki"),
        &[("node-1", vec![province("01")]), ("gateway", vec![Jurisdiction::Central])],
    );
    let token = |issuer: &einfo_common::auth::CertIssuer, role: Role, j: Jurisdiction| {
        let t = issuer.issue(&Caller { subject: format!("t-{role}"), role, jurisdiction: j }, Duration::from_secs(600));
        einfo_common::auth::BearerToken::new(&t.expect("a token")).expect("bearer")
    };

    let node_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let node_addr = node_listener.local_addr().expect("addr");
    // Over mutual TLS, as a deployment runs.
    let mut gs = gateway_settings(&gateway_db);
    pki.holder(&mut gs, "gateway");
    gs.tls.insecure = false;
    let file = gateway_db.dir.join("directory.toml");
    std::fs::write(&file, einfo_gateway::directory::render(&[(province("01"), format!("https://{node_addr}"))]))
        .expect("directory");
    gs.gateway.directory_file = Some(file);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway = einfo_app::gateway::start_with_clock(&gs, listener, einfo_common::clock::system())
        .await
        .expect("a gateway without a shared secret");
    let gateway_url = format!("https://{}", gateway.addr);

    let mut ns = einfo_testkit::settings(&node_db, &["01"]);
    pki.holder(&mut ns, "node-1");
    ns.tls.insecure = false;
    ns.reporting.centre_endpoint = Some(gateway_url.clone());
    ns.reporting.feed_interval_ms = 100;
    let node = einfo_app::node::start(&ns, einfo_app::node::Role::Node, node_listener, Default::default())
        .await
        .expect("a node without a shared secret");
    let node_url = format!("https://{node_addr}");
    let (as_node, as_centre) = (pki.transport("node-1"), pki.transport("gateway"));
    einfo_testkit::wait_serving_on(&as_node, &node_url, "node").await;
    let node_channel = as_node.channel(&node_url, &[province("01")], |e| e).expect("url");
    let gateway_channel = as_centre.channel(&gateway_url, &[Jurisdiction::Central], |e| e).expect("url");
    let (node_issuer, centre_issuer) = (pki.issuer("node-1"), pki.issuer("gateway"));

    // A site registered with the node's own token reaches the gateway, which replicates as itself.
    let mut r = einfo_proto::registry::v1::registry_service_client::RegistryServiceClient::with_interceptor(
        node_channel.clone(),
        token(&node_issuer, Role::Operator, province("01")),
    );
    einfo_testkit::fixtures::register(
        &mut r,
        "provinces/2008-01",
        einfo_testkit::site("Trang không bí mật", &["khong-bi-mat.vn"]),
    )
    .await;
    let mut national = gw::national_service_client::NationalServiceClient::with_interceptor(
        gateway_channel.clone(),
        token(&centre_issuer, Role::CentralAnalyst, Jurisdiction::Central),
    );
    einfo_testkit::eventually("the gateway LIVE with the site", || {
        let mut national = national.clone();
        async move {
            let s = national.get_replication_status(gw::GetReplicationStatusRequest {}).await.ok()?.into_inner();
            let f = s.jurisdictions.into_iter().find(|f| f.jurisdiction == "provinces/2008-01")?;
            (f.state() == gw::FreshnessState::Live && f.registry_sequence == 1).then_some(())
        }
    })
    .await;
    let _ = &mut national;

    // A campaign of the centre reaches the node, which follows the feed as a service of 01.
    let mut centre = central::central_service_client::CentralServiceClient::with_interceptor(
        gateway_channel.clone(),
        token(&centre_issuer, Role::CentralAdmin, Jurisdiction::Central),
    );
    let campaign = centre
        .create_campaign(central::CreateCampaignRequest {
            campaign: Some(einfo_testkit::fixtures::campaign_for(&["01"], &["sites_by_kind_status"])),
            request_id: "no-secret".into(),
        })
        .await
        .expect("a campaign")
        .into_inner();
    let reporting = rep::reporting_service_client::ReportingServiceClient::with_interceptor(
        node_channel.clone(),
        token(&node_issuer, Role::Reporter, province("01")),
    );
    einfo_testkit::eventually("the campaign reaches the node", || {
        let mut reporting = reporting.clone();
        let name = campaign.name.clone();
        async move {
            let got = reporting
                .list_campaigns(rep::ListCampaignsRequest { parent: "provinces/2008-01".into() })
                .await
                .ok()?
                .into_inner();
            got.campaigns.iter().any(|c| c.name == name).then_some(())
        }
    })
    .await;

    // The test secret signs nothing here.
    let secret = einfo_testkit::settings(&node_db, &["01"]).auth.secret.expect("the test secret");
    let hs = TokenKeys::from_secret(secret.as_bytes())
        .expect("keys")
        .issue(&TestNode::operator("01"), Duration::from_secs(60));
    let mut r = einfo_proto::registry::v1::registry_service_client::RegistryServiceClient::with_interceptor(
        node_channel.clone(),
        einfo_common::auth::BearerToken::new(&hs.expect("a token")).expect("bearer"),
    );
    let e = r
        .list_sites(einfo_proto::registry::v1::ListSitesRequest {
            parent: "provinces/2008-01".into(),
            ..Default::default()
        })
        .await
        .expect_err("no shared secret here");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("takes only tokens signed by holders of the centre's CA"), "{}", e.message());

    // The node's certificate revoked and published: the centre refuses its tokens at once, the
    // node as soon as the feed brings the list.
    let out = einfo_testkit::process::einfo()
        .args(["pki", "revoke", "--name", "node-1", "--publish", &format!("https://{}", gateway.addr), "--dir"])
        .arg(&pki.dir)
        .output()
        .await
        .expect("run einfo pki revoke");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("published as reference data revoked-certificates"), "{said}");
    let mut entries = gw::entry_service_client::EntryServiceClient::with_interceptor(
        gateway_channel,
        token(&node_issuer, Role::Operator, province("01")),
    );
    let e = entries
        .get_entries(gw::GetEntriesRequest {
            jurisdiction: "provinces/2008-01".into(),
            service: "registry".into(),
            after: 0,
            page_size: 1,
        })
        .await
        .expect_err("the centre refuses a revoked certificate's token");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("of node-1 was revoked by the centre"), "{}", e.message());
    let e = einfo_testkit::eventually("the node to refuse its own revoked certificate", || {
        let mut r = einfo_proto::registry::v1::registry_service_client::RegistryServiceClient::with_interceptor(
            node_channel.clone(),
            token(&node_issuer, Role::Operator, province("01")),
        );
        async move {
            r.list_sites(einfo_proto::registry::v1::ListSitesRequest {
                parent: "provinces/2008-01".into(),
                ..Default::default()
            })
            .await
            .err()
        }
    })
    .await;
    assert!(e.message().contains("was revoked by the centre"), "{}", e.message());
    // A connection under the revoked certificate is refused whoever signed the call's token.
    let mut r = einfo_proto::registry::v1::registry_service_client::RegistryServiceClient::with_interceptor(
        node_channel.clone(),
        token(&centre_issuer, Role::CentralAnalyst, Jurisdiction::Central),
    );
    let e = r
        .list_sites(einfo_proto::registry::v1::ListSitesRequest {
            parent: "provinces/2008-01".into(),
            ..Default::default()
        })
        .await
        .expect_err("the connection's certificate is revoked");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(
        e.message().contains("the certificate") && e.message().contains("of node-1 was revoked"),
        "{}",
        e.message()
    );
    node.stop().await.expect("node stopped");
    gateway.stop().await.expect("gateway stopped");
}

both_backends!(every_method_answers_every_role_as_the_table_says; plain: a_federation_without_a_shared_secret_replicates_and_follows_the_centre, registry_rows_are_the_reviewed_ones, a_node_trusting_the_ca_takes_tokens_of_its_holders_for_their_provinces);
