//! Bulk import of a province's existing list from CSV.

use einfo_proto::registry::v1 as pb;
use einfo_testkit::{Backend, RegistryClient, TestNode, both_backends};

use crate::refusals::fields;

const P01: &str = "provinces/2008-01";
const HEADER: &str =
    "kind,display_name,domains,owner_kind,owner_name,owner_tax_code,hosting,operational_state,discovery_source,notes";

fn csv(rows: &[&str]) -> Vec<u8> {
    let mut s = String::from(HEADER);
    for r in rows {
        s.push('\n');
        s.push_str(r);
    }
    s.push('\n');
    s.into_bytes()
}

/// Five good rows (lines 2 to 6).
const GOOD: [&str; 5] = [
    "general-website,Báo Hà Nội,baohanoi.vn,organisation,Công ty A,0100109106,in_vietnam,active,sweep,",
    "general-website,Tin Hải Phòng,tinhaiphong.vn www.tinhaiphong.com.vn,organisation,Công ty B,0100109106,abroad,inactive,complaint,ghi chú",
    "social-network,Mạng xã hội Việt,mxhviet.vn,organisation,Công ty C,,mixed,unreachable,referral,",
    "social-network,Diễn đàn Sông Hồng,songhong.vn,person,Trần Văn Nam,0100109106,in_vietnam,active,application,",
    "general-website,Thông tin Tây Bắc,TÂYBẮC.VN,organisation,Công ty E,0100109106,,,,",
];

/// Five rows of which three are bad, each in another way: line 3 an unknown kind, line 4 a tax
/// code with a wrong check digit, line 6 a domain with an empty label.
const MIXED: [&str; 5] = [
    "general-website,Báo Hà Nội,baohanoi.vn,organisation,Công ty A,0100109106,in_vietnam,active,sweep,",
    "blog,Nhật ký,nhatky.vn,organisation,Công ty B,0100109106,in_vietnam,active,sweep,",
    "general-website,Tin nhanh,tinnhanh.vn,organisation,Công ty C,0100109107,in_vietnam,active,sweep,",
    "social-network,Mạng xã hội Việt,mxhviet.vn,organisation,Công ty D,0100109106,abroad,active,referral,",
    "general-website,Tin sai,tin..sai.vn,organisation,Công ty E,0100109106,in_vietnam,active,sweep,",
];

fn lines_and_fields(errors: &[pb::ImportRowError]) -> Vec<(u32, &str)> {
    errors.iter().map(|e| (e.line, e.field.as_str())).collect()
}

async fn site_names(c: &mut RegistryClient) -> Vec<String> {
    c.list_sites(pb::ListSitesRequest { parent: P01.into(), ..Default::default() })
        .await
        .expect("listed")
        .into_inner()
        .sites
        .into_iter()
        .map(|s| s.name)
        .collect()
}

fn import(data: Vec<u8>, dry_run: bool, request_id: &str) -> pb::ImportSitesRequest {
    pb::ImportSitesRequest { parent: P01.into(), csv: data, dry_run, request_id: request_id.into() }
}

async fn a_dry_run_reports_every_bad_row_and_changes_nothing(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    c.import_sites(import(csv(&GOOD[4..]), false, "first")).await.expect("one site imported");
    assert_eq!(node.last_sequence("01").await, 1);

    let r = c.import_sites(import(csv(&MIXED), true, "")).await.expect("a dry run answers").into_inner();
    assert_eq!(lines_and_fields(&r.errors), [(3, "kind"), (4, "owner_tax_code"), (6, "domains")]);
    assert!(r.errors.iter().all(|e| !e.description.is_empty()));
    assert!(r.errors[0].description.contains("blog"), "{}", r.errors[0].description);
    assert_eq!(r.row_count, 2, "the good rows");
    assert!(r.sites.is_empty());

    // A clean dry run creates nothing either.
    let r = c.import_sites(import(csv(&GOOD[..4]), true, "")).await.unwrap().into_inner();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.row_count, 4);
    assert!(r.sites.is_empty());

    assert_eq!(node.last_sequence("01").await, 1, "a dry run changes nothing");
    assert_eq!(site_names(&mut c).await.len(), 1);
}

async fn an_import_is_all_or_nothing_and_idempotent(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;

    let err = c.import_sites(import(csv(&MIXED), false, "mixed")).await.expect_err("bad rows refuse the import");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(fields(&err), ["csv.line[3].kind", "csv.line[4].owner_tax_code", "csv.line[6].domains"]);
    assert_eq!(node.last_sequence("01").await, 0, "nothing imported");
    assert!(site_names(&mut c).await.is_empty());

    let first = c.import_sites(import(csv(&GOOD), false, "good")).await.expect("imported").into_inner();
    assert!(first.errors.is_empty());
    assert_eq!(first.row_count, 5);
    assert_eq!(first.sites.len(), 5);
    assert_eq!(node.last_sequence("01").await, 5, "one CREATE entry per site");
    let mut listed = site_names(&mut c).await;
    listed.sort();
    let mut created = first.sites.clone();
    created.sort();
    assert_eq!(listed, created);
    // File order.
    let names: Vec<String> = {
        let mut out = Vec::new();
        for n in &first.sites {
            out.push(c.get_site(pb::GetSiteRequest { name: n.clone() }).await.unwrap().into_inner().display_name);
        }
        out
    };
    assert_eq!(names, ["Báo Hà Nội", "Tin Hải Phòng", "Mạng xã hội Việt", "Diễn đàn Sông Hồng", "Thông tin Tây Bắc"]);
    let last = c.get_site(pb::GetSiteRequest { name: first.sites[4].clone() }).await.unwrap().into_inner();
    assert_eq!(last.domain_details[0].unicode, "tâybắc.vn");
    assert_eq!(last.domains, [last.domain_details[0].ascii.clone()]);
    assert!(last.domains[0].starts_with("xn--"), "{:?}", last.domains);
    assert_eq!(last.legal_status(), pb::LegalStatus::Unlicensed);

    // A retry returns the first answer and changes nothing.
    let again = c.import_sites(import(csv(&GOOD), false, "good")).await.expect("a retry answers").into_inner();
    assert_eq!(again, first);
    assert_eq!(node.last_sequence("01").await, 5, "a retry changes nothing");
    assert_eq!(site_names(&mut c).await.len(), 5);

    // The same id with another file.
    let err = c.import_sites(import(csv(&GOOD[..2]), false, "good")).await.expect_err("another body");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    // A row whose domain is already held in the jurisdiction is reported, on a dry run and on
    // an import.
    let taken = csv(&[
        "general-website,Trang mới,trangmoi.vn,organisation,Công ty F,0100109106,in_vietnam,active,sweep,",
        "general-website,Báo Hà Nội (bản sao),BAOHANOI.VN,organisation,Công ty G,0100109106,in_vietnam,active,sweep,",
    ]);
    let r = c.import_sites(import(taken.clone(), true, "")).await.unwrap().into_inner();
    assert_eq!(lines_and_fields(&r.errors), [(3, "domains")]);
    assert!(r.errors[0].description.contains("baohanoi.vn"), "{}", r.errors[0].description);
    assert!(r.errors[0].description.contains(&first.sites[0]), "names the holder: {}", r.errors[0].description);
    let err = c.import_sites(import(taken, false, "taken")).await.expect_err("a held domain refuses the import");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(fields(&err), ["csv.line[3].domains"]);
    assert_eq!(node.last_sequence("01").await, 5);
}

async fn vietnamese_text_in_nfd_comes_back_nfc(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    // Decomposed: "Tin tức", "Nguyễn Văn Tuấn", "Ghi chú".
    let name_nfd = "Tin tu\u{31B}\u{301}c";
    let owner_nfd = "Nguye\u{302}\u{303}n Va\u{306}n Tua\u{302}\u{301}n";
    let notes_nfd = "Ghi chu\u{301}";
    let row = format!(
        "general-website,{name_nfd},tintuc.vn,person,{owner_nfd},0100109106,in_vietnam,active,sweep,{notes_nfd}"
    );
    let r = c.import_sites(import(csv(&[&row]), false, "nfd")).await.expect("imported").into_inner();
    assert_eq!(r.sites.len(), 1);
    let s = c.get_site(pb::GetSiteRequest { name: r.sites[0].clone() }).await.unwrap().into_inner();
    let owner_nfc = "Nguy\u{1EC5}n V\u{103}n Tu\u{1EA5}n";
    assert_ne!(owner_nfd, owner_nfc, "the input really is decomposed");
    assert_eq!(s.owner.as_ref().unwrap().display_name, owner_nfc);
    assert_eq!(s.owner.as_ref().unwrap().display_name, "Nguyễn Văn Tuấn");
    assert_eq!(s.display_name, "Tin t\u{1EE9}c");
    assert_eq!(s.notes, "Ghi ch\u{FA}");
    assert_eq!(s.owner.as_ref().unwrap().kind(), pb::OwnerKind::Person);

    // The name is found without accents, and the log holds the NFC form.
    let found = c
        .list_sites(pb::ListSitesRequest { parent: P01.into(), name_query: "tin tuc".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .sites;
    assert_eq!(found.len(), 1);
    let mut log = node.changelog().await;
    let mut stream = log
        .stream_changes(einfo_proto::log::v1::StreamChangesRequest {
            jurisdiction: P01.into(),
            service: "registry".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let entry = einfo_testkit::fixtures::next_entry(&mut stream).await.unwrap().expect("one entry");
    let logged = entry.state.unwrap().to_msg::<pb::Site>().unwrap();
    assert_eq!(logged.owner.unwrap().display_name, owner_nfc);
}

both_backends!(
    a_dry_run_reports_every_bad_row_and_changes_nothing,
    an_import_is_all_or_nothing_and_idempotent,
    vietnamese_text_in_nfd_comes_back_nfc,
);
