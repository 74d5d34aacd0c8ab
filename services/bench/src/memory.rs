//! The node benchmark's peak-memory measurement: a node hosting the 63 provinces as a child
//! process, seeded, then read, with its `VmHWM` read from `/proc`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use einfo_common::auth::TokenKeys;
use einfo_proto::registry::v1 as pb;

use crate::fixtures::{IMPORT_BATCH, RegistryClient, jurisdiction, p63_codes, random_secret, registry_client, seed};
use crate::measure::{Row, measure, mib, op, phase, print_row, scratch_dir, spread};
use crate::node::BenchArgs;
use crate::servers::{ServeChild, connect};

/// `ImportSites` calls in flight while seeding.
const IMPORT_CONCURRENCY: usize = 3;

pub(crate) struct Memory {
    idle_hwm_kib: u64,
    seeded_hwm_kib: u64,
    final_hwm_kib: u64,
    final_rss_kib: u64,
    seeded: u64,
    seed_time: Duration,
    db_bytes: u64,
    load: Vec<Row>,
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// A node as a child process (`einfo serve node` hosting the 63 provinces on SQLite), seeded
/// through `ImportSites`, then read with `GetSite` and `ListSites`; its `VmHWM` is read from
/// `/proc`.
pub(crate) async fn bench_memory(args: &BenchArgs) -> anyhow::Result<Memory> {
    let dir = scratch_dir("einfo-bench-mem")?;
    let result = memory_on(args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn memory_on(args: &BenchArgs, dir: &Path) -> anyhow::Result<Memory> {
    let codes = p63_codes();
    let secret = random_secret();
    let node_args = vec!["--provinces".into(), codes.join(",").into(), "--data-dir".into(), dir.join("data").into()];
    let mut node = ServeChild::start(std::env::current_exe()?, "node", node_args, &secret, dir.join("node.log"))?;
    let result = async {
        node.wait_serving(Duration::from_secs(120)).await?;
        let (idle_hwm_kib, _) = node.memory()?;
        let keys = TokenKeys::from_secret(secret.as_bytes())?;
        let channel = connect(node.addr).await?;
        let clients: Arc<Vec<RegistryClient>> =
            Arc::new(codes.iter().map(|c| registry_client(&channel, &keys, c)).collect::<anyhow::Result<_>>()?);

        // Seed: every province in batches of IMPORT_BATCH rows, a few calls in flight.
        let mut sample: Vec<Vec<String>> = vec![Vec::new(); codes.len()];
        let (seeded, seed_time) =
            seed(&clients, &codes, "mem", 0, args.sites_per_province, IMPORT_CONCURRENCY, |p, names| {
                if sample[p].len() < 200 {
                    sample[p].extend(names.into_iter().step_by(10).take(200));
                }
            })
            .await?;
        let (seeded_hwm_kib, _) = node.memory()?;

        // A short read load across the 63 provinces.
        let sample = Arc::new(sample);
        let get_site = {
            let (clients, sample) = (clients.clone(), sample.clone());
            op(move |w, n| {
                let p = (w + n as usize) % clients.len();
                let mut c = clients[p].clone();
                let names = &sample[p];
                let name = (!names.is_empty()).then(|| names[(spread(n) % names.len() as u64) as usize].clone());
                async move {
                    c.get_site(pb::GetSiteRequest { name: name.context("no site to read")? }).await?;
                    Ok(())
                }
            })
        };
        let list_sites = {
            let clients = clients.clone();
            let parents: Arc<Vec<String>> =
                Arc::new(codes.iter().map(|c| jurisdiction(c).map(|j| j.to_string())).collect::<anyhow::Result<_>>()?);
            op(move |w, n| {
                let p = (w + n as usize) % clients.len();
                let mut c = clients[p].clone();
                let parent = parents[p].clone();
                async move {
                    let r = c.list_sites(pb::ListSitesRequest { parent, page_size: 100, ..Default::default() }).await?;
                    anyhow::ensure!(!r.into_inner().sites.is_empty(), "empty page");
                    Ok(())
                }
            })
        };
        let load = measure(
            &args.schedule(),
            32,
            vec![phase("GetSite (63×N node)", "sqlite", get_site), phase("ListSites 100 (63×N)", "sqlite", list_sites)],
        )
        .await;
        let (final_hwm_kib, final_rss_kib) = node.memory()?;
        Ok(Memory {
            idle_hwm_kib,
            seeded_hwm_kib,
            final_hwm_kib,
            final_rss_kib,
            seeded,
            seed_time,
            db_bytes: dir_bytes(&dir.join("data")),
            load,
        })
    }
    .await;
    node.stop().await;
    result
}

pub(crate) fn print_memory(args: &BenchArgs, m: &Memory) {
    println!("\nNode hosting the 63 provinces × {} sites (child process, SQLite):", args.sites_per_province);
    println!(
        "  seeded {} sites through ImportSites ({} rows per call, {} calls in flight) in {:.1} s: {:.0} rows/s",
        m.seeded,
        IMPORT_BATCH,
        IMPORT_CONCURRENCY,
        m.seed_time.as_secs_f64(),
        m.seeded as f64 / m.seed_time.as_secs_f64()
    );
    println!(
        "  peak memory (VmHWM): {:.1} MiB  (idle after start {:.1} MiB, after seeding {:.1} MiB; VmRSS at the end {:.1} MiB)",
        mib(m.final_hwm_kib),
        mib(m.idle_hwm_kib),
        mib(m.seeded_hwm_kib),
        mib(m.final_rss_kib)
    );
    println!("  database files: {:.1} MiB", m.db_bytes as f64 / (1024.0 * 1024.0));
    println!("  read load on it:");
    for r in &m.load {
        print!("  ");
        print_row(r);
    }
}
