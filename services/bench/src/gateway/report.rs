//! `einfo bench-gateway`'s figures and how they are printed at the end of a run.

use std::time::Duration;

use super::fanout::FanOut;
use super::replication::{LAG_POLL, RAW_STMT_ROWS, RAW_TXN_ROWS};
use super::setup::IMPORT_CONCURRENCY;
use super::{BenchGatewayArgs, SUMMARY};
use crate::fixtures::IMPORT_BATCH;
use crate::measure::{ECHO, Row, Stats, mib};

/// The figures, printed at the end.
#[derive(Default)]
pub(super) struct Report {
    pub(super) seeding: Vec<(u32, u64, Duration)>,
    pub(super) replication: Vec<Replication>,
    pub(super) raw: Option<(u64, Duration)>,
    pub(super) summary: Vec<(u32, Row)>,
    pub(super) lag: Option<(Stats, u64, Duration)>,
    /// (emulated round trip ms, figures).
    pub(super) fanout: Vec<(u64, FanOut)>,
    pub(super) memory_kib: Option<(u64, u64)>,
    /// (sites, bytes of the whole national store, bytes of its kept entries) after the run.
    pub(super) disk: Option<(u64, u64, u64)>,
    pub(super) audit: Option<super::audit::Audit>,
}

/// One full initial replication.
pub(super) struct Replication {
    pub(super) sites_per_province: u32,
    pub(super) entries: u64,
    pub(super) time: Duration,
}

fn ratio_line(what: &str, value: f64, target: f64, le: bool) -> String {
    let met = if le { value <= target } else { value >= target };
    format!(
        "{what}: {value:.2} (target {} {target:.2})  {}",
        if le { "≤" } else { "≥" },
        if met { "target met" } else { "MISSED" }
    )
}

pub(super) fn print_report(args: &BenchGatewayArgs, r: &Report) {
    let db = args.database.label();
    println!();
    println!(
        "Seeding the 63 nodes through ImportSites ({IMPORT_BATCH} rows per call, {IMPORT_CONCURRENCY} calls in flight):"
    );
    for (per, n, t) in &r.seeding {
        println!(
            "  +{per} sites/province: {n} sites in {:.1} s ({:.0} rows/s)",
            t.as_secs_f64(),
            *n as f64 / t.as_secs_f64()
        );
    }

    println!(
        "\nFull initial replication (gateway child process start → every province LIVE at its node's head), store {db}:"
    );
    let raw_rate = r.raw.map(|(n, t)| n as f64 / t.as_secs_f64());
    for rep in &r.replication {
        let rate = rep.entries as f64 / rep.time.as_secs_f64();
        println!(
            "  63 × {:>6} sites: {:>8} entries in {:>7.1} s = {:>8.0} entries/s",
            rep.sites_per_province,
            rep.entries,
            rep.time.as_secs_f64(),
            rate
        );
    }
    if let Some((n, t)) = r.raw {
        println!(
            "  raw batched insert ({RAW_STMT_ROWS} rows per INSERT, {RAW_TXN_ROWS} per transaction, gw_sites + gw_site_domains): {n} rows in {:.1} s = {:.0} rows/s",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64()
        );
    }
    if let (Some(full), Some(raw)) = (r.replication.last(), raw_rate) {
        let ratio = full.entries as f64 / full.time.as_secs_f64() / raw;
        println!("  {}", ratio_line("replication / raw insert", ratio, 0.25, false));
    }

    if let Some(a) = &r.audit {
        println!(
            "\nRestart audit of the history behind the cursor ({} logs of up to {} entries, cursor {} entries short of the head), from the gateway's side:",
            a.logs,
            a.entries,
            super::audit::BEHIND
        );
        for (what, w) in
            [("signed checkpoint + consistency proof", a.proof), ("reading from the start (replaced)     ", a.reread)]
        {
            println!(
                "  {what}: {:>9.1} ms for all, {:>9.3} ms per log; {:>12} bytes per log (largest {})",
                w.time.as_secs_f64() * 1000.0,
                w.time.as_secs_f64() * 1000.0 / a.logs.max(1) as f64,
                w.bytes / a.logs.max(1) as u64,
                w.max_bytes
            );
        }
        if a.proof.bytes > 0 && !a.proof.time.is_zero() {
            println!(
                "  reading ÷ proof: {:.0}× the bytes, {:.0}× the time",
                a.reread.bytes as f64 / a.proof.bytes as f64,
                a.reread.time.as_secs_f64() / a.proof.time.as_secs_f64()
            );
        }
    }

    if let Some((s, sent, dur)) = &r.lag {
        println!(
            "\nSteady-state replication lag (RegisterSite ack → applied nationally, seen by polling GetReplicationStatus every {} ms):",
            LAG_POLL.as_millis()
        );
        println!(
            "  {sent} sites registered over {:.0} s across the 63 provinces: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} errors)",
            dur.as_secs_f64(),
            s.ms(0.5),
            s.ms(0.99),
            s.hist.max() as f64 / 1000.0,
            s.errors
        );
        if let Some(e) = &s.first_error {
            println!("  first error: {e}");
        }
    }

    if let Some((sites, total, kept)) = r.disk {
        let per = |b: u64| b as f64 * 630_000.0 / sites.max(1) as f64 / (1 << 20) as f64;
        println!(
            "\nThe national store on disk after the run ({sites} sites and what the lag phase added): {:.1} MiB, of which the kept entries (gw_entries and its index) {:.1} MiB ({:.0} %)",
            total as f64 / (1 << 20) as f64,
            kept as f64 / (1 << 20) as f64,
            100.0 * kept as f64 / total.max(1) as f64
        );
        println!(
            "  per 630,000 sites (63 × 10,000): store {:.0} MiB, kept entries {:.0} MiB extra",
            per(total),
            per(kept)
        );
    }

    println!("\nNational summary (STRICT, every province live) next to the echo RPC:");
    println!(
        "  {:<10} {:<22} {:<9} {:>4} {:>11} {:>9} {:>9} {:>8} {:>7}",
        "sites/prov", "operation", "store", "conc", "ops/s", "p50 ms", "p99 ms", "ops", "errors"
    );
    for (per, row) in &r.summary {
        let s = &row.stats;
        println!(
            "  {:<10} {:<22} {:<9} {:>4} {:>11.0} {:>9.2} {:>9.2} {:>8} {:>7}",
            per,
            row.what,
            row.db,
            row.conc,
            s.ops_per_sec(),
            s.ms(0.5),
            s.ms(0.99),
            s.ops,
            s.errors
        );
    }
    for (per, row) in r.summary.iter().filter(|(_, row)| row.what == SUMMARY) {
        if let Some((_, e)) = r.summary.iter().find(|(p, e)| p == per && e.what == ECHO && e.conc == row.conc) {
            let ratio = row.stats.ms(0.99) / e.stats.ms(0.99).max(0.001);
            println!(
                "  {}",
                ratio_line(&format!("{per} sites/province, c={}: summary p99 / echo p99", row.conc), ratio, 5.0, true)
            );
        }
    }
    for (_, row) in r.summary.iter().filter(|(_, row)| row.stats.first_error.is_some()) {
        println!(
            "  first error of {} c={}: {}",
            row.what,
            row.conc,
            row.stats.first_error.as_deref().unwrap_or_default()
        );
    }

    for (rtt, f) in &r.fanout {
        match rtt {
            0 => println!(
                "\nFan-out GetLiveSummary over the 63 nodes (concurrency 1) next to the nodes' own GetStatistics, over bare loopback (63 nodes sharing this machine's cores):"
            ),
            ms => println!(
                "\nFan-out GetLiveSummary over the 63 nodes (concurrency 1) next to the nodes' own GetStatistics, with a {ms} ms round trip emulated to each node:"
            ),
        }
        println!(
            "  GetLiveSummary: {} calls, p50 {:.2} ms, p99 {:.2} ms ({} incomplete or failed)",
            f.fanout.ops,
            f.fanout.ms(0.5),
            f.fanout.ms(0.99),
            f.failures
        );
        let (code, p50, p99, n) = &f.slowest;
        println!(
            "  slowest node by p99: province {code}: p50 {p50:.2} ms, p99 {p99:.2} ms ({n} calls); median node p99 {:.2} ms",
            f.median_p99
        );
        let (p50, p99all, n) = f.pooled;
        println!(
            "  every node's calls together: p50 {p50:.2} ms, p99 {p99all:.2} ms ({n} calls, {} at a time)",
            f.single
        );
        println!(
            "  sum over the 63 nodes of their GetStatistics p50: {:.1} ms (one fan-out's work; on this machine's cores it cannot take less than about that / cores)",
            f.sum_p50
        );
        println!("  {}", ratio_line("fan-out p99 / slowest node p99", f.fanout.ms(0.99) / p99.max(0.001), 2.0, true));
    }

    if let Some((hwm, rss)) = r.memory_kib {
        println!("\nGateway peak memory (VmHWM of the child process, after replication and every phase above):");
        println!("  {:.1} MiB (VmRSS at the end {:.1} MiB)", mib(hwm), mib(rss));
        println!("  {}", ratio_line("peak MiB", mib(hwm), 256.0, true));
    }
}
