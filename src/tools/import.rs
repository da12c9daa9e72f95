//! `cadrex import`: bulk-loads cadres or records from CSV or NDJSON through the batch RPCs, reporting rejected rows.
//!
//! Rows travel in batches of up to 1000. Each batch carries a request id derived
//! from its content, so a batch retried after a lost response replays the
//! server's first answer; a whole re-run relies on the server's idempotency by
//! (source record id, source version) and stores nothing twice.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use prost::Message;
use ring::hmac;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::domain::agency::Agency;
use crate::domain::records::Kind;
use crate::proto;
use crate::proto::cadre_service_client::CadreServiceClient;
use crate::proto::record_service_client::RecordServiceClient;
use crate::proto::system_service_client::SystemServiceClient;
use crate::tools::connect::{self, ConnectArgs, Patience, code_name, error_reason};

/// Most items the batch RPCs take in one call.
pub const MAX_BATCH: usize = 1000;
/// Items per call unless told otherwise: well under the server's message limit
/// for every kind, and large enough that per-call overhead does not dominate.
pub const DEFAULT_BATCH: usize = 500;
/// Header of the rejected-rows report.
pub const REPORT_HEADER: [&str; 6] = [
    "line",
    "source_record_id",
    "code",
    "reason",
    "message",
    "fields",
];

/// Tries per batch for transient failures; with the backoff below the last try
/// starts about 15 s after the first, enough to ride out a server restart.
const MAX_TRIES: u32 = 6;
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Longer than the server's own per-call timeout (30 s by default), so that a
/// slow batch ends with the server's DEADLINE_EXCEEDED rather than ours.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Reason for local rejections: the row never reached the server.
const REASON_INVALID_ROW: &str = "INVALID_ROW";

/// What a file holds: cadres for the registry, or records of one kind. Picks
/// the columns, the RPC and the agencies that may send it.
///
/// The record kinds are [`Kind::ALL`], so a kind added in `domain` can be
/// imported once its columns and payload are written (both `match` on
/// [`Kind`] and fail to compile until then).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImportKind {
    Cadre,
    Record(Kind),
}

/// Shorthands for `ImportKind::Record(Kind::…)`, named as the variants were
/// before the kinds came from [`Kind::ALL`]; a kind without one is importable
/// all the same.
#[allow(non_upper_case_globals)]
impl ImportKind {
    pub const Sanction: ImportKind = ImportKind::Record(Kind::Sanction);
    pub const Admonishment: ImportKind = ImportKind::Record(Kind::Admonishment);
    pub const Clue: ImportKind = ImportKind::Record(Kind::Clue);
    pub const OrgHandling: ImportKind = ImportKind::Record(Kind::OrgHandling);
    pub const PersonalMattersCheck: ImportKind = ImportKind::Record(Kind::PersonalMattersCheck);
    pub const Evaluation: ImportKind = ImportKind::Record(Kind::Evaluation);
    pub const AuditEngagement: ImportKind = ImportKind::Record(Kind::AuditEngagement);
    pub const AuditFinding: ImportKind = ImportKind::Record(Kind::AuditFinding);
    pub const Petition: ImportKind = ImportKind::Record(Kind::Petition);
}

/// Import names of the record kinds, in the order of [`Kind::ALL`].
static RECORD_NAMES: LazyLock<[String; Kind::ALL.len()]> =
    LazyLock::new(|| Kind::ALL.map(|k| k.as_str().to_ascii_lowercase().replace('_', "-")));

/// Only the registrar's systems create cadres.
const CADRE_OWNERS: &[Agency] = &[Agency::REGISTRAR];

impl ImportKind {
    /// Cadres, then every record kind in the order of [`Kind::ALL`].
    pub const ALL: [ImportKind; 1 + Kind::ALL.len()] = {
        let mut all = [ImportKind::Cadre; 1 + Kind::ALL.len()];
        let mut i = 0;
        while i < Kind::ALL.len() {
            all[i + 1] = ImportKind::Record(Kind::ALL[i]);
            i += 1;
        }
        all
    };

    /// The name used on the command line: `cadre`, or the record kind's
    /// stored name in kebab case (`org-handling`). Request ids cover it, so
    /// it must not change for a kind that has shipped.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Cadre => "cadre",
            ImportKind::Record(k) => {
                let i = Kind::ALL
                    .iter()
                    .position(|x| *x == k)
                    .expect("Kind::ALL holds every kind");
                &RECORD_NAMES[i]
            }
        }
    }

    /// The record kind, or `None` for cadres (which go to the registry).
    pub fn record_kind(self) -> Option<Kind> {
        match self {
            ImportKind::Cadre => None,
            ImportKind::Record(k) => Some(k),
        }
    }

    /// Agencies whose systems are the authoritative source of this kind
    /// ([`Kind::owners`], [`Agency::REGISTRAR`] for cadres). Checked once
    /// before the first batch, so that a wrong certificate fails the import
    /// instead of rejecting every row.
    pub fn owners(self) -> &'static [Agency] {
        match self {
            ImportKind::Cadre => CADRE_OWNERS,
            ImportKind::Record(k) => k.owners(),
        }
    }

    /// Every column this kind reads, with whether a CSV header must have it.
    pub fn columns(self) -> Vec<(&'static str, bool)> {
        let (common, specific): (&[(&str, bool)], _) = match self {
            ImportKind::Cadre => (&[], CADRE_COLUMNS),
            // The cadre column pair is checked separately: either one will do.
            ImportKind::Record(k) => (RECORD_COLUMNS, record_columns(k)),
        };
        common.iter().chain(specific).copied().collect()
    }
}

const CADRE_COLUMNS: &[(&str, bool)] = &[
    ("display_name", true),
    ("gender", true),
    ("id_number", true),
    ("birth_date", false),
    ("managing_division", true),
    ("unit_name", false),
    ("unit_credit_code", false),
    ("title", false),
    ("rank", false),
    ("unit_head", false),
    ("start_date", false),
    ("end_date", false),
];

/// Columns every record kind reads, before its own.
const RECORD_COLUMNS: &[(&str, bool)] = &[
    ("cadre_id_number", false),
    ("cadre", false),
    ("source_record_id", true),
    ("source_version", false),
    ("classification", true),
];

/// The payload columns of each record kind, as `record_from` reads them.
fn record_columns(kind: Kind) -> &'static [(&'static str, bool)] {
    match kind {
        Kind::Sanction => &[
            ("track", true),
            ("party_type", false),
            ("state_type", false),
            ("probation_years", false),
            ("decision_number", false),
            ("decision_date", true),
            ("effective_date", true),
            ("form_of_discipline", true),
        ],
        Kind::Admonishment => &[("type", true), ("date", true), ("issuer", false)],
        Kind::Clue => &[
            ("source", true),
            ("source_record", false),
            ("disposal", true),
            ("status", true),
            ("conclusion", false),
            ("received_date", true),
            ("reply_due_date", false),
        ],
        Kind::OrgHandling => &[("type", true), ("date", true)],
        Kind::PersonalMattersCheck => &[
            ("report_year", true),
            ("result", true),
            ("check_date", true),
            ("handling", false),
        ],
        Kind::Evaluation => &[("year", true), ("kind", true), ("grade", true)],
        Kind::AuditEngagement => &[
            ("type", true),
            ("period_start", true),
            ("period_end", true),
            ("report_number", false),
            ("audited_post", false),
            ("report_date", true),
        ],
        Kind::AuditFinding => &[
            ("engagement_source_record_id", true),
            ("problem_type", true),
            ("amount_fen", false),
            ("characterisation", false),
            ("responsibility", true),
            ("transfer", true),
            ("rectification_deadline", false),
            ("rectification_status", false),
            ("rectification_report_ref", false),
            ("finding_date", true),
        ],
        Kind::Petition => &[
            ("received_date", true),
            ("channel", true),
            ("anonymous", false),
            ("category", true),
            ("specific", false),
            ("status", true),
            ("forwarded_to", false),
            ("summary", false),
            ("informant_name", false),
            ("informant_unit", false),
            ("informant_contact", false),
            ("informant_address", false),
        ],
    }
}

/// By hand rather than derived, so that the names come from [`Kind::ALL`].
impl clap::ValueEnum for ImportKind {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl fmt::Display for ImportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImportKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        ImportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .with_context(|| {
                let names: Vec<_> = ImportKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown kind {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// `cadrex import`: bulk-imports cadres or records from a CSV or NDJSON file
/// (see README "Bulk import").
#[derive(clap::Args, Debug)]
pub struct ImportCommand {
    /// What the file holds.
    #[arg(long, value_enum)]
    kind: ImportKind,
    /// Input: F.csv (header row) or F.ndjson (one JSON object per line).
    #[arg(long)]
    file: PathBuf,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Rows per call (at most 1000).
    #[arg(long, default_value_t = DEFAULT_BATCH,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    batch: usize,
    /// Rejected rows [default: F.rejected.csv beside the input].
    #[arg(long)]
    report: Option<PathBuf>,
    /// Check every row on the server (every rule, the cadre, the engagement,
    /// the permissions) and store nothing; the report lists what would be
    /// rejected.
    #[arg(long)]
    dry_run: bool,
    /// Also write a CSV mapping each accepted, unchanged or stale row
    /// (line, source record id or id number) to the resource name and revision
    /// it became in the exchange.
    #[arg(long)]
    accepted_report: Option<PathBuf>,
}

impl ImportCommand {
    /// Exit 0 when every row was accepted or unchanged, 2 when some were
    /// rejected (distinct from 1, the import failed, so scripts can tell them apart).
    pub async fn run(self) -> anyhow::Result<std::process::ExitCode> {
        let report = self.report.unwrap_or_else(|| default_report(&self.file));
        let ConnectArgs {
            server,
            ca,
            cert,
            key,
            server_name,
        } = self.connect;
        let args = ImportArgs {
            kind: self.kind,
            ca: ca.unwrap_or_else(|| default_ca(&cert)),
            file: self.file,
            cert,
            key,
            server,
            server_name,
            batch_size: self.batch,
            report: Some(report.clone()),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            dry_run: self.dry_run,
            accepted_report: self.accepted_report,
        };
        let summary = run(args).await?;
        if self.dry_run {
            println!("dry run, nothing stored; accepted means would be accepted");
        }
        println!("{summary}");
        if summary.rejected > 0 {
            println!("rejected rows: {}", report.display());
            return Ok(std::process::ExitCode::from(2));
        }
        Ok(std::process::ExitCode::SUCCESS)
    }
}

/// What to import, from where, as whom.
#[derive(Clone, Debug)]
pub struct ImportArgs {
    pub kind: ImportKind,
    /// `.csv` or `.ndjson` (also `.jsonl`).
    pub file: PathBuf,
    /// Client certificate and key of the submitting system (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificate the server's certificate must chain to.
    pub ca: PathBuf,
    /// `https://host:port`.
    pub server: String,
    /// Name the server certificate must carry.
    pub server_name: String,
    /// Items per call, 1..=1000.
    pub batch_size: usize,
    /// Where rejected rows go (CSV, written only when a row is rejected);
    /// `None` keeps only the counts.
    pub report: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Validate on the server (AIP-163 `validate_only`) and store nothing.
    pub dry_run: bool,
    /// Where to map each row the exchange holds to its resource name and
    /// revision (CSV); `None` for no such file.
    pub accepted_report: Option<PathBuf>,
}

impl ImportArgs {
    /// Where and as whom the import connects.
    pub fn connection(&self) -> ConnectArgs {
        ConnectArgs {
            server: self.server.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: Some(self.ca.clone()),
            server_name: self.server_name.clone(),
        }
    }

    /// Arguments with every default: CA beside the certificate's directory,
    /// local server, batches of 500, no report, no progress bar.
    pub fn new(kind: ImportKind, file: PathBuf, cert: PathBuf, key: PathBuf) -> Self {
        let ca = default_ca(&cert);
        Self {
            kind,
            file,
            cert,
            key,
            ca,
            server: connect::default_server(),
            server_name: connect::DEFAULT_SERVER_NAME.into(),
            batch_size: DEFAULT_BATCH,
            report: None,
            progress: false,
            dry_run: false,
            accepted_report: None,
        }
    }
}

pub use crate::tools::connect::default_ca;

/// `F.rejected.csv` beside `F.csv` or `F.ndjson`.
pub fn default_report(file: &Path) -> PathBuf {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    file.with_file_name(format!("{stem}.rejected.csv"))
}

/// Counts of one import. `rows == accepted + unchanged + stale + rejected`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Data rows read (blank rows are skipped and not counted).
    pub rows: u64,
    /// Rows this run stored: a new cadre or record, or a new version of a record.
    pub accepted: u64,
    /// Rows the server already held with the same content (a re-run).
    pub unchanged: u64,
    /// Records older than the version the server holds; nothing changed.
    pub stale: u64,
    /// Rows refused, locally or by the server; each is in the report.
    pub rejected: u64,
    pub elapsed: Duration,
}

impl ImportSummary {
    pub fn rows_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rows as f64 / secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows: {} accepted, {} unchanged, {} stale, {} rejected in {:.1} s ({:.0} rows/s)",
            self.rows,
            self.accepted,
            self.unchanged,
            self.stale,
            self.rejected,
            self.elapsed.as_secs_f64(),
            self.rows_per_sec()
        )
    }
}

/// Imports `args.file`; returns the counts once every row has an outcome.
///
/// Fails as a whole (after reporting the rows decided so far) when the server
/// refuses the caller, when a batch still fails after the retries, or on I/O
/// errors. Rejected rows do not fail the import; they are counted and reported.
pub async fn run(args: ImportArgs) -> anyhow::Result<ImportSummary> {
    let started = Instant::now();
    // Stored rows stamped before this instant were there before the run.
    let run_start = SystemTime::now();
    if !(1..=MAX_BATCH).contains(&args.batch_size) {
        bail!("--batch must be between 1 and {MAX_BATCH}");
    }
    let format = Format::of(&args.file)?;
    let mut reader = RowReader::open(&args.file, format)?;
    if let Some(headers) = reader.headers() {
        check_headers(args.kind, headers, &args.file)?;
    }
    let bar = progress_bar(&args, format)?;

    connect::install_crypto_provider();
    let channel = connect(&args).await?;
    let key_pem = std::fs::read(&args.key)
        .map_err(|e| anyhow::anyhow!("cannot read the client key {}: {e}", args.key.display()))?;
    let mut sender = Sender::new(
        args.kind,
        channel,
        run_start,
        bar.clone(),
        args.cert.clone(),
        request_id_key(&key_pem),
    );
    sender.preflight(&args).await?;
    sender.dry_run = args.dry_run;

    let mut report = Report::new(args.report.as_deref())?;
    let mut accepted = AcceptedReport::create(args.accepted_report.as_deref())?;
    let mut summary = ImportSummary::default();
    let mut batch: Vec<Pending> = Vec::with_capacity(args.batch_size);
    // Rejections since the last batch went out, local ones included.
    let mut rejected: Vec<Rejection> = Vec::new();
    let known = args.kind.columns();
    let mut unknown_keys = BTreeSet::new();
    loop {
        let next = reader.next_row()?;
        let at_end = next.is_none();
        if let Some(read) = next {
            summary.rows += 1;
            let parsed = read.and_then(|row| {
                if format == Format::Ndjson {
                    note_unknown_keys(args.kind, &known, &row, &mut unknown_keys, &bar);
                }
                parse_row(args.kind, &row)
            });
            match parsed {
                Ok(p) => batch.push(p),
                Err(rejection) => {
                    summary.rejected += 1;
                    rejected.push(rejection);
                    bar.inc(1);
                }
            }
        }
        if batch.len() == args.batch_size || (at_end && !batch.is_empty()) {
            let outcomes = match sender.submit(&batch).await {
                Ok(o) => o,
                Err(e) => {
                    report.write_all(&mut rejected)?;
                    return Err(e.context(format!(
                        "import stopped at lines {}..={} of {} ({} rows decided before; \
                         re-running the same command is safe: nothing is stored twice)",
                        batch[0].line,
                        batch[batch.len() - 1].line,
                        args.file.display(),
                        summary.accepted + summary.unchanged + summary.stale + summary.rejected
                    )));
                }
            };
            for (p, outcome) in batch.iter().zip(outcomes) {
                match outcome {
                    Outcome::Accepted(s) => {
                        summary.accepted += 1;
                        accepted.write(p, "ACCEPTED", &s)?;
                    }
                    Outcome::Unchanged(s) => {
                        summary.unchanged += 1;
                        accepted.write(p, "UNCHANGED", &s)?;
                    }
                    Outcome::Stale(s) => {
                        summary.stale += 1;
                        accepted.write(p, "STALE", &s)?;
                    }
                    Outcome::Rejected(e) => {
                        summary.rejected += 1;
                        rejected.push(Rejection::from_item(p, e));
                    }
                }
            }
            bar.inc(batch.len() as u64);
            bar.set_message(format!("{} rejected", summary.rejected));
            accepted.flush()?;
            batch.clear();
        }
        if !batch.is_empty() && !at_end {
            continue;
        }
        // Written per batch, so an interrupted run still leaves a report of
        // everything decided.
        report.write_all(&mut rejected)?;
        if at_end {
            break;
        }
    }
    bar.finish_and_clear();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

// ---------------------------------------------------------------------------
// Reading rows

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Csv,
    Ndjson,
}

impl Format {
    fn of(path: &Path) -> anyhow::Result<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            _ => bail!(
                "{}: cannot tell the format; name the file .csv or .ndjson",
                path.display()
            ),
        }
    }
}

/// One data row: its line in the file and its values by column name.
struct Row {
    line: u64,
    values: HashMap<String, String>,
}

impl Row {
    fn get(&self, column: &str) -> &str {
        self.values.get(column).map(|v| v.trim()).unwrap_or("")
    }
}

enum RowReader {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        headers: Vec<String>,
        record: csv::StringRecord,
    },
    Ndjson {
        lines: std::io::Lines<BufReader<File>>,
        line: u64,
    },
}

impl RowReader {
    fn open(path: &Path, format: Format) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let buf = BufReader::with_capacity(1 << 16, file);
        Ok(match format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(buf);
                let headers = reader
                    .headers()
                    .with_context(|| format!("{}: cannot read the header row", path.display()))?
                    .iter()
                    // Spreadsheet exports often start with a byte-order mark.
                    .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
                    .collect();
                RowReader::Csv {
                    reader,
                    headers,
                    record: csv::StringRecord::new(),
                }
            }
            Format::Ndjson => RowReader::Ndjson {
                lines: buf.lines(),
                line: 0,
            },
        })
    }

    fn headers(&self) -> Option<&[String]> {
        match self {
            RowReader::Csv { headers, .. } => Some(headers),
            RowReader::Ndjson { .. } => None,
        }
    }

    /// The next row, a row that could not be read (reported, not fatal), or
    /// `None` at the end. Blank rows are skipped.
    fn next_row(&mut self) -> anyhow::Result<Option<Result<Row, Rejection>>> {
        match self {
            RowReader::Csv {
                reader,
                headers,
                record,
            } => loop {
                match reader.read_record(record) {
                    Ok(false) => return Ok(None),
                    Ok(true) => {
                        if record.iter().all(|v| v.trim().is_empty()) {
                            continue;
                        }
                        let line = record.position().map_or(0, |p| p.line());
                        let values = headers
                            .iter()
                            .cloned()
                            .zip(record.iter().map(str::to_string))
                            .collect();
                        return Ok(Some(Ok(Row { line, values })));
                    }
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        let message = match e.kind() {
                            csv::ErrorKind::Utf8 { .. } => {
                                "row is not UTF-8 text; save the file as UTF-8 CSV".to_string()
                            }
                            csv::ErrorKind::UnequalLengths {
                                expected_len, len, ..
                            } => format!("row has {len} fields, the header has {expected_len}"),
                            _ => return Err(anyhow::Error::new(e).context("reading CSV")),
                        };
                        return Ok(Some(Err(Rejection::local(line, "", message, Vec::new()))));
                    }
                }
            },
            RowReader::Ndjson { lines, line } => loop {
                let Some(text) = lines.next() else {
                    return Ok(None);
                };
                *line += 1;
                let text = match text {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        return Ok(Some(Err(Rejection::local(
                            *line,
                            "",
                            "line is not UTF-8 text".into(),
                            Vec::new(),
                        ))));
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context("reading NDJSON")),
                };
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                return Ok(Some(ndjson_row(*line, text)));
            },
        }
    }
}

/// A flat JSON object as a row: strings as written, numbers and booleans in
/// their JSON spelling, null as empty.
fn ndjson_row(line: u64, text: &str) -> Result<Row, Rejection> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Rejection::local(line, "", format!("not a JSON object: {e}"), Vec::new()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(Rejection::local(
            line,
            "",
            "each line must be one JSON object".into(),
            Vec::new(),
        ));
    };
    let mut values = HashMap::with_capacity(map.len());
    let mut nested = Vec::new();
    for (k, v) in map {
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                nested.push((
                    k,
                    "nested values are not supported; use flat columns".into(),
                ));
                continue;
            }
        };
        values.insert(k, s);
    }
    let row = Row { line, values };
    if !nested.is_empty() {
        let id = row.get("source_record_id").to_string();
        return Err(Rejection::local(
            line,
            &id,
            "row has nested values".into(),
            nested,
        ));
    }
    Ok(row)
}

/// Refuses a CSV whose header lacks a required column (every row would fail),
/// and warns about columns it would ignore (most likely misspelt).
fn check_headers(kind: ImportKind, headers: &[String], file: &Path) -> anyhow::Result<()> {
    let columns = kind.columns();
    let has = |c: &str| headers.iter().any(|h| h == c);
    let mut missing: Vec<&str> = columns
        .iter()
        .filter(|(c, required)| *required && !has(c))
        .map(|(c, _)| *c)
        .collect();
    if kind != ImportKind::Cadre && !has("cadre_id_number") && !has("cadre") {
        missing.push("cadre_id_number (or cadre)");
    }
    let unknown: Vec<&str> = headers
        .iter()
        .filter(|h| !columns.iter().any(|(c, _)| c == h))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let misspelt = if unknown.is_empty() {
            String::new()
        } else {
            format!("; columns it does not read: {}", unknown.join(","))
        };
        bail!(
            "{}: no column {} (needed for --kind {kind}){misspelt}",
            file.display(),
            missing.join(", "),
        );
    }
    if !unknown.is_empty() {
        tracing::warn!(
            file = %file.display(),
            columns = %unknown.join(","),
            "ignoring columns that --kind {kind} does not read"
        );
    }
    Ok(())
}

/// Warns once per NDJSON key that the kind does not read (most likely misspelt).
fn note_unknown_keys(
    kind: ImportKind,
    known: &[(&str, bool)],
    row: &Row,
    seen: &mut BTreeSet<String>,
    bar: &indicatif::ProgressBar,
) {
    for key in row.values.keys() {
        if !known.iter().any(|(c, _)| c == key) && seen.insert(key.clone()) {
            bar.suspend(|| {
                tracing::warn!(line = row.line, key = %key, "ignoring a key that --kind {kind} does not read");
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Rows to messages

/// A row ready to send.
struct Pending {
    line: u64,
    /// Source record id, or the id number for cadres: what the report names.
    id: String,
    item: Item,
}

enum Item {
    Record(Box<proto::Record>),
    Cadre(Box<proto::Cadre>),
}

/// Reads typed values out of a row, collecting every bad column.
struct Cols<'a> {
    row: &'a Row,
    bad: Vec<(String, String)>,
}

impl Cols<'_> {
    fn text(&self, column: &str) -> String {
        self.row.get(column).to_string()
    }

    fn int<T: FromStr + Copy>(&mut self, column: &str, empty: T) -> T {
        let v = self.row.get(column);
        if v.is_empty() {
            return empty;
        }
        match v.parse() {
            Ok(n) => n,
            Err(_) => {
                self.bad
                    .push((column.into(), format!("{v:?} is not a whole number")));
                empty
            }
        }
    }

    fn flag(&mut self, column: &str) -> bool {
        match self.row.get(column).to_ascii_lowercase().as_str() {
            "" | "false" | "0" | "no" | "n" | "否" => false,
            "true" | "1" | "yes" | "y" | "是" => true,
            v => {
                self.bad
                    .push((column.into(), format!("{v:?} is not true or false")));
                false
            }
        }
    }

    /// An enum column written as the value's suffix (`PARTY`) or in full
    /// (`SANCTION_TRACK_PARTY`); empty is the zero value, which the server
    /// refuses where the field is required.
    fn enumeration(
        &mut self,
        column: &str,
        prefix: &str,
        parse: impl Fn(&str) -> Option<i32>,
        name: impl Fn(i32) -> Option<&'static str>,
    ) -> i32 {
        let v = self.row.get(column);
        if v.is_empty() {
            return 0;
        }
        let upper = v.to_ascii_uppercase().replace(['-', ' '], "_");
        let full = if upper.starts_with(prefix) {
            upper
        } else {
            format!("{prefix}{upper}")
        };
        if let Some(n) = parse(&full) {
            return n;
        }
        let allowed: Vec<&str> = (1..64)
            .filter_map(&name)
            .map(|n| n.strip_prefix(prefix).unwrap_or(n))
            .collect();
        self.bad.push((
            column.into(),
            format!(
                "unknown value {v:?}; expected one of {}",
                allowed.join(", ")
            ),
        ));
        0
    }
}

macro_rules! enum_col {
    ($cols:expr, $column:literal, $ty:ident, $prefix:literal) => {
        $cols.enumeration(
            $column,
            $prefix,
            |s| proto::$ty::from_str_name(s).map(|e| e as i32),
            |n| proto::$ty::try_from(n).ok().map(|e| e.as_str_name()),
        )
    };
}

/// 公民身份号码 as the registry stores them: trimmed, check character `X` upper case.
fn id_number(s: &str) -> String {
    crate::domain::ids::canonical_id_number(s.trim())
}

fn parse_row(kind: ImportKind, row: &Row) -> Result<Pending, Rejection> {
    let mut c = Cols {
        row,
        bad: Vec::new(),
    };
    let (id, item) = match kind {
        ImportKind::Cadre => {
            let cadre = cadre_from(&mut c);
            (cadre.id_number.clone(), Item::Cadre(Box::new(cadre)))
        }
        ImportKind::Record(record_kind) => {
            let record = record_from(record_kind, &mut c);
            (
                record.source_record_id.clone(),
                Item::Record(Box::new(record)),
            )
        }
    };
    if c.bad.is_empty() {
        Ok(Pending {
            line: row.line,
            id,
            item,
        })
    } else {
        Err(Rejection::local(
            row.line,
            &id,
            "row not sent: some columns could not be read".into(),
            c.bad,
        ))
    }
}

fn cadre_from(c: &mut Cols) -> proto::Cadre {
    let post_columns = [
        "unit_name",
        "unit_credit_code",
        "title",
        "rank",
        "unit_head",
        "start_date",
        "end_date",
    ];
    let has_post = post_columns.iter().any(|col| !c.row.get(col).is_empty());
    let posts = if has_post {
        vec![proto::Post {
            unit_name: c.text("unit_name"),
            unit_credit_code: c.text("unit_credit_code").to_ascii_uppercase(),
            title: c.text("title"),
            rank: c.text("rank"),
            unit_head: c.flag("unit_head"),
            start_date: c.text("start_date"),
            end_date: c.text("end_date"),
        }]
    } else {
        Vec::new()
    };
    proto::Cadre {
        display_name: c.text("display_name"),
        gender: enum_col!(c, "gender", Gender, "GENDER_"),
        id_number: id_number(c.row.get("id_number")),
        birth_date: c.text("birth_date"),
        managing_division: c.text("managing_division"),
        posts,
        ..Default::default()
    }
}

fn record_from(kind: Kind, c: &mut Cols) -> proto::Record {
    use proto::record::Payload;
    let payload = match kind {
        Kind::Sanction => Payload::Sanction(proto::Sanction {
            track: enum_col!(c, "track", SanctionTrack, "SANCTION_TRACK_"),
            party_type: enum_col!(c, "party_type", PartySanctionType, "PARTY_SANCTION_TYPE_"),
            state_type: enum_col!(c, "state_type", StateSanctionType, "STATE_SANCTION_TYPE_"),
            probation_years: c.int("probation_years", 0),
            decision_number: c.text("decision_number"),
            decision_date: c.text("decision_date"),
            effective_date: c.text("effective_date"),
            form_of_discipline: c.int("form_of_discipline", 0),
        }),
        Kind::Admonishment => Payload::Admonishment(proto::Admonishment {
            r#type: enum_col!(c, "type", AdmonishmentType, "ADMONISHMENT_TYPE_"),
            date: c.text("date"),
            issuer: c.text("issuer"),
        }),
        Kind::Clue => Payload::Clue(proto::Clue {
            source: enum_col!(c, "source", ClueSource, "CLUE_SOURCE_"),
            source_record: c.text("source_record"),
            disposal: enum_col!(c, "disposal", ClueDisposal, "CLUE_DISPOSAL_"),
            status: enum_col!(c, "status", ClueStatus, "CLUE_STATUS_"),
            conclusion: c.text("conclusion"),
            received_date: c.text("received_date"),
            reply_due_date: c.text("reply_due_date"),
        }),
        Kind::OrgHandling => Payload::OrgHandling(proto::OrgHandling {
            r#type: enum_col!(c, "type", OrgHandlingType, "ORG_HANDLING_TYPE_"),
            date: c.text("date"),
        }),
        Kind::PersonalMattersCheck => Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
            report_year: c.int("report_year", 0),
            result: enum_col!(
                c,
                "result",
                PersonalMattersResult,
                "PERSONAL_MATTERS_RESULT_"
            ),
            check_date: c.text("check_date"),
            handling: c.text("handling"),
        }),
        Kind::Evaluation => Payload::Evaluation(proto::Evaluation {
            year: c.int("year", 0),
            kind: enum_col!(c, "kind", EvaluationKind, "EVALUATION_KIND_"),
            grade: enum_col!(c, "grade", EvaluationGrade, "EVALUATION_GRADE_"),
        }),
        Kind::AuditEngagement => Payload::AuditEngagement(proto::AuditEngagement {
            r#type: enum_col!(c, "type", AuditEngagementType, "AUDIT_ENGAGEMENT_TYPE_"),
            period_start: c.text("period_start"),
            period_end: c.text("period_end"),
            report_number: c.text("report_number"),
            audited_post: c.text("audited_post"),
            report_date: c.text("report_date"),
        }),
        Kind::AuditFinding => Payload::AuditFinding(proto::AuditFinding {
            engagement_source_record_id: c.text("engagement_source_record_id"),
            problem_type: enum_col!(c, "problem_type", ProblemType, "PROBLEM_TYPE_"),
            amount_fen: c.int("amount_fen", 0),
            characterisation: c.text("characterisation"),
            responsibility: enum_col!(c, "responsibility", Responsibility, "RESPONSIBILITY_"),
            transfer: enum_col!(c, "transfer", Transfer, "TRANSFER_"),
            rectification: Some(proto::Rectification {
                deadline: c.text("rectification_deadline"),
                status: enum_col!(
                    c,
                    "rectification_status",
                    RectificationStatus,
                    "RECTIFICATION_STATUS_"
                ),
                report_ref: c.text("rectification_report_ref"),
            }),
            finding_date: c.text("finding_date"),
            engagement: String::new(),
        }),
        Kind::Petition => {
            let informant = proto::Informant {
                name: c.text("informant_name"),
                unit: c.text("informant_unit"),
                contact: c.text("informant_contact"),
                address: c.text("informant_address"),
            };
            // An absent block, not an empty one, so that an anonymous petition
            // is not refused for carrying informant fields.
            let informant = (informant != proto::Informant::default()).then_some(informant);
            Payload::Petition(proto::Petition {
                received_date: c.text("received_date"),
                channel: enum_col!(c, "channel", PetitionChannel, "PETITION_CHANNEL_"),
                anonymous: c.flag("anonymous"),
                category: enum_col!(c, "category", PetitionCategory, "PETITION_CATEGORY_"),
                specific: c.flag("specific"),
                status: enum_col!(c, "status", PetitionStatus, "PETITION_STATUS_"),
                forwarded_to: c.text("forwarded_to"),
                summary: c.text("summary"),
                informant,
            })
        }
    };
    let cadre = match c.row.get("cadre") {
        "" => String::new(),
        v if v.starts_with("cadres/") => v.to_string(),
        v => format!("cadres/{v}"),
    };
    proto::Record {
        cadre,
        cadre_id_number: id_number(c.row.get("cadre_id_number")),
        kind: kind.to_proto() as i32,
        source_record_id: c.text("source_record_id"),
        // A source record's first version is 1; most first loads leave it out.
        source_version: c.int("source_version", 1),
        classification: enum_col!(c, "classification", Classification, "CLASSIFICATION_"),
        payload: Some(payload),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// The report

/// One rejected row as the report writes it.
struct Rejection {
    line: u64,
    id: String,
    code: i32,
    reason: String,
    message: String,
    fields: Vec<(String, String)>,
}

impl Rejection {
    fn local(line: u64, id: &str, message: String, fields: Vec<(String, String)>) -> Self {
        Self {
            line,
            id: id.to_string(),
            code: Code::InvalidArgument as i32,
            reason: REASON_INVALID_ROW.into(),
            message,
            fields,
        }
    }

    fn from_item(p: &Pending, e: proto::ItemError) -> Self {
        Self {
            line: p.line,
            id: p.id.clone(),
            code: e.code,
            reason: e.reason,
            message: e.message,
            fields: e
                .field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect(),
        }
    }
}

/// `--accepted-report`: a CSV mapping every row the exchange holds after
/// this run to what it became — `line,id,outcome,name,revision`, with
/// outcome ACCEPTED (stored by this run), UNCHANGED (already held, the same
/// content) or STALE (an older version than the one held). Written per
/// batch, so an interrupted run leaves the rows decided so far.
struct AcceptedReport(Option<csv::Writer<File>>);

impl AcceptedReport {
    fn create(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self(None));
        };
        let mut w = csv::Writer::from_path(path)
            .with_context(|| format!("cannot write the accepted report {}", path.display()))?;
        w.write_record(["line", "id", "outcome", "name", "revision"])?;
        Ok(Self(Some(w)))
    }

    fn write(&mut self, p: &Pending, outcome: &str, s: &Stored) -> anyhow::Result<()> {
        if let Some(w) = &mut self.0 {
            let revision = s.revision.map(|r| r.to_string()).unwrap_or_default();
            w.write_record([
                p.line.to_string().as_str(),
                &p.id,
                outcome,
                &s.name,
                &revision,
            ])?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(w) = &mut self.0 {
            w.flush()?;
        }
        Ok(())
    }
}

/// The rejected-rows CSV, created with the first rejection so that a clean
/// import leaves no file behind. A report left by an earlier run is removed at
/// the start, so whatever is at the path describes the latest run.
struct Report {
    path: Option<PathBuf>,
    writer: Option<csv::Writer<File>>,
}

impl Report {
    fn new(path: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(p) = path {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot replace the report {}", p.display())));
                }
            }
        }
        Ok(Self {
            path: path.map(Path::to_path_buf),
            writer: None,
        })
    }

    fn write(&mut self, r: &Rejection) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let w = match &mut self.writer {
            Some(w) => w,
            None => {
                let mut w = csv::Writer::from_path(path)
                    .with_context(|| format!("cannot write the report {}", path.display()))?;
                w.write_record(REPORT_HEADER)?;
                self.writer.insert(w)
            }
        };
        let fields = r
            .fields
            .iter()
            .map(|(path, description)| format!("{path}: {description}"))
            .collect::<Vec<_>>()
            .join("; ");
        w.write_record([
            r.line.to_string().as_str(),
            &r.id,
            code_name(r.code),
            &r.reason,
            &r.message,
            &fields,
        ])?;
        Ok(())
    }

    /// Writes and drains `rejected` in file order, then flushes.
    fn write_all(&mut self, rejected: &mut Vec<Rejection>) -> anyhow::Result<()> {
        rejected.sort_by_key(|r| r.line);
        for r in rejected.drain(..) {
            self.write(&r)?;
        }
        if let Some(w) = &mut self.writer {
            w.flush()?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Progress

fn progress_bar(args: &ImportArgs, format: Format) -> anyhow::Result<indicatif::ProgressBar> {
    if !args.progress {
        return Ok(indicatif::ProgressBar::hidden());
    }
    // Lines, not records: exact unless a quoted CSV value spans lines, and
    // good enough for a bar and an ETA.
    let mut lines = count_lines(&args.file)?;
    if format == Format::Csv {
        lines = lines.saturating_sub(1);
    }
    let bar = indicatif::ProgressBar::new(lines);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {wide_bar} {human_pos}/{human_len} rows  {rate}  {elapsed_precise} eta {eta}  {msg}",
    )?
    .with_key(
        "rate",
        |s: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{:.0} rows/s", s.per_sec());
        },
    );
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    Ok(bar)
}

fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

// ---------------------------------------------------------------------------
// Talking to the server

async fn connect(args: &ImportArgs) -> anyhow::Result<Channel> {
    let endpoint = args
        .connection()
        .endpoint()?
        .connect_timeout(Duration::from_secs(10))
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true);
    endpoint.connect().await.with_context(|| {
        format!(
            "cannot connect to {} (is the server running, does its certificate name {:?} \
             and chain to {}?)",
            args.server,
            args.server_name,
            args.ca.display()
        )
    })
}

/// What became of one row on the server.
enum Outcome {
    Accepted(Stored),
    Unchanged(Stored),
    Stale(Stored),
    Rejected(proto::ItemError),
}

/// What a row became in the exchange: the resource name and, for records,
/// the revision the answer carried (both empty in a dry run, which stores
/// nothing).
#[derive(Clone, Debug, Default)]
struct Stored {
    name: String,
    revision: Option<i64>,
}

impl Stored {
    fn of_record(r: Option<&proto::Record>) -> Self {
        r.map(|r| Stored {
            name: r.name.clone(),
            revision: Some(r.revision).filter(|v| *v > 0),
        })
        .unwrap_or_default()
    }

    fn of_cadre(c: Option<&proto::Cadre>) -> Self {
        Stored {
            name: c.map(|c| c.name.clone()).unwrap_or_default(),
            revision: None,
        }
    }
}

/// The answer to one call, or the instruction to split the batch.
enum Sent {
    Done(Vec<Outcome>),
    TooLarge(Status),
}

struct Sender {
    kind: ImportKind,
    records: RecordServiceClient<Channel>,
    cadres: CadreServiceClient<Channel>,
    system: SystemServiceClient<Channel>,
    run_start: SystemTime,
    /// Salts request ids of follow-up calls within this run (see `submit`).
    run_salt: [u8; 16],
    /// Keys the request ids (see [`request_id_key`]).
    id_key: hmac::Key,
    bar: indicatif::ProgressBar,
    /// Named when the server refuses it.
    cert: PathBuf,
    /// Every call asks `validate_only`.
    dry_run: bool,
}

impl Sender {
    fn new(
        kind: ImportKind,
        channel: Channel,
        run_start: SystemTime,
        bar: indicatif::ProgressBar,
        cert: PathBuf,
        id_key: hmac::Key,
    ) -> Self {
        // Responses carry whole records; allow more than tonic's 4 MiB default.
        let limit = 64 << 20;
        let salt_src = format!(
            "{}:{:?}",
            std::process::id(),
            run_start.duration_since(UNIX_EPOCH).unwrap_or_default()
        );
        let mut run_salt = [0u8; 16];
        run_salt.copy_from_slice(&Sha256::digest(salt_src.as_bytes())[..16]);
        Self {
            kind,
            records: RecordServiceClient::new(channel.clone()).max_decoding_message_size(limit),
            cadres: CadreServiceClient::new(channel.clone()).max_decoding_message_size(limit),
            system: SystemServiceClient::new(channel),
            run_start,
            run_salt,
            id_key,
            bar,
            cert,
            dry_run: false,
        }
    }

    /// Confirms the server accepts the certificate and that its agency may
    /// submit this kind, before any row is sent.
    async fn preflight(&mut self, args: &ImportArgs) -> anyhow::Result<()> {
        let me = match self.system.who_am_i(proto::WhoAmIRequest {}).await {
            Ok(r) => r.into_inner(),
            // A refused certificate reads as it does in every client.
            Err(s) => match connect::refused_by_tls(&s, "WhoAmI", &args.connection()).await {
                Some(refused) => return Err(refused),
                None => return Err(fatal_status(&s, "WhoAmI", args)),
            },
        };
        let agency = proto::Agency::try_from(me.agency)
            .ok()
            .and_then(Agency::from_proto);
        let owners = self.kind.owners();
        if !agency.is_some_and(|a| owners.contains(&a)) {
            let names: Vec<_> = owners.iter().map(|a| a.as_str()).collect();
            bail!(
                "{} records are submitted by {} systems; {} is {} (use that agency's certificate)",
                self.kind,
                names.join(" or "),
                me.principal,
                agency.map_or("an unknown agency", Agency::as_str)
            );
        }
        tracing::debug!(principal = %me.principal, "importing as");
        Ok(())
    }

    /// Sends `batch` and returns one outcome per row, in order.
    ///
    /// The first call's request id is the content hash, so a retry of a batch
    /// whose response was lost, in this run or a later one, replays the
    /// server's answer. A replayed answer may be stale, though: a row refused
    /// yesterday because its cadre or engagement was missing would be refused
    /// again from the replay after the cadre was registered. So rows refused
    /// for a reason that depends on other data are sent once more under a
    /// request id salted with this run, and transient item failures are
    /// retried with backoff the same way.
    async fn submit(&mut self, batch: &[Pending]) -> anyhow::Result<Vec<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        let mut round = 0u32;
        loop {
            let items: Vec<&Pending> = todo.iter().map(|&i| &batch[i]).collect();
            let salt = (round > 0).then(|| {
                let mut s = self.run_salt.to_vec();
                s.extend_from_slice(&round.to_be_bytes());
                s
            });
            let results = self.send_split(&items, salt.as_deref()).await?;
            let mut again = Vec::new();
            let mut transient = false;
            for (&i, outcome) in todo.iter().zip(results) {
                match outcome {
                    Outcome::Rejected(e) if is_transient_item(&e) && round + 1 < MAX_TRIES => {
                        transient = true;
                        again.push(i);
                    }
                    Outcome::Rejected(e) if round == 0 && depends_on_other_data(&e) => {
                        again.push(i);
                    }
                    o => outcomes[i] = Some(o),
                }
            }
            if again.is_empty() {
                break;
            }
            round += 1;
            if transient {
                tokio::time::sleep(backoff(round)).await;
            }
            todo = again;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every row has an outcome"))
            .collect())
    }

    /// Sends items, halving a batch the server finds too large.
    async fn send_split(
        &mut self,
        items: &[&Pending],
        salt: Option<&[u8]>,
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut out: Vec<Option<Outcome>> = (0..items.len()).map(|_| None).collect();
        // Ranges still to send, the next one last, so the file order holds.
        let mut ranges = vec![(0, items.len())];
        while let Some((a, b)) = ranges.pop() {
            match self.send_retrying(&items[a..b], salt).await? {
                Sent::Done(results) => {
                    for (slot, r) in out[a..b].iter_mut().zip(results) {
                        *slot = Some(r);
                    }
                }
                Sent::TooLarge(_) if b - a > 1 => {
                    let mid = a + (b - a) / 2;
                    ranges.push((mid, b));
                    ranges.push((a, mid));
                }
                Sent::TooLarge(status) => {
                    out[a] = Some(Outcome::Rejected(proto::ItemError {
                        code: status.code() as i32,
                        reason: error_reason(&status).unwrap_or_default(),
                        message: format!("row alone is too large to send: {}", status.message()),
                        field_violations: Vec::new(),
                    }));
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every item was sent"))
            .collect())
    }

    /// One call with whole-call retries under the same request id.
    async fn send_retrying(
        &mut self,
        items: &[&Pending],
        salt: Option<&[u8]>,
    ) -> anyhow::Result<Sent> {
        let mut request = build_request(self.kind, items, salt, &self.id_key);
        match &mut request {
            BatchRequest::Records(r) => r.validate_only = self.dry_run,
            BatchRequest::Cadres(r) => r.validate_only = self.dry_run,
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let result = match &request {
                BatchRequest::Records(r) => self
                    .records
                    .batch_submit_records(r.clone())
                    .await
                    .map(|resp| self.record_outcomes(items.len(), resp.into_inner())),
                BatchRequest::Cadres(r) => self
                    .cadres
                    .batch_create_cadres(r.clone())
                    .await
                    .map(|resp| self.cadre_outcomes(items.len(), resp.into_inner())),
            };
            let status = match result {
                Ok(outcomes) => return Ok(Sent::Done(outcomes)),
                Err(s) => s,
            };
            match status.code() {
                Code::ResourceExhausted | Code::OutOfRange => return Ok(Sent::TooLarge(status)),
                _ if is_transient(&status) && tries < MAX_TRIES => {
                    let wait = backoff(tries);
                    self.bar.suspend(|| {
                        tracing::warn!(
                            code = code_name(status.code() as i32),
                            message = status.message(),
                            first_line = items[0].line,
                            "batch failed; retrying in {wait:?} (try {} of {MAX_TRIES})",
                            tries + 1
                        )
                    });
                    tokio::time::sleep(wait).await;
                }
                Code::Unauthenticated | Code::PermissionDenied => {
                    bail!(connect::refusal(&status, self.method(), &self.cert).unwrap_or_default());
                }
                _ => bail!(
                    "{} failed{}: {} {}{}",
                    self.method(),
                    if tries > 1 {
                        format!(" after {tries} tries")
                    } else {
                        String::new()
                    },
                    code_name(status.code() as i32),
                    status.message(),
                    error_reason(&status)
                        .map(|r| format!(" (reason {r})"))
                        .unwrap_or_default()
                ),
            }
        }
    }

    fn method(&self) -> &'static str {
        if self.kind == ImportKind::Cadre {
            "CadreService.BatchCreateCadres"
        } else {
            "RecordService.BatchSubmitRecords"
        }
    }

    fn existed_before(&self, t: Option<&prost_types::Timestamp>) -> bool {
        t.and_then(|t| {
            let secs = u64::try_from(t.seconds).ok()?;
            let nanos = u32::try_from(t.nanos).ok()?;
            Some(UNIX_EPOCH + Duration::new(secs, nanos) < self.run_start)
        })
        .unwrap_or(false)
    }

    fn record_outcomes(&self, n: usize, resp: proto::BatchSubmitRecordsResponse) -> Vec<Outcome> {
        let mut by_index: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        for r in resp.results {
            let Some(slot) = usize::try_from(r.index)
                .ok()
                .and_then(|i| by_index.get_mut(i))
            else {
                continue;
            };
            let stored_as = Stored::of_record(r.record.as_ref());
            *slot = Some(match (r.error, r.stale) {
                (Some(e), _) => Outcome::Rejected(e),
                (None, true) => Outcome::Stale(stored_as),
                // The server returns the stored record for a repeat of the
                // same version and content; its write time tells a re-run
                // from a fresh write.
                (None, false) => {
                    let stored = r.record.as_ref().and_then(|rec| rec.update_time.as_ref());
                    if self.existed_before(stored) {
                        Outcome::Unchanged(stored_as)
                    } else {
                        Outcome::Accepted(stored_as)
                    }
                }
            });
        }
        fill_missing(by_index)
    }

    fn cadre_outcomes(&self, n: usize, resp: proto::BatchCreateCadresResponse) -> Vec<Outcome> {
        let mut by_index: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        for r in resp.results {
            let Some(slot) = usize::try_from(r.index)
                .ok()
                .and_then(|i| by_index.get_mut(i))
            else {
                continue;
            };
            *slot = Some(match r.error {
                Some(e) => Outcome::Rejected(e),
                None => {
                    // A replayed batch says `created` again; the creation
                    // time says whether it happened in this run.
                    let created_before =
                        self.existed_before(r.cadre.as_ref().and_then(|c| c.create_time.as_ref()));
                    let stored_as = Stored::of_cadre(r.cadre.as_ref());
                    if r.created && !created_before {
                        Outcome::Accepted(stored_as)
                    } else {
                        Outcome::Unchanged(stored_as)
                    }
                }
            });
        }
        fill_missing(by_index)
    }
}

enum BatchRequest {
    Records(proto::BatchSubmitRecordsRequest),
    Cadres(proto::BatchCreateCadresRequest),
}

/// The key of a system's request ids: SHA-256 of a label and its private key
/// file. The same batch from the same system always gets the same id, so a
/// lost response replays on the next run; the id is a keyed digest because it
/// is kept in the access log for good, and a plain digest of a batch of
/// petitions would let anyone reading the database confirm a guessed
/// informant offline.
fn request_id_key(key_pem: &[u8]) -> hmac::Key {
    let mut h = Sha256::new();
    h.update(b"cadrex import request id v1\0");
    h.update(key_pem);
    hmac::Key::new(hmac::HMAC_SHA256, &h.finalize())
}

/// The request and its request id: hex HMAC-SHA-256 under `key` over the
/// kind, the salt (none on the first call) and the encoded batch.
fn build_request(
    kind: ImportKind,
    items: &[&Pending],
    salt: Option<&[u8]>,
    key: &hmac::Key,
) -> BatchRequest {
    let mut h = hmac::Context::with_key(key);
    h.update(kind.as_str().as_bytes());
    h.update(&[0u8]);
    if let Some(s) = salt {
        h.update(s);
    }
    match kind {
        ImportKind::Cadre => {
            let mut req = proto::BatchCreateCadresRequest {
                requests: items
                    .iter()
                    .map(|p| proto::CreateCadreRequest {
                        cadre: match &p.item {
                            Item::Cadre(c) => Some((**c).clone()),
                            Item::Record(_) => None,
                        },
                        request_id: String::new(),
                    })
                    .collect(),
                request_id: String::new(),
                validate_only: false,
            };
            h.update(&req.encode_to_vec());
            req.request_id = hex::encode(h.sign().as_ref());
            BatchRequest::Cadres(req)
        }
        ImportKind::Record(_) => {
            let mut req = proto::BatchSubmitRecordsRequest {
                requests: items
                    .iter()
                    .map(|p| proto::SubmitRecordRequest {
                        record: match &p.item {
                            Item::Record(r) => Some((**r).clone()),
                            Item::Cadre(_) => None,
                        },
                        request_id: String::new(),
                        validate_only: false,
                    })
                    .collect(),
                request_id: String::new(),
                validate_only: false,
            };
            h.update(&req.encode_to_vec());
            req.request_id = hex::encode(h.sign().as_ref());
            BatchRequest::Records(req)
        }
    }
}

/// A result the server left out counts as a failure of that row, not a success.
fn fill_missing(v: Vec<Option<Outcome>>) -> Vec<Outcome> {
    v.into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Outcome::Rejected(proto::ItemError {
                    code: Code::Internal as i32,
                    reason: "NO_RESULT".into(),
                    message: "the server returned no result for this row".into(),
                    field_violations: Vec::new(),
                })
            })
        })
        .collect()
}

fn backoff(try_number: u32) -> Duration {
    connect::backoff(try_number, BACKOFF_MAX)
}

fn is_transient(status: &Status) -> bool {
    connect::is_transient(status, Patience::Run)
}

fn is_transient_item(e: &proto::ItemError) -> bool {
    connect::is_transient_item(e.code, &e.reason)
}

/// Refusals that another import may have cured since (a cadre registered, an
/// engagement submitted), as opposed to faults of the row itself.
fn depends_on_other_data(e: &proto::ItemError) -> bool {
    matches!(
        Code::from(e.code),
        Code::NotFound | Code::PermissionDenied | Code::FailedPrecondition
    )
}

fn fatal_status(status: &Status, method: &str, args: &ImportArgs) -> anyhow::Error {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => {
            anyhow::anyhow!(connect::refusal(status, method, &args.cert).unwrap_or_default())
        }
        code => anyhow::anyhow!(
            "{method} on {} failed: {} {} (check --cert {}, --key and --ca {})",
            args.server,
            code_name(code as i32),
            status.message(),
            args.cert.display(),
            args.ca.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Row {
        Row {
            line: 2,
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn enum_suffixes_map_to_prost_values() {
        let r = row(&[
            ("cadre_id_number", "36082119750312001x"),
            ("source_record_id", "AF-1"),
            ("classification", "INTERNAL"),
            ("engagement_source_record_id", "AE-1"),
            ("problem_type", "IRREGULAR_FUNDS"),
            ("amount_fen", "125000"),
            ("responsibility", "direct"),
            ("transfer", "TRANSFER_DISCIPLINE"),
            ("rectification_status", "in-progress"),
            ("finding_date", "2025-03-01"),
        ]);
        let p = parse_row(ImportKind::AuditFinding, &r).unwrap_or_else(|_| panic!("parses"));
        let Item::Record(rec) = p.item else {
            panic!("a record")
        };
        assert_eq!(rec.cadre_id_number, "36082119750312001X");
        assert_eq!(rec.source_version, 1);
        assert_eq!(rec.kind, proto::RecordKind::AuditFinding as i32);
        let Some(proto::record::Payload::AuditFinding(f)) = rec.payload else {
            panic!("a finding")
        };
        assert_eq!(f.problem_type, proto::ProblemType::IrregularFunds as i32);
        assert_eq!(f.responsibility, proto::Responsibility::Direct as i32);
        assert_eq!(f.transfer, proto::Transfer::Discipline as i32);
        assert_eq!(
            f.rectification.unwrap().status,
            proto::RectificationStatus::InProgress as i32
        );
        assert_eq!(f.amount_fen, 125_000);
    }

    #[test]
    fn bad_columns_are_all_reported() {
        let r = row(&[
            ("source_record_id", "AF-2"),
            ("classification", "INTERNAL"),
            ("problem_type", "EMBEZZLEMENT"),
            ("amount_fen", "12.5"),
        ]);
        let Err(rej) = parse_row(ImportKind::AuditFinding, &r) else {
            panic!("rejected")
        };
        assert_eq!(rej.reason, REASON_INVALID_ROW);
        assert_eq!(rej.id, "AF-2");
        let cols: Vec<&str> = rej.fields.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(cols, ["problem_type", "amount_fen"]);
        assert!(rej.fields[0].1.contains("IRREGULAR_FUNDS"));
    }

    #[test]
    fn anonymous_petition_has_no_informant_block() {
        let r = row(&[
            ("source_record_id", "P-1"),
            ("anonymous", "true"),
            ("channel", "ONLINE"),
        ]);
        let Ok(p) = parse_row(ImportKind::Petition, &r) else {
            panic!("parses")
        };
        let Item::Record(rec) = p.item else {
            panic!("a record")
        };
        let Some(proto::record::Payload::Petition(pet)) = rec.payload else {
            panic!("a petition")
        };
        assert!(pet.anonymous && pet.informant.is_none());
    }

    #[test]
    fn ndjson_numbers_and_nesting() {
        let row = ndjson_row(3, r#"{"source_version": 2, "specific": true, "x": null}"#)
            .unwrap_or_else(|_| panic!("parses"));
        assert_eq!(row.get("source_version"), "2");
        assert_eq!(row.get("specific"), "true");
        assert_eq!(row.get("x"), "");
        assert!(ndjson_row(4, r#"{"informant": {"name": "x"}}"#).is_err());
        assert!(ndjson_row(5, "[1]").is_err());
    }

    #[test]
    fn defaults_follow_the_dev_pki_layout() {
        assert_eq!(
            default_ca(Path::new("/p/clients/audit-360821.crt")),
            Path::new("/p/ca.crt")
        );
        assert_eq!(
            default_report(Path::new("ex/audit-findings.csv")),
            Path::new("ex/audit-findings.rejected.csv")
        );
        assert_eq!(
            "org-handling".parse::<ImportKind>().unwrap(),
            ImportKind::OrgHandling
        );
    }

    #[test]
    fn request_ids_are_keyed_content_digests() {
        let mk = |id: &str| {
            let r = row(&[
                ("cadre_id_number", "36082119750312001X"),
                ("source_record_id", id),
                ("classification", "INTERNAL"),
            ]);
            parse_row(ImportKind::OrgHandling, &r).unwrap_or_else(|_| panic!("parses"))
        };
        let (a, b) = (mk("OH-1"), mk("OH-2"));
        let key = request_id_key(b"one system's key");
        let keyed = |items: &[&Pending], salt: Option<&[u8]>, key: &hmac::Key| match build_request(
            ImportKind::OrgHandling,
            items,
            salt,
            key,
        ) {
            BatchRequest::Records(r) => r.request_id,
            BatchRequest::Cadres(r) => r.request_id,
        };
        let id = |items: &[&Pending], salt: Option<&[u8]>| keyed(items, salt, &key);
        assert_eq!(id(&[&a, &b], None), id(&[&a, &b], None));
        assert_eq!(id(&[&a, &b], None).len(), 64);
        assert_ne!(id(&[&a, &b], None), id(&[&b, &a], None));
        assert_ne!(id(&[&a, &b], None), id(&[&a, &b], Some(b"x")));
        // Another system's key gives another id, and the id is not the plain
        // digest of what it covers, which anyone could recompute.
        let other = request_id_key(b"another system's key");
        assert_ne!(id(&[&a, &b], None), keyed(&[&a, &b], None, &other));
        let BatchRequest::Records(req) =
            build_request(ImportKind::OrgHandling, &[&a, &b], None, &key)
        else {
            unreachable!()
        };
        let mut body = req.clone();
        body.request_id = String::new();
        let mut plain = Sha256::new();
        plain.update(ImportKind::OrgHandling.as_str().as_bytes());
        plain.update([0u8]);
        plain.update(body.encode_to_vec());
        assert_ne!(req.request_id, hex::encode(plain.finalize()));
    }

    /// Every record kind of the domain is importable: its name round-trips on
    /// the command line, its owners are the domain's, and a row parses to a
    /// record of that kind. Walks `Kind::ALL`, so a new kind is checked here
    /// without editing this test.
    #[test]
    fn every_domain_kind_is_importable() {
        assert_eq!(ImportKind::ALL[0], ImportKind::Cadre);
        assert_eq!(ImportKind::Cadre.owners(), [Agency::REGISTRAR]);
        let names: BTreeSet<&str> = ImportKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names.len(),
            ImportKind::ALL.len(),
            "import names are distinct"
        );
        for kind in Kind::ALL {
            let ik = ImportKind::Record(kind);
            assert!(ImportKind::ALL.contains(&ik), "{kind:?}");
            assert_eq!(ik.as_str().parse::<ImportKind>().unwrap(), ik);
            assert_eq!(
                <ImportKind as clap::ValueEnum>::from_str(ik.as_str(), false),
                Ok(ik)
            );
            assert_eq!(ik.record_kind(), Some(kind));
            assert!(!ik.owners().is_empty());
            assert_eq!(ik.owners(), kind.owners());
            assert!(ik.columns().iter().any(|(c, _)| *c == "source_record_id"));
            let Ok(p) = parse_row(ik, &row(&[("source_record_id", "X-1")])) else {
                panic!("{kind:?}: an empty row parses")
            };
            let Item::Record(rec) = p.item else {
                panic!("{kind:?}: a record")
            };
            assert_eq!(rec.kind, kind.to_proto() as i32);
            assert_eq!(rec.payload.as_ref().and_then(Kind::of), Some(kind));
        }
        // The preflight reads the caller's agency off the wire.
        for agency in Agency::ALL {
            assert_eq!(Agency::from_proto(agency.to_proto()), Some(agency));
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(10), BACKOFF_MAX);
    }
}
