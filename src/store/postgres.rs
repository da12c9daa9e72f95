//! PostgreSQL backend for shared deployments: several servers on one database, row locks keep the chain and outbox linear.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};

use super::{CadreQuery, CadreRow, CheckpointRow, Idempotency, LogQuery, Store, WriteMeta, now_us};
use crate::domain::chain::{self, LogEntry, LogRow};
use crate::error::{Error, Result};

/// Store on a PostgreSQL database, shared by any number of server processes.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` and runs migrations (serialized across processes by sqlx's advisory lock).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .execute(&pool)
        .await?;
        Ok(Self { pool })
    }

    /// The pool, for tests that tamper with rows directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

fn cadre_from_row(r: &PgRow) -> Result<CadreRow> {
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

fn log_from_row(r: &PgRow) -> Result<LogRow> {
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

/// Appends `entries` to the chain inside `tx`; `FOR UPDATE` on the head row
/// serializes appenders across processes so the chain stays linear.
async fn append_in_tx(tx: &mut PgConnection, entries: &[LogEntry]) -> Result<Vec<i64>> {
    let head = sqlx::query("SELECT seq, hash FROM access_log_head WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let (seq, hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    let rows = chain::extend(seq, &hash, now_us(), entries);
    for row in &rows {
        let e = &row.entry;
        sqlx::query(
            "INSERT INTO access_log (seq, time_us, principal, fingerprint, officer, method, resources, purpose, \
             decision, policy_ids, request_id, status_code, response_sha256, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(row.seq)
        .bind(row.time_us)
        .bind(&e.principal)
        .bind(&e.fingerprint)
        .bind(&e.officer)
        .bind(&e.method)
        .bind(serde_json::to_string(&e.resources).map_err(Error::internal)?)
        .bind(&e.purpose)
        .bind(&e.decision)
        .bind(serde_json::to_string(&e.policy_ids).map_err(Error::internal)?)
        .bind(&e.request_id)
        .bind(e.status_code)
        .bind(&e.response_sha256)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .execute(&mut *tx)
        .await?;
        for cadre in super::cadres_touched(&e.resources) {
            sqlx::query(
                "INSERT INTO access_log_cadres (cadre, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(cadre)
            .bind(row.seq)
            .execute(&mut *tx)
            .await?;
        }
    }
    if let Some(last) = rows.last() {
        sqlx::query("UPDATE access_log_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(last.seq)
            .bind(&last.hash)
            .execute(&mut *tx)
            .await?;
    }
    Ok(rows.iter().map(|r| r.seq).collect())
}

/// Writes the outbox row, the idempotency record and the access-log row of a
/// successful write, in the lock order outbox counter → chain head.
async fn finish_write(tx: &mut PgConnection, meta: &WriteMeta) -> Result<()> {
    let seq: i64 =
        sqlx::query("UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq")
            .fetch_one(&mut *tx)
            .await?
            .try_get("seq")?;
    let c = &meta.change;
    sqlx::query(
        "INSERT INTO changes (seq, op, resource, kind, revision, division, commit_time_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(seq)
    .bind(c.op)
    .bind(&c.resource)
    .bind(&c.kind)
    .bind(c.revision)
    .bind(&c.division)
    .bind(now_us())
    .execute(&mut *tx)
    .await?;
    if let Some(i) = &meta.idempotency {
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
        if let Err(e) = r {
            return Err(if is_unique_violation(&e) {
                Error::AlreadyExists(format!("request {}", i.request_id))
            } else {
                e.into()
            });
        }
    }
    append_in_tx(tx, std::slice::from_ref(&meta.log)).await?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn epoch(&self) -> Result<String> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = 'epoch'")
            .fetch_one(&self.pool)
            .await?
            .try_get("value")?)
    }

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

    async fn create_cadre(&self, c: &CadreRow, meta: WriteMeta) -> Result<()> {
        let mut tx = self.begin().await?;
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
        finish_write(&mut tx, &meta).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_cadre(
        &self,
        c: &CadreRow,
        expected_revision: i64,
        meta: WriteMeta,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
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
                    reason: "CONCURRENT_MODIFICATION",
                    message: "the cadre changed while this update was prepared".into(),
                }
            } else {
                Error::NotFound(format!("cadres/{}", c.id))
            });
        }
        finish_write(&mut tx, &meta).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_cadre(&self, id: &str) -> Result<Option<CadreRow>> {
        let row = sqlx::query("SELECT * FROM cadres WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cadre_from_row).transpose()
    }

    async fn get_cadre_by_id_number(&self, id_number: &str) -> Result<Option<CadreRow>> {
        let row = sqlx::query("SELECT * FROM cadres WHERE id_number = $1")
            .bind(id_number)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(cadre_from_row).transpose()
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

    async fn list_access_events(&self, q: &LogQuery) -> Result<Vec<LogRow>> {
        let rows = sqlx::query(
            "SELECT * FROM access_log l \
             WHERE l.seq > $1 \
               AND ($2 IS NULL OR l.principal = $2) \
               AND ($3 IS NULL OR l.method = $3) \
               AND ($4 IS NULL OR l.time_us >= $4) \
               AND ($5 IS NULL OR l.time_us < $5) \
               AND ($6 IS NULL OR EXISTS (SELECT 1 FROM access_log_cadres c WHERE c.cadre = $6 AND c.seq = l.seq)) \
               AND ($8 IS NULL OR substr(l.principal, 1, length($8)) = $8) \
             ORDER BY l.seq LIMIT $7",
        )
        .bind(q.after_seq)
        .bind(&q.principal)
        .bind(&q.method)
        .bind(q.start_us)
        .bind(q.end_us)
        .bind(&q.cadre)
        .bind(q.limit)
        .bind(&q.principal_prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(log_from_row).collect()
    }

    async fn log_head(&self) -> Result<(i64, String)> {
        let r = sqlx::query("SELECT seq, hash FROM access_log_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((r.try_get("seq")?, r.try_get("hash")?))
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
        .execute(&self.pool)
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

    async fn close(&self) {
        self.pool.close().await;
    }
}

fn checkpoint_from_row(r: &PgRow) -> Result<CheckpointRow> {
    Ok(CheckpointRow {
        seq: r.try_get("seq")?,
        hash: r.try_get("hash")?,
        time_us: r.try_get("time_us")?,
        key_id: r.try_get("key_id")?,
        signature: r.try_get("signature")?,
    })
}
