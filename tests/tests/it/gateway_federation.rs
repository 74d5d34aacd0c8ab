//! The national view over 63 provinces on real nodes (three multi-province nodes and five
//! single-province ones): the summary equals the sum computed from the seed, the 34-province
//! grouping equals the 63-province figures regrouped through the merger table, five nodes
//! stopped make STRICT fail naming exactly their provinces while PARTIAL answers in time with
//! the rest exact, the gateway catches up after they restart without counting anything twice, a
//! voided site leaves the totals, and `WatchNationalSummary` sends an update after a
//! registration.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::gateway::v1 as gw;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::gateway::{partial, strict};
use einfo_testkit::{
    Backend, RegistryClient, SiteExt, TestDb, TestGateway, TestNode, both_backends, eventually, fixtures, in_secs,
    settings, site,
};
use tonic_types::StatusExt;

/// (jurisdiction, kind, legal status) → sites.
type Figures = BTreeMap<(String, String, i32), i64>;

async fn register(c: &mut RegistryClient, code: &str, kind: &str, n: usize) -> pb::Site {
    let s = site(&format!("Trang tin {code} số {n}"), &[&format!("trang-{code}-{n}.vn")]).of_kind(kind);
    fixtures::register(c, &format!("provinces/2008-{code}"), s).await
}

fn count(f: &mut Figures, s: &pb::Site, by: i64) {
    *f.entry((s.jurisdiction.clone(), s.kind.clone(), s.legal_status)).or_default() += by;
}

/// Figures of a summary, by jurisdiction (units of a 63-province summary are jurisdictions).
fn figures_of(s: &gw::NationalSummary) -> Figures {
    let mut f = Figures::new();
    for u in &s.units {
        for c in &u.cells {
            f.insert((u.unit.clone(), c.kind.clone(), c.legal_status), c.count);
        }
    }
    f
}

fn regroup(f: &Figures) -> Figures {
    let mut out = Figures::new();
    for ((j, k, s), n) in f {
        let unit = Jurisdiction::parse(j).unwrap().successor().unwrap().to_string();
        *out.entry((unit, k.clone(), *s)).or_default() += n;
    }
    out
}

fn totals(f: &Figures) -> BTreeMap<(String, i32), i64> {
    let mut out = BTreeMap::new();
    for ((_, k, s), n) in f {
        *out.entry((k.clone(), *s)).or_default() += n;
    }
    out
}

fn check_totals(s: &gw::NationalSummary, want: &Figures) {
    let got: BTreeMap<(String, i32), i64> =
        s.totals.iter().map(|c| ((c.kind.clone(), c.legal_status), c.count)).collect();
    assert_eq!(got, totals(want), "national totals");
    assert_eq!(s.total, want.values().sum::<i64>(), "national total");
}

async fn summary(g: &TestGateway, options: Option<gw::QueryOptions>) -> Result<gw::NationalSummary, tonic::Status> {
    g.national().get_national_summary(gw::GetNationalSummaryRequest { options }).await.map(|r| r.into_inner())
}

async fn heads(nodes: &[TestNode]) -> Vec<(Jurisdiction, u64)> {
    let mut out = Vec::new();
    for n in nodes {
        for p in &n.settings.provinces {
            out.push((Jurisdiction::province(Scheme::P63, p).unwrap(), n.last_sequence(p).await));
        }
    }
    out
}

async fn federation(backend: Backend) {
    let codes: Vec<String> = Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect();
    let mut groups: Vec<Vec<String>> = vec![codes[..20].to_vec(), codes[20..40].to_vec(), codes[40..58].to_vec()];
    groups.extend(codes[58..].iter().map(|c| vec![c.clone()]));
    assert_eq!(groups.len(), 8);
    let mut nodes = Vec::new();
    for g in &groups {
        let Some(db) = TestDb::new(backend).await else { return };
        let refs: Vec<&str> = g.iter().map(String::as_str).collect();
        let s = settings(&db, &refs);
        nodes.push(TestNode::start_on(db, s, Default::default()).await);
    }
    let directory: Vec<(Jurisdiction, String)> = nodes
        .iter()
        .flat_map(|n| {
            n.settings
                .provinces
                .iter()
                .map(|p| (Jurisdiction::province(Scheme::P63, p).unwrap(), format!("http://{}", n.addr)))
        })
        .collect();
    assert_eq!(directory.len(), 63);
    let Some(g) = TestGateway::start(backend, &directory).await else { return };

    // Seed: 1 to 3 sites per province, of both kinds; an application in every fourth province;
    // a voided site in every fifth. The expected figures come from what the nodes answered.
    let mut want = Figures::new();
    for (i, code) in codes.iter().enumerate() {
        let node = nodes.iter().find(|n| n.settings.provinces.contains(code)).unwrap();
        let mut c = node.registry(code).await;
        let mut sites = Vec::new();
        for n in 0..=(i % 3) {
            let kind = if n % 2 == 0 { "general-website" } else { "social-network" };
            sites.push(register(&mut c, code, kind, n).await);
        }
        if i % 4 == 0 {
            c.submit_application(pb::SubmitApplicationRequest {
                application: Some(pb::LicenceApplication {
                    site: sites[0].name.clone(),
                    dossier_items: vec!["đơn đề nghị cấp phép".into()],
                    receive_time: Some(in_secs(-60)),
                    ..Default::default()
                }),
                request_id: format!("apply-{code}"),
            })
            .await
            .expect("application submitted");
            sites[0] = c.get_site(pb::GetSiteRequest { name: sites[0].name.clone() }).await.unwrap().into_inner();
        }
        if i % 5 == 0 && sites.len() > 1 {
            c.void_site(pb::VoidSiteRequest {
                name: sites[1].name.clone(),
                etag: sites[1].etag.clone(),
                reason: "nhập trùng".into(),
                request_id: format!("void-{code}"),
            })
            .await
            .expect("site voided");
            sites.remove(1);
        }
        for s in &sites {
            count(&mut want, s, 1);
        }
    }
    assert!(want.keys().any(|(_, _, s)| *s == pb::LegalStatus::Applied as i32), "the seed has applied sites");

    g.wait_synced(&heads(&nodes).await, Duration::from_secs(60)).await;
    let s = summary(&g, strict(gw::Grouping::Provinces63)).await.expect("STRICT summary with every province live");
    assert!(s.complete && s.missing.is_empty());
    assert_eq!(s.units.len(), 63);
    assert_eq!(figures_of(&s), want, "the national summary equals the seed");
    check_totals(&s, &want);

    // The 34-province grouping equals the 63-province figures regrouped.
    let s34 = summary(&g, strict(gw::Grouping::Provinces34)).await.expect("34-province summary");
    assert_eq!(s34.units.len(), 34);
    assert_eq!(figures_of(&s34), regroup(&want));
    check_totals(&s34, &want);
    assert!(s34.units.iter().any(|u| u.members.len() > 1), "merged units list their former provinces");

    // WatchNationalSummary sends a new summary after a registration.
    let mut watch = g
        .national()
        .watch_national_summary(gw::WatchNationalSummaryRequest { options: None })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.unwrap().unwrap().summary.unwrap();
    assert_eq!(first.total, want.values().sum::<i64>());
    let mut c01 = nodes[0].registry("01").await;
    let extra = register(&mut c01, "01", "general-website", 99).await;
    count(&mut want, &extra, 1);
    let updated = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let s = watch.message().await.unwrap().unwrap().summary.unwrap();
            if s.total == first.total + 1 {
                return s;
            }
        }
    })
    .await
    .expect("the watch sends the registration within 20 s");
    assert_eq!(figures_of(&updated), want);
    drop(watch);

    // Five single-province nodes stopped.
    let stopped: Vec<String> = codes[58..].iter().map(|c| format!("provinces/2008-{c}")).collect();
    for n in nodes.iter_mut().skip(3) {
        n.stop().await;
    }
    eventually("the gateway to see exactly the five nodes down", || async {
        let st = g.status().await;
        let down: Vec<String> = st
            .iter()
            .filter(|f| f.state() == gw::FreshnessState::Unreachable)
            .map(|f| f.jurisdiction.clone())
            .collect();
        (down == stopped).then_some(())
    })
    .await;
    let e = summary(&g, strict(gw::Grouping::Provinces63)).await.expect_err("STRICT fails");
    assert_eq!(e.code(), tonic::Code::Unavailable);
    let info = e.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "JURISDICTIONS_UNAVAILABLE");
    assert_eq!(info.metadata.get("jurisdictions").map(String::as_str), Some(stopped.join(",").as_str()));
    for j in &stopped {
        assert!(e.message().contains(j.as_str()), "{}", e.message());
    }

    let mut req = tonic::Request::new(gw::GetNationalSummaryRequest { options: partial(gw::Grouping::Provinces63) });
    req.set_timeout(Duration::from_secs(2));
    let t = Instant::now();
    let p = g.national().get_national_summary(req).await.expect("PARTIAL answers").into_inner();
    assert!(t.elapsed() < Duration::from_secs(3), "PARTIAL answered in {:?}", t.elapsed());
    assert!(!p.complete);
    let missing: Vec<&str> = p.missing.iter().map(|f| f.jurisdiction.as_str()).collect();
    assert_eq!(missing, stopped.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(p.missing.iter().all(|f| f.sync_time.is_some()), "each missing one says how fresh its data is");
    let rest = |f: &Figures| -> Figures {
        f.iter().filter(|((j, _, _), _)| !stopped.contains(j)).map(|(k, v)| (k.clone(), *v)).collect()
    };
    assert_eq!(rest(&figures_of(&p)), rest(&want), "the rest is exact");

    // Restarted, written to, caught up: nothing counted twice.
    for n in nodes.iter_mut().skip(3) {
        n.start_again_same_port().await;
    }
    let code = codes[60].clone();
    let mut c = nodes[5].registry(&code).await;
    let late = register(&mut c, &code, "social-network", 7).await;
    count(&mut want, &late, 1);
    g.wait_synced(&heads(&nodes).await, Duration::from_secs(60)).await;
    let s = summary(&g, strict(gw::Grouping::Provinces63)).await.expect("STRICT again after the restart");
    assert_eq!(figures_of(&s), want, "caught up, nothing counted twice");
    check_totals(&s, &want);

    // A voided site disappears from the national totals.
    c.void_site(pb::VoidSiteRequest {
        name: late.name.clone(),
        etag: late.etag.clone(),
        reason: "đăng ký nhầm tỉnh".into(),
        request_id: "void-late".into(),
    })
    .await
    .expect("voided");
    count(&mut want, &late, -1);
    want.retain(|_, n| *n != 0);
    g.wait_synced(&heads(&nodes).await, Duration::from_secs(30)).await;
    let s = summary(&g, strict(gw::Grouping::Provinces63)).await.unwrap();
    assert_eq!(figures_of(&s), want, "the voided site is gone");
    check_totals(&s, &want);
}

/// A node that runs registry alone answers a read of its inspection log with `SERVICE_NOT_RUN`
/// (and an unknown service with a field violation), and the gateway, which tells the two apart
/// by that reason and not by the wording of the message, counts the province live.
async fn a_node_running_registry_alone_is_live_at_the_gateway_with_no_inspection_log(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let s = settings(&db, &["01"]);
    let node = TestNode::start_role(db, s, einfo_testkit::NodeRole::Registry).await;
    let read = |service: &str| einfo_proto::log::v1::GetLogHeadRequest {
        jurisdiction: "provinces/2008-01".into(),
        service: service.into(),
    };
    let not_run = node.changelog().await.get_log_head(read("inspection")).await.expect_err("not run here");
    let info = not_run.get_details_error_info().expect("an ErrorInfo");
    assert_eq!((not_run.code(), info.reason.as_str()), (tonic::Code::Unimplemented, "SERVICE_NOT_RUN"), "{not_run:?}");
    let unknown = node.changelog().await.get_log_head(read("weather")).await.expect_err("no such service");
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument, "{unknown:?}");
    let field = unknown.get_details_bad_request().expect("field violations").field_violations[0].field.clone();
    assert_eq!(field, "service");

    let mut c = node.registry("01").await;
    register(&mut c, "01", "general-website", 1).await;
    let Some(g) =
        TestGateway::start(backend, &[(einfo_testkit::province("01"), format!("http://{}", node.addr))]).await
    else {
        return;
    };
    g.wait_synced(&[(einfo_testkit::province("01"), 1)], Duration::from_secs(20)).await;
    let f = g.status().await.into_iter().find(|f| f.jurisdiction == "provinces/2008-01").expect("01 listed");
    assert_eq!((f.state(), f.inspection_sequence), (gw::FreshnessState::Live, 0), "{f:?}");
}

both_backends!(federation, a_node_running_registry_alone_is_live_at_the_gateway_with_no_inspection_log);
