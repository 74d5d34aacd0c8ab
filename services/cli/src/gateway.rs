//! Starting the national gateway (`einfo serve gateway`, `einfo up`, the tests) and printing the
//! national table (`einfo national summary`).

use std::net::SocketAddr;

use anyhow::Context;
use einfo_common::auth::TokenKeys;
use einfo_common::config::Settings;
use einfo_gateway::Gateway;
use einfo_proto::gateway::v1 as pb;
use einfo_proto::registry::v1::LegalStatus;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::node;

/// A running gateway.
pub struct RunningGateway {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The gateway.
    pub gateway: Gateway,
    /// The centre's public key (receipts), hex.
    pub public_key_hex: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningGateway {
    /// Asks the gateway to stop and waits until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("gateway task panicked")?
    }

    /// Waits until it stops by itself (a signal) or fails.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("gateway task panicked")?
    }
}

/// Opens the gateway's store (migrating it), then serves on `listener` until stopped or
/// SIGTERM/SIGINT.
pub async fn start(settings: &Settings, listener: TcpListener) -> anyhow::Result<RunningGateway> {
    // A bad directory file is refused before anything is created.
    if let Some(f) = &settings.gateway.directory_file {
        einfo_gateway::directory::load_file(f)?;
    }
    let db = node::open_database(settings).await?;
    let keys = TokenKeys::from_secret(&settings.token_secret()?)?;
    let key_file = settings.gateway.signing_key_file.clone().unwrap_or_else(|| settings.data_dir.join("centre.key"));
    let signer = einfo_central::load_or_create_signer(&key_file)
        .with_context(|| format!("receipt signing key {}", key_file.display()))?;
    let public_key_hex = signer.public_key().iter().map(|b| format!("{b:02x}")).collect();
    let gateway = Gateway::open(db, settings.gateway.clone(), keys, signer).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let shutdown = async move {
        tokio::select! {
            _ = einfo_common::server::shutdown_signal() => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
    };
    let served = gateway.clone();
    let db = gateway.db().clone();
    let task = tokio::spawn(async move {
        let r = served.serve(listener, shutdown).await;
        db.close().await?;
        r
    });
    tracing::info!(%addr, "gateway listening");
    Ok(RunningGateway { addr, gateway, public_key_hex, stop, task })
}

const COLUMNS: [(LegalStatus, &str); 8] = [
    (LegalStatus::Licensed, "licensed"),
    (LegalStatus::Applied, "applied"),
    (LegalStatus::Registered, "registered"),
    (LegalStatus::Trial, "trial"),
    (LegalStatus::Unlicensed, "unlicensed"),
    (LegalStatus::Suspended, "suspended"),
    (LegalStatus::Revoked, "revoked"),
    (LegalStatus::Expired, "expired"),
];

/// The national table as text: one row per unit, a column per legal status, totals, then the
/// jurisdictions missing or stale.
pub fn render_summary(s: &pb::NationalSummary) -> String {
    let by_status = |cells: &[pb::SummaryCell], st: LegalStatus| -> i64 {
        cells.iter().filter(|c| c.legal_status == st as i32).map(|c| c.count).sum()
    };
    let mut out = String::new();
    out.push_str(&format!("{:<20} {:<22}", "unit", "name"));
    for (_, h) in COLUMNS {
        out.push_str(&format!(" {h:>10}"));
    }
    out.push_str(&format!(" {:>10}\n", "total"));
    let row = |out: &mut String, unit: &str, name: &str, cells: &[pb::SummaryCell], total: i64| {
        let name: String = name.chars().take(22).collect();
        out.push_str(&format!("{unit:<20} {name:<22}"));
        for (st, _) in COLUMNS {
            out.push_str(&format!(" {:>10}", by_status(cells, st)));
        }
        out.push_str(&format!(" {total:>10}\n"));
    };
    for u in &s.units {
        let name = if u.flagged { format!("{} (2025)", u.display_name) } else { u.display_name.clone() };
        row(&mut out, &u.unit, &name, &u.cells, u.total);
    }
    row(&mut out, "national", "", &s.totals, s.total);
    if s.complete {
        out.push_str(&format!("\ncomplete: every one of {} jurisdictions is live\n", s.freshness.len()));
    } else {
        out.push_str(&format!(
            "\nINCOMPLETE: {} of {} jurisdictions missing or stale:\n",
            s.missing.len(),
            s.freshness.len()
        ));
        for m in &s.missing {
            let lag = m.lag.as_ref().map_or("never synced".to_owned(), |l| format!("{} s behind", l.seconds));
            out.push_str(&format!(
                "  {:<20} {:<12} {lag}  {}\n",
                m.jurisdiction,
                m.state().as_str_name().trim_start_matches("FRESHNESS_STATE_"),
                m.detail
            ));
        }
    }
    out
}
