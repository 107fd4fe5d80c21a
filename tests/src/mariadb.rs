//! Throwaway MariaDB servers with row-based binary logging and GTIDs.

use crate::error::TestbedError;
use crate::process::{accepts_tcp, chmod_755, chown_to, find_program, free_port, is_root, output_file, random_token, run, tail, terminate, wait_timeout, POLL};
use crate::tls::TestCertificates;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The service user `mariadbd` switches to when started as root.
const SERVICE_USER: &str = "mysql";
/// The account tests connect with over TCP.
const USER: &str = "turnout";
/// How long a starting server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clean shutdown may take before the server is signalled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const INSTALL_FIX: &str = "apt-get install -y mariadb-server mariadb-client";

/// The MariaDB programs used, resolved once.
#[derive(Debug, Clone)]
struct Binaries {
    server: PathBuf,
    install_db: PathBuf,
    client: PathBuf,
    admin: PathBuf,
}

impl Binaries {
    fn find() -> Result<Self, TestbedError> {
        let find = |name: &str| find_program(name).ok_or_else(|| TestbedError::Missing { what: name.to_string(), fix: INSTALL_FIX.into() });
        Ok(Binaries { server: find("mariadbd")?, install_db: find("mariadb-install-db")?, client: find("mariadb")?, admin: find("mariadb-admin")? })
    }
}

/// A running throwaway MariaDB server. Dropping it shuts the server down and deletes its files.
///
/// Binary logging is row-based with full row images and metadata, GTID strict mode is on, and the
/// binlogs live in the temporary directory. Over TCP only the user [`MariaDbServer::user`] can log
/// in, with [`MariaDbServer::password`]; `root` (no password) is reachable only through the unix
/// socket, which [`MariaDbServer::execute`] uses.
#[derive(Debug)]
pub struct MariaDbServer {
    dir: TempDir,
    bin: Binaries,
    child: Option<Child>,
    port: u16,
    server_id: u32,
    password: String,
    certificates: Option<TestCertificates>,
}

impl MariaDbServer {
    /// Starts a server with `server_id` 1.
    pub fn start() -> Result<Self, TestbedError> {
        Self::start_with(1)
    }

    /// Starts a server with the given `server_id` (distinct ids let servers replicate from each other).
    pub fn start_with(server_id: u32) -> Result<Self, TestbedError> {
        Self::start_inner(server_id, false)
    }

    /// Starts a server that offers TLS with a certificate for `localhost` and `127.0.0.1` signed
    /// by a throwaway CA ([`MariaDbServer::certificates`]).
    pub fn start_tls(server_id: u32) -> Result<Self, TestbedError> {
        Self::start_inner(server_id, true)
    }

    fn start_inner(server_id: u32, tls: bool) -> Result<Self, TestbedError> {
        let bin = Binaries::find()?;
        let dir = tempfile::Builder::new().prefix("turnout-mariadb-").tempdir().map_err(TestbedError::io("creating a temp dir"))?;
        chmod_755(dir.path())?;
        for sub in ["tmp", "binlog"] {
            let path = dir.path().join(sub);
            std::fs::create_dir(&path).map_err(TestbedError::io(format!("creating {}", path.display())))?;
        }
        let certificates = if tls {
            let path = dir.path().join("tls");
            std::fs::create_dir(&path).map_err(TestbedError::io(format!("creating {}", path.display())))?;
            Some(TestCertificates::generate(&path)?)
        } else {
            None
        };
        chown_to(SERVICE_USER, dir.path()).map_err(|e| match e {
            TestbedError::Command { output, .. } if output.contains("invalid user") || output.contains("invalid group") => {
                TestbedError::Missing { what: "the mysql service user".into(), fix: INSTALL_FIX.into() }
            }
            other => other,
        })?;
        // Bootstraps run one at a time in this process (parallel bootstraps were seen to fail), and a
        // failed one is retried once on a clean data directory.
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let data = dir.path().join("data");
        let install = || {
            let mut cmd = Command::new(&bin.install_db);
            cmd.arg("--no-defaults");
            if is_root() {
                cmd.arg(format!("--user={SERVICE_USER}"));
            }
            cmd.arg(format!("--datadir={}", data.display())).arg(format!("--tmpdir={}", dir.path().display())).args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                // Many servers at once would exhaust the kernel's AIO contexts (fs.aio-max-nr).
                "--innodb-use-native-aio=0",
            ]);
            run(&mut cmd)
        };
        {
            let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(first) = install() {
                tracing::warn!("mariadb-install-db failed, retrying once: {first}");
                let _ = std::fs::remove_dir_all(&data);
                install()?;
            }
        }

        let mut server = MariaDbServer { dir, bin, child: None, port: 0, server_id, password: random_token(12), certificates };
        let mut last_err = None;
        for _attempt in 0..3 {
            server.port = free_port();
            match server.launch() {
                Ok(()) => {
                    server.create_users()?;
                    return Ok(server);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| TestbedError::Start { server: "MariaDB".into(), reason: "no attempt made".into(), log: String::new() }))
    }

    /// Runs `mariadbd` on `self.port` and waits until it answers on TCP and on its socket.
    fn launch(&mut self) -> Result<(), TestbedError> {
        let out = output_file(&self.output_path())?;
        let err = out.try_clone().map_err(TestbedError::io("duplicating the output file"))?;
        let dir = self.dir.path();
        let mut cmd = Command::new(&self.bin.server);
        cmd.arg("--no-defaults");
        if is_root() {
            // mariadbd drops to this user itself, so the child's pid stays the server's.
            cmd.arg(format!("--user={SERVICE_USER}"));
        }
        cmd.arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", self.log_path().display()))
            .arg("--skip-name-resolve")
            .arg(format!("--server-id={}", self.server_id))
            .arg(format!("--log-bin={}", dir.join("binlog/mysql-bin").display()))
            .args([
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                "--log-slave-updates=ON",
                "--gtid-strict-mode=ON",
                "--innodb-flush-log-at-trx-commit=2",
                "--innodb-use-native-aio=0",
            ])
            .args(self.certificates.iter().flat_map(|c| {
                [
                    format!("--ssl-cert={}", c.server_cert.display()),
                    format!("--ssl-key={}", c.server_key.display()),
                    format!("--ssl-ca={}", c.ca_cert.display()),
                ]
            }))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd.spawn().map_err(TestbedError::io("starting mariadbd"))?;
        self.child = Some(child);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.shut_down();
                Err(TestbedError::Start { server: "MariaDB".into(), reason, log: self.log() })
            }
        }
    }

    /// Polls until the server accepts TCP connections and answers a ping on its socket.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let Some(child) = self.child.as_mut() else { return Err("mariadbd is not running".into()) };
            match child.try_wait() {
                Ok(Some(status)) => return Err(format!("mariadbd exited ({status})")),
                Ok(None) => {}
                Err(e) => return Err(format!("checking on mariadbd: {e}")),
            }
            // The TCP check alone could reach another process that took the port; the socket is ours.
            if accepts_tcp(self.port) && self.ping() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready on port {} after {} s", self.port, READY_TIMEOUT.as_secs()));
            }
            std::thread::sleep(POLL);
        }
    }

    fn ping(&self) -> bool {
        Command::new(&self.bin.admin)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket_path().display()))
            .args(["--user=root", "--connect-timeout=2", "ping"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Leaves `root` reachable only over the socket and creates the password-protected TCP user.
    fn create_users(&self) -> Result<(), TestbedError> {
        // mariadb-install-db creates root@127.0.0.1, root@::1 and root@HOSTNAME without a password.
        let others = self.execute(
            None,
            "SELECT CONCAT(QUOTE(user), '@', QUOTE(host)) FROM mysql.user \
             WHERE (user = 'root' AND host <> 'localhost') OR user = ''",
        )?;
        let others: Vec<&str> = others.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let mut sql = String::new();
        if !others.is_empty() {
            sql.push_str(&format!("DROP USER {};\n", others.join(", ")));
        }
        sql.push_str(&format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{pw}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;\n\
             GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO '{USER}'@'%';\n\
             FLUSH PRIVILEGES;",
            pw = self.password
        ));
        self.execute(None, &sql).map(|_| ())
    }

    /// Shuts the server down if it runs: `mariadb-admin shutdown`, then SIGTERM, then SIGKILL, each
    /// with a bounded wait. Returns how the server exited (`None`: it had to be killed).
    fn shut_down(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let admin = Command::new(&self.bin.admin)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket_path().display()))
            .args(["--user=root", "--connect-timeout=2", &format!("--shutdown-timeout={}", SHUTDOWN_GRACE.as_secs()), "shutdown"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let status = match wait_timeout(&mut child, SHUTDOWN_GRACE) {
            Some(status) => Some(status),
            None => terminate(&mut child, SHUTDOWN_GRACE),
        };
        if let Ok(mut admin) = admin {
            // It exits once the server is gone; bounded in case it hangs.
            let _ = terminate(&mut admin, Duration::from_secs(2));
        }
        status
    }

    /// Shuts the server down cleanly. [`MariaDbServer::restart`] starts it again on the same port.
    pub fn stop(&mut self) -> Result<(), TestbedError> {
        if self.child.is_none() {
            return Ok(());
        }
        match self.shut_down() {
            Some(status) if status.success() => Ok(()),
            other => Err(TestbedError::Command {
                command: "mariadb-admin shutdown".into(),
                output: match other {
                    Some(status) => format!("mariadbd exited with {status}\n{}", self.log()),
                    None => format!("mariadbd did not stop and was killed\n{}", self.log()),
                },
            }),
        }
    }

    /// Stops the server if it runs and starts it again on the same port and data directory.
    pub fn restart(&mut self) -> Result<(), TestbedError> {
        self.stop()?;
        self.launch()
    }

    /// The server process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The CA and server certificate of a server started with [`MariaDbServer::start_tls`].
    pub fn certificates(&self) -> Option<&TestCertificates> {
        self.certificates.as_ref()
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    /// The TCP user (`turnout`), which has all privileges including replication.
    pub fn user(&self) -> &'static str {
        USER
    }

    /// The TCP user's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A `mysql://` URL for the TCP user and `database`.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://{USER}:{}@127.0.0.1:{}/{database}", self.password, self.port)
    }

    /// The unix socket, where `root` logs in without a password.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// The temporary directory holding the data directory, binlogs, log and socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the binary logs (`mysql-bin.NNNNNN`).
    pub fn binlog_dir(&self) -> PathBuf {
        self.dir.path().join("binlog")
    }

    /// The server's error log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// Where the server's stdout and stderr go (messages from before the error log is opened).
    fn output_path(&self) -> PathBuf {
        self.dir.path().join("mariadbd.out")
    }

    /// The last lines of the error log, followed by any stdout/stderr output.
    pub fn log(&self) -> String {
        let mut log = tail(&self.log_path(), 60);
        let out = self.output_path();
        if std::fs::metadata(&out).map(|m| m.len() > 0).unwrap_or(false) {
            log.push_str("\n--- stdout/stderr ---\n");
            log.push_str(&tail(&out, 20));
        }
        log
    }

    /// Runs SQL (several statements allowed) as `root` over the socket with the `mariadb` client in
    /// batch mode (`-N -B`: tab-separated, no column names) and returns its stdout.
    pub fn execute(&self, database: Option<&str>, sql: &str) -> Result<String, TestbedError> {
        let mut cmd = Command::new(&self.bin.client);
        cmd.arg("--no-defaults").arg(format!("--socket={}", self.socket_path().display())).args(["--user=root", "-N", "-B"]);
        if let Some(database) = database {
            cmd.arg(format!("--database={database}"));
        }
        let out = run(cmd.arg("-e").arg(sql).stdin(Stdio::null()))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates a database with a fresh random name and returns the name.
    pub fn create_database(&self, prefix: &str) -> Result<String, TestbedError> {
        let name = format!("{prefix}_{}", random_token(4));
        self.execute(None, &format!("CREATE DATABASE `{name}`"))?;
        Ok(name)
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- MariaDB on port {} log (test failed) ---\n{}\n---", self.port, self.log());
        }
        let _ = self.shut_down();
    }
}
