//! SQL of the inspection tables, for both databases.

use chrono::{DateTime, Utc};
use einfo_common::db::{micros, stmt};
use einfo_common::error::{ApiError, ApiResult};
use einfo_domain::Jurisdiction;
use prost::Message;
use sea_orm::{ConnectionTrait, Value};

fn decode<M: Message + Default>(bytes: &[u8]) -> ApiResult<M> {
    M::decode(bytes).map_err(ApiError::internal)
}

/// Reads the `body` of a row of `table` by name.
pub async fn get<C: ConnectionTrait, M: Message + Default>(c: &C, table: Table, name: &str) -> ApiResult<Option<M>> {
    let sql = format!("SELECT body FROM {} WHERE name = $1", table.as_str());
    let row = c.query_one_raw(stmt(c.get_database_backend(), &sql, [name.into()])).await?;
    row.map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).transpose()
}

/// A page of rows of `table` in a jurisdiction, after `after`, with an optional extra condition
/// on one column.
pub async fn list<C: ConnectionTrait, M: Message + Default>(
    c: &C,
    table: Table,
    j: &Jurisdiction,
    filter: Option<(&str, Value)>,
    after: &str,
    limit: u64,
) -> ApiResult<Vec<M>> {
    let mut values: Vec<Value> = vec![j.to_string().into(), after.into()];
    let mut sql = format!("SELECT body FROM {} WHERE jurisdiction = $1 AND name > $2", table.as_str());
    if let Some((col, v)) = filter {
        values.push(v);
        sql.push_str(&format!(" AND {col} = $3"));
    }
    values.push((limit as i64).into());
    sql.push_str(&format!(" ORDER BY name LIMIT ${}", values.len()));
    let rows = c.query_all_raw(stmt(c.get_database_backend(), &sql, values)).await?;
    rows.iter().map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?)).collect()
}

/// The tables that hold a resource's body.
#[derive(Clone, Copy, Debug)]
pub enum Table {
    /// Plans.
    Plans,
    /// Inspections.
    Inspections,
    /// Decisions.
    Decisions,
}

impl Table {
    fn as_str(self) -> &'static str {
        match self {
            Table::Plans => "insp_plans",
            Table::Inspections => "insp_inspections",
            Table::Decisions => "insp_decisions",
        }
    }
}

/// Inserts or replaces a plan.
pub async fn put_plan<C: ConnectionTrait>(c: &C, j: &Jurisdiction, name: &str, body: &impl Message) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO insp_plans (name, jurisdiction, body) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        [name.into(), j.to_string().into(), body.encode_to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// Inserts an inspection.
pub async fn put_inspection<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    name: &str,
    site: &str,
    body: &impl Message,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO insp_inspections (name, jurisdiction, site, body) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        [name.into(), j.to_string().into(), site.into(), body.encode_to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// Inserts or replaces a decision.
pub async fn put_decision<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    name: &str,
    state: i32,
    deadline: DateTime<Utc>,
    body: &impl Message,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO insp_decisions (name, jurisdiction, state, deadline, body) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, deadline = excluded.deadline, body = excluded.body",
        [name.into(), j.to_string().into(), state.into(), micros(deadline).into(), body.encode_to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// Decisions of a jurisdiction still ISSUED whose compliance deadline passed by `now`.
pub async fn overdue_decisions<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    now: DateTime<Utc>,
) -> ApiResult<Vec<String>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            "SELECT name FROM insp_decisions WHERE jurisdiction = $1 AND state = 1 AND deadline <= $2 ORDER BY name",
            [j.to_string().into(), micros(now).into()],
        ))
        .await?;
    rows.iter().map(|r| Ok(r.try_get_by_index(0)?)).collect()
}

/// A site resolved in registry: its display name, if known here.
pub async fn known_site<C: ConnectionTrait>(c: &C, name: &str) -> ApiResult<Option<String>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT display_name FROM insp_sites WHERE name = $1",
            [name.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index(0)).transpose()?)
}

/// Remembers a site resolved in registry.
pub async fn remember_site<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    name: &str,
    display_name: &str,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO insp_sites (name, jurisdiction, display_name) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name",
        [name.into(), j.to_string().into(), display_name.into()],
    ))
    .await?;
    Ok(())
}

/// A licence measure waiting for registry.
#[derive(Clone, Debug)]
pub struct OutboxItem {
    /// The idempotency key sent to registry on every attempt.
    pub request_id: String,
    /// Jurisdiction.
    pub jurisdiction: String,
    /// Decision name.
    pub decision: String,
    /// Site name.
    pub site: String,
    /// `einfo.registry.v1.SanctionMeasure` value.
    pub measure: i32,
    /// End of a suspension, microseconds (0 for a revocation).
    pub until: i64,
    /// Attempts so far.
    pub attempts: i32,
}

/// Queues a measure.
pub async fn enqueue<C: ConnectionTrait>(c: &C, item: &OutboxItem, now: DateTime<Utc>) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO insp_outbox (request_id, jurisdiction, decision, site, measure, until, state, attempts, next_attempt, last_error)
         VALUES ($1, $2, $3, $4, $5, $6, 1, 0, $7, '')",
        [
            item.request_id.clone().into(),
            item.jurisdiction.clone().into(),
            item.decision.clone().into(),
            item.site.clone().into(),
            item.measure.into(),
            item.until.into(),
            micros(now).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Measures due for an attempt.
pub async fn due_outbox<C: ConnectionTrait>(c: &C, now: DateTime<Utc>, limit: u64) -> ApiResult<Vec<OutboxItem>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            "SELECT request_id, jurisdiction, decision, site, measure, until, attempts FROM insp_outbox
             WHERE state = 1 AND next_attempt <= $1 ORDER BY next_attempt LIMIT $2",
            [micros(now).into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxItem {
                request_id: r.try_get_by_index(0)?,
                jurisdiction: r.try_get_by_index(1)?,
                decision: r.try_get_by_index(2)?,
                site: r.try_get_by_index(3)?,
                measure: r.try_get_by_index(4)?,
                until: r.try_get_by_index(5)?,
                attempts: r.try_get_by_index(6)?,
            })
        })
        .collect()
}

/// The outbox state of a request: 1 pending, 2 delivered, 3 refused.
pub async fn outbox_state<C: ConnectionTrait>(c: &C, request_id: &str) -> ApiResult<Option<i32>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT state FROM insp_outbox WHERE request_id = $1",
            [request_id.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index(0)).transpose()?)
}

/// Ends an outbox item (2 delivered, 3 refused).
pub async fn settle<C: ConnectionTrait>(c: &C, request_id: &str, state: i32, error: &str) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "UPDATE insp_outbox SET state = $1, last_error = $2 WHERE request_id = $3",
        [state.into(), error.into(), request_id.into()],
    ))
    .await?;
    Ok(())
}

/// Schedules another attempt.
pub async fn retry_later<C: ConnectionTrait>(
    c: &C,
    request_id: &str,
    attempts: i32,
    next: DateTime<Utc>,
    error: &str,
) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "UPDATE insp_outbox SET attempts = $1, next_attempt = $2, last_error = $3 WHERE request_id = $4 AND state = 1",
        [attempts.into(), micros(next).into(), error.into(), request_id.into()],
    ))
    .await?;
    Ok(())
}

/// A dated fact for statistics.
pub struct Event<'a> {
    /// Jurisdiction.
    pub jurisdiction: &'a Jurisdiction,
    /// Log sequence of the entry that recorded it.
    pub seq: u64,
    /// Resource.
    pub resource: &'a str,
    /// plan, inspection, violation, decision, payment, suspended, revoked, void.
    pub event: &'a str,
    /// Distinguishes several facts of one kind in one entry.
    pub idx: i32,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Violation code.
    pub code: &'a str,
    /// Site.
    pub site: &'a str,
    /// Amount in VND.
    pub amount: i64,
}

/// The code of a round's latest "plan" fact ("joint" or ""), if it has one.
pub async fn plan_event_code<C: ConnectionTrait>(c: &C, plan: &str) -> ApiResult<Option<String>> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT code FROM insp_events WHERE resource = $1 AND event = 'plan' ORDER BY seq DESC LIMIT 1",
            [plan.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index(0)).transpose()?)
}

/// Records a fact.
pub async fn put_event<C: ConnectionTrait>(c: &C, e: Event<'_>) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO insp_events (jurisdiction, seq, resource, event, idx, event_time, code, site, amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            e.jurisdiction.to_string().into(),
            (e.seq as i64).into(),
            e.resource.into(),
            e.event.into(),
            e.idx.into(),
            micros(e.at).into(),
            e.code.into(),
            e.site.into(),
            e.amount.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Counts, by event and code, facts of a period among entries up to `seq`; facts of a resource
/// voided by `seq` are left out, and of a fact recorded again (a corrected decision) only the
/// latest by `seq` counts. Returns (event, code, count, distinct sites, sum of amounts).
pub async fn event_figures<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    seq: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<(String, String, u64, u64, i64)>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            "SELECT e.event, e.code, COUNT(*), COUNT(DISTINCT e.site), CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) FROM insp_events e
             WHERE e.jurisdiction = $1 AND e.seq <= $2 AND e.event <> 'void' AND e.event <> 'payment'
               AND e.event_time >= $3 AND e.event_time < $4
               AND NOT EXISTS (SELECT 1 FROM insp_events v WHERE v.resource = e.resource AND v.event = 'void' AND v.seq <= $2)
               AND NOT EXISTS (SELECT 1 FROM insp_events n WHERE n.resource = e.resource AND n.event = e.event
                               AND n.seq > e.seq AND n.seq <= $2)
             GROUP BY e.event, e.code",
            [j.to_string().into(), (seq as i64).into(), micros(from).into(), micros(to).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index::<i64>(2)? as u64,
                r.try_get_by_index::<i64>(3)? as u64,
                r.try_get_by_index::<i64>(4)?,
            ))
        })
        .collect()
}

/// Fines collected, by `seq`, on decisions issued in the period and not voided.
pub async fn collected<C: ConnectionTrait>(
    c: &C,
    j: &Jurisdiction,
    seq: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<i64> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT CAST(COALESCE(SUM(p.amount), 0) AS BIGINT) FROM insp_events p
             WHERE p.jurisdiction = $1 AND p.seq <= $2 AND p.event = 'payment'
               AND EXISTS (SELECT 1 FROM insp_events d WHERE d.resource = p.resource AND d.event = 'decision'
                           AND d.seq <= $2 AND d.event_time >= $3 AND d.event_time < $4
                           AND NOT EXISTS (SELECT 1 FROM insp_events n WHERE n.resource = d.resource
                                           AND n.event = 'decision' AND n.seq > d.seq AND n.seq <= $2))
               AND NOT EXISTS (SELECT 1 FROM insp_events v WHERE v.resource = p.resource AND v.event = 'void' AND v.seq <= $2)",
            [j.to_string().into(), (seq as i64).into(), micros(from).into(), micros(to).into()],
        ))
        .await?;
    match row {
        Some(r) => Ok(r.try_get_by_index::<i64>(0)?),
        None => Ok(0),
    }
}
