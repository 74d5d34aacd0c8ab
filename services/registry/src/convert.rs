//! Proto ↔ domain at the edge: every request field with a rule is parsed here, and every
//! violation is reported with its field path. What comes out is normalised (canonical tax
//! codes, IDNA domains, NFC names) and is what gets stored and logged.

use einfo_common::error::Violations;
use einfo_domain::text::{DisplayName, fold};
use einfo_domain::{DomainName, TaxCode};
use einfo_proto::registry::v1 as pb;

use crate::kinds::Kinds;

pub use einfo_common::fields::{
    Lines, MAX_LINE, MAX_NAME, MAX_NOTES, MAX_NUMBER, MAX_TEXT, instant, jurisdiction, known_enum, reason,
    required_instant, resource, text, timestamp,
};

/// Most domains one site may list: an engineering limit (a site is one service reached under a
/// few names; a list longer than this is a bulk load that belongs in ImportSites, one site per
/// row), not a legal figure. `docs/contracts.md` says so.
pub const MAX_DOMAINS_PER_SITE: usize = 100;

/// A site as received, checked and normalised. Output-only fields are dropped.
pub fn site(input: &pb::Site, prefix: &str, kinds: &Kinds, v: &mut Violations) -> pb::Site {
    let mut out = pb::Site::default();
    if kinds.get(&input.kind).is_none() {
        v.add(
            format!("{prefix}.kind"),
            format!("unknown kind '{}'; known kinds: {}", input.kind, kinds.codes().join(", ")),
        );
    }
    out.kind = input.kind.clone();
    if let Some(n) = v.check(&format!("{prefix}.display_name"), DisplayName::parse(&input.display_name, MAX_NAME)) {
        out.display_name = n.into_string();
    }
    let (domains, details) = domains(&input.domains, &format!("{prefix}.domains"), v);
    out.domains = domains;
    out.domain_details = details;
    if let Some(o) = &input.owner {
        out.owner = Some(owner(o, &format!("{prefix}.owner"), v));
    }
    known_enum::<pb::Hosting>(input.hosting, &format!("{prefix}.hosting"), v);
    known_enum::<pb::OperationalState>(input.operational_state, &format!("{prefix}.operational_state"), v);
    known_enum::<pb::DiscoverySource>(input.discovery_source, &format!("{prefix}.discovery_source"), v);
    out.hosting = input.hosting;
    out.operational_state = input.operational_state;
    out.discovery_source = input.discovery_source;
    out.notes = text(&input.notes, &format!("{prefix}.notes"), MAX_NOTES, Lines::Many, v);
    out
}

/// Domains of a site: 1 to [`MAX_DOMAINS_PER_SITE`], each normalised, no two the same (checked
/// with a set: linear in the number of domains).
pub fn domains(input: &[String], field: &str, v: &mut Violations) -> (Vec<String>, Vec<pb::DomainName>) {
    if input.is_empty() {
        v.add(field, "at least one domain is required");
    }
    if input.len() > MAX_DOMAINS_PER_SITE {
        // Refused before any is parsed: the list is refused whole, at the cost of one count.
        v.add(field, format!("lists {} domains; a site has at most {MAX_DOMAINS_PER_SITE}", input.len()));
        return (Vec::new(), Vec::new());
    }
    let mut ascii = Vec::new();
    let mut details = Vec::new();
    let mut seen = std::collections::HashSet::with_capacity(input.len());
    for (i, d) in input.iter().enumerate() {
        if let Some(d) = v.check(&format!("{field}[{i}]"), DomainName::parse(d)) {
            if !seen.insert(d.ascii().to_owned()) {
                v.add(format!("{field}[{i}]"), format!("{} is listed twice", d.ascii()));
                continue;
            }
            ascii.push(d.ascii().to_owned());
            details.push(pb::DomainName {
                ascii: d.ascii().to_owned(),
                unicode: d.unicode().to_owned(),
                registrable: d.registrable().to_owned(),
            });
        }
    }
    (ascii, details)
}

/// An owner: kind, NFC name, canonical tax code.
pub fn owner(input: &pb::Owner, prefix: &str, v: &mut Violations) -> pb::Owner {
    let mut out = input.clone();
    match pb::OwnerKind::try_from(input.kind) {
        Ok(pb::OwnerKind::Unspecified) => v.add(format!("{prefix}.kind"), "is required: organisation or person"),
        Ok(_) => {}
        Err(_) => v.add(format!("{prefix}.kind"), format!("unknown enum value {}", input.kind)),
    }
    if let Some(n) = v.check(&format!("{prefix}.display_name"), DisplayName::parse(&input.display_name, MAX_NAME)) {
        out.display_name = n.into_string();
    }
    if !input.tax_code.trim().is_empty() {
        if let Some(t) = v.check(&format!("{prefix}.tax_code"), TaxCode::parse(&input.tax_code)) {
            if matches!(t, TaxCode::PersonalId(_)) && input.kind == pb::OwnerKind::Organisation as i32 {
                v.add(
                    format!("{prefix}.tax_code"),
                    "a 12-digit personal identification number is not an organisation's tax code",
                );
            }
            out.tax_code = t.canonical();
        }
    } else {
        out.tax_code = String::new();
    }
    out.address = text(&input.address, &format!("{prefix}.address"), MAX_LINE, Lines::One, v);
    out.legal_representative =
        text(&input.legal_representative, &format!("{prefix}.legal_representative"), MAX_NAME, Lines::One, v);
    out.contact = text(&input.contact, &format!("{prefix}.contact"), MAX_NAME, Lines::One, v);
    out
}

/// The accent-free search key of a site's name.
pub fn folded_name(site: &pb::Site) -> String {
    fold(&site.display_name)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fields(v: Violations) -> Vec<String> {
        v.finish().err().map(|e| e.violations.into_iter().map(|x| x.field).collect()).unwrap_or_default()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}.vn")).collect()
    }

    #[test]
    fn a_site_lists_at_most_100_domains() {
        let mut v = Violations::new();
        let (ascii, details) = domains(&names(MAX_DOMAINS_PER_SITE), "site.domains", &mut v);
        assert!(v.is_empty());
        assert_eq!((ascii.len(), details.len()), (100, 100));
        let mut v = Violations::new();
        let (ascii, _) = domains(&names(MAX_DOMAINS_PER_SITE + 1), "site.domains", &mut v);
        assert!(ascii.is_empty());
        assert_eq!(fields(v), vec!["site.domains"], "one violation on the list, none per domain");
    }

    #[test]
    fn a_domain_listed_twice_after_normalisation_is_refused_where_it_repeats() {
        let input: Vec<String> =
            ["báo.vn", "a.vn", "XN--BO-MIA.VN.", "b.vn", "A.vn"].into_iter().map(String::from).collect();
        let mut v = Violations::new();
        let (ascii, _) = domains(&input, "site.domains", &mut v);
        assert_eq!(ascii, vec!["xn--bo-mia.vn", "a.vn", "b.vn"]);
        assert_eq!(fields(v), vec!["site.domains[2]", "site.domains[4]"]);
    }

    proptest! {
        /// Arbitrary text in every text field of a site: never a panic; either violations, or a
        /// site whose text is clean (no control character but tab and line feed in the notes).
        #[test]
        fn any_site_text_is_normalised_or_refused(
            texts in proptest::collection::vec(
                prop_oneof![any::<String>(), "[a-zà-ỹ .\\t\\n\\r\\x00\\x1b\\u{9b}\\u{202E}]{0,20}"], 6),
            domains in proptest::collection::vec(prop_oneof![any::<String>(), "[a-zđ]{1,8}\\.(vn|com\\.vn)"], 0..4),
        ) {
            let kinds = Kinds::bundled();
            let input = pb::Site {
                kind: "general-website".into(),
                display_name: texts[0].clone(),
                domains,
                notes: texts[1].clone(),
                owner: Some(pb::Owner {
                    kind: pb::OwnerKind::Person as i32,
                    display_name: texts[2].clone(),
                    address: texts[3].clone(),
                    legal_representative: texts[4].clone(),
                    contact: texts[5].clone(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let mut v = Violations::new();
            let out = site(&input, "site", &kinds, &mut v);
            if v.is_empty() {
                let o = out.owner.unwrap_or_default();
                let single = [&out.display_name, &o.display_name, &o.address, &o.legal_representative, &o.contact];
                for t in single {
                    prop_assert!(!t.chars().any(char::is_control), "{:?}", t);
                }
                prop_assert!(!out.notes.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n')));
                prop_assert!(out.notes.chars().count() <= MAX_NOTES);
                prop_assert!(!out.domains.is_empty() && out.domains.len() <= MAX_DOMAINS_PER_SITE);
            }
        }
    }
}
