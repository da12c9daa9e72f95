//! The measuring harness of `cadrex bench` and `cadrex soak`: a server as a child process, its memory from /proc, mTLS channels as an agency's system, and concurrent timed loops.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::PROVINCE;
use crate::domain::agency::Agency;
use crate::tools::connect::ConnectArgs;

/// A server started as a child process; killed when dropped so that a failed
/// benchmark leaves nothing running.
pub struct ChildServer {
    child: Child,
    pub addr: SocketAddr,
}

impl ChildServer {
    /// Starts `cadrex {subcommand} --store … --listen 127.0.0.1:PORT --pki-dir …`.
    pub fn start(subcommand: &str, store: &str, pki_dir: &Path) -> anyhow::Result<Self> {
        // The port is picked by binding :0 and handed to the child; the short
        // window in which another process could take it is acceptable here.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(std::env::current_exe()?)
            .arg(subcommand)
            .args(["--store", store, "--listen", &addr.to_string(), "--pki-dir"])
            .arg(pki_dir)
            .env("CADREX_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        Ok(Self { child, addr })
    }

    /// Peak resident set size (VmHWM) of the child, in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        peak_rss(self.child.id())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmHWM of a process from /proc, in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:").map(|k| k * 1024)
}

/// Current VmRSS of a process from /proc, in bytes.
pub fn current_rss(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:").map(|k| k * 1024)
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// mTLS channels to `addr` as the `agency` system of the benchmark province.
pub fn channels(
    pki_dir: &Path,
    addr: SocketAddr,
    agency: Agency,
    division: &str,
    n: usize,
) -> anyhow::Result<Vec<Channel>> {
    let (cert, key) = crate::pki::agency_cert(pki_dir, agency, division)?;
    let conn = ConnectArgs {
        ca: Some(crate::pki::PkiPaths::new(pki_dir).ca_cert()),
        server: format!("https://{addr}"),
        ..ConnectArgs::new(cert, key)
    };
    (0..n.max(1)).map(|_| conn.channel()).collect()
}

/// Waits until the server at `addr` answers the health check.
pub async fn wait_healthy(
    pki_dir: &Path,
    addr: SocketAddr,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let ch = channels(pki_dir, addr, Agency::Discipline, PROVINCE, 1)?.remove(0);
        let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
        let ok = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok_and(|r| {
                r.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            });
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("server at {addr} did not become healthy within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One measured phase: calls made, items they carried, and each call's latency.
#[derive(Debug, Default)]
pub struct Stats {
    pub calls: u64,
    pub items: u64,
    pub elapsed: Duration,
    pub(super) latencies_us: Vec<u64>,
}

impl Stats {
    pub fn calls_per_s(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn items_per_s(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Runs `callers` concurrent loops of `call(caller, iteration)` — each returns
/// how many items it carried — for `time`. The first fifth warms connections
/// and caches and is not counted; after it, every call that completes counts,
/// and the window ends when the last call in flight completes (so a phase of
/// slow calls, such as 500-row batches, still measures whole calls).
pub async fn drive<F, Fut>(callers: usize, time: Duration, call: F) -> anyhow::Result<Stats>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let start = Instant::now();
    let measure_from = start + time / 5;
    let end = start + time;
    let mut set = tokio::task::JoinSet::new();
    for c in 0..callers {
        let call = call.clone();
        set.spawn(async move {
            let (mut lat, mut items, mut i) = (Vec::new(), 0u64, 0u64);
            let mut last = measure_from;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let n = call(c, i).await?;
                i += 1;
                let done = Instant::now();
                if done >= measure_from {
                    lat.push(done.duration_since(t).as_micros() as u64);
                    items += n;
                    last = done;
                }
            }
            Ok::<_, anyhow::Error>((lat, items, last))
        });
    }
    let mut stats = Stats::default();
    let mut last = measure_from;
    while let Some(r) = set.join_next().await {
        let (lat, items, done) = r??;
        stats.calls += lat.len() as u64;
        stats.items += items;
        stats.latencies_us.extend(lat);
        last = last.max(done);
    }
    stats.elapsed = last.saturating_duration_since(measure_from);
    stats.latencies_us.sort_unstable();
    Ok(stats)
}
