//! Throwaway etcd clusters: N members of Debian's `etcd-server` on loopback ports, each in its own
//! directory, started together as one new cluster; a member can be killed (SIGKILL) and started
//! again on its data. Dropping the cluster stops every member and deletes its files.

use crate::error::TestbedError;
use crate::process::{accepts_tcp, find_program, free_port, output_file, tail, terminate, POLL};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a starting cluster may take until every member listens.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a member may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One member: its name, client and peer ports, and its process while it runs.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster of [`EtcdCluster::start`]'s size on loopback, without authentication;
/// its clients speak TLS and must show a certificate when started by [`EtcdCluster::start_tls`].
/// [`EtcdCluster::endpoints`] lists every member's client URL.
#[derive(Debug)]
pub struct EtcdCluster {
    dir: TempDir,
    program: PathBuf,
    members: Vec<Member>,
    tls: Option<crate::tls::TestCertificates>,
}

/// How many times a cluster is started on new ports when one of its ports was taken meanwhile.
const PORT_ATTEMPTS: u32 = 3;

impl EtcdCluster {
    /// Starts `size` members as one new cluster and waits until each listens for clients. A port
    /// taken by another process between [`free_port`] and etcd's bind (another test's server) is
    /// not this cluster's failure: the whole cluster starts again on new ports, a few times.
    pub fn start(size: usize) -> Result<EtcdCluster, TestbedError> {
        Self::start_with(size, None)
    }

    /// As [`EtcdCluster::start`], with clients on `https://` under `certificates`' server
    /// certificate, each required to show a certificate the same CA signed (`--client-cert-auth`).
    pub fn start_tls(size: usize, certificates: &crate::tls::TestCertificates) -> Result<EtcdCluster, TestbedError> {
        Self::start_with(size, Some(certificates.clone()))
    }

    fn start_with(size: usize, tls: Option<crate::tls::TestCertificates>) -> Result<EtcdCluster, TestbedError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(size, tls.clone()) {
                Err(TestbedError::Start { log, .. }) if attempt < PORT_ATTEMPTS && log.contains("address already in use") => attempt += 1,
                other => return other,
            }
        }
    }

    fn start_once(size: usize, tls: Option<crate::tls::TestCertificates>) -> Result<EtcdCluster, TestbedError> {
        let program = find_program("etcd").ok_or_else(|| TestbedError::Missing { what: "etcd".into(), fix: "apt-get install -y etcd-server".into() })?;
        let dir = tempfile::Builder::new().prefix("turnout-etcd-").tempdir().map_err(TestbedError::io("creating a temp dir"))?;
        let members = (0..size).map(|i| Member { name: format!("m{i}"), client_port: free_port(), peer_port: free_port(), child: None }).collect();
        let mut cluster = EtcdCluster { dir, program, members, tls };
        for i in 0..size {
            cluster.launch(i)?;
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in 0..size {
            cluster.wait_listening(i, deadline)?;
        }
        Ok(cluster)
    }

    /// Every member's client URL (`http://127.0.0.1:PORT`, `https://` with TLS), in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("{}://127.0.0.1:{}", self.scheme(), m.client_port)).collect()
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Kills member `i` with SIGKILL (its data stays).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops member `i` with SIGSTOP: its connections stay open and answer nothing, as a member on
    /// a machine that froze or fell off the network (until [`EtcdCluster::resume`]).
    pub fn pause(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
    }

    /// Lets member `i` go on after [`EtcdCluster::pause`].
    pub fn resume(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
    }

    #[allow(unsafe_code)]
    fn signal(&self, i: usize, signal: libc::c_int) {
        if let Some(child) = &self.members[i].child {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) with the pid of a child this cluster started and has not reaped.
                unsafe { libc::kill(pid, signal) };
            }
        }
    }

    /// Starts member `i` again on its data and waits until it listens.
    pub fn restart(&mut self, i: usize) -> Result<(), TestbedError> {
        self.launch(i)?;
        self.wait_listening(i, Instant::now() + READY_TIMEOUT)
    }

    /// The last lines of member `i`'s log.
    pub fn log(&self, i: usize) -> String {
        tail(&self.log_path(i), 40)
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.members[i].name))
    }

    fn launch(&mut self, i: usize) -> Result<(), TestbedError> {
        let cluster: Vec<String> = self.members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port)).collect();
        let log = output_file(&self.log_path(i))?;
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let mut command = Command::new(&self.program);
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.server_cert.display()))
                .arg(format!("--key-file={}", tls.server_key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca_cert.display()))
                .arg("--client-cert-auth");
        }
        let child = command
            .arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={}://127.0.0.1:{}", self.scheme(), m.client_port))
            .arg(format!("--advertise-client-urls={}://127.0.0.1:{}", self.scheme(), m.client_port))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{}", m.peer_port))
            .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{}", m.peer_port))
            .arg(format!("--initial-cluster={}", cluster.join(",")))
            .arg("--initial-cluster-state=new")
            .arg(format!("--initial-cluster-token={}", self.dir.path().display()))
            // Loopback: a short election keeps a lost leader's replacement quick.
            .args(["--heartbeat-interval=50", "--election-timeout=500", "--logger=zap", "--log-outputs=stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(TestbedError::io("opening etcd's log"))?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(TestbedError::io("starting etcd"))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    fn wait_listening(&mut self, i: usize, deadline: Instant) -> Result<(), TestbedError> {
        loop {
            let m = &mut self.members[i];
            let exited = match m.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(format!("etcd exited ({status})")),
                None => Some("etcd is not running".into()),
                _ => None,
            };
            if let Some(reason) = exited {
                return Err(TestbedError::Start { server: format!("etcd member {}", m.name), reason, log: self.log(i) });
            }
            if accepts_tcp(m.client_port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let reason = format!("not listening on port {} after {} s", m.client_port, READY_TIMEOUT.as_secs());
                return Err(TestbedError::Start { server: format!("etcd member {}", m.name), reason, log: self.log(i) });
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.members.len() {
                eprintln!("--- etcd member {} log (test failed) ---\n{}\n---", self.members[i].name, self.log(i));
            }
        }
        for i in 0..self.members.len() {
            self.resume(i);
        }
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = terminate(&mut child, STOP_GRACE);
            }
        }
    }
}
