//! Talking to a running sidecar over its local HTTP API: `turnout status` and `turnout cutover`.

use crate::config::Config;
use crate::cutover::{Progress, Request};
use std::io::{Read, Write};
use std::time::Duration;

/// A minimal HTTP/1.1 request to the sidecar; returns the status code and body.
fn request(listen: &str, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(listen)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if let Some(b) = body {
        s.write_all(b.as_bytes())?;
    }
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, body.to_string()))
}

/// `GET path`; an error unless the answer is 200.
pub fn get(listen: &str, path: &str) -> std::io::Result<String> {
    let (code, body) = request(listen, "GET", path, None, None)?;
    if code != 200 {
        return Err(std::io::Error::other(format!("HTTP {code}: {body}")));
    }
    Ok(body)
}

/// `turnout cutover`: asks the sidecar to cut over and prints each step as it happens. Returns the
/// exit code: 0 only when traffic is on green (or a dry run found everything ready).
pub fn cutover(config: &Config, request: &Request) -> i32 {
    let listen = &config.http.listen;
    let token = config.cutover.token.as_ref().map(|t| t.expose());
    let body = serde_json::to_string(request).unwrap_or_default();
    match self::request(listen, "POST", "/cutover", Some(&body), token) {
        Ok((202, _)) => {}
        Ok((code, body)) => {
            let msg = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(body);
            eprintln!("turnout: the sidecar refused the cutover (HTTP {code}): {msg}");
            return crate::cli::EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("turnout: cannot reach the sidecar at http://{listen}/cutover: {e} (is `turnout run` running?)");
            return crate::cli::EXIT_FAILED;
        }
    }
    let mut printed = 0;
    let mut unreachable_since: Option<std::time::Instant> = None;
    loop {
        match get(listen, "/cutover").map(|b| serde_json::from_str::<Progress>(&b)) {
            Ok(Ok(p)) => {
                unreachable_since = None;
                for line in p.lines.iter().skip(printed) {
                    println!("{line}");
                }
                printed = p.lines.len();
                match p.outcome.as_deref() {
                    Some("done") => {
                        if let Some(ms) = p.write_pause_ms {
                            println!("traffic is on green; writes were paused for {ms} ms");
                        }
                        return 0;
                    }
                    Some("dry_run_ok") => return 0,
                    Some("running") => {}
                    _ => return crate::cli::EXIT_FAILED,
                }
            }
            Ok(Err(e)) => {
                eprintln!("turnout: unexpected answer from the sidecar: {e}");
                return crate::cli::EXIT_FAILED;
            }
            Err(e) => {
                let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_secs(30) {
                    eprintln!(
                        "turnout: lost contact with the sidecar during the cutover: {e}. Its journal settles the cutover when \
                         `turnout run` restarts; check `turnout status`"
                    );
                    return crate::cli::EXIT_FAILED;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
