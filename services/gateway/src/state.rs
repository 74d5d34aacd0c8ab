//! The gateway's runtime state: where replication of each log stands, the directory and the
//! alarms as last read, the summary cells mirrored from the store and the summaries computed
//! from them, the channels to nodes, and the watches that tell replicators and subscribers that
//! something changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use einfo_central::Central;
use einfo_common::auth::{BearerToken, Caller, Role, Signer, TokenKeys};
use einfo_common::config::GatewaySettings;
use einfo_common::db::Database;
use einfo_common::tls::Transport;
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as pb;
use tokio::sync::watch;

use crate::{Gateway, SERVICES, national, replicate, store};

/// HTTP/2 flow-control window of each stream to a node.
const STREAM_WINDOW: u32 = 256 * 1024;

/// Where replication of one log stands (in memory).
#[derive(Clone, Debug, Default)]
pub(crate) struct LogState {
    /// Last sequence applied.
    pub seq: u64,
    /// The node's head as last seen (at connection, then as entries arrive).
    pub head: u64,
    /// When an entry was last applied.
    pub apply_time: Option<DateTime<Utc>>,
    /// A stream to the node is open.
    pub connected: bool,
    /// Everything the node had when the stream opened has been applied.
    pub caught_up: bool,
    /// The last instant the store was known to hold everything the node had.
    pub last_live: Option<DateTime<Utc>>,
    /// Last error reaching the node.
    pub error: String,
    /// The node does not run this service (e.g. a registry-only node): nothing to replicate.
    pub absent: bool,
    /// Why the node is behind the centre on this log (it holds a prefix of what the centre
    /// received); empty when it is not.
    pub behind: String,
    /// How the history behind the cursor was last audited, and what that read.
    pub audit: Option<AuditRead>,
}

/// How a log was audited and what it read from the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditRead {
    /// By a signed checkpoint and a consistency proof (else by reading the log from its start).
    pub by_proof: bool,
    /// Bytes of the node's answers read (protobuf encodings).
    pub bytes: u64,
}

#[derive(Default)]
pub(crate) struct State {
    pub directory: BTreeMap<Jurisdiction, String>,
    pub logs: HashMap<(Jurisdiction, &'static str), LogState>,
    pub alarms: HashMap<Jurisdiction, (String, DateTime<Utc>)>,
    pub cells: HashMap<store::CellKey, i64>,
    /// The summary body last computed for each grouping, from `cells`: emptied whenever
    /// `cells` changes.
    pub summaries: HashMap<i32, Arc<national::SummaryBody>>,
    /// Jurisdictions the store has held counts of (parsed once, for `expected`).
    pub held: BTreeSet<Jurisdiction>,
    pub spawned: BTreeSet<Jurisdiction>,
}

pub(crate) struct Inner {
    pub db: Database,
    pub settings: GatewaySettings,
    /// The shared secret, when tokens signed with it are taken.
    pub keys: Option<TokenKeys>,
    /// How the gateway signs its own calls to nodes (and, holding a certificate, cosigns).
    pub signer: Signer,
    /// The centre's CA (DER): nodes' checkpoints must be signed by its certificates.
    pub ca_der: Option<Vec<u8>>,
    /// Mutual TLS with the nodes, or plaintext.
    pub transport: Transport,
    pub state: Mutex<State>,
    /// Bumped whenever the store or a freshness changes.
    pub revision: watch::Sender<u64>,
    /// Bumped whenever the directory or an alarm changes: replicators look again.
    pub directory_changed: watch::Sender<u64>,
    pub stopping: watch::Sender<bool>,
    pub central: Central,
    /// By endpoint and the province the node there must prove it acts for.
    pub channels: Mutex<HashMap<(String, Jurisdiction), tonic::transport::Channel>>,
}

impl Inner {
    /// The state of a gateway on `db` (migrated) as the store holds it: the directory, every
    /// cursor, the alarms and the summary cells.
    pub(crate) async fn load(
        db: Database,
        settings: GatewaySettings,
        keys: Option<TokenKeys>,
        signer: Signer,
        ca_der: Option<Vec<u8>>,
        transport: Transport,
        central: Central,
    ) -> anyhow::Result<Self> {
        let mut state = State::default();
        let err = |e: einfo_common::error::ApiError| anyhow::anyhow!("{e}");
        for (j, e) in store::directory(db.conn()).await.map_err(err)? {
            state.directory.insert(Jurisdiction::parse(&j)?, e);
        }
        for (j, service, seq, at) in store::cursors(db.conn()).await.map_err(err)? {
            let Some(service) = SERVICES.iter().find(|s| **s == service) else { continue };
            let st = state.logs.entry((Jurisdiction::parse(&j)?, service)).or_default();
            st.seq = seq;
            st.apply_time = Some(at);
        }
        for (j, detail, at) in store::alarms(db.conn()).await.map_err(err)? {
            state.alarms.insert(Jurisdiction::parse(&j)?, (detail, at));
        }
        for (key, n) in store::summary_cells(db.conn()).await.map_err(err)? {
            state.held.insert(Jurisdiction::parse(&key.0)?);
            state.cells.insert(key, n);
        }
        Ok(Inner {
            db,
            settings,
            keys,
            signer,
            ca_der,
            transport,
            state: Mutex::new(state),
            revision: watch::Sender::new(0),
            directory_changed: watch::Sender::new(0),
            stopping: watch::Sender::new(false),
            central,
            channels: Mutex::new(HashMap::new()),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gateway {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.0.state)
    }

    /// A bearer token the gateway calls nodes with: the `service` of `central` (a machine, which
    /// may read a log's entries; it reads, never writes).
    pub(crate) fn token(&self) -> anyhow::Result<BearerToken> {
        let caller = Caller { subject: "gateway".into(), role: Role::Service, jurisdiction: Jurisdiction::Central };
        BearerToken::new(&self.0.signer.issue(&caller, Duration::from_secs(3600))?)
    }

    /// A channel to `endpoint` for the province `j`, shared by every call for it (HTTP/2
    /// multiplexes them); over TLS the node's certificate must act for `j`.
    pub(crate) fn channel(&self, endpoint: &str, j: &Jurisdiction) -> anyhow::Result<tonic::transport::Channel> {
        let mut channels = lock(&self.0.channels);
        let key = (endpoint.to_owned(), *j);
        if let Some(c) = channels.get(&key) {
            return Ok(c.clone());
        }
        let e = self
            .0
            .transport
            .endpoint(endpoint)?
            .connect_timeout(Duration::from_secs(2))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            // Bounds what each replication stream may buffer: with hyper's default windows
            // (2 MiB a stream) 126 streams catching up hold most of the gateway's memory.
            .initial_stream_window_size(Some(STREAM_WINDOW))
            .initial_connection_window_size(Some(4 * STREAM_WINDOW));
        let c = self.0.transport.connect_lazy(&e, std::slice::from_ref(j));
        channels.insert(key, c.clone());
        Ok(c)
    }

    /// Marks that something a summary shows changed.
    pub(crate) fn bump(&self) {
        self.0.revision.send_modify(|r| *r += 1);
    }

    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.0.stopping.subscribe()
    }

    pub(crate) fn spawn_jurisdiction(&self, j: Jurisdiction) {
        if !self.state().spawned.insert(j) {
            return;
        }
        for service in SERVICES {
            tokio::spawn(replicate::run(self.clone(), j, service));
        }
    }
}

/// Freshness of `j` from the replication state.
pub(crate) fn freshness_of(
    st: &State,
    j: &Jurisdiction,
    now: DateTime<Utc>,
    bound: Duration,
) -> pb::JurisdictionFreshness {
    use pb::FreshnessState as F;
    let endpoint = st.directory.get(j).cloned().unwrap_or_default();
    let logs: Vec<LogState> = SERVICES.iter().map(|s| st.logs.get(&(*j, *s)).cloned().unwrap_or_default()).collect();
    let seq = |i: usize| logs[i].seq;
    let apply_time = logs.iter().filter_map(|l| l.apply_time).max();
    let live = |l: &LogState| l.absent || (l.connected && l.caught_up);
    let sync_time = if logs.iter().all(live) {
        Some(now)
    } else {
        logs.iter().filter(|l| !live(l)).map(|l| l.last_live).min().flatten()
    };
    let lag = sync_time.map(|t| (now - t).max(chrono::TimeDelta::zero()));
    let (state, detail) = if let Some((detail, _)) = st.alarms.get(j) {
        (F::Alarm, detail.clone())
    } else if endpoint.is_empty() {
        (F::Unconfigured, "not in the directory".to_owned())
    } else if let Some(behind) = logs.iter().map(|l| l.behind.as_str()).find(|b| !b.is_empty()) {
        (F::Behind, behind.to_owned())
    } else if logs.iter().all(live) {
        (F::Live, String::new())
    } else if logs.iter().any(|l| !l.absent && !l.connected) {
        let error = logs.iter().map(|l| l.error.as_str()).find(|e| !e.is_empty()).unwrap_or("not connected yet");
        (F::Unreachable, error.to_owned())
    } else {
        match lag {
            Some(l) if l.to_std().unwrap_or_default() <= bound => (F::CatchingUp, String::new()),
            _ => (F::Stale, "catching up".to_owned()),
        }
    };
    pb::JurisdictionFreshness {
        jurisdiction: j.to_string(),
        endpoint,
        state: state as i32,
        registry_sequence: seq(0),
        inspection_sequence: seq(1),
        registry_head: logs[0].head.max(seq(0)),
        inspection_head: logs[1].head.max(seq(1)),
        sync_time: sync_time.map(einfo_common::fields::timestamp),
        lag: lag.map(|l| prost_types::Duration { seconds: l.num_seconds(), nanos: (l.subsec_nanos()).max(0) }),
        detail,
        apply_time: apply_time.map(einfo_common::fields::timestamp),
    }
}
