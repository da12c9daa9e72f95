//! `cadrex sync`: keeps a local copy of the change feed — a SQLite mirror applied idempotently by (resource, revision), or an NDJSON file — with its cursor checkpointed alongside.
//!
//! The copy starts with a snapshot (`ListRecords` on `cadres/-` per record kind,
//! `ListCadres` for cadres) and then tails the feed from the snapshot's cursor:
//! `ListChanges` until the cursor stops moving (`--once`, `--interval`), or a
//! `WatchChanges` stream (neither flag). Delivery is at-least-once; the mirror
//! makes it exactly-once by applying a row only when its revision is newer than
//! the stored one, and by committing each page together with the cursor after it.

use std::collections::HashSet;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::FutureExt;
use prost::Message;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::domain::clock::{self, now_us, rfc3339};
use crate::domain::records::Kind;
use crate::domain::states::{self, ChangeOp, RecordState};
use crate::error::Reason;
use crate::proto::cadre_service_client::CadreServiceClient;
use crate::proto::change_feed_service_client::ChangeFeedServiceClient;
use crate::proto::record_service_client::RecordServiceClient;
use crate::proto::system_service_client::SystemServiceClient;
use crate::proto::{self, ChangeKind, change_event, watch_changes_response};
use crate::tools::connect::{self, ConnectArgs, Patience};

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

/// Matches the server (`http2_keepalive_interval` 30 s, timeout 20 s), so a
/// watch stream idle for hours is neither dropped by middleboxes nor taken for
/// dead by either side while pings are answered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longer than the server's own per-call timeout (30 s by default), so a slow
/// page ends with the server's DEADLINE_EXCEEDED rather than ours.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// A page of 1000 records is about 1 MB; the headroom covers large payloads.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Cap of the reconnect backoff: a restarted server is picked up within 30 s.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Tries of a `--once` run before it gives up (about 8 s of backoff in all).
const ONCE_TRIES: u32 = 5;
/// Expired cursors in a row before giving up: the feed's retention is then
/// shorter than a snapshot takes, and re-snapshotting would loop forever.
const MAX_EXPIRED_IN_A_ROW: u32 = 3;
/// Most watch frames committed in one transaction; a burst of commits is
/// applied in a few transactions rather than one per event.
const WATCH_BATCH: usize = 500;

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
    /// Kinds to copy, comma-separated: cadre, sanction, admonishment, clue,
    /// org-handling, personal-matters-check, evaluation, audit-engagement,
    /// audit-finding, petition.
    #[arg(long, required = true, value_delimiter = ',', value_parser = parse_kind)]
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

// ---------------------------------------------------------------------------
// What gets applied

/// One cadre or record at one revision, from a feed event or a snapshot page.
struct Item {
    resource: String,
    kind: ChangeKind,
    revision: i64,
    retracted: bool,
    /// It left the caller's view (an `OUT_OF_VIEW` event): kept as a marker
    /// at its revision, without content, until an UPSERT restores it.
    out_of_view: bool,
    /// Protobuf of the `Cadre` or `Record` as the caller may see it.
    body: Vec<u8>,
    /// The same as protobuf canonical JSON, for SQL's JSON functions and jq.
    json: serde_json::Value,
    /// The cadre it is about (`cadres/{id}`; a cadre's own name).
    cadre: String,
    /// A record's event date (YYYY-MM-DD); empty for cadres.
    event_date: String,
    commit_time_us: i64,
    /// Feed events only (NDJSON lines).
    event: Option<(String, i64, String)>,
}

/// The record as the agent may keep it: never with an informant block, which
/// an entitled system reads with `GetRecord` so that every read of an
/// informant's identity is in the access log. The provenance digest covers
/// the informant too, so it goes with it: a kept digest would confirm a
/// guessed informant offline.
fn without_informant(mut r: proto::Record) -> proto::Record {
    if let Some(proto::record::Payload::Petition(p)) = &mut r.payload
        && p.informant.take().is_some()
        && let Some(provenance) = &mut r.provenance
    {
        provenance.payload_sha256.clear();
    }
    r
}

/// `message` as canonical JSON; null (and a warning) in the one case it
/// cannot be, a descriptor set that does not describe the message, so that
/// the protobuf body still reaches the mirror.
fn json_of(message: &impl Message, full_name: &str) -> serde_json::Value {
    crate::tools::protojson::to_json(message, full_name).unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "cannot render {full_name} as JSON");
        serde_json::Value::Null
    })
}

/// What the agent keeps of a record: the protobuf body, its JSON, the cadre
/// and the event date; never the informant block (see [`without_informant`]).
fn record_parts(r: proto::Record) -> (Vec<u8>, serde_json::Value, String, String) {
    let r = without_informant(r);
    (
        r.encode_to_vec(),
        json_of(&r, "cadrex.v1.Record"),
        r.cadre.clone(),
        r.event_date.clone(),
    )
}

impl Item {
    fn from_event(e: proto::ChangeEvent) -> Option<Item> {
        let kind = ChangeKind::try_from(e.kind).ok()?;
        let ((body, json, cadre, event_date), retracted_view) = match &e.view {
            Some(change_event::View::Cadre(c)) => (
                (
                    c.encode_to_vec(),
                    json_of(c, "cadrex.v1.Cadre"),
                    c.name.clone(),
                    String::new(),
                ),
                false,
            ),
            Some(change_event::View::Record(r)) => (
                record_parts(r.clone()),
                r.state == proto::RecordState::Retracted as i32,
            ),
            _ => (
                (
                    Vec::new(),
                    serde_json::Value::Null,
                    String::new(),
                    String::new(),
                ),
                false,
            ),
        };
        let out_of_view = e.op == proto::ChangeOp::OutOfView as i32;
        // An OUT_OF_VIEW event has no view; its cadre is in its name.
        let cadre = if cadre.is_empty() {
            e.resource.split('/').take(2).collect::<Vec<_>>().join("/")
        } else {
            cadre
        };
        Some(Item {
            resource: e.resource,
            kind,
            revision: e.revision,
            retracted: e.op == proto::ChangeOp::Retract as i32 || retracted_view,
            out_of_view,
            body,
            json,
            cadre,
            event_date,
            commit_time_us: e.commit_time.as_ref().map_or(0, clock::micros),
            event: Some((e.event_id, e.seq, e.cursor)),
        })
    }

    fn from_record(r: proto::Record) -> Option<Item> {
        let kind = change_kind_of(r.kind)?;
        let (resource, revision) = (r.name.clone(), r.revision);
        let retracted = r.state == proto::RecordState::Retracted as i32;
        let commit_time_us = r.update_time.as_ref().map_or(0, clock::micros);
        let (body, json, cadre, event_date) = record_parts(r);
        Some(Item {
            kind,
            resource,
            revision,
            retracted,
            out_of_view: false,
            commit_time_us,
            body,
            json,
            cadre,
            event_date,
            event: None,
        })
    }

    fn from_cadre(c: proto::Cadre) -> anyhow::Result<Item> {
        // The etag is the cadre's revision, `r{n}`, the number its feed events carry.
        let revision = c
            .etag
            .strip_prefix('r')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                anyhow!(
                    "cadre {} has an etag {:?} without a revision",
                    c.name,
                    c.etag
                )
            })?;
        Ok(Item {
            kind: ChangeKind::Cadre,
            resource: c.name.clone(),
            revision,
            retracted: false,
            out_of_view: false,
            commit_time_us: c.update_time.as_ref().map_or(0, clock::micros),
            body: c.encode_to_vec(),
            json: json_of(&c, "cadrex.v1.Cadre"),
            cadre: c.name.clone(),
            event_date: String::new(),
            event: None,
        })
    }

    fn op(&self) -> ChangeOp {
        if self.out_of_view {
            ChangeOp::OutOfView
        } else if self.retracted {
            ChangeOp::Retract
        } else {
            ChangeOp::Upsert
        }
    }

    fn json_line(&self, snapshot: bool) -> String {
        let (event_id, seq, cursor) = match &self.event {
            Some((id, seq, cursor)) => (Some(id.as_str()), Some(*seq), Some(cursor.as_str())),
            None => (None, None, None),
        };
        let mut line = serde_json::json!({
            "event_id": event_id,
            "seq": seq,
            "cursor": cursor,
            "op": self.op().as_str(),
            "resource": self.resource,
            "kind": kind_suffix(self.kind),
            "revision": self.revision,
            "commit_time": rfc3339(self.commit_time_us),
            "body": if self.retracted || self.out_of_view { serde_json::Value::Null } else { self.json.clone() },
            "body_base64": STANDARD.encode(&self.body),
        });
        if snapshot {
            line["snapshot"] = serde_json::Value::Bool(true);
        }
        let mut s = line.to_string();
        s.push('\n');
        s
    }
}

/// What a write does to the checkpoint besides applying its items.
enum Checkpoint<'a> {
    /// Leave it (a snapshot page that is not the last).
    Keep,
    /// Resume after this cursor from now on.
    Cursor(&'a str),
    /// A snapshot starts: no cursor until it is complete, so that a crash
    /// mid-snapshot redoes the snapshot rather than tailing from a gap.
    SnapshotStart { kinds: &'a str },
    /// The snapshot is complete and consistent with `cursor`. Resources of the
    /// synced kinds it did not list are no longer visible (moved out of the
    /// caller's jurisdiction, or gone while the cursor was expired).
    SnapshotDone { cursor: &'a str, kinds: &'a str },
}

/// The stored checkpoint.
#[derive(Debug, Default)]
struct Stored {
    cursor: Option<String>,
    kinds: String,
}

/// Counts of one write.
#[derive(Default)]
struct Written {
    applied: u64,
    unchanged: u64,
}

enum Sink {
    Mirror(Mirror),
    File(NdjsonOut),
}

impl Sink {
    async fn load(&mut self) -> anyhow::Result<Stored> {
        match self {
            Sink::Mirror(m) => m.load().await,
            Sink::File(f) => f.load(),
        }
    }

    async fn write(
        &mut self,
        items: &[Item],
        snapshot: bool,
        checkpoint: Checkpoint<'_>,
    ) -> anyhow::Result<Written> {
        match self {
            Sink::Mirror(m) => m.write(items, snapshot, checkpoint).await,
            Sink::File(f) => f.write(items, snapshot, checkpoint).await,
        }
    }
}

// ---------------------------------------------------------------------------
// The SQLite mirror

const MIRROR_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mirror_resources (
    resource TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    revision INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('ACTIVE', 'RETRACTED')),
    body BLOB,
    commit_time_us INTEGER NOT NULL,
    body_json TEXT,
    cadre TEXT,
    event_date TEXT,
    out_of_view INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS mirror_resources_kind ON mirror_resources (kind, state);
CREATE TABLE IF NOT EXISTS mirror_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor TEXT,
    snapshot_done INTEGER NOT NULL DEFAULT 0,
    kinds TEXT NOT NULL DEFAULT '',
    update_time_us INTEGER NOT NULL DEFAULT 0
);
INSERT INTO mirror_state (id, cursor, snapshot_done) VALUES (1, NULL, 0) ON CONFLICT (id) DO NOTHING;
";

/// A row is replaced only by a newer revision of it, or restored by the same
/// revision when it is held as out of view (a cadre moved away and back):
/// redelivered and superseded changes leave it alone, which is what makes
/// at-least-once delivery apply exactly once.
const MIRROR_UPSERT: &str = "
INSERT INTO mirror_resources
    (resource, kind, revision, state, body, commit_time_us, body_json, cadre, event_date, out_of_view)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)
ON CONFLICT (resource) DO UPDATE SET
    kind = excluded.kind, revision = excluded.revision, state = excluded.state,
    body = excluded.body, commit_time_us = excluded.commit_time_us,
    body_json = excluded.body_json, cadre = excluded.cadre, event_date = excluded.event_date,
    out_of_view = 0
WHERE excluded.revision > mirror_resources.revision
   OR (excluded.revision = mirror_resources.revision AND mirror_resources.out_of_view = 1)";

/// An `OUT_OF_VIEW` event at a revision at least the one held: the row stays
/// (not deleted, not retracted: the data lives on, elsewhere) but keeps no
/// content the caller may no longer see. A resource not held yet gets the
/// marker too, so that an older UPSERT delivered late cannot bring it back.
const MIRROR_OUT_OF_VIEW: &str = "
INSERT INTO mirror_resources
    (resource, kind, revision, state, body, commit_time_us, body_json, cadre, event_date, out_of_view)
VALUES ($1, $2, $3, 'ACTIVE', NULL, $4, NULL, $5, NULL, 1)
ON CONFLICT (resource) DO UPDATE SET
    revision = excluded.revision, body = NULL, body_json = NULL,
    commit_time_us = excluded.commit_time_us, out_of_view = 1
WHERE excluded.revision > mirror_resources.revision
   OR (excluded.revision = mirror_resources.revision AND mirror_resources.out_of_view = 0)";

/// Columns added after the first mirrors were made, with their declarations:
/// a mirror from then gets them (empty until each row's next change; delete
/// the file to rebuild).
const MIRROR_COLUMNS: [(&str, &str); 4] = [
    ("body_json", "TEXT"),
    ("cadre", "TEXT"),
    ("event_date", "TEXT"),
    ("out_of_view", "INTEGER NOT NULL DEFAULT 0"),
];

struct Mirror {
    conn: SqliteConnection,
}

impl Mirror {
    async fn open(url: &str) -> anyhow::Result<Mirror> {
        let opts = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("--into {url:?} is not a SQLite URL (sqlite://FILE)"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Rows and cursor commit together, so even an OS crash that loses
            // the newest commits leaves a consistent mirror that re-syncs them.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        if let Some(parent) = opts.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut conn = opts
            .connect()
            .await
            .with_context(|| format!("cannot open the mirror {url}"))?;
        sqlx::raw_sql(MIRROR_SCHEMA)
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create the mirror tables in {url}"))?;
        for (column, declaration) in MIRROR_COLUMNS {
            let present: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pragma_table_info('mirror_resources') WHERE name = $1",
            )
            .bind(column)
            .fetch_one(&mut conn)
            .await?;
            if present == 0 {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE mirror_resources ADD COLUMN {column} {declaration}"
                )))
                .execute(&mut conn)
                .await?;
            }
        }
        sqlx::raw_sql(
            "CREATE INDEX IF NOT EXISTS mirror_resources_cadre ON mirror_resources (cadre, kind)",
        )
        .execute(&mut conn)
        .await?;
        // What the current snapshot listed, on disk rather than in memory (a
        // national caller lists millions); per connection, since a snapshot
        // that does not finish in this process is redone from the start.
        sqlx::raw_sql("CREATE TEMP TABLE mirror_seen (resource TEXT PRIMARY KEY)")
            .execute(&mut conn)
            .await?;
        Ok(Mirror { conn })
    }

    async fn load(&mut self) -> anyhow::Result<Stored> {
        let row = sqlx::query("SELECT cursor, snapshot_done, kinds FROM mirror_state WHERE id = 1")
            .fetch_one(&mut self.conn)
            .await?;
        let done: i64 = row.try_get("snapshot_done")?;
        Ok(Stored {
            cursor: row
                .try_get::<Option<String>, _>("cursor")?
                .filter(|c| done == 1 && !c.is_empty()),
            kinds: row.try_get("kinds")?,
        })
    }

    /// Applies `items` and moves the checkpoint, in one transaction. Items of
    /// a `snapshot` page are also noted as seen by the snapshot.
    async fn write(
        &mut self,
        items: &[Item],
        snapshot: bool,
        checkpoint: Checkpoint<'_>,
    ) -> anyhow::Result<Written> {
        let mut out = Written::default();
        // IMMEDIATE: a reader of the mirror in another process never makes
        // this writer fail half-way with SQLITE_BUSY on lock upgrade.
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        for item in items {
            if item.out_of_view {
                let done = sqlx::query(MIRROR_OUT_OF_VIEW)
                    .bind(&item.resource)
                    .bind(kind_suffix(item.kind))
                    .bind(item.revision)
                    .bind(item.commit_time_us)
                    .bind((!item.cadre.is_empty()).then_some(item.cadre.as_str()))
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() > 0 {
                    out.applied += 1;
                } else {
                    out.unchanged += 1;
                }
                continue;
            }
            let state = if item.retracted {
                RecordState::Retracted
            } else {
                RecordState::Active
            }
            .as_str();
            let body = (!item.retracted).then_some(item.body.as_slice());
            let json = (!item.retracted && !item.json.is_null()).then(|| item.json.to_string());
            let done = sqlx::query(MIRROR_UPSERT)
                .bind(&item.resource)
                .bind(kind_suffix(item.kind))
                .bind(item.revision)
                .bind(state)
                .bind(body)
                .bind(item.commit_time_us)
                .bind(json)
                .bind((!item.cadre.is_empty()).then_some(item.cadre.as_str()))
                .bind((!item.event_date.is_empty()).then_some(item.event_date.as_str()))
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                out.applied += 1;
            } else {
                out.unchanged += 1;
            }
            if snapshot {
                sqlx::query(
                    "INSERT INTO mirror_seen (resource) VALUES ($1) ON CONFLICT DO NOTHING",
                )
                .bind(&item.resource)
                .execute(&mut *tx)
                .await?;
            }
        }
        match checkpoint {
            Checkpoint::Keep => {}
            Checkpoint::Cursor(cursor) => {
                sqlx::query(
                    "UPDATE mirror_state SET cursor = $1, update_time_us = $2 WHERE id = 1",
                )
                .bind(cursor)
                .bind(now_us())
                .execute(&mut *tx)
                .await?;
            }
            Checkpoint::SnapshotStart { kinds } => {
                sqlx::query("DELETE FROM mirror_seen")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE mirror_state SET cursor = NULL, snapshot_done = 0, kinds = $1, \
                     update_time_us = $2 WHERE id = 1",
                )
                .bind(kinds)
                .bind(now_us())
                .execute(&mut *tx)
                .await?;
            }
            Checkpoint::SnapshotDone { cursor, kinds } => {
                // Out of view, not retracted: the data lives on, elsewhere
                // (DESIGN §5). The revision stays, so the resource coming back
                // into view at the same or a newer revision restores it.
                let gone = sqlx::query(
                    "UPDATE mirror_resources SET out_of_view = 1, body = NULL, body_json = NULL \
                     WHERE out_of_view = 0 AND instr($1, ',' || kind || ',') > 0 \
                       AND resource NOT IN (SELECT resource FROM mirror_seen)",
                )
                .bind(format!(",{kinds},"))
                .execute(&mut *tx)
                .await?;
                out.applied += gone.rows_affected();
                sqlx::query("DELETE FROM mirror_seen")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE mirror_state SET cursor = $1, snapshot_done = 1, kinds = $2, \
                     update_time_us = $3 WHERE id = 1",
                )
                .bind(cursor)
                .bind(kinds)
                .bind(now_us())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// The NDJSON file

/// Appends one JSON line per item and keeps the cursor in `FILE.cursor`.
///
/// Lines are fsynced before the cursor file is replaced, so a crash in between
/// re-appends the same events on the next run: at-least-once, and consumers
/// dedupe by (resource, revision).
struct NdjsonOut {
    path: PathBuf,
    cursor_path: PathBuf,
    file: Option<File>,
    /// Kinds of the checkpoint, kept across plain cursor updates.
    kinds: String,
}

impl NdjsonOut {
    fn open(path: &Path) -> anyhow::Result<NdjsonOut> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("cannot open --out {}", path.display()))?;
        drop_partial_line(&mut file)
            .with_context(|| format!("cannot repair the end of {}", path.display()))?;
        let mut cursor_path = path.as_os_str().to_owned();
        cursor_path.push(".cursor");
        Ok(NdjsonOut {
            path: path.to_path_buf(),
            cursor_path: PathBuf::from(cursor_path),
            file: Some(file),
            kinds: String::new(),
        })
    }

    fn load(&mut self) -> anyhow::Result<Stored> {
        let text = match std::fs::read_to_string(&self.cursor_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::default()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read {}", self.cursor_path.display()));
            }
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cursor file", self.cursor_path.display()))?;
        self.kinds = v["kinds"].as_str().unwrap_or_default().to_string();
        Ok(Stored {
            cursor: v["cursor"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            kinds: self.kinds.clone(),
        })
    }

    async fn write(
        &mut self,
        items: &[Item],
        snapshot: bool,
        checkpoint: Checkpoint<'_>,
    ) -> anyhow::Result<Written> {
        let lines: String = items.iter().map(|i| i.json_line(snapshot)).collect();
        let cursor = match checkpoint {
            Checkpoint::Keep => None,
            Checkpoint::Cursor(c) => Some(Some(c)),
            Checkpoint::SnapshotStart { kinds } => {
                self.kinds = kinds.to_string();
                Some(None)
            }
            Checkpoint::SnapshotDone { cursor, kinds, .. } => {
                self.kinds = kinds.to_string();
                Some(Some(cursor))
            }
        };
        let state = cursor.map(|c| serde_json::json!({ "cursor": c, "kinds": self.kinds }));
        let mut file = self.file.take().context("the NDJSON file is closed")?;
        let cursor_path = self.cursor_path.clone();
        let path = self.path.clone();
        let (file, result) = tokio::task::spawn_blocking(move || {
            let result = (|| -> anyhow::Result<()> {
                if !lines.is_empty() {
                    file.write_all(lines.as_bytes())?;
                    file.sync_data()?;
                }
                if let Some(state) = state {
                    replace_file(&cursor_path, state.to_string().as_bytes())?;
                }
                Ok(())
            })()
            .with_context(|| format!("cannot append to {}", path.display()));
            (file, result)
        })
        .await?;
        self.file = Some(file);
        result?;
        Ok(Written {
            applied: items.len() as u64,
            unchanged: 0,
        })
    }
}

/// Cuts an unfinished last line (a crash mid-append): it was never
/// checkpointed, so the next run writes it again in full.
fn drop_partial_line(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let window = len.min(1 << 20);
    file.seek(SeekFrom::Start(len - window))?;
    let mut tail = Vec::with_capacity(window as usize);
    file.read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => len - window + i as u64 + 1,
        None if window == len => 0,
        None => return Ok(()),
    };
    file.set_len(keep)?;
    file.sync_data()
}

/// Writes `bytes` to `path` atomically: a synced temporary file renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable only once the directory is synced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Talking to the server

fn channel(args: &SyncArgs) -> anyhow::Result<Channel> {
    let connection = args.connection();
    Ok(connection
        .endpoint()?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// A unary request with a deadline; watch streams get none.
fn call<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// How a failed call ends up.
enum Failure {
    /// CURSOR_EXPIRED: re-snapshot, then tail from the new cursor.
    Expired { oldest: String },
    /// Worth another try after a pause: server away, connection lost.
    Transient(anyhow::Error),
    /// Retrying cannot help: refused certificate, bad arguments, local I/O.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Fatal(e)
    }
}

fn classify(status: Status, method: &str, args: &SyncArgs) -> Failure {
    let reason = status
        .get_details_error_info()
        .map(|i| (i.reason, i.metadata))
        .filter(|(r, _)| !r.is_empty());
    let code_name = connect::code_name(status.code() as i32);
    let reason_text = reason
        .as_ref()
        .map(|(r, _)| format!(", reason {r}"))
        .unwrap_or_default();
    if status.code() == Code::FailedPrecondition
        && let Some((r, metadata)) = &reason
        && r == Reason::CursorExpired.as_str()
    {
        return Failure::Expired {
            oldest: metadata.get("oldest_cursor").cloned().unwrap_or_default(),
        };
    }
    if let Some(refused) = connect::refusal(&status, method, &args.cert) {
        return Failure::Fatal(anyhow!(refused));
    }
    if let Some(tls) = connect::tls_error(&status) {
        return Failure::Fatal(connect::tls_refusal(&tls, method, &args.connection()));
    }
    let error = anyhow!(
        "{method} on {} failed: {code_name}{reason_text}: {}",
        args.server,
        status.message()
    );
    if connect::is_transient(&status, Patience::Agent) {
        Failure::Transient(error)
    } else {
        Failure::Fatal(error)
    }
}

fn backoff(failures: u32) -> Duration {
    connect::backoff(failures, BACKOFF_MAX)
}

fn progress_bar(show: bool) -> anyhow::Result<indicatif::ProgressBar> {
    if !show {
        return Ok(indicatif::ProgressBar::hidden());
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{spinner} {human_pos} events applied  {per_sec}  lag {msg}  {elapsed_precise}",
    )?);
    bar.set_message("-");
    bar.enable_steady_tick(Duration::from_millis(200));
    Ok(bar)
}

// ---------------------------------------------------------------------------
// The agent

/// Resolves once `stop` turns true; never without one, nor when its sender
/// is gone without asking (a dropped sender must not read as "stop now",
/// which would spin the loops).
async fn stop_requested(stop: Option<watch::Receiver<bool>>) {
    if let Some(mut s) = stop
        && s.wait_for(|v| *v).await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await
}

struct Agent {
    args: SyncArgs,
    kinds: Vec<ChangeKind>,
    /// The kinds as stored with the checkpoint, `AUDIT_FINDING,CADRE`.
    kinds_key: String,
    sink: Sink,
    feed: ChangeFeedServiceClient<Channel>,
    records: RecordServiceClient<Channel>,
    cadres: CadreServiceClient<Channel>,
    system: SystemServiceClient<Channel>,
    /// The checkpointed cursor; `None` until a snapshot completes.
    cursor: Option<String>,
    /// Consecutive transient failures, for the backoff.
    failures: u32,
    /// Expired cursors since the feed last answered; reset by any page or frame.
    expired_in_a_row: u32,
    greeted: bool,
    summary: SyncSummary,
    bar: indicatif::ProgressBar,
}

impl Agent {
    fn new(
        args: SyncArgs,
        kinds: Vec<ChangeKind>,
        sink: Sink,
        channel: Channel,
        bar: indicatif::ProgressBar,
    ) -> Agent {
        let mut names: Vec<&str> = kinds.iter().map(|k| kind_suffix(*k)).collect();
        names.sort();
        Agent {
            kinds_key: names.join(","),
            kinds,
            sink,
            feed: ChangeFeedServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            records: RecordServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            cadres: CadreServiceClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            system: SystemServiceClient::new(channel),
            cursor: None,
            failures: 0,
            expired_in_a_row: 0,
            greeted: false,
            summary: SyncSummary::default(),
            bar,
            args,
        }
    }

    fn stopped(&self) -> bool {
        self.args.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Sleeps `d`, or less when told to stop; true when told to stop.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopped(),
            _ = stop_requested(self.args.stop.clone()) => true,
        }
    }

    fn say(&self, text: &str) {
        self.bar.suspend(|| eprintln!("{text}"));
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        let stored = self.sink.load().await?;
        if stored.cursor.is_some() && stored.kinds != self.kinds_key {
            self.say(&format!(
                "the copy was synced for kinds {}; re-snapshotting for {}",
                stored.kinds, self.kinds_key
            ));
        } else {
            self.cursor = stored.cursor;
        }
        self.summary.cursor = self.cursor.clone().unwrap_or_default();
        loop {
            if self.stopped() {
                return Ok(());
            }
            match self.round().await {
                Ok(()) => match self.args.mode {
                    SyncMode::Once => return Ok(()),
                    SyncMode::Interval(d) => {
                        if self.pause(d).await {
                            return Ok(());
                        }
                    }
                    SyncMode::Follow => {}
                },
                Err(Failure::Expired { oldest }) => {
                    self.expired_in_a_row += 1;
                    if self.expired_in_a_row > MAX_EXPIRED_IN_A_ROW {
                        bail!(
                            "the cursor expired {} times in a row: the server keeps changes \
                             for less time than a snapshot takes",
                            self.expired_in_a_row
                        );
                    }
                    self.summary.cursor_expired += 1;
                    tracing::debug!(%oldest, "cursor expired");
                    self.say("cursor expired; re-snapshotting");
                    self.cursor = None;
                }
                Err(Failure::Transient(e)) => {
                    if let Some(tls) = connect::tls_probe(&self.args.connection()).await {
                        return Err(connect::tls_refusal(
                            &tls,
                            "a test connection",
                            &self.args.connection(),
                        ));
                    }
                    self.failures += 1;
                    self.summary.retries += 1;
                    if self.args.mode == SyncMode::Once && self.failures >= ONCE_TRIES {
                        return Err(e.context(format!(
                            "giving up after {ONCE_TRIES} tries; everything applied so far is \
                             checkpointed, and a re-run continues from there"
                        )));
                    }
                    let wait = backoff(self.failures);
                    self.say(&format!(
                        "{e:#}; retrying in {}",
                        humantime::format_duration(wait)
                    ));
                    if self.pause(wait).await {
                        return Ok(());
                    }
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    /// Snapshot when there is no cursor, then catch up or follow.
    async fn round(&mut self) -> Result<(), Failure> {
        if !self.greeted {
            self.preflight().await?;
        }
        if self.cursor.is_none() {
            self.snapshot().await?;
        }
        match self.args.mode {
            SyncMode::Once | SyncMode::Interval(_) => self.drain().await,
            SyncMode::Follow => self.follow().await,
        }
    }

    /// Fails early and clearly on a refused certificate, before touching the copy.
    async fn preflight(&mut self) -> Result<(), Failure> {
        if let Some(tls) = connect::tls_probe(&self.args.connection()).await {
            return Err(Failure::Fatal(connect::tls_refusal(
                &tls,
                "a test connection",
                &self.args.connection(),
            )));
        }
        let me = self
            .system
            .who_am_i(call(proto::WhoAmIRequest {}))
            .await
            .map_err(|s| classify(s, "WhoAmI", &self.args))?
            .into_inner();
        tracing::info!(principal = %me.principal, kinds = %self.kinds_key, "syncing as");
        self.greeted = true;
        self.failures = 0;
        Ok(())
    }

    async fn write(
        &mut self,
        items: &[Item],
        snapshot: bool,
        checkpoint: Checkpoint<'_>,
    ) -> Result<(), Failure> {
        let w = self.sink.write(items, snapshot, checkpoint).await?;
        self.summary.applied += w.applied;
        self.summary.unchanged += w.unchanged;
        self.bar.inc(w.applied);
        if let Some(last) = items.iter().map(|i| i.commit_time_us).max()
            && !snapshot
        {
            let lag = Duration::from_micros(now_us().saturating_sub(last).max(0) as u64);
            self.bar.set_message(format!("{:.1} s", lag.as_secs_f64()));
        }
        Ok(())
    }

    fn set_cursor(&mut self, cursor: String) {
        self.summary.cursor = cursor.clone();
        self.cursor = Some(cursor);
    }

    /// Lists every wanted record kind, then cadres, and stores the cursor of
    /// the first listing once all of it is applied: every listing after that
    /// cursor was taken only holds states at or after it, and what changed
    /// after it comes again from the feed, where the revision check skips
    /// what the snapshot already applied.
    async fn snapshot(&mut self) -> Result<(), Failure> {
        let kinds_key = self.kinds_key.clone();
        self.write(&[], true, Checkpoint::SnapshotStart { kinds: &kinds_key })
            .await?;
        let names: Vec<String> = self.kinds.iter().map(|k| kind_cli_name(*k)).collect();
        self.say(&format!("snapshotting {}", names.join(",")));
        let mut cursor: Option<String> = None;
        let wanted: HashSet<ChangeKind> = self.kinds.iter().copied().collect();
        for kind in self.kinds.clone() {
            let Some(rk) = record_kind(kind) else {
                continue;
            };
            let filter = format!(
                "kind = \"{}\"",
                rk.as_str_name().trim_start_matches("RECORD_KIND_")
            );
            let mut token = String::new();
            loop {
                let page = self
                    .records
                    .list_records(call(proto::ListRecordsRequest {
                        parent: "cadres/-".into(),
                        page_size: self.args.page_size,
                        page_token: token,
                        filter: filter.clone(),
                    }))
                    .await
                    .map_err(|s| classify(s, "ListRecords", &self.args))?
                    .into_inner();
                cursor.get_or_insert(page.cursor);
                let items: Vec<Item> = page
                    .records
                    .into_iter()
                    .filter_map(Item::from_record)
                    .filter(|i| wanted.contains(&i.kind))
                    .collect();
                self.write(&items, true, Checkpoint::Keep).await?;
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        if wanted.contains(&ChangeKind::Cadre) {
            if cursor.is_none() {
                // ListCadres carries no cursor: take one before listing, so
                // every cadre change from then on comes again from the feed.
                let probe = self
                    .records
                    .list_records(call(proto::ListRecordsRequest {
                        parent: "cadres/-".into(),
                        page_size: 1,
                        ..Default::default()
                    }))
                    .await
                    .map_err(|s| classify(s, "ListRecords", &self.args))?
                    .into_inner();
                cursor = Some(probe.cursor);
            }
            let mut token = String::new();
            loop {
                let page = self
                    .cadres
                    .list_cadres(call(proto::ListCadresRequest {
                        page_size: self.args.page_size,
                        page_token: token,
                        filter: String::new(),
                    }))
                    .await
                    .map_err(|s| classify(s, "ListCadres", &self.args))?
                    .into_inner();
                let items = page
                    .cadres
                    .into_iter()
                    .map(Item::from_cadre)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                self.write(&items, true, Checkpoint::Keep).await?;
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        let cursor = cursor.context("the snapshot listing returned no cursor")?;
        self.write(
            &[],
            true,
            Checkpoint::SnapshotDone {
                cursor: &cursor,
                kinds: &kinds_key,
            },
        )
        .await?;
        self.summary.snapshots += 1;
        self.set_cursor(cursor);
        Ok(())
    }

    fn kinds_i32(&self) -> Vec<i32> {
        self.kinds.iter().map(|k| *k as i32).collect()
    }

    /// Pages through `ListChanges` until the cursor stops moving; each page and
    /// the cursor after it commit together.
    async fn drain(&mut self) -> Result<(), Failure> {
        loop {
            let after = self.cursor.clone().unwrap_or_default();
            let page = self
                .feed
                .list_changes(call(proto::ListChangesRequest {
                    after_cursor: after.clone(),
                    kinds: self.kinds_i32(),
                    page_size: self.args.page_size,
                }))
                .await
                .map_err(|s| classify(s, "ListChanges", &self.args))?
                .into_inner();
            self.failures = 0;
            self.expired_in_a_row = 0;
            let items: Vec<Item> = page
                .events
                .into_iter()
                .filter_map(Item::from_event)
                .collect();
            if page.next_cursor.is_empty() || page.next_cursor == after {
                return Ok(());
            }
            self.write(&items, false, Checkpoint::Cursor(&page.next_cursor))
                .await?;
            self.set_cursor(page.next_cursor);
            if self.stopped() {
                return Ok(());
            }
        }
    }

    /// Follows a `WatchChanges` stream until told to stop; frames that arrive
    /// together commit together, bookmarks just move the cursor.
    async fn follow(&mut self) -> Result<(), Failure> {
        let after = self.cursor.clone().unwrap_or_default();
        let mut stream = self
            .feed
            .watch_changes(proto::WatchChangesRequest {
                after_cursor: after,
                kinds: self.kinds_i32(),
            })
            .await
            .map_err(|s| classify(s, "WatchChanges", &self.args))?
            .into_inner();
        let stop = stop_requested(self.args.stop.clone());
        tokio::pin!(stop);
        let ended = || Failure::Transient(anyhow!("the server ended the watch stream"));
        loop {
            let first = tokio::select! {
                m = stream.message() => m,
                _ = &mut stop => return Ok(()),
            };
            let mut frames = match first {
                Ok(Some(f)) => vec![f],
                Ok(None) => return Err(ended()),
                Err(s) => return Err(classify(s, "WatchChanges", &self.args)),
            };
            // Whatever else has already arrived joins this transaction.
            let mut after_batch: Option<Failure> = None;
            while frames.len() < WATCH_BATCH {
                match stream.message().now_or_never() {
                    Some(Ok(Some(f))) => frames.push(f),
                    Some(Ok(None)) => {
                        after_batch = Some(ended());
                        break;
                    }
                    Some(Err(s)) => {
                        after_batch = Some(classify(s, "WatchChanges", &self.args));
                        break;
                    }
                    None => break,
                }
            }
            self.failures = 0;
            self.expired_in_a_row = 0;
            let mut cursor = None;
            let mut items = Vec::new();
            for frame in frames {
                match frame.frame {
                    Some(watch_changes_response::Frame::Event(e)) => {
                        cursor = Some(e.cursor.clone());
                        items.extend(Item::from_event(e));
                    }
                    Some(watch_changes_response::Frame::Bookmark(b)) => cursor = Some(b.cursor),
                    None => {}
                }
            }
            if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
                self.write(&items, false, Checkpoint::Cursor(&cursor))
                    .await?;
                self.set_cursor(cursor);
            }
            if let Some(f) = after_batch {
                return Err(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }

    #[test]
    fn a_partial_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.ndjson");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        drop_partial_line(&mut f).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        std::fs::write(&path, "{\"b\":").unwrap();
        drop_partial_line(&mut f).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    async fn row(m: &mut Mirror, name: &str) -> (i64, String, Option<Vec<u8>>) {
        let r = sqlx::query(
            "SELECT revision, CASE WHEN out_of_view = 1 THEN 'OUT_OF_VIEW' ELSE state END, body \
                 FROM mirror_resources WHERE resource = $1",
        )
        .bind(format!("cadres/a/records/{name}"))
        .fetch_one(&mut m.conn)
        .await
        .unwrap();
        (r.get(0), r.get(1), r.get(2))
    }

    /// A mirror made before the JSON and typed columns gets them on open, and
    /// keeps its rows.
    #[tokio::test]
    async fn an_older_mirror_gains_the_json_columns() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        {
            let mut conn = SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true)
                .connect()
                .await
                .unwrap();
            sqlx::raw_sql(
                "CREATE TABLE mirror_resources (resource TEXT PRIMARY KEY, kind TEXT NOT NULL, \
                 revision INTEGER NOT NULL, state TEXT NOT NULL, body BLOB, \
                 commit_time_us INTEGER NOT NULL); \
                 INSERT INTO mirror_resources VALUES ('cadres/a/records/x', 'AUDIT_FINDING', 1, \
                 'ACTIVE', x'00', 1);",
            )
            .execute(&mut conn)
            .await
            .unwrap();
        }
        let mut m = Mirror::open(&url).await.unwrap();
        let row =
            sqlx::query("SELECT revision, body_json, cadre, event_date FROM mirror_resources")
                .fetch_one(&mut m.conn)
                .await
                .unwrap();
        assert_eq!(row.get::<i64, _>(0), 1);
        assert_eq!(row.get::<Option<String>, _>(1), None);
        // Opening again finds the columns present.
        drop(m);
        Mirror::open(&url).await.unwrap();
    }

    #[tokio::test]
    async fn the_mirror_applies_only_newer_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let mut m = Mirror::open(&url).await.unwrap();
        let item = |name: &str, rev: i64, retracted: bool| Item {
            resource: format!("cadres/a/records/{name}"),
            kind: ChangeKind::AuditFinding,
            revision: rev,
            retracted,
            out_of_view: false,
            body: vec![rev as u8],
            json: serde_json::json!({ "revision": rev.to_string() }),
            cadre: "cadres/a".into(),
            event_date: "2025-06-30".into(),
            commit_time_us: rev,
            event: None,
        };
        let w = m
            .write(
                &[
                    item("b", 5, false),
                    item("b", 5, false),
                    item("b", 3, false),
                ],
                false,
                Checkpoint::Cursor("c1"),
            )
            .await
            .unwrap();
        assert_eq!((w.applied, w.unchanged), (1, 2));
        let w = m
            .write(&[item("b", 7, true)], false, Checkpoint::Cursor("c2"))
            .await
            .unwrap();
        assert_eq!(w.applied, 1);
        assert_eq!(row(&mut m, "b").await, (7, "RETRACTED".into(), None));

        // A snapshot that lists `c` only: `b` (retracted) and `d` are no
        // longer visible and are marked out of view, at their revisions.
        m.write(&[item("d", 8, false)], false, Checkpoint::Cursor("c3"))
            .await
            .unwrap();
        m.write(
            &[],
            true,
            Checkpoint::SnapshotStart {
                kinds: "AUDIT_FINDING",
            },
        )
        .await
        .unwrap();
        // Without a completed snapshot there is no cursor to resume from.
        assert_eq!(m.load().await.unwrap().cursor, None);
        m.write(&[item("c", 9, false)], true, Checkpoint::Keep)
            .await
            .unwrap();
        let w = m
            .write(
                &[],
                true,
                Checkpoint::SnapshotDone {
                    cursor: "c4",
                    kinds: "AUDIT_FINDING",
                },
            )
            .await
            .unwrap();
        assert_eq!(w.applied, 2);
        assert_eq!(row(&mut m, "b").await, (7, "OUT_OF_VIEW".into(), None));
        let stored = m.load().await.unwrap();
        assert_eq!(stored.cursor.as_deref(), Some("c4"));
        assert_eq!(stored.kinds, "AUDIT_FINDING");
        assert_eq!(row(&mut m, "c").await, (9, "ACTIVE".into(), Some(vec![9])));
        assert_eq!(row(&mut m, "d").await, (8, "OUT_OF_VIEW".into(), None));
        // Coming back into view at the same revision restores it.
        m.write(&[item("d", 8, false)], false, Checkpoint::Cursor("c4"))
            .await
            .unwrap();
        assert_eq!(row(&mut m, "d").await, (8, "ACTIVE".into(), Some(vec![8])));
        // OUT_OF_VIEW applies at a revision at least the one held, not below,
        // and not twice.
        let gone = |rev: i64| Item {
            out_of_view: true,
            body: Vec::new(),
            json: serde_json::Value::Null,
            ..item("d", rev, false)
        };
        let w = m
            .write(
                &[gone(7), gone(8), gone(8)],
                false,
                Checkpoint::Cursor("c4"),
            )
            .await
            .unwrap();
        assert_eq!((w.applied, w.unchanged), (1, 2));
        assert_eq!(row(&mut m, "d").await, (8, "OUT_OF_VIEW".into(), None));
        // An older upsert delivered late does not bring it back.
        m.write(&[item("d", 7, false)], false, Checkpoint::Cursor("c4"))
            .await
            .unwrap();
        assert_eq!(row(&mut m, "d").await, (8, "OUT_OF_VIEW".into(), None));
        // Coming back into view with a newer revision restores it.
        m.write(&[item("d", 10, false)], false, Checkpoint::Cursor("c5"))
            .await
            .unwrap();
        assert_eq!(
            row(&mut m, "d").await,
            (10, "ACTIVE".into(), Some(vec![10]))
        );
    }
}
