//! Nothing slow inside the write pause: what can be prepared is prepared before the fence. Shown on
//! the servers' own record, not by timing: green logs every connection, the switch command notes when
//! it runs, and no session may reach green between the fence and the switch — also when green was
//! read-only for the application (a read canary's fence) and the cutover lifts that inside the pause.

use crate::common;

use common::*;
use turnout_testbed::PgOptions;

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC for milliseconds since the epoch (as `log_line_prefix = '%m'`
/// prints a time, without its zone).
fn utc(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}", rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000)
}

#[test]
fn times_print_as_the_server_logs_them() {
    assert_eq!(utc(0), "1970-01-01 00:00:00.000");
    assert_eq!(utc(1_795_651_201_123), "2026-11-26 00:00:01.123");
}

#[tokio::test]
async fn no_session_reaches_green_between_the_fence_and_the_switch() {
    for read_only in [false, true] {
        let (blue, green, db) = pair_between(
            PgOptions::new(15),
            PgOptions::new(17).conf("log_connections = on").conf("log_line_prefix = '%m '"),
            "CREATE TABLE t (id bigserial PRIMARY KEY, note text); INSERT INTO t (note) SELECT 'n' FROM generate_series(1, 100)",
        )
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        let switched = dir.path().join("switched-at");
        let extra = command_switch(dir.path(), &format!("date +%s%3N > '{}'", switched.display()));
        let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), &extra);
        t.start();
        wait_streaming(&mut t).await;
        if read_only {
            // As a read canary leaves it: green's database read-only for the application.
            green.execute(&db, &format!("ALTER DATABASE \"{db}\" SET default_transaction_read_only = on")).await.expect("read-only");
        }
        let report = dir.path().join("cutover.json");
        let (code, out) = turnout_command(&t, "cutover", &["--when-lag", "1s", "--timeout", "60s", "--report", report.to_str().expect("path")]).await;
        assert_eq!(code, 0, "{out}\n{}", t.log_text());
        let certificate = intact_certificate(&report);
        let pause_ms = certificate["write_pause_us"].as_i64().expect("the pause") / 1000 + 1;
        let at: i64 = std::fs::read_to_string(&switched).expect("the switch ran").trim().parse().expect("a time");
        let (from, to) = (utc(at - pause_ms), utc(at));
        let log = std::fs::read_to_string(green.log_path()).expect("green's log");
        let inside: Vec<&str> =
            log.lines().filter(|l| l.contains("connection authorized") && l.get(..23).is_some_and(|ts| ts >= &from[..] && ts <= &to[..])).collect();
        assert!(inside.is_empty(), "sessions reached green inside the {pause_ms} ms pause ({from} to {to}): {inside:#?}\n{out}");
        assert!(log.lines().any(|l| l.contains("connection authorized")), "green logs its connections");
        if read_only {
            assert!(out.contains("lifted green's read-only fence"), "{out}");
            let c = green.connect(&db).await.expect("green");
            c.batch_execute("INSERT INTO t (note) VALUES ('after')").await.expect("green takes the application's writes");
        }
        assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
    }
}
