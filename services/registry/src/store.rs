//! The registry's tables (sea-orm connections, SQL written once for both databases). Every
//! function takes any connection or transaction, so a service method composes several in one
//! transaction with its log entries. Database errors surface as `ApiError::internal`.

use chrono::{DateTime, Utc};
use einfo_common::db::{micros, stmt};
use einfo_common::error::ApiResult;
use einfo_domain::Jurisdiction;
use einfo_proto::registry::v1 as pb;
use prost::Message;
use sea_orm::{ConnectionTrait, QueryResult, Value};

use crate::convert::{folded_name, instant};

fn decode<M: Message + Default>(bytes: &[u8]) -> ApiResult<M> {
    M::decode(bytes).map_err(einfo_common::ApiError::internal)
}

fn b<C: ConnectionTrait>(c: &C) -> sea_orm::DbBackend {
    c.get_database_backend()
}

/// A site and its revision (the etag is the revision).
pub async fn get_site<C: ConnectionTrait>(c: &C, name: &str) -> ApiResult<Option<pb::Site>> {
    let row = c.query_one_raw(stmt(b(c), "SELECT state FROM reg_sites WHERE name = $1", [name.into()])).await?;
    row.map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).transpose()
}

/// Inserts or replaces a site's row. `site.etag` holds its revision.
pub async fn put_site<C: ConnectionTrait>(c: &C, site: &pb::Site) -> ApiResult<()> {
    let revision: i64 = site.etag.parse().unwrap_or(1);
    let tax = site.owner.as_ref().map(|o| o.tax_code.clone()).unwrap_or_default();
    let values: Vec<Value> = vec![
        site.name.clone().into(),
        site.jurisdiction.clone().into(),
        site.kind.clone().into(),
        site.legal_status.into(),
        folded_name(site).into(),
        tax.into(),
        (site.voided as i32).into(),
        revision.into(),
        site.encode_to_vec().into(),
    ];
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO reg_sites (name, jurisdiction, kind, legal_status, name_folded, owner_tax_code, voided, revision, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, legal_status = excluded.legal_status,
           name_folded = excluded.name_folded, owner_tax_code = excluded.owner_tax_code, voided = excluded.voided,
           revision = excluded.revision, state = excluded.state",
        values,
    ))
    .await?;
    Ok(())
}

/// Which of `ascii` domains are held in the jurisdiction by a site other than `except`.
pub async fn domain_holders<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    ascii: &[String],
    except: &str,
) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for d in ascii {
        let row = c
            .query_one_raw(stmt(
                b(c),
                "SELECT site FROM reg_site_domains WHERE jurisdiction = $1 AND ascii = $2 AND site <> $3",
                [j.to_string().into(), d.clone().into(), except.into()],
            ))
            .await?;
        if let Some(r) = row {
            out.push((d.clone(), r.try_get_by_index(0)?));
        }
    }
    Ok(out)
}

/// Replaces the domains a site holds (none for a voided site).
pub async fn set_domains<C: ConnectionTrait>(c: &C, site: &pb::Site) -> ApiResult<()> {
    c.execute_raw(stmt(b(c), "DELETE FROM reg_site_domains WHERE site = $1", [site.name.clone().into()])).await?;
    add_domains(c, site).await
}

/// Records the domains of a site that holds none yet (a new site): [`set_domains`] without its
/// DELETE, one statement less on every site created.
pub async fn add_domains<C: ConnectionTrait>(c: &C, site: &pb::Site) -> ApiResult<()> {
    if site.voided {
        return Ok(());
    }
    for d in &site.domain_details {
        c.execute_raw(stmt(
            b(c),
            "INSERT INTO reg_site_domains (jurisdiction, ascii, registrable, site) VALUES ($1, $2, $3, $4)",
            [
                site.jurisdiction.clone().into(),
                d.ascii.clone().into(),
                d.registrable.clone().into(),
                site.name.clone().into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// Filters of a site listing, already normalised.
#[derive(Clone, Debug, Default)]
pub struct SiteFilter {
    /// Jurisdiction.
    pub jurisdiction: String,
    /// Kind code.
    pub kind: Option<String>,
    /// Legal status.
    pub legal_status: Option<i32>,
    /// ASCII domain, matched exactly.
    pub domain: Option<String>,
    /// Registrable domain.
    pub registrable: Option<String>,
    /// Canonical tax code.
    pub owner_tax_code: Option<String>,
    /// Folded words that must all start a word of the folded name.
    pub name_words: Vec<String>,
    /// Include voided sites.
    pub show_voided: bool,
}

/// A page of sites after `after` (by name), at most `limit`.
pub async fn list_sites<C: ConnectionTrait>(
    c: &C,
    f: &SiteFilter,
    after: &str,
    limit: u64,
) -> ApiResult<Vec<pb::Site>> {
    let mut sql = String::from("SELECT state FROM reg_sites WHERE jurisdiction = $1 AND name > $2");
    let mut values: Vec<Value> = vec![f.jurisdiction.clone().into(), after.into()];
    let push = |cond: &str, v: Value, sql: &mut String, values: &mut Vec<Value>| {
        values.push(v);
        sql.push_str(&cond.replace("$?", &format!("${}", values.len())));
    };
    if let Some(k) = &f.kind {
        push(" AND kind = $?", k.clone().into(), &mut sql, &mut values);
    }
    if let Some(s) = f.legal_status {
        push(" AND legal_status = $?", s.into(), &mut sql, &mut values);
    }
    if let Some(t) = &f.owner_tax_code {
        push(" AND owner_tax_code = $?", t.clone().into(), &mut sql, &mut values);
    }
    if !f.show_voided {
        sql.push_str(" AND voided = 0");
    }
    if let (Some(d), Some(r)) = (&f.domain, &f.registrable) {
        values.push(d.clone().into());
        values.push(r.clone().into());
        sql.push_str(&format!(
            " AND name IN (SELECT site FROM reg_site_domains WHERE jurisdiction = $1 AND (ascii = ${} OR registrable = ${}))",
            values.len() - 1,
            values.len()
        ));
    }
    for w in &f.name_words {
        push(" AND (' ' || name_folded) LIKE $?", format!("% {w}%").into(), &mut sql, &mut values);
    }
    values.push((limit as i64).into());
    sql.push_str(&format!(" ORDER BY name LIMIT ${}", values.len()));
    let rows = c.query_all_raw(stmt(b(c), &sql, values)).await?;
    rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
}

/// An application.
pub async fn get_application<C: ConnectionTrait>(c: &C, name: &str) -> ApiResult<Option<pb::LicenceApplication>> {
    let row = c.query_one_raw(stmt(b(c), "SELECT body FROM reg_applications WHERE name = $1", [name.into()])).await?;
    row.map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).transpose()
}

/// Inserts or replaces an application.
pub async fn put_application<C: ConnectionTrait>(c: &C, j: &Jurisdiction, a: &pb::LicenceApplication) -> ApiResult<()> {
    let revision: i64 = a.etag.parse().unwrap_or(1);
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO reg_applications (name, jurisdiction, site, state, deadline, revision, body) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, deadline = excluded.deadline, revision = excluded.revision, body = excluded.body",
        [
            a.name.clone().into(),
            j.to_string().into(),
            a.site.clone().into(),
            a.state.into(),
            micros(instant(a.deadline.as_ref())).into(),
            revision.into(),
            a.encode_to_vec().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Applications of a jurisdiction after `after`; `pending_before` keeps pending ones whose
/// deadline passed before that instant.
pub async fn list_applications<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    state: Option<i32>,
    pending_before: Option<DateTime<Utc>>,
    after: &str,
    limit: u64,
) -> ApiResult<Vec<pb::LicenceApplication>> {
    let mut sql = String::from("SELECT body FROM reg_applications WHERE jurisdiction = $1 AND name > $2");
    let mut values: Vec<Value> = vec![j.to_string().into(), after.into()];
    if let Some(s) = state {
        values.push(s.into());
        sql.push_str(&format!(" AND state = ${}", values.len()));
    }
    if let Some(t) = pending_before {
        values.push(micros(t).into());
        sql.push_str(&format!(" AND state = 1 AND deadline <= ${}", values.len()));
    }
    values.push((limit as i64).into());
    sql.push_str(&format!(" ORDER BY name LIMIT ${}", values.len()));
    let rows = c.query_all_raw(stmt(b(c), &sql, values)).await?;
    rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
}

/// Applications of a site.
pub async fn site_applications<C: ConnectionTrait>(c: &C, site: &str) -> ApiResult<Vec<pb::LicenceApplication>> {
    let rows = c
        .query_all_raw(stmt(b(c), "SELECT body FROM reg_applications WHERE site = $1 ORDER BY name", [site.into()]))
        .await?;
    rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
}

/// A licence.
pub async fn get_licence<C: ConnectionTrait>(c: &C, name: &str) -> ApiResult<Option<pb::Licence>> {
    let row = c.query_one_raw(stmt(b(c), "SELECT body FROM reg_licences WHERE name = $1", [name.into()])).await?;
    row.map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).transpose()
}

/// Inserts or replaces a licence.
pub async fn put_licence<C: ConnectionTrait>(c: &C, j: &Jurisdiction, l: &pb::Licence) -> ApiResult<()> {
    let revision: i64 = l.etag.parse().unwrap_or(1);
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO reg_licences (name, jurisdiction, site, state, issue_time, expire_time, suspended_until, revision, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, issue_time = excluded.issue_time, expire_time = excluded.expire_time,
           suspended_until = excluded.suspended_until, revision = excluded.revision, body = excluded.body",
        [
            l.name.clone().into(),
            j.to_string().into(),
            l.site.clone().into(),
            l.state.into(),
            micros(instant(l.issue_time.as_ref())).into(),
            micros(instant(l.expire_time.as_ref())).into(),
            l.suspended_until.as_ref().map(|t| micros(instant(Some(t)))).unwrap_or(0).into(),
            revision.into(),
            l.encode_to_vec().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Licences of a jurisdiction after `after`, optionally only valid ones expiring before an instant
/// or those of one site.
pub async fn list_licences<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    expiring_before: Option<DateTime<Utc>>,
    site: Option<&str>,
    after: &str,
    limit: u64,
) -> ApiResult<Vec<pb::Licence>> {
    let mut sql = String::from("SELECT body FROM reg_licences WHERE jurisdiction = $1 AND name > $2");
    let mut values: Vec<Value> = vec![j.to_string().into(), after.into()];
    if let Some(t) = expiring_before {
        values.push(micros(t).into());
        sql.push_str(&format!(" AND state = 1 AND expire_time <= ${}", values.len()));
    }
    if let Some(s) = site {
        values.push(s.into());
        sql.push_str(&format!(" AND site = ${}", values.len()));
    }
    values.push((limit as i64).into());
    sql.push_str(&format!(" ORDER BY name LIMIT ${}", values.len()));
    let rows = c.query_all_raw(stmt(b(c), &sql, values)).await?;
    rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
}

/// Licences of a site.
pub async fn site_licences<C: ConnectionTrait>(c: &C, site: &str) -> ApiResult<Vec<pb::Licence>> {
    let rows = c
        .query_all_raw(stmt(b(c), "SELECT body FROM reg_licences WHERE site = $1 ORDER BY name", [site.into()]))
        .await?;
    rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
}

/// Inserts or replaces a registration or trial record.
pub async fn put_record<C: ConnectionTrait>(c: &C, j: &Jurisdiction, r: &pb::SiteRecord, ended: bool) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO reg_records (name, jurisdiction, site, start_time, end_time, ended, body) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name) DO UPDATE SET ended = excluded.ended, body = excluded.body",
        [
            r.name.clone().into(),
            j.to_string().into(),
            r.site.clone().into(),
            micros(instant(r.start_time.as_ref())).into(),
            r.end_time.as_ref().map(|t| micros(instant(Some(t)))).unwrap_or(i64::MAX).into(),
            (ended as i32).into(),
            r.encode_to_vec().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Records of a site.
pub async fn site_records<C: ConnectionTrait>(c: &C, site: &str) -> ApiResult<Vec<pb::SiteRecord>> {
    let rows = c
        .query_all_raw(stmt(b(c), "SELECT body FROM reg_records WHERE site = $1 ORDER BY name", [site.into()]))
        .await?;
    rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
}

/// What is due for a time-driven transition in a jurisdiction at `now`.
#[derive(Debug, Default)]
pub struct Due {
    /// Valid licences past their expiry.
    pub expiring: Vec<pb::Licence>,
    /// Suspended licences past the end of their suspension.
    pub lapsing: Vec<pb::Licence>,
    /// Records in force past their end.
    pub ending: Vec<pb::SiteRecord>,
}

/// Finds what is due.
pub async fn due<C: ConnectionTrait>(c: &C, j: &Jurisdiction, now: DateTime<Utc>) -> ApiResult<Due> {
    let n = micros(now);
    let dec = |rows: Vec<QueryResult>| -> ApiResult<Vec<pb::Licence>> {
        rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
    };
    let expiring = dec(c
        .query_all_raw(stmt(
            b(c),
            "SELECT body FROM reg_licences WHERE jurisdiction = $1 AND state = 1 AND expire_time <= $2 ORDER BY name",
            [j.to_string().into(), n.into()],
        ))
        .await?)?;
    let lapsing = dec(c
        .query_all_raw(stmt(b(c), "SELECT body FROM reg_licences WHERE jurisdiction = $1 AND state = 2 AND suspended_until <= $2 ORDER BY name", [j.to_string().into(), n.into()]))
        .await?)?;
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT body FROM reg_records WHERE jurisdiction = $1 AND ended = 0 AND end_time <= $2 ORDER BY name",
            [j.to_string().into(), n.into()],
        ))
        .await?;
    let ending = rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect::<ApiResult<_>>()?;
    Ok(Due { expiring, lapsing, ending })
}

/// Sites stored with a status no longer derived (`TRIAL`, before schema version 4), by name.
pub async fn stored_as_trial<C: ConnectionTrait>(c: &C, j: &Jurisdiction) -> ApiResult<Vec<String>> {
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT name FROM reg_sites WHERE jurisdiction = $1 AND legal_status = $2 AND voided = 0 ORDER BY name",
            [j.to_string().into(), (pb::LegalStatus::Trial as i32).into()],
        ))
        .await?;
    Ok(rows.iter().map(|r| r.try_get_by_index(0)).collect::<Result<_, _>>()?)
}

/// How a site counts in the figures: kind × legal status × operating state × trial. A voided
/// site does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell<'a> {
    /// Kind code.
    pub kind: &'a str,
    /// Legal status.
    pub status: i32,
    /// [`pb::Operating`] code.
    pub operating: i32,
    /// On trial.
    pub trial: bool,
}

impl<'a> Cell<'a> {
    /// The cell a site counts in.
    pub fn of(site: &'a pb::Site) -> Self {
        Cell { kind: &site.kind, status: site.legal_status, operating: site.operating().code(), trial: site.on_trial() }
    }
}

/// Snapshot of a site or application at a log sequence, for figures as of a past time.
pub struct HistoryRow<'a> {
    /// Jurisdiction.
    pub jurisdiction: &'a Jurisdiction,
    /// Log sequence of the entry that made this state.
    pub seq: u64,
    /// Resource name.
    pub resource: &'a str,
    /// "site" or "application".
    pub resource_type: &'static str,
    /// The site's cell (sites); for an application, its state as `status` and the rest empty.
    pub cell: Cell<'a>,
    /// Deadline (applications), microseconds.
    pub deadline: i64,
    /// Voided.
    pub voided: bool,
    /// A site's cell and voided flag before this snapshot (`None`: a new site, or not a site):
    /// moves it between the running counts without reading its last snapshot back.
    pub before: Option<(Cell<'a>, bool)>,
}

/// Records a site's new snapshot; `before` is the site as it stood before this entry (its row in
/// `reg_sites`, which is its last snapshot), `None` for a new site.
pub async fn put_site_history<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    seq: u64,
    before: Option<&pb::Site>,
    site: &pb::Site,
) -> ApiResult<()> {
    put_history(
        c,
        HistoryRow {
            before: before.map(|b| (Cell::of(b), b.voided)),
            jurisdiction: j,
            seq,
            resource: &site.name,
            resource_type: "site",
            cell: Cell::of(site),
            deadline: 0,
            voided: site.voided,
        },
    )
    .await
}

/// Records an application's new snapshot (its state and deadline, for figures as of a past time).
pub async fn put_application_history<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    seq: u64,
    app: &pb::LicenceApplication,
) -> ApiResult<()> {
    put_history(
        c,
        HistoryRow {
            jurisdiction: j,
            seq,
            resource: &app.name,
            resource_type: "application",
            before: None,
            cell: Cell { kind: "", status: app.state, operating: 0, trial: false },
            deadline: micros(instant(app.deadline.as_ref())),
            voided: false,
        },
    )
    .await
}

/// Records a snapshot. A site's snapshot also moves it between the running counts of its cell;
/// voiding a site takes its dated facts out of the running event counts, as [`event_counts`]
/// leaves them out.
pub async fn put_history<C: ConnectionTrait>(c: &C, h: HistoryRow<'_>) -> ApiResult<()> {
    let site = h.resource_type == "site";
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO reg_history (jurisdiction, seq, resource, resource_type, kind, status, deadline, voided, operating, trial)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [
            h.jurisdiction.to_string().into(),
            (h.seq as i64).into(),
            h.resource.into(),
            h.resource_type.into(),
            h.cell.kind.into(),
            h.cell.status.into(),
            h.deadline.into(),
            (h.voided as i32).into(),
            h.cell.operating.into(),
            i32::from(h.cell.trial).into(),
        ],
    ))
    .await?;
    if !site {
        return Ok(());
    }
    let was_counted = h.before.is_some_and(|(_, voided)| !voided);
    if !h.voided && h.before == Some((h.cell, false)) {
        return Ok(()); // the same cell before and after
    }
    if let Some((cell, false)) = h.before {
        add_site_count(c, h.jurisdiction, cell, -1).await?;
    }
    if !h.voided {
        add_site_count(c, h.jurisdiction, h.cell, 1).await?;
    } else if was_counted {
        let rows = c
            .query_all_raw(stmt(
                b(c),
                "SELECT event, COUNT(*) FROM reg_events WHERE jurisdiction = $1 AND resource = $2 GROUP BY event",
                [h.jurisdiction.to_string().into(), h.resource.into()],
            ))
            .await?;
        for r in rows {
            let event: String = r.try_get_by_index(0)?;
            add_event_count(c, h.jurisdiction, &event, -r.try_get_by_index::<i64>(1)?).await?;
        }
    }
    Ok(())
}

async fn add_site_count<C: ConnectionTrait>(c: &C, j: &Jurisdiction, cell: Cell<'_>, by: i64) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO reg_site_counts (jurisdiction, kind, legal_status, operating, trial, count) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (jurisdiction, kind, legal_status, operating, trial)
         DO UPDATE SET count = reg_site_counts.count + excluded.count",
        [
            j.to_string().into(),
            cell.kind.into(),
            cell.status.into(),
            cell.operating.into(),
            i32::from(cell.trial).into(),
            by.into(),
        ],
    ))
    .await?;
    Ok(())
}

async fn add_event_count<C: ConnectionTrait>(c: &C, j: &Jurisdiction, event: &str, by: i64) -> ApiResult<()> {
    c.execute_raw(stmt(
        b(c),
        "INSERT INTO reg_event_counts (jurisdiction, event, count) VALUES ($1, $2, $3)
         ON CONFLICT (jurisdiction, event) DO UPDATE SET count = reg_event_counts.count + excluded.count",
        [j.to_string().into(), event.into(), by.into()],
    ))
    .await?;
    Ok(())
}

/// Computes the running counts afresh from the history and the dated facts (once, for a
/// database made before they were kept, and again when the counts gained a dimension).
pub async fn rebuild_counts<C: ConnectionTrait>(c: &C) -> ApiResult<()> {
    for sql in [
        "DELETE FROM reg_site_counts",
        "DELETE FROM reg_event_counts",
        "INSERT INTO reg_site_counts (jurisdiction, kind, legal_status, operating, trial, count)
         SELECT h.jurisdiction, h.kind, h.status, h.operating, h.trial, COUNT(*) FROM reg_history h
         JOIN (SELECT jurisdiction, resource, MAX(seq) AS seq FROM reg_history
               WHERE resource_type = 'site' GROUP BY jurisdiction, resource) last
           ON h.jurisdiction = last.jurisdiction AND h.resource = last.resource AND h.seq = last.seq
         WHERE h.voided = 0
         GROUP BY h.jurisdiction, h.kind, h.status, h.operating, h.trial",
        "INSERT INTO reg_event_counts (jurisdiction, event, count)
         SELECT e.jurisdiction, e.event, COUNT(*) FROM reg_events e
         WHERE NOT EXISTS (SELECT 1 FROM reg_history h WHERE h.jurisdiction = e.jurisdiction
                           AND h.resource_type = 'site' AND h.resource = e.resource AND h.voided = 1)
         GROUP BY e.jurisdiction, e.event",
    ] {
        c.execute_raw(stmt(b(c), sql, [])).await?;
    }
    Ok(())
}

/// Site counts by (kind, legal status), each with how many of them operate, do not, and are on
/// trial, from rows of (kind, status, operating code, trial, count); ordered by kind and status,
/// non-zero cells only.
fn site_cells(rows: impl IntoIterator<Item = (String, i32, i32, bool, u64)>) -> Vec<pb::SiteCount> {
    let mut cells: std::collections::BTreeMap<(String, i32), pb::SiteCount> = Default::default();
    for (kind, status, operating, trial, n) in rows {
        let cell = cells.entry((kind.clone(), status)).or_insert_with(|| pb::SiteCount {
            kind,
            legal_status: status,
            ..Default::default()
        });
        cell.count += n;
        match pb::Operating::from_code(operating) {
            pb::Operating::Operating => cell.operating += n,
            pb::Operating::NotOperating => cell.not_operating += n,
            pb::Operating::Unknown => {}
        }
        if trial {
            cell.trial += n;
        }
    }
    cells.into_values().filter(|c| c.count != 0).collect()
}

/// The figures of now, of all time, from the running counts. One statement, so the figures are those of one snapshot (that sequence) and cost one round
/// trip to the database.
pub async fn current_figures<C: ConnectionTrait>(c: &C, j: &Jurisdiction, now: DateTime<Utc>) -> ApiResult<Figures> {
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT 'seq', '', 0, 0, 0, COALESCE(MAX(seq), 0) FROM change_log WHERE jurisdiction = $1 AND service = 'registry'
             UNION ALL
             SELECT 'site', kind, legal_status, operating, trial, count FROM reg_site_counts WHERE jurisdiction = $1 AND count <> 0
             UNION ALL
             SELECT 'pending', '', 0, 0, 0, COUNT(*) FROM reg_applications WHERE jurisdiction = $1 AND state IN (1, 2)
             UNION ALL
             SELECT 'overdue', '', 0, 0, 0, COUNT(*) FROM reg_applications
              WHERE jurisdiction = $1 AND state = 1 AND deadline <= $2
             UNION ALL
             SELECT 'expiring', '', 0, 0, 0, COUNT(*) FROM reg_licences
              WHERE jurisdiction = $1 AND state IN (1, 2) AND expire_time > $2 AND expire_time <= $3
             UNION ALL
             SELECT 'event', event, 0, 0, 0, count FROM reg_event_counts WHERE jurisdiction = $1 AND count <> 0",
            [
                j.to_string().into(),
                micros(now).into(),
                micros(now + chrono::Duration::days(EXPIRING_DAYS)).into(),
            ],
        ))
        .await?;
    let mut f = Figures { seq: 0, sites: Vec::new(), pending: 0, overdue: 0, events: Vec::new(), expiring: 0 };
    let mut sites = Vec::new();
    for r in rows {
        let (what, name, status, operating, trial, n): (String, String, i32, i32, i32, i64) = (
            r.try_get_by_index(0)?,
            r.try_get_by_index(1)?,
            r.try_get_by_index(2)?,
            r.try_get_by_index(3)?,
            r.try_get_by_index(4)?,
            r.try_get_by_index(5)?,
        );
        let n = n as u64;
        match what.as_str() {
            "seq" => f.seq = n,
            "site" => sites.push((name, status, operating, trial != 0, n)),
            "pending" => f.pending = n,
            "overdue" => f.overdue = n,
            "expiring" => f.expiring = n,
            _ => f.events.push((name, n)),
        }
    }
    f.sites = site_cells(sites);
    Ok(f)
}

/// A jurisdiction's figures as of a log sequence: what GetStatistics answers.
pub struct Figures {
    /// The log's last sequence: the figures reflect entries 1..seq.
    pub seq: u64,
    /// Sites by (kind, legal status), voided ones excluded; non-zero cells only.
    pub sites: Vec<pb::SiteCount>,
    /// Applications received or awaiting a supplement.
    pub pending: u64,
    /// Of those, received and past their deadline at the time asked.
    pub overdue: u64,
    /// Dated facts (of the period asked) by event, facts about voided sites excluded.
    pub events: Vec<(String, u64)>,
    /// Licences in force at the time asked that expire within [`EXPIRING_DAYS`] after it.
    pub expiring: u64,
}

/// How far ahead a licence counts as expiring: 90 days, a reporting convention of einfo's (no
/// text sets it).
pub const EXPIRING_DAYS: i64 = 90;

/// Whether a licence is in force at `at` and expires within [`EXPIRING_DAYS`] after it.
pub fn expiring(l: &pb::Licence, at: DateTime<Utc>) -> bool {
    let in_force = [pb::LicenceState::Valid as i32, pb::LicenceState::Suspended as i32].contains(&l.state);
    let expires = instant(l.expire_time.as_ref());
    in_force && at < expires && expires <= at + chrono::Duration::days(EXPIRING_DAYS)
}

/// Records a dated fact: licence_issued, licence_suspended, licence_revoked,
/// application_received, unlicensed_found.
pub async fn put_event<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    seq: u64,
    resource: &str,
    event: &str,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    let r = c.execute_raw(stmt(
        b(c),
        "INSERT INTO reg_events (jurisdiction, seq, resource, event, event_time) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        [j.to_string().into(), (seq as i64).into(), resource.into(), event.into(), micros(at).into()],
    ))
    .await?;
    if r.rows_affected() == 1 {
        add_event_count(c, j, event, 1).await?;
    }
    Ok(())
}

/// Sites by (kind, status) as of log sequence `seq`, voided ones excluded.
pub async fn site_counts<C: ConnectionTrait>(c: &C, j: &Jurisdiction, seq: u64) -> ApiResult<Vec<pb::SiteCount>> {
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT h.kind, h.status, h.operating, h.trial, COUNT(*) FROM reg_history h
             JOIN (SELECT resource, MAX(seq) AS seq FROM reg_history
                   WHERE jurisdiction = $1 AND resource_type = 'site' AND seq <= $2 GROUP BY resource) last
               ON h.resource = last.resource AND h.seq = last.seq
             WHERE h.jurisdiction = $1 AND h.voided = 0
             GROUP BY h.kind, h.status, h.operating, h.trial",
            [j.to_string().into(), (seq as i64).into()],
        ))
        .await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
                r.try_get_by_index::<i32>(3)? != 0,
                r.try_get_by_index::<i64>(4)? as u64,
            ))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(site_cells(rows))
}

/// Applications pending (received or awaiting a supplement) as of log sequence `seq`, and of
/// those, the ones received and past their deadline at `as_of` (the clock stops while the
/// applicant owes a supplement).
pub async fn pending_applications<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    seq: u64,
    as_of: DateTime<Utc>,
) -> ApiResult<(u64, u64)> {
    let row = c
        .query_one_raw(stmt(
            b(c),
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN h.status = 1 AND h.deadline <= $3 THEN 1 ELSE 0 END), 0) FROM reg_history h
             JOIN (SELECT resource, MAX(seq) AS seq FROM reg_history
                   WHERE jurisdiction = $1 AND resource_type = 'application' AND seq <= $2 GROUP BY resource) last
               ON h.resource = last.resource AND h.seq = last.seq
             WHERE h.jurisdiction = $1 AND h.status IN (1, 2)",
            [j.to_string().into(), (seq as i64).into(), micros(as_of).into()],
        ))
        .await?;
    match row {
        Some(r) => Ok((r.try_get_by_index::<i64>(0)? as u64, r.try_get_by_index::<i64>(1)? as u64)),
        None => Ok((0, 0)),
    }
}

/// Dated facts in [from, to) among entries up to `seq`, by event name. Facts about a site voided
/// by `seq` (recorded in error) do not count.
pub async fn event_counts<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    seq: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<(String, u64)>> {
    let rows = c
        .query_all_raw(stmt(
            b(c),
            "SELECT event, COUNT(*) FROM reg_events WHERE jurisdiction = $1 AND seq <= $2 AND event_time >= $3 AND event_time < $4
               AND resource NOT IN (SELECT resource FROM reg_history
                                    WHERE jurisdiction = $1 AND resource_type = 'site' AND voided = 1 AND seq <= $2)
             GROUP BY event",
            [j.to_string().into(), (seq as i64).into(), micros(from).into(), micros(to).into()],
        ))
        .await?;
    rows.iter().map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index::<i64>(1)? as u64))).collect()
}

/// Records that `caller` read the personal data of `resources` unmasked through `method` at `at`.
pub async fn record_personal_data_reads<C: ConnectionTrait>(
    c: &C,
    at: chrono::DateTime<chrono::Utc>,
    caller: &einfo_common::auth::Caller,
    method: &str,
    resources: &[&str],
) -> ApiResult<()> {
    const COLUMNS: [&str; 6] = ["read_at", "subject", "role", "caller_jurisdiction", "method", "resource"];
    for range in einfo_common::db::chunks(resources.len()) {
        let part = &resources[range];
        let sql = einfo_common::db::insert_sql("personal_data_reads", &COLUMNS, part.len(), "");
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(part.len() * COLUMNS.len());
        for r in part {
            values.extend([
                micros(at).into(),
                caller.subject.clone().into(),
                caller.role.as_str().into(),
                caller.jurisdiction.to_string().into(),
                method.into(),
                (*r).into(),
            ]);
        }
        c.execute_raw(stmt(c.get_database_backend(), &sql, values)).await?;
    }
    Ok(())
}
