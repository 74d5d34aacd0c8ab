//! What the benchmarks run beside the code they measure: the bare echo server, connections and
//! health checks, fresh PostgreSQL databases, and `einfo serve …` child processes whose memory
//! is read from `/proc`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::ConnectionTrait;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::measure::{Op, op};

// ------------------------------------------------------------------------------------ echo

/// A plain tonic server on 127.0.0.1:0 serving only the health service, without layers: the
/// floor under any unary call on this machine.
pub(crate) struct EchoServer {
    pub(crate) addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    _reporter: tonic_health::server::HealthReporter,
}

impl EchoServer {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// The echo server, over mutual TLS with `tls` when given (einfo's own acceptor).
    pub(crate) async fn start_with(tls: Option<einfo_common::tls::Tls>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
        // TCP_NODELAY as einfo's own server sets it: a transport setting, not a layer.
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let router = tonic::transport::Server::builder().add_service(service);
        let task = match tls {
            None => tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped)),
            Some(tls) => tokio::spawn(router.serve_with_incoming_shutdown(tls.accept(incoming), stopped)),
        };
        Ok(Self { addr, stop, task, _reporter: reporter })
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        Ok(self.task.await??)
    }
}

/// `Health/Check` calls on `client`.
pub(crate) fn health_op(client: HealthClient<Channel>) -> Op {
    op(move |_, _| {
        let mut c = client.clone();
        async move {
            c.check(HealthCheckRequest { service: String::new() }).await?;
            Ok(())
        }
    })
}

pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?.connect().await?)
}

/// Waits until the health service at `addr` says SERVING (the node has migrated).
pub(crate) async fn wait_serving(addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(ch) = connect(addr).await {
            let mut h = HealthClient::new(ch);
            if let Ok(r) = h.check(HealthCheckRequest { service: String::new() }).await
                && r.into_inner().status == ServingStatus::Serving as i32
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the node at {addr} did not become SERVING within {} s", limit.as_secs())
}

// ------------------------------------------------------------------------------------ PostgreSQL

/// A fresh PostgreSQL database, dropped by [`PgDb::drop_database`].
pub(crate) struct PgDb {
    admin: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl PgDb {
    pub(crate) async fn create(admin: &str) -> anyhow::Result<Self> {
        let conn = tokio::time::timeout(Duration::from_secs(10), sea_orm::Database::connect(admin))
            .await
            .context("timed out connecting")??;
        let name = format!("einfo_bench_{}", uuid::Uuid::new_v4().simple());
        conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
        let _ = conn.close().await;
        let (path, query) = match admin.split_once('?') {
            Some((p, q)) => (p, format!("?{q}")),
            None => (admin, String::new()),
        };
        let base = path.rsplit_once('/').map(|(b, _)| b).unwrap_or(path);
        Ok(Self { admin: admin.to_owned(), url: format!("{base}/{name}{query}"), name })
    }

    pub(crate) async fn drop_database(self) {
        let dropped = async {
            let conn = sea_orm::Database::connect(&self.admin).await?;
            conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await?;
            conn.close().await?;
            anyhow::Ok(())
        };
        if let Err(e) = dropped.await {
            eprintln!("could not drop database {}: {e:#}", self.name);
        }
    }
}

// ------------------------------------------------------------------------------------ child processes

/// `einfo serve <what> --listen <addr> …` as a child process on a free loopback port, with the
/// shared token secret, logging at `warn` into a file (its output too), never on a database URL
/// of this process's environment, and killed if it is dropped.
pub(crate) struct ServeChild {
    child: tokio::process::Child,
    pid: u32,
    pub(crate) addr: SocketAddr,
    log: PathBuf,
    /// `node` or `gateway`, for messages.
    what: &'static str,
}

impl ServeChild {
    /// Starts `binary serve <what> --listen <a free port> <args>`, logging into `log`.
    pub(crate) fn start(
        binary: PathBuf,
        what: &'static str,
        args: Vec<OsString>,
        secret: &str,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()));
        let log_file = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(binary)
            .args(["serve", what, "--listen", &addr.to_string()])
            .args(args)
            .env("EINFO_AUTH__SECRET", secret)
            // Plaintext, as the baselines (a bare tonic call) are.
            .env("EINFO_TLS__INSECURE", "true")
            .env("RUST_LOG", "warn")
            .env_remove("EINFO_DATABASE_URL")
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the {what}"))?;
        let pid = child.id().with_context(|| format!("the {what} exited at once"))?;
        Ok(Self { child, pid, addr, log, what })
    }

    /// Waits until the child's health service says SERVING, or fails with its log's last lines
    /// if it exits first.
    pub(crate) async fn wait_serving(&mut self, limit: Duration) -> anyhow::Result<()> {
        tokio::select! {
            r = wait_serving(self.addr, limit) => r,
            s = self.child.wait() => anyhow::bail!("the {} exited ({s:?}): {}", self.what, tail(&self.log)),
        }
    }

    /// Fails with the log's last lines if the child has exited.
    pub(crate) fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(s)) = self.child.try_wait() {
            anyhow::bail!("the {} exited ({s:?}): {}", self.what, tail(&self.log));
        }
        Ok(())
    }

    /// `VmHWM` and `VmRSS` of the child, in KiB.
    pub(crate) fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let pid = self.pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("cannot read /proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// SIGTERM (a graceful stop), then SIGKILL if the child is still there after a while.
    pub(crate) async fn stop(mut self) {
        let _ = tokio::process::Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// The last lines of a log file, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
