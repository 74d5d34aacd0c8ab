//! Site domain names (tên miền), normalised once by UTS #46 so that every spelling of a name —
//! upper case, Unicode or Punycode, with or without the root dot — is stored and compared as one.
//!
//! The registry is searched by *registrable* domain (the part a registrant actually holds,
//! `b.com.vn` for `a.b.com.vn`), which we take from the Public Suffix List. A name that is itself
//! a public suffix (`com.vn`) belongs to no registrant and is refused.
//!
//! Names that mix scripts inside one label ("pаypal" with a Cyrillic `а`) are the classic
//! spoofing trick, so each label must be at least *Highly Restrictive* under UTS #39 §5.2: one
//! script, or Latin with Han and Japanese or Korean scripts. Vietnamese with diacritics is plain
//! Latin and passes.
//!
//! We take a bare host name only: a URL (`https://…/path`), a port or user information is
//! refused rather than silently cut, because the person entering it may have meant something
//! else and should see what was wrong.

use std::fmt;
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use unicode_security::{RestrictionLevel, RestrictionLevelDetection};

/// The longest DNS name in its ASCII form, without the root dot (RFC 1035).
const MAX_NAME_BYTES: usize = 253;
/// The longest DNS label in its ASCII form (RFC 1035).
const MAX_LABEL_BYTES: usize = 63;
/// Inputs longer than this are refused before UTS #46 processing. It is generous (a Unicode
/// name is longer in UTF-8 than the 253 bytes of its Punycode form only by a small factor) and
/// keeps a pasted document from being run through the mapping tables.
const MAX_INPUT_BYTES: usize = 4 * MAX_NAME_BYTES;

const MIXED_SCRIPT_RULE: &str = "UTS #39 §5.2 Highly Restrictive";

/// A host name of a site, valid under UTS #46 (non-transitional, STD3 rules, hyphen checks, DNS
/// lengths), with at least two labels, a registrable domain, and no mixed-script label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName {
    ascii: String,
    unicode: String,
    registrable: String,
}

impl DomainName {
    /// Parses and normalises a host name as a person would enter it.
    pub fn parse(input: &str) -> Result<DomainName, DomainNameError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(DomainNameError::Empty);
        }
        if trimmed.len() > MAX_INPUT_BYTES {
            return Err(DomainNameError::TooLong);
        }
        if let Some(c) = trimmed.chars().find(|c| matches!(c, '/' | ':' | '@')) {
            return Err(DomainNameError::Malformed(format!(
                "'{c}' cannot appear in a domain name: enter the host name alone, without scheme, port, path or user"
            )));
        }
        if trimmed.chars().any(char::is_whitespace) {
            return Err(DomainNameError::Malformed("a domain name cannot contain spaces".into()));
        }

        // Lengths are checked below, on the ASCII form, so they can be reported precisely.
        let mapped = Uts46::new()
            .to_ascii(trimmed.as_bytes(), AsciiDenyList::STD3, Hyphens::Check, DnsLength::Ignore)
            .map_err(|_| {
                DomainNameError::Idna(format!(
                    "'{trimmed}' is not a valid internationalised domain name (UTS #46 with STD3 rules and hyphen checks)"
                ))
            })?;
        // UTS #46 maps ideographic and full-width stops to '.', so the root dot is dropped only now.
        let ascii = mapped.strip_suffix('.').unwrap_or(&mapped);
        if ascii.split('.').any(str::is_empty) {
            return Err(DomainNameError::Malformed(
                "a domain name cannot have an empty label (two dots in a row, or a leading dot)".into(),
            ));
        }
        if ascii.len() > MAX_NAME_BYTES {
            return Err(DomainNameError::TooLong);
        }
        if ascii.split('.').any(|label| label.len() > MAX_LABEL_BYTES) {
            return Err(DomainNameError::LabelTooLong);
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(DomainNameError::Malformed(
                "a site's domain name has at least two labels, e.g. example.vn".into(),
            ));
        }
        if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
            return Err(DomainNameError::Malformed(
                "an IP address or an all-digit top-level domain is not a domain name".into(),
            ));
        }

        let (unicode, result) = idna::domain_to_unicode(ascii);
        if result.is_err() {
            return Err(DomainNameError::Idna(format!("'{ascii}' has no valid Unicode form")));
        }
        for label in unicode.split('.') {
            if label.detect_restriction_level() > RestrictionLevel::HighlyRestrictive {
                return Err(DomainNameError::MixedScript { label: label.to_owned(), rule: MIXED_SCRIPT_RULE });
            }
        }

        let registrable = registrable_part(ascii)?.to_owned();
        Ok(DomainName { ascii: ascii.to_owned(), unicode, registrable })
    }

    /// The ASCII (Punycode) form, lower case, without the root dot: `xn--bo-mia.vn`.
    pub fn ascii(&self) -> &str {
        &self.ascii
    }

    /// The Unicode form for people to read: `báo.vn`.
    pub fn unicode(&self) -> &str {
        &self.unicode
    }

    /// The registrable domain in ASCII form (`b.com.vn` for `a.b.com.vn`).
    pub fn registrable(&self) -> &str {
        &self.registrable
    }

    /// Whether this name is its own registrable domain (no subdomain labels).
    pub fn is_registrable(&self) -> bool {
        self.ascii == self.registrable
    }
}

/// The registrable domain of a name (used by searches): normalise and take the PSL registrable part.
pub fn registrable_of(input: &str) -> Result<String, DomainNameError> {
    DomainName::parse(input).map(|name| name.registrable)
}

/// The registrable part of a normalised ASCII name per the Public Suffix List.
fn registrable_part(ascii: &str) -> Result<&str, DomainNameError> {
    let suffix = psl::suffix(ascii.as_bytes()).ok_or(DomainNameError::NoRegistrableDomain)?;
    if !suffix.is_known() {
        // Without a listed suffix the PSL's default rule would call any last label a suffix,
        // which turns typos ("example.vnn") and private names ("intranet.local") into "domains".
        let tld = ascii.rsplit('.').next().unwrap_or(ascii);
        return Err(DomainNameError::Malformed(format!("'{tld}' is not a top-level domain in the Public Suffix List")));
    }
    psl::domain_str(ascii).ok_or(DomainNameError::NoRegistrableDomain)
}

impl fmt::Display for DomainName {
    /// The ASCII form, which is what the registry stores and compares.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ascii)
    }
}

impl FromStr for DomainName {
    type Err = DomainNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DomainName {
    type Error = DomainNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DomainName> for String {
    fn from(name: DomainName) -> String {
        name.ascii
    }
}

/// Why a domain name was refused. Each message names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainNameError {
    /// Nothing but whitespace.
    #[error("the domain name is empty")]
    Empty,
    /// Not a bare host name: a URL, port, user, space, empty label, single label or IP address.
    #[error("malformed domain name: {0}")]
    Malformed(String),
    /// Refused by UTS #46 processing (disallowed character, bad hyphen position, bad Punycode).
    #[error("{0}")]
    Idna(String),
    /// Longer than 253 bytes in ASCII form.
    #[error("a domain name is at most 253 bytes long in its ASCII (Punycode) form")]
    TooLong,
    /// A label longer than 63 bytes in ASCII form.
    #[error("each label of a domain name is at most 63 bytes long in its ASCII (Punycode) form")]
    LabelTooLong,
    /// The name is a public suffix itself (`com.vn`), so nobody can register it.
    #[error("the name is a public suffix (like com.vn), not a domain someone can register")]
    NoRegistrableDomain,
    /// A label mixes scripts in a way used for spoofing.
    #[error("label '{label}' mixes scripts and is refused by {rule}")]
    MixedScript {
        /// The offending label, in Unicode form.
        label: String,
        /// The rule applied.
        rule: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vietnamese_name_in_upper_case_with_a_root_dot_is_normalised() {
        let name = DomainName::parse(" Báo.VN. ").unwrap();
        assert_eq!(name.ascii(), "xn--bo-mia.vn");
        assert_eq!(name.unicode(), "báo.vn");
        assert_eq!(name.registrable(), "xn--bo-mia.vn");
        assert!(name.is_registrable());
    }

    #[test]
    fn the_punycode_and_unicode_spellings_are_the_same_name() {
        assert_eq!(DomainName::parse("xn--bo-mia.vn"), DomainName::parse("báo.vn"));
    }

    #[test]
    fn upper_case_ascii_is_accepted_as_lower_case() {
        let name = DomainName::parse("EXAMPLE.VN").unwrap();
        assert_eq!(name.ascii(), "example.vn");
        assert_eq!(name.to_string(), "example.vn");
    }

    #[test]
    fn the_registrable_domain_sits_just_below_the_public_suffix() {
        let name = DomainName::parse("a.b.com.vn").unwrap();
        assert_eq!(name.registrable(), "b.com.vn");
        assert!(!name.is_registrable());
        assert_eq!(registrable_of("WWW.Báo.vn"), Ok("xn--bo-mia.vn".to_owned()));
        assert_eq!(registrable_of("tin.hanoi.gov.vn"), Ok("hanoi.gov.vn".to_owned()));
    }

    #[test]
    fn ideographic_full_stops_separate_labels_like_dots() {
        assert_eq!(DomainName::parse("example。vn").unwrap().ascii(), "example.vn");
    }

    #[test]
    fn vietnamese_han_and_han_with_hiragana_labels_are_not_mixed_script() {
        for ok in ["báo-mới.vn", "thương-mại-điện-tử.vn", "中文.com", "ひらがな漢字.jp", "mới中文.com"]
        {
            assert!(DomainName::parse(ok).is_ok(), "{ok}: {:?}", DomainName::parse(ok));
        }
    }

    #[test]
    fn a_latin_label_with_a_cyrillic_letter_is_refused_as_mixed_script() {
        let err = DomainName::parse("p\u{0430}ypal.vn").unwrap_err();
        assert_eq!(
            err,
            DomainNameError::MixedScript { label: "p\u{0430}ypal".into(), rule: "UTS #39 §5.2 Highly Restrictive" }
        );
        assert!(err.to_string().contains("UTS #39"));
    }

    #[test]
    fn names_at_the_dns_length_limits_are_accepted() {
        let label63 = "a".repeat(63);
        assert!(DomainName::parse(&format!("{label63}.vn")).is_ok());
        // Three labels of 63 bytes, one of 58 and "vn", with four dots: 253 bytes.
        let name253 = format!("{l}.{l}.{l}.{m}.vn", l = label63, m = "b".repeat(58));
        assert_eq!(name253.len(), 253);
        assert!(DomainName::parse(&name253).is_ok());
    }

    #[test]
    fn bad_domain_names_are_refused_with_the_rule_they_break() {
        use DomainNameError::*;
        let label63 = "a".repeat(63);
        let name254 = format!("{l}.{l}.{l}.{m}.vn", l = label63, m = "b".repeat(59));
        assert_eq!(name254.len(), 254);
        let label64 = format!("{}.vn", "a".repeat(64));
        let long_unicode_label = format!("{}.vn", "á".repeat(60));
        type IsExpected = fn(&DomainNameError) -> bool;
        let cases: &[(&str, IsExpected, &str)] = &[
            ("", |e| *e == Empty, "empty"),
            ("   ", |e| *e == Empty, "only whitespace"),
            ("com.vn", |e| *e == NoRegistrableDomain, "a public suffix"),
            ("vn", |e| matches!(e, Malformed(_)), "a single label"),
            (&name254, |e| *e == TooLong, "254 bytes"),
            (&label64, |e| *e == LabelTooLong, "a 64-byte label"),
            (&long_unicode_label, |e| *e == LabelTooLong, "a label whose Punycode exceeds 63 bytes"),
            ("exa mple.vn", |e| matches!(e, Malformed(_)), "a space inside"),
            ("https://example.vn", |e| matches!(e, Malformed(_)), "a URL with a scheme"),
            ("example.vn/path", |e| matches!(e, Malformed(_)), "a path"),
            ("example.vn:443", |e| matches!(e, Malformed(_)), "a port"),
            ("user@example.vn", |e| matches!(e, Malformed(_)), "user information"),
            ("example.vn..", |e| matches!(e, Malformed(_)), "two trailing dots"),
            ("a..example.vn", |e| matches!(e, Malformed(_)), "an empty label"),
            (".example.vn", |e| matches!(e, Malformed(_)), "a leading dot"),
            ("192.168.1.1", |e| matches!(e, Malformed(_)), "an IP address"),
            ("example.vnn", |e| matches!(e, Malformed(_)), "an unknown top-level domain"),
            ("-example.vn", |e| matches!(e, Idna(_)), "a leading hyphen"),
            ("example-.vn", |e| matches!(e, Idna(_)), "a trailing hyphen"),
            ("ex--ample.vn", |e| matches!(e, Idna(_)), "hyphens in positions 3 and 4"),
            ("exam_ple.vn", |e| matches!(e, Idna(_)), "an underscore (STD3)"),
            ("xn--zz.vn", |e| matches!(e, Idna(_)), "invalid Punycode"),
            ("p\u{0430}ypal.vn", |e| matches!(e, MixedScript { .. }), "Latin with Cyrillic"),
        ];
        for (input, is_expected, reason) in cases {
            let result = DomainName::parse(input);
            assert!(result.as_ref().is_err_and(is_expected), "{reason}: {input:?} gave {result:?}");
        }
    }

    #[test]
    fn a_domain_name_converts_to_and_from_its_ascii_form_for_serde() {
        let name = DomainName::parse("Báo.vn").unwrap();
        let text = String::from(name.clone());
        assert_eq!(text, "xn--bo-mia.vn");
        assert_eq!(DomainName::try_from(text), Ok(name));
    }

    proptest::proptest! {
        /// Arbitrary input (any string, or one built from the characters domains are made of,
        /// with controls and look-alikes) never panics: a parse is a normalised name or a typed
        /// error, and a name parses again to itself.
        #[test]
        fn any_input_is_a_normalised_name_or_a_typed_error(
            input in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[a-zA-Z0-9.\\-àáạảãâầấđ\\u{0430}\\u{3002}\\x00\\t /:@_]{0,40}",
                "[a-z]{1,10}\\.(vn|com\\.vn|gov\\.vn|edu\\.vn|xn--[a-z0-9]{1,8})\\.?",
            ]
        ) {
            match DomainName::parse(&input) {
                Ok(name) => {
                    proptest::prop_assert!(name.ascii().is_ascii() && name.ascii().len() <= MAX_NAME_BYTES);
                    proptest::prop_assert!(name.ascii().split('.').all(|l| !l.is_empty() && l.len() <= MAX_LABEL_BYTES));
                    proptest::prop_assert!(name.ascii().ends_with(name.registrable()));
                    proptest::prop_assert!(!name.ascii().chars().any(|c| c.is_control() || c.is_whitespace()));
                    proptest::prop_assert_eq!(DomainName::parse(name.ascii()), Ok(name.clone()));
                }
                Err(e) => proptest::prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
