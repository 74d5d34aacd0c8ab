//! Live fan-out for questions that must be current: every jurisdiction of the directory is asked
//! at once, at most `fanout_concurrency` at a time, each call with its own timeout inside the
//! caller's overall deadline (`grpc-timeout`); jurisdictions that fail or do not answer in time
//! are named in the answer, and one slow province never holds back the rest.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use einfo_common::auth::BearerToken;
use einfo_common::error::{ApiError, ApiResult};
use einfo_domain::{DomainName, Jurisdiction};
use einfo_proto::gateway::v1 as pb;
use einfo_proto::registry::v1 as reg;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use futures::StreamExt;
use tokio::time::Instant;
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

use crate::Gateway;

/// A registry client for one node.
pub type Registry = RegistryServiceClient<InterceptedService<Channel, BearerToken>>;

/// Time kept back from the caller's deadline to assemble and send the answer: a fifth of it,
/// between 100 ms and 1 s. (A fixed 100 ms was not enough on a loaded host: the answer left in
/// time but arrived after a 1 s deadline, and the caller got DEADLINE_EXCEEDED and nothing.)
fn margin(deadline: Duration) -> Duration {
    (deadline / 5).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// The caller's deadline, from the `grpc-timeout` header.
pub fn request_deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let v = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn failure(j: &Jurisdiction, endpoint: &str, code: tonic::Code, message: impl Into<String>) -> pb::FanOutFailure {
    pb::FanOutFailure {
        jurisdiction: j.to_string(),
        endpoint: endpoint.to_owned(),
        code: format!("{code:?}").to_uppercase_snake(),
        message: message.into(),
    }
}

trait Snake {
    fn to_uppercase_snake(&self) -> String;
}

impl Snake for String {
    fn to_uppercase_snake(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }
}

impl Gateway {
    /// Calls `call` for every jurisdiction of the directory, each within
    /// min(`node_timeout`, what is left of `overall`), at most `fanout_concurrency` at once.
    pub async fn fan_out<T, F, Fut>(
        &self,
        node_timeout: Option<Duration>,
        overall: Option<Duration>,
        call: F,
    ) -> (Vec<(Jurisdiction, T)>, Vec<pb::FanOutFailure>)
    where
        F: Fn(Jurisdiction, Registry) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let start = Instant::now();
        let deadline = overall.map(|d| start + d.saturating_sub(margin(d)));
        let node_timeout = node_timeout.unwrap_or(Duration::from_millis(self.settings().fanout_timeout_ms));
        let targets: Vec<(Jurisdiction, String)> =
            self.state().directory.iter().map(|(j, e)| (*j, e.clone())).collect();
        let token = self.token();
        let call = &call;
        let token = &token;
        let results: Vec<Result<(Jurisdiction, T), pb::FanOutFailure>> = futures::stream::iter(targets)
            .map(|(j, endpoint)| async move {
                let timeout = match deadline {
                    Some(d) => node_timeout.min(d.saturating_duration_since(Instant::now())),
                    None => node_timeout,
                };
                if timeout.is_zero() {
                    return Err(failure(&j, &endpoint, tonic::Code::DeadlineExceeded, "no time left in the deadline"));
                }
                let token = match token {
                    Ok(t) => t.clone(),
                    Err(e) => return Err(failure(&j, &endpoint, tonic::Code::Internal, e.to_string())),
                };
                let channel = match self.channel(&endpoint, &j) {
                    Ok(c) => c,
                    Err(e) => return Err(failure(&j, &endpoint, tonic::Code::InvalidArgument, e.to_string())),
                };
                let client = RegistryServiceClient::with_interceptor(channel, token);
                match tokio::time::timeout(timeout, call(j, client)).await {
                    Ok(Ok(v)) => Ok((j, v)),
                    Ok(Err(s)) => Err(failure(&j, &endpoint, s.code(), s.message())),
                    Err(_) => Err(failure(
                        &j,
                        &endpoint,
                        tonic::Code::DeadlineExceeded,
                        format!("no answer within {} ms", timeout.as_millis()),
                    )),
                }
            })
            .buffer_unordered(self.settings().fanout_concurrency.max(1))
            .collect()
            .await;
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for r in results {
            match r {
                Ok(v) => ok.push(v),
                Err(f) => failed.push(f),
            }
        }
        ok.sort_by_key(|(j, _)| *j);
        failed.sort_by(|a, b| a.jurisdiction.cmp(&b.jurisdiction));
        (ok, failed)
    }

    /// Which sites hold a domain right now, asked of every node.
    pub async fn find_domain_holders(
        &self,
        r: &pb::FindDomainHoldersRequest,
        overall: Option<Duration>,
    ) -> ApiResult<pb::FindDomainHoldersResponse> {
        let domain = DomainName::parse(&r.domain).map_err(|e| ApiError::field("domain", e.to_string()))?;
        let node_timeout = timeout(r.node_timeout.as_ref(), "node_timeout")?;
        let asked = self.state().directory.len() as i32;
        let ascii = domain.ascii().to_owned();
        let (ok, failures) = self
            .fan_out(node_timeout, overall, |j, mut c| {
                let ascii = ascii.clone();
                async move {
                    let r = c
                        .list_sites(reg::ListSitesRequest {
                            parent: j.to_string(),
                            page_size: 1000,
                            domain: ascii,
                            ..Default::default()
                        })
                        .await?;
                    Ok(r.into_inner().sites)
                }
            })
            .await;
        let sites = ok
            .into_iter()
            .flat_map(|(j, sites)| {
                sites.into_iter().map(move |s| pb::NationalSite { jurisdiction: j.to_string(), site: Some(s) })
            })
            .collect();
        Ok(pb::FindDomainHoldersResponse { sites, failures, asked })
    }

    /// Every jurisdiction's site figures right now, asked of every node.
    pub async fn live_summary(
        &self,
        r: &pb::GetLiveSummaryRequest,
        overall: Option<Duration>,
    ) -> ApiResult<pb::GetLiveSummaryResponse> {
        let node_timeout = timeout(r.node_timeout.as_ref(), "node_timeout")?;
        let (ok, failures) = self
            .fan_out(node_timeout, overall, |j, mut c| async move {
                let r = c
                    .get_statistics(reg::GetStatisticsRequest { jurisdiction: j.to_string(), ..Default::default() })
                    .await?;
                Ok(r.into_inner().sites)
            })
            .await;
        let mut totals: BTreeMap<(String, i32), pb::SummaryCell> = BTreeMap::new();
        let units = ok
            .into_iter()
            .map(|(j, counts)| {
                let cells: Vec<pb::SummaryCell> = counts
                    .into_iter()
                    .map(|c| pb::SummaryCell {
                        kind: c.kind,
                        legal_status: c.legal_status,
                        count: c.count as i64,
                        operating: c.operating as i64,
                        not_operating: c.not_operating as i64,
                        trial: c.trial as i64,
                    })
                    .collect();
                for c in &cells {
                    let t = totals.entry((c.kind.clone(), c.legal_status)).or_insert_with(|| pb::SummaryCell {
                        kind: c.kind.clone(),
                        legal_status: c.legal_status,
                        ..Default::default()
                    });
                    t.count += c.count;
                    t.operating += c.operating;
                    t.not_operating += c.not_operating;
                    t.trial += c.trial;
                }
                pb::LiveUnit { jurisdiction: j.to_string(), total: cells.iter().map(|c| c.count).sum(), cells }
            })
            .collect();
        Ok(pb::GetLiveSummaryResponse { units, totals: totals.into_values().collect(), failures })
    }
}

fn timeout(d: Option<&prost_types::Duration>, field: &str) -> ApiResult<Option<Duration>> {
    match d {
        None => Ok(None),
        Some(d) if d.seconds < 0 || d.nanos < 0 || (d.seconds == 0 && d.nanos == 0) => {
            Err(ApiError::field(field, "must be positive"))
        }
        Some(d) => Ok(Some(Duration::new(d.seconds as u64, d.nanos as u32))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_read_in_every_unit() {
        let mut m = tonic::metadata::MetadataMap::new();
        for (v, d) in
            [("1S", Duration::from_secs(1)), ("1500m", Duration::from_millis(1500)), ("2M", Duration::from_secs(120))]
        {
            m.insert("grpc-timeout", v.parse().unwrap());
            assert_eq!(request_deadline(&m), Some(d));
        }
        m.insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(request_deadline(&m), None);
        assert_eq!(String::from("DeadlineExceeded").to_uppercase_snake(), "DEADLINE_EXCEEDED");
    }
}
