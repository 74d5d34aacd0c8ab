//! Applications, licences and the time-driven transitions the node's clock writes.

use chrono::{FixedOffset, TimeZone, Utc};
use einfo_common::clock::{Clock, ManualClock};
use einfo_domain::calendar::WorkingCalendar;
use einfo_proto::log::v1 as log;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::fixtures::{self, licence_state, license, operations, secs_after, site_status};
use einfo_testkit::{Backend, RegistryClient, SiteExt, TestNode, both_backends, in_secs, site};

const P01: &str = "provinces/2008-01";

async fn read_site(c: &mut RegistryClient, name: &str) -> pb::Site {
    c.get_site(pb::GetSiteRequest { name: name.into() }).await.expect("site read").into_inner()
}

async fn register(c: &mut RegistryClient, kind: &str, name: &str, domain: &str) -> pb::Site {
    let site = site(name, &[domain]).of_kind(kind).found_by(pb::DiscoverySource::Application);
    fixtures::register(c, P01, site).await
}

async fn submit(c: &mut RegistryClient, site: &str, receive_time: prost_types::Timestamp) -> pb::LicenceApplication {
    c.submit_application(pb::SubmitApplicationRequest {
        application: Some(pb::LicenceApplication {
            site: site.into(),
            dossier_items: vec!["đơn đề nghị".into(), "đề án".into()],
            receive_time: Some(receive_time),
            ..Default::default()
        }),
        request_id: format!("submit-{}", uuid::Uuid::new_v4()),
    })
    .await
    .expect("application submitted")
    .into_inner()
}

async fn approve(
    c: &mut RegistryClient,
    app: &str,
    number: &str,
    issue: prost_types::Timestamp,
    expire: prost_types::Timestamp,
) -> pb::ApproveApplicationResponse {
    c.approve_application(pb::ApproveApplicationRequest {
        name: app.into(),
        licence: Some(pb::Licence {
            number: number.into(),
            issuing_authority: "Sở Thông tin và Truyền thông Hà Nội".into(),
            issue_time: Some(issue),
            expire_time: Some(expire),
            ..Default::default()
        }),
        request_id: format!("approve-{number}"),
    })
    .await
    .expect("application approved")
    .into_inner()
}

/// A site with a valid licence issued a day ago that expires at `expire`.
async fn licensed_site(
    c: &mut RegistryClient,
    domain: &str,
    expire: prost_types::Timestamp,
) -> (pb::Site, pb::Licence) {
    let s = register(c, "social-network", &format!("Mạng xã hội {domain}"), domain).await;
    let licence = license(c, &s, expire).await;
    (s, licence)
}

/// Every entry of province 01's registry log.
async fn log_entries(node: &TestNode) -> Vec<log::ChangeEntry> {
    fixtures::log_entries(node, P01, "registry").await
}

/// Asserts that the log holds `op` on `resource` by the system actor, directly followed by a
/// STATUS entry for `site` with `status`.
fn assert_system_transition(
    entries: &[log::ChangeEntry],
    op: &str,
    resource: &str,
    site: &str,
    status: pb::LegalStatus,
) {
    let i = entries
        .iter()
        .position(|e| e.operation == op && e.resource == resource)
        .unwrap_or_else(|| panic!("no {op} entry for {resource}; log: {:?}", operations(entries)));
    let actor = entries[i].actor.clone().expect("an actor");
    assert_eq!((actor.subject.as_str(), actor.role.as_str()), ("system", "system"), "{op} is written by the node");
    assert_eq!(actor.jurisdiction, P01);
    let next = entries.get(i + 1).unwrap_or_else(|| panic!("nothing follows {op}"));
    assert_eq!(
        (next.operation.as_str(), next.resource.as_str()),
        ("STATUS", site),
        "{op} is followed by the site's STATUS"
    );
    let state = next.state.as_ref().expect("a state").to_msg::<pb::Site>().expect("a site");
    assert_eq!(state.legal_status(), status);
    assert_eq!(next.actor.as_ref().expect("an actor").subject, "system");
    assert_eq!(next.sequence, entries[i].sequence + 1);
}

/// The deadline of an application received at `received`: the start (Vietnam time) of the day
/// after the `days`-th working day following the day of receipt.
fn expected_deadline(received: &prost_types::Timestamp, days: u32) -> prost_types::Timestamp {
    let vn = FixedOffset::east_opt(7 * 3600).unwrap();
    let day = Utc.timestamp_opt(received.seconds, 0).unwrap().with_timezone(&vn).date_naive();
    let last = WorkingCalendar::bundled().add_working_days(day, days);
    let start = vn.from_local_datetime(&last.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap()).unwrap();
    prost_types::Timestamp { seconds: start.timestamp(), nanos: 0 }
}

async fn an_application_becomes_a_licence_that_is_renewed_suspended_and_revoked(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let s = register(&mut c, "general-website", "Tin tức Thủ đô", "tintucthudo.vn").await;
    assert_eq!(s.legal_status(), pb::LegalStatus::Unlicensed);

    let app = submit(&mut c, &s.name, in_secs(0)).await;
    assert_eq!(app.state(), pb::ApplicationState::Received);
    assert!(!app.overdue);
    assert_eq!(app.deadline, Some(expected_deadline(app.receive_time.as_ref().unwrap(), 10)));
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Applied);

    let app = c
        .request_supplement(pb::RequestSupplementRequest {
            name: app.name.clone(),
            reason: "thiếu đề án".into(),
            request_id: "supplement-request".into(),
        })
        .await
        .expect("supplement requested")
        .into_inner();
    assert_eq!(app.state(), pb::ApplicationState::NeedsSupplement);
    assert_eq!(app.state_reason, "thiếu đề án");
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Applied, "awaiting a supplement is still applied");

    let supplement_time = in_secs(0);
    let app = c
        .receive_supplement(pb::ReceiveSupplementRequest {
            name: app.name.clone(),
            receive_time: Some(supplement_time),
            request_id: "supplement-received".into(),
        })
        .await
        .expect("supplement received")
        .into_inner();
    assert_eq!(app.state(), pb::ApplicationState::Received);
    assert_eq!(app.state_reason, "");
    assert_eq!(
        app.deadline,
        Some(expected_deadline(&supplement_time, 10)),
        "the deadline restarts from the supplement"
    );

    let r = approve(&mut c, &app.name, "15/GP-STTTT", in_secs(-60), in_secs(365 * 86_400)).await;
    let (app, licence) = (r.application.unwrap(), r.licence.unwrap());
    assert_eq!(app.state(), pb::ApplicationState::Approved);
    assert_eq!(app.licence, licence.name);
    assert_eq!(licence.state(), pb::LicenceState::Valid);
    assert_eq!(licence.site, s.name);
    assert_eq!(licence.application, app.name);
    assert!(licence.name.starts_with("provinces/2008-01/licences/"));
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Licensed);

    let new_expiry = in_secs(2 * 365 * 86_400);
    let renewed = c
        .renew_licence(pb::RenewLicenceRequest {
            name: licence.name.clone(),
            expire_time: Some(new_expiry),
            request_id: "renew".into(),
        })
        .await
        .expect("renewed")
        .into_inner();
    assert_eq!(renewed.state(), pb::LicenceState::Valid);
    assert_eq!(renewed.expire_time.unwrap().seconds, new_expiry.seconds);
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Licensed);

    let until = in_secs(30 * 86_400);
    let suspended = c
        .suspend_licence(pb::SuspendLicenceRequest {
            name: licence.name.clone(),
            until: Some(until),
            reason: "Quyết định xử phạt 12/QĐ-XPHC".into(),
            request_id: "suspend".into(),
        })
        .await
        .expect("suspended")
        .into_inner();
    assert_eq!(suspended.state(), pb::LicenceState::Suspended);
    assert_eq!(suspended.suspended_until.unwrap().seconds, until.seconds);
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Suspended);

    let revoked = c
        .revoke_licence(pb::RevokeLicenceRequest {
            name: licence.name.clone(),
            reason: "Quyết định thu hồi 3/QĐ-STTTT".into(),
            request_id: "revoke".into(),
        })
        .await
        .expect("revoked")
        .into_inner();
    assert_eq!(revoked.state(), pb::LicenceState::Revoked);
    assert_eq!(revoked.suspended_until, None);
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Revoked);
    let history: Vec<&str> = revoked.history.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(history, ["ISSUE", "RENEW", "SUSPEND", "REVOKE"]);

    let entries = log_entries(&node).await;
    assert_eq!(
        operations(&entries),
        [
            "CREATE",
            "SUBMIT",
            "STATUS",
            "REQUEST_SUPPLEMENT",
            "RECEIVE_SUPPLEMENT",
            "APPROVE",
            "ISSUE",
            "STATUS",
            "RENEW",
            "SUSPEND",
            "STATUS",
            "REVOKE",
            "STATUS",
        ]
    );
    let resources: Vec<&str> = entries.iter().map(|e| e.resource.as_str()).collect();
    let (sn, an, ln) = (s.name.as_str(), app.name.as_str(), licence.name.as_str());
    assert_eq!(resources, [sn, an, sn, an, an, an, ln, sn, ln, ln, sn, ln, sn]);
    assert!(entries.iter().all(|e| e.actor.as_ref().unwrap().subject == "operator-01"));
    assert_eq!(entries.iter().map(|e| e.sequence).collect::<Vec<_>>(), (1..=13).collect::<Vec<_>>());
    assert_eq!(entries[11].reason, "Quyết định thu hồi 3/QĐ-STTTT");
    assert_eq!(node.last_sequence("01").await, 13);
}

async fn a_licence_expires_while_the_node_runs_and_the_system_logs_it(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(node) = TestNode::start_with_clock(backend, &["01"], clock.clone()).await else { return };
    let mut c = node.registry("01").await;
    let (s, licence) = licensed_site(&mut c, "saphethan.vn", secs_after(clock.now(), 2)).await;
    assert_eq!(licence.state(), pb::LicenceState::Valid);
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Licensed);

    clock.advance(chrono::Duration::seconds(3));
    node.run_background().await;
    assert_eq!(licence_state(&mut c, &licence.name).await, pb::LicenceState::Expired);
    let expired = c.get_licence(pb::GetLicenceRequest { name: licence.name.clone() }).await.unwrap().into_inner();
    assert_eq!(expired.history.last().map(|e| e.operation.as_str()), Some("EXPIRE"));
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Expired);

    let entries = log_entries(&node).await;
    assert_system_transition(&entries, "EXPIRE", &licence.name, &s.name, pb::LegalStatus::Expired);
    let expire = entries.iter().find(|e| e.operation == "EXPIRE").unwrap();
    let state = expire.state.as_ref().unwrap().to_msg::<pb::Licence>().unwrap();
    assert_eq!(state.state(), pb::LicenceState::Expired);
    assert!(
        expire.server_time.unwrap().seconds >= licence.expire_time.unwrap().seconds,
        "not written before the expiry"
    );
    assert_eq!(entries.iter().filter(|e| e.operation == "EXPIRE").count(), 1, "expired once");
}

async fn a_suspension_lapses_on_its_date_and_the_site_is_licensed_again(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(node) = TestNode::start_with_clock(backend, &["01"], clock.clone()).await else { return };
    let mut c = node.registry("01").await;
    let (s, licence) = licensed_site(&mut c, "tamdinhchi.vn", secs_after(clock.now(), 365 * 86_400)).await;
    let suspended = c
        .suspend_licence(pb::SuspendLicenceRequest {
            name: licence.name.clone(),
            until: Some(secs_after(clock.now(), 2)),
            reason: "Quyết định đình chỉ 7/QĐ-XPHC".into(),
            request_id: "suspend".into(),
        })
        .await
        .expect("suspended")
        .into_inner();
    assert_eq!(suspended.state(), pb::LicenceState::Suspended);
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Suspended);

    clock.advance(chrono::Duration::seconds(3));
    node.run_background().await;
    assert_eq!(site_status(&mut c, &s.name).await, pb::LegalStatus::Licensed, "licensed again");
    let l = c.get_licence(pb::GetLicenceRequest { name: licence.name.clone() }).await.unwrap().into_inner();
    assert_eq!(l.state(), pb::LicenceState::Valid);
    assert_eq!(l.suspended_until, None);

    let entries = log_entries(&node).await;
    assert_system_transition(&entries, "SUSPENSION_LAPSE", &licence.name, &s.name, pb::LegalStatus::Licensed);
}

async fn a_trial_puts_a_site_on_trial_beside_its_status_until_its_end(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(node) = TestNode::start_with_clock(backend, &["01"], clock.clone()).await else { return };
    let mut c = node.registry("01").await;
    let s = register(&mut c, "social-network", "Mạng xã hội thử nghiệm", "thunghiem.vn").await;
    let record = c
        .add_site_record(pb::AddSiteRecordRequest {
            site: s.name.clone(),
            record: Some(pb::SiteRecord {
                kind: pb::SiteRecordKind::Trial as i32,
                reference: "5/CV-STTTT".into(),
                start_time: Some(secs_after(clock.now(), -86_400)),
                end_time: Some(secs_after(clock.now(), 2)),
                ..Default::default()
            }),
            request_id: "trial".into(),
        })
        .await
        .expect("trial recorded")
        .into_inner();
    assert!(record.name.starts_with("provinces/2008-01/records/"));
    assert_eq!(record.site, s.name);
    // On trial without a licence: unlicensed, and on trial (letter 3224, item 3).
    let on_trial = read_site(&mut c, &s.name).await;
    assert_eq!((on_trial.legal_status(), on_trial.trial), (pb::LegalStatus::Unlicensed, true));

    clock.advance(chrono::Duration::seconds(3));
    node.run_background().await;
    let ended = read_site(&mut c, &s.name).await;
    assert_eq!((ended.legal_status(), ended.trial), (pb::LegalStatus::Unlicensed, false), "the trial ended");

    let entries = log_entries(&node).await;
    assert_eq!(operations(&entries)[..3], ["CREATE", "RECORD_ADD", "STATUS"]);
    assert_system_transition(&entries, "RECORD_END", &record.name, &s.name, pb::LegalStatus::Unlicensed);
    assert_eq!(entries.iter().filter(|e| e.operation == "RECORD_END").count(), 1, "ended once");
}

async fn licences_expiring_within_n_days_are_listed(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let (_, soon) = licensed_site(&mut c, "sapheth.vn", in_secs(10 * 86_400)).await;
    let (_, later) = licensed_site(&mut c, "conlau.vn", in_secs(100 * 86_400)).await;
    let list =
        |days: i32| pb::ListLicencesRequest { parent: P01.into(), expiring_within_days: days, ..Default::default() };
    let names = |r: pb::ListLicencesResponse| r.licences.into_iter().map(|l| l.name).collect::<Vec<_>>();
    assert_eq!(names(c.list_licences(list(30)).await.unwrap().into_inner()), vec![soon.name.clone()]);
    let mut all = names(c.list_licences(list(0)).await.unwrap().into_inner());
    all.sort();
    let mut expected = vec![soon.name.clone(), later.name.clone()];
    expected.sort();
    assert_eq!(all, expected, "0 means no expiry filter");
    let err = c.list_licences(list(-1)).await.expect_err("a negative count is refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

async fn an_application_past_its_deadline_is_overdue_and_a_fresh_one_is_not(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let old_site = register(&mut c, "general-website", "Trang cũ", "trangcu.vn").await;
    let new_site = register(&mut c, "general-website", "Trang mới", "trangmoi.vn").await;
    let old = submit(&mut c, &old_site.name, in_secs(-60 * 86_400)).await;
    let fresh = submit(&mut c, &new_site.name, in_secs(0)).await;
    assert!(old.overdue, "received 60 days ago, 10 working days allowed");
    assert!(!fresh.overdue);

    let overdue_only = pb::ListApplicationsRequest { parent: P01.into(), overdue_only: true, ..Default::default() };
    let listed = c.list_applications(overdue_only).await.unwrap().into_inner().applications;
    assert_eq!(listed.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), [old.name.as_str()]);
    assert!(listed[0].overdue);

    let all = c
        .list_applications(pb::ListApplicationsRequest { parent: P01.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .applications;
    assert_eq!(all.len(), 2);
    for a in &all {
        assert_eq!(a.overdue, a.name == old.name, "{}", a.name);
    }
    let got = c.get_application(pb::GetApplicationRequest { name: old.name.clone() }).await.unwrap().into_inner();
    assert!(got.overdue);
}

async fn the_clock_stops_while_a_supplement_is_owed_and_restarts_when_it_arrives(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let s = register(&mut c, "social-network", "Mạng xã hội chậm", "cham.vn").await;
    let old = submit(&mut c, &s.name, in_secs(-60 * 86_400)).await;
    assert!(old.overdue);
    assert_eq!(old.deadline, Some(expected_deadline(old.receive_time.as_ref().unwrap(), 15)));
    let waiting = c
        .request_supplement(pb::RequestSupplementRequest {
            name: old.name.clone(),
            reason: "thiếu giấy phép kinh doanh".into(),
            request_id: "ask".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!waiting.overdue, "the applicant owes a supplement");
    let overdue_only = pb::ListApplicationsRequest { parent: P01.into(), overdue_only: true, ..Default::default() };
    assert!(c.list_applications(overdue_only.clone()).await.unwrap().into_inner().applications.is_empty());

    let now = in_secs(0);
    let back = c
        .receive_supplement(pb::ReceiveSupplementRequest {
            name: old.name.clone(),
            receive_time: Some(now),
            request_id: "got".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.state(), pb::ApplicationState::Received);
    assert!(!back.overdue);
    assert_eq!(back.deadline, Some(expected_deadline(&now, 15)), "social networks have 15 working days");
    assert!(back.deadline.unwrap().seconds > now.seconds + 15 * 86_400, "15 working days span three weekends");
    assert!(c.list_applications(overdue_only).await.unwrap().into_inner().applications.is_empty());
}

async fn the_deadline_of_an_application_received_before_tet_skips_the_break(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let vn = FixedOffset::east_opt(7 * 3600).unwrap();
    let s = register(&mut c, "general-website", "Tin Tết", "tintet.vn").await;
    // 01:00 on Monday 2025-01-20 in Hà Nội is still Sunday in UTC.
    let received = vn.with_ymd_and_hms(2025, 1, 20, 1, 0, 0).unwrap();
    assert_eq!(received.with_timezone(&Utc).format("%A").to_string(), "Sunday");
    let app = submit(&mut c, &s.name, prost_types::Timestamp { seconds: received.timestamp(), nanos: 0 }).await;
    // Working days after Monday 20 January: Tue 21 (1), Wed 22 (2), Thu 23 (3), Fri 24 (4);
    // Tết Ất Tỵ, Saturday 25 January to Sunday 2 February, is off; Mon 3 (5), Tue 4 (6),
    // Wed 5 (7), Thu 6 (8), Fri 7 (9), Mon 10 February (10). The deadline is the start of
    // Tuesday 11 February, Vietnam time: 2025-02-10T17:00:00Z.
    let expected = vn.with_ymd_and_hms(2025, 2, 11, 0, 0, 0).unwrap();
    assert_eq!(expected.with_timezone(&Utc).to_rfc3339(), "2025-02-10T17:00:00+00:00");
    assert_eq!(app.deadline, Some(prost_types::Timestamp { seconds: expected.timestamp(), nanos: 0 }));
    assert!(app.overdue, "long past");

    // The same Monday late in the evening (already Monday in UTC) has the same deadline.
    let s2 = register(&mut c, "general-website", "Tin Tết tối", "tintettoi.vn").await;
    let evening = vn.with_ymd_and_hms(2025, 1, 20, 23, 59, 0).unwrap();
    let app2 = submit(&mut c, &s2.name, prost_types::Timestamp { seconds: evening.timestamp(), nanos: 0 }).await;
    assert_eq!(app2.deadline, app.deadline);
}

both_backends!(
    an_application_becomes_a_licence_that_is_renewed_suspended_and_revoked,
    a_licence_expires_while_the_node_runs_and_the_system_logs_it,
    a_suspension_lapses_on_its_date_and_the_site_is_licensed_again,
    a_trial_puts_a_site_on_trial_beside_its_status_until_its_end,
    licences_expiring_within_n_days_are_listed,
    an_application_past_its_deadline_is_overdue_and_a_fresh_one_is_not,
    the_clock_stops_while_a_supplement_is_owed_and_restarts_when_it_arrives,
    the_deadline_of_an_application_received_before_tet_skips_the_break,
);
