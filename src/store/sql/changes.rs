//! The change feed and its outbox counter: `ChangeRepo` and the outbox rows every write adds.
//!
//! Expanded by [`store_body!`](super::store_body) into each backend module beside
//! the other repositories' parts: the `use`s, `Db` types and shared helpers named
//! here come from there, and every part sees the helpers the others define.

/// `ChangeRepo` for `$store`, with the helpers that belong to it; invoked only by
/// [`store_body!`](super::store_body).
macro_rules! change_repo {
    (store: $store:ident, for_update: $for_update:literal $(,)?) => {
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
    };
}
pub(crate) use change_repo;
