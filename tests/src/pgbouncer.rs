//! Throwaway pgbouncer instances in front of a [`PgServer`].

use crate::error::TestbedError;
use crate::postgres::PgServer;
use crate::process::{accepts_tcp, chmod_755, chown_to, command_as, find_program, free_port, output_file, tail, terminate, POLL};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// pgbouncer refuses to run as root; it runs as this user, which owns its directory.
const SERVICE_USER: &str = "postgres";
/// How long a starting pgbouncer may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long pgbouncer may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running pgbouncer (transaction pooling) for one database of a [`PgServer`]. Clients log in as
/// the backend's superuser `postgres` with its password (SCRAM); pgbouncer uses the same credentials
/// towards the backend. `postgres` is also an admin user of the `pgbouncer` admin console
/// ([`PgBouncer::admin`]). Dropping it stops pgbouncer and deletes its files.
#[derive(Debug)]
pub struct PgBouncer {
    dir: TempDir,
    child: Option<Child>,
    port: u16,
    password: String,
}

impl PgBouncer {
    /// Starts pgbouncer on a free port, serving `database` of `backend` under the same name.
    pub fn start(backend: &PgServer, database: &str) -> Result<Self, TestbedError> {
        let program =
            find_program("pgbouncer").ok_or_else(|| TestbedError::Missing { what: "pgbouncer".into(), fix: "apt-get install -y pgbouncer".into() })?;
        let dir = tempfile::Builder::new().prefix("turnout-pgbouncer-").tempdir().map_err(TestbedError::io("creating a temp dir"))?;
        chmod_755(dir.path())?;
        // pgbouncer accepts plain-text passwords here and can then do SCRAM both ways.
        let userlist = dir.path().join("userlist.txt");
        std::fs::write(&userlist, format!("\"postgres\" \"{}\"\n", backend.password())).map_err(TestbedError::io("writing userlist.txt"))?;
        let mut bouncer = PgBouncer { dir, child: None, port: 0, password: backend.password().to_string() };
        let mut last_err = None;
        for _attempt in 0..3 {
            bouncer.port = free_port();
            bouncer.write_config(backend.port(), database)?;
            match bouncer.launch(&program) {
                Ok(()) => return Ok(bouncer),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| TestbedError::Start { server: "pgbouncer".into(), reason: "no attempt made".into(), log: String::new() }))
    }

    fn write_config(&self, backend_port: u16, database: &str) -> Result<(), TestbedError> {
        let dir = self.dir.path();
        let ini = format!(
            "[databases]\n\
             {database} = host=127.0.0.1 port={backend_port} dbname={database}\n\
             \n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir = {dir}\n\
             auth_type = scram-sha-256\n\
             auth_file = {dir}/userlist.txt\n\
             admin_users = postgres\n\
             pool_mode = transaction\n\
             max_client_conn = 200\n\
             default_pool_size = 20\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n\
             ignore_startup_parameters = extra_float_digits,options\n",
            port = self.port,
            dir = dir.display(),
        );
        std::fs::write(self.config_path(), ini).map_err(TestbedError::io("writing pgbouncer.ini"))?;
        chown_to(SERVICE_USER, dir).map_err(|e| match e {
            TestbedError::Command { output, .. } if output.contains("invalid user") || output.contains("invalid group") => {
                TestbedError::Missing { what: "the postgres service user".into(), fix: "apt-get install -y postgresql-15".into() }
            }
            other => other,
        })
    }

    /// Runs pgbouncer (in the foreground, so the child is pgbouncer itself) and waits until it listens.
    fn launch(&mut self, program: &Path) -> Result<(), TestbedError> {
        // pgbouncer writes its log file and repeats it on stderr; stderr is kept for messages from
        // before the log file is opened (such as configuration errors).
        let err = output_file(&self.stderr_path())?;
        let child = command_as(SERVICE_USER, program)
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(TestbedError::io("starting pgbouncer"))?;
        self.child = Some(child);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(reason) => {
                if let Some(mut child) = self.child.take() {
                    let _ = terminate(&mut child, STOP_GRACE);
                }
                Err(TestbedError::Start { server: "pgbouncer".into(), reason, log: self.log() })
            }
        }
    }

    /// Polls until pgbouncer listens on its unix socket and TCP port. pgbouncer keeps running when it
    /// cannot bind the TCP port (it only logs a warning), so that warning counts as a failed start.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let socket = self.dir.path().join(format!(".s.PGSQL.{}", self.port));
        let bind_failure = format!("cannot listen on 127.0.0.1:{}", self.port);
        loop {
            let Some(child) = self.child.as_mut() else { return Err("pgbouncer is not running".into()) };
            match child.try_wait() {
                Ok(Some(status)) => return Err(format!("pgbouncer exited ({status})")),
                Ok(None) => {}
                Err(e) => return Err(format!("checking on pgbouncer: {e}")),
            }
            // The unix socket is created after the TCP listeners, so once it exists a bind failure has
            // been logged.
            if socket.exists() {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                if log.contains(&bind_failure) {
                    return Err(format!("port {} is taken", self.port));
                }
                if accepts_tcp(self.port) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("not listening on port {} after {} s", self.port, READY_TIMEOUT.as_secs()));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Rewrites pgbouncer's configuration file with `edit` (the caller then asks for `RELOAD`).
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) -> Result<(), TestbedError> {
        let text = std::fs::read_to_string(self.config_path()).map_err(TestbedError::io("reading pgbouncer.ini"))?;
        std::fs::write(self.config_path(), edit(text)).map_err(TestbedError::io("writing pgbouncer.ini"))
    }

    /// The pgbouncer process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's URL for `database` through pgbouncer, with TLS disabled. In transaction
    /// pooling, consecutive transactions may run on different backend connections.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/{database}?sslmode=disable", self.password, self.port)
    }

    /// The URL of the admin console (database `pgbouncer`).
    pub fn admin_url(&self) -> String {
        self.url("pgbouncer")
    }

    /// `pgbouncer.ini`. After editing it, [`PgBouncer::admin`] `RELOAD` applies it.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.ini")
    }

    /// The temporary directory holding the configuration, log, pid file and socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.log")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.stderr")
    }

    /// The last lines of pgbouncer's log (of its stderr while there is no log file).
    pub fn log(&self) -> String {
        let log = self.log_path();
        if std::fs::metadata(&log).map(|m| m.len() > 0).unwrap_or(false) {
            tail(&log, 60)
        } else {
            tail(&self.stderr_path(), 60)
        }
    }

    /// Runs an admin-console command such as `PAUSE db`, `RESUME db` or `RELOAD`. The console only
    /// speaks the simple query protocol.
    pub async fn admin(&self, command: &str) -> Result<(), TestbedError> {
        let (client, connection) = tokio_postgres::connect(&self.admin_url(), tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        let result = client.simple_query(command).await;
        drop(client);
        let _ = connection.await;
        result?;
        Ok(())
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- pgbouncer on port {} log (test failed) ---\n{}\n---", self.port, self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = terminate(&mut child, STOP_GRACE);
        }
    }
}
