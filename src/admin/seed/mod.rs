//! `cadrex seed`: fills a store with deterministic, realistic synthetic cadres, records and opinion requests for benchmarks and demos, built into rows by the server's own checks and conversions.
//!
//! The generator ([`people`], [`records`]) makes what clients would submit;
//! [`write`] turns it into rows through the functions SubmitRecord and
//! CreateCadre use, so seeded data is data the server would accept (the
//! integration test `it::seed` submits a sample through the API to show it).

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::digest::DigestKey;
use crate::domain::agency::Agency;
use crate::domain::chain::LogEntry;
use crate::domain::clock::now_us;
use crate::domain::states::Decision;
use crate::identity::Principal;
use crate::informant::KeyRing;
use crate::rng::{DEFAULT_SEED, Rng};
use crate::store::{CadreQuery, CadreRow};

mod opinions;
pub mod people;
pub mod records;
mod write;

use people::PROVINCES;

/// Rows per write transaction: large enough to amortise the commit, small
/// enough that one transaction never holds the SQLite write lock for long.
pub const BATCH: usize = 500;

/// The default size of a seeded store: quick to make, big enough to measure.
pub const DEFAULT_CADRES: usize = 10_000;
pub const DEFAULT_RECORDS_PER_CADRE: u32 = 5;

/// Officer named in the access-log rows of seeded writes, so they are never
/// mistaken for an agency's own submissions.
const OFFICER: &str = "cadrex seed";

/// `cadrex seed`: fills a store with deterministic synthetic cadres, records
/// and opinion requests (see BENCHMARKS.md).
#[derive(clap::Args, Debug)]
pub struct SeedCommand {
    /// Store URL: sqlite://PATH or postgres://…
    #[arg(long)]
    store: String,
    /// PKI of the server that will read the store (its informant key seals
    /// 检举人信息); created with development certificates when absent.
    #[arg(long, default_value = "./cadrex-data/pki")]
    pki_dir: PathBuf,
    #[arg(long, default_value_t = DEFAULT_CADRES)]
    cadres: usize,
    /// Mean records per cadre (most have fewer, a few many more).
    #[arg(long, default_value_t = DEFAULT_RECORDS_PER_CADRE)]
    records_per_cadre: u32,
    /// PRNG seed: the same seed gives the same data.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
}

impl SeedCommand {
    pub async fn run(self) -> anyhow::Result<std::process::ExitCode> {
        let mut args = SeedArgs::new(self.store, self.pki_dir);
        args.cadres = self.cadres;
        args.records_per_cadre = self.records_per_cadre;
        args.seed = self.seed;
        args.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
        println!("{}", run(args).await?);
        Ok(std::process::ExitCode::SUCCESS)
    }
}

/// What `cadrex seed` is asked to do.
#[derive(Clone, Debug)]
pub struct SeedArgs {
    pub store: String,
    /// PKI of the server that will read the store: its informant key seals
    /// 检举人信息, and its client certificates name the seeded records' owners.
    pub pki_dir: PathBuf,
    pub cadres: usize,
    /// Mean records per cadre; most cadres get fewer, a few many more.
    pub records_per_cadre: u32,
    pub seed: u64,
    pub progress: bool,
}

impl SeedArgs {
    pub fn new(store: impl Into<String>, pki_dir: impl Into<PathBuf>) -> Self {
        Self {
            store: store.into(),
            pki_dir: pki_dir.into(),
            cadres: DEFAULT_CADRES,
            records_per_cadre: DEFAULT_RECORDS_PER_CADRE,
            seed: DEFAULT_SEED,
            progress: false,
        }
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedSummary {
    pub cadres: usize,
    pub records: usize,
    pub opinion_requests: usize,
    pub replies: usize,
    pub elapsed: Duration,
}

impl std::fmt::Display for SeedSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seeded {} cadres, {} records, {} opinion requests ({} replies) in {:.1}s",
            self.cadres,
            self.records,
            self.opinion_requests,
            self.replies,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs ANALYZE so that both backends plan queries from real statistics;
/// PostgreSQL in particular plans badly on freshly bulk-loaded tables.
///
/// SQLite keeps only the per-index summary (`sqlite_stat1`): the bundled
/// library is built with STAT4, and with `sqlite_stat4` samples present every
/// prepared statement whose plan could depend on a bound value is re-parsed
/// and re-planned each time it runs with a new value — 15 % of the dossier's
/// store CPU in `cadrex bench`, for plans that came out the same.
pub async fn analyze(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query("ANALYZE").execute(&mut c).await?;
        let stat4: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat4'",
        )
        .fetch_optional(&mut c)
        .await?;
        if stat4.is_some() {
            sqlx::query("DELETE FROM sqlite_stat4")
                .execute(&mut c)
                .await?;
        }
        c.close().await?;
    } else {
        let mut c = sqlx::PgConnection::connect(url).await?;
        sqlx::query("ANALYZE").execute(&mut c).await?;
        c.close().await?;
    }
    Ok(())
}

/// The owners of seeded records: one system per agency per province, for
/// every agency of `Agency::ALL` (a new agency gets its systems here without
/// anyone editing this).
pub(crate) struct Owners {
    by_province: HashMap<(&'static str, Agency), Principal>,
}

impl Owners {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut by_province = HashMap::new();
        for p in PROVINCES {
            for agency in Agency::ALL {
                let principal =
                    crate::pki::principal_of(&crate::pki::agency_cert(dir, agency, p.code)?.0)?;
                by_province.insert((p.code, agency), principal);
            }
        }
        Ok(Self { by_province })
    }

    /// The system of `agency` in `province`; the first province's for a
    /// code that is not one of `PROVINCES`.
    pub(crate) fn of(&self, province: &str, agency: Agency) -> &Principal {
        let province = PROVINCES
            .iter()
            .map(|p| p.code)
            .find(|c| *c == province)
            .unwrap_or(PROVINCES[0].code);
        &self.by_province[&(province, agency)]
    }
}

/// The wire path of an RPC, `/cadrex.v1.Service/Method`, as the server logs it.
pub(crate) fn rpc(service: &str, method: &str) -> String {
    format!("/{service}/{method}")
}

pub(crate) fn log_entry(p: &Principal, method: &str, resources: Vec<String>) -> LogEntry {
    LogEntry {
        principal: p.uri.clone(),
        fingerprint: p.fingerprint.clone(),
        officer: OFFICER.into(),
        method: method.into(),
        resources,
        purpose: String::new(),
        decision: Decision::Allow.as_str().into(),
        policy_ids: Vec::new(),
        request_id: String::new(),
        status_code: 0,
        response_sha256: String::new(),
    }
}

/// Seeds `args.store`. Refuses a store that already has cadres, so that a
/// second run cannot half-collide with the first.
pub async fn run(args: SeedArgs) -> anyhow::Result<SeedSummary> {
    let started = Instant::now();
    crate::pki::ensure_dev(&args.pki_dir)?;
    let informant = KeyRing::load(&crate::pki::PkiPaths::new(&args.pki_dir).informant_key())?;
    let digest = DigestKey::load(&crate::pki::PkiPaths::new(&args.pki_dir).digest_key())?;
    let owners = Owners::load(&args.pki_dir)?;
    let store = crate::store::connect(&args.store).await?;
    let existing = store
        .list_cadres(&CadreQuery {
            limit: 1,
            ..Default::default()
        })
        .await?;
    if !existing.is_empty() {
        anyhow::bail!("the store already has cadres; seed an empty store");
    }
    let mut rng = Rng::new(args.seed);
    let bar = if args.progress {
        let b = ProgressBar::new(args.cadres as u64);
        b.set_style(
            ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_message("cadres");
        b
    } else {
        ProgressBar::hidden()
    };
    let mut summary = SeedSummary::default();
    let mut used_numbers = HashSet::new();
    let mut writer = write::RecordWriter {
        store: store.clone(),
        informant: &informant,
        digest: &digest,
        owners: &owners,
        pending: Vec::new(),
        written: 0,
    };
    // Cadres of each province, for opinion requests.
    let mut by_province: Vec<Vec<String>> = vec![Vec::new(); PROVINCES.len()];
    // One batch per province, written as that province's organization system.
    let mut batches: Vec<Vec<(people::Person, CadreRow, usize)>> =
        vec![Vec::new(); PROVINCES.len()];
    let now = now_us();
    for i in 0..args.cadres {
        let person = people::person(&mut rng, &mut used_numbers);
        let row = write::cadre_row(&person, now)?;
        let pi = person.province;
        by_province[pi].push(row.id.clone());
        // Exponential record counts with the requested mean: most cadres have
        // a few records, a long tail has many.
        let mean = f64::from(args.records_per_cadre);
        let n = (-(1.0 - rng.unit()).ln() * mean).round() as usize;
        let n = n.min(args.records_per_cadre as usize * 6 + 2);
        batches[pi].push((person, row, n));
        let last = i + 1 == args.cadres;
        for (bi, batch) in batches.iter_mut().enumerate() {
            if batch.is_empty() || (batch.len() < BATCH && !last) {
                continue;
            }
            let org = owners.of(PROVINCES[bi].code, Agency::Organization);
            let batch = std::mem::take(batch);
            let rows = batch.iter().map(|(_, c, _)| c.clone()).collect();
            summary.cadres += write::write_cadres(&*store, org, rows).await?;
            bar.set_position(summary.cadres as u64);
            // Records after their cadres: records reference the cadre row.
            for (person, cadre, n) in &batch {
                let generated = records::records(&mut rng, person, *n);
                if generated.iter().any(|g| {
                    matches!(
                        g.record.payload,
                        Some(crate::proto::record::Payload::ArchiveReview(_))
                    )
                }) {
                    opinions::archive_request(
                        &*store,
                        &owners,
                        PROVINCES[bi].code,
                        &records::archive_request_id(person),
                        &person.id,
                    )
                    .await?;
                    summary.opinion_requests += 1;
                }
                writer.cadre(person, cadre, generated).await?;
            }
        }
    }
    writer.flush_all().await?;
    summary.records = writer.written;
    bar.finish_and_clear();

    let (requests, replies) =
        opinions::seed_opinions(&*store, &owners, &mut rng, &by_province).await?;
    summary.opinion_requests += requests;
    summary.replies = replies;
    store.close().await;
    analyze(&args.store).await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}
