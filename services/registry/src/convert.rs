//! Proto ↔ domain at the edge: every request field with a rule is parsed here, and every
//! violation is reported with its field path. What comes out is normalised (canonical tax
//! codes, IDNA domains, NFC names) and is what gets stored and logged.

use einfo_common::error::Violations;
use einfo_domain::text::{DisplayName, fold};
use einfo_domain::{DomainName, TaxCode};
use einfo_proto::registry::v1 as pb;

use crate::kinds::Kinds;

pub use einfo_common::fields::{
    MAX_NAME, MAX_TEXT, instant, jurisdiction, known_enum, reason, required_instant, resource, timestamp,
};

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
    if input.notes.chars().count() > MAX_TEXT {
        v.add(format!("{prefix}.notes"), format!("is longer than {MAX_TEXT} characters"));
    }
    out.notes = unicode_normalization::UnicodeNormalization::nfc(input.notes.as_str()).collect();
    out
}

/// Domains of a site: at least one, each normalised, no two the same.
pub fn domains(input: &[String], field: &str, v: &mut Violations) -> (Vec<String>, Vec<pb::DomainName>) {
    if input.is_empty() {
        v.add(field, "at least one domain is required");
    }
    let mut ascii = Vec::new();
    let mut details = Vec::new();
    for (i, d) in input.iter().enumerate() {
        if let Some(d) = v.check(&format!("{field}[{i}]"), DomainName::parse(d)) {
            if ascii.contains(&d.ascii().to_owned()) {
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
    for (f, val) in [
        ("address", &input.address),
        ("legal_representative", &input.legal_representative),
        ("contact", &input.contact),
    ] {
        if val.chars().count() > MAX_NAME {
            v.add(format!("{prefix}.{f}"), format!("is longer than {MAX_NAME} characters"));
        }
    }
    out.address = unicode_normalization::UnicodeNormalization::nfc(input.address.trim()).collect();
    out.legal_representative =
        unicode_normalization::UnicodeNormalization::nfc(input.legal_representative.trim()).collect();
    out.contact = input.contact.trim().to_owned();
    out
}

/// The accent-free search key of a site's name.
pub fn folded_name(site: &pb::Site) -> String {
    fold(&site.display_name)
}
