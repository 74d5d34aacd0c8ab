//! SQL of the national store, for both databases: applying replicated entries (idempotently,
//! with the cursor in the same transaction) and the national queries.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use einfo_common::changelog::ChangeEntry;
use einfo_common::db::{from_micros, micros, stmt};
use einfo_common::error::{ApiError, ApiResult};
use einfo_domain::Jurisdiction;
use einfo_domain::text::fold;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;
use prost::Message;
use sea_orm::{ConnectionTrait, Value};

fn b<C: ConnectionTrait>(c: &C) -> sea_orm::DbBackend {
    c.get_database_backend()
}

fn decode<M: Message + Default>(bytes: &[u8]) -> ApiResult<M> {
    M::decode(bytes).map_err(ApiError::internal)
}

/// Key of a summary cell: (jurisdiction, kind, legal status).
pub type CellKey = (String, String, i32);

/// Changes to summary cells made by a batch.
#[derive(Default, Debug)]
pub struct Delta(pub HashMap<CellKey, i64>);

impl Delta {
    fn add(&mut self, j: &str, kind: &str, status: i32, by: i64) {
        *self.0.entry((j.to_owned(), kind.to_owned(), status)).or_default() += by;
    }
}

/// The stored cursor of a log: (sequence, hash); (0, genesis) when none.
pub async fn cursor<C: ConnectionTrait>(c: &C, j: &Jurisdiction, service: &str) -> ApiResult<Option<(u64, Vec<u8>)>> {
    let row = c
        .query_one_raw(stmt(
            b(c),
            "SELECT seq, hash FROM gw_cursors WHERE jurisdiction = $1 AND service = $2",
            [j.to_string().into(), service.into()],
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

/// Applies `entries` of one log (already verified, in order) after the stored cursor, then moves
/// the cursor, all on `c` (a transaction). Entries at or before the cursor are skipped, so a
/// batch applied twice changes nothing. Returns the number applied.
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
) -> ApiResult<usize> {
    let at = cursor(c, j, service).await?.map_or(0, |(s, _)| s);
    let js = j.to_string();
    let todo: Vec<&ChangeEntry> = entries.iter().filter(|e| e.sequence > at).collect();
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
    for ((j, kind, status), by) in delta.0.iter().filter(|(_, by)| **by != 0) {
        c.execute_raw(stmt(
            b(c),
            "INSERT INTO gw_summary (jurisdiction, kind, legal_status, count) VALUES ($1, $2, $3, $4)
             ON CONFLICT (jurisdiction, kind, legal_status) DO UPDATE SET count = gw_summary.count + excluded.count",
            [j.clone().into(), kind.clone().into(), (*status).into(), (*by).into()],
        ))
        .await?;
    }
    Ok(())
}

/// Every summary cell.
pub async fn summary_cells<C: ConnectionTrait>(c: &C) -> ApiResult<Vec<(CellKey, i64)>> {
    let rows =
        c.query_all_raw(stmt(b(c), "SELECT jurisdiction, kind, legal_status, count FROM gw_summary", [])).await?;
    rows.iter()
        .map(|r| Ok(((r.try_get_by_index(0)?, r.try_get_by_index(1)?, r.try_get_by_index(2)?), r.try_get_by_index(3)?)))
        .collect()
}

/// A site created by a log entry, with its state as the node encoded it (stored as is).
struct NewSite<'a> {
    site: reg::Site,
    body: &'a [u8],
}

/// Rows per multi-row statement, largest first: a batch is cut greedily into these sizes, so
/// that only a few distinct statements are ever prepared (and stay in the statement cache).
const CHUNKS: [usize; 4] = [128, 16, 4, 1];

/// Cuts `n` rows into consecutive ranges of the sizes of [`CHUNKS`].
fn chunks(n: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    for size in CHUNKS {
        while n - at >= size {
            out.push(at..at + size);
            at += size;
        }
    }
    out
}

/// `INSERT INTO {table} ({columns}) VALUES (…), (…)` for `rows` rows, then `tail`.
fn insert_sql(table: &str, columns: &[&str], rows: usize, tail: &str) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for k in 0..columns.len() {
            if k > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * columns.len() + k + 1));
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

const SITE_COLUMNS: [&str; 8] =
    ["name", "jurisdiction", "kind", "legal_status", "voided", "name_folded", "owner_tax_code", "body"];
const DOMAIN_COLUMNS: [&str; 4] = ["site", "ascii", "registrable", "jurisdiction"];

fn site_values(j: &str, s: &reg::Site, body: &[u8]) -> [Value; 8] {
    [
        s.name.clone().into(),
        j.into(),
        s.kind.clone().into(),
        s.legal_status.into(),
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
                delta.add(j, &n.site.kind, n.site.legal_status, 1);
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
            delta.add(j, &s.kind, s.legal_status, 1);
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
            "SELECT kind, legal_status, voided FROM gw_sites WHERE name = $1",
            [s.name.clone().into()],
        ))
        .await?;
    if let Some(o) = old
        && o.try_get_by_index::<i32>(2)? == 0
    {
        delta.add(j, &o.try_get_by_index::<String>(0)?, o.try_get_by_index(1)?, -1);
    }
    c.execute_raw(stmt(
        b(c),
        &insert_sql(
            "gw_sites",
            &SITE_COLUMNS,
            1,
            "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, legal_status = excluded.legal_status,
               voided = excluded.voided, name_folded = excluded.name_folded,
               owner_tax_code = excluded.owner_tax_code, body = excluded.body",
        ),
        site_values(j, s, body),
    ))
    .await?;
    c.execute_raw(stmt(b(c), "DELETE FROM gw_site_domains WHERE site = $1", [s.name.clone().into()])).await?;
    if !s.voided {
        delta.add(j, &s.kind, s.legal_status, 1);
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

fn ts_micros(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
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

// ------------------------------------------------------------------ directory and alarms

/// The directory.
pub async fn directory<C: ConnectionTrait>(c: &C) -> ApiResult<Vec<(String, String)>> {
    let rows = c.query_all_raw(stmt(b(c), "SELECT jurisdiction, endpoint FROM gw_directory", [])).await?;
    rows.iter().map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?))).collect()
}

/// Sets an endpoint.
pub async fn set_endpoint<C: ConnectionTrait>(c: &C, j: &Jurisdiction, endpoint: &str) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO gw_directory (jurisdiction, endpoint) VALUES ($1, $2)
         ON CONFLICT (jurisdiction) DO UPDATE SET endpoint = excluded.endpoint",
        [j.to_string().into(), endpoint.into()],
    ))
    .await?;
    Ok(())
}

/// Removes an endpoint.
pub async fn remove_endpoint<C: ConnectionTrait>(c: &C, j: &Jurisdiction) -> ApiResult<()> {
    c.execute_raw(stmt(b(c), "DELETE FROM gw_directory WHERE jurisdiction = $1", [j.to_string().into()])).await?;
    Ok(())
}

/// Every alarm: (jurisdiction, detail, raise time).
pub async fn alarms<C: ConnectionTrait>(c: &C) -> ApiResult<Vec<(String, String, DateTime<Utc>)>> {
    let rows = c.query_all_raw(stmt(b(c), "SELECT jurisdiction, detail, raise_time FROM gw_alarms", [])).await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?, from_micros(r.try_get_by_index(2)?))))
        .collect()
}

/// Raises an alarm (the first detail is kept).
pub async fn raise_alarm<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    detail: &str,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO gw_alarms (jurisdiction, detail, raise_time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [j.to_string().into(), detail.into(), micros(at).into()],
    ))
    .await?;
    Ok(())
}

/// Clears an alarm.
pub async fn clear_alarm<C: ConnectionTrait>(c: &C, j: &Jurisdiction) -> ApiResult<()> {
    c.execute_raw(stmt(b(c), "DELETE FROM gw_alarms WHERE jurisdiction = $1", [j.to_string().into()])).await?;
    Ok(())
}

// ------------------------------------------------------------------ queries

/// Valid licences expiring in [from, to): (jurisdiction, licence), first `limit` by expiry, and
/// the number matching.
pub async fn expiring_licences<C: ConnectionTrait>(
    c: &C,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> ApiResult<(Vec<(String, reg::Licence)>, i64)> {
    let v = || -> Vec<Value> { vec![(reg::LicenceState::Valid as i32).into(), micros(from).into(), micros(to).into()] };
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT jurisdiction, body FROM gw_licences WHERE state = $1 AND expire_time >= $2 AND expire_time < $3
             ORDER BY expire_time, name LIMIT $4",
            v().into_iter().chain([limit.into()]),
        ))
        .await?;
    let total =
        count(c, "SELECT COUNT(*) FROM gw_licences WHERE state = $1 AND expire_time >= $2 AND expire_time < $3", v())
            .await?;
    let items = rows
        .iter()
        .map(|r| Ok((r.try_get_by_index(0)?, decode(&r.try_get_by_index::<Vec<u8>>(1)?)?)))
        .collect::<ApiResult<_>>()?;
    Ok((items, total))
}

async fn count<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> ApiResult<i64> {
    let row = c.query_one_raw(stmt(b(c), sql, values)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

/// Applications received or awaiting a supplement whose deadline passed before `now`.
pub async fn overdue_applications<C: ConnectionTrait>(
    c: &C,
    now: DateTime<Utc>,
    limit: i64,
) -> ApiResult<(Vec<(String, reg::LicenceApplication)>, i64)> {
    let v = || -> Vec<Value> {
        vec![
            (reg::ApplicationState::Received as i32).into(),
            (reg::ApplicationState::NeedsSupplement as i32).into(),
            micros(now).into(),
        ]
    };
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT jurisdiction, body FROM gw_applications WHERE state IN ($1, $2) AND deadline > 0 AND deadline < $3
             ORDER BY deadline, name LIMIT $4",
            v().into_iter().chain([limit.into()]),
        ))
        .await?;
    let total = count(
        c,
        "SELECT COUNT(*) FROM gw_applications WHERE state IN ($1, $2) AND deadline > 0 AND deadline < $3",
        v(),
    )
    .await?;
    let items = rows
        .iter()
        .map(|r| Ok((r.try_get_by_index(0)?, decode(&r.try_get_by_index::<Vec<u8>>(1)?)?)))
        .collect::<ApiResult<_>>()?;
    Ok((items, total))
}

/// Enforcement figures of one jurisdiction in a period.
#[derive(Clone, Debug, Default)]
pub struct Enforcement {
    /// Inspections.
    pub inspections: i64,
    /// Violations by code.
    pub violations: HashMap<String, i64>,
    /// Decisions (not voided).
    pub decisions: i64,
    /// Fines, VND.
    pub fines_vnd: i64,
    /// Suspensions.
    pub suspensions: i64,
    /// Revocations.
    pub revocations: i64,
}

/// Enforcement figures by jurisdiction in [from, to).
pub async fn enforcement<C: ConnectionTrait>(
    c: &C,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<HashMap<String, Enforcement>> {
    let period = || -> Vec<Value> { vec![micros(from).into(), micros(to).into()] };
    let mut out: HashMap<String, Enforcement> = HashMap::new();
    for r in c
        .query_all_raw(stmt(
            b(c),
            "SELECT jurisdiction, COUNT(*) FROM gw_inspections WHERE inspect_time >= $1 AND inspect_time < $2
             GROUP BY jurisdiction",
            period(),
        ))
        .await?
    {
        out.entry(r.try_get_by_index(0)?).or_default().inspections = r.try_get_by_index(1)?;
    }
    for r in c
        .query_all_raw(stmt(
            b(c),
            "SELECT jurisdiction, code, COUNT(*) FROM gw_violations WHERE inspect_time >= $1 AND inspect_time < $2
             GROUP BY jurisdiction, code",
            period(),
        ))
        .await?
    {
        out.entry(r.try_get_by_index(0)?)
            .or_default()
            .violations
            .insert(r.try_get_by_index(1)?, r.try_get_by_index(2)?);
    }
    for r in c
        .query_all_raw(stmt(
            b(c),
            "SELECT jurisdiction, COUNT(*), CAST(COALESCE(SUM(fine_vnd), 0) AS BIGINT),
                    CAST(COALESCE(SUM(suspensions), 0) AS BIGINT), CAST(COALESCE(SUM(revocations), 0) AS BIGINT)
             FROM gw_decisions WHERE voided = 0 AND decision_time >= $1 AND decision_time < $2
             GROUP BY jurisdiction",
            period(),
        ))
        .await?
    {
        let e = out.entry(r.try_get_by_index(0)?).or_default();
        e.decisions = r.try_get_by_index(1)?;
        e.fines_vnd = r.try_get_by_index(2)?;
        e.suspensions = r.try_get_by_index(3)?;
        e.revocations = r.try_get_by_index(4)?;
    }
    Ok(out)
}

/// One search criterion.
pub enum Search {
    /// Sites holding exactly this ASCII domain.
    Domain(String),
    /// Sites holding a domain under this registrable domain.
    Registrable(String),
    /// Sites of this canonical owner tax code.
    TaxCode(String),
    /// Folded words that must each start a word of the folded name.
    Name(Vec<String>),
}

/// National search: (jurisdiction, site), ordered by jurisdiction then name.
pub async fn search<C: ConnectionTrait>(
    c: &C,
    q: &Search,
    show_voided: bool,
    limit: i64,
) -> ApiResult<Vec<(String, reg::Site)>> {
    let mut values: Vec<Value> = Vec::new();
    let mut sql = String::from("SELECT s.jurisdiction, s.body FROM gw_sites s WHERE 1 = 1");
    match q {
        Search::Domain(d) => {
            values.push(d.clone().into());
            sql.push_str(" AND s.name IN (SELECT site FROM gw_site_domains WHERE ascii = $1)");
        }
        Search::Registrable(d) => {
            values.push(d.clone().into());
            sql.push_str(" AND s.name IN (SELECT site FROM gw_site_domains WHERE registrable = $1)");
        }
        Search::TaxCode(t) => {
            values.push(t.clone().into());
            sql.push_str(" AND s.owner_tax_code = $1");
        }
        Search::Name(words) => {
            for w in words {
                values.push(format!("% {w}%").into());
                sql.push_str(&format!(" AND (' ' || s.name_folded) LIKE ${}", values.len()));
            }
        }
    }
    if !show_voided {
        sql.push_str(" AND s.voided = 0");
    }
    values.push(limit.into());
    sql.push_str(&format!(" ORDER BY s.jurisdiction, s.name LIMIT ${}", values.len()));
    let rows = c.query_all_raw(stmt(b(c), &sql, values)).await?;
    rows.iter().map(|r| Ok((r.try_get_by_index(0)?, decode(&r.try_get_by_index::<Vec<u8>>(1)?)?))).collect()
}

/// Registrable domains held by live sites of two or more jurisdictions, the first `limit` of
/// them, with every site holding each: (registrable, jurisdiction, site).
pub async fn conflicts<C: ConnectionTrait>(c: &C, limit: i64) -> ApiResult<Vec<(String, String, reg::Site)>> {
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT DISTINCT d.registrable, s.jurisdiction, s.name, s.body FROM gw_site_domains d
             JOIN gw_sites s ON s.name = d.site
             WHERE s.voided = 0 AND d.registrable IN (
               SELECT registrable FROM (
                 SELECT d2.registrable AS registrable FROM gw_site_domains d2 JOIN gw_sites s2 ON s2.name = d2.site
                 WHERE s2.voided = 0 GROUP BY d2.registrable HAVING COUNT(DISTINCT s2.jurisdiction) > 1
                 ORDER BY d2.registrable LIMIT $1) AS picked)
             ORDER BY d.registrable, s.jurisdiction, s.name",
            [limit.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?, decode(&r.try_get_by_index::<Vec<u8>>(3)?)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once_in_order_with_few_distinct_sizes() {
        for n in 0..600 {
            let cs = chunks(n);
            let mut at = 0;
            for c in &cs {
                assert_eq!(c.start, at);
                assert!(CHUNKS.contains(&c.len()));
                at = c.end;
            }
            assert_eq!(at, n);
        }
        assert_eq!(chunks(1000).len(), 7 + 6 + 2);
    }

    #[test]
    fn a_multi_row_insert_numbers_its_placeholders_row_by_row() {
        assert_eq!(
            insert_sql("t", &["a", "b"], 2, "ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
    }
}
