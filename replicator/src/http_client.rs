//! One HTTP/1.1 client for everything turnout sends over HTTP — alert webhooks and the CLI's calls to
//! a running sidecar — on hyper's client connection (the HTTP implementation axum serves with), over
//! a plain TCP stream or rustls. One request per connection; a deadline covers connecting, TLS,
//! sending and reading the whole answer.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, TLS, or the exchange failed at the network level; another attempt may succeed.
    #[error("{0}")]
    Network(String),
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request cannot be made (bad header, TLS name).
    #[error("{0}")]
    Invalid(String),
}

/// Where a request goes.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// Present for `https://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("host", &self.host).field("port", &self.port).field("tls", &self.tls.is_some()).finish()
    }
}

/// A URL the operator gave (an alert webhook, an application's readiness endpoint), checked once:
/// where to connect, what to ask for, and `Authorization: Basic` from its user and password. The
/// URL may carry credentials, so neither it nor its parts are ever printed.
#[derive(Clone)]
pub struct Target {
    pub endpoint: Endpoint,
    pub path_and_query: String,
    pub authorization: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Target(<redacted>)")
    }
}

/// The machine's trusted root certificates (honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`), read once
/// per process; unparseable ones are skipped.
pub fn native_roots() -> RootCertStore {
    static ROOTS: std::sync::LazyLock<RootCertStore> = std::sync::LazyLock::new(|| {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    });
    ROOTS.clone()
}

impl Target {
    /// Checks `url` (`http://` or `https://`); `roots` is asked for trusted certificates only for
    /// `https://`. Errors never quote the URL.
    pub fn parse(url: &str, roots: impl FnOnce() -> RootCertStore) -> Result<Target, String> {
        let url = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err("the URL has no host".into()),
        };
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let tls = match url.scheme() {
            "http" => None,
            "https" => {
                let roots = roots();
                if roots.is_empty() {
                    return Err("https:// needs trusted root certificates and none were found on this machine; install \
                                ca-certificates or point SSL_CERT_FILE at a PEM bundle"
                        .into());
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS set-up: {e}"))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(Arc::new(config))
            }
            other => return Err(format!("scheme {other}:// is not supported; use http:// or https://")),
        };
        let mut path_and_query = url.path().to_owned();
        if let Some(query) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        let authorization = (!url.username().is_empty() || url.password().is_some()).then(|| {
            use base64::Engine;
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            let pair = format!("{}:{}", decode(url.username()), decode(url.password().unwrap_or_default()));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        });
        Ok(Target { endpoint: Endpoint { host, port, tls }, path_and_query, authorization })
    }

    /// Sends `method` with `headers` (and the URL's authorization) and `body`; the whole answer is due
    /// within `deadline`.
    pub async fn send(&self, method: &str, headers: &[(&str, String)], body: Bytes, deadline: Duration) -> Result<Answer, ClientError> {
        let mut all = headers.to_vec();
        if let Some(auth) = &self.authorization {
            all.push(("authorization", auth.clone()));
        }
        send(&self.endpoint, method, &self.path_and_query, &all, body, deadline).await
    }
}

/// An answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Sends one request and reads the whole answer within `deadline`.
pub async fn send(
    endpoint: &Endpoint,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: Bytes,
    deadline: Duration,
) -> Result<Answer, ClientError> {
    tokio::time::timeout(deadline, exchange(endpoint, method, path_and_query, headers, body)).await.map_err(|_| ClientError::Timeout(deadline))?
}

async fn exchange(endpoint: &Endpoint, method: &str, path_and_query: &str, headers: &[(&str, String)], body: Bytes) -> Result<Answer, ClientError> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await.map_err(|e| ClientError::Network(format!("cannot connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let host = if endpoint.host.contains(':') { format!("[{}]:{}", endpoint.host, endpoint.port) } else { format!("{}:{}", endpoint.host, endpoint.port) };
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, concat!("turnout/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| ClientError::Invalid(format!("header name: {e}")))?;
        let value = HeaderValue::from_str(value).map_err(|_| ClientError::Invalid(format!("header {name} has a value HTTP cannot carry")))?;
        request = request.header(name, value);
    }
    let request = request.body(Full::new(body)).map_err(|e| ClientError::Invalid(format!("request: {e}")))?;
    match &endpoint.tls {
        None => roundtrip(tcp, request).await,
        Some(config) => {
            let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| ClientError::Invalid(format!("not a TLS server name: {e}")))?;
            let stream =
                tokio_rustls::TlsConnector::from(Arc::clone(config)).connect(name, tcp).await.map_err(|e| ClientError::Network(format!("TLS: {e}")))?;
            roundtrip(stream, request).await
        }
    }
}

async fn roundtrip<S>(stream: S, request: hyper::Request<Full<Bytes>>) -> Result<Answer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let net = |what: &'static str| move |e: hyper::Error| ClientError::Network(format!("{what}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(net("HTTP handshake"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.map_err(net("sending the request"));
    let result = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            response.into_body().collect().await.map(|b| Answer { status, body: b.to_bytes() }).map_err(net("reading the answer"))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

// The sidecar's own API on `http.listen`, for the commands that talk to it.

/// How long a command waits for a restarted sidecar to settle what its journal left.
const SETTLE_WAIT: Duration = Duration::from_secs(60);

/// One request to the sidecar at `listen` (`host:port`); returns the status code and body. While
/// the sidecar answers that it is settling after a restart (503), the request is made again, for
/// up to [`SETTLE_WAIT`].
pub(crate) async fn request(listen: &str, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let (code, answer) = request_within(listen, method, path, body, token, Duration::from_secs(30)).await?;
        if code != 503 || !answer.contains("settling") || started.elapsed() >= SETTLE_WAIT {
            return Ok((code, answer));
        }
        if !said {
            eprintln!("turnout: the sidecar at {listen} is settling what its journal left after a restart; waiting (up to {} s)", SETTLE_WAIT.as_secs());
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// As `request`, with the answer due within `deadline`.
pub async fn request_within(
    listen: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    deadline: Duration,
) -> std::io::Result<(u16, String)> {
    let (host, port) = listen
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_start_matches('[').trim_end_matches(']').to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| std::io::Error::other(format!("http.listen '{listen}' is not host:port")))?;
    let endpoint = Endpoint { host, port, tls: None };
    let mut headers = Vec::new();
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    if body.is_some() {
        headers.push(("content-type", "application/json".to_string()));
    }
    let body = bytes::Bytes::copy_from_slice(body.unwrap_or_default().as_bytes());
    let answer = send(&endpoint, method, path, &headers, body, deadline).await.map_err(std::io::Error::other)?;
    Ok((answer.status, String::from_utf8_lossy(&answer.body).into_owned()))
}

/// `GET path` once, without waiting for a settling sidecar; an error unless the answer is 200.
pub async fn get_once(listen: &str, path: &str, deadline: Duration) -> std::io::Result<String> {
    let (code, body) = request_within(listen, "GET", path, None, None, deadline).await?;
    if code != 200 {
        return Err(std::io::Error::other(format!("HTTP {code}: {}", error_of(&body))));
    }
    Ok(body)
}

/// `GET path`; an error unless the answer is 200.
pub async fn get(listen: &str, path: &str) -> std::io::Result<String> {
    let (code, body) = request(listen, "GET", path, None, None).await?;
    if code != 200 {
        return Err(std::io::Error::other(format!("HTTP {code}: {body}")));
    }
    Ok(body)
}

/// The `error` of a JSON answer, or the whole body.
pub fn error_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v["error"].as_str().map(str::to_owned)).unwrap_or_else(|| body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering each request in turn with `answers` (status, body); the requests it saw.
    async fn server(answers: Vec<(u16, &'static str)>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let listen = listener.local_addr().expect("addr").to_string();
        let handle = tokio::spawn(async move {
            let mut seen = Vec::new();
            for (code, body) in answers {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.expect("read");
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                seen.push(String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned());
                let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                s.write_all(answer.as_bytes()).await.expect("answer");
            }
            seen
        });
        (listen, handle)
    }

    #[tokio::test]
    async fn a_settling_sidecar_is_asked_again_and_another_503_is_not() {
        let settling = r#"{"error":"the sidecar is settling what its journal left after a restart"}"#;
        let (listen, seen) = server(vec![(503, settling), (503, settling), (202, r#"{"id":"x"}"#)]).await;
        let (code, body) = request(&listen, "POST", "/cutover", Some("{}"), None).await.expect("answer");
        assert_eq!((code, body.as_str()), (202, r#"{"id":"x"}"#));
        assert_eq!(seen.await.expect("server"), vec!["POST /cutover HTTP/1.1"; 3]);

        let (listen, seen) = server(vec![(503, r#"{"error":"busy"}"#)]).await;
        let (code, _) = request(&listen, "POST", "/cutover", Some("{}"), None).await.expect("answer");
        assert_eq!(code, 503, "a 503 that is not settling is the answer");
        assert_eq!(seen.await.expect("server").len(), 1);
    }
}
