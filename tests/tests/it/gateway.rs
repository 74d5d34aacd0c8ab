//! The national gateway's features on small federations (one to three provinces per node), each
//! with literal figures: national search (accent-free names, registrable and exact domains, tax
//! codes in any written form, one criterion only), conflicts between provinces, live fan-out with
//! a slow node, and the directory moved at run time. National lists and figures, campaigns,
//! receipts and the campaign feed are in `gateway_campaigns.rs`; integrity alarms in
//! `gateway_integrity.rs`.

use std::time::{Duration, Instant};

use einfo_common::auth::{BearerToken, Caller};
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::fixtures::{OWNER, license, register_in};
use einfo_testkit::gateway::{partial, strict};
use einfo_testkit::{
    Backend, ProxyMode, SiteExt, TcpProxy, TestGateway, TestNode, both_backends, eventually, in_secs, province, site,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::refusals::{fields, reason};

pub(crate) const DAY: i64 = 86_400;

pub(crate) fn j(code: &str) -> String {
    province(code).to_string()
}

/// Registers a site found by a sweep (UNLICENSED) in province `code`, owned by the test owner.
pub(crate) async fn register(node: &TestNode, code: &str, name: &str, domains: &[&str]) -> pb::Site {
    register_in(node, code, site(name, domains)).await
}

/// A site of province `code` licensed on its application, the licence expiring at `expire`.
pub(crate) async fn licensed(node: &TestNode, code: &str, domain: &str, expire: prost_types::Timestamp) -> pb::Licence {
    let s = site(&format!("Trang {domain}"), &[domain]).found_by(pb::DiscoverySource::Application);
    let s = register_in(node, code, s).await;
    license(&mut node.registry(code).await, &s, expire).await
}

/// Nodes hosting `groups` of provinces and a gateway whose directory names each province's node.
pub(crate) async fn federation(backend: Backend, groups: &[&[&str]]) -> Option<(Vec<TestNode>, TestGateway)> {
    let mut nodes = Vec::new();
    for g in groups {
        nodes.push(TestNode::start(backend, g).await?);
    }
    let g = TestGateway::start(backend, &directory_of(&nodes)).await?;
    Some((nodes, g))
}

pub(crate) fn directory_of(nodes: &[TestNode]) -> Vec<(Jurisdiction, String)> {
    nodes
        .iter()
        .flat_map(|n| n.settings.provinces.iter().map(|p| (province(p), format!("http://{}", n.addr))))
        .collect()
}

/// The 63 provinces but `configured`, as PARTIAL answers name them.
pub(crate) fn unconfigured(configured: &[&str]) -> Vec<String> {
    einfo_domain::Scheme::P63
        .provinces()
        .iter()
        .map(|p| p.jurisdiction().to_string())
        .filter(|x| !configured.iter().any(|c| j(c) == *x))
        .collect()
}

pub(crate) fn missing_names(missing: &[gw::JurisdictionFreshness]) -> Vec<String> {
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
    let owned = |name: &str, domain: &str, tax_code: &str| site(name, &[domain]).owned_by(OWNER, tax_code);
    register_in(node, "01", owned("Trang tin Hà Nội", "tintuc-hanoi.vn", "0100 109 106")).await;
    register_in(node, "01", owned("Báo điện tử Hà Nam", "www.example.vn", "0100109106-001")).await;
    register_in(node, "79", owned("Cổng thông tin Sài Gòn", "sub.example.vn", "0100109106-002")).await;
    g.wait_caught_up(&[node]).await;

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
        (by_name(&vec!["ha"; 1001].join(" ")), "name_query", "1,001 words (once INTERNAL)"),
        (by_name(&"a".repeat(301)), "name_query", "301 characters"),
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
    register(a, "01", "Tin trùng Hà Nội", &["trungnhau.vn"]).await;
    register(b, "48", "Tin trùng Đà Nẵng", &["www.trungnhau.vn"]).await;
    // Unlicensed in 79, licensed in 48.
    register(a, "79", "Cấp phép Sài Gòn", &["capphep.vn"]).await;
    licensed(b, "48", "capphep.vn", in_secs(365 * DAY)).await;
    // No conflict: two subdomains in one province; a domain whose other holder is voided.
    register(a, "01", "Riêng A", &["a.rieng.vn"]).await;
    register(a, "01", "Riêng B", &["b.rieng.vn"]).await;
    let voided = register(a, "79", "Đã hủy", &["dahuy.vn"]).await;
    register(b, "48", "Còn hoạt động", &["dahuy.vn"]).await;
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
    g.wait_caught_up(&[a, b]).await;

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
    register(&a, "01", "Chủ Hà Nội", &["holder.vn"]).await;
    register(&a, "01", "Khác", &["other.vn"]).await;
    register(&a, "48", "Chủ Đà Nẵng", &["shop.holder.vn"]).await;
    register(&b, "79", "Chủ Sài Gòn", &["www.holder.vn"]).await;
    licensed(&b, "79", "giayphep.vn", in_secs(365 * DAY)).await;
    g.wait_caught_up(&[&a, &b]).await;

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
    let r = eventually("79 answers the live summary again", || async {
        let r = g.national().get_live_summary(gw::GetLiveSummaryRequest { node_timeout: None }).await;
        let r = r.expect("live summary").into_inner();
        r.failures.is_empty().then_some(r)
    })
    .await;
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
    register(&node, "01", "Trang một", &["mot.vn"]).await;
    let f = eventually("01 unreachable at its stale endpoint", || async {
        let f = freshness_of(&g, "01").await;
        (f.state() == gw::FreshnessState::Unreachable).then_some(f)
    })
    .await;
    assert_eq!(f.endpoint, stale);
    assert_eq!(f.registry_sequence, 0);

    // Moved to a proxy in front of the node: replication starts there.
    let proxy = TcpProxy::start(node.addr).await;
    let set = set_endpoint(&g, &j("01"), &format!("  {}  ", proxy.url())).await.expect("endpoint set");
    assert_eq!(set, gw::DirectoryEntry { jurisdiction: j("01"), endpoint: proxy.url() });
    let listed = g.directory().list_endpoints(gw::ListEndpointsRequest {}).await.unwrap().into_inner().entries;
    assert_eq!(listed, vec![set.clone()]);
    g.wait_caught_up(&[&node]).await;
    assert_eq!(names_in(&g, "01").await, vec!["Trang một"]);
    assert!(proxy.connections() > 0, "the gateway went through the new endpoint");
    assert_eq!(freshness_of(&g, "01").await.endpoint, proxy.url());

    // Moved again, straight to the node, and the proxy removed: new sites still arrive.
    set_endpoint(&g, &j("01"), &format!("http://{}", node.addr)).await.expect("endpoint moved");
    drop(proxy);
    register(&node, "01", "Trang hai", &["hai.vn"]).await;
    g.wait_caught_up(&[&node]).await;
    assert_eq!(names_in(&g, "01").await, vec!["Trang hai", "Trang một"]);

    // A restarted gateway keeps the directory as changed.
    let mut g = g;
    g.stop().await;
    g.start_again_same_port().await;
    let listed = g.directory().list_endpoints(gw::ListEndpointsRequest {}).await.unwrap().into_inner().entries;
    assert_eq!(listed, vec![gw::DirectoryEntry { jurisdiction: j("01"), endpoint: format!("http://{}", node.addr) }]);
    g.wait_caught_up(&[&node]).await;

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

/// The gateway answers health alone, in plaintext and without a token, on `health_listen`.
async fn the_gateway_answers_health_probes_on_an_address_of_their_own() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    let Some(db) = einfo_testkit::TestDb::new(einfo_testkit::Backend::Sqlite).await else { return };
    let mut s = einfo_testkit::gateway::gateway_settings(&db);
    s.health_listen = Some("127.0.0.1:0".parse().expect("an address"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let g = einfo_app::gateway::start_with_clock(&s, listener, einfo_common::clock::system()).await.expect("a gateway");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", g.health_addr.expect("a health address")))
            .expect("url")
            .connect_lazy();
    let mut probe = einfo_testkit::tonic_health_client(channel.clone());
    for name in ["", einfo_gateway::NATIONAL_GRPC] {
        let r = probe.check(HealthCheckRequest { service: name.into() }).await.expect("health").into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "'{name}'");
    }
    let other = gw::national_service_client::NationalServiceClient::new(channel)
        .get_replication_status(gw::GetReplicationStatusRequest {})
        .await
        .expect_err("only health there");
    assert_eq!(other.code(), Code::Unimplemented, "{other:?}");
    g.stop().await.expect("stopped");
}

both_backends!(
    search_finds_sites_by_unaccented_name_by_registrable_or_exact_domain_and_by_any_written_tax_code,
    conflicts_name_domains_held_in_several_provinces_and_sites_unlicensed_here_but_licensed_there,
    a_fan_out_answers_within_its_deadline_naming_the_slow_province_and_listing_the_others,
    a_directory_change_is_followed_at_once_and_only_an_admin_may_make_one;
    plain: the_gateway_answers_health_probes_on_an_address_of_their_own
);
