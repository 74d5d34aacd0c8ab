//! The centre (`einfo.central.v1`), served by the test kit's fake centre: campaigns on the
//! targets' feeds only, resume across restarts, signed receipts, idempotent resubmission,
//! timeliness by the first receipt, return / accept / exceptions on the feed, bad input and
//! permissions.

use std::time::Duration;

use einfo_common::changelog::LogId;
use einfo_common::clock::{Clock, ManualClock};
use einfo_common::receipts::verify;
use einfo_domain::Jurisdiction;
use einfo_proto::central::v1 as pb;
use einfo_proto::reporting::v1::Timeliness;
use einfo_testkit::fixtures::secs_after;
use einfo_testkit::{Backend, CentralClient, FakeCentre, TestNode, both_backends, in_secs, province};
use pb::feed_event::Event;
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::refusals::{fields, reason};

fn campaign(targets: &[&str], deadline: prost_types::Timestamp) -> pb::Campaign {
    pb::Campaign {
        reference: "3224/BTTTT-PTTH&TTĐT".into(),
        title: "Báo cáo quản lý trang thông tin điện tử".into(),
        period_start: Some(in_secs(-90 * 86400)),
        period_end: Some(in_secs(-86400)),
        as_of: Some(in_secs(-3600)),
        deadline: Some(deadline),
        lock_time: Some(in_secs(30 * 86400)),
        targets: targets.iter().map(|c| province(c).to_string()).collect(),
        indicators: vec![pb::Indicator {
            code: "sites_by_kind_status".into(),
            name_vi: "Số trang theo loại và trạng thái".into(),
            name_en: "Sites by kind and status".into(),
        }],
        narrative_sections: vec!["assessment".into(), "recommendations".into()],
        ..Default::default()
    }
}

async fn create(c: &FakeCentre, targets: &[&str], deadline: prost_types::Timestamp) -> pb::Campaign {
    c.admin()
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(campaign(targets, deadline)),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("create campaign")
        .into_inner()
}

async fn feed(client: &mut CentralClient, code: &str, after: u64) -> Vec<pb::FeedEvent> {
    let mut s = client
        .stream_feed(pb::StreamFeedRequest { jurisdiction: province(code).to_string(), after, follow: false })
        .await
        .expect("stream feed")
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = s.next().await {
        out.push(r.expect("feed event").event.expect("event"));
    }
    out
}

fn submission(campaign: &str, code: &str, version: u32, content: &[u8]) -> pb::Submission {
    let j = province(code);
    pb::Submission {
        campaign: campaign.into(),
        jurisdiction: j.to_string(),
        report: format!("{j}/reports/{}", campaign.trim_start_matches("campaigns/")),
        version,
        content: content.to_vec(),
        content_hash: Sha256::digest(content).to_vec(),
        submit_time: Some(in_secs(0)),
    }
}

async fn submit(c: &FakeCentre, s: pb::Submission) -> Result<pb::Receipt, tonic::Status> {
    let code = s.jurisdiction.rsplit('-').next().unwrap_or_default().to_owned();
    Ok(c.province(&code)
        .submit(pb::SubmitRequest { submission: Some(s) })
        .await?
        .into_inner()
        .receipt
        .expect("receipt"))
}

async fn timeliness(c: &FakeCentre, campaign: &str, code: &str) -> Timeliness {
    let rows = c.central().completeness(campaign).await.expect("completeness");
    rows.iter().find(|r| r.jurisdiction == province(code)).expect("a target").timeliness
}

async fn a_campaign_reaches_its_targets_only(backend: Backend) {
    let Some(c) = FakeCentre::start(backend).await else { return };
    let mut hcm = c.province("79");
    // A follower of 79 waits before the campaign exists.
    let mut follow = hcm
        .stream_feed(pb::StreamFeedRequest { jurisdiction: province("79").to_string(), after: 0, follow: true })
        .await
        .unwrap()
        .into_inner();
    let made = create(&c, &["01", "79"], in_secs(86400)).await;
    assert!(made.name.starts_with("campaigns/"), "{}", made.name);
    let got = tokio::time::timeout(Duration::from_secs(5), follow.next()).await.expect("followed in time");
    let e = got.unwrap().unwrap().event.unwrap();
    assert_eq!(e.sequence, 1);
    assert_eq!(e.event, Some(Event::Campaign(made.clone())));

    let hn = feed(&mut c.province("01"), "01", 0).await;
    assert_eq!(hn.len(), 1);
    assert_eq!(hn[0].event, Some(Event::Campaign(made.clone())));
    assert!(feed(&mut c.province("02"), "02", 0).await.is_empty(), "02 is not a target");
    // The centre reads any feed; a province only its own.
    assert_eq!(feed(&mut c.admin(), "01", 0).await.len(), 1);
    let err = c
        .province("02")
        .stream_feed(pb::StreamFeedRequest { jurisdiction: province("01").to_string(), after: 0, follow: false })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A second campaign for 01 only: 01's feed is dense, 79's untouched.
    let second = create(&c, &["01"], in_secs(86400)).await;
    let hn = feed(&mut c.province("01"), "01", 1).await;
    assert_eq!(hn.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![2]);
    assert_eq!(hn[0].event, Some(Event::Campaign(second)));
    assert_eq!(feed(&mut c.province("79"), "79", 0).await.len(), 1);

    // The centre's log records both, in one verifiable chain.
    let log = LogId { jurisdiction: Jurisdiction::Central, service: "central" };
    let n = einfo_common::changelog::verify_log(c.central().db().conn(), &log).await.unwrap().unwrap();
    assert_eq!(n, 2);
}

async fn the_feed_resumes_after_a_restart_of_the_centre(backend: Backend) {
    let Some(mut c) = FakeCentre::start(backend).await else { return };
    let key = c.public_key();
    create(&c, &["01"], in_secs(86400)).await;
    create(&c, &["01"], in_secs(86400)).await;
    let before = feed(&mut c.province("01"), "01", 0).await;
    assert_eq!(before.len(), 2);

    // A follower's stream ends when the centre stops, and stopping does not wait for it.
    let mut follower = c
        .province("01")
        .stream_feed(pb::StreamFeedRequest { jurisdiction: province("01").to_string(), after: 2, follow: true })
        .await
        .unwrap()
        .into_inner();
    let stopping = std::time::Instant::now();
    c.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(5), "stopped in {:?}", stopping.elapsed());
    let end = tokio::time::timeout(Duration::from_secs(5), follower.next()).await.expect("the stream ended");
    assert!(end.as_ref().is_none_or(|r| r.is_err()), "{end:?}");
    let mut down = c.province("01");
    let err = down
        .stream_feed(pb::StreamFeedRequest { jurisdiction: province("01").to_string(), after: 2, follow: false })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    c.start_again_same_port().await;

    assert_eq!(c.public_key(), key, "the signing key survives a restart");
    let third = create(&c, &["01"], in_secs(86400)).await;
    let after = feed(&mut c.province("01"), "01", 2).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].sequence, 3);
    assert_eq!(after[0].event, Some(Event::Campaign(third)));
    assert_eq!(feed(&mut c.province("01"), "01", 0).await[..2], before[..]);
}

async fn a_receipt_verifies_and_a_tampered_one_does_not(backend: Backend) {
    let Some(c) = FakeCentre::start(backend).await else { return };
    let k = c.admin().get_public_key(pb::GetPublicKeyRequest {}).await.unwrap().into_inner();
    assert_eq!(k.public_key, c.public_key().to_vec());
    let made = create(&c, &["01"], in_secs(86400)).await;
    let s = submission(&made.name, "01", 1, b"report version 1");
    let before = in_secs(0);
    let r = submit(&c, s.clone()).await.unwrap();
    assert_eq!(verify(&c.public_key(), &r), Ok(()));
    assert_eq!(r.key_id, k.key_id);
    let body = r.body.clone().unwrap();
    assert_eq!(body.campaign, made.name);
    assert_eq!(body.jurisdiction, province("01").to_string());
    assert_eq!(body.report, s.report);
    assert_eq!(body.version, 1);
    assert_eq!(body.content_hash, s.content_hash);
    let t = body.receive_time.unwrap();
    assert_eq!(t.nanos % 1000, 0, "to the microsecond");
    assert!(t.seconds >= before.seconds);

    let mut tampered = r.clone();
    tampered.body.as_mut().unwrap().content_hash[0] ^= 1;
    assert!(verify(&c.public_key(), &tampered).is_err());
    let mut tampered = r.clone();
    tampered.body.as_mut().unwrap().receive_time.as_mut().unwrap().nanos += 1000;
    assert!(verify(&c.public_key(), &tampered).is_err());

    // The same content again: the first receipt. Another content for the same version: refused.
    assert_eq!(submit(&c, s.clone()).await.unwrap(), r);
    let err = submit(&c, submission(&made.name, "01", 1, b"something else")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // A content hash that does not match.
    let mut bad = submission(&made.name, "01", 2, b"v2");
    bad.content_hash[0] ^= 1;
    let err = submit(&c, bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), vec!["submission.content_hash"]);
    // A new version gets its own receipt.
    let r2 = submit(&c, submission(&made.name, "01", 2, b"v2")).await.unwrap();
    assert_ne!(r2.body.as_ref().unwrap().receipt_id, body.receipt_id);
    assert_eq!(verify(&c.public_key(), &r2), Ok(()));
}

async fn timeliness_is_decided_by_the_first_receipt(backend: Backend) {
    let clock = ManualClock::starting_now();
    let Some(c) = FakeCentre::start_with_clock(backend, clock.clone()).await else { return };
    // Due in two seconds: version 1 on time, version 2 after the deadline.
    let deadline = secs_after(clock.now(), 2);
    let soon = create(&c, &["01", "02"], deadline).await;
    assert_eq!(timeliness(&c, &soon.name, "01").await, Timeliness::Missing);
    submit(&c, submission(&soon.name, "01", 1, b"v1")).await.unwrap();
    assert_eq!(timeliness(&c, &soon.name, "01").await, Timeliness::OnTime);
    clock.advance(chrono::Duration::milliseconds(2200));
    let late = submit(&c, submission(&soon.name, "01", 2, b"v2")).await.unwrap();
    let received = late.body.as_ref().and_then(|b| b.receive_time).expect("a receive time");
    assert!(
        (received.seconds, received.nanos) > (deadline.seconds, deadline.nanos),
        "version 2 came after the deadline"
    );
    assert_eq!(timeliness(&c, &soon.name, "01").await, Timeliness::OnTime);
    let rows = c.central().completeness(&soon.name).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].timeliness, Timeliness::Missing);
    assert!(rows[0].first_receive_time.is_some() && rows[1].first_receive_time.is_none());

    // Past due: late, unless an exception extended the deadline first.
    let past = create(&c, &["01", "79"], secs_after(clock.now(), -60)).await;
    submit(&c, submission(&past.name, "01", 1, b"late")).await.unwrap();
    assert_eq!(timeliness(&c, &past.name, "01").await, Timeliness::Late);
    let d = c
        .admin()
        .grant_exception(pb::GrantExceptionRequest {
            campaign: past.name.clone(),
            jurisdiction: province("79").to_string(),
            extended_deadline: Some(secs_after(clock.now(), 3600)),
            extended_lock_time: None,
            comment: "Cục's server was down".into(),
            request_id: "ex-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.kind(), pb::DecisionKind::Exception);
    submit(&c, submission(&past.name, "79", 1, b"excused")).await.unwrap();
    assert_eq!(timeliness(&c, &past.name, "79").await, Timeliness::OnTime);
    assert_eq!(timeliness(&c, &past.name, "01").await, Timeliness::Late);
    let ev = feed(&mut c.province("79"), "79", 1).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event, Some(Event::Decision(d)));
}

async fn return_and_accept_appear_on_the_feed(backend: Backend) {
    let Some(c) = FakeCentre::start(backend).await else { return };
    let made = create(&c, &["01"], in_secs(86400)).await;
    let mut admin = c.admin();
    let err = admin
        .accept(pb::AcceptRequest {
            campaign: made.name.clone(),
            jurisdiction: province("01").to_string(),
            version: 1,
            request_id: "a-0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "nothing received yet");
    submit(&c, submission(&made.name, "01", 1, b"v1")).await.unwrap();
    let ret = pb::ReturnRequest {
        campaign: made.name.clone(),
        jurisdiction: province("01").to_string(),
        version: 1,
        comment: "Thiếu số liệu quý III".into(),
        request_id: "r-1".into(),
    };
    let returned = admin.r#return(ret.clone()).await.unwrap().into_inner();
    assert_eq!(returned.kind(), pb::DecisionKind::Returned);
    assert_eq!(admin.r#return(ret).await.unwrap().into_inner(), returned, "a retry gets the first answer");
    submit(&c, submission(&made.name, "01", 2, b"v2")).await.unwrap();
    let accept = |version: u32, id: &str| pb::AcceptRequest {
        campaign: made.name.clone(),
        jurisdiction: province("01").to_string(),
        version,
        request_id: id.into(),
    };
    let err = admin.accept(accept(1, "a-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "version 1 was superseded");
    let accepted = admin.accept(accept(2, "a-2")).await.unwrap().into_inner();
    assert_eq!(accepted.kind(), pb::DecisionKind::Accepted);
    assert_eq!(accepted.version, 2);

    let ev = feed(&mut c.province("01"), "01", 0).await;
    let kinds: Vec<_> = ev
        .iter()
        .map(|e| match &e.event {
            Some(Event::Campaign(_)) => "campaign".to_owned(),
            Some(Event::Decision(d)) => format!("{:?}", d.kind()),
            None => "none".into(),
        })
        .collect();
    assert_eq!(kinds, vec!["campaign", "Returned", "Accepted"]);
    assert_eq!(ev.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(ev[1].event, Some(Event::Decision(returned)));
}

async fn bad_input_is_invalid_argument_with_field_paths(backend: Backend) {
    let Some(c) = FakeCentre::start(backend).await else { return };
    let mut admin = c.admin();
    let mut bad = campaign(&["01"], in_secs(86400));
    bad.reference = " ".into();
    bad.period_end = bad.period_start;
    bad.lock_time = Some(in_secs(3600));
    bad.targets = vec!["provinces/2008-01".into(), "central".into(), "provinces/2008-01".into(), "hanoi".into()];
    bad.indicators[0].code = String::new();
    bad.narrative_sections = vec![];
    let err = admin
        .create_campaign(pb::CreateCampaignRequest { campaign: Some(bad), request_id: "c-1".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "FIELD_INVALID");
    let mut f = fields(&err);
    f.sort();
    assert_eq!(
        f,
        vec![
            "campaign.indicators[0].code",
            "campaign.lock_time",
            "campaign.narrative_sections",
            "campaign.period_end",
            "campaign.reference",
            "campaign.targets[1]",
            "campaign.targets[2]",
            "campaign.targets[3]",
        ]
    );
    let err = admin
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(pb::Campaign::default()),
            request_id: "c-2".into(),
        })
        .await
        .unwrap_err();
    for f in ["campaign.title", "campaign.as_of", "campaign.deadline", "campaign.targets", "campaign.indicators"] {
        assert!(fields(&err).iter().any(|x| x == f), "{f} in {:?}", fields(&err));
    }
    let err = admin
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(campaign(&["01"], in_secs(60))),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), vec!["request_id"]);

    let made = create(&c, &["01"], in_secs(86400)).await;
    let err = admin
        .r#return(pb::ReturnRequest {
            campaign: "campaign/x".into(),
            jurisdiction: "provinces/2008-99".into(),
            version: 0,
            comment: String::new(),
            request_id: "r-1".into(),
        })
        .await
        .unwrap_err();
    let mut f = fields(&err);
    f.sort();
    assert_eq!(f, vec!["campaign", "comment", "jurisdiction", "version"]);
    let err = admin
        .grant_exception(pb::GrantExceptionRequest {
            campaign: made.name.clone(),
            jurisdiction: province("01").to_string(),
            comment: "why".into(),
            request_id: "g-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), vec!["extended_deadline"]);
    let mut s = submission(&made.name, "01", 0, b"");
    s.report = "provinces/2008-79/reports/x".into();
    s.content_hash.clear();
    let err = submit(&c, s).await.unwrap_err();
    let mut f = fields(&err);
    f.sort();
    assert_eq!(f, vec!["submission.content", "submission.content_hash", "submission.report", "submission.version"]);

    // Nothing was logged by the failed calls: only the one campaign.
    let log = LogId { jurisdiction: Jurisdiction::Central, service: "central" };
    assert_eq!(einfo_common::changelog::verify_log(c.central().db().conn(), &log).await.unwrap().unwrap(), 1);
}

async fn only_the_right_callers_may_act(backend: Backend) {
    let Some(c) = FakeCentre::start(backend).await else { return };
    let made = create(&c, &["01", "79"], in_secs(86400)).await;
    // A province submits for itself only.
    let mut s = submission(&made.name, "79", 1, b"v1");
    s.report = format!("{}/reports/x", province("79"));
    let err = c.province("01").submit(pb::SubmitRequest { submission: Some(s) }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "NOT_YOUR_JURISDICTION");
    // A reporting officer may submit for its own jurisdiction (as its node does, as a service).
    let reporter = einfo_common::auth::Caller {
        subject: "reporter-79".into(),
        role: einfo_common::auth::Role::Reporter,
        jurisdiction: province("79"),
    };
    c.client_as(&reporter)
        .submit(pb::SubmitRequest { submission: Some(submission(&made.name, "79", 1, b"v1")) })
        .await
        .unwrap();
    // A province that is not a target.
    let err = submit(&c, submission(&made.name, "02", 1, b"v1")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The centre does not submit; provinces and analysts do not create campaigns or decide.
    let err = c
        .admin()
        .submit(pb::SubmitRequest { submission: Some(submission(&made.name, "01", 1, b"v1")) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    for caller in [TestNode::analyst(), TestNode::operator("01")] {
        let err = c
            .client_as(&caller)
            .create_campaign(pb::CreateCampaignRequest {
                campaign: Some(campaign(&["01"], in_secs(60))),
                request_id: "c-1".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{caller:?}");
        assert_eq!(reason(&err), "ROLE_NOT_ALLOWED");
    }
    let err = c
        .province("79")
        .accept(pb::AcceptRequest {
            campaign: made.name.clone(),
            jurisdiction: province("79").to_string(),
            version: 1,
            request_id: "a-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Without a token.
    let anon = tonic::transport::Endpoint::from_shared(c.url()).unwrap().connect().await.unwrap();
    let err = pb::central_service_client::CentralServiceClient::new(anon)
        .stream_feed(pb::StreamFeedRequest { jurisdiction: province("01").to_string(), after: 0, follow: false })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

async fn reference_data_is_served_in_order(backend: Backend) {
    let Some(c) = FakeCentre::start(backend).await else { return };
    let read = |after: u64| {
        let mut client = c.province("01");
        async move {
            let mut s = client
                .stream_reference_data(pb::StreamReferenceDataRequest { after, follow: false })
                .await
                .unwrap()
                .into_inner();
            let mut out = Vec::new();
            while let Some(r) = s.next().await {
                out.push(r.unwrap().data.unwrap());
            }
            out
        }
    };
    let all = read(0).await;
    assert_eq!(
        all.iter().map(|d| (d.sequence, d.kind.as_str())).collect::<Vec<_>>(),
        vec![(1, "violation-catalogue"), (2, "holidays"), (3, "indicators")]
    );
    assert!(String::from_utf8(all[0].content.clone()).unwrap().starts_with("code,catalogue_version,"));
    assert!(String::from_utf8(all[1].content.clone()).unwrap().starts_with("date,kind,name"));
    assert!(String::from_utf8(all[2].content.clone()).unwrap().starts_with("code,service,field,name_vi,name_en"));
    for d in &all {
        let digest = Sha256::digest(&d.content);
        assert_eq!(d.version, digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>(), "{}", d.kind);
    }
    let rest = read(1).await;
    assert_eq!(rest.iter().map(|d| d.sequence).collect::<Vec<_>>(), vec![2, 3]);
    assert!(read(3).await.is_empty());
}

both_backends!(
    a_campaign_reaches_its_targets_only,
    the_feed_resumes_after_a_restart_of_the_centre,
    a_receipt_verifies_and_a_tampered_one_does_not,
    timeliness_is_decided_by_the_first_receipt,
    return_and_accept_appear_on_the_feed,
    bad_input_is_invalid_argument_with_field_paths,
    only_the_right_callers_may_act,
    reference_data_is_served_in_order,
);
