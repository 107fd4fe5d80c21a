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
pub(crate) async fn expect_empty(socket: &Path, backend: &str, command: &str, timeout: Duration) -> Result<(), CutoverError> {
    let answer = runtime_command(socket, command, timeout).await?;
    let answer = answer.trim();
    if answer.is_empty() {
        Ok(())
    } else {
        Err(CutoverError::HaProxy { command: command.to_string(), backend: backend.to_string(), response: answer.to_string() })
    }
}

/// Sends new connections of `backend` to server `to` instead of `from`: `to` becomes ready first,
/// then `from` goes to maintenance, so the backend always has a server; then the sessions still open
/// on `from` are shut down so their clients reconnect — to `to`.
pub(crate) async fn move_traffic(socket: &Path, backend: &str, from: &str, to: &str, timeout: Duration) -> Result<(), CutoverError> {
    for command in [
        format!("set server {backend}/{to} state ready"),
        format!("set server {backend}/{from} state maint"),
        format!("shutdown sessions server {backend}/{from}"),
    ] {
        expect_empty(socket, backend, &command, timeout).await?;
    }
    Ok(())
}

/// The names of the servers of `backend` (`show servers state <backend>`).
pub(crate) async fn server_names(socket: &Path, backend: &str, timeout: Duration) -> Result<Vec<String>, CutoverError> {
    let command = format!("show servers state {backend}");
    let answer = runtime_command(socket, &command, timeout).await?;
    // Line 1 is the format version, line 2 the column names after a "#"; an unknown backend gets
    // an error text instead.
    let mut lines = answer.lines().filter(|l| !l.trim().is_empty());
    let _version = lines.next();
    let header = lines.next().unwrap_or_default();
    let columns: Vec<&str> = header.trim_start_matches('#').split_whitespace().collect();
    let Some(name_at) = columns.iter().position(|c| *c == "srv_name") else {
        return Err(CutoverError::HaProxy { command, backend: backend.to_string(), response: answer.trim().to_string() });
    };
    Ok(lines.filter_map(|line| line.split_whitespace().nth(name_at).map(str::to_string)).collect())
}
