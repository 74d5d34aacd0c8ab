//! The lists annexed to a report, made from registry's register and inspection's decisions as
//! they stood at the cut-off: annex 1, the sites (name, domains, owner, licence or status);
//! annex 2, the sanction decisions of the period (offender, site, acts, forms, number and date,
//! amount). A person's identification number is masked (registry masks it in the register it
//! hands out); a decision names the offender's number only when the offender is the site's owner.

use std::collections::HashMap;

use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;
use einfo_proto::reporting::v1 as pb;

/// A domain as a list shows it: its Unicode form, else its ASCII one.
fn shown(d: &reg::DomainName) -> String {
    if d.unicode.is_empty() { d.ascii.clone() } else { d.unicode.clone() }
}

/// A site's row of annex 1.
fn site_row(e: &reg::RegisterEntry) -> Option<pb::AnnexSite> {
    let s = e.site.as_ref()?;
    let owner = s.owner.clone().unwrap_or_default();
    let domains =
        if s.domain_details.is_empty() { s.domains.clone() } else { s.domain_details.iter().map(shown).collect() };
    let licence = e.licence.clone().unwrap_or_default();
    Some(pb::AnnexSite {
        site: s.name.clone(),
        kind: s.kind.clone(),
        display_name: s.display_name.clone(),
        domains,
        owner: owner.display_name,
        owner_number: owner.tax_code,
        legal_status: s.legal_status,
        operational_state: s.operational_state,
        trial: s.trial,
        licence_number: licence.number,
        licence_issue_time: licence.issue_time,
        licence_authority: licence.issuing_authority,
    })
}

/// The annexes of a report as of `as_of`, from the register and the decisions as they stood:
/// sites by kind and name, decisions by date and number.
pub fn annexes(
    as_of: prost_types::Timestamp,
    register: &[reg::RegisterEntry],
    decisions: &[insp::DecisionEntry],
) -> pb::Annexes {
    let mut sites: Vec<pb::AnnexSite> = register.iter().filter_map(site_row).collect();
    sites.sort_by(|a, b| (&a.kind, &a.display_name, &a.site).cmp(&(&b.kind, &b.display_name, &b.site)));
    let by_name: HashMap<&str, &reg::Site> =
        register.iter().filter_map(|e| e.site.as_ref()).map(|s| (s.name.as_str(), s)).collect();
    let mut rows: Vec<pb::AnnexDecision> = decisions
        .iter()
        .filter_map(|e| {
            let d = e.decision.as_ref()?;
            let site = by_name.get(d.site.as_str());
            let owner = site.and_then(|s| s.owner.as_ref());
            let same_kind = |o: &reg::Owner| {
                let person = o.kind == reg::OwnerKind::Person as i32;
                person == (d.offender_kind == insp::OffenderKind::Person as i32)
            };
            let offender_number = owner
                .filter(|o| same_kind(o) && o.display_name.trim() == d.offender_name.trim())
                .map(|o| o.tax_code.clone())
                .unwrap_or_default();
            let site_label = site.map_or_else(String::new, |s| {
                let domain = s.domain_details.first().map(shown).or_else(|| s.domains.first().cloned());
                match domain {
                    Some(domain) => format!("{} ({domain})", s.display_name),
                    None => s.display_name.clone(),
                }
            });
            Some(pb::AnnexDecision {
                decision: d.name.clone(),
                number: d.number.clone(),
                decision_time: d.decision_time,
                offender_kind: d.offender_kind,
                offender: d.offender_name.clone(),
                offender_number,
                site: site_label,
                violations: e.violations.iter().map(|v| v.code.clone()).collect(),
                warning: d.warning,
                fine_vnd: d.fine_vnd,
                measures: d.measures.iter().map(|m| m.kind).collect(),
            })
        })
        .collect();
    let time = |d: &pb::AnnexDecision| d.decision_time.map_or((0, 0), |t| (t.seconds, t.nanos));
    rows.sort_by(|a, b| (time(a), &a.number, &a.decision).cmp(&(time(b), &b.number, &b.decision)));
    pb::Annexes { as_of: Some(as_of), sites, decisions: rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, owner: reg::Owner) -> reg::RegisterEntry {
        reg::RegisterEntry {
            site: Some(reg::Site {
                name: name.into(),
                kind: "general-website".into(),
                display_name: "Tin Hà Nội".into(),
                domains: vec!["xn--tin-hni-dra.vn".into()],
                domain_details: vec![reg::DomainName {
                    ascii: "xn--tin-hni-dra.vn".into(),
                    unicode: "tinhànội.vn".into(),
                    registrable: "xn--tin-hni-dra.vn".into(),
                }],
                owner: Some(owner),
                operational_state: reg::OperationalState::Active as i32,
                legal_status: reg::LegalStatus::Unlicensed as i32,
                ..Default::default()
            }),
            licence: None,
        }
    }

    fn decision(site: &str, kind: insp::OffenderKind, name: &str) -> insp::DecisionEntry {
        insp::DecisionEntry {
            decision: Some(insp::SanctionDecision {
                name: "d1".into(),
                number: "12/QĐ-XPVPHC".into(),
                site: site.into(),
                offender_kind: kind as i32,
                offender_name: name.into(),
                fine_vnd: 15_000_000,
                ..Default::default()
            }),
            violations: vec![insp::Violation { code: "ND174-66-2-a".into(), ..Default::default() }],
        }
    }

    #[test]
    fn the_offenders_number_is_the_owners_only_when_the_offender_is_the_owner() {
        let person = reg::Owner {
            kind: reg::OwnerKind::Person as i32,
            display_name: "Nguyễn Văn A".into(),
            tax_code: "*********345".into(),
            ..Default::default()
        };
        let register = [site("s1", person)];
        let at = prost_types::Timestamp::default();
        let same = annexes(at, &register, &[decision("s1", insp::OffenderKind::Person, "Nguyễn Văn A")]);
        assert_eq!(same.decisions[0].offender_number, "*********345");
        assert_eq!(same.decisions[0].site, "Tin Hà Nội (tinhànội.vn)");
        assert_eq!(same.decisions[0].violations, ["ND174-66-2-a"]);
        assert_eq!(same.sites[0].domains, ["tinhànội.vn"]);
        assert_eq!(same.sites[0].operational_state, reg::OperationalState::Active as i32);
        let other = annexes(at, &register, &[decision("s1", insp::OffenderKind::Person, "Trần Thị B")]);
        assert_eq!(other.decisions[0].offender_number, "", "another person's number is not the owner's");
        let org = annexes(at, &register, &[decision("s1", insp::OffenderKind::Organisation, "Nguyễn Văn A")]);
        assert_eq!(org.decisions[0].offender_number, "");
    }
}
