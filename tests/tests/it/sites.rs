//! Registering, reading, listing, updating, correcting and voiding sites.

use einfo_proto::registry::v1 as pb;
use einfo_testkit::fixtures::OWNER;
use einfo_testkit::{Backend, SiteExt, TestNode, both_backends, site};

async fn uppercase_idn_and_a_trailing_dot_are_accepted_and_normalised(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let s = c
        .register_site(pb::RegisterSiteRequest {
            parent: "provinces/2008-01".into(),
            // A tax code written with spaces, as it is often printed.
            site: Some(site("Báo Hà Nội", &["BÁO.VN."]).owned_by(OWNER, "0100 109 106")),
            request_id: "r1".into(),
        })
        .await
        .expect("registered")
        .into_inner();
    assert_eq!(s.domains, vec!["xn--bo-mia.vn".to_string()]);
    assert_eq!(s.domain_details[0].unicode, "báo.vn");
    assert_eq!(s.owner.unwrap().tax_code, "0100109106");
    assert_eq!(s.legal_status, pb::LegalStatus::Unlicensed as i32);
    assert!(s.name.starts_with("provinces/2008-01/sites/"));

    let got = c.get_site(pb::GetSiteRequest { name: s.name.clone() }).await.unwrap().into_inner();
    assert_eq!(got.display_name, "Báo Hà Nội");
    assert_eq!(node.last_sequence("01").await, 1);
}

async fn names_are_found_without_accents(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    for (i, (name, d)) in [("Báo Hà Nội mới", "hanoimoi.vn"), ("Tin Đà Nẵng", "tindanang.vn"), ("Thời sự", "thoisu.vn")]
        .into_iter()
        .enumerate()
    {
        c.register_site(pb::RegisterSiteRequest {
            parent: "provinces/2008-01".into(),
            site: Some(site(name, &[d])),
            request_id: format!("r{i}"),
        })
        .await
        .unwrap();
    }
    let find = |q: &str| pb::ListSitesRequest {
        parent: "provinces/2008-01".into(),
        name_query: q.into(),
        ..Default::default()
    };
    let names = |r: pb::ListSitesResponse| r.sites.into_iter().map(|s| s.display_name).collect::<Vec<_>>();
    assert_eq!(names(c.list_sites(find("ha noi")).await.unwrap().into_inner()), vec!["Báo Hà Nội mới"]);
    assert_eq!(names(c.list_sites(find("da nang")).await.unwrap().into_inner()), vec!["Tin Đà Nẵng"]);
    assert_eq!(names(c.list_sites(find("ĐÀ NẴNG")).await.unwrap().into_inner()), vec!["Tin Đà Nẵng"]);

    // A query has at most 16 words and 300 characters: past either it is refused naming the
    // field (a 1,001-word query once answered INTERNAL).
    let sixteen = vec!["xyz"; 16].join(" ");
    assert!(names(c.list_sites(find(&sixteen)).await.expect("16 words").into_inner()).is_empty());
    for (query, why) in [(vec!["ha"; 1001].join(" "), "1,001 words"), ("a".repeat(301), "301 characters")] {
        let refused = c.list_sites(find(&query)).await.expect_err(why);
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{why}: {refused:?}");
        let fields = crate::refusals::fields(&refused);
        assert_eq!(fields, vec!["name_query".to_owned()], "{why}");
    }
}

async fn pages_cover_every_site_once(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    for i in 0..7 {
        c.register_site(pb::RegisterSiteRequest {
            parent: "provinces/2008-01".into(),
            site: Some(site(&format!("Trang {i}"), &[&format!("trang{i}.vn")])),
            request_id: format!("r{i}"),
        })
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .list_sites(pb::ListSitesRequest {
                parent: "provinces/2008-01".into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(r.sites.into_iter().map(|s| s.display_name));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    let mut expected: Vec<String> = (0..7).map(|i| format!("Trang {i}")).collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

async fn update_correct_and_void_are_logged_and_a_voided_site_releases_its_domain(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let s = c
        .register_site(pb::RegisterSiteRequest {
            parent: "provinces/2008-01".into(),
            site: Some(site("Trang A", &["a-site.vn"])),
            request_id: "r1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let updated = c
        .update_site(pb::UpdateSiteRequest {
            site: Some(pb::Site {
                name: s.name.clone(),
                etag: s.etag.clone(),
                display_name: "Trang A mới".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
            request_id: "r2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.display_name, "Trang A mới");
    assert_eq!(updated.domains, s.domains, "fields outside the mask are kept");
    let corrected = c
        .correct_site(pb::CorrectSiteRequest {
            site: Some(pb::Site {
                name: s.name.clone(),
                etag: updated.etag.clone(),
                kind: "social-network".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["kind".into()] }),
            reason: "nhập sai loại".into(),
            request_id: "r3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(corrected.kind, "social-network");
    assert_eq!(corrected.reason, "nhập sai loại");
    let voided = c
        .void_site(pb::VoidSiteRequest {
            name: s.name.clone(),
            etag: corrected.etag.clone(),
            reason: "trùng lặp".into(),
            request_id: "r4".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(voided.voided);
    assert_eq!(node.last_sequence("01").await, 4);
    // The domain is free again.
    c.register_site(pb::RegisterSiteRequest {
        parent: "provinces/2008-01".into(),
        site: Some(site("Trang A (đăng ký lại)", &["a-site.vn"])),
        request_id: "r5".into(),
    })
    .await
    .expect("a voided site's domain can be registered again");
    let listed = c
        .list_sites(pb::ListSitesRequest { parent: "provinces/2008-01".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sites.len(), 1, "voided sites are not listed by default");
}

both_backends!(
    uppercase_idn_and_a_trailing_dot_are_accepted_and_normalised,
    names_are_found_without_accents,
    pages_cover_every_site_once,
    update_correct_and_void_are_logged_and_a_voided_site_releases_its_domain,
);
