//! Legal status is derived, never typed.
//!
//! A site's legal status (its licence state) follows from its licences, applications,
//! registration records and the sanctions applied to its licence. When several hold at once, the
//! first of this list wins:
//!
//! 1. `REVOKED` — its current licence (the latest issued, not superseded) was revoked;
//! 2. `SUSPENDED` — its current licence is suspended;
//! 3. `LICENSED` — its current licence is valid;
//! 4. `REGISTERED` — a registration (notification) record is in force;
//! 5. `APPLIED` — an application is received or awaiting a supplement;
//! 6. `EXPIRED` — its current licence expired;
//! 7. `UNLICENSED` — none of the above.
//!
//! A sanction outranks everything else so that a revoked site cannot look licensed through an
//! older registration; an application does not hide a revocation until a new licence is issued.
//!
//! Trial operation is not a status: a trial-operation record in force makes the site `trial`
//! beside whatever its legal status is. The letter counts sites "operating without a licence,
//! on trial" together (item 3), so a site on trial without a licence is `UNLICENSED` and on
//! trial, and one that has applied is `APPLIED` and on trial. (Until the registry's schema
//! version 4, `TRIAL` was a status ranked above `REGISTERED`; sites stored with it are
//! re-derived and logged anew by [`crate::Registry::run_clock`].)

use chrono::{DateTime, Utc};
use einfo_proto::registry::v1 as pb;
use pb::{ApplicationState, LegalStatus, LicenceState, SiteRecordKind};

use crate::convert::instant;

/// What the records of a site say at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Derived {
    /// The legal status.
    pub status: LegalStatus,
    /// A trial-operation record is in force.
    pub trial: bool,
}

/// The legal status and trial flag of a site with these records at `now`.
pub fn derive(
    licences: &[pb::Licence],
    records: &[pb::SiteRecord],
    applications: &[pb::LicenceApplication],
    now: DateTime<Utc>,
) -> Derived {
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
    let status = match current.map(|l| l.state()) {
        Some(LicenceState::Revoked) => LegalStatus::Revoked,
        Some(LicenceState::Suspended) => LegalStatus::Suspended,
        Some(LicenceState::Valid) => LegalStatus::Licensed,
        _ if record(SiteRecordKind::Registration) => LegalStatus::Registered,
        _ if pending => LegalStatus::Applied,
        Some(LicenceState::Expired) => LegalStatus::Expired,
        _ => LegalStatus::Unlicensed,
    };
    Derived { status, trial: record(SiteRecordKind::Trial) }
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

    fn status(d: Derived) -> LegalStatus {
        d.status
    }

    #[test]
    fn nothing_on_record_is_unlicensed() {
        assert_eq!(derive(&[], &[], &[], now()), Derived { status: LegalStatus::Unlicensed, trial: false });
    }

    #[test]
    fn trial_operation_is_a_flag_beside_the_status_not_a_status() {
        let now = now();
        let trial = record(SiteRecordKind::Trial, 5);
        // On trial without a licence: unlicensed, and on trial (letter 3224, item 3).
        assert_eq!(
            derive(&[], std::slice::from_ref(&trial), &[], now),
            Derived { status: LegalStatus::Unlicensed, trial: true }
        );
        // On trial having applied: applied, and on trial.
        assert_eq!(
            derive(&[], std::slice::from_ref(&trial), &[app(ApplicationState::Received)], now),
            Derived { status: LegalStatus::Applied, trial: true }
        );
        // On trial and licensed: licensed, and on trial.
        assert_eq!(
            derive(&[licence(LicenceState::Valid, 1)], &[trial], &[], now),
            Derived { status: LegalStatus::Licensed, trial: true }
        );
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
            status(derive(&[licence(LicenceState::Revoked, 1)], &all_records, std::slice::from_ref(&pending), now)),
            LegalStatus::Revoked
        );
        assert_eq!(
            status(derive(&[licence(LicenceState::Suspended, 1)], &all_records, &[], now)),
            LegalStatus::Suspended
        );
        assert_eq!(status(derive(&[licence(LicenceState::Valid, 1)], &all_records, &[], now)), LegalStatus::Licensed);
        assert_eq!(
            status(derive(&[licence(LicenceState::Expired, 1)], &all_records, &[], now)),
            LegalStatus::Registered
        );
        assert_eq!(
            status(derive(&[licence(LicenceState::Expired, 1)], &[trial, reg], std::slice::from_ref(&pending), now)),
            LegalStatus::Registered
        );
        assert_eq!(
            status(derive(&[licence(LicenceState::Expired, 1)], &[], std::slice::from_ref(&pending), now)),
            LegalStatus::Applied
        );
        assert_eq!(
            status(derive(&[licence(LicenceState::Expired, 1)], &[], &[app(ApplicationState::Rejected)], now)),
            LegalStatus::Expired
        );
    }

    #[test]
    fn the_latest_licence_is_the_current_one_and_superseded_ones_do_not_count() {
        let now = now();
        let old_revoked = licence(LicenceState::Revoked, 100);
        let new_valid = licence(LicenceState::Valid, 1);
        assert_eq!(status(derive(&[old_revoked, new_valid], &[], &[], now)), LegalStatus::Licensed);
        assert_eq!(status(derive(&[licence(LicenceState::Superseded, 1)], &[], &[], now)), LegalStatus::Unlicensed);
    }

    #[test]
    fn a_trial_that_ended_no_longer_counts() {
        assert_eq!(
            derive(&[], &[record(SiteRecordKind::Trial, -1)], &[], now()),
            Derived { status: LegalStatus::Unlicensed, trial: false }
        );
    }
}
