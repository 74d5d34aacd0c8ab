//! Every einfo server looks the same from outside: health that turns SERVING only when told,
//! reflection in both protocol versions, and a clean stop when the shutdown future resolves.

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
use tonic_health::server::HealthReporter;
use tonic_reflection::pb::{v1, v1alpha};

const SERVICE: &str = "einfo.log.v1.ChangeLogService";

struct RunningServer {
    address: SocketAddr,
    reporter: HealthReporter,
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
    let (reporter, health_service) = server::health(&[SERVICE]).await;
    let mut routes = Routes::builder();
    routes.add_service(health_service);
    let routes = server::add_reflection(routes).expect("descriptor sets decode").routes();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let pass_through = Ok::<tonic::Request<()>, tonic::Status>;
    let served = tokio::spawn(server::serve(listener, routes, pass_through, async {
        let _ = stopped.await;
    }));
    RunningServer { address, reporter, stop, served }
}

async fn check(client: &mut HealthClient<tonic::transport::Channel>, service: &str) -> i32 {
    let HealthCheckResponse { status } = client
        .check(HealthCheckRequest { service: service.to_owned() })
        .await
        .expect("health check answers")
        .into_inner();
    status
}

#[tokio::test]
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

    server::set_serving(&server.reporter, &[SERVICE]).await;

    for service in ["", SERVICE] {
        assert_eq!(check(&mut client, service).await, ServingStatus::Serving as i32, "{service:?} after set_serving");
    }
    drop(client);
    server.stop().await.expect("serve returns Ok");
}

#[tokio::test]
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

#[tokio::test]
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

fn assert_listed(names: &[String]) {
    for expected in [
        "grpc.health.v1.Health",
        SERVICE,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(names.iter().any(|name| name == expected), "{expected} missing from {names:?}");
    }
}

#[tokio::test]
async fn serve_returns_ok_once_the_shutdown_future_resolves() {
    let server = spawn_server().await;
    let address = server.address;

    server.stop().await.expect("serve returns Ok");

    assert!(tokio::net::TcpStream::connect(address).await.is_err(), "the listener is closed after shutdown");
}

#[tokio::test]
async fn the_interceptor_guards_einfo_services_but_not_health() {
    let (_reporter, health_service) = server::health(&[]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("bound address");
    let refuse_all = |_: tonic::Request<()>| -> Result<tonic::Request<()>, tonic::Status> {
        Err(tonic::Status::unauthenticated("no token"))
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(listener, Routes::new(health_service), refuse_all, async {
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
