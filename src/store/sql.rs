//! The store's one SQL body, instantiated for each backend by [`store_body!`].
//!
//! Both sqlx drivers take `$1`-style parameters, so one SQL text serves both
//! backends; the few places they differ are names the backend module defines
//! before invoking the macro:
//!
//! - `append_in_one_statement(tx, rows, lists, touched) -> Result<bool>`:
//!   the whole access-log append as one statement when the backend gains by it;
//! - `announce(tx)`: tells other server processes that changes commit with `tx`;
//! - `in_list(n)` and `list_arg(values)`: "column is one of the list bound as
//!   `$n`" (`json_each` on SQLite, `= ANY` on PostgreSQL) and that list's value;
//! - `STRPOS`: the SQL function finding a substring;
//! - on the store type: `begin()` (a write transaction), `writes()` (the pool
//!   for single-statement writes), and the fields `pool` (reads) and `changed`
//!   (this process's change-feed signal).
//!
//! The macro, not generic functions over `sqlx::Database`, because every query
//! would need `Encode`/`Decode`/`Executor` bounds per bound type; the macro keeps
//! the body plain Rust, compiled once per backend with its concrete sqlx types.

/// Defines the shared helpers and every repository trait for `$store` (and so
/// `Store`, by its blanket impl); the backend-specific `StoreAdmin` methods
/// (`backup`, `close`) come in `own`; `name` is what `backend()` returns.
/// `for_update` is appended to reads of the lock rows (the outbox counter and
/// the chain head).
macro_rules! store_body {
    (
        store: $store:ident,
        db: $db:ty,
        for_update: $for_update:literal,
        name: $name:literal,
        own: { $($own:tt)* } $(,)?
    ) => {
use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::{
    BatchPlan, CadreQuery, CadreRow, ChangeRow, CheckpointRow, FinishBatch, FinishCadres,
    Idempotency, LogHit, LogQuery, OpinionQuery, OpinionRequestRow, RecordQuery, RecordRow,
    ReplyRow, SourceKey, SubmitOutcome, WriteMeta, plan_batch,
    AccessLogRepo, CadreRepo, ChangeRepo, OpinionRepo, RecordRepo, RequestRepo, StoreAdmin,
};
use crate::domain::chain::{self, LogEntry, LogRow};
use crate::domain::clock::now_us;
use crate::domain::states::{ChangeKind, ChangeOp, RecordState, RequestState};
use crate::error::{Error, Reason, Result};
use crate::digest::DigestKey;
use crate::informant::Sealed;

type Db = $db;
type DbRow = <Db as sqlx::Database>::Row;
type DbConn = <Db as sqlx::Database>::Connection;
type DbPool = sqlx::Pool<Db>;

/// Gives a new database its epoch; a database that has one keeps it.
async fn init_epoch(pool: &DbPool) -> Result<()> {
    sqlx::query("INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING")
        .bind(uuid::Uuid::new_v4().to_string())
        .execute(pool)
        .await?;
    Ok(())
}

impl $store {
    /// The pool, for tests that tamper with rows directly.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Wakes this process's change-feed watchers after a commit.
    fn changed(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}


fn cadre_from_row(r: &DbRow) -> Result<CadreRow> {
    let posts: String = r.try_get("posts")?;
    Ok(CadreRow {
        id: r.try_get("id")?,
        id_number: r.try_get("id_number")?,
        display_name: r.try_get("display_name")?,
        gender: r.try_get::<i32, _>("gender")?,
        birth_date: r.try_get("birth_date")?,
        managing_division: r.try_get("managing_division")?,
        posts: serde_json::from_str(&posts).map_err(Error::internal)?,
        revision: r.try_get("revision")?,
        create_time_us: r.try_get("create_time_us")?,
        update_time_us: r.try_get("update_time_us")?,
    })
}

fn log_from_row(r: &DbRow) -> Result<LogRow> {
    let resources: String = r.try_get("resources")?;
    let policy_ids: String = r.try_get("policy_ids")?;
    Ok(LogRow {
        seq: r.try_get("seq")?,
        time_us: r.try_get("time_us")?,
        entry: LogEntry {
            principal: r.try_get("principal")?,
            fingerprint: r.try_get("fingerprint")?,
            officer: r.try_get("officer")?,
            method: r.try_get("method")?,
            resources: serde_json::from_str(&resources).map_err(Error::internal)?,
            purpose: r.try_get("purpose")?,
            decision: r.try_get("decision")?,
            policy_ids: serde_json::from_str(&policy_ids).map_err(Error::internal)?,
            request_id: r.try_get("request_id")?,
            status_code: r.try_get::<i32, _>("status_code")?,
            response_sha256: r.try_get("response_sha256")?,
        },
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The access-log columns in insert order.
const LOG_COLUMNS: &str = "INSERT INTO access_log (seq, time_us, principal, fingerprint, officer, method, \
     resources, purpose, decision, policy_ids, request_id, status_code, response_sha256, prev_hash, hash) ";

/// Adds `VALUES (…), (…)` for `rows` with their JSON-encoded resource and policy lists.
fn push_log_rows(q: &mut sqlx::QueryBuilder<Db>, rows: &[LogRow], lists: &[(String, String)]) {
    q.push_values(
        rows.iter().zip(lists),
        |mut b, (row, (resources, policy_ids))| {
            let e = &row.entry;
            b.push_bind(row.seq)
                .push_bind(row.time_us)
                .push_bind(e.principal.clone())
                .push_bind(e.fingerprint.clone())
                .push_bind(e.officer.clone())
                .push_bind(e.method.clone())
                .push_bind(resources.clone())
                .push_bind(e.purpose.clone())
                .push_bind(e.decision.clone())
                .push_bind(policy_ids.clone())
                .push_bind(e.request_id.clone())
                .push_bind(e.status_code)
                .push_bind(e.response_sha256.clone())
                .push_bind(row.prev_hash.clone())
                .push_bind(row.hash.clone());
        },
    );
}

/// Appends `entries` to the chain inside `tx`. The head row is the lock:
/// read with the backend's row lock, it serializes appenders (across
/// processes, on PostgreSQL) so the chain stays linear.
async fn append_in_tx(tx: &mut DbConn, entries: &[LogEntry]) -> Result<Vec<i64>> {
    let head = sqlx::query(concat!(
        "SELECT seq, hash FROM access_log_head WHERE id = 1",
        $for_update
    ))
    .fetch_one(&mut *tx)
    .await?;
    let (seq, hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    let rows = chain::extend(seq, &hash, now_us(), entries);
    let Some(last) = rows.last() else {
        return Ok(Vec::new());
    };
    let lists = rows
        .iter()
        .map(|row| {
            Ok((
                serde_json::to_string(&row.entry.resources).map_err(Error::internal)?,
                serde_json::to_string(&row.entry.policy_ids).map_err(Error::internal)?,
            ))
        })
        .collect::<Result<Vec<(String, String)>>>()?;
    let touched: Vec<(String, i64)> = rows
        .iter()
        .flat_map(|r| {
            super::cadres_touched(&r.entry.resources)
                .into_iter()
                .map(move |c| (c, r.seq))
        })
        .collect();
    let seqs = rows.iter().map(|r| r.seq).collect();
    if append_in_one_statement(tx, &rows, &lists, &touched).await? {
        return Ok(seqs);
    }
    // Multi-row statements: a group-commit batch, or one batch submission
    // naming a thousand cadres, costs a few statements rather than one per row.
    for (chunk, chunk_lists) in rows.chunks(CHUNK).zip(lists.chunks(CHUNK)) {
        let mut q = sqlx::QueryBuilder::new(LOG_COLUMNS);
        push_log_rows(&mut q, chunk, chunk_lists);
        q.build().execute(&mut *tx).await?;
    }
    for chunk in touched.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO access_log_cadres (cadre, seq) ");
        q.push_values(chunk, |mut b, (cadre, seq)| {
            b.push_bind(cadre.clone()).push_bind(*seq);
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE access_log_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(last.seq)
        .bind(&last.hash)
        .execute(&mut *tx)
        .await?;
    Ok(seqs)
}


/// Takes the outbox counter, the first lock of every write transaction (then the
/// chain head), and returns its value. Holding it until commit is what makes
/// commit order equal seq order.
async fn lock_counter(tx: &mut DbConn) -> Result<i64> {
    Ok(sqlx::query(concat!("SELECT seq FROM change_counter WHERE id = 1", $for_update))
        .fetch_one(&mut *tx)
        .await?
        .try_get("seq")?)
}

async fn set_counter(tx: &mut DbConn, seq: i64) -> Result<()> {
    sqlx::query("UPDATE change_counter SET seq = $1 WHERE id = 1")
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn insert_change(tx: &mut DbConn, seq: i64, c: &super::Change) -> Result<()> {
    sqlx::query(
        "INSERT INTO changes (seq, op, resource, kind, revision, division, commit_time_us, from_division) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(c.op.as_str())
    .bind(&c.resource)
    .bind(&c.kind)
    .bind(c.revision)
    .bind(&c.division)
    .bind(now_us())
    .bind(&c.from_division)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn insert_idempotency(tx: &mut DbConn, i: &Idempotency) -> Result<()> {
    let r = sqlx::query(
        "INSERT INTO request_ids (system, request_id, method, request_sha256, response, create_time_us) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&i.system)
    .bind(&i.request_id)
    .bind(&i.method)
    .bind(&i.request_sha256)
    .bind(&i.response)
    .bind(now_us())
    .execute(&mut *tx)
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            Err(Error::AlreadyExists(format!("request {}", i.request_id)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes the outbox row, the idempotency record and the access-log row of a
/// successful write; the counter was locked when the transaction began.
async fn finish_write(tx: &mut DbConn, counter: i64, meta: &WriteMeta) -> Result<()> {
    let mut seq = counter;
    for change in &meta.changes {
        seq += 1;
        insert_change(tx, seq, change).await?;
    }
    set_counter(tx, seq).await?;
    if let Some(i) = &meta.idempotency {
        insert_idempotency(tx, i).await?;
    }
    append_in_tx(tx, std::slice::from_ref(&meta.log)).await?;
    Ok(())
}

/// Inserts a cadre; `AlreadyExists` when its id number is registered.
async fn insert_cadre(tx: &mut DbConn, c: &CadreRow) -> Result<()> {
    let r = sqlx::query(
        "INSERT INTO cadres (id, id_number, display_name, gender, birth_date, managing_division, posts, \
         revision, create_time_us, update_time_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&c.id)
    .bind(&c.id_number)
    .bind(&c.display_name)
    .bind(c.gender)
    .bind(&c.birth_date)
    .bind(&c.managing_division)
    .bind(serde_json::to_string(&c.posts).map_err(Error::internal)?)
    .bind(c.revision)
    .bind(c.create_time_us)
    .bind(c.update_time_us)
    .execute(&mut *tx)
    .await;
    if let Err(e) = r {
        return Err(if is_unique_violation(&e) {
            Error::AlreadyExists("cadre with this id number".into())
        } else {
            e.into()
        });
    }
    Ok(())
}

/// A state column read back through its enum: only this code writes these
/// columns, so other text is a store fault, not something to pass on.
fn stored_state<T>(r: &DbRow, column: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let text: String = r.try_get(column)?;
    parse(&text).ok_or_else(|| Error::internal(anyhow::anyhow!("unknown {column} {text:?}")))
}

fn opinion_from_row(r: &DbRow) -> Result<OpinionRequestRow> {
    let warnings: String = r.try_get("warnings")?;
    Ok(OpinionRequestRow {
        id: r.try_get("id")?,
        requester: r.try_get("requester")?,
        requester_agency: r.try_get("requester_agency")?,
        requester_division: r.try_get("requester_division")?,
        purpose: r.try_get("purpose")?,
        due_date: r.try_get("due_date")?,
        state: stored_state(r, "state", RequestState::parse)?,
        note: r.try_get("note")?,
        withdraw_reason: r.try_get("withdraw_reason")?,
        warnings: serde_json::from_str(&warnings).map_err(Error::internal)?,
        revision: r.try_get("revision")?,
        create_time_us: r.try_get("create_time_us")?,
        update_time_us: r.try_get("update_time_us")?,
        cadres: Vec::new(),
    })
}

async fn request_cadres(pool: &DbPool, id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT cadre_id FROM opinion_request_cadres WHERE request_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| r.try_get("cadre_id").map_err(Error::from))
        .collect()
}

const RECORD_SELECT: &str =
    "SELECT r.*, c.managing_division AS division FROM records r JOIN cadres c ON c.id = r.cadre_id";

fn record_from_row(r: &DbRow) -> Result<RecordRow> {
    let key_id: Option<String> = r.try_get("informant_key_id")?;
    let informant = match key_id {
        Some(key_id) => Some(Sealed {
            key_id,
            nonce: r
                .try_get::<Option<Vec<u8>>, _>("informant_nonce")?
                .unwrap_or_default(),
            data: r
                .try_get::<Option<Vec<u8>>, _>("informant_data")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(RecordRow {
        id: r.try_get("id")?,
        cadre_id: r.try_get("cadre_id")?,
        kind: r.try_get("kind")?,
        owner_system: r.try_get("owner_system")?,
        owner_agency: r.try_get("owner_agency")?,
        owner_division: r.try_get("owner_division")?,
        source_record_id: r.try_get("source_record_id")?,
        source_version: r.try_get("source_version")?,
        revision: r.try_get("revision")?,
        event_date: r.try_get("event_date")?,
        classification: r.try_get("classification")?,
        state: stored_state(r, "state", RecordState::parse)?,
        retraction_reason: r.try_get("retraction_reason")?,
        payload: r.try_get("payload")?,
        payload_sha256: r.try_get("payload_sha256")?,
        informant,
        transfer_agency: r.try_get("transfer_agency")?,
        transfer_division: r.try_get("transfer_division")?,
        submitting_system: r.try_get("submitting_system")?,
        update_time_us: r.try_get("update_time_us")?,
        division: r.try_get("division")?,
    })
}

fn record_name(r: &RecordRow) -> String {
    format!("cadres/{}/records/{}", r.cadre_id, r.id)
}

fn concurrent() -> Error {
    Error::Aborted {
        reason: Reason::ConcurrentModification,
        message: "the record was written concurrently; retry".into(),
    }
}

/// The cadres whose `column` (a unique key) is any of `values`.
async fn cadres_where(
    pool: &DbPool,
    column: &'static str,
    values: &[String],
) -> Result<Vec<CadreRow>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM cadres WHERE {column} {list}",
        list = in_list(1)
    )))
    .bind(list_arg(values)?)
    .fetch_all(pool)
    .await?;
    rows.iter().map(cadre_from_row).collect()
}

/// Rows per multi-row INSERT, well below either backend's bound on bound parameters.
const CHUNK: usize = 500;

/// The current rows of the source records a batch names.
async fn stored_records(
    tx: &mut DbConn,
    items: &[RecordRow],
) -> Result<HashMap<SourceKey, RecordRow>> {
    let mut by_owner: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in items {
        by_owner
            .entry(&i.owner_system)
            .or_default()
            .push(&i.source_record_id);
    }
    let mut out = HashMap::new();
    for (owner, sids) in by_owner {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} WHERE r.owner_system = $1 \
             AND r.source_record_id {list}",
            list = in_list(2)
        )))
        .bind(owner)
        .bind(list_arg(&sids)?)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let row = record_from_row(r)?;
            out.insert(
                (row.owner_system.clone(), row.source_record_id.clone()),
                row,
            );
        }
    }
    Ok(out)
}

/// Digests of the stored versions of the source records for which the batch
/// brings a version older than the current one (read only when there is one).
async fn prior_versions(
    tx: &mut DbConn,
    items: &[RecordRow],
    stored: &HashMap<SourceKey, RecordRow>,
) -> Result<HashMap<(String, String, i64), String>> {
    let mut by_owner: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in items {
        let key = (i.owner_system.clone(), i.source_record_id.clone());
        if stored
            .get(&key)
            .is_some_and(|e| i.source_version < e.source_version)
        {
            by_owner
                .entry(&i.owner_system)
                .or_default()
                .push(&i.source_record_id);
        }
    }
    let mut out = HashMap::new();
    for (owner, sids) in by_owner {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT source_record_id, source_version, payload_sha256 FROM record_versions \
             WHERE owner_system = $1 AND source_record_id {list}",
            list = in_list(2)
        )))
        .bind(owner)
        .bind(list_arg(&sids)?)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            out.insert(
                (
                    owner.to_string(),
                    r.try_get("source_record_id")?,
                    r.try_get("source_version")?,
                ),
                r.try_get("payload_sha256")?,
            );
        }
    }
    Ok(out)
}

/// Executes a batch statement; a unique violation means another writer got
/// there first, which the counter lock rules out, so it is reported as a
/// retryable conflict rather than a fault.
async fn execute_batch(
    tx: &mut DbConn,
    mut q: sqlx::QueryBuilder<Db>,
) -> Result<u64> {
    match q.build().execute(&mut *tx).await {
        Ok(done) => Ok(done.rows_affected()),
        Err(e) if is_unique_violation(&e) => Err(concurrent()),
        Err(e) => Err(e.into()),
    }
}

/// Stores what `plan_batch` decided: versions, new records, rewritten records
/// and outbox rows, a few multi-row statements for the whole batch.
async fn write_plan(tx: &mut DbConn, plan: &BatchPlan) -> Result<()> {
    for chunk in plan.versions.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO record_versions (owner_system, source_record_id, source_version, payload_sha256) ",
        );
        q.push_values(chunk, |mut b, v| {
            b.push_bind(v.0.clone())
                .push_bind(v.1.clone())
                .push_bind(v.2)
                .push_bind(v.3.clone());
        });
        execute_batch(tx, q).await?;
    }
    for chunk in plan.inserts.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO records (id, cadre_id, source_version, revision, event_date, classification, state, \
             retraction_reason, payload, payload_sha256, informant_key_id, informant_nonce, informant_data, \
             transfer_agency, transfer_division, submitting_system, update_time_us, kind, owner_system, \
             owner_agency, owner_division, source_record_id) ",
        );
        q.push_values(chunk, |mut b, row| {
            b.push_bind(row.id.clone())
                .push_bind(row.cadre_id.clone())
                .push_bind(row.source_version)
                .push_bind(row.revision)
                .push_bind(row.event_date.clone())
                .push_bind(row.classification.clone())
                .push_bind(row.state.as_str())
                .push_bind(row.retraction_reason.clone())
                .push_bind(row.payload.clone())
                .push_bind(row.payload_sha256.clone())
                .push_bind(row.informant.as_ref().map(|s| s.key_id.clone()))
                .push_bind(row.informant.as_ref().map(|s| s.nonce.clone()))
                .push_bind(row.informant.as_ref().map(|s| s.data.clone()))
                .push_bind(row.transfer_agency.clone())
                .push_bind(row.transfer_division.clone())
                .push_bind(row.submitting_system.clone())
                .push_bind(row.update_time_us)
                .push_bind(row.kind.clone())
                .push_bind(row.owner_system.clone())
                .push_bind(row.owner_agency.clone())
                .push_bind(row.owner_division.clone())
                .push_bind(row.source_record_id.clone());
        });
        execute_batch(tx, q).await?;
    }
    for row in &plan.updates {
        let (key_id, nonce, data) = match &row.informant {
            Some(s) => (
                Some(s.key_id.clone()),
                Some(s.nonce.clone()),
                Some(s.data.clone()),
            ),
            None => (None, None, None),
        };
        let written = sqlx::query(
            "UPDATE records SET source_version = $3, revision = $4, event_date = $5, classification = $6, \
             state = $7, retraction_reason = $8, payload = $9, payload_sha256 = $10, informant_key_id = $11, \
             informant_nonce = $12, informant_data = $13, transfer_agency = $14, transfer_division = $15, \
             submitting_system = $16, update_time_us = $17 \
             WHERE id = $1 AND cadre_id = $2",
        )
        .bind(&row.id)
        .bind(&row.cadre_id)
        .bind(row.source_version)
        .bind(row.revision)
        .bind(&row.event_date)
        .bind(&row.classification)
        .bind(row.state.as_str())
        .bind(&row.retraction_reason)
        .bind(&row.payload)
        .bind(&row.payload_sha256)
        .bind(key_id)
        .bind(nonce)
        .bind(data)
        .bind(&row.transfer_agency)
        .bind(&row.transfer_division)
        .bind(&row.submitting_system)
        .bind(row.update_time_us)
        .execute(&mut *tx)
        .await?;
        if written.rows_affected() != 1 {
            return Err(concurrent());
        }
    }
    let commit_time = now_us();
    for chunk in plan.changes.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO changes (seq, op, resource, kind, revision, division, commit_time_us, from_division) ",
        );
        q.push_values(chunk, |mut b, (seq, c)| {
            b.push_bind(*seq)
                .push_bind(c.op.as_str())
                .push_bind(c.resource.clone())
                .push_bind(c.kind.clone())
                .push_bind(c.revision)
                .push_bind(c.division.clone())
                .push_bind(commit_time)
                .push_bind(c.from_division.clone());
        });
        execute_batch(tx, q).await?;
    }
    Ok(())
}

/// When a matter record about the cadre `$1` was last written (any state).
const LAST_MATTER_WRITE: &str =
    "SELECT MAX(update_time_us) AS t FROM records WHERE cadre_id = $1 \
     AND kind IN ('SANCTION', 'ADMONISHMENT', 'CLUE', 'ORG_HANDLING', 'AUDIT_FINDING', 'PETITION', 'PERSONAL_MATTERS_CHECK')";

/// The rest of a cadre's move from `from` to its new division, inside the
/// update's transaction (counter at `counter`): marks the cadre's own change
/// row in `changes` with the division left, adds one row per record of the
/// cadre and per opinion request naming it (each at its current revision: a
/// move changes who sees them, not what they are), and records the move with
/// the cadre's last matter-write time at this moment (DESIGN §5, §6).
async fn record_move(
    tx: &mut DbConn,
    counter: i64,
    c: &CadreRow,
    from: &str,
    changes: &mut Vec<super::Change>,
) -> Result<()> {
    let own = format!("cadres/{}", c.id);
    let mut cadre_seq = None;
    for (i, ch) in changes.iter_mut().enumerate() {
        if ch.resource == own && ch.kind == ChangeKind::Cadre.as_str() {
            ch.from_division = Some(from.to_string());
            cadre_seq = Some(counter + 1 + i as i64);
        }
    }
    let seq = cadre_seq.ok_or_else(|| {
        Error::internal(anyhow::anyhow!("a cadre update without its change row"))
    })?;
    let records = sqlx::query(
        "SELECT id, kind, revision, state FROM records WHERE cadre_id = $1 ORDER BY id",
    )
    .bind(&c.id)
    .fetch_all(&mut *tx)
    .await?;
    for r in &records {
        let state = stored_state(r, "state", RecordState::parse)?;
        let id: String = r.try_get("id")?;
        changes.push(super::Change {
            // What a caller that now sees the record is told: its current state.
            op: if state == RecordState::Retracted {
                ChangeOp::Retract
            } else {
                ChangeOp::Upsert
            },
            resource: format!("{own}/records/{id}"),
            kind: r.try_get("kind")?,
            revision: r.try_get("revision")?,
            division: c.managing_division.clone(),
            from_division: Some(from.to_string()),
        });
    }
    let requests = sqlx::query(
        "SELECT r.id, r.revision FROM opinion_requests r \
         JOIN opinion_request_cadres rc ON rc.request_id = r.id \
         WHERE rc.cadre_id = $1 ORDER BY r.id",
    )
    .bind(&c.id)
    .fetch_all(&mut *tx)
    .await?;
    for r in &requests {
        let id: String = r.try_get("id")?;
        changes.push(super::Change {
            op: ChangeOp::Upsert,
            resource: format!("opinionRequests/{id}"),
            kind: ChangeKind::OpinionRequest.as_str().into(),
            revision: r.try_get("revision")?,
            division: c.managing_division.clone(),
            from_division: Some(from.to_string()),
        });
    }
    let last_matter: Option<i64> = sqlx::query(LAST_MATTER_WRITE)
        .bind(&c.id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("t")?;
    sqlx::query(
        "INSERT INTO cadre_moves (cadre_id, seq, from_division, to_division, move_time_us, last_matter_write_us) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.id)
    .bind(seq)
    .bind(from)
    .bind(&c.managing_division)
    .bind(c.update_time_us)
    .bind(last_matter)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl CadreRepo for $store {
    async fn create_cadre(&self, c: &CadreRow, meta: WriteMeta) -> Result<()> {
        let mut tx = self.begin().await?;
        let counter = lock_counter(&mut tx).await?;
        insert_cadre(&mut tx, c).await?;
        finish_write(&mut tx, counter, &meta).await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    async fn update_cadre(
        &self,
        c: &CadreRow,
        expected_revision: i64,
        meta: WriteMeta,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let counter = lock_counter(&mut tx).await?;
        let left: Option<String> =
            sqlx::query("SELECT managing_division FROM cadres WHERE id = $1 AND revision = $2")
                .bind(&c.id)
                .bind(expected_revision)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("managing_division"))
                .transpose()?;
        let r = sqlx::query(
            "UPDATE cadres SET display_name = $1, gender = $2, birth_date = $3, managing_division = $4, \
             posts = $5, revision = $6, update_time_us = $7 WHERE id = $8 AND revision = $9",
        )
        .bind(&c.display_name)
        .bind(c.gender)
        .bind(&c.birth_date)
        .bind(&c.managing_division)
        .bind(serde_json::to_string(&c.posts).map_err(Error::internal)?)
        .bind(c.revision)
        .bind(c.update_time_us)
        .bind(&c.id)
        .bind(expected_revision)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 FROM cadres WHERE id = $1")
                .bind(&c.id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                Error::Aborted {
                    reason: Reason::ConcurrentModification,
                    message: "the cadre changed while this update was prepared".into(),
                }
            } else {
                Error::NotFound(format!("cadres/{}", c.id))
            });
        }
        let mut meta = meta;
        if let Some(from) = left.filter(|d| *d != c.managing_division) {
            record_move(&mut tx, counter, c, &from, &mut meta.changes).await?;
        }
        finish_write(&mut tx, counter, &meta).await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    async fn create_cadres(
        &self,
        items: Vec<CadreRow>,
        finish: FinishCadres<'_>,
    ) -> Result<Vec<Result<()>>> {
        let mut tx = self.begin().await?;
        let start = lock_counter(&mut tx).await?;
        let mut seq = start;
        let mut out = Vec::with_capacity(items.len());
        for c in &items {
            sqlx::query("SAVEPOINT item").execute(&mut *tx).await?;
            let r = insert_cadre(&mut tx, c).await;
            match r {
                Ok(()) => {
                    seq += 1;
                    insert_change(
                        &mut tx,
                        seq,
                        &super::Change {
                            op: ChangeOp::Upsert,
                            resource: format!("cadres/{}", c.id),
                            kind: ChangeKind::Cadre.as_str().into(),
                            revision: c.revision,
                            division: c.managing_division.clone(),
                            from_division: None,
                        },
                    )
                    .await?;
                    sqlx::query("RELEASE SAVEPOINT item")
                        .execute(&mut *tx)
                        .await?;
                    out.push(Ok(()));
                }
                Err(e @ Error::AlreadyExists(_)) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT item")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("RELEASE SAVEPOINT item")
                        .execute(&mut *tx)
                        .await?;
                    out.push(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        if seq != start {
            set_counter(&mut tx, seq).await?;
        }
        let (log, idempotency) = finish(&out);
        if let Some(i) = &idempotency {
            insert_idempotency(&mut tx, i).await?;
        }
        append_in_tx(&mut tx, std::slice::from_ref(&log)).await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        Ok(out)
    }

    async fn get_cadre(&self, id: &str) -> Result<Option<CadreRow>> {
        let row = sqlx::query("SELECT * FROM cadres WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cadre_from_row).transpose()
    }

    async fn cadre_moves(&self, id: &str) -> Result<Vec<super::CadreMove>> {
        let rows = sqlx::query("SELECT * FROM cadre_moves WHERE cadre_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(super::CadreMove {
                    seq: r.try_get("seq")?,
                    from_division: r.try_get("from_division")?,
                    to_division: r.try_get("to_division")?,
                    move_time_us: r.try_get("move_time_us")?,
                    last_matter_write_us: r.try_get("last_matter_write_us")?,
                })
            })
            .collect()
    }

    async fn get_cadre_by_id_number(&self, id_number: &str) -> Result<Option<CadreRow>> {
        let row = sqlx::query("SELECT * FROM cadres WHERE id_number = $1")
            .bind(id_number)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cadre_from_row).transpose()
    }

    async fn get_cadres(&self, ids: &[String]) -> Result<Vec<CadreRow>> {
        cadres_where(&self.pool, "id", ids).await
    }

    async fn get_cadres_by_id_numbers(&self, id_numbers: &[String]) -> Result<Vec<CadreRow>> {
        cadres_where(&self.pool, "id_number", id_numbers).await
    }

    async fn list_cadres(&self, q: &CadreQuery) -> Result<Vec<CadreRow>> {
        let rows = sqlx::query(
            "SELECT * FROM cadres \
             WHERE substr(managing_division, 1, length($1)) = $1 \
               AND ($2 IS NULL OR substr(managing_division, 1, length($2)) = $2) \
               AND ($3 IS NULL OR ($4 AND substr(display_name, 1, length($3)) = $3) OR (NOT $4 AND display_name = $3)) \
               AND ($5 IS NULL OR id > $5) \
             ORDER BY id LIMIT $6",
        )
        .bind(&q.jurisdiction_prefix)
        .bind(&q.division_prefix)
        .bind(&q.name)
        .bind(q.name_is_prefix)
        .bind(&q.after_id)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(cadre_from_row).collect()
    }
}

#[async_trait::async_trait]
impl RecordRepo for $store {
    async fn submit_records(
        &self,
        items: Vec<RecordRow>,
        digest: &DigestKey,
        finish: FinishBatch<'_>,
    ) -> Result<Vec<Result<SubmitOutcome>>> {
        let mut tx = self.begin().await?;
        let start = lock_counter(&mut tx).await?;
        let stored = stored_records(&mut tx, &items).await?;
        let prior = prior_versions(&mut tx, &items, &stored).await?;
        let plan = plan_batch(items, stored, &prior, digest, start, now_us());
        write_plan(&mut tx, &plan).await?;
        if plan.last_seq != start {
            set_counter(&mut tx, plan.last_seq).await?;
        }
        let (log, idempotency) = finish(&plan.outcomes);
        if let Some(i) = &idempotency {
            insert_idempotency(&mut tx, i).await?;
        }
        append_in_tx(&mut tx, std::slice::from_ref(&log)).await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        Ok(plan.outcomes)
    }

    async fn retract_record(
        &self,
        id: &str,
        expected_revision: i64,
        reason: &str,
        submitting_system: &str,
        log: LogEntry,
    ) -> Result<RecordRow> {
        let mut tx = self.begin().await?;
        let seq = lock_counter(&mut tx).await? + 1;
        let Some(mut row) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} WHERE r.id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(record_from_row)
        .transpose()?
        else {
            return Err(Error::NotFound(format!("record {id}")));
        };
        if row.revision != expected_revision {
            return Err(concurrent());
        }
        row.state = RecordState::Retracted;
        row.retraction_reason = reason.to_string();
        row.revision = seq;
        row.submitting_system = submitting_system.to_string();
        row.update_time_us = now_us();
        sqlx::query(
            "UPDATE records SET state = $1, retraction_reason = $2, revision = $3, submitting_system = $4, \
             update_time_us = $5 WHERE id = $6",
        )
        .bind(row.state.as_str())
        .bind(&row.retraction_reason)
        .bind(row.revision)
        .bind(&row.submitting_system)
        .bind(row.update_time_us)
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
        insert_change(
            &mut tx,
            seq,
            &super::Change {
                op: ChangeOp::Retract,
                resource: record_name(&row),
                kind: row.kind.clone(),
                revision: row.revision,
                division: row.division.clone(),
                from_division: None,
            },
        )
        .await?;
        set_counter(&mut tx, seq).await?;
        append_in_tx(&mut tx, std::slice::from_ref(&log)).await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        Ok(row)
    }

    async fn get_record(&self, id: &str) -> Result<Option<RecordRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} WHERE r.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    async fn get_records(
        &self,
        ids: &[String],
        jurisdiction_prefix: &str,
    ) -> Result<Vec<RecordRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} WHERE r.id {list} \
             AND substr(c.managing_division, 1, length($2)) = $2",
            list = in_list(1)
        )))
        .bind(list_arg(ids)?)
        .bind(jurisdiction_prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn find_records(
        &self,
        owner_system: &str,
        source_record_ids: &[String],
    ) -> Result<Vec<RecordRow>> {
        if source_record_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} WHERE r.owner_system = $1 AND r.source_record_id {list}",
            list = in_list(2)
        )))
        .bind(owner_system)
        .bind(list_arg(source_record_ids)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn find_record(
        &self,
        owner_system: &str,
        source_record_id: &str,
    ) -> Result<Option<RecordRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} WHERE r.owner_system = $1 AND r.source_record_id = $2"
        )))
        .bind(owner_system)
        .bind(source_record_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    async fn list_records(&self, q: &RecordQuery) -> Result<Vec<RecordRow>> {
        let kinds = format!(",{},", q.kinds.join(","));
        // `$2 IS NULL OR …` would hide the cadre from the planner, which then
        // scans every record instead of the cadre's few through records_cadre.
        let by_cadre = if q.cadre_id.is_some() {
            "r.cadre_id = $2"
        } else {
            "$2 IS NULL"
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} \
             WHERE substr(c.managing_division, 1, length($1)) = $1 \
               AND {by_cadre} \
               AND {STRPOS}($3, ',' || r.kind || ',') > 0 \
               AND ($4 IS NULL OR r.state = $4) \
               AND ($5 IS NULL OR r.update_time_us >= $5) \
               AND ($6 IS NULL OR r.update_time_us < $6) \
               AND r.revision <= $7 \
               AND ($8 IS NULL OR r.id > $8) \
             ORDER BY r.id LIMIT $9"
        )))
        .bind(&q.jurisdiction_prefix)
        .bind(&q.cadre_id)
        .bind(kinds)
        .bind(q.state.map(|s| s.as_str()))
        .bind(q.updated_from_us)
        .bind(q.updated_before_us)
        .bind(q.max_revision)
        .bind(&q.after_id)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn last_matter_write_us(&self, cadre_id: &str) -> Result<Option<i64>> {
        Ok(sqlx::query(LAST_MATTER_WRITE)
        .bind(cadre_id)
        .fetch_one(&self.pool)
        .await?
        .try_get("t")?)
    }
}

#[async_trait::async_trait]
impl OpinionRepo for $store {
    async fn create_opinion_request(&self, r: &OpinionRequestRow, meta: WriteMeta) -> Result<()> {
        let mut tx = self.begin().await?;
        let counter = lock_counter(&mut tx).await?;
        sqlx::query(
            "INSERT INTO opinion_requests (id, requester, requester_agency, requester_division, purpose, due_date, \
             state, note, withdraw_reason, warnings, revision, create_time_us, update_time_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&r.id)
        .bind(&r.requester)
        .bind(&r.requester_agency)
        .bind(&r.requester_division)
        .bind(&r.purpose)
        .bind(&r.due_date)
        .bind(r.state.as_str())
        .bind(&r.note)
        .bind(&r.withdraw_reason)
        .bind(serde_json::to_string(&r.warnings).map_err(Error::internal)?)
        .bind(r.revision)
        .bind(r.create_time_us)
        .bind(r.update_time_us)
        .execute(&mut *tx)
        .await?;
        for (position, cadre) in r.cadres.iter().enumerate() {
            sqlx::query("INSERT INTO opinion_request_cadres (request_id, cadre_id, position) VALUES ($1, $2, $3)")
                .bind(&r.id)
                .bind(cadre)
                .bind(position as i32)
                .execute(&mut *tx)
                .await?;
        }
        finish_write(&mut tx, counter, &meta).await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    async fn get_opinion_request(&self, id: &str) -> Result<Option<OpinionRequestRow>> {
        let row = sqlx::query("SELECT * FROM opinion_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let mut req = opinion_from_row(&r)?;
                req.cadres = request_cadres(&self.pool, id).await?;
                Ok(Some(req))
            }
        }
    }

    async fn list_opinion_requests(&self, q: &OpinionQuery) -> Result<Vec<OpinionRequestRow>> {
        let (agency, division) = match &q.requester {
            Some((a, d)) => (Some(a.clone()), Some(d.clone())),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM opinion_requests r \
             WHERE ($1 IS NULL OR (r.requester_agency = $1 AND r.requester_division = $2)) \
               AND (($3 IS NULL AND $7 IS NULL) \
                    OR EXISTS (SELECT 1 FROM opinion_request_cadres rc JOIN cadres c ON c.id = rc.cadre_id \
                    WHERE rc.request_id = r.id AND substr(c.managing_division, 1, length($3)) = $3) \
                    OR EXISTS (SELECT 1 FROM opinion_replies p \
                    WHERE p.request_id = r.id AND substr(p.replier, 1, length($7)) = $7)) \
               AND ($4 IS NULL OR r.state = $4) \
               AND ($5 IS NULL OR r.id > $5) \
             ORDER BY r.id LIMIT $6",
        )
        .bind(agency)
        .bind(division)
        .bind(&q.cadre_prefix)
        .bind(q.state.map(|s| s.as_str()))
        .bind(&q.after_id)
        .bind(q.limit)
        .bind(&q.replier_prefix)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut req = opinion_from_row(r)?;
            req.cadres = request_cadres(&self.pool, &req.id).await?;
            out.push(req);
        }
        Ok(out)
    }

    async fn withdraw_opinion_request(
        &self,
        id: &str,
        reason: &str,
        meta: WriteMeta,
    ) -> Result<OpinionRequestRow> {
        let mut tx = self.begin().await?;
        let counter = lock_counter(&mut tx).await?;
        let Some(row) = sqlx::query("SELECT * FROM opinion_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(Error::NotFound(format!("opinionRequests/{id}")));
        };
        let mut req = opinion_from_row(&row)?;
        if req.state != RequestState::Pending {
            return Err(Error::precondition(
                Reason::NotPending,
                "only a pending request can be withdrawn",
            ));
        }
        req.state = RequestState::Withdrawn;
        req.withdraw_reason = reason.to_string();
        req.revision += 1;
        req.update_time_us = now_us();
        sqlx::query("UPDATE opinion_requests SET state = $1, withdraw_reason = $2, revision = $3, update_time_us = $4 WHERE id = $5")
            .bind(req.state.as_str())
            .bind(&req.withdraw_reason)
            .bind(req.revision)
            .bind(req.update_time_us)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let mut meta = meta;
        for c in &mut meta.changes {
            c.revision = req.revision;
        }
        finish_write(&mut tx, counter, &meta).await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        req.cadres = request_cadres(&self.pool, id).await?;
        Ok(req)
    }

    async fn add_opinion_reply(
        &self,
        reply: &ReplyRow,
        meta: WriteMeta,
    ) -> Result<OpinionRequestRow> {
        let mut tx = self.begin().await?;
        let counter = lock_counter(&mut tx).await?;
        let Some(row) = sqlx::query("SELECT * FROM opinion_requests WHERE id = $1")
            .bind(&reply.request_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(Error::NotFound(format!(
                "opinionRequests/{}",
                reply.request_id
            )));
        };
        let mut req = opinion_from_row(&row)?;
        if req.state == RequestState::Withdrawn {
            return Err(Error::precondition(
                Reason::RequestWithdrawn,
                "the request was withdrawn",
            ));
        }
        sqlx::query(
            "INSERT INTO opinion_replies (id, request_id, cadre_id, verdict, text, cited_records, signer, as_of_us, \
             correction_reason, corrects, replier, purpose, revision, create_time_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&reply.id)
        .bind(&reply.request_id)
        .bind(&reply.cadre_id)
        .bind(&reply.verdict)
        .bind(&reply.text)
        .bind(serde_json::to_string(&reply.cited_records).map_err(Error::internal)?)
        .bind(&reply.signer)
        .bind(reply.as_of_us)
        .bind(&reply.correction_reason)
        .bind(&reply.corrects)
        .bind(&reply.replier)
        .bind(&reply.purpose)
        .bind(reply.revision)
        .bind(reply.create_time_us)
        .execute(&mut *tx)
        .await?;
        let unanswered: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM opinion_request_cadres rc WHERE rc.request_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM opinion_replies p WHERE p.request_id = rc.request_id AND p.cadre_id = rc.cadre_id)",
        )
        .bind(&reply.request_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        let mut meta = meta;
        if req.state == RequestState::Pending && unanswered == 0 {
            req.state = RequestState::Replied;
            req.revision += 1;
            req.update_time_us = now_us();
            sqlx::query("UPDATE opinion_requests SET state = $1, revision = $2, update_time_us = $3 WHERE id = $4")
                .bind(req.state.as_str())
                .bind(req.revision)
                .bind(req.update_time_us)
                .bind(&req.id)
                .execute(&mut *tx)
                .await?;
            meta.changes.push(super::Change {
                op: ChangeOp::Upsert,
                resource: format!("opinionRequests/{}", req.id),
                kind: ChangeKind::OpinionRequest.as_str().into(),
                revision: req.revision,
                division: req.requester_division.clone(),
                from_division: None,
            });
        }
        finish_write(&mut tx, counter, &meta).await?;
        announce(&mut tx).await?;
        tx.commit().await?;
        self.changed();
        req.cadres = request_cadres(&self.pool, &req.id).await?;
        Ok(req)
    }

    async fn opinion_replies(&self, request_id: &str) -> Result<Vec<ReplyRow>> {
        let rows = sqlx::query(
            "SELECT * FROM opinion_replies WHERE request_id = $1 ORDER BY create_time_us, id",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let cited: String = r.try_get("cited_records")?;
                Ok(ReplyRow {
                    id: r.try_get("id")?,
                    request_id: r.try_get("request_id")?,
                    cadre_id: r.try_get("cadre_id")?,
                    verdict: r.try_get("verdict")?,
                    text: r.try_get("text")?,
                    cited_records: serde_json::from_str(&cited).map_err(Error::internal)?,
                    signer: r.try_get("signer")?,
                    as_of_us: r.try_get("as_of_us")?,
                    correction_reason: r.try_get("correction_reason")?,
                    corrects: r.try_get("corrects")?,
                    replier: r.try_get("replier")?,
                    purpose: r.try_get("purpose")?,
                    revision: r.try_get("revision")?,
                    create_time_us: r.try_get("create_time_us")?,
                })
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl ChangeRepo for $store {
    async fn change_head(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT seq FROM change_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get("seq")?)
    }

    async fn list_changes(&self, after: i64, limit: i64) -> Result<Vec<ChangeRow>> {
        let rows = sqlx::query("SELECT * FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ChangeRow {
                    seq: r.try_get("seq")?,
                    op: r.try_get("op")?,
                    resource: r.try_get("resource")?,
                    kind: r.try_get("kind")?,
                    revision: r.try_get("revision")?,
                    division: r.try_get("division")?,
                    from_division: r.try_get("from_division")?,
                    commit_time_us: r.try_get("commit_time_us")?,
                })
            })
            .collect()
    }

    async fn prune_changes(&self, before_us: i64) -> Result<i64> {
        let mut tx = self.begin().await?;
        let newest = lock_counter(&mut tx).await?;
        let prunable: Option<i64> =
            sqlx::query("SELECT MAX(seq) AS m FROM changes WHERE commit_time_us < $1 AND seq < $2")
                .bind(before_us)
                .bind(newest)
                .fetch_one(&mut *tx)
                .await?
                .try_get("m")?;
        if let Some(m) = prunable {
            sqlx::query("DELETE FROM changes WHERE seq <= $1")
                .bind(m)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('feed_floor', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(m.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.feed_floor().await
    }

    async fn feed_floor(&self) -> Result<i64> {
        let v: Option<String> = sqlx::query("SELECT value FROM meta WHERE key = 'feed_floor'")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("value"))
            .transpose()?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[async_trait::async_trait]
impl AccessLogRepo for $store {
    async fn append_log(&self, entries: &[LogEntry]) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let seqs = append_in_tx(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(seqs)
    }

    async fn read_log(&self, after_seq: i64, limit: i64) -> Result<Vec<LogRow>> {
        let rows = sqlx::query("SELECT * FROM access_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(log_from_row).collect()
    }

    async fn list_access_events(&self, q: &LogQuery) -> Result<Vec<LogHit>> {
        let sql = super::list_access_events_sql();
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.after_seq)
            .bind(&q.principal)
            .bind(&q.method)
            .bind(q.start_us)
            .bind(q.end_us)
            .bind(&q.cadre)
            .bind(q.limit)
            .bind(&q.principal_prefix)
            .bind(&q.scope)
            .bind(i32::from(q.cadre_ok_only))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LogHit {
                    row: log_from_row(r)?,
                    about_scope: r.try_get("about_scope")?,
                })
            })
            .collect()
    }

    async fn log_head(&self) -> Result<(i64, String)> {
        let r = sqlx::query("SELECT seq, hash FROM access_log_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((r.try_get("seq")?, r.try_get("hash")?))
    }

    async fn log_cadre_index(
        &self,
        after_seq: i64,
        through_seq: Option<i64>,
    ) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT cadre, seq FROM access_log_cadres WHERE seq > $1 AND ($2 IS NULL OR seq <= $2) \
             ORDER BY seq, cadre",
        )
        .bind(after_seq)
        .bind(through_seq)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("cadre")?, r.try_get("seq")?)))
            .collect()
    }

    async fn log_hash_at(&self, seq: i64) -> Result<Option<String>> {
        let r = sqlx::query("SELECT hash FROM access_log WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| r.try_get("hash").map_err(Error::from))
            .transpose()
    }

    async fn insert_checkpoint(&self, c: &CheckpointRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO log_checkpoints (seq, hash, time_us, key_id, signature) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(c.seq)
        .bind(&c.hash)
        .bind(c.time_us)
        .bind(&c.key_id)
        .bind(&c.signature)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        let rows = sqlx::query("SELECT * FROM log_checkpoints ORDER BY seq, time_us")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>> {
        let row =
            sqlx::query("SELECT * FROM log_checkpoints ORDER BY seq DESC, time_us DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }
}

#[async_trait::async_trait]
impl RequestRepo for $store {
    async fn lookup_request(&self, system: &str, request_id: &str) -> Result<Option<Idempotency>> {
        let row = sqlx::query(
            "SELECT system, request_id, method, request_sha256, response FROM request_ids \
             WHERE system = $1 AND request_id = $2",
        )
        .bind(system)
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Idempotency {
                system: r.try_get("system")?,
                request_id: r.try_get("request_id")?,
                method: r.try_get("method")?,
                request_sha256: r.try_get("request_sha256")?,
                response: r.try_get("response")?,
            })
        })
        .transpose()
    }
}

#[async_trait::async_trait]
impl StoreAdmin for $store {
    fn backend(&self) -> &'static str {
        $name
    }

    $($own)*

    async fn epoch(&self) -> Result<String> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = 'epoch'")
            .fetch_one(&self.pool)
            .await?
            .try_get("value")?)
    }

    async fn renew_epoch(&self) -> Result<String> {
        let epoch = uuid::Uuid::new_v4().to_string();
        sqlx::query("UPDATE meta SET value = $1 WHERE key = 'epoch'")
            .bind(&epoch)
            .execute(self.writes())
            .await?;
        Ok(epoch)
    }

    async fn informant_blocks_not_under(
        &self,
        key_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<super::InformantBlock>> {
        let rows = sqlx::query(
            "SELECT id, owner_system, source_record_id, informant_key_id, informant_nonce, informant_data \
             FROM records WHERE informant_key_id IS NOT NULL AND informant_key_id <> $1 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(key_id)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(super::InformantBlock {
                    record_id: r.try_get("id")?,
                    owner_system: r.try_get("owner_system")?,
                    source_record_id: r.try_get("source_record_id")?,
                    sealed: Sealed {
                        key_id: r.try_get("informant_key_id")?,
                        nonce: r.try_get("informant_nonce")?,
                        data: r.try_get("informant_data")?,
                    },
                })
            })
            .collect()
    }

    async fn digest_upgrade_head(&self) -> Result<(i64, String)> {
        let mut tx = self.begin().await?;
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM access_log_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('digest_upgrade_head', $1) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(format!("{seq}:{hash}"))
        .execute(&mut *tx)
        .await?;
        let (value,): (String,) =
            sqlx::query_as("SELECT value FROM meta WHERE key = 'digest_upgrade_head'")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        value
            .split_once(':')
            .and_then(|(seq, hash)| Some((seq.parse().ok()?, hash.to_string())))
            .ok_or_else(|| Error::internal(anyhow::anyhow!("bad digest_upgrade_head {value:?}")))
    }

    async fn unkeyed_digests(
        &self,
        column: super::DigestColumn,
        after: &super::DigestRowKey,
        limit: i64,
    ) -> Result<Vec<super::StoredDigest>> {
        use super::DigestColumn as C;
        // Keyset order over each table's primary key, so a pass reads every
        // row once however many it converts.
        let sql = match column {
            C::RecordPayload => {
                "SELECT id AS a, '' AS b, CAST(0 AS BIGINT) AS c, payload_sha256 AS v FROM records \
                 WHERE id > $1 AND $2 = $2 AND $3 = $3 AND payload_sha256 NOT LIKE 'k1:%' \
                 ORDER BY id LIMIT $4"
            }
            C::VersionPayload => {
                "SELECT owner_system AS a, source_record_id AS b, source_version AS c, \
                 payload_sha256 AS v FROM record_versions \
                 WHERE (owner_system, source_record_id, source_version) > ($1, $2, $3) \
                 AND payload_sha256 NOT LIKE 'k1:%' \
                 ORDER BY owner_system, source_record_id, source_version LIMIT $4"
            }
            C::RequestDigest => {
                "SELECT system AS a, request_id AS b, CAST(0 AS BIGINT) AS c, request_sha256 AS v FROM request_ids \
                 WHERE (system, request_id) > ($1, $2) AND $3 = $3 \
                 AND request_sha256 NOT LIKE 'k1:%' ORDER BY system, request_id LIMIT $4"
            }
        };
        let rows = sqlx::query(sql)
            .bind(&after.0)
            .bind(&after.1)
            .bind(after.2)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(super::StoredDigest {
                    column,
                    key: super::DigestRowKey(r.try_get("a")?, r.try_get("b")?, r.try_get("c")?),
                    value: r.try_get("v")?,
                })
            })
            .collect()
    }

    async fn replace_digests(&self, replaced: &[(super::StoredDigest, String)]) -> Result<u64> {
        use super::DigestColumn as C;
        let mut tx = self.begin().await?;
        let mut n = 0;
        for (old, new) in replaced {
            let sql = match old.column {
                C::RecordPayload => {
                    "UPDATE records SET payload_sha256 = $1 \
                     WHERE id = $2 AND $3 = $3 AND $4 = $4 AND payload_sha256 = $5"
                }
                C::VersionPayload => {
                    "UPDATE record_versions SET payload_sha256 = $1 WHERE owner_system = $2 \
                     AND source_record_id = $3 AND source_version = $4 AND payload_sha256 = $5"
                }
                C::RequestDigest => {
                    "UPDATE request_ids SET request_sha256 = $1 \
                     WHERE system = $2 AND request_id = $3 AND $4 = $4 AND request_sha256 = $5"
                }
            };
            n += sqlx::query(sql)
                .bind(new)
                .bind(&old.key.0)
                .bind(&old.key.1)
                .bind(old.key.2)
                .bind(&old.value)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reseal_informants(&self, blocks: &[super::Resealed]) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut replaced = 0;
        for b in blocks {
            replaced += sqlx::query(
                "UPDATE records SET informant_key_id = $1, informant_nonce = $2, informant_data = $3 \
                 WHERE id = $4 AND informant_nonce = $5",
            )
            .bind(&b.sealed.key_id)
            .bind(&b.sealed.nonce)
            .bind(&b.sealed.data)
            .bind(&b.record_id)
            .bind(&b.old_nonce)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(replaced)
    }
}


fn checkpoint_from_row(r: &DbRow) -> Result<CheckpointRow> {
    Ok(CheckpointRow {
        seq: r.try_get("seq")?,
        hash: r.try_get("hash")?,
        time_us: r.try_get("time_us")?,
        key_id: r.try_get("key_id")?,
        signature: r.try_get("signature")?,
    })
}

    };
}

pub(crate) use store_body;
