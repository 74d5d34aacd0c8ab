//! The integration tests' harness: every test is a [`Trial`] of one binary (libtest-mimic), so a
//! PostgreSQL test that cannot run is *listed as ignored* — the runner's summary counts it as
//! skipped — instead of passing without having run. On CI (`CI` set) PostgreSQL tests are never
//! skipped: they run and fail loudly when the server is unreachable.
//!
//! Modules declare their tests with [`crate::both_backends!`] (an `async fn(Backend)` run once
//! on SQLite and once on PostgreSQL) and [`crate::plain_tests!`] (an `async fn()`), each of
//! which defines the module's `trials()`.

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub use libtest_mimic::{Arguments, Trial};

use crate::{Backend, on_ci, postgres_admin_url};

/// Whether the PostgreSQL tests can run here: the server accepts TCP connections. Decided
/// once per process, before the tests are listed.
pub fn postgres_reachable() -> bool {
    let url = postgres_admin_url();
    let host_port = url.split('@').nth(1).unwrap_or(&url).split('/').next().unwrap_or_default().to_owned();
    let with_port = if host_port.contains(':') { host_port } else { format!("{host_port}:5432") };
    let Ok(addrs) = std::net::ToSocketAddrs::to_socket_addrs(&with_port) else { return false };
    let addrs: Vec<SocketAddr> = addrs.collect();
    addrs.iter().any(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).is_ok())
}

/// Whether PostgreSQL tests are listed as ignored in this process.
fn skip_postgres() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| {
        let skip = !on_ci() && !postgres_reachable();
        if skip {
            eprintln!("POSTGRES UNAVAILABLE at {}: the PostgreSQL tests are skipped", postgres_admin_url());
        }
        skip
    })
}

/// Runs `f` to completion on a runtime of its own (two workers, as the tests always had).
pub fn block_on<Fut: Future<Output = ()>>(f: Fut) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime")
        .block_on(f)
}

/// The test's name without the binary's own module prefix (`it::sites::x` → `sites::x`).
pub fn name(module_path: &str, test: &str) -> String {
    let module = module_path.split_once("::").map_or("", |(_, rest)| rest);
    if module.is_empty() { test.to_owned() } else { format!("{module}::{test}") }
}

/// Two trials of `test`: `…::sqlite` and `…::postgres` (ignored where PostgreSQL is unreachable).
pub fn both<F, Fut>(name: String, test: F) -> [Trial; 2]
where
    F: Fn(Backend) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = ()>,
{
    [
        Trial::test(format!("{name}::sqlite"), move || {
            block_on(test(Backend::Sqlite));
            Ok(())
        }),
        Trial::test(format!("{name}::postgres"), move || {
            block_on(test(Backend::Postgres));
            Ok(())
        })
        .with_ignored_flag(skip_postgres()),
    ]
}

/// One trial of an `async fn()`.
pub fn plain<F, Fut>(name: String, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::test(name, move || {
        block_on(test());
        Ok(())
    })
}

/// Runs the trials with the process's arguments and exits with the runner's code.
pub fn run(trials: Vec<Trial>) -> ! {
    let args = Arguments::from_args();
    libtest_mimic::run(&args, trials).exit()
}

/// Polls `check` every 25 ms until it gives a value; panics naming `what` after 20 s.
///
/// This is how a test waits for something that happens on its own (a node serving,
/// replication catching up, an outbox delivering): the deadline only bounds a failure, it
/// never decides a success.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(Duration::from_secs(20), what, check).await
}

/// [`eventually`] with another deadline.
pub async fn eventually_within<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Declares the module's tests that run on both databases: each `async fn(Backend)` becomes
/// `name::sqlite` and `name::postgres`; after `; plain:`, `async fn()` tests run once. Defines
/// the module's `trials()`, so it is used once per module.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        pub(crate) fn trials() -> Vec<$crate::harness::Trial> {
            let mut out = Vec::new();
            $(
                out.extend($crate::harness::both($crate::harness::name(module_path!(), stringify!($name)), $name));
            )*
            out
        }
    };
    ($($name:ident),* $(,)? ; plain: $($plain:ident),* $(,)?) => {
        pub(crate) fn trials() -> Vec<$crate::harness::Trial> {
            let mut out = Vec::new();
            $(
                out.extend($crate::harness::both($crate::harness::name(module_path!(), stringify!($name)), $name));
            )*
            $(
                out.push($crate::harness::plain($crate::harness::name(module_path!(), stringify!($plain)), $plain));
            )*
            out
        }
    };
}

/// Declares a module's tests that take no database parameter (`async fn()`); defines `trials()`.
#[macro_export]
macro_rules! plain_tests {
    ($($name:ident),* $(,)?) => {
        pub(crate) fn trials() -> Vec<$crate::harness::Trial> {
            vec![$($crate::harness::plain($crate::harness::name(module_path!(), stringify!($name)), $name)),*]
        }
    };
}
