//! Opinion requests and their replies: `OpinionRepo`.
//!
//! Expanded by [`store_body!`](super::store_body) into each backend module beside
//! the other repositories' parts: the `use`s, `Db` types and shared helpers named
//! here come from there, and every part sees the helpers the others define.

/// `OpinionRepo` for `$store`, with the helpers that belong to it; invoked only by
/// [`store_body!`](super::store_body).
macro_rules! opinion_repo {
    (store: $store:ident $(,)?) => {
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
             correction_reason, corrects, replier, purpose, revision, create_time_us, draft_verdict, deviation_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
        .bind(&reply.draft_verdict)
        .bind(&reply.deviation_reason)
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
                    draft_verdict: r.try_get("draft_verdict")?,
                    deviation_reason: r.try_get("deviation_reason")?,
                })
            })
            .collect()
    }
}
    };
}
pub(crate) use opinion_repo;
