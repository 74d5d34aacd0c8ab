//! Helpers shared by the tests that run the `einfo` binary.
#![allow(dead_code)] // each test crate uses a part of them

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use einfo_proto::registry::v1 as pb;

/// The `einfo` binary under test.
pub const EINFO: &str = env!("CARGO_BIN_EXE_einfo");

/// A `Command` for the binary with no inherited `EINFO_…` variables (the test's environment
/// must not configure the child behind the test's back).
pub fn einfo() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(EINFO);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("EINFO_") {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

/// A port that was free a moment ago: bind port 0, read it, let it go.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// A file that collects a child's output (appended across restarts).
pub fn log_file(path: &Path) -> (Stdio, Stdio) {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open child log");
    let g = f.try_clone().expect("clone child log");
    (Stdio::from(f), Stdio::from(g))
}

/// The last lines of a child's log, for failure messages.
pub fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A site with one domain, the same shape the whole-node tests register.
pub fn site(name: &str, domain: &str) -> pb::Site {
    pb::Site {
        kind: "general-website".into(),
        display_name: name.into(),
        domains: vec![domain.into()],
        owner: Some(pb::Owner {
            kind: pb::OwnerKind::Organisation as i32,
            display_name: "Công ty Cổ phần Truyền thông Hà Nội".into(),
            tax_code: "0100 109 106".into(),
            ..Default::default()
        }),
        hosting: pb::Hosting::InVietnam as i32,
        operational_state: pb::OperationalState::Active as i32,
        discovery_source: pb::DiscoverySource::Sweep as i32,
        ..Default::default()
    }
}

/// Waits until the server at `addr` says SERVING. `Err` with the child's log when it exits
/// first or does not serve within 20 s.
pub async fn wait_serving(addr: &str, child: &mut tokio::process::Child, log: &Path) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            return Err(format!("einfo exited with {status} before serving; its log:\n{}", tail(log)));
        }
        if let Ok(ch) =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect().await
        {
            let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
            if let Ok(r) = h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await
                && r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("einfo at {addr} never became SERVING; its log:\n{}", tail(log)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
