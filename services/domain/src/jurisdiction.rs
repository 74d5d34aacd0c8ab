//! Jurisdictions (địa bàn quản lý): `central` or a province *under a scheme*.
//!
//! Province codes are reused between the 63-province scheme (2008-08-01 .. 2025-06-30) and the
//! 34-province scheme (from 2025-07-01): 82 is Tiền Giang in one and Đồng Tháp in the other. A
//! code alone is ambiguous, so every jurisdiction carries its scheme, and its resource name is
//! `provinces/{scheme}-{code}` with scheme `2008` or `2025` (the year the scheme took effect),
//! e.g. `provinces/2008-82`.
//!
//! The division lists are data (`data/*.csv`, copied from the ministry's published lists), not code.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// A list of provincial-level units in force for a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Scheme {
    /// The 63 provinces, 2008-08-01 to 2025-06-30.
    #[serde(rename = "2008")]
    P63,
    /// The 34 provinces, from 2025-07-01.
    #[serde(rename = "2025")]
    P34,
}

impl Scheme {
    /// The token used in resource names and configuration: `2008` or `2025`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::P63 => "2008",
            Scheme::P34 => "2025",
        }
    }

    /// Every province of the scheme, in code order.
    pub fn provinces(self) -> &'static [Province] {
        match self {
            Scheme::P63 => &tables().p63,
            Scheme::P34 => &tables().p34,
        }
    }

    /// The province with this code under this scheme.
    pub fn province(self, code: &str) -> Option<&'static Province> {
        self.provinces().iter().find(|p| p.code.as_str() == code)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = JurisdictionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2008" | "63" => Ok(Scheme::P63),
            "2025" | "34" => Ok(Scheme::P34),
            other => Err(JurisdictionError::UnknownScheme(other.to_owned())),
        }
    }
}

/// A two-digit official province code ("01", "79"). Meaningful only with a scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProvinceCode([u8; 2]);

impl ProvinceCode {
    /// Parses two ASCII digits; "1" is accepted as "01".
    pub fn parse(s: &str) -> Result<Self, JurisdictionError> {
        let b = s.as_bytes();
        match b {
            [d] if d.is_ascii_digit() => Ok(Self([b'0', *d])),
            [a, d] if a.is_ascii_digit() && d.is_ascii_digit() => Ok(Self([*a, *d])),
            _ => Err(JurisdictionError::MalformedCode(s.to_owned())),
        }
    }

    /// The code with its leading zero.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII digits by construction.
        std::str::from_utf8(&self.0).unwrap_or("00")
    }
}

impl fmt::Display for ProvinceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One provincial-level unit of a scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Province {
    /// The scheme it belongs to.
    pub scheme: Scheme,
    /// Its official code.
    pub code: ProvinceCode,
    /// Official name, e.g. "Thành phố Hà Nội".
    pub name: String,
    /// Name without "Tỉnh"/"Thành phố", e.g. "Hà Nội".
    pub short_name: String,
    /// ASCII slug, e.g. "ha_noi".
    pub slug: String,
}

impl Province {
    /// This province as a jurisdiction.
    pub fn jurisdiction(&self) -> Jurisdiction {
        Jurisdiction::Province(self.scheme, self.code)
    }

    /// Its official name and short name on `day`: the lists carry today's names, and
    /// `data/province-names.csv` the earlier ones with their dates and sources (Thừa Thiên Huế
    /// until 2024-12-31, the city of Huế from 2025-01-01).
    pub fn name_on(&self, day: chrono::NaiveDate) -> (&str, &str) {
        tables()
            .names
            .iter()
            .find(|n| {
                n.scheme == self.scheme
                    && n.code == self.code
                    && n.from.is_none_or(|f| f <= day)
                    && n.to.is_none_or(|t| day < t)
            })
            .map_or((self.name.as_str(), self.short_name.as_str()), |n| (n.name.as_str(), n.short_name.as_str()))
    }
}

/// A name a province bore for a period (the end exclusive).
struct DatedName {
    scheme: Scheme,
    code: ProvinceCode,
    name: String,
    short_name: String,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
}

#[derive(serde::Deserialize)]
struct NameRow {
    scheme: String,
    code: String,
    name: String,
    short_name: String,
    valid_from: String,
    valid_to: String,
    source: String,
}

fn load_names(data: &str) -> Vec<DatedName> {
    let day = |s: &str| (!s.is_empty()).then(|| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date"));
    csv::Reader::from_reader(data.as_bytes())
        .deserialize::<NameRow>()
        .map(|r| {
            let r = r.expect("bundled province names are valid CSV");
            assert!(!r.source.is_empty(), "every dated name has a source");
            DatedName {
                scheme: r.scheme.parse().expect("a scheme"),
                code: ProvinceCode::parse(&r.code).expect("a code"),
                name: r.name,
                short_name: r.short_name,
                from: day(&r.valid_from),
                to: day(&r.valid_to),
            }
        })
        .collect()
}

/// Who a record belongs to: the centre, or one province under one scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Jurisdiction {
    /// The central department (Cục).
    Central,
    /// A province under a scheme.
    Province(Scheme, ProvinceCode),
}

impl Jurisdiction {
    /// Parses `central` or `provinces/{scheme}-{code}` and checks the code exists in the scheme.
    pub fn parse(s: &str) -> Result<Self, JurisdictionError> {
        if s == "central" {
            return Ok(Jurisdiction::Central);
        }
        let rest = s.strip_prefix("provinces/").ok_or_else(|| JurisdictionError::Malformed(s.to_owned()))?;
        let (scheme, code) = rest.split_once('-').ok_or_else(|| JurisdictionError::Malformed(s.to_owned()))?;
        let scheme: Scheme = scheme.parse()?;
        let code = ProvinceCode::parse(code)?;
        if scheme.province(code.as_str()).is_none() {
            return Err(JurisdictionError::UnknownProvince { scheme, code: code.to_string() });
        }
        Ok(Jurisdiction::Province(scheme, code))
    }

    /// Parses a jurisdiction from the front of a resource name
    /// (`provinces/2008-01/sites/x` → `provinces/2008-01`, and the rest `sites/x`).
    pub fn parse_prefix(name: &str) -> Result<(Self, &str), JurisdictionError> {
        if let Some(rest) = name.strip_prefix("central/") {
            return Ok((Jurisdiction::Central, rest));
        }
        let after = name.strip_prefix("provinces/").ok_or_else(|| JurisdictionError::Malformed(name.to_owned()))?;
        let (head, rest) = after.split_once('/').unwrap_or((after, ""));
        let j = Self::parse(&name[..("provinces/".len() + head.len())])?;
        Ok((j, rest))
    }

    /// A province of a scheme by code.
    pub fn province(scheme: Scheme, code: &str) -> Result<Self, JurisdictionError> {
        let code = ProvinceCode::parse(code)?;
        if scheme.province(code.as_str()).is_none() {
            return Err(JurisdictionError::UnknownProvince { scheme, code: code.to_string() });
        }
        Ok(Jurisdiction::Province(scheme, code))
    }

    /// The scheme, for a province.
    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            Jurisdiction::Central => None,
            Jurisdiction::Province(s, _) => Some(*s),
        }
    }

    /// The province's data, for a province.
    pub fn info(&self) -> Option<&'static Province> {
        match self {
            Jurisdiction::Central => None,
            Jurisdiction::Province(s, c) => s.province(c.as_str()),
        }
    }

    /// Whether this is the centre.
    pub fn is_central(&self) -> bool {
        matches!(self, Jurisdiction::Central)
    }

    /// Under the 34-province scheme: itself for a 2025 province, its successor for a 2008 one.
    pub fn successor(&self) -> Option<Jurisdiction> {
        match self {
            Jurisdiction::Central => None,
            Jurisdiction::Province(Scheme::P34, _) => Some(*self),
            Jurisdiction::Province(Scheme::P63, c) => tables()
                .merger
                .iter()
                .find(|(old, _)| old == c)
                .map(|(_, new)| Jurisdiction::Province(Scheme::P34, *new)),
        }
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jurisdiction::Central => f.write_str("central"),
            Jurisdiction::Province(s, c) => write!(f, "provinces/{s}-{c}"),
        }
    }
}

impl FromStr for Jurisdiction {
    type Err = JurisdictionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a jurisdiction did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JurisdictionError {
    /// Not `central` nor `provinces/{scheme}-{code}`.
    #[error(
        "'{0}' is not a jurisdiction: expected 'central' or 'provinces/{{scheme}}-{{code}}', e.g. 'provinces/2008-01'"
    )]
    Malformed(String),
    /// Scheme other than 2008 or 2025.
    #[error("unknown province scheme '{0}': expected 2008 (63 provinces) or 2025 (34 provinces)")]
    UnknownScheme(String),
    /// Code that is not two digits.
    #[error("'{0}' is not a province code: expected two digits, e.g. 01")]
    MalformedCode(String),
    /// Code not in the scheme.
    #[error("no province with code {code} in the {scheme} scheme")]
    UnknownProvince {
        /// The scheme asked.
        scheme: Scheme,
        /// The code asked.
        code: String,
    },
}

struct Tables {
    p63: Vec<Province>,
    p34: Vec<Province>,
    merger: Vec<(ProvinceCode, ProvinceCode)>,
    names: Vec<DatedName>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| Tables {
        p63: load(Scheme::P63, include_str!("../data/provinces-63.csv")),
        p34: load(Scheme::P34, include_str!("../data/provinces-34.csv")),
        merger: load_merger(include_str!("../data/province-merger-2025.csv")),
        names: load_names(include_str!("../data/province-names.csv")),
    })
}

#[derive(serde::Deserialize)]
struct Row {
    code: String,
    name: String,
    short_name: String,
    slug: String,
}

fn load(scheme: Scheme, data: &str) -> Vec<Province> {
    let mut rdr = csv::Reader::from_reader(data.as_bytes());
    let mut out: Vec<Province> = rdr
        .deserialize::<Row>()
        .map(|r| {
            // The files ship inside the crate; a bad row is a build defect caught by the tests below.
            let r = r.expect("bundled province list is valid CSV");
            Province {
                scheme,
                code: ProvinceCode::parse(&r.code).expect("bundled province code is two digits"),
                name: r.name,
                short_name: r.short_name,
                slug: r.slug,
            }
        })
        .collect();
    out.sort_by_key(|p| p.code);
    out
}

#[derive(serde::Deserialize)]
struct MergerRow {
    old_code: String,
    new_code: String,
}

fn load_merger(data: &str) -> Vec<(ProvinceCode, ProvinceCode)> {
    let mut rdr = csv::Reader::from_reader(data.as_bytes());
    rdr.deserialize::<MergerRow>()
        .map(|r| {
            let r = r.expect("bundled merger table is valid CSV");
            (ProvinceCode::parse(&r.old_code).expect("old code"), ProvinceCode::parse(&r.new_code).expect("new code"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_province_is_named_as_it_was_named_on_the_day() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let hue = Scheme::P63.province("46").unwrap();
        // The letter's deadline: Thừa Thiên Huế was a province.
        assert_eq!(hue.name_on(day(2014, 11, 19)), ("Tỉnh Thừa Thiên Huế", "Thừa Thiên Huế"));
        assert_eq!(hue.name_on(day(2024, 12, 31)), ("Tỉnh Thừa Thiên Huế", "Thừa Thiên Huế"));
        assert_eq!(hue.name_on(day(2025, 1, 1)), ("Thành phố Huế", "Huế"));
        let hanoi = Scheme::P63.province("01").unwrap();
        assert_eq!(hanoi.name_on(day(2014, 11, 19)), ("Thành phố Hà Nội", "Hà Nội"));
    }

    #[test]
    fn the_bundled_lists_have_63_and_34_units_and_every_old_province_has_a_successor() {
        assert_eq!(Scheme::P63.provinces().len(), 63);
        assert_eq!(Scheme::P34.provinces().len(), 34);
        for p in Scheme::P63.provinces() {
            let s = p.jurisdiction().successor().expect("successor");
            assert!(s.info().is_some(), "{} has a successor in the 34 list", p.short_name);
        }
    }

    #[test]
    fn code_82_means_different_provinces_in_the_two_schemes() {
        let old = Jurisdiction::parse("provinces/2008-82").unwrap();
        let new = Jurisdiction::parse("provinces/2025-82").unwrap();
        assert_ne!(old, new);
        assert_eq!(old.info().unwrap().short_name, "Tiền Giang");
        assert_eq!(new.info().unwrap().short_name, "Đồng Tháp");
        assert_eq!(old.successor(), Some(new));
    }

    #[test]
    fn malformed_and_unknown_jurisdictions_are_refused() {
        for bad in
            ["", "provinces/82", "provinces/2008-", "provinces/2008-999", "provinces/1999-01", "province/2008-01"]
        {
            assert!(Jurisdiction::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(Jurisdiction::parse("provinces/2025-02"), Err(JurisdictionError::UnknownProvince { .. })));
        assert_eq!(Jurisdiction::parse("central"), Ok(Jurisdiction::Central));
    }

    #[test]
    fn a_resource_name_yields_its_jurisdiction() {
        let (j, rest) = Jurisdiction::parse_prefix("provinces/2008-01/sites/abc").unwrap();
        assert_eq!(j.to_string(), "provinces/2008-01");
        assert_eq!(rest, "sites/abc");
    }
}
