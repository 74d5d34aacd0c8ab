//! What a node gives one caller (docs/contracts.md, "Limits"): streams nobody reads do not hold
//! memory, a caller over its stream cap or its rate is told `RESOURCE_EXHAUSTED` with when to
//! retry while other callers are served, and an idle follow stream is ended.

use std::time::Duration;

use einfo_app::node::Options;
use einfo_common::auth::{BearerToken, Caller, Role, TokenKeys};
use einfo_common::clock::ManualClock;
use einfo_proto::log::v1 as logpb;
use einfo_proto::log::v1::change_log_service_client::ChangeLogServiceClient;
use einfo_proto::registry::v1::registry_service_client::RegistryServiceClient;
use einfo_testkit::fixtures::next_entry;
use einfo_testkit::process::{einfo, resident_bytes, site, start_on_free_port, wait_serving};
use einfo_testkit::{Backend, TestDb, TestNode, eventually, fixtures, province, settings};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::refusals::reason;

const SECRET: &str = "einfo-limits-test-secret-0123456789-abcdefghij";
const MIB: u64 = 1024 * 1024;

fn follow_request(after: u64) -> logpb::StreamChangesRequest {
    logpb::StreamChangesRequest {
        jurisdiction: province("01").to_string(),
        service: "registry".into(),
        after,
        after_hash: Vec::new(),
        follow: true,
    }
}

fn head_request() -> logpb::GetLogHeadRequest {
    logpb::GetLogHeadRequest { jurisdiction: province("01").to_string(), service: "registry".into() }
}

fn central_service(subject: &str) -> Caller {
    Caller { subject: subject.into(), role: Role::Service, jurisdiction: einfo_domain::Jurisdiction::Central }
}

/// A refusal for a caller limit: `RESOURCE_EXHAUSTED`, reason `CALLER_LIMIT`, the limit named in
/// `ErrorInfo.metadata`, and a `RetryInfo` delay, which it returns.
fn caller_limit(status: &tonic::Status, limit: &str) -> Duration {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(status), "CALLER_LIMIT", "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.metadata.get("limit").map(String::as_str), Some(limit), "{status:?}");
    details.retry_info().and_then(|r| r.retry_delay).expect("a RetryInfo delay")
}

// ------------------------------------------------------------------ memory, as a real process

/// Streams opened by the one caller, and over how many connections.
const STREAMS: usize = 2_000;
const CONNECTIONS: usize = 10;
/// Entries in the log every stream follows from the start: more than one stream buffers.
const SITES: usize = 150;

async fn connect(addr: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

fn rss(child: &tokio::process::Child) -> u64 {
    resident_bytes(child.id().expect("the node runs")).expect("the node's VmRSS in /proc")
}

async fn two_thousand_unread_follow_streams_keep_a_node_small_and_another_caller_is_served() {
    let db = TestDb::new(Backend::Sqlite).await.expect("a SQLite database");
    let dir = db.dir.clone();
    let log = dir.join("node.log");
    let command = |addr: &str| {
        let mut cmd = einfo();
        cmd.args(["serve", "node", "--insecure", "--provinces", "01", "--listen", addr, "--data-dir"])
            .arg(&dir)
            .env("EINFO_AUTH__SECRET", SECRET)
            // The cap is raised past the streams opened (twice, as the server learns of the
            // first ones closing asynchronously), so that what is measured is what each open
            // stream costs, not the cap refusing them.
            .env("EINFO_LIMITS__STREAMS_PER_CALLER", (2 * STREAMS + 100).to_string());
        cmd
    };
    let (mut child, addr) =
        start_on_free_port(&log, command, async |child, addr| wait_serving(addr, child, &log).await).await;
    let keys = TokenKeys::from_secret(SECRET.as_bytes()).expect("keys");
    let token =
        |c: &Caller| BearerToken::new(&keys.issue(c, Duration::from_secs(3600)).expect("token")).expect("bearer");
    let operator = Caller { subject: "operator-01".into(), role: Role::Operator, jurisdiction: province("01") };
    let mut registry = RegistryServiceClient::with_interceptor(connect(&addr).await, token(&operator));
    for i in 0..SITES {
        fixtures::register(
            &mut registry,
            &province("01").to_string(),
            site(&format!("Trang {i}"), &format!("trang-{i}.vn")),
        )
        .await;
    }
    let idle = rss(&child);

    // Act: one caller opens the streams and reads none of them.
    let reader = token(&central_service("hungry-reader"));
    let (streams, channels) = open_unread(&addr, &reader).await;
    let peak = peak_rss(&child).await;

    // Another caller is still served.
    let mut other = ChangeLogServiceClient::with_interceptor(connect(&addr).await, token(&central_service("other")));
    let head = other.get_log_head(head_request()).await.expect("another caller is served").into_inner();
    assert_eq!(head.sequence, SITES as u64);
    let mut whole = other.stream_changes(follow_request(0)).await.expect("its stream opens").into_inner();
    for _ in 0..SITES {
        next_entry(&mut whole).await.expect("an entry").expect("not the end");
    }
    eprintln!("node RSS: idle {} MiB, {STREAMS} unread streams {} MiB", idle / MIB, peak / MIB);
    assert!(peak < 150 * MIB, "{STREAMS} unread streams took the node to {} MiB (idle {} MiB)", peak / MIB, idle / MIB);

    // They close and the same caller opens as many again: the memory the first ones used is
    // used again rather than added to (glibc keeps freed memory rather than giving it back to
    // the system, so resident memory does not drop to idle; see docs/contracts.md, "Limits").
    drop((streams, channels, whole));
    let closed = rss(&child);
    let (streams, channels) = open_unread(&addr, &reader).await;
    let again = peak_rss(&child).await;
    eprintln!("node RSS: after they closed {} MiB, {STREAMS} opened again {} MiB", closed / MIB, again / MIB);
    // The second 2,000 take less than a quarter of what the first took above idle.
    assert!(
        again.saturating_sub(closed) < (peak - idle) / 4,
        "{STREAMS} streams opened again after the first closed took the node from {} to {} MiB (the first took it \
         from {} to {} MiB): memory is not given back to the streams that follow",
        closed / MIB,
        again / MIB,
        idle / MIB,
        peak / MIB
    );
    drop((streams, channels));
    let _ = child.start_kill();
    let _ = child.wait().await;
}

type Unread = (
    Vec<tonic::Streaming<logpb::StreamChangesResponse>>,
    Vec<ChangeLogServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>>>,
);

/// [`STREAMS`] follow streams of the registry log of 01 from its start, over [`CONNECTIONS`]
/// connections, none read.
async fn open_unread(addr: &str, token: &BearerToken) -> Unread {
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        // Small HTTP/2 windows: a reader that does not read stops the flow after little data,
        // so the node holds the rest (and the test's own process does not take in megabytes).
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .initial_stream_window_size(64 * 1024)
            .initial_connection_window_size(1024 * 1024)
            .connect()
            .await
            .expect("connect");
        channels.push(ChangeLogServiceClient::with_interceptor(channel, token.clone()));
    }
    // Opened 100 at a time: one after the other, 2,000 openings take most of the test's time.
    let mut streams = Vec::with_capacity(STREAMS);
    for wave in 0..STREAMS / 100 {
        let opened = futures::future::join_all((0..100).map(|i| {
            let mut c = channels[(wave * 100 + i) % CONNECTIONS].clone();
            async move { c.stream_changes(follow_request(0)).await.expect("a stream opens").into_inner() }
        }))
        .await;
        streams.extend(opened);
    }
    (streams, channels)
}

/// The highest resident memory of the node over two seconds while streams sit unread: each has
/// its first page queued by the time it opened; this catches whatever comes after. A measurement
/// window, not a wait for an outcome.
async fn peak_rss(child: &tokio::process::Child) -> u64 {
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(rss(child));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}

// ------------------------------------------------------------------ caps and rate, in process

async fn a_caller_over_its_stream_cap_is_refused_with_retry_info_and_others_are_served() {
    let db = TestDb::new(Backend::Sqlite).await.expect("a SQLite database");
    let mut s = settings(&db, &["01"]);
    s.limits.streams_per_caller = 3;
    let node = TestNode::start_on(db, s, Options::default()).await;
    let node = &node;
    let client = |subject: &str| {
        let token = node.token(&central_service(subject));
        async move {
            ChangeLogServiceClient::with_interceptor(node.channel().await, BearerToken::new(&token).expect("bearer"))
        }
    };
    let mut greedy = client("greedy").await;

    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(greedy.stream_changes(follow_request(0)).await.expect("within the cap").into_inner());
    }
    let refused = greedy.stream_changes(follow_request(0)).await.expect_err("over the cap");
    assert_eq!(caller_limit(&refused, "streams"), Duration::from_secs(1));

    let mut other = client("other").await;
    other.stream_changes(follow_request(0)).await.expect("another caller opens a stream");
    greedy.get_log_head(head_request()).await.expect("calls are not streams: the capped caller still calls");

    // A stream closed gives its place back (the server learns of it asynchronously).
    open.pop();
    eventually("the closed stream's place is given back", || {
        let mut greedy = greedy.clone();
        async move { greedy.stream_changes(follow_request(0)).await.ok() }
    })
    .await;
}

async fn a_caller_over_its_rate_is_refused_with_retry_info_until_the_clock_moves() {
    let db = TestDb::new(Backend::Sqlite).await.expect("a SQLite database");
    let mut s = settings(&db, &["01"]);
    s.limits.calls_per_second = 2;
    s.limits.burst = 3;
    let clock = ManualClock::starting_now();
    let node = TestNode::start_on(db, s, Options { clock: Some(clock.clone()), ..Options::default() }).await;
    let mut fast = ChangeLogServiceClient::with_interceptor(
        node.channel().await,
        BearerToken::new(&node.token(&central_service("fast"))).expect("bearer"),
    );

    for i in 0..3 {
        fast.get_log_head(head_request()).await.unwrap_or_else(|e| panic!("call {i} of the burst: {e:?}"));
    }
    let refused = fast.get_log_head(head_request()).await.expect_err("over the rate");
    assert_eq!(caller_limit(&refused, "rate"), Duration::from_millis(500), "one token back after 1/rate");
    let refused = fast.stream_changes(follow_request(0)).await.expect_err("streams count against the rate too");
    caller_limit(&refused, "rate");

    let mut other = ChangeLogServiceClient::with_interceptor(
        node.channel().await,
        BearerToken::new(&node.token(&central_service("other"))).expect("bearer"),
    );
    other.get_log_head(head_request()).await.expect("another caller has its own rate");

    clock.advance(chrono::Duration::milliseconds(500));
    fast.get_log_head(head_request()).await.expect("a token came back with the clock");
    fast.get_log_head(head_request()).await.expect_err("and only one");
}

async fn a_stalled_follow_stream_is_ended_after_the_idle_timeout_and_a_quiet_one_is_not() {
    let db = TestDb::new(Backend::Sqlite).await.expect("a SQLite database");
    let mut s = settings(&db, &["01"]);
    s.limits.stream_idle_timeout_ms = 60_000;
    let clock = ManualClock::starting_now();
    let node = TestNode::start_on(db, s, Options { clock: Some(clock.clone()), ..Options::default() }).await;
    let mut registry = node.registry("01").await;
    fixtures::register(&mut registry, &province("01").to_string(), fixtures::site("Trang một", &["mot.vn"])).await;

    // A quiet log: its reader waits at the head past the timeout, and the stream stays.
    let mut log = node.changelog().await;
    let mut quiet = log.stream_changes(follow_request(0)).await.expect("a stream opens").into_inner();
    let first = next_entry(&mut quiet).await.expect("the first entry").expect("not the end");
    clock.advance(chrono::Duration::seconds(600));
    fixtures::register(&mut registry, &province("01").to_string(), fixtures::site("Trang hai", &["hai.vn"])).await;
    let second = next_entry(&mut quiet).await.expect("the second entry").expect("not the end");
    assert_eq!(second.sequence, first.sequence + 1);
    assert_eq!(node.open_streams(), 1);
    drop(quiet);
    eventually("the node sees the quiet stream's reader go", || async { (node.open_streams() == 0).then_some(()) })
        .await;

    // A stalled reader: more entries wait than HTTP/2 and the stream's buffer hold, and it takes
    // none of them. Past the timeout, the node ends it.
    let code = "01".to_string();
    crate::gateway_restart::import_everywhere(&node, std::slice::from_ref(&code), "stalled", 3_000).await;
    let small = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr))
        .expect("endpoint")
        .initial_stream_window_size(1024)
        .connect()
        .await
        .expect("connect");
    let token = BearerToken::new(&node.token(&central_service("stalled-reader"))).expect("bearer");
    let mut stalled = ChangeLogServiceClient::with_interceptor(small, token)
        .stream_changes(follow_request(0))
        .await
        .expect("a stream opens")
        .into_inner();
    stalled.message().await.expect("an entry").expect("not the end");
    assert_eq!(node.open_streams(), 1);
    // The node may still be filling its buffers when the clock first moves (that counts as the
    // reader taking entries), so the clock moves past the timeout again until the node has seen
    // a whole timeout without the reader taking anything.
    eventually("the node ends the stalled stream", || async {
        clock.advance(chrono::Duration::seconds(61));
        (node.open_streams() == 0).then_some(())
    })
    .await;

    // Its reader gets what was buffered, then the end (OK), short of the log's head; it
    // reconnects from its cursor and is served the rest.
    let mut last = None;
    while let Some(e) = next_entry(&mut stalled).await.expect("entries, then an OK end") {
        last = Some(e);
    }
    let last = last.expect("buffered entries");
    assert!(last.sequence < 3_002, "the stream ended at {} before its reader came back", last.sequence);
    let mut again = log
        .stream_changes(logpb::StreamChangesRequest {
            after: last.sequence,
            after_hash: last.hash,
            ..follow_request(0)
        })
        .await
        .expect("the reader reconnects")
        .into_inner();
    let next = next_entry(&mut again).await.expect("the next entry").expect("not the end");
    assert_eq!(next.sequence, last.sequence + 1);
}

/// A request larger than `limits.max_message_bytes` is refused before any handler runs, and
/// nothing is written.
async fn a_message_over_the_size_limit_is_refused_before_any_handler_and_changes_nothing() {
    let db = TestDb::new(Backend::Sqlite).await.expect("a SQLite database");
    let mut s = settings(&db, &["01"]);
    s.limits.max_message_bytes = 4096;
    let node = TestNode::start_on(db, s, Options::default()).await;
    let mut registry = node.registry("01").await;
    let mut small = fixtures::site("Trang nhỏ", &["nho.vn"]);
    small.notes = "ghi chú ".repeat(100);
    fixtures::register(&mut registry, &province("01").to_string(), small).await;
    let mut large = fixtures::site("Trang lớn", &["lon.vn"]);
    // 2,000 characters: within the notes' limit of 4,000, but 6,000 bytes of UTF-8.
    large.notes = "ệ".repeat(2000);
    let refused = registry
        .register_site(einfo_proto::registry::v1::RegisterSiteRequest {
            parent: province("01").to_string(),
            site: Some(large),
            request_id: "too-large".into(),
        })
        .await
        .expect_err("over the message size");
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(refused.message().contains("message length too large"), "{refused:?}");
    assert_eq!(node.last_sequence("01").await, 1, "nothing written");
}

/// The national gateway applies the same per-caller limits, from its `[limits]` settings.
async fn the_gateway_caps_a_callers_streams_from_its_settings() {
    let db = TestDb::new(Backend::Sqlite).await.expect("a SQLite database");
    let mut s = einfo_testkit::gateway::gateway_settings(&db);
    s.limits.streams_per_caller = 1;
    let g = einfo_testkit::TestGateway::start_with(db, s, &[]).await;
    let mut national = g.national();
    let watch = || einfo_proto::gateway::v1::WatchNationalSummaryRequest { options: None };
    let mut first = national.watch_national_summary(watch()).await.expect("one stream").into_inner();
    first.message().await.expect("a summary").expect("not the end");
    let refused = national.watch_national_summary(watch()).await.expect_err("a second stream");
    caller_limit(&refused, "streams");
    drop(first);
    eventually("the closed stream's place is given back", || {
        let mut national = national.clone();
        async move { national.watch_national_summary(watch()).await.ok().map(|_| ()) }
    })
    .await;
}

einfo_testkit::plain_tests!(
    a_message_over_the_size_limit_is_refused_before_any_handler_and_changes_nothing,
    the_gateway_caps_a_callers_streams_from_its_settings,
    two_thousand_unread_follow_streams_keep_a_node_small_and_another_caller_is_served,
    a_caller_over_its_stream_cap_is_refused_with_retry_info_and_others_are_served,
    a_caller_over_its_rate_is_refused_with_retry_info_until_the_clock_moves,
    a_stalled_follow_stream_is_ended_after_the_idle_timeout_and_a_quiet_one_is_not,
);
