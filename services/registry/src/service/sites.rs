//! Sites: register, read, list, update, correct and void them, and their registration and
//! trial records.

use einfo_common::auth::Caller;
use einfo_common::changelog::{Begin, Mutation};
use einfo_common::error::{ApiError, ApiResult, Reason, Violations};
use einfo_common::fields::{name_query, new_id, next_etag, next_token, page_after, page_size, query_fingerprint};
use einfo_domain::{DomainName, Jurisdiction, TaxCode};
use einfo_proto::methods;
use einfo_proto::registry::v1 as pb;
use pb::LegalStatus;
use prost::Message;

use super::{Registry, live_site};
use crate::convert::{self, required_instant, timestamp};
use crate::store;

impl Registry {
    /// RegisterSite.
    pub async fn register_site(&self, caller: &Caller, mut req: pb::RegisterSiteRequest) -> ApiResult<pb::Site> {
        let j = self.parent(&req.parent, "parent")?;
        let mut v = Violations::new();
        let site = convert::site(&req.site.clone().unwrap_or_default(), "site", &self.kinds, &mut v);
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::registry::registry_service::REGISTER_SITE, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let site = self.create_site(&mut m, &j, site).await?;
        m.commit(&site).await?;
        Ok(site)
    }

    pub(super) async fn create_site(
        &self,
        m: &mut Mutation,
        j: &Jurisdiction,
        mut site: pb::Site,
    ) -> ApiResult<pb::Site> {
        domains_free(m, j, &site.domains, "").await?;
        let now = m.now();
        site.name = format!("{j}/sites/{}", new_id());
        site.jurisdiction = j.to_string();
        site.legal_status = LegalStatus::Unlicensed as i32;
        site.trial = false;
        site.etag = "1".into();
        site.create_time = Some(timestamp(now));
        site.update_time = Some(timestamp(now));
        store::put_site(m.txn(), &site).await?;
        store::add_domains(m.txn(), &site).await?;
        let seq = m.append(&site.name, "CREATE", &site, "").await?;
        store::put_site_history(m.txn(), j, seq, None, &site).await?;
        if site.discovery_source != pb::DiscoverySource::Application as i32 {
            store::put_event(m.txn(), j, seq, &site.name, "unlicensed_found", now).await?;
        }
        Ok(site)
    }

    /// GetSite.
    pub async fn get_site(&self, caller: &Caller, req: pb::GetSiteRequest) -> ApiResult<pb::Site> {
        let j = self.resource(&req.name, "name", "sites")?;
        caller.authorize_read(&j)?;
        let site = store::get_site(self.db.conn(), &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))?;
        let mut sites = [site];
        self.disclose(caller, &j, "GetSite", &mut sites).await?;
        let [site] = sites;
        Ok(site)
    }

    /// Masks the personal data of person-owned `sites` for a caller who may not see it, or
    /// records that the caller read it (`einfo_common::privacy`).
    async fn disclose(&self, caller: &Caller, j: &Jurisdiction, method: &str, sites: &mut [pb::Site]) -> ApiResult<()> {
        if !einfo_common::privacy::sees_personal_data(caller, j) {
            for s in sites {
                einfo_common::privacy::mask_site(s);
            }
            return Ok(());
        }
        let read: Vec<&str> =
            sites.iter().filter(|s| einfo_common::privacy::holds_personal_data(s)).map(|s| s.name.as_str()).collect();
        if read.is_empty() {
            return Ok(());
        }
        store::record_personal_data_reads(self.db.conn(), self.db.now(), caller, method, &read).await?;
        tracing::info!(subject = %caller.subject, role = %caller.role, method, sites = read.len(), "personal data read");
        Ok(())
    }

    /// ListSites.
    pub async fn list_sites(&self, caller: &Caller, req: pb::ListSitesRequest) -> ApiResult<pb::ListSitesResponse> {
        let j = self.parent(&req.parent, "parent")?;
        caller.authorize_read(&j)?;
        let mut v = Violations::new();
        let mut f =
            store::SiteFilter { jurisdiction: j.to_string(), show_voided: req.show_voided, ..Default::default() };
        if !req.kind.is_empty() {
            if self.kinds.get(&req.kind).is_none() {
                v.add("kind", format!("unknown kind '{}'", req.kind));
            }
            f.kind = Some(req.kind.clone());
        }
        if req.legal_status != 0 {
            convert::known_enum::<LegalStatus>(req.legal_status, "legal_status", &mut v);
            f.legal_status = Some(req.legal_status);
        }
        if !req.domain.is_empty()
            && let Some(d) = v.check("domain", DomainName::parse(&req.domain))
        {
            if d.ascii() == d.registrable() {
                f.registrable = Some(d.registrable().to_owned());
                f.domain = Some(String::new());
            } else {
                f.domain = Some(d.ascii().to_owned());
                f.registrable = Some(String::new());
            }
        }
        if !req.owner_tax_code.is_empty() {
            f.owner_tax_code = v.check("owner_tax_code", TaxCode::parse(&req.owner_tax_code)).map(|t| t.canonical());
        }
        f.name_words = name_query(&req.name_query, "name_query", &mut v);
        let size = page_size(req.page_size, &mut v);
        let fingerprint =
            query_fingerprint(&pb::ListSitesRequest { page_size: 0, page_token: String::new(), ..req.clone() });
        let after = page_after(&req.page_token, &fingerprint, &mut v);
        v.finish()?;
        let after = after.unwrap_or_default();
        let mut sites = store::list_sites(self.db.conn(), &f, &after, size as u64 + 1).await?;
        let next_page_token = next_token(&mut sites, size, &fingerprint, |s| &s.name);
        self.disclose(caller, &j, "ListSites", &mut sites).await?;
        Ok(pb::ListSitesResponse { sites, next_page_token })
    }

    /// UpdateSite.
    pub async fn update_site(&self, caller: &Caller, req: pb::UpdateSiteRequest) -> ApiResult<pb::Site> {
        let (site, mask, request_id) =
            (req.site.clone().unwrap_or_default(), req.update_mask.clone(), req.request_id.clone());
        self.change_site(
            caller,
            site,
            mask,
            None,
            methods::registry::registry_service::UPDATE_SITE,
            request_id,
            pb::UpdateSiteRequest { request_id: String::new(), ..req },
        )
        .await
    }

    /// CorrectSite.
    pub async fn correct_site(&self, caller: &Caller, req: pb::CorrectSiteRequest) -> ApiResult<pb::Site> {
        let mut v = Violations::new();
        let reason = convert::reason(&req.reason, "reason", &mut v);
        v.finish()?;
        let (site, mask, request_id) =
            (req.site.clone().unwrap_or_default(), req.update_mask.clone(), req.request_id.clone());
        self.change_site(
            caller,
            site,
            mask,
            Some(reason),
            methods::registry::registry_service::CORRECT_SITE,
            request_id,
            pb::CorrectSiteRequest { request_id: String::new(), ..req },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn change_site(
        &self,
        caller: &Caller,
        input: pb::Site,
        mask: Option<prost_types::FieldMask>,
        reason: Option<String>,
        method: &'static str,
        request_id: String,
        body: impl Message,
    ) -> ApiResult<pb::Site> {
        let j = self.resource(&input.name, "site.name", "sites")?;
        let paths = mask.map(|m| m.paths).unwrap_or_default();
        let mut v = Violations::new();
        if paths.is_empty() {
            v.add("update_mask", "name at least one field to change");
        }
        for (i, p) in paths.iter().enumerate() {
            if !SITE_MASK_PATHS.contains(&p.as_str()) {
                v.add(
                    format!("update_mask.paths[{i}]"),
                    format!("unknown or read-only field '{p}'; allowed: {}", SITE_MASK_PATHS.join(", ")),
                );
            }
        }
        if input.etag.is_empty() {
            v.add("site.etag", "is required: send the etag you read");
        }
        v.finish()?;
        let mut m = match self.begin(caller, &j, method, &request_id, &body).await? {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        let current = store::get_site(m.txn(), &input.name).await?.ok_or_else(|| ApiError::not_found(&input.name))?;
        if current.voided {
            return Err(ApiError::new(Reason::Voided, format!("{} was voided", input.name)));
        }
        if current.etag != input.etag {
            return Err(ApiError::new(
                Reason::StaleEtag,
                format!("etag '{}' is stale; the current one is '{}'", input.etag, current.etag),
            ));
        }
        let mut merged = current.clone();
        apply_mask(&mut merged, &input, &paths);
        let mut v = Violations::new();
        let normalised = convert::site(&merged, "site", &self.kinds, &mut v);
        v.finish()?;
        domains_free(&m, &j, &normalised.domains, &current.name).await?;
        let now = m.now();
        let site = pb::Site {
            name: current.name.clone(),
            jurisdiction: current.jurisdiction.clone(),
            legal_status: current.legal_status,
            trial: current.trial,
            etag: next_etag(&current.etag),
            create_time: current.create_time,
            update_time: Some(timestamp(now)),
            voided: false,
            reason: reason.clone().unwrap_or_default(),
            ..normalised
        };
        store::put_site(m.txn(), &site).await?;
        store::set_domains(m.txn(), &site).await?;
        let op = if reason.is_some() { "CORRECT" } else { "UPDATE" };
        let seq = m.append(&site.name, op, &site, reason.as_deref().unwrap_or("")).await?;
        store::put_site_history(m.txn(), &j, seq, Some(&current), &site).await?;
        m.commit(&site).await?;
        Ok(site)
    }

    /// VoidSite.
    pub async fn void_site(&self, caller: &Caller, mut req: pb::VoidSiteRequest) -> ApiResult<pb::Site> {
        let j = self.resource(&req.name, "name", "sites")?;
        let mut v = Violations::new();
        let reason = convert::reason(&req.reason, "reason", &mut v);
        if req.etag.is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m =
            match self.begin(caller, &j, methods::registry::registry_service::VOID_SITE, &request_id, &req).await? {
                Begin::Replay(r) => return Ok(r),
                Begin::Fresh(m) => m,
            };
        let mut site = store::get_site(m.txn(), &req.name).await?.ok_or_else(|| ApiError::not_found(&req.name))?;
        if site.voided {
            return Err(ApiError::new(Reason::Voided, format!("{} is already voided", req.name)));
        }
        if site.etag != req.etag {
            return Err(ApiError::new(
                Reason::StaleEtag,
                format!("etag '{}' is stale; the current one is '{}'", req.etag, site.etag),
            ));
        }
        let before = site.clone();
        site.voided = true;
        site.reason = reason.clone();
        site.etag = next_etag(&site.etag);
        site.update_time = Some(timestamp(m.now()));
        store::put_site(m.txn(), &site).await?;
        store::set_domains(m.txn(), &site).await?;
        let seq = m.append(&site.name, "VOID", &site, &reason).await?;
        store::put_site_history(m.txn(), &j, seq, Some(&before), &site).await?;
        m.commit(&site).await?;
        Ok(site)
    }

    /// AddSiteRecord.
    pub async fn add_site_record(
        &self,
        caller: &Caller,
        mut req: pb::AddSiteRecordRequest,
    ) -> ApiResult<pb::SiteRecord> {
        let j = self.resource(&req.site, "site", "sites")?;
        let input = req.record.clone().unwrap_or_default();
        let mut v = Violations::new();
        match pb::SiteRecordKind::try_from(input.kind) {
            Ok(pb::SiteRecordKind::Unspecified) => v.add("record.kind", "is required: REGISTRATION or TRIAL"),
            Ok(_) => {}
            Err(_) => v.add("record.kind", format!("unknown enum value {}", input.kind)),
        }
        let start = required_instant(input.start_time.as_ref(), "record.start_time", &mut v);
        let end = match (&input.end_time, input.kind()) {
            (None, pb::SiteRecordKind::Trial) => {
                v.add("record.end_time", "a trial record needs an end");
                None
            }
            (None, _) => None,
            (Some(t), _) => required_instant(Some(t), "record.end_time", &mut v),
        };
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            v.add("record.end_time", "must be after start_time");
        }
        let reference =
            convert::text(&input.reference, "record.reference", convert::MAX_NAME, convert::Lines::One, &mut v);
        v.finish()?;
        let request_id = std::mem::take(&mut req.request_id);
        let mut m = match self
            .begin(caller, &j, methods::registry::registry_service::ADD_SITE_RECORD, &request_id, &req)
            .await?
        {
            Begin::Replay(r) => return Ok(r),
            Begin::Fresh(m) => m,
        };
        live_site(&m, &req.site).await?;
        let record = pb::SiteRecord {
            name: format!("{j}/records/{}", new_id()),
            site: req.site.clone(),
            kind: input.kind,
            reference,
            start_time: start.map(timestamp),
            end_time: end.map(timestamp),
        };
        store::put_record(m.txn(), &j, &record, false).await?;
        m.append(&record.name, "RECORD_ADD", &record, "").await?;
        self.restatus(&mut m, &j, &req.site, "record added").await?;
        m.commit(&record).await?;
        Ok(record)
    }
}

/// Fields of a site an update or a correction may name.
const SITE_MASK_PATHS: &[&str] = &[
    "kind",
    "display_name",
    "domains",
    "owner",
    "owner.kind",
    "owner.display_name",
    "owner.tax_code",
    "owner.address",
    "owner.legal_representative",
    "owner.contact",
    "hosting",
    "operational_state",
    "discovery_source",
    "notes",
];

fn owner_mut(t: &mut pb::Site) -> &mut pb::Owner {
    t.owner.get_or_insert_with(Default::default)
}

fn apply_mask(target: &mut pb::Site, src: &pb::Site, paths: &[String]) {
    let src_owner = src.owner.clone().unwrap_or_default();
    for p in paths {
        match p.as_str() {
            "kind" => target.kind = src.kind.clone(),
            "display_name" => target.display_name = src.display_name.clone(),
            "domains" => target.domains = src.domains.clone(),
            "owner" => target.owner = src.owner.clone(),
            "owner.kind" => owner_mut(target).kind = src_owner.kind,
            "owner.display_name" => owner_mut(target).display_name = src_owner.display_name.clone(),
            "owner.tax_code" => owner_mut(target).tax_code = src_owner.tax_code.clone(),
            "owner.address" => owner_mut(target).address = src_owner.address.clone(),
            "owner.legal_representative" => {
                owner_mut(target).legal_representative = src_owner.legal_representative.clone()
            }
            "owner.contact" => owner_mut(target).contact = src_owner.contact.clone(),
            "hosting" => target.hosting = src.hosting,
            "operational_state" => target.operational_state = src.operational_state,
            "discovery_source" => target.discovery_source = src.discovery_source,
            "notes" => target.notes = src.notes.clone(),
            _ => {}
        }
    }
}

async fn domains_free(m: &Mutation, j: &Jurisdiction, domains: &[String], except: &str) -> ApiResult<()> {
    let held = store::domain_holders(m.txn(), j, domains, except).await?;
    if let Some((d, holder)) = held.first() {
        return Err(ApiError::new(Reason::DomainTaken, format!("{d} is already held by {holder} in {j}")));
    }
    Ok(())
}
