//! The national gateway's features on small federations (one to three provinces per node), each
//! with literal figures: national search (accent-free names, registrable and exact domains, tax
//! codes in any written form, one criterion only), conflicts between provinces, live fan-out with
//! a slow node, the directory moved at run time, expiring licences, overdue applications,
//! enforcement figures, campaign completeness, signed receipts (and a tampered one refused by
//! the node), and the campaign feed resumed after a node restart. Integrity alarms are in
//! `gateway_integrity.rs`.

use std::time::{Duration, Instant};

use einfo_cli::node::Options;
use einfo_common::auth::{BearerToken, Caller, Role};
use einfo_common::receipts::verify;
use einfo_domain::Jurisdiction;
use einfo_proto::central::v1 as central;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as pb;
use einfo_proto::reporting::v1 as rep;
use einfo_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use einfo_testkit::gateway::{partial, strict};
use einfo_testkit::{
    Backend, InspectionClient, ProxyMode, RegistryClient, TcpProxy, TestDb, TestGateway, TestNode, both_backends,
    in_secs, province, settings,
};
use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const DAY: i64 = 86_400;

type ReportingClient = ReportingServiceClient<InterceptedService<Channel, BearerToken>>;

fn j(code: &str) -> String {
    province(code).to_string()
}

fn site(name: &str, domains: &[&str], tax_code: &str, source: pb::DiscoverySource) -> pb::Site {
    pb::Site {
        kind: "general-website".into(),
        display_name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        owner: Some(pb::Owner {
            kind: pb::OwnerKind::Organisation as i32,
            display_name: "Công ty Cổ phần Truyền thông".into(),
            tax_code: tax_code.into(),
            ..Default::default()
        }),
        hosting: pb::Hosting::InVietnam as i32,
        operational_state: pb::OperationalState::Active as i32,
        discovery_source: source as i32,
        ..Default::default()
    }
}

/// Registers a site found by a sweep (UNLICENSED) in province `code`.
async fn register(node: &TestNode, code: &str, name: &str, domains: &[&str], tax_code: &str) -> pb::Site {
    register_as(node, code, site(name, domains, tax_code, pb::DiscoverySource::Sweep)).await
}

async fn register_as(node: &TestNode, code: &str, s: pb::Site) -> pb::Site {
    node.registry(code)
        .await
        .register_site(pb::RegisterSiteRequest {
            parent: j(code),
            site: Some(s),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("site registered")
        .into_inner()
}

async fn submit_application(c: &mut RegistryClient, site: &str, received_secs_ago: i64) -> pb::LicenceApplication {
    c.submit_application(pb::SubmitApplicationRequest {
        application: Some(pb::LicenceApplication {
            site: site.into(),
            dossier_items: vec!["đơn đề nghị cấp phép".into()],
            receive_time: Some(in_secs(-received_secs_ago)),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("application submitted")
    .into_inner()
}

/// A site of province `code` licensed on its application, the licence expiring at `expire`.
async fn licensed(node: &TestNode, code: &str, domain: &str, expire: prost_types::Timestamp) -> pb::Licence {
    let s = register_as(
        node,
        code,
        site(&format!("Trang {domain}"), &[domain], "0100109106", pb::DiscoverySource::Application),
    )
    .await;
    let mut c = node.registry(code).await;
    let app = submit_application(&mut c, &s.name, DAY).await;
    c.approve_application(pb::ApproveApplicationRequest {
        name: app.name,
        licence: Some(pb::Licence {
            number: format!("{domain}/GP-STTTT"),
            issuing_authority: "Sở Thông tin và Truyền thông".into(),
            issue_time: Some(in_secs(-DAY)),
            expire_time: Some(expire),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("application approved")
    .into_inner()
    .licence
    .expect("a licence")
}

/// Nodes hosting `groups` of provinces and a gateway whose directory names each province's node.
async fn federation(backend: Backend, groups: &[&[&str]]) -> Option<(Vec<TestNode>, TestGateway)> {
    let mut nodes = Vec::new();
    for g in groups {
        nodes.push(TestNode::start(backend, g).await?);
    }
    let g = TestGateway::start(backend, &directory_of(&nodes)).await?;
    Some((nodes, g))
}

fn directory_of(nodes: &[TestNode]) -> Vec<(Jurisdiction, String)> {
    nodes
        .iter()
        .flat_map(|n| n.settings.provinces.iter().map(|p| (province(p), format!("http://{}", n.addr))))
        .collect()
}

/// Waits until the gateway is live on every province of `nodes`, with both logs (registry and
/// inspection) applied up to the nodes' heads.
async fn wait_synced(g: &TestGateway, nodes: &[&TestNode]) {
    let mut want = Vec::new();
    for n in nodes {
        for p in &n.settings.provinces {
            want.push((j(p), n.log_sequence(p, "registry").await, n.log_sequence(p, "inspection").await));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = g.status().await;
        let behind: Vec<String> = want
            .iter()
            .filter(|(j, r, i)| {
                !status.iter().any(|f| {
                    f.jurisdiction == *j
                        && f.state() == gw::FreshnessState::Live
                        && f.registry_sequence >= *r
                        && f.inspection_sequence >= *i
                })
            })
            .map(|(j, r, i)| format!("{j} (want {r}/{i})"))
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "not synced: {behind:?}; status {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// The 63 provinces but `configured`, as PARTIAL answers name them.
fn unconfigured(configured: &[&str]) -> Vec<String> {
    einfo_domain::Scheme::P63
        .provinces()
        .iter()
        .map(|p| p.jurisdiction().to_string())
        .filter(|x| !configured.iter().any(|c| j(c) == *x))
        .collect()
}

fn missing_names(missing: &[gw::JurisdictionFreshness]) -> Vec<String> {
    missing.iter().map(|f| f.jurisdiction.clone()).collect()
}

/// (jurisdiction, display name) of national sites, checked to come by jurisdiction, then sorted
/// by display name within each (answers order them by resource name, which is opaque).
fn found(sites: &[gw::NationalSite]) -> Vec<(String, String)> {
    let got: Vec<(String, String)> =
        sites.iter().map(|s| (s.jurisdiction.clone(), s.site.as_ref().unwrap().display_name.clone())).collect();
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "ordered by jurisdiction: {got:?}");
    let mut sorted = got;
    sorted.sort();
    sorted
}

/// (jurisdiction, display name) of a site.
type Found = (String, String);

/// (registrable domain, kind, sites as (jurisdiction, display name, legal status)).
type ConflictRow = (String, gw::ConflictKind, Vec<(String, String, pb::LegalStatus)>);

fn at(code: &str, name: &str) -> (String, String) {
    (j(code), name.to_owned())
}

async fn search(g: &TestGateway, r: gw::SearchSitesRequest) -> Result<gw::SearchSitesResponse, tonic::Status> {
    g.national()
        .search_sites(gw::SearchSitesRequest { options: partial(gw::Grouping::Provinces63), ..r })
        .await
        .map(|r| r.into_inner())
}

// ------------------------------------------------------------------ search

async fn search_finds_sites_by_unaccented_name_by_registrable_or_exact_domain_and_by_any_written_tax_code(
    backend: Backend,
) {
    let Some((nodes, g)) = federation(backend, &[&["01", "79"]]).await else { return };
    let node = &nodes[0];
    register(node, "01", "Trang tin Hà Nội", &["tintuc-hanoi.vn"], "0100 109 106").await;
    register(node, "01", "Báo điện tử Hà Nam", &["www.example.vn"], "0100109106-001").await;
    register(node, "79", "Cổng thông tin Sài Gòn", &["sub.example.vn"], "0100109106-002").await;
    wait_synced(&g, &[node]).await;

    let by_name = |q: &str| gw::SearchSitesRequest { name_query: q.into(), ..Default::default() };
    let by_domain = |d: &str| gw::SearchSitesRequest { domain: d.into(), ..Default::default() };
    let by_registrable = |d: &str| gw::SearchSitesRequest { registrable_domain: d.into(), ..Default::default() };
    let by_tax = |t: &str| gw::SearchSitesRequest { owner_tax_code: t.into(), ..Default::default() };
    let hanoi = at("01", "Trang tin Hà Nội");
    let hanam = at("01", "Báo điện tử Hà Nam");
    let saigon = at("79", "Cổng thông tin Sài Gòn");
    let table: Vec<(gw::SearchSitesRequest, Vec<Found>, &str)> = vec![
        (by_name("ha noi"), vec![hanoi.clone()], "words without accents"),
        (by_name("HÀ NỘI"), vec![hanoi.clone()], "with accents and in capitals"),
        (by_name("ha"), vec![hanam.clone(), hanoi.clone()], "a word start matches every name holding it"),
        (by_name("noi ha"), vec![hanoi.clone()], "in any order"),
        (by_name("hanoi"), vec![], "words are not glued"),
        (by_registrable("example.vn"), vec![hanam.clone(), saigon.clone()], "both subdomains, across provinces"),
        (by_registrable("www.example.vn"), vec![hanam.clone(), saigon.clone()], "reduced to its registrable domain"),
        (by_domain("www.example.vn"), vec![hanam.clone()], "exactly this domain"),
        (by_domain("WWW.Example.VN"), vec![hanam.clone()], "normalised first"),
        (by_domain("example.vn"), vec![], "the registrable domain itself is held by nobody"),
        (by_tax("0100.109.106"), vec![hanoi.clone()], "dots in the tax code"),
        (by_tax("0100109106 - 002"), vec![saigon.clone()], "a branch, spaced"),
    ];
    for (req, want, why) in table {
        let r = search(&g, req.clone()).await.unwrap_or_else(|e| panic!("{why}: {e:?}"));
        assert_eq!(found(&r.sites), want, "{why}: {req:?}");
        assert_eq!(missing_names(&r.missing), unconfigured(&["01", "79"]), "{why}");
        assert!(r.missing.iter().all(|f| f.state() == gw::FreshnessState::Unconfigured));
    }

    // Exactly one criterion, each checked, with the field named.
    let bad: Vec<(gw::SearchSitesRequest, &str, &str)> = vec![
        (gw::SearchSitesRequest::default(), "domain", "no criterion"),
        (
            gw::SearchSitesRequest { domain: "example.vn".into(), name_query: "ha noi".into(), ..Default::default() },
            "name_query",
            "two criteria",
        ),
        (
            gw::SearchSitesRequest {
                registrable_domain: "example.vn".into(),
                owner_tax_code: "0100109106".into(),
                ..Default::default()
            },
            "owner_tax_code",
            "two other criteria",
        ),
        (by_domain("not a domain"), "domain", "not a domain name"),
        (by_registrable("vn"), "registrable_domain", "a public suffix alone"),
        (by_tax("0100109107"), "owner_tax_code", "a wrong check digit"),
        (by_name("!!!"), "name_query", "no letters"),
        (gw::SearchSitesRequest { page_size: 5000, ..by_name("ha") }, "page_size", "too large a page"),
    ];
    for (req, field, why) in bad {
        let e = search(&g, req).await.expect_err(why);
        assert_eq!(e.code(), Code::InvalidArgument, "{why}: {e:?}");
        assert_eq!(fields(&e), vec![field.to_owned()], "{why}");
    }

    // The 63 provinces are always expected: STRICT fails naming exactly the unconfigured ones.
    let e = g
        .national()
        .search_sites(gw::SearchSitesRequest { options: strict(gw::Grouping::Provinces63), ..by_name("ha noi") })
        .await
        .expect_err("STRICT with 61 provinces unconfigured");
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(reason(&e), "JURISDICTIONS_UNAVAILABLE");
    let info = e.get_details_error_info().unwrap();
    assert_eq!(info.metadata["jurisdictions"], unconfigured(&["01", "79"]).join(","));
}

// ------------------------------------------------------------------ conflicts

async fn conflicts_name_domains_held_in_several_provinces_and_sites_unlicensed_here_but_licensed_there(
    backend: Backend,
) {
    let Some((nodes, g)) = federation(backend, &[&["01", "79"], &["48"]]).await else { return };
    let (a, b) = (&nodes[0], &nodes[1]);
    // The same registrable domain in 01 and in 48 (another node), both unlicensed.
    register(a, "01", "Tin trùng Hà Nội", &["trungnhau.vn"], "0100109106").await;
    register(b, "48", "Tin trùng Đà Nẵng", &["www.trungnhau.vn"], "0100109106").await;
    // Unlicensed in 79, licensed in 48.
    register(a, "79", "Cấp phép Sài Gòn", &["capphep.vn"], "0100109106").await;
    licensed(b, "48", "capphep.vn", in_secs(365 * DAY)).await;
    // No conflict: two subdomains in one province; a domain whose other holder is voided.
    register(a, "01", "Riêng A", &["a.rieng.vn"], "0100109106").await;
    register(a, "01", "Riêng B", &["b.rieng.vn"], "0100109106").await;
    let voided = register(a, "79", "Đã hủy", &["dahuy.vn"], "0100109106").await;
    register(b, "48", "Còn hoạt động", &["dahuy.vn"], "0100109106").await;
    a.registry("79")
        .await
        .void_site(pb::VoidSiteRequest {
            name: voided.name.clone(),
            etag: voided.etag.clone(),
            reason: "nhập trùng".into(),
            request_id: "void-dahuy".into(),
        })
        .await
        .expect("voided");
    wait_synced(&g, &[a, b]).await;

    let r = g
        .national()
        .list_conflicts(gw::ListConflictsRequest { options: partial(gw::Grouping::Provinces63), page_size: 0 })
        .await
        .expect("conflicts")
        .into_inner();
    let got: Vec<ConflictRow> = r
        .conflicts
        .iter()
        .map(|c| {
            let sites = c
                .sites
                .iter()
                .map(|s| {
                    let x = s.site.as_ref().unwrap();
                    (s.jurisdiction.clone(), x.display_name.clone(), x.legal_status())
                })
                .collect();
            (c.registrable_domain.clone(), c.kind(), sites)
        })
        .collect();
    use pb::LegalStatus::{Licensed, Unlicensed};
    assert_eq!(
        got,
        vec![
            (
                "capphep.vn".to_owned(),
                gw::ConflictKind::UnlicensedHereLicensedThere,
                vec![
                    (j("48"), "Trang capphep.vn".to_owned(), Licensed),
                    (j("79"), "Cấp phép Sài Gòn".to_owned(), Unlicensed),
                ]
            ),
            (
                "trungnhau.vn".to_owned(),
                gw::ConflictKind::DomainInSeveralJurisdictions,
                vec![
                    (j("01"), "Tin trùng Hà Nội".to_owned(), Unlicensed),
                    (j("48"), "Tin trùng Đà Nẵng".to_owned(), Unlicensed),
                ]
            ),
        ]
    );
    assert_eq!(missing_names(&r.missing), unconfigured(&["01", "48", "79"]));
    // A page of one: the first registrable domain, with all its sites.
    let one = g
        .national()
        .list_conflicts(gw::ListConflictsRequest { options: partial(gw::Grouping::Provinces63), page_size: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.conflicts.len(), 1);
    assert_eq!(one.conflicts[0].sites.len(), 2);
}

// ------------------------------------------------------------------ fan-out

async fn a_fan_out_answers_within_its_deadline_naming_the_slow_province_and_listing_the_others(backend: Backend) {
    let Some(a) = TestNode::start(backend, &["01", "48"]).await else { return };
    let Some(b) = TestNode::start(backend, &["79"]).await else { return };
    let proxy = TcpProxy::start(b.addr).await;
    let dir = vec![
        (province("01"), format!("http://{}", a.addr)),
        (province("48"), format!("http://{}", a.addr)),
        (province("79"), proxy.url()),
    ];
    let Some(g) = TestGateway::start(backend, &dir).await else { return };
    register(&a, "01", "Chủ Hà Nội", &["holder.vn"], "0100109106").await;
    register(&a, "01", "Khác", &["other.vn"], "0100109106").await;
    register(&a, "48", "Chủ Đà Nẵng", &["shop.holder.vn"], "0100109106").await;
    register(&b, "79", "Chủ Sài Gòn", &["www.holder.vn"], "0100109106").await;
    licensed(&b, "79", "giayphep.vn", in_secs(365 * DAY)).await;
    wait_synced(&g, &[&a, &b]).await;

    // All answer: three holders, one per province.
    let all = g
        .national()
        .find_domain_holders(gw::FindDomainHoldersRequest { domain: "Holder.VN".into(), node_timeout: None })
        .await
        .expect("holders")
        .into_inner();
    assert_eq!(all.asked, 3);
    assert!(all.failures.is_empty(), "{:?}", all.failures);
    assert_eq!(found(&all.sites), vec![at("01", "Chủ Hà Nội"), at("48", "Chủ Đà Nẵng"), at("79", "Chủ Sài Gòn")]);

    // 79 answers five seconds late.
    proxy.set_mode(ProxyMode::Delay(Duration::from_secs(5)));
    let mut req = tonic::Request::new(gw::FindDomainHoldersRequest { domain: "holder.vn".into(), node_timeout: None });
    req.set_timeout(Duration::from_secs(1));
    let t = Instant::now();
    let r = g.national().find_domain_holders(req).await.expect("answered within the deadline").into_inner();
    assert!(t.elapsed() < Duration::from_secs(2), "answered in {:?}", t.elapsed());
    assert_eq!(r.asked, 3);
    assert_eq!(found(&r.sites), vec![at("01", "Chủ Hà Nội"), at("48", "Chủ Đà Nẵng")]);
    let failed: Vec<(&str, &str, &str)> =
        r.failures.iter().map(|f| (f.jurisdiction.as_str(), f.code.as_str(), f.endpoint.as_str())).collect();
    let proxy_url = proxy.url();
    assert_eq!(failed, vec![(j("79").as_str(), "DEADLINE_EXCEEDED", proxy_url.as_str())]);

    // The live summary the same way: exact figures of 01 and 48, 79 named.
    let mut req = tonic::Request::new(gw::GetLiveSummaryRequest { node_timeout: None });
    req.set_timeout(Duration::from_secs(1));
    let t = Instant::now();
    let r = g.national().get_live_summary(req).await.expect("live summary").into_inner();
    assert!(t.elapsed() < Duration::from_secs(2), "answered in {:?}", t.elapsed());
    let units: Vec<(&str, i64)> = r.units.iter().map(|u| (u.jurisdiction.as_str(), u.total)).collect();
    assert_eq!(units, vec![(j("01").as_str(), 2), (j("48").as_str(), 1)]);
    let totals: Vec<(&str, i32, i64)> = r.totals.iter().map(|c| (c.kind.as_str(), c.legal_status, c.count)).collect();
    assert_eq!(totals, vec![("general-website", pb::LegalStatus::Unlicensed as i32, 3)]);
    assert_eq!(
        r.failures.iter().map(|f| (f.jurisdiction.clone(), f.code.clone())).collect::<Vec<_>>(),
        vec![(j("79"), "DEADLINE_EXCEEDED".to_owned())]
    );

    // A per-node timeout shorter than the call's deadline bounds the slow one alone.
    let t = Instant::now();
    let r = g
        .national()
        .get_live_summary(gw::GetLiveSummaryRequest {
            node_timeout: Some(prost_types::Duration { seconds: 0, nanos: 300_000_000 }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.elapsed() < Duration::from_secs(2), "answered in {:?}", t.elapsed());
    assert_eq!(r.units.len(), 2);
    assert_eq!(r.failures.len(), 1);

    // Back to normal, 79 answers again (its licensed site included).
    proxy.set_mode(ProxyMode::Pass);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = g.national().get_live_summary(gw::GetLiveSummaryRequest { node_timeout: None }).await.unwrap().into_inner();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let hcm = r.units.iter().find(|u| u.jurisdiction == j("79")).expect("79 answered");
    let cells: Vec<(i32, i64)> = hcm.cells.iter().map(|c| (c.legal_status, c.count)).collect();
    assert_eq!(cells, vec![(pb::LegalStatus::Licensed as i32, 1), (pb::LegalStatus::Unlicensed as i32, 1)]);

    let e = g
        .national()
        .find_domain_holders(gw::FindDomainHoldersRequest {
            domain: "holder.vn".into(),
            node_timeout: Some(prost_types::Duration { seconds: 0, nanos: 0 }),
        })
        .await
        .expect_err("a zero node timeout");
    assert_eq!(fields(&e), vec!["node_timeout"]);
    let e = g
        .national()
        .find_domain_holders(gw::FindDomainHoldersRequest { domain: "no domain".into(), node_timeout: None })
        .await
        .expect_err("not a domain");
    assert_eq!(fields(&e), vec!["domain"]);
}

// ------------------------------------------------------------------ directory

fn directory_as(g: &TestGateway, caller: &Caller) -> einfo_testkit::DirectoryClient {
    let ch = tonic::transport::Endpoint::from_shared(g.url()).unwrap().connect_lazy();
    let token = BearerToken::new(&g.keys.issue(caller, Duration::from_secs(3600)).unwrap()).unwrap();
    einfo_proto::gateway::v1::directory_service_client::DirectoryServiceClient::with_interceptor(ch, token)
}

async fn set_endpoint(
    g: &TestGateway,
    jurisdiction: &str,
    endpoint: &str,
) -> Result<gw::DirectoryEntry, tonic::Status> {
    g.directory()
        .set_endpoint(gw::SetEndpointRequest {
            entry: Some(gw::DirectoryEntry { jurisdiction: jurisdiction.into(), endpoint: endpoint.into() }),
        })
        .await
        .map(|r| r.into_inner())
}

async fn freshness_of(g: &TestGateway, code: &str) -> gw::JurisdictionFreshness {
    g.status().await.into_iter().find(|f| f.jurisdiction == j(code)).expect("a freshness")
}

async fn names_in(g: &TestGateway, code: &str) -> Vec<String> {
    let r =
        search(g, gw::SearchSitesRequest { owner_tax_code: "0100109106".into(), ..Default::default() }).await.unwrap();
    found(&r.sites).into_iter().filter(|(x, _)| *x == j(code)).map(|(_, name)| name).collect()
}

async fn a_directory_change_is_followed_at_once_and_only_an_admin_may_make_one(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    // 01 starts at a stale endpoint: nothing listens there.
    let stale = "http://127.0.0.1:1".to_owned();
    let Some(g) = TestGateway::start(backend, &[(province("01"), stale.clone())]).await else { return };
    register(&node, "01", "Trang một", &["mot.vn"], "0100109106").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = freshness_of(&g, "01").await;
        if f.state() == gw::FreshnessState::Unreachable {
            assert_eq!(f.endpoint, stale);
            assert_eq!(f.registry_sequence, 0);
            break;
        }
        assert!(Instant::now() < deadline, "01 is not unreachable: {f:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Moved to a proxy in front of the node: replication starts there.
    let proxy = TcpProxy::start(node.addr).await;
    let set = set_endpoint(&g, &j("01"), &format!("  {}  ", proxy.url())).await.expect("endpoint set");
    assert_eq!(set, gw::DirectoryEntry { jurisdiction: j("01"), endpoint: proxy.url() });
    let listed = g.directory().list_endpoints(gw::ListEndpointsRequest {}).await.unwrap().into_inner().entries;
    assert_eq!(listed, vec![set.clone()]);
    wait_synced(&g, &[&node]).await;
    assert_eq!(names_in(&g, "01").await, vec!["Trang một"]);
    assert!(proxy.connections() > 0, "the gateway went through the new endpoint");
    assert_eq!(freshness_of(&g, "01").await.endpoint, proxy.url());

    // Moved again, straight to the node, and the proxy removed: new sites still arrive.
    set_endpoint(&g, &j("01"), &format!("http://{}", node.addr)).await.expect("endpoint moved");
    drop(proxy);
    register(&node, "01", "Trang hai", &["hai.vn"], "0100109106").await;
    wait_synced(&g, &[&node]).await;
    assert_eq!(names_in(&g, "01").await, vec!["Trang hai", "Trang một"]);

    // A restarted gateway keeps the directory as changed.
    let mut g = g;
    g.stop().await;
    g.start_again_same_port().await;
    let listed = g.directory().list_endpoints(gw::ListEndpointsRequest {}).await.unwrap().into_inner().entries;
    assert_eq!(listed, vec![gw::DirectoryEntry { jurisdiction: j("01"), endpoint: format!("http://{}", node.addr) }]);
    wait_synced(&g, &[&node]).await;

    // Bad entries are refused with the field named.
    let bad: Vec<(Option<gw::DirectoryEntry>, &str, &str)> = vec![
        (None, "entry", "no entry"),
        (
            Some(gw::DirectoryEntry { jurisdiction: j("01"), endpoint: "ftp://10.0.0.5".into() }),
            "entry.endpoint",
            "not http",
        ),
        (Some(gw::DirectoryEntry { jurisdiction: j("01"), endpoint: String::new() }), "entry.endpoint", "empty"),
        (Some(gw::DirectoryEntry { jurisdiction: j("01"), endpoint: "http://".into() }), "entry.endpoint", "no host"),
        (
            Some(gw::DirectoryEntry { jurisdiction: "provinces/2008-99".into(), endpoint: "http://10.0.0.5:1".into() }),
            "entry.jurisdiction",
            "no such province",
        ),
        (
            Some(gw::DirectoryEntry { jurisdiction: "central".into(), endpoint: "http://10.0.0.5:1".into() }),
            "entry.jurisdiction",
            "not a province",
        ),
    ];
    for (entry, field, why) in bad {
        let e = g.directory().set_endpoint(gw::SetEndpointRequest { entry }).await.expect_err(why);
        assert_eq!(e.code(), Code::InvalidArgument, "{why}: {e:?}");
        assert_eq!(fields(&e), vec![field.to_owned()], "{why}");
    }

    // Only the central administrator changes the directory; provinces read nothing national.
    let entry = gw::DirectoryEntry { jurisdiction: j("01"), endpoint: "http://10.0.0.5:1".into() };
    for caller in [TestNode::operator("01"), TestGateway::analyst_caller()] {
        let e = directory_as(&g, &caller)
            .set_endpoint(gw::SetEndpointRequest { entry: Some(entry.clone()) })
            .await
            .expect_err("not an admin");
        assert_eq!(e.code(), Code::PermissionDenied, "{caller:?}: {e:?}");
    }
    let e = directory_as(&g, &TestNode::operator("01"))
        .clear_alarm(gw::ClearAlarmRequest { jurisdiction: j("01"), resync: true, comment: "x".into() })
        .await
        .expect_err("not an admin");
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = g
        .national_as(&TestNode::operator("01"))
        .get_replication_status(gw::GetReplicationStatusRequest {})
        .await
        .expect_err("a province reads no national view");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(freshness_of(&g, "01").await.endpoint, format!("http://{}", node.addr), "nothing was changed");

    // Removed: shown as unconfigured, its national data kept.
    g.directory().remove_endpoint(gw::RemoveEndpointRequest { jurisdiction: j("01") }).await.expect("removed");
    assert_eq!(freshness_of(&g, "01").await.state(), gw::FreshnessState::Unconfigured);
    assert_eq!(names_in(&g, "01").await, vec!["Trang hai", "Trang một"]);
    let e = g.directory().remove_endpoint(gw::RemoveEndpointRequest { jurisdiction: j("01") }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

// ------------------------------------------------------------------ national lists and figures

fn inspector(code: &str) -> Caller {
    TestNode::inspector(code)
}

async fn inspect(c: &mut InspectionClient, code: &str, site: &str, codes: &[&str], days_ago: i64) -> insp::Inspection {
    let when = in_secs(-days_ago * DAY);
    c.record_inspection(insp::RecordInspectionRequest {
        parent: j(code),
        inspection: Some(insp::Inspection {
            site: site.into(),
            inspect_time: Some(when),
            r#type: insp::InspectionType::Unscheduled as i32,
            inspectors: vec!["Nguyễn Văn An".into()],
            findings: "Kiểm tra trang chủ".into(),
            evidence: vec![insp::Evidence {
                url: "https://example.vn/".into(),
                capture_time: Some(when),
                sha256: "ab".repeat(32),
            }],
            result: insp::InspectionResult::ViolationsFound as i32,
            violations: codes
                .iter()
                .map(|c| insp::Violation {
                    code: c.to_string(),
                    description: format!("Hành vi {c}"),
                    act_time: Some(in_secs(-(days_ago + 10) * DAY)),
                })
                .collect(),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("inspection recorded")
    .into_inner()
}

async fn sanction(c: &mut InspectionClient, code: &str, i: &insp::Inspection, fine: i64) {
    c.issue_decision(insp::IssueDecisionRequest {
        parent: j(code),
        decision: Some(insp::SanctionDecision {
            number: "45/QĐ-XPVPHC".into(),
            decision_time: Some(in_secs(-DAY)),
            inspection: i.name.clone(),
            offender_kind: insp::OffenderKind::Organisation as i32,
            offender_name: "Công ty Cổ phần Truyền thông".into(),
            fine_vnd: fine,
            compliance_deadline: Some(in_secs(30 * DAY)),
            site: i.site.clone(),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("decision issued");
}

fn days(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: n * DAY, nanos: 0 })
}

async fn expiring_licences_overdue_applications_and_enforcement_figures_are_national_and_exact(backend: Backend) {
    let Some((nodes, g)) = federation(backend, &[&["01", "79"]]).await else { return };
    let node = &nodes[0];
    let soon = licensed(node, "01", "sapheth.vn", in_secs(10 * DAY)).await;
    let later = licensed(node, "01", "conlau.vn", in_secs(100 * DAY)).await;
    let sooner = licensed(node, "79", "ganhet.vn", in_secs(3 * DAY)).await;
    // An application received 60 days ago (10 working days allowed) and a fresh one.
    let old =
        register_as(node, "01", site("Chờ lâu", &["cholau.vn"], "0100109106", pb::DiscoverySource::Application)).await;
    let old = submit_application(&mut node.registry("01").await, &old.name, 60 * DAY).await;
    assert!(old.overdue);
    let fresh =
        register_as(node, "79", site("Mới nộp", &["moinop.vn"], "0100109106", pb::DiscoverySource::Application)).await;
    assert!(!submit_application(&mut node.registry("79").await, &fresh.name, 0).await.overdue);
    // 01: an inspection 5 days ago with two violations, fined 20,000,000 VND. 79: one with one
    // violation, fined 6,000,000 VND, and one 40 days ago (outside the period) with one more.
    let targets = [
        register(node, "01", "Vi phạm Hà Nội", &["vipham-hn.vn"], "0100109106").await,
        register(node, "79", "Vi phạm Sài Gòn", &["vipham-sg.vn"], "0100109106").await,
    ];
    let mut i01 = node.inspection_as(&inspector("01")).await;
    let x = inspect(&mut i01, "01", &targets[0].name, &["ND15-44", "ND15-99"], 5).await;
    sanction(&mut i01, "01", &x, 20_000_000).await;
    let mut i79 = node.inspection_as(&inspector("79")).await;
    let y = inspect(&mut i79, "79", &targets[1].name, &["ND15-99"], 5).await;
    sanction(&mut i79, "79", &y, 6_000_000).await;
    inspect(&mut i79, "79", &targets[1].name, &["ND15-44"], 40).await;
    wait_synced(&g, &[node]).await;

    // Expiring licences: by expiry, within the window only.
    let expiring = |within: Option<prost_types::Duration>, page_size: i32| {
        let g = &g;
        async move {
            g.national()
                .list_expiring_licences(gw::ListExpiringLicencesRequest {
                    options: partial(gw::Grouping::Provinces63),
                    within,
                    page_size,
                })
                .await
                .map(|r| r.into_inner())
        }
    };
    let names = |r: &gw::ListExpiringLicencesResponse| -> Vec<(String, String)> {
        r.licences.iter().map(|l| (l.jurisdiction.clone(), l.licence.as_ref().unwrap().name.clone())).collect()
    };
    let r = expiring(days(30), 0).await.unwrap();
    assert_eq!(names(&r), vec![(j("79"), sooner.name.clone()), (j("01"), soon.name.clone())]);
    assert_eq!(r.total, 2);
    assert_eq!(missing_names(&r.missing), unconfigured(&["01", "79"]));
    let r = expiring(days(5), 0).await.unwrap();
    assert_eq!(names(&r), vec![(j("79"), sooner.name.clone())], "10 days is not within 5");
    assert_eq!(expiring(None, 0).await.unwrap().total, 2, "30 days by default");
    let r = expiring(days(365), 1).await.unwrap();
    assert_eq!((names(&r), r.total), (vec![(j("79"), sooner.name.clone())], 3), "a page of one, all counted");
    let r = expiring(days(365), 0).await.unwrap();
    assert_eq!(names(&r).last().unwrap().1, later.name);
    let e = expiring(Some(prost_types::Duration { seconds: -1, nanos: 0 }), 0).await.unwrap_err();
    assert_eq!(fields(&e), vec!["within"]);
    // Units follow the grouping: 79 is in the merged Hồ Chí Minh City of the 34 provinces.
    let r = g
        .national()
        .list_expiring_licences(gw::ListExpiringLicencesRequest {
            options: partial(gw::Grouping::Provinces34),
            within: days(5),
            page_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.licences[0].unit, province("79").successor().unwrap().to_string());

    // Overdue applications: the old one only.
    let r = g
        .national()
        .list_overdue_applications(gw::ListOverdueApplicationsRequest {
            options: partial(gw::Grouping::Provinces63),
            page_size: 0,
        })
        .await
        .expect("overdue")
        .into_inner();
    let overdue: Vec<(String, String)> =
        r.applications.iter().map(|a| (a.jurisdiction.clone(), a.application.as_ref().unwrap().name.clone())).collect();
    assert_eq!(overdue, vec![(j("01"), old.name.clone())]);
    assert_eq!(r.total, 1);

    // Enforcement in the last 30 days.
    let r = g
        .national()
        .get_enforcement_summary(gw::GetEnforcementSummaryRequest {
            options: partial(gw::Grouping::Provinces63),
            period_start: Some(in_secs(-30 * DAY)),
            period_end: Some(in_secs(3600)),
        })
        .await
        .expect("enforcement")
        .into_inner();
    let by_code = |v: &[(&str, i64)]| -> Vec<gw::ViolationCount> {
        v.iter().map(|(code, count)| gw::ViolationCount { code: code.to_string(), count: *count }).collect()
    };
    let figures = |unit: &str, inspections, violations: &[(&str, i64)], decisions, fines_vnd| gw::EnforcementFigures {
        unit: unit.to_owned(),
        inspections,
        violations: violations.iter().map(|(_, n)| n).sum(),
        violations_by_code: by_code(violations),
        decisions,
        fines_vnd,
        suspensions: 0,
        revocations: 0,
    };
    assert_eq!(
        r.units,
        vec![
            figures(&j("01"), 1, &[("ND15-44", 1), ("ND15-99", 1)], 1, 20_000_000),
            figures(&j("79"), 1, &[("ND15-99", 1)], 1, 6_000_000),
        ]
    );
    assert_eq!(r.totals, Some(figures("", 2, &[("ND15-44", 1), ("ND15-99", 2)], 2, 26_000_000)));
    assert_eq!(missing_names(&r.missing), unconfigured(&["01", "79"]));
    // The last 60 days take in 79's older inspection too.
    let r = g
        .national()
        .get_enforcement_summary(gw::GetEnforcementSummaryRequest {
            options: partial(gw::Grouping::Provinces63),
            period_start: Some(in_secs(-60 * DAY)),
            period_end: Some(in_secs(3600)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.totals, Some(figures("", 3, &[("ND15-44", 2), ("ND15-99", 2)], 2, 26_000_000)));
    let e = g
        .national()
        .get_enforcement_summary(gw::GetEnforcementSummaryRequest {
            options: partial(gw::Grouping::Provinces63),
            period_start: Some(in_secs(0)),
            period_end: Some(in_secs(-DAY)),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&e), vec!["period_end"]);
    let e = g
        .national()
        .get_enforcement_summary(gw::GetEnforcementSummaryRequest {
            options: strict(gw::Grouping::Provinces63),
            period_start: Some(in_secs(-DAY)),
            period_end: Some(in_secs(0)),
        })
        .await
        .expect_err("STRICT with unconfigured provinces");
    assert_eq!(e.code(), Code::Unavailable);
}

// ------------------------------------------------------------------ the centre

fn campaign(targets: &[&str], deadline: prost_types::Timestamp) -> central::Campaign {
    central::Campaign {
        reference: "3224/BTTTT-PTTH&TTĐT".into(),
        title: "Báo cáo quản lý trang thông tin điện tử".into(),
        period_start: Some(in_secs(-90 * DAY)),
        period_end: Some(in_secs(-DAY)),
        as_of: Some(in_secs(-3600)),
        deadline: Some(deadline),
        lock_time: Some(in_secs(30 * DAY)),
        targets: targets.iter().map(|c| j(c)).collect(),
        indicators: vec![central::Indicator {
            code: "sites_by_kind_status".into(),
            name_vi: "Số trang theo loại và trạng thái".into(),
            name_en: "Sites by kind and status".into(),
        }],
        narrative_sections: vec!["assessment".into()],
        ..Default::default()
    }
}

async fn create_campaign(g: &TestGateway, targets: &[&str], deadline: prost_types::Timestamp) -> central::Campaign {
    g.centre_admin()
        .create_campaign(central::CreateCampaignRequest {
            campaign: Some(campaign(targets, deadline)),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("campaign created")
        .into_inner()
}

fn submission(campaign: &str, code: &str, content: &[u8]) -> central::Submission {
    central::Submission {
        campaign: campaign.into(),
        jurisdiction: j(code),
        report: format!("{}/reports/{}", j(code), campaign.trim_start_matches("campaigns/")),
        version: 1,
        content: content.to_vec(),
        content_hash: Sha256::digest(content).to_vec(),
        submit_time: Some(in_secs(0)),
    }
}

async fn submit_to(g: &TestGateway, code: &str, s: central::Submission) -> central::Receipt {
    g.centre_as_province(code)
        .submit(central::SubmitRequest { submission: Some(s) })
        .await
        .expect("received")
        .into_inner()
        .receipt
        .expect("a receipt")
}

async fn campaign_completeness_counts_expected_submitted_on_time_late_and_missing(backend: Backend) {
    let Some(g) = TestGateway::start(backend, &[]).await else { return };
    let c = create_campaign(&g, &["01", "79", "48", "77"], in_secs(3)).await;
    submit_to(&g, "01", submission(&c.name, "01", b"report of 01")).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    submit_to(&g, "79", submission(&c.name, "79", b"report of 79")).await;
    submit_to(&g, "77", submission(&c.name, "77", b"report of 77")).await;

    let completeness = |grouping: gw::Grouping| {
        let g = &g;
        let name = c.name.clone();
        async move {
            g.national()
                .get_campaign_completeness(gw::GetCampaignCompletenessRequest {
                    campaign: name,
                    grouping: grouping as i32,
                })
                .await
                .map(|r| r.into_inner())
        }
    };
    let unit = |unit: String, expected, submitted, on_time, late, missing| gw::UnitCompleteness {
        unit,
        expected,
        submitted,
        on_time,
        late,
        missing,
    };
    let r = completeness(gw::Grouping::Provinces63).await.expect("completeness");
    assert_eq!(r.totals, Some(unit(String::new(), 4, 3, 1, 2, 1)));
    assert_eq!(
        r.units,
        vec![
            unit(j("01"), 1, 1, 1, 0, 0),
            unit(j("48"), 1, 0, 0, 0, 1),
            unit(j("77"), 1, 1, 0, 1, 0),
            unit(j("79"), 1, 1, 0, 1, 0),
        ]
    );
    let targets: Vec<(String, String, bool)> = r
        .targets
        .iter()
        .map(|t| (t.jurisdiction.clone(), t.timeliness.clone(), t.first_receive_time.is_some()))
        .collect();
    assert_eq!(
        targets,
        vec![
            (j("01"), "ON_TIME".into(), true),
            (j("48"), "MISSING".into(), false),
            (j("77"), "LATE".into(), true),
            (j("79"), "LATE".into(), true),
        ]
    );
    assert!(r.targets.iter().all(|t| t.deadline == c.deadline));
    // In 34 provinces 77 (Bà Rịa – Vũng Tàu) and 79 are one unit: Hồ Chí Minh City.
    let r = completeness(gw::Grouping::Provinces34).await.unwrap();
    let hcm = province("79").successor().unwrap().to_string();
    assert_eq!(province("77").successor().unwrap().to_string(), hcm);
    let got = r.units.iter().find(|u| u.unit == hcm).expect("the merged unit");
    assert_eq!(got, &unit(hcm.clone(), 2, 2, 0, 2, 0));
    assert_eq!(r.units.len(), 3);
    assert_eq!(r.totals, Some(unit(String::new(), 4, 3, 1, 2, 1)));

    let e = g
        .national()
        .get_campaign_completeness(gw::GetCampaignCompletenessRequest { campaign: " ".into(), grouping: 0 })
        .await
        .unwrap_err();
    assert_eq!(fields(&e), vec!["campaign"]);
    let e = g
        .national()
        .get_campaign_completeness(gw::GetCampaignCompletenessRequest {
            campaign: "campaigns/none".into(),
            grouping: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

fn hex(k: [u8; 32]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

fn reporter(code: &str) -> Caller {
    Caller { subject: format!("reporter-{code}"), role: Role::Reporter, jurisdiction: province(code) }
}

async fn reporting(node: &TestNode, code: &str) -> ReportingClient {
    ReportingServiceClient::with_interceptor(
        node.channel().await,
        BearerToken::new(&node.token(&reporter(code))).expect("token"),
    )
}

/// A node hosting `provinces` whose centre is the gateway at `endpoint` (the gateway itself or
/// a proxy in front of it), trusting the gateway's public key.
async fn node_reporting_to(
    backend: Backend,
    g: &TestGateway,
    endpoint: String,
    provinces: &[&str],
) -> Option<TestNode> {
    let db = TestDb::new(backend).await?;
    let mut s = settings(&db, provinces);
    s.reporting.centre_endpoint = Some(endpoint);
    s.reporting.centre_public_key_hex = Some(hex(g.gateway().central().public_key()));
    s.reporting.feed_interval_ms = 100;
    s.reporting.outbox_interval_ms = 50;
    Some(TestNode::start_on(db, s, Options::default()).await)
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The campaigns a node holds for province `code`, by name.
async fn campaigns_of(node: &TestNode, code: &str) -> Vec<String> {
    let mut r = reporting(node, code).await;
    let mut names: Vec<String> = r
        .list_campaigns(rep::ListCampaignsRequest { parent: j(code) })
        .await
        .expect("campaigns")
        .into_inner()
        .campaigns
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    names
}

async fn count_received_campaigns(node: &TestNode) -> i64 {
    let db = node.db.connect().await;
    let row = db
        .conn()
        .query_one_raw(einfo_common::db::stmt(
            db.backend(),
            "SELECT COUNT(*) FROM change_log WHERE service = $1 AND operation = $2",
            ["reporting".into(), "RECEIVE".into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let n = row.try_get_by_index::<i64>(0).unwrap();
    db.close().await.unwrap();
    n
}

async fn a_receipt_of_the_gateway_verifies_with_its_key_and_a_tampered_one_is_refused(backend: Backend) {
    let Some(g) = TestGateway::start(backend, &[]).await else { return };
    let key = g.centre_admin().get_public_key(central::GetPublicKeyRequest {}).await.unwrap().into_inner();
    assert_eq!(key.public_key, g.gateway().central().public_key().to_vec());
    let pk: [u8; 32] = key.public_key.as_slice().try_into().unwrap();

    // Directly: the receipt verifies; a flipped byte of its body or its signature does not.
    let c = create_campaign(&g, &["01"], in_secs(3600)).await;
    let r = submit_to(&g, "01", submission(&c.name, "01", b"report")).await;
    assert_eq!(verify(&pk, &r), Ok(()));
    assert_eq!(r.key_id, key.key_id);
    let mut body = r.clone();
    body.body.as_mut().unwrap().content_hash[0] ^= 1;
    assert!(verify(&pk, &body).is_err());
    let mut sig = r.clone();
    sig.signature[10] ^= 1;
    assert!(verify(&pk, &sig).is_err());

    // Through a node: a receipt tampered on its way is refused and not stored; once the path is
    // clean, the retried delivery's receipt is stored and verifies.
    let proxy = TcpProxy::start(g.addr).await;
    let Some(node) = node_reporting_to(backend, &g, proxy.url(), &["79"]).await else { return };
    let c = create_campaign(&g, &["79"], in_secs(3600)).await;
    eventually("the campaign reaches the node", || async {
        campaigns_of(&node, "79").await.contains(&c.name).then_some(())
    })
    .await;
    let mut r79 = reporting(&node, "79").await;
    let report = r79
        .compile_report(rep::CompileReportRequest {
            parent: j("79"),
            campaign: c.name.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("compiled")
        .into_inner()
        .report
        .unwrap();
    proxy.set_mode(ProxyMode::CorruptResponses);
    let submitted = r79
        .submit_report(rep::SubmitReportRequest {
            name: report.name.clone(),
            etag: report.etag.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("submitted")
        .into_inner();
    let db = node.db.connect().await;
    let error = eventually("the node rejects the tampered receipt", || {
        let db = db.clone();
        async move {
            let row = db
                .conn()
                .query_one_raw(einfo_common::db::stmt(db.backend(), "SELECT last_error FROM rep_outbox", []))
                .await
                .ok()??;
            let e: String = row.try_get_by_index(0).ok()?;
            (!e.is_empty()).then_some(e)
        }
    })
    .await;
    db.close().await.unwrap();
    assert!(error.starts_with("receipt rejected"), "{error}");
    assert!(proxy.corrupted_frames() > 0);
    let got =
        r79.get_report(rep::GetReportRequest { name: submitted.name.clone(), version: 1 }).await.unwrap().into_inner();
    assert!(got.version.unwrap().receipt.is_none(), "a tampered receipt is not stored");

    proxy.set_mode(ProxyMode::Pass);
    let stored = eventually("the true receipt is stored", || {
        let mut r = r79.clone();
        let name = submitted.name.clone();
        async move {
            let got = r.get_report(rep::GetReportRequest { name, version: 1 }).await.ok()?.into_inner();
            got.version?.receipt
        }
    })
    .await;
    assert_eq!(verify(&pk, &stored), Ok(()));
    let rows = g.gateway().central().completeness(&c.name).await.unwrap();
    assert_eq!(rows[0].timeliness, einfo_proto::reporting::v1::Timeliness::OnTime);
}

async fn the_campaign_feed_of_the_gateway_resumes_after_a_node_restart_without_repeating(backend: Backend) {
    let Some(g) = TestGateway::start(backend, &[]).await else { return };
    let Some(mut node) = node_reporting_to(backend, &g, g.url(), &["01"]).await else { return };
    let first = create_campaign(&g, &["01"], in_secs(3600)).await;
    eventually("the first campaign reaches the node", || async {
        (campaigns_of(&node, "01").await == vec![first.name.clone()]).then_some(())
    })
    .await;
    node.stop().await;
    let second = create_campaign(&g, &["01"], in_secs(7200)).await;
    create_campaign(&g, &["79"], in_secs(7200)).await;
    node.start_again_same_port().await;
    let mut both = vec![first.name.clone(), second.name.clone()];
    both.sort();
    eventually("the second campaign reaches the restarted node", || async {
        (campaigns_of(&node, "01").await == both).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(campaigns_of(&node, "01").await, both, "each once");
    assert_eq!(count_received_campaigns(&node).await, 2, "each received once");
}

both_backends!(
    search_finds_sites_by_unaccented_name_by_registrable_or_exact_domain_and_by_any_written_tax_code,
    conflicts_name_domains_held_in_several_provinces_and_sites_unlicensed_here_but_licensed_there,
    a_fan_out_answers_within_its_deadline_naming_the_slow_province_and_listing_the_others,
    a_directory_change_is_followed_at_once_and_only_an_admin_may_make_one,
    expiring_licences_overdue_applications_and_enforcement_figures_are_national_and_exact,
    campaign_completeness_counts_expected_submitted_on_time_late_and_missing,
    a_receipt_of_the_gateway_verifies_with_its_key_and_a_tampered_one_is_refused,
    the_campaign_feed_of_the_gateway_resumes_after_a_node_restart_without_repeating,
);
