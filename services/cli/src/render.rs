//! The national table as text (`einfo national summary`).

use einfo_proto::gateway::v1 as pb;
use einfo_proto::registry::v1::LegalStatus;

const COLUMNS: [(LegalStatus, &str); 7] = [
    (LegalStatus::Licensed, "licensed"),
    (LegalStatus::Applied, "applied"),
    (LegalStatus::Registered, "registered"),
    (LegalStatus::Unlicensed, "unlicensed"),
    (LegalStatus::Suspended, "suspended"),
    (LegalStatus::Revoked, "revoked"),
    (LegalStatus::Expired, "expired"),
];

fn cells_json(cells: &[pb::SummaryCell]) -> serde_json::Value {
    cells
        .iter()
        .map(|c| {
            serde_json::json!({
                "kind": c.kind,
                "legal_status": c.legal_status().as_str_name().trim_start_matches("LEGAL_STATUS_").to_lowercase(),
                "count": c.count,
                "operating": c.operating,
                "not_operating": c.not_operating,
                "trial": c.trial,
            })
        })
        .collect()
}

/// The national table as JSON: the units with their cells and totals, the national cells and
/// total, whether it is complete, and the jurisdictions missing or stale.
pub fn summary_json(s: &pb::NationalSummary) -> serde_json::Value {
    serde_json::json!({
        "grouping": if s.grouping == pb::Grouping::Provinces34 as i32 { 34 } else { 63 },
        "complete": s.complete,
        "revision": s.revision,
        "units": s.units.iter().map(|u| serde_json::json!({
            "unit": u.unit,
            "display_name": u.display_name,
            "total": u.total,
            "members": u.members,
            "flagged": u.flagged,
            "cells": cells_json(&u.cells),
        })).collect::<Vec<_>>(),
        "totals": cells_json(&s.totals),
        "total": s.total,
        "missing": s.missing.iter().map(|m| m.jurisdiction.clone()).collect::<Vec<_>>(),
    })
}

/// The national table as text: one row per unit, a column per legal status, the total, then of
/// the total how many operate and how many are on trial; then the jurisdictions missing or
/// stale. A `TRIAL` status (which a node of an earlier version may still report) gets a column
/// of its own when any unit has one, so the columns always add up to the total.
pub fn render_summary(s: &pb::NationalSummary) -> String {
    let by_status = |cells: &[pb::SummaryCell], st: LegalStatus| -> i64 {
        cells.iter().filter(|c| c.legal_status == st as i32).map(|c| c.count).sum()
    };
    let sum = |cells: &[pb::SummaryCell], f: fn(&pb::SummaryCell) -> i64| -> i64 { cells.iter().map(f).sum() };
    let mut columns = COLUMNS.to_vec();
    if s.totals.iter().any(|c| c.legal_status == LegalStatus::Trial as i32) {
        columns.push((LegalStatus::Trial, "trial(old)"));
    }
    let mut out = String::new();
    out.push_str(&format!("{:<20} {:<22}", "unit", "name"));
    for (_, h) in &columns {
        out.push_str(&format!(" {h:>10}"));
    }
    out.push_str(&format!(" {:>10} {:>10} {:>10}\n", "total", "operating", "on trial"));
    let row = |out: &mut String, unit: &str, name: &str, cells: &[pb::SummaryCell], total: i64| {
        let name: String = name.chars().take(22).collect();
        out.push_str(&format!("{unit:<20} {name:<22}"));
        for (st, _) in &columns {
            out.push_str(&format!(" {:>10}", by_status(cells, *st)));
        }
        out.push_str(&format!(" {total:>10} {:>10} {:>10}\n", sum(cells, |c| c.operating), sum(cells, |c| c.trial)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(status: LegalStatus, count: i64, operating: i64, trial: i64) -> pb::SummaryCell {
        pb::SummaryCell {
            kind: "general-website".into(),
            legal_status: status as i32,
            count,
            operating,
            not_operating: count - operating,
            trial,
        }
    }

    fn summary(cells: Vec<pb::SummaryCell>) -> pb::NationalSummary {
        let total = cells.iter().map(|c| c.count).sum();
        pb::NationalSummary {
            units: vec![pb::UnitSummary {
                unit: "provinces/2008-01".into(),
                display_name: "Hà Nội".into(),
                cells: cells.clone(),
                total,
                ..Default::default()
            }],
            totals: cells,
            total,
            complete: true,
            ..Default::default()
        }
    }

    /// The numbers of the row of `unit`, after its name.
    fn numbers(text: &str, unit: &str) -> Vec<i64> {
        let line = text.lines().find(|l| l.starts_with(unit)).expect("the row");
        line.split_whitespace().filter_map(|w| w.parse().ok()).collect()
    }

    #[test]
    fn a_row_gives_each_status_then_the_total_the_operating_and_those_on_trial() {
        let text = render_summary(&summary(vec![
            cell(LegalStatus::Licensed, 2, 2, 0),
            cell(LegalStatus::Unlicensed, 3, 1, 1),
        ]));
        assert!(!text.contains("trial(old)"), "{text}");
        // licensed, applied, registered, unlicensed, suspended, revoked, expired; total, operating, on trial
        assert_eq!(numbers(&text, "national"), vec![2, 0, 0, 3, 0, 0, 0, 5, 3, 1], "{text}");
    }

    #[test]
    fn a_trial_status_from_an_older_node_has_a_column_so_the_row_adds_up() {
        let text =
            render_summary(&summary(vec![cell(LegalStatus::Trial, 1, 1, 1), cell(LegalStatus::Applied, 1, 0, 0)]));
        assert!(text.contains("trial(old)"), "{text}");
        assert_eq!(numbers(&text, "provinces/2008-01"), vec![0, 1, 0, 0, 0, 0, 0, 1, 2, 1, 1], "{text}");
    }
}
