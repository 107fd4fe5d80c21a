// The MySQL-family hand-over of downstream binlog readers (`[[handover]] account = …`), checked with a
// reader nobody here wrote: the server's own `mysqlbinlog` (`mariadb-binlog`) reading blue with
// `--read-from-remote-server --stop-never`, repointed to green from the hand-over record. Included
// after `suites/cutover_family.rs`, whose setup, writer and helpers it uses.

/// The reader's account: replication only, on both sides.
const READER: &str = "reader";
const READER_PASSWORD: &str = "reader-secret";

/// `mysqlbinlog` reading `server`'s binlog from `file` at `position` on, rows decoded, into `out`.
fn binlog_reader(server: &MySqlServer, file: &str, position: u64, out: &std::path::Path) -> std::process::Child {
    // Its own server id, not blue's (MariaDB's tool names the option differently).
    let (program, server_id) = match server.flavor().is_mariadb() {
        true => ("/usr/bin/mariadb-binlog", "--stop-never-slave-server-id=4242"),
        false => ("/usr/bin/mysqlbinlog", "--connection-server-id=4242"),
    };
    server
        .tool(program)
        .args(["--read-from-remote-server", "--stop-never", server_id, "--verbose", "--base64-output=DECODE-ROWS"])
        .arg("--host=127.0.0.1")
        .arg(format!("--port={}", server.port()))
        .arg(format!("--user={READER}"))
        .arg(format!("--password={READER_PASSWORD}"))
        .arg(format!("--start-position={position}"))
        .arg(file)
        .stdout(std::fs::File::create(out).expect("reader output"))
        .stderr(std::fs::File::create(out.with_extension("err")).expect("reader errors"))
        .spawn()
        .expect("start the binlog reader")
}

/// The ids of `db`.`t` inserted in `out`, each with the binlog file and offset of its event.
fn read_inserts(out: &std::path::Path, first_file: &str, db: &str) -> Vec<(String, u64, i64)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let (mut file, mut at, mut inserting) = (first_file.to_owned(), 0u64, false);
    let mut found = Vec::new();
    let insert = format!("### INSERT INTO `{db}`.`t`");
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("# at ") {
            at = n.trim().parse().unwrap_or(at);
        } else if let Some(rest) = line.split("Rotate to ").nth(1) {
            if let Some(next) = rest.split_whitespace().next() {
                file = next.to_owned();
            }
        } else if line.starts_with(&insert) {
            inserting = true;
        } else if let Some(v) = line.strip_prefix("###   @1=").filter(|_| inserting) {
            inserting = false;
            if let Ok(id) = v.trim().parse() {
                found.push((file.clone(), at, id));
            }
        }
    }
    found
}

/// `file:offset` at the front of a position as turnout shows it (`binlog.000002:1234 (gtids)`).
fn file_offset(position: &str) -> (String, u64) {
    let place = position.split(' ').next().unwrap_or_default();
    let (file, offset) = place.rsplit_once(':').unwrap_or_else(|| panic!("no file:offset in {position}"));
    (file.to_owned(), offset.parse().unwrap_or_else(|_| panic!("offset of {position}")))
}

fn first_binlog(server: &MySqlServer) -> String {
    let out = server.execute(None, "SHOW BINARY LOGS").expect("binary logs");
    out.lines().next().and_then(|l| l.split_whitespace().next()).expect("a binlog").to_owned()
}

/// The hand-over record of the switch of `direction` once the reader was seen to have read the fenced
/// side up to the fence (it may stop now): its fence, where it resumes, and the printed commands
/// (`on <from>:`, `then on <to>:`).
async fn reached(t: &mut Turnout, direction: &str) -> ((String, u64), (String, u64), String, String) {
    let view = common::wait_for(t, "the reader seen at the fence", |t| {
        let v: serde_json::Value = serde_json::from_str(&t.get("/handover")?).ok()?;
        (v["handed_over"]["direction"] == direction && v["handed_over"]["consumers"][0]["reached"] == true).then_some(v)
    })
    .await;
    let handed = &view["handed_over"]["consumers"][0];
    assert!(handed["gap"].is_null() && handed["consumer"] == READER, "{view}");
    let lines: Vec<&str> = view["repoint"].as_array().into_iter().flatten().filter_map(|l| l.as_str()).collect();
    let command = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(prefix).and_then(|rest| rest.split_once(": ")).map(|(_, c)| c.to_owned()))
            .unwrap_or_else(|| panic!("no '{prefix}' line: {view}"))
    };
    (file_offset(handed["fence"].as_str().expect("fence")), file_offset(handed["resume"].as_str().expect("resume")), command("on "), command("then on "))
}

/// Once the stream that follows waited for the reader to stop: settled, with no gap and no note.
async fn settled(t: &mut Turnout, direction: &str) {
    let view = common::wait_for(t, "the hand-over settled", |t| {
        let v: serde_json::Value = serde_json::from_str(&t.get("/handover")?).ok()?;
        (v["handed_over"]["settled"] == true && v["handed_over"]["direction"] == direction).then_some(v)
    })
    .await;
    let handed = &view["handed_over"]["consumers"][0];
    assert!(handed["gap"].is_null() && handed["note"].is_null(), "{view}");
}

/// A repoint command as `GET /handover` printed it, run on `server` with the reader's password and
/// its own output options added.
fn printed(server: &MySqlServer, line: &str, out: &std::path::Path) -> std::process::Child {
    let mut words = line.split_whitespace();
    let program = words.next().expect("a program");
    assert!(program == "mysqlbinlog" || program == "mariadb-binlog", "{line}");
    let server_id = if server.flavor().is_mariadb() { "--stop-never-slave-server-id=4242" } else { "--connection-server-id=4242" };
    server
        .tool(&format!("/usr/bin/{program}"))
        .args(words)
        .args([server_id, "--verbose", "--base64-output=DECODE-ROWS"])
        .arg(format!("--password={READER_PASSWORD}"))
        .stdout(std::fs::File::create(out).expect("reader output"))
        .stderr(std::fs::File::create(out.with_extension("err")).expect("reader errors"))
        .spawn()
        .expect("run the printed command")
}

/// The inserted ids of `t` a reader wrote to `out` (from `first`), those before `upto` only when given.
fn inserted(out: &std::path::Path, first: &str, db: &str, upto: Option<&(String, u64)>) -> Vec<i64> {
    read_inserts(out, first, db).into_iter().filter(|(file, at, _)| upto.is_none_or(|(f, o)| (file.as_str(), *at) < (f.as_str(), *o))).map(|i| i.2).collect()
}

fn stop_reader(mut reader: std::process::Child) {
    let _ = reader.kill();
    let _ = reader.wait();
}

/// Stops the live reader of the fenced side (started at `start`), runs the printed `on <fenced side>:`
/// command to its end and checks it printed, from the fence's file and `start` on, exactly the rows
/// the live reader had there; returns all the live reader read (nothing past the fence reached it).
async fn stop_at_fence(reader: std::process::Child, live: &std::path::Path, start: &(String, u64), fenced: &MySqlServer, line: &str, fence: &(String, u64), db: &str) -> Vec<i64> {
    stop_reader(reader);
    let out = live.with_extension("upto");
    let mut run = printed(fenced, line, &out);
    let deadline = Instant::now() + WAIT;
    while run.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the printed command did not stop at the fence: {line}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live_rows: Vec<(String, u64, i64)> = read_inserts(live, &start.0, db);
    let in_fence_file: Vec<i64> = live_rows.iter().filter(|(f, ..)| *f == fence.0).map(|r| r.2).collect();
    let printed_rows: Vec<i64> = read_inserts(&out, &fence.0, db).into_iter().filter(|(f, at, _)| (f, *at) >= (&start.0, start.1)).map(|r| r.2).collect();
    assert_eq!(printed_rows, in_fence_file, "the printed command and the live reader differ up to the fence ({line})");
    live_rows.into_iter().map(|r| r.2).collect()
}

#[tokio::test]
async fn a_binlog_reader_reads_every_committed_row_once_across_a_cutover_and_a_rollback() {
    let mut s = setup("read-only", "haproxy", "[[handover]]\naccount = \"reader\"\n").await;
    let account = format!("CREATE USER {READER}@'%' IDENTIFIED BY '{READER_PASSWORD}'; GRANT REPLICATION SLAVE ON *.* TO {READER}@'%';");
    s.blue.execute(None, &account).expect("reader on blue");
    s.green.execute(None, &format!("SET sql_log_bin = 0; {account}")).expect("reader on green");
    let dir = tempfile::tempdir().expect("tmp");
    let outs: Vec<std::path::PathBuf> = (0..3).map(|i| dir.path().join(format!("reader-{i}.txt"))).collect();
    let first = first_binlog(&s.blue);
    let reader = binlog_reader(&s.blue, &first, 4, &outs[0]);
    // `check` lists the reader as carried.
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, out) = turnout(&s.t, "check", &[]).await;
        if out.contains("carried over to green at the cutover") {
            break;
        }
        assert!(Instant::now() < deadline, "check never listed the reader as carried:\n{out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let writer = start_writer(s.through());
    writer.wait_for(200).await;
    let lag = ["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"];
    let (code, out) = turnout(&s.t, "cutover", &lag).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("consumers to hand over to green, ready: reader") && out.contains("consumers handed over"), "{out}");
    // Repointed as the record says: stopped once it read blue up to the fence, green from the resume.
    let (fence, resume, on_blue, then_on_green) = reached(&mut s.t, "forward").await;
    let mut seen = stop_at_fence(reader, &outs[0], &(first.clone(), 4), &s.blue, &on_blue, &fence, &s.db).await;
    let reader = printed(&s.green, &then_on_green, &outs[1]);
    settled(&mut s.t, "forward").await;
    writer.wait_for(writer.count() + 150).await;

    // The rollback hands it back: green up to the rollback's fence, blue from where it resumes.
    let (code, out) = turnout(&s.t, "rollback", &lag).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("consumers to hand over to blue, ready: reader"), "{out}");
    let (back_fence, back_resume, on_green, then_on_blue) = reached(&mut s.t, "reverse").await;
    seen.extend(stop_at_fence(reader, &outs[1], &resume, &s.green, &on_green, &back_fence, &s.db).await);
    let reader = printed(&s.blue, &then_on_blue, &outs[2]);
    settled(&mut s.t, "reverse").await;
    writer.wait_for(writer.count() + 100).await;
    let (acked, errors) = writer.finish().await;
    let committed = assert_exactly_once(&s.blue, &s.db, "blue", &acked, &errors);
    let deadline = Instant::now() + WAIT;
    while seen.len() + inserted(&outs[2], &back_resume.0, &s.db, None).len() < committed.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_reader(reader);
    seen.extend(inserted(&outs[2], &back_resume.0, &s.db, None));
    eprintln!("committed {} rows; the reader saw {} (cutover fence {fence:?}, resume {resume:?}; rollback fence {back_fence:?}, resume {back_resume:?})", committed.len(), seen.len());
    let mut counts = std::collections::BTreeMap::<i64, usize>::new();
    for id in &seen {
        *counts.entry(*id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
    let missing: Vec<_> = committed.iter().filter(|id| !counts.contains_key(id)).collect();
    let extra: Vec<_> = counts.keys().filter(|id| committed.binary_search(id).is_err()).collect();
    assert!(twice.is_empty() && missing.is_empty() && extra.is_empty(), "the reader saw twice {twice:?}, missed {missing:?}, saw uncommitted {extra:?}");
    assert_eq!(s.t.sigterm(), Some(0));
}

#[tokio::test]
async fn a_binlog_reader_that_is_not_reading_refuses_the_cutover_before_the_fence() {
    let s = setup("read-only", "haproxy", "[[handover]]\naccount = \"reader\"\nwait = \"1s\"\n").await;
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the consumer reader has not been sent blue's whole binlog within 1 s") && out.contains("on_lag = \"record\""), "{out}");
    // Refused before the fence: blue serves the application as before.
    s.assert_blue_serves().await;
}
