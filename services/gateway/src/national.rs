//! The national queries: every answer accounts for each expected jurisdiction. STRICT fails with
//! `UNAVAILABLE` (reason `JURISDICTIONS_UNAVAILABLE`, metadata `jurisdictions`) naming those
//! unreachable, in alarm, unconfigured or stale; PARTIAL answers from what the store holds and
//! names them with their freshness. Answers are grouped under the 63- or the 34-province scheme.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use einfo_common::error::{ApiError, ApiResult, Reason};
use einfo_common::fields::{instant, timestamp};
use einfo_domain::{DomainName, Jurisdiction, Scheme, TaxCode};
use einfo_proto::gateway::v1 as pb;
use einfo_proto::reporting::v1::Timeliness;

use crate::store::{self, Search};
use crate::{Gateway, freshness_of};

const MAX_PAGE: i32 = 1000;
const DEFAULT_PAGE: i32 = 100;

fn page(size: i32, field: &str) -> ApiResult<i64> {
    match size {
        0 => Ok(i64::from(DEFAULT_PAGE)),
        s if (1..=MAX_PAGE).contains(&s) => Ok(i64::from(s)),
        _ => Err(ApiError::field(field, format!("must be between 0 and {MAX_PAGE}"))),
    }
}

fn duration(d: Option<&prost_types::Duration>, field: &str) -> ApiResult<Option<Duration>> {
    match d {
        None => Ok(None),
        Some(d) if d.seconds < 0 || d.nanos < 0 => Err(ApiError::field(field, "must not be negative")),
        Some(d) => Ok(Some(Duration::new(d.seconds as u64, d.nanos as u32))),
    }
}

/// The unit of `j` under `grouping`, and whether it is flagged (a 34-province record shown in a
/// 63-province grouping: it cannot be split back).
pub fn unit_of(j: &Jurisdiction, grouping: pb::Grouping) -> (Jurisdiction, bool) {
    match (grouping, j.scheme()) {
        (pb::Grouping::Provinces34, Some(Scheme::P63)) => (j.successor().unwrap_or(*j), false),
        (pb::Grouping::Provinces34, _) => (*j, false),
        (_, Some(Scheme::P34)) => (*j, true),
        _ => (*j, false),
    }
}

fn grouping_of(g: i32) -> ApiResult<pb::Grouping> {
    pb::Grouping::try_from(g).map_err(|_| ApiError::field("options.grouping", format!("unknown grouping {g}")))
}

/// Parsed query options.
pub struct Options {
    /// STRICT or PARTIAL.
    pub strict: bool,
    /// The grouping.
    pub grouping: pb::Grouping,
    /// The staleness bound.
    pub bound: Duration,
}

impl Gateway {
    /// Parses query options (unset: STRICT, 63 provinces, the configured staleness bound).
    pub fn options(&self, o: Option<&pb::QueryOptions>) -> ApiResult<Options> {
        let o = o.cloned().unwrap_or_default();
        let mode = pb::QueryMode::try_from(o.mode)
            .map_err(|_| ApiError::field("options.mode", format!("unknown mode {}", o.mode)))?;
        Ok(Options {
            strict: mode != pb::QueryMode::Partial,
            grouping: grouping_of(o.grouping)?,
            bound: duration(o.max_staleness.as_ref(), "options.max_staleness")?
                .unwrap_or(Duration::from_millis(self.settings().max_staleness_ms)),
        })
    }

    /// Freshness of every expected jurisdiction, and those of them that are missing (not live
    /// and not catching up within the bound). STRICT fails when any is missing.
    pub fn check(&self, o: &Options) -> ApiResult<(Vec<pb::JurisdictionFreshness>, Vec<pb::JurisdictionFreshness>)> {
        let now = self.db().now();
        let expected = self.expected();
        let all: Vec<pb::JurisdictionFreshness> = {
            let st = self.state();
            expected.iter().map(|j| freshness_of(&st, j, now, o.bound)).collect()
        };
        let missing: Vec<pb::JurisdictionFreshness> = all
            .iter()
            .filter(|f| !matches!(f.state(), pb::FreshnessState::Live | pb::FreshnessState::CatchingUp))
            .cloned()
            .collect();
        if o.strict && !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|f| f.jurisdiction.clone()).collect();
            let detail: Vec<String> = missing
                .iter()
                .map(|f| {
                    format!("{} ({})", f.jurisdiction, f.state().as_str_name().trim_start_matches("FRESHNESS_STATE_"))
                })
                .collect();
            return Err(ApiError::new(
                Reason::JurisdictionsUnavailable,
                format!("{} jurisdiction(s) missing or stale: {}", names.len(), detail.join(", ")),
            )
            .with_metadata("jurisdictions", names.join(",")));
        }
        Ok((all, missing))
    }

    /// The national summary of sites by unit × kind × legal status, from memory. The units
    /// and totals are computed once per change of the counts (and of the expected set) for each
    /// grouping; a call then adds only the freshness of now.
    pub fn summary(&self, o: &Options) -> ApiResult<pb::NationalSummary> {
        let (freshness, missing) = self.check(o)?;
        let revision = *self.0.revision.borrow();
        let expected: Vec<String> = freshness.iter().map(|f| f.jurisdiction.clone()).collect();
        let grouping = o.grouping as i32;
        let body = {
            let mut st = self.state();
            match st.summaries.get(&grouping) {
                Some(b) if b.expected == expected => b.clone(),
                _ => {
                    let body = Arc::new(summary_body(expected, &st.cells, o.grouping));
                    st.summaries.insert(grouping, body.clone());
                    body
                }
            }
        };
        Ok(pb::NationalSummary {
            grouping,
            units: body.units.clone(),
            totals: body.totals.clone(),
            total: body.total,
            complete: missing.is_empty(),
            missing,
            freshness,
            compute_time: Some(timestamp(self.db().now())),
            revision,
        })
    }

    /// Valid licences expiring within a window.
    pub async fn expiring_licences(
        &self,
        r: &pb::ListExpiringLicencesRequest,
    ) -> ApiResult<pb::ListExpiringLicencesResponse> {
        let o = self.options(r.options.as_ref())?;
        let within = duration(r.within.as_ref(), "within")?.unwrap_or(Duration::from_secs(30 * 86_400));
        let limit = page(r.page_size, "page_size")?;
        let (_, missing) = self.check(&o)?;
        let now = self.db().now();
        let to = now + chrono::TimeDelta::from_std(within).map_err(|_| ApiError::field("within", "is too long"))?;
        let (items, total) = store::expiring_licences(self.db().conn(), now, to, limit).await?;
        Ok(pb::ListExpiringLicencesResponse {
            licences: items
                .into_iter()
                .map(|(j, l)| pb::NationalLicence {
                    unit: unit_name(&j, o.grouping),
                    jurisdiction: j,
                    licence: Some(l),
                })
                .collect(),
            total,
            missing,
        })
    }

    /// Applications past their deadline and undecided.
    pub async fn overdue_applications(
        &self,
        r: &pb::ListOverdueApplicationsRequest,
    ) -> ApiResult<pb::ListOverdueApplicationsResponse> {
        let o = self.options(r.options.as_ref())?;
        let limit = page(r.page_size, "page_size")?;
        let (_, missing) = self.check(&o)?;
        let (items, total) = store::overdue_applications(self.db().conn(), self.db().now(), limit).await?;
        Ok(pb::ListOverdueApplicationsResponse {
            applications: items
                .into_iter()
                .map(|(j, a)| pb::NationalApplication {
                    unit: unit_name(&j, o.grouping),
                    jurisdiction: j,
                    application: Some(a),
                })
                .collect(),
            total,
            missing,
        })
    }

    /// Inspections, violations, sanctions and fines in a period, by unit.
    pub async fn enforcement(
        &self,
        r: &pb::GetEnforcementSummaryRequest,
    ) -> ApiResult<pb::GetEnforcementSummaryResponse> {
        let o = self.options(r.options.as_ref())?;
        let (Some(start), Some(end)) = (r.period_start.as_ref(), r.period_end.as_ref()) else {
            let field = if r.period_start.is_none() { "period_start" } else { "period_end" };
            return Err(ApiError::field(field, "is required"));
        };
        let (start, end) = (instant(Some(start)), instant(Some(end)));
        if end <= start {
            return Err(ApiError::field("period_end", "must be after period_start"));
        }
        let (_, missing) = self.check(&o)?;
        let by_j = store::enforcement(self.db().conn(), start, end).await?;
        let mut units: BTreeMap<String, store::Enforcement> = BTreeMap::new();
        let mut totals = store::Enforcement::default();
        for (j, e) in by_j {
            let unit = unit_name(&j, o.grouping);
            for target in [units.entry(unit).or_default(), &mut totals] {
                target.inspections += e.inspections;
                target.decisions += e.decisions;
                target.fines_vnd += e.fines_vnd;
                target.suspensions += e.suspensions;
                target.revocations += e.revocations;
                for (code, n) in &e.violations {
                    *target.violations.entry(code.clone()).or_default() += n;
                }
            }
        }
        let figures = |unit: String, e: store::Enforcement| {
            let mut codes: Vec<(String, i64)> = e.violations.into_iter().collect();
            codes.sort();
            pb::EnforcementFigures {
                unit,
                inspections: e.inspections,
                violations: codes.iter().map(|(_, n)| n).sum(),
                violations_by_code: codes.into_iter().map(|(code, count)| pb::ViolationCount { code, count }).collect(),
                decisions: e.decisions,
                fines_vnd: e.fines_vnd,
                suspensions: e.suspensions,
                revocations: e.revocations,
            }
        };
        Ok(pb::GetEnforcementSummaryResponse {
            units: units.into_iter().map(|(u, e)| figures(u, e)).collect(),
            totals: Some(figures(String::new(), totals)),
            missing,
        })
    }

    /// Completeness and timeliness of a campaign, by unit, from the centre this gateway serves.
    pub async fn completeness(
        &self,
        r: &pb::GetCampaignCompletenessRequest,
    ) -> ApiResult<pb::GetCampaignCompletenessResponse> {
        let grouping = grouping_of(r.grouping).map_err(|_| ApiError::field("grouping", "unknown grouping"))?;
        if r.campaign.trim().is_empty() {
            return Err(ApiError::field("campaign", "is required"));
        }
        let rows = self.central().completeness(r.campaign.trim()).await?;
        let mut units: BTreeMap<String, pb::UnitCompleteness> = BTreeMap::new();
        let mut totals = pb::UnitCompleteness::default();
        let mut targets = Vec::new();
        for c in rows {
            let unit = unit_of(&c.jurisdiction, grouping).0.to_string();
            for t in [
                units.entry(unit.clone()).or_insert_with(|| pb::UnitCompleteness { unit, ..Default::default() }),
                &mut totals,
            ] {
                t.expected += 1;
                match c.timeliness {
                    Timeliness::OnTime => {
                        t.submitted += 1;
                        t.on_time += 1;
                    }
                    Timeliness::Late => {
                        t.submitted += 1;
                        t.late += 1;
                    }
                    _ => t.missing += 1,
                }
            }
            targets.push(pb::CampaignTarget {
                jurisdiction: c.jurisdiction.to_string(),
                timeliness: c.timeliness.as_str_name().trim_start_matches("TIMELINESS_").to_owned(),
                first_receive_time: c.first_receive_time.map(timestamp),
                deadline: Some(timestamp(c.deadline)),
            });
        }
        targets.sort_by(|a, b| a.jurisdiction.cmp(&b.jurisdiction));
        Ok(pb::GetCampaignCompletenessResponse { totals: Some(totals), units: units.into_values().collect(), targets })
    }

    /// National search by one criterion.
    pub async fn search(&self, r: &pb::SearchSitesRequest) -> ApiResult<pb::SearchSitesResponse> {
        let o = self.options(r.options.as_ref())?;
        let limit = page(r.page_size, "page_size")?;
        let given: Vec<&str> = [
            (!r.domain.trim().is_empty()).then_some("domain"),
            (!r.registrable_domain.trim().is_empty()).then_some("registrable_domain"),
            (!r.owner_tax_code.trim().is_empty()).then_some("owner_tax_code"),
            (!r.name_query.trim().is_empty()).then_some("name_query"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let q = match given.as_slice() {
            ["domain"] => Search::Domain(
                DomainName::parse(&r.domain).map_err(|e| ApiError::field("domain", e.to_string()))?.ascii().to_owned(),
            ),
            ["registrable_domain"] => Search::Registrable(
                einfo_domain::domain_name::registrable_of(&r.registrable_domain)
                    .map_err(|e| ApiError::field("registrable_domain", e.to_string()))?,
            ),
            ["owner_tax_code"] => Search::TaxCode(
                TaxCode::parse(&r.owner_tax_code)
                    .map_err(|e| ApiError::field("owner_tax_code", e.to_string()))?
                    .canonical(),
            ),
            [_] => {
                let mut v = einfo_common::error::Violations::new();
                let words = einfo_common::fields::name_query(&r.name_query, "name_query", &mut v);
                v.finish()?;
                if words.is_empty() {
                    return Err(ApiError::field("name_query", "has no letters or digits"));
                }
                Search::Name(words)
            }
            [] => {
                return Err(ApiError::field(
                    "domain",
                    "give one of domain, registrable_domain, owner_tax_code, name_query",
                ));
            }
            [_, second, ..] => {
                return Err(ApiError::field(
                    *second,
                    "give exactly one of domain, registrable_domain, owner_tax_code, name_query",
                ));
            }
        };
        let (_, missing) = self.check(&o)?;
        let sites = store::search(self.db().conn(), &q, r.show_voided, limit).await?;
        Ok(pb::SearchSitesResponse {
            sites: sites
                .into_iter()
                .map(|(jurisdiction, mut s)| {
                    // The centre reads a person's data masked (einfo_common::privacy).
                    einfo_common::privacy::mask_site(&mut s);
                    pb::NationalSite { jurisdiction, site: Some(s) }
                })
                .collect(),
            missing,
        })
    }

    /// Conflicts between jurisdictions.
    pub async fn conflicts(&self, r: &pb::ListConflictsRequest) -> ApiResult<pb::ListConflictsResponse> {
        let o = self.options(r.options.as_ref())?;
        let limit = page(r.page_size, "page_size")?;
        let (_, missing) = self.check(&o)?;
        let rows = store::conflicts(self.db().conn(), limit).await?;
        let mut by_domain: BTreeMap<String, Vec<pb::NationalSite>> = BTreeMap::new();
        for (registrable, jurisdiction, site) in rows {
            let mut site = site;
            einfo_common::privacy::mask_site(&mut site);
            by_domain.entry(registrable).or_default().push(pb::NationalSite { jurisdiction, site: Some(site) });
        }
        use einfo_proto::registry::v1::LegalStatus;
        let conflicts = by_domain
            .into_iter()
            .map(|(registrable_domain, sites)| {
                let with = |status: LegalStatus| -> Vec<&str> {
                    sites
                        .iter()
                        .filter(|s| s.site.as_ref().is_some_and(|x| x.legal_status == status as i32))
                        .map(|s| s.jurisdiction.as_str())
                        .collect()
                };
                let (unlicensed, licensed) = (with(LegalStatus::Unlicensed), with(LegalStatus::Licensed));
                let split = unlicensed.iter().any(|u| licensed.iter().any(|l| l != u));
                pb::Conflict {
                    kind: if split {
                        pb::ConflictKind::UnlicensedHereLicensedThere
                    } else {
                        pb::ConflictKind::DomainInSeveralJurisdictions
                    } as i32,
                    registrable_domain,
                    sites,
                }
            })
            .collect();
        Ok(pb::ListConflictsResponse { conflicts, missing })
    }

    /// Replication state of every expected jurisdiction.
    pub fn replication_status(&self) -> pb::GetReplicationStatusResponse {
        let now = self.db().now();
        let bound = Duration::from_millis(self.settings().max_staleness_ms);
        let expected = self.expected();
        let st = self.state();
        pb::GetReplicationStatusResponse {
            jurisdictions: expected.iter().map(|j| freshness_of(&st, j, now, bound)).collect(),
        }
    }
}

/// The part of a summary that depends only on the counts, the expected set and the grouping.
pub(crate) struct SummaryBody {
    /// The expected jurisdictions, in order.
    expected: Vec<String>,
    units: Vec<pb::UnitSummary>,
    totals: Vec<pb::SummaryCell>,
    total: i64,
}

fn summary_body(expected: Vec<String>, cells: &HashMap<store::CellKey, i64>, grouping: pb::Grouping) -> SummaryBody {
    // Units: every expected jurisdiction's unit, then its cells.
    struct Unit {
        cells: BTreeMap<(String, i32), pb::SummaryCell>,
        members: Vec<String>,
        flagged: bool,
    }
    let mut units: BTreeMap<Jurisdiction, Unit> = BTreeMap::new();
    for j in &expected {
        let Ok(j) = Jurisdiction::parse(j) else { continue };
        let (u, flagged) = unit_of(&j, grouping);
        let unit = units.entry(u).or_insert_with(|| Unit { cells: BTreeMap::new(), members: Vec::new(), flagged });
        unit.members.push(j.to_string());
    }
    let mut totals: BTreeMap<(String, i32), pb::SummaryCell> = BTreeMap::new();
    for ((j, kind, status, operating, trial), n) in cells {
        let Ok(j) = Jurisdiction::parse(j) else { continue };
        let (u, flagged) = unit_of(&j, grouping);
        let unit =
            units.entry(u).or_insert_with(|| Unit { cells: BTreeMap::new(), members: vec![j.to_string()], flagged });
        for cells in [&mut unit.cells, &mut totals] {
            add_to_cell(cells, kind, *status, *operating, *trial, *n);
        }
    }
    let nonzero = |cells: BTreeMap<(String, i32), pb::SummaryCell>| -> Vec<pb::SummaryCell> {
        cells.into_values().filter(|c| c.count != 0).collect()
    };
    let units = units
        .into_iter()
        .map(|(u, unit)| {
            let total = unit.cells.values().map(|c| c.count).sum();
            let mut members = unit.members;
            members.sort();
            members.dedup();
            pb::UnitSummary {
                unit: u.to_string(),
                display_name: u.info().map(|p| p.short_name.clone()).unwrap_or_default(),
                cells: nonzero(unit.cells),
                total,
                members,
                flagged: unit.flagged,
            }
        })
        .collect();
    SummaryBody { expected, units, total: totals.values().map(|c| c.count).sum(), totals: nonzero(totals) }
}

/// Adds `n` sites of (kind, status) with this operating code and trial flag to their cell.
fn add_to_cell(
    cells: &mut BTreeMap<(String, i32), pb::SummaryCell>,
    kind: &str,
    status: i32,
    operating: i32,
    trial: bool,
    n: i64,
) {
    let cell = cells.entry((kind.to_owned(), status)).or_insert_with(|| pb::SummaryCell {
        kind: kind.to_owned(),
        legal_status: status,
        ..Default::default()
    });
    cell.count += n;
    match einfo_proto::registry::v1::Operating::from_code(operating) {
        einfo_proto::registry::v1::Operating::Operating => cell.operating += n,
        einfo_proto::registry::v1::Operating::NotOperating => cell.not_operating += n,
        einfo_proto::registry::v1::Operating::Unknown => {}
    }
    if trial {
        cell.trial += n;
    }
}

fn unit_name(j: &str, grouping: pb::Grouping) -> String {
    Jurisdiction::parse(j).map(|j| unit_of(&j, grouping).0.to_string()).unwrap_or_else(|_| j.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_merger_table_and_34_province_records_are_flagged_in_63() {
        let hg = Jurisdiction::parse("provinces/2008-02").unwrap();
        let tq = Jurisdiction::parse("provinces/2025-08").unwrap();
        assert_eq!(unit_of(&hg, pb::Grouping::Provinces34), (tq, false));
        assert_eq!(unit_of(&hg, pb::Grouping::Provinces63), (hg, false));
        assert_eq!(unit_of(&tq, pb::Grouping::Provinces63), (tq, true));
        assert_eq!(unit_of(&tq, pb::Grouping::Unspecified), (tq, true));
        assert_eq!(unit_of(&tq, pb::Grouping::Provinces34), (tq, false));
    }
}
