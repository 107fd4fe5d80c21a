//! Helpers shared by the integration tests: replication connections to a testbed server and a
//! collector that reads whole transactions off a stream.

#![allow(dead_code)]

use std::time::Duration;
use turnout_connect::pg::{ConnectOptions, PgConnection, ReplicationStream, StreamMessage};
use turnout_decoders::pg::PgOutputDecoder;
use turnout_decoders::{ChangeEvent, Lsn, Position};
use turnout_testbed::PgServer;

/// How long any single wait on a server may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// A replication connection (`replication=database`) as the superuser.
pub async fn replication(server: &PgServer, db: &str) -> PgConnection {
    let opts = ConnectOptions::from_url(&server.url(db), "test").expect("url");
    PgConnection::connect(&opts, true).await.expect("replication connection")
}

/// Reads a stream through a decoder.
pub struct Collector {
    pub stream: ReplicationStream,
    pub decoder: PgOutputDecoder,
}

impl Collector {
    pub fn new(stream: ReplicationStream) -> Self {
        Collector { stream, decoder: PgOutputDecoder::new() }
    }

    /// The next decoded event, skipping keepalives and messages without an event; fails after [`WAIT`].
    pub async fn next_event(&mut self) -> ChangeEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.recv()).await.expect("no event within the wait limit").expect("stream error");
            if let StreamMessage::Data { data, .. } = msg {
                if let Some(e) = self.decoder.decode(&data).expect("decodes") {
                    return e;
                }
            }
        }
    }

    /// Events up to and including the next `Commit` or `StreamCommit`, skipping Relation events.
    pub async fn transaction(&mut self) -> Vec<ChangeEvent> {
        let mut out = Vec::new();
        loop {
            let e = self.next_event().await;
            let done = matches!(e, ChangeEvent::Commit { .. } | ChangeEvent::StreamCommit { .. });
            if !matches!(e, ChangeEvent::Relation(_)) {
                out.push(e);
            }
            if done {
                return out;
            }
        }
    }
}

/// The commit end position of a transaction's events.
pub fn commit_end(tx: &[ChangeEvent]) -> Lsn {
    match tx.last() {
        Some(ChangeEvent::Commit { position: Position::Pg(l), .. } | ChangeEvent::StreamCommit { position: Position::Pg(l), .. }) => *l,
        other => panic!("not a committed transaction: {other:?}"),
    }
}

/// `confirmed_flush_lsn` of a slot.
pub async fn confirmed_flush(server: &PgServer, db: &str, slot: &str) -> Lsn {
    let c = server.connect(db).await.expect("connect");
    let row = c.query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&slot]).await.expect("slot row");
    row.get::<_, String>(0).parse().expect("lsn")
}

/// Polls until the slot's confirmed position satisfies `pred` (the server applies standby status
/// updates asynchronously), failing after [`WAIT`].
pub async fn wait_for_confirmed(server: &PgServer, db: &str, slot: &str, pred: impl Fn(Lsn) -> bool) -> Lsn {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let l = confirmed_flush(server, db, slot).await;
        if pred(l) {
            return l;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot {slot} stayed at {l}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
