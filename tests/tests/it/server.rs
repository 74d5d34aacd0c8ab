//! Every einfo server looks the same from outside: health that turns SERVING only when told (and
//! until then every other call is UNAVAILABLE with a retry delay), reflection in both protocol
//! versions listing what the server serves, and a clean stop when the shutdown future resolves.

use std::net::SocketAddr;
use std::time::Duration;

use einfo_common::server;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tonic::service::Routes;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_reflection::pb::{v1, v1alpha};
use tonic_types::StatusExt as _;

const SERVICE: &str = "einfo.log.v1.ChangeLogService";

struct RunningServer {
    address: SocketAddr,
    readiness: server::Readiness,
    stop: oneshot::Sender<()>,
    served: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.send(()).expect("server still running");
        tokio::time::timeout(Duration::from_secs(10), self.served)
            .await
            .expect("serve returns after the shutdown future resolves")
            .expect("serve did not panic")
    }
}

async fn spawn_server() -> RunningServer {
    let (readiness, health_service) = server::health(&[SERVICE]).await;
    let mut routes = Routes::builder();
    routes.add_service(health_service);
    let routes = server::add_reflection(routes, &[SERVICE]).expect("descriptor sets decode").routes();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let pass_through = Ok::<tonic::Request<()>, tonic::Status>;
    let served = tokio::spawn(server::serve(listener, routes, pass_through, readiness.clone(), async {
        let _ = stopped.await;
    }));
    RunningServer { address, readiness, stop, served }
}

async fn check(client: &mut HealthClient<tonic::transport::Channel>, service: &str) -> i32 {
    let HealthCheckResponse { status } = client
        .check(HealthCheckRequest { service: service.to_owned() })
        .await
        .expect("health check answers")
        .into_inner();
    status
}

/// A call to the change log while the server is not ready, and what it was answered.
async fn get_log_head(channel: tonic::transport::Channel) -> tonic::Status {
    let mut log = einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient::new(channel);
    log.get_log_head(einfo_proto::log::v1::GetLogHeadRequest::default()).await.expect_err("no such route is served")
}

async fn health_is_not_serving_until_the_server_says_so_then_serving() {
    let server = spawn_server().await;
    let mut client = HealthClient::new(server.channel().await);

    for service in ["", SERVICE] {
        assert_eq!(
            check(&mut client, service).await,
            ServingStatus::NotServing as i32,
            "{service:?} before set_serving"
        );
    }
    // Before migrations are done no service answers: UNAVAILABLE, NOT_READY, with a retry delay.
    let early = get_log_head(server.channel().await).await;
    assert_eq!(early.code(), tonic::Code::Unavailable, "{early:?}");
    let details = early.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("NOT_READY"), "{early:?}");
    assert_eq!(details.retry_info().and_then(|r| r.retry_delay), Some(server::NOT_READY_RETRY_DELAY), "{early:?}");

    server.readiness.set_serving().await;

    for service in ["", SERVICE] {
        assert_eq!(check(&mut client, service).await, ServingStatus::Serving as i32, "{service:?} after set_serving");
    }
    // Ready: the call now reaches routing (this test server routes no change log).
    let later = get_log_head(server.channel().await).await;
    assert_eq!(later.code(), tonic::Code::Unimplemented, "{later:?}");
    drop(client);
    server.stop().await.expect("serve returns Ok");
}

async fn reflection_v1_lists_health_and_einfo_services() {
    let server = spawn_server().await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(server.channel().await);

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        client.server_reflection_info(tokio_stream::once(request)).await.expect("reflection answers").into_inner();
    let response = responses.next().await.expect("one response").expect("not an error");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = response.message_response
    else {
        panic!("expected a service list, got {:?}", response.message_response);
    };
    let names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();

    assert_listed(&names);
    drop(responses);
    drop(client);
    server.stop().await.expect("serve returns Ok");
}

async fn reflection_v1alpha_lists_health_and_einfo_services() {
    let server = spawn_server().await;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        client.server_reflection_info(tokio_stream::once(request)).await.expect("reflection answers").into_inner();
    let response = responses.next().await.expect("one response").expect("not an error");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("expected a service list, got {:?}", response.message_response);
    };
    let names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();

    assert_listed(&names);
    drop(responses);
    drop(client);
    server.stop().await.expect("serve returns Ok");
}

/// Reflection lists what the server serves, and nothing it does not.
fn assert_listed(names: &[String]) {
    let mut names = names.to_vec();
    names.sort();
    let mut expected = vec![
        "grpc.health.v1.Health",
        SERVICE,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    expected.sort();
    assert_eq!(names, expected, "not einfo.gateway.v1.NationalService nor any other service it does not serve");
}

async fn serve_returns_ok_once_the_shutdown_future_resolves() {
    let server = spawn_server().await;
    let address = server.address;

    server.stop().await.expect("serve returns Ok");

    assert!(tokio::net::TcpStream::connect(address).await.is_err(), "the listener is closed after shutdown");
}

async fn the_interceptor_guards_einfo_services_but_not_health() {
    let (readiness, health_service) = server::health(&[]).await;
    readiness.set_serving().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("bound address");
    let refuse_all = |_: tonic::Request<()>| -> Result<tonic::Request<()>, tonic::Status> {
        Err(tonic::Status::unauthenticated("no token"))
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, Routes::new(health_service), refuse_all, readiness, async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");

    let mut health = HealthClient::new(channel.clone());
    health.check(HealthCheckRequest::default()).await.expect("health needs no credentials");

    // Any other path meets the interceptor before routing.
    let mut log = einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient::new(channel);
    let refused = log
        .get_log_head(einfo_proto::log::v1::GetLogHeadRequest::default())
        .await
        .expect_err("the interceptor refuses");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    drop(health);
    drop(log);
    stop.send(()).expect("server still running");
    served.await.expect("serve did not panic").expect("serve returns Ok");
}

einfo_testkit::plain_tests!(
    health_is_not_serving_until_the_server_says_so_then_serving,
    reflection_v1_lists_health_and_einfo_services,
    reflection_v1alpha_lists_health_and_einfo_services,
    serve_returns_ok_once_the_shutdown_future_resolves,
    the_interceptor_guards_einfo_services_but_not_health,
);
