//! Bad input to the registry: one row per rule. Each row names the gRPC code, the
//! `google.rpc.ErrorInfo` reason and (for `INVALID_ARGUMENT`, and wherever the contract names a
//! field) the `google.rpc.BadRequest` field path, and checks that the failed call changed nothing:
//! the registry logs' last sequences are the same before and after.

use einfo_proto::registry::v1 as pb;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use einfo_testkit::fixtures::OWNER;
use einfo_testkit::{Backend, RegistryClient, SiteExt, TestNode, both_backends, in_secs, site};
use tonic::Code;

use crate::refusals::{self, fields, problems, reason};

const HN: &str = "provinces/2008-01";

/// The weights of the first nine digits of a 10-digit tax code.
const WEIGHTS: [u32; 9] = [31, 29, 23, 19, 17, 13, 7, 5, 3];

/// The check value of nine digits: 10 − (weighted sum mod 11); 10 means no valid code.
fn check_value(nine: &str) -> u32 {
    assert_eq!(nine.len(), 9, "{nine}");
    let sum: u32 = nine.bytes().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    10 - sum % 11
}

/// A 10-digit tax code: `nine` followed by its own check digit.
fn with_check(nine: &str) -> String {
    let c = check_value(nine);
    assert!(c < 10, "{nine} has no check digit");
    format!("{nine}{c}")
}

fn with_domain(domain: &str) -> pb::Site {
    site("Trang mới", &[domain])
}

fn with_tax_code(tax_code: &str) -> pb::Site {
    site("Trang mới", &["trang-moi.vn"]).owned_by(OWNER, tax_code)
}

fn with_name(name: &str) -> pb::Site {
    site(name, &["trang-moi.vn"])
}

fn register(parent: &str, site: pb::Site, request_id: &str) -> pb::RegisterSiteRequest {
    pb::RegisterSiteRequest { parent: parent.into(), site: Some(site), request_id: request_id.into() }
}

/// The call a row makes.
enum Call {
    /// RegisterSite as the operator of 01.
    Register(pb::RegisterSiteRequest),
    /// RegisterSite with no bearer token.
    RegisterWithoutToken(pb::RegisterSiteRequest),
    /// UpdateSite as the operator of 01.
    Update(pb::UpdateSiteRequest),
    /// ListSites as the operator of 01.
    List(pb::ListSitesRequest),
    /// ApproveApplication as the operator of 01.
    Approve(pb::ApproveApplicationRequest),
}

impl Call {
    async fn run(self, node: &TestNode, c: &mut RegistryClient) -> Result<(), tonic::Status> {
        match self {
            Call::Register(r) => c.register_site(r).await.map(drop),
            Call::RegisterWithoutToken(r) => {
                RegistryServiceClient::new(node.channel().await).register_site(r).await.map(drop)
            }
            Call::Update(r) => c.update_site(r).await.map(drop),
            Call::List(r) => c.list_sites(r).await.map(drop),
            Call::Approve(r) => c.approve_application(r).await.map(drop),
        }
    }
}

/// One rule broken, by one of these calls.
type Row = refusals::Row<Call>;

/// What the seeded node holds for the rows to aim at.
struct Seeded {
    /// Site A: "trang-a.vn", registered with request id "seed-a"; has a pending application.
    a: pb::Site,
    /// Site B as it is now (updated once since it was registered).
    b: pb::Site,
    /// Site B's etag before its update.
    b_stale_etag: String,
    /// The pending application of site A.
    application: pb::LicenceApplication,
    /// A real next-page token of ListSites { kind: general-website, page_size: 1 }.
    page_token: String,
}

async fn seed(c: &mut RegistryClient) -> Seeded {
    let a = c.register_site(register(HN, site("Trang A", &["trang-a.vn"]), "seed-a")).await.unwrap().into_inner();
    let b0 = c.register_site(register(HN, site("Trang B", &["trang-b.vn"]), "seed-b")).await.unwrap().into_inner();
    let b = c
        .update_site(pb::UpdateSiteRequest {
            site: Some(pb::Site {
                name: b0.name.clone(),
                etag: b0.etag.clone(),
                display_name: "Trang B mới".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
            request_id: "seed-b-update".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(b.etag, b0.etag);
    let application = c
        .submit_application(pb::SubmitApplicationRequest {
            application: Some(pb::LicenceApplication {
                site: a.name.clone(),
                dossier_items: vec!["đơn đề nghị".into(), "đề án".into()],
                receive_time: Some(in_secs(-3600)),
                ..Default::default()
            }),
            request_id: "seed-app".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let page = c
        .list_sites(pb::ListSitesRequest {
            parent: HN.into(),
            page_size: 1,
            kind: "general-website".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.sites.len(), 1);
    assert!(!page.next_page_token.is_empty(), "two sites, pages of one: there is a next page");
    Seeded { a, b, b_stale_etag: b0.etag, application, page_token: page.next_page_token }
}

fn rows(s: &Seeded) -> Vec<Row> {
    let invalid = |reason, call, field| Row { reason, call, code: Code::InvalidArgument, info: "FIELD_INVALID", field };
    let label63 = "a".repeat(63);
    let name254 = format!("{l}.{l}.{l}.{m}.vn", l = label63, m = "b".repeat(59));
    assert_eq!(name254.len(), 254);
    let label64 = format!("{}.vn", "a".repeat(64));
    // Nine digits with a non-zero serial whose check computes to 10: no tenth digit makes a code.
    let ten = (10_000_000u32..)
        .map(|n| format!("{n:09}"))
        .find(|s| s.as_bytes()[2..9].iter().any(|&d| d != b'0') && check_value(s) == 10)
        .expect("a prefix whose check is 10");
    // Serial digits 3..9 all zero, with the check digit they compute to: only the zero rule trips.
    let zero_serial = with_check("010000000");
    let good = with_check("010010910");
    assert_eq!(good, "0100109106");
    let wrong_check = format!("010010910{}", (check_value("010010910") + 1) % 10);
    let long_name = "Trang ".repeat(50) + "x";
    assert_eq!(long_name.chars().count(), 301);
    let mut bad_enum = site("Trang mới", &["trang-moi.vn"]);
    bad_enum.hosting = 99;
    let update = |name: &str, etag: &str, paths: &[&str], request_id: &str| pb::UpdateSiteRequest {
        site: Some(pb::Site {
            name: name.into(),
            etag: etag.into(),
            display_name: "Tên mới".into(),
            notes: "ghi chú".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
        request_id: request_id.into(),
    };

    vec![
        invalid(
            "a province code no scheme has",
            Call::Register(register("provinces/2008-99", with_name("Trang mới"), "r-unknown-province")),
            Some("parent"),
        ),
        Row {
            reason: "a province of the 2025 scheme on a node of the 2008 scheme",
            call: Call::Register(register("provinces/2025-01", with_name("Trang mới"), "r-wrong-scheme")),
            code: Code::InvalidArgument,
            info: "WRONG_SCHEME",
            field: Some("parent"),
        },
        invalid(
            "a domain with a space inside is malformed",
            Call::Register(register(HN, with_domain("exa mple.vn"), "r-malformed-domain")),
            Some("site.domains[0]"),
        ),
        invalid(
            "a domain of 254 bytes is longer than DNS allows (253)",
            Call::Register(register(HN, with_domain(&name254), "r-long-domain")),
            Some("site.domains[0]"),
        ),
        invalid(
            "a label of 64 bytes is longer than DNS allows (63)",
            Call::Register(register(HN, with_domain(&label64), "r-long-label")),
            Some("site.domains[0]"),
        ),
        invalid(
            "a label mixing Latin and Cyrillic (U+0430) is refused (UTS #39)",
            Call::Register(register(HN, with_domain("p\u{0430}ypal.vn"), "r-mixed-script")),
            Some("site.domains[0]"),
        ),
        invalid(
            "a public suffix has no registrable domain",
            Call::Register(register(HN, with_domain("com.vn"), "r-public-suffix")),
            Some("site.domains[0]"),
        ),
        invalid(
            "a tax code whose tenth digit is not its check digit",
            Call::Register(register(HN, with_tax_code(&wrong_check), "r-check-digit")),
            Some("site.owner.tax_code"),
        ),
        invalid(
            "a tax code whose first nine digits compute to a check of 10",
            Call::Register(register(HN, with_tax_code(&format!("{ten}0")), "r-check-ten")),
            Some("site.owner.tax_code"),
        ),
        invalid(
            "a tax code whose serial (digits 3 to 9) is all zeros",
            Call::Register(register(HN, with_tax_code(&zero_serial), "r-zero-serial")),
            Some("site.owner.tax_code"),
        ),
        invalid(
            "a branch suffix of 000",
            Call::Register(register(HN, with_tax_code("0100109106-000"), "r-branch-zero")),
            Some("site.owner.tax_code"),
        ),
        invalid(
            "an empty site name",
            Call::Register(register(HN, with_name("  "), "r-empty-name")),
            Some("site.display_name"),
        ),
        invalid(
            "a site name of 301 characters (at most 300)",
            Call::Register(register(HN, with_name(&long_name), "r-long-name")),
            Some("site.display_name"),
        ),
        invalid(
            "a licence that expires before it is issued",
            Call::Approve(pb::ApproveApplicationRequest {
                name: s.application.name.clone(),
                licence: Some(pb::Licence {
                    number: "15/GP-STTTT".into(),
                    issuing_authority: "Sở Thông tin và Truyền thông Hà Nội".into(),
                    issue_time: Some(in_secs(-60)),
                    expire_time: Some(in_secs(-120)),
                    ..Default::default()
                }),
                request_id: "r-expiry-before-issue".into(),
            }),
            Some("licence.expire_time"),
        ),
        invalid(
            "an enum value the contract does not define",
            Call::Register(register(HN, bad_enum, "r-unknown-enum")),
            Some("site.hosting"),
        ),
        Row {
            reason: "a page token from a query with other filters",
            call: Call::List(pb::ListSitesRequest {
                parent: HN.into(),
                page_size: 1,
                page_token: s.page_token.clone(),
                kind: "general-website".into(),
                name_query: "trang".into(),
                ..Default::default()
            }),
            code: Code::InvalidArgument,
            info: "PAGE_TOKEN_MISMATCH",
            field: Some("page_token"),
        },
        invalid(
            "a field mask naming a field that does not exist",
            Call::Update(update(&s.a.name, &s.a.etag, &["no_such_field"], "r-unknown-mask")),
            Some("update_mask.paths[0]"),
        ),
        Row {
            reason: "an update sending an etag older than the current one",
            call: Call::Update(update(&s.b.name, &s.b_stale_etag, &["display_name"], "r-stale-etag")),
            code: Code::Aborted,
            info: "STALE_ETAG",
            field: None,
        },
        Row {
            reason: "the operator of 01 registering a site of 79 (both hosted here)",
            call: Call::Register(register("provinces/2008-79", with_name("Trang mới"), "r-other-province")),
            code: Code::PermissionDenied,
            info: "NOT_YOUR_JURISDICTION",
            field: None,
        },
        Row {
            reason: "a request_id used before with another body",
            call: Call::Register(register(HN, site("Trang khác", &["trang-khac.vn"]), "seed-a")),
            code: Code::FailedPrecondition,
            info: "REQUEST_ID_REUSED",
            field: Some("request_id"),
        },
        Row {
            reason: "a domain another site of the jurisdiction holds",
            call: Call::Register(register(HN, site("Trang A thứ hai", &["TRANG-A.vn."]), "r-domain-taken")),
            code: Code::AlreadyExists,
            info: "DOMAIN_TAKEN",
            field: None,
        },
        invalid(
            "a mutation without a request_id",
            Call::Register(register(HN, with_name("Trang mới"), "")),
            Some("request_id"),
        ),
        Row {
            reason: "a call without a bearer token",
            call: Call::RegisterWithoutToken(register(HN, with_name("Trang mới"), "r-no-token")),
            code: Code::Unauthenticated,
            info: "UNAUTHENTICATED",
            field: None,
        },
    ]
}

/// The last sequences of the registry logs of 01 and 79.
async fn sequences(node: &TestNode) -> (u64, u64) {
    (node.last_sequence("01").await, node.last_sequence("79").await)
}

async fn each_bad_input_is_refused_with_its_code_reason_and_field_and_changes_nothing(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    let mut c = node.registry("01").await;
    let seeded = seed(&mut c).await;
    let rows = rows(&seeded);
    let mut failures = Vec::new();
    for row in rows {
        let before = sequences(&node).await;
        let result = row.call.run(&node, &mut c).await;
        let after = sequences(&node).await;
        let mut problems = problems(result, row.code, row.info, row.field);
        if before != after {
            problems.push(format!("last sequences (01, 79) moved from {before:?} to {after:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", row.reason, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{backend:?}: {} rule(s) not kept:\n  {}", failures.len(), failures.join("\n  "));
}

async fn every_violation_of_a_request_is_reported_at_once(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let before = node.last_sequence("01").await;
    let s = site("Trang hai lỗi", &["exa mple.vn"]).owned_by(OWNER, "0100109107");
    let status = c.register_site(register(HN, s, "r-two-faults")).await.expect_err("two faults");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "FIELD_INVALID");
    let mut fields = fields(&status);
    fields.sort();
    assert_eq!(fields, vec!["site.domains[0]".to_string(), "site.owner.tax_code".to_string()]);
    assert_eq!(node.last_sequence("01").await, before);
}

both_backends!(
    each_bad_input_is_refused_with_its_code_reason_and_field_and_changes_nothing,
    every_violation_of_a_request_is_reported_at_once,
);
