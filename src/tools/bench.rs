//! `cadrex bench`: measures a real server over mutual TLS on loopback — ceiling, dossier, ingest, feed, log cost, memory — against in-process and raw-SQL baselines.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use prost::Message;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::config::Config;
use crate::domain::agency::Agency;
use crate::domain::states::RecordState;
use crate::identity::Principal;
use crate::proto;
use crate::proto::change_feed_service_client::ChangeFeedServiceClient;
use crate::proto::dossier_service_client::DossierServiceClient;
use crate::proto::record_service_client::RecordServiceClient;
use crate::store::{CadreQuery, RecordQuery, Store};
use crate::tools::connect::ConnectArgs;
use crate::tools::seed::{self, Rng};

/// Concurrent callers of the ceiling and dossier phases.
pub const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// The concurrency at which in-process, unlogged and p99 figures are compared.
const COMPARE_AT: usize = 16;
/// Findings per `BatchSubmitRecords` call, and rows per raw-insert transaction.
pub const INGEST_BATCH: usize = 500;
/// Concurrent ingest callers: enough that request decoding and validation
/// overlap the store's commit, as with a few audit systems pushing at once.
const INGEST_CALLERS: usize = 4;
/// Most cadre ids the dossier phases choose from.
const MAX_TARGETS: i64 = 100_000;
/// The province whose discipline and audit systems the benchmark acts as
/// (the development PKI's province).
pub const PROVINCE: &str = "360000";

/// `cadrex bench`: measures a server over mutual TLS on loopback (see BENCHMARKS.md).
#[derive(clap::Args, Debug)]
pub struct BenchCommand {
    /// Store URL; seeded with the defaults first when it has no cadres.
    #[arg(long)]
    store: String,
    /// Total measuring time, split across the phases.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Prints one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// A running server on loopback (127.0.0.1:PORT) instead of a child process.
    #[arg(long)]
    server: Option<SocketAddr>,
    #[arg(long, default_value = "./cadrex-data/pki")]
    pki_dir: PathBuf,
    /// Seed for choosing cadres.
    #[arg(long, default_value_t = seed::DEFAULT_SEED)]
    seed: u64,
    /// Measures only this phase, for the whole duration, at 16 callers.
    #[arg(long, value_enum)]
    only: Option<Phase>,
}

impl BenchCommand {
    pub async fn run(self) -> anyhow::Result<std::process::ExitCode> {
        let report = run(BenchArgs {
            store: self.store,
            server: self.server,
            pki_dir: self.pki_dir,
            duration: self.duration,
            seed: self.seed,
            only: self.only,
        })
        .await?;
        if self.json {
            println!("{}", report.json());
        } else {
            println!("{}", report.table());
        }
        Ok(std::process::ExitCode::SUCCESS)
    }
}

/// What `cadrex bench` is asked to do.
#[derive(Clone, Debug)]
pub struct BenchArgs {
    pub store: String,
    /// An already running server (loopback) instead of a child process.
    pub server: Option<SocketAddr>,
    pub pki_dir: PathBuf,
    /// Total measuring time, split across the phases.
    pub duration: Duration,
    pub seed: u64,
    /// Measures only this phase, for the whole duration (for profiling one path).
    pub only: Option<Phase>,
}

/// One measured phase of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Ceiling,
    Dossier,
    Feed,
    Ingest,
    InProcess,
    Raw,
    Unlogged,
}

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
    let (cert, key) = seed::agency_cert(pki_dir, agency, division)?;
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
    latencies_us: Vec<u64>,
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

/// The application state a server builds, over `store`, for assembling
/// dossiers in this process. Its appender is never used by the in-process
/// dossier, and its checkpoints are an hour apart so they stay out of the way.
async fn local_state(
    store: Arc<dyn Store>,
    url: &str,
    pki_dir: &Path,
) -> anyhow::Result<crate::BuiltState> {
    let config = Config {
        store: url.to_string(),
        pki_dir: pki_dir.to_path_buf(),
        checkpoint_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let tls = crate::tls::TlsState::load(crate::tls::TlsPaths {
        ca_cert: config.ca_cert_path(),
        server_cert: config.server_cert_path(),
        server_key: config.server_key_path(),
        crl: config.crl_path(),
    })?;
    crate::build_state(config, store, tls).await
}

/// Everything measured, as printed.
#[derive(Debug, Default)]
pub struct Report {
    pub backend: String,
    pub cadres: usize,
    pub changes: i64,
    pub ceiling: Vec<(usize, f64)>,
    /// (callers, requests/s, p50 ms, p99 ms)
    pub dossier: Vec<(usize, f64, f64, f64)>,
    pub in_process: f64,
    pub ingest: f64,
    pub raw_insert: f64,
    pub feed: f64,
    pub feed_events: u64,
    pub unlogged: Option<f64>,
    pub peak_rss: Option<u64>,
    pub duration: Duration,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl Report {
    fn dossier_at(&self, n: usize) -> Option<&(usize, f64, f64, f64)> {
        self.dossier.iter().find(|d| d.0 == n)
    }

    /// One JSON object with every figure; `null` where a figure was not
    /// measured (no unlogged build, or no child process to read RSS from).
    pub fn json(&self) -> Value {
        let per = |f: &dyn Fn(usize) -> f64| -> Value {
            CONCURRENCY
                .iter()
                .map(|n| (n.to_string(), json!(f(*n))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let ceiling = |n: usize| {
            self.ceiling
                .iter()
                .find(|c| c.0 == n)
                .map(|c| c.1)
                .unwrap_or(0.0)
        };
        let d = |n: usize| self.dossier_at(n).copied().unwrap_or((n, 0.0, 0.0, 0.0));
        let logged = d(COMPARE_AT).1;
        json!({
            "backend": self.backend,
            "cadres": self.cadres,
            "changes": self.changes,
            "duration_s": self.duration.as_secs_f64(),
            "ceiling_rps": per(&ceiling),
            "dossier_rps": per(&|n| d(n).1),
            "dossier_p50_ms": per(&|n| d(n).2),
            "dossier_p99_ms": per(&|n| d(n).3),
            "dossier_to_ceiling": per(&|n| ratio(d(n).1, ceiling(n))),
            "dossier_in_process_rps": self.in_process,
            "dossier_rpc_to_in_process": ratio(logged, self.in_process),
            "ingest_findings_per_s": self.ingest,
            "raw_insert_rows_per_s": self.raw_insert,
            "ingest_to_raw": ratio(self.ingest, self.raw_insert),
            "feed_changes_per_s": self.feed,
            "feed_events": self.feed_events,
            "dossier_unlogged_rps": self.unlogged,
            "logged_to_unlogged": self.unlogged.map(|u| ratio(logged, u)),
            "server_peak_rss_mib": self.peak_rss.map(|b| b as f64 / (1024.0 * 1024.0)),
        })
    }

    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(vec!["figure", "value", "goal"]);
        let ceiling = |n: usize| {
            self.ceiling
                .iter()
                .find(|c| c.0 == n)
                .map(|c| c.1)
                .unwrap_or(0.0)
        };
        for n in CONCURRENCY {
            t.add_row(vec![
                format!("ceiling (health Check), {n} callers"),
                format!("{:.0} req/s", ceiling(n)),
                String::new(),
            ]);
        }
        for &(n, rps, p50, p99) in &self.dossier {
            t.add_row(vec![
                format!("GetCadreDossier, {n} callers"),
                format!("{rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms"),
                if n == COMPARE_AT {
                    "p99 ≤ 10 ms".into()
                } else {
                    String::new()
                },
            ]);
            t.add_row(vec![
                format!("  dossier / ceiling, {n} callers"),
                format!("{:.2}", ratio(rps, ceiling(n))),
                "≥ 0.6".into(),
            ]);
        }
        let logged = self.dossier_at(COMPARE_AT).map(|d| d.1).unwrap_or(0.0);
        t.add_row(vec![
            format!("dossier in-process (no gRPC/TLS/log), {COMPARE_AT} callers"),
            format!("{:.0} dossiers/s", self.in_process),
            String::new(),
        ]);
        t.add_row(vec![
            "  dossier RPC / in-process".into(),
            format!("{:.2}", ratio(logged, self.in_process)),
            "≥ 0.5".into(),
        ]);
        t.add_row(vec![
            format!("BatchSubmitRecords, findings ×{INGEST_BATCH}, {INGEST_CALLERS} callers"),
            format!("{:.0} findings/s", self.ingest),
            if self.backend == "sqlite" {
                "≥ 20,000/s".into()
            } else {
                String::new()
            },
        ]);
        t.add_row(vec![
            format!("raw multi-row INSERT, {INGEST_BATCH} rows/transaction"),
            format!("{:.0} rows/s", self.raw_insert),
            String::new(),
        ]);
        t.add_row(vec![
            "  ingest / raw insert".into(),
            format!("{:.2}", ratio(self.ingest, self.raw_insert)),
            "≥ 0.5".into(),
        ]);
        t.add_row(vec![
            "ListChanges, 1 consumer, page 1000".into(),
            format!("{:.0} changes/s ({} events)", self.feed, self.feed_events),
            "≥ 100,000/s".into(),
        ]);
        match self.unlogged {
            Some(u) => {
                t.add_row(vec![
                    format!("dossier, access log no-op, {COMPARE_AT} callers"),
                    format!("{u:.0} req/s"),
                    String::new(),
                ]);
                t.add_row(vec![
                    "  logged / unlogged".into(),
                    format!("{:.2}", ratio(logged, u)),
                    "≥ 0.8".into(),
                ]);
            }
            None => {
                t.add_row(vec![
                    "  logged / unlogged",
                    "n/a (build with --features bench-nolog)",
                    "≥ 0.8",
                ]);
            }
        }
        t.add_row(vec![
            "server peak RSS (VmHWM)".into(),
            match self.peak_rss {
                Some(b) => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
                None => "n/a (--server)".into(),
            },
            "≤ 100 MiB".into(),
        ]);
        format!(
            "cadrex bench: {} store, {} cadres in {PROVINCE}'s jurisdiction, {} changes, {:.0}s\n{t}",
            self.backend,
            self.cadres,
            self.changes,
            self.duration.as_secs_f64()
        )
    }
}

/// Picks a cadre for (caller, iteration) reproducibly from the run's seed.
fn target(seed: u64, targets: &[String], caller: usize, i: u64) -> String {
    let mut r = Rng::new(seed ^ ((caller as u64) << 40) ^ i);
    format!("cadres/{}", targets[r.below(targets.len())])
}

pub fn dossier_request(cadre: String) -> proto::GetCadreDossierRequest {
    proto::GetCadreDossierRequest {
        cadre,
        purpose: proto::Purpose::CaseHandling as i32,
        opinion_request: String::new(),
    }
}

/// GetCadreDossier at `callers` concurrent callers as the province's discipline system.
async fn dossier_phase(
    pki_dir: &Path,
    addr: SocketAddr,
    targets: Arc<Vec<String>>,
    seed: u64,
    callers: usize,
    time: Duration,
) -> anyhow::Result<Stats> {
    let clients: Arc<Vec<DossierServiceClient<Channel>>> = Arc::new(
        channels(pki_dir, addr, Agency::Discipline, PROVINCE, callers.min(8))?
            .into_iter()
            .map(DossierServiceClient::new)
            .collect(),
    );
    drive(callers, time, move |c, i| {
        let mut client = clients[c % clients.len()].clone();
        let req = dossier_request(target(seed, &targets, c, i));
        async move {
            client.get_cadre_dossier(req).await?;
            Ok(1)
        }
    })
    .await
}

async fn ceiling_phase(
    pki_dir: &Path,
    addr: SocketAddr,
    callers: usize,
    time: Duration,
) -> anyhow::Result<Stats> {
    let clients: Arc<Vec<_>> = Arc::new(
        channels(pki_dir, addr, Agency::Discipline, PROVINCE, callers.min(8))?
            .into_iter()
            .map(tonic_health::pb::health_client::HealthClient::new)
            .collect(),
    );
    drive(callers, time, move |c, _| {
        let mut client = clients[c % clients.len()].clone();
        async move {
            client
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await?;
            Ok(1)
        }
    })
    .await
}

/// A finding about a cadre with an engagement by the benchmark's audit system.
pub fn finding(
    run: &str,
    n: u64,
    cadre_id: &str,
    engagement_sid: &str,
) -> proto::SubmitRecordRequest {
    proto::SubmitRecordRequest {
        record: Some(proto::Record {
            cadre: format!("cadres/{cadre_id}"),
            source_record_id: format!("bench-{run}-{n}"),
            source_version: 1,
            classification: proto::Classification::Internal as i32,
            payload: Some(proto::record::Payload::AuditFinding(proto::AuditFinding {
                engagement_source_record_id: engagement_sid.to_string(),
                problem_type: proto::ProblemType::IrregularFunds as i32,
                amount_fen: 1_250_000 + n as i64,
                characterisation: "超标准列支公务接待费".into(),
                responsibility: proto::Responsibility::Direct as i32,
                transfer: proto::Transfer::None as i32,
                rectification: Some(proto::Rectification {
                    deadline: "2026-12-31".into(),
                    status: proto::RectificationStatus::InProgress as i32,
                    report_ref: String::new(),
                }),
                finding_date: "2026-05-20".into(),
                engagement: String::new(),
            })),
            ..Default::default()
        }),
        request_id: String::new(),
        validate_only: false,
    }
}

/// Engagements the province's audit system has on record: (cadre id, source id).
async fn engagements(store: &dyn Store, audit_uri: &str) -> anyhow::Result<Vec<(String, String)>> {
    let rows = store
        .list_records(&RecordQuery {
            jurisdiction_prefix: PROVINCE[..2].to_string(),
            kinds: vec!["AUDIT_ENGAGEMENT".into()],
            state: Some(RecordState::Active),
            max_revision: i64::MAX,
            limit: 1000,
            ..Default::default()
        })
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.owner_system == audit_uri)
        .map(|r| (r.cadre_id, r.source_record_id))
        .collect())
}

async fn ingest_phase(
    pki_dir: &Path,
    addr: SocketAddr,
    engagements: Arc<Vec<(String, String)>>,
    time: Duration,
) -> anyhow::Result<Stats> {
    if engagements.is_empty() {
        anyhow::bail!(
            "no audit engagements by the {PROVINCE} audit system in the store; run `cadrex seed`"
        );
    }
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let clients: Arc<Vec<RecordServiceClient<Channel>>> = Arc::new(
        channels(pki_dir, addr, Agency::Audit, PROVINCE, INGEST_CALLERS)?
            .into_iter()
            .map(|c| RecordServiceClient::new(c).max_decoding_message_size(64 << 20))
            .collect(),
    );
    drive(INGEST_CALLERS, time, move |c, i| {
        let mut client = clients[c % clients.len()].clone();
        let base = ((c as u64) << 40) | (i * INGEST_BATCH as u64);
        let requests = (0..INGEST_BATCH as u64)
            .map(|k| {
                let (cadre, sid) = &engagements[((base + k) % engagements.len() as u64) as usize];
                finding(&run, base + k, cadre, sid)
            })
            .collect();
        async move {
            let resp = client
                .batch_submit_records(proto::BatchSubmitRecordsRequest {
                    requests,
                    request_id: String::new(),
                    validate_only: false,
                })
                .await?
                .into_inner();
            if let Some(e) = resp.results.iter().find_map(|r| r.error.as_ref()) {
                anyhow::bail!("ingest item refused: {} {}", e.reason, e.message);
            }
            Ok(resp.results.len() as u64)
        }
    })
    .await
}

/// Reads the whole feed from its start as the province's discipline system.
async fn feed_phase(pki_dir: &Path, addr: SocketAddr, time: Duration) -> anyhow::Result<Stats> {
    let mut client = ChangeFeedServiceClient::new(
        channels(pki_dir, addr, Agency::Discipline, PROVINCE, 1)?.remove(0),
    )
    .max_decoding_message_size(64 << 20);
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut cursor = String::new();
    while start.elapsed() < time {
        let t = Instant::now();
        let page = client
            .list_changes(proto::ListChangesRequest {
                after_cursor: cursor.clone(),
                kinds: Vec::new(),
                page_size: 1000,
            })
            .await?
            .into_inner();
        stats.latencies_us.push(t.elapsed().as_micros() as u64);
        stats.calls += 1;
        stats.items += page.events.len() as u64;
        // A page may hold no event the caller can see while the cursor still
        // moves; only a cursor that stops moving is the end of the feed.
        if page.next_cursor == cursor {
            break;
        }
        cursor = page.next_cursor;
    }
    stats.elapsed = start.elapsed();
    stats.latencies_us.sort_unstable();
    Ok(stats)
}

/// Measurement scaffolding, not part of cadrex's storage: the fastest plain
/// way to put the same number of rows into the same backend — a multi-row
/// INSERT into a scratch table shaped like `records` (same columns, keys and
/// indexes, no triggers or outbox), in transactions of `INGEST_BATCH` rows,
/// over one connection. The SQL lives here, not in the store, because it
/// exists only to give ingest a yardstick; the table is dropped afterwards.
mod raw {
    use super::*;
    use sqlx::{Connection, QueryBuilder};

    const TABLE: &str = "bench_raw_records";
    const CREATE: &str = "CREATE TABLE bench_raw_records (
        id TEXT PRIMARY KEY, cadre_id TEXT NOT NULL, kind TEXT NOT NULL,
        owner_system TEXT NOT NULL, owner_agency TEXT NOT NULL, owner_division TEXT NOT NULL,
        source_record_id TEXT NOT NULL, source_version BIGINT NOT NULL, revision BIGINT NOT NULL,
        event_date TEXT NOT NULL, classification TEXT NOT NULL, state TEXT NOT NULL,
        retraction_reason TEXT NOT NULL, payload {BLOB} NOT NULL, payload_sha256 TEXT NOT NULL,
        transfer_agency TEXT NOT NULL, transfer_division TEXT NOT NULL,
        submitting_system TEXT NOT NULL, update_time_us BIGINT NOT NULL,
        UNIQUE (owner_system, source_record_id))";
    const INDEXES: [&str; 2] = [
        "CREATE INDEX bench_raw_records_cadre ON bench_raw_records (cadre_id, id)",
        "CREATE INDEX bench_raw_records_revision ON bench_raw_records (revision)",
    ];

    fn push_rows<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, first: u64, payload: &[u8])
    where
        for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'a> Vec<u8>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        q.push(format!(
            "INSERT INTO {TABLE} (id, cadre_id, kind, owner_system, owner_agency, owner_division, \
             source_record_id, source_version, revision, event_date, classification, state, \
             retraction_reason, payload, payload_sha256, transfer_agency, transfer_division, \
             submitting_system, update_time_us) "
        ));
        q.push_values(first..first + INGEST_BATCH as u64, |mut b, n| {
            b.push_bind(uuid::Uuid::now_v7().simple().to_string())
                .push_bind(format!("{:032x}", n % 5000))
                .push_bind("AUDIT_FINDING".to_string())
                .push_bind("urn:cadrex:system:audit:360000:audit-sys".to_string())
                .push_bind("audit".to_string())
                .push_bind("360000".to_string())
                .push_bind(format!("raw-{n}"))
                .push_bind(1i64)
                .push_bind(n as i64)
                .push_bind("2026-05-20".to_string())
                .push_bind("INTERNAL".to_string())
                .push_bind(RecordState::Active.as_str().to_string())
                .push_bind(String::new())
                .push_bind(payload.to_vec())
                .push_bind(crate::access_log::digest(payload))
                .push_bind(String::new())
                .push_bind(String::new())
                .push_bind("urn:cadrex:system:audit:360000:audit-sys".to_string())
                .push_bind(crate::domain::clock::now_us());
        });
    }

    /// Rows per second into the scratch table for about `time`.
    pub async fn measure(url: &str, time: Duration) -> anyhow::Result<Stats> {
        // A finding as the records table stores it, so rows are the same size.
        let payload = proto::Record {
            payload: finding("raw", 0, "c", "e").record.and_then(|r| r.payload),
            ..Default::default()
        }
        .encode_to_vec();
        let start = Instant::now();
        let mut stats = Stats::default();
        if url.starts_with("sqlite:") {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            // The store's own settings (WAL, synchronous=NORMAL), so the
            // comparison is of work done, not of durability settings.
            let opts: SqliteConnectOptions = url.parse()?;
            let mut c = sqlx::SqliteConnection::connect_with(
                &opts
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10)),
            )
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {TABLE}")))
                .execute(&mut c)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(CREATE.replace("{BLOB}", "BLOB")))
                .execute(&mut c)
                .await?;
            for i in INDEXES {
                sqlx::query(i).execute(&mut c).await?;
            }
            let mut n = 0u64;
            while start.elapsed() < time {
                let t = Instant::now();
                let mut tx = c.begin().await?;
                let mut q = QueryBuilder::<sqlx::Sqlite>::new("");
                push_rows(&mut q, n, &payload);
                q.build().execute(&mut *tx).await?;
                tx.commit().await?;
                n += INGEST_BATCH as u64;
                stats.calls += 1;
                stats.latencies_us.push(t.elapsed().as_micros() as u64);
            }
            stats.items = n;
            stats.elapsed = start.elapsed();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {TABLE}")))
                .execute(&mut c)
                .await?;
            c.close().await?;
        } else {
            let mut c = sqlx::PgConnection::connect(url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {TABLE}")))
                .execute(&mut c)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(CREATE.replace("{BLOB}", "BYTEA")))
                .execute(&mut c)
                .await?;
            for i in INDEXES {
                sqlx::query(i).execute(&mut c).await?;
            }
            let mut n = 0u64;
            while start.elapsed() < time {
                let t = Instant::now();
                let mut tx = c.begin().await?;
                let mut q = QueryBuilder::<sqlx::Postgres>::new("");
                push_rows(&mut q, n, &payload);
                q.build().execute(&mut *tx).await?;
                tx.commit().await?;
                n += INGEST_BATCH as u64;
                stats.calls += 1;
                stats.latencies_us.push(t.elapsed().as_micros() as u64);
            }
            stats.items = n;
            stats.elapsed = start.elapsed();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {TABLE}")))
                .execute(&mut c)
                .await?;
            c.close().await?;
        }
        Ok(stats)
    }
}

/// In-process dossiers at `callers`: the same assembly the handler runs.
async fn in_process_phase(
    state: Arc<crate::AppState>,
    principal: Principal,
    targets: Arc<Vec<String>>,
    seed: u64,
    callers: usize,
    time: Duration,
) -> anyhow::Result<Stats> {
    drive(callers, time, move |c, i| {
        let state = state.clone();
        let principal = principal.clone();
        let req = dossier_request(target(seed, &targets, c, i));
        async move {
            crate::dossier_in_process(state, principal, req)
                .await
                .map_err(|e| anyhow::anyhow!("in-process dossier: {e}"))?;
            Ok(1)
        }
    })
    .await
}

/// True when this binary has the hidden `bench-server` (no-op access log).
pub const HAS_NOLOG: bool = cfg!(feature = "bench-nolog");

/// Runs the whole benchmark. The store is seeded with the defaults first when
/// it has no cadres in the benchmark province.
pub async fn run(args: BenchArgs) -> anyhow::Result<Report> {
    let begun = Instant::now();
    crate::tools::connect::install_crypto_provider();
    if let Some(addr) = args.server
        && !addr.ip().is_loopback()
    {
        anyhow::bail!("--server must be a loopback address (127.0.0.1:PORT)");
    }
    seed::ensure_pki(&args.pki_dir)?;
    let store = crate::store::connect(&args.store).await?;
    let list = |limit| CadreQuery {
        jurisdiction_prefix: PROVINCE[..2].to_string(),
        limit,
        ..Default::default()
    };
    if store.list_cadres(&list(1)).await?.is_empty() {
        store.close().await;
        tracing::warn!("store has no cadres: seeding the defaults first");
        let summary = seed::run(seed::SeedArgs::new(&args.store, &args.pki_dir)).await?;
        eprintln!("{summary}");
    }
    let store = crate::store::connect(&args.store).await?;
    let targets: Arc<Vec<String>> = Arc::new(
        store
            .list_cadres(&list(MAX_TARGETS))
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect(),
    );
    let audit = seed::principal_of(&seed::agency_cert(&args.pki_dir, Agency::Audit, PROVINCE)?.0)?;
    let discipline =
        seed::principal_of(&seed::agency_cert(&args.pki_dir, Agency::Discipline, PROVINCE)?.0)?;
    let engagements = Arc::new(engagements(&*store, &audit.uri).await?);

    // Phases: 3 ceiling + 3 dossier + in-process + ingest + raw + feed (+ unlogged).
    let phases = 10 + u32::from(HAS_NOLOG && args.server.is_none());
    let slot = match args.only {
        Some(_) => args.duration,
        None => (args.duration / phases).max(Duration::from_millis(200)),
    };
    let runs = |p: Phase| args.only.is_none_or(|o| o == p);
    let mut report = Report {
        backend: store.backend().to_string(),
        cadres: targets.len(),
        ..Default::default()
    };

    let child = match args.server {
        Some(_) => None,
        None => Some(ChildServer::start("serve", &args.store, &args.pki_dir)?),
    };
    let addr = args
        .server
        .or(child.as_ref().map(|c| c.addr))
        .ok_or_else(|| anyhow::anyhow!("no server"))?;
    wait_healthy(&args.pki_dir, addr, Duration::from_secs(60)).await?;

    // With --only, the one phase runs at the comparison concurrency.
    let concurrency: Vec<usize> = match args.only {
        Some(_) => vec![COMPARE_AT],
        None => CONCURRENCY.to_vec(),
    };
    if runs(Phase::Ceiling) {
        for &n in &concurrency {
            let s = ceiling_phase(&args.pki_dir, addr, n, slot).await?;
            report.ceiling.push((n, s.calls_per_s()));
        }
    }
    if runs(Phase::Dossier) {
        for &n in &concurrency {
            let s = dossier_phase(&args.pki_dir, addr, targets.clone(), args.seed, n, slot).await?;
            report
                .dossier
                .push((n, s.calls_per_s(), s.quantile_ms(0.5), s.quantile_ms(0.99)));
        }
    }
    if runs(Phase::Feed) {
        let feed = feed_phase(&args.pki_dir, addr, slot).await?;
        report.feed = feed.items_per_s();
        report.feed_events = feed.items;
    }
    if runs(Phase::Ingest) {
        report.ingest = ingest_phase(&args.pki_dir, addr, engagements, slot)
            .await?
            .items_per_s();
    }
    report.peak_rss = child.as_ref().and_then(ChildServer::peak_rss);
    drop(child);

    if runs(Phase::InProcess) {
        let local = local_state(store.clone(), &args.store, &args.pki_dir).await?;
        report.in_process = in_process_phase(
            local.state,
            discipline,
            targets.clone(),
            args.seed,
            COMPARE_AT,
            slot,
        )
        .await?
        .calls_per_s();
        for t in local.log_tasks {
            t.abort();
        }
    }
    if runs(Phase::Raw) {
        report.raw_insert = raw::measure(&args.store, slot).await?.items_per_s();
    }

    if HAS_NOLOG && args.server.is_none() && runs(Phase::Unlogged) {
        let child = ChildServer::start("bench-server", &args.store, &args.pki_dir)?;
        wait_healthy(&args.pki_dir, child.addr, Duration::from_secs(60)).await?;
        let s = dossier_phase(
            &args.pki_dir,
            child.addr,
            targets.clone(),
            args.seed,
            COMPARE_AT,
            slot,
        )
        .await?;
        report.unlogged = Some(s.calls_per_s());
    }
    report.changes = store.change_head().await?;
    store.close().await;
    report.duration = begun.elapsed();
    Ok(report)
}
