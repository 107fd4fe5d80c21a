//! The hand-over on MySQL and MariaDB: a consumer is the binlog dump sessions of one account (a
//! Debezium connector, `mysqlbinlog --read-from-remote-server`, a replica). The server keeps no
//! position for them, so the hand-over records places instead of moving slots: where the consumer
//! stops on the fenced side (the sentinel's binlog position and GTID set) and where it resumes on
//! the other side (that side's binlog file, position and executed GTID set at the hand-off, inside
//! the pause, after the proof: past all of turnout's apply, before any write of the application).
//! What the server does know — whether a dump session has been sent the whole binlog — is what the
//! waits before the fence and after the switch look at.

use super::{Consumer, Handed};
use crate::config::handover::{Handover, OnLag};
use crate::error::{Error, HandoverRefusal};
use crate::source::mysql::sql_error;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

/// How often the waits look at the sessions again.
const POLL: Duration = Duration::from_millis(20);

/// How long a consumer's dump session may stay listed after it read up to the fence before the
/// binlog is rotated to reach it ([`let_go`]).
const GRACE: Duration = Duration::from_secs(1);

/// One binlog dump session: id, account, host, command and state.
type Session = (u64, String, String, String, String);

/// Refuses a hand-over whose account (`own`) cannot see other accounts' sessions: without `PROCESS`
/// the processlist shows only its own, and `account = "*"` would carry nothing and say nothing.
async fn sees_every_session(conn: &mut mysql_async::Conn, side: crate::error::Side, own: &str) -> Result<(), Error> {
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.map_err(|e| sql_error(side, "reading turnout's grants", e))?;
    let grants = grants.join("\n").to_ascii_uppercase();
    let may = ["ALL PRIVILEGES ON *.*", "PROCESS", "SUPER"].iter().any(|p| grants.contains(p));
    if may {
        return Ok(());
    }
    Err(HandoverRefusal::NoProcess { side, account: own.to_owned() }.into())
}

/// Every binlog dump session on `conn` (`side`) that is not turnout's own account (`own`).
async fn sessions(conn: &mut mysql_async::Conn, side: crate::error::Side, own: &str) -> Result<Vec<Session>, Error> {
    let rows: Vec<(u64, String, String, String, Option<String>)> = conn
        .query(
            "SELECT ID, USER, HOST, COMMAND, STATE FROM information_schema.PROCESSLIST \
             WHERE COMMAND LIKE 'Binlog Dump%' ORDER BY ID",
        )
        .await
        .map_err(|e| sql_error(side, "listing binlog dump sessions", e))?;
    Ok(rows.into_iter().filter(|r| r.1 != own).map(|(id, user, host, command, state)| (id, user, host, command, state.unwrap_or_default())).collect())
}

/// Whether the server has sent the session everything in its binlog ("Source has sent all binlog to
/// replica", MariaDB's "Master has sent all binlog to slave").
fn sent_all(state: &str) -> bool {
    state.contains("has sent all binlog")
}

fn carries(entries: &[Handover], account: &str) -> bool {
    entries.iter().any(|e| e.account == "*" || e.account == account)
}

/// Blue's binlog readers that are not turnout's (`own`: turnout's account).
pub async fn discover(conn: &mut mysql_async::Conn, own: &str, entries: &[Handover]) -> Result<Vec<Consumer>, Error> {
    Ok(sessions(conn, crate::error::Side::Blue, own)
        .await?
        .into_iter()
        .map(|(id, user, host, command, state)| Consumer {
            name: format!("{user} (session {id})"),
            kind: command.to_ascii_lowercase(),
            plugin: None,
            database: None,
            active: true,
            carried: carries(entries, &user),
            client: Some(host),
            position: Some(state),
            behind_bytes: None,
        })
        .collect())
}

/// A consumer prepared before the fence: its account, and how long the waits may take.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub account: String,
    pub wait: Duration,
    /// Its sessions had been sent the whole binlog when the wait ended.
    pub caught_up: bool,
}

/// Before the fence: every carried consumer's sessions on the fenced side (`from`) have been sent the
/// whole binlog at least once since the wait began — within the entry's `wait`, or refused
/// (`on_lag = "refuse"`). An account with no session reading is behind.
pub async fn prepare(from: &mut mysql_async::Conn, side: crate::error::Side, own: &str, entries: &[Handover]) -> Result<Vec<Prepared>, Error> {
    if !entries.is_empty() {
        sees_every_session(from, side, own).await?;
    }
    let mut accounts: Vec<(String, &Handover)> = entries.iter().filter(|e| e.account != "*").map(|e| (e.account.clone(), e)).collect();
    if let Some(all) = entries.iter().find(|e| e.account == "*") {
        for (_, user, ..) in sessions(from, side, own).await? {
            if !accounts.iter().any(|(a, _)| *a == user) {
                accounts.push((user, all));
            }
        }
    }
    let mut prepared = Vec::new();
    for (account, entry) in accounts {
        let wait = entry.wait()?;
        let caught_up = caught_up(from, side, own, &account, wait).await?;
        if !caught_up && entry.on_lag == OnLag::Refuse {
            return Err(HandoverRefusal::BinlogBehind { account: account.clone(), side, wait_s: wait.as_secs() }.into());
        }
        prepared.push(Prepared { account, wait, caught_up });
    }
    Ok(prepared)
}

/// Waits up to `wait` for a session of `account` to have been sent the whole binlog.
async fn caught_up(conn: &mut mysql_async::Conn, side: crate::error::Side, own: &str, account: &str, wait: Duration) -> Result<bool, Error> {
    let deadline = Instant::now() + wait;
    loop {
        let now = sessions(conn, side, own).await?;
        let mine: Vec<&Session> = now.iter().filter(|s| s.1 == account).collect();
        if !mine.is_empty() && mine.iter().all(|s| sent_all(&s.4)) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Inside the pause, after the proof: where every consumer resumes on the side writes move to (`to`):
/// its binlog end and executed GTID set now. `fence` is the fenced side's sentinel.
pub async fn hand_off(to: &mut mysql_async::Conn, side: crate::error::Side, prepared: &[Prepared], fence: Option<String>) -> Result<Vec<Handed>, Error> {
    let at = crate::source::mysql::snapshot::binlog_end(to, side).await?;
    Ok(prepared
        .iter()
        .map(|p| Handed {
            consumer: p.account.clone(),
            plugin: String::new(),
            publications: Vec::new(),
            consumed: if p.caught_up { "sent the whole binlog before the fence".into() } else { "behind before the fence".into() },
            fence: fence.clone(),
            committed_before: None,
            resume: at.to_string(),
            gap: None,
            wait_ms: u64::try_from(p.wait.as_millis()).unwrap_or(u64::MAX),
            reader: None,
            filters_origin: false,
            reached: false,
            note: None,
        })
        .collect())
}

/// After the switch, before the stream that follows applies to the fenced side: the consumer's
/// sessions there have been sent the whole binlog (up to the fence: nothing else lies there yet) by
/// `deadline` (`reached`); one whose have not gets its gap recorded.
pub async fn read_to_fence(fenced: &mut mysql_async::Conn, side: crate::error::Side, own: &str, h: &mut Handed, deadline: Instant) -> Result<(), Error> {
    if caught_up(fenced, side, own, &h.consumer, deadline.saturating_duration_since(Instant::now())).await? {
        h.reached = true;
    } else {
        let fence = h.fence.clone().unwrap_or_default();
        tracing::warn!("the consumer {} had not been sent {side}'s binlog up to the fence {fence}: it must still read it there", h.consumer);
        h.gap = Some(format!("..{fence}"));
    }
    Ok(())
}

/// Then its sessions have ended (its reader stopped at the fence, a replica repointed) by
/// `deadline`: a binlog reader cannot leave out what the stream then applies there, so one still
/// reading gets a note saying so.
///
/// A dump session whose client went away is noticed by the server only when it next sends: one
/// still listed after [`GRACE`] gets the binlog rotated once (`FLUSH BINARY LOGS`, no transaction:
/// the fence's place is unchanged), which every dump session is sent.
pub async fn let_go(fenced: &mut mysql_async::Conn, side: crate::error::Side, own: &str, h: &mut Handed, deadline: Instant) -> Result<(), Error> {
    let rotate_at = Instant::now() + GRACE;
    let mut rotated = false;
    let mut rotation = String::new();
    loop {
        if !sessions(fenced, side, own).await?.iter().any(|s| s.1 == h.consumer) {
            return Ok(());
        }
        if !rotated && Instant::now() >= rotate_at {
            rotated = true;
            if let Err(e) = fenced.query_drop("FLUSH BINARY LOGS").await {
                tracing::warn!("rotating {side}'s binlog to reach dump sessions whose client left failed: {e} (GRANT RELOAD to turnout's account)");
                rotation = format!(" (rotating {side}'s binlog to end sessions whose client left failed: {e})");
            }
        }
        if Instant::now() >= deadline {
            let note = format!(
                "its binlog sessions still read {side} past the fence {} when its wait ran out: they receive what is applied to {side} from \
                 now on, which the consumer also receives where writes went — stop them at the fence{rotation}",
                h.fence.as_deref().unwrap_or_default()
            );
            tracing::warn!("the consumer {}: {note}", h.consumer);
            h.note = Some(note);
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}
