//! Bulk import of a province's existing list (CSV). Every bad row is reported with its line and
//! column; the caller decides between a dry run and the all-or-nothing import.

use einfo_common::error::{ApiError, ApiResult, Violations};
use einfo_proto::registry::v1 as pb;

use crate::convert;
use crate::kinds::Kinds;

/// The columns, in order.
pub const COLUMNS: &[&str] = &[
    "kind",
    "display_name",
    "domains",
    "owner_kind",
    "owner_name",
    "owner_tax_code",
    "hosting",
    "operational_state",
    "discovery_source",
    "notes",
];

/// Most rows in one import.
pub const MAX_ROWS: usize = 50_000;

/// The good rows (line, normalised site) and the errors of the bad ones.
pub type Parsed = (Vec<(u32, pb::Site)>, Vec<pb::ImportRowError>);

/// Parses a CSV file: the sites of its good rows (with their line) and the errors of its bad
/// ones. A file without the expected header is refused as a whole.
pub fn parse(data: &[u8], kinds: &Kinds) -> ApiResult<Parsed> {
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(data);
    let header = rdr.headers().map_err(|e| ApiError::field("csv", format!("cannot read the header: {e}")))?.clone();
    let got: Vec<&str> = header.iter().collect();
    if got != COLUMNS {
        return Err(ApiError::field("csv", format!("the header must be {}", COLUMNS.join(","))));
    }
    let mut sites = Vec::new();
    let mut errors = Vec::new();
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        if i >= MAX_ROWS {
            return Err(ApiError::field("csv", format!("more than {MAX_ROWS} rows; split the file")));
        }
        let line = rec.as_ref().ok().and_then(|r| r.position()).map(|p| p.line() as u32).unwrap_or(i as u32 + 2);
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(pb::ImportRowError { line, field: String::new(), description: e.to_string() });
                continue;
            }
        };
        if rec.len() != COLUMNS.len() {
            errors.push(pb::ImportRowError {
                line,
                field: String::new(),
                description: format!("expected {} columns, found {}", COLUMNS.len(), rec.len()),
            });
            continue;
        }
        let mut bad = Vec::new();
        let mut enum_of = |col: usize, parse: fn(&str) -> Option<i32>| -> i32 {
            let s = &rec[col];
            if s.is_empty() {
                return 0;
            }
            parse(&s.to_ascii_uppercase()).unwrap_or_else(|| {
                bad.push((COLUMNS[col], format!("unknown value '{s}'")));
                0
            })
        };
        let owner_kind = enum_of(3, |s| pb::OwnerKind::from_str_name(&format!("OWNER_KIND_{s}")).map(|e| e as i32));
        let hosting = enum_of(6, |s| pb::Hosting::from_str_name(&format!("HOSTING_{s}")).map(|e| e as i32));
        let operational_state =
            enum_of(7, |s| pb::OperationalState::from_str_name(&format!("OPERATIONAL_STATE_{s}")).map(|e| e as i32));
        let discovery_source =
            enum_of(8, |s| pb::DiscoverySource::from_str_name(&format!("DISCOVERY_SOURCE_{s}")).map(|e| e as i32));
        let owner = (!rec[4].is_empty() || !rec[5].is_empty()).then(|| pb::Owner {
            kind: owner_kind,
            display_name: rec[4].to_owned(),
            tax_code: rec[5].to_owned(),
            ..Default::default()
        });
        let input = pb::Site {
            kind: rec[0].to_owned(),
            display_name: rec[1].to_owned(),
            domains: rec[2].split_whitespace().map(str::to_owned).collect(),
            owner,
            hosting,
            operational_state,
            discovery_source,
            notes: rec[9].to_owned(),
            ..Default::default()
        };
        let mut v = Violations::new();
        let site = convert::site(&input, "site", kinds, &mut v);
        if let Err(e) = v.finish() {
            for viol in e.violations {
                bad.push((column_of(&viol.field), viol.description));
            }
        }
        for d in &site.domains {
            if let Some(first) = seen.get(d) {
                bad.push(("domains", format!("{d} is also on line {first}")));
            }
        }
        if bad.is_empty() {
            for d in &site.domains {
                seen.insert(d.clone(), line);
            }
            sites.push((line, site));
        } else {
            errors.extend(bad.into_iter().map(|(field, description)| pb::ImportRowError {
                line,
                field: field.into(),
                description,
            }));
        }
    }
    Ok((sites, errors))
}

/// The CSV column of a site field path.
fn column_of(path: &str) -> &'static str {
    let p = path.strip_prefix("site.").unwrap_or(path);
    match p {
        _ if p.starts_with("domains") => "domains",
        "owner.kind" => "owner_kind",
        "owner.display_name" => "owner_name",
        "owner.tax_code" => "owner_tax_code",
        "kind" => "kind",
        "display_name" => "display_name",
        "hosting" => "hosting",
        "operational_state" => "operational_state",
        "discovery_source" => "discovery_source",
        "notes" => "notes",
        _ => "owner_name",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_row_is_reported_with_its_line_and_column() {
        let csv = "kind,display_name,domains,owner_kind,owner_name,owner_tax_code,hosting,operational_state,discovery_source,notes\n\
                   general-website,Báo Hà Nội,baohanoi.vn,organisation,Công ty A,0100109106,in_vietnam,active,sweep,\n\
                   general-website,,x.vn,organisation,Công ty B,0100109107,in_vietnam,active,sweep,\n\
                   social-network,MXH,baohanoi.vn,organisation,Công ty C,0100109106,abroad,active,complaint,\n";
        let (sites, errors) = parse(csv.as_bytes(), &Kinds::bundled()).unwrap();
        assert_eq!(sites.len(), 1);
        let got: Vec<(u32, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(got, vec![(3, "display_name"), (3, "owner_tax_code"), (4, "domains")]);
    }

    #[test]
    fn a_file_with_another_header_is_refused() {
        assert!(parse(b"a,b\n1,2\n", &Kinds::bundled()).is_err());
    }
}
