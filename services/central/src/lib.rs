//! The centre's intake logic, held once so that the gateway and the test kit's fake centre
//! serve the same thing (`einfo.central.v1.CentralService`): campaigns streamed to their target
//! provinces on per-province feeds, submissions answered with Ed25519-signed receipts
//! ([`einfo_common::receipts`]), return / accept / exceptions, timeliness by the first received
//! submission, and the reference-data feed. Storage is the node's database (SQLite or
//! PostgreSQL), tables `central_*`; every mutation is logged in the change log of jurisdiction
//! `central`, service `central`.
#![forbid(unsafe_code)]

pub mod grpc;
pub mod migration;
pub mod service;
mod store;
pub mod workbook;

use std::future::Future;
use std::path::Path;

use einfo_common::auth::{Authenticator, TokenKeys};
use einfo_common::receipts::ReceiptSigner;
use einfo_common::server;

pub use grpc::CentralGrpc;
pub use migration::Migrator;
pub use service::{Central, Completeness, SERVICE, timeliness};

/// The gRPC service name (for health).
pub const SERVICE_NAME: &str = einfo_proto::methods::central::CENTRAL_SERVICE;

/// The centre's signing key from `path`: 32 raw bytes or 64 hex digits. When the file does not
/// exist, a new key is made and written there (hex, readable by the owner only).
pub fn load_or_create_signer(path: &Path) -> anyhow::Result<ReceiptSigner> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let secret: [u8; 32] = if bytes.len() == 32 {
                bytes.as_slice().try_into()?
            } else {
                let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not a key", path.display()))?;
                hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                    .ok_or_else(|| anyhow::anyhow!("{} holds neither 32 bytes nor 64 hex digits", path.display()))?
            };
            Ok(ReceiptSigner::from_bytes(&secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = ReceiptSigner::generate()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            std::io::Write::write_all(&mut opts.open(path)?, hex::encode(signer.secret_bytes()).as_bytes())?;
            Ok(signer)
        }
        Err(e) => Err(e.into()),
    }
}

/// Serves `central` on `listener` with health (SERVING at once: [`Central::open`] migrated),
/// reflection and the bearer-token interceptor, until `shutdown` resolves; following feed
/// streams end at shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    central: Central,
    keys: TokenKeys,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (readiness, health) = server::health(&[SERVICE_NAME]).await;
    let mut routes = tonic::service::Routes::builder();
    routes.add_service(health);
    routes.add_service(CentralGrpc(central.clone()).into_server());
    let routes = server::add_reflection(routes, &[SERVICE_NAME])?.routes();
    readiness.set_serving().await;
    let stopper = central.clone();
    let authenticator = Authenticator::new(keys)
        .with_revocations(central.revocations())
        .with_revoked_certificates(central.revoked_certificates());
    server::serve(listener, routes, authenticator, readiness, async move {
        shutdown.await;
        stopper.stop_streams();
    })
    .await
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration};
    use einfo_proto::reporting::v1::Timeliness;

    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let unique = uuid::Uuid::new_v4().simple();
        std::env::temp_dir().join(format!("einfo-central-{unique}")).join(name)
    }

    #[test]
    fn a_key_file_is_created_once_and_read_back_raw_or_hex() {
        let path = scratch("key");
        let first = load_or_create_signer(&path).unwrap();
        assert_eq!(load_or_create_signer(&path).unwrap().public_key(), first.public_key());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), hex::encode(first.secret_bytes()));
        let raw = path.with_file_name("raw");
        std::fs::write(&raw, first.secret_bytes()).unwrap();
        assert_eq!(load_or_create_signer(&raw).unwrap().key_id(), first.key_id());
        std::fs::write(&raw, b"not a key").unwrap();
        assert!(load_or_create_signer(&raw).is_err());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn timeliness_is_missing_until_received_then_by_the_deadline_in_force() {
        // 20/11/2014 00:00 +07:00, the deadline of letter 3224/BTTTT-PTTH&TTĐT.
        let deadline = DateTime::parse_from_rfc3339("2014-11-20T00:00:00+07:00").unwrap().to_utc();
        assert_eq!(timeliness(None, deadline), Timeliness::Missing);
        assert_eq!(timeliness(Some(deadline - Duration::seconds(1)), deadline), Timeliness::OnTime);
        assert_eq!(timeliness(Some(deadline), deadline), Timeliness::Late);
    }
}
