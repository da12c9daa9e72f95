//! `cadrex bench`: measures a real server over mutual TLS on loopback — ceiling, dossier, ingest, feed, log cost, memory — against in-process and raw-SQL baselines.
//!
//! This side reaches the exchange over gRPC only. What needs the store —
//! seeding, the cadres and engagements to aim at, the in-process state and
//! the raw-insert yardstick — is the [`StoreSide`] the `cadrex bench`
//! command hands in (implemented over `admin::bench`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;

use crate::domain::agency::Agency;
use crate::proto;

mod harness;
mod phases;
mod report;

pub use harness::{ChildServer, Stats, channels, current_rss, drive, peak_rss, wait_healthy};
pub use phases::{dossier_request, finding};
pub use report::Report;

/// Concurrent callers of the ceiling and dossier phases.
pub const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// The concurrency at which in-process, unlogged and p99 figures are compared.
const COMPARE_AT: usize = 16;
/// Findings per `BatchSubmitRecords` call, and rows per raw-insert transaction.
pub const INGEST_BATCH: usize = 500;
/// Concurrent ingest callers: enough that request decoding and validation
/// overlap the store's commit, as with a few audit systems pushing at once.
const INGEST_CALLERS: usize = 4;
/// The province whose discipline and audit systems the benchmark acts as
/// (the development PKI's province).
pub const PROVINCE: &str = "360000";

/// `cadrex bench`: measures a server over mutual TLS on loopback (see BENCHMARKS.md).
#[derive(clap::Args, Debug)]
pub struct BenchCommand {
    /// Store URL; seeded with the defaults first when it has no cadres.
    #[arg(long)]
    pub store: String,
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
    pub pki_dir: PathBuf,
    /// Seed for choosing cadres.
    #[arg(long, default_value_t = crate::rng::DEFAULT_SEED)]
    seed: u64,
    /// Measures only this phase, for the whole duration, at 16 callers.
    #[arg(long, value_enum)]
    only: Option<Phase>,
}

impl BenchCommand {
    /// Fails on a `--server` that is not on loopback: checked before anything
    /// opens the store, so a mistyped address seeds nothing.
    pub fn check(&self) -> anyhow::Result<()> {
        on_loopback(self.server)
    }

    /// Runs the benchmark against the store `store` was opened on and prints
    /// the report.
    pub async fn run(self, store: &dyn StoreSide) -> anyhow::Result<std::process::ExitCode> {
        let report = run(
            BenchArgs {
                store: self.store,
                server: self.server,
                pki_dir: self.pki_dir,
                duration: self.duration,
                seed: self.seed,
                only: self.only,
            },
            store,
        )
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
    /// The store URL a child server is started on.
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

/// What the benchmark needs from the store it measures, which this tool does
/// not open: the store side of `cadrex bench` provides it, seeding the store
/// first when it has no cadres in [`PROVINCE`].
#[async_trait::async_trait]
pub trait StoreSide: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> String;
    /// Ids of the cadres in [`PROVINCE`]'s jurisdiction, for dossier calls.
    fn targets(&self) -> Vec<String>;
    /// The province audit system's engagements on record, as (cadre id,
    /// source record id), for the ingest phase's findings to cite.
    fn engagements(&self) -> Vec<(String, String)>;
    /// The state a server builds over the store, for dossiers in this process.
    async fn local_state(&self) -> anyhow::Result<crate::BuiltState>;
    /// The raw-insert yardstick: plain multi-row INSERTs of `batch` rows with
    /// `payload` into the records table for about `time`; rows written and
    /// the time they took.
    async fn raw_insert(
        &self,
        time: Duration,
        batch: usize,
        payload: &[u8],
    ) -> anyhow::Result<(u64, Duration)>;
    /// The change feed's head, once the phases have run.
    async fn change_head(&self) -> anyhow::Result<i64>;
}

/// Refuses a `--server` off loopback: bench measures the server, not a network.
fn on_loopback(server: Option<SocketAddr>) -> anyhow::Result<()> {
    if let Some(addr) = server
        && !addr.ip().is_loopback()
    {
        anyhow::bail!("--server must be a loopback address (127.0.0.1:PORT)");
    }
    Ok(())
}

/// True when this binary has the hidden `bench-server` (no-op access log).
pub const HAS_NOLOG: bool = cfg!(feature = "bench-nolog");

/// Runs the whole benchmark against the server on `store`'s store.
pub async fn run(args: BenchArgs, store: &dyn StoreSide) -> anyhow::Result<Report> {
    let begun = Instant::now();
    crate::tools::connect::install_crypto_provider();
    on_loopback(args.server)?;
    crate::pki::ensure_dev(&args.pki_dir)?;
    let targets: Arc<Vec<String>> = Arc::new(store.targets());
    let discipline = crate::pki::principal_of(
        &crate::pki::agency_cert(&args.pki_dir, Agency::Discipline, PROVINCE)?.0,
    )?;
    let engagements = Arc::new(store.engagements());

    // Phases: 3 ceiling + 3 dossier + in-process + ingest + raw + feed (+ unlogged).
    let phases = 10 + u32::from(HAS_NOLOG && args.server.is_none());
    let slot = match args.only {
        Some(_) => args.duration,
        None => (args.duration / phases).max(Duration::from_millis(200)),
    };
    let runs = |p: Phase| args.only.is_none_or(|o| o == p);
    let mut report = Report {
        backend: store.backend(),
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
            let s = phases::ceiling_phase(&args.pki_dir, addr, n, slot).await?;
            report.ceiling.push((n, s.calls_per_s()));
        }
    }
    if runs(Phase::Dossier) {
        for &n in &concurrency {
            let s = phases::dossier_phase(&args.pki_dir, addr, targets.clone(), args.seed, n, slot)
                .await?;
            report
                .dossier
                .push((n, s.calls_per_s(), s.quantile_ms(0.5), s.quantile_ms(0.99)));
        }
    }
    if runs(Phase::Feed) {
        let feed = phases::feed_phase(&args.pki_dir, addr, slot).await?;
        report.feed = feed.items_per_s();
        report.feed_events = feed.items;
    }
    if runs(Phase::Ingest) {
        report.ingest = phases::ingest_phase(&args.pki_dir, addr, engagements, slot)
            .await?
            .items_per_s();
    }
    report.peak_rss = child.as_ref().and_then(ChildServer::peak_rss);
    drop(child);

    if runs(Phase::InProcess) {
        let local = store.local_state().await?;
        report.in_process = phases::in_process_phase(
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
        // A finding as the records table stores it, so rows are the same size.
        let payload = proto::Record {
            payload: finding("raw", 0, "c", "e").record.and_then(|r| r.payload),
            ..Default::default()
        }
        .encode_to_vec();
        let (rows, elapsed) = store.raw_insert(slot, INGEST_BATCH, &payload).await?;
        report.raw_insert = rows as f64 / elapsed.as_secs_f64().max(1e-9);
    }

    if HAS_NOLOG && args.server.is_none() && runs(Phase::Unlogged) {
        let child = ChildServer::start("bench-server", &args.store, &args.pki_dir)?;
        wait_healthy(&args.pki_dir, child.addr, Duration::from_secs(60)).await?;
        let s = phases::dossier_phase(
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
    report.duration = begun.elapsed();
    Ok(report)
}
