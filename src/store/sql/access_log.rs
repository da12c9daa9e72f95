//! The access log: `AccessLogRepo`, the chain append every write ends with, and the `list_access_events` query.
//!
//! Expanded by [`store_body!`](super::store_body) into each backend module beside
//! the other repositories' parts: the `use`s, `Db` types and shared helpers named
//! here come from there, and every part sees the helpers the others define.

/// The one `list_access_events` query of both backends. `$9` is the scope,
/// `$10` is 1 for `cadre_ok_only`.
pub(crate) fn list_access_events_sql() -> String {
    let about = "EXISTS (SELECT 1 FROM access_log_cadres c JOIN cadres k ON c.cadre = 'cadres/' || k.id \
                 WHERE c.seq = l.seq AND substr(k.managing_division, 1, length($9)) = $9)";
    let by: Vec<String> = crate::domain::agency::Agency::ALL
        .iter()
        .map(|a| {
            format!(
                "substr(l.principal, 1, length('urn:cadrex:system:{a}:' || $9)) = 'urn:cadrex:system:{a}:' || $9",
                a = a.as_str()
            )
        })
        .collect();
    format!(
        "SELECT l.*, ($9 IS NULL OR {about}) AS about_scope FROM access_log l \
         WHERE l.seq > $1 \
           AND ($2 IS NULL OR l.principal = $2) \
           AND ($3 IS NULL OR l.method = $3) \
           AND ($4 IS NULL OR l.time_us >= $4) \
           AND ($5 IS NULL OR l.time_us < $5) \
           AND ($6 IS NULL OR (EXISTS (SELECT 1 FROM access_log_cadres c WHERE c.cadre = $6 AND c.seq = l.seq) \
                AND ($10 = 0 OR l.status_code = 0))) \
           AND ($8 IS NULL OR substr(l.principal, 1, length($8)) = $8) \
           AND ($9 IS NULL OR {about} OR {by}) \
         ORDER BY l.seq LIMIT $7",
        by = by.join(" OR ")
    )
}

/// `AccessLogRepo` for `$store`, with the helpers that belong to it; invoked only by
/// [`store_body!`](super::store_body).
macro_rules! access_log_repo {
    (store: $store:ident, for_update: $for_update:literal $(,)?) => {
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
        let sql = $crate::store::sql::list_access_events_sql();
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
pub(crate) use access_log_repo;
