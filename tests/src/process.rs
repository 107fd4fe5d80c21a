//! Running server binaries and child processes: as the unprivileged service user when this process is root (PostgreSQL,
//! MariaDB and pgbouncer refuse to run as root), free ports, the binary cache directory.

use crate::error::TestbedError;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

/// True when this process runs as root.
#[allow(unsafe_code)]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// A command that runs `program` as `user` when this process is root (through `setpriv`, which execs
/// in place so the child's pid is the program's), or as the current user otherwise.
pub(crate) fn command_as(user: &str, program: impl AsRef<OsStr>) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([&format!("--reuid={user}"), &format!("--regid={user}"), "--init-groups"]);
        c.arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs a command to completion; a non-zero exit is an error carrying its output.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, TestbedError> {
    let text = format!("{cmd:?}");
    let out = cmd.output().map_err(TestbedError::io(format!("running {text}")))?;
    if !out.status.success() {
        return Err(TestbedError::Command {
            command: text,
            output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(out)
}

/// Gives `path` to `user` (recursively) when running as root, so the service user can write there.
pub(crate) fn chown_to(user: &str, path: &Path) -> Result<(), TestbedError> {
    if is_root() {
        run(Command::new("chown").args(["-R", &format!("{user}:{user}")]).arg(path))?;
    }
    Ok(())
}

/// Makes a directory traversable by everyone (0755).
pub(crate) fn chmod_755(path: &Path) -> Result<(), TestbedError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(TestbedError::io(format!("chmod {}", path.display())))
}

/// A loopback port that was free a moment ago. Servers that fail to bind are retried on a new port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// Where downloaded server builds are cached: `$TURNOUT_CACHE_DIR`, else `/var/cache/turnout` as root,
/// else `$XDG_CACHE_HOME/turnout` or `~/.cache/turnout`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TURNOUT_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if is_root() {
        return PathBuf::from("/var/cache/turnout");
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("turnout");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/turnout")
}

/// A random hex token (passwords, names), from the kernel's random source.
pub fn random_token(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        buf = t.to_le_bytes().iter().cycle().take(bytes).copied().collect();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last `max_lines` lines of a log file, for failure reports.
pub(crate) fn tail(path: &Path, max_lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// How often readiness and exits are polled.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// Finds `name` on `PATH` or in the `sbin` directories (where server binaries live, and which a
/// non-root `PATH` often lacks).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
}

/// Sends SIGTERM to a child that has not been reaped yet.
#[allow(unsafe_code)]
fn send_sigterm(child: &mut Child) {
    // Only signal a child still unreaped: a reaped child's pid may already belong to someone else.
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let Ok(pid) = libc::pid_t::try_from(child.id()) else { return };
    // SAFETY: kill(2) only sends a signal and touches no memory of ours. `pid` is our own child and
    // has not been waited for, so it cannot have been reused by an unrelated process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// Waits up to `limit` for `child` to exit; `None` if it is still running.
pub(crate) fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => return None,
        }
    }
}

/// Stops a child: SIGTERM, up to `grace` to exit, then SIGKILL. Always reaps it. Returns the exit
/// status, `None` when it had to be killed.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    send_sigterm(child);
    if let Some(status) = wait_timeout(child, grace) {
        return Some(status);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// True when something accepts TCP connections on the loopback `port`.
pub(crate) fn accepts_tcp(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(1)).is_ok()
}

/// Opens (creating) an append-only log file for a child's stdout/stderr.
pub(crate) fn output_file(path: &Path) -> Result<File, TestbedError> {
    OpenOptions::new().create(true).append(true).open(path).map_err(TestbedError::io(format!("opening {}", path.display())))
}
