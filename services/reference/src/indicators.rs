//! The indicator catalogue: data (`data/indicators.csv`), one rule per indicator naming the
//! service and the field of its `GetStatistics` answer the figure comes from. A field with
//! dimensions (sites by kind × legal status, violations by code) yields one figure per dimension.

use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;

/// The catalogue shipped with the service.
pub const BUNDLED: &str = include_str!("../data/indicators.csv");

/// Which service a figure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Registry's GetStatistics.
    Registry,
    /// Inspection's GetStatistics.
    Inspection,
}

impl Source {
    /// "registry" or "inspection".
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Registry => "registry",
            Source::Inspection => "inspection",
        }
    }
}

const REGISTRY_FIELDS: &[&str] = &[
    "sites",
    "sites_operating",
    "sites_trial",
    "applications_pending",
    "applications_overdue",
    "licences_issued",
    "licences_suspended",
    "licences_revoked",
    "applications_received",
    "unlicensed_found",
    "licences_expiring",
];
const INSPECTION_FIELDS: &[&str] = &[
    "plans",
    "joint_rounds",
    "handled",
    "inspections",
    "sites_inspected",
    "violations",
    "decisions",
    "fines_imposed_vnd",
    "fines_collected_vnd",
    "licences_suspended",
    "licences_revoked",
    "warnings",
    "content_removals",
];

/// One indicator and its rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Code, e.g. `sites_by_kind_status`.
    pub code: String,
    /// Source service.
    pub source: Source,
    /// Field of the source's GetStatistics answer.
    pub field: String,
    /// Vietnamese name.
    pub name_vi: String,
    /// English name.
    pub name_en: String,
}

/// The catalogue.
#[derive(Clone, Debug)]
pub struct Catalogue {
    rules: Vec<Rule>,
}

impl Catalogue {
    /// The bundled catalogue.
    pub fn bundled() -> Self {
        Self::from_csv(BUNDLED).expect("the bundled indicator catalogue is valid")
    }

    /// Parses a catalogue (`code,service,field,name_vi,name_en`).
    pub fn from_csv(data: &str) -> anyhow::Result<Self> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut rdr = csv::Reader::from_reader(data.as_bytes());
        for (i, row) in rdr.records().enumerate() {
            let row = row?;
            let line = i + 2;
            anyhow::ensure!(row.len() == 5, "line {line}: expected 5 columns, found {}", row.len());
            let source = match &row[1] {
                "registry" => Source::Registry,
                "inspection" => Source::Inspection,
                other => anyhow::bail!("line {line}: unknown service '{other}'"),
            };
            let fields = if source == Source::Registry { REGISTRY_FIELDS } else { INSPECTION_FIELDS };
            anyhow::ensure!(
                fields.contains(&&row[2]),
                "line {line}: {} has no statistic '{}'",
                source.as_str(),
                &row[2]
            );
            let code = row[0].trim().to_owned();
            anyhow::ensure!(!code.is_empty(), "line {line}: empty code");
            anyhow::ensure!(!rules.iter().any(|r| r.code == code), "line {line}: {code} appears twice");
            rules.push(Rule {
                code,
                source,
                field: row[2].to_owned(),
                name_vi: row[3].to_owned(),
                name_en: row[4].to_owned(),
            });
        }
        anyhow::ensure!(!rules.is_empty(), "the indicator catalogue is empty");
        Ok(Self { rules })
    }

    /// Every rule, in catalogue order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule of an indicator.
    pub fn get(&self, code: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.code == code)
    }

    /// Position of an indicator (for ordering figures).
    pub fn position(&self, code: &str) -> usize {
        self.rules.iter().position(|r| r.code == code).unwrap_or(usize::MAX)
    }
}

/// The legal status of a count as a dimension: `LICENSED`, `UNLICENSED`, ...
fn status_name(value: i32) -> String {
    reg::LegalStatus::try_from(value)
        .map(|s| s.as_str_name().trim_start_matches("LEGAL_STATUS_").to_owned())
        .unwrap_or_else(|_| value.to_string())
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A figure of each (kind, legal status) cell, `kind/STATUS`, where it is not zero.
fn by_cell(r: &reg::GetStatisticsResponse, figure: fn(&reg::SiteCount) -> u64) -> Vec<(String, i64)> {
    r.sites
        .iter()
        .filter(|c| figure(c) != 0)
        .map(|c| (format!("{}/{}", c.kind, status_name(c.legal_status)), int(figure(c))))
        .collect()
}

/// The figures of `rule`: (dimension, value), dimension empty for a single figure.
pub fn evaluate(rule: &Rule, r: &reg::GetStatisticsResponse, i: &insp::GetStatisticsResponse) -> Vec<(String, i64)> {
    let one = |v: i64| vec![(String::new(), v)];
    match (rule.source, rule.field.as_str()) {
        (Source::Registry, "sites") => by_cell(r, |c| c.count),
        (Source::Registry, "sites_operating") => by_cell(r, |c| c.operating),
        (Source::Registry, "sites_trial") => by_cell(r, |c| c.trial),
        (Source::Registry, "applications_pending") => one(int(r.applications_pending)),
        (Source::Registry, "applications_overdue") => one(int(r.applications_overdue)),
        (Source::Registry, "licences_issued") => one(int(r.licences_issued)),
        (Source::Registry, "licences_suspended") => one(int(r.licences_suspended)),
        (Source::Registry, "licences_revoked") => one(int(r.licences_revoked)),
        (Source::Registry, "applications_received") => one(int(r.applications_received)),
        (Source::Registry, "unlicensed_found") => one(int(r.unlicensed_found)),
        (Source::Registry, "licences_expiring") => one(int(r.licences_expiring)),
        (Source::Inspection, "plans") => one(int(i.plans)),
        (Source::Inspection, "joint_rounds") => one(int(i.joint_rounds)),
        (Source::Inspection, "inspections") => one(int(i.inspections)),
        (Source::Inspection, "sites_inspected") => one(int(i.sites_inspected)),
        (Source::Inspection, "violations") => i.violations.iter().map(|v| (v.code.clone(), int(v.count))).collect(),
        (Source::Inspection, "handled") => i
            .handled
            .iter()
            .map(|h| (h.handling().as_str_name().trim_start_matches("HANDLING_").to_owned(), int(h.count)))
            .collect(),
        (Source::Inspection, "decisions") => one(int(i.decisions)),
        (Source::Inspection, "fines_imposed_vnd") => one(i.fines_imposed_vnd),
        (Source::Inspection, "fines_collected_vnd") => one(i.fines_collected_vnd),
        (Source::Inspection, "licences_suspended") => one(int(i.licences_suspended)),
        (Source::Inspection, "licences_revoked") => one(int(i.licences_revoked)),
        (Source::Inspection, "warnings") => one(int(i.warnings)),
        (Source::Inspection, "content_removals") => one(int(i.content_removals)),
        // from_csv admits only the fields above.
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_catalogue_loads_with_every_indicator_the_centre_asks_for() {
        let c = Catalogue::bundled();
        for code in [
            "sites_by_kind_status",
            "licences_issued",
            "applications_pending",
            "applications_overdue",
            "unlicensed_found",
            "inspections",
            "violations_by_code",
            "sanction_decisions",
            "fines_imposed_vnd",
            "licences_suspended",
            "licences_revoked",
        ] {
            assert!(c.get(code).is_some(), "{code} missing");
        }
        assert!(c.get("inspections").unwrap().name_vi.contains("thanh tra, kiểm tra"));
    }

    #[test]
    fn an_unknown_field_is_refused() {
        assert!(Catalogue::from_csv("code,service,field,name_vi,name_en\nx,registry,nope,a,b\n").is_err());
    }

    #[test]
    fn dimensions_name_kind_and_status() {
        let c = Catalogue::bundled();
        let r = reg::GetStatisticsResponse {
            sites: vec![
                reg::SiteCount {
                    kind: "general-website".into(),
                    legal_status: reg::LegalStatus::Licensed as i32,
                    count: 3,
                    operating: 2,
                    not_operating: 1,
                    trial: 0,
                },
                reg::SiteCount {
                    kind: "social-network".into(),
                    legal_status: reg::LegalStatus::Unlicensed as i32,
                    count: 1,
                    operating: 1,
                    not_operating: 0,
                    trial: 1,
                },
            ],
            ..Default::default()
        };
        let got = |code: &str| evaluate(c.get(code).unwrap(), &r, &Default::default());
        let figures = |v: &[(&str, i64)]| v.iter().map(|(d, n)| ((*d).to_owned(), *n)).collect::<Vec<_>>();
        assert_eq!(
            got("sites_by_kind_status"),
            figures(&[("general-website/LICENSED", 3), ("social-network/UNLICENSED", 1)])
        );
        assert_eq!(
            got("sites_operating_by_kind_status"),
            figures(&[("general-website/LICENSED", 2), ("social-network/UNLICENSED", 1)])
        );
        // On trial without a licence: counted among the unlicensed and as on trial.
        assert_eq!(got("sites_trial_by_kind_status"), figures(&[("social-network/UNLICENSED", 1)]));
    }
}
