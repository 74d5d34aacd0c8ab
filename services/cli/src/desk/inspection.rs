//! The inspector's commands: a round decided (plan), an inspection recorded with the violations
//! found and its evidence, a sanction decision issued, and the lists of each.

use clap::{Args, Subcommand};
use einfo_common::auth::{BearerToken, Role};
use einfo_proto::inspection::v1 as pb;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{Conn, Target, day, parse_enum, request_id, short, table, usage, when};

type Inspection = pb::inspection_service_client::InspectionServiceClient<InterceptedService<Channel, BearerToken>>;

impl Conn {
    fn inspection(&self) -> Inspection {
        pb::inspection_service_client::InspectionServiceClient::with_interceptor(
            self.channel.clone(),
            self.token.clone(),
        )
        .max_decoding_message_size(64 * 1024 * 1024)
    }
}

/// The inspector's commands.
#[derive(Subcommand)]
pub enum InspectionCommand {
    /// Record a round (cuộc thanh tra, kiểm tra) as its decision orders it.
    Plan(PlanArgs),
    /// Move a round on — started (`in-progress`) or finished (`closed`) — with the agencies that
    /// actually took part.
    Round(RoundArgs),
    /// Record an inspection of a site: what was found, the evidence, the violations.
    Record(RecordArgs),
    /// Issue a sanction decision on an inspection's violations.
    Decide(DecideArgs),
    /// List the province's rounds, inspections or decisions.
    List(InspectionListArgs),
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    target: Target,
    /// The decision's number, e.g. `45/QĐ-STTTT`.
    #[arg(long)]
    decision_number: String,
    /// The decision's date.
    #[arg(long)]
    decided: String,
    /// Start of the period inspected.
    #[arg(long)]
    from: String,
    /// End of the period inspected.
    #[arg(long)]
    to: String,
    /// The lead unit, e.g. `Thanh tra Sở`.
    #[arg(long)]
    lead_unit: String,
    /// inspection (thanh tra) or check (kiểm tra).
    #[arg(long, default_value = "check")]
    kind: String,
    /// The title of who issued the decision.
    #[arg(long, default_value = "")]
    issuer_title: String,
    /// A coordinating agency's code (`police`, `culture`; repeat for more).
    #[arg(long = "agency")]
    agencies: Vec<String>,
    /// A site to inspect (repeat for more).
    #[arg(long = "site")]
    sites: Vec<String>,
}

#[derive(Args)]
pub struct RoundArgs {
    #[command(flatten)]
    target: Target,
    /// The round: its id or `provinces/2008-01/plans/{id}`.
    plan: String,
    /// in-progress or closed.
    #[arg(long)]
    state: String,
    /// An agency that took part (`police`, `culture`; repeat for more).
    #[arg(long = "took-part")]
    participants: Vec<String>,
}

#[derive(Args)]
pub struct RecordArgs {
    #[command(flatten)]
    target: Target,
    /// The site inspected.
    #[arg(long)]
    site: String,
    /// When.
    #[arg(long)]
    on: String,
    /// The round it belongs to, if any.
    #[arg(long)]
    plan: Option<String>,
    /// scheduled, unscheduled, complaint or referral.
    #[arg(long, default_value = "unscheduled")]
    r#type: String,
    /// An inspector's name (repeat for more).
    #[arg(long = "inspector", required = true)]
    inspectors: Vec<String>,
    /// What was found.
    #[arg(long)]
    findings: String,
    /// Evidence: `URL=SHA256` of the captured content (repeat for more).
    #[arg(long = "evidence")]
    evidence: Vec<String>,
    /// A violation: `CODE@DATE` (the catalogue code and when the act was committed; repeat).
    #[arg(long = "violation")]
    violations: Vec<String>,
}

#[derive(Args)]
pub struct DecideArgs {
    #[command(flatten)]
    target: Target,
    /// The inspection whose violations it sanctions.
    #[arg(long)]
    inspection: String,
    /// The decision's number, e.g. `45/QĐ-XPVPHC`.
    #[arg(long)]
    number: String,
    /// Its date.
    #[arg(long)]
    on: String,
    /// The offender's name.
    #[arg(long)]
    offender: String,
    /// organisation or person.
    #[arg(long, default_value = "organisation")]
    offender_kind: String,
    /// The fine in đồng (0 with --warning).
    #[arg(long, default_value_t = 0)]
    fine: i64,
    /// A warning (cảnh cáo) instead of a fine.
    #[arg(long)]
    warning: bool,
    /// The deadline to comply.
    #[arg(long)]
    deadline: String,
}

#[derive(Args)]
pub struct InspectionListArgs {
    #[command(flatten)]
    target: Target,
    /// plans, inspections or decisions.
    #[arg(default_value = "decisions")]
    what: String,
}

fn plan_json(p: &pb::InspectionPlan) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "decision_number": p.decision_number,
        "decision_time": day(p.decision_time.as_ref()),
        "round_kind": short(p.round_kind().as_str_name(), "ROUND_KIND_"),
        "state": short(p.state().as_str_name(), "PLAN_STATE_"),
        "coordinating_agencies": p.coordinating_agencies,
        "target_sites": p.target_sites,
    })
}

fn inspection_json(i: &pb::Inspection) -> serde_json::Value {
    serde_json::json!({
        "name": i.name,
        "site": i.site,
        "plan": i.plan,
        "inspect_time": day(i.inspect_time.as_ref()),
        "result": short(i.result().as_str_name(), "INSPECTION_RESULT_"),
        "violations": i.violations.iter().map(|v| v.code.clone()).collect::<Vec<_>>(),
    })
}

fn decision_json(d: &pb::SanctionDecision) -> serde_json::Value {
    serde_json::json!({
        "name": d.name,
        "number": d.number,
        "decision_time": day(d.decision_time.as_ref()),
        "offender": d.offender_name,
        "fine_vnd": d.fine_vnd,
        "warning": d.warning,
        "state": short(d.state().as_str_name(), "DECISION_STATE_"),
        "legal_bases": d.legal_bases.iter().map(einfo_reference::catalogue::cite).collect::<Vec<_>>(),
    })
}

fn print(conn: &Conn, json: serde_json::Value) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
    } else if let Some(map) = json.as_object() {
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{k:<22} {v}");
        }
    }
}

/// Runs an inspection command.
pub async fn inspection(c: InspectionCommand) -> anyhow::Result<()> {
    match c {
        InspectionCommand::Plan(a) => {
            let conn = a.target.connect(Role::Inspector).await?;
            let round_kind =
                parse_enum("ROUND_KIND", &a.kind, "kind", |n| pb::RoundKind::from_str_name(n).map(|e| e as i32))?;
            let mut req = pb::CreatePlanRequest {
                parent: conn.jurisdiction.to_string(),
                plan: Some(pb::InspectionPlan {
                    decision_number: a.decision_number.clone(),
                    decision_time: Some(when(&a.decided, "decided")?),
                    period_start: Some(when(&a.from, "from")?),
                    period_end: Some(when(&a.to, "to")?),
                    lead_unit: a.lead_unit.clone(),
                    round_kind,
                    issuer_title: a.issuer_title.clone(),
                    coordinating_agencies: a.agencies.clone(),
                    target_sites: a.sites.iter().map(|s| conn.resource("sites", s)).collect(),
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.inspection().create_plan(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print(&conn, plan_json(&got));
        }
        InspectionCommand::Round(a) => {
            let conn = a.target.connect(Role::Inspector).await?;
            let name = conn.resource("plans", &a.plan);
            let mut client = conn.inspection();
            let plan = client
                .get_plan(pb::GetPlanRequest { name: name.clone() })
                .await
                .map_err(|s| conn.failed(&s))?
                .into_inner();
            let mut req = pb::AdvancePlanRequest {
                name,
                etag: plan.etag,
                state: parse_enum("PLAN_STATE", &a.state, "state", |n| {
                    pb::PlanState::from_str_name(n).map(|e| e as i32)
                })?,
                request_id: String::new(),
                participating_agencies: a.participants.clone(),
            };
            req.request_id = request_id(&req);
            let got = client.advance_plan(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            let mut j = plan_json(&got);
            j["participating_agencies"] = serde_json::json!(got.participating_agencies);
            print(&conn, j);
        }
        InspectionCommand::Record(a) => {
            let conn = a.target.connect(Role::Inspector).await?;
            let at = when(&a.on, "on")?;
            let mut violations = Vec::new();
            for v in &a.violations {
                let (code, date) = v
                    .split_once('@')
                    .ok_or_else(|| usage(format!("--violation '{v}': CODE@DATE, e.g. ND174-64-1-b@10/09/2014")))?;
                violations.push(pb::Violation {
                    code: code.trim().to_owned(),
                    act_time: Some(when(date, "violation")?),
                    ..Default::default()
                });
            }
            let mut evidence = Vec::new();
            for e in &a.evidence {
                let (url, sha256) = e.rsplit_once('=').ok_or_else(|| usage(format!("--evidence '{e}': URL=SHA256")))?;
                evidence.push(pb::Evidence { url: url.to_owned(), capture_time: Some(at), sha256: sha256.to_owned() });
            }
            let result = if violations.is_empty() {
                pb::InspectionResult::Compliant
            } else {
                pb::InspectionResult::ViolationsFound
            };
            let mut req = pb::RecordInspectionRequest {
                parent: conn.jurisdiction.to_string(),
                inspection: Some(pb::Inspection {
                    plan: a.plan.as_deref().map(|p| conn.resource("plans", p)).unwrap_or_default(),
                    site: conn.resource("sites", &a.site),
                    inspect_time: Some(at),
                    r#type: parse_enum("INSPECTION_TYPE", &a.r#type, "type", |n| {
                        pb::InspectionType::from_str_name(n).map(|e| e as i32)
                    })?,
                    inspectors: a.inspectors.clone(),
                    findings: a.findings.clone(),
                    evidence,
                    result: result as i32,
                    violations,
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.inspection().record_inspection(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print(&conn, inspection_json(&got));
        }
        InspectionCommand::Decide(a) => {
            let conn = a.target.connect(Role::Inspector).await?;
            let ins_name = conn.resource("inspections", &a.inspection);
            let ins = conn
                .inspection()
                .get_inspection(pb::GetInspectionRequest { name: ins_name.clone() })
                .await
                .map_err(|s| conn.failed(&s))?
                .into_inner();
            let mut req = pb::IssueDecisionRequest {
                parent: conn.jurisdiction.to_string(),
                decision: Some(pb::SanctionDecision {
                    number: a.number.clone(),
                    decision_time: Some(when(&a.on, "on")?),
                    inspection: ins_name,
                    offender_kind: parse_enum("OFFENDER_KIND", &a.offender_kind, "offender-kind", |n| {
                        pb::OffenderKind::from_str_name(n).map(|e| e as i32)
                    })?,
                    offender_name: a.offender.clone(),
                    fine_vnd: a.fine,
                    warning: a.warning,
                    compliance_deadline: Some(when(&a.deadline, "deadline")?),
                    site: ins.site,
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.inspection().issue_decision(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print(&conn, decision_json(&got));
        }
        InspectionCommand::List(a) => {
            let conn = a.target.connect(Role::Inspector).await?;
            let parent = conn.jurisdiction.to_string();
            let mut client = conn.inspection();
            let mut token = String::new();
            let mut all: Vec<serde_json::Value> = Vec::new();
            let mut rows: Vec<Vec<String>> = Vec::new();
            let heads: &[&str] = match a.what.as_str() {
                "plans" => &["STT", "Quyết định", "Ngày", "Loại", "Tình trạng"],
                "inspections" => &["STT", "Ngày", "Trang", "Kết quả", "Vi phạm"],
                "decisions" => &["STT", "Số", "Ngày", "Đối tượng", "Số tiền (đồng)"],
                other => return Err(usage(format!("'{other}': plans, inspections or decisions"))),
            };
            loop {
                let page_token = std::mem::take(&mut token);
                let next = match a.what.as_str() {
                    "plans" => {
                        let got = client
                            .list_plans(pb::ListPlansRequest { parent: parent.clone(), page_size: 1000, page_token })
                            .await
                            .map_err(|s| conn.failed(&s))?
                            .into_inner();
                        for p in &got.plans {
                            let j = plan_json(p);
                            rows.push(vec![
                                (rows.len() + 1).to_string(),
                                p.decision_number.clone(),
                                day(p.decision_time.as_ref()),
                                j["round_kind"].as_str().unwrap_or_default().to_owned(),
                                j["state"].as_str().unwrap_or_default().to_owned(),
                            ]);
                            all.push(j);
                        }
                        got.next_page_token
                    }
                    "inspections" => {
                        let got = client
                            .list_inspections(pb::ListInspectionsRequest {
                                parent: parent.clone(),
                                page_size: 1000,
                                page_token,
                                ..Default::default()
                            })
                            .await
                            .map_err(|s| conn.failed(&s))?
                            .into_inner();
                        for i in &got.inspections {
                            let j = inspection_json(i);
                            rows.push(vec![
                                (rows.len() + 1).to_string(),
                                day(i.inspect_time.as_ref()),
                                if i.site_display_name.is_empty() {
                                    i.site.clone()
                                } else {
                                    i.site_display_name.clone()
                                },
                                j["result"].as_str().unwrap_or_default().to_owned(),
                                i.violations.len().to_string(),
                            ]);
                            all.push(j);
                        }
                        got.next_page_token
                    }
                    _ => {
                        let got = client
                            .list_decisions(pb::ListDecisionsRequest {
                                parent: parent.clone(),
                                page_size: 1000,
                                page_token,
                            })
                            .await
                            .map_err(|s| conn.failed(&s))?
                            .into_inner();
                        for d in &got.decisions {
                            rows.push(vec![
                                (rows.len() + 1).to_string(),
                                d.number.clone(),
                                day(d.decision_time.as_ref()),
                                d.offender_name.clone(),
                                if d.warning { "cảnh cáo".to_owned() } else { d.fine_vnd.to_string() },
                            ]);
                            all.push(decision_json(d));
                        }
                        got.next_page_token
                    }
                };
                if next.is_empty() {
                    break;
                }
                token = next;
            }
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", table(heads, &rows));
                println!("Tổng cộng: {}", rows.len());
            }
        }
    }
    Ok(())
}
