//! haproxy's runtime API over its admin unix socket (`stats socket … level admin`): one command per
//! connection, as haproxy's non-interactive mode expects. A command succeeded when haproxy answers
//! with nothing but a blank line.

use crate::error::CutoverError;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The server names a backend must have for the haproxy switch.
pub(crate) const BLUE_SERVER: &str = "blue";
pub(crate) const GREEN_SERVER: &str = "green";

/// A backend of haproxy's and the configuration key that names it (for errors).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backend<'a> {
    pub name: &'a str,
    pub field: &'static str,
}

/// Longest answer read from the socket (answers to the commands used here are a line or two).
const MAX_ANSWER: u64 = 1 << 20;

/// Sends `command` and returns haproxy's answer.
pub(crate) async fn runtime_command(socket: &Path, command: &str, timeout: Duration) -> Result<String, CutoverError> {
    let socket_error = |reason: String| CutoverError::HaProxySocket { socket: socket.to_path_buf(), reason };
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await.map_err(|e| socket_error(format!("cannot connect: {e}")))?;
        stream.write_all(format!("{command}\n").as_bytes()).await.map_err(|e| socket_error(format!("cannot send `{command}`: {e}")))?;
        let mut answer = Vec::new();
        (&mut stream).take(MAX_ANSWER).read_to_end(&mut answer).await.map_err(|e| socket_error(format!("cannot read the answer to `{command}`: {e}")))?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| CutoverError::Timeout { what: format!("haproxy command `{command}` on {}", socket.display()), timeout })?
}

/// Runs a command that answers nothing on success; any text is haproxy's error.
pub(crate) async fn expect_empty(socket: &Path, backend: Backend<'_>, command: &str, timeout: Duration) -> Result<(), CutoverError> {
    let answer = runtime_command(socket, command, timeout).await?;
    let answer = answer.trim();
    if answer.is_empty() {
        Ok(())
    } else {
        Err(rejected(backend, command, answer))
    }
}

fn rejected(backend: Backend<'_>, command: &str, response: &str) -> CutoverError {
    CutoverError::HaProxy { command: command.to_string(), field: backend.field, backend: backend.name.to_string(), response: response.to_string() }
}

/// Sends new connections of `backend` to server `to` instead of `from`: `to` becomes ready first,
/// then `from` goes to maintenance, so the backend always has a server; then the sessions still open
/// on `from` are shut down so their clients reconnect — to `to`.
pub(crate) async fn move_traffic(socket: &Path, backend: Backend<'_>, from: &str, to: &str, timeout: Duration) -> Result<(), CutoverError> {
    let name = backend.name;
    for command in
        [format!("set server {name}/{to} state ready"), format!("set server {name}/{from} state maint"), format!("shutdown sessions server {name}/{from}")]
    {
        expect_empty(socket, backend, &command, timeout).await?;
    }
    Ok(())
}

/// The names of the servers of `backend` (`show servers state <backend>`).
async fn server_names(socket: &Path, backend: Backend<'_>, timeout: Duration) -> Result<Vec<String>, CutoverError> {
    let command = format!("show servers state {}", backend.name);
    let answer = runtime_command(socket, &command, timeout).await?;
    // Line 1 is the format version, line 2 the column names after a "#"; an unknown backend gets
    // an error text instead.
    let mut lines = answer.lines().filter(|l| !l.trim().is_empty());
    let _version = lines.next();
    let header = lines.next().unwrap_or_default();
    let columns: Vec<&str> = header.trim_start_matches('#').split_whitespace().collect();
    let Some(name_at) = columns.iter().position(|c| *c == "srv_name") else {
        return Err(rejected(backend, &command, answer.trim()));
    };
    Ok(lines.filter_map(|line| line.split_whitespace().nth(name_at).map(str::to_string)).collect())
}

/// Checks that `backend` has servers `blue` and `green`; returns the names of all its servers.
pub(crate) async fn check_servers(socket: &Path, backend: Backend<'_>, timeout: Duration) -> Result<Vec<String>, CutoverError> {
    let names = server_names(socket, backend, timeout).await?;
    for server in [BLUE_SERVER, GREEN_SERVER] {
        if !names.iter().any(|name| name == server) {
            let command = format!("show servers state {}", backend.name);
            return Err(rejected(backend, &command, &format!("backend {} has no server named {server}", backend.name)));
        }
    }
    Ok(names)
}

/// One server's line of `show stat`, by column name (`scur`, `stot`, `econ`, `eresp`, `status`, …).
pub(crate) type ServerStat = std::collections::HashMap<String, String>;

/// The `show stat` line of server `server` of `backend`.
pub(crate) async fn server_stat(socket: &Path, backend: Backend<'_>, server: &str, timeout: Duration) -> Result<ServerStat, CutoverError> {
    let answer = runtime_command(socket, "show stat", timeout).await?;
    parse_stat(&answer, backend.name, server).ok_or_else(|| rejected(backend, "show stat", &format!("no statistics for server {}/{server}", backend.name)))
}

/// Every line of `show stat` for `backend`: its servers', then the `BACKEND` line.
pub(crate) async fn backend_stats(socket: &Path, backend: Backend<'_>, timeout: Duration) -> Result<Vec<ServerStat>, CutoverError> {
    let answer = runtime_command(socket, "show stat", timeout).await?;
    let rows: Vec<ServerStat> = stat_rows(&answer, backend.name).filter(|row| row.get("svname").is_none_or(|s| s != "FRONTEND")).collect();
    if rows.is_empty() {
        return Err(rejected(backend, "show stat", &format!("no statistics for backend {}", backend.name)));
    }
    Ok(rows)
}

/// The line of `show stat`'s CSV for `backend`/`server`.
fn parse_stat(csv: &str, backend: &str, server: &str) -> Option<ServerStat> {
    stat_rows(csv, backend).find(|row| row.get("svname").is_some_and(|s| s == server))
}

/// The lines of `show stat`'s CSV (a `# pxname,svname,…` header, then one line per proxy and
/// server) for `backend`, by column name.
fn stat_rows<'a>(csv: &'a str, backend: &'a str) -> impl Iterator<Item = ServerStat> + 'a {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().trim_start_matches('#').trim().split(',').collect();
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(move |f| f.first() == Some(&backend))
        .map(move |fields| header.iter().zip(fields).filter(|(k, _)| !k.is_empty()).map(|(k, v)| ((*k).to_owned(), v.to_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_statistics_are_read_by_column_name() {
        let csv = "# pxname,svname,qcur,scur,stot,econ,eresp,status,weight,\n\
                   db,FRONTEND,,1,9,,,OPEN,,\n\
                   db_read,blue,0,2,30,0,0,UP,90,\n\
                   db_read,green,0,1,7,3,1,UP,10,\n\
                   db_read,BACKEND,0,3,37,3,1,UP,100,\n";
        let green = parse_stat(csv, "db_read", "green").expect("green's line");
        assert_eq!((green["econ"].as_str(), green["eresp"].as_str(), green["weight"].as_str()), ("3", "1", "10"));
        assert!(parse_stat(csv, "db_read", "purple").is_none() && parse_stat("", "db_read", "green").is_none());
    }
}
