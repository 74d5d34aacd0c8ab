//! Legal status is derived, never typed.
//!
//! A site's status follows from its licences, applications, registration and trial records and
//! the sanctions applied to its licence. When several hold at once, the first of this list wins:
//!
//! 1. `REVOKED` — its current licence (the latest issued, not superseded) was revoked;
//! 2. `SUSPENDED` — its current licence is suspended;
//! 3. `LICENSED` — its current licence is valid;
//! 4. `TRIAL` — a trial-operation record is in force (start ≤ now < end);
//! 5. `REGISTERED` — a registration (notification) record is in force;
//! 6. `APPLIED` — an application is received or awaiting a supplement;
//! 7. `EXPIRED` — its current licence expired;
//! 8. `UNLICENSED` — none of the above.
//!
//! A sanction outranks everything else so that a revoked site cannot look licensed through an
//! older registration; an application does not hide a revocation until a new licence is issued.

use chrono::{DateTime, Utc};
use einfo_proto::registry::v1 as pb;
use pb::{ApplicationState, LegalStatus, LicenceState, SiteRecordKind};

use crate::convert::instant;

/// The status of a site with these records at `now`.
pub fn derive(
    licences: &[pb::Licence],
    records: &[pb::SiteRecord],
    applications: &[pb::LicenceApplication],
    now: DateTime<Utc>,
) -> LegalStatus {
    let current = licences
        .iter()
        .filter(|l| l.state() != LicenceState::Superseded)
        .max_by_key(|l| (instant(l.issue_time.as_ref()), l.name.clone()));
    let in_force = |r: &&pb::SiteRecord| {
        instant(r.start_time.as_ref()) <= now && r.end_time.as_ref().is_none_or(|e| now < instant(Some(e)))
    };
    let record = |kind: SiteRecordKind| records.iter().filter(in_force).any(|r| r.kind() == kind);
    let pending = applications
        .iter()
        .any(|a| matches!(a.state(), ApplicationState::Received | ApplicationState::NeedsSupplement));
    match current.map(|l| l.state()) {
        Some(LicenceState::Revoked) => LegalStatus::Revoked,
        Some(LicenceState::Suspended) => LegalStatus::Suspended,
        Some(LicenceState::Valid) => LegalStatus::Licensed,
        _ if record(SiteRecordKind::Trial) => LegalStatus::Trial,
        _ if record(SiteRecordKind::Registration) => LegalStatus::Registered,
        _ if pending => LegalStatus::Applied,
        Some(LicenceState::Expired) => LegalStatus::Expired,
        _ => LegalStatus::Unlicensed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::timestamp;
    use chrono::Duration;

    /// The instant the tests take as now.
    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T09:00:00+07:00").expect("a date").to_utc()
    }

    fn licence(state: LicenceState, issued_days_ago: i64) -> pb::Licence {
        let now = now();
        pb::Licence {
            name: format!("l{issued_days_ago}"),
            state: state as i32,
            issue_time: Some(timestamp(now - Duration::days(issued_days_ago))),
            expire_time: Some(timestamp(now + Duration::days(365))),
            ..Default::default()
        }
    }

    fn record(kind: SiteRecordKind, ends_in_days: i64) -> pb::SiteRecord {
        let now = now();
        pb::SiteRecord {
            kind: kind as i32,
            start_time: Some(timestamp(now - Duration::days(10))),
            end_time: Some(timestamp(now + Duration::days(ends_in_days))),
            ..Default::default()
        }
    }

    fn app(state: ApplicationState) -> pb::LicenceApplication {
        pb::LicenceApplication { state: state as i32, ..Default::default() }
    }

    #[test]
    fn nothing_on_record_is_unlicensed() {
        assert_eq!(derive(&[], &[], &[], now()), LegalStatus::Unlicensed);
    }

    #[test]
    fn the_documented_precedence_holds() {
        let now = now();
        let trial = record(SiteRecordKind::Trial, 5);
        let reg = record(SiteRecordKind::Registration, 5);
        let pending = app(ApplicationState::Received);
        let all_records = [trial.clone(), reg.clone()];
        // A revocation outranks everything.
        assert_eq!(
            derive(&[licence(LicenceState::Revoked, 1)], &all_records, std::slice::from_ref(&pending), now),
            LegalStatus::Revoked
        );
        assert_eq!(derive(&[licence(LicenceState::Suspended, 1)], &all_records, &[], now), LegalStatus::Suspended);
        assert_eq!(derive(&[licence(LicenceState::Valid, 1)], &all_records, &[], now), LegalStatus::Licensed);
        assert_eq!(derive(&[licence(LicenceState::Expired, 1)], &all_records, &[], now), LegalStatus::Trial);
        assert_eq!(
            derive(&[licence(LicenceState::Expired, 1)], &[reg], std::slice::from_ref(&pending), now),
            LegalStatus::Registered
        );
        assert_eq!(
            derive(&[licence(LicenceState::Expired, 1)], &[], std::slice::from_ref(&pending), now),
            LegalStatus::Applied
        );
        assert_eq!(
            derive(&[licence(LicenceState::Expired, 1)], &[], &[app(ApplicationState::Rejected)], now),
            LegalStatus::Expired
        );
    }

    #[test]
    fn the_latest_licence_is_the_current_one_and_superseded_ones_do_not_count() {
        let now = now();
        let old_revoked = licence(LicenceState::Revoked, 100);
        let new_valid = licence(LicenceState::Valid, 1);
        assert_eq!(derive(&[old_revoked, new_valid], &[], &[], now), LegalStatus::Licensed);
        assert_eq!(derive(&[licence(LicenceState::Superseded, 1)], &[], &[], now), LegalStatus::Unlicensed);
    }

    #[test]
    fn a_trial_that_ended_no_longer_counts() {
        assert_eq!(derive(&[], &[record(SiteRecordKind::Trial, -1)], &[], now()), LegalStatus::Unlicensed);
    }
}
