//! Alerts against real servers and the real `turnout` binary: lag forced up by blocking green drives
//! the webhook (warning, critical, recovery) and the command hook; retained WAL near
//! `max_slot_wal_keep_size` drives the slot alert; and the example Prometheus rules pass `promtool`.

use crate::common;

use common::{assert_converges, pair, pair_with, running_with, wait_for};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use turnout_testbed::PgOptions;

/// A local webhook receiver: records each POST (request head, JSON body) in arrival order and
/// answers 200.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let Some((head, body)) = read_request(&mut s).await else { continue };
                let json = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
                record.lock().expect("lock").push((head, json));
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            }
        });
        Receiver { port, seen, task }
    }

    fn events(&self) -> Vec<Value> {
        self.seen.lock().expect("lock").iter().map(|(_, body)| body.clone()).collect()
    }

    fn heads(&self) -> Vec<String> {
        self.seen.lock().expect("lock").iter().map(|(head, _)| head.clone()).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP request's head and Content-Length body; none when the peer hangs up early.
async fn read_request(s: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let length: usize =
                head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").and_then(|v| v.trim().parse().ok())).unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = s.read(&mut buf).await.ok().filter(|n| *n > 0)?;
                data.extend_from_slice(&buf[..n]);
            }
            return Some((head, data[end + 4..end + 4 + length].to_vec()));
        }
        let n = s.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    }
}

/// `turnout_alert_state{alert="…"}` in a `/metrics` body.
fn alert_state(metrics: &str, alert: &str) -> Option<u8> {
    let prefix = format!("turnout_alert_state{{alert=\"{alert}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

fn transition(event: &Value) -> (String, String, String) {
    let s = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
    (s("alert"), s("previous"), s("state"))
}

fn lag_transition(from: &str, to: &str) -> (String, String, String) {
    ("lag".into(), from.into(), to.into())
}

const HOOK_PASSWORD: &str = "s3cr3t-hook";

#[tokio::test]
async fn lag_alerts_post_warning_then_critical_then_recovery_to_the_webhook() {
    let hook = Receiver::start().await;
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    let alerts = format!(
        "[alerts]\nlag_warning = \"1s\"\nlag_critical = \"3s\"\nmin_duration = \"500ms\"\n\
         webhook = \"http://hook:{HOOK_PASSWORD}@127.0.0.1:{}/turnout?team=db\"\n",
        hook.port
    );
    let (_dir, mut t) = running_with(&blue, &green, &db, &alerts).await;
    wait_for(&mut t, "a measured idle lag under 0.5 s with the lag alert ok", |t| {
        let lag = t.status()?["lag_seconds"].as_f64()?;
        (lag < 0.5 && alert_state(&t.metrics(), "lag") == Some(0)).then_some(())
    })
    .await;
    // Anything posted before this point (a start-up backlog) is not this test's subject.
    let before = hook.events().len();

    // Block apply on green; blue keeps committing, so lag grows by a second per second.
    let g = green.connect(&db).await.expect("green");
    g.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    blue.execute(&db, "INSERT INTO t VALUES (1, 'a')").await.expect("insert");

    let warning = wait_for(&mut t, "the warning POST", |_| hook.events().get(before).cloned()).await;
    assert_eq!(transition(&warning), lag_transition("ok", "warning"), "{warning}");
    assert!(warning["lag_seconds"].as_f64().is_some_and(|l| l > 1.0), "{warning}");
    assert_eq!(warning["threshold"].as_f64(), Some(1.0), "{warning}");
    assert_eq!(warning["threshold_unit"], "seconds", "{warning}");
    assert!(warning["lag_bytes"].as_u64().is_some_and(|b| b > 0), "{warning}");
    assert!(warning["names"]["slot"].as_str().is_some_and(|s| s.starts_with("turnout_")), "{warning}");
    assert!(warning["time"].as_str().is_some_and(|s| s.len() == 24 && s.ends_with('Z')), "{warning}");
    wait_for(&mut t, "turnout_alert_state{alert=\"lag\"} ≥ 1 after the warning", |t| alert_state(&t.metrics(), "lag").filter(|s| *s >= 1)).await;

    let critical = wait_for(&mut t, "the critical POST", |_| hook.events().get(before + 1).cloned()).await;
    assert_eq!(transition(&critical), lag_transition("warning", "critical"), "{critical}");
    assert!(critical["lag_seconds"].as_f64().is_some_and(|l| l > 3.0), "{critical}");
    assert_eq!(critical["threshold"].as_f64(), Some(3.0), "{critical}");
    wait_for(&mut t, "turnout_alert_state{alert=\"lag\"} 2", |t| (alert_state(&t.metrics(), "lag") == Some(2)).then_some(())).await;
    assert_eq!(t.status().expect("status")["alerts"]["lag"], "critical");

    // Unblock: green catches up and the alert recovers to ok.
    g.batch_execute("ROLLBACK").await.expect("unlock");
    let events = wait_for(&mut t, "the recovery POST", |_| {
        let events = hook.events();
        (events.len() > before + 2 && events.last().is_some_and(|e| e["state"] == "ok")).then_some(events)
    })
    .await;
    let after = &events[before + 2..];
    assert_eq!(after[0]["previous"], "critical", "{after:?}");
    // Lag drops at once when the blocked batch commits, so critical → ok directly; a stop at
    // warning on the way would still have to form an unbroken chain downwards.
    let mut level = "critical".to_string();
    for e in after {
        let (alert, previous, state) = transition(e);
        assert_eq!((alert.as_str(), previous.as_str()), ("lag", level.as_str()), "{after:?}");
        assert!(state == "ok" || (state == "warning" && previous == "critical"), "{after:?}");
        level = state;
    }
    wait_for(&mut t, "turnout_alert_state{alert=\"lag\"} 0 after recovery", |t| (alert_state(&t.metrics(), "lag") == Some(0)).then_some(())).await;

    // The URL's credentials went to the receiver as Basic auth, and nowhere into the log.
    let heads = hook.heads();
    assert!(heads.iter().all(|h| h.starts_with("POST /turnout?team=db HTTP/1.1\r\n")), "{heads:?}");
    // Header names are case-insensitive (hyper writes them in lower case).
    let basic_auth = |h: &String| {
        h.split("\r\n").any(|l| l.split_once(": ").is_some_and(|(n, v)| n.eq_ignore_ascii_case("authorization") && v == "Basic aG9vazpzM2NyM3QtaG9vaw=="))
    };
    assert!(heads.iter().all(basic_auth), "{heads:?}");
    let log = t.log_text();
    assert!(log.contains("alert lag ok → warning") && log.contains("alert lag warning → critical") && log.contains("alert lag critical → "), "{log}");
    assert!(!log.contains(HOOK_PASSWORD), "the webhook password reached the log");

    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

#[tokio::test]
async fn lag_alert_changes_run_the_command_with_the_json_on_stdin_and_the_env() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    let out = tempfile::tempdir().expect("tmp");
    let jsonl = out.path().join("alerts.jsonl");
    let script = "cat >> \"$1\"; echo \"$TURNOUT_ALERT $TURNOUT_ALERT_PREVIOUS $TURNOUT_ALERT_STATE\" >> \"$1.env\"";
    let argv = ["/bin/sh", "-c", script, "alert-hook", &jsonl.display().to_string()].map(String::from);
    let alerts =
        format!("[alerts]\nlag_warning = \"1s\"\nlag_critical = \"1h\"\nmin_duration = \"300ms\"\ncommand = {}\n", serde_json::to_string(&argv).expect("argv"));
    let (_dir, mut t) = running_with(&blue, &green, &db, &alerts).await;
    wait_for(&mut t, "a measured idle lag under 0.5 s with the lag alert ok", |t| {
        let lag = t.status()?["lag_seconds"].as_f64()?;
        (lag < 0.5 && alert_state(&t.metrics(), "lag") == Some(0)).then_some(())
    })
    .await;
    let env_path = PathBuf::from(format!("{}.env", jsonl.display()));
    let env_lines = || std::fs::read_to_string(&env_path).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>();
    let before = env_lines().len();

    let g = green.connect(&db).await.expect("green");
    g.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    blue.execute(&db, "INSERT INTO t VALUES (1, 'a')").await.expect("insert");
    wait_for(&mut t, "the command run for ok → warning", |_| env_lines()[before..].contains(&"lag ok warning".to_string()).then_some(())).await;
    g.batch_execute("ROLLBACK").await.expect("unlock");
    wait_for(&mut t, "the command run for warning → ok", |_| env_lines()[before..].contains(&"lag warning ok".to_string()).then_some(())).await;
    assert_eq!(env_lines()[before..], ["lag ok warning", "lag warning ok"]);

    // Each run got the event's JSON and a newline on stdin.
    let text = std::fs::read_to_string(&jsonl).expect("stdin copies");
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let last_two: Vec<_> = events[events.len() - 2..].iter().map(transition).collect();
    assert_eq!(last_two, [lag_transition("ok", "warning"), lag_transition("warning", "ok")]);
    assert!(events.iter().all(|e| e["message"].as_str().is_some_and(|m| m.contains("replication lag"))), "{text}");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    assert_eq!(t.sigterm(), Some(0));
}

/// The `turnout_*` metric names the example rules' expressions use.
fn metrics_in_rules(rules: &str) -> Vec<String> {
    let mut names: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .flat_map(|expr| expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map(str::to_owned).collect::<Vec<_>>())
        .filter(|word| word.starts_with("turnout_"))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn rules_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())).join("../deploy/prometheus")
}

#[tokio::test]
async fn slot_alert_warns_as_retained_wal_nears_max_slot_wal_keep_size_and_clears() {
    let hook = Receiver::start().await;
    // 64 MB of WAL may be kept for the slot; no checkpoint may remove WAL during the test.
    let options = PgOptions::new(15).conf("max_slot_wal_keep_size = '64MB'").conf("checkpoint_timeout = '1h'").conf("max_wal_size = '4GB'");
    let (blue, green, db) = pair_with(options, "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE pad (id int PRIMARY KEY, v text)").await;
    let (_dir, mut t) = running_with(&blue, &green, &db, &format!("[alerts]\nwebhook = \"http://127.0.0.1:{}/\"\n", hook.port)).await;
    let metrics = wait_for(&mut t, "slot figures and lag in /metrics with the slot alert ok", |t| {
        let m = t.metrics();
        (m.contains("\nturnout_slot_safe_wal_bytes ") && m.contains("\nturnout_lag_seconds ") && alert_state(&m, "slot") == Some(0)).then_some(m)
    })
    .await;
    assert_eq!(alert_state(&metrics, "lag"), None, "no lag threshold is configured: no lag alert");
    // Every metric the example Prometheus rules use is one turnout exports.
    let rules = std::fs::read_to_string(rules_dir().join("turnout-rules.yml")).expect("rules");
    let used = metrics_in_rules(&rules);
    assert!(used.len() >= 6, "{used:?}");
    for name in &used {
        assert!(metrics.contains(&format!("# TYPE {name} ")), "the example rules use {name}, which /metrics lacks:\n{metrics}");
    }
    // So is every metric the example Grafana dashboard queries.
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rules_dir().join("../grafana/turnout.json")).expect("dashboard")).expect("dashboard JSON");
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            queried.extend(metrics_in_rules(&format!("expr: {}", target["expr"].as_str().expect("expr"))));
        }
    }
    let templating = dashboard["templating"]["list"].as_array().expect("variables").iter().filter_map(|v| v["query"].as_str());
    queried.extend(templating.flat_map(|q| metrics_in_rules(&format!("expr: {q}"))));
    queried.sort();
    queried.dedup();
    assert!(queried.len() >= 12, "{queried:?}");
    for name in &queried {
        assert!(metrics.contains(&format!("# TYPE {name} ")), "the dashboard queries {name}, which /metrics lacks:\n{metrics}");
    }
    let before = hook.events().len();

    // Hold the slot back (green blocked, nothing acknowledged) and write WAL on blue until the slot
    // retains more than the warning point (20% of the limit left) wherever the segment boundaries fall.
    let g = green.connect(&db).await.expect("green");
    g.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    blue.execute(&db, "INSERT INTO t VALUES (1, 'a')").await.expect("insert");
    let b = blue.connect(&db).await.expect("blue");
    let retained = || async {
        b.query_one("SELECT (pg_current_wal_lsn() - restart_lsn)::int8 FROM pg_replication_slots WHERE slot_name LIKE 'turnout_%'", &[])
            .await
            .expect("slot")
            .get::<_, i64>(0)
    };
    let mut chunk = 0;
    while retained().await < 66 << 20 {
        assert!(chunk < 100, "blue retains only {} bytes after {chunk} chunks", retained().await);
        b.execute("INSERT INTO pad SELECT g, repeat(md5(g::text), 32) FROM generate_series($1::int * 5000 + 1, ($1::int + 1) * 5000) g", &[&chunk])
            .await
            .expect("pad");
        chunk += 1;
    }
    let warning = wait_for(&mut t, "the slot warning POST", |_| hook.events().get(before).cloned()).await;
    assert_eq!(transition(&warning), ("slot".into(), "ok".into(), "warning".into()), "{warning}");
    assert!(warning["message"].as_str().is_some_and(|m| m.contains("max_slot_wal_keep_size")), "{warning}");
    assert!(matches!(warning["slot"]["wal_status"].as_str(), Some("reserved" | "extended" | "unreserved")), "{warning}");
    assert!(warning["slot"]["retained_bytes"].as_u64().is_some_and(|r| r >= 50 << 20), "{warning}");
    assert_eq!(warning["threshold_unit"], "bytes", "{warning}");
    wait_for(&mut t, "turnout_alert_state{alert=\"slot\"} 1", |t| (alert_state(&t.metrics(), "slot") == Some(1)).then_some(())).await;

    // Green catches up; once blue moves the slot's restart position on (a running-transactions record,
    // logged at least every 15 s), the retained WAL shrinks and the warning clears.
    g.batch_execute("ROLLBACK").await.expect("unlock");
    assert_converges(&blue, &green, &db, &["t"], &mut t).await;
    let count = "SELECT count(*) FROM pad";
    let on_blue: i64 = b.query_one(count, &[]).await.expect("count").get(0);
    let deadline = std::time::Instant::now() + common::WAIT;
    while g.query_one(count, &[]).await.expect("count").get::<_, i64>(0) != on_blue {
        assert!(std::time::Instant::now() < deadline, "green never got blue's {on_blue} pad rows\n{}", t.log_text());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let cleared = wait_for(&mut t, "the slot recovery POST", |_| hook.events().get(before + 1).cloned()).await;
    assert_eq!(transition(&cleared), ("slot".into(), "warning".into(), "ok".into()), "{cleared}");
    assert_eq!(alert_state(&t.metrics(), "slot"), Some(0));
    assert_eq!(t.sigterm(), Some(0));
}

#[test]
fn example_prometheus_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = rules_dir();
    let promtool = |args: &[&str]| match Command::new("promtool").args(args).current_dir(&dir).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("promtool is not installed, so the example rules cannot be checked: apt-get install prometheus (scripts/test installs it)")
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    for args in [["check", "rules", "turnout-rules.yml"], ["test", "rules", "turnout-rules.test.yml"]] {
        let out = promtool(&args);
        assert!(
            out.status.success(),
            "promtool {} failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules = std::fs::read_to_string(dir.join("turnout-rules.yml")).expect("rules");
    for alert in ["TurnoutLagWarning", "TurnoutLagCritical", "TurnoutSlotNearWalLimit", "TurnoutSlotLost", "TurnoutDown", "TurnoutNoProgress"] {
        assert!(rules.contains(&format!("alert: {alert}\n")), "{alert} missing");
    }
}
