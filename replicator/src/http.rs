//! The HTTP API on `http.listen`: `/` (the live status page), `/healthz`, `/status` (JSON), `/metrics`
//! (Prometheus text), `POST /cutover` / `GET /cutover` (start a cutover, follow its steps), `POST
//! /rollback` / `GET /rollback` (the same back to blue in the rollback window), `GET /cutover/report`
//! and `GET /rollback/report` (the last one's certificate), `POST /finish` (end
//! the rollback window), `POST /verify/hold` (`turnout verify --live` holds the apply at its
//! position for a moment; see [`crate::pipeline::hold`]) and `GET` / `POST /canary` (the read
//! canary, [`crate::canary`]).
//!
//! Every POST needs `Authorization: Bearer <cutover.token>` when a token is configured; without one
//! it is accepted only from loopback addresses.

use crate::cutover::{Controller, Request};
use crate::pipeline::hold::Reach;
use crate::pipeline::signals::Channels;
use crate::status::{Phase, Status};
use axum::extract::{ConnectInfo, FromRef, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// The cutover and rollback controllers of a running sidecar, and its read canary.
#[derive(Clone, Debug)]
pub struct Controllers {
    pub cutover: Arc<Controller>,
    pub rollback: Arc<Controller>,
    pub canary: Arc<crate::canary::Canary>,
}

/// The controllers once the sidecar has them: empty while a restarted sidecar settles what its
/// journal left (the API answers meanwhile; the endpoints that act answer 503).
pub type ControllerSlot = Arc<std::sync::OnceLock<Controllers>>;

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    status: Arc<Status>,
    channels: Arc<Channels>,
    controllers: ControllerSlot,
}

impl FromRef<AppState> for Arc<Status> {
    fn from_ref(state: &AppState) -> Arc<Status> {
        Arc::clone(&state.status)
    }
}

/// Binds `listen` and serves until `shutdown` turns true. Binding errors are returned at once.
/// Without a controller, `/cutover` answers 503.
pub async fn serve(
    listen: SocketAddr,
    status: Arc<Status>,
    channels: Arc<Channels>,
    controllers: ControllerSlot,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let app = Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/status", get(status_json))
        .route("/metrics", get(metrics))
        .route("/cutover", get(cutover_progress).post(cutover_start))
        .route("/rollback", get(rollback_progress).post(rollback_start))
        .route("/cutover/report", get(cutover_report))
        .route("/rollback/report", get(rollback_report))
        .route("/finish", post(finish))
        .route("/rogue-writes", get(rogue_writes))
        .route("/rogue-writes/acknowledge", post(rogue_writes_acknowledge))
        .route("/verify/hold", post(verify_hold))
        .route("/canary", get(canary_status).post(canary_ask))
        .route("/handover", get(handover))
        .with_state(AppState { status, channels, controllers });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
    }))
}

/// The live status page: one self-contained document (no external assets, so it works in air-gapped
/// clusters) that polls `/status` and `/cutover` every second and draws lag over the last minutes.
async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Nothing but this document and the API it polls.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"),
        ],
        include_str!("page.html"),
    )
}

fn unavailable() -> (StatusCode, Json<serde_json::Value>) {
    let error = "the sidecar is settling what its journal left after a restart (an interrupted cutover or rollback, a fleet's decision); try again in a moment";
    (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": error })))
}

fn progress_of(controller: Option<&Arc<Controller>>) -> (StatusCode, Json<serde_json::Value>) {
    match controller {
        Some(c) => (StatusCode::OK, Json(serde_json::to_value(c.progress()).unwrap_or_default())),
        None => unavailable(),
    }
}

async fn cutover_progress(State(state): State<AppState>) -> impl IntoResponse {
    progress_of(state.controllers.get().map(|c| &c.cutover))
}

async fn rollback_progress(State(state): State<AppState>) -> impl IntoResponse {
    progress_of(state.controllers.get().map(|c| &c.rollback))
}

/// The certificate of the controller's last cutover (rollback, rehearsal), as kept: 404 before any.
fn report_of(controller: Option<&Arc<Controller>>) -> axum::response::Response {
    let Some(controller) = controller else { return unavailable().into_response() };
    let what = controller.direction().what();
    match controller.certificate() {
        Ok(Some(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": format!("no {what} has written a certificate yet")}))).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({"error": e.to_string()}))).into_response(),
    }
}

async fn cutover_report(State(state): State<AppState>) -> impl IntoResponse {
    report_of(state.controllers.get().map(|c| &c.cutover))
}

async fn rollback_report(State(state): State<AppState>) -> impl IntoResponse {
    report_of(state.controllers.get().map(|c| &c.rollback))
}

/// Every POST needs the token when one is configured, and comes from this machine when not.
fn authorize(controller: &Controller, peer: SocketAddr, headers: &HeaderMap, path: &str) -> Result<(), (StatusCode, Json<serde_json::Value>)> {
    let error = |code: StatusCode, msg: String| (code, Json(serde_json::json!({ "error": msg })));
    match controller.token() {
        Some(token) => {
            let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                return Err(error(StatusCode::UNAUTHORIZED, "missing or wrong cutover token (Authorization: Bearer <cutover.token>)".into()));
            }
        }
        None if !peer.ip().is_loopback() => {
            return Err(error(StatusCode::FORBIDDEN, format!("POST {path} is accepted only from this machine unless cutover.token is set")));
        }
        None => {}
    }
    Ok(())
}

fn start(controller: Option<&Arc<Controller>>, peer: SocketAddr, headers: &HeaderMap, path: &str, request: Request) -> (StatusCode, Json<serde_json::Value>) {
    let Some(controller) = controller else { return unavailable() };
    if let Err(refused) = authorize(controller, peer, headers, path) {
        return refused;
    }
    match controller.start(request) {
        Ok(id) => (StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))),
        Err(e) => (StatusCode::CONFLICT, Json(serde_json::json!({ "error": e.to_string() }))),
    }
}

async fn cutover_start(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(request): Json<Request>,
) -> impl IntoResponse {
    start(state.controllers.get().map(|c| &c.cutover), peer, &headers, "/cutover", request)
}

async fn rollback_start(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(request): Json<Request>,
) -> impl IntoResponse {
    start(state.controllers.get().map(|c| &c.rollback), peer, &headers, "/rollback", request)
}

/// `POST /finish`: ends the rollback window; answers the lines of what was done.
async fn finish(State(state): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> impl IntoResponse {
    let Some(controllers) = state.controllers.get() else { return unavailable() };
    if let Err(refused) = authorize(&controllers.rollback, peer, &headers, "/finish") {
        return refused;
    }
    match controllers.rollback.finish().await {
        Ok(lines) => (StatusCode::OK, Json(serde_json::json!({ "done": lines }))),
        Err(e) => (StatusCode::CONFLICT, Json(serde_json::json!({ "error": e.to_string() }))),
    }
}

/// `GET /canary`: the read canary as `/status` shows it (`null` before any).
/// `GET /handover`: blue's downstream consumers and what the last cutover handed over to green.
async fn handover(State(state): State<AppState>) -> impl IntoResponse {
    let Some(controllers) = state.controllers.get() else { return unavailable() };
    (StatusCode::OK, Json(controllers.cutover.handover().await))
}

async fn canary_status(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.status.canary())
}

/// `POST /canary`: a new plan for the read canary, a change of plan, or its end (`reads: 0`);
/// answers the lines of what was done.
async fn canary_ask(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(ask): Json<crate::canary::Ask>,
) -> impl IntoResponse {
    let Some(controllers) = state.controllers.get() else { return unavailable() };
    if let Err(refused) = authorize(&controllers.cutover, peer, &headers, "/canary") {
        return refused;
    }
    match controllers.canary.ask(ask).await {
        Ok(lines) => (StatusCode::OK, Json(serde_json::json!({ "done": lines }))),
        Err(e) => (StatusCode::CONFLICT, Json(serde_json::json!({ "error": e.to_string() }))),
    }
}

/// `GET /rogue-writes`: the watch of each side for writes that are not turnout's.
async fn rogue_writes(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.status.watches())
}

/// What `POST /rogue-writes/acknowledge` carries: per side, the count of foreign writes the operator
/// saw listed.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    pub seen: std::collections::BTreeMap<crate::status::foreign::Side, u64>,
}

/// `POST /rogue-writes/acknowledge`: the operator acknowledges the foreign writes they saw listed
/// (refused for a side whose count moved since); answers one line per side.
async fn rogue_writes_acknowledge(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(ack): Json<Acknowledgement>,
) -> impl IntoResponse {
    let Some(controllers) = state.controllers.get() else { return unavailable() };
    if let Err(refused) = authorize(&controllers.cutover, peer, &headers, "/rogue-writes/acknowledge") {
        return refused;
    }
    match controllers.cutover.acknowledge_rogue_writes(&ack.seen) {
        Ok(lines) => (StatusCode::OK, Json(serde_json::json!({ "done": lines }))),
        Err(e) => (StatusCode::CONFLICT, Json(serde_json::json!({ "error": e.to_string() }))),
    }
}

/// One step of a live verify's hold (`POST /verify/hold`).
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct HoldStep {
    /// `arm`, `at` (with `position`) or `release`.
    pub step: String,
    /// The source position to hold at (`at`): see [`hold_position`].
    #[serde(default)]
    pub position: Option<String>,
    /// How long this stage may last, milliseconds (capped; see `pipeline::hold::MAX_TTL`).
    #[serde(default)]
    pub ttl_ms: u64,
    /// Who holds (`arm`): the same holder may arm again to extend its hold.
    #[serde(default)]
    pub holder: String,
}

/// A source position as [`HoldStep::position`] carries it: a PostgreSQL LSN as PostgreSQL prints it,
/// a binlog position as JSON (file, offset and GTID state).
pub fn hold_position(position: &turnout_decoders::Position) -> String {
    match position {
        turnout_decoders::Position::Pg(lsn) => lsn.to_string(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn parse_hold_position(text: &str) -> Option<turnout_decoders::Position> {
    text.parse::<turnout_decoders::Lsn>().ok().map(turnout_decoders::Position::Pg).or_else(|| serde_json::from_str(text).ok())
}

/// `POST /verify/hold`: `arm` and `release` answer at once; `at` answers when green holds at the
/// position, with the last source position applied (`committed`).
async fn verify_hold(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(step): Json<HoldStep>,
) -> (StatusCode, Json<serde_json::Value>) {
    let Some(controllers) = state.controllers.get() else { return unavailable() };
    if let Err(refused) = authorize(&controllers.cutover, peer, &headers, "/verify/hold") {
        return refused;
    }
    let conflict = |e: String| (StatusCode::CONFLICT, Json(serde_json::json!({ "error": e })));
    let hold = &state.channels.hold;
    let ttl = std::time::Duration::from_millis(step.ttl_ms.max(1));
    if step.step != "release" && state.status.phase() != Phase::Streaming {
        hold.release();
        return conflict("the sidecar is not streaming (see `turnout status`); a live verify needs the apply running".into());
    }
    match step.step.as_str() {
        "arm" => {
            if controllers.cutover.running() || controllers.rollback.running() {
                return conflict("a cutover or rollback is running; verify after it".into());
            }
            match hold.arm(ttl, &step.holder) {
                Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "stage": "armed" }))),
                Err(e) => conflict(e.to_string()),
            }
        }
        "at" => {
            let Some(position) = step.position.as_deref().and_then(parse_hold_position) else {
                hold.release();
                return (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({ "error": "`at` needs a source position as `position`: a PostgreSQL LSN, or a binlog position in JSON" })),
                );
            };
            if let Err(e) = hold.at(position.clone(), ttl) {
                return conflict(e.to_string());
            }
            match hold.wait_reached(&position, ttl).await {
                Ok(Reach::Reached(committed)) => (StatusCode::OK, Json(serde_json::json!({ "stage": "reached", "committed": committed.to_string() }))),
                Ok(Reach::Passed) => {
                    hold.release();
                    (StatusCode::CONFLICT, Json(serde_json::json!({ "error": "the apply had passed the position; hold it armed first", "passed": true })))
                }
                Err(e) => {
                    hold.release();
                    conflict(e.to_string())
                }
            }
        }
        "release" => {
            hold.release();
            (StatusCode::OK, Json(serde_json::json!({ "stage": "idle" })))
        }
        other => (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": format!("unknown step '{other}' (arm, at, release)") }))),
    }
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The status with the live verify's hold as the pipeline's channels have it.
fn snapshot(state: &AppState) -> crate::status::Snapshot {
    let mut s = state.status.snapshot();
    s.verify_hold = state.channels.hold.current().name();
    match state.controllers.get() {
        Some(controllers) => s.traffic = controllers.cutover.traffic(),
        None => s.settling = true,
    }
    s
}

async fn status_json(State(state): State<AppState>) -> impl IntoResponse {
    Json(snapshot(&state))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let s = snapshot(&state);
    let mut out = String::new();
    // PostgreSQL positions are byte offsets in the WAL; a binlog position has no single number.
    if let Ok(applied) = s.applied_position.parse::<turnout_decoders::Lsn>() {
        let _ = writeln!(out, "# HELP turnout_applied_lsn Source position durably applied on green (bytes).");
        let _ = writeln!(out, "# TYPE turnout_applied_lsn gauge\nturnout_applied_lsn {}", applied.0);
    }
    let _ = writeln!(out, "# HELP turnout_reverse 1 while replicating green → blue in the rollback window after a cutover, else 0.");
    let _ = writeln!(out, "# TYPE turnout_reverse gauge\nturnout_reverse {}", u8::from(s.direction == crate::status::Direction::Reverse));
    let _ = writeln!(out, "# HELP turnout_generation The stream's generation: 1, and one more for each rollback that armed blue → green again.");
    let _ = writeln!(out, "# TYPE turnout_generation gauge\nturnout_generation {}", s.generation);
    window_metrics(&mut out, &s);
    rogue_metrics(&mut out, &s);
    verify_metrics(&mut out, &s);
    if let Some(canary) = &s.canary {
        crate::canary::metrics(canary, &mut out);
    }
    lag_metrics(&mut out, &s);
    apply_metrics(&mut out, &s);
    progress_metrics(&mut out, &s);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// Lag, the apply's rates and blue's slot.
fn lag_metrics(out: &mut String, s: &crate::status::Snapshot) {
    let _ = writeln!(out, "# HELP turnout_lag_bytes Source WAL end last reported by blue minus the applied position.");
    let _ = writeln!(out, "# TYPE turnout_lag_bytes gauge\nturnout_lag_bytes {}", s.lag_bytes);
    let _ = writeln!(out, "# HELP turnout_lag_seconds Age on blue's clock of the oldest transaction not yet durable on green (newest heartbeat when idle).");
    let _ = writeln!(out, "# TYPE turnout_lag_seconds gauge");
    if let Some(lag) = s.lag_seconds {
        let _ = writeln!(out, "turnout_lag_seconds {lag:.3}");
    }
    let _ = writeln!(out, "# HELP turnout_predicted_drain_seconds Lag in bytes divided by the recent apply rate.");
    let _ = writeln!(out, "# TYPE turnout_predicted_drain_seconds gauge");
    if let Some(d) = s.predicted_drain_seconds {
        let _ = writeln!(out, "turnout_predicted_drain_seconds {d:.3}");
    }
    let _ = writeln!(out, "# HELP turnout_apply_bytes_per_second Recent durable apply rate, bytes of source WAL per second.");
    let _ = writeln!(out, "# TYPE turnout_apply_bytes_per_second gauge\nturnout_apply_bytes_per_second {:.0}", s.apply_bytes_per_second);
    let _ = writeln!(out, "# HELP turnout_apply_rows_per_second Row changes applied per second since start.");
    let _ = writeln!(out, "# TYPE turnout_apply_rows_per_second gauge\nturnout_apply_rows_per_second {:.1}", s.rows_per_second);
    if let Some(slot) = &s.slot {
        let _ = writeln!(out, "# HELP turnout_slot_retained_wal_bytes WAL blue keeps for turnout's slot.");
        let _ = writeln!(out, "# TYPE turnout_slot_retained_wal_bytes gauge\nturnout_slot_retained_wal_bytes {}", slot.retained_bytes);
        if let Some(safe) = slot.safe_wal_bytes {
            let _ =
                writeln!(out, "# HELP turnout_slot_safe_wal_bytes WAL that can still be written before the slot risks losing WAL (max_slot_wal_keep_size).");
            let _ = writeln!(out, "# TYPE turnout_slot_safe_wal_bytes gauge\nturnout_slot_safe_wal_bytes {safe}");
        }
        let _ = writeln!(out, "# HELP turnout_slot_lost 1 when blue has removed WAL the slot needs (wal_status = lost).");
        let _ = writeln!(out, "# TYPE turnout_slot_lost gauge\nturnout_slot_lost {}", u8::from(slot.wal_status == "lost"));
    }
}

/// What the apply did and holds.
fn apply_metrics(out: &mut String, s: &crate::status::Snapshot) {
    let _ = writeln!(out, "# HELP turnout_rows_applied_total Row changes applied on green by streaming.");
    let _ = writeln!(out, "# TYPE turnout_rows_applied_total counter\nturnout_rows_applied_total {}", s.rows_applied);
    let _ = writeln!(out, "# HELP turnout_transactions_applied_total Source transactions applied on green.");
    let _ = writeln!(out, "# TYPE turnout_transactions_applied_total counter\nturnout_transactions_applied_total {}", s.transactions_applied);
    let _ = writeln!(out, "# HELP turnout_buffered_bytes Estimated memory held for source transactions not yet committed.");
    let _ = writeln!(out, "# TYPE turnout_buffered_bytes gauge\nturnout_buffered_bytes {}", s.buffered_bytes);
    let _ = writeln!(out, "# HELP turnout_spilled_bytes_total Bytes of large transactions spilled to the state store.");
    let _ = writeln!(out, "# TYPE turnout_spilled_bytes_total counter\nturnout_spilled_bytes_total {}", s.spilled_bytes_total);
    let _ = writeln!(out, "# HELP turnout_early_committed_total Large transactions applied on green while blue still sent them.");
    let _ = writeln!(out, "# TYPE turnout_early_committed_total counter\nturnout_early_committed_total {}", s.early_committed_total);
    let _ = writeln!(out, "# HELP turnout_early_given_up_total Transactions whose early apply was given up (applied whole at commit).");
    let _ = writeln!(out, "# TYPE turnout_early_given_up_total counter\nturnout_early_given_up_total {}", s.early_given_up_total);
}

/// The phase, the initial copy's progress and the alerts.
fn progress_metrics(out: &mut String, s: &crate::status::Snapshot) {
    let _ = writeln!(out, "# HELP turnout_phase 1 for the current phase.\n# TYPE turnout_phase gauge");
    for phase in [Phase::Starting, Phase::Snapshot, Phase::Streaming, Phase::Retrying, Phase::Stopped] {
        let name = serde_json::to_value(phase).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let _ = writeln!(out, "turnout_phase{{phase=\"{name}\"}} {}", u8::from(phase == s.phase));
    }
    let _ = writeln!(out, "# HELP turnout_snapshot_rows Rows copied by the initial snapshot, per table.\n# TYPE turnout_snapshot_rows gauge");
    for (table, p) in &s.tables {
        let _ = writeln!(out, "turnout_snapshot_rows{{table=\"{}\"}} {}", table.replace('\\', "\\\\").replace('"', "\\\""), p.rows);
    }
    if let Some(c) = &s.copy {
        let _ = writeln!(out, "# HELP turnout_copy_chunks Chunks of the chunked initial copy, in all and on green.\n# TYPE turnout_copy_chunks gauge");
        let _ = writeln!(out, "turnout_copy_chunks{{state=\"total\"}} {}\nturnout_copy_chunks{{state=\"done\"}} {}", c.chunks_total, c.chunks_done);
        let _ = writeln!(
            out,
            "# HELP turnout_copy_rows Rows on green from the chunks of the chunked copy done.\n# TYPE turnout_copy_rows gauge\nturnout_copy_rows {}",
            c.rows
        );
        if let Some(eta) = c.eta_seconds {
            let _ = writeln!(out, "# HELP turnout_copy_eta_seconds Seconds until the chunked copy is done at its pace so far.");
            let _ = writeln!(out, "# TYPE turnout_copy_eta_seconds gauge\nturnout_copy_eta_seconds {eta}");
        }
    }
    let _ = writeln!(out, "# HELP turnout_alert_state Level of each enabled alert: 0 ok, 1 warning, 2 critical.\n# TYPE turnout_alert_state gauge");
    for (alert, level) in &s.alerts {
        let _ = writeln!(out, "turnout_alert_state{{alert=\"{alert}\"}} {}", level.gauge());
    }
}

/// The rollback window's age and budget.
fn window_metrics(out: &mut String, s: &crate::status::Snapshot) {
    if let Some(window) = &s.window {
        let gauges = [
            ("turnout_window_age_seconds", "Seconds since the cutover opened the rollback window.", Some(window.age_seconds)),
            ("turnout_window_max_seconds", "cutover.window_max: the rollback window ends on its own at this age.", window.max_age_seconds),
            ("turnout_window_held_bytes", "WAL green keeps for the reverse stream's slot in the rollback window.", window.held_bytes),
            (
                "turnout_window_max_held_bytes",
                "cutover.window_max_held: the rollback window ends on its own when green holds this much.",
                window.max_held_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
            }
        }
    }
}

/// Writes that are not turnout's, per watched side.
fn rogue_metrics(out: &mut String, s: &crate::status::Snapshot) {
    if !s.rogue_writes.is_empty() {
        type PerSide = fn(&crate::status::foreign::Watched) -> u64;
        let per_side: [(&str, &str, &str, PerSide); 3] = [
            ("turnout_rogue_writes_total", "counter", "Writes seen on the watched side that turnout did not make.", |w| w.seen),
            ("turnout_rogue_writes_unacknowledged", "gauge", "Of those, not acknowledged (they block the cutover or finish).", |w| w.outstanding()),
            ("turnout_watch_up", "gauge", "1 while the side's log is read for writes that are not turnout's, else 0.", |w| u64::from(w.state == "watching")),
        ];
        for (name, kind, help, value) in per_side {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (side, w) in &s.rogue_writes {
                let _ = writeln!(out, "{name}{{side=\"{side}\"}} {}", value(w));
            }
        }
    }
}

/// The continuous verify's runs and findings.
fn verify_metrics(out: &mut String, s: &crate::status::Snapshot) {
    if let Some(verified) = &s.continuous_verify {
        let _ = writeln!(out, "# HELP turnout_verify_runs_total Whole runs of the continuous verify finished since start.");
        let _ = writeln!(out, "# TYPE turnout_verify_runs_total counter\nturnout_verify_runs_total {}", verified.runs);
        let _ = writeln!(out, "# HELP turnout_verify_rechecks_total Re-checks of what the stream changed (between whole runs) finished since start.");
        let _ = writeln!(out, "# TYPE turnout_verify_rechecks_total counter\nturnout_verify_rechecks_total {}", verified.rechecks);
        if !verified.tables.is_empty() {
            let _ = writeln!(out, "# HELP turnout_verify_table_equal 1 when the last finished verify found the table equal on both sides, else 0.");
            let _ = writeln!(out, "# TYPE turnout_verify_table_equal gauge");
            for (table, t) in &verified.tables {
                let _ = writeln!(out, "turnout_verify_table_equal{{table=\"{}\"}} {}", table.replace('\\', "\\\\").replace('"', "\\\""), u8::from(t.equal));
            }
            let _ = writeln!(out, "# HELP turnout_verify_tables_differing Tables the last finished verify found differing.");
            let _ = writeln!(out, "# TYPE turnout_verify_tables_differing gauge\nturnout_verify_tables_differing {}", verified.differing().len());
        }
    }
}
