//! Cadres: `CadreRepo`, with the cadre rows and a cadre's move to another division.
//!
//! Expanded by [`store_body!`](super::store_body) into each backend module beside
//! the other repositories' parts: the `use`s, `Db` types and shared helpers named
//! here come from there, and every part sees the helpers the others define.

/// `CadreRepo` for `$store`, with the helpers that belong to it; invoked only by
/// [`store_body!`](super::store_body).
macro_rules! cadre_repo {
    (store: $store:ident $(,)?) => {
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

/// When a record about the cadre `$1` that was a matter before or after the
/// write was last written or retracted (DESIGN §6), kept by the writes themselves.
const LAST_MATTER_WRITE: &str = "SELECT last_matter_write_us AS t FROM cadres WHERE id = $1";

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
               AND ($7 IS NULL OR posts LIKE $7) \
             ORDER BY id LIMIT $6",
        )
        .bind(&q.jurisdiction_prefix)
        .bind(&q.division_prefix)
        .bind(&q.name)
        .bind(q.name_is_prefix)
        .bind(&q.after_id)
        .bind(q.limit)
        // Posts are stored as JSON; a validated credit code holds only
        // letters and digits, so it needs no escaping in the pattern.
        .bind(
            q.unit_credit_code
                .as_ref()
                .map(|u| format!("%\"unit_credit_code\":\"{u}\"%")),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(cadre_from_row).collect()
    }
}
    };
}
pub(crate) use cadre_repo;
