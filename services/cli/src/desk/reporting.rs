//! The reporting officer's commands: a province's report for a campaign — compile it from the
//! register and the inspections, read it, edit its narrative or a figure, submit it, and follow
//! what the centre made of it.

use clap::{Args, Subcommand};
use einfo_common::auth::Role;
use einfo_proto::reporting::v1 as pb;
use einfo_reference::indicators::Catalogue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{Conn, Target, day, request_id, short, table, usage};

type Reporting =
    pb::reporting_service_client::ReportingServiceClient<InterceptedService<Channel, einfo_common::auth::BearerToken>>;

impl Conn {
    fn reporting(&self) -> Reporting {
        pb::reporting_service_client::ReportingServiceClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    /// The report of this province for `campaign` (`campaigns/{id}` or the id).
    fn report_name(&self, campaign: &str) -> String {
        format!("{}/reports/{}", self.jurisdiction, campaign.trim_start_matches("campaigns/"))
    }
}

fn campaign_name(campaign: &str) -> String {
    format!("campaigns/{}", campaign.trim_start_matches("campaigns/"))
}

/// What the centre's state of a report reads as.
fn report_state(s: i32) -> &'static str {
    match pb::ReportState::try_from(s) {
        Ok(pb::ReportState::Draft) => "Dự thảo",
        Ok(pb::ReportState::Submitted) => "Đã gửi",
        Ok(pb::ReportState::Returned) => "Bị trả lại",
        Ok(pb::ReportState::Accepted) => "Đã được chấp nhận",
        _ => "",
    }
}

fn timeliness(t: i32) -> &'static str {
    match pb::Timeliness::try_from(t) {
        Ok(pb::Timeliness::OnTime) => "Đúng hạn",
        Ok(pb::Timeliness::Late) => "Trễ hạn",
        Ok(pb::Timeliness::Missing) => "Chưa nộp",
        _ => "",
    }
}

fn report_json(r: &pb::Report) -> serde_json::Value {
    let v = r.current.clone().unwrap_or_default();
    serde_json::json!({
        "name": r.name,
        "campaign": r.campaign,
        "state": short(r.state().as_str_name(), "REPORT_STATE_"),
        "timeliness": short(r.timeliness().as_str_name(), "TIMELINESS_"),
        "deadline": r.deadline.map(|t| t.seconds),
        "first_receive_time": r.first_receive_time.map(|t| t.seconds),
        "submitted_versions": r.submitted_versions,
        "version": v.version,
        "centre_comment": r.centre_comment,
        "etag": r.etag,
        "values": v.values.iter().map(|x| serde_json::json!({
            "indicator": x.indicator,
            "dimension": x.dimension,
            "computed": x.computed,
            "reported": if x.overridden { x.override_value } else { x.computed },
            "justification": x.justification,
        })).collect::<Vec<_>>(),
        "narrative": v.narrative.iter().map(|n| serde_json::json!({"section": n.section, "text": n.text})).collect::<Vec<_>>(),
    })
}

/// The report's state and its figures as a reporting officer reads them.
fn report_text(r: &pb::Report, indicators: &Catalogue) -> String {
    let v = r.current.clone().unwrap_or_default();
    let mut out = String::new();
    let mut state = report_state(r.state).to_owned();
    if r.submitted_versions > 0 {
        state.push_str(&format!(", {} lần gửi", r.submitted_versions));
    }
    for (k, val) in [
        ("Báo cáo", r.name.clone()),
        ("Tình trạng", state),
        ("Hạn nộp", day(r.deadline.as_ref())),
        ("Tiến độ", timeliness(r.timeliness).to_owned()),
        ("Ý kiến Cục", r.centre_comment.clone()),
    ] {
        if !val.is_empty() {
            out.push_str(&format!("{k:<11} {val}\n"));
        }
    }
    let rows: Vec<Vec<String>> = v
        .values
        .iter()
        .map(|x| {
            let name = indicators.get(&x.indicator).map_or(x.indicator.clone(), |i| i.name_vi.clone());
            let reported = if x.overridden { x.override_value } else { x.computed };
            let note =
                if x.overridden { format!("sửa từ {}: {}", x.computed, x.justification) } else { String::new() };
            vec![name, x.dimension.clone(), reported.to_string(), note]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(&["Chỉ tiêu", "Phân tổ", "Số liệu", "Ghi chú"], &rows));
    for n in &v.narrative {
        out.push_str(&format!("\n[{}]\n{}\n", n.section, n.text));
    }
    out
}

/// The reporting officer's commands on a province's report for a campaign.
#[derive(Subcommand)]
pub enum ReportWork {
    /// Compile (or recompile) the report's figures from the register and the inspections, as of
    /// the campaign's cut-off; prints the figures that changed.
    Compile(ReportArgs),
    /// Show the report: its state, its figures as reported, its narrative.
    Show(ReportArgs),
    /// Write a narrative section (`--section`, `--text`), or report a figure other than the
    /// computed one (`--indicator`, `--dimension`, `--value`, `--justification`).
    Edit(ReportEditArgs),
    /// Submit the draft to the centre; the receipt comes back by itself (see `status`).
    Submit(ReportArgs),
    /// The province's campaigns and where its report for each stands.
    Status(ReportStatusArgs),
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    target: Target,
    /// The campaign: `campaigns/{id}` or its id.
    #[arg(long)]
    campaign: String,
}

#[derive(Args)]
pub struct ReportEditArgs {
    #[command(flatten)]
    target: Target,
    /// The campaign: `campaigns/{id}` or its id.
    #[arg(long)]
    campaign: String,
    /// A narrative section of the campaign (assessment, results, difficulties, recommendations).
    #[arg(long, requires = "text", conflicts_with = "indicator")]
    section: Option<String>,
    /// The section's text.
    #[arg(long)]
    text: Option<String>,
    /// An indicator whose figure to report otherwise.
    #[arg(long, requires_all = ["value", "justification"])]
    indicator: Option<String>,
    /// The figure's dimension (empty for a single figure).
    #[arg(long, default_value = "")]
    dimension: String,
    /// The figure to report.
    #[arg(long)]
    value: Option<i64>,
    /// Why it differs from the computed one.
    #[arg(long)]
    justification: Option<String>,
}

#[derive(Args)]
pub struct ReportStatusArgs {
    #[command(flatten)]
    target: Target,
}

async fn current(conn: &Conn, campaign: &str) -> anyhow::Result<pb::Report> {
    let got = conn
        .reporting()
        .get_report(pb::GetReportRequest { name: conn.report_name(campaign), version: 0 })
        .await
        .map_err(|s| conn.failed(&s))?
        .into_inner();
    Ok(got.report.unwrap_or_default())
}

fn print_report(conn: &Conn, r: &pb::Report) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&report_json(r)).unwrap_or_default());
    } else {
        print!("{}", report_text(r, &Catalogue::bundled()));
    }
}

/// Runs a report command.
pub async fn report(c: ReportWork) -> anyhow::Result<()> {
    match c {
        ReportWork::Compile(a) => {
            let conn = a.target.connect(Role::Reporter).await?;
            let mut req = pb::CompileReportRequest {
                parent: conn.jurisdiction.to_string(),
                campaign: campaign_name(&a.campaign),
                request_id: String::new(),
            };
            // A compilation is asked for again on purpose: its key names the report's state too.
            let before = conn
                .reporting()
                .get_report(pb::GetReportRequest { name: conn.report_name(&a.campaign), version: 0 })
                .await;
            let etag = before.ok().and_then(|r| r.into_inner().report).map(|r| r.etag).unwrap_or_default();
            req.request_id = format!("{}-{etag}", request_id(&req));
            let got = conn.reporting().compile_report(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            let report = got.report.unwrap_or_default();
            if conn.json {
                let changes: Vec<serde_json::Value> = got
                    .changes
                    .iter()
                    .map(|c| serde_json::json!({"indicator": c.indicator, "dimension": c.dimension, "before": c.before, "after": c.after}))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"report": report_json(&report), "changes": changes})
                    )?
                );
            } else {
                print!("{}", report_text(&report, &Catalogue::bundled()));
                println!("\n{} số liệu thay đổi", got.changes.len());
            }
        }
        ReportWork::Show(a) => {
            let conn = a.target.connect(Role::Reporter).await?;
            let r = current(&conn, &a.campaign).await?;
            print_report(&conn, &r);
        }
        ReportWork::Edit(a) => {
            let conn = a.target.connect(Role::Reporter).await?;
            let r = current(&conn, &a.campaign).await?;
            let got = match (&a.section, &a.indicator) {
                (Some(section), _) => {
                    let mut req = pb::SetNarrativeRequest {
                        name: r.name.clone(),
                        etag: r.etag.clone(),
                        section: section.clone(),
                        text: a.text.clone().unwrap_or_default(),
                        request_id: String::new(),
                    };
                    req.request_id = request_id(&req);
                    conn.reporting().set_narrative(req).await
                }
                (None, Some(indicator)) => {
                    let mut req = pb::OverrideValueRequest {
                        name: r.name.clone(),
                        etag: r.etag.clone(),
                        indicator: indicator.clone(),
                        dimension: a.dimension.clone(),
                        value: a.value.unwrap_or_default(),
                        justification: a.justification.clone().unwrap_or_default(),
                        request_id: String::new(),
                    };
                    req.request_id = request_id(&req);
                    conn.reporting().override_value(req).await
                }
                (None, None) => {
                    return Err(usage("give --section and --text, or --indicator, --value and --justification"));
                }
            }
            .map_err(|s| conn.failed(&s))?
            .into_inner();
            print_report(&conn, &got);
        }
        ReportWork::Submit(a) => {
            let conn = a.target.connect(Role::Reporter).await?;
            let r = current(&conn, &a.campaign).await?;
            let mut req =
                pb::SubmitReportRequest { name: r.name.clone(), etag: r.etag.clone(), request_id: String::new() };
            req.request_id = request_id(&req);
            let got = conn.reporting().submit_report(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_report(&conn, &got);
        }
        ReportWork::Status(a) => {
            let conn = a.target.connect(Role::Reporter).await?;
            let campaigns = conn
                .reporting()
                .list_campaigns(pb::ListCampaignsRequest { parent: conn.jurisdiction.to_string() })
                .await
                .map_err(|s| conn.failed(&s))?
                .into_inner()
                .campaigns;
            let mut rows = Vec::new();
            let mut all = Vec::new();
            for c in &campaigns {
                let got = conn
                    .reporting()
                    .get_report(pb::GetReportRequest { name: conn.report_name(&c.name), version: 0 })
                    .await;
                let report = match got {
                    Ok(r) => r.into_inner().report,
                    Err(s) if s.code() == tonic::Code::NotFound => None,
                    Err(s) => return Err(conn.failed(&s)),
                };
                let (state, timely) = report
                    .as_ref()
                    .map_or(("Chưa lập", "Chưa nộp"), |r| (report_state(r.state), timeliness(r.timeliness)));
                rows.push(vec![
                    c.reference.clone(),
                    c.title.clone(),
                    day(c.deadline.as_ref()),
                    state.to_owned(),
                    timely.to_owned(),
                ]);
                all.push(serde_json::json!({
                    "campaign": c.name,
                    "reference": c.reference,
                    "title": c.title,
                    "deadline": c.deadline.map(|t| t.seconds),
                    "report": report.as_ref().map(report_json),
                }));
            }
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", table(&["Số hiệu", "Nội dung", "Hạn nộp", "Báo cáo", "Tiến độ"], &rows));
            }
        }
    }
    Ok(())
}
