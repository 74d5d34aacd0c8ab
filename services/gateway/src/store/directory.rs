//! The directory of node endpoints and the alarms raised on jurisdictions.

use chrono::{DateTime, Utc};
use einfo_common::db::{from_micros, micros, stmt};
use einfo_common::error::ApiResult;
use einfo_domain::Jurisdiction;
use sea_orm::ConnectionTrait;

use super::b;

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
