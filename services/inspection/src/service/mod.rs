//! The inspection service's logic: plans, inspections, violations, sanction decisions and their
//! statistics. No tonic server types, no SQL. Every mutation is one transaction with its log
//! entries; a licence measure is queued in the outbox in the same transaction as its decision.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use einfo_common::auth::Caller;
use einfo_common::changelog::{Begin, LogId, Mutation};
use einfo_common::db::Database;
use einfo_common::error::{ApiError, ApiResult, Reason};
use einfo_common::fields::{jurisdiction, resource};
use einfo_common::reference::Current;
use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::inspection::v1 as pb;
use prost::Message;

use crate::catalogue::{Catalogue, agencies};
use crate::registry_link::RegistryLink;
use crate::store;

mod clock;
mod decisions;
mod figures;
pub(crate) mod inspections;
pub(crate) mod plans;

/// Name of this service in logs.
pub const SERVICE: &str = "inspection";

/// The inspection service of the provinces a node hosts.
#[derive(Clone)]
pub struct Inspection {
    db: Database,
    scheme: Scheme,
    hosted: Arc<HashSet<Jurisdiction>>,
    catalogue: Current<Catalogue>,
    agencies: Arc<Vec<pb::Agency>>,
    registry: RegistryLink,
}

impl Inspection {
    /// For `hosted` provinces of `scheme`, on a migrated database, with a link to registry.
    pub fn new(
        db: Database,
        scheme: Scheme,
        hosted: impl IntoIterator<Item = Jurisdiction>,
        registry: RegistryLink,
        catalogue: Catalogue,
    ) -> Self {
        Self {
            db,
            scheme,
            hosted: Arc::new(hosted.into_iter().collect()),
            catalogue: Current::new(catalogue),
            agencies: Arc::new(agencies()),
            registry,
        }
    }

    /// Puts another violation catalogue in force (reference data from the centre). Checks
    /// started before keep the catalogue they began with.
    pub fn set_catalogue(&self, catalogue: Catalogue) {
        self.catalogue.set(catalogue);
    }

    /// The violation catalogue in force.
    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue.get()
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The provinces hosted.
    pub fn hosted(&self) -> impl Iterator<Item = &Jurisdiction> {
        self.hosted.iter()
    }

    /// The link to registry.
    pub fn registry(&self) -> &RegistryLink {
        &self.registry
    }

    fn check_hosted(&self, j: Jurisdiction) -> ApiResult<Jurisdiction> {
        if self.hosted.contains(&j) {
            Ok(j)
        } else {
            Err(ApiError::new(Reason::JurisdictionNotHosted, format!("this node does not host {j}")))
        }
    }

    fn parent(&self, value: &str, field: &str) -> ApiResult<Jurisdiction> {
        self.check_hosted(jurisdiction(value, field, self.scheme)?)
    }

    fn named(&self, value: &str, field: &str, collection: &str) -> ApiResult<Jurisdiction> {
        self.check_hosted(resource(value, field, collection, self.scheme)?)
    }

    async fn begin<R: Message + Default>(
        &self,
        caller: &Caller,
        j: &Jurisdiction,
        method: &'static str,
        request_id: &str,
        body: &impl Message,
    ) -> ApiResult<Begin<R>> {
        caller.authorize_write(j)?;
        self.db.begin_request(LogId { jurisdiction: *j, service: SERVICE }, caller, method, request_id, body).await
    }

    /// Checks that `site` is a site of `j` known to registry, asking registry when it is not
    /// known here yet; returns its display name.
    async fn resolve_site(&self, j: &Jurisdiction, site: &str, field: &str) -> ApiResult<String> {
        let sj = resource(site, field, "sites", self.scheme)?;
        if sj != *j {
            return Err(ApiError::field(field, format!("{site} is a site of {sj}, not of {j}")));
        }
        if let Some(name) = store::known_site(self.db.conn(), site).await? {
            return Ok(name);
        }
        match self.registry.get_site(j, site).await {
            Ok(s) if s.voided => Err(ApiError::field(field, format!("{site} was voided in registry"))),
            Ok(s) => {
                store::remember_site(self.db.conn(), j, site, &s.display_name).await?;
                Ok(s.display_name)
            }
            Err(st) if st.code() == tonic::Code::NotFound => {
                Err(ApiError::field(field, format!("registry has no site {site}")))
            }
            Err(st) => {
                Err(ApiError::new(Reason::Unavailable, format!("registry could not resolve {site}: {}", st.message())))
            }
        }
    }
}

fn stale(sent: &str, current: &str) -> ApiError {
    ApiError::new(Reason::StaleEtag, format!("etag '{sent}' is stale; the current one is '{current}'"))
}

#[allow(clippy::too_many_arguments)]
async fn event(
    m: &Mutation,
    j: &Jurisdiction,
    seq: u64,
    resource: &str,
    event: &str,
    idx: i32,
    at: DateTime<Utc>,
    code: &str,
    site: &str,
    amount: i64,
) -> ApiResult<()> {
    store::put_event(m.txn(), store::Event { jurisdiction: j, seq, resource, event, idx, at, code, site, amount }).await
}
