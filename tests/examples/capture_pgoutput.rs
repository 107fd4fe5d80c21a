//! Captures pgoutput byte streams from real PostgreSQL servers into `decoders/tests/fixtures/`, covering
//! every message type of protocols 1–4 that the server's version sends.
//!
//! Run: `cargo run -p turnout-testbed --example capture_pgoutput -- decoders/tests/fixtures [15 17]`
//!
//! Output per major: `pgNN.bin` — records of `u64 wal_start | u32 length | payload` (big-endian), one per
//! XLogData message — and `pgNN.txt`, one line per record (`index tag wal_start length`) for humans.

use anyhow::{bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use std::path::PathBuf;
use std::time::Duration;
use turnout_connect::pg::client::SlotOptions;
use turnout_connect::pg::{ConnectOptions, PgConnection, StartReplication, StreamMessage};
use turnout_testbed::{PgOptions, PgServer};

const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE items (
    id int PRIMARY KEY, body text, qty int2, big int8, price numeric, ratio float8, flag bool,
    tags text[], nums int4[], doc jsonb, j json, mood mood, created timestamptz, day date,
    span interval, raw bytea, u uuid, ch char(3)
);
CREATE TABLE full_t (a int, b text);
ALTER TABLE full_t REPLICA IDENTITY FULL;
CREATE TABLE toasty (id int PRIMARY KEY, small int, blob text);
ALTER TABLE toasty ALTER COLUMN blob SET STORAGE EXTERNAL;
CREATE TABLE parent (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id));
CREATE TABLE big (id int PRIMARY KEY, pad text);
CREATE PUBLICATION fixture_pub FOR ALL TABLES;
"#;

/// The workload: one statement batch per transaction, in order.
fn workload() -> Vec<String> {
    let w: Vec<String> = vec![
        r#"INSERT INTO items VALUES (1, E'tab\there\nnewline \\ backslash "q"', -32768, 9223372036854775807,
            'NaN', '-Infinity', true, ARRAY['a', NULL, 'NULL', 'with "quote"', 'x,y'], '{{1,2},{3,NULL}}',
            '{"k": [1, 2.5, null]}', '{"raw":  true}', 'happy', '2024-02-29 12:34:56.789+05:30', '2000-01-01',
            '1 year 2 mons 3 days 04:05:06.7', '\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ab'),
            (2, 'plain', 1, 2, '12345678901234567890.123456789', 1.5, false, '{}', NULL, 'null', NULL, 'sad',
            'infinity', '-infinity', '-1 days', '\x', '00000000-0000-0000-0000-000000000000', NULL)"#
            .into(),
        "UPDATE items SET qty = qty + 1 WHERE id = 2".into(),
        "UPDATE items SET id = 102 WHERE id = 2".into(),
        "DELETE FROM items WHERE id = 102".into(),
        "INSERT INTO full_t VALUES (1, 'one'), (1, 'one'), (2, NULL)".into(),
        "UPDATE full_t SET b = 'uno' WHERE ctid = (SELECT min(ctid) FROM full_t WHERE a = 1)".into(),
        "DELETE FROM full_t WHERE a = 2".into(),
        "INSERT INTO toasty SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 400) g".into(),
        "UPDATE toasty SET small = 1 WHERE id = 1".into(),
        "INSERT INTO parent (v) VALUES ('p1'), ('p2'); INSERT INTO child VALUES (1, 1)".into(),
        "TRUNCATE parent, child RESTART IDENTITY CASCADE".into(),
        "TRUNCATE full_t".into(),
        "BEGIN; SELECT pg_logical_emit_message(true, 'fixture', 'transactional'); INSERT INTO items (id) VALUES (3); COMMIT".into(),
        "SELECT pg_logical_emit_message(false, 'fixture', 'bare')".into(),
        // Origin: a replicated-looking transaction.
        "SELECT pg_replication_origin_create('fixture_origin')".into(),
        "BEGIN; SELECT pg_replication_origin_session_setup('fixture_origin'); \
         SELECT pg_replication_origin_xact_setup('0/ABCDEF', now()); INSERT INTO items (id) VALUES (4); COMMIT; \
         SELECT pg_replication_origin_session_reset()"
            .into(),
        // Larger than logical_decoding_work_mem (64kB): streamed on protocol 2+.
        "INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 3000) g".into(),
        // A streamed transaction that rolls back: Stream Abort.
        "BEGIN; INSERT INTO big SELECT g, repeat('y', 100) FROM generate_series(10001, 13000) g; ROLLBACK".into(),
        // A small rolled-back transaction never appears.
        "BEGIN; INSERT INTO items (id) VALUES (99); ROLLBACK".into(),
        // Two-phase commit.
        "BEGIN; INSERT INTO items (id) VALUES (5); PREPARE TRANSACTION 'fx_commit'".into(),
        "COMMIT PREPARED 'fx_commit'".into(),
        "BEGIN; INSERT INTO items (id) VALUES (6); PREPARE TRANSACTION 'fx_rollback'".into(),
        "ROLLBACK PREPARED 'fx_rollback'".into(),
        // A large prepared transaction: Stream Prepare.
        "BEGIN; INSERT INTO big SELECT g, repeat('z', 100) FROM generate_series(20001, 23000) g; PREPARE TRANSACTION 'fx_stream'".into(),
        "COMMIT PREPARED 'fx_stream'".into(),
    ];
    w
}

async fn capture(major: u32, out_dir: &std::path::Path) -> Result<()> {
    let server = PgServer::start_with(PgOptions::new(major).conf("logical_decoding_work_mem = '64kB'"))?;
    let db = server.create_database("fixture").await?;
    server.execute(&db, SCHEMA).await?;
    let opts = ConnectOptions::from_url(&server.url(&db), "fixture")?;
    let mut conn = PgConnection::connect(&opts, true).await?;
    let two_phase = major >= 15;
    conn.create_logical_slot("fixture_slot", &SlotOptions { temporary: false, export_snapshot: false, two_phase }).await?;
    let client = server.connect(&db).await?;
    for sql in workload() {
        client.batch_execute(&sql).await.with_context(|| format!("running {sql}"))?;
    }
    // The capture ends at the commit of one last transaction written after this position.
    let row = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await?;
    let end_marker: turnout_decoders::Lsn = row.get::<_, String>(0).parse()?;
    client.batch_execute("INSERT INTO items (id) VALUES (1000)").await?;
    let mut start = StartReplication::new("fixture_slot", vec!["fixture_pub".into()]);
    start.two_phase = two_phase;
    let mut stream = conn.start_replication(&start).await?;
    let proto = stream.proto_version();
    let mut records: Vec<(u64, Bytes)> = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), stream.recv()).await.context("stream stalled")??;
        if let StreamMessage::Data { wal_start, data, .. } = msg {
            let is_last_commit = data.first() == Some(&b'C') && wal_start > end_marker;
            records.push((wal_start.0, data));
            if is_last_commit {
                break;
            }
        }
    }
    let mut bin = BytesMut::new();
    let mut txt = format!("# pgoutput capture from PostgreSQL {major} (protocol {proto}); see capture_pgoutput.rs\n");
    for (i, (lsn, data)) in records.iter().enumerate() {
        bin.put_u64(*lsn);
        bin.put_u32(u32::try_from(data.len())?);
        bin.put_slice(data);
        let tag = data.first().map(|&t| char::from(t)).unwrap_or('?');
        txt.push_str(&format!("{i} {tag} {:X}/{:X} {}\n", lsn >> 32, lsn & 0xFFFF_FFFF, data.len()));
    }
    std::fs::write(out_dir.join(format!("pg{major}.bin")), &bin)?;
    std::fs::write(out_dir.join(format!("pg{major}.txt")), txt)?;
    println!("PostgreSQL {major}: {} messages, protocol {proto}", records.len());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else { bail!("usage: capture_pgoutput OUT_DIR [MAJOR…]") };
    let out = PathBuf::from(out);
    let majors: Vec<u32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let majors = if majors.is_empty() { vec![15, 17] } else { majors };
    for major in majors {
        capture(major, &out).await?;
    }
    Ok(())
}
