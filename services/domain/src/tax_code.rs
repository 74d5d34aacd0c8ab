//! Vietnamese tax codes (mã số thuế), parsed from the way people actually write them.
//!
//! Site owners type tax codes into forms with spaces and dots ("0100 109 106", "0100.109.106")
//! and branches with a dash or a space before the suffix ("0100109106-001"). We accept those
//! spellings once, here, and keep one canonical form everywhere else, so that lookups and
//! duplicate checks never depend on how a clerk grouped the digits.
//!
//! Three shapes exist:
//!
//! * a 10-digit code of an enterprise or organisation, whose tenth digit is a check digit
//!   (weights 31, 29, 23, 19, 17, 13, 7, 5, 3 over the first nine digits, modulo 11);
//! * a 13-digit code of a branch or dependent unit (đơn vị phụ thuộc): the parent's 10 digits and
//!   a 3-digit suffix 001..999, written canonically as `0100109106-001`;
//! * a 12-digit personal identification number (số định danh cá nhân), which is the tax code of
//!   individuals and household businesses from 2025-07-01. Its first three digits are the
//!   province of birth registration (001..096); it carries no check digit we can verify.

use std::fmt;
use std::str::FromStr;

/// A Vietnamese tax code (mã số thuế) in one of its three shapes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TaxCode {
    /// The 10-digit code of an enterprise or organisation (check digit verified).
    Enterprise(String),
    /// A dependent unit: the parent's 10 digits (check digit verified) and a suffix 001..999.
    Branch(String, String),
    /// A 12-digit personal identification number used as an individual's tax code.
    PersonalId(String),
}

impl TaxCode {
    /// Parses a tax code as people write it: spaces and dots anywhere are ignored, and one dash
    /// may separate the 10-digit code from a 3-digit branch suffix.
    pub fn parse(input: &str) -> Result<TaxCode, TaxCodeError> {
        let mut digits = String::with_capacity(input.len());
        let mut dash_at: Option<usize> = None;
        for c in input.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '.' => {}
                c if c.is_whitespace() => {}
                '-' => {
                    if dash_at.is_some() {
                        return Err(TaxCodeError::MisplacedDash);
                    }
                    dash_at = Some(digits.len());
                }
                other => return Err(TaxCodeError::InvalidCharacter(other)),
            }
        }
        if digits.is_empty() {
            return Err(TaxCodeError::Empty);
        }
        if dash_at.is_some_and(|at| at != 10 || digits.len() != 13) {
            return Err(TaxCodeError::MisplacedDash);
        }
        match digits.len() {
            10 => {
                check_enterprise(&digits)?;
                Ok(TaxCode::Enterprise(digits))
            }
            13 => {
                let suffix = digits.split_off(10);
                check_enterprise(&digits)?;
                if suffix == "000" {
                    return Err(TaxCodeError::BranchZero);
                }
                Ok(TaxCode::Branch(digits, suffix))
            }
            12 => {
                let province = &digits[..3];
                if !("001"..="096").contains(&province) {
                    return Err(TaxCodeError::UnknownProvincePrefix(province.to_owned()));
                }
                Ok(TaxCode::PersonalId(digits))
            }
            n => Err(TaxCodeError::WrongLength(n)),
        }
    }

    /// The one spelling we store and compare: `0100109106`, `0100109106-001` or
    /// `001099012345`.
    pub fn canonical(&self) -> String {
        match self {
            TaxCode::Enterprise(code) | TaxCode::PersonalId(code) => code.clone(),
            TaxCode::Branch(parent, suffix) => format!("{parent}-{suffix}"),
        }
    }

    /// The enterprise a branch belongs to, or the enterprise itself; `None` for a person.
    pub fn enterprise(&self) -> Option<TaxCode> {
        match self {
            TaxCode::Enterprise(_) => Some(self.clone()),
            TaxCode::Branch(parent, _) => Some(TaxCode::Enterprise(parent.clone())),
            TaxCode::PersonalId(_) => None,
        }
    }
}

impl fmt::Display for TaxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl FromStr for TaxCode {
    type Err = TaxCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TaxCode {
    type Error = TaxCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TaxCode> for String {
    fn from(code: TaxCode) -> String {
        code.canonical()
    }
}

/// Why a tax code did not parse. Each message names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxCodeError {
    /// Nothing but spaces, dots or nothing at all.
    #[error("the tax code is empty")]
    Empty,
    /// A character other than a digit, space, dot or dash.
    #[error("'{0}' is not allowed in a tax code: only digits, spaces, dots and one dash before a branch suffix")]
    InvalidCharacter(char),
    /// A digit count other than 10, 12 or 13.
    #[error(
        "a tax code has 10 digits (enterprise), 13 digits (branch) or 12 digits (personal identification number), not {0}"
    )]
    WrongLength(usize),
    /// The tenth digit is not the one the first nine compute to.
    #[error("check digit mismatch: the first nine digits give check digit {expected}, but the tenth digit is {found}")]
    CheckDigitMismatch {
        /// The check digit the first nine digits compute to.
        expected: u8,
        /// The tenth digit as written.
        found: u8,
    },
    /// The first nine digits compute to a check value of 10, which no valid code has.
    #[error("no tax code has these first nine digits: their check digit computes to 10")]
    CheckComputesToTen,
    /// Digits 3 to 9 (the serial number) are all zero.
    #[error("the serial number of a tax code (digits 3 to 9) cannot be all zeros")]
    SerialAllZero,
    /// A branch suffix of 000.
    #[error("a branch suffix runs from 001 to 999; 000 is not a branch")]
    BranchZero,
    /// A dash anywhere but between the 10-digit code and a 3-digit branch suffix.
    #[error("a dash may only separate the 10-digit tax code from its 3-digit branch suffix, as in 0100109106-001")]
    MisplacedDash,
    /// A 12-digit personal number whose first three digits are not a province code 001..096.
    #[error("a 12-digit personal identification number starts with a province code 001 to 096, not {0}")]
    UnknownProvincePrefix(String),
}

const WEIGHTS: [u32; 9] = [31, 29, 23, 19, 17, 13, 7, 5, 3];

/// The check value of the first nine digits: 0..=9 is a check digit, 10 means no valid code.
/// `nine` must hold at least nine ASCII digits; only the first nine are read.
fn check_value(nine: &[u8]) -> u32 {
    let sum: u32 = nine.iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    10 - (sum % 11)
}

/// Checks the rules of a 10-digit enterprise code; `code` is exactly ten ASCII digits.
fn check_enterprise(code: &str) -> Result<(), TaxCodeError> {
    let b = code.as_bytes();
    if b[2..9].iter().all(|&d| d == b'0') {
        return Err(TaxCodeError::SerialAllZero);
    }
    let expected = check_value(&b[..9]);
    if expected == 10 {
        return Err(TaxCodeError::CheckComputesToTen);
    }
    let found = b[9] - b'0';
    // `expected` is at most 9 here, so the narrowing is lossless.
    let expected = expected as u8;
    if expected != found {
        return Err(TaxCodeError::CheckDigitMismatch { expected, found });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn viettels_code_is_a_valid_enterprise_code() {
        assert_eq!(TaxCode::parse("0100109106"), Ok(TaxCode::Enterprise("0100109106".into())));
    }

    #[test]
    fn spaces_dots_and_surrounding_whitespace_are_ignored() {
        for written in ["0100 109 106", "0100.109.106", "  0100109106\t", "01.00 10.91 06"] {
            assert_eq!(TaxCode::parse(written).map(|c| c.canonical()), Ok("0100109106".into()), "{written}");
        }
    }

    #[test]
    fn a_branch_may_be_written_with_a_dash_a_space_or_nothing_before_its_suffix() {
        for written in ["0100109106-001", "0100109106 001", "0100109106001", "0100.109.106 - 001"] {
            let code = TaxCode::parse(written).expect(written);
            assert_eq!(code, TaxCode::Branch("0100109106".into(), "001".into()), "{written}");
            assert_eq!(code.to_string(), "0100109106-001");
        }
    }

    #[test]
    fn a_branch_knows_its_enterprise() {
        let branch: TaxCode = "0100109106-001".parse().unwrap();
        assert_eq!(branch.enterprise(), Some(TaxCode::Enterprise("0100109106".into())));
    }

    #[test]
    fn a_twelve_digit_personal_identification_number_is_a_tax_code() {
        assert_eq!(TaxCode::parse("001 099 012 345").map(|c| c.canonical()), Ok("001099012345".into()));
        assert!(TaxCode::parse("001099012345").unwrap().enterprise().is_none());
    }

    #[test]
    fn bad_tax_codes_are_refused_with_the_rule_they_break() {
        use TaxCodeError::*;
        let cases: &[(&str, TaxCodeError, &str)] = &[
            ("", Empty, "nothing written"),
            (" . ", Empty, "only separators"),
            ("0100109106a", InvalidCharacter('a'), "a letter"),
            ("０100109106", InvalidCharacter('０'), "a full-width digit"),
            ("010010910", WrongLength(9), "one digit short"),
            ("01001091060", WrongLength(11), "one digit too many"),
            ("0100109107", CheckDigitMismatch { expected: 6, found: 7 }, "wrong check digit"),
            ("0100000000", SerialAllZero, "serial digits 3 to 9 all zero"),
            ("0100109106-000", BranchZero, "branch suffix 000"),
            ("0100109106000", BranchZero, "branch suffix 000 without a dash"),
            ("010010-9106", MisplacedDash, "dash inside the code"),
            ("0100109106-01", MisplacedDash, "two-digit suffix after a dash"),
            ("0100109106-", MisplacedDash, "dash with no suffix"),
            ("0100109106--001", MisplacedDash, "two dashes"),
            ("001099012345-", MisplacedDash, "dash after a personal number"),
            ("000099012345", UnknownProvincePrefix("000".into()), "province 000"),
            ("097099012345", UnknownProvincePrefix("097".into()), "province beyond 096"),
            ("0100109107-001", CheckDigitMismatch { expected: 6, found: 7 }, "branch of an invalid parent"),
        ];
        for (input, expected, reason) in cases {
            assert_eq!(TaxCode::parse(input).as_ref(), Err(expected), "{reason}: {input:?}");
        }
    }

    #[test]
    fn nine_digits_whose_check_computes_to_ten_have_no_valid_code() {
        // Find such a prefix by search rather than hard-coding arithmetic the test would repeat.
        let nine = (100_000_000u32..).map(|n| format!("{n:09}")).find(|s| check_value(s.as_bytes()) == 10).unwrap();
        for last in '0'..='9' {
            assert_eq!(TaxCode::parse(&format!("{nine}{last}")), Err(TaxCodeError::CheckComputesToTen));
        }
    }

    #[test]
    fn the_error_messages_name_the_rule() {
        let msg = TaxCodeError::CheckDigitMismatch { expected: 6, found: 7 }.to_string();
        assert!(msg.contains("check digit") && msg.contains('6') && msg.contains('7'), "{msg}");
        assert!(TaxCodeError::SerialAllZero.to_string().contains("digits 3 to 9"));
    }

    #[test]
    fn a_tax_code_converts_to_and_from_its_canonical_string_for_serde() {
        let code = TaxCode::parse("0100109106 001").unwrap();
        let text = String::from(code.clone());
        assert_eq!(text, "0100109106-001");
        assert_eq!(TaxCode::try_from(text), Ok(code));
    }

    fn nine_digits_with_serial() -> impl Strategy<Value = String> {
        "[0-9]{9}".prop_filter("serial digits 3 to 9 not all zero", |s| s.as_bytes()[2..9].iter().any(|&d| d != b'0'))
    }

    fn any_valid_code() -> impl Strategy<Value = String> {
        prop_oneof![
            nine_digits_with_serial().prop_filter_map("check is 10", |nine| {
                let c = check_value(nine.as_bytes());
                (c != 10).then(|| format!("{nine}{c}"))
            }),
            (nine_digits_with_serial(), 1u32..=999).prop_filter_map("check is 10", |(nine, b)| {
                let c = check_value(nine.as_bytes());
                (c != 10).then(|| format!("{nine}{c}-{b:03}"))
            }),
            (1u32..=96, "[0-9]{9}").prop_map(|(p, rest)| format!("{p:03}{rest}")),
        ]
    }

    /// Inserts separators (spaces, dots) at the given positions of `code`, keeping any dash.
    fn sprinkle(code: &str, seps: &[(usize, bool)]) -> String {
        let mut out: Vec<char> = code.chars().collect();
        for &(pos, dot) in seps {
            let at = pos % (out.len() + 1);
            out.insert(at, if dot { '.' } else { ' ' });
        }
        out.into_iter().collect()
    }

    proptest! {
        #[test]
        fn appending_the_computed_check_digit_gives_a_code_iff_the_check_is_not_ten(
            nine in nine_digits_with_serial()
        ) {
            let check = check_value(nine.as_bytes());
            let last = if check == 10 { 0 } else { check };
            let parsed = TaxCode::parse(&format!("{nine}{last}"));
            prop_assert_eq!(parsed.is_ok(), check != 10);
        }

        #[test]
        fn the_canonical_form_is_a_fixed_point(code in any_valid_code()) {
            let once = TaxCode::parse(&code).unwrap();
            let twice = TaxCode::parse(&once.canonical()).unwrap();
            prop_assert_eq!(once.canonical(), twice.canonical());
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn spaces_and_dots_inserted_anywhere_do_not_change_the_result(
            code in prop_oneof!["[0-9]{9,13}", any_valid_code()],
            seps in proptest::collection::vec((0usize..20, any::<bool>()), 0..6),
        ) {
            prop_assert_eq!(TaxCode::parse(&sprinkle(&code, &seps)), TaxCode::parse(&code));
        }
    }
}
