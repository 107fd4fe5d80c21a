//! New sessions held through the write pause behind haproxy (`cutover.haproxy.frontend`), as
//! pgbouncer's `PAUSE` holds them for PostgreSQL: a MySQL or MariaDB client that connects between
//! the fence and the switch waits in haproxy's queue and lands on the side traffic moves to,
//! instead of reaching the fenced side and being refused by `read_only`.
//!
//! haproxy queues a new session of a backend while every usable server is at its session limit. So
//! before the fence, turnout opens a session of its own *through the application's frontend* (it
//! lands on the server traffic moves from; [`SessionHold::open`] checks that it did) and then sets
//! that server's limit to 1 ([`SessionHold::take`]): the held session fills it, and every new one
//! queues — the server traffic moves to is in maintenance until the switch. The switch makes that
//! server ready (haproxy hands it the queue at once), puts the fenced one in maintenance and shuts
//! down its sessions, the held one included; [`SessionHold::release`] then gives the fenced server
//! its limit back. An undone fence is lifted first and the limit given back after, so the queue
//! reaches a writable server.
//!
//! Guarantees and limits: nothing is changed before [`SessionHold::take`]; the limit it replaces
//! is returned by [`SessionHold::open`] for the caller to journal first, so a restart restores it.
//! A session queued longer than haproxy's `timeout queue` (`timeout connect` when unset) is closed
//! by haproxy: that timeout must exceed the longest pause. Measured on HAProxy 2.6 (see the
//! benchmarks page): the other means (`disable frontend`, a frontend's `maxconn`, `drain`) refuse
//! or stall new sessions instead.

use crate::error::{CutoverError, Side};
use crate::haproxy::{self, Backend, BLUE_SERVER, GREEN_SERVER};
use mysql_async::prelude::Queryable;
use std::path::PathBuf;
use std::time::Duration;

/// Where turnout holds sessions: the admin socket and backend of the haproxy switch, and the
/// frontend's address the application connects to.
#[derive(Clone, Debug)]
pub struct SessionHold {
    pub admin_socket: PathBuf,
    pub backend: String,
    /// `host:port` of the frontend whose default backend is `backend`.
    pub frontend: String,
}

/// turnout's own session through the frontend, on the server traffic moves from, and that
/// server's session limit before the hold (0: none). Ending it ([`HeldSession::end`]) frees the
/// slot it fills.
pub struct HeldSession {
    session: mysql_async::Conn,
    /// The haproxy server the session is on: `blue` or `green`.
    pub server: &'static str,
    /// The server's session limit before [`SessionHold::take`] (`show stat`'s `slim`; 0: none).
    pub limit: u32,
}

impl std::fmt::Debug for HeldSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldSession").field("server", &self.server).field("limit", &self.limit).finish_non_exhaustive()
    }
}

impl HeldSession {
    /// Whether the session still answers (a ping).
    pub async fn alive(&mut self) -> bool {
        self.session.ping().await.is_ok()
    }

    /// Ends the session: its slot frees, and haproxy serves the sessions queued behind it (after
    /// [`SessionHold::release`], all of them). A session haproxy shut down already ends quietly.
    pub async fn end(self) {
        let _ = self.session.disconnect().await;
    }
}

/// Why a backend (its `show stat` lines) cannot hold new sessions on `server`, if it cannot.
fn why_not_held(rows: &[haproxy::ServerStat], server: &str) -> Option<String> {
    let col = |row: &haproxy::ServerStat, c: &str| row.get(c).map(|v| v.trim().to_owned()).unwrap_or_default();
    for row in rows {
        let name = col(row, "svname");
        if name == "BACKEND" {
            let algo = col(row, "algo");
            if !algo.is_empty() && !["roundrobin", "static-rr", "leastconn", "first"].contains(&algo.as_str()) {
                return Some(format!("it balances by `{algo}`, which queues a new session on the server it picks"));
            }
            if !col(row, "cookie").is_empty() {
                return Some("it keeps clients on a server by a cookie".into());
            }
        } else if name != server && !col(row, "status").starts_with("MAINT") {
            return Some(format!("its server {name} is {} rather than in maintenance, so new sessions would go to it", col(row, "status")));
        }
    }
    None
}

/// The limit a server without one gets while its queue drains ([`SessionHold::release`]).
const RELEASE_LIMIT: u32 = 1_000_000;

/// How long [`SessionHold::release`] waits for the queue to drain before it sets a limit of none.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// What a session says it is connected to: `@@hostname`, `@@port`, `@@server_id`.
type Identity = (String, u16, u64);

const IDENTITY: &str = "SELECT @@hostname, @@port, @@server_id";

impl SessionHold {
    fn backend(&self) -> Backend<'_> {
        Backend { name: &self.backend, field: "cutover.haproxy.backend" }
    }

    fn server_of(side: Side) -> &'static str {
        match side {
            Side::Blue => BLUE_SERVER,
            Side::Green => GREEN_SERVER,
        }
    }

    /// Opens turnout's session through the frontend to the server of `side` (traffic moves from
    /// it), logged in as `url` says (that side's URL, named `field` in errors), checks that haproxy
    /// sent it there — the same `@@hostname`, `@@port` and `@@server_id` as a session opened to that
    /// side directly, which lists the held session — and reads the server's session limit. The held
    /// session counts as one of turnout's own on that side, so the fence keeps it. Changes nothing.
    pub async fn open(&self, side: Side, url: &str, field: &'static str, timeout: Duration) -> Result<HeldSession, CutoverError> {
        let server = Self::server_of(side);
        let work = async {
            let direct_opts = turnout_connect::mysql::conn::options(url).map_err(|reason| CutoverError::Config { field, reason })?;
            let (host, port) = self.frontend_address()?;
            // Through the frontend, and kept on TCP: on a local frontend the driver would otherwise
            // move the session to the server's unix socket, past haproxy.
            // A `socket=` in the URL would take the session past haproxy whatever the host.
            let via: mysql_async::Opts =
                mysql_async::OptsBuilder::from_opts(direct_opts.clone()).ip_or_hostname(host).tcp_port(port).prefer_socket(false).socket(None::<String>).into();
            self.queue_serves_any(server, timeout).await?;
            let mut held = turnout_connect::mysql::conn::open(&via)
                .await
                .map_err(CutoverError::mysql(side, format!("logging in through cutover.haproxy.frontend {} to hold new sessions", self.frontend)))?;
            let id = held.id();
            let landed: Option<Identity> = held.query_first(IDENTITY).await.map_err(CutoverError::mysql(side, "reading where the held session landed"))?;
            let mut direct =
                turnout_connect::mysql::conn::open(&direct_opts).await.map_err(CutoverError::mysql(side, "logging in to check the held session"))?;
            let expected: Option<Identity> = direct.query_first(IDENTITY).await.map_err(CutoverError::mysql(side, "reading the server's identity"))?;
            let listed: Option<u64> = direct
                .exec_first("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", (id,))
                .await
                .map_err(CutoverError::mysql(side, "finding the held session"))?;
            let _ = direct.disconnect().await;
            if landed.is_none() || landed != expected || listed != Some(1) {
                let (h, p, s) = landed.unwrap_or_default();
                return Err(CutoverError::HoldMisrouted {
                    frontend: self.frontend.clone(),
                    backend: self.backend.clone(),
                    server: server.to_owned(),
                    side,
                    landed: format!("{h}:{p} (server_id {s})"),
                });
            }
            turnout_connect::mysql::conn::remember_session(&direct_opts, id);
            let stat = haproxy::server_stat(&self.admin_socket, self.backend(), server, timeout).await?;
            let limit = stat.get("slim").map(|v| v.trim()).filter(|v| !v.is_empty()).map_or(Ok(0), str::parse).map_err(|_| CutoverError::HaProxy {
                command: "show stat".into(),
                field: "cutover.haproxy.backend",
                backend: self.backend.clone(),
                response: format!("server {server}'s session limit (slim) is not a number"),
            })?;
            Ok(HeldSession { session: held, server, limit })
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| CutoverError::Timeout { what: format!("holding a session through haproxy frontend {}", self.frontend), timeout })?
    }

    /// Refuses a backend whose queued sessions would not go to whichever server is ready at the
    /// switch: a balance algorithm that picks a server by a hash of the client or request
    /// (`source`, `uri`, `hdr`, `random`, …) or cookie persistence queues a session on the server it
    /// picked — blue — where the switch does not take it; and every server but `server` must be in
    /// maintenance (the switch makes the other one ready), or new sessions would pass the hold.
    async fn queue_serves_any(&self, server: &str, timeout: Duration) -> Result<(), CutoverError> {
        let rows = haproxy::backend_stats(&self.admin_socket, self.backend(), timeout).await?;
        match why_not_held(&rows, server) {
            Some(why) => Err(CutoverError::HoldUnsupported { backend: self.backend.clone(), why }),
            None => Ok(()),
        }
    }

    /// From here on new sessions of the backend wait in haproxy's queue: `server`'s limit is 1, and
    /// turnout's held session fills it.
    pub async fn take(&self, server: &str, timeout: Duration) -> Result<(), CutoverError> {
        haproxy::expect_empty(&self.admin_socket, self.backend(), &format!("set maxconn server {}/{server} 1", self.backend), timeout).await
    }

    /// Gives `server` its session limit `limit` back (0: none) and ends `held`, so the sessions
    /// queued behind it go on (after a switch the queue went to the other server already). haproxy
    /// serves a server's queue up to its limit, when the limit changes or one of its sessions ends —
    /// and a limit of none serves no queue. So the limit is first raised to `limit` (or
    /// [`RELEASE_LIMIT`] for none), the held session ended, and once the queue is empty (or after
    /// [`DRAIN_WAIT`]) a limit of none is set. Idempotent.
    pub async fn release(&self, server: &str, limit: u32, held: Option<HeldSession>, timeout: Duration) -> Result<(), CutoverError> {
        let set = |limit: u32| format!("set maxconn server {}/{server} {limit}", self.backend);
        haproxy::expect_empty(&self.admin_socket, self.backend(), &set(if limit == 0 { RELEASE_LIMIT } else { limit }), timeout).await?;
        if let Some(held) = held {
            held.end().await;
        }
        if limit != 0 {
            return Ok(());
        }
        let drained = tokio::time::Instant::now() + DRAIN_WAIT;
        loop {
            let queued = |stat: &haproxy::ServerStat| stat.get("qcur").is_some_and(|q| !q.is_empty() && q != "0");
            let backend = haproxy::server_stat(&self.admin_socket, self.backend(), "BACKEND", timeout).await?;
            let own = haproxy::server_stat(&self.admin_socket, self.backend(), server, timeout).await?;
            if (!queued(&backend) && !queued(&own)) || tokio::time::Instant::now() >= drained {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        haproxy::expect_empty(&self.admin_socket, self.backend(), &set(0), timeout).await
    }

    /// The frontend's host and port.
    fn frontend_address(&self) -> Result<(String, u16), CutoverError> {
        let bad = |reason: &str| CutoverError::Config { field: "cutover.haproxy.frontend", reason: format!("{:?} {reason}; write host:port", self.frontend) };
        let (host, port) = self.frontend.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
        let port = port.parse::<u16>().map_err(|_| bad("has no valid port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        Ok((host.to_owned(), port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(frontend: &str) -> SessionHold {
        SessionHold { admin_socket: "/nonexistent".into(), backend: "db".into(), frontend: frontend.into() }
    }

    fn row(pairs: &[(&str, &str)]) -> haproxy::ServerStat {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn only_a_backend_that_queues_for_any_server_holds() {
        let blue = row(&[("svname", "blue"), ("status", "UP")]);
        let green = |status: &str| row(&[("svname", "green"), ("status", status)]);
        let backend = |algo: &str, cookie: &str| row(&[("svname", "BACKEND"), ("status", "UP"), ("algo", algo), ("cookie", cookie)]);
        assert_eq!(why_not_held(&[blue.clone(), green("MAINT"), backend("roundrobin", "")], "blue"), None);
        assert_eq!(why_not_held(&[blue.clone(), green("MAINT (resolution)"), backend("leastconn", "")], "blue"), None);
        let hashed = why_not_held(&[blue.clone(), green("MAINT"), backend("source", "")], "blue").expect("refused");
        assert!(hashed.contains("`source`"), "{hashed}");
        assert!(why_not_held(&[blue.clone(), green("MAINT"), backend("roundrobin", "SRV")], "blue").expect("refused").contains("cookie"));
        let up = why_not_held(&[blue, green("UP"), backend("roundrobin", "")], "blue").expect("refused");
        assert!(up.contains("server green is UP"), "{up}");
    }

    #[test]
    fn the_frontend_is_host_and_port() {
        assert_eq!(hold("127.0.0.1:3307").frontend_address().expect("address"), ("127.0.0.1".to_owned(), 3307));
        assert_eq!(hold("[::1]:3307").frontend_address().expect("address"), ("::1".to_owned(), 3307));
        for bad in ["127.0.0.1", "db:", ":3307", "db:99999"] {
            let e = hold(bad).frontend_address().expect_err(bad).to_string();
            assert!(e.contains("cutover.haproxy.frontend") && e.contains("host:port"), "{e}");
        }
    }
}
