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
//!
//! `store_body!` holds the `use`s and the helpers every repository shares; each
//! repository's part is a macro of its own file (`cadres.rs`, `records.rs`, …)
//! that `store_body!` invokes, so all of it expands into the one backend module.

mod access_log;
mod admin;
mod cadres;
mod changes;
mod opinions;
mod records;
mod requests;

pub(crate) use access_log::list_access_events_sql;
pub(crate) use {
    access_log::access_log_repo, admin::admin_repo, cadres::cadre_repo, changes::change_repo,
    opinions::opinion_repo, records::record_repo, requests::request_repo,
};

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
use crate::domain::records::stored_is_matter;
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
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

/// A state column read back through its enum: only this code writes these
/// columns, so other text is a store fault, not something to pass on.
fn stored_state<T>(r: &DbRow, column: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let text: String = r.try_get(column)?;
    parse(&text).ok_or_else(|| Error::internal(anyhow::anyhow!("unknown {column} {text:?}")))
}

fn concurrent() -> Error {
    Error::Aborted {
        reason: Reason::ConcurrentModification,
        message: "the record was written concurrently; retry".into(),
    }
}

/// Rows per multi-row INSERT, well below either backend's bound on bound parameters.
const CHUNK: usize = 500;

// Each part expands into this same module, so the helpers above are theirs.
$crate::store::sql::cadre_repo! { store: $store }
$crate::store::sql::record_repo! { store: $store }
$crate::store::sql::opinion_repo! { store: $store }
$crate::store::sql::change_repo! { store: $store, for_update: $for_update }
$crate::store::sql::access_log_repo! { store: $store, for_update: $for_update }
$crate::store::sql::request_repo! { store: $store }
$crate::store::sql::admin_repo! { store: $store, name: $name, own: { $($own)* } }
    };
}

pub(crate) use store_body;
