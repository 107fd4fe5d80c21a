//! The HTTP API on `http.listen`: `/healthz`, `/status` (JSON) and `/metrics` (Prometheus text).

use crate::status::{Phase, Status};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// Binds `listen` and serves until `shutdown` turns true. Binding errors are returned at once.
pub async fn serve(listen: SocketAddr, status: Arc<Status>, mut shutdown: watch::Receiver<bool>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/status", get(status_json))
        .route("/metrics", get(metrics))
        .with_state(status);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
    }))
}

async fn status_json(State(status): State<Arc<Status>>) -> impl IntoResponse {
    Json(status.snapshot())
}

async fn metrics(State(status): State<Arc<Status>>) -> impl IntoResponse {
    let s = status.snapshot();
    let mut out = String::new();
    let applied: turnout_decoders::Lsn = s.applied_lsn.parse().unwrap_or_default();
    let _ = writeln!(out, "# HELP turnout_applied_lsn Source position durably applied on green (bytes).");
    let _ = writeln!(out, "# TYPE turnout_applied_lsn gauge\nturnout_applied_lsn {}", applied.0);
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
            let _ = writeln!(out, "# HELP turnout_slot_safe_wal_bytes WAL that can still be written before the slot risks losing WAL (max_slot_wal_keep_size).");
            let _ = writeln!(out, "# TYPE turnout_slot_safe_wal_bytes gauge\nturnout_slot_safe_wal_bytes {safe}");
        }
        let _ = writeln!(out, "# HELP turnout_slot_lost 1 when blue has removed WAL the slot needs (wal_status = lost).");
        let _ = writeln!(out, "# TYPE turnout_slot_lost gauge\nturnout_slot_lost {}", u8::from(slot.wal_status == "lost"));
    }
    let _ = writeln!(out, "# HELP turnout_rows_applied_total Row changes applied on green by streaming.");
    let _ = writeln!(out, "# TYPE turnout_rows_applied_total counter\nturnout_rows_applied_total {}", s.rows_applied);
    let _ = writeln!(out, "# HELP turnout_transactions_applied_total Source transactions applied on green.");
    let _ = writeln!(out, "# TYPE turnout_transactions_applied_total counter\nturnout_transactions_applied_total {}", s.transactions_applied);
    let _ = writeln!(out, "# HELP turnout_buffered_bytes Estimated memory held for source transactions not yet committed.");
    let _ = writeln!(out, "# TYPE turnout_buffered_bytes gauge\nturnout_buffered_bytes {}", s.buffered_bytes);
    let _ = writeln!(out, "# HELP turnout_spilled_bytes_total Bytes of large transactions spilled to the state store.");
    let _ = writeln!(out, "# TYPE turnout_spilled_bytes_total counter\nturnout_spilled_bytes_total {}", s.spilled_bytes_total);
    let _ = writeln!(out, "# HELP turnout_phase 1 for the current phase.\n# TYPE turnout_phase gauge");
    for phase in [Phase::Starting, Phase::Snapshot, Phase::Streaming, Phase::Retrying, Phase::Stopped] {
        let name = serde_json::to_value(phase).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let _ = writeln!(out, "turnout_phase{{phase=\"{name}\"}} {}", u8::from(phase == s.phase));
    }
    let _ = writeln!(out, "# HELP turnout_snapshot_rows Rows copied by the initial snapshot, per table.\n# TYPE turnout_snapshot_rows gauge");
    for (table, p) in &s.tables {
        let _ = writeln!(out, "turnout_snapshot_rows{{table=\"{}\"}} {}", table.replace('\\', "\\\\").replace('"', "\\\""), p.rows);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
