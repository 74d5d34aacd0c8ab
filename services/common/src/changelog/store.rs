//! Appending to and reading from the change log, and idempotent mutations.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use einfo_domain::Jurisdiction;
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, sea_query::Value};

use super::{Actor, ChainBreak, ChainVerifier, ChangeEntry, GENESIS_HASH, SCHEMA_VERSION, entry_hash};
use crate::auth::Caller;
use crate::db::{Database, WriteTxn, from_micros, is_unique_violation, micros, stmt};
use crate::error::{ApiError, ApiResult, Reason};

/// One log: a jurisdiction's log of one service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogId {
    /// Whose records.
    pub jurisdiction: Jurisdiction,
    /// Which service: "registry", "inspection", "reporting".
    pub service: &'static str,
}

impl std::fmt::Display for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.jurisdiction, self.service)
    }
}

/// The idempotency key of a mutating request: `request_id` scoped to (caller, method), with a
/// hash of the request body so that a reuse with another body is told apart from a retry.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// The caller's scope ([`Caller::scope`]).
    pub scope: String,
    /// Full gRPC method name.
    pub method: &'static str,
    /// The caller's request id.
    pub request_id: String,
    /// SHA-256 of the request with `request_id` cleared.
    pub body_hash: [u8; 32],
}

impl Idempotency {
    /// The key of a caller's request to `method`: the request id is checked and the body hashed.
    /// The node's own `system` actor (time-driven transitions) has none.
    pub fn of_request(
        caller: &Caller,
        method: &'static str,
        request_id: &str,
        body: &impl Message,
    ) -> ApiResult<Option<Self>> {
        if caller.role == crate::auth::Role::System {
            return Ok(None);
        }
        crate::fields::check_request_id(request_id)?;
        Ok(Some(Self {
            scope: caller.scope(),
            method,
            request_id: request_id.to_owned(),
            body_hash: super::body_hash(body),
        }))
    }
}

/// What [`Database::begin_mutation`] found.
#[allow(clippy::large_enum_variant)] // short-lived, returned once per request
pub enum Begin<R> {
    /// The request was made before with the same body: its first answer, nothing changed.
    Replay(R),
    /// A new mutation, holding the log's lock.
    Fresh(Mutation),
}

/// A transaction that appends to one log. Dropping it without [`Mutation::commit`] rolls back.
pub struct Mutation {
    txn: DatabaseTransaction,
    _write_guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    log: LogId,
    actor: Actor,
    seq: u64,
    hash: Vec<u8>,
    now: DateTime<Utc>,
    idempotency: Option<Idempotency>,
    appended: Vec<ChangeEntry>,
    commits: Arc<tokio::sync::watch::Sender<u64>>,
}

/// `t` truncated to the microsecond (what the databases keep).
fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    from_micros(micros(t))
}

impl Database {
    /// Makes sure a log exists (an empty head), e.g. for each hosted jurisdiction at start.
    pub async fn ensure_log(&self, log: &LogId) -> ApiResult<()> {
        let b = self.backend();
        self.conn()
            .execute_raw(stmt(
                b,
                "INSERT INTO log_heads (jurisdiction, service, seq, hash) VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING",
                [log.jurisdiction.to_string().into(), log.service.into(), GENESIS_HASH.to_vec().into()],
            ))
            .await?;
        Ok(())
    }

    /// Starts a mutation of `log` by `caller`: takes the log's lock, then looks up the
    /// idempotency key. Two copies of one request in flight serialise on the lock; the second
    /// finds the first's answer.
    pub async fn begin_mutation<R: Message + Default>(
        &self,
        log: LogId,
        caller: &Caller,
        idempotency: Option<Idempotency>,
    ) -> ApiResult<Begin<R>> {
        let WriteTxn { txn, guard } = self.begin_write().await?;
        let b = self.backend();
        let lock_sql = match b {
            DbBackend::Postgres => {
                "SELECT seq, hash FROM log_heads WHERE jurisdiction = $1 AND service = $2 FOR UPDATE"
            }
            _ => "SELECT seq, hash FROM log_heads WHERE jurisdiction = $1 AND service = $2",
        };
        let key: [Value; 2] = [log.jurisdiction.to_string().into(), log.service.into()];
        let mut row = txn.query_one_raw(stmt(b, lock_sql, key.clone())).await?;
        if row.is_none() {
            txn.execute_raw(stmt(
                b,
                "INSERT INTO log_heads (jurisdiction, service, seq, hash) VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING",
                [key[0].clone(), key[1].clone(), GENESIS_HASH.to_vec().into()],
            ))
            .await?;
            row = txn.query_one_raw(stmt(b, lock_sql, key)).await?;
        }
        let row = row.ok_or_else(|| ApiError::internal(anyhow::anyhow!("log head of {log} missing")))?;
        let seq: i64 = row.try_get_by_index(0)?;
        let hash: Vec<u8> = row.try_get_by_index(1)?;

        if let Some(k) = &idempotency {
            let found = txn
                .query_one_raw(stmt(
                    b,
                    "SELECT body_hash, response FROM idempotency_keys WHERE scope = $1 AND method = $2 AND request_id = $3",
                    [k.scope.clone().into(), k.method.into(), k.request_id.clone().into()],
                ))
                .await?;
            if let Some(found) = found {
                let body: Vec<u8> = found.try_get_by_index(0)?;
                let response: Vec<u8> = found.try_get_by_index(1)?;
                txn.rollback().await?;
                if body.as_slice() != k.body_hash.as_slice() {
                    return Err(ApiError::field_with(
                        Reason::RequestIdReused,
                        "request_id",
                        format!("request_id '{}' was used before with a different request", k.request_id),
                    ));
                }
                let r = R::decode(response.as_slice()).map_err(ApiError::internal)?;
                return Ok(Begin::Replay(r));
            }
        }

        Ok(Begin::Fresh(Mutation {
            txn,
            _write_guard: guard,
            actor: Actor {
                subject: caller.subject.clone(),
                role: caller.role.as_str().into(),
                jurisdiction: caller.jurisdiction.to_string(),
            },
            log,
            seq: seq as u64,
            hash,
            now: to_micros(self.now()),
            idempotency,
            appended: Vec::new(),
            commits: self.commits(),
        }))
    }

    /// Starts an idempotent mutation of `log` for a caller's request to `method`: the request id
    /// is checked and the request (`body`, its `request_id` cleared) hashed, then
    /// [`Database::begin_mutation`]. Authorisation is the caller's to check first.
    pub async fn begin_request<R: Message + Default>(
        &self,
        log: LogId,
        caller: &Caller,
        method: &'static str,
        request_id: &str,
        body: &impl Message,
    ) -> ApiResult<Begin<R>> {
        let idempotency = Idempotency::of_request(caller, method, request_id, body)?;
        self.begin_mutation(log, caller, idempotency).await
    }

    /// Sends the sequence count of every commit made through this handle (for followers).
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits().subscribe()
    }
}

impl Mutation {
    /// The transaction, for the service's own reads and writes.
    pub fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// The server time of this mutation (one instant for all its entries), to the microsecond.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The log written.
    pub fn log(&self) -> &LogId {
        &self.log
    }

    /// Sequence of the last entry appended (or of the log head, if none yet).
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// Appends an entry recording `state` as the new state of `resource`.
    pub async fn append<M: prost::Name>(
        &mut self,
        resource: &str,
        operation: &str,
        state: &M,
        reason: &str,
    ) -> ApiResult<u64> {
        let any = prost_types::Any::from_msg(state).map_err(ApiError::internal)?;
        let mut e = ChangeEntry {
            jurisdiction: self.log.jurisdiction.to_string(),
            service: self.log.service.into(),
            sequence: self.seq + 1,
            resource: resource.into(),
            operation: operation.into(),
            state: Some(any),
            actor: Some(self.actor.clone()),
            server_time: Some(prost_types::Timestamp {
                seconds: self.now.timestamp(),
                nanos: (self.now.timestamp_subsec_micros() * 1000) as i32,
            }),
            schema_version: SCHEMA_VERSION,
            prev_hash: self.hash.clone(),
            hash: Vec::new(),
            reason: reason.into(),
        };
        e.hash = entry_hash(&e).to_vec();
        insert_entry(&self.txn, &e).await?;
        self.seq = e.sequence;
        self.hash = e.hash.clone();
        self.appended.push(e);
        Ok(self.seq)
    }

    /// Stores the idempotency key with `response`, moves the log head and commits. Returns the
    /// entries appended.
    pub async fn commit<R: Message>(self, response: &R) -> ApiResult<Vec<ChangeEntry>> {
        let b = self.txn.get_database_backend();
        if let Some(k) = &self.idempotency {
            let r = self
                .txn
                .execute_raw(stmt(
                    b,
                    "INSERT INTO idempotency_keys (scope, method, request_id, body_hash, response, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    [
                        k.scope.clone().into(),
                        k.method.into(),
                        k.request_id.clone().into(),
                        k.body_hash.to_vec().into(),
                        response.encode_to_vec().into(),
                        micros(self.now).into(),
                    ],
                ))
                .await;
            if let Err(e) = r {
                if is_unique_violation(&e) {
                    return Err(ApiError::new(
                        Reason::ConcurrentRequest,
                        format!("request_id '{}' is being processed by another call; retry", k.request_id),
                    ));
                }
                return Err(e.into());
            }
        }
        if let Some(first) = self.appended.first() {
            let hashes: Vec<&[u8]> = self.appended.iter().map(|e| e.hash.as_slice()).collect();
            super::merkle::extend(&self.txn, &self.log, first.sequence, &hashes).await?;
            set_head(&self.txn, &self.log, self.seq, &self.hash).await?;
        }
        self.txn.commit().await?;
        if !self.appended.is_empty() {
            self.commits.send_modify(|n| *n += 1);
        }
        Ok(self.appended)
    }
}

/// Writes one entry into the log's table as it is (its sequence, chain and hash were made by
/// [`Mutation::append`], or verified by whoever hands it back: `einfo recover`). The log head is
/// not moved, nor the log's tree grown: [`set_head`] and [`super::merkle::extend`] do that once
/// per transaction.
pub async fn insert_entry<C: ConnectionTrait>(c: &C, e: &ChangeEntry) -> ApiResult<()> {
    let state = e.state.as_ref().map(|a| (a.type_url.clone(), a.value.clone())).unwrap_or_default();
    let actor = e.actor.clone().unwrap_or_default();
    let t = e.server_time.unwrap_or_default();
    let server_micros = t.seconds * 1_000_000 + i64::from(t.nanos / 1000);
    c.execute_raw(stmt(
        c.get_database_backend(),
        "INSERT INTO change_log (jurisdiction, service, seq, resource, operation, state_type, state, actor_subject, actor_role, actor_jurisdiction, server_time, schema_version, prev_hash, hash, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        [
            e.jurisdiction.clone().into(),
            e.service.clone().into(),
            (e.sequence as i64).into(),
            e.resource.clone().into(),
            e.operation.clone().into(),
            state.0.into(),
            state.1.into(),
            actor.subject.into(),
            actor.role.into(),
            actor.jurisdiction.into(),
            server_micros.into(),
            (e.schema_version as i32).into(),
            e.prev_hash.clone().into(),
            e.hash.clone().into(),
            e.reason.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Moves a log's head to (`seq`, `hash`).
pub async fn set_head<C: ConnectionTrait>(c: &C, log: &LogId, seq: u64, hash: &[u8]) -> ApiResult<()> {
    c.execute_raw(stmt(
        c.get_database_backend(),
        "UPDATE log_heads SET seq = $1, hash = $2 WHERE jurisdiction = $3 AND service = $4",
        [(seq as i64).into(), hash.to_vec().into(), log.jurisdiction.to_string().into(), log.service.into()],
    ))
    .await?;
    Ok(())
}

/// The last sequence and hash of a log (0 and the genesis hash when empty or unknown).
pub async fn head<C: ConnectionTrait>(conn: &C, log: &LogId) -> ApiResult<(u64, Vec<u8>)> {
    let row = conn
        .query_one_raw(stmt(
            conn.get_database_backend(),
            "SELECT seq, hash FROM log_heads WHERE jurisdiction = $1 AND service = $2",
            [log.jurisdiction.to_string().into(), log.service.into()],
        ))
        .await?;
    match row {
        Some(r) => Ok((r.try_get_by_index::<i64>(0)? as u64, r.try_get_by_index(1)?)),
        None => Ok((0, GENESIS_HASH.to_vec())),
    }
}

/// Up to `limit` entries of a log after `after`, in order.
pub async fn read_entries<C: ConnectionTrait>(
    conn: &C,
    log: &LogId,
    after: u64,
    limit: u64,
) -> ApiResult<Vec<ChangeEntry>> {
    let rows = conn
        .query_all_raw(stmt(
            conn.get_database_backend(),
            "SELECT seq, resource, operation, state_type, state, actor_subject, actor_role, actor_jurisdiction, server_time, schema_version, prev_hash, hash, reason
             FROM change_log WHERE jurisdiction = $1 AND service = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            [log.jurisdiction.to_string().into(), log.service.into(), (after as i64).into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter().map(|r| entry_from_row(log, r)).collect()
}

fn entry_from_row(log: &LogId, r: &QueryResult) -> ApiResult<ChangeEntry> {
    let t = from_micros(r.try_get_by_index(8)?);
    Ok(ChangeEntry {
        jurisdiction: log.jurisdiction.to_string(),
        service: log.service.into(),
        sequence: r.try_get_by_index::<i64>(0)? as u64,
        resource: r.try_get_by_index(1)?,
        operation: r.try_get_by_index(2)?,
        state: Some(prost_types::Any { type_url: r.try_get_by_index(3)?, value: r.try_get_by_index(4)? }),
        actor: Some(Actor {
            subject: r.try_get_by_index(5)?,
            role: r.try_get_by_index(6)?,
            jurisdiction: r.try_get_by_index(7)?,
        }),
        server_time: Some(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: (t.timestamp_subsec_micros() * 1000) as i32,
        }),
        schema_version: r.try_get_by_index::<i32>(9)? as u32,
        prev_hash: r.try_get_by_index(10)?,
        hash: r.try_get_by_index(11)?,
        reason: r.try_get_by_index(12)?,
    })
}

/// The last sequence of a log committed by `as_of` (0 when none).
pub async fn sequence_at<C: ConnectionTrait>(c: &C, log: &LogId, as_of: DateTime<Utc>) -> ApiResult<u64> {
    let row = c
        .query_one_raw(stmt(
            c.get_database_backend(),
            "SELECT COALESCE(MAX(seq), 0) FROM change_log WHERE jurisdiction = $1 AND service = $2 AND server_time <= $3",
            [log.jurisdiction.to_string().into(), log.service.into(), micros(as_of).into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) as u64)
}

/// The state of every resource of type `M` in a log as it stood at sequence `seq`: each one's
/// last entry up to `seq`, decoded, by resource name.
///
/// # Errors
/// A database error, or a state that does not decode as `M`.
pub async fn states_at<C: ConnectionTrait, M: prost::Name + Default>(
    c: &C,
    log: &LogId,
    seq: u64,
) -> ApiResult<std::collections::BTreeMap<String, M>> {
    let rows = c
        .query_all_raw(stmt(
            c.get_database_backend(),
            "SELECT l.resource, l.state FROM change_log l
             JOIN (SELECT resource, MAX(seq) AS seq FROM change_log
                   WHERE jurisdiction = $1 AND service = $2 AND state_type = $3 AND seq <= $4 GROUP BY resource) last
               ON l.resource = last.resource AND l.seq = last.seq
             WHERE l.jurisdiction = $1 AND l.service = $2",
            [log.jurisdiction.to_string().into(), log.service.into(), M::type_url().into(), (seq as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let resource: String = r.try_get_by_index(0)?;
            let state: Vec<u8> = r.try_get_by_index(1)?;
            let m = M::decode(state.as_slice())
                .map_err(|e| ApiError::internal(anyhow::anyhow!("{log}: the state of {resource}: {e}")))?;
            Ok((resource, m))
        })
        .collect()
}

/// Every log in a database, as (jurisdiction, service) strings.
pub async fn list_logs<C: ConnectionTrait>(conn: &C) -> ApiResult<Vec<(String, String)>> {
    let rows = conn
        .query_all_raw(stmt(
            conn.get_database_backend(),
            "SELECT jurisdiction, service FROM log_heads ORDER BY jurisdiction, service",
            [],
        ))
        .await?;
    rows.iter().map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?))).collect()
}

/// Verifies a whole log: density, chain and hashes of every entry, that the head row names the
/// last entry, and that the log's Merkle tree is the tree of its entries. Returns the number of
/// entries, or the first bad one.
pub async fn verify_log<C: ConnectionTrait>(conn: &C, log: &LogId) -> ApiResult<Result<u64, ChainBreak>> {
    let mut v = ChainVerifier::new(log.to_string(), 0, &GENESIS_HASH);
    let mut tree = super::merkle::Frontier::default();
    loop {
        let page = read_entries(conn, log, v.last_sequence(), 1000).await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            if let Err(b) = v.check(e) {
                return Ok(Err(b));
            }
            tree.push(&e.hash);
        }
    }
    let (seq, hash) = head(conn, log).await?;
    if seq != v.last_sequence() || hash.as_slice() != v.last_hash() {
        return Ok(Err(ChainBreak {
            log: log.to_string(),
            sequence: v.last_sequence() + 1,
            problem: format!("log head says sequence {seq} but the entries end at {}", v.last_sequence()),
        }));
    }
    let stored = super::merkle::root(conn, log, seq).await;
    if stored.as_ref().ok() != Some(&tree.root()) {
        let why = stored.err().map_or_else(|| "another root".to_owned(), |e| e.to_string());
        return Ok(Err(ChainBreak {
            log: log.to_string(),
            sequence: seq,
            problem: format!("the log's Merkle tree is not the tree of its entries ({why})"),
        }));
    }
    Ok(Ok(v.last_sequence()))
}
