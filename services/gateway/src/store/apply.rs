//! Applying replicated entries: the cursor of each log, the rows of sites, licences,
//! applications, inspections and decisions, and the summary cells they move.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use einfo_common::changelog::ChangeEntry;
use einfo_common::db::{from_micros, micros, stmt};
use einfo_common::error::ApiResult;
use einfo_domain::Jurisdiction;
use einfo_domain::text::fold;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;
use prost::Message;
use sea_orm::{ConnectionTrait, Value};

use super::{b, chunks, decode, insert_sql, ts_micros};

/// Key of a summary cell: (jurisdiction, kind, legal status, operating code, on trial); see
/// [`reg::Site::operating`] and [`reg::Site::on_trial`].
pub type CellKey = (String, String, i32, i32, bool);

/// Changes to summary cells made by a batch.
#[derive(Default, Debug)]
pub struct Delta(pub HashMap<CellKey, i64>);

impl Delta {
    fn add(&mut self, j: &str, s: &reg::Site, by: i64) {
        self.add_cell(j, &s.kind, s.legal_status, s.operating().code(), s.on_trial(), by);
    }

    fn add_cell(&mut self, j: &str, kind: &str, status: i32, operating: i32, trial: bool, by: i64) {
        *self.0.entry((j.to_owned(), kind.to_owned(), status, operating, trial)).or_default() += by;
    }
}

/// The stored cursor of a log: (sequence, hash); (0, genesis) when none.
pub async fn cursor<C: ConnectionTrait>(c: &C, j: &Jurisdiction, service: &str) -> ApiResult<Option<(u64, Vec<u8>)>> {
    cursor_of(c, &j.to_string(), service).await
}

/// [`cursor`] of a jurisdiction given as stored.
pub async fn cursor_of<C: ConnectionTrait>(c: &C, j: &str, service: &str) -> ApiResult<Option<(u64, Vec<u8>)>> {
    let row = c
        .query_one_raw(stmt(
            b(c),
            "SELECT seq, hash FROM gw_cursors WHERE jurisdiction = $1 AND service = $2",
            [j.into(), service.into()],
        ))
        .await?;
    row.map(|r| Ok((r.try_get_by_index::<i64>(0)? as u64, r.try_get_by_index::<Vec<u8>>(1)?))).transpose()
}

/// Every cursor: (jurisdiction, service, seq, apply time).
pub async fn cursors<C: ConnectionTrait>(c: &C) -> ApiResult<Vec<(String, String, u64, DateTime<Utc>)>> {
    let rows = c.query_all_raw(stmt(b(c), "SELECT jurisdiction, service, seq, apply_time FROM gw_cursors", [])).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index::<i64>(2)? as u64,
                from_micros(r.try_get_by_index(3)?),
            ))
        })
        .collect()
}

/// Whether [`apply`] keeps the entries it applies (replication), or they are kept already (a
/// rebuild from the kept entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entries {
    /// Keep them verbatim beside the projections, in the same transaction.
    Keep,
    /// They are read from the kept entries.
    AlreadyKept,
}

/// Applies `entries` of one log (already verified, in order) after the stored cursor, keeps them
/// (with [`Entries::Keep`]), then moves the cursor, all on `c` (a transaction). Entries at or
/// before the cursor are skipped, so a batch applied twice changes nothing. Returns the number
/// applied.
///
/// Runs of site creations (the bulk of an initial replication) are written with multi-row
/// statements; a creation whose site already exists (a replay after a resync, say) takes the
/// update path, exactly as when applied alone. Every other entry is applied on its own.
pub async fn apply<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    service: &str,
    entries: &[ChangeEntry],
    now: DateTime<Utc>,
    delta: &mut Delta,
    keeping: Entries,
) -> ApiResult<usize> {
    let at = cursor(c, j, service).await?.map_or(0, |(s, _)| s);
    let js = j.to_string();
    let todo: Vec<&ChangeEntry> = entries.iter().filter(|e| e.sequence > at).collect();
    if keeping == Entries::Keep {
        super::kept::keep(c, &js, service, &todo).await?;
    }
    let mut applied = 0;
    let mut last = None;
    let mut i = 0;
    while i < todo.len() {
        // The longest run of site creations from here whose names are distinct (so that the
        // rows a multi-row insert skipped are known by name).
        let mut run: Vec<NewSite> = Vec::new();
        let mut names = HashSet::new();
        while let Some(e) = todo.get(i + run.len()) {
            let Some(state) = e.state.as_ref().filter(|s| e.operation == "CREATE" && type_name(s) == SITE) else {
                break;
            };
            let site: reg::Site = decode(&state.value)?;
            if !names.insert(site.name.clone()) {
                break;
            }
            run.push(NewSite { site, body: &state.value });
        }
        if !run.is_empty() {
            i += run.len();
            applied += run.len();
            last = Some(todo[i - 1]);
            put_new_sites(c, &js, &run, delta).await?;
            continue;
        }
        let e = todo[i];
        i += 1;
        let Some(state) = &e.state else { continue };
        applied += 1;
        last = Some(e);
        match type_name(state) {
            SITE => {
                let create = e.operation == "CREATE";
                put_site(c, &js, &decode(&state.value)?, &state.value, create, delta).await?
            }
            "einfo.registry.v1.Licence" => put_licence(c, &js, &decode(&state.value)?).await?,
            "einfo.registry.v1.LicenceApplication" => put_application(c, &js, &decode(&state.value)?).await?,
            "einfo.inspection.v1.Inspection" => put_inspection(c, &js, &decode(&state.value)?).await?,
            "einfo.inspection.v1.SanctionDecision" => put_decision(c, &js, &decode(&state.value)?).await?,
            // Plans, site records and the rest do not enter national figures.
            _ => {}
        }
    }
    if let Some(e) = last {
        c.execute_raw(stmt(
            b(c),
            "INSERT INTO gw_cursors (jurisdiction, service, seq, hash, apply_time) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (jurisdiction, service) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
               apply_time = excluded.apply_time",
            [js.clone().into(), service.into(), (e.sequence as i64).into(), e.hash.clone().into(), micros(now).into()],
        ))
        .await?;
    }
    Ok(applied)
}

const SITE: &str = "einfo.registry.v1.Site";

fn type_name(state: &prost_types::Any) -> &str {
    state.type_url.rsplit('/').next().unwrap_or_default()
}

/// Writes the summary changes of a batch (in its transaction).
pub async fn write_delta<C: ConnectionTrait>(c: &C, delta: &Delta) -> ApiResult<()> {
    for ((j, kind, status, operating, trial), by) in delta.0.iter().filter(|(_, by)| **by != 0) {
        c.execute_raw(stmt(
            b(c),
            "INSERT INTO gw_summary (jurisdiction, kind, legal_status, operating, trial, count) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (jurisdiction, kind, legal_status, operating, trial)
             DO UPDATE SET count = gw_summary.count + excluded.count",
            [
                j.clone().into(),
                kind.clone().into(),
                (*status).into(),
                (*operating).into(),
                i32::from(*trial).into(),
                (*by).into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// Every summary cell.
pub async fn summary_cells<C: ConnectionTrait>(c: &C) -> ApiResult<Vec<(CellKey, i64)>> {
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT jurisdiction, kind, legal_status, operating, trial, count FROM gw_summary",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let key = (
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
                r.try_get_by_index(3)?,
                r.try_get_by_index::<i32>(4)? != 0,
            );
            Ok((key, r.try_get_by_index(5)?))
        })
        .collect()
}

/// A site created by a log entry, with its state as the node encoded it (stored as is).
struct NewSite<'a> {
    site: reg::Site,
    body: &'a [u8],
}

const SITE_COLUMNS: [&str; 10] = [
    "name",
    "jurisdiction",
    "kind",
    "legal_status",
    "operating",
    "trial",
    "voided",
    "name_folded",
    "owner_tax_code",
    "body",
];
const DOMAIN_COLUMNS: [&str; 4] = ["site", "ascii", "registrable", "jurisdiction"];

fn site_values(j: &str, s: &reg::Site, body: &[u8]) -> [Value; 10] {
    [
        s.name.clone().into(),
        j.into(),
        s.kind.clone().into(),
        s.legal_status.into(),
        s.operating().code().into(),
        i32::from(s.on_trial()).into(),
        i32::from(s.voided).into(),
        fold(&s.display_name).into(),
        s.owner.as_ref().map(|o| o.tax_code.clone()).unwrap_or_default().into(),
        body.to_vec().into(),
    ]
}

/// Site creations with distinct names: inserted with multi-row statements where the site is
/// new; a site that already exists goes through the update path of [`put_site`]. The domains
/// of all of them follow in multi-row statements.
async fn put_new_sites<C: ConnectionTrait>(c: &C, j: &str, run: &[NewSite<'_>], delta: &mut Delta) -> ApiResult<()> {
    let mut inserted: HashSet<String> = HashSet::with_capacity(run.len());
    for range in chunks(run.len()) {
        let values: Vec<Value> = run[range.clone()].iter().flat_map(|n| site_values(j, &n.site, n.body)).collect();
        let rows = c
            .query_all_raw(stmt(
                b(c),
                &insert_sql("gw_sites", &SITE_COLUMNS, range.len(), "ON CONFLICT (name) DO NOTHING RETURNING name"),
                values,
            ))
            .await?;
        for r in rows {
            inserted.insert(r.try_get_by_index(0)?);
        }
    }
    for n in run {
        if inserted.contains(&n.site.name) {
            if !n.site.voided {
                delta.add(j, &n.site, 1);
            }
        } else {
            replace_site(c, j, &n.site, n.body, delta).await?;
        }
    }
    let domains: Vec<(&reg::Site, &reg::DomainName)> =
        run.iter().flat_map(|n| n.site.domain_details.iter().map(move |d| (&n.site, d))).collect();
    for range in chunks(domains.len()) {
        let values: Vec<Value> = domains[range.clone()]
            .iter()
            .flat_map(|(s, d)| -> [Value; 4] {
                [s.name.clone().into(), d.ascii.clone().into(), d.registrable.clone().into(), j.into()]
            })
            .collect();
        c.execute_raw(stmt(
            b(c),
            &insert_sql("gw_site_domains", &DOMAIN_COLUMNS, range.len(), "ON CONFLICT DO NOTHING"),
            values,
        ))
        .await?;
    }
    Ok(())
}

async fn put_site<C: ConnectionTrait>(
    c: &C,
    j: &str,
    s: &reg::Site,
    body: &[u8],
    create: bool,
    delta: &mut Delta,
) -> ApiResult<()> {
    let mut fresh = false;
    if create {
        let r = c
            .execute_raw(stmt(
                b(c),
                &insert_sql("gw_sites", &SITE_COLUMNS, 1, "ON CONFLICT (name) DO NOTHING"),
                site_values(j, s, body),
            ))
            .await?;
        fresh = r.rows_affected() == 1;
    }
    if fresh {
        if !s.voided {
            delta.add(j, s, 1);
        }
    } else {
        replace_site(c, j, s, body, delta).await?;
    }
    for d in &s.domain_details {
        c.execute_raw(stmt(
            b(c),
            &insert_sql("gw_site_domains", &DOMAIN_COLUMNS, 1, "ON CONFLICT DO NOTHING"),
            [s.name.clone().into(), d.ascii.clone().into(), d.registrable.clone().into(), j.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Replaces a site's row (inserting it when absent), moves it between summary cells, and drops
/// its domains (the caller inserts the new ones).
async fn replace_site<C: ConnectionTrait>(
    c: &C,
    j: &str,
    s: &reg::Site,
    body: &[u8],
    delta: &mut Delta,
) -> ApiResult<()> {
    let old = c
        .query_one_raw(stmt(
            b(c),
            "SELECT kind, legal_status, operating, trial, voided FROM gw_sites WHERE name = $1",
            [s.name.clone().into()],
        ))
        .await?;
    if let Some(o) = old
        && o.try_get_by_index::<i32>(4)? == 0
    {
        let kind: String = o.try_get_by_index(0)?;
        let trial = o.try_get_by_index::<i32>(3)? != 0;
        delta.add_cell(j, &kind, o.try_get_by_index(1)?, o.try_get_by_index(2)?, trial, -1);
    }
    c.execute_raw(stmt(
        b(c),
        &insert_sql(
            "gw_sites",
            &SITE_COLUMNS,
            1,
            "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, legal_status = excluded.legal_status,
               operating = excluded.operating, trial = excluded.trial, voided = excluded.voided, name_folded = excluded.name_folded,
               owner_tax_code = excluded.owner_tax_code, body = excluded.body",
        ),
        site_values(j, s, body),
    ))
    .await?;
    c.execute_raw(stmt(b(c), "DELETE FROM gw_site_domains WHERE site = $1", [s.name.clone().into()])).await?;
    if !s.voided {
        delta.add(j, s, 1);
    }
    Ok(())
}

async fn put_licence<C: ConnectionTrait>(c: &C, j: &str, l: &reg::Licence) -> ApiResult<()> {
    let expire = l.expire_time.as_ref().map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000);
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO gw_licences (name, jurisdiction, state, expire_time, body) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, expire_time = excluded.expire_time, body = excluded.body",
        [l.name.clone().into(), j.into(), l.state.into(), expire.into(), l.encode_to_vec().into()],
    ))
    .await?;
    Ok(())
}

async fn put_application<C: ConnectionTrait>(c: &C, j: &str, a: &reg::LicenceApplication) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO gw_applications (name, jurisdiction, state, deadline, body) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, deadline = excluded.deadline, body = excluded.body",
        [
            a.name.clone().into(),
            j.into(),
            a.state.into(),
            ts_micros(a.deadline.as_ref()).into(),
            a.encode_to_vec().into(),
        ],
    ))
    .await?;
    Ok(())
}

async fn put_inspection<C: ConnectionTrait>(c: &C, j: &str, i: &insp::Inspection) -> ApiResult<()> {
    let at = ts_micros(i.inspect_time.as_ref());
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO gw_inspections (name, jurisdiction, inspect_time) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET inspect_time = excluded.inspect_time",
        [i.name.clone().into(), j.into(), at.into()],
    ))
    .await?;
    c.execute_raw(stmt(b(c), "DELETE FROM gw_violations WHERE inspection = $1", [i.name.clone().into()])).await?;
    for (idx, v) in i.violations.iter().enumerate() {
        c.execute_raw(stmt(
            b(c),
            "INSERT INTO gw_violations (inspection, idx, jurisdiction, code, inspect_time) VALUES ($1, $2, $3, $4, $5)",
            [i.name.clone().into(), (idx as i32).into(), j.into(), v.code.clone().into(), at.into()],
        ))
        .await?;
    }
    Ok(())
}

async fn put_decision<C: ConnectionTrait>(c: &C, j: &str, d: &insp::SanctionDecision) -> ApiResult<()> {
    let count = |k: insp::MeasureKind| d.measures.iter().filter(|m| m.kind == k as i32).count() as i32;
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO gw_decisions (name, jurisdiction, decision_time, fine_vnd, suspensions, revocations, voided)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name) DO UPDATE SET decision_time = excluded.decision_time, fine_vnd = excluded.fine_vnd,
           suspensions = excluded.suspensions, revocations = excluded.revocations, voided = excluded.voided",
        [
            d.name.clone().into(),
            j.into(),
            ts_micros(d.decision_time.as_ref()).into(),
            d.fine_vnd.into(),
            count(insp::MeasureKind::LicenceSuspension).into(),
            count(insp::MeasureKind::LicenceRevocation).into(),
            i32::from(d.voided).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Forgets everything the store holds of `j` (resync after an operator's decision).
pub async fn forget<C: ConnectionTrait>(c: &C, j: &Jurisdiction) -> ApiResult<()> {
    let js = j.to_string();
    for table in [
        "gw_cursors",
        "gw_sites",
        "gw_site_domains",
        "gw_licences",
        "gw_applications",
        "gw_inspections",
        "gw_violations",
        "gw_decisions",
        "gw_summary",
    ] {
        c.execute_raw(stmt(b(c), &format!("DELETE FROM {table} WHERE jurisdiction = $1"), [js.clone().into()])).await?;
    }
    Ok(())
}
