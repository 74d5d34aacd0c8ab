//! A local federation (`einfo up`): the gateway with the centre it serves, and nodes hosting the
//! 63 provinces (three hosting 20, 20 and 15 provinces, the rest one each), each with its own
//! SQLite database under one data directory, sharing one token secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use einfo_common::config::Settings;
use einfo_domain::{Jurisdiction, Scheme};

use crate::gateway::RunningGateway;
use crate::node::{self, Node, Role};

/// Where a local federation lives and listens.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The data directory (databases, token secret, directory file).
    pub data_dir: PathBuf,
    /// The gateway's port; node `i` listens on `port + 1 + i`.
    pub port: u16,
}

/// A running local federation.
pub struct Federation {
    /// The gateway and the centre it serves.
    pub gateway: RunningGateway,
    /// The nodes, each with the province codes it hosts.
    pub nodes: Vec<(Node, Vec<String>)>,
    /// The federation's CA and certificates (`einfo token --data-dir` signs with them).
    pub pki: PathBuf,
}

/// Province groups of the local federation: a few multi-province nodes and some single ones.
pub fn groups() -> Vec<Vec<String>> {
    let codes: Vec<String> = Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect();
    let mut groups = Vec::new();
    let mut rest = codes.as_slice();
    for size in [20, 20, 15] {
        groups.push(rest[..size].to_vec());
        rest = &rest[size..];
    }
    groups.extend(rest.iter().map(|c| vec![c.clone()]));
    groups
}

/// The local federation's identities in `data_dir/pki`, made once (an existing file is kept): the
/// centre's CA, the gateway's certificate (acting for the centre) and one per node naming the
/// provinces it hosts. No shared secret: no process holds a key that signs for another province
/// or for the centre.
pub fn ensure_pki(data_dir: &Path, groups: &[Vec<String>]) -> anyhow::Result<PathBuf> {
    use einfo_common::pki;
    let dir = data_dir.join("pki");
    let now = einfo_common::clock::Clock::now(&*einfo_common::clock::system());
    let (ca_cert, ca_key) = pki::paths(&dir, "ca");
    if !ca_cert.exists() {
        pki::write(&dir, "ca", &pki::init_ca("einfo local federation CA", now, 3650)?)?;
    }
    let ca = (std::fs::read_to_string(&ca_cert)?, std::fs::read_to_string(&ca_key)?);
    let mut holders = vec![("gateway".to_owned(), vec![Jurisdiction::Central])];
    for (i, group) in groups.iter().enumerate() {
        let acts_for = group.iter().map(|c| Jurisdiction::province(Scheme::P63, c)).collect::<Result<_, _>>()?;
        holders.push((node_name(i), acts_for));
    }
    // The federation listens on 127.0.0.1, and a node's services call each other there.
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    for (name, acts_for) in holders {
        let (cert, key) = pki::paths(&dir, &name);
        let valid_here = std::fs::read_to_string(&cert)
            .ok()
            .and_then(|pem| pki::der_of(&pem).ok())
            .and_then(|der| pki::addresses(&der).ok())
            .is_some_and(|a| names.iter().all(|n| a.contains(n)));
        if cert.exists() && !valid_here {
            // Issued before the federation spoke TLS (for `localhost` only): issued again.
            tracing::info!(holder = %name, "certificate reissued for 127.0.0.1");
            std::fs::remove_file(&cert)?;
            let _ = std::fs::remove_file(&key);
        }
        if !cert.exists() {
            pki::write(&dir, &name, &pki::issue(&ca.0, &ca.1, &name, &acts_for, &names, now, 365)?)?;
        }
    }
    Ok(dir)
}

/// The name of node `i` of the local federation (its data directory and its certificate).
pub fn node_name(i: usize) -> String {
    format!("node-{i:02}")
}

/// Configures `s` to sign with the certificate of `holder` in `pki` and to take only the CA's
/// holders' tokens.
fn holder(s: &mut Settings, pki: &Path, holder: &str) {
    let (cert, key) = einfo_common::pki::paths(pki, holder);
    s.auth.ca_file = Some(einfo_common::pki::paths(pki, "ca").0);
    s.auth.cert_file = Some(cert);
    s.auth.key_file = Some(key);
}

impl Federation {
    /// Starts the gateway, then every node, on 127.0.0.1.
    pub async fn start(layout: &Layout) -> anyhow::Result<Self> {
        let groups = groups();
        let pki = ensure_pki(&layout.data_dir, &groups)?;
        let gateway_addr = SocketAddr::from(([127, 0, 0, 1], layout.port));
        let node_addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], layout.port + 1 + i as u16));

        // The directory the gateway starts from: every province at the node hosting it.
        let mut entries = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            for code in group {
                entries.push((Jurisdiction::province(Scheme::P63, code)?, format!("https://{}", node_addr(i))));
            }
        }
        let directory_file = layout.data_dir.join("directory.toml");
        std::fs::write(&directory_file, einfo_gateway::directory::render(&entries))?;

        let mut gs = Settings { data_dir: layout.data_dir.join("gateway"), listen: gateway_addr, ..Default::default() };
        holder(&mut gs, &pki, "gateway");
        gs.gateway.directory_file = Some(directory_file);
        let listener = tokio::net::TcpListener::bind(gateway_addr)
            .await
            .with_context(|| format!("cannot listen on {gateway_addr}"))?;
        let gateway = crate::gateway::start(&gs, listener).await?;
        let public_key = gateway.public_key_hex.clone();

        let mut nodes = Vec::new();
        for (i, group) in groups.into_iter().enumerate() {
            let mut s = Settings {
                provinces: group.clone(),
                data_dir: layout.data_dir.join(node_name(i)),
                listen: node_addr(i),
                ..Default::default()
            };
            holder(&mut s, &pki, &node_name(i));
            s.reporting.centre_endpoint = Some(format!("https://{gateway_addr}"));
            s.reporting.centre_public_key_hex = Some(public_key.clone());
            let listener = tokio::net::TcpListener::bind(s.listen)
                .await
                .with_context(|| format!("cannot listen on {}", s.listen))?;
            let n = node::start(&s, Role::Node, listener, Default::default()).await?;
            nodes.push((n, group));
        }
        Ok(Self { gateway, nodes, pki })
    }

    /// Stops every node, then the gateway.
    pub async fn stop(self) -> anyhow::Result<()> {
        for r in futures::future::join_all(self.nodes.into_iter().map(|(n, _)| n.stop())).await {
            r?;
        }
        self.gateway.stop().await
    }
}
