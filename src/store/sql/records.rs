//! Records: `RecordRepo`, with the batch writes that store what `plan_batch` decided.
//!
//! Expanded by [`store_body!`](super::store_body) into each backend module beside
//! the other repositories' parts: the `use`s, `Db` types and shared helpers named
//! here come from there, and every part sees the helpers the others define.

/// `RecordRepo` for `$store`, with the helpers that belong to it; invoked only by
/// [`store_body!`](super::store_body).
macro_rules! record_repo {
    (store: $store:ident $(,)?) => {
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

/// Moves the last matter-write time (DESIGN §6) of `cadre_ids` forward to
/// `at`, inside the write's transaction, in one statement for a whole batch;
/// never backwards, since two processes' clocks may disagree by a little.
async fn note_matter_writes(tx: &mut DbConn, cadre_ids: &[String], at: i64) -> Result<()> {
    if cadre_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE cadres SET last_matter_write_us = \
         CASE WHEN last_matter_write_us > $2 THEN last_matter_write_us ELSE $2 END WHERE id {}",
        in_list(1)
    )))
    .bind(list_arg(cadre_ids)?)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
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
    if let Some(now) = plan.inserts.iter().chain(&plan.updates).map(|r| r.update_time_us).max() {
        note_matter_writes(tx, &plan.matter_writes, now).await?;
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
        let was_matter = stored_is_matter(&row.payload, row.state == RecordState::Active);
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
        if was_matter {
            note_matter_writes(&mut tx, std::slice::from_ref(&row.cadre_id), row.update_time_us)
                .await?;
        }
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
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<Option<i64>, _>("t"))
            .transpose()?
            .flatten())
    }
}
    };
}
pub(crate) use record_repo;
