//! A fault-injecting TCP proxy for tests: sits between turnout and a server, and can cut every
//! connection, stall them (bytes held, nothing lost, as when packets stop arriving) and add latency
//! (these machines have no `tc netem`).
//!
//! It runs on its own thread with its own runtime, so a test that blocks (or uses a current-thread
//! runtime) never stalls it by accident. Dropping the proxy closes every connection.

use crate::error::TestbedError;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What the connections currently suffer.
#[derive(Debug)]
struct Faults {
    /// Incremented to cut every open connection.
    generation: watch::Sender<u64>,
    /// While true, no byte moves in either direction.
    stalled: watch::Sender<bool>,
    /// Added to every chunk in each direction, microseconds (a round trip costs twice this).
    one_way_us: AtomicU64,
    /// Connections accepted so far.
    accepted: AtomicU64,
    /// How many of the next connections are closed at once, before any byte passes.
    refuse: AtomicU64,
    /// Connections closed that way so far.
    refused: AtomicU64,
    closed: AtomicBool,
}

/// A running proxy in front of `target`.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    faults: Arc<Faults>,
    shutdown: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `127.0.0.1:target_port`.
    pub fn start(target_port: u16) -> Result<Proxy, TestbedError> {
        Self::start_at(std::net::Ipv4Addr::LOCALHOST, 0, target_port)
    }

    /// As [`Proxy::start`], listening on `ip:port` (any loopback address, `127.0.0.2` say; port 0: a
    /// free one) — so that two servers can be reached on one port number, as pgbouncer's host
    /// lists need.
    pub fn start_at(ip: std::net::Ipv4Addr, port: u16, target_port: u16) -> Result<Proxy, TestbedError> {
        let target: SocketAddr = ([127, 0, 0, 1], target_port).into();
        let std_listener = std::net::TcpListener::bind((ip, port)).map_err(TestbedError::io("binding the proxy"))?;
        std_listener.set_nonblocking(true).map_err(TestbedError::io("configuring the proxy socket"))?;
        let port = std_listener.local_addr().map_err(TestbedError::io("reading the proxy address"))?.port();
        let faults = Arc::new(Faults {
            generation: watch::channel(0).0,
            stalled: watch::channel(false).0,
            one_way_us: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refuse: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let f = Arc::clone(&faults);
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() else { return };
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else { return };
                    loop {
                        tokio::select! {
                            _ = &mut stop => break,
                            accepted = listener.accept() => {
                                let Ok((client, _)) = accepted else { continue };
                                f.accepted.fetch_add(1, Ordering::Relaxed);
                                tokio::spawn(serve(client, target, Arc::clone(&f)));
                            }
                        }
                    }
                    f.closed.store(true, Ordering::Relaxed);
                    f.generation.send_modify(|g| *g += 1);
                });
            })
            .map_err(TestbedError::io("starting the proxy thread"))?;
        Ok(Proxy { port, faults, shutdown: Mutex::new(Some(shutdown)), thread: Mutex::new(Some(thread)) })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every open connection at once (new connections are accepted as before).
    pub fn cut(&self) {
        self.faults.generation.send_modify(|g| *g += 1);
    }

    /// Stops (`true`) or resumes (`false`) every byte in both directions; bytes are held, not lost.
    pub fn stall(&self, on: bool) {
        self.faults.stalled.send_replace(on);
    }

    /// Delays every chunk by `one_way` in each direction (a round trip costs twice this). Chunks keep
    /// their order and throughput is not limited.
    pub fn set_latency(&self, one_way: Duration) {
        self.faults.one_way_us.store(u64::try_from(one_way.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.faults.accepted.load(Ordering::Relaxed)
    }

    /// Closes each of the next `n` connections as soon as it is accepted, before any byte passes
    /// (a server that is restarting, a network that drops new connections); later ones pass.
    pub fn refuse_next(&self, n: u64) {
        self.faults.refuse.store(n, Ordering::Relaxed);
    }

    /// Connections closed by [`Proxy::refuse_next`] so far.
    pub fn refused(&self) -> u64 {
        self.faults.refused.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// Forwards one connection until either side closes or it is cut.
async fn serve(client: TcpStream, target: SocketAddr, faults: Arc<Faults>) {
    if faults.refuse.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
        faults.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut cut = faults.generation.subscribe();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, Arc::clone(&faults));
    let down = pump(sr, cw, Arc::clone(&faults));
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut.changed() => {}
    }
}

/// Copies one direction: a reader stamps each chunk, a writer sends it once its delay has passed and
/// nothing is stalled.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, faults: Arc<Faults>) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(1024);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut stalled = faults.stalled.subscribe();
        while let Some((read_at, chunk)) = rx.recv().await {
            let delay = Duration::from_micros(faults.one_way_us.load(Ordering::Relaxed));
            tokio::time::sleep_until(read_at + delay).await;
            if stalled.wait_for(|s| !*s).await.is_err() {
                return;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
