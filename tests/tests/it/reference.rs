//! The centre's reference-data feed and the nodes that follow it: publishing is for the central
//! admin, checked with the parsers nodes load the files with, idempotent; a running node puts a
//! new violation catalogue, holiday calendar or indicator catalogue in force within seconds and
//! keeps it across a restart; an item the node cannot load is skipped and the version in force
//! stays.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{FixedOffset, TimeZone};
use einfo_app::node::Options;
use einfo_common::auth::Caller;
use einfo_common::changelog::LogId;
use einfo_domain::Jurisdiction;
use einfo_proto::central::v1 as pb;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;
use einfo_proto::reporting::v1 as rep;
use einfo_testkit::eventually;
use einfo_testkit::{Backend, FakeCentre, SiteExt, TestDb, TestNode, both_backends, fixtures, site};
use sea_orm::ConnectionTrait;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use crate::refusals::fields;

const P01: &str = "provinces/2008-01";
const CATALOGUE: &str = einfo_reference::catalogue::BUNDLED;
const HOLIDAYS: &str = include_str!("../../../services/domain/data/holidays.csv");
const INDICATORS: &str = einfo_reference::indicators::BUNDLED;

/// The built-in catalogue with one entry of a newer catalogue version.
fn catalogue_with(version: &str) -> String {
    format!(
        "{CATALOGUE}ND-TEST-{version},{version},Hành vi thử nghiệm,A test violation,15/2020/NĐ-CP,1,,,1000000,2000000,500000,1000000,,FINE,,,2025-01-01,,Test entry,true\n"
    )
}

/// The built-in indicators with one more.
fn indicators_with(code: &str) -> String {
    format!("{INDICATORS}{code},registry,applications_received,Chỉ tiêu thử nghiệm,A test indicator\n")
}

async fn publish(c: &FakeCentre, kind: &str, content: &str) -> Result<pb::ReferenceData, tonic::Status> {
    publish_as(c, &FakeCentre::admin_caller(), kind, content.as_bytes(), &uuid::Uuid::new_v4().to_string()).await
}

async fn publish_as(
    c: &FakeCentre,
    caller: &Caller,
    kind: &str,
    content: &[u8],
    request_id: &str,
) -> Result<pb::ReferenceData, tonic::Status> {
    Ok(c.client_as(caller)
        .publish_reference_data(pb::PublishReferenceDataRequest {
            kind: kind.into(),
            content: content.to_vec(),
            request_id: request_id.into(),
        })
        .await?
        .into_inner())
}

async fn read(c: &FakeCentre, after: u64) -> Vec<pb::ReferenceData> {
    let mut s = c
        .province("01")
        .stream_reference_data(pb::StreamReferenceDataRequest { after, follow: false })
        .await
        .expect("stream reference data")
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = s.next().await {
        out.push(r.expect("an item").data.expect("data"));
    }
    out
}

async fn central_log_length(c: &FakeCentre) -> u64 {
    let log = LogId { jurisdiction: Jurisdiction::Central, service: "central" };
    einfo_common::changelog::verify_log(c.central().db().conn(), &log).await.unwrap().unwrap()
}

/// A centre and a node hosting 01 that follows it.
async fn start(backend: Backend) -> Option<(FakeCentre, TestNode)> {
    let centre = FakeCentre::start(backend).await?;
    let db = TestDb::new(backend).await?;
    let mut s = einfo_testkit::settings(&db, &["01"]);
    s.reporting.centre_endpoint = Some(centre.url());
    s.reporting.feed_interval_ms = 100;
    // The node follows the centre's catalogue, not the test kit's file.
    s.inspection.catalogue_file = None;
    let node = TestNode::start_on(db, s, Options::default()).await;
    Some((centre, node))
}

async fn catalogue_version(node: &TestNode) -> String {
    node.inspection("01")
        .await
        .list_catalogue(insp::ListCatalogueRequest { all_versions: true, ..Default::default() })
        .await
        .expect("list catalogue")
        .into_inner()
        .catalogue_version
}

async fn until_catalogue_version(node: &TestNode, version: &str) {
    eventually(&format!("the node's catalogue is version {version}"), || async {
        (catalogue_version(node).await == version).then_some(())
    })
    .await;
}

/// Issues a campaign to 01 asking for `indicators` and waits until the node holds it.
async fn campaign(centre: &FakeCentre, node: &TestNode, indicators: &[&str]) -> String {
    let c = centre
        .admin()
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(fixtures::campaign_for(&["01"], indicators)),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("campaign created")
        .into_inner();
    let r = node.reporting("01").await;
    eventually("the campaign reaches the node", || {
        let mut r = r.clone();
        let name = c.name.clone();
        async move {
            let got = r.list_campaigns(rep::ListCampaignsRequest { parent: P01.into() }).await.ok()?;
            got.into_inner().campaigns.iter().any(|x| x.name == name).then_some(())
        }
    })
    .await;
    c.name
}

/// The indicators a compile of `campaign` yields figures for.
async fn compiled_indicators(node: &TestNode, campaign: &str) -> BTreeSet<String> {
    let got = node
        .reporting("01")
        .await
        .compile_report(rep::CompileReportRequest {
            parent: P01.into(),
            campaign: campaign.into(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("compiled")
        .into_inner();
    got.report.and_then(|r| r.current).map(|v| v.values.into_iter().map(|x| x.indicator).collect()).unwrap_or_default()
}

/// Registers a site and submits its licence application received at `received` (Unix seconds);
/// returns the application's deadline.
async fn application_deadline(node: &TestNode, domain: &str, received: i64) -> i64 {
    let mut c = node.registry("01").await;
    let s = site(&format!("Trang {domain}"), &[domain]).found_by(reg::DiscoverySource::Application);
    let s = fixtures::register(&mut c, P01, s).await;
    let app = c
        .submit_application(reg::SubmitApplicationRequest {
            application: Some(reg::LicenceApplication {
                site: s.name,
                dossier_items: vec!["đơn đề nghị".into()],
                receive_time: Some(prost_types::Timestamp { seconds: received, nanos: 0 }),
                ..Default::default()
            }),
            request_id: format!("submit-{domain}"),
        })
        .await
        .expect("application submitted")
        .into_inner();
    app.deadline.expect("a deadline").seconds
}

// ------------------------------------------------------------------ the centre

async fn publishing_is_for_the_central_admin_checked_like_a_node_and_idempotent(backend: Backend) {
    let Some(c) = FakeCentre::start(backend).await else { return };
    let broken_fine = CATALOGUE.replacen(",10000000,20000000,", ",30000000,20000000,", 1);
    let cases: &[(&str, &[u8], &str, &str)] = &[
        ("holiday", HOLIDAYS.as_bytes(), "kind", "a kind that does not exist"),
        ("", HOLIDAYS.as_bytes(), "kind", "no kind"),
        ("holidays", b"", "content", "no content"),
        ("holidays", b"date,kind,name\n\xff\xfe,holiday,x\n", "content", "not UTF-8"),
        ("holidays", b"date,kind,name\n2030-02-30,holiday,x\n", "content", "no such date"),
        ("holidays", b"date,kind,name\n2030-01-02,working_day,x\n", "content", "a working day on a Wednesday"),
        ("violation-catalogue", broken_fine.as_bytes(), "content", "a minimum fine above its maximum"),
        ("violation-catalogue", b"code,catalogue_version\nX,2030.1\n", "content", "two columns of sixteen"),
        ("indicators", b"code,service,field,name_vi,name_en\nx,registry,nope,a,b\n", "content", "no such statistic"),
        ("indicators", b"code,service,field,name_vi,name_en\n", "content", "an empty catalogue"),
        ("indicators", HOLIDAYS.as_bytes(), "content", "a file of another kind"),
    ];
    for (kind, content, field, why) in cases {
        let err = publish_as(&c, &FakeCentre::admin_caller(), kind, content, "p-1").await.expect_err(why);
        assert_eq!(err.code(), Code::InvalidArgument, "{why}: {err:?}");
        assert_eq!(fields(&err), vec![field.to_string()], "{why}: {}", err.message());
    }
    let err = publish_as(&c, &FakeCentre::admin_caller(), "holidays", HOLIDAYS.as_bytes(), "").await.unwrap_err();
    assert_eq!((err.code(), fields(&err)), (Code::InvalidArgument, vec!["request_id".to_string()]));
    // Only the central admin publishes.
    for caller in [FakeCentre::reporter_caller("01"), TestNode::analyst(), TestNode::operator("01")] {
        let err = publish_as(&c, &caller, "holidays", HOLIDAYS.as_bytes(), "p-2").await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{caller:?}");
    }
    // Nothing changed.
    assert_eq!(read(&c, 0).await.len(), 3);
    assert_eq!(central_log_length(&c).await, 0);

    // A follower waiting at the head receives what is published next.
    let mut follower = c
        .province("79")
        .stream_reference_data(pb::StreamReferenceDataRequest { after: 3, follow: true })
        .await
        .unwrap()
        .into_inner();
    let admin = FakeCentre::admin_caller();
    let holidays = format!("{HOLIDAYS}2027-03-03,holiday,Ngày nghỉ thử nghiệm\n");
    let first = publish_as(&c, &admin, "holidays", holidays.as_bytes(), "p-3").await.unwrap();
    assert_eq!((first.sequence, first.kind.as_str()), (4, "holidays"));
    assert!(first.publish_time.is_some());
    let got = tokio::time::timeout(Duration::from_secs(5), follower.next()).await.expect("followed in time");
    assert_eq!(got.unwrap().unwrap().data.unwrap(), first);

    // A retry gets the same answer; the same content again, under a new key, is the version in
    // force, with no new sequence; a key reused for another file is refused.
    assert_eq!(publish_as(&c, &admin, "holidays", holidays.as_bytes(), "p-3").await.unwrap(), first);
    assert_eq!(publish_as(&c, &admin, "holidays", holidays.as_bytes(), "p-4").await.unwrap(), first);
    let err = publish_as(&c, &admin, "holidays", HOLIDAYS.as_bytes(), "p-3").await.unwrap_err();
    assert_eq!(fields(&err), vec!["request_id".to_string()], "{err:?}");
    // Going back to the built-in file is a new version.
    let back = publish_as(&c, &admin, "holidays", HOLIDAYS.as_bytes(), "p-5").await.unwrap();
    assert_eq!(back.sequence, 5);
    assert_eq!(back.version, read(&c, 0).await[1].version);
    assert_eq!(read(&c, 3).await.iter().map(|d| d.sequence).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(central_log_length(&c).await, 2);

    // The feed survives a restart of the centre, and is not seeded again.
    let mut c = c;
    c.restart_same_port().await;
    assert_eq!(read(&c, 0).await.len(), 5);
}

// ------------------------------------------------------------------ nodes

async fn a_new_violation_catalogue_reaches_a_running_node_and_survives_its_restart(backend: Backend) {
    let Some((mut centre, mut node)) = start(backend).await else { return };
    assert_eq!(catalogue_version(&node).await, "2026.1");
    publish(&centre, "violation-catalogue", &catalogue_with("2027.1")).await.expect("published");
    until_catalogue_version(&node, "2027.1").await;
    // The new entry is checked against at once.
    let entries = node
        .inspection("01")
        .await
        .list_catalogue(insp::ListCatalogueRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(entries.iter().any(|e| e.code == "ND-TEST-2027.1"));

    // Restarted while the centre is down, the node starts from what it applied.
    centre.stop().await;
    node.restart().await;
    assert_eq!(catalogue_version(&node).await, "2027.1");

    // Back up, the centre's next version reaches it; the cursor was kept, so nothing is replayed.
    centre.start_again_same_port().await;
    publish(&centre, "violation-catalogue", &catalogue_with("2027.2")).await.expect("published");
    until_catalogue_version(&node, "2027.2").await;
}

async fn new_holidays_move_an_application_deadline(backend: Backend) {
    let Some((centre, node)) = start(backend).await else { return };
    let vn = FixedOffset::east_opt(7 * 3600).unwrap();
    // Monday 3 March 2025, 09:00: ten working days end on Monday 17 March.
    let received = vn.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap();
    let before = application_deadline(&node, "truoc.vn", received.timestamp()).await;
    assert_eq!(before, vn.with_ymd_and_hms(2025, 3, 18, 0, 0, 0).unwrap().timestamp());

    // The government declares Wednesday 5 March a day off. The feed is applied in order, so once
    // the catalogue published after it is in force, so are the holidays.
    publish(&centre, "holidays", &format!("{HOLIDAYS}2025-03-05,holiday,Ngày nghỉ thử nghiệm\n")).await.unwrap();
    publish(&centre, "violation-catalogue", &catalogue_with("2027.1")).await.unwrap();
    until_catalogue_version(&node, "2027.1").await;

    let after = application_deadline(&node, "sau.vn", received.timestamp()).await;
    assert_eq!(after, vn.with_ymd_and_hms(2025, 3, 19, 0, 0, 0).unwrap().timestamp());
}

async fn new_indicators_change_what_a_report_compiles(backend: Backend) {
    let Some((centre, node)) = start(backend).await else { return };
    let name = campaign(&centre, &node, &["licences_issued", "applications_in_period"]).await;
    assert_eq!(
        compiled_indicators(&node, &name).await,
        BTreeSet::from(["licences_issued".to_string()]),
        "the node has no rule for applications_in_period yet"
    );
    publish(&centre, "indicators", &indicators_with("applications_in_period")).await.unwrap();
    eventually("the new indicator is compiled", || async {
        let got = compiled_indicators(&node, &name).await;
        got.contains("applications_in_period").then_some(())
    })
    .await;
}

async fn an_item_the_node_cannot_load_is_skipped_and_the_version_in_force_stays(backend: Backend) {
    let Some((centre, mut node)) = start(backend).await else { return };
    publish(&centre, "violation-catalogue", &catalogue_with("2027.1")).await.unwrap();
    until_catalogue_version(&node, "2027.1").await;
    let name = campaign(&centre, &node, &["licences_issued", "applications_in_period"]).await;

    // A broken catalogue gets onto the feed behind the centre's back (the centre refuses it on
    // PublishReferenceData): an entry claiming version 2099.1 with its minimum fine above its
    // maximum.
    let broken = catalogue_with("2099.1").replace(",1000000,2000000,500000,", ",3000000,2000000,500000,");
    let conn = centre.central().db().conn();
    let b = conn.get_database_backend();
    conn.execute_raw(einfo_common::db::stmt(
        b,
        "INSERT INTO central_reference (seq, kind, version, content, publish_time)
         SELECT MAX(seq) + 1, 'violation-catalogue', 'broken', $1, 0 FROM central_reference",
        [broken.into_bytes().into()],
    ))
    .await
    .expect("a broken item injected");

    // The node gets past it: what is published after it is applied.
    publish(&centre, "indicators", &indicators_with("applications_in_period")).await.unwrap();
    eventually("the indicators published after the broken item are applied", || async {
        compiled_indicators(&node, &name).await.contains("applications_in_period").then_some(())
    })
    .await;
    assert_eq!(catalogue_version(&node).await, "2027.1", "the broken catalogue was not put in force");
    node.restart().await;
    assert_eq!(catalogue_version(&node).await, "2027.1", "nor stored");
}

/// A token the centre revoked (reference data `revoked-tokens`) is refused by the node that follows
/// the feed within seconds, by the centre at once, and again after the node restarts; other
/// tokens still pass; a list that is not one is refused at publication.
async fn a_token_revoked_by_the_centre_is_refused_by_every_server(backend: Backend) {
    let Some((centre, mut node)) = start(backend).await else { return };
    let keys = einfo_common::auth::TokenKeys::from_secret(node.settings.auth.secret.as_deref().unwrap().as_bytes())
        .expect("keys");
    let issue = |caller: &Caller| keys.issue(caller, Duration::from_secs(600)).expect("token");
    let (revoked_op, kept_op) = (issue(&TestNode::operator("01")), issue(&TestNode::operator("01")));
    let revoked_admin = issue(&FakeCentre::admin_caller());
    let id = |t: &str| keys.verify_token(t).expect("a valid token").1;
    let channel = node.channel().await;
    let list_sites = |token: String| {
        let channel = channel.clone();
        async move {
            let mut c = reg::registry_service_client::RegistryServiceClient::with_interceptor(
                channel,
                einfo_common::auth::BearerToken::new(&token).expect("bearer"),
            );
            c.list_sites(reg::ListSitesRequest { parent: P01.into(), ..Default::default() }).await.map(|_| ())
        }
    };
    let centre_key = |token: String| {
        let url = centre.url();
        async move {
            let channel = tonic::transport::Endpoint::from_shared(url).expect("url").connect_lazy();
            let mut c = pb::central_service_client::CentralServiceClient::with_interceptor(
                channel,
                einfo_common::auth::BearerToken::new(&token).expect("bearer"),
            );
            c.get_public_key(pb::GetPublicKeyRequest {}).await.map(|_| ())
        }
    };
    list_sites(revoked_op.clone()).await.expect("the token passes before it is revoked");
    centre_key(revoked_admin.clone()).await.expect("the admin's token passes before it is revoked");

    let bad = publish(&centre, "revoked-tokens", "jti,expires_at\nnot-an-id,2026-01-01T00:00:00Z\n").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(fields(&bad), ["content"], "{bad:?}");
    let why = bad.get_error_details().bad_request().map(|b| b.field_violations[0].description.clone());
    assert!(why.as_deref().is_some_and(|d| d.contains("line 2") && d.contains("not a token id")), "{why:?}");

    // Tokens are checked against the system clock (jsonwebtoken), so expiries are read from it.
    let expires = einfo_common::clock::Clock::now(&*einfo_common::clock::system()) + chrono::Duration::minutes(10);
    let list = format!(
        "jti,expires_at\n{},{}\n{},{}\n",
        id(&revoked_op),
        expires.to_rfc3339(),
        id(&revoked_admin),
        expires.to_rfc3339()
    );
    publish(&centre, "revoked-tokens", &list).await.expect("published");

    let e = centre_key(revoked_admin.clone()).await.expect_err("the centre refuses a token it revoked at once");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("was revoked by the centre"), "{}", e.message());
    let e = eventually("the node to refuse the revoked token", || {
        let t = revoked_op.clone();
        let list_sites = &list_sites;
        async move { list_sites(t).await.err() }
    })
    .await;
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains(&format!("token {} was revoked by the centre", id(&revoked_op))), "{}", e.message());
    list_sites(kept_op.clone()).await.expect("another token of the same operator still passes");

    node.restart().await;
    let channel = node.channel().await;
    let mut c = reg::registry_service_client::RegistryServiceClient::with_interceptor(
        channel,
        einfo_common::auth::BearerToken::new(&revoked_op).expect("bearer"),
    );
    let e = c
        .list_sites(reg::ListSitesRequest { parent: P01.into(), ..Default::default() })
        .await
        .expect_err("still refused after a restart");
    assert_eq!(e.code(), Code::Unauthenticated);
}

both_backends!(
    publishing_is_for_the_central_admin_checked_like_a_node_and_idempotent,
    a_new_violation_catalogue_reaches_a_running_node_and_survives_its_restart,
    new_holidays_move_an_application_deadline,
    new_indicators_change_what_a_report_compiles,
    an_item_the_node_cannot_load_is_skipped_and_the_version_in_force_stays,
    a_token_revoked_by_the_centre_is_refused_by_every_server,
);
