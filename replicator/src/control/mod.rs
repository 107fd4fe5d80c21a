//! Talking to a running sidecar over its local HTTP API: `turnout status`, `turnout cutover` (and
//! `rollback`, `finish`, `canary`), and checking a cutover's certificate (`turnout certificate`);
//! talking to a fleet's sidecars: `turnout fleet` ([`fleet`]).

pub mod fleet;

use crate::config::Config;
use crate::cutover::{Progress, Request};
use crate::error::Error;
use crate::http_client::request;
pub use crate::http_client::{error_of, get, request_within};
use std::path::Path;
use std::time::Duration;
use turnout_decoders::Side;

/// What `turnout cutover` (or `rollback`) was asked: the request for the sidecar (none when only the
/// certificate is wanted), whether a rehearsal may go on without asking, and where to save the
/// certificate.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub request: Option<Request>,
    pub yes: bool,
    pub report: Option<std::path::PathBuf>,
}

/// `turnout cutover`: asks the sidecar to cut over (rehearse, dry-run) and prints each step as it
/// happens; saves the certificate with `--report`. Returns the exit code: 0 only when traffic is on
/// green (or a dry run found everything ready, or a rehearsal completed).
pub async fn cutover(config: &Config, args: &Invocation) -> i32 {
    act(config, args, "/cutover", Side::Green).await
}

/// Asks the sidecar for exactly `request` (a cutover to green) and follows it, as `turnout cutover`
/// does without its other flags.
pub async fn cutover_with(config: &Config, request: &Request) -> i32 {
    follow(config, request, "/cutover", Side::Green).await.0
}

/// Asks the sidecar for exactly `request` (a rollback to blue) and follows it.
pub async fn rollback_with(config: &Config, request: &Request) -> i32 {
    follow(config, request, "/rollback", Side::Blue).await.0
}

/// `turnout rollback`: the same back to blue, in the rollback window after a cutover.
pub async fn rollback(config: &Config, args: &Invocation) -> i32 {
    act(config, args, "/rollback", Side::Blue).await
}

async fn act(config: &Config, args: &Invocation, path: &str, to: Side) -> i32 {
    let (code, id) = match &args.request {
        None => (0, None),
        Some(request) => {
            if request.rehearse && !args.yes {
                if let Err(refused) = confirm_rehearsal(request, path, to) {
                    eprintln!("turnout: {refused}");
                    return crate::error::EXIT_FAILED;
                }
            }
            follow(config, request, path, to).await
        }
    };
    let Some(file) = &args.report else { return code };
    if args.request.is_some() && id.is_none() {
        eprintln!("turnout: no certificate: the sidecar did not start the {}", &path[1..]);
        return code;
    }
    match save_report(config, path, file, id.as_deref()).await {
        Ok(summary) => {
            println!("{summary}\ncertificate saved to {}", file.display());
            code
        }
        Err(e) => {
            eprintln!("turnout: {e}");
            if code == 0 {
                crate::error::EXIT_FAILED
            } else {
                code
            }
        }
    }
}

/// Says what a rehearsal does to writes and asks to go on; refuses without a terminal to ask on.
fn confirm_rehearsal(request: &Request, path: &str, to: Side) -> Result<(), Error> {
    use std::io::{BufRead, IsTerminal, Write};
    let from = to.other();
    eprint!(
        "A rehearsal of the {} fences writes on {from} as the real one does — pgbouncer holds queries; the read-only fence refuses \
         writes and ends the database's other client sessions — for the fence, the sentinel and the proof (up to --max-pause, {} ms), \
         then lifts the fence; traffic stays on {from}. Go on? [y/N] ",
        &path[1..],
        request.max_pause_ms
    );
    let _ = std::io::stderr().flush();
    if !std::io::stdin().is_terminal() {
        eprintln!();
        return Err(crate::error::Lifecycle::NoTerminal.into());
    }
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(crate::error::Lifecycle::NotConfirmed.into())
    }
}

/// Fetches the last certificate at `{path}/report` — which must be of the run `id`, when given —
/// writes it to `file`, and returns its summary.
async fn save_report(config: &Config, path: &str, file: &Path, id: Option<&str>) -> Result<String, Error> {
    let url = format!("http://{}{path}/report", config.http.listen);
    let sidecar = |reason: String| Error::Sidecar { url: url.clone(), reason };
    let body = get(&config.http.listen, &format!("{path}/report")).await.map_err(|e| sidecar(format!("no certificate: {}", error_of(&e.to_string()))))?;
    let certificate: crate::cutover::certificate::Certificate =
        serde_json::from_str(&body).map_err(|e| sidecar(format!("answered something that is not a certificate: {e}")))?;
    if let Some(id) = id.filter(|id| *id != certificate.id) {
        return Err(sidecar(format!(
            "no certificate of {} {id}: it ended before its first step (the sidecar's last certificate is of {}, not saved)",
            &path[1..],
            certificate.id
        )));
    }
    std::fs::write(file, body.as_bytes()).map_err(Error::file("writing", file))?;
    Ok(certificate.summary())
}

/// `turnout certificate FILE`: checks a certificate's digest (and signature) and prints its summary.
pub fn check_certificate(file: &Path, public_key: Option<&str>) -> i32 {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("turnout: cannot read {}: {e}", file.display());
            return crate::error::EXIT_CONFIG;
        }
    };
    match crate::cutover::certificate::check(&text, public_key) {
        Ok(certificate) => {
            println!("{}", certificate.summary());
            let signed = match (&certificate.signature, public_key) {
                (Some(_), Some(key)) => format!(", signed by {key}"),
                (Some(s), None) => format!(", signature verified against the key it names ({}) — pass --public-key with your key to require it", s.public_key),
                (None, _) => " (not signed)".into(),
            };
            println!("{}: intact{signed}", file.display());
            0
        }
        Err(e) => {
            eprintln!("turnout: {}: {e}", file.display());
            crate::error::EXIT_FAILED
        }
    }
}

/// `turnout finish`: ends the rollback window and prints what was dropped.
pub async fn finish(config: &Config) -> i32 {
    post_and_print(config, "/finish", "{}", "the sidecar refused to finish").await
}

/// `turnout canary`: asks the sidecar's read canary for a plan (or its end, `--reads 0`) and prints
/// what it did. Exit 0 when the sidecar took it.
pub async fn canary(config: &Config, ask: &crate::canary::Ask) -> i32 {
    let body = serde_json::to_string(ask).unwrap_or_default();
    post_and_print(config, "/canary", &body, "the sidecar refused the canary").await
}

/// POSTs `body` to the sidecar's `path` and prints the lines of what it did (`{"done": [..]}`);
/// `refused` says what a refusal means.
async fn post_and_print(config: &Config, path: &str, body: &str, refused: &str) -> i32 {
    let listen = &config.http.listen;
    let token = config.cutover.token.as_ref().map(|t| t.expose());
    match self::request(listen, "POST", path, Some(body), token).await {
        Ok((200, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            for line in v["done"].as_array().into_iter().flatten() {
                println!("{}", line.as_str().unwrap_or_default());
            }
            0
        }
        Ok((code, body)) => {
            eprintln!("turnout: {refused} (HTTP {code}): {}", error_of(&body));
            crate::error::EXIT_FAILED
        }
        Err(e) => {
            eprintln!("turnout: cannot reach the sidecar at http://{listen}{path}: {e} (is `turnout run` running?)");
            crate::error::EXIT_FAILED
        }
    }
}

/// `turnout rogue-writes [--acknowledge]`: prints each watched side's writes that turnout did not
/// make; with `acknowledge`, then accepts exactly the ones listed (the sidecar refuses a side whose
/// count moved meanwhile). Exit 0 when none is left unacknowledged.
pub async fn rogue_writes(config: &Config, acknowledge: bool) -> i32 {
    let listen = &config.http.listen;
    let body = match self::request(listen, "GET", "/rogue-writes", None, None).await {
        Ok((200, body)) => body,
        Ok((code, body)) => {
            eprintln!("turnout: the sidecar answered HTTP {code}: {}", error_of(&body));
            return crate::error::EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("turnout: cannot reach the sidecar at http://{listen}/rogue-writes: {e} (is `turnout run` running?)");
            return crate::error::EXIT_FAILED;
        }
    };
    let sides: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    if sides.is_empty() {
        println!("no side is watched for writes that turnout did not make ([watch] green, [watch] blue)");
        return 0;
    }
    let mut outstanding = 0;
    let mut seen = serde_json::Map::new();
    for (side, w) in &sides {
        let (count, acknowledged) = (w["seen"].as_u64().unwrap_or(0), w["acknowledged"].as_u64().unwrap_or(0));
        seen.insert(side.clone(), count.into());
        outstanding += count.saturating_sub(acknowledged);
        println!(
            "{side}: {} (read through {}): {count} seen, {acknowledged} acknowledged",
            w["state"].as_str().unwrap_or("?"),
            w["read_through"].as_str().unwrap_or("-")
        );
        for write in w["unacknowledged"].as_array().into_iter().flatten() {
            let field = |name: &str| write[name].as_str().unwrap_or_default().to_owned();
            println!("  {} {} {} (commit {})", field("kind"), field("table"), field("key"), field("commit"));
        }
        if let Some(e) = w["error"].as_str() {
            println!("  error: {e}");
        }
    }
    if outstanding == 0 || !acknowledge {
        if outstanding > 0 {
            println!("{outstanding} not acknowledged: reconcile them, then `turnout rogue-writes --acknowledge`");
            return crate::error::EXIT_FAILED;
        }
        return 0;
    }
    let ack = serde_json::json!({ "seen": seen }).to_string();
    post_and_print(config, "/rogue-writes/acknowledge", &ack, "the sidecar refused the acknowledgement").await
}

/// Starts a cutover or rollback at `path` and prints each step as it happens until it ends.
async fn follow(config: &Config, request: &Request, path: &str, to: Side) -> (i32, Option<String>) {
    let what = &path[1..];
    let listen = &config.http.listen;
    let token = config.cutover.token.as_ref().map(|t| t.expose());
    if let Err(e) = sidecar_understands(listen, path, request).await {
        eprintln!("turnout: {e}");
        return (crate::error::EXIT_FAILED, None);
    }
    let body = serde_json::to_string(request).unwrap_or_default();
    let id = match self::request(listen, "POST", path, Some(&body), token).await {
        Ok((202, body)) => serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["id"].as_str().map(str::to_owned)),
        Ok((code, body)) => {
            eprintln!("turnout: the sidecar refused the {what} (HTTP {code}): {}", error_of(&body));
            return (crate::error::EXIT_FAILED, None);
        }
        Err(e) => {
            eprintln!("turnout: cannot reach the sidecar at http://{listen}{path}: {e} (is `turnout run` running?)");
            return (crate::error::EXIT_FAILED, None);
        }
    };
    (watch(listen, path, to).await, id)
}

/// Refuses to ask a sidecar for a field it does not list as understood (a rehearsal, a gate): an
/// older one would ignore the field and run a plain cutover. The fields asked for are those the
/// request carries beyond [`Request::BASE`] (unset ones are not sent).
async fn sidecar_understands(listen: &str, path: &str, request: &Request) -> Result<(), Error> {
    let sent = serde_json::to_value(request).unwrap_or_default();
    let wanted: Vec<&String> = sent.as_object().into_iter().flat_map(|o| o.keys()).filter(|k| !Request::BASE.contains(&k.as_str())).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let sidecar = |reason: String| Error::Sidecar { url: format!("http://{listen}{path}"), reason };
    let body = get(listen, path).await.map_err(|e| sidecar(format!("cannot be reached: {e} (is `turnout run` running?)")))?;
    let progress: Progress = serde_json::from_str(&body).map_err(|e| sidecar(format!("unexpected answer: {e}")))?;
    let missing: Vec<&str> = wanted.into_iter().map(String::as_str).filter(|w| !progress.accepts.iter().any(|a| a == w)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(sidecar(format!(
            "it is older than this command and does not understand {}: it would run a plain {}. Restart `turnout run` \
             with this version first; nothing was changed",
            missing.join(", "),
            &path[1..]
        )))
    }
}

/// Prints each step of the running cutover (rollback) at `path` until it ends; returns the exit code.
async fn watch(listen: &str, path: &str, to: Side) -> i32 {
    let what = &path[1..];
    let mut printed = 0;
    let mut unreachable_since: Option<std::time::Instant> = None;
    loop {
        match get(listen, path).await.map(|b| serde_json::from_str::<Progress>(&b)) {
            Ok(Ok(p)) => {
                unreachable_since = None;
                for line in p.lines.iter().skip(printed) {
                    println!("{line}");
                }
                printed = p.lines.len();
                match p.outcome.as_deref() {
                    Some("done") => {
                        if let Some(ms) = p.write_pause_ms {
                            println!("traffic is on {to}; writes were paused for {ms} ms");
                        }
                        return 0;
                    }
                    Some("dry_run_ok") => return 0,
                    Some("rehearsed") => {
                        if let Some(ms) = p.write_pause_ms {
                            println!("rehearsed: writes were paused for {ms} ms; traffic stays where it was");
                        }
                        return 0;
                    }
                    Some("running") => {}
                    _ => return crate::error::EXIT_FAILED,
                }
            }
            Ok(Err(e)) => {
                eprintln!("turnout: unexpected answer from the sidecar: {e}");
                return crate::error::EXIT_FAILED;
            }
            Err(e) => {
                let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_secs(30) {
                    eprintln!(
                        "turnout: lost contact with the sidecar during the {what}: {e}. Its journal settles the {what} when \
                         `turnout run` restarts; check `turnout status`"
                    );
                    return crate::error::EXIT_FAILED;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
