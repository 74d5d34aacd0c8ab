//! The national queries: expiring licences, overdue applications, enforcement figures, search
//! and cross-jurisdiction domain conflicts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use einfo_common::db::{micros, stmt};
use einfo_common::error::ApiResult;
use einfo_proto::registry::v1 as reg;
use sea_orm::{ConnectionTrait, Value};

use super::{b, count, decode};

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
