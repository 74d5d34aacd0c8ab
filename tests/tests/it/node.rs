//! A whole node: health around migrations, reflection, provinces kept apart on one node,
//! jurisdictions it does not host, and W3C trace context on incoming calls.

use std::collections::BTreeSet;

use einfo_app::node::{CHANGELOG_GRPC, Options, REGISTRY_GRPC};
use einfo_proto::registry::v1 as pb;
use einfo_testkit::{
    Backend, RegistryClient, TestDb, TestNode, both_backends, fixtures, province, settings, site, tonic_health_client,
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

use crate::refusals::reason;

async fn register(c: &mut RegistryClient, code: &str, name: &str, domain: &str) -> pb::Site {
    fixtures::register(c, &province(code).to_string(), site(name, &[domain])).await
}

fn list(code: &str) -> pb::ListSitesRequest {
    pb::ListSitesRequest { parent: province(code).to_string(), ..Default::default() }
}

// ------------------------------------------------------------------ health

async fn health_is_not_serving_until_migrations_ran_and_serving_after(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let mut s = settings(&db, &["01"]);
    // Health also on a plaintext address of its own (`health_listen`), for probes.
    s.health_listen = Some("127.0.0.1:0".parse().expect("an address"));
    let (gate, held) = tokio::sync::oneshot::channel();
    let node = TestNode::start_on(db, s, Options { migration_gate: Some(held), ..Options::default() }).await;

    let mut health = tonic_health_client(node.channel().await);
    let probe_channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", node.health_addr().expect("a health address")))
            .expect("url")
            .connect_lazy();
    let mut probe = tonic_health_client(probe_channel.clone());
    let status = |name: &str| HealthCheckRequest { service: name.into() };
    for name in ["", REGISTRY_GRPC, CHANGELOG_GRPC] {
        let r = health.check(status(name)).await.expect("health answers before migrations").into_inner();
        assert_eq!(r.status, ServingStatus::NotServing as i32, "'{name}' before migrations");
        let r = probe.check(status(name)).await.expect("the probe address answers too").into_inner();
        assert_eq!(r.status, ServingStatus::NotServing as i32, "'{name}' before migrations, probe address");
    }
    // No service answers before its migrations: the gateway's first call used to meet
    // `INTERNAL: no such table: log_heads`; it is now told to come back.
    let early = node
        .changelog()
        .await
        .get_log_head(einfo_proto::log::v1::GetLogHeadRequest {
            jurisdiction: province("01").to_string(),
            service: "registry".into(),
        })
        .await
        .expect_err("the change log does not answer before its migrations");
    assert_eq!((early.code(), reason(&early).as_str()), (tonic::Code::Unavailable, "NOT_READY"), "{early:?}");
    assert!(early.get_details_retry_info().and_then(|r| r.retry_delay).is_some(), "a retry delay: {early:?}");
    let mut registry = node.registry("01").await;
    let early = registry.list_sites(list("01")).await.expect_err("nor does the registry");
    assert_eq!(early.code(), tonic::Code::Unavailable, "{early:?}");

    gate.send(()).expect("the node waits on the gate");
    node.wait_serving().await;
    for name in ["", REGISTRY_GRPC, CHANGELOG_GRPC] {
        let r = health.check(status(name)).await.expect("health answers after migrations").into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "'{name}' after migrations");
        let r = probe.check(status(name)).await.expect("the probe address answers").into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "'{name}' after migrations, probe address");
    }
    // The probe address serves health alone: no token, no other service.
    let other = pb::registry_service_client::RegistryServiceClient::new(probe_channel)
        .list_sites(list("01"))
        .await
        .expect_err("only health there");
    assert_eq!(other.code(), Code::Unimplemented, "{other:?}");
    // Serving means the registry works.
    let mut c = node.registry("01").await;
    register(&mut c, "01", "Trang sau di trú", "saumigration.vn").await;
    assert_eq!(node.last_sequence("01").await, 1);
}

// ------------------------------------------------------------------ reflection

async fn reflection_answers_on_v1_and_v1alpha_and_lists_the_einfo_services(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let expected = ["einfo.registry.v1.RegistryService", "einfo.log.v1.ChangeLogService", "grpc.health.v1.Health"];

    let v1 = {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut c = ServerReflectionClient::new(node.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers =
            c.server_reflection_info(tokio_stream::once(request)).await.expect("reflection v1 answers").into_inner();
        let answer = answers.next().await.expect("one answer").expect("no error");
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(l)) => {
                l.service.into_iter().map(|s| s.name).collect::<BTreeSet<_>>()
            }
            other => panic!("v1 ListServices answered {other:?}"),
        }
    };
    let v1alpha = {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut c = ServerReflectionClient::new(node.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = c
            .server_reflection_info(tokio_stream::once(request))
            .await
            .expect("reflection v1alpha answers")
            .into_inner();
        let answer = answers.next().await.expect("one answer").expect("no error");
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(l)) => {
                l.service.into_iter().map(|s| s.name).collect::<BTreeSet<_>>()
            }
            other => panic!("v1alpha ListServices answered {other:?}"),
        }
    };
    for name in expected {
        assert!(v1.contains(name), "v1 lists {name}: {v1:?}");
        assert!(v1alpha.contains(name), "v1alpha lists {name}: {v1alpha:?}");
    }
    // Only what the node serves: not the gateway's services nor the centre's.
    for name in
        ["einfo.gateway.v1.NationalService", "einfo.gateway.v1.DirectoryService", "einfo.central.v1.CentralService"]
    {
        assert!(!v1.contains(name), "a node does not list {name}: {v1:?}");
    }
    assert_eq!(v1, v1alpha, "both versions list the same services");
}

// ------------------------------------------------------------------ provinces apart

async fn two_provinces_on_one_node_never_see_each_others_records_and_the_centre_reads_both(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    let mut hanoi = node.registry("01").await;
    let mut hcm = node.registry("79").await;
    let h1 = register(&mut hanoi, "01", "Báo Thủ đô", "baothudo.vn").await;
    let h2 = register(&mut hanoi, "01", "Tin Hồ Gươm", "hoguom.vn").await;
    // The same request id in the other province is another request.
    let s1 = register(&mut hcm, "79", "Sài Gòn Nay", "saigonnay.vn").await;

    let names = |r: pb::ListSitesResponse| r.sites.into_iter().map(|s| s.name).collect::<BTreeSet<_>>();
    assert_eq!(
        names(hanoi.list_sites(list("01")).await.unwrap().into_inner()),
        BTreeSet::from([h1.name.clone(), h2.name.clone()])
    );
    assert_eq!(names(hcm.list_sites(list("79")).await.unwrap().into_inner()), BTreeSet::from([s1.name.clone()]));

    // 01's operator reads nothing of 79, and the reverse.
    let err = hanoi.list_sites(list("79")).await.expect_err("01 lists 79");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(reason(&err), "NOT_YOUR_JURISDICTION");
    let err = hanoi.get_site(pb::GetSiteRequest { name: s1.name.clone() }).await.expect_err("01 reads a 79 site");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(reason(&err), "NOT_YOUR_JURISDICTION");
    let err = hcm.get_site(pb::GetSiteRequest { name: h1.name.clone() }).await.expect_err("79 reads a 01 site");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // Nor writes there.
    let err = hanoi
        .register_site(pb::RegisterSiteRequest {
            parent: province("79").to_string(),
            site: Some(site("Lạc chỗ", &["lacho.vn"])),
            request_id: "r9".into(),
        })
        .await
        .expect_err("01 writes in 79");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(node.last_sequence("79").await, 1, "a refused call changes nothing");

    // Each log holds only its own province.
    assert_eq!(node.last_sequence("01").await, 2);
    assert_eq!(node.last_sequence("79").await, 1);

    // A central analyst reads both.
    let mut centre = node.registry_as(&TestNode::analyst()).await;
    assert_eq!(
        names(centre.list_sites(list("01")).await.unwrap().into_inner()),
        BTreeSet::from([h1.name.clone(), h2.name.clone()])
    );
    assert_eq!(names(centre.list_sites(list("79")).await.unwrap().into_inner()), BTreeSet::from([s1.name.clone()]));
    let got = centre.get_site(pb::GetSiteRequest { name: s1.name.clone() }).await.unwrap().into_inner();
    assert_eq!(got, s1);
    let got = centre.get_site(pb::GetSiteRequest { name: h2.name.clone() }).await.unwrap().into_inner();
    assert_eq!(got, h2);
}

// ------------------------------------------------------------------ not hosted

async fn a_jurisdiction_the_node_does_not_host_is_not_found(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut centre = node.registry_as(&TestNode::analyst()).await;
    let err = centre.list_sites(list("48")).await.expect_err("48 is not hosted");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(reason(&err), "JURISDICTION_NOT_HOSTED");
    let err = centre
        .get_site(pb::GetSiteRequest { name: "provinces/2008-48/sites/01H0000000000000000000000".into() })
        .await
        .expect_err("a site of 48");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(reason(&err), "JURISDICTION_NOT_HOSTED");

    // Its own operator, on a node that does not host it.
    let mut danang = node.registry("48").await;
    let err = danang
        .register_site(pb::RegisterSiteRequest {
            parent: province("48").to_string(),
            site: Some(site("Đà Nẵng", &["danang-nothosted.vn"])),
            request_id: "r1".into(),
        })
        .await
        .expect_err("48 is not hosted");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(reason(&err), "JURISDICTION_NOT_HOSTED");

    // Its change log too.
    let err = node
        .changelog()
        .await
        .get_log_head(einfo_proto::log::v1::GetLogHeadRequest {
            jurisdiction: province("48").to_string(),
            service: "registry".into(),
        })
        .await
        .expect_err("48's log is not here");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(reason(&err), "JURISDICTION_NOT_HOSTED");
}

// ------------------------------------------------------------------ trace context

async fn a_call_carrying_w3c_trace_context_is_accepted(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let traced = |traceparent: &str, request_id: &str, domain: &str| {
        let mut r = tonic::Request::new(pb::RegisterSiteRequest {
            parent: province("01").to_string(),
            site: Some(site("Có vết", &[domain])),
            request_id: request_id.into(),
        });
        r.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
        r.metadata_mut().insert("tracestate", "einfo=test".parse().unwrap());
        r
    };
    c.register_site(traced("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "r1", "covet.vn"))
        .await
        .expect("a call with a valid traceparent");
    // A malformed one is ignored, not refused.
    c.register_site(traced("not-a-traceparent", "r2", "covet2.vn")).await.expect("a call with a malformed traceparent");
    assert_eq!(node.last_sequence("01").await, 2);

    let mut health = tonic_health_client(node.channel().await);
    let mut r = tonic::Request::new(HealthCheckRequest { service: String::new() });
    r.metadata_mut().insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
    assert_eq!(health.check(r).await.unwrap().into_inner().status, ServingStatus::Serving as i32);
}

/// Bytes that are not a `RegisterSiteRequest`: field 1 (`parent`, a string) sent as a fixed64,
/// then as a string that is not UTF-8, then cut short.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(fixed64, tag = "1")]
    parent: u64,
}
#[derive(Clone, PartialEq, prost::Message)]
struct NotUtf8 {
    #[prost(bytes = "vec", tag = "1")]
    parent: Vec<u8>,
}

/// Sends `body` as the request of `RegisterSite`, with the operator of 01's token.
async fn register_raw<M: prost::Message + Send + Sync + 'static>(node: &TestNode, body: M) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(node.channel().await);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(body);
    let token = node.token(&TestNode::operator("01"));
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    let path = http::uri::PathAndQuery::from_static(einfo_proto::methods::registry::registry_service::REGISTER_SITE);
    grpc.unary::<M, pb::Site, _>(request, path, tonic_prost::ProstCodec::default())
        .await
        .expect_err("not a RegisterSiteRequest")
}

/// A request that does not decode is the caller's fault: `INVALID_ARGUMENT` (reason
/// `MALFORMED_MESSAGE`, a field violation), never `INTERNAL`, and nothing is written.
async fn a_malformed_message_is_an_invalid_argument_and_changes_nothing(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let head = node.last_sequence("01").await;
    let wrong_type = register_raw(&node, WrongWireType { parent: 7 }).await;
    let not_utf8 = register_raw(&node, NotUtf8 { parent: vec![0xff, 0xfe, 0x00] }).await;
    for refused in [wrong_type, not_utf8] {
        assert_eq!(
            (refused.code(), reason(&refused).as_str()),
            (Code::InvalidArgument, "MALFORMED_MESSAGE"),
            "{refused:?}"
        );
        let fields = refused.get_details_bad_request().expect("a field violation").field_violations;
        assert_eq!(fields.len(), 1, "{fields:?}");
    }
    assert_eq!(node.last_sequence("01").await, head, "nothing was written");
}

both_backends!(
    a_malformed_message_is_an_invalid_argument_and_changes_nothing,
    health_is_not_serving_until_migrations_ran_and_serving_after,
    reflection_answers_on_v1_and_v1alpha_and_lists_the_einfo_services,
    two_provinces_on_one_node_never_see_each_others_records_and_the_centre_reads_both,
    a_jurisdiction_the_node_does_not_host_is_not_found,
    a_call_carrying_w3c_trace_context_is_accepted,
);
