//! `cadrex import`: bulk-loads cadres or records from CSV or NDJSON through the batch RPCs, reporting rejected rows.
//!
//! Rows travel in batches of up to 1000. Each batch carries a request id derived
//! from its content, so a batch retried after a lost response replays the
//! server's first answer; a whole re-run relies on the server's idempotency by
//! (source record id, source version) and stores nothing twice.
//!
//! A row goes [`read`] (file to column → text) → [`parse`] (text to a cadre or
//! record message) → [`send`] (batches to the server) → [`report`] (what
//! became of it); [`kind`] says what each `--kind` reads and who may send it.

mod kind;
mod parse;
mod read;
mod report;
mod send;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;

use crate::tools::connect::{self, ConnectArgs};
use parse::{Pending, parse_row};
use read::{Format, RowReader, check_headers, note_unknown_keys, progress_bar};
use report::{AcceptedReport, Rejection, Report};
use send::{Outcome, Sender, connect, request_id_key};

pub use kind::ImportKind;
pub use report::REPORT_HEADER;

/// Most items the batch RPCs take in one call.
pub const MAX_BATCH: usize = 1000;
/// Items per call unless told otherwise: well under the server's message limit
/// for every kind, and large enough that per-call overhead does not dominate.
pub const DEFAULT_BATCH: usize = 500;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
