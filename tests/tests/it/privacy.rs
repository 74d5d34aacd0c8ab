//! Personal data: a person's identification number, address and contact reach only the
//! province's own operators, inspectors and services unmasked — each such read recorded — and
//! reach its reporting officers and the centre (its own reads, and the national store's answers)
//! masked. An organisation's data is nobody's personal data.

use einfo_common::auth::{Caller, Role};
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::fixtures::register_in;
use einfo_testkit::gateway::partial;
use einfo_testkit::{Backend, TestGateway, TestNode, both_backends, province, site};
use sea_orm::ConnectionTrait as _;

const ID: &str = "001204012345";
const ADDRESS: &str = "12 Hàng Bài, Hoàn Kiếm, Hà Nội";

fn person_site() -> pb::Site {
    let mut s = site("Blog của Nguyễn Văn A", &["nguyenvana.vn"]);
    s.owner = Some(pb::Owner {
        kind: pb::OwnerKind::Person as i32,
        display_name: "Nguyễn Văn A".into(),
        tax_code: ID.into(),
        address: ADDRESS.into(),
        contact: "0912 345 678".into(),
        ..Default::default()
    });
    s
}

/// The access log of `node`: (subject, role, method, resource).
async fn reads(node: &TestNode) -> Vec<(String, String, String, String)> {
    let db = node.db.connect().await;
    let rows = db
        .conn()
        .query_all_raw(einfo_common::db::stmt(
            db.backend(),
            "SELECT subject, role, method, resource FROM personal_data_reads ORDER BY read_at, resource",
            [],
        ))
        .await
        .expect("the access log");
    let out = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
                r.try_get_by_index(3).unwrap(),
            )
        })
        .collect();
    db.close().await.expect("closed");
    out
}

fn owner_of(s: &pb::Site) -> (String, String, String) {
    let o = s.owner.clone().expect("an owner");
    (o.tax_code, o.address, o.contact)
}

async fn a_persons_number_and_address_reach_only_the_provinces_own_roles_that_need_them(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    let person = register_in(&node, "01", person_site()).await;
    let organisation = register_in(&node, "01", site("Báo điện tử Thủ Đô", &["thudo.vn"])).await;
    assert!(reads(&node).await.is_empty(), "writing is not reading");
    let unmasked = (ID.to_string(), ADDRESS.to_string(), "0912 345 678".to_string());
    let masked = ("*********345".to_string(), "***".to_string(), "***".to_string());
    let p01 = province("01");
    let caller = |role, jurisdiction: Jurisdiction| Caller { subject: format!("{role}-x"), role, jurisdiction };

    // The province's inspector reads it whole, and the read is recorded.
    let mut inspector = node.registry_as(&TestNode::inspector("01")).await;
    let got = inspector.get_site(pb::GetSiteRequest { name: person.name.clone() }).await.expect("read").into_inner();
    assert_eq!(owner_of(&got), unmasked);
    let listed = inspector
        .list_sites(pb::ListSitesRequest { parent: p01.to_string(), ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    let listed_person = listed.sites.iter().find(|s| s.name == person.name).expect("listed");
    assert_eq!(owner_of(listed_person), unmasked);
    let inspector_subject = TestNode::inspector("01").subject;
    assert_eq!(
        reads(&node).await,
        vec![
            (inspector_subject.clone(), "inspector".into(), "GetSite".into(), person.name.clone()),
            (inspector_subject.clone(), "inspector".into(), "ListSites".into(), person.name.clone()),
        ],
        "who, how and what; the organisation's site is not personal data"
    );

    // The province's reporting officer and the centre read it masked, and nothing is recorded.
    for who in [
        caller(Role::Reporter, p01),
        caller(Role::CentralAnalyst, Jurisdiction::Central),
        caller(Role::CentralAdmin, Jurisdiction::Central),
    ] {
        let mut r = node.registry_as(&who).await;
        let got = r.get_site(pb::GetSiteRequest { name: person.name.clone() }).await.expect("read").into_inner();
        assert_eq!(owner_of(&got), masked, "{}", who.role);
        assert_eq!(got.owner.as_ref().unwrap().display_name, "Nguyễn Văn A");
        let listed = r
            .list_sites(pb::ListSitesRequest { parent: p01.to_string(), ..Default::default() })
            .await
            .expect("list")
            .into_inner();
        assert_eq!(owner_of(listed.sites.iter().find(|s| s.name == person.name).unwrap()), masked);
        let org = r.get_site(pb::GetSiteRequest { name: organisation.name.clone() }).await.unwrap().into_inner();
        assert_eq!(org.owner, organisation.owner, "an organisation's data is not masked");
    }
    assert_eq!(reads(&node).await.len(), 2, "masked reads are not recorded");

    // The national store answers the centre masked, though it replicated the register whole.
    let Some(g) = TestGateway::start(backend, &[(p01, format!("http://{}", node.addr))]).await else { return };
    g.wait_caught_up_on(&node, &["01"]).await;
    let found = g
        .national()
        .search_sites(gw::SearchSitesRequest {
            options: partial(gw::Grouping::Provinces63),
            name_query: "nguyen van a".into(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    let national = found.sites.iter().find(|s| s.site.as_ref().is_some_and(|x| x.name == person.name)).expect("found");
    assert_eq!(owner_of(national.site.as_ref().unwrap()), masked);
}

both_backends!(a_persons_number_and_address_reach_only_the_provinces_own_roles_that_need_them);
