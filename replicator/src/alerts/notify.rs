//! Delivery of alert events to `alerts.webhook` and `alerts.command`, off the evaluation path.
//!
//! Events go through a bounded queue ([`QUEUE_LENGTH`]) to one delivery task, which handles them in
//! order: for each event the webhook POST and the command run side by side, and the next event waits
//! for both, so a receiver sees changes in the order they happened. When the queue is full (a receiver
//! stalled for minutes) further events are only logged.
//!
//! **Webhook**: an HTTP/1.1 `POST` of the event's JSON (`Content-Type: application/json`) through
//! [`crate::http_client`] over TCP, or TLS for `https://` (verified against the system's root
//! certificates, which honour `SSL_CERT_FILE`/`SSL_CERT_DIR`). User and password in the URL are sent as
//! `Authorization: Basic`. Any 2xx answer is success. Each attempt has [`WEBHOOK_RETRY`]'s timeout
//! (5 s, from connecting to the whole answer); a failed connection, a timeout, 408, 429 or 5xx is retried
//! after 1 s and then 2 s (3 attempts in all); other answers (3xx included: redirects are not followed)
//! are not retried. The URL may carry credentials: it is never logged.
//!
//! **Command**: `alerts.command` is run as an argv (no shell) with the event's JSON and a newline on
//! stdin and `TURNOUT_ALERT_*` variables in its environment (see [`command_env`]). It has
//! [`COMMAND_TIMEOUT`] to finish; then it is killed. A non-zero exit is logged with its last line of
//! stderr. It is run once per event, not retried.

use super::AlertEvent;
use crate::config::{AlertsConfig, Secret};
use crate::http_client::{native_roots, Target};
use rustls::RootCertStore;
use std::fmt;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Events waiting for delivery before further ones are only logged.
pub const QUEUE_LENGTH: usize = 64;

/// How webhook deliveries are attempted.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all.
    pub attempts: u32,
    /// Per attempt, from connecting to reading the status line.
    pub timeout: Duration,
    /// Wait before the second attempt; doubled after each further failure.
    pub backoff: Duration,
}

pub const WEBHOOK_RETRY: Retry = Retry { attempts: 3, timeout: Duration::from_secs(5), backoff: Duration::from_secs(1) };

/// How long `alerts.command` may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The sending end of the delivery queue. Never blocks.
#[derive(Clone, Debug)]
pub struct Queue(mpsc::Sender<AlertEvent>);

impl Queue {
    /// Queues `event` for delivery; when the queue is full or delivery has stopped, logs that it was
    /// dropped.
    pub fn push(&self, event: AlertEvent) {
        if let Err(e) = self.0.try_send(event) {
            let (full, event) = match e {
                mpsc::error::TrySendError::Full(ev) => (true, ev),
                mpsc::error::TrySendError::Closed(ev) => (false, ev),
            };
            let why = if full { "the delivery queue is full" } else { "delivery has stopped" };
            tracing::warn!("alert {} {} → {} is not sent to the webhook/command: {why}", event.alert, event.previous, event.state);
        }
    }
}

/// Starts the delivery task for the configured webhook and/or command; none when neither is set
/// (or the webhook cannot be used, which is logged).
pub fn spawn(config: &AlertsConfig) -> Option<Queue> {
    let hook = match config.webhook.as_ref().map(|url| Webhook::new(url, native_roots)).transpose() {
        Ok(hook) => hook,
        Err(e) => {
            tracing::error!("alerts.webhook: {e}; alerts are not sent to it");
            None
        }
    };
    let command = config.command.clone().filter(|argv| !argv.is_empty());
    if hook.is_none() && command.is_none() {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<AlertEvent>(QUEUE_LENGTH);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let what = format!("alert {} {} → {}", event.alert, event.previous, event.state);
            let body = match serde_json::to_vec(&event) {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!("{what}: cannot encode it as JSON: {e}");
                    continue;
                }
            };
            let post = async {
                if let Some(hook) = &hook {
                    match hook.deliver(&body, WEBHOOK_RETRY).await {
                        Ok(attempts) => tracing::debug!(attempts, "{what}: delivered to alerts.webhook"),
                        Err(e) => tracing::error!("{what}: not delivered to alerts.webhook: {e}"),
                    }
                }
            };
            let run = async {
                if let Some(argv) = &command {
                    match run_command(argv, &event, &body, COMMAND_TIMEOUT).await {
                        Ok(()) => tracing::debug!("{what}: alerts.command succeeded"),
                        Err(e) => tracing::error!("{what}: alerts.command {e}"),
                    }
                }
            };
            tokio::join!(post, run);
        }
    });
    Some(Queue(tx))
}

/// Why one webhook attempt failed.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Worth another attempt (connection, timeout, 408, 429, 5xx).
    Retry(String),
    /// Another attempt would get the same answer.
    Refused(String),
}

/// Why an alert was not delivered. Never quotes the webhook's URL or the command's arguments (they
/// may carry secrets).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum Undelivered {
    /// The webhook's answer another attempt would get again.
    #[error("{0}")]
    Refused(String),
    /// Every attempt failed; the last one's failure.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp { last: String, attempts: u32 },
    /// `alerts.command` is an empty list.
    #[error("is empty")]
    NoProgram,
    /// The command could not be started or waited for.
    #[error("{program}: cannot start: {reason}")]
    NotStarted { program: String, reason: String },
    /// The command ran past its limit and was killed.
    #[error("{program}: did not finish within {limit:?}; killed")]
    Hung { program: String, limit: Duration },
    /// The command failed; the last line it wrote on stderr.
    #[error("{program}: {outcome}")]
    Failed { program: String, outcome: String },
}

/// An `alerts.webhook` target. The URL may carry credentials, so neither it nor its parts are ever
/// printed.
struct Webhook {
    target: Target,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Webhook(<redacted>)")
    }
}

impl Webhook {
    /// Checks the URL; `roots` is asked for trusted certificates only for `https://`. Errors never
    /// quote the URL.
    fn new(url: &Secret, roots: impl FnOnce() -> RootCertStore) -> Result<Webhook, String> {
        Ok(Webhook { target: Target::parse(url.expose(), roots)? })
    }

    /// POSTs `body` as `retry` says; returns the number of attempts it took. The error says what the
    /// last attempt got.
    async fn deliver(&self, body: &[u8], retry: Retry) -> Result<u32, Undelivered> {
        let mut wait = retry.backoff;
        let mut last = String::new();
        for attempt in 1..=retry.attempts {
            match self.post(body, retry.timeout).await {
                Ok(()) => return Ok(attempt),
                Err(Failure::Refused(e)) => return Err(Undelivered::Refused(e)),
                Err(Failure::Retry(e)) => {
                    if attempt < retry.attempts {
                        tracing::warn!("alerts.webhook: attempt {attempt} of {} failed: {e}; retrying in {wait:?}", retry.attempts);
                        tokio::time::sleep(wait).await;
                        wait = wait.saturating_mul(2);
                    }
                    last = e;
                }
            }
        }
        Err(Undelivered::GaveUp { last, attempts: retry.attempts })
    }

    /// One attempt.
    async fn post(&self, body: &[u8], deadline: Duration) -> Result<(), Failure> {
        use crate::http_client::ClientError;
        let headers = [("content-type", "application/json".to_string())];
        let answer = self.target.send("POST", &headers, bytes::Bytes::copy_from_slice(body), deadline).await.map_err(|e| match e {
            ClientError::Network(m) => Failure::Retry(m),
            ClientError::Timeout(d) => Failure::Retry(format!("no answer within {d:?}")),
            ClientError::Invalid(m) => Failure::Refused(m),
        })?;
        match answer.status {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => Err(Failure::Retry(format!("the webhook answered HTTP {}", answer.status))),
            code => Err(Failure::Refused(format!("the webhook answered HTTP {code} (not retried)"))),
        }
    }
}

/// The environment `alerts.command` gets: `TURNOUT_ALERT` (`lag`/`slot`), `TURNOUT_ALERT_PREVIOUS`,
/// `TURNOUT_ALERT_STATE` (`ok`/`warning`/`critical`), `TURNOUT_ALERT_MESSAGE`, `TURNOUT_ALERT_TIME`,
/// `TURNOUT_ALERT_LAG_SECONDS` (empty when unknown), `TURNOUT_ALERT_LAG_BYTES`,
/// `TURNOUT_ALERT_THRESHOLD` (empty when none) and `TURNOUT_ALERT_SLOT` (the slot's name).
pub fn command_env(event: &AlertEvent) -> Vec<(&'static str, String)> {
    vec![
        ("TURNOUT_ALERT", event.alert.to_owned()),
        ("TURNOUT_ALERT_PREVIOUS", event.previous.name().to_owned()),
        ("TURNOUT_ALERT_STATE", event.state.name().to_owned()),
        ("TURNOUT_ALERT_MESSAGE", event.message.clone()),
        ("TURNOUT_ALERT_TIME", event.time.clone()),
        ("TURNOUT_ALERT_LAG_SECONDS", event.lag_seconds.map(|l| format!("{l:.3}")).unwrap_or_default()),
        ("TURNOUT_ALERT_LAG_BYTES", event.lag_bytes.to_string()),
        ("TURNOUT_ALERT_THRESHOLD", event.threshold.map(|t| t.to_string()).unwrap_or_default()),
        ("TURNOUT_ALERT_SLOT", event.names.as_ref().map(|n| n.slot.clone()).unwrap_or_default()),
    ]
}

/// Runs `argv` with `body` and a newline on stdin; the error names the program, never its arguments
/// (they may carry secrets).
async fn run_command(argv: &[String], event: &AlertEvent, body: &[u8], limit: Duration) -> Result<(), Undelivered> {
    let (program, args) = argv.split_first().ok_or(Undelivered::NoProgram)?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(command_env(event))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Undelivered::NotStarted { program: program.clone(), reason: e.to_string() })?;
    let stdin = child.stdin.take();
    let finished = async move {
        if let Some(mut stdin) = stdin {
            // A command that ignores its input may exit before reading it: not an error.
            let _ = stdin.write_all(body).await;
            let _ = stdin.write_all(b"\n").await;
        }
        child.wait_with_output().await
    };
    match tokio::time::timeout(limit, finished).await {
        Err(_) => Err(Undelivered::Hung { program: program.clone(), limit }),
        Ok(Err(e)) => Err(Undelivered::Failed { program: program.clone(), outcome: e.to_string() }),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output on stderr)");
            Err(Undelivered::Failed { program: program.clone(), outcome: format!("exited with {}: {last}", out.status) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertLevel, Transition};
    use crate::status::Status;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;
    use tokio::io::{AsyncRead, AsyncReadExt};
    use tokio::net::TcpListener;

    const FAST: Retry = Retry { attempts: 3, timeout: Duration::from_secs(5), backoff: Duration::from_millis(10) };

    fn event() -> AlertEvent {
        let t = Transition { from: AlertLevel::Ok, to: AlertLevel::Warning };
        AlertEvent::new("lag", t, "lag is high".into(), Some(1.0), "seconds", Status::default().snapshot())
    }

    /// Reads one HTTP request (head and Content-Length body) from `s`.
    async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> (String, Vec<u8>) {
        let mut data = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                    .map(|v| v.parse().expect("length"))
                    .unwrap_or(0);
                while data.len() < end + 4 + length {
                    let n = s.read(&mut buf).await.expect("read body");
                    assert!(n > 0, "body cut short");
                    data.extend_from_slice(&buf[..n]);
                }
                return (head, data[end + 4..end + 4 + length].to_vec());
            }
            let n = s.read(&mut buf).await.expect("read head");
            assert!(n > 0, "request cut short");
            data.extend_from_slice(&buf[..n]);
        }
    }

    /// A server answering successive connections with `codes`; returns the requests it read.
    async fn server(codes: Vec<u16>) -> (u16, tokio::task::JoinHandle<Vec<(String, Vec<u8>)>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handle = tokio::spawn(async move {
            let mut seen = Vec::new();
            for code in codes {
                let (mut s, _) = listener.accept().await.expect("accept");
                seen.push(read_request(&mut s).await);
                let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                s.write_all(answer.as_bytes()).await.expect("answer");
            }
            seen
        });
        (port, handle)
    }

    #[tokio::test]
    async fn webhook_retries_a_server_error_then_delivers_json_with_basic_auth() {
        let (port, requests) = server(vec![503, 200]).await;
        let url = Secret::new(format!("http://hook:p%40ss@127.0.0.1:{port}/alerts/turnout?team=db"));
        let hook = Webhook::new(&url, RootCertStore::empty).expect("url");
        assert!(!format!("{hook:?}").contains("p%40ss"));
        let body = serde_json::to_vec(&event()).expect("json");
        assert_eq!(hook.deliver(&body, FAST).await, Ok(2));
        let requests = requests.await.expect("server");
        let (head, got) = &requests[1];
        assert!(head.starts_with("POST /alerts/turnout?team=db HTTP/1.1\r\n"), "{head}");
        // Header names are case-insensitive.
        let has = |line: &str| {
            let (name, value) = line.split_once(": ").expect("header");
            head.split("\r\n").any(|l| l.split_once(": ").is_some_and(|(n, v)| n.eq_ignore_ascii_case(name) && v == value))
        };
        assert!(has(&format!("Host: 127.0.0.1:{port}")), "{head}");
        assert!(has("Content-Type: application/json"), "{head}");
        // base64("hook:p@ss")
        assert!(has("Authorization: Basic aG9vazpwQHNz"), "{head}");
        let v: serde_json::Value = serde_json::from_slice(got).expect("json body");
        assert_eq!((v["alert"].as_str(), v["state"].as_str()), (Some("lag"), Some("warning")));
    }

    #[tokio::test]
    async fn webhook_client_errors_are_not_retried_and_server_errors_are_given_up_after_three_attempts() {
        let (port, requests) = server(vec![404]).await;
        let hook = Webhook::new(&Secret::new(format!("http://127.0.0.1:{port}/")), RootCertStore::empty).expect("url");
        let err = hook.deliver(b"{}", FAST).await.expect_err("404").to_string();
        assert!(err.contains("HTTP 404"), "{err}");
        assert_eq!(requests.await.expect("server").len(), 1);
        let (port, requests) = server(vec![500, 502, 503]).await;
        let hook = Webhook::new(&Secret::new(format!("http://127.0.0.1:{port}/")), RootCertStore::empty).expect("url");
        let err = hook.deliver(b"{}", FAST).await.expect_err("5xx").to_string();
        assert!(err.contains("HTTP 503") && err.contains("3 attempts"), "{err}");
        assert_eq!(requests.await.expect("server").len(), 3);
    }

    #[tokio::test]
    async fn webhook_that_never_answers_times_out_and_a_closed_port_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hook = Webhook::new(&Secret::new(format!("http://127.0.0.1:{port}/")), RootCertStore::empty).expect("url");
        let quick = Retry { attempts: 2, timeout: Duration::from_millis(200), backoff: Duration::from_millis(10) };
        let err = hook.deliver(b"{}", quick).await.expect_err("silent").to_string();
        assert!(err.contains("no answer within"), "{err}");
        drop(listener);
        let err = hook.deliver(b"{}", quick).await.expect_err("closed").to_string();
        assert!(err.contains("cannot connect"), "{err}");
    }

    #[tokio::test]
    async fn https_webhook_verifies_the_server_against_the_given_roots() {
        let dir = tempfile::tempdir().expect("tmp");
        let certs = turnout_testbed::TestCertificates::generate(dir.path()).expect("certs");
        let chain = vec![CertificateDer::from_pem_file(&certs.server_cert).expect("cert")];
        let key = PrivateKeyDer::from_pem_file(&certs.server_key).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut tls = acceptor.accept(tcp).await.expect("handshake");
            let (_, body) = read_request(&mut tls).await;
            tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await.expect("answer");
            let _ = tls.shutdown().await;
            body
        });
        let ca = CertificateDer::from_pem_file(&certs.ca_cert).expect("ca");
        let roots = move || {
            let mut roots = RootCertStore::empty();
            roots.add(ca).expect("ca");
            roots
        };
        let hook = Webhook::new(&Secret::new(format!("https://localhost:{port}/hook")), roots).expect("url");
        assert_eq!(hook.deliver(b"{\"alert\":\"lag\"}", FAST).await, Ok(1));
        assert_eq!(server.await.expect("server"), b"{\"alert\":\"lag\"}");
        // https:// without any trusted root is refused up front.
        let err = Webhook::new(&Secret::new("https://localhost/hook"), RootCertStore::empty).expect_err("no roots");
        assert!(err.contains("root certificates"), "{err}");
    }

    #[tokio::test]
    async fn command_gets_the_json_on_stdin_and_the_alert_in_its_environment() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("out");
        let script = "cat > \"$1\"; printf '%s %s %s %s' \"$TURNOUT_ALERT\" \"$TURNOUT_ALERT_PREVIOUS\" \"$TURNOUT_ALERT_STATE\" \"$TURNOUT_ALERT_THRESHOLD\" > \"$1.env\"";
        let argv: Vec<String> = ["/bin/sh", "-c", script, "hook"].iter().map(|s| s.to_string()).chain([out.display().to_string()]).collect();
        let ev = event();
        let body = serde_json::to_vec(&ev).expect("json");
        run_command(&argv, &ev, &body, Duration::from_secs(10)).await.expect("runs");
        let stdin = std::fs::read_to_string(&out).expect("stdin copy");
        let v: serde_json::Value = serde_json::from_str(stdin.trim_end()).expect("json on stdin");
        assert_eq!(v["message"], "lag is high");
        assert_eq!(std::fs::read_to_string(dir.path().join("out.env")).expect("env"), "lag ok warning 1");
    }

    #[tokio::test]
    async fn a_failing_or_hanging_command_is_reported_and_killed() {
        let ev = event();
        let argv = |s: &str| vec!["/bin/sh".to_string(), "-c".into(), s.into()];
        let err = run_command(&argv("echo broken pipe to pager >&2; exit 3"), &ev, b"{}", Duration::from_secs(10)).await.expect_err("exit 3").to_string();
        assert!(err.contains("exit status: 3") && err.contains("broken pipe to pager"), "{err}");
        let started = std::time::Instant::now();
        let err = run_command(&argv("exec sleep 30"), &ev, b"{}", Duration::from_millis(300)).await.expect_err("hangs").to_string();
        assert!(err.contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let err = run_command(&["/nonexistent/hook".to_string()], &ev, b"{}", Duration::from_secs(1)).await.expect_err("missing").to_string();
        assert!(err.contains("cannot start"), "{err}");
    }
}
