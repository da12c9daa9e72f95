//! `cadrex sync`: keeps a local copy of the change feed — a SQLite mirror applied idempotently by (resource, revision), or an NDJSON file — with its cursor checkpointed alongside.
//!
//! The copy starts with a snapshot (`ListRecords` on `cadres/-` per record kind,
//! `ListCadres` for cadres) and then tails the feed from the snapshot's cursor:
//! `ListChanges` until the cursor stops moving (`--once`, `--interval`), or a
//! `WatchChanges` stream (neither flag). Delivery is at-least-once; the mirror
//! makes it exactly-once by applying a row only when its revision is newer than
//! the stored one, and by committing each page together with the cursor after it.
//!
//! [`agent`] talks to the server (snapshot, pages, watch stream, retries) and
//! turns what it gets into [`item`]s, which go to one copy: the [`mirror`] or
//! the [`ndjson`] file.

mod agent;
mod item;
mod mirror;
mod ndjson;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::watch;

use crate::domain::records::Kind;
use crate::domain::states;
use crate::proto::{self, ChangeKind};
use crate::tools::connect::{self, ConnectArgs};
use agent::{Agent, channel, progress_bar};
use item::Sink;
use mirror::Mirror;
use ndjson::NdjsonOut;

/// Items per page of every listing, unless told otherwise: the most
/// `ListRecords` and `ListCadres` return, and about 1 MB of findings.
pub const DEFAULT_PAGE_SIZE: i32 = 1000;
/// What `--kinds` accepts: the kinds whose events carry a cadre or a record —
/// cadres, then every record kind of [`Kind::ALL`]. Opinion requests and
/// replies have no snapshot listing to start from.
pub const KINDS: [ChangeKind; 1 + Kind::ALL.len()] = {
    let mut kinds = [ChangeKind::Cadre; 1 + Kind::ALL.len()];
    let mut i = 0;
    while i < Kind::ALL.len() {
        kinds[i + 1] = states::ChangeKind::Record(Kind::ALL[i]).to_proto();
        i += 1;
    }
    kinds
};

/// How long the agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Catch up with `ListChanges` and return.
    Once,
    /// Catch up, sleep this long, repeat until stopped.
    Interval(Duration),
    /// Catch up and follow a `WatchChanges` stream until stopped.
    Follow,
}

/// `cadrex sync`: keeps a local copy of the change feed, a SQLite mirror or
/// an NDJSON file (see README "Keeping a copy in sync").
#[derive(clap::Args, Debug)]
pub struct SyncCommand {
    #[arg(long, required = true, value_delimiter = ',', value_parser = parse_kind,
          help = kinds_help())]
    kinds: Vec<ChangeKind>,
    /// Mirror database, sqlite://FILE (created when absent).
    #[arg(long, required_unless_present = "out", conflicts_with = "out")]
    into: Option<String>,
    /// Appends one JSON line per event to FILE.ndjson instead (cursor in FILE.ndjson.cursor).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Catch up, then again after this pause (e.g. 5m), until stopped.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "once")]
    interval: Option<Duration>,
    /// Catch up once and exit. Without --once or --interval, follows a watch stream.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Items per listing page (at most 1000).
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE,
          value_parser = clap::value_parser!(i32).range(1..=1000))]
    page_size: i32,
}

impl SyncCommand {
    /// Runs until caught up (`--once`) or until `stop` resolves (Ctrl-C or
    /// SIGTERM), which ends the run after the batch in hand, with its summary.
    pub async fn run(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<std::process::ExitCode> {
        let mut args = SyncArgs::new(self.kinds, self.connect.cert, self.connect.key);
        if let Some(ca) = self.connect.ca {
            args.ca = ca;
        }
        args.into = self.into;
        args.out = self.out;
        args.mode = match (self.once, self.interval) {
            (true, _) => SyncMode::Once,
            (false, Some(d)) => SyncMode::Interval(d),
            (false, None) => SyncMode::Follow,
        };
        args.server = self.connect.server;
        args.server_name = self.connect.server_name;
        args.page_size = self.page_size;
        args.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let (stopper, stopped) = watch::channel(false);
        tokio::spawn(async move {
            stop.await;
            let _ = stopper.send(true);
        });
        args.stop = Some(stopped);
        println!("{}", run(args).await?);
        Ok(std::process::ExitCode::SUCCESS)
    }
}

/// What to sync, where to, from where, as whom.
#[derive(Clone, Debug)]
pub struct SyncArgs {
    /// Kinds to copy; see [`KINDS`].
    pub kinds: Vec<ChangeKind>,
    /// SQLite URL of the mirror (`sqlite://mirror.db`); exclusive with `out`.
    pub into: Option<String>,
    /// NDJSON file events are appended to; exclusive with `into`.
    pub out: Option<PathBuf>,
    pub mode: SyncMode,
    /// Client certificate and key of the syncing system (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificate the server's certificate must chain to.
    pub ca: PathBuf,
    /// `https://host:port`.
    pub server: String,
    /// Name the server certificate must carry.
    pub server_name: String,
    /// Items per listing page, 1..=1000.
    pub page_size: i32,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Set to `true` to stop after the page or batch in hand (the copy stays
    /// consistent either way; killing the process is safe too).
    pub stop: Option<watch::Receiver<bool>>,
}

impl SyncArgs {
    /// Where and as whom the agent connects.
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
    /// local server, pages of 1000, follow mode, no sink chosen yet.
    pub fn new(kinds: Vec<ChangeKind>, cert: PathBuf, key: PathBuf) -> Self {
        Self {
            kinds,
            into: None,
            out: None,
            mode: SyncMode::Follow,
            ca: connect::default_ca(&cert),
            cert,
            key,
            server: connect::default_server(),
            server_name: connect::DEFAULT_SERVER_NAME.into(),
            page_size: DEFAULT_PAGE_SIZE,
            progress: false,
            stop: None,
        }
    }
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Items that changed the copy: mirror rows written at a newer revision,
    /// or lines appended to the NDJSON file. Snapshot items included.
    pub applied: u64,
    /// Items the mirror already held at that revision or a newer one (redelivery).
    pub unchanged: u64,
    /// Full listings taken: the first run, changed kinds, expired cursors.
    pub snapshots: u32,
    /// How often the feed answered CURSOR_EXPIRED and the copy was re-snapshotted.
    pub cursor_expired: u32,
    /// Transient failures (server away, connection lost) ridden out by retrying.
    pub retries: u32,
    /// Cursor checkpointed last.
    pub cursor: String,
    pub elapsed: Duration,
}

impl SyncSummary {
    /// Items processed (applied or already held) per second of the run.
    pub fn events_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.applied + self.unchanged) as f64 / secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for SyncSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events applied, {} already held, {} snapshot(s)",
            self.applied, self.unchanged, self.snapshots
        )?;
        if self.cursor_expired > 0 {
            write!(
                f,
                " (re-snapshotted {} time(s) after an expired cursor)",
                self.cursor_expired
            )?;
        }
        if self.retries > 0 {
            write!(f, ", {} retries", self.retries)?;
        }
        write!(
            f,
            " in {:.1} s ({:.0} events/s)",
            self.elapsed.as_secs_f64(),
            self.events_per_sec()
        )
    }
}

/// The `--kinds` spelling of a kind: its suffix in kebab case (`audit-finding`).
pub fn kind_cli_name(kind: ChangeKind) -> String {
    kind_suffix(kind).to_ascii_lowercase().replace('_', "-")
}

/// The help of `--kinds`, naming every kind of [`KINDS`].
fn kinds_help() -> String {
    let names: Vec<String> = KINDS.into_iter().map(kind_cli_name).collect();
    format!("Kinds to copy, comma-separated: {}", names.join(", "))
}

/// Parses one `--kinds` value: `audit-finding`, `AUDIT_FINDING` or `CHANGE_KIND_AUDIT_FINDING`.
pub fn parse_kind(s: &str) -> Result<ChangeKind, String> {
    let upper = s.trim().to_ascii_uppercase().replace('-', "_");
    let suffix = upper.strip_prefix("CHANGE_KIND_").unwrap_or(&upper);
    KINDS
        .into_iter()
        .find(|k| kind_suffix(*k) == suffix)
        .ok_or_else(|| {
            let names: Vec<String> = KINDS.into_iter().map(kind_cli_name).collect();
            format!("unknown kind {s:?}; one of {}", names.join(", "))
        })
}

fn kind_suffix(kind: ChangeKind) -> &'static str {
    let name = kind.as_str_name();
    name.strip_prefix("CHANGE_KIND_").unwrap_or(name)
}

/// The record kind of the same name, `None` for cadres.
fn record_kind(kind: ChangeKind) -> Option<proto::RecordKind> {
    proto::RecordKind::from_str_name(&format!("RECORD_KIND_{}", kind_suffix(kind)))
}

fn change_kind_of(kind: i32) -> Option<ChangeKind> {
    let name = proto::RecordKind::try_from(kind).ok()?.as_str_name();
    ChangeKind::from_str_name(&format!(
        "CHANGE_KIND_{}",
        name.strip_prefix("RECORD_KIND_")?
    ))
}

/// Syncs as `args` says; returns what it did once caught up (`Once`) or stopped.
///
/// Fails when the server refuses the certificate (TLS handshake, UNAUTHENTICATED,
/// PERMISSION_DENIED), on local I/O errors, when a `--once` run still cannot
/// reach the server after a few tries, or when the cursor expires again and
/// again (retention shorter than a snapshot). Everything applied before a
/// failure stays applied with its cursor; a re-run continues from there.
pub async fn run(args: SyncArgs) -> anyhow::Result<SyncSummary> {
    let started = Instant::now();
    let mut kinds = args.kinds.clone();
    kinds.sort_by_key(|k| *k as i32);
    kinds.dedup();
    if kinds.is_empty() {
        bail!("--kinds needs at least one kind");
    }
    if let Some(k) = kinds.iter().find(|k| !KINDS.contains(k)) {
        bail!("{} changes cannot be synced", k.as_str_name());
    }
    if !(1..=1000).contains(&args.page_size) {
        bail!("--page-size must be between 1 and 1000");
    }
    connect::install_crypto_provider();
    // Unreadable certificate files fail the run before the copy is created.
    let channel = channel(&args)?;
    let sink = match (&args.into, &args.out) {
        (Some(url), None) => Sink::Mirror(Mirror::open(url).await?),
        (None, Some(path)) => Sink::File(NdjsonOut::open(path)?),
        _ => bail!("give exactly one of --into sqlite://FILE and --out FILE.ndjson"),
    };
    let bar = progress_bar(args.progress)?;
    let mut agent = Agent::new(args, kinds, sink, channel, bar);
    let result = agent.run().await;
    agent.bar.finish_and_clear();
    agent.summary.elapsed = started.elapsed();
    result.map(|()| agent.summary)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in KINDS {
            assert_eq!(parse_kind(&kind_cli_name(k)), Ok(k));
            assert_eq!(parse_kind(k.as_str_name()), Ok(k));
        }
        assert_eq!(kind_cli_name(ChangeKind::AuditFinding), "audit-finding");
        assert_eq!(parse_kind("AUDIT_FINDING"), Ok(ChangeKind::AuditFinding));
        assert!(parse_kind("opinion-request").is_err());
        assert!(parse_kind("unspecified").is_err());
        assert_eq!(
            record_kind(ChangeKind::AuditFinding),
            Some(proto::RecordKind::AuditFinding)
        );
        assert_eq!(record_kind(ChangeKind::Cadre), None);
        assert_eq!(
            change_kind_of(proto::RecordKind::Petition as i32),
            Some(ChangeKind::Petition)
        );
    }

    /// `--kinds` offers cadres and every record kind of `Kind::ALL`, each
    /// with its listing; a new kind is checked here without editing this test.
    #[test]
    fn kinds_cover_every_domain_kind() {
        let distinct: HashSet<ChangeKind> = KINDS.into_iter().collect();
        assert_eq!(distinct.len(), KINDS.len());
        assert_eq!(KINDS[0], ChangeKind::Cadre);
        for kind in Kind::ALL {
            let k = states::ChangeKind::Record(kind).to_proto();
            assert!(KINDS.contains(&k), "{kind:?}");
            assert_eq!(record_kind(k), Some(kind.to_proto()));
            assert_eq!(change_kind_of(kind.to_proto() as i32), Some(k));
            assert_eq!(kind_suffix(k), kind.as_str());
        }
    }
}
