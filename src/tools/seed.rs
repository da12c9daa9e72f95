//! `cadrex seed`: fills a store with deterministic, realistic synthetic cadres, records and opinion requests for benchmarks and demos.

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::digest::DigestKey;
use crate::domain::agency::Agency;
use crate::domain::chain::LogEntry;
use crate::domain::clock::now_us;
use crate::domain::ids;
use crate::domain::records::{self, Kind};
use crate::domain::states::{ChangeKind, ChangeOp, Decision, RecordState, RequestState};
use crate::identity::Principal;
use crate::informant::KeyRing;
use crate::proto::{self, record::Payload};
use crate::store::{
    CadreQuery, CadreRow, Change, OpinionRequestRow, PostRow, RecordRow, ReplyRow, Store, WriteMeta,
};

/// Rows per write transaction: large enough to amortise the commit, small
/// enough that one transaction never holds the SQLite write lock for long.
pub const BATCH: usize = 500;

/// The default size of a seeded store: quick to make, big enough to measure.
pub const DEFAULT_CADRES: usize = 10_000;
pub const DEFAULT_RECORDS_PER_CADRE: u32 = 5;
pub const DEFAULT_SEED: u64 = 20_240_601;

/// Officer named in the access-log rows of seeded writes, so they are never
/// mistaken for an agency's own submissions.
const OFFICER: &str = "cadrex seed";

/// A fixed "today" for every seeded date, so the same seed gives the same data
/// whatever day it runs. Opinion due dates are the exception: OVERDUE is
/// computed against the real date, so they are set relative to it.
const ANCHOR: (i32, u8, u8) = (2026, 6, 30);

/// splitmix64 (Steele, Lea & Flood, 2014). Written here rather than taken from
/// `rand`: seeding needs only reproducibility, ten lines do it, and the output
/// then cannot change under a crate upgrade (rand's value streams have changed
/// between major versions, which would silently change "the same seed").
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// A 32-hex-digit id in the form the server's ids take.
    pub fn id(&mut self) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(b)
            .into_uuid()
            .simple()
            .to_string()
    }
}

/// (code, name, counties as (code, name)).
type Prefecture = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// One province of the synthetic data: its code and name, its prefectures with
/// their counties (real GB/T 2260 codes), and its share of the cadres.
struct Province {
    code: &'static str,
    name: &'static str,
    prefectures: &'static [Prefecture],
    weight: f64,
}

/// Jiangxi comes first and holds most cadres: the development PKI's clients
/// are Jiangxi systems (360000, 360802, 360821), so benchmarks read these.
const PROVINCES: &[Province] = &[
    Province {
        code: "360000",
        name: "江西省",
        prefectures: &[
            (
                "360100",
                "南昌市",
                &[("360102", "东湖区"), ("360111", "青山湖区")],
            ),
            (
                "360800",
                "吉安市",
                &[
                    ("360802", "吉州区"),
                    ("360821", "吉安县"),
                    ("360822", "吉水县"),
                ],
            ),
            (
                "360700",
                "赣州市",
                &[("360702", "章贡区"), ("360703", "南康区")],
            ),
        ],
        weight: 0.55,
    },
    Province {
        code: "330000",
        name: "浙江省",
        prefectures: &[
            (
                "330100",
                "杭州市",
                &[("330102", "上城区"), ("330106", "西湖区")],
            ),
            ("330200", "宁波市", &[("330203", "海曙区")]),
        ],
        weight: 0.15,
    },
    Province {
        code: "440000",
        name: "广东省",
        prefectures: &[
            (
                "440100",
                "广州市",
                &[("440103", "荔湾区"), ("440104", "越秀区")],
            ),
            (
                "440300",
                "深圳市",
                &[("440303", "罗湖区"), ("440304", "福田区")],
            ),
        ],
        weight: 0.15,
    },
    Province {
        code: "510000",
        name: "四川省",
        prefectures: &[
            (
                "510100",
                "成都市",
                &[("510104", "锦江区"), ("510105", "青羊区")],
            ),
            ("510700", "绵阳市", &[("510703", "涪城区")]),
        ],
        weight: 0.15,
    },
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "欧阳", "司马",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "文", "华", "建", "国", "志", "红", "林", "海", "云", "斌",
    "辉", "鹏", "宇", "浩", "凯", "晨", "玲", "卫", "东", "春", "荣", "新", "永", "德", "俊", "清",
];
const DEPARTMENTS: &[&str] = &[
    "财政局",
    "发展和改革委员会",
    "交通运输局",
    "自然资源局",
    "住房和城乡建设局",
    "教育局",
    "卫生健康委员会",
    "农业农村局",
    "水利局",
    "市场监督管理局",
    "人力资源和社会保障局",
    "生态环境局",
];
/// (title, rank suffix, is the unit head)
const TITLES: &[(&str, bool)] = &[
    ("局长", true),
    ("党组书记", true),
    ("主任", true),
    ("副局长", false),
    ("副主任", false),
    ("党组成员", false),
];
const CREDIT_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

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

/// The development PKI, created like `serve` does when the directory has none.
pub fn ensure_pki(dir: &Path) -> anyhow::Result<()> {
    if !crate::pki::PkiPaths::new(dir).exists() {
        crate::pki::init(dir, crate::pki::DEFAULT_DIVISION)?;
        tracing::warn!(dir = %dir.display(), "created DEVELOPMENT certificates");
    }
    let digest = crate::pki::PkiPaths::new(dir).digest_key();
    if !digest.exists() {
        crate::pki::write_digest_key(&digest)?;
    }
    Ok(())
}

/// Certificate and key of the `agency` system of `division`: the development
/// pair when `pki init` made one, else one issued now (`{agency}-sys`).
pub fn agency_cert(
    dir: &Path,
    agency: Agency,
    division: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let paths = crate::pki::PkiPaths::new(dir);
    let (crt, key) = (
        paths.client_cert(agency.as_str(), division),
        paths.client_key(agency.as_str(), division),
    );
    if crt.exists() {
        return Ok((crt, key));
    }
    let system = format!("{}-sys", agency.as_str());
    let stem = paths
        .clients_dir()
        .join(format!("{}-{division}-{system}", agency.as_str()));
    let (crt, key) = (stem.with_extension("crt"), stem.with_extension("key"));
    if crt.exists() {
        return Ok((crt, key));
    }
    crate::pki::issue(dir, agency.as_str(), division, &system)
}

/// The principal a certificate file stands for, read as the server reads it.
pub fn principal_of(cert: &Path) -> anyhow::Result<Principal> {
    let der = CertificateDer::from_pem_file(cert)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", cert.display()))?;
    crate::identity::principal_from_der(der.as_ref()).map_err(anyhow::Error::msg)
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

fn anchor() -> time::Date {
    let (y, m, d) = ANCHOR;
    time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap_or(time::Month::June), d)
        .unwrap_or(time::Date::MIN)
}

fn days_before_anchor(days: usize) -> time::Date {
    anchor() - time::Duration::days(days as i64)
}

fn id_number(rng: &mut Rng, county: &str, male: bool, used: &mut HashSet<String>) -> String {
    loop {
        let birth = time::Date::from_calendar_date(1960, time::Month::January, 1)
            .unwrap_or(time::Date::MIN)
            + time::Duration::days(rng.below(26 * 365) as i64);
        let mut seq = rng.below(500) as u32 * 2;
        if male {
            seq += 1;
        }
        let first17 = format!(
            "{county}{:04}{:02}{:02}{seq:03}",
            birth.year(),
            birth.month() as u8,
            birth.day()
        );
        let check = ids::id_number_check_char(first17.as_bytes()) as char;
        let n = format!("{first17}{check}");
        if used.insert(n.clone()) {
            return n;
        }
    }
}

fn credit_code(rng: &mut Rng, division: &str) -> String {
    // 11 = 机关 (a state organ), then the registering division and a 9-character body code.
    let mut s = format!("11{division}");
    for _ in 0..9 {
        s.push(*rng.pick(CREDIT_ALPHABET) as char);
    }
    let check = ids::credit_code_check_char(s.as_bytes()).unwrap_or(b'0') as char;
    s.push(check);
    s
}

fn name(rng: &mut Rng) -> String {
    let mut n = rng.pick(SURNAMES).to_string();
    n.push_str(GIVEN[rng.below(GIVEN.len())]);
    if rng.chance(0.7) {
        n.push_str(GIVEN[rng.below(GIVEN.len())]);
    }
    n
}

/// The owners of seeded records: one system per agency per province, for
/// every agency of `Agency::ALL` (a new agency gets its systems here without
/// anyone editing this).
struct Owners {
    by_province: HashMap<(&'static str, Agency), Principal>,
}

impl Owners {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut by_province = HashMap::new();
        for p in PROVINCES {
            for agency in Agency::ALL {
                let principal = principal_of(&agency_cert(dir, agency, p.code)?.0)?;
                by_province.insert((p.code, agency), principal);
            }
        }
        Ok(Self { by_province })
    }

    /// The system of `agency` in `province`; the first province's for a
    /// code that is not one of `PROVINCES`.
    fn of(&self, province: &str, agency: Agency) -> &Principal {
        let province = PROVINCES
            .iter()
            .map(|p| p.code)
            .find(|c| *c == province)
            .unwrap_or(PROVINCES[0].code);
        &self.by_province[&(province, agency)]
    }
}

/// The wire path of an RPC, `/cadrex.v1.Service/Method`, as the server logs it.
fn rpc(service: &str, method: &str) -> String {
    format!("/{service}/{method}")
}

fn log_entry(p: &Principal, method: &str, resources: Vec<String>) -> LogEntry {
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
    crate::tools::connect::install_crypto_provider();
    ensure_pki(&args.pki_dir)?;
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
    let mut seeder = RecordSeeder {
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
    let mut batches: Vec<Vec<(CadreRow, usize)>> = vec![Vec::new(); PROVINCES.len()];
    let now = now_us();
    for i in 0..args.cadres {
        let pi = {
            let u = rng.unit();
            let mut acc = 0.0;
            PROVINCES
                .iter()
                .position(|p| {
                    acc += p.weight;
                    u < acc
                })
                .unwrap_or(0)
        };
        let prov = &PROVINCES[pi];
        let (pref_code, pref_name, counties) = *rng.pick(prov.prefectures);
        let (county_code, county_name) = *rng.pick(counties);
        let (managing, place) = match rng.below(10) {
            0 => (prov.code, prov.name.to_string()),
            1..=3 => (pref_code, pref_name.to_string()),
            _ => (county_code, format!("{pref_name}{county_name}")),
        };
        let male = rng.chance(0.78);
        let (_, _, home) = *rng.pick(prov.prefectures);
        let birthplace = rng.pick(home).0;
        let number = id_number(&mut rng, birthplace, male, &mut used_numbers);
        let mut posts = Vec::new();
        let n_posts = 1 + usize::from(rng.chance(0.35));
        for k in 0..n_posts {
            let (title, head) = *rng.pick(TITLES);
            let dept = rng.pick(DEPARTMENTS);
            let start = days_before_anchor(400 + rng.below(3000) + k * 1500);
            let end = if k > 0 {
                (start + time::Duration::days(700 + rng.below(700) as i64)).to_string()
            } else {
                String::new()
            };
            posts.push(PostRow {
                unit_name: format!("{place}{dept}"),
                unit_credit_code: credit_code(&mut rng, managing),
                title: title.to_string(),
                rank: match managing {
                    m if m == prov.code => "正厅级",
                    m if m == pref_code => "正处级",
                    _ => "正科级",
                }
                .to_string(),
                unit_head: head,
                start_date: start.to_string(),
                end_date: end,
            });
        }
        let row = CadreRow {
            id: rng.id(),
            birth_date: ids::birth_date_of(&number).unwrap_or_default(),
            id_number: number,
            display_name: name(&mut rng),
            gender: if male {
                proto::Gender::Male as i32
            } else {
                proto::Gender::Female as i32
            },
            managing_division: managing.to_string(),
            posts,
            revision: 1,
            create_time_us: now,
            update_time_us: now,
        };
        by_province[pi].push(row.id.clone());
        // Exponential record counts with the requested mean: most cadres have
        // a few records, a long tail has many.
        let mean = f64::from(args.records_per_cadre);
        let n = (-(1.0 - rng.unit()).ln() * mean).round() as usize;
        let n = n.min(args.records_per_cadre as usize * 6 + 2);
        batches[pi].push((row, n));
        let last = i + 1 == args.cadres;
        for (bi, batch) in batches.iter_mut().enumerate() {
            if batch.is_empty() || (batch.len() < BATCH && !last) {
                continue;
            }
            let org = owners.of(PROVINCES[bi].code, Agency::Organization);
            let batch = std::mem::take(batch);
            let rows = batch.iter().map(|(c, _)| c.clone()).collect();
            summary.cadres += write_cadres(&*store, org, rows).await?;
            bar.set_position(summary.cadres as u64);
            // Records after their cadres: records reference the cadre row.
            for (cadre, n) in &batch {
                seeder.cadre(&mut rng, cadre, *n).await?;
            }
        }
    }
    seeder.flush_all().await?;
    summary.records = seeder.written;
    bar.finish_and_clear();

    let (requests, replies) = seed_opinions(&*store, &owners, &mut rng, &by_province).await?;
    summary.opinion_requests = requests;
    summary.replies = replies;
    store.close().await;
    analyze(&args.store).await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn write_cadres(
    store: &dyn Store,
    org: &Principal,
    rows: Vec<CadreRow>,
) -> anyhow::Result<usize> {
    let names: Vec<String> = rows.iter().map(|r| format!("cadres/{}", r.id)).collect();
    let entry = log_entry(
        org,
        &rpc(
            proto::cadre_service_server::SERVICE_NAME,
            "BatchCreateCadres",
        ),
        names,
    );
    let finish = move |_: &[crate::Result<()>]| (entry.clone(), None);
    let outcomes = store.create_cadres(rows, &finish).await?;
    let mut ok = 0;
    for o in outcomes {
        o?;
        ok += 1;
    }
    Ok(ok)
}

/// Buffers records per owning system and writes each owner's records in
/// batches, one transaction (and one access-log row) per batch.
struct RecordSeeder<'a> {
    store: Arc<dyn Store>,
    informant: &'a KeyRing,
    digest: &'a DigestKey,
    owners: &'a Owners,
    pending: Vec<(Principal, Vec<RecordRow>)>,
    written: usize,
}

/// Which kind the next record of a cadre is; weights are rough shares of the
/// records a provincial exchange holds (evaluations and checks dominate).
fn pick_kind(rng: &mut Rng) -> Kind {
    const TABLE: &[(Kind, u32)] = &[
        (Kind::Evaluation, 34),
        (Kind::PersonalMattersCheck, 18),
        (Kind::AuditEngagement, 9),
        (Kind::AuditFinding, 13),
        (Kind::Admonishment, 6),
        (Kind::Petition, 8),
        (Kind::Clue, 6),
        (Kind::Sanction, 4),
        (Kind::OrgHandling, 2),
    ];
    let total: u32 = TABLE.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total as usize) as u32;
    for (k, w) in TABLE {
        if x < *w {
            return *k;
        }
        x -= w;
    }
    Kind::Evaluation
}

fn pick_enum(rng: &mut Rng, max: i32) -> i32 {
    1 + rng.below(max as usize) as i32
}

impl RecordSeeder<'_> {
    async fn cadre(&mut self, rng: &mut Rng, cadre: &CadreRow, n: usize) -> anyhow::Result<()> {
        let province = format!("{}0000", &cadre.managing_division[..2]);
        let province = PROVINCES
            .iter()
            .find(|p| p.code == province)
            .map(|p| p.code)
            .unwrap_or(PROVINCES[0].code);
        let mut engagement: Option<(String, String)> = None;
        let mut petition: Option<String> = None;
        for k in 0..n {
            let mut kind = pick_kind(rng);
            if kind == Kind::AuditFinding && engagement.is_none() {
                kind = Kind::AuditEngagement;
            }
            let days = 30 + rng.below(6 * 365);
            let date = days_before_anchor(days);
            let d = date.to_string();
            let sid_prefix = kind.as_str().to_ascii_lowercase().replace('_', "-");
            let source_record_id = format!("{sid_prefix}-{}-{k}", &cadre.id[..12]);
            let id = rng.id();
            let (payload, owner_agency) = match kind {
                Kind::Sanction => {
                    let party = rng.chance(0.6);
                    let decision = date;
                    let party_type = if party { pick_enum(rng, 5) } else { 0 };
                    let probation_years =
                        if party_type == proto::PartySanctionType::Probation as i32 {
                            1 + rng.below(2) as i32
                        } else {
                            0
                        };
                    (
                        Payload::Sanction(proto::Sanction {
                            track: if party {
                                proto::SanctionTrack::Party as i32
                            } else {
                                proto::SanctionTrack::State as i32
                            },
                            party_type,
                            state_type: if party { 0 } else { pick_enum(rng, 5) },
                            probation_years,
                            decision_number: format!(
                                "{}纪处〔{}〕{}号",
                                &province[..2],
                                decision.year(),
                                1 + rng.below(300)
                            ),
                            decision_date: d.clone(),
                            effective_date: (decision + time::Duration::days(rng.below(20) as i64))
                                .to_string(),
                            form_of_discipline: 2 + rng.below(3) as i32,
                        }),
                        Agency::Discipline,
                    )
                }
                Kind::Admonishment => (
                    Payload::Admonishment(proto::Admonishment {
                        r#type: pick_enum(rng, 4),
                        date: d.clone(),
                        issuer: "纪委监委第三监督检查室".into(),
                    }),
                    if rng.chance(0.7) {
                        Agency::Discipline
                    } else {
                        Agency::Organization
                    },
                ),
                Kind::Clue => {
                    let disposal = pick_enum(rng, 6);
                    let concluded =
                        disposal >= proto::ClueDisposal::Shelved as i32 || rng.chance(0.5);
                    let (source, source_record) = match &petition {
                        Some(p) if rng.chance(0.6) => {
                            (proto::ClueSource::Petition as i32, p.clone())
                        }
                        _ => (pick_enum(rng, 5), String::new()),
                    };
                    let source = if source == proto::ClueSource::Petition as i32
                        && source_record.is_empty()
                    {
                        proto::ClueSource::Inspection as i32
                    } else {
                        source
                    };
                    (
                        Payload::Clue(proto::Clue {
                            source,
                            source_record,
                            disposal,
                            status: if concluded {
                                proto::ClueStatus::Concluded as i32
                            } else {
                                proto::ClueStatus::Open as i32
                            },
                            conclusion: if concluded {
                                "经核查，问题不属实，予以了结。".into()
                            } else {
                                String::new()
                            },
                            received_date: d.clone(),
                            reply_due_date: (date + time::Duration::days(15)).to_string(),
                        }),
                        Agency::Discipline,
                    )
                }
                Kind::OrgHandling => (
                    Payload::OrgHandling(proto::OrgHandling {
                        r#type: pick_enum(rng, 5),
                        date: d.clone(),
                    }),
                    Agency::Organization,
                ),
                Kind::PersonalMattersCheck => {
                    let result = match rng.below(20) {
                        0 => proto::PersonalMattersResult::Concealed,
                        1..=3 => proto::PersonalMattersResult::UnderReported,
                        _ => proto::PersonalMattersResult::Consistent,
                    } as i32;
                    (
                        Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
                            report_year: date.year() - 1,
                            result,
                            check_date: d.clone(),
                            handling: if result == proto::PersonalMattersResult::Consistent as i32 {
                                String::new()
                            } else {
                                "批评教育，责令作出书面说明".into()
                            },
                        }),
                        Agency::Organization,
                    )
                }
                Kind::Evaluation => {
                    let grade = match rng.below(20) {
                        0 => proto::EvaluationGrade::BasicallyCompetent,
                        1..=5 => proto::EvaluationGrade::Excellent,
                        _ => proto::EvaluationGrade::Competent,
                    } as i32;
                    (
                        Payload::Evaluation(proto::Evaluation {
                            year: date.year(),
                            kind: pick_enum(rng, 2),
                            grade,
                        }),
                        Agency::Organization,
                    )
                }
                Kind::AuditEngagement => {
                    let start = date - time::Duration::days(3 * 365);
                    engagement = Some((
                        source_record_id.clone(),
                        format!("cadres/{}/records/{id}", cadre.id),
                    ));
                    (
                        Payload::AuditEngagement(proto::AuditEngagement {
                            r#type: pick_enum(rng, 2),
                            period_start: start.to_string(),
                            period_end: (date - time::Duration::days(30)).to_string(),
                            report_number: format!(
                                "审经责〔{}〕{}号",
                                date.year(),
                                1 + rng.below(200)
                            ),
                            audited_post: cadre
                                .posts
                                .first()
                                .map(|p| format!("{}{}", p.unit_name, p.title))
                                .unwrap_or_default(),
                            audited_unit_credit_code: cadre
                                .posts
                                .first()
                                .map(|p| p.unit_credit_code.clone())
                                .unwrap_or_default(),
                            report_date: d.clone(),
                        }),
                        Agency::Audit,
                    )
                }
                Kind::AuditFinding => {
                    let (eng_sid, eng_name) = engagement.clone().unwrap_or_default();
                    let status = pick_enum(rng, 3);
                    (
                        Payload::AuditFinding(proto::AuditFinding {
                            engagement_source_record_id: eng_sid,
                            problem_type: pick_enum(rng, 5),
                            amount_fen: (rng.below(5_000_000) as i64) * 100,
                            characterisation: "违反财经纪律，超范围列支费用".into(),
                            responsibility: pick_enum(rng, 3),
                            transfer: match rng.below(10) {
                                0 => proto::Transfer::Discipline,
                                1 => proto::Transfer::CompetentDept,
                                _ => proto::Transfer::None,
                            } as i32,
                            rectification: Some(proto::Rectification {
                                deadline: (date + time::Duration::days(180)).to_string(),
                                status,
                                report_ref: if status == proto::RectificationStatus::Done as i32 {
                                    format!("整改报告〔{}〕{}号", date.year(), 1 + rng.below(100))
                                } else {
                                    String::new()
                                },
                            }),
                            finding_date: d.clone(),
                            engagement: eng_name,
                        }),
                        Agency::Audit,
                    )
                }
                Kind::Petition => {
                    let anonymous = rng.chance(0.4);
                    petition = Some(format!("cadres/{}/records/{id}", cadre.id));
                    let informant = (!anonymous).then(|| proto::Informant {
                        name: name(rng),
                        unit: format!("{}{}", rng.pick(DEPARTMENTS), "干部"),
                        contact: format!("1{:010}", rng.next_u64() % 10_000_000_000),
                        address: "某小区3栋2单元".into(),
                    });
                    (
                        Payload::Petition(proto::Petition {
                            received_date: d.clone(),
                            channel: pick_enum(rng, 4),
                            anonymous,
                            category: pick_enum(rng, 4),
                            specific: rng.chance(0.3),
                            status: pick_enum(rng, 6),
                            forwarded_to: String::new(),
                            summary: "反映其在工程项目招投标中为亲属谋利".into(),
                            informant,
                        }),
                        Agency::Petition,
                    )
                }
            };
            let owner = self.owners.of(province, owner_agency).clone();
            self.push(id, cadre, owner, payload, source_record_id)?;
        }
        self.flush_full().await
    }

    /// Builds the stored row the way `RecordService` does: payload digest over
    /// the full payload, informant sealed apart from it.
    fn push(
        &mut self,
        id: String,
        cadre: &CadreRow,
        owner: Principal,
        mut payload: Payload,
        source_record_id: String,
    ) -> anyhow::Result<()> {
        let kind = Kind::of(&payload).ok_or_else(|| anyhow::anyhow!("summary payload"))?;
        // A generator bug must not seed records the server would have refused.
        let violations = records::validate_payload(&payload);
        if !violations.is_empty() {
            anyhow::bail!(
                "seed generated an invalid {} record: {violations:?}",
                kind.as_str()
            );
        }
        let classification = if kind == Kind::Petition || kind == Kind::Clue {
            proto::Classification::WorkSecret
        } else {
            proto::Classification::Internal
        } as i32;
        let sha = self.digest.keyed(&records::digest_bytes(
            records::classification_name(classification),
            &payload,
        ));
        let (mut transfer_agency, mut transfer_division) = (String::new(), String::new());
        if let Payload::Clue(k) = &payload
            && !k.source_record.is_empty()
        {
            let petition = self.owners.of(&owner.division, Agency::Petition);
            transfer_agency = petition.agency.as_str().into();
            transfer_division = petition.division.clone();
        }
        let mut informant = None;
        if let Payload::Petition(p) = &mut payload
            && let Some(i) = p.informant.take()
        {
            // The same context RecordService seals under (owner system | source id),
            // so that the server opens these blocks like its own.
            let context = crate::informant::informant_context(&owner.uri, &source_record_id);
            informant = Some(self.informant.seal(&i.encode_to_vec(), &context)?);
        }
        let event_date = records::event_date(&payload);
        let stored = proto::Record {
            payload: Some(payload),
            ..Default::default()
        };
        let row = RecordRow {
            id,
            cadre_id: cadre.id.clone(),
            kind: kind.as_str().into(),
            owner_system: owner.uri.clone(),
            owner_agency: owner.agency.as_str().into(),
            owner_division: owner.division.clone(),
            source_record_id,
            source_version: 1,
            revision: 0,
            event_date,
            classification: records::classification_name(classification).into(),
            state: RecordState::Active,
            retraction_reason: String::new(),
            payload: stored.encode_to_vec(),
            payload_sha256: sha,
            informant,
            transfer_agency,
            transfer_division,
            submitting_system: owner.uri.clone(),
            update_time_us: 0,
            division: cadre.managing_division.clone(),
        };
        match self.pending.iter_mut().find(|(p, _)| p.uri == owner.uri) {
            Some((_, rows)) => rows.push(row),
            None => self.pending.push((owner, vec![row])),
        }
        Ok(())
    }

    async fn flush_full(&mut self) -> anyhow::Result<()> {
        for i in 0..self.pending.len() {
            if self.pending[i].1.len() >= BATCH {
                self.flush(i).await?;
            }
        }
        Ok(())
    }

    async fn flush_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.pending.len() {
            self.flush(i).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, i: usize) -> anyhow::Result<()> {
        let rows = std::mem::take(&mut self.pending[i].1);
        if rows.is_empty() {
            return Ok(());
        }
        let owner = &self.pending[i].0;
        let names: Vec<String> = rows
            .iter()
            .map(|r| format!("cadres/{}/records/{}", r.cadre_id, r.id))
            .collect();
        let entry = log_entry(
            owner,
            &rpc(
                proto::record_service_server::SERVICE_NAME,
                "BatchSubmitRecords",
            ),
            names,
        );
        let finish = move |_: &[crate::Result<crate::store::SubmitOutcome>]| (entry.clone(), None);
        for o in self
            .store
            .submit_records(rows, self.digest, &finish)
            .await?
        {
            o?;
            self.written += 1;
        }
        Ok(())
    }
}

const VERDICTS: &[(&str, &str)] = &[
    ("NO_ISSUE", "经查，未发现影响使用的问题。"),
    ("ISSUE_NOT_BLOCKING", "有问题但不影响使用。"),
    ("DEFER", "有问题线索正在核查，建议暂缓。"),
    ("NOT_AGREE", "处于处分影响期内，不同意。"),
];
const PURPOSES: &[&str] = &[
    "PROMOTION",
    "FURTHER_USE",
    "RE_ELECTION",
    "AWARD",
    "TRANSFER",
];

/// Opinion requests in every state: pending, overdue (pending past due),
/// replied, replied but stale (as-of more than 90 days ago), withdrawn.
async fn seed_opinions(
    store: &dyn Store,
    owners: &Owners,
    rng: &mut Rng,
    by_province: &[Vec<String>],
) -> anyhow::Result<(usize, usize)> {
    let today = crate::domain::clock::today();
    let now = now_us();
    let day_us = 86_400_000_000i64;
    let (mut requests, mut replies) = (0, 0);
    for (pi, cadres) in by_province.iter().enumerate() {
        let prov = PROVINCES[pi].code;
        let org = owners.of(prov, Agency::Organization);
        let disc = owners.of(prov, Agency::Discipline);
        for _ in 0..cadres.len() / 20 {
            let n = 1 + rng.below(3);
            let mut ids: Vec<String> = Vec::with_capacity(n);
            while ids.len() < n.min(cadres.len()) {
                let c = rng.pick(cadres).clone();
                if !ids.contains(&c) {
                    ids.push(c);
                }
            }
            let state = rng.below(100);
            let id = rng.id();
            let name = format!("opinionRequests/{id}");
            let overdue = (35..50).contains(&state);
            let due = if overdue {
                today - time::Duration::days(1 + rng.below(20) as i64)
            } else {
                today + time::Duration::days(3 + rng.below(14) as i64)
            };
            let row = OpinionRequestRow {
                id: id.clone(),
                requester: org.uri.clone(),
                requester_agency: org.agency.as_str().into(),
                requester_division: org.division.clone(),
                purpose: rng.pick(PURPOSES).to_string(),
                due_date: due.to_string(),
                state: RequestState::Pending,
                note: "拟提拔使用，请回复廉政意见。".into(),
                withdraw_reason: String::new(),
                warnings: Vec::new(),
                revision: 1,
                create_time_us: now - if overdue { 30 * day_us } else { day_us },
                update_time_us: now,
                cadres: ids.clone(),
            };
            let resources = std::iter::once(name.clone())
                .chain(ids.iter().map(|c| format!("cadres/{c}")))
                .collect();
            let meta = WriteMeta {
                log: log_entry(
                    org,
                    &rpc(
                        proto::opinion_service_server::SERVICE_NAME,
                        "CreateOpinionRequest",
                    ),
                    resources,
                ),
                changes: vec![Change {
                    op: ChangeOp::Upsert,
                    resource: name.clone(),
                    kind: ChangeKind::OpinionRequest.as_str().into(),
                    revision: 1,
                    division: org.division.clone(),
                    from_division: None,
                }],
                idempotency: None,
            };
            store.create_opinion_request(&row, meta).await?;
            requests += 1;
            match state {
                // 0..35 pending, 35..50 overdue: nothing more.
                50..=89 => {
                    let stale = state >= 75;
                    for c in &ids {
                        let (verdict, text) = *rng.pick(VERDICTS);
                        let reply_id = rng.id();
                        let reply_name = format!("{name}/replies/{reply_id}");
                        let reply = ReplyRow {
                            id: reply_id,
                            request_id: id.clone(),
                            cadre_id: c.clone(),
                            verdict: verdict.into(),
                            text: text.into(),
                            cited_records: Vec::new(),
                            signer: name_signer(rng),
                            as_of_us: if stale { now - 120 * day_us } else { now },
                            correction_reason: String::new(),
                            corrects: String::new(),
                            replier: disc.uri.clone(),
                            purpose: row.purpose.clone(),
                            revision: 1,
                            create_time_us: now,
                            ..ReplyRow::default()
                        };
                        let meta = WriteMeta {
                            log: log_entry(
                                disc,
                                &rpc(proto::opinion_service_server::SERVICE_NAME, "ReplyOpinion"),
                                vec![reply_name.clone()],
                            ),
                            changes: vec![Change {
                                op: ChangeOp::Upsert,
                                resource: reply_name,
                                kind: ChangeKind::OpinionReply.as_str().into(),
                                revision: 1,
                                division: org.division.clone(),
                                from_division: None,
                            }],
                            idempotency: None,
                        };
                        store.add_opinion_reply(&reply, meta).await?;
                        replies += 1;
                    }
                }
                90.. => {
                    let meta = WriteMeta {
                        log: log_entry(
                            org,
                            &rpc(
                                proto::opinion_service_server::SERVICE_NAME,
                                "WithdrawOpinionRequest",
                            ),
                            vec![name.clone()],
                        ),
                        changes: vec![Change {
                            op: ChangeOp::Upsert,
                            resource: name.clone(),
                            kind: ChangeKind::OpinionRequest.as_str().into(),
                            revision: 2,
                            division: org.division.clone(),
                            from_division: None,
                        }],
                        idempotency: None,
                    };
                    store
                        .withdraw_opinion_request(&id, "拟任职务调整，撤回本次征求", meta)
                        .await?;
                }
                _ => {}
            }
        }
    }
    Ok((requests, replies))
}

fn name_signer(rng: &mut Rng) -> String {
    name(rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identifiers_are_valid_and_reproducible() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let mut used = HashSet::new();
        for _ in 0..200 {
            let n = id_number(&mut a, "360821", true, &mut used);
            assert!(ids::is_valid_id_number(&n), "{n}");
            assert_eq!((n.as_bytes()[16] - b'0') % 2, 1, "male sequence is odd");
            let c = credit_code(&mut a, "360821");
            assert!(ids::is_valid_credit_code(&c), "{c}");
        }
        let mut used = HashSet::new();
        let mut again = Vec::new();
        for _ in 0..200 {
            again.push(id_number(&mut b, "360821", true, &mut used));
            credit_code(&mut b, "360821");
        }
        let mut a = Rng::new(7);
        let mut used = HashSet::new();
        let first: Vec<String> = (0..200)
            .map(|_| {
                let n = id_number(&mut a, "360821", true, &mut used);
                credit_code(&mut a, "360821");
                n
            })
            .collect();
        assert_eq!(first, again);
    }
}
