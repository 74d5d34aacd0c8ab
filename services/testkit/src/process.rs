//! The `einfo` command as a child process: the integration-test binary runs `einfo_cli::main`
//! when started with [`RUN_AS_CLI`] set, so the tests run the command's own code, built once
//! with the tests, without depending on the binary crate.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use einfo_proto::registry::v1 as pb;

use crate::fixtures::SiteExt as _;

/// Set in a child's environment, the test binary runs as `einfo` (its `main` checks it first).
pub const RUN_AS_CLI: &str = "EINFO_TEST_RUN_AS_CLI";

/// A `Command` that runs `einfo` with no inherited `EINFO_…` variables (the test's environment
/// must not configure the child behind the test's back).
pub fn einfo() -> tokio::process::Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut c = tokio::process::Command::new(exe);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("EINFO_") {
            c.env_remove(k);
        }
    }
    c.env(RUN_AS_CLI, "1").stdin(Stdio::null()).kill_on_drop(true);
    c
}

/// A port that was free a moment ago: bind port 0, read it, let it go.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// A file that collects a child's output (appended across restarts).
pub fn log_file(path: &Path) -> (Stdio, Stdio) {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open child log");
    let g = f.try_clone().expect("clone child log");
    (Stdio::from(f), Stdio::from(g))
}

/// The last lines of a child's log, for failure messages.
pub fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A site with one domain, the same shape the whole-node tests register.
pub fn site(name: &str, domain: &str) -> pb::Site {
    crate::fixtures::site(name, &[domain]).owned_by("Công ty Cổ phần Truyền thông Hà Nội", "0100 109 106")
}

/// Waits until the server at `addr` says SERVING. `Err` with the child's log when it exits
/// first or does not serve within 20 s.
pub async fn wait_serving(addr: &str, child: &mut tokio::process::Child, log: &Path) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            return Err(format!("einfo exited with {status} before serving; its log:\n{}", tail(log)));
        }
        if let Ok(ch) =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect().await
        {
            let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
            if let Ok(r) = h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await
                && r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("einfo at {addr} never became SERVING; its log:\n{}", tail(log)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `check` gives a value while `child` runs, looking every 25 ms (it is
/// [`crate::eventually`], with the child watched). `check` says why not yet with `Err`. `Err`
/// with the child's log (and the last reason) when the child exits first or `within` passes,
/// naming `what`.
pub async fn wait_for<T, F, Fut>(
    child: &mut tokio::process::Child,
    log: &Path,
    within: Duration,
    what: &str,
    mut check: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let last = std::sync::Mutex::new(String::new());
    let last = &last;
    // The deadline is `within` below; eventually's own (later) one never fires first.
    let polled = crate::eventually_within(within * 2, what, || {
        let exited = child.try_wait().expect("poll the child");
        let next = check();
        async move {
            if let Some(status) = exited {
                return Some(Err(format!("einfo exited with {status} before: {what}")));
            }
            match next.await {
                Ok(v) => Some(Ok(v)),
                Err(why) => {
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = why;
                    None
                }
            }
        }
    });
    let why = |e: String| {
        let last = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        format!("{e} (last: {last}); its log:\n{}", tail(log))
    };
    match tokio::time::timeout(within, polled).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(why(e)),
        Err(_) => Err(why(format!("not within {within:?}: {what}"))),
    }
}

/// Starts `einfo` on a port that was free a moment ago and waits until `ready` says it serves:
/// `command(addr)` builds the command, whose output is appended to `log`. Another process may
/// take the port before the child binds it, so a child that could not listen is started again on
/// another port, three times at most. Panics with the log when it does not start.
pub async fn start_on_free_port(
    log: &Path,
    command: impl Fn(&str) -> tokio::process::Command,
    mut ready: impl AsyncFnMut(&mut tokio::process::Child, &str) -> Result<(), String>,
) -> (tokio::process::Child, String) {
    for _ in 0..3 {
        let addr = format!("127.0.0.1:{}", free_port());
        let from = std::fs::metadata(log).map_or(0, |m| m.len());
        let (out, err) = log_file(log);
        let mut child = command(&addr).stdout(out).stderr(err).spawn().expect("spawn einfo");
        match ready(&mut child, &addr).await {
            Ok(()) => return (child, addr),
            Err(_) if could_not_listen(log, from) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("einfo could not listen on three free ports; its log:\n{}", tail(log));
}

/// Whether the child that writes `log` said, after its first `from` bytes, that it could not
/// listen (its port was taken). The whole log is read: with `RUST_BACKTRACE` set the error is
/// followed by a backtrace longer than [`tail`].
pub fn could_not_listen(log: &Path, from: u64) -> bool {
    let bytes = std::fs::read(log).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).contains("cannot listen")
}

/// SIGKILL (on unix: no drain, no shutdown hook, no pool close), and the child is reaped; `what`
/// names it in the failure.
pub async fn sigkill(child: &mut tokio::process::Child, what: &str) {
    child.start_kill().unwrap_or_else(|e| panic!("SIGKILL {what}: {e}"));
    let status = child.wait().await.unwrap_or_else(|e| panic!("reap {what}: {e}"));
    assert!(!status.success(), "a killed {what} does not exit successfully: {status}");
}

/// SIGTERM, and the child exits successfully within `within`; panics with its log otherwise.
pub async fn terminate(child: &mut tokio::process::Child, log: &Path, within: Duration, what: &str) {
    let pid = child.id().unwrap_or_else(|| panic!("{what} is not running"));
    let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}");
    let status = tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("{what} ignored SIGTERM; its log:\n{}", tail(log)))
        .unwrap_or_else(|e| panic!("reap {what}: {e}"));
    assert!(status.success(), "{what} stopped with {status}; its log:\n{}", tail(log));
}

/// The resident memory of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`); `None`
/// where there is no such file (not Linux, or the process is gone).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}
