//! Read splits for a canary: what share of a read endpoint's new connections goes to green, the rest
//! to blue. Writes never go through a read split; they move at once, with the cutover's proof.
//!
//! * `haproxy` — the read backend's servers `blue` and `green` get weights `100 - share` and `share`
//!   (runtime API `set server … weight`; a server of weight 0 takes no new connection). Lowering
//!   green's share to 0 shuts green's open sessions down, so their clients reconnect — to blue;
//!   raising it to 100 does the same to blue's. The servers' own counters (`show stat`) say how many
//!   connections to green failed.
//! * `pgbouncer` — the read entry of `[databases]` gets a host list of 20 slots, `share / 5` of them
//!   green's, which pgbouncer uses round-robin for new server connections; `RELOAD`, then `RECONNECT`
//!   the entry so pooled server connections are made again under the new list. A host list has one
//!   port and one database name: blue and green must have the same.
//! * `command` — the operator's program, with `TURNOUT_CANARY_GREEN_PERCENT` (and blue's and green's
//!   URLs) in its environment.
//!
//! Every [`ReadSplit::set`] is idempotent: setting the share it already has changes nothing but may
//! repeat the commands.

use crate::error::CutoverError;
use crate::haproxy::{self, Backend, BLUE_SERVER, GREEN_SERVER};
use crate::pgbouncer::PgBouncerAdmin;
use crate::pgbouncer_config::{point_database, Endpoint};
use crate::switch::{check_program, secrets_of, BlueGreen};
use std::path::PathBuf;
use std::time::Duration;

/// Host slots of a pgbouncer read entry: shares move in steps of 5 %.
const PGBOUNCER_SLOTS: u8 = 20;

/// How a read endpoint's traffic is shared between blue and green.
#[derive(Clone, Debug)]
pub enum ReadSplit {
    /// Weights of servers `blue` and `green` of `backend`.
    HaProxy { admin_socket: PathBuf, backend: String },
    /// A host list in pgbouncer's read entry `database` of `config_file`.
    PgBouncer { admin: PgBouncerAdmin, database: String, config_file: PathBuf },
    /// Run `argv` (program and arguments, no shell).
    Command { argv: Vec<String> },
}

/// What the split's own counters say about green, where it keeps any (haproxy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GreenSeen {
    /// Connections to green that failed, and sessions green broke off, since the split's start
    /// (haproxy `econ` + `eresp`; cumulative).
    pub errors: Option<u64>,
    /// Green's health as the split checks it, when it checks (haproxy `status`: `UP`, `DOWN`, …).
    pub status: Option<String>,
    /// The share the split gives green now, where it can tell (haproxy: green's weight) — a reload
    /// of haproxy brings back its configured weights.
    pub percent: Option<u8>,
}

impl ReadSplit {
    /// `haproxy`, `pgbouncer` or `command`, as in `canary.split`.
    pub fn kind(&self) -> &'static str {
        match self {
            ReadSplit::HaProxy { .. } => "haproxy",
            ReadSplit::PgBouncer { .. } => "pgbouncer",
            ReadSplit::Command { .. } => "command",
        }
    }

    /// The share the split can actually give for `percent` (pgbouncer: to the nearest 5 %).
    pub fn nearest(&self, percent: u8) -> u8 {
        let percent = percent.min(100);
        match self {
            ReadSplit::PgBouncer { .. } => {
                let step = 100 / PGBOUNCER_SLOTS;
                (percent + step / 2) / step * step
            }
            _ => percent,
        }
    }

    /// Sends `green_percent` of the read endpoint's new connections to green and the rest to blue;
    /// returns what it did, in one line without secrets. `timeout` bounds the whole change.
    pub async fn set(&self, green_percent: u8, urls: BlueGreen<'_>, timeout: Duration) -> Result<String, CutoverError> {
        let share = self.nearest(green_percent);
        let work = async {
            match self {
                ReadSplit::HaProxy { admin_socket, backend } => haproxy_set(admin_socket, backend, share, timeout).await,
                ReadSplit::PgBouncer { admin, database, config_file } => pgbouncer_set(admin, database, config_file, share, urls).await,
                ReadSplit::Command { argv } => {
                    let percent = share.to_string();
                    let env = [("TURNOUT_CANARY_GREEN_PERCENT", percent.as_str()), ("TURNOUT_GREEN_URL", urls.green_url), ("TURNOUT_BLUE_URL", urls.blue_url)];
                    crate::command::run(argv, &env, &secrets_of(urls), timeout).await?;
                    let program = argv.first().map(String::as_str).unwrap_or_default();
                    Ok(format!("read split command {program} set green's share to {share} %"))
                }
            }
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| CutoverError::Timeout { what: format!("setting green's read share to {share} %"), timeout })?
    }

    /// What the split's own counters say about green (haproxy); nothing for the others.
    pub async fn green_seen(&self, timeout: Duration) -> Result<GreenSeen, CutoverError> {
        let ReadSplit::HaProxy { admin_socket, backend } = self else { return Ok(GreenSeen::default()) };
        let stat = haproxy::server_stat(admin_socket, read_backend(backend), GREEN_SERVER, timeout).await?;
        let count = |key: &str| stat.get(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let percent = stat.get("weight").and_then(|w| w.parse::<u8>().ok());
        Ok(GreenSeen { errors: Some(count("econ") + count("eresp")), status: stat.get("status").filter(|s| !s.is_empty()).cloned(), percent })
    }

    /// Checks, changing nothing, that the split can run: haproxy — the socket answers and the
    /// backend has servers `blue` and `green`; pgbouncer — the console answers and runs the entry, and
    /// blue and green share a port and a database name; command — the program exists.
    pub async fn check(&self, urls: BlueGreen<'_>, timeout: Duration) -> Result<(), CutoverError> {
        match self {
            ReadSplit::HaProxy { admin_socket, backend } => {
                // Another server there would keep taking reads whatever the weights say.
                let names = haproxy::check_servers(admin_socket, read_backend(backend), timeout).await?;
                match names.iter().find(|n| *n != BLUE_SERVER && *n != GREEN_SERVER) {
                    Some(other) => Err(CutoverError::Config {
                        field: "canary.haproxy.backend",
                        reason: format!("backend {backend} has server {other} besides blue and green, which would take reads whatever the canary sets; give the canary a backend of blue and green only"),
                    }),
                    None => Ok(()),
                }
            }
            ReadSplit::PgBouncer { admin, database, .. } => {
                host_list(urls, 0)?;
                if admin.show_database(database).await?.is_none() {
                    return Err(CutoverError::PgBouncer {
                        console: admin.redacted(),
                        command: "SHOW DATABASES".into(),
                        reason: format!("pgbouncer runs no entry named {database}"),
                        fix: Some("canary.pgbouncer.database must name the read entry of pgbouncer's [databases] section".into()),
                        transient: false,
                    });
                }
                Ok(())
            }
            ReadSplit::Command { argv } => check_program(argv, "canary.command.argv"),
        }
    }
}

fn read_backend(name: &str) -> Backend<'_> {
    Backend { name, field: "canary.haproxy.backend" }
}

/// Weights `share` for green and `100 - share` for blue, both servers ready; the side that gets
/// nothing has its sessions shut down.
async fn haproxy_set(socket: &std::path::Path, backend: &str, share: u8, timeout: Duration) -> Result<String, CutoverError> {
    let b = read_backend(backend);
    let mut commands = Vec::new();
    for (server, weight) in [(GREEN_SERVER, share), (BLUE_SERVER, 100 - share)] {
        commands.push(format!("set server {backend}/{server} weight {weight}"));
        if weight > 0 {
            commands.push(format!("set server {backend}/{server} state ready"));
        }
    }
    for (server, weight) in [(GREEN_SERVER, share), (BLUE_SERVER, 100 - share)] {
        if weight == 0 {
            commands.push(format!("shutdown sessions server {backend}/{server}"));
        }
    }
    for command in &commands {
        // `set server … weight` answers nothing on success, as the other commands do.
        haproxy::expect_empty(socket, b, command, timeout).await?;
    }
    Ok(format!("haproxy backend {backend}: weight {share} on green, {} on blue", 100 - share))
}

/// The pgbouncer host list for `share` (`share / 5` of 20 slots green's, spread out), with the port
/// and database blue and green share.
fn host_list(urls: BlueGreen<'_>, share: u8) -> Result<Endpoint, CutoverError> {
    let blue = Endpoint::from_url(urls.blue_url, "source.url")?;
    let green = Endpoint::from_url(urls.green_url, "target.url")?;
    if blue.port != green.port || blue.dbname != green.dbname {
        return Err(CutoverError::Config {
            field: "canary.split",
            reason: format!(
                "a pgbouncer read entry lists hosts with one port and one database name, and blue ({blue}) and green ({green}) differ; \
                 give them the same, or use canary.split = \"haproxy\" or \"command\""
            ),
        });
    }
    let greens = usize::from(share / (100 / PGBOUNCER_SLOTS));
    let slots = usize::from(PGBOUNCER_SLOTS);
    let hosts: Vec<&str> = (0..slots).map(|i| if is_green_slot(i, greens, slots) { green.host.as_str() } else { blue.host.as_str() }).collect();
    let host = if greens == 0 || greens == slots { hosts[0].to_owned() } else { hosts.join(",") };
    Ok(Endpoint { host, port: blue.port, dbname: blue.dbname })
}

/// Whether slot `i` of `slots` is one of `greens` spread evenly.
fn is_green_slot(i: usize, greens: usize, slots: usize) -> bool {
    (i * greens) / slots != ((i + 1) * greens) / slots
}

async fn pgbouncer_set(admin: &PgBouncerAdmin, database: &str, config_file: &std::path::Path, share: u8, urls: BlueGreen<'_>) -> Result<String, CutoverError> {
    let to = host_list(urls, share)?;
    point_database(config_file, database, &to)?;
    admin.reload().await?;
    // pgbouncer reports no error in a file it did not take: what runs must be the new list.
    let running = admin.show_database(database).await?;
    let shown = running.as_ref().and_then(|d| d.host.clone()).unwrap_or_else(|| "no such entry".into());
    if shown != to.host {
        return Err(CutoverError::ReloadNotApplied { database: database.to_string(), shown, wanted: to.to_string(), path: config_file.to_path_buf() });
    }
    admin.reconnect(database).await?;
    Ok(format!("pgbouncer read entry {database}: {share} % of new server connections to green (reloaded, reconnected)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pgbouncer_host_list_spreads_greens_share_in_steps_of_five() {
        let urls = BlueGreen { blue_url: "postgres://u@10.0.0.1:5432/app", green_url: "postgres://u@10.0.0.2:5432/app" };
        let count = |share: u8| host_list(urls, share).expect("list").host.split(',').filter(|h| *h == "10.0.0.2").count();
        assert_eq!(host_list(urls, 0).expect("list").host, "10.0.0.1");
        assert_eq!(host_list(urls, 100).expect("list").host, "10.0.0.2");
        assert_eq!((count(5), count(25), count(50)), (1, 5, 10));
        let split = ReadSplit::Command { argv: vec!["x".into()] };
        assert_eq!(split.nearest(7), 7);
        let pgb = ReadSplit::PgBouncer {
            admin: PgBouncerAdmin::from_url("postgres://a@127.0.0.1:6432/pgbouncer").expect("admin"),
            database: "app_ro".into(),
            config_file: "/x".into(),
        };
        assert_eq!((pgb.nearest(7), pgb.nearest(8), pgb.nearest(2), pgb.nearest(200)), (5, 10, 0, 100));
        let other_port = BlueGreen { blue_url: "postgres://u@10.0.0.1:5432/app", green_url: "postgres://u@10.0.0.2:5433/app" };
        assert!(host_list(other_port, 50).is_err());
    }

    #[tokio::test]
    async fn a_command_split_runs_the_program_with_greens_share_and_names_its_failure() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("share");
        let script = dir.path().join("split.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s' \"$TURNOUT_CANARY_GREEN_PERCENT\" > {}\n[ \"$TURNOUT_CANARY_GREEN_PERCENT\" != 66 ]\n", out.display()),
        )
        .expect("script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let split = ReadSplit::Command { argv: vec![script.display().to_string()] };
        let urls = BlueGreen { blue_url: "postgres://u:secret@10.0.0.1:5432/app", green_url: "postgres://u:secret@10.0.0.2:5432/app" };
        split.check(urls, Duration::from_secs(5)).await.expect("the program exists");
        let done = split.set(30, urls, Duration::from_secs(5)).await.expect("set");
        assert!(done.contains("30 %"), "{done}");
        assert_eq!(std::fs::read_to_string(&out).expect("written"), "30");
        let failed = split.set(66, urls, Duration::from_secs(5)).await.expect_err("the program said no");
        assert!(failed.to_string().contains("failed"), "{failed}");
        let missing = ReadSplit::Command { argv: vec!["/no/such/program".into()] };
        assert!(missing.check(urls, Duration::from_secs(5)).await.is_err());
    }
}
