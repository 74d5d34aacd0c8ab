//! The centre's desk: questions to the national gateway from a terminal — how fresh each
//! province is, a search across the country, the domains held in two provinces, and where a
//! campaign stands — as central staff.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use einfo_common::auth::{BearerToken, Role};
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as gw;
use einfo_reference::report::status_name;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{call_failure, day, profile_token, short, sign_in, table, usage, when};

/// The gateway and the caller.
#[derive(Args, Clone, Debug)]
pub struct Centre {
    /// The gateway's endpoint.
    #[arg(long, env = "EINFO_GATEWAY", default_value = "https://127.0.0.1:50051")]
    gateway: String,
    /// `einfo up`'s data directory: its `pki` (the gateway's certificate connects and signs a
    /// token when no profile is signed in for the centre).
    #[arg(long, env = "EINFO_DATA_DIR", default_value = ".einfo/up")]
    data_dir: PathBuf,
    /// The profile `einfo login` wrote; its token is used when it is for the centre.
    #[arg(long, env = "EINFO_PROFILE")]
    profile: Option<PathBuf>,
    /// Print JSON rather than a table.
    #[arg(long)]
    json: bool,
}

type National = gw::national_service_client::NationalServiceClient<InterceptedService<Channel, BearerToken>>;

impl Centre {
    async fn client(&self) -> anyhow::Result<National> {
        let signed_in = profile_token(self.profile.clone(), &Jurisdiction::Central).map(|(token, _)| token);
        let (token, channel) =
            sign_in(signed_in, &self.data_dir, Role::CentralAnalyst, Jurisdiction::Central, &self.gateway).await?;
        Ok(gw::national_service_client::NationalServiceClient::with_interceptor(channel, token)
            .max_decoding_message_size(64 * 1024 * 1024))
    }
}

/// The gateway's questions beside the summary and the export.
#[derive(Subcommand)]
pub enum NationalWork {
    /// How fresh each province is at the gateway: its replication state, the sequences applied,
    /// the last contact and the lag (GetReplicationStatus).
    Freshness(Centre),
    /// Search the country's sites by name (accents optional), domain or tax code.
    Search(SearchArgs),
    /// Domains held by sites of two provinces.
    Conflicts(Centre),
    /// Where a campaign stands: expected, submitted, on time, late, missing; every province's
    /// timeliness by the centre's receipts.
    Campaign(CampaignArgs),
    /// Valid licences across the country expiring within a number of days.
    Expiring(ExpiringArgs),
    /// Applications across the country pending past their deadline.
    Overdue(Centre),
    /// Inspections, violations, decisions, fines, suspensions and revocations by province over a
    /// period.
    Enforcement(EnforcementArgs),
}

#[derive(Args)]
pub struct ExpiringArgs {
    #[command(flatten)]
    centre: Centre,
    /// Within this many days.
    #[arg(long, default_value_t = 90)]
    days: i64,
}

#[derive(Args)]
pub struct EnforcementArgs {
    #[command(flatten)]
    centre: Centre,
    /// Start of the period (a date or an RFC 3339 instant).
    #[arg(long)]
    from: String,
    /// End of the period, exclusive.
    #[arg(long)]
    to: String,
}

#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    centre: Centre,
    /// Words of the name.
    #[arg(long)]
    query: Option<String>,
    /// A domain, or a registrable domain with --registrable.
    #[arg(long)]
    domain: Option<String>,
    /// The domain given is registrable: every site under it.
    #[arg(long)]
    registrable: bool,
    /// An owner's tax code.
    #[arg(long)]
    tax_code: Option<String>,
}

#[derive(Args)]
pub struct CampaignArgs {
    #[command(flatten)]
    centre: Centre,
    /// The campaign: `campaigns/{id}` or its id.
    #[arg(long)]
    campaign: String,
    /// 63 or 34 provinces.
    #[arg(long, default_value_t = 63)]
    grouping: u8,
}

fn partial() -> Option<gw::QueryOptions> {
    Some(gw::QueryOptions { mode: gw::QueryMode::Partial as i32, ..Default::default() })
}

fn name_of(j: &str) -> String {
    Jurisdiction::parse(j).ok().and_then(|j| j.info().map(|p| p.name.to_string())).unwrap_or_default()
}

fn freshness_json(f: &gw::JurisdictionFreshness) -> serde_json::Value {
    serde_json::json!({
        "jurisdiction": f.jurisdiction,
        "state": short(f.state().as_str_name(), "FRESHNESS_STATE_"),
        "registry_sequence": f.registry_sequence,
        "registry_head": f.registry_head,
        "inspection_sequence": f.inspection_sequence,
        "inspection_head": f.inspection_head,
        "sync_time": f.sync_time.map(|t| t.seconds),
        "lag_seconds": f.lag.map(|l| l.seconds),
        "detail": f.detail,
    })
}

fn site_row(s: &gw::NationalSite) -> (Vec<String>, serde_json::Value) {
    let site = s.site.clone().unwrap_or_default();
    let domains: Vec<String> = site.domain_details.iter().map(|d| d.unicode.clone()).collect();
    let row = vec![
        name_of(&s.jurisdiction),
        site.display_name.clone(),
        domains.join(", "),
        status_name(site.legal_status).to_owned(),
    ];
    let json = serde_json::json!({
        "jurisdiction": s.jurisdiction,
        "name": site.name,
        "display_name": site.display_name,
        "domains": domains,
        "legal_status": short(site.legal_status().as_str_name(), "LEGAL_STATUS_"),
    });
    (row, json)
}

fn out(json: bool, value: serde_json::Value, text: String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

/// Runs a question to the gateway.
pub async fn national(c: NationalWork) -> anyhow::Result<()> {
    match c {
        NationalWork::Freshness(a) => {
            let mut client = a.client().await?;
            let got = client
                .get_replication_status(gw::GetReplicationStatusRequest {})
                .await
                .map_err(|s| call_failure(&a.gateway, &s))?
                .into_inner();
            let rows: Vec<Vec<String>> = got
                .jurisdictions
                .iter()
                .map(|f| {
                    vec![
                        f.jurisdiction.clone(),
                        name_of(&f.jurisdiction),
                        short(f.state().as_str_name(), "FRESHNESS_STATE_"),
                        format!("{}/{}", f.registry_sequence, f.registry_head),
                        format!("{}/{}", f.inspection_sequence, f.inspection_head),
                        f.lag.map_or_else(String::new, |l| format!("{} s", l.seconds)),
                        day(f.sync_time.as_ref()),
                    ]
                })
                .collect();
            let live = got.jurisdictions.iter().filter(|f| f.state() == gw::FreshnessState::Live).count();
            let text = format!(
                "{}{live} of {} live\n",
                table(&["jurisdiction", "name", "state", "registry", "inspection", "lag", "last contact"], &rows),
                got.jurisdictions.len()
            );
            out(a.json, got.jurisdictions.iter().map(freshness_json).collect(), text)
        }
        NationalWork::Search(a) => {
            let mut req = gw::SearchSitesRequest {
                options: partial(),
                name_query: a.query.clone().unwrap_or_default(),
                owner_tax_code: a.tax_code.clone().unwrap_or_default(),
                page_size: 1000,
                ..Default::default()
            };
            match (&a.domain, a.registrable) {
                (Some(d), true) => req.registrable_domain = d.clone(),
                (Some(d), false) => req.domain = d.clone(),
                (None, _) => {}
            }
            if req.name_query.is_empty() && req.owner_tax_code.is_empty() && a.domain.is_none() {
                return Err(usage("give --query, --domain or --tax-code"));
            }
            let mut client = a.centre.client().await?;
            let got = client.search_sites(req).await.map_err(|s| call_failure(&a.centre.gateway, &s))?.into_inner();
            let (rows, json): (Vec<_>, Vec<_>) = got.sites.iter().map(site_row).unzip();
            let mut text = table(&["tỉnh, thành phố", "tên", "tên miền", "tình trạng"], &rows);
            text.push_str(&format!("Tổng cộng: {} trang\n", rows.len()));
            if !got.missing.is_empty() {
                let missing: Vec<&str> = got.missing.iter().map(|m| m.jurisdiction.as_str()).collect();
                text.push_str(&format!("INCOMPLETE: not searched (missing or stale): {}\n", missing.join(", ")));
            }
            let missing: Vec<String> = got.missing.iter().map(|m| m.jurisdiction.clone()).collect();
            out(a.centre.json, serde_json::json!({"sites": json, "missing": missing}), text)
        }
        NationalWork::Conflicts(a) => {
            let mut client = a.client().await?;
            let got = client
                .list_conflicts(gw::ListConflictsRequest { options: partial(), page_size: 1000 })
                .await
                .map_err(|s| call_failure(&a.gateway, &s))?
                .into_inner();
            let mut rows = Vec::new();
            let mut json = Vec::new();
            for c in &got.conflicts {
                let (sites, j): (Vec<_>, Vec<_>) = c.sites.iter().map(site_row).unzip();
                for s in sites {
                    rows.push([vec![c.registrable_domain.clone()], s].concat());
                }
                json.push(serde_json::json!({
                    "registrable_domain": c.registrable_domain,
                    "kind": short(c.kind().as_str_name(), "CONFLICT_KIND_"),
                    "sites": j,
                }));
            }
            let mut text = table(&["tên miền", "tỉnh, thành phố", "tên", "tên miền", "tình trạng"], &rows);
            text.push_str(&format!("{} tên miền ở hai tỉnh trở lên\n", got.conflicts.len()));
            out(a.json, serde_json::Value::Array(json), text)
        }
        NationalWork::Campaign(a) => {
            let grouping = match a.grouping {
                63 => gw::Grouping::Provinces63,
                34 => gw::Grouping::Provinces34,
                g => return Err(usage(format!("--grouping: {g} is neither 63 nor 34"))),
            };
            let mut client = a.centre.client().await?;
            let got = client
                .get_campaign_completeness(gw::GetCampaignCompletenessRequest {
                    campaign: format!("campaigns/{}", a.campaign.trim_start_matches("campaigns/")),
                    grouping: grouping as i32,
                })
                .await
                .map_err(|s| call_failure(&a.centre.gateway, &s))?
                .into_inner();
            let t = got.totals.clone().unwrap_or_default();
            let rows: Vec<Vec<String>> = got
                .targets
                .iter()
                .map(|x| {
                    vec![
                        x.jurisdiction.clone(),
                        name_of(&x.jurisdiction),
                        x.timeliness.clone(),
                        day(x.first_receive_time.as_ref()),
                        day(x.deadline.as_ref()),
                    ]
                })
                .collect();
            let mut text = table(&["jurisdiction", "name", "timeliness", "received", "deadline"], &rows);
            text.push_str(&format!(
                "expected {}, submitted {}, on time {}, late {}, missing {}\n",
                t.expected, t.submitted, t.on_time, t.late, t.missing
            ));
            let json = serde_json::json!({
                "expected": t.expected,
                "submitted": t.submitted,
                "on_time": t.on_time,
                "late": t.late,
                "missing": t.missing,
                "targets": got.targets.iter().map(|x| serde_json::json!({
                    "jurisdiction": x.jurisdiction,
                    "timeliness": x.timeliness,
                    "first_receive_time": x.first_receive_time.map(|t| t.seconds),
                    "deadline": x.deadline.map(|t| t.seconds),
                })).collect::<Vec<_>>(),
            });
            out(a.centre.json, json, text)
        }
        NationalWork::Expiring(a) => {
            let mut client = a.centre.client().await?;
            let got = client
                .list_expiring_licences(gw::ListExpiringLicencesRequest {
                    options: partial(),
                    within: Some(prost_types::Duration { seconds: a.days * 86_400, nanos: 0 }),
                    page_size: 1000,
                })
                .await
                .map_err(|s| call_failure(&a.centre.gateway, &s))?
                .into_inner();
            let mut rows = Vec::new();
            let mut json = Vec::new();
            for n in &got.licences {
                let l = n.licence.clone().unwrap_or_default();
                rows.push(vec![
                    name_of(&n.jurisdiction),
                    l.number.clone(),
                    day(l.expire_time.as_ref()),
                    l.name.clone(),
                ]);
                json.push(serde_json::json!({
                    "jurisdiction": n.jurisdiction,
                    "number": l.number,
                    "expire_time": l.expire_time.map(|t| t.seconds),
                    "name": l.name,
                }));
            }
            let mut text = table(&["tỉnh, thành phố", "giấy phép", "hết hạn", "mã"], &rows);
            text.push_str(&format!("Tổng cộng: {} giấy phép hết hạn trong {} ngày\n", got.total, a.days));
            out(a.centre.json, serde_json::json!({"total": got.total, "licences": json}), text)
        }
        NationalWork::Overdue(a) => {
            let mut client = a.client().await?;
            let got = client
                .list_overdue_applications(gw::ListOverdueApplicationsRequest { options: partial(), page_size: 1000 })
                .await
                .map_err(|s| call_failure(&a.gateway, &s))?
                .into_inner();
            let mut rows = Vec::new();
            let mut json = Vec::new();
            for n in &got.applications {
                let x = n.application.clone().unwrap_or_default();
                rows.push(vec![
                    name_of(&n.jurisdiction),
                    day(x.receive_time.as_ref()),
                    day(x.deadline.as_ref()),
                    x.name.clone(),
                ]);
                json.push(serde_json::json!({
                    "jurisdiction": n.jurisdiction,
                    "receive_time": x.receive_time.map(|t| t.seconds),
                    "deadline": x.deadline.map(|t| t.seconds),
                    "name": x.name,
                }));
            }
            let mut text = table(&["tỉnh, thành phố", "tiếp nhận", "hạn xử lý", "hồ sơ"], &rows);
            text.push_str(&format!("Tổng cộng: {} hồ sơ quá hạn\n", got.total));
            out(a.json, serde_json::json!({"total": got.total, "applications": json}), text)
        }
        NationalWork::Enforcement(a) => {
            let (from, to) = (when(&a.from, "from")?, when(&a.to, "to")?);
            let mut client = a.centre.client().await?;
            let got = client
                .get_enforcement_summary(gw::GetEnforcementSummaryRequest {
                    options: partial(),
                    period_start: Some(from),
                    period_end: Some(to),
                })
                .await
                .map_err(|s| call_failure(&a.centre.gateway, &s))?
                .into_inner();
            let figures = |e: &gw::EnforcementFigures| {
                serde_json::json!({
                    "unit": e.unit,
                    "inspections": e.inspections,
                    "violations": e.violations,
                    "decisions": e.decisions,
                    "fines_vnd": e.fines_vnd,
                    "suspensions": e.suspensions,
                    "revocations": e.revocations,
                })
            };
            let row = |name: String, e: &gw::EnforcementFigures| {
                vec![
                    name,
                    e.inspections.to_string(),
                    e.violations.to_string(),
                    e.decisions.to_string(),
                    e.fines_vnd.to_string(),
                    e.suspensions.to_string(),
                    e.revocations.to_string(),
                ]
            };
            let totals = got.totals.clone().unwrap_or_default();
            let mut rows: Vec<Vec<String>> = got.units.iter().map(|u| row(name_of(&u.unit), u)).collect();
            rows.push(row("Tổng cộng".into(), &totals));
            let text = table(
                &[
                    "tỉnh, thành phố",
                    "lượt kiểm tra",
                    "vi phạm",
                    "quyết định",
                    "tiền phạt (đồng)",
                    "đình chỉ",
                    "thu hồi",
                ],
                &rows,
            );
            let json = serde_json::json!({
                "units": got.units.iter().map(figures).collect::<Vec<_>>(),
                "totals": figures(&totals),
                "missing": got.missing.iter().map(|m| m.jurisdiction.clone()).collect::<Vec<_>>(),
            });
            out(a.centre.json, json, text)
        }
    }
}
