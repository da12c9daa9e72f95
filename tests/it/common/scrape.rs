//! The Prometheus endpoint read as a scraper would: plain HTTP GETs and the samples of one series.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs `path` over plain HTTP/1.0; returns the status line and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("scrape finished")
        .unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_string(), body.to_string())
}

/// Sum of the samples of `name` whose labels include every `labels` pair.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        if metric != name
            || !labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        let v: f64 = value.parse().unwrap();
        found = Some(found.unwrap_or(0.0) + v);
    }
    found
}

/// Scrapes until `check` holds (series of finished streams and refused handshakes
/// appear a moment after the client sees the outcome).
pub async fn scrape_until(addr: SocketAddr, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = get(addr, "/metrics").await;
        if check(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what} never appeared:\n{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
