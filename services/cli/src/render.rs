//! The national table as text (`einfo national summary`).

use einfo_proto::gateway::v1 as pb;
use einfo_proto::registry::v1::LegalStatus;

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
