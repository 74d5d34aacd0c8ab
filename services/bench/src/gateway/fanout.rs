//! `einfo bench-gateway`'s query figures: the national summary next to the echo call, and the
//! fan-out `GetLiveSummary` next to each node's own `GetStatistics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::registry::v1 as pb;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use hdrhistogram::Histogram;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use super::setup::{Federation, Relays};
use super::{BenchGatewayArgs, National, SUMMARY};
use crate::fixtures::central_token;
use crate::measure::{ECHO, Op, Row, Schedule, Stats, histogram, measure, op, phase, quantile_ms, run_for};
use crate::servers::{connect, health_op};

/// The figures of one fan-out phase.
pub(super) struct FanOut {
    pub(super) fanout: Stats,
    /// (province, p50 ms, p99 ms, samples) of the slowest node by p99.
    pub(super) slowest: (String, f64, f64, u64),
    /// (p50 ms, p99 ms, samples) of every node's calls together.
    pub(super) pooled: (f64, f64, u64),
    /// Single-node calls in flight at once.
    pub(super) single: usize,
    /// Median over the nodes of their p99.
    pub(super) median_p99: f64,
    /// Sum over the nodes of their p50: the work one fan-out asks of this machine.
    pub(super) sum_p50: f64,
    pub(super) failures: u64,
}

/// `GetNationalSummary` (STRICT) next to the echo call, at concurrency 1 and 32.
pub(super) async fn summary_rows(
    args: &BenchGatewayArgs,
    national: &National,
    echo: &HealthClient<Channel>,
) -> Vec<Row> {
    let summary = {
        let national = national.clone();
        op(move |_, _| {
            let mut c = national.clone();
            async move {
                let options = gw::QueryOptions { mode: gw::QueryMode::Strict as i32, ..Default::default() };
                let s = c.get_national_summary(gw::GetNationalSummaryRequest { options: Some(options) }).await?;
                anyhow::ensure!(s.into_inner().complete, "summary not complete");
                Ok(())
            }
        })
    };
    let schedule = Schedule { seconds: args.seconds, warmup_seconds: 1, only: None };
    let mut rows = Vec::new();
    for conc in [1, 32] {
        let group =
            vec![phase(ECHO, "-", health_op(echo.clone())), phase(SUMMARY, args.database.label(), summary.clone())];
        rows.extend(measure(&schedule, conc, group).await);
    }
    rows
}

/// `GetLiveSummary` over the 63 nodes, taking turns with each node's own `GetStatistics` (asked
/// round-robin through the same relays as the gateway's, one call at a time, each node's
/// latencies kept apart).
///
/// Over an emulated round trip the single-node calls run 8 at a time (to 8 different nodes, a
/// light load), so that each node gets enough calls for a p99 in the same time.
pub(super) async fn fanout(
    args: &BenchGatewayArgs,
    fed: &Federation,
    relays: &Relays,
    national: &National,
    rtt_ms: u64,
) -> anyhow::Result<FanOut> {
    let single = if rtt_ms > 0 { 8 } else { 1 };
    let central = central_token(&fed.keys)?;
    let mut readers = Vec::new();
    for a in &relays.addrs {
        readers.push(RegistryServiceClient::with_interceptor(connect(*a).await?, central.clone()));
    }
    let failures = Arc::new(AtomicU64::new(0));
    let live = {
        let (national, failures) = (national.clone(), failures.clone());
        op(move |_, _| {
            let (mut c, failures) = (national.clone(), failures.clone());
            async move {
                let r = c.get_live_summary(gw::GetLiveSummaryRequest { node_timeout: None }).await?.into_inner();
                if !r.failures.is_empty() || r.units.len() != 63 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        })
    };
    let per_node: Arc<Mutex<Vec<Histogram<u64>>>> =
        Arc::new(Mutex::new(fed.codes.iter().map(|_| histogram()).collect()));
    let stats: Op = {
        let (readers, parents, per_node) = (Arc::new(readers), Arc::new(fed.parents.clone()), per_node.clone());
        op(move |_, n| {
            let p = (n % readers.len() as u64) as usize;
            let (mut c, parent, per_node) = (readers[p].clone(), parents[p].clone(), per_node.clone());
            async move {
                let t = Instant::now();
                c.get_statistics(pb::GetStatisticsRequest { jurisdiction: parent, ..Default::default() }).await?;
                let us = t.elapsed().as_micros() as u64;
                per_node.lock().unwrap_or_else(|e| e.into_inner())[p].saturating_record(us);
                Ok(())
            }
        })
    };
    // Warm-up, then turns: 1 s of fan-out, 3 s of single nodes (so that each node gets enough
    // calls for a p99).
    run_for(1, Duration::from_secs(1), &live).await;
    run_for(single, Duration::from_secs(2), &stats).await;
    for h in per_node.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
        h.reset();
    }
    failures.store(0, Ordering::Relaxed);
    let mut fan = Stats::empty();
    for _ in 0..args.seconds.max(1) {
        fan.merge(run_for(1, Duration::from_secs(1), &live).await);
        run_for(single, Duration::from_secs(3), &stats).await;
    }
    let hists = per_node.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let ms = quantile_ms;
    let (slow, h) =
        hists.iter().enumerate().max_by_key(|(_, h)| h.value_at_quantile(0.99)).context("no node measured")?;
    let mut p99s: Vec<f64> = hists.iter().map(|h| ms(h, 0.99)).collect();
    p99s.sort_by(f64::total_cmp);
    let mut pooled = histogram();
    for h in &hists {
        pooled.add(h)?;
    }
    Ok(FanOut {
        pooled: (ms(&pooled, 0.5), ms(&pooled, 0.99), pooled.len()),
        single,
        slowest: (fed.codes[slow].clone(), ms(h, 0.5), ms(h, 0.99), h.len()),
        median_p99: p99s[p99s.len() / 2],
        sum_p50: hists.iter().map(|h| ms(h, 0.5)).sum(),
        failures: failures.load(Ordering::Relaxed) + fan.errors,
        fanout: fan,
    })
}
