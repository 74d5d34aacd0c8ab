//! The audit a restarted gateway makes of each log's history behind its cursor, measured from the
//! gateway's side of the wire over the 63 seeded logs: by the node's checkpoint and the
//! consistency proof from the cursor (what it does now), next to reading the log from its start
//! and verifying its chain and tree (what it did before, and still does for a node of an earlier
//! release). The cursor is a few entries short of the head, as after a restart with writes on the
//! way.

use std::time::{Duration, Instant};

use einfo_common::changelog::checkpoint;
use einfo_common::changelog::merkle::{self, Frontier};
use einfo_common::changelog::{ChainVerifier, GENESIS_HASH, LogId};
use einfo_domain::Jurisdiction;
use einfo_proto::log::v1::{GetCheckpointRequest, GetLogHeadRequest, StreamChangesRequest};
use einfo_proto::prost::Message as _;

use super::setup::Federation;

/// Entries between the gateway's cursor and the node's head at the audit.
pub(super) const BEHIND: u64 = 5;

/// One way of auditing the 63 logs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Way {
    /// All 63, one after the other.
    pub(super) time: Duration,
    /// Bytes of the node's answers, over all logs.
    pub(super) bytes: u64,
    /// Bytes of the largest log's answers.
    pub(super) max_bytes: u64,
}

/// Both ways, over logs of `entries` entries each (the largest).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Audit {
    pub(super) logs: usize,
    pub(super) entries: u64,
    pub(super) proof: Way,
    pub(super) reread: Way,
}

/// Audits every seeded log both ways, checking what each reads.
pub(super) async fn restart_audit(fed: &Federation) -> anyhow::Result<Audit> {
    let now = einfo_common::clock::Clock::now(&*einfo_common::clock::system());
    let mut out = Audit { logs: fed.parents.len(), ..Audit::default() };
    for (p, parent) in fed.parents.iter().enumerate() {
        let mut c = fed.logs[p].clone();
        let log = LogId { jurisdiction: Jurisdiction::parse(parent)?, service: "registry" };
        let ask = |size: u64, consistency_from: u64| GetCheckpointRequest {
            jurisdiction: parent.clone(),
            service: "registry".into(),
            size,
            consistency_from,
            ..Default::default()
        };
        let head = c
            .get_log_head(GetLogHeadRequest { jurisdiction: parent.clone(), service: "registry".into() })
            .await?
            .into_inner()
            .sequence;
        anyhow::ensure!(head > BEHIND, "{parent}: a log of {head} entries");
        out.entries = out.entries.max(head);
        let cursor = head - BEHIND;
        // What the gateway holds of the cursor: the root of its tree (from its frontier).
        let held = c.get_checkpoint(ask(cursor, 0)).await?.into_inner().checkpoint.unwrap_or_default();
        let held = checkpoint::check(&held.note, &held.certificate, None, now, &log)?.root;

        let t = Instant::now();
        let r = c.get_checkpoint(ask(0, cursor)).await?.into_inner();
        let bytes = r.encoded_len() as u64;
        let cp = r.checkpoint.unwrap_or_default();
        let cp = checkpoint::check(&cp.note, &cp.certificate, None, now, &log)?;
        let proof = merkle::hashes_of("consistency_proof", &r.consistency_proof)?;
        anyhow::ensure!(merkle::check_consistency(&proof, cp.size, cp.root, cursor, held), "{parent}: inconsistent");
        out.proof.time += t.elapsed();
        out.proof.bytes += bytes;
        out.proof.max_bytes = out.proof.max_bytes.max(bytes);

        let t = Instant::now();
        let mut stream = c
            .stream_changes(StreamChangesRequest {
                jurisdiction: parent.clone(),
                service: "registry".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut v = ChainVerifier::new(log.to_string(), 0, &GENESIS_HASH);
        let mut tree = Frontier::default();
        let mut bytes = 0;
        while v.last_sequence() < cursor {
            let Some(m) = stream.message().await? else { anyhow::bail!("{parent}: the log ended early") };
            bytes += m.encoded_len() as u64;
            if let Some(e) = m.entry {
                v.check(&e)?;
                tree.push(&e.hash);
            }
        }
        drop(stream);
        anyhow::ensure!(tree.root() == held, "{parent}: another tree");
        out.reread.time += t.elapsed();
        out.reread.bytes += bytes;
        out.reread.max_bytes = out.reread.max_bytes.max(bytes);
    }
    Ok(out)
}
