// The read canary on the MySQL family (`turnout canary`, `[canary]`), through haproxy's read backend,
// under an application writing through the write endpoint and reading through the read endpoint:
// green's share of reads follows the ramp (counted by the server that answered); green refuses the
// application's writes (`read_only`, set again after green restarts); green going down trips the
// canary and every read goes back to blue; kill -9 restores the live share; the cutover moves the
// writes and the remaining reads, losing nothing. Included after `suites/cutover_family.rs`, whose
// set-up and helpers it uses.

/// The canary checks this often.
const CANARY_CHECK: Duration = Duration::from_millis(250);

fn canary_toml() -> String {
    format!(
        "[canary]\nsplit = \"haproxy\"\ncheck_every = \"{}ms\"\nmax_lag = \"3s\"\nmax_latency = \"2s\"\nmax_errors_per_second = 5\n\
         probe = \"SELECT COUNT(*) FROM t\"\n[canary.haproxy]\nbackend = \"db_read\"\n",
        CANARY_CHECK.as_millis()
    )
}

/// Reads one row per connection through the read endpoint, recording the port of the server that
/// answered (`@@port`), or the error.
fn start_reader(url: String) -> Writer<Result<u16, String>> {
    Writer::start(move |log| async move {
        let opts = mysql_async::Opts::from_url(&url).expect("url");
        let mut n: i64 = 0;
        while log.running() {
            n += 1;
            let read = async {
                let mut c = mysql_async::Conn::new(opts.clone()).await.map_err(|e| e.to_string())?;
                let port: Option<(u16, Option<String>)> =
                    c.exec_first("SELECT @@port, (SELECT note FROM t WHERE id = ?)", (n % 100 + 1,)).await.map_err(|e| e.to_string())?;
                let _ = c.disconnect().await;
                port.map(|(p, _)| p).ok_or_else(|| "no row".to_owned())
            };
            log.acked(read.await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Green's share of the next `reads` reads, by the server that answered — with the canary's share
/// unchanged from start to end (its status read before and after the window).
async fn green_share(s: &Setup, reader: &Writer<Result<u16, String>>, reads: usize) -> f64 {
    let share = |t: &Turnout| t.status().map(|v| (v["canary"]["green_percent"].clone(), v["canary"]["steps"].as_array().map_or(0, Vec::len)));
    let before = share(&s.t);
    let from = reader.count();
    reader.wait_for(from + reads).await;
    assert_eq!(share(&s.t), before, "the canary's share changed while it was measured");
    let window = reader.snapshot()[from..].to_vec();
    let failed: Vec<&String> = window.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.len() < reads / 10, "reads failed: {failed:?}");
    let answered: Vec<u16> = window.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    answered.iter().filter(|p| **p == s.green.port()).count() as f64 / answered.len().max(1) as f64
}

#[tokio::test]
async fn a_read_canary_ramps_trips_when_green_goes_down_survives_kill_9_and_follows_the_cutover() {
    let mut s = setup("read-only", "haproxy", &canary_toml()).await;
    let writer = start_writer(s.through());
    let reader = start_reader(format!("mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{}", s.proxy.read_port(), s.db));
    writer.wait_for(120).await;
    reader.wait_for(50).await;

    // 30 % with no step pending (measured at 30 % however long it takes), then a ramp to 70 %.
    let (code, out) = turnout(&s.t, "canary", &["--reads", "30%"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    assert!(out.contains("green's share of reads is 30 %") && out.contains("read_only for the application"), "{out}");
    let share = green_share(&s, &reader, 300).await;
    eprintln!("at 30 %: green answered {:.1} % of reads", share * 100.0);
    assert!((0.15..=0.45).contains(&share), "at 30 %: {share:.2}; {}", s.t.status().map(|v| v["canary"].clone()).unwrap_or_default());
    let (code, out) = turnout(&s.t, "canary", &["--reads", "30%", "--step", "40%", "--every", "1s", "--max", "70%"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    common::canary_until(&mut s.t, "the ramp to 70 %", |c| c["green_percent"] == 70).await;
    let share = green_share(&s, &reader, 300).await;
    eprintln!("at 70 %: green answered {:.1} % of reads", share * 100.0);
    assert!((0.55..=0.85).contains(&share), "at 70 %: {share:.2}");

    // No application write lands on green.
    let mut g = conn(&s.app_url(&s.green)).await;
    let refused = g.query_drop("INSERT INTO t (note) VALUES ('app on green')").await.expect_err("green refuses the application's writes");
    assert!(refused.to_string().contains("1290"), "{refused}");
    drop(g);

    // Green goes down: the canary trips and every read goes to blue.
    let down = Instant::now();
    s.green.stop().expect("stop green");
    // How soon it trips is a figure (printed), not asserted: a loaded machine stretches any bound.
    let tripped = common::canary_until(&mut s.t, "the trip", |c| c["state"] == "tripped" && c["green_percent"] == 0).await;
    eprintln!("tripped {} ms after green's shutdown began (checks every {} ms)", down.elapsed().as_millis(), CANARY_CHECK.as_millis());
    // Green's shutdown shows first either as the probe's failure or as the errors it raises to its
    // sessions (MySQL counts them in performance_schema): either is green failing.
    assert!(tripped["tripped"].as_str().is_some_and(|w| w.contains("probe failed") || w.contains("on green")), "{tripped}");
    let from = reader.count();
    reader.wait_for(from + 60).await;
    assert!(reader.snapshot()[from + 10..].iter().all(|r| *r == Ok(s.blue.port())), "after the trip every read is blue's");

    // Green back (it forgot read_only); asked again: the canary fences it again.
    s.green.restart().expect("restart green");
    wait_streaming(&mut s.t).await;
    let (code, out) = turnout(&s.t, "canary", &["--reads", "30%"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    common::canary_until(&mut s.t, "30 % again", |c| c["state"] == "running" && c["green_percent"] == 30).await;
    assert!(read_only(&s.green), "the canary set read_only on green again after its restart");

    // kill -9: the live share is restored.
    s.t.kill9();
    s.t.start();
    wait_streaming(&mut s.t).await;
    // The restart sets the live share itself (not 0, then the plan's share at the next check). Its
    // journal says so: the live share may move on at once (paused while the restarted stream's lag
    // is unknown, or tripped by what green raised meanwhile), so it is not polled for.
    let restart = |c: &serde_json::Value| {
        c["steps"].as_array().and_then(|st| st.iter().find(|x| x["why"].as_str().is_some_and(|w| w.starts_with("restart"))).cloned())
    };
    let restored = common::canary_until(&mut s.t, "the restored share", |c| restart(c).is_some()).await;
    assert!(restart(&restored).is_some_and(|x| x["share"] == 30), "{restored}");

    // The cutover moves the writes and every read.
    let (code, out) = turnout(&s.t, "cutover", &["--when-lag", "<1s", "--timeout", "60s", "--max-pause", "10s"]).await;
    assert_eq!(code, 0, "{out}\n{}", s.t.log_text());
    common::canary_until(&mut s.t, "reads following the writes", |c| c["state"] == "cut-over" && c["green_percent"] == 100).await;
    let from = reader.count();
    reader.wait_for(from + 60).await;
    assert!(reader.snapshot()[from + 10..].iter().all(|r| *r == Ok(s.green.port())), "after the cutover every read is green's");
    writer.wait_for(writer.count() + 100).await;
    let (acked, errors) = writer.finish().await;
    let _ = reader.finish().await;
    assert_exactly_once(&s.green, &s.db, "green", &acked, &errors);
    assert_eq!(s.t.sigterm(), Some(0));
}
