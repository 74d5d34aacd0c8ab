//! The operator's commands on applications and licences.

use clap::{Args, Subcommand};
use einfo_common::auth::Role;
use einfo_proto::registry::v1 as pb;

use super::{Conn, Target, day, parse_enum, request_id, short, table, usage, when};

/// What a report calls an application's state.
fn application_state(s: i32) -> &'static str {
    match pb::ApplicationState::try_from(s) {
        Ok(pb::ApplicationState::Received) => "Đang xử lý",
        Ok(pb::ApplicationState::NeedsSupplement) => "Chờ bổ sung hồ sơ",
        Ok(pb::ApplicationState::Approved) => "Đã cấp phép",
        Ok(pb::ApplicationState::Rejected) => "Từ chối",
        _ => "",
    }
}

/// What a report calls a licence's state.
fn licence_state(s: i32) -> &'static str {
    match pb::LicenceState::try_from(s) {
        Ok(pb::LicenceState::Valid) => "Còn hiệu lực",
        Ok(pb::LicenceState::Suspended) => "Bị đình chỉ",
        Ok(pb::LicenceState::Revoked) => "Bị thu hồi",
        Ok(pb::LicenceState::Expired) => "Hết hạn",
        Ok(pb::LicenceState::Superseded) => "Đã được thay thế",
        _ => "",
    }
}

fn application_json(a: &pb::LicenceApplication) -> serde_json::Value {
    serde_json::json!({
        "name": a.name,
        "site": a.site,
        "state": short(a.state().as_str_name(), "APPLICATION_STATE_"),
        "receive_time": day(a.receive_time.as_ref()),
        "deadline": day(a.deadline.as_ref()),
        "overdue": a.overdue,
        "licence": a.licence,
        "state_reason": a.state_reason,
    })
}

fn licence_json(l: &pb::Licence) -> serde_json::Value {
    serde_json::json!({
        "name": l.name,
        "site": l.site,
        "number": l.number,
        "issuing_authority": l.issuing_authority,
        "issue_time": day(l.issue_time.as_ref()),
        "expire_time": day(l.expire_time.as_ref()),
        "state": short(l.state().as_str_name(), "LICENCE_STATE_"),
        "suspended_until": day(l.suspended_until.as_ref()),
    })
}

fn print_application(conn: &Conn, a: &pb::LicenceApplication) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&application_json(a)).unwrap_or_default());
        return;
    }
    let mut state = application_state(a.state).to_owned();
    if a.overdue {
        state.push_str(", quá hạn");
    }
    if !a.state_reason.is_empty() {
        state.push_str(&format!(" ({})", a.state_reason));
    }
    for (k, v) in [
        ("Hồ sơ", a.name.clone()),
        ("Trang", a.site.clone()),
        ("Tiếp nhận", day(a.receive_time.as_ref())),
        ("Hạn xử lý", day(a.deadline.as_ref())),
        ("Tình trạng", state),
        ("Giấy phép", a.licence.clone()),
    ] {
        if !v.is_empty() {
            println!("{k:<11} {v}");
        }
    }
}

fn print_licence(conn: &Conn, l: &pb::Licence) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&licence_json(l)).unwrap_or_default());
        return;
    }
    let mut state = licence_state(l.state).to_owned();
    if l.state == pb::LicenceState::Suspended as i32 {
        state.push_str(&format!(" đến {}", day(l.suspended_until.as_ref())));
    }
    for (k, v) in [
        ("Giấy phép", l.number.clone()),
        ("Cơ quan cấp", l.issuing_authority.clone()),
        ("Ngày cấp", day(l.issue_time.as_ref())),
        ("Hết hạn", day(l.expire_time.as_ref())),
        ("Tình trạng", state),
        ("Trang", l.site.clone()),
        ("Mã", l.name.clone()),
    ] {
        println!("{k:<11} {v}");
    }
}

/// The operator's commands on licence applications.
#[derive(Subcommand)]
pub enum ApplicationCommand {
    /// Record an application received for a site.
    Submit(ApplicationSubmitArgs),
    /// Ask the applicant for a supplement (`--missing`), or record that it arrived
    /// (`--received`): the processing deadline restarts from it.
    Supplement(ApplicationSupplementArgs),
    /// Approve an application and issue its licence.
    Approve(ApplicationApproveArgs),
    /// Reject an application, with the reason.
    Reject(ApplicationRejectArgs),
    /// List the province's applications, every page.
    List(ApplicationListArgs),
}

#[derive(Args)]
pub struct ApplicationSubmitArgs {
    #[command(flatten)]
    target: Target,
    /// The site applied for: its id or `provinces/2008-01/sites/{id}`.
    #[arg(long)]
    site: String,
    /// When the dossier was received: a date (dd/mm/yyyy or yyyy-mm-dd, the start of that day in
    /// Vietnam) or an RFC 3339 instant.
    #[arg(long)]
    received: String,
    /// A dossier item received (repeat for more).
    #[arg(long = "item", default_value = "đơn đề nghị cấp giấy phép")]
    items: Vec<String>,
}

#[derive(Args)]
pub struct ApplicationSupplementArgs {
    #[command(flatten)]
    target: Target,
    /// The application: its id or `provinces/2008-01/applications/{id}`.
    application: String,
    /// What is missing: asks the applicant for it.
    #[arg(long, conflicts_with = "received", required_unless_present = "received")]
    missing: Option<String>,
    /// When the supplement arrived.
    #[arg(long)]
    received: Option<String>,
}

#[derive(Args)]
pub struct ApplicationApproveArgs {
    #[command(flatten)]
    target: Target,
    /// The application: its id or `provinces/2008-01/applications/{id}`.
    application: String,
    /// The licence's number, e.g. `15/GP-STTTT`.
    #[arg(long)]
    number: String,
    /// Who issues it.
    #[arg(long)]
    authority: String,
    /// When it is issued.
    #[arg(long)]
    issued: String,
    /// When it expires.
    #[arg(long)]
    expires: String,
}

#[derive(Args)]
pub struct ApplicationRejectArgs {
    #[command(flatten)]
    target: Target,
    /// The application: its id or `provinces/2008-01/applications/{id}`.
    application: String,
    /// Why.
    #[arg(long)]
    reason: String,
}

#[derive(Args)]
pub struct ApplicationListArgs {
    #[command(flatten)]
    target: Target,
    /// Only pending applications past their deadline.
    #[arg(long)]
    overdue: bool,
    /// Only this state: received, needs-supplement, approved, rejected.
    #[arg(long)]
    state: Option<String>,
}

/// Runs an application command.
pub async fn application(c: ApplicationCommand) -> anyhow::Result<()> {
    match c {
        ApplicationCommand::Submit(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut req = pb::SubmitApplicationRequest {
                application: Some(pb::LicenceApplication {
                    site: conn.resource("sites", &a.site),
                    dossier_items: a.items.clone(),
                    receive_time: Some(when(&a.received, "received")?),
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.registry().submit_application(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_application(&conn, &got);
        }
        ApplicationCommand::Supplement(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let name = conn.resource("applications", &a.application);
            let got = match (&a.missing, &a.received) {
                (Some(missing), _) => {
                    let mut req =
                        pb::RequestSupplementRequest { name, reason: missing.clone(), request_id: String::new() };
                    req.request_id = request_id(&req);
                    conn.registry().request_supplement(req).await
                }
                (None, Some(received)) => {
                    let mut req = pb::ReceiveSupplementRequest {
                        name,
                        receive_time: Some(when(received, "received")?),
                        request_id: String::new(),
                    };
                    req.request_id = request_id(&req);
                    conn.registry().receive_supplement(req).await
                }
                (None, None) => return Err(usage("give --missing or --received")),
            }
            .map_err(|s| conn.failed(&s))?
            .into_inner();
            print_application(&conn, &got);
        }
        ApplicationCommand::Approve(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut req = pb::ApproveApplicationRequest {
                name: conn.resource("applications", &a.application),
                licence: Some(pb::Licence {
                    number: a.number.clone(),
                    issuing_authority: a.authority.clone(),
                    issue_time: Some(when(&a.issued, "issued")?),
                    expire_time: Some(when(&a.expires, "expires")?),
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.registry().approve_application(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            if conn.json {
                let both = serde_json::json!({
                    "application": got.application.as_ref().map(application_json),
                    "licence": got.licence.as_ref().map(licence_json),
                });
                println!("{}", serde_json::to_string_pretty(&both)?);
            } else if let Some(l) = &got.licence {
                print_licence(&conn, l);
            }
        }
        ApplicationCommand::Reject(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut req = pb::RejectApplicationRequest {
                name: conn.resource("applications", &a.application),
                reason: a.reason.clone(),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.registry().reject_application(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_application(&conn, &got);
        }
        ApplicationCommand::List(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut req = pb::ListApplicationsRequest {
                parent: conn.jurisdiction.to_string(),
                page_size: 1000,
                overdue_only: a.overdue,
                ..Default::default()
            };
            if let Some(s) = &a.state {
                req.state = parse_enum("APPLICATION_STATE", s, "state", |n| {
                    pb::ApplicationState::from_str_name(n).map(|e| e as i32)
                })?;
            }
            let mut all = Vec::new();
            let mut client = conn.registry();
            loop {
                let page = client.list_applications(req.clone()).await.map_err(|s| conn.failed(&s))?.into_inner();
                all.extend(page.applications);
                if page.next_page_token.is_empty() {
                    break;
                }
                req.page_token = page.next_page_token;
            }
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&all.iter().map(application_json).collect::<Vec<_>>())?);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        let mut state = application_state(x.state).to_owned();
                        if x.overdue {
                            state.push_str(", quá hạn");
                        }
                        vec![
                            (i + 1).to_string(),
                            day(x.receive_time.as_ref()),
                            day(x.deadline.as_ref()),
                            state,
                            x.name.rsplit('/').next().unwrap_or_default().to_owned(),
                            x.site.rsplit('/').next().unwrap_or_default().to_owned(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["STT", "Tiếp nhận", "Hạn xử lý", "Tình trạng", "Hồ sơ", "Trang"], &rows));
                println!("Tổng cộng: {} hồ sơ", all.len());
            }
        }
    }
    Ok(())
}

/// The operator's commands on licences.
#[derive(Subcommand)]
pub enum LicenceCommand {
    /// Show a licence.
    Show(LicenceNameArgs),
    /// List the province's licences, every page.
    List(LicenceListArgs),
    /// Renew a licence to a later expiry.
    Renew(LicenceRenewArgs),
    /// Suspend a licence until a date, with the reason (a decision's number, say).
    Suspend(LicenceSuspendArgs),
    /// Revoke a licence, with the reason.
    Revoke(LicenceRevokeArgs),
}

#[derive(Args)]
pub struct LicenceNameArgs {
    #[command(flatten)]
    target: Target,
    /// The licence: its id or `provinces/2008-01/licences/{id}`.
    licence: String,
}

#[derive(Args)]
pub struct LicenceListArgs {
    #[command(flatten)]
    target: Target,
    /// Only valid licences expiring within this many days.
    #[arg(long)]
    expiring_within_days: Option<i32>,
    /// Only the licences of this site.
    #[arg(long)]
    site: Option<String>,
}

#[derive(Args)]
pub struct LicenceRenewArgs {
    #[command(flatten)]
    target: Target,
    /// The licence: its id or `provinces/2008-01/licences/{id}`.
    licence: String,
    /// The new expiry.
    #[arg(long)]
    expires: String,
}

#[derive(Args)]
pub struct LicenceSuspendArgs {
    #[command(flatten)]
    target: Target,
    /// The licence: its id or `provinces/2008-01/licences/{id}`.
    licence: String,
    /// The end of the suspension.
    #[arg(long)]
    until: String,
    /// Why.
    #[arg(long)]
    reason: String,
}

#[derive(Args)]
pub struct LicenceRevokeArgs {
    #[command(flatten)]
    target: Target,
    /// The licence: its id or `provinces/2008-01/licences/{id}`.
    licence: String,
    /// Why.
    #[arg(long)]
    reason: String,
}

/// Runs a licence command.
pub async fn licence(c: LicenceCommand) -> anyhow::Result<()> {
    match c {
        LicenceCommand::Show(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let name = conn.resource("licences", &a.licence);
            let got = conn.registry().get_licence(pb::GetLicenceRequest { name }).await.map_err(|s| conn.failed(&s))?;
            print_licence(&conn, &got.into_inner());
        }
        LicenceCommand::List(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut req = pb::ListLicencesRequest {
                parent: conn.jurisdiction.to_string(),
                page_size: 1000,
                expiring_within_days: a.expiring_within_days.unwrap_or(0),
                site: a.site.as_deref().map(|s| conn.resource("sites", s)).unwrap_or_default(),
                ..Default::default()
            };
            let mut all = Vec::new();
            let mut client = conn.registry();
            loop {
                let page = client.list_licences(req.clone()).await.map_err(|s| conn.failed(&s))?.into_inner();
                all.extend(page.licences);
                if page.next_page_token.is_empty() {
                    break;
                }
                req.page_token = page.next_page_token;
            }
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&all.iter().map(licence_json).collect::<Vec<_>>())?);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        vec![
                            (i + 1).to_string(),
                            l.number.clone(),
                            day(l.issue_time.as_ref()),
                            day(l.expire_time.as_ref()),
                            licence_state(l.state).to_owned(),
                            l.name.rsplit('/').next().unwrap_or_default().to_owned(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["STT", "Số", "Ngày cấp", "Hết hạn", "Tình trạng", "Mã"], &rows));
                println!("Tổng cộng: {} giấy phép", all.len());
            }
        }
        LicenceCommand::Renew(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut req = pb::RenewLicenceRequest {
                name: conn.resource("licences", &a.licence),
                expire_time: Some(when(&a.expires, "expires")?),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.registry().renew_licence(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_licence(&conn, &got);
        }
        LicenceCommand::Suspend(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut req = pb::SuspendLicenceRequest {
                name: conn.resource("licences", &a.licence),
                until: Some(when(&a.until, "until")?),
                reason: a.reason.clone(),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.registry().suspend_licence(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_licence(&conn, &got);
        }
        LicenceCommand::Revoke(a) => {
            let conn = a.target.connect(Role::Operator).await?;
            let mut req = pb::RevokeLicenceRequest {
                name: conn.resource("licences", &a.licence),
                reason: a.reason.clone(),
                request_id: String::new(),
            };
            req.request_id = request_id(&req);
            let got = conn.registry().revoke_licence(req).await.map_err(|s| conn.failed(&s))?.into_inner();
            print_licence(&conn, &got);
        }
    }
    Ok(())
}
