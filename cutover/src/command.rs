//! Running the operator's switch command (`cutover.command.argv`) with blue's and green's URLs in its
//! environment, a time limit, and a bounded tail of its output for reports and errors.
//!
//! The command runs in a process group of its own; when it overruns, the whole group is killed, so
//! nothing it started keeps running. The URLs (and their passwords) are masked in any output that is
//! reported.

use crate::error::CutoverError;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::task::JoinHandle;

/// Bytes of stdout and stderr kept (the end of each).
const TAIL_BYTES: usize = 4096;

/// How long output is still read after the command exited (something it left running in the
/// background may hold its stdout open).
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// What a successful command printed.
pub(crate) struct CommandOutput {
    pub stdout_tail: String,
}

/// Runs `argv` with `env` added to turnout's environment; `secrets` are masked in output.
pub(crate) async fn run(argv: &[String], env: &[(&str, &str)], secrets: &[String], timeout: Duration) -> Result<CommandOutput, CutoverError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(CutoverError::Config { field: "cutover.command.argv", reason: "is empty; give the program and its arguments".into() });
    };
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).process_group(0);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().map_err(|e| CutoverError::CommandStart { program: program.clone(), reason: e.to_string() })?;
    let stdout = child.stdout.take().map(tail_reader);
    let stderr = child.stderr.take().map(tail_reader);
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(CutoverError::CommandStart { program: program.clone(), reason: format!("waiting for it failed: {e}") });
        }
        Err(_elapsed) => {
            if let Some(pid) = child.id() {
                kill_group(pid);
            }
            let _ = child.kill().await;
            let stderr_tail = finish(stderr, secrets).await;
            return Err(CutoverError::CommandTimeout { program: program.clone(), timeout, stderr_tail });
        }
    };
    let stdout_tail = finish(stdout, secrets).await;
    let stderr_tail = finish(stderr, secrets).await;
    if status.success() {
        Ok(CommandOutput { stdout_tail })
    } else {
        let stderr_tail = if stderr_tail.trim().is_empty() { "(nothing)".to_string() } else { stderr_tail };
        Err(CutoverError::CommandFailed { program: program.clone(), status: status.to_string(), stderr_tail })
    }
}

/// Reads a pipe to its end in the background, keeping only the last [`TAIL_BYTES`].
fn tail_reader<R: AsyncRead + Unpin + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut tail = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > TAIL_BYTES {
                tail.drain(..tail.len() - TAIL_BYTES);
            }
        }
        tail
    })
}

/// The text a reader kept, with secrets masked; gives up after [`DRAIN_LIMIT`].
async fn finish(reader: Option<JoinHandle<Vec<u8>>>, secrets: &[String]) -> String {
    let Some(mut reader) = reader else { return String::new() };
    let bytes = match tokio::time::timeout(DRAIN_LIMIT, &mut reader).await {
        Ok(Ok(bytes)) => bytes,
        _ => {
            reader.abort();
            Vec::new()
        }
    };
    mask(&String::from_utf8_lossy(&bytes), secrets)
}

/// Replaces every secret (longest first, so a URL goes before the password inside it) with
/// `<redacted>`.
pub(crate) fn mask(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in secrets {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

/// Kills the process group led by `pid` (the command and everything it started).
#[allow(unsafe_code)]
fn kill_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) only sends a signal. `pgid` is the group our own, not yet reaped child leads
    // (it was spawned with process_group(0)), so it cannot name someone else's processes.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_passwords_are_masked() {
        let secrets = vec!["postgres://app:s3cret@green:5432/app".to_string(), "s3cret".to_string()];
        assert_eq!(
            mask("connecting to postgres://app:s3cret@green:5432/app failed; password s3cret", &secrets),
            "connecting to <redacted> failed; password <redacted>"
        );
    }
}
