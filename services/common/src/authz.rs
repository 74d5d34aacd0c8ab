//! Who may call what: the roles allowed on every RPC, in one table ([`POLICY`]) that the servers
//! enforce before any handler runs ([`crate::auth::Authenticator`]) and that `docs/roles.md` is
//! generated from ([`markdown`]; a test keeps the two equal).
//!
//! A role allowed on a method may still be refused by the handler for the jurisdiction it names:
//! a province's roles act for their own province only, central roles read every province and
//! write none of a province's records (`Caller::authorize_read`, `Caller::authorize_write`).

use einfo_proto::methods::{auth, central, gateway, inspection, log, registry, reporting};

use crate::auth::Role;

/// The roles allowed on one method, and why.
#[derive(Clone, Copy, Debug)]
pub struct MethodPolicy {
    /// The method's path: `/einfo.registry.v1.RegistryService/RegisterSite`.
    pub method: &'static str,
    /// The roles that may call it; none: a public method, which needs no token.
    pub roles: &'static [Role],
}

use Role::{CentralAdmin, CentralAnalyst, Inspector, Operator, Reporter, Service};

/// A province's register, kept by its operators.
const OPERATORS: &[Role] = &[Operator];
/// A province's inspections and sanctions, kept by its inspectors.
const INSPECTORS: &[Role] = &[Inspector];
/// A province's reports, kept by its reporting officers.
const REPORTERS: &[Role] = &[Reporter];
/// One service of a node acting for a province towards another (inspection → registry,
/// reporting → the centre, a node → the centre's feeds).
const SERVICES: &[Role] = &[Service];
/// Reads of a province's registry and inspection: its own people, its services (inspection
/// resolves sites, reporting compiles figures) and the centre.
const PROVINCE_READERS: &[Role] = &[Operator, Inspector, Reporter, Service, CentralAdmin, CentralAnalyst];
/// Reads of a province's reports: its own people and the centre.
const REPORT_READERS: &[Role] = &[Operator, Inspector, Reporter, CentralAdmin, CentralAnalyst];
/// A node's log entries, which hold personal data unmasked (the hash chain covers them): the
/// province's operator, and machines — a node's services, the centre's gateway replicating (as
/// `service` of `central`). No person at the centre reads them (Decree 13/2023/NĐ-CP).
const LOG_READERS: &[Role] = &[Operator, Service];
/// A log's head and checkpoints (hashes, sizes, signatures; no entry): also the centre's people.
const LOG_PROOF_READERS: &[Role] = &[Operator, Service, CentralAdmin, CentralAnalyst];
/// The entries the centre kept of a province, unmasked: that province's people who keep them and
/// its node recovering them; not the centre's people.
const ENTRY_READERS: &[Role] = &[Operator, Inspector, Service];
/// A province's feed from the centre: its node, and the centre itself.
const FEED_READERS: &[Role] = &[Service, CentralAdmin, CentralAnalyst];
/// A report submitted to the centre: by the province's node, or by its reporting officer directly
/// (a province's own system calling the centre's API).
const SUBMITTERS: &[Role] = &[Reporter, Service];
/// The national view.
const CENTRE: &[Role] = &[CentralAdmin, CentralAnalyst];
/// The centre's administration.
const ADMINS: &[Role] = &[CentralAdmin];
/// Public: no token needed (a token given is still checked).
const PUBLIC: &[Role] = &[];
/// What anyone with a token may read.
const ANYONE: &[Role] = &[Operator, Inspector, Reporter, Service, CentralAdmin, CentralAnalyst];

const fn p(method: &'static str, roles: &'static [Role]) -> MethodPolicy {
    MethodPolicy { method, roles }
}

/// Every RPC of every einfo service and the roles allowed on it.
pub const POLICY: &[MethodPolicy] = &[
    // Registry: the operator keeps the register; inspection applies sanctions as a service.
    p(registry::registry_service::REGISTER_SITE, OPERATORS),
    p(registry::registry_service::GET_SITE, PROVINCE_READERS),
    p(registry::registry_service::LIST_SITES, PROVINCE_READERS),
    p(registry::registry_service::UPDATE_SITE, OPERATORS),
    p(registry::registry_service::CORRECT_SITE, OPERATORS),
    p(registry::registry_service::VOID_SITE, OPERATORS),
    p(registry::registry_service::ADD_SITE_RECORD, OPERATORS),
    p(registry::registry_service::SUBMIT_APPLICATION, OPERATORS),
    p(registry::registry_service::GET_APPLICATION, PROVINCE_READERS),
    p(registry::registry_service::LIST_APPLICATIONS, PROVINCE_READERS),
    p(registry::registry_service::REQUEST_SUPPLEMENT, OPERATORS),
    p(registry::registry_service::RECEIVE_SUPPLEMENT, OPERATORS),
    p(registry::registry_service::APPROVE_APPLICATION, OPERATORS),
    p(registry::registry_service::REJECT_APPLICATION, OPERATORS),
    p(registry::registry_service::GET_LICENCE, PROVINCE_READERS),
    p(registry::registry_service::LIST_LICENCES, PROVINCE_READERS),
    p(registry::registry_service::AMEND_LICENCE, OPERATORS),
    p(registry::registry_service::RENEW_LICENCE, OPERATORS),
    p(registry::registry_service::SUSPEND_LICENCE, OPERATORS),
    p(registry::registry_service::REVOKE_LICENCE, OPERATORS),
    p(registry::registry_service::APPLY_SANCTION, SERVICES),
    p(registry::registry_service::IMPORT_SITES, OPERATORS),
    p(registry::registry_service::GET_STATISTICS, PROVINCE_READERS),
    p(registry::registry_service::LIST_SITE_KINDS, ANYONE),
    p(registry::registry_service::LIST_SITES_AS_OF, PROVINCE_READERS),
    // Inspection: the inspector plans, inspects and sanctions.
    p(inspection::inspection_service::CREATE_PLAN, INSPECTORS),
    p(inspection::inspection_service::GET_PLAN, PROVINCE_READERS),
    p(inspection::inspection_service::LIST_PLANS, PROVINCE_READERS),
    p(inspection::inspection_service::ADVANCE_PLAN, INSPECTORS),
    p(inspection::inspection_service::RECORD_INSPECTION, INSPECTORS),
    p(inspection::inspection_service::GET_INSPECTION, PROVINCE_READERS),
    p(inspection::inspection_service::LIST_INSPECTIONS, PROVINCE_READERS),
    p(inspection::inspection_service::ISSUE_DECISION, INSPECTORS),
    p(inspection::inspection_service::GET_DECISION, PROVINCE_READERS),
    p(inspection::inspection_service::LIST_DECISIONS, PROVINCE_READERS),
    p(inspection::inspection_service::RECORD_DECISION_EVENT, INSPECTORS),
    p(inspection::inspection_service::CORRECT_DECISION, INSPECTORS),
    p(inspection::inspection_service::VOID_DECISION, INSPECTORS),
    p(inspection::inspection_service::LIST_CATALOGUE, ANYONE),
    p(inspection::inspection_service::LIST_AGENCIES, ANYONE),
    p(inspection::inspection_service::GET_STATISTICS, PROVINCE_READERS),
    p(inspection::inspection_service::LIST_DECISIONS_AS_OF, PROVINCE_READERS),
    // Reporting: the reporting officer compiles and submits.
    p(reporting::reporting_service::LIST_CAMPAIGNS, REPORT_READERS),
    p(reporting::reporting_service::COMPILE_REPORT, REPORTERS),
    p(reporting::reporting_service::GET_REPORT, REPORT_READERS),
    p(reporting::reporting_service::OVERRIDE_VALUE, REPORTERS),
    p(reporting::reporting_service::SET_NARRATIVE, REPORTERS),
    p(reporting::reporting_service::SET_REPORT_DOCUMENT, REPORTERS),
    p(reporting::reporting_service::SUBMIT_REPORT, REPORTERS),
    p(reporting::reporting_service::EXPORT_REPORT, REPORT_READERS),
    // A node's logs.
    p(log::change_log_service::STREAM_CHANGES, LOG_READERS),
    p(log::change_log_service::GET_LOG_HEAD, LOG_PROOF_READERS),
    p(log::change_log_service::GET_CHECKPOINT, LOG_PROOF_READERS),
    // The centre's gateway, as `service` of `central` (the handler refuses any other jurisdiction).
    p(log::change_log_service::ADD_COSIGNATURE, SERVICES),
    // Sign-in: public (a password is exchanged for a token).
    p(auth::auth_service::LOGIN, PUBLIC),
    // The centre: nodes follow its feeds and submit as services; its admins run campaigns.
    p(central::central_service::STREAM_FEED, FEED_READERS),
    p(central::central_service::SUBMIT, SUBMITTERS),
    p(central::central_service::GET_PUBLIC_KEY, PUBLIC),
    p(central::central_service::STREAM_REFERENCE_DATA, SERVICES),
    p(central::central_service::PUBLISH_REFERENCE_DATA, ADMINS),
    p(central::central_service::CREATE_CAMPAIGN, ADMINS),
    p(central::central_service::RETURN, ADMINS),
    p(central::central_service::ACCEPT, ADMINS),
    p(central::central_service::GRANT_EXCEPTION, ADMINS),
    p(central::central_service::EXPORT_CAMPAIGN, CENTRE),
    // The national gateway: the national view for the centre, its directory for its admins, and
    // the entries it kept for the province they belong to and the centre.
    p(gateway::national_service::GET_NATIONAL_SUMMARY, CENTRE),
    p(gateway::national_service::WATCH_NATIONAL_SUMMARY, CENTRE),
    p(gateway::national_service::LIST_EXPIRING_LICENCES, CENTRE),
    p(gateway::national_service::LIST_OVERDUE_APPLICATIONS, CENTRE),
    p(gateway::national_service::GET_ENFORCEMENT_SUMMARY, CENTRE),
    p(gateway::national_service::GET_CAMPAIGN_COMPLETENESS, CENTRE),
    p(gateway::national_service::SEARCH_SITES, CENTRE),
    p(gateway::national_service::LIST_CONFLICTS, CENTRE),
    p(gateway::national_service::FIND_DOMAIN_HOLDERS, CENTRE),
    p(gateway::national_service::GET_LIVE_SUMMARY, CENTRE),
    p(gateway::national_service::GET_REPLICATION_STATUS, CENTRE),
    p(gateway::directory_service::LIST_ENDPOINTS, CENTRE),
    p(gateway::directory_service::SET_ENDPOINT, ADMINS),
    p(gateway::directory_service::REMOVE_ENDPOINT, ADMINS),
    p(gateway::directory_service::CLEAR_ALARM, ADMINS),
    p(gateway::entry_service::GET_ENTRIES, ENTRY_READERS),
];

/// The roles allowed on `method` (empty: public); `None` for a path that is no einfo method.
pub fn roles_of(method: &str) -> Option<&'static [Role]> {
    POLICY.iter().find(|m| m.method == method).map(|m| m.roles)
}

/// The roles that may be named in a token, in the order of the table's columns.
pub const TOKEN_ROLES: [Role; 6] = [Operator, Inspector, Reporter, Service, CentralAdmin, CentralAnalyst];

/// `docs/roles.md`: the table as a document, one row per method, one column per role.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Roles per method\n\n\
         Generated from `services/common/src/authz.rs` (`POLICY`), which every server enforces before any \
         handler runs: a call by a role without a mark is refused with `PERMISSION_DENIED` (reason \
         `ROLE_NOT_ALLOWED`) and changes nothing; a call without a valid token with `UNAUTHENTICATED`. \
         A role marked may still be refused for the jurisdiction it names: a province's roles act for \
         their own province only; central roles read every province and write none of a province's \
         records. A public method needs no token. Regenerate with `EINFO_WRITE_DOCS=1 cargo nextest run -p einfo-common -E \
         'test(roles_doc)'`.\n",
    );
    let mut service = "";
    for m in POLICY {
        let (svc, name) = m.method.trim_start_matches('/').split_once('/').unwrap_or(("", m.method));
        if svc != service {
            service = svc;
            out.push_str(&format!("\n## `{svc}`\n\n| method |"));
            for r in TOKEN_ROLES {
                out.push_str(&format!(" {r} |"));
            }
            out.push_str("\n|---|");
            out.push_str(&"---|".repeat(TOKEN_ROLES.len()));
            out.push('\n');
        }
        out.push_str(&format!("| {name} |"));
        for r in TOKEN_ROLES {
            out.push_str(if m.roles.is_empty() || m.roles.contains(&r) { " ✓ |" } else { " |" });
        }
        if m.roles.is_empty() {
            out.push_str(" public: no token needed |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every einfo method has exactly one row, and no row names a method that does not exist.
    #[test]
    fn the_table_covers_every_method_once() {
        for m in einfo_proto::methods::ALL {
            let rows = POLICY.iter().filter(|p| p.method == *m).count();
            assert_eq!(rows, 1, "{m} has {rows} rows in POLICY");
        }
        for p in POLICY {
            assert!(einfo_proto::methods::ALL.contains(&p.method), "{} is no einfo method", p.method);
            let public = [central::central_service::GET_PUBLIC_KEY, auth::auth_service::LOGIN].contains(&p.method);
            assert_eq!(
                p.roles.is_empty(),
                public,
                "{}: only the centre's public key and sign-in need no token",
                p.method
            );
        }
    }

    /// `docs/roles.md` is the table; `EINFO_WRITE_DOCS=1` rewrites it.
    #[test]
    fn roles_doc_is_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/roles.md");
        let want = markdown();
        if std::env::var_os("EINFO_WRITE_DOCS").is_some() {
            std::fs::write(&path, &want).expect("write docs/roles.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(have == want, "docs/roles.md differs from the table: run with EINFO_WRITE_DOCS=1\n{want}");
    }
}
