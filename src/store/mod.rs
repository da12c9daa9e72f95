//! The repository traits every backend implements (bundled as `Store`), their row types, and `connect` choosing a backend by URL scheme.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::digest::DigestKey;
use crate::domain::chain::{LogEntry, LogRow};
use crate::domain::states::{ChangeOp, RecordState, RequestState};
use crate::error::Result;
use crate::informant::Sealed;

pub mod digests;
mod plan;
mod postgres;
mod sql;
mod sqlite;

#[cfg(test)]
mod suite;
#[doc(hidden)]
pub mod test_db;

pub(crate) use plan::{BatchPlan, SourceKey, plan_batch};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// One post of a cadre, stored as JSON beside the cadre.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostRow {
    pub unit_name: String,
    pub unit_credit_code: String,
    pub title: String,
    pub rank: String,
    pub unit_head: bool,
    pub start_date: String,
    pub end_date: String,
}

/// A cadre as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CadreRow {
    pub id: String,
    pub id_number: String,
    pub display_name: String,
    pub gender: i32,
    pub birth_date: String,
    pub managing_division: String,
    pub posts: Vec<PostRow>,
    pub revision: i64,
    pub create_time_us: i64,
    pub update_time_us: i64,
}

/// One outbox row, written in the same transaction as the change it describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub op: ChangeOp,
    pub resource: String,
    /// The text of a [`ChangeKind`](crate::domain::states::ChangeKind).
    pub kind: String,
    pub revision: i64,
    pub division: String,
    /// The managing division the resource's cadre left, on the rows a move
    /// writes (DESIGN §5); `division` is then the one it moved to. The store
    /// sets it on the cadre's own row when an update changes the division.
    pub from_division: Option<String>,
}

/// One move of a cadre to another managing division, kept for good (change
/// rows are pruned): what a body the cadre left may still be shown of it is
/// fixed as at the move (DESIGN §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CadreMove {
    /// Seq of the cadre's change row of the move (orders the moves).
    pub seq: i64,
    pub from_division: String,
    pub to_division: String,
    pub move_time_us: i64,
    /// When a matter record about the cadre was last written, at the move.
    pub last_matter_write_us: Option<i64>,
}

/// A stored response for an AIP-155 request id, scoped to the calling system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    pub system: String,
    pub request_id: String,
    pub method: String,
    /// Hex SHA-256 of the request message, so a reused id with other content is told apart.
    pub request_sha256: String,
    pub response: Vec<u8>,
}

/// Everything a successful write records beside its data, inside its own transaction.
#[derive(Clone, Debug)]
pub struct WriteMeta {
    pub log: LogEntry,
    /// Outbox rows, given consecutive seqs in this order.
    pub changes: Vec<Change>,
    pub idempotency: Option<Idempotency>,
}

/// Which cadres a list may return.
#[derive(Clone, Debug, Default)]
pub struct CadreQuery {
    /// Managing-division prefix of the caller's jurisdiction ("" for all).
    pub jurisdiction_prefix: String,
    /// Further managing-division prefix from the filter.
    pub division_prefix: Option<String>,
    /// Display name: exact, or prefix when `name_is_prefix`.
    pub name: Option<String>,
    pub name_is_prefix: bool,
    /// Only cadres with a post in the unit of this 统一社会信用代码 (current
    /// or past: the caller tells them apart).
    pub unit_credit_code: Option<String>,
    /// Keyset pagination: ids strictly greater.
    pub after_id: Option<String>,
    pub limit: i64,
}

/// Filters for reading the access log.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub principal: Option<String>,
    /// Principal URI prefix ("own calls": agency and division).
    pub principal_prefix: Option<String>,
    pub cadre: Option<String>,
    pub method: Option<String>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    pub after_seq: i64,
    pub limit: i64,
    /// A jurisdiction prefix (`PP`, `PPCC`, a county code): only rows about a
    /// cadre whose managing division starts with it, or made by a system whose
    /// division does. `None` reads every row.
    pub scope: Option<String>,
    /// The `cadre` filter matches only rows of calls that succeeded: a
    /// subject view shows no resources of a failed call, so a filter on them
    /// must not find it either.
    pub cadre_ok_only: bool,
}

/// A row read by `list_access_events`, and whether it is about a cadre inside
/// the query's scope (always true without a scope): such rows are shown in
/// full to the scope's discipline system, the others in the subject view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogHit {
    pub row: LogRow,
    pub about_scope: bool,
}

/// A signed checkpoint of the access-log chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRow {
    pub seq: i64,
    pub hash: String,
    pub time_us: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// A record as stored. `division` is the cadre's current managing division,
/// joined on read (records follow their cadre when it moves).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordRow {
    pub id: String,
    pub cadre_id: String,
    pub kind: String,
    pub owner_system: String,
    pub owner_agency: String,
    pub owner_division: String,
    pub source_record_id: String,
    pub source_version: i64,
    pub revision: i64,
    pub event_date: String,
    pub classification: String,
    pub state: RecordState,
    pub retraction_reason: String,
    /// The encoded `Record` with only its payload set, informant removed.
    pub payload: Vec<u8>,
    pub payload_sha256: String,
    pub informant: Option<Sealed>,
    pub transfer_agency: String,
    pub transfer_division: String,
    pub submitting_system: String,
    pub update_time_us: i64,
    pub division: String,
}

/// What a submission did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// A new record or a newer version was stored (new revision).
    Written(RecordRow),
    /// The same version with the same content: the stored record, unchanged.
    Unchanged(RecordRow),
    /// An older version: nothing changed; the current record.
    Stale(RecordRow),
}

impl SubmitOutcome {
    pub fn row(&self) -> &RecordRow {
        match self {
            SubmitOutcome::Written(r) | SubmitOutcome::Unchanged(r) | SubmitOutcome::Stale(r) => r,
        }
    }
}

/// Builds, from the outcome of every item, the batch's access-log row and its
/// stored response for the request id; called inside the transaction.
pub type FinishBatch<'a> =
    &'a (dyn Fn(&[Result<SubmitOutcome>]) -> (LogEntry, Option<Idempotency>) + Send + Sync);

/// The same for a batch of cadres.
pub type FinishCadres<'a> =
    &'a (dyn Fn(&[Result<()>]) -> (LogEntry, Option<Idempotency>) + Send + Sync);

/// An integrity-opinion request as stored; `cadres` are cadre ids in request order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpinionRequestRow {
    pub id: String,
    pub requester: String,
    pub requester_agency: String,
    pub requester_division: String,
    pub purpose: String,
    pub due_date: String,
    pub state: RequestState,
    pub note: String,
    pub withdraw_reason: String,
    pub warnings: Vec<String>,
    pub revision: i64,
    pub create_time_us: i64,
    pub update_time_us: i64,
    pub cadres: Vec<String>,
}

/// One immutable reply about one cadre of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyRow {
    pub id: String,
    pub request_id: String,
    pub cadre_id: String,
    pub verdict: String,
    pub text: String,
    pub cited_records: Vec<String>,
    pub signer: String,
    pub as_of_us: i64,
    pub correction_reason: String,
    pub corrects: String,
    pub replier: String,
    pub purpose: String,
    pub revision: i64,
    pub create_time_us: i64,
    /// The verdict the rules gave the replier when it replied (DESIGN §6);
    /// empty for replies given before drafts were recorded.
    pub draft_verdict: String,
    /// Why a verdict kinder than `draft_verdict` was given; empty otherwise.
    pub deviation_reason: String,
}

/// Which opinion requests a list returns.
#[derive(Clone, Debug, Default)]
pub struct OpinionQuery {
    /// Only requests of this requesting body (agency, division).
    pub requester: Option<(String, String)>,
    /// Only requests naming a cadre managed under this prefix…
    pub cadre_prefix: Option<String>,
    /// …or with a reply by a system whose URI starts with this (a discipline
    /// body keeps the pieces it replied to after the cadre moved, DESIGN §6).
    pub replier_prefix: Option<String>,
    pub state: Option<RequestState>,
    pub after_id: Option<String>,
    pub limit: i64,
}

/// Which records a list returns.
#[derive(Clone, Debug, Default)]
pub struct RecordQuery {
    /// One cadre, or every cadre in the jurisdiction.
    pub cadre_id: Option<String>,
    pub jurisdiction_prefix: String,
    /// Kinds to include; empty means none.
    pub kinds: Vec<String>,
    pub state: Option<RecordState>,
    pub updated_from_us: Option<i64>,
    pub updated_before_us: Option<i64>,
    /// Snapshot: only revisions at or below this change seq.
    pub max_revision: i64,
    pub after_id: Option<String>,
    pub limit: i64,
}

/// One outbox row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRow {
    pub seq: i64,
    /// The text of a [`ChangeOp`], and `kind` of a
    /// [`ChangeKind`](crate::domain::states::ChangeKind), as stored: on a
    /// shared database a newer server may have written one this one does not
    /// know, which the feed skips rather than fails on.
    pub op: String,
    pub resource: String,
    pub kind: String,
    pub revision: i64,
    pub division: String,
    /// Set on the rows a move of a cadre wrote: the division it left.
    pub from_division: Option<String>,
    pub commit_time_us: i64,
}

/// Persistence for the exchange: every repository below, held as
/// `Arc<dyn Store>`. Lookups return `Ok(None)` for a missing row; mutations of
/// a missing row return `Error::NotFound`. Writes that succeed append their
/// access-log row and outbox row in the same transaction.
///
/// Implemented for every type implementing all the repositories; a caller of
/// `dyn Store` reaches their methods without importing them.
pub trait Store:
    CadreRepo
    + RecordRepo
    + OpinionRepo
    + ChangeRepo
    + AccessLogRepo
    + RequestRepo
    + StoreAdmin
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: CadreRepo
        + RecordRepo
        + OpinionRepo
        + ChangeRepo
        + AccessLogRepo
        + RequestRepo
        + StoreAdmin
        + Send
        + Sync
        + ?Sized
{
}

/// Cadres: registration, updates under a revision check, lookups and lists.
#[async_trait]
pub trait CadreRepo: Send + Sync {
    /// Inserts a cadre. `AlreadyExists` when the id number is registered (or the
    /// request id was taken concurrently).
    async fn create_cadre(&self, cadre: &CadreRow, meta: WriteMeta) -> Result<()>;

    /// Replaces a cadre if its stored revision is still `expected_revision`;
    /// `Aborted` (CONCURRENT_MODIFICATION) otherwise, `NotFound` when gone.
    /// When the managing division changes, the same transaction records the
    /// move and writes a change row for each of the cadre's records and each
    /// opinion request naming it, all carrying the division left (DESIGN §5).
    async fn update_cadre(
        &self,
        cadre: &CadreRow,
        expected_revision: i64,
        meta: WriteMeta,
    ) -> Result<()>;

    /// Inserts cadres in one transaction, each under its own savepoint; an item
    /// whose id number is already registered fails with `AlreadyExists` alone.
    async fn create_cadres(
        &self,
        items: Vec<CadreRow>,
        finish: FinishCadres<'_>,
    ) -> Result<Vec<Result<()>>>;

    /// The cadre with this id; `Ok(None)` when there is none.
    async fn get_cadre(&self, id: &str) -> Result<Option<CadreRow>>;

    /// The moves of a cadre to other managing divisions, oldest first.
    async fn cadre_moves(&self, id: &str) -> Result<Vec<CadreMove>>;

    /// The cadre registered under this id number; `Ok(None)` when there is none.
    async fn get_cadre_by_id_number(&self, id_number: &str) -> Result<Option<CadreRow>>;

    /// The cadres of `ids` that exist, in no particular order.
    async fn get_cadres(&self, ids: &[String]) -> Result<Vec<CadreRow>>;

    /// The cadres registered under any of `id_numbers`, in no particular order.
    async fn get_cadres_by_id_numbers(&self, id_numbers: &[String]) -> Result<Vec<CadreRow>>;

    /// Cadres matching `query`, ordered by id.
    async fn list_cadres(&self, query: &CadreQuery) -> Result<Vec<CadreRow>>;
}

/// Records: idempotent batch submission, retraction and every way of reading them.
#[async_trait]
pub trait RecordRepo: Send + Sync {
    /// Submits records in one transaction, each item under its own savepoint so
    /// that good items are stored even when others fail. Per item: a new record
    /// or newer version is `Written` with a new revision (the change seq); the
    /// same version with the same content is `Unchanged`; an older version is
    /// `Stale`; the same version with other content is `Aborted`
    /// (VERSION_CONFLICT). `finish` makes the batch's log row and idempotency
    /// record from the outcomes; both are written in the same transaction.
    ///
    /// Payload digests are compared with `digest`, so a stored value of an
    /// older version (an unkeyed SHA-256) matches the keyed digest of the same
    /// content.
    async fn submit_records(
        &self,
        items: Vec<RecordRow>,
        digest: &DigestKey,
        finish: FinishBatch<'_>,
    ) -> Result<Vec<Result<SubmitOutcome>>>;

    /// Retracts a record at `expected_revision` (new revision, RETRACT change).
    async fn retract_record(
        &self,
        id: &str,
        expected_revision: i64,
        reason: &str,
        submitting_system: &str,
        log: LogEntry,
    ) -> Result<RecordRow>;

    /// The record with this id; `Ok(None)` when there is none.
    async fn get_record(&self, id: &str) -> Result<Option<RecordRow>>;

    /// The records of `ids` that exist and whose cadre is managed within
    /// `jurisdiction_prefix` ("" for all), in no particular order: one query
    /// for a page of feed events instead of one per event, and none of the
    /// rows the caller could not see anyway.
    async fn get_records(
        &self,
        ids: &[String],
        jurisdiction_prefix: &str,
    ) -> Result<Vec<RecordRow>>;

    /// The records a system knows by any of `source_record_ids`.
    async fn find_records(
        &self,
        owner_system: &str,
        source_record_ids: &[String],
    ) -> Result<Vec<RecordRow>>;

    /// The record a system knows by its own source id.
    async fn find_record(
        &self,
        owner_system: &str,
        source_record_id: &str,
    ) -> Result<Option<RecordRow>>;

    /// Records matching `query`, ordered by id.
    async fn list_records(&self, query: &RecordQuery) -> Result<Vec<RecordRow>>;

    /// When a matter record about the cadre was last written (any state).
    async fn last_matter_write_us(&self, cadre_id: &str) -> Result<Option<i64>>;
}

/// Integrity-opinion requests and their immutable replies.
#[async_trait]
pub trait OpinionRepo: Send + Sync {
    /// Stores a new request with its cadres.
    async fn create_opinion_request(
        &self,
        request: &OpinionRequestRow,
        meta: WriteMeta,
    ) -> Result<()>;

    /// The request with its cadres in request order; `Ok(None)` when there is none.
    async fn get_opinion_request(&self, id: &str) -> Result<Option<OpinionRequestRow>>;

    /// Requests matching `query`, ordered by id.
    async fn list_opinion_requests(&self, query: &OpinionQuery) -> Result<Vec<OpinionRequestRow>>;

    /// Withdraws a PENDING request (FAILED_PRECONDITION NOT_PENDING otherwise).
    async fn withdraw_opinion_request(
        &self,
        id: &str,
        reason: &str,
        meta: WriteMeta,
    ) -> Result<OpinionRequestRow>;

    /// Adds an immutable reply; the request becomes REPLIED once every cadre has
    /// one. A withdrawn request takes no replies (FAILED_PRECONDITION).
    /// `meta.changes` holds the reply's change; the request's is added here.
    async fn add_opinion_reply(
        &self,
        reply: &ReplyRow,
        meta: WriteMeta,
    ) -> Result<OpinionRequestRow>;

    /// Replies of a request, oldest first.
    async fn opinion_replies(&self, request_id: &str) -> Result<Vec<ReplyRow>>;
}

/// The change feed: the outbox every write fills in its own transaction, read
/// in seq order (which is commit order), pruned from the old end.
#[async_trait]
pub trait ChangeRepo: Send + Sync {
    /// The newest change seq (0 when none).
    async fn change_head(&self) -> Result<i64>;

    /// Outbox rows with seq > `after`, in seq order.
    async fn list_changes(&self, after: i64, limit: i64) -> Result<Vec<ChangeRow>>;

    /// Deletes change rows committed before `before_us`, always keeping the
    /// newest; returns the feed floor (the highest pruned seq, 0 if none).
    async fn prune_changes(&self, before_us: i64) -> Result<i64>;

    /// The highest pruned seq: a cursor below it has lost changes.
    async fn feed_floor(&self) -> Result<i64>;

    /// Ticks after every commit that wrote change rows (in this process, and
    /// on PostgreSQL in any process through LISTEN/NOTIFY).
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// The hash-chained access log, its per-cadre index and its signed checkpoints.
#[async_trait]
pub trait AccessLogRepo: Send + Sync {
    /// Appends rows to the chain in one transaction (group commit); returns their seqs.
    async fn append_log(&self, entries: &[LogEntry]) -> Result<Vec<i64>>;

    /// Rows with seq > `after_seq`, in order, at most `limit`.
    async fn read_log(&self, after_seq: i64, limit: i64) -> Result<Vec<LogRow>>;

    /// Rows matching `query`, in seq order.
    async fn list_access_events(&self, query: &LogQuery) -> Result<Vec<LogHit>>;

    /// Chain head (seq, hash); (0, GENESIS) when empty.
    async fn log_head(&self) -> Result<(i64, String)>;

    /// Rows of the per-cadre index (`cadres/{id}`, seq) with `after_seq < seq`
    /// (and `seq <= through_seq` when given), ordered by seq then cadre.
    async fn log_cadre_index(
        &self,
        after_seq: i64,
        through_seq: Option<i64>,
    ) -> Result<Vec<(String, i64)>>;

    /// Row hash at `seq`, if the row exists.
    async fn log_hash_at(&self, seq: i64) -> Result<Option<String>>;

    /// Stores a checkpoint; when one is already stored for the same seq and
    /// key, that one is kept and this is a no-op (a retried run writes nothing twice).
    async fn insert_checkpoint(&self, checkpoint: &CheckpointRow) -> Result<()>;

    /// All checkpoints, oldest first.
    async fn checkpoints(&self) -> Result<Vec<CheckpointRow>>;

    /// The checkpoint with the highest seq (the latest signed among those);
    /// `Ok(None)` when there is none.
    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>>;
}

/// The AIP-155 replay cache: stored responses by (calling system, request id),
/// written by the write they answer, inside its transaction.
#[async_trait]
pub trait RequestRepo: Send + Sync {
    /// The stored response of an earlier call with this request id.
    async fn lookup_request(&self, system: &str, request_id: &str) -> Result<Option<Idempotency>>;
}

/// The database as a whole: which backend, its epoch, backup, shutdown, and
/// re-sealing informant blocks under a new key.
#[async_trait]
pub trait StoreAdmin: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Identity of this database's history; a restore sets a new one.
    async fn epoch(&self) -> Result<String>;

    /// Gives the store a new epoch, so that cursors issued before (by the
    /// original of a restored copy) are refused rather than silently skipping data.
    async fn renew_epoch(&self) -> Result<String>;

    /// Writes a consistent copy of the whole store to `out` (SQLite: `VACUUM
    /// INTO`); PostgreSQL answers FAILED_PRECONDITION: use `pg_dump`.
    async fn backup(&self, out: &std::path::Path) -> Result<()>;

    /// Closes the pool; later calls fail with `Unavailable`.
    async fn close(&self);

    /// Clears the space that updates and deletes of `tables` left behind, so
    /// that values they replaced (unkeyed digests, unpadded sealed blocks)
    /// stay readable in the database's files no longer: SQLite rebuilds the
    /// file (`VACUUM`) and truncates its WAL; PostgreSQL vacuums the tables
    /// (its WAL and archives keep what they logged, docs/deployment.md).
    /// Takes the write lock for as long as it runs.
    async fn scrub(&self, tables: &[&str]) -> Result<()>;

    /// Informant blocks sealed under any key but `key_id`, of records with id
    /// greater than `after_id`, ordered by record id, at most `limit`.
    async fn informant_blocks_not_under(
        &self,
        key_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<InformantBlock>>;

    /// Replaces informant blocks in one transaction, each only if the row
    /// still holds the block it was read with (same nonce), so that a block
    /// written meanwhile is never overwritten; returns how many were replaced.
    /// Content, revision and feed are untouched: the plaintext is the same.
    async fn reseal_informants(&self, blocks: &[Resealed]) -> Result<u64>;

    /// The access-log chain head when this store was first opened by a
    /// version that keys its digests (DESIGN §2), recorded on the first call
    /// and returned unchanged by every later one: rows at or below it were
    /// chained with unkeyed response digests, which cannot change.
    async fn digest_upgrade_head(&self) -> Result<(i64, String)>;

    /// Stored digests of `column` still in the unkeyed form of an older
    /// version, with keys after `after` in key order, at most `limit`.
    async fn unkeyed_digests(
        &self,
        column: DigestColumn,
        after: &DigestRowKey,
        limit: i64,
    ) -> Result<Vec<StoredDigest>>;

    /// Replaces stored digests in one transaction, each only if the row still
    /// holds the value it was read with; returns how many were replaced.
    async fn replace_digests(&self, replaced: &[(StoredDigest, String)]) -> Result<u64>;

    /// A value of the store's `meta` table.
    async fn meta(&self, key: &str) -> Result<Option<String>>;

    /// Sets a value of the store's `meta` table.
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
}

/// A stored column that holds digests over bytes that may include informant
/// data, keyed since DESIGN §2's round three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestColumn {
    /// `records.payload_sha256`, keyed by record id.
    RecordPayload,
    /// `record_versions.payload_sha256`, keyed by (owner system, source id, version).
    VersionPayload,
    /// `request_ids.request_sha256`, keyed by (system, request id).
    RequestDigest,
}

impl DigestColumn {
    pub const ALL: [DigestColumn; 3] = [
        DigestColumn::RecordPayload,
        DigestColumn::VersionPayload,
        DigestColumn::RequestDigest,
    ];

    /// `table.column`, for reports.
    pub fn name(self) -> &'static str {
        match self {
            DigestColumn::RecordPayload => "records.payload_sha256",
            DigestColumn::VersionPayload => "record_versions.payload_sha256",
            DigestColumn::RequestDigest => "request_ids.request_sha256",
        }
    }
}

/// The key of a row holding a digest: (id, "", 0) for records, (system,
/// request id, 0) for request ids, (owner system, source id, version) for
/// versions. The default sorts before every row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestRowKey(pub String, pub String, pub i64);

/// One stored digest and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDigest {
    pub column: DigestColumn,
    pub key: DigestRowKey,
    pub value: String,
}

/// Opens the store named by `url`: `sqlite:` or `postgres:`/`postgresql:`.
/// Migrations run before it is returned.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        anyhow::bail!(
            "unsupported store URL {:?}: use sqlite://PATH or postgres://…",
            redact_url(url)
        )
    }
}

/// The URL with any password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:****{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The distinct `cadres/{id}` prefixes of resource names, for the log's cadre index.
pub fn cadres_touched(resources: &[String]) -> Vec<String> {
    let mut out: Vec<String> = resources
        .iter()
        .filter_map(|r| {
            let rest = r.strip_prefix("cadres/")?;
            let id = rest.split('/').next()?;
            (!id.is_empty() && id != "-").then(|| format!("cadres/{id}"))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A record's stored informant block with what its AAD binds it to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InformantBlock {
    pub record_id: String,
    pub owner_system: String,
    pub source_record_id: String,
    pub sealed: Sealed,
}

/// A block re-encrypted under a new key, replacing the one with `old_nonce`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resealed {
    pub record_id: String,
    pub old_nonce: Vec<u8>,
    pub sealed: Sealed,
}
