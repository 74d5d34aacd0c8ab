//! The violation catalogue (versioned reference data with effective dates) and the list of
//! coordinating agencies. The inspection service loads the catalogue at start and then takes
//! each version the centre publishes (`einfo_common::reference`); the centre parses what it
//! publishes with the same parser, so it refuses what nodes would.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use einfo_proto::inspection::v1 as pb;

/// The catalogue: every entry of every period.
#[derive(Clone, Debug)]
pub struct Catalogue {
    entries: Vec<pb::CatalogueEntry>,
    version: String,
}

fn vn_midnight(d: NaiveDate) -> DateTime<Utc> {
    let tz = chrono::FixedOffset::east_opt(7 * 3600).expect("+07:00");
    tz.from_local_datetime(&d.and_time(NaiveTime::MIN)).single().map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

fn instant(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// The columns of a catalogue file, in order.
pub const COLUMNS: [&str; 20] = [
    "code",
    "catalogue_version",
    "description_vi",
    "description_en",
    "decree",
    "article",
    "clause",
    "point",
    "fine_min_organisation_vnd",
    "fine_max_organisation_vnd",
    "fine_min_person_vnd",
    "fine_max_person_vnd",
    "allowed_measures",
    "principal_forms",
    "additional_sanctions",
    "remedial_measures",
    "effective_from",
    "effective_to",
    "source",
    "example",
];

/// The catalogue shipped with the services (`data/violation-catalogue.csv`).
pub const BUNDLED: &str = include_str!("../data/violation-catalogue.csv");

impl Catalogue {
    /// The catalogue shipped with the service.
    pub fn bundled() -> Self {
        // The file ships inside the crate; a unit test proves it parses.
        Self::from_csv(BUNDLED).expect("bundled catalogue parses")
    }

    /// Parses a catalogue file (see `data/README.md`); errors name the line. Two layouts are
    /// read: the current one ([`COLUMNS`], 20 columns, to the point, with the principal forms and
    /// the decree's additional and remedial measures) and the first one (16 columns: no point, a
    /// fine as the only principal form), which a node may hold from an earlier version.
    pub fn from_csv(data: &str) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        let mut rdr = csv::Reader::from_reader(data.as_bytes());
        let header: Vec<String> = rdr.headers()?.iter().map(|h| h.trim().to_owned()).collect();
        let current = header.len() == COLUMNS.len();
        anyhow::ensure!(
            !current || header.iter().zip(COLUMNS).all(|(h, c)| h == c),
            "the header must be {}",
            COLUMNS.join(",")
        );
        anyhow::ensure!(current || header.len() == 16, "expected {} columns (or the first layout's 16)", COLUMNS.len());
        for (i, rec) in rdr.records().enumerate() {
            let line = i + 2;
            let rec = rec.map_err(|e| anyhow::anyhow!("line {line}: {e}"))?;
            anyhow::ensure!(
                rec.len() == header.len(),
                "line {line}: expected {} columns, found {}",
                header.len(),
                rec.len()
            );
            // The first layout, read as the current one: no point, a fine only, no measures' text.
            let r: Vec<&str> = if current {
                rec.iter().collect()
            } else {
                let o: Vec<&str> = rec.iter().collect();
                let mut r = o[..7].to_vec();
                r.push("");
                r.extend_from_slice(&o[7..12]);
                r.extend_from_slice(&["FINE", "", ""]);
                r.extend_from_slice(&o[12..]);
                r
            };
            let (point, forms, additional, remedial) = (7, 13, 14, 15);
            let money = |c: usize| -> anyhow::Result<i64> {
                r[c].trim().parse().map_err(|e| anyhow::anyhow!("line {line}, column {}: {e}", c + 1))
            };
            let date = |c: usize| -> anyhow::Result<Option<prost_types::Timestamp>> {
                let s = r[c].trim();
                if s.is_empty() {
                    return Ok(None);
                }
                let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|e| anyhow::anyhow!("line {line}: date '{s}': {e}"))?;
                Ok(Some(ts(vn_midnight(d))))
            };
            let mut measures = Vec::new();
            for m in r[12].split(';').map(str::trim).filter(|m| !m.is_empty()) {
                let k = pb::MeasureKind::from_str_name(&format!("MEASURE_KIND_{m}"))
                    .ok_or_else(|| anyhow::anyhow!("line {line}: unknown measure '{m}'"))?;
                measures.push(k as i32);
            }
            let mut principal_forms = Vec::new();
            for f in r[forms].split(';').map(str::trim).filter(|f| !f.is_empty()) {
                let k = pb::PrincipalForm::from_str_name(&format!("PRINCIPAL_FORM_{f}"))
                    .ok_or_else(|| anyhow::anyhow!("line {line}: unknown principal form '{f}' (WARNING, FINE)"))?;
                principal_forms.push(k as i32);
            }
            anyhow::ensure!(!principal_forms.is_empty(), "line {line}: no principal form (WARNING, FINE)");
            let e = pb::CatalogueEntry {
                code: r[0].trim().into(),
                catalogue_version: r[1].trim().into(),
                description_vi: r[2].trim().into(),
                description_en: r[3].trim().into(),
                legal_basis: Some(pb::LegalBasis {
                    decree: r[4].trim().into(),
                    article: r[5].trim().into(),
                    clause: r[6].trim().into(),
                    point: r[point].trim().into(),
                }),
                fine_min_organisation_vnd: money(8)?,
                fine_max_organisation_vnd: money(9)?,
                fine_min_person_vnd: money(10)?,
                fine_max_person_vnd: money(11)?,
                allowed_measures: measures,
                effective_from: date(16)?,
                effective_to: date(17)?,
                source: r[18].trim().into(),
                example: r[19].trim() == "true",
                principal_forms,
                additional_sanctions: r[additional].trim().into(),
                remedial_measures: r[remedial].trim().into(),
            };
            anyhow::ensure!(!e.code.is_empty(), "line {line}: empty code");
            anyhow::ensure!(e.effective_from.is_some(), "line {line}: effective_from is required");
            anyhow::ensure!(
                e.fine_min_organisation_vnd <= e.fine_max_organisation_vnd
                    && e.fine_min_person_vnd <= e.fine_max_person_vnd,
                "line {line}: a minimum fine above its maximum"
            );
            anyhow::ensure!(!e.source.is_empty(), "line {line}: every entry names its source");
            entries.push(e);
        }
        let version = entries.iter().map(|e| e.catalogue_version.clone()).max().unwrap_or_default();
        Ok(Self { entries, version })
    }

    /// The catalogue's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether any period of this code exists.
    pub fn knows(&self, code: &str) -> bool {
        self.entries.iter().any(|e| e.code == code)
    }

    /// The entry of `code` in force at `at`.
    pub fn in_force(&self, code: &str, at: DateTime<Utc>) -> Option<&pb::CatalogueEntry> {
        self.entries.iter().find(|e| {
            e.code == code
                && instant(e.effective_from.as_ref()).is_some_and(|f| f <= at)
                && instant(e.effective_to.as_ref()).is_none_or(|t| at < t)
        })
    }

    /// Every entry in force at `at`.
    pub fn all_in_force(&self, at: DateTime<Utc>) -> Vec<pb::CatalogueEntry> {
        self.entries
            .iter()
            .filter(|e| self.in_force(&e.code, at).is_some_and(|f| std::ptr::eq(f, *e)))
            .cloned()
            .collect()
    }

    /// An act as a report names it: the provision cited to the point, then the act ("Điều 64
    /// khoản 1 điểm b Nghị định 174/2013/NĐ-CP: Cung cấp đường dẫn …"), from the latest row of
    /// `code`; the code itself when the catalogue has no such row.
    pub fn act(&self, code: &str) -> String {
        let entry = self.all().iter().filter(|e| e.code == code).max_by_key(|e| e.effective_from.map(|t| t.seconds));
        match entry {
            Some(e) => match &e.legal_basis {
                Some(b) => format!("{}: {}", cite(b), e.description_vi),
                None => e.description_vi.clone(),
            },
            None => code.to_owned(),
        }
    }

    /// Every entry.
    pub fn all(&self) -> &[pb::CatalogueEntry] {
        &self.entries
    }
}

/// The coordinating agencies.
pub fn agencies() -> Vec<pb::Agency> {
    let mut rdr = csv::Reader::from_reader(include_str!("../data/agencies.csv").as_bytes());
    rdr.records()
        .filter_map(Result::ok)
        .map(|r| pb::Agency { code: r[0].trim().into(), name_vi: r[1].trim().into(), name_en: r[2].trim().into() })
        .collect()
}

/// A provision as the law cites it: "Điều 64 khoản 1 điểm a Nghị định 174/2013/NĐ-CP".
pub fn cite(b: &pb::LegalBasis) -> String {
    let mut s = format!("Điều {}", b.article);
    if !b.clause.is_empty() {
        s.push_str(&format!(" khoản {}", b.clause));
    }
    if !b.point.is_empty() {
        s.push_str(&format!(" điểm {}", b.point));
    }
    format!("{s} Nghị định {}", b.decree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_catalogue_carries_the_decree_facts_and_no_example() {
        let c = Catalogue::bundled();
        let now = vn_midnight(NaiveDate::from_ymd_opt(2026, 12, 2).unwrap());
        let e = c.in_force("ND15-98-3", now).expect("98(3) in force");
        assert_eq!((e.fine_min_organisation_vnd, e.fine_max_organisation_vnd), (50_000_000, 70_000_000));
        assert!(e.allowed_measures.contains(&(pb::MeasureKind::Confiscation as i32)));
        assert!(!e.example);
        // Examples never reach a real node: the test kit adds its own.
        let examples: Vec<&str> =
            c.all().iter().filter(|e| e.example || e.code.starts_with("EX-")).map(|e| e.code.as_str()).collect();
        assert!(examples.is_empty(), "the shipped catalogue holds examples: {examples:?}");
        let unsourced: Vec<&str> =
            c.all().iter().filter(|e| e.source.trim().is_empty()).map(|e| e.code.as_str()).collect();
        assert!(unsourced.is_empty(), "rows without a source: {unsourced:?}");
    }

    #[test]
    fn decree_174_2013_judges_the_letters_year_to_the_point() {
        let c = Catalogue::bundled();
        let day = |y, m, d| vn_midnight(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        let e = c.in_force("ND174-64-1-b", day(2014, 9, 10)).expect("in force in 2014");
        let b = e.legal_basis.clone().unwrap();
        assert_eq!(
            (b.decree.as_str(), b.article.as_str(), b.clause.as_str(), b.point.as_str()),
            ("174/2013/NĐ-CP", "64", "1", "b")
        );
        assert_eq!((e.fine_min_organisation_vnd, e.fine_max_organisation_vnd), (5_000_000, 10_000_000));
        assert_eq!(
            (e.fine_min_person_vnd, e.fine_max_person_vnd),
            (2_500_000, 5_000_000),
            "a person's is half (Art. 2(1))"
        );
        assert_eq!(e.principal_forms, vec![pb::PrincipalForm::Fine as i32]);
        assert!(c.in_force("ND174-64-1-b", day(2014, 1, 14)).is_none());
        assert!(c.in_force("ND174-64-1-b", day(2014, 1, 15)).is_some());
        assert!(c.in_force("ND174-64-1-b", day(2020, 4, 14)).is_some());
        assert!(c.in_force("ND174-64-1-b", day(2020, 4, 15)).is_none(), "Decree 15/2020 from 2020-04-15");
        assert!(
            c.all()
                .iter()
                .filter(|e| !e.example)
                .all(|e| e.source.contains("Decree") || e.source.contains("secondary"))
        );
    }

    #[test]
    fn a_file_of_the_first_layout_is_read_as_fines_without_a_point() {
        let first = "code,catalogue_version,description_vi,description_en,decree,article,clause,fine_min_organisation_vnd,fine_max_organisation_vnd,fine_min_person_vnd,fine_max_person_vnd,allowed_measures,effective_from,effective_to,source,example\n\
                     T-1,2020.1,Thử,Test,15/2020/NĐ-CP,98,3,50000000,70000000,25000000,35000000,CONFISCATION,2020-04-15,,a source,false\n";
        let c = Catalogue::from_csv(first).unwrap();
        let e = &c.all()[0];
        assert_eq!(e.legal_basis.as_ref().unwrap().point, "");
        assert_eq!(e.principal_forms, vec![pb::PrincipalForm::Fine as i32]);
        assert_eq!(e.allowed_measures, vec![pb::MeasureKind::Confiscation as i32]);
        assert_eq!(e.source, "a source");
        let bad = format!("{}\nT-2,2026.1,a,b,d,1,1,,1,2,1,2,,NONE,,,2020-01-01,,s,false\n", COLUMNS.join(","));
        assert!(Catalogue::from_csv(&bad).unwrap_err().to_string().contains("principal form 'NONE'"));
    }

    #[test]
    fn an_entry_is_not_in_force_before_its_effective_date() {
        let c = Catalogue::bundled();
        let before = vn_midnight(NaiveDate::from_ymd_opt(2020, 4, 14).unwrap());
        assert!(c.in_force("ND15-44", before).is_none());
    }

    #[test]
    fn agencies_include_police_and_culture() {
        let codes: Vec<String> = agencies().into_iter().map(|a| a.code).collect();
        assert!(codes.contains(&"police".to_string()) && codes.contains(&"culture".to_string()));
    }
}
