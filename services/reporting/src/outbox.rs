//! Delivers submitted versions to the centre until a verified receipt comes back.
//!
//! A version is frozen and queued in one transaction. This loop sends each pending item with
//! `Submit`, the same bytes on every attempt, so the centre answers a retry with its first
//! receipt. A receipt is stored only when its signature verifies with the centre's key and it
//! names what was sent; otherwise it is rejected, the reason is kept on the item, and the item
//! is retried with backoff (200 ms doubling, at most 30 s) like any failed attempt.

use std::time::Duration;

use einfo_common::clock::{Pace, run_paced};
use einfo_domain::Jurisdiction;
use einfo_proto::central::v1 as central;
use prost::Message;

use crate::service::Reporting;
use crate::store;

const BATCH: u64 = 50;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a receipt is not the one for `sub`, if it is not.
fn check_receipt(key: &[u8; 32], sub: &central::Submission, r: &central::Receipt) -> Result<(), String> {
    einfo_common::receipts::verify(key, r)?;
    let b = r.body.as_ref().ok_or("the receipt has no body")?;
    if b.campaign != sub.campaign
        || b.jurisdiction != sub.jurisdiction
        || b.report != sub.report
        || b.version != sub.version
        || b.content_hash != sub.content_hash
    {
        return Err("the receipt is for another submission".into());
    }
    if b.receive_time.is_none() {
        return Err("the receipt has no receive time".into());
    }
    Ok(())
}

/// One pass: tries every due item once. Returns how many receipts were stored.
pub async fn deliver_due(svc: &Reporting) -> anyhow::Result<usize> {
    let Some(centre) = svc.centre() else { return Ok(0) };
    let now = svc.db().now();
    let due = store::due_outbox(svc.db().conn(), now, BATCH).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut stored = 0;
    for item in due {
        let j = Jurisdiction::parse(&item.jurisdiction)?;
        let sub = central::Submission::decode(item.submission.as_slice())?;
        let outcome: Result<central::Receipt, String> = async {
            let key = svc.centre_key(&j).await?;
            let mut c = centre.client(&j).map_err(|e| e.message().to_owned())?;
            let resp = c
                .submit(central::SubmitRequest { submission: Some(sub.clone()) })
                .await
                .map_err(|st| format!("{:?}: {}", st.code(), st.message()))?
                .into_inner();
            let receipt = resp.receipt.ok_or("the centre answered without a receipt")?;
            check_receipt(&key, &sub, &receipt).map_err(|e| format!("receipt rejected: {e}"))?;
            Ok(receipt)
        }
        .await;
        match outcome {
            Ok(receipt) => {
                svc.record_receipt(&j, receipt).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                tracing::info!(report = %item.report, version = item.version, "receipt of the centre stored");
                stored += 1;
            }
            Err(why) => {
                let attempts = item.attempts + 1;
                let backoff = Duration::from_millis(200u64.saturating_mul(1 << attempts.clamp(0, 16))).min(MAX_BACKOFF);
                if why.starts_with("receipt rejected") {
                    tracing::error!(report = %item.report, version = item.version, error = %why, "the centre's receipt does not verify; not stored, will retry");
                } else {
                    tracing::info!(report = %item.report, version = item.version, attempts, ?backoff, error = %why, "the centre is unreachable; will retry");
                }
                store::retry_later(
                    svc.db().conn(),
                    &item.report,
                    item.version,
                    attempts,
                    now + chrono::Duration::from_std(backoff).unwrap_or_default(),
                    &why,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
    }
    Ok(stored)
}

/// Runs the outbox every `interval` until `shutdown` resolves.
pub async fn run(svc: Reporting, pace: Pace, shutdown: impl std::future::Future<Output = ()>) {
    run_paced(pace, shutdown, || async {
        if let Err(e) = deliver_due(&svc).await {
            tracing::warn!(error = %e, "reporting outbox pass failed; retrying on the next tick");
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use einfo_common::receipts::ReceiptSigner;

    fn submission() -> central::Submission {
        central::Submission {
            campaign: "campaigns/1".into(),
            jurisdiction: "provinces/2008-01".into(),
            report: "provinces/2008-01/reports/1".into(),
            version: 1,
            content: vec![1, 2, 3],
            content_hash: vec![9; 32],
            submit_time: None,
        }
    }

    fn receipt_for(signer: &ReceiptSigner, s: &central::Submission) -> central::Receipt {
        signer.sign(central::ReceiptBody {
            receipt_id: "r1".into(),
            campaign: s.campaign.clone(),
            jurisdiction: s.jurisdiction.clone(),
            report: s.report.clone(),
            version: s.version,
            content_hash: s.content_hash.clone(),
            receive_time: Some(prost_types::Timestamp { seconds: 1_416_416_400, nanos: 0 }),
        })
    }

    #[test]
    fn a_receipt_is_kept_only_when_its_signature_verifies_and_it_names_what_was_sent() {
        let centre = ReceiptSigner::generate().unwrap();
        let s = submission();
        let good = receipt_for(&centre, &s);
        assert_eq!(check_receipt(&centre.public_key(), &s, &good), Ok(()));

        let mut bad_signature = good.clone();
        bad_signature.signature[0] ^= 1;
        assert!(check_receipt(&centre.public_key(), &s, &bad_signature).is_err());

        let mut tampered = good.clone();
        tampered.body.as_mut().unwrap().version = 2;
        assert!(check_receipt(&centre.public_key(), &s, &tampered).is_err());

        let other = ReceiptSigner::generate().unwrap();
        assert!(check_receipt(&centre.public_key(), &s, &receipt_for(&other, &s)).is_err());

        let mut another = s.clone();
        another.version = 2;
        assert!(check_receipt(&centre.public_key(), &another, &good).unwrap_err().contains("another submission"));
    }
}
