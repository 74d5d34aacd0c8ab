//! The operator's commands on sites.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use einfo_common::auth::Role;
use einfo_proto::registry::v1 as pb;
use einfo_reference::kinds::Kinds;
use einfo_reference::report::status_name;

use super::{Conn, Failure, Target, parse_enum, request_id, short, table, usage};

/// The site's own fields as JSON.
fn site_json(s: &pb::Site) -> serde_json::Value {
    let owner = s.owner.clone().unwrap_or_default();
    serde_json::json!({
        "name": s.name,
        "kind": s.kind,
        "display_name": s.display_name,
        "domains": s.domain_details.iter().map(|d| d.unicode.clone()).collect::<Vec<_>>(),
        "owner": {
            "kind": short(owner.kind().as_str_name(), "OWNER_KIND_"),
            "display_name": owner.display_name,
            "tax_code": owner.tax_code,
        },
        "legal_status": short(s.legal_status().as_str_name(), "LEGAL_STATUS_"),
        "operational_state": short(s.operational_state().as_str_name(), "OPERATIONAL_STATE_"),
        "trial": s.trial,
        "voided": s.voided,
        "etag": s.etag,
    })
}

/// A site as an operator reads it.
fn site_text(s: &pb::Site, kinds: &Kinds) -> String {
    let owner = s.owner.clone().unwrap_or_default();
    let kind = kinds.get(&s.kind).map_or(s.kind.clone(), |k| k.name_vi.clone());
    let domains: Vec<String> = s.domain_details.iter().map(|d| d.unicode.clone()).collect();
    let mut status = status_name(s.legal_status).to_owned();
    if s.trial {
        status.push_str(", đang thử nghiệm");
    }
    if s.voided {
        status.push_str(&format!(" (đã hủy: {})", s.reason));
    }
    [
        ("Tên", s.display_name.clone()),
        ("Loại", kind),
        ("Tên miền", domains.join(", ")),
        ("Chủ quản", format!("{} ({})", owner.display_name, owner.tax_code)),
        ("Tình trạng", status),
        ("Mã", s.name.clone()),
    ]
    .iter()
    .map(|(k, v)| format!("{k:<11} {v}\n"))
    .collect()
}

/// The operator's commands on sites.
#[derive(Subcommand)]
pub enum SiteCommand {
    /// Register a site found operating, applied for or referred.
    Register(SiteRegisterArgs),
    /// Show a site.
    Show(SiteNameArgs),
    /// List the province's sites, every page, ordered by name.
    List(SiteListArgs),
    /// Change a site's name, operating state, hosting or notes.
    Update(SiteUpdateArgs),
    /// Correct what was recorded wrongly — its name, kind, domains, owner — with the reason (a
    /// correction, not a change in the world: the figures of the past follow it).
    Correct(SiteCorrectArgs),
    /// Void a site recorded in error, with the reason.
    Void(SiteVoidArgs),
    /// Import sites from CSV or XLSX (the first sheet): every bad row is listed with its line
    /// and field; `--dry-run` writes nothing, otherwise the good rows land.
    Import(SiteImportArgs),
}

#[derive(Args)]
pub struct SiteRegisterArgs {
    #[command(flatten)]
    target: Target,
    /// general-website or social-network (`einfo_reference` kinds).
    #[arg(long, default_value = "general-website")]
    kind: String,
    /// The site's name.
    #[arg(long)]
    name: String,
    /// A domain (repeat for more); IDN in Unicode or ASCII.
    #[arg(long = "domain", required = true)]
    domains: Vec<String>,
    /// The owner's name.
    #[arg(long)]
    owner: String,
    /// organisation or person.
    #[arg(long, default_value = "organisation")]
    owner_kind: String,
    /// The owner's tax code (10 or 13 digits), or a person's 12-digit identification number.
    #[arg(long)]
    tax_code: String,
    /// in-vietnam, abroad or mixed.
    #[arg(long, default_value = "in-vietnam")]
    hosting: String,
    /// active, inactive or unreachable.
    #[arg(long, default_value = "active")]
    state: String,
    /// sweep, complaint, referral or application.
    #[arg(long, default_value = "sweep")]
    found_by: String,
    /// Free text.
    #[arg(long, default_value = "")]
    notes: String,
}

#[derive(Args)]
pub struct SiteNameArgs {
    #[command(flatten)]
    target: Target,
    /// The site: its id or `provinces/2008-01/sites/{id}`.
    site: String,
}

#[derive(Args)]
pub struct SiteListArgs {
    #[command(flatten)]
    target: Target,
    /// Only this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only this legal status: licensed, applied, registered, unlicensed, suspended, revoked, expired.
    #[arg(long)]
    status: Option<String>,
    /// Only sites holding this domain (or under this registrable domain).
    #[arg(long)]
    domain: Option<String>,
    /// Words of the name, accents optional.
    #[arg(long)]
    query: Option<String>,
}

#[derive(Args)]
pub struct SiteUpdateArgs {
    #[command(flatten)]
    target: Target,
    /// The site: its id or `provinces/2008-01/sites/{id}`.
    site: String,
    /// A new name.
    #[arg(long)]
    name: Option<String>,
    /// active, inactive or unreachable.
    #[arg(long)]
    state: Option<String>,
    /// in-vietnam, abroad or mixed.
    #[arg(long)]
    hosting: Option<String>,
    /// New notes.
    #[arg(long)]
    notes: Option<String>,
}

#[derive(Args)]
pub struct SiteCorrectArgs {
    #[command(flatten)]
    target: Target,
    /// The site: its id or `provinces/2008-01/sites/{id}`.
    site: String,
    /// The right name.
    #[arg(long)]
    name: Option<String>,
    /// The right kind.
    #[arg(long)]
    kind: Option<String>,
    /// The right domains (repeat; they replace the recorded ones).
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// The right owner's name.
    #[arg(long)]
    owner: Option<String>,
    /// The right tax code or identification number.
    #[arg(long)]
    tax_code: Option<String>,
    /// What was wrong.
    #[arg(long)]
    reason: String,
}

#[derive(Args)]
pub struct SiteVoidArgs {
    #[command(flatten)]
    target: Target,
    /// The site: its id or `provinces/2008-01/sites/{id}`.
    site: String,
    /// Why it was recorded in error.
    #[arg(long)]
    reason: String,
}

#[derive(Args)]
pub struct SiteImportArgs {
    #[command(flatten)]
    target: Target,
    /// The file: `.csv` (UTF-8, the header kind,display_name,domains,owner_kind,owner_name,
    /// owner_tax_code,hosting,operational_state,discovery_source,notes) or `.xlsx` (the same
    /// columns on its first sheet).
    file: PathBuf,
    /// Check every row and write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs a site command.
pub async fn site(c: SiteCommand) -> anyhow::Result<()> {
    let kinds = Kinds::bundled();
    match c {
        SiteCommand::Register(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let site = pb::Site {
                kind: a.kind.clone(),
                display_name: a.name.clone(),
                domains: a.domains.clone(),
                owner: Some(pb::Owner {
                    kind: parse_enum("OWNER_KIND", &a.owner_kind, "owner-kind", |n| {
                        pb::OwnerKind::from_str_name(n).map(|e| e as i32)
                    })?,
                    display_name: a.owner.clone(),
                    tax_code: a.tax_code.clone(),
                    ..Default::default()
                }),
                hosting: parse_enum("HOSTING", &a.hosting, "hosting", |n| {
                    pb::Hosting::from_str_name(n).map(|e| e as i32)
                })?,
                operational_state: parse_enum("OPERATIONAL_STATE", &a.state, "state", |n| {
                    pb::OperationalState::from_str_name(n).map(|e| e as i32)
                })?,
                discovery_source: parse_enum("DISCOVERY_SOURCE", &a.found_by, "found-by", |n| {
                    pb::DiscoverySource::from_str_name(n).map(|e| e as i32)
                })?,
                notes: a.notes.clone(),
                ..Default::default()
            };
            let mut req = pb::RegisterSiteRequest {
                parent: conn.jurisdiction.to_string(),
                site: Some(site),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.registry().register_site(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_site(&conn, &got, &kinds);
        }
        SiteCommand::Show(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let got = conn.read_site(&a.site).await?;
            print_site(&conn, &got, &kinds);
        }
        SiteCommand::List(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut req = pb::ListSitesRequest {
                parent: conn.jurisdiction.to_string(),
                page_size: 1000,
                kind: a.kind.clone().unwrap_or_default(),
                domain: a.domain.clone().unwrap_or_default(),
                name_query: a.query.clone().unwrap_or_default(),
                ..Default::default()
            };
            if let Some(s) = &a.status {
                req.legal_status =
                    parse_enum("LEGAL_STATUS", s, "status", |n| pb::LegalStatus::from_str_name(n).map(|e| e as i32))?;
            }
            let mut sites = Vec::new();
            let mut client = conn.registry();
            loop {
                let page = client.list_sites(req.clone()).await.map_err(|s| conn.failed(&s))?.into_inner();
                sites.extend(page.sites);
                if page.next_page_token.is_empty() {
                    break;
                }
                req.page_token = page.next_page_token;
            }
            if conn.json {
                let all: Vec<serde_json::Value> = sites.iter().map(site_json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                let rows: Vec<Vec<String>> = sites
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        vec![
                            (i + 1).to_string(),
                            s.display_name.clone(),
                            s.domain_details.first().map(|d| d.unicode.clone()).unwrap_or_default(),
                            status_name(s.legal_status).to_owned(),
                            s.name.rsplit('/').next().unwrap_or_default().to_owned(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["STT", "Tên", "Tên miền", "Tình trạng", "Mã"], &rows));
                println!("Tổng cộng: {} trang", sites.len());
            }
        }
        SiteCommand::Update(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut site = conn.read_site(&a.site).await?;
            let mut client = conn.registry();
            let mut paths = Vec::new();
            if let Some(n) = &a.name {
                site.display_name = n.clone();
                paths.push("display_name".to_owned());
            }
            if let Some(s) = &a.state {
                site.operational_state = parse_enum("OPERATIONAL_STATE", s, "state", |n| {
                    pb::OperationalState::from_str_name(n).map(|e| e as i32)
                })?;
                paths.push("operational_state".to_owned());
            }
            if let Some(h) = &a.hosting {
                site.hosting =
                    parse_enum("HOSTING", h, "hosting", |n| pb::Hosting::from_str_name(n).map(|e| e as i32))?;
                paths.push("hosting".to_owned());
            }
            if let Some(n) = &a.notes {
                site.notes = n.clone();
                paths.push("notes".to_owned());
            }
            if paths.is_empty() {
                return Err(usage("nothing to change: give --name, --state, --hosting or --notes"));
            }
            let mut req = pb::UpdateSiteRequest {
                site: Some(site),
                update_mask: Some(prost_types::FieldMask { paths }),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = client.update_site(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_site(&conn, &got, &kinds);
        }
        SiteCommand::Correct(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut site = conn.read_site(&a.site).await?;
            let mut client = conn.registry();
            let mut paths = Vec::new();
            if let Some(n) = &a.name {
                site.display_name = n.clone();
                paths.push("display_name");
            }
            if let Some(k) = &a.kind {
                site.kind = k.clone();
                paths.push("kind");
            }
            if !a.domains.is_empty() {
                site.domains = a.domains.clone();
                paths.push("domains");
            }
            let owner = site.owner.get_or_insert_with(Default::default);
            if let Some(o) = &a.owner {
                owner.display_name = o.clone();
                paths.push("owner.display_name");
            }
            if let Some(t) = &a.tax_code {
                owner.tax_code = t.clone();
                paths.push("owner.tax_code");
            }
            if paths.is_empty() {
                return Err(usage("nothing to correct: give --name, --kind, --domain, --owner or --tax-code"));
            }
            let mut req = pb::CorrectSiteRequest {
                site: Some(site),
                update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
                reason: a.reason.clone(),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = client.correct_site(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_site(&conn, &got, &kinds);
        }
        SiteCommand::Void(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let site = conn.read_site(&a.site).await?;
            let (name, mut client) = (site.name.clone(), conn.registry());
            let mut req =
                pb::VoidSiteRequest { name, etag: site.etag, reason: a.reason.clone(), request_id: String::new() };
            req.request_id = request_id(&req);
            let got = client.void_site(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_site(&conn, &got, &kinds);
        }
        SiteCommand::Import(a) => import(a).await?,
    }
    Ok(())
}

impl Conn {
    /// The site `id` (its id or its full name) as the node has it now.
    async fn read_site(&self, id: &str) -> anyhow::Result<pb::Site> {
        let name = self.resource("sites", id);
        Ok(self.registry().get_site(pb::GetSiteRequest { name }).await.map_err(|s| self.failed(&s))?.into_inner())
    }
}

fn print_site(conn: &Conn, s: &pb::Site, kinds: &Kinds) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&site_json(s)).unwrap_or_default());
    } else {
        print!("{}", site_text(s, kinds));
    }
}

/// The file as the import's CSV: a CSV as it is; an XLSX's first sheet written as CSV.
fn import_csv(file: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let xlsx = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    if !xlsx {
        return Ok(bytes);
    }
    use calamine::{Data, Reader as _};
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e| usage(format!("{} is not an XLSX workbook: {e}", file.display())))?;
    let range = wb
        .worksheet_range_at(0)
        .ok_or_else(|| usage(format!("{} has no sheet", file.display())))?
        .map_err(|e| usage(format!("{}: {e}", file.display())))?;
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in range.rows() {
        let cells: Vec<String> = row
            .iter()
            .map(|c| match c {
                Data::Empty => String::new(),
                Data::String(s) => s.clone(),
                // A tax code typed as a number loses nothing up to 15 digits.
                Data::Float(f) if f.fract() == 0.0 => format!("{}", *f as i64),
                other => other.to_string(),
            })
            .collect();
        w.write_record(&cells)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Imports the good rows and lists the bad: a dry run first (every bad row with its line and
/// field), then, unless `--dry-run`, the file without its bad lines. Exit 1 when any row was bad.
async fn import(a: SiteImportArgs) -> anyhow::Result<()> {
    let csv = import_csv(&a.file)?;
    let conn = a.target.connect(Role::Operator).await?;
    let mut client = conn.registry();
    let parent = conn.jurisdiction.to_string();
    let check =
        pb::ImportSitesRequest { parent: parent.clone(), csv: csv.clone(), dry_run: true, request_id: String::new() };
    let checked = client.import_sites(check).await.map_err(|s| conn.failed(&s))?.into_inner();
    let bad: std::collections::BTreeSet<u32> = checked.errors.iter().map(|e| e.line).collect();
    let mut imported = pb::ImportSitesResponse::default();
    if !a.dry_run && checked.row_count > 0 {
        let text = String::from_utf8(csv).map_err(|_| usage(format!("{} is not UTF-8", a.file.display())))?;
        let good = keep_lines(&text, &bad);
        let mut req =
            pb::ImportSitesRequest { parent, csv: good.into_bytes(), dry_run: false, request_id: String::new() };
        req.request_id = request_id(&req);
        imported = client.import_sites(req).await.map_err(|s| conn.failed(&s))?.into_inner();
        anyhow::ensure!(
            imported.errors.is_empty(),
            Failure::Refused(format!("the good rows were refused on a second look: {:?}", imported.errors))
        );
    }
    if conn.json {
        let errors: Vec<serde_json::Value> = checked
            .errors
            .iter()
            .map(|e| serde_json::json!({"line": e.line, "field": e.field, "description": e.description}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dry_run": a.dry_run,
                "good_rows": checked.row_count,
                "bad_rows": bad.len(),
                "errors": errors,
                "sites": imported.sites,
            }))?
        );
    } else {
        for e in &checked.errors {
            println!("dòng {}: {}: {}", e.line, e.field, e.description);
        }
        let good = checked.row_count;
        if a.dry_run {
            println!("kiểm tra: {good} dòng hợp lệ, {} dòng lỗi; chưa ghi gì", bad.len());
        } else {
            println!("đã nhập {} trang; {} dòng lỗi không nhập", imported.sites.len(), bad.len());
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Failure::Refused(format!("{} bad rows in {}", bad.len(), a.file.display())).into())
    }
}

/// The CSV without the records that start on the lines in `bad` (1-based, the header is line
/// 1); a quoted field may span lines, so records are counted, not raw lines.
fn keep_lines(text: &str, bad: &std::collections::BTreeSet<u32>) -> String {
    let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut w = csv::Writer::from_writer(Vec::new());
    for rec in r.records().flatten() {
        let line = rec.position().map_or(0, |p| p.line() as u32);
        if !bad.contains(&line) {
            let _ = w.write_record(&rec);
        }
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_records_are_dropped_by_their_first_line_even_when_a_field_spans_lines() {
        let text = "kind,display_name\nweb,A\nweb,\"B\nstill B\"\nweb,C\n";
        let bad = [3].into_iter().collect();
        assert_eq!(keep_lines(text, &bad), "kind,display_name\nweb,A\nweb,C\n");
    }
}
