//! `cadrex soak`: a bounded mixed workload at a fixed rate on loopback that fails on any error status or on server memory growth.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};
use tonic::transport::Channel;

use crate::domain::agency::Agency;
use crate::proto;
use crate::proto::cadre_service_client::CadreServiceClient;
use crate::proto::change_feed_service_client::ChangeFeedServiceClient;
use crate::proto::dossier_service_client::DossierServiceClient;
use crate::proto::record_service_client::RecordServiceClient;
use crate::rng::{DEFAULT_SEED, Rng};
use crate::tools::bench::{self, ChildServer, PROVINCE};

/// Most calls in flight: if the server falls this far behind, the rate drops
/// (and the summary shows it) instead of memory in the soak client growing.
const MAX_IN_FLIGHT: usize = 256;
/// Most cadres the workload chooses from.
const MAX_CADRES: usize = 10_000;
/// Highest accepted rate and longest run: the soak is a bounded test.
pub const MAX_RATE: u32 = 20_000;
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// `cadrex soak`: runs a bounded mixed workload at a fixed rate and fails on
/// any error status or on server memory growth beyond a bound (see BENCHMARKS.md).
#[derive(clap::Args, Debug)]
pub struct SoakCommand {
    /// A running server on loopback (127.0.0.1:PORT).
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    server: Option<SocketAddr>,
    /// Its process id, to watch its memory.
    #[arg(long, requires = "server")]
    server_pid: Option<u32>,
    /// Starts a server on this (seeded) store instead.
    #[arg(long)]
    store: Option<String>,
    #[arg(long, default_value = "./cadrex-data/pki")]
    pki_dir: PathBuf,
    /// Calls per second (dossier reads, cadre reads, feed pages, submissions).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_RATE)))]
    rate: u32,
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Largest allowed server RSS growth from the end of the warm-up to the end.
    #[arg(long, default_value_t = 20)]
    max_rss_growth_mib: u64,
}

impl SoakCommand {
    /// Exit 0 when the soak passed, 1 when it did not.
    pub async fn run(self) -> anyhow::Result<std::process::ExitCode> {
        let report = run(SoakArgs {
            server: self.server,
            server_pid: self.server_pid,
            store: self.store,
            pki_dir: self.pki_dir,
            rate: self.rate,
            duration: self.duration,
            max_rss_growth_mib: self.max_rss_growth_mib,
        })
        .await?;
        println!("{report}");
        Ok(if report.passed() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        })
    }
}

/// What `cadrex soak` is asked to do.
#[derive(Clone, Debug)]
pub struct SoakArgs {
    /// A running server on loopback, else a child `serve` on `store`.
    pub server: Option<SocketAddr>,
    /// Its process id, to read its memory (with `server`).
    pub server_pid: Option<u32>,
    pub store: Option<String>,
    pub pki_dir: PathBuf,
    /// Calls per second, all kinds together.
    pub rate: u32,
    pub duration: Duration,
    /// Largest allowed RSS growth from the end of the warm-up (the first minute
    /// or the first 20 % of the run, whichever is shorter) to the end.
    pub max_rss_growth_mib: u64,
}

/// How a soak went.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub calls: [u64; 4],
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub elapsed: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// p99 of each kind of call, in `KINDS` order.
    pub p99_by_kind_ms: [f64; 4],
    pub rss_after_warmup: Option<u64>,
    pub rss_end: Option<u64>,
    pub rss_peak: Option<u64>,
    pub max_rss_growth_mib: u64,
    pub rate: u32,
}

const KINDS: [&str; 4] = ["GetCadreDossier", "GetCadre", "ListChanges", "SubmitRecord"];

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

impl SoakReport {
    pub fn growth_mib(&self) -> Option<f64> {
        match (self.rss_after_warmup, self.rss_end) {
            (Some(a), Some(b)) => Some(mib(b) - mib(a)),
            _ => None,
        }
    }

    /// True when no call failed and memory stayed within the bound.
    pub fn passed(&self) -> bool {
        self.errors == 0
            && self
                .growth_mib()
                .is_none_or(|g| g <= self.max_rss_growth_mib as f64)
    }
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: u64 = self.calls.iter().sum();
        writeln!(
            f,
            "soak: {total} calls in {:.0}s ({:.0}/s, target {}/s), {} errors, p50 {:.2} ms, p99 {:.2} ms",
            self.elapsed.as_secs_f64(),
            total as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.rate,
            self.errors,
            self.p50_ms,
            self.p99_ms
        )?;
        for ((k, n), p99) in KINDS.iter().zip(self.calls).zip(self.p99_by_kind_ms) {
            writeln!(f, "  {k}: {n} (p99 {p99:.2} ms)")?;
        }
        for e in &self.first_errors {
            writeln!(f, "  error: {e}")?;
        }
        match (self.rss_after_warmup, self.rss_end, self.rss_peak) {
            (Some(a), Some(b), Some(p)) => write!(
                f,
                "server RSS: {:.1} MiB after warm-up, {:.1} MiB at the end (growth {:+.1} MiB, bound {} MiB), peak {:.1} MiB\n{}",
                mib(a),
                mib(b),
                mib(b) - mib(a),
                self.max_rss_growth_mib,
                mib(p),
                if self.passed() { "PASSED" } else { "FAILED" }
            ),
            _ => write!(
                f,
                "server RSS: not measured (give --server-pid)\n{}",
                if self.passed() { "PASSED" } else { "FAILED" }
            ),
        }
    }
}

/// The clients of the workload: several agencies of the benchmark province.
struct Clients {
    dossier: DossierServiceClient<Channel>,
    cadres: CadreServiceClient<Channel>,
    feed: ChangeFeedServiceClient<Channel>,
    records: RecordServiceClient<Channel>,
}

async fn cadre_ids(client: &mut CadreServiceClient<Channel>) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_cadres(proto::ListCadresRequest {
                page_size: 1000,
                page_token: token,
                filter: String::new(),
                include_past_posts: false,
            })
            .await?
            .into_inner();
        ids.extend(page.cadres.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() || ids.len() >= MAX_CADRES {
            return Ok(ids);
        }
        token = page.next_page_token;
    }
}

/// Engagements the audit system itself submitted: (cadre name, source id).
async fn own_engagements(
    client: &mut RecordServiceClient<Channel>,
    own_uri: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let page = client
        .list_records(proto::ListRecordsRequest {
            parent: "cadres/-".into(),
            page_size: 1000,
            filter: "kind = \"AUDIT_ENGAGEMENT\"".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(page
        .records
        .into_iter()
        .filter(|r| r.owner_system == own_uri)
        .map(|r| (r.cadre, r.source_record_id))
        .collect())
}

/// Runs the soak. Bounded: the rate, the run time and the calls in flight.
pub async fn run(args: SoakArgs) -> anyhow::Result<SoakReport> {
    crate::tools::connect::install_crypto_provider();
    if args.rate == 0 || args.rate > MAX_RATE {
        anyhow::bail!("--rate must be between 1 and {MAX_RATE}");
    }
    if args.duration.is_zero() || args.duration > MAX_DURATION {
        anyhow::bail!("--duration must be between 1s and 24h");
    }
    crate::pki::ensure_dev(&args.pki_dir)?;
    let child = match (&args.server, &args.store) {
        (Some(addr), _) => {
            if !addr.ip().is_loopback() {
                anyhow::bail!("--server must be a loopback address (127.0.0.1:PORT)");
            }
            None
        }
        (None, Some(store)) => Some(ChildServer::start("serve", store, &args.pki_dir)?),
        (None, None) => anyhow::bail!("give --server ADDR or --store URL"),
    };
    let addr = args
        .server
        .or(child.as_ref().map(|c| c.addr))
        .ok_or_else(|| anyhow::anyhow!("no server"))?;
    let pid = args.server_pid.or(child.as_ref().map(ChildServer::pid));
    bench::wait_healthy(&args.pki_dir, addr, Duration::from_secs(60)).await?;

    let one = |agency| -> anyhow::Result<Channel> {
        Ok(bench::channels(&args.pki_dir, addr, agency, PROVINCE, 1)?.remove(0))
    };
    let mut clients = Clients {
        dossier: DossierServiceClient::new(one(Agency::Discipline)?),
        cadres: CadreServiceClient::new(one(Agency::Organization)?),
        feed: ChangeFeedServiceClient::new(one(Agency::Discipline)?)
            .max_decoding_message_size(64 << 20),
        records: RecordServiceClient::new(one(Agency::Audit)?),
    };
    let audit_uri = crate::pki::principal_of(
        &crate::pki::agency_cert(&args.pki_dir, Agency::Audit, PROVINCE)?.0,
    )?
    .uri;
    let cadres = Arc::new(cadre_ids(&mut clients.cadres).await?);
    let engagements = Arc::new(own_engagements(&mut clients.records, &audit_uri).await?);
    if cadres.is_empty() || engagements.is_empty() {
        anyhow::bail!(
            "the server's store has no cadres or audit engagements in {PROVINCE}; seed it first (cadrex seed)"
        );
    }
    let clients = Arc::new(clients);
    let cursor = Arc::new(Mutex::new(String::new()));
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let errors = Arc::new(std::sync::Mutex::new((0u64, Vec::<String>::new())));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<(usize, u32)>::new()));
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));

    let warmup = (args.duration / 5).min(Duration::from_secs(60));
    let start = Instant::now();
    let end = start + args.duration;
    let mut rss_after_warmup = None;
    let mut next_rss = start + Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rng = Rng::new(DEFAULT_SEED);
    let mut n: u64 = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < end {
        tick.tick().await;
        let now = Instant::now();
        if rss_after_warmup.is_none() && now >= start + warmup {
            rss_after_warmup = pid.and_then(bench::current_rss);
        }
        if now >= next_rss {
            next_rss = now + Duration::from_secs(1);
            // Reap finished calls so the set stays small.
            while tasks.try_join_next().is_some() {}
        }
        let permit = permits.clone().acquire_owned().await?;
        // Mix: half dossier reads, then cadre reads, feed pages and submissions.
        let kind = match rng.below(20) {
            0..=9 => 0,
            10..=13 => 1,
            14..=16 => 2,
            _ => 3,
        };
        let cadre = cadres[rng.below(cadres.len())].clone();
        let engagement = engagements[rng.below(engagements.len())].clone();
        let (clients, cursor, counts, errors, latencies, run_id) = (
            clients.clone(),
            cursor.clone(),
            counts.clone(),
            errors.clone(),
            latencies.clone(),
            run_id.clone(),
        );
        n += 1;
        let serial = n;
        tasks.spawn(async move {
            let t = Instant::now();
            let result: Result<(), tonic::Status> = match kind {
                0 => clients
                    .dossier
                    .clone()
                    .get_cadre_dossier(bench::dossier_request(cadre))
                    .await
                    .map(drop),
                1 => clients
                    .cadres
                    .clone()
                    .get_cadre(proto::GetCadreRequest { name: cadre })
                    .await
                    .map(drop),
                2 => {
                    // One feed consumer tails sequentially, as a sync agent
                    // does: the cursor is held across its call, and a feed
                    // tick that finds it busy is skipped rather than opening
                    // another page from the same cursor (concurrent pages of
                    // one consumer model no real client and only pile up).
                    let Ok(mut c) = cursor.try_lock() else {
                        drop(permit);
                        return;
                    };
                    let r = clients
                        .feed
                        .clone()
                        .list_changes(proto::ListChangesRequest {
                            after_cursor: c.clone(),
                            kinds: Vec::new(),
                            page_size: 100,
                        })
                        .await;
                    if let Ok(page) = &r
                        && !page.get_ref().next_cursor.is_empty()
                    {
                        *c = page.get_ref().next_cursor.clone();
                    }
                    r.map(drop)
                }
                _ => {
                    let (cadre_name, sid) = engagement;
                    let cadre_id = cadre_name.trim_start_matches("cadres/");
                    clients
                        .records
                        .clone()
                        .submit_record(bench::finding(
                            &format!("soak-{run_id}"),
                            serial,
                            cadre_id,
                            &sid,
                        ))
                        .await
                        .map(drop)
                }
            };
            let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            counts[kind].fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(()) => latencies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((kind, us)),
                Err(s) => {
                    let mut e = errors.lock().unwrap_or_else(|p| p.into_inner());
                    e.0 += 1;
                    if e.1.len() < 5 {
                        e.1.push(format!("{}: {:?} {}", KINDS[kind], s.code(), s.message()));
                    }
                }
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let rss_end = pid.and_then(bench::current_rss);
    let rss_peak = pid.and_then(bench::peak_rss);
    drop(child);

    let all = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    let quantile = |lat: &mut Vec<u32>, q: f64| {
        lat.sort_unstable();
        lat.get(((lat.len().max(1) - 1) as f64 * q).round() as usize)
            .map(|us| f64::from(*us) / 1000.0)
            .unwrap_or(0.0)
    };
    let mut lat: Vec<u32> = all.iter().map(|(_, us)| *us).collect();
    let by_kind: [f64; 4] = std::array::from_fn(|k| {
        let mut l: Vec<u32> = all
            .iter()
            .filter(|(kk, _)| *kk == k)
            .map(|(_, us)| *us)
            .collect();
        quantile(&mut l, 0.99)
    });
    let (err_count, first_errors) =
        std::mem::take(&mut *errors.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(SoakReport {
        calls: std::array::from_fn(|i| counts[i].load(Ordering::Relaxed)),
        errors: err_count,
        first_errors,
        elapsed,
        p50_ms: quantile(&mut lat, 0.5),
        p99_ms: quantile(&mut lat, 0.99),
        p99_by_kind_ms: by_kind,
        rss_after_warmup,
        rss_end,
        rss_peak,
        max_rss_growth_mib: args.max_rss_growth_mib,
        rate: args.rate,
    })
}
