//! Early apply on a PostgreSQL green (see [`crate::early`]): one session per transaction applied early,
//! at most `sessions` at once, each a [`PgSink`] sharing the stream's replication origin and setting
//! it up only in its COMMIT's message.
//!
//! A session that would have to roll back a subtransaction whose changes it applied gives the
//! transaction up instead of keeping a savepoint per subtransaction: a savepoint costs a round trip
//! for every subtransaction (PL/pgSQL exception blocks open one per row), a rollback to one is rare.
//! Blocking is found through `pg_locks`: a session is given up when a backend waits for a lock it
//! holds, directly or through a chain.

use super::PgSink;
use crate::early::{guarded, EarlyApply};
use crate::{Committed, Durable, RowChange, Sink, SinkError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use turnout_decoders::event::TxId;
use turnout_decoders::schema::TableSchema;
use turnout_decoders::{Position, Timestamp};

/// One open early transaction.
struct Open {
    sink: PgSink,
    pid: i32,
    /// Subtransactions with changes applied (a rollback of one gives the transaction up).
    subxids: HashSet<TxId>,
    rows: u64,
}

/// Early apply sessions on a PostgreSQL green.
pub struct PgEarly {
    url: String,
    origin: String,
    sessions: usize,
    open: HashMap<TxId, Open>,
    /// Sessions free for the next transaction.
    idle: Vec<(PgSink, i32)>,
    /// Transactions given up: nothing more is applied for them.
    given_up: HashSet<TxId>,
    /// Given up since [`EarlyApply::take_given_up`] was last called.
    newly_given_up: Vec<TxId>,
}

impl std::fmt::Debug for PgEarly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEarly").field("origin", &self.origin).field("sessions", &self.sessions).field("open", &self.open.len()).finish_non_exhaustive()
    }
}

impl PgEarly {
    /// Up to `sessions` transactions applied early at once on green at `url`, recording progress in
    /// `origin`; 0 turns early apply off. Sessions are opened when first needed.
    pub fn new(url: &str, origin: &str, sessions: usize) -> PgEarly {
        PgEarly {
            url: url.to_owned(),
            origin: origin.to_owned(),
            sessions,
            open: HashMap::new(),
            idle: Vec::new(),
            given_up: HashSet::new(),
            newly_given_up: Vec::new(),
        }
    }

    async fn session(&mut self) -> Result<(PgSink, i32), SinkError> {
        if let Some(s) = self.idle.pop() {
            return Ok(s);
        }
        let sink = PgSink::connect_shared(&self.url, &self.origin).await?;
        let pid: i32 = sink.client().query_one("SELECT pg_backend_pid()", &[]).await.map_err(SinkError::target("reading the backend pid"))?.get(0);
        Ok((sink, pid))
    }

    /// Rolls back `xid`'s session and keeps it for the next transaction (drops it if that fails).
    async fn close(&mut self, xid: TxId) {
        if let Some(mut o) = self.open.remove(&xid) {
            if o.sink.rollback().await.is_ok() {
                self.idle.push((o.sink, o.pid));
            }
        }
    }

    async fn give_up(&mut self, xid: TxId, why: &str) {
        let rows = self.open.get(&xid).map_or(0, |o| o.rows);
        tracing::info!(xid, rows, "applying a transaction early stopped ({why}); it is applied whole at its commit");
        self.close(xid).await;
        self.mark_given_up(xid);
    }

    fn mark_given_up(&mut self, xid: TxId) {
        if self.given_up.insert(xid) {
            self.newly_given_up.push(xid);
        }
    }
}

impl EarlyApply for PgEarly {
    fn enabled(&self) -> bool {
        self.sessions > 0
    }

    async fn apply(&mut self, xid: TxId, relations: &[Arc<TableSchema>], changes: &[(TxId, RowChange)]) -> Result<bool, SinkError> {
        if self.given_up.contains(&xid) {
            return Ok(false);
        }
        if !self.open.contains_key(&xid) {
            if self.open.len() >= self.sessions {
                self.mark_given_up(xid);
                tracing::debug!(xid, "no early apply session free");
                return Ok(false);
            }
            let (mut sink, pid) = match self.session().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(xid, "cannot open an early apply session on green: {e}");
                    self.mark_given_up(xid);
                    return Ok(false);
                }
            };
            sink.begin().await?;
            tracing::debug!(xid, pid, "applying a transaction early");
            self.open.insert(xid, Open { sink, pid, subxids: HashSet::new(), rows: 0 });
        }
        let Some(o) = self.open.get_mut(&xid) else { return Ok(false) };
        let mut unsafe_schema = None;
        for schema in relations {
            match o.sink.schema_changes(schema).await {
                Ok(ddl) if ddl.is_empty() => {}
                Ok(_) => unsafe_schema = Some(format!("{} changes its schema inside the transaction", schema.name)),
                Err(e) => unsafe_schema = Some(e.to_string()),
            }
            if unsafe_schema.is_some() {
                break;
            }
        }
        if let Some(why) = unsafe_schema {
            self.give_up(xid, &why).await;
            return Ok(false);
        }
        let Some(mut o) = self.open.remove(&xid) else { return Ok(false) };
        o.subxids.extend(changes.iter().map(|(sub, _)| *sub).filter(|sub| *sub != xid));
        let refs: Vec<&RowChange> = changes.iter().map(|(_, c)| c).collect();
        // Another early transaction's session may hold a lock these changes wait for (green differs
        // from blue, e.g. a unique key blue does not have): it is given up, never waited for.
        let result = guarded(self, o.sink.apply_part(&refs)).await;
        if let Err(e) = result {
            // The sink rolled its transaction back; applied whole at commit, the error (if it is
            // one on the source's terms) comes back there.
            self.mark_given_up(xid);
            tracing::info!(xid, "applying a transaction early failed ({e}); it is applied whole at its commit");
            return Ok(false);
        }
        o.rows += refs.len() as u64;
        self.open.insert(xid, o);
        Ok(true)
    }

    async fn abort(&mut self, xid: TxId, subxid: TxId) {
        if xid == subxid {
            self.close(xid).await;
            self.given_up.remove(&xid);
        } else if self.open.get(&xid).is_some_and(|o| o.subxids.contains(&subxid)) {
            self.give_up(xid, "a subtransaction with applied changes rolled back").await;
        }
    }

    fn holds(&self, xid: TxId) -> bool {
        self.open.contains_key(&xid)
    }

    async fn forget(&mut self, xid: TxId) {
        self.close(xid).await;
        self.given_up.remove(&xid);
    }

    async fn commit(&mut self, xid: TxId, commit_end: &Position, commit_ts: Timestamp) -> Result<(Committed, Durable), SinkError> {
        self.given_up.remove(&xid);
        let mut o = self.open.remove(&xid).ok_or_else(|| SinkError::Progress(format!("internal: transaction {xid} is not applied early")))?;
        let committed = o.sink.commit(commit_end, commit_ts).await?;
        let durable = o.sink.flush().await?;
        tracing::info!(xid, rows = o.rows, position = %commit_end, "committed a transaction applied early");
        self.idle.push((o.sink, o.pid));
        Ok((committed, durable))
    }

    async fn release_blockers(&mut self) {
        let Some(asker) = self.open.values().next() else { return };
        let pids: HashMap<i32, TxId> = self.open.iter().map(|(x, o)| (o.pid, *x)).collect();
        let blocking = asker
            .sink
            .client()
            .query("SELECT DISTINCT b FROM pg_locks l, unnest(pg_blocking_pids(l.pid)) b WHERE NOT l.granted", &[])
            .await
            .map(|rows| rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<i32>>());
        let given_up: Vec<TxId> = match blocking {
            Ok(b) => b.iter().filter_map(|pid| pids.get(pid).copied()).collect(),
            Err(e) => {
                tracing::warn!("cannot read green's lock waits: {e}; giving up every early transaction");
                pids.values().copied().collect()
            }
        };
        for xid in given_up {
            self.give_up(xid, "its session holds a lock another session on green waits for").await;
        }
    }

    fn open(&self) -> usize {
        self.open.len()
    }

    fn take_given_up(&mut self) -> Vec<TxId> {
        std::mem::take(&mut self.newly_given_up)
    }
}
