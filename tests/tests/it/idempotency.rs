//! Idempotent mutations: copies of one request in flight serialise and give one answer; a
//! retry changes nothing; request ids are scoped to the caller.

use einfo_common::auth::{Caller, Role};
use einfo_proto::registry::v1 as pb;
use einfo_testkit::{Backend, TestNode, both_backends, province, site};

const HN: &str = "provinces/2008-01";

async fn two_copies_in_flight_and_a_later_retry_make_one_site(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let req = pb::RegisterSiteRequest {
        parent: HN.into(),
        site: Some(site("Báo Hà Nội", &["baohanoi.vn"])),
        request_id: "0190f1c2-7d4e-7a00-8000-000000000001".into(),
    };
    let (mut c1, mut c2) = (node.registry("01").await, node.registry("01").await);
    let (r1, r2) = tokio::join!(c1.register_site(req.clone()), c2.register_site(req.clone()));
    let s1 = r1.expect("first copy").into_inner();
    let s2 = r2.expect("second copy").into_inner();
    let s3 = c1.register_site(req.clone()).await.expect("a later retry").into_inner();
    assert_eq!(s1.name, s2.name, "two copies in flight give one site");
    assert_eq!(s1.name, s3.name, "a retry gives the first answer");
    assert_eq!(s1, s2, "the second copy's answer is the first's");
    assert_eq!(s1, s3, "the retry's answer is the first's");
    let listed = c1
        .list_sites(pb::ListSitesRequest { parent: HN.into(), ..Default::default() })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.sites.iter().map(|s| s.name.clone()).collect::<Vec<_>>(), vec![s1.name.clone()]);
    assert_eq!(node.last_sequence("01").await, 1);
}

async fn the_same_request_id_from_two_callers_does_not_collide(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let first = Caller { subject: "operator-01-a".into(), role: Role::Operator, jurisdiction: province("01") };
    let second = Caller { subject: "operator-01-b".into(), role: Role::Operator, jurisdiction: province("01") };
    let (mut c1, mut c2) = (node.registry_as(&first).await, node.registry_as(&second).await);
    let id = "shared-request-id";
    let req1 = pb::RegisterSiteRequest {
        parent: HN.into(),
        site: Some(site("Trang A", &["trang-a.vn"])),
        request_id: id.into(),
    };
    let req2 = pb::RegisterSiteRequest {
        parent: HN.into(),
        site: Some(site("Trang B", &["trang-b.vn"])),
        request_id: id.into(),
    };
    let a = c1.register_site(req1.clone()).await.expect("first caller").into_inner();
    let b = c2
        .register_site(req2.clone())
        .await
        .expect("the second caller's request id is its own: not a reuse of the first caller's")
        .into_inner();
    assert_ne!(a.name, b.name);
    assert_eq!(b.display_name, "Trang B");
    assert_eq!(node.last_sequence("01").await, 2);
    // Each caller's retry gives its own first answer and changes nothing.
    assert_eq!(c1.register_site(req1).await.expect("first caller's retry").into_inner(), a);
    assert_eq!(c2.register_site(req2).await.expect("second caller's retry").into_inner(), b);
    assert_eq!(node.last_sequence("01").await, 2);
    let listed = c1
        .list_sites(pb::ListSitesRequest { parent: HN.into(), ..Default::default() })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.sites.len(), 2);
}

both_backends!(
    two_copies_in_flight_and_a_later_retry_make_one_site,
    the_same_request_id_from_two_callers_does_not_collide,
);
