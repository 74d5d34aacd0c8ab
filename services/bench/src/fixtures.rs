//! The data and credentials both benchmarks make: the 63 provinces, tokens and registry clients,
//! generated sites, and seeding provinces through `ImportSites`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_domain::{Jurisdiction, Scheme};
use einfo_proto::registry::v1 as pb;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use futures::StreamExt as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub(crate) type RegistryClient = RegistryServiceClient<InterceptedService<Channel, BearerToken>>;

/// A tax code with a valid check digit, for every generated owner.
pub(crate) const TAX_CODE: &str = "0100109106";
/// Rows per `ImportSites` call when seeding.
pub(crate) const IMPORT_BATCH: u32 = 2_000;

/// The 63 province codes of the 2008 scheme.
pub(crate) fn p63_codes() -> Vec<String> {
    Scheme::P63.provinces().iter().map(|p| p.code.to_string()).collect()
}

pub(crate) fn jurisdiction(code: &str) -> anyhow::Result<Jurisdiction> {
    Ok(Jurisdiction::province(Scheme::P63, code)?)
}

pub(crate) fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// A day's bearer token for `caller`.
fn token(keys: &TokenKeys, caller: &Caller) -> anyhow::Result<BearerToken> {
    BearerToken::new(&keys.issue(caller, Duration::from_secs(12 * 3600))?)
}

/// A registry client acting as the operator of province `code`.
pub(crate) fn registry_client(channel: &Channel, keys: &TokenKeys, code: &str) -> anyhow::Result<RegistryClient> {
    let caller =
        Caller { subject: format!("bench-operator-{code}"), role: Role::Operator, jurisdiction: jurisdiction(code)? };
    Ok(RegistryServiceClient::with_interceptor(channel.clone(), token(keys, &caller)?))
}

/// The token of a central analyst.
pub(crate) fn central_token(keys: &TokenKeys) -> anyhow::Result<BearerToken> {
    let caller =
        Caller { subject: "bench-central".into(), role: Role::CentralAnalyst, jurisdiction: Jurisdiction::Central };
    token(keys, &caller)
}

/// The token the centre's gateway reads logs with: the `service` of `central`.
pub(crate) fn gateway_token(keys: &TokenKeys) -> anyhow::Result<BearerToken> {
    let caller = Caller { subject: "bench-gateway".into(), role: Role::Service, jurisdiction: Jurisdiction::Central };
    token(keys, &caller)
}

/// A CSV file of `count` sites of province `code`, numbered from `start`; every domain is unique
/// for a given `tag`.
fn sites_csv(code: &str, tag: &str, start: u32, count: u32) -> Vec<u8> {
    let mut s = einfo_registry::import::COLUMNS.join(",");
    s.push('\n');
    for i in start..start + count {
        let _ = writeln!(
            s,
            "general-website,Trang thông tin điện tử {tag} {code} số {i},{tag}-p{code}-s{i}.vn,organisation,Công ty Truyền thông {code} {i},{TAX_CODE},in_vietnam,active,sweep,"
        );
    }
    s.into_bytes()
}

/// Imports `count` sites into province `code` in one call and returns their names.
pub(crate) async fn import(
    client: &RegistryClient,
    code: &str,
    tag: &str,
    start: u32,
    count: u32,
) -> anyhow::Result<Vec<String>> {
    let mut c = client.clone();
    let r = c
        .import_sites(pb::ImportSitesRequest {
            parent: jurisdiction(code)?.to_string(),
            csv: sites_csv(code, tag, start, count),
            dry_run: false,
            request_id: format!("bench-import-{tag}-{code}-{start}"),
        })
        .await
        .with_context(|| format!("ImportSites into {code}"))?
        .into_inner();
    anyhow::ensure!(r.errors.is_empty(), "ImportSites into {code} refused rows: {:?}", r.errors.first());
    Ok(r.sites)
}

/// Seeds sites `from..to` of every province (`clients[i]` the operator of `codes[i]`) through
/// `ImportSites`, [`IMPORT_BATCH`] rows per call and `in_flight` calls at once, reporting
/// progress every 15 s; `each(province, names)` sees every call's new sites. Returns the sites
/// seeded and the time it took.
pub(crate) async fn seed(
    clients: &[RegistryClient],
    codes: &[String],
    tag: &str,
    from: u32,
    to: u32,
    in_flight: usize,
    mut each: impl FnMut(usize, Vec<String>),
) -> anyhow::Result<(u64, Duration)> {
    let jobs: Vec<(usize, u32)> =
        (0..codes.len()).flat_map(|p| (from..to).step_by(IMPORT_BATCH as usize).map(move |s| (p, s))).collect();
    let started = Instant::now();
    let mut seeded = 0u64;
    let mut last_report = Instant::now();
    let mut done = futures::stream::iter(jobs)
        .map(|(p, start)| async move {
            let count = IMPORT_BATCH.min(to - start);
            import(&clients[p], &codes[p], tag, start, count).await.map(|names| (p, names))
        })
        .buffer_unordered(in_flight);
    while let Some(r) = done.next().await {
        let (p, names) = r?;
        seeded += names.len() as u64;
        each(p, names);
        if last_report.elapsed() > Duration::from_secs(15) {
            last_report = Instant::now();
            eprintln!(
                "    seeded {seeded} sites in {:.0} s ({:.0} rows/s)",
                started.elapsed().as_secs_f64(),
                seeded as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok((seeded, started.elapsed()))
}

/// A new site with one domain made from `n`.
pub(crate) fn new_site(n: u64) -> pb::Site {
    pb::Site {
        kind: "general-website".into(),
        display_name: format!("Trang thông tin điện tử số {n}"),
        domains: vec![format!("reg-{n}.vn")],
        owner: Some(pb::Owner {
            kind: pb::OwnerKind::Organisation as i32,
            display_name: "Công ty Cổ phần Truyền thông Hà Nội".into(),
            tax_code: TAX_CODE.into(),
            ..Default::default()
        }),
        hosting: pb::Hosting::InVietnam as i32,
        operational_state: pb::OperationalState::Active as i32,
        discovery_source: pb::DiscoverySource::Sweep as i32,
        ..Default::default()
    }
}
