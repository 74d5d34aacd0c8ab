//! The province's desk: the operator's commands against the node of a province — its sites
//! (`sites`), applications and licences (`licensing`) — with the node's address and the caller's
//! credentials found in `einfo up`'s data directory by default, or from flags, `EINFO_…`
//! variables and the profile `einfo login` wrote.
//!
//! Exit codes: 0 done; 1 refused by the server (its reason and every field it names printed as
//! `field: reason`); 2 a usage error (clap's own, or a bad argument or file); 3 the server could
//! not be reached.

use std::path::PathBuf;

use clap::Args;
use einfo_common::auth::{BearerToken, Caller, Role};
use einfo_domain::Jurisdiction;
use einfo_proto::registry::v1 as pb;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

use einfo_reference::report::day_text as day;

mod inspection;
mod licensing;
mod national;
mod reporting;
mod sites;

pub use inspection::{InspectionCommand, inspection};
pub use licensing::{ApplicationCommand, LicenceCommand, application, licence};
pub use national::{NationalWork, national};
pub use reporting::{ReportWork, report};
pub use sites::{SiteCommand, site};

/// Why a command failed, for its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The server refused the call (exit 1).
    Refused(String),
    /// A bad argument or file (exit 2).
    Usage(String),
    /// The server could not be reached (exit 3).
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(s) | Failure::Usage(s) | Failure::Unreachable(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Failure {}

/// The exit code of a failed command: 1 refused (or any other failure), 2 usage, 3 unreachable.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<Failure>() {
        Some(Failure::Usage(_)) => 2,
        Some(Failure::Unreachable(_)) => 3,
        _ => 1,
    }
}

fn usage(s: impl Into<String>) -> anyhow::Error {
    Failure::Usage(s.into()).into()
}

/// A failed call as the operator reads it: unreachable, or refused with its code, reason and the
/// fields it names, one per line as `field: reason`.
pub fn call_failure(node: &str, s: &tonic::Status) -> anyhow::Error {
    use std::error::Error as _;
    let transport = s.source().is_some_and(|e| e.is::<tonic::transport::Error>());
    if transport || matches!(s.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) {
        return Failure::Unreachable(format!(
            "{node} could not be reached: {}{}",
            s.message(),
            crate::tls_hint(node, s)
        ))
        .into();
    }
    let details = s.get_error_details();
    let reason = details.error_info().map(|i| format!(" {}", i.reason)).unwrap_or_default();
    let mut out = format!("refused ({:?}{reason}): {}", s.code(), s.message());
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            out.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    Failure::Refused(out).into()
}

/// Where a command goes and as whom.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// The province: its code in the 2008 scheme (`01`), or `provinces/2008-01`.
    #[arg(long, env = "EINFO_PROVINCE")]
    province: String,
    /// The node hosting the province (`https://127.0.0.1:50052`); by default the profile's server
    /// when it signed in for the province, else the node `einfo up`'s directory names for it.
    #[arg(long, env = "EINFO_NODE")]
    node: Option<String>,
    /// `einfo up`'s data directory: its `directory.toml`, and its `pki` (a certificate acting for
    /// the province connects, and signs a token when no profile is signed in for the province).
    #[arg(long, env = "EINFO_DATA_DIR", default_value = ".einfo/up")]
    data_dir: PathBuf,
    /// The profile `einfo login` wrote; its token is used when it is for this province and not
    /// expired. Default `einfo/profile.json` in the user's configuration directory.
    #[arg(long, env = "EINFO_PROFILE")]
    profile: Option<PathBuf>,
    /// Print JSON rather than a table.
    #[arg(long)]
    json: bool,
}

/// A connection to a province's node, as someone of the province.
struct Conn {
    node: String,
    jurisdiction: Jurisdiction,
    channel: Channel,
    token: BearerToken,
    json: bool,
}

type Registry = pb::registry_service_client::RegistryServiceClient<InterceptedService<Channel, BearerToken>>;

/// A jurisdiction from `01` or `provinces/2008-01`.
pub fn province(value: &str) -> anyhow::Result<Jurisdiction> {
    Jurisdiction::parse(value)
        .or_else(|_| Jurisdiction::parse(&format!("provinces/2008-{value}")))
        .map_err(|_| usage(format!("--province '{value}': a jurisdiction (provinces/2008-01) or a code (01)")))
}

/// The token the profile holds for `j`, if it signed in for it and has not expired; and its server.
fn profile_token(path: Option<PathBuf>, j: &Jurisdiction) -> Option<(String, String)> {
    let path = crate::profile_path(path).ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    let p: serde_json::Value = serde_json::from_str(&text).ok()?;
    let until = chrono::DateTime::parse_from_rfc3339(p["expire_time"].as_str()?).ok()?;
    if p["jurisdiction"].as_str()? != j.to_string() || until.to_utc() <= crate::now() {
        return None;
    }
    Some((p["token"].as_str()?.to_owned(), p["server"].as_str()?.to_owned()))
}

/// The token to call as — the profile's, when it signed in for `j`, else one signed for `role`
/// from the data directory — and a channel to `url` (mutual TLS with a certificate of the data
/// directory's PKI acting for `j`, for an https:// URL).
async fn sign_in(
    signed_in: Option<String>,
    data_dir: &std::path::Path,
    role: Role,
    j: Jurisdiction,
    url: &str,
) -> anyhow::Result<(BearerToken, Channel)> {
    let token = match signed_in {
        Some(token) => BearerToken::new(&token)?,
        None => {
            let caller = Caller { subject: "cli".into(), role, jurisdiction: j };
            crate::local_token(data_dir, &caller).map_err(|e| usage(format!("{e:#}")))?
        }
    };
    let channel =
        crate::connect(url, &data_dir.join("pki"), &j).await.map_err(|e| Failure::Unreachable(format!("{e:#}")))?;
    Ok((token, channel))
}

impl Target {
    async fn connect(&self, role: Role) -> anyhow::Result<Conn> {
        let jurisdiction = province(&self.province)?;
        let signed_in = profile_token(self.profile.clone(), &jurisdiction);
        let node = match (&self.node, &signed_in) {
            (Some(n), _) => n.clone(),
            (None, Some((_, server))) => server.clone(),
            (None, None) => {
                let file = self.data_dir.join("directory.toml");
                einfo_gateway::directory::load_file(&file)
                    .map_err(|e| usage(format!("no --node, and {} cannot be read: {e:#}", file.display())))?
                    .into_iter()
                    .find(|(j, _)| *j == jurisdiction)
                    .map(|(_, url)| url)
                    .ok_or_else(|| {
                        usage(format!("no --node, and {} names no node for {jurisdiction}", file.display()))
                    })?
            }
        };
        let signed_in = signed_in.map(|(token, _)| token);
        let (token, channel) = sign_in(signed_in, &self.data_dir, role, jurisdiction, &node).await?;
        Ok(Conn { node, jurisdiction, channel, token, json: self.json })
    }
}

impl Conn {
    fn registry(&self) -> Registry {
        pb::registry_service_client::RegistryServiceClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(64 * 1024 * 1024)
    }

    fn failed(&self, s: &tonic::Status) -> anyhow::Error {
        call_failure(&self.node, s)
    }

    /// A resource's name from its id (in this province's `collection`) or its full name.
    fn resource(&self, collection: &str, value: &str) -> String {
        if value.starts_with("provinces/") {
            value.to_owned()
        } else {
            format!("{}/{collection}/{value}", self.jurisdiction)
        }
    }
}

/// An idempotency key for a request: its content's hash, so that running the same command again
/// (after a timeout, say) does the work once.
fn request_id<M: prost::Message>(m: &M) -> String {
    let digest = einfo_common::changelog::body_hash(m);
    format!("cli-{}", digest[..12].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A proto enum from its short name in any case, `-` for `_`: `in-vietnam` for
/// `HOSTING_IN_VIETNAM`.
fn parse_enum(prefix: &str, value: &str, flag: &str, from: fn(&str) -> Option<i32>) -> anyhow::Result<i32> {
    let name = format!("{prefix}_{}", value.trim().to_uppercase().replace('-', "_"));
    from(&name).ok_or_else(|| usage(format!("--{flag} '{value}' is not one of the known values")))
}

/// An instant from a date — `dd/mm/yyyy` or `yyyy-mm-dd`, the start of that day in Vietnam — or
/// an RFC 3339 instant.
fn when(value: &str, flag: &str) -> anyhow::Result<prost_types::Timestamp> {
    let v = value.trim();
    let date =
        chrono::NaiveDate::parse_from_str(v, "%d/%m/%Y").or_else(|_| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d"));
    let t = match date {
        Ok(d) => d
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(einfo_common::fields::vietnam()).single())
            .map(|t| t.to_utc()),
        Err(_) => chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| t.to_utc()),
    }
    .ok_or_else(|| usage(format!("--{flag} '{value}': a date (dd/mm/yyyy or yyyy-mm-dd) or an RFC 3339 instant")))?;
    Ok(einfo_common::fields::timestamp(t))
}

fn short(value: &str, prefix: &str) -> String {
    value.trim_start_matches(prefix).to_lowercase().replace('_', "-")
}

/// Rows as aligned columns (widths by characters, not bytes).
fn table(heads: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = heads.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(heads.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_in_vietnam_or_instants() {
        assert_eq!(when("20/11/2014", "x").unwrap().seconds, 1_416_416_400);
        assert_eq!(when("2014-11-20", "x").unwrap().seconds, 1_416_416_400);
        assert_eq!(when("2014-11-20T00:00:00+07:00", "x").unwrap().seconds, 1_416_416_400);
        assert_eq!(exit_code(&when("20.11.2014", "x").unwrap_err()), 2);
    }

    #[test]
    fn enums_are_named_by_their_short_names_in_any_case() {
        let parse =
            |v: &str| parse_enum("HOSTING", v, "hosting", |n| pb::Hosting::from_str_name(n).map(|e| e as i32)).ok();
        assert_eq!(parse("in-vietnam"), Some(pb::Hosting::InVietnam as i32));
        assert_eq!(parse("ABROAD"), Some(pb::Hosting::Abroad as i32));
        assert_eq!(parse("moon"), None);
    }

    #[test]
    fn a_refusal_lists_its_fields_and_an_unavailable_server_is_unreachable() {
        let st: tonic::Status = einfo_common::error::ApiError::field("site.domains", "is required").into();
        let e = call_failure("http://x", &st);
        assert_eq!(exit_code(&e), 1);
        assert!(e.to_string().contains("\n  site.domains: is required"), "{e}");
        let e = call_failure("http://x", &tonic::Status::unavailable("down"));
        assert_eq!(exit_code(&e), 3);
    }
}
