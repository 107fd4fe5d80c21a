//! What every benchmark needs: logging, arguments, and a turnout sidecar running in the benchmark's
//! own process (so its memory and CPU are the process's).

#![allow(dead_code)]

use anyhow::Result;
use std::sync::Arc;
use turnout::config::Config;

/// Logs to stderr as `RUST_LOG` asks (nothing when it is unset).
pub fn init_logging() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
}

/// Positional argument `n` (0-based), or `default` when absent.
pub fn arg<T: std::str::FromStr>(n: usize, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(std::env::args().nth(n + 1).map(|a| a.parse()).transpose()?.unwrap_or(default))
}

/// The smallest configuration: blue, green, a state dir under `dir`, the HTTP API on `port`;
/// `apply.sessions` from `BENCH_APPLY_SESSIONS` when set.
pub fn config(blue_url: &str, green_url: &str, dir: &std::path::Path, port: u16) -> Result<Config> {
    let text = format!(
        "[source]\nurl = \"{blue_url}\"\n[target]\nurl = \"{green_url}\"\n[state]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
        dir.join("state").display()
    );
    let mut config = Config::parse(&text, |_| None)?;
    if let Ok(n) = std::env::var("BENCH_APPLY_SESSIONS") {
        config.apply.sessions = Some(n.parse()?);
    }
    Ok(config)
}

/// `turnout run` in this process until [`Sidecar::stop`].
pub struct Sidecar {
    stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<Result<(), turnout::Error>>,
}

impl Sidecar {
    pub fn start(config: Config) -> Sidecar {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let config = Arc::new(config);
        let task = tokio::spawn(async move { turnout::run::run(&config, rx).await });
        Sidecar { stop, task }
    }

    /// Stops it and returns how its run ended.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        Ok(self.task.await??)
    }
}
