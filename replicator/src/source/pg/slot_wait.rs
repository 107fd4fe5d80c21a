//! Making a logical slot waits for every transaction of the server that holds an xid — a transaction
//! left prepared (`PREPARE TRANSACTION`) among them, which waits until someone commits or rolls it
//! back, however long that is. While the slot `turnout run` needs is being made, what holds it up is
//! named every few seconds in the log and in `/status` (`last_error`, class `transient`), with the
//! fix; the note is cleared once the slot exists.

use crate::status::{ErrorReport, Status};
use std::future::Future;
use std::time::Duration;
use tokio_postgres::Client;

/// How long a slot may take before what holds it up is named, and how often after that.
const NAME_AFTER: Duration = Duration::from_secs(2);

/// Runs `create` (making a slot), naming what it waits for on `blue` while it takes long.
pub async fn naming_holders<T>(blue: &Client, status: &Status, create: impl Future<Output = T>) -> T {
    tokio::pin!(create);
    let mut said = false;
    loop {
        tokio::select! {
            out = &mut create => {
                if said {
                    status.set_error(None);
                }
                return out;
            }
            () = tokio::time::sleep(NAME_AFTER) => {
                let report = holders(blue).await;
                tracing::warn!("{} — {}", report.message, report.advice);
                status.set_error(Some(report));
                said = true;
            }
        }
    }
}

/// What holds the slot up now: prepared transactions (by `gid`) and sessions holding an xid.
async fn holders(blue: &Client) -> ErrorReport {
    let prepared: Vec<String> = blue
        .query("SELECT gid, prepared::text, owner::text, database::text FROM pg_prepared_xacts ORDER BY prepared", &[])
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    format!(
                        "'{}' (prepared {} by {} in database {})",
                        r.get::<_, String>(0),
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                        r.get::<_, String>(3)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let sessions = super::live::xid_holders(blue).await;
    if prepared.is_empty() {
        return ErrorReport {
            message: format!("making the replication slot on blue waits for transactions that hold an xid: {sessions}"),
            class: "transient",
            advice: "it goes on once they end; end a transaction left open (pg_terminate_backend(pid)) to go on now".into(),
        };
    }
    ErrorReport {
        message: format!("making the replication slot on blue waits for prepared transactions: {} (sessions holding an xid: {sessions})", prepared.join(", ")),
        class: "transient",
        advice: "a prepared transaction waits until someone ends it: COMMIT PREPARED or ROLLBACK PREPARED each named gid".into(),
    }
}
