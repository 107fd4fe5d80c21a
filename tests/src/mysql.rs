//! Throwaway servers of the MySQL family — MariaDB 10.11 from the host, MariaDB 11.8 and Oracle MySQL
//! 9.7 from root file systems of newer Debian suites ([`Flavor`]) — with row-based binary logging,
//! full row metadata and GTIDs.

use crate::error::TestbedError;
use crate::process::{accepts_tcp, chmod_755, chown_to, find_program, free_port, is_root, output_file, random_token, run, tail, terminate, wait_timeout, POLL};
use crate::rootfs::{self, Recipe};
use crate::tls::TestCertificates;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The service user the server switches to when started as root.
const SERVICE_USER: &str = "mysql";
/// The account tests connect with over TCP.
const USER: &str = "turnout";
/// How long a starting server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a clean shutdown may take before the server is signalled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const INSTALL_FIX: &str = "apt-get install -y mariadb-server mariadb-client";

/// Which server of the MySQL family runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// MariaDB 10.11, the host's (Debian 12) own package.
    MariaDb10_11,
    /// MariaDB 11.8 LTS from Debian `trixie`, in a chroot.
    MariaDb11_8,
    /// Oracle MySQL 9.7 LTS from Debian `sid`, in a chroot.
    MySql9_7,
}

impl Flavor {
    /// Every flavor, oldest first.
    pub const ALL: [Flavor; 3] = [Flavor::MariaDb10_11, Flavor::MariaDb11_8, Flavor::MySql9_7];

    /// True for MariaDB, false for Oracle MySQL.
    pub fn is_mariadb(self) -> bool {
        !matches!(self, Flavor::MySql9_7)
    }

    /// A short name for messages, e.g. `MariaDB 11.8`.
    pub fn label(self) -> &'static str {
        match self {
            Flavor::MariaDb10_11 => "MariaDB 10.11",
            Flavor::MariaDb11_8 => "MariaDB 11.8",
            Flavor::MySql9_7 => "MySQL 9.7",
        }
    }

    /// The numbers 1 to `n` as a table with one column, `seq`, for `INSERT … SELECT … FROM` on this
    /// flavor: MariaDB's sequence engine (`seq_1_to_N`), or on MySQL a cross join of digits.
    pub fn numbers(self, n: u64) -> String {
        if self.is_mariadb() {
            return format!("seq_1_to_{n}");
        }
        let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 \
                      UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
        let places = n.to_string().len();
        let sum: Vec<String> = (0..places).map(|p| format!("{}*t{p}.d", 10u64.pow(u32::try_from(p).unwrap_or(0)))).collect();
        let from: Vec<String> = (0..places).map(|p| format!("{digits} t{p}")).collect();
        format!("(SELECT * FROM (SELECT 1 + {} AS seq FROM {}) n WHERE seq <= {n}) numbers", sum.join(" + "), from.join(", "))
    }

    fn recipe(self) -> Option<Recipe> {
        match self {
            Flavor::MariaDb10_11 => None,
            Flavor::MariaDb11_8 => {
                Some(Recipe { name: "mariadb-11.8", suite: "trixie", packages: "mariadb-server,mariadb-client", must_have: "/usr/sbin/mariadbd" })
            }
            Flavor::MySql9_7 => {
                Some(Recipe { name: "mysql-9.7", suite: "sid", packages: "mysql-server-core,mysql-client-core,ca-certificates", must_have: "/usr/sbin/mysqld" })
            }
        }
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The programs used, resolved once: host paths, or paths inside `root` for a chroot flavor.
#[derive(Debug, Clone)]
struct Binaries {
    flavor: Flavor,
    root: Option<PathBuf>,
    server: PathBuf,
    /// `mariadb-install-db`; MySQL initialises its data directory with the server itself.
    install_db: Option<PathBuf>,
    client: PathBuf,
}

impl Binaries {
    fn find(flavor: Flavor) -> Result<Self, TestbedError> {
        let Some(recipe) = flavor.recipe() else {
            let find = |name: &str| find_program(name).ok_or_else(|| TestbedError::Missing { what: name.to_string(), fix: INSTALL_FIX.into() });
            return Ok(Binaries { flavor, root: None, server: find("mariadbd")?, install_db: Some(find("mariadb-install-db")?), client: find("mariadb")? });
        };
        let root = rootfs::ensure(&recipe)?;
        let bin = if flavor.is_mariadb() {
            Binaries {
                flavor,
                root: Some(root),
                server: "/usr/sbin/mariadbd".into(),
                install_db: Some("/usr/bin/mariadb-install-db".into()),
                client: "/usr/bin/mariadb".into(),
            }
        } else {
            Binaries { flavor, root: Some(root), server: "/usr/sbin/mysqld".into(), install_db: None, client: "/usr/bin/mysql".into() }
        };
        Ok(bin)
    }

    fn command(&self, program: &Path) -> Command {
        rootfs::command(self.root.as_deref(), program)
    }

    /// `path` (on the host) as the server sees it.
    fn on_server(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => Path::new("/").join(path.strip_prefix(root).unwrap_or(path)),
            None => path.to_path_buf(),
        }
    }

    /// Gives `path` to the service user of the server's own system.
    fn chown(&self, path: &Path) -> Result<(), TestbedError> {
        match &self.root {
            Some(root) => {
                run(Command::new("chroot").arg(root).args(["chown", "-R", &format!("{SERVICE_USER}:{SERVICE_USER}")]).arg(self.on_server(path))).map(|_| ())
            }
            None => chown_to(SERVICE_USER, path).map_err(|e| match e {
                TestbedError::Command { output, .. } if output.contains("invalid user") || output.contains("invalid group") => {
                    TestbedError::Missing { what: "the mysql service user".into(), fix: INSTALL_FIX.into() }
                }
                other => other,
            }),
        }
    }
}

/// A running throwaway server of the MySQL family. Dropping it shuts the server down and deletes
/// its files.
///
/// Binary logging is row-based with full row images and metadata and GTIDs (MariaDB: strict mode;
/// MySQL: `gtid_mode = ON`), and the binlogs live in the temporary directory. Over TCP only the
/// user [`MySqlServer::user`] can log in, with [`MySqlServer::password`]; `root` (no password) is
/// reachable only through the unix socket, which [`MySqlServer::execute`] uses.
#[derive(Debug)]
pub struct MySqlServer {
    dir: TempDir,
    bin: Binaries,
    child: Option<Child>,
    port: u16,
    server_id: u32,
    password: String,
    certificates: Option<TestCertificates>,
}

impl MySqlServer {
    /// Starts the host's MariaDB with `server_id` 1.
    pub fn start() -> Result<Self, TestbedError> {
        Self::start_with(1)
    }

    /// Starts the host's MariaDB with the given `server_id` (distinct ids let servers replicate from each other).
    pub fn start_with(server_id: u32) -> Result<Self, TestbedError> {
        Self::start_inner(Flavor::MariaDb10_11, server_id, false)
    }

    /// Starts a server of `flavor` with the given `server_id`. A chroot flavor's root file system is
    /// built on first use (root privileges and `mmdebstrap` needed; an error says so).
    pub fn start_flavor(flavor: Flavor, server_id: u32) -> Result<Self, TestbedError> {
        Self::start_inner(flavor, server_id, false)
    }

    /// Starts the host's MariaDB offering TLS with a certificate for `localhost` and `127.0.0.1`
    /// signed by a throwaway CA ([`MySqlServer::certificates`]).
    pub fn start_tls(server_id: u32) -> Result<Self, TestbedError> {
        Self::start_inner(Flavor::MariaDb10_11, server_id, true)
    }

    fn start_inner(flavor: Flavor, server_id: u32, tls: bool) -> Result<Self, TestbedError> {
        let bin = Binaries::find(flavor)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix("turnout-mysql-");
        let dir = match &bin.root {
            Some(root) => builder.tempdir_in(root.join("tmp")),
            None => builder.tempdir(),
        }
        .map_err(TestbedError::io("creating a temp dir"))?;
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
        bin.chown(dir.path())?;
        // Bootstraps run one at a time in this process (parallel bootstraps were seen to fail), and a
        // failed one is retried once on a clean data directory.
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let data = dir.path().join("data");
        let install = || {
            let mut cmd;
            if let Some(install_db) = &bin.install_db {
                cmd = bin.command(install_db);
                cmd.arg("--no-defaults");
                if is_root() {
                    cmd.arg(format!("--user={SERVICE_USER}"));
                }
                cmd.arg(format!("--datadir={}", bin.on_server(&data).display())).arg(format!("--tmpdir={}", bin.on_server(dir.path()).display())).args([
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--skip-name-resolve",
                    // Many servers at once would exhaust the kernel's AIO contexts (fs.aio-max-nr).
                    "--innodb-use-native-aio=0",
                ]);
            } else {
                cmd = bin.command(&bin.server);
                cmd.args(["--no-defaults", "--initialize-insecure", "--innodb-use-native-aio=0"])
                    .arg(format!("--user={SERVICE_USER}"))
                    .arg(format!("--datadir={}", bin.on_server(&data).display()))
                    .arg(format!("--tmpdir={}", bin.on_server(&dir.path().join("tmp")).display()));
            }
            run(&mut cmd)
        };
        {
            let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(first) = install() {
                tracing::warn!("initialising the {flavor} data directory failed, retrying once: {first}");
                let _ = std::fs::remove_dir_all(&data);
                install()?;
            }
        }

        let mut server = MySqlServer { dir, bin, child: None, port: 0, server_id, password: random_token(12), certificates };
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
        Err(last_err.unwrap_or_else(|| TestbedError::Start { server: flavor.label().into(), reason: "no attempt made".into(), log: String::new() }))
    }

    /// The server's flavor.
    pub fn flavor(&self) -> Flavor {
        self.bin.flavor
    }

    /// A command running `program` (an absolute path in the server's own system, e.g.
    /// `/usr/bin/mysqlbinlog`) where the server runs: in its root file system for a chroot flavor.
    pub fn tool(&self, program: &str) -> Command {
        self.bin.command(Path::new(program))
    }

    /// `path` (on this machine, inside [`MySqlServer::dir`]) as the server sees it: the same path,
    /// or for a chroot flavor the path inside its root — for `LOAD DATA INFILE` and the like.
    pub fn path_on_server(&self, path: &Path) -> PathBuf {
        self.bin.on_server(path)
    }

    /// Runs the server on `self.port` and waits until it answers on TCP and on its socket.
    fn launch(&mut self) -> Result<(), TestbedError> {
        let out = output_file(&self.output_path())?;
        let err = out.try_clone().map_err(TestbedError::io("duplicating the output file"))?;
        let path = |p: PathBuf| self.bin.on_server(&p).display().to_string();
        let dir = self.dir.path();
        let mut cmd = self.bin.command(&self.bin.server);
        cmd.arg("--no-defaults");
        if is_root() {
            // The server drops to this user itself, so the child's pid stays the server's.
            cmd.arg(format!("--user={SERVICE_USER}"));
        }
        cmd.arg(format!("--datadir={}", path(dir.join("data"))))
            .arg(format!("--tmpdir={}", path(dir.join("tmp"))))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", path(self.socket_path())))
            .arg(format!("--pid-file={}", path(dir.join("mysqld.pid"))))
            .arg(format!("--log-error={}", path(self.log_path())))
            .arg("--skip-name-resolve")
            .arg(format!("--server-id={}", self.server_id))
            .arg(format!("--log-bin={}", path(dir.join("binlog/mysql-bin"))))
            .args(["--binlog-row-image=FULL", "--binlog-row-metadata=FULL", "--innodb-flush-log-at-trx-commit=2", "--innodb-use-native-aio=0"]);
        if self.bin.flavor.is_mariadb() {
            cmd.args(["--binlog-format=ROW", "--log-slave-updates=ON", "--gtid-strict-mode=ON"]);
        } else {
            // ROW and log_replica_updates are MySQL's defaults (binlog_format is deprecated).
            cmd.args(["--gtid-mode=ON", "--enforce-gtid-consistency=ON", "--mysqlx=OFF", "--secure-file-priv="]);
        }
        cmd.args(self.certificates.iter().flat_map(|c| {
            [
                format!("--ssl-cert={}", path(c.server_cert.clone())),
                format!("--ssl-key={}", path(c.server_key.clone())),
                format!("--ssl-ca={}", path(c.ca_cert.clone())),
            ]
        }))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
        let child = cmd.spawn().map_err(TestbedError::io(format!("starting {}", self.bin.flavor)))?;
        self.child = Some(child);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.shut_down();
                Err(TestbedError::Start { server: self.bin.flavor.label().into(), reason, log: self.log() })
            }
        }
    }

    /// Polls until the server accepts TCP connections and answers a ping on its socket.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let Some(child) = self.child.as_mut() else { return Err("the server is not running".into()) };
            match child.try_wait() {
                Ok(Some(status)) => return Err(format!("the server exited ({status})")),
                Ok(None) => {}
                Err(e) => return Err(format!("checking on the server: {e}")),
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

    /// The client as `root` over the socket, in batch mode.
    fn client(&self) -> Command {
        let mut cmd = self.bin.command(&self.bin.client);
        cmd.arg("--no-defaults").arg(format!("--socket={}", self.bin.on_server(&self.socket_path()).display())).args([
            "--user=root",
            "--connect-timeout=2",
            "-N",
            "-B",
        ]);
        cmd.stdin(Stdio::null());
        cmd
    }

    fn ping(&self) -> bool {
        self.client().args(["-e", "SELECT 1"]).stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
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
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;\n",
            pw = self.password
        ));
        if self.bin.flavor.is_mariadb() {
            sql.push_str(&format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO '{USER}'@'%';\n"));
        }
        sql.push_str("FLUSH PRIVILEGES;");
        self.execute(None, &sql).map(|_| ())
    }

    /// Shuts the server down if it runs: `SHUTDOWN` over the socket, then SIGTERM, then SIGKILL,
    /// each with a bounded wait. Returns how the server exited (`None`: it had to be killed).
    fn shut_down(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let client = self.client().args(["-e", "SHUTDOWN"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        let status = match wait_timeout(&mut child, SHUTDOWN_GRACE) {
            Some(status) => Some(status),
            None => terminate(&mut child, SHUTDOWN_GRACE),
        };
        if let Ok(mut client) = client {
            // It exits once the server is gone; bounded in case it hangs.
            let _ = terminate(&mut client, Duration::from_secs(2));
        }
        status
    }

    /// Shuts the server down cleanly. [`MySqlServer::restart`] starts it again on the same port.
    pub fn stop(&mut self) -> Result<(), TestbedError> {
        if self.child.is_none() {
            return Ok(());
        }
        match self.shut_down() {
            Some(status) if status.success() => Ok(()),
            other => Err(TestbedError::Command {
                command: "SHUTDOWN".into(),
                output: match other {
                    Some(status) => format!("{} exited with {status}\n{}", self.bin.flavor, self.log()),
                    None => format!("{} did not stop and was killed\n{}", self.bin.flavor, self.log()),
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

    /// The CA and server certificate of a server started with [`MySqlServer::start_tls`].
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
        let mut cmd = self.client();
        if let Some(database) = database {
            cmd.arg(format!("--database={database}"));
        }
        let out = run(cmd.arg("-e").arg(sql))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates a database with a fresh random name and returns the name.
    pub fn create_database(&self, prefix: &str) -> Result<String, TestbedError> {
        let name = format!("{prefix}_{}", random_token(4));
        self.execute(None, &format!("CREATE DATABASE `{name}`"))?;
        Ok(name)
    }
}

impl Drop for MySqlServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} on port {} log (test failed) ---\n{}\n---", self.bin.flavor, self.port, self.log());
        }
        let _ = self.shut_down();
    }
}
