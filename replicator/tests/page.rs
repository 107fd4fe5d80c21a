//! The live status page at `/`, in a real headless Chromium against a running sidecar replicating
//! while blue takes writes: the numbers and the lag chart update, nothing is loaded from elsewhere,
//! and a screenshot is left for people to look at.

use crate::common;

use common::{pair, running};
use std::process::Command;
use std::time::Duration;

fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("chromium is not installed: apt-get install -y chromium (scripts/test installs it)")
}

/// Runs headless Chromium on `url` for `virtual_ms` of the page's time with `args`; returns stdout.
pub(crate) fn browse(url: &str, virtual_ms: u32, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={virtual_ms}"))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element with `id` in a serialized DOM.
pub(crate) fn element(dom: &str, id: &str) -> String {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    let open_end = start + dom[start..].find('>').expect(">") + 1;
    let close = open_end + dom[open_end..].find('<').expect("<");
    dom[open_end..close].to_owned()
}

fn attribute(dom: &str, id: &str, name: &str) -> String {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    let tag_end = start + dom[start..].find('>').expect(">");
    let tag = &dom[start..tag_end];
    let at = tag.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("#{id} has no {name}")) + name.len() + 2;
    tag[at..at + tag[at..].find('"').expect("quote")].to_owned()
}

#[tokio::test]
async fn the_status_page_updates_its_numbers_and_lag_chart_in_a_real_browser() {
    let (blue, green, db) = pair("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    let (_dir, t) = running(&blue, &green, &db).await;
    // Blue takes writes the whole time, so the applied counts move.
    let writer = {
        let b = blue.connect(&db).await.expect("blue");
        tokio::spawn(async move {
            for i in 0..400 {
                b.execute("INSERT INTO t VALUES ($1, 'x')", &[&i]).await.expect("insert");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let url = format!("http://127.0.0.1:{}/", t.port());
    // The document itself: self-contained.
    let html = reqwest_like_get(t.port());
    assert!(html.contains("<canvas id=\"chart\""), "{html}");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("import "), "the page must load nothing from elsewhere");

    let first = tokio::task::spawn_blocking({
        let url = url.clone();
        move || browse(&url, 3_000, &["--dump-dom"])
    })
    .await
    .expect("join");
    let second = tokio::task::spawn_blocking({
        let url = url.clone();
        move || browse(&url, 8_000, &["--dump-dom"])
    })
    .await
    .expect("join");
    assert_eq!(element(&second, "phase"), "streaming", "{second}");
    let updates: u32 = element(&second, "updates").parse().expect("updates");
    let points: u32 = attribute(&second, "chart", "data-points").parse().expect("points");
    assert!(updates >= 4 && points >= 4, "the page polled {updates} times and charted {points} lag samples");
    assert!(points > attribute(&first, "chart", "data-points").parse::<u32>().expect("points"), "the chart grows over time");
    let lag = element(&second, "lag-seconds");
    assert!(lag.ends_with(" ms") || lag.ends_with(" s"), "lag shown as a number: {lag}");
    let applied = element(&second, "bytes-per-second");
    assert!(applied.contains("rows applied") && !applied.starts_with("–"), "{applied}");
    assert_ne!(element(&first, "bytes-per-second"), applied, "the applied count moves while blue takes writes");

    // A screenshot for people: target/tmp/turnout-status-page.png.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("turnout-status-page.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    let url2 = url.clone();
    tokio::task::spawn_blocking(move || browse(&url2, 5_000, &[&arg, "--window-size=1280,1100"])).await.expect("join");
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot {} is {size} bytes", shot.display());
    eprintln!("screenshot of the status page: {}", shot.display());
    writer.abort();
}

/// `GET /` over a plain TCP connection.
fn reqwest_like_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("request");
    let mut r = String::new();
    s.read_to_string(&mut r).expect("response");
    r
}
