//! Figures of a jurisdiction: now, as of a past time, and never of the future.

use einfo_common::clock::{Clock, ManualClock};
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::fixtures::{apply, register_found, timestamp_micros};
use einfo_testkit::{Backend, RegistryClient, TestGateway, TestNode, both_backends, in_secs};
use pb::LegalStatus;
use sea_orm::ConnectionTrait;

use crate::refusals::fields;

const P01: &str = "provinces/2008-01";
const P79: &str = "provinces/2008-79";

async fn approve(c: &mut RegistryClient, app: &str) -> pb::Licence {
    c.approve_application(pb::ApproveApplicationRequest {
        name: app.into(),
        licence: Some(pb::Licence {
            number: "1/GP-STTTT".into(),
            issuing_authority: "Sở Thông tin và Truyền thông".into(),
            issue_time: Some(in_secs(-3600)),
            expire_time: Some(in_secs(365 * 86_400)),
            ..Default::default()
        }),
        request_id: format!("approve-{app}"),
    })
    .await
    .expect("approved")
    .into_inner()
    .licence
    .expect("a licence")
}

async fn revoke(c: &mut RegistryClient, licence: &str) {
    c.revoke_licence(pb::RevokeLicenceRequest {
        name: licence.into(),
        reason: "Quyết định thu hồi".into(),
        request_id: format!("revoke-{licence}"),
    })
    .await
    .expect("revoked");
}

/// What province 01 holds after [`seed_01`].
struct Seeded01 {
    licence: String,
    pending: String,
}

/// Province 01: three general websites found unlicensed, a social network licensed on its
/// application, and a general website whose application (received 60 days ago) is pending and
/// overdue. Twelve log entries.
async fn seed_01(node: &TestNode) -> Seeded01 {
    let mut c = node.registry("01").await;
    for d in ["mot.vn", "hai.vn", "ba.vn"] {
        register_found(&mut c, P01, "general-website", d, pb::DiscoverySource::Sweep).await;
    }
    let social = register_found(&mut c, P01, "social-network", "mangxahoi.vn", pb::DiscoverySource::Application).await;
    let app = apply(&mut c, &social.name, 86_400).await;
    let licence = approve(&mut c, &app.name).await;
    let waiting = register_found(&mut c, P01, "general-website", "cho.vn", pb::DiscoverySource::Application).await;
    let pending = apply(&mut c, &waiting.name, 60 * 86_400).await;
    assert!(pending.overdue);
    Seeded01 { licence: licence.name, pending: pending.name }
}

/// Province 79: a social network whose licence was suspended then revoked, a social network found
/// by a sweep, and a general website recorded in error and voided. Thirteen log entries.
async fn seed_79(node: &TestNode) {
    let mut c = node.registry("79").await;
    let revoked = register_found(&mut c, P79, "social-network", "thuhoi.vn", pb::DiscoverySource::Application).await;
    let app = apply(&mut c, &revoked.name, 3 * 86_400).await;
    let licence = approve(&mut c, &app.name).await;
    c.suspend_licence(pb::SuspendLicenceRequest {
        name: licence.name.clone(),
        until: Some(in_secs(30 * 86_400)),
        reason: "Quyết định đình chỉ".into(),
        request_id: "suspend".into(),
    })
    .await
    .expect("suspended");
    revoke(&mut c, &licence.name).await;
    register_found(&mut c, P79, "social-network", "quetduoc.vn", pb::DiscoverySource::Sweep).await;
    let wrong = register_found(&mut c, P79, "general-website", "nhamlan.vn", pb::DiscoverySource::Complaint).await;
    void(&mut c, &wrong).await;
}

/// Voids a site recorded in error.
async fn void(c: &mut RegistryClient, site: &pb::Site) {
    c.void_site(pb::VoidSiteRequest {
        name: site.name.clone(),
        etag: site.etag.clone(),
        reason: "nhập nhầm".into(),
        request_id: format!("void-{}", site.name),
    })
    .await
    .expect("voided");
}

/// A cell of sites that all operate (the test kit's sites are ACTIVE) and none on trial.
fn count(kind: &str, status: LegalStatus, count: u64) -> pb::SiteCount {
    pb::SiteCount { kind: kind.into(), legal_status: status as i32, count, operating: count, ..Default::default() }
}

async fn statistics(
    c: &mut RegistryClient,
    jurisdiction: &str,
    as_of: Option<prost_types::Timestamp>,
) -> pb::GetStatisticsResponse {
    c.get_statistics(pb::GetStatisticsRequest { jurisdiction: jurisdiction.into(), as_of, ..Default::default() })
        .await
        .expect("statistics")
        .into_inner()
}

fn expected_01(as_of: Option<prost_types::Timestamp>) -> pb::GetStatisticsResponse {
    pb::GetStatisticsResponse {
        jurisdiction: P01.into(),
        as_of,
        log_sequence: 12,
        sites: vec![
            count("general-website", LegalStatus::Applied, 1),
            count("general-website", LegalStatus::Unlicensed, 3),
            count("social-network", LegalStatus::Licensed, 1),
        ],
        applications_pending: 1,
        applications_overdue: 1,
        licences_issued: 1,
        licences_suspended: 0,
        licences_revoked: 0,
        applications_received: 2,
        unlicensed_found: 3,
        licences_expiring: 0,
    }
}

async fn two_provinces_on_one_node_have_their_own_figures(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    seed_01(&node).await;
    seed_79(&node).await;
    assert_eq!(node.last_sequence("01").await, 12);
    assert_eq!(node.last_sequence("79").await, 13);

    let mut analyst = node.registry_as(&TestNode::analyst()).await;
    let got = statistics(&mut analyst, P01, None).await;
    assert_eq!(got, expected_01(got.as_of));
    assert_eq!(got.log_sequence, node.last_sequence("01").await);

    let got = statistics(&mut analyst, P79, None).await;
    assert_eq!(
        got,
        pb::GetStatisticsResponse {
            jurisdiction: P79.into(),
            as_of: got.as_of,
            log_sequence: 13,
            sites: vec![
                count("social-network", LegalStatus::Unlicensed, 1),
                count("social-network", LegalStatus::Revoked, 1),
            ],
            applications_pending: 0,
            applications_overdue: 0,
            licences_issued: 1,
            licences_suspended: 1,
            licences_revoked: 1,
            applications_received: 1,
            // The voided site was recorded in error: it was never found.
            unlicensed_found: 1,
            licences_expiring: 0,
        }
    );
    assert_eq!(got.log_sequence, node.last_sequence("79").await);

    // The province's own operator reads the same figures, and not the other province's.
    let mut op01 = node.registry("01").await;
    let own = statistics(&mut op01, P01, None).await;
    assert_eq!(own, expected_01(own.as_of));
    let err = op01
        .get_statistics(pb::GetStatisticsRequest { jurisdiction: P79.into(), ..Default::default() })
        .await
        .expect_err("another province's figures");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

async fn figures_as_of_a_past_time_ignore_what_came_after(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(node) = TestNode::start_with_clock(backend, &["01", "79"], clock.clone()).await else { return };
    let seeded = seed_01(&node).await;
    let mut analyst = node.registry_as(&TestNode::analyst()).await;
    let before = statistics(&mut analyst, P01, None).await;
    assert_eq!(before, expected_01(before.as_of));

    // T, a second after the seed, to the microsecond (figures are kept to the microsecond); what
    // follows comes a second later.
    clock.advance(chrono::Duration::seconds(1));
    let t = timestamp_micros(clock.now());
    clock.advance(chrono::Duration::seconds(1));

    // After T: two more sites, the pending application approved, the licence revoked, and a
    // site in the other province.
    let mut c = node.registry("01").await;
    register_found(&mut c, P01, "general-website", "bon.vn", pb::DiscoverySource::Sweep).await;
    register_found(&mut c, P01, "social-network", "nam.vn", pb::DiscoverySource::Referral).await;
    approve(&mut c, &seeded.pending).await;
    revoke(&mut c, &seeded.licence).await;
    let mut c79 = node.registry("79").await;
    register_found(&mut c79, P79, "general-website", "khac.vn", pb::DiscoverySource::Sweep).await;
    assert!(node.last_sequence("01").await > 12);

    let then = statistics(&mut analyst, P01, Some(t)).await;
    assert_eq!(then, expected_01(Some(t)), "as of T the figures are those read before T");
    assert_eq!(then.log_sequence, 12, "the sequence at T");

    let now = statistics(&mut analyst, P01, None).await;
    assert_eq!(now.log_sequence, node.last_sequence("01").await);
    assert_eq!(
        now.sites,
        vec![
            count("general-website", LegalStatus::Licensed, 1),
            count("general-website", LegalStatus::Unlicensed, 4),
            count("social-network", LegalStatus::Unlicensed, 1),
            count("social-network", LegalStatus::Revoked, 1),
        ]
    );
    assert_eq!((now.applications_pending, now.licences_issued, now.licences_revoked), (0, 2, 1));
    assert_eq!(now.unlicensed_found, 5);
}

async fn figures_of_the_future_are_refused(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut analyst = node.registry_as(&TestNode::analyst()).await;
    let err = analyst
        .get_statistics(pb::GetStatisticsRequest {
            jurisdiction: P01.into(),
            as_of: Some(in_secs(3600)),
            ..Default::default()
        })
        .await
        .expect_err("as_of in the future");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(fields(&err), ["as_of"]);
}

/// The figures of now come from running counts, kept write by write; the figures as of a time
/// come from the history. After registrations, a change of kind, status changes, a void and a
/// void of a site with dated facts, both must agree in both provinces, and again after the
/// running counts are computed afresh by the migration of a database that lacked them.
async fn running_counts_agree_with_the_history(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(mut node) = TestNode::start_with_clock(backend, &["01", "79"], clock.clone()).await else { return };
    seed_01(&node).await;
    seed_79(&node).await;
    let mut c = node.registry("01").await;
    // A change of kind moves a site between cells; a site found by a sweep, then voided, takes
    // its unlicensed_found fact with it.
    let moved = register_found(&mut c, P01, "general-website", "doiloai.vn", pb::DiscoverySource::Sweep).await;
    let moved = c
        .update_site(pb::UpdateSiteRequest {
            site: Some(pb::Site { kind: "social-network".into(), ..moved }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["kind".into()] }),
            request_id: "change-kind".into(),
        })
        .await
        .expect("kind changed")
        .into_inner();
    void(&mut c, &moved).await;
    register_found(&mut c, P01, "social-network", "sau.vn", pb::DiscoverySource::Sweep).await;

    let mut analyst = node.registry_as(&TestNode::analyst()).await;
    // Figures as of a time after every write.
    let agree = async |analyst: &mut RegistryClient| {
        clock.advance(chrono::Duration::seconds(1));
        let t = timestamp_micros(clock.now());
        for p in [P01, P79] {
            let now = statistics(analyst, p, None).await;
            let history = statistics(analyst, p, Some(t)).await;
            assert_eq!(pb::GetStatisticsResponse { as_of: history.as_of, ..now.clone() }, history, "{p}");
        }
        statistics(analyst, P01, None).await
    };
    let now = agree(&mut analyst).await;
    assert_eq!(
        now.sites,
        vec![
            count("general-website", LegalStatus::Applied, 1),
            count("general-website", LegalStatus::Unlicensed, 3),
            count("social-network", LegalStatus::Licensed, 1),
            count("social-network", LegalStatus::Unlicensed, 1),
        ]
    );
    assert_eq!(now.unlicensed_found, 4, "the voided site's fact is not counted");

    // A database from before the running counts and before the operating state and trial were
    // dimensions: the migrations compute the counts from the history, and the history's new
    // columns from the log's entries.
    node.stop().await;
    let db = node.db.connect().await;
    for sql in [
        "DROP TABLE reg_site_counts",
        "DROP TABLE reg_event_counts",
        "DROP INDEX reg_applications_pending",
        "DROP INDEX reg_events_resource",
        "DROP INDEX reg_sites_status",
        "ALTER TABLE reg_history DROP COLUMN operating",
        "ALTER TABLE reg_history DROP COLUMN trial",
        "DELETE FROM einfo_migrations_registry WHERE version IN ('m0002_running_counts', 'm0004_site_dimensions')",
    ] {
        db.conn().execute_unprepared(sql).await.expect(sql);
    }
    db.close().await.unwrap();
    node.start_again_same_port().await;
    let mut analyst = node.registry_as(&TestNode::analyst()).await;
    let again = agree(&mut analyst).await;
    assert_eq!(pb::GetStatisticsResponse { as_of: now.as_of, ..again }, now);
}

/// Adds a trial-operation record in force from yesterday for a month.
async fn on_trial(c: &mut RegistryClient, site: &str) {
    c.add_site_record(pb::AddSiteRecordRequest {
        site: site.into(),
        record: Some(pb::SiteRecord {
            kind: pb::SiteRecordKind::Trial as i32,
            reference: "5/CV-STTTT".into(),
            start_time: Some(in_secs(-86_400)),
            end_time: Some(in_secs(30 * 86_400)),
            ..Default::default()
        }),
        request_id: format!("trial-{site}"),
    })
    .await
    .expect("trial recorded");
}

/// Licence state, operating state and trial are separate dimensions (letter 3224, item 3: "đang
/// hoạt động không phép, thử nghiệm"): a site operating on trial without a licence counts as
/// unlicensed and on trial; one that applied counts as applied, operating and on trial; a site
/// that stopped counts as not operating. The node's figures of now (running counts) and as of a
/// time (the history) agree, and so do the gateway's national figures.
async fn trial_and_operation_are_dimensions_beside_the_legal_status(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let trial = register_found(&mut c, P01, "general-website", "thunghiem.vn", pb::DiscoverySource::Sweep).await;
    on_trial(&mut c, &trial.name).await;
    let applied = register_found(&mut c, P01, "social-network", "xinphep.vn", pb::DiscoverySource::Application).await;
    apply(&mut c, &applied.name, 86_400).await;
    on_trial(&mut c, &applied.name).await;
    let stopped = register_found(&mut c, P01, "general-website", "ngung.vn", pb::DiscoverySource::Sweep).await;
    let mut change = stopped.clone();
    change.operational_state = pb::OperationalState::Inactive as i32;
    c.update_site(pb::UpdateSiteRequest {
        site: Some(change),
        update_mask: Some(prost_types::FieldMask { paths: vec!["operational_state".into()] }),
        request_id: "stop".into(),
    })
    .await
    .expect("updated");

    let got = c.get_site(pb::GetSiteRequest { name: trial.name.clone() }).await.unwrap().into_inner();
    assert_eq!((got.legal_status(), got.trial), (LegalStatus::Unlicensed, true));
    let expected = vec![
        pb::SiteCount {
            kind: "general-website".into(),
            legal_status: LegalStatus::Unlicensed as i32,
            count: 2,
            operating: 1,
            not_operating: 1,
            trial: 1,
        },
        pb::SiteCount {
            kind: "social-network".into(),
            legal_status: LegalStatus::Applied as i32,
            count: 1,
            operating: 1,
            not_operating: 0,
            trial: 1,
        },
    ];
    let now = statistics(&mut c, P01, None).await;
    assert_eq!(now.sites, expected, "running counts");
    let as_of = statistics(&mut c, P01, Some(in_secs(0))).await;
    assert_eq!(as_of.sites, expected, "from the history");

    let Some(g) = TestGateway::start(backend, &[(Jurisdiction::parse(P01).unwrap(), node.url())]).await else {
        return;
    };
    g.wait_caught_up(&[&node]).await;
    let summary = g
        .national()
        .get_national_summary(gw::GetNationalSummaryRequest {
            options: einfo_testkit::gateway::partial(gw::Grouping::Provinces63),
        })
        .await
        .expect("national summary")
        .into_inner();
    let national: Vec<(String, i32, i64, i64, i64, i64)> = summary
        .totals
        .iter()
        .map(|c| (c.kind.clone(), c.legal_status, c.count, c.operating, c.not_operating, c.trial))
        .collect();
    let node_cells: Vec<(String, i32, i64, i64, i64, i64)> = expected
        .iter()
        .map(|c| {
            let n = |v: u64| v as i64;
            (c.kind.clone(), c.legal_status, n(c.count), n(c.operating), n(c.not_operating), n(c.trial))
        })
        .collect();
    assert_eq!(national, node_cells, "the gateway's national figures agree");
}

/// Licences expiring: in force and ending within 90 days — one ending in 30 days counts, one
/// ending in 200 days does not, nor one revoked; now and as the log stood.
async fn licences_expiring_within_90_days_are_counted_now_and_as_of(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut r = node.registry("01").await;
    for (domain, days) in [("sap-het-han.vn", 30), ("con-lau.vn", 200), ("bi-thu-hoi.vn", 30)] {
        let s = register_found(&mut r, P01, "general-website", domain, pb::DiscoverySource::Sweep).await;
        let l = einfo_testkit::fixtures::license(&mut r, &s, in_secs(days * 86_400)).await;
        if domain == "bi-thu-hoi.vn" {
            r.revoke_licence(pb::RevokeLicenceRequest {
                name: l.name.clone(),
                reason: "Quyết định thu hồi".into(),
                request_id: "revoke".into(),
            })
            .await
            .expect("revoked");
        }
    }
    let now = statistics(&mut r, P01, None).await;
    assert_eq!(now.licences_expiring, 1, "{now:?}");
    let as_of = statistics(&mut r, P01, now.as_of).await;
    assert_eq!(as_of.licences_expiring, 1, "the history says the same: {as_of:?}");
}

both_backends!(
    licences_expiring_within_90_days_are_counted_now_and_as_of,
    trial_and_operation_are_dimensions_beside_the_legal_status,
    running_counts_agree_with_the_history,
    two_provinces_on_one_node_have_their_own_figures,
    figures_as_of_a_past_time_ignore_what_came_after,
    figures_of_the_future_are_refused,
);
