//! Personal data of a site's owner (Decree 13/2023/NĐ-CP on personal data protection).
//!
//! When a site's owner is a person, their identification number (the 12-digit number, or a
//! personal tax code, in `owner.tax_code`), address and contact are personal data. They are
//! returned unmasked only to the province's own roles that need them — its operators, who keep the
//! register, its inspectors, who inspect and sanction, and its own services (inspection resolving a
//! site for a decision) — and masked to everyone else: its reporting officers, and the centre. Every
//! unmasked read is recorded (who, what, when: the registry's `personal_data_reads`). An
//! organisation's data is not personal and is never masked.

use einfo_domain::Jurisdiction;
use einfo_proto::registry::v1 as pb;

use crate::auth::{Caller, Role};

/// What a masked text field reads.
pub const MASKED: &str = "***";

/// Whether `caller` sees the personal data of owners in `j` unmasked.
pub fn sees_personal_data(caller: &Caller, j: &Jurisdiction) -> bool {
    matches!(caller.role, Role::Operator | Role::Inspector | Role::Service) && caller.jurisdiction == *j
}

/// Whether the site's owner is a person (whose data is personal).
pub fn holds_personal_data(site: &pb::Site) -> bool {
    site.owner.as_ref().is_some_and(|o| o.kind == pb::OwnerKind::Person as i32)
}

/// All but the last three characters of an identification number hidden:
/// `001204012345` → `*********345`.
pub fn mask_number(n: &str) -> String {
    let chars: Vec<char> = n.chars().collect();
    let keep = chars.len().min(3);
    let hidden = chars.len() - keep;
    std::iter::repeat_n('*', hidden).chain(chars[hidden..].iter().copied()).collect()
}

/// Masks the personal data of a person's site in place; an organisation's site is left as it is.
/// Returns whether anything was masked.
pub fn mask_site(site: &mut pb::Site) -> bool {
    if !holds_personal_data(site) {
        return false;
    }
    let Some(o) = site.owner.as_mut() else { return false };
    o.tax_code = mask_number(&o.tax_code);
    for field in [&mut o.address, &mut o.contact] {
        if !field.is_empty() {
            *field = MASKED.into();
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(kind: pb::OwnerKind) -> pb::Site {
        pb::Site {
            owner: Some(pb::Owner {
                kind: kind as i32,
                display_name: "Nguyễn Văn A".into(),
                tax_code: "001204012345".into(),
                address: "12 Hàng Bài, Hoàn Kiếm, Hà Nội".into(),
                contact: "0912 345 678".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_persons_number_address_and_contact_are_masked_and_an_organisations_are_not() {
        let mut s = site(pb::OwnerKind::Person);
        assert!(mask_site(&mut s));
        let o = s.owner.unwrap();
        assert_eq!((o.tax_code.as_str(), o.address.as_str(), o.contact.as_str()), ("*********345", MASKED, MASKED));
        assert_eq!(o.display_name, "Nguyễn Văn A", "the name is the register's");
        let mut org = site(pb::OwnerKind::Organisation);
        let before = org.clone();
        assert!(!mask_site(&mut org));
        assert_eq!(org, before);
        assert_eq!(mask_number("12"), "12");
    }

    #[test]
    fn only_the_provinces_operators_inspectors_and_services_see_it() {
        let p01 = Jurisdiction::parse("provinces/2008-01").unwrap();
        let p79 = Jurisdiction::parse("provinces/2008-79").unwrap();
        let c = |role, jurisdiction| Caller { subject: "t".into(), role, jurisdiction };
        assert!(sees_personal_data(&c(Role::Operator, p01), &p01));
        assert!(sees_personal_data(&c(Role::Inspector, p01), &p01));
        assert!(sees_personal_data(&c(Role::Service, p01), &p01));
        assert!(!sees_personal_data(&c(Role::Reporter, p01), &p01));
        assert!(!sees_personal_data(&c(Role::Operator, p79), &p01));
        assert!(!sees_personal_data(&c(Role::CentralAdmin, Jurisdiction::Central), &p01));
        assert!(!sees_personal_data(&c(Role::CentralAnalyst, Jurisdiction::Central), &p01));
    }
}
