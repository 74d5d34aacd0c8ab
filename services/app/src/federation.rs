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
    /// The token secret file every process shares.
    pub secret_file: PathBuf,
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

/// The token secret of the federation in `data_dir`, created once (written whole or not at all:
/// a reader, or an `up` after a crash, never finds it empty).
pub fn ensure_secret(data_dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let secret_file = data_dir.join("token-secret");
    if !secret_file.exists() {
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let partial = data_dir.join("token-secret.partial");
        write_private(&partial, secret.as_bytes())?;
        std::fs::rename(&partial, &secret_file)?;
    } else {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret_file)?.permissions().mode();
        if mode & 0o077 != 0 {
            // Written by an older release (0644): readable by every user of the host.
            std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600))?;
            tracing::warn!(file = %secret_file.display(), "the token secret was readable by other users; now 0600");
        }
    }
    Ok(secret_file)
}

/// Writes a file only its owner may read or write (mode 0600 from its creation: no moment when
/// another user could open it).
///
/// # Errors
/// The file cannot be created or written.
pub fn write_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(content).with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all()?;
    Ok(())
}

impl Federation {
    /// Starts the gateway, then every node, on 127.0.0.1.
    pub async fn start(layout: &Layout) -> anyhow::Result<Self> {
        let secret_file = ensure_secret(&layout.data_dir)?;
        let gateway_addr = SocketAddr::from(([127, 0, 0, 1], layout.port));
        let groups = groups();
        let node_addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], layout.port + 1 + i as u16));

        // The directory the gateway starts from: every province at the node hosting it.
        let mut entries = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            for code in group {
                entries.push((Jurisdiction::province(Scheme::P63, code)?, format!("http://{}", node_addr(i))));
            }
        }
        let directory_file = layout.data_dir.join("directory.toml");
        std::fs::write(&directory_file, einfo_gateway::directory::render(&entries))?;

        let mut gs = Settings { data_dir: layout.data_dir.join("gateway"), listen: gateway_addr, ..Default::default() };
        gs.auth.secret_file = Some(secret_file.clone());
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
                data_dir: layout.data_dir.join(format!("node-{i:02}")),
                listen: node_addr(i),
                ..Default::default()
            };
            s.auth.secret_file = Some(secret_file.clone());
            s.reporting.centre_endpoint = Some(format!("http://{gateway_addr}"));
            s.reporting.centre_public_key_hex = Some(public_key.clone());
            let listener = tokio::net::TcpListener::bind(s.listen)
                .await
                .with_context(|| format!("cannot listen on {}", s.listen))?;
            let n = node::start(&s, Role::Node, listener, Default::default()).await?;
            nodes.push((n, group));
        }
        Ok(Self { gateway, nodes, secret_file })
    }

    /// Stops every node, then the gateway.
    pub async fn stop(self) -> anyhow::Result<()> {
        for r in futures::future::join_all(self.nodes.into_iter().map(|(n, _)| n.stop())).await {
            r?;
        }
        self.gateway.stop().await
    }
}
