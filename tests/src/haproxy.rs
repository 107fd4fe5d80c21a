//! Throwaway haproxy instances: one TCP frontend in front of a backend with an active and a standby
//! server, a second frontend for reads in front of a backend sharing them by weight, and the admin
//! socket of its runtime API.

use crate::error::TestbedError;
use crate::process::{accepts_tcp, find_program, free_port, output_file, tail, terminate, POLL};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a starting haproxy may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long haproxy may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running haproxy in TCP mode: clients connect to [`HaProxy::port`] and reach backend
/// [`HaProxy::backend`], which has the active server (ready) and the standby server (in
/// maintenance, `disabled`) given to [`HaProxy::start`]. The runtime API listens on
/// [`HaProxy::admin_socket`] with `level admin`. Reads connect to [`HaProxy::read_port`] and reach
/// backend [`HaProxy::read_backend`] (`<backend>_read`), round-robin by weight over the same two
/// servers: the active one weight 100, the standby one weight 0 (ready, taking nothing). Dropping it
/// stops haproxy and deletes its files.
#[derive(Debug)]
pub struct HaProxy {
    dir: TempDir,
    child: Option<Child>,
    port: u16,
    read_port: u16,
    backend: String,
}

impl HaProxy {
    /// Starts haproxy on a free port with `backend` holding `active` and `standby`, each a server
    /// name and a loopback port.
    pub fn start(backend: &str, active: (&str, u16), standby: (&str, u16)) -> Result<Self, TestbedError> {
        let program = find_program("haproxy").ok_or_else(|| TestbedError::Missing { what: "haproxy".into(), fix: "apt-get install -y haproxy".into() })?;
        let dir = tempfile::Builder::new().prefix("turnout-haproxy-").tempdir().map_err(TestbedError::io("creating a temp dir"))?;
        let mut proxy = HaProxy { dir, child: None, port: 0, read_port: 0, backend: backend.to_string() };
        let mut last_err = None;
        for _attempt in 0..3 {
            proxy.port = free_port();
            proxy.read_port = free_port();
            proxy.write_config(active, standby)?;
            match proxy.launch(&program) {
                Ok(()) => return Ok(proxy),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| TestbedError::Start { server: "haproxy".into(), reason: "no attempt made".into(), log: String::new() }))
    }

    fn write_config(&self, active: (&str, u16), standby: (&str, u16)) -> Result<(), TestbedError> {
        let cfg = format!(
            "global\n    stats socket {socket} mode 600 level admin\n\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n\n\
             frontend clients\n    bind 127.0.0.1:{port}\n    default_backend {backend}\n\n\
             backend {backend}\n    server {a_name} 127.0.0.1:{a_port}\n    server {s_name} 127.0.0.1:{s_port} disabled\n\n\
             frontend reads\n    bind 127.0.0.1:{read_port}\n    default_backend {backend}_read\n\n\
             backend {backend}_read\n    balance roundrobin\n    server {a_name} 127.0.0.1:{a_port} weight 100\n    server {s_name} 127.0.0.1:{s_port} weight 0\n",
            socket = self.admin_socket().display(),
            port = self.port,
            read_port = self.read_port,
            backend = self.backend,
            a_name = active.0,
            a_port = active.1,
            s_name = standby.0,
            s_port = standby.1,
        );
        std::fs::write(self.config_path(), cfg).map_err(TestbedError::io("writing haproxy.cfg"))
    }

    /// Runs haproxy in the foreground (`-db`, so the child is haproxy itself) and waits until it
    /// listens on its port and its admin socket.
    fn launch(&mut self, program: &Path) -> Result<(), TestbedError> {
        let _ = std::fs::remove_file(self.admin_socket());
        let log = output_file(&self.log_path())?;
        let child = Command::new(program)
            .arg("-db")
            .arg("-f")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(TestbedError::io("opening haproxy's log"))?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(TestbedError::io("starting haproxy"))?;
        self.child = Some(child);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(reason) => {
                if let Some(mut child) = self.child.take() {
                    let _ = terminate(&mut child, STOP_GRACE);
                }
                Err(TestbedError::Start { server: "haproxy".into(), reason, log: self.log() })
            }
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let Some(child) = self.child.as_mut() else { return Err("haproxy is not running".into()) };
            match child.try_wait() {
                Ok(Some(status)) => return Err(format!("haproxy exited ({status})")),
                Ok(None) => {}
                Err(e) => return Err(format!("checking on haproxy: {e}")),
            }
            if self.admin_socket().exists() && accepts_tcp(self.port) && accepts_tcp(self.read_port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not listening on port {} after {} s", self.port, READY_TIMEOUT.as_secs()));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The haproxy process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The frontend's loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The backend's name.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The read frontend's loopback port.
    pub fn read_port(&self) -> u16 {
        self.read_port
    }

    /// The read backend's name: `<backend>_read`.
    pub fn read_backend(&self) -> String {
        format!("{}_read", self.backend)
    }

    /// The runtime API's unix socket (`level admin`).
    pub fn admin_socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.log")
    }

    /// Sends one runtime API command and returns the answer.
    pub fn runtime(&self, command: &str) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut socket = std::os::unix::net::UnixStream::connect(self.admin_socket())?;
        socket.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// Column `column` of `show stat` for `backend`/`server` (empty when haproxy leaves it empty).
    pub fn server_stat(&self, backend: &str, server: &str, column: &str) -> String {
        let stat = self.runtime("show stat").expect("show stat");
        let mut lines = stat.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().trim_start_matches('#').trim().split(',').collect();
        let at = header.iter().position(|c| *c == column).unwrap_or_else(|| panic!("show stat has no column {column}"));
        let line = lines.find(|l| l.starts_with(&format!("{backend},{server},"))).unwrap_or_else(|| panic!("show stat has no line for {backend}/{server}"));
        line.split(',').nth(at).unwrap_or_default().to_owned()
    }

    /// The last lines of haproxy's output.
    pub fn log(&self) -> String {
        tail(&self.log_path(), 60)
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- haproxy on port {} log (test failed) ---\n{}\n---", self.port, self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = terminate(&mut child, STOP_GRACE);
        }
    }
}
