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

/// The hand-over record once the stream that follows the switch of `direction` waited for the
/// reader: its fence and where it resumes, as binlog file and offset.
async fn handed_over(t: &mut Turnout, direction: &str) -> ((String, u64), (String, u64)) {
    let view = common::wait_for(t, "the hand-over settled", |t| {
        let v: serde_json::Value = serde_json::from_str(&t.get("/handover")?).ok()?;
        (v["handed_over"]["settled"] == true && v["handed_over"]["direction"] == direction).then_some(v)
    })
    .await;
    let handed = &view["handed_over"]["consumers"][0];
    assert!(handed["gap"].is_null() && handed["consumer"] == READER, "{view}");
    (file_offset(handed["fence"].as_str().expect("fence")), file_offset(handed["resume"].as_str().expect("resume")))
}

/// The inserted ids of `t` a reader wrote to `out` (from `first`), those before `upto` only when given.
fn inserted(out: &std::path::Path, first: &str, db: &str, upto: Option<&(String, u64)>) -> Vec<i64> {
    read_inserts(out, first, db).into_iter().filter(|(file, at, _)| upto.is_none_or(|(f, o)| (file.as_str(), *at) < (f.as_str(), *o))).map(|i| i.2).collect()
}

fn stop_reader(mut reader: std::process::Child) {
    let _ = reader.kill();
    let _ = reader.wait();
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
    let (fence, resume) = handed_over(&mut s.t, "forward").await;
    // Repointed from the record: blue up to the fence, green from where it resumes.
    stop_reader(reader);
    let mut seen = inserted(&outs[0], &first, &s.db, Some(&fence));
    let reader = binlog_reader(&s.green, &resume.0, resume.1, &outs[1]);
    writer.wait_for(writer.count() + 150).await;

    // The rollback hands it back: green up to the rollback's fence, blue from where it resumes.
    let (code, out) = turnout(&s.t, "rollback", &lag).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("consumers to hand over to blue, ready: reader"), "{out}");
    let (back_fence, back_resume) = handed_over(&mut s.t, "reverse").await;
    stop_reader(reader);
    seen.extend(inserted(&outs[1], &resume.0, &s.db, Some(&back_fence)));
    let reader = binlog_reader(&s.blue, &back_resume.0, back_resume.1, &outs[2]);
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
