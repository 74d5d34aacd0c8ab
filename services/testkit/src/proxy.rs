//! A TCP proxy for tests, to lose, slow down or corrupt answers on purpose.
//!
//! [`TcpProxy::start`] listens on `127.0.0.1:0` and forwards every connection to a target. In
//! [`ProxyMode::Pass`] it forwards both ways untouched. In [`ProxyMode::DropResponses`] it
//! forwards everything the client sends, so the server receives and executes each call, but the
//! client never sees the answers. In [`ProxyMode::Delay`] every server → client chunk is held
//! back for a while (a slow node; order is kept). In [`ProxyMode::CorruptResponses`] the last
//! byte of every message the server sends on a request stream is flipped (a tampered answer).
//!
//! The traffic is gRPC, i.e. HTTP/2 over cleartext TCP, so "the answers" are the server's frames
//! on request streams (HEADERS, DATA, RST_STREAM, … with a stream id other than 0). The proxy cuts
//! the server-to-client byte stream into HTTP/2 frames (a 9-byte header carrying a 24-bit
//! length, then the payload) and, while dropping, still forwards the connection-level frames —
//! stream id 0: SETTINGS and its acknowledgement, PING, WINDOW_UPDATE, GOAWAY — so the
//! connection stays healthy (keepalive pings are answered) and only the calls' answers are lost.
//!
//! Does the client need the server's SETTINGS before it sends a request? Tried with tonic 0.14
//! (hyper/h2) on a lazily connected channel opened while dropping: no. With every server byte
//! dropped (SETTINGS included) the request still reaches the server and is executed, exactly as
//! with stream frames alone dropped; so no grace period is needed. A grace period in time ("pass
//! the first ~200 ms") would even defeat the purpose: on a fresh lazy connection the answer
//! arrives within milliseconds and would be passed. Frame-aware dropping is used because it
//! needs no timing at all and keeps the connection usable for the client's liveness checks.
//!
//! [`TcpProxy::start_raw`] forwards bytes without reading them as HTTP/2 (a database
//! connection), in `Pass` and `Delay` only. [`TcpProxy::cut`] closes every open connection at
//! once, both ways, whatever it is doing (a network cut, a database connection lost in the middle
//! of a transaction); new connections are accepted as before.
//!
//! Dropping a response's HEADERS desynchronises the HPACK dynamic tables of the two ends, so such
//! a connection can never carry answers correctly again. When the mode goes back to `Pass`, the
//! proxy closes every connection that lost frames; the client reconnects, as it would after a
//! real network failure.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the proxy does with the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Pass,
    /// Forward client → server; of server → client, only HTTP/2 connection frames (stream 0).
    DropResponses,
    /// Forward both ways, each server → client chunk this long after it arrived (in order).
    Delay(std::time::Duration),
    /// Forward both ways, flipping the last payload byte of every server DATA frame on a request
    /// stream (the last byte of a small gRPC message: e.g. of a receipt's signature, its last
    /// field). Headers are untouched, so the connection stays usable afterwards.
    CorruptResponses,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    dropped_frames: AtomicU64,
    corrupted_frames: AtomicU64,
    closed: AtomicU64,
}

/// A running proxy; stops when dropped.
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    cuts: watch::Sender<u64>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy to `target` on `127.0.0.1:0`, in `Pass` mode.
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_framed(target, true).await
    }

    /// A proxy to `target` that forwards bytes as they come, not read as HTTP/2 (a PostgreSQL
    /// connection): `Pass`, `Delay` and [`TcpProxy::cut`] only.
    pub async fn start_raw(target: SocketAddr) -> Self {
        Self::start_framed(target, false).await
    }

    async fn start_framed(target: SocketAddr, http2: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(ProxyMode::Pass);
        let (cuts, _) = watch::channel(0);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept(listener, target, mode.clone(), cuts.clone(), counters.clone(), http2));
        Self { addr, target, mode, cuts, counters, task }
    }

    /// Closes every connection open now, both ways (the next ones pass as the mode says).
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`, for a gRPC endpoint setting.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Switches the mode for every connection, open or future. Back to `Pass`, connections that
    /// lost frames are closed.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Server frames on request streams dropped so far.
    pub fn dropped_frames(&self) -> u64 {
        self.counters.dropped_frames.load(Ordering::SeqCst)
    }

    /// Server DATA frames corrupted so far.
    pub fn corrupted_frames(&self) -> u64 {
        self.counters.corrupted_frames.load(Ordering::SeqCst)
    }

    /// Connections closed because they had lost frames when the mode went back to `Pass`.
    pub fn closed_connections(&self) -> u64 {
        self.counters.closed.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    cuts: watch::Sender<u64>,
    counters: Arc<Counters>,
    http2: bool,
) {
    // Connection tasks end with their sockets, or are aborted when the proxy (this loop) is dropped.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        counters.connections.fetch_add(1, Ordering::SeqCst);
        let rx = mode.subscribe();
        let mut cut = cuts.subscribe();
        let counters = counters.clone();
        conns.spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else { return };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            cut.borrow_and_update();
            tokio::select! {
                _ = relay(client, server, rx, &counters, http2) => {}
                _ = cut.changed() => {}
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

/// Length of an HTTP/2 frame header.
const FRAME_HEADER: usize = 9;
/// HTTP/2 frame type DATA.
const DATA: u8 = 0x0;
/// HTTP/2 flag PADDED.
const PADDED: u8 = 0x8;

async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    mut mode: watch::Receiver<ProxyMode>,
    counters: &Counters,
    http2: bool,
) {
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    // Server bytes not yet forming a whole frame.
    let mut pending: Vec<u8> = Vec::new();
    // Server bytes held back by `Delay`, with when they are due; once anything is held, later
    // bytes queue behind it whatever the mode, so the order is kept.
    let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut tainted = false;
    loop {
        let due = held.front().map(|(at, _)| *at);
        tokio::select! {
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                while held.front().is_some_and(|(at, _)| *at <= Instant::now()) {
                    let (_, bytes) = held.pop_front().expect("a held chunk");
                    if cw.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            },
            r = cr.read(&mut up) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if sw.write_all(&up[..n]).await.is_err() {
                        return;
                    }
                }
            },
            r = sr.read(&mut down) => match r {
                Ok(0) | Err(_) => {
                    // The server is gone: what it sent before still arrives, when due.
                    for (at, bytes) in held.drain(..) {
                        tokio::time::sleep_until(at).await;
                        if cw.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                Ok(n) if !http2 => {
                    let delay = match *mode.borrow() {
                        ProxyMode::Delay(d) => Some(d),
                        _ if !held.is_empty() => Some(std::time::Duration::ZERO),
                        _ => None,
                    };
                    match delay {
                        Some(d) => held.push_back((Instant::now() + d, down[..n].to_vec())),
                        None => {
                            if cw.write_all(&down[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Ok(n) => {
                    pending.extend_from_slice(&down[..n]);
                    let current = *mode.borrow();
                    if current == ProxyMode::Pass && tainted {
                        counters.closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    let mut out = Vec::with_capacity(pending.len());
                    let mut at = 0;
                    while pending.len() - at >= FRAME_HEADER {
                        let h = &pending[at..at + FRAME_HEADER];
                        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                        if pending.len() - at < FRAME_HEADER + len {
                            break;
                        }
                        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                        let frame = &pending[at..at + FRAME_HEADER + len];
                        match current {
                            ProxyMode::DropResponses if stream != 0 => {
                                tainted = true;
                                counters.dropped_frames.fetch_add(1, Ordering::SeqCst);
                            }
                            ProxyMode::CorruptResponses if stream != 0 && h[3] == DATA && h[4] & PADDED == 0 && len > 0 => {
                                out.extend_from_slice(frame);
                                *out.last_mut().expect("a payload byte") ^= 0x01;
                                counters.corrupted_frames.fetch_add(1, Ordering::SeqCst);
                            }
                            _ => out.extend_from_slice(frame),
                        }
                        at += FRAME_HEADER + len;
                    }
                    pending.drain(..at);
                    if out.is_empty() {
                        continue;
                    }
                    let delay = match current {
                        ProxyMode::Delay(d) => Some(d),
                        _ if !held.is_empty() => Some(std::time::Duration::ZERO),
                        _ => None,
                    };
                    match delay {
                        Some(d) => held.push_back((Instant::now() + d, out)),
                        None => {
                            if cw.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                if *mode.borrow() == ProxyMode::Pass && tainted {
                    counters.closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}
