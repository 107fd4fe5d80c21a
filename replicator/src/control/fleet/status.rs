//! `turnout fleet status`: every pair's side, phase, lag, alerts and last cutover or rollback as its
//! sidecar says, and the fleet's last decision as etcd keeps it — printed once, as JSON, or served
//! as a page (`--serve ADDR`) that reads it again every two seconds, so that an operator watching
//! waves go sees at a glance which pairs are on green, which are healthy and what was decided.
//!
//! Read-only: it asks each sidecar's API and etcd, and changes nothing.

use super::pair_status;
use crate::cutover::Progress;
use crate::error::{Error, EXIT_CONFIG, EXIT_FAILED};
use crate::fleet::config::FleetFile;
use crate::fleet::etcd::{self, Decision, Ledger};
use crate::http_client::get;
use std::net::SocketAddr;
use std::sync::Arc;

/// The fleet as its sidecars and etcd show it now, and whether every sidecar answered.
pub async fn snapshot(file: &FleetFile) -> (serde_json::Value, bool) {
    let pairs = futures_util::future::join_all(file.pairs.iter().map(|p| async move {
        let (status, cutover, rollback) = tokio::join!(pair_status(p), progress(&p.control, "/cutover"), progress(&p.control, "/rollback"));
        serde_json::json!({
            "pair": p.name,
            "group": p.group,
            "control": p.control,
            "reachable": status.is_some(),
            "traffic": status.as_ref().and_then(|s| s["traffic"].as_str().map(str::to_owned)),
            "phase": status.as_ref().map(|s| s["phase"].clone()),
            "lag_seconds": status.as_ref().map(|s| s["lag_seconds"].clone()),
            "alerts": status.as_ref().map(|s| s["alerts"].clone()),
            "cutover": cutover.as_ref().and_then(|c| c.outcome.clone()),
            "write_pause_ms": cutover.as_ref().and_then(|c| c.write_pause_ms),
            "rollback": rollback.as_ref().and_then(|c| c.outcome.clone()),
        })
    }))
    .await;
    let last = match fleet_record(file).await {
        Ok(v) => v,
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    let all_reachable = pairs.iter().all(|p| p["reachable"] == true);
    let on_green = pairs.iter().filter(|p| p["traffic"] == "green").count();
    (serde_json::json!({ "fleet": file.name, "pairs": pairs, "on_green": on_green, "last": last }), all_reachable)
}

async fn progress(control: &str, path: &str) -> Option<Progress> {
    get(control, path).await.ok().and_then(|b| serde_json::from_str::<Progress>(&b).ok())
}

/// `turnout fleet status`: printed once (as JSON with `json`); 0 when every sidecar answered.
pub async fn status(file: &FleetFile, json: bool) -> i32 {
    let (view, all_reachable) = snapshot(file).await;
    if json {
        println!("{view}");
    } else {
        print!("{}", text(&view));
    }
    if all_reachable {
        0
    } else {
        EXIT_FAILED
    }
}

/// The fleet's view as the command prints it.
fn text(view: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let pairs = view["pairs"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "fleet {} ({} of {} pairs on green)", view["fleet"].as_str().unwrap_or_default(), view["on_green"], pairs.len());
    let _ = writeln!(out, "  {:<16} {:<10} {:<10} {:>10}  {:<10} alerts", "pair", "on", "phase", "lag", "cutover");
    for p in &pairs {
        let lag = p["lag_seconds"].as_f64().map_or("-".into(), |l| format!("{l:.3} s"));
        let phase = p["phase"].as_str().unwrap_or("unreachable");
        let cutover = p["cutover"].as_str().unwrap_or("-");
        let on = p["traffic"].as_str().unwrap_or("-");
        let alerts = p["alerts"].as_array().map_or(0, Vec::len);
        let _ = writeln!(out, "  {:<16} {on:<10} {phase:<10} {lag:>10}  {cutover:<10} {alerts}", p["pair"].as_str().unwrap_or_default());
    }
    let last = &view["last"];
    match last["id"].as_str() {
        Some(id) => {
            let _ = writeln!(out, "last fleet {} {id}: decision {}", last["way"].as_str().unwrap_or("cutover"), last["decision"].as_str().unwrap_or("unknown"));
        }
        None => {
            let _ = writeln!(out, "no fleet cutover recorded in etcd{}", last["error"].as_str().map_or(String::new(), |e| format!(" ({e})")));
        }
    }
    out
}

/// The fleet's last cutover in etcd: its id, decision, votes and outcomes.
async fn fleet_record(file: &FleetFile) -> Result<serde_json::Value, Error> {
    let mut client = etcd::connect(&file.etcd).await?;
    let Some(id) = Ledger::current(&mut client, &file.name).await? else { return Ok(serde_json::json!({})) };
    let view = Ledger::new(client, &file.name, &id).view().await?;
    Ok(serde_json::json!({
        "id": id,
        "way": view.record.as_ref().and_then(|r| r["way"].as_str().map(str::to_owned)).unwrap_or_else(|| "cutover".into()),
        "decision": view.decision.map(Decision::as_str),
        "revision": view.decided_at,
        "votes": view.votes,
        "prepared": view.prepared,
        "outcomes": view.outcomes,
    }))
}

/// The page `turnout fleet status --serve` answers `/` with (it reads `/fleet.json`).
const PAGE: &str = include_str!("page.html");

/// `turnout fleet status --serve ADDR`: the fleet's page at `/`, its view at `/fleet.json` (read
/// afresh for each request), until interrupted. Returns the exit code.
pub async fn serve_status(file: &FleetFile, listen: SocketAddr) -> i32 {
    use axum::response::Html;
    use axum::routing::get as route;
    let file = Arc::new(file.clone());
    let app = axum::Router::new().route("/", route(|| async { Html(PAGE) })).route(
        "/fleet.json",
        route(move || {
            let file = Arc::clone(&file);
            async move { axum::Json(snapshot(&file).await.0) }
        }),
    );
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("turnout: cannot listen on {listen}: {e} (choose another address with --serve)");
            return EXIT_CONFIG;
        }
    };
    println!("serving the fleet's page on http://{}/ (Ctrl-C ends it)", listener.local_addr().map_or(listen, |a| a));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, app).with_graceful_shutdown(stop).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("turnout: the fleet's page stopped: {e}");
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_each_pairs_side_and_the_last_decision() {
        let view = serde_json::json!({
            "fleet": "shop",
            "on_green": 1,
            "pairs": [
                { "pair": "a", "traffic": "green", "phase": "streaming", "lag_seconds": 0.25, "cutover": "done", "alerts": [] },
                { "pair": "b", "traffic": null, "phase": null, "lag_seconds": null, "cutover": null, "alerts": null },
            ],
            "last": { "id": "shop-1", "way": "cutover", "decision": "commit" },
        });
        let out = text(&view);
        assert!(out.starts_with("fleet shop (1 of 2 pairs on green)"), "{out}");
        assert!(out.contains("a                green      streaming     0.250 s  done"), "{out}");
        assert!(out.contains("b                -          unreachable"), "{out}");
        assert!(out.contains("last fleet cutover shop-1: decision commit"), "{out}");
    }
}
