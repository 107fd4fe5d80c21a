//! The `turnout` executable: parses the command line and runs a command. Exit codes: 0 success,
//! 1 the command failed or found problems, 2 unusable configuration or arguments.

use clap::Parser;
use std::io::{IsTerminal, Write};
use turnout::cli::{normalize_args, Cli, Command, LogFormat, EXIT_CONFIG, EXIT_FAILED};
use turnout::config::Config;

fn main() {
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    // The demo runs the sidecar in this process and prints each step itself: its log would repeat them.
    let default_filter = if matches!(cli.command, Command::Demo { .. }) { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        // One object per line (timestamp, level, target, fields): for log shippers.
        LogFormat::Json => logs.json().with_current_span(false).init(),
        // Colour only for a terminal: log files and collectors get plain text.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let code = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run(cli.command, cli.log_format == LogFormat::Json)),
        Err(e) => {
            eprintln!("turnout: cannot start the async runtime: {e}");
            EXIT_FAILED
        }
    };
    std::process::exit(code);
}

/// `turnout cutover` (`back`: `rollback`).
async fn move_traffic(args: &turnout::cli::MoveArgs, back: bool) -> i32 {
    let invocation = match args.invocation() {
        Ok(invocation) => invocation,
        Err(e) => {
            eprintln!("turnout: {e}");
            return EXIT_CONFIG;
        }
    };
    match load(&args.config.config) {
        Ok(config) if back => turnout::control::rollback(&config, &invocation).await,
        Ok(config) => turnout::control::cutover(&config, &invocation).await,
        Err(code) => code,
    }
}

/// `turnout fleet status|cutover|rollback|finish`.
async fn fleet(args: turnout::cli::FleetArgs) -> i32 {
    use turnout::control::fleet as coordinator;
    let file = match turnout::fleet::config::FleetFile::load(&args.fleet) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("turnout: {}: {e}", args.fleet.display());
            return EXIT_CONFIG;
        }
    };
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    match args.command {
        turnout::cli::FleetCommand::Status { serve: Some(listen), .. } => coordinator::serve_status(&file, listen).await,
        turnout::cli::FleetCommand::Status { json, serve: None } => coordinator::status(&file, json).await,
        turnout::cli::FleetCommand::Cutover { when_lag, timeout, max_pause, rehearse, verify, report, waves, soak, soak_max_lag, gate_command } => {
            let waves = waves.map(|sizes| coordinator::waves::Waves { sizes, soak, max_lag: soak_max_lag, gate_command });
            let args = coordinator::CutoverArgs {
                way: coordinator::Way::Cutover,
                when_lag_ms: ms(when_lag),
                timeout_ms: ms(timeout),
                max_pause_ms: ms(max_pause),
                rehearse,
                verify,
                report,
                waves,
            };
            coordinator::cutover(&file, &args).await
        }
        turnout::cli::FleetCommand::Rollback { when_lag, timeout, max_pause, rehearse, report } => {
            let args = coordinator::CutoverArgs {
                way: coordinator::Way::Rollback,
                when_lag_ms: ms(when_lag),
                timeout_ms: ms(timeout),
                max_pause_ms: ms(max_pause),
                rehearse,
                verify: false,
                report,
                waves: None,
            };
            coordinator::cutover(&file, &args).await
        }
        turnout::cli::FleetCommand::Finish => coordinator::finish(&file).await,
    }
}

fn load(path: &std::path::Path) -> Result<Config, i32> {
    Config::load(path).map_err(|e| {
        eprintln!("turnout: {e}");
        EXIT_CONFIG
    })
}

async fn run(command: Command, json_logs: bool) -> i32 {
    match command {
        Command::Check(args) => match load(&args.config) {
            Ok(config) => check(&config).await,
            Err(code) => code,
        },
        Command::Run(args) => match load(&args.config) {
            Ok(config) => run_sidecar(&config, json_logs).await,
            Err(code) => code,
        },
        Command::Teardown { config, yes } => match load(&config.config) {
            Ok(config) => teardown(&config, yes).await,
            Err(code) => code,
        },
        Command::Status { config, json, watch } => match load(&config.config) {
            Ok(config) => status(&config, json, watch).await,
            Err(code) => code,
        },
        Command::Cutover(args) => move_traffic(&args, false).await,
        Command::Fleet(args) => fleet(args).await,
        Command::Rollback(args) => move_traffic(&args, true).await,
        Command::Certificate { file, public_key } => turnout::control::check_certificate(&file, public_key.as_deref()),
        Command::Finish(args) => match load(&args.config) {
            Ok(config) => turnout::control::finish(&config).await,
            Err(code) => code,
        },
        Command::Canary(args) => match load(&args.config.config) {
            Ok(config) => turnout::control::canary(&config, &args.ask()).await,
            Err(code) => code,
        },
        Command::RogueWrites { config, acknowledge } => match load(&config.config) {
            Ok(config) => turnout::control::rogue_writes(&config, acknowledge).await,
            Err(code) => code,
        },
        #[cfg(feature = "demo")]
        Command::Demo { mysql, mysql_to_postgres, engine } => turnout::demo::run(mysql, mysql_to_postgres, engine).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => {
            eprintln!(
                "turnout: this binary was built without the demo, which starts throwaway servers; run ./scripts/demo from the \
                 repository, or build with `cargo build --release -p turnout --features demo`"
            );
            turnout::cli::EXIT_CONFIG
        }
        Command::Verify { config, table, live } => match load(&config.config) {
            Ok(config) if live.live => verify_live(&config, &live.options(table)).await,
            Ok(config) => verify(&config, table.as_deref()).await,
            Err(code) => code,
        },
    }
}

/// `turnout check`: the report, exit 1 when a requirement is not met.
async fn check(config: &Config) -> i32 {
    let report = turnout::check::run(config).await;
    print!("{report}");
    if report.passed() {
        0
    } else {
        EXIT_FAILED
    }
}

/// `turnout run`: replicates until SIGTERM or SIGINT.
async fn run_sidecar(config: &Config, json_logs: bool) -> i32 {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: finishing the current batch and acknowledging what is durable");
        let _ = tx.send(true);
    });
    match turnout::run::run(config, rx).await {
        Ok(()) => 0,
        Err(e) if json_logs => {
            // A log shipper reads stderr: the reason stays one JSON object.
            tracing::error!(error = %e, "turnout run stopped");
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("turnout: {e}");
            EXIT_FAILED
        }
    }
}

/// `turnout teardown`: refused without `--yes`.
async fn teardown(config: &Config, yes: bool) -> i32 {
    if !yes {
        eprintln!(
            "turnout: teardown drops the replication slot and publication on blue, the replication origin on green and \
             the state directory {}; run again with --yes to do it",
            config.state.dir.display()
        );
        return EXIT_FAILED;
    }
    match turnout::run::teardown(config).await {
        Ok(done) => {
            for line in done {
                println!("{line}");
            }
            0
        }
        Err(e) => {
            eprintln!("turnout: {e}");
            EXIT_FAILED
        }
    }
}

/// `turnout status`: the sidecar's `/status`, once or as it changes.
async fn status(config: &Config, json: bool, watch: bool) -> i32 {
    if watch {
        return watch_status(&config.http.listen, json).await;
    }
    match turnout::control::get(&config.http.listen, "/status").await {
        Ok(body) if json => {
            println!("{body}");
            0
        }
        Ok(body) => {
            print_status(&body);
            0
        }
        Err(e) => {
            eprintln!("turnout: cannot reach the sidecar at http://{}/status: {e} (is `turnout run` running?)", config.http.listen);
            EXIT_FAILED
        }
    }
}

/// `turnout verify`: every replicated table compared, exit 1 when one differs.
async fn verify(config: &Config, table: Option<&str>) -> i32 {
    match turnout::verify::run(config, table).await {
        Ok(checks) => {
            for c in &checks {
                // PostgreSQL's check of every definition counts objects, not rows.
                let unit = if c.table == turnout::verify::DEFINITIONS { "objects" } else { "rows" };
                if c.equal {
                    println!("ok       {} ({} {unit})", c.table, c.blue_rows);
                } else {
                    println!("DIFFERS  {} (blue {} {unit}, green {} {unit})", c.table, c.blue_rows, c.green_rows);
                }
                for note in &c.notes {
                    println!("         {note}");
                }
            }
            let tables: Vec<_> = checks.iter().filter(|c| c.table != turnout::verify::DEFINITIONS).collect();
            println!("{} tables compared, {} differ", tables.len(), tables.iter().filter(|c| !c.equal).count());
            if checks.iter().all(|c| c.equal) {
                0
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => {
            eprintln!("turnout: {e}");
            EXIT_FAILED
        }
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// `status --watch`: redraws the status every second on a terminal (one line per second otherwise, or
/// one JSON document per second with `--json`) until interrupted or the sidecar goes away.
async fn watch_status(listen: &str, json: bool) -> i32 {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    loop {
        match turnout::control::get(listen, "/status").await {
            Ok(body) if json => println!("{body}"),
            Ok(body) if tty => {
                print!("\x1b[2J\x1b[H");
                print_status(&body);
                println!("\n(refreshing every second; Ctrl-C to stop)");
            }
            Ok(body) => println!("{}", status_line(&body)),
            Err(e) => {
                eprintln!("turnout: cannot reach the sidecar at http://{listen}/status: {e} (is `turnout run` running?)");
                return EXIT_FAILED;
            }
        }
        let _ = std::io::stdout().flush();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Seconds with millisecond precision, or "unknown".
fn seconds(v: &serde_json::Value, key: &str) -> String {
    v.get(key).and_then(serde_json::Value::as_f64).map_or_else(|| "unknown".to_string(), |s| format!("{s:.3} s"))
}

/// One line for logs: phase, lag, applied position.
fn status_line(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    format!(
        "phase={} lag={} lag_bytes={} applied={} drain={}",
        v["phase"].as_str().unwrap_or("?"),
        seconds(&v, "lag_seconds"),
        v["lag_bytes"],
        v["applied_position"].as_str().unwrap_or("?"),
        seconds(&v, "predicted_drain_seconds")
    )
}

fn print_status(body: &str) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let get = |k: &str| v.get(k).map(|x| x.to_string().trim_matches('"').to_string()).unwrap_or_default();
    println!("phase:        {}", get("phase"));
    println!("applied:      {}", get("applied_position"));
    println!("lag:          {} ({} bytes)", seconds(&v, "lag_seconds"), get("lag_bytes"));
    println!("drain in:     {} at {:.0} bytes/s", seconds(&v, "predicted_drain_seconds"), v["apply_bytes_per_second"].as_f64().unwrap_or(0.0));
    if let Some(slot) = v.get("slot").filter(|s| !s.is_null()) {
        println!("slot:         {} bytes of WAL retained, wal_status {}", slot["retained_bytes"], slot["wal_status"].as_str().unwrap_or("?"));
    }
    println!("rows applied: {} ({} transactions)", get("rows_applied"), get("transactions_applied"));
    if let Some(tables) = v.get("tables").and_then(|t| t.as_object()) {
        for (name, t) in tables {
            println!(
                "snapshot {name}: {} rows{}",
                t.get("rows").cloned().unwrap_or_default(),
                if t.get("done").and_then(|d| d.as_bool()) == Some(true) { ", done" } else { "" }
            );
        }
    }
    if let Some(err) = v.get("last_error").filter(|e| !e.is_null()) {
        println!("last error:   {} ({})", err["message"].as_str().unwrap_or("?"), err["class"].as_str().unwrap_or("?"));
        println!("advice:       {}", err["advice"].as_str().unwrap_or("?"));
    }
}

/// `turnout verify --live`: prints each table's result and every row that differs.
/// One table's lines of a live verify's report, `(source, target)` named by their sides.
fn print_live_table(t: &turnout::verify::progress::TableState, (source, target): (turnout_decoders::Side, turnout_decoders::Side)) {
    use turnout::verify::progress::DiffKind;
    let show_key = |key: &[(String, String)]| key.iter().map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join(", ");
    if t.equal() {
        println!("ok       {} ({} rows, {} chunks)", t.table, t.source_rows, t.chunks);
        return;
    }
    let located = t.differences.len() as u64 + t.more_differences;
    if t.keyless {
        println!(
            "DIFFERS  {} ({source} {} rows, {target} {} rows; compared whole: no key both sides order alike to locate the rows by)",
            t.table, t.source_rows, t.target_rows
        );
    } else {
        let differ = if located == 1 { "row differs" } else { "rows differ" };
        println!("DIFFERS  {} ({source} {} rows, {target} {} rows; {located} {differ})", t.table, t.source_rows, t.target_rows);
    }
    for d in &t.differences {
        match d.kind {
            DiffKind::Missing => println!("         missing on {target}: {}", show_key(&d.key)),
            DiffKind::Extra => println!("         only on {target}: {}", show_key(&d.key)),
            DiffKind::Changed if d.values.is_empty() => {
                println!("         differs: {} (columns: {}; values redacted, --show-values prints them)", show_key(&d.key), d.columns.join(", "))
            }
            DiffKind::Changed => {
                let values: Vec<String> = d
                    .values
                    .iter()
                    .map(|(c, s, g)| format!("{c}: {source} {} {target} {}", s.as_deref().unwrap_or("NULL"), g.as_deref().unwrap_or("NULL")))
                    .collect();
                println!("         differs: {} ({})", show_key(&d.key), values.join("; "))
            }
        }
    }
    if t.more_differences > 0 {
        println!("         … and {} more", t.more_differences);
    }
}

async fn verify_live(config: &turnout::config::Config, options: &turnout::verify::live::LiveOptions) -> i32 {
    let report = match turnout::verify::live::run(config, options).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("turnout: {e}");
            return EXIT_FAILED;
        }
    };
    let (source, target) = report.direction.ends();
    let rounds = report.positions.len();
    println!(
        "compared at {source} position {} ({rounds} round{}{})",
        report.positions.join(", "),
        if rounds == 1 { "" } else { "s" },
        if report.resumed { ", resumed" } else { "" }
    );
    for t in &report.tables {
        print_live_table(t, (source, target));
    }
    for (table, columns) in &report.target_only_columns {
        println!("note     {} has columns only on {target}: {} ({target}'s own values; not compared)", table.quoted(), columns.join(", "));
    }
    let differ = report.tables.iter().filter(|t| !t.equal()).count();
    let secs = report.elapsed.as_secs_f64().max(0.001);
    println!("{} tables compared, {differ} differ; {} rows in {secs:.1} s ({:.0} rows/s)", report.tables.len(), report.rows, report.rows as f64 / secs);
    // Every definition, as the cutover will make it equal (PostgreSQL; the whole database only).
    let definitions_equal = match options.table {
        Some(_) => true,
        None => match turnout::verify::live_definitions(config, report.direction).await {
            Ok(Some(c)) => {
                println!("{}  {} ({} objects)", if c.equal { "ok     " } else { "DIFFERS" }, c.table, c.blue_rows);
                for note in &c.notes {
                    println!("         {note}");
                }
                c.equal
            }
            Ok(None) => true,
            Err(e) => {
                eprintln!("turnout: comparing the definitions: {e}");
                false
            }
        },
    };
    if differ == 0 && definitions_equal {
        0
    } else {
        EXIT_FAILED
    }
}
