//! The federation `einfo bench-gateway` runs: the 63 nodes in this process and their seeding,
//! the relays that emulate a network between them and the gateway, and the gateway as a child
//! process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use einfo_common::auth::{BearerToken, TokenKeys};
use einfo_common::config::Settings;
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::gateway::v1::national_service_client::NationalServiceClient;
use einfo_proto::log::v1::GetLogHeadRequest;
use einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::National;
use crate::fixtures::{
    RegistryClient, central_token, gateway_token, jurisdiction, p63_codes, random_secret, registry_client, seed,
};
use crate::servers::{ServeChild, connect, wait_serving};
use einfo_app::node::{self, Role as NodeRole};

/// `ImportSites` calls in flight while seeding (each node has its own database).
pub(super) const IMPORT_CONCURRENCY: usize = 4;
/// Longest wait for a full replication.
const REPLICATION_LIMIT: Duration = Duration::from_secs(1800);

/// The 63 nodes and the clients the benchmark calls them with.
pub(super) struct Federation {
    pub(super) codes: Vec<String>,
    pub(super) nodes: Vec<node::Node>,
    pub(super) keys: TokenKeys,
    secret: String,
    pub(super) operators: Vec<RegistryClient>,
    pub(super) readers: Vec<RegistryClient>,
    pub(super) logs: Vec<ChangeLogServiceClient<InterceptedService<Channel, BearerToken>>>,
    pub(super) parents: Vec<String>,
    gateway_binary: Option<PathBuf>,
}

impl Federation {
    pub(super) async fn start(dir: &Path, gateway_binary: Option<PathBuf>) -> anyhow::Result<Self> {
        let codes = p63_codes();
        let secret = random_secret();
        let mut started = Vec::new();
        for (i, code) in codes.iter().enumerate() {
            let mut s = Settings {
                provinces: vec![code.clone()],
                data_dir: dir.join(format!("node-{i:02}")),
                database_url: None,
                ..Default::default()
            };
            s.auth.secret = Some(secret.clone());
            // Plaintext, as the bench's baselines (a bare tonic call) are.
            s.tls.insecure = true;
            // Each start in a task of its own: `server::health` blocks on the health reporter's
            // lock, which never completes once the task's cooperative budget is spent (as it is
            // with 63 starts polled by one task).
            started.push(tokio::spawn(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                node::start(&s, NodeRole::Node, listener, Default::default()).await
            }));
        }
        let nodes: Vec<node::Node> =
            futures::future::join_all(started).await.into_iter().map(|r| r?).collect::<anyhow::Result<_>>()?;
        let keys = TokenKeys::from_secret(secret.as_bytes())?;
        let central = central_token(&keys)?;
        let gateway = gateway_token(&keys)?;
        let (mut operators, mut readers, mut logs, mut parents) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (n, code) in nodes.iter().zip(&codes) {
            wait_serving(n.addr, Duration::from_secs(120)).await?;
            let channel = connect(n.addr).await?;
            operators.push(registry_client(&channel, &keys, code)?);
            readers.push(RegistryServiceClient::with_interceptor(channel.clone(), central.clone()));
            logs.push(ChangeLogServiceClient::with_interceptor(channel, gateway.clone()));
            parents.push(jurisdiction(code)?.to_string());
        }
        Ok(Self { codes, nodes, keys, secret, operators, readers, logs, parents, gateway_binary })
    }

    /// Seeds sites `from..to` of every province through `ImportSites`.
    pub(super) async fn seed(&self, from: u32, to: u32) -> anyhow::Result<(u64, Duration)> {
        seed(&self.operators, &self.codes, "gw", from, to, IMPORT_CONCURRENCY, |_, _| {}).await
    }

    /// Every node's registry log head.
    pub(super) async fn heads(&self) -> anyhow::Result<Vec<u64>> {
        let mut out = Vec::new();
        for (c, parent) in self.logs.iter().zip(&self.parents) {
            let mut c = c.clone();
            let h =
                c.get_log_head(GetLogHeadRequest { jurisdiction: parent.clone(), service: "registry".into() }).await?;
            out.push(h.into_inner().sequence);
        }
        Ok(out)
    }

    pub(super) async fn stop(self) -> anyhow::Result<()> {
        for n in self.nodes {
            n.stop().await?;
        }
        Ok(())
    }
}

/// Relays in front of the 63 nodes (see the `gateway` module's documentation): each chunk is held for
/// `one_way` in each direction.
pub(super) struct Relays {
    pub(super) addrs: Vec<SocketAddr>,
    /// Microseconds each chunk is held, in each direction.
    one_way: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Relays {
    pub(super) async fn start(targets: &[SocketAddr]) -> anyhow::Result<Self> {
        let one_way = Arc::new(AtomicU64::new(0));
        let (mut addrs, mut tasks) = (Vec::new(), Vec::new());
        for &target in targets {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(listener.local_addr()?);
            let one_way = one_way.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let one_way = one_way.clone();
                    tokio::spawn(async move {
                        let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { return };
                        let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                        let (ri, wi) = inbound.into_split();
                        let (ro, wo) = outbound.into_split();
                        tokio::join!(relay(ri, wo, one_way.clone()), relay(ro, wi, one_way));
                    });
                }
            }));
        }
        Ok(Self { addrs, one_way, tasks })
    }

    pub(super) fn set_round_trip(&self, rtt: Duration) {
        self.one_way.store(rtt.as_micros() as u64 / 2, Ordering::Relaxed);
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Copies `from` to `to`, each chunk written `one_way` after it was read (chunks stay in order
/// and in flight together, as on a link with that latency).
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    one_way: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            let due = tokio::time::Instant::now() + Duration::from_micros(one_way.load(Ordering::Relaxed));
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((due, bytes)) = rx.recv().await {
            // The timer rounds up to the next millisecond: with no delay set, no timer at all.
            if due > tokio::time::Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

/// The gateway as a child process.
pub(super) struct GatewayProcess {
    process: ServeChild,
    started: Instant,
}

impl GatewayProcess {
    /// Starts the gateway with each province at `endpoints` (the nodes' relays).
    pub(super) async fn start(
        fed: &Federation,
        endpoints: &[SocketAddr],
        dir: &Path,
        database_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let entries: Vec<(Jurisdiction, String)> = fed
            .codes
            .iter()
            .zip(endpoints)
            .map(|(c, a)| Ok((jurisdiction(c)?, format!("http://{a}"))))
            .collect::<anyhow::Result<_>>()?;
        let directory = dir.join("directory.toml");
        std::fs::write(&directory, einfo_gateway::directory::render(&entries))?;
        let binary = match &fed.gateway_binary {
            Some(b) => b.clone(),
            None => std::env::current_exe()?,
        };
        let mut args = vec!["--directory".into(), directory.into(), "--data-dir".into(), dir.join("data").into()];
        if let Some(url) = database_url {
            args.extend(["--database-url".into(), url.into()]);
        }
        let started = Instant::now();
        let process = ServeChild::start(binary, "gateway", args, &fed.secret, dir.join("gateway.log"))?;
        Ok(Self { process, started })
    }

    pub(super) async fn client(&self, keys: &TokenKeys) -> anyhow::Result<National> {
        let channel = connect(self.process.addr).await?;
        Ok(NationalServiceClient::with_interceptor(channel, central_token(keys)?).max_decoding_message_size(64 << 20))
    }

    /// Waits until every province is LIVE with its registry log applied up to `heads`; returns
    /// the time since the process started.
    pub(super) async fn wait_replicated(&mut self, fed: &Federation, heads: &[u64]) -> anyhow::Result<Duration> {
        let limit = self.started + REPLICATION_LIMIT;
        self.process.wait_serving(REPLICATION_LIMIT).await?;
        let client = self.client(&fed.keys).await?;
        let want: std::collections::HashMap<&str, u64> =
            fed.parents.iter().map(String::as_str).zip(heads.iter().copied()).collect();
        let total: u64 = heads.iter().sum();
        let mut last_report = Instant::now();
        loop {
            let mut c = client.clone();
            let status = c.get_replication_status(gw::GetReplicationStatusRequest {}).await?.into_inner();
            let mut live = 0;
            let mut applied = 0u64;
            for f in &status.jurisdictions {
                let Some(head) = want.get(f.jurisdiction.as_str()) else { continue };
                applied += f.registry_sequence.min(*head);
                if f.state() == gw::FreshnessState::Live && f.registry_sequence == *head {
                    live += 1;
                }
            }
            if live == want.len() {
                return Ok(self.started.elapsed());
            }
            if last_report.elapsed() > Duration::from_secs(15) {
                last_report = Instant::now();
                let t = self.started.elapsed().as_secs_f64();
                eprintln!(
                    "    replicated {applied} of {total} entries in {t:.0} s ({:.0}/s), {live} of 63 live",
                    applied as f64 / t
                );
            }
            anyhow::ensure!(Instant::now() < limit, "replication not complete after {} s", REPLICATION_LIMIT.as_secs());
            self.process.ensure_running()?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// (VmHWM, VmRSS) in KiB.
    pub(super) fn memory(&self) -> anyhow::Result<(u64, u64)> {
        self.process.memory()
    }

    pub(super) async fn stop(self) {
        self.process.stop().await;
    }
}
