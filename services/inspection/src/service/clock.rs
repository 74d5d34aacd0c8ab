//! The time-driven transition of decisions: OVERDUE once the compliance deadline passed.

use chrono::{DateTime, Utc};
use einfo_common::auth::Caller;
use einfo_common::changelog::Begin;
use einfo_common::error::ApiResult;
use einfo_common::fields::{instant, next_etag};
use einfo_proto::inspection::v1 as pb;
use pb::DecisionState;

use super::Inspection;
use crate::store::{self, Table};

impl Inspection {
    /// Writes OVERDUE for every issued decision whose compliance deadline passed by `now`, as the
    /// system actor. Returns how many.
    pub async fn run_clock(&self, now: DateTime<Utc>) -> ApiResult<usize> {
        let mut n = 0;
        for j in self.hosted.iter() {
            for name in store::overdue_decisions(self.db.conn(), j, now).await? {
                let caller = Caller::system(*j);
                let Begin::Fresh(mut m) = self.begin::<pb::SanctionDecision>(&caller, j, "", "", &()).await? else {
                    continue;
                };
                let Some(mut d) = store::get::<_, pb::SanctionDecision>(m.txn(), Table::Decisions, &name).await? else {
                    continue;
                };
                // A voided decision is a tombstone: it has no deadline left to miss.
                if d.voided || d.state() != DecisionState::Issued || instant(d.compliance_deadline.as_ref()) > now {
                    continue;
                }
                d.state = DecisionState::Overdue as i32;
                d.etag = next_etag(&d.etag);
                store::put_decision(m.txn(), j, &d.name, d.state, instant(d.compliance_deadline.as_ref()), &d).await?;
                m.append(&d.name, "OVERDUE", &d, "compliance deadline passed").await?;
                m.commit(&d).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}
