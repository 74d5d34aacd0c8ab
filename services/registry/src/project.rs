//! One log entry's effect on the registry's tables, for entries that come back from the centre
//! (`einfo recover --from-gateway`): the entry holds the full new state of the resource it
//! names, and the rows the write path derives from it beside the state (domains, the snapshot
//! history and its running counts, the dated facts) are derived here by the same rules. The
//! entry itself is written to the log by the caller, in the same transaction.
//!
//! The test `recover::recovery_rebuilds_every_table_the_write_path_wrote` holds these rules to
//! the write path's: a store rebuilt from its entries equals the store that wrote them, row for
//! row.

use einfo_common::changelog::ChangeEntry;
use einfo_common::error::{ApiError, ApiResult};
use einfo_common::fields::instant;
use einfo_domain::Jurisdiction;
use einfo_proto::registry::v1 as pb;
use prost::Message;
use sea_orm::ConnectionTrait;

use crate::store;

fn decode<M: Message + Default>(e: &ChangeEntry, state: &prost_types::Any) -> ApiResult<M> {
    M::decode(state.value.as_slice()).map_err(|err| {
        ApiError::internal(anyhow::anyhow!("entry {} of {}/{}: {err}", e.sequence, e.jurisdiction, e.service))
    })
}

/// Applies entry `e` of `j`'s registry log to the registry's tables on `c` (a transaction).
///
/// # Errors
/// A state that does not decode as its type, a type registry never writes, or a database error.
pub async fn apply_entry<C: ConnectionTrait>(c: &C, j: &Jurisdiction, e: &ChangeEntry) -> ApiResult<()> {
    let Some(state) = &e.state else {
        return Err(ApiError::internal(anyhow::anyhow!("entry {} of {j}/registry holds no state", e.sequence)));
    };
    let at = instant(e.server_time.as_ref());
    match state.type_url.rsplit('/').next().unwrap_or_default() {
        "einfo.registry.v1.Site" => {
            let site: pb::Site = decode(e, state)?;
            let before = if e.operation == "CREATE" { None } else { store::get_site(c, &site.name).await? };
            store::put_site(c, &site).await?;
            if before.is_none() {
                store::add_domains(c, &site).await?;
            } else {
                store::set_domains(c, &site).await?;
            }
            store::put_site_history(c, j, e.sequence, before.as_ref(), &site).await?;
            if e.operation == "CREATE" && site.discovery_source != pb::DiscoverySource::Application as i32 {
                store::put_event(c, j, e.sequence, &site.name, "unlicensed_found", at).await?;
            }
        }
        "einfo.registry.v1.LicenceApplication" => {
            let app: pb::LicenceApplication = decode(e, state)?;
            store::put_application(c, j, &app).await?;
            store::put_application_history(c, j, e.sequence, &app).await?;
            if e.operation == "SUBMIT" {
                let received = instant(app.receive_time.as_ref());
                store::put_event(c, j, e.sequence, &app.name, "application_received", received).await?;
            }
        }
        "einfo.registry.v1.Licence" => {
            let l: pb::Licence = decode(e, state)?;
            store::put_licence(c, j, &l).await?;
            let event = match e.operation.as_str() {
                "ISSUE" => Some(("licence_issued", instant(l.issue_time.as_ref()))),
                "SUSPEND" => Some(("licence_suspended", at)),
                "REVOKE" => Some(("licence_revoked", at)),
                _ => None,
            };
            if let Some((event, when)) = event {
                store::put_event(c, j, e.sequence, &l.name, event, when).await?;
            }
        }
        "einfo.registry.v1.SiteRecord" => {
            let r: pb::SiteRecord = decode(e, state)?;
            store::put_record(c, j, &r, e.operation == "RECORD_END").await?;
        }
        other => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "entry {} of {j}/registry holds a {other}, which registry never writes",
                e.sequence
            )));
        }
    }
    Ok(())
}
