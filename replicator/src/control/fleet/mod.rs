//! `turnout fleet cutover`, `fleet rollback`, `fleet finish` and `fleet status`: the coordinator's
//! side of a fleet cutover or rollback ([`crate::fleet`]). A rollback is the same protocol the other
//! way: every pair fences green, proves blue has everything through its reverse stream, votes, and
//! one commit in etcd sends every pair back to blue or none. The coordinator gates the fleet (every pair's dry run), opens the decision in etcd,
//! asks every sidecar for its part, says `go` once every pair is ready, and decides: `commit` only
//! in the etcd transaction that finds every vote `prepared`, within the pause budget; `abort`
//! otherwise. It keeps no state of its own: killed at any step, the decision in etcd and the
//! sidecars' holds settle the fleet without it.

use crate::cutover::{Progress, Request};
use crate::error::{Error, EXIT_FAILED};
use crate::fleet::config::{FleetFile, Pair};
use crate::fleet::etcd::{self, Decision, Ledger, View};
use crate::fleet::{now_ms, Ticket};
use crate::http_client::{error_of, get};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod status;
pub mod waves;

pub use status::{serve_status, status};

/// Which way a fleet's traffic moves: `fleet cutover` (blue → green) or `fleet rollback`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Way {
    #[default]
    Cutover,
    Rollback,
}

impl Way {
    /// The sidecar's endpoint for this way.
    pub fn path(self) -> &'static str {
        match self {
            Way::Cutover => "/cutover",
            Way::Rollback => "/rollback",
        }
    }

    /// The word for it, as the commands name it.
    pub fn word(self) -> &'static str {
        &self.path()[1..]
    }

    /// The side writes leave and the side they move to.
    pub fn ends(self) -> (turnout_decoders::Side, turnout_decoders::Side) {
        use turnout_decoders::Side;
        match self {
            Way::Cutover => (Side::Blue, Side::Green),
            Way::Rollback => (Side::Green, Side::Blue),
        }
    }
}

/// What `turnout fleet cutover` (or `fleet rollback`) was asked.
#[derive(Clone, Debug)]
pub struct CutoverArgs {
    pub way: Way,
    pub when_lag_ms: u64,
    pub timeout_ms: u64,
    /// The fleet's pause budget: from the first fence to the decision, for every pair.
    pub max_pause_ms: u64,
    pub rehearse: bool,
    pub verify: bool,
    pub report: Option<std::path::PathBuf>,
    /// `--waves` and its soak: one decision per wave (a cutover only).
    pub waves: Option<waves::Waves>,
}

/// Each pair's last progress, as its follower read it.
type Progresses = Arc<Mutex<BTreeMap<String, Progress>>>;

/// `turnout fleet cutover` or `fleet rollback`; returns the exit code: 0 only when every pair
/// switched (or, rehearsing, every pair rehearsed).
pub async fn cutover(file: &FleetFile, args: &CutoverArgs) -> i32 {
    match run(file, args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("turnout: {e}");
            EXIT_FAILED
        }
    }
}

async fn run(file: &FleetFile, args: &CutoverArgs) -> Result<i32, Error> {
    if let Some(waves) = &args.waves {
        return waves::run(file, args, waves).await;
    }
    let file = &in_reach(file, args.way).await?;
    let (code, certificate) = decide_once(file, args).await?;
    if let (Some(path), Some(certificate)) = (&args.report, certificate) {
        return Ok(save(path, &certificate).unwrap_or(EXIT_FAILED).max(code));
    }
    Ok(code)
}

/// Writes the fleet's certificate to `path`; 0, or why not.
fn save(path: &std::path::Path, certificate: &serde_json::Value) -> Option<i32> {
    let text = serde_json::to_string_pretty(certificate).unwrap_or_default();
    match std::fs::write(path, text) {
        Ok(()) => {
            println!("fleet certificate saved to {}", path.display());
            Some(0)
        }
        Err(e) => {
            eprintln!("turnout: writing {}: {e}", path.display());
            None
        }
    }
}

/// The pairs a fleet rollback reaches: those in their rollback window (the others are on blue
/// already: said, and left alone). A cutover reaches every pair of the file.
async fn in_reach(file: &FleetFile, way: Way) -> Result<FleetFile, Error> {
    if way == Way::Cutover {
        return Ok(file.clone());
    }
    let mut reached = file.clone();
    reached.pairs.clear();
    for p in &file.pairs {
        // Only a pair that says its traffic is settled on blue is left alone: an unreachable or
        // unsettled one (a switch failed after a commit, completed at its restart) is the gate's to
        // refuse, so the fleet never comes back split.
        if traffic(p).await == Traffic::On(turnout_decoders::Side::Blue) {
            println!("[{}] on blue (no rollback window): left as it is", p.name);
        } else {
            reached.pairs.push(p.clone());
        }
    }
    if reached.pairs.is_empty() {
        return Err(crate::error::FleetRefusal::NoneOnGreen { fleet: file.name.clone() }.into());
    }
    Ok(reached)
}

/// The pair's sidecar's `/status`, when it answers.
async fn pair_status(pair: &Pair) -> Option<serde_json::Value> {
    get(&pair.control, "/status").await.ok().and_then(|b| serde_json::from_str(&b).ok())
}

/// Where the pair's sidecar says its traffic is (`/status`'s `traffic`; `unknown` when it cannot
/// be read).
async fn traffic(pair: &Pair) -> Traffic {
    Traffic::of(pair_status(pair).await.as_ref().and_then(|s| s["traffic"].as_str()).unwrap_or("unknown"))
}

/// Where a pair's traffic is, as its sidecar's `/status` says.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Traffic {
    On(turnout_decoders::Side),
    /// Between a fence and a settled end (its journal finishes it when its sidecar runs).
    Unsettled,
    /// Anything else the sidecar says (`unknown` while it settles), or no answer.
    Other(String),
}

impl Traffic {
    fn of(word: &str) -> Traffic {
        use turnout_decoders::Side;
        match word {
            "blue" => Traffic::On(Side::Blue),
            "green" => Traffic::On(Side::Green),
            "unsettled" => Traffic::Unsettled,
            other => Traffic::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Traffic::On(side) => write!(f, "{side}"),
            Traffic::Unsettled => f.write_str("unsettled"),
            Traffic::Other(word) => f.write_str(word),
        }
    }
}

/// One all-or-none decision over every pair of `file`: the gate, the decision, the report. Returns
/// the exit code and, once a decision was opened, the fleet's certificate.
async fn decide_once(file: &FleetFile, args: &CutoverArgs) -> Result<(i32, Option<serde_json::Value>), Error> {
    let client = etcd::connect(&file.etcd).await?;
    let id = format!("{}-{}", file.name, now_ms());
    let ticket = |pair: &Pair| Ticket { fleet: file.name.clone(), id: id.clone(), pair: pair.name.clone() };
    let base = Request {
        when_lag_ms: args.when_lag_ms,
        timeout_ms: args.timeout_ms,
        max_pause_ms: args.max_pause_ms,
        rehearse: args.rehearse,
        verify: args.verify,
        ..Request::default()
    };
    // 1. The gate: every pair's dry run (its preflight, lag, fence and switch ready, etcd reachable).
    println!("fleet {} ({} pairs): checking every pair for a {}", file.name, file.pairs.len(), args.way.word());
    let checks = futures_util::future::join_all(file.pairs.iter().map(|p| {
        let request = Request { dry_run: true, rehearse: false, fleet: Some(ticket(p)), ..base.clone() };
        async move { (p.name.clone(), start_and_follow(p, args.way, &request, None).await) }
    }))
    .await;
    let refused: Vec<String> = checks
        .iter()
        .filter_map(|(name, r)| match r {
            Ok(p) if p.outcome.as_deref() == Some("dry_run_ok") => None,
            Ok(p) => Some(format!("{name}: {}", p.lines.last().cloned().unwrap_or_else(|| "dry run failed".into()))),
            Err(e) => Some(format!("{name}: {e}")),
        })
        .collect();
    if !refused.is_empty() {
        eprintln!("turnout: the fleet's gate refused; nothing was changed:\n  {}", refused.join("\n  "));
        return Ok((EXIT_FAILED, None));
    }
    // 2. The decision, `preparing`, and the record.
    let mut ledger = Ledger::new(client, &file.name, &id);
    let pairs: Vec<String> = file.pairs.iter().map(|p| p.name.clone()).collect();
    let record = serde_json::json!({
        "pairs": pairs,
        "way": args.way.word(),
        "max_pause_ms": args.max_pause_ms,
        "rehearse": args.rehearse,
        "opened_at_ms": now_ms(),
    });
    ledger.open(&record).await?;
    println!("fleet {} {id}: decision preparing", args.way.word());
    // 3. Every pair's part, followed in the background.
    let progress: Progresses = Arc::default();
    let mut followers = Vec::new();
    for p in &file.pairs {
        let request = Request { fleet: Some(ticket(p)), ..base.clone() };
        let (pair, progress, way) = (p.clone(), Arc::clone(&progress), args.way);
        followers.push(tokio::spawn(async move {
            let followed = start_and_follow(&pair, way, &request, Some(&progress)).await;
            // A sidecar that refused or went silent has ended as far as the decision goes.
            if let Err(e) = &followed {
                println!("[{}] {e}", pair.name);
                let lost = Progress { outcome: Some("unreachable".into()), lines: vec![e.to_string()], ..Progress::default() };
                progress.lock().unwrap_or_else(|p| p.into_inner()).insert(pair.name.clone(), lost);
            }
            followed
        }));
    }
    // 4. `go` once every pair is ready; 5. the decision.
    let decided = decide(&mut ledger, &pairs, args, &progress).await;
    let (decision, revision) = match decided {
        Ok(d) => d,
        Err(e) => {
            eprintln!("turnout: deciding failed: {e}; aborting the fleet (a pair holding past its hold aborts it too)");
            ledger.abort().await.unwrap_or((Decision::Preparing, 0))
        }
    };
    println!("fleet decision: {} (etcd revision {revision})", decision.as_str());
    if decision == Decision::Preparing {
        println!("waiting for the pairs: each aborts the fleet when its hold runs out, once etcd answers");
    }
    for f in followers {
        let _ = f.await;
    }
    // The decision as etcd holds it at the end (a pair may have decided after the coordinator).
    let view = ledger.view().await.ok();
    let (decision, revision) = view.as_ref().and_then(|v| v.decision.map(|d| (d, v.decided_at))).unwrap_or((decision, revision));
    Ok(report(file, args, &id, decision, revision, view.as_ref(), &progress).await)
}

/// Says `go` once every pair is ready, then decides: `commit` when every vote is in within the
/// budget, `abort` when a pair failed, the budget ran out or the pairs were not ready in time.
/// Returns the decision as etcd holds it and its revision.
async fn decide(ledger: &mut Ledger, pairs: &[String], args: &CutoverArgs, progress: &Progresses) -> Result<(Decision, i64), Error> {
    let ready_until = Instant::now() + Duration::from_millis(args.timeout_ms) + Duration::from_secs(30);
    let failed = |progress: &Progresses| {
        let p = progress.lock().unwrap_or_else(|p| p.into_inner());
        p.iter()
            .find(|(_, p)| p.outcome.as_deref().is_some_and(|o| o != "running"))
            .map(|(name, p)| (name.clone(), p.lines.last().cloned().unwrap_or_default()))
    };
    let mut changes = ledger.changes().await;
    loop {
        let view = ledger.view().await?;
        if view.decision != Some(Decision::Preparing) {
            return Ok((view.decision.unwrap_or(Decision::Abort), view.decided_at));
        }
        if pairs.iter().all(|p| view.ready.contains_key(p)) {
            let now = ledger.go().await?;
            if now != Decision::Preparing {
                return Ok((now, view.revision));
            }
            println!("every pair is ready: go");
            break;
        }
        if let Some((name, why)) = failed(progress) {
            println!("pair {name} ended before the fence ({why}): aborting");
            return ledger.abort().await;
        }
        if Instant::now() >= ready_until {
            println!("not every pair was ready in time: aborting");
            return ledger.abort().await;
        }
        // A pair that ends before the fence is seen through its sidecar, not etcd: looked at every 50 ms.
        changes.next((Instant::now() + Duration::from_millis(50)).min(ready_until)).await;
    }
    // The budget on this machine's own clock, from `go`: the sidecars' clocks are not compared.
    let budget = Duration::from_millis(args.max_pause_ms);
    let spent_at = Instant::now() + budget;
    if args.rehearse {
        // Every pair lifts its own fence after its proof; the record is closed once they did (or
        // the proof's budget and the followers' patience ran out).
        let ended = |progress: &Progresses| {
            let p = progress.lock().unwrap_or_else(|p| p.into_inner());
            pairs.iter().all(|name| p.get(name).is_some_and(|p| p.outcome.as_deref() != Some("running")))
        };
        let give_up = spent_at + Duration::from_secs(90);
        while !ended(progress) && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        return ledger.abort().await;
    }
    loop {
        let view = ledger.view().await?;
        if view.decision != Some(Decision::Preparing) {
            return Ok((view.decision.unwrap_or(Decision::Abort), view.decided_at));
        }
        let spent = Instant::now() >= spent_at;
        if pairs.iter().all(|p| view.votes.get(p).is_some_and(|v| v == "prepared")) && !spent {
            let decided = ledger.commit(pairs).await?;
            if decided.0 != Decision::Preparing {
                return Ok(decided);
            }
            continue;
        }
        if spent {
            println!("the fleet's pause budget ({} ms from go) ran out before every pair voted: aborting", budget.as_millis());
            return ledger.abort().await;
        }
        if let Some((name, why)) = failed(progress) {
            println!("pair {name} failed ({why}): aborting");
            return ledger.abort().await;
        }
        // A pair that fails is seen through its sidecar, not etcd: looked at every 50 ms.
        changes.next((Instant::now() + Duration::from_millis(50)).min(spent_at)).await;
    }
}

/// Starts `request` at the pair's sidecar (its cutover or rollback, as `way` says) and follows it
/// until it ends, printing each new line prefixed with the pair's name (when `shared` is given, also
/// keeping it there). Returns the last progress.
async fn start_and_follow(pair: &Pair, way: Way, request: &Request, shared: Option<&Progresses>) -> Result<Progress, Error> {
    let path = way.path();
    let sidecar = |reason: String| Error::Sidecar { url: format!("http://{}{path}", pair.control), reason };
    let token = pair.token.as_ref().map(|t| t.expose());
    let body = serde_json::to_string(request).unwrap_or_default();
    let (code, answer) = crate::http_client::request(&pair.control, "POST", path, Some(&body), token)
        .await
        .map_err(|e| sidecar(format!("cannot be reached: {e} (is `turnout run` running?)")))?;
    if code != 202 {
        return Err(sidecar(format!("refused (HTTP {code}): {}", error_of(&answer))));
    }
    let mut printed = 0;
    let mut unreachable_since: Option<Instant> = None;
    loop {
        // Once per poll: a sidecar that restarted and settles answers 503 meanwhile, counted as out of contact.
        match crate::http_client::get_once(&pair.control, path, Duration::from_secs(5)).await.map(|b| serde_json::from_str::<Progress>(&b)) {
            Ok(Ok(p)) => {
                unreachable_since = None;
                if shared.is_some() {
                    for line in p.lines.iter().skip(printed) {
                        println!("[{}] {line}", pair.name);
                    }
                    printed = p.lines.len();
                }
                if let Some(shared) = shared {
                    shared.lock().unwrap_or_else(|p| p.into_inner()).insert(pair.name.clone(), p.clone());
                }
                if p.outcome.as_deref() != Some("running") {
                    return Ok(p);
                }
            }
            Ok(Err(e)) => return Err(sidecar(format!("answered what is not a cutover's progress: {e}"))),
            Err(e) => {
                // A sidecar restarting settles its part from its journal and the decision.
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(60) {
                    return Err(sidecar(format!("lost contact for 60 s: {e}; its journal and the fleet's decision settle it when it restarts")));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints what every pair did and the fleet's pause. Returns the exit code and the fleet's
/// certificate.
async fn report(
    file: &FleetFile,
    args: &CutoverArgs,
    id: &str,
    decision: Decision,
    revision: i64,
    view: Option<&View>,
    progress: &Progresses,
) -> (i32, Option<serde_json::Value>) {
    let progress = progress.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let want = if args.rehearse { "rehearsed" } else { "done" };
    let mut all = true;
    let mut rows = Vec::new();
    for p in &file.pairs {
        let outcome = progress.get(&p.name).and_then(|p| p.outcome.clone()).unwrap_or_else(|| "unknown".into());
        all &= outcome == want;
        let pause = progress.get(&p.name).and_then(|p| p.write_pause_ms);
        println!("  {:<16} {:<10} write pause {}", p.name, outcome, pause.map_or("-".into(), |ms| format!("{ms} ms")));
        let certificate = match get(&p.control, &format!("{}/report", args.way.path())).await {
            Ok(body) => serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["digest"].as_str().map(str::to_owned)),
            Err(_) => None,
        };
        rows.push(serde_json::json!({
            "pair": p.name,
            "control": p.control,
            "outcome": outcome,
            "write_pause_ms": pause,
            "vote": view.and_then(|v| v.votes.get(&p.name)),
            "prepared": view.and_then(|v| v.prepared.get(&p.name)),
            "did": view.and_then(|v| v.outcomes.get(&p.name)),
            "certificate_digest": certificate,
        }));
    }
    // Each machine's clock: close on one host or with NTP, never below 0.
    let fleet_pause = view.and_then(|v| {
        let first = v.prepared.values().map(|p| p.fenced_at_ms).min()?;
        let last = v.outcomes.values().map(|o| o.at_ms).max()?;
        Some((last - first).max(0))
    });
    if let Some(ms) = fleet_pause {
        println!("fleet pause (first fence to last pair done): {ms} ms");
    }
    let (from, to) = args.way.ends();
    let done = if args.way == Way::Cutover { "cut over" } else { "rolled back" };
    let verdict = match (decision, all) {
        (Decision::Commit, true) => format!("fleet {} {done}: every pair is on {to}", file.name),
        (Decision::Abort, _) if args.rehearse && all => format!("fleet {} rehearsed: every pair lifted its fence", file.name),
        (Decision::Abort, _) => format!("fleet {} aborted: every pair undid its fence; traffic stays on {from}", file.name),
        _ => format!("fleet {}: decision {}, not every pair ended as expected — see above and `turnout fleet status`", file.name, decision.as_str()),
    };
    println!("{verdict}");
    let certificate = serde_json::json!({
        "kind": format!("fleet-{}", args.way.word()),
        "fleet": file.name,
        "id": id,
        "decision": decision.as_str(),
        "decision_revision": revision,
        "fleet_pause_ms": fleet_pause,
        "pairs": rows,
    });
    let ok = all && (decision == Decision::Commit || (args.rehearse && decision == Decision::Abort));
    (if ok { 0 } else { EXIT_FAILED }, Some(certificate))
}

/// `turnout fleet finish`: ends every pair's rollback window (each sidecar's `POST /finish`), all
/// of them asked at once; returns 0 only when every pair ended its window.
pub async fn finish(file: &FleetFile) -> i32 {
    let asked = futures_util::future::join_all(file.pairs.iter().map(|p| async move {
        let token = p.token.as_ref().map(|t| t.expose());
        (p, crate::http_client::request(&p.control, "POST", "/finish", None, token).await)
    }))
    .await;
    let mut all = true;
    for (p, answer) in asked {
        match answer {
            Ok((200, body)) => {
                let lines = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["done"].as_array().cloned()).unwrap_or_default();
                for line in lines {
                    println!("[{}] {}", p.name, line.as_str().unwrap_or_default());
                }
            }
            Ok((code, body)) => {
                all = false;
                println!("[{}] refused (HTTP {code}): {}", p.name, error_of(&body));
            }
            Err(e) => {
                all = false;
                println!("[{}] cannot be reached: {e} (is `turnout run` running?)", p.name);
            }
        }
    }
    if all {
        println!("fleet {}: every pair's rollback window is finished", file.name);
        0
    } else {
        eprintln!("turnout: not every pair finished its rollback window (see above); `turnout fleet finish` again finishes the rest");
        EXIT_FAILED
    }
}
