//! The registry's logic: no tonic, no SQL. Each mutation parses its request, takes the log's
//! lock through an idempotent [`Mutation`], changes rows and appends the full new state of every
//! resource it touched, then commits all of it at once.

use std::collections::HashSet;
use std::sync::Arc;

use einfo_common::auth::Caller;
use einfo_common::changelog::{Begin, LogId, Mutation};
use einfo_common::db::Database;
use einfo_common::error::{ApiError, ApiResult, Reason};
pub use einfo_common::fields::vietnam;
use einfo_common::reference::Current;
use einfo_domain::calendar::WorkingCalendar;
use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::registry::v1 as pb;
use prost::Message;

use crate::convert;
use crate::kinds::Kinds;
use crate::store;

mod applications;
mod import;
mod licences;
mod sites;
mod statistics;
mod transitions;

/// Name of this service in logs and resource routing.
pub const SERVICE: &str = "registry";

/// The registry of the provinces a node hosts.
#[derive(Clone)]
pub struct Registry {
    db: Database,
    scheme: Scheme,
    hosted: Arc<HashSet<Jurisdiction>>,
    kinds: Arc<Kinds>,
    calendar: Current<WorkingCalendar>,
    /// No site is stored with a status no longer derived (`TRIAL`): set once the clock has found
    /// none, so that it stops looking (nothing writes one any more).
    rederived: Arc<std::sync::atomic::AtomicBool>,
}

impl Registry {
    /// A registry for `hosted` provinces of `scheme`, on a migrated database.
    pub fn new(db: Database, scheme: Scheme, hosted: impl IntoIterator<Item = Jurisdiction>) -> Self {
        Self {
            db,
            scheme,
            hosted: Arc::new(hosted.into_iter().collect()),
            kinds: Arc::new(Kinds::bundled()),
            calendar: Current::new(WorkingCalendar::bundled().clone()),
            rederived: Arc::default(),
        }
    }

    /// The provinces hosted.
    pub fn hosted(&self) -> impl Iterator<Item = &Jurisdiction> {
        self.hosted.iter()
    }

    /// Puts another working-day calendar in force (holidays from the centre): deadlines
    /// computed from now on count working days by it; deadlines already set stay.
    pub fn set_calendar(&self, calendar: WorkingCalendar) {
        self.calendar.set(calendar);
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    fn check_hosted(&self, j: &Jurisdiction) -> ApiResult<()> {
        if self.hosted.contains(j) {
            Ok(())
        } else {
            Err(ApiError::new(Reason::JurisdictionNotHosted, format!("this node does not host {j}")))
        }
    }

    fn parent(&self, value: &str, field: &str) -> ApiResult<Jurisdiction> {
        let j = convert::jurisdiction(value, field, self.scheme)?;
        self.check_hosted(&j)?;
        Ok(j)
    }

    fn resource(&self, value: &str, field: &str, collection: &str) -> ApiResult<Jurisdiction> {
        let j = convert::resource(value, field, collection, self.scheme)?;
        self.check_hosted(&j)?;
        Ok(j)
    }

    /// Authorises a write to `j`, checks the request id, and opens an idempotent mutation of
    /// `j`'s registry log. `body` is the request with its `request_id` cleared.
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
}

async fn live_site(m: &Mutation, name: &str) -> ApiResult<pb::Site> {
    let site = store::get_site(m.txn(), name).await?.ok_or_else(|| ApiError::not_found(name))?;
    if site.voided {
        return Err(ApiError::new(Reason::Voided, format!("{name} was voided")));
    }
    Ok(site)
}
