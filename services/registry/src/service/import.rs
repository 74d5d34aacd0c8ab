//! ImportSites: bulk creation of sites from CSV.

use einfo_common::auth::Caller;
use einfo_common::changelog::Begin;
use einfo_common::error::{ApiError, ApiResult};
use einfo_domain::Jurisdiction;
use einfo_proto::methods;
use einfo_proto::registry::v1 as pb;

use super::Registry;
use crate::store;

impl Registry {
    /// ImportSites: a dry run reports every bad row; an import is all-or-nothing and idempotent.
    pub async fn import_sites(
        &self,
        caller: &Caller,
        mut req: pb::ImportSitesRequest,
    ) -> ApiResult<pb::ImportSitesResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_write(&j)?;
        let (sites, mut errors) = crate::import::parse(&req.csv, &self.kinds)?;
        let row_count = sites.len() as u32;
        if req.dry_run || !errors.is_empty() {
            errors.extend(held_domains(self.db.conn(), &j, &sites).await?);
            errors.sort_by_key(|e| e.line);
            if req.dry_run {
                return Ok(pb::ImportSitesResponse { errors, row_count, sites: Vec::new() });
            }
            return Err(import_error(&errors));
        }
        let request_id = std::mem::take(&mut req.request_id);
        let mut m =
            match self.begin(caller, &j, methods::registry::registry_service::IMPORT_SITES, &request_id, &req).await? {
                Begin::Replay(r) => return Ok(r),
                Begin::Fresh(m) => m,
            };
        // Checked under the log's lock, after the idempotency key: a retry of an import that
        // succeeded finds its own sites holding the domains and must get the first answer.
        let held = held_domains(m.txn(), &j, &sites).await?;
        if !held.is_empty() {
            return Err(import_error(&held));
        }
        let mut names = Vec::with_capacity(sites.len());
        for (_, s) in sites {
            names.push(self.create_site(&mut m, &j, s).await?.name);
        }
        let resp = pb::ImportSitesResponse { errors: Vec::new(), row_count, sites: names };
        m.commit(&resp).await?;
        Ok(resp)
    }
}

/// The rows of an import whose domains are already held in the jurisdiction.
async fn held_domains<C: sea_orm::ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    sites: &[(u32, pb::Site)],
) -> ApiResult<Vec<pb::ImportRowError>> {
    let all: Vec<String> = sites.iter().flat_map(|(_, s)| s.domains.clone()).collect();
    let mut errors = Vec::new();
    for (d, holder) in store::domain_holders(c, j, &all, "").await? {
        if let Some((line, _)) = sites.iter().find(|(_, s)| s.domains.contains(&d)) {
            errors.push(pb::ImportRowError {
                line: *line,
                field: "domains".into(),
                description: format!("{d} is held by {holder}"),
            });
        }
    }
    errors.sort_by_key(|e| e.line);
    Ok(errors)
}

/// An import refused for its bad rows: a field violation `csv.line[N].column` per error.
fn import_error(errors: &[pb::ImportRowError]) -> ApiError {
    ApiError::fields(
        errors
            .iter()
            .map(|e| einfo_common::error::Violation {
                field: format!("csv.line[{}].{}", e.line, e.field),
                description: e.description.clone(),
            })
            .collect(),
    )
}
