//! Writing the vetting workflow: a request created, withdrawn; a draft computed; a reply given (immutable, a correction is a new reply).

use super::*;

impl OpinionApi {
    pub async fn create(
        &self,
        call: &mut Call,
        req: proto::CreateOpinionRequestRequest,
    ) -> Result<proto::OpinionRequest> {
        let authz = &self.state.authz;
        let p = call.principal.clone();
        call.require(
            authz,
            Action::RequestOpinion,
            &cadre_resource("-", &p.division),
            || {
                Error::denied(
                    Reason::ActionNotPermitted,
                    "only organization systems ask for integrity opinions",
                )
            },
        )?;
        let key = RequestKey::new(&self.state, call, &req, &req.request_id)?;
        if let Some(previous) = key
            .replay::<proto::OpinionRequest>(&self.state, |r| Outcome::one(r.name, 0))
            .await?
        {
            // A replay answers in the caller's view of now, not as stored.
            return Ok(self.load(call, previous.single()?).await?.1.request);
        }
        let mut violations = Vec::new();
        if req.cadres.is_empty() || req.cadres.len() > 100 {
            violations.push(FieldViolation::new("cadres", "between 1 and 100 cadres"));
        }
        let purpose = purpose_name(req.purpose);
        if purpose.is_none() {
            violations.push(FieldViolation::new(
                "purpose",
                "required: PROMOTION, FURTHER_USE, RE_ELECTION, AWARD or TRANSFER",
            ));
        }
        let today = today();
        let mut ids = Vec::new();
        for (i, name) in req.cadres.iter().enumerate() {
            match cadre_id(name, &format!("cadres[{i}]")) {
                Ok(id) if ids.contains(&id) => {
                    violations.push(FieldViolation::new(format!("cadres[{i}]"), "named twice"))
                }
                Ok(id) => ids.push(id),
                Err(Error::InvalidArgument { violations: v }) => violations.extend(v),
                Err(e) => return Err(e),
            }
        }
        let due = if req.due_date.is_empty() {
            None
        } else {
            match parse_date(&req.due_date) {
                Some(d) if d > today => Some(d),
                _ => {
                    violations.push(FieldViolation::new(
                        "due_date",
                        "a date YYYY-MM-DD after today",
                    ));
                    None
                }
            }
        };
        violations.extend(free_text("note", &req.note, 500, false));
        if !violations.is_empty() {
            return Err(Error::InvalidArgument { violations });
        }
        for id in &ids {
            let Some(c) = self.state.store.get_cadre(id).await? else {
                return Err(if p.division == division::NATIONAL {
                    Error::NotFound(format!("cadres/{id}"))
                } else {
                    Error::CadreNotAccessible
                });
            };
            call.require(
                authz,
                Action::RequestOpinion,
                &cadre_resource(id, &c.managing_division),
                || Error::CadreNotAccessible,
            )?;
        }
        let (due, warnings) = match due {
            Some(d) => (d, Vec::new()),
            // DESIGN §6: 10 working days, not counting the day of the request.
            None => self.state.calendar.add_working_days(today, 10),
        };
        for w in &warnings {
            tracing::warn!(warning = %w, "due date computed without holiday data");
        }
        let now = now_us();
        let row = OpinionRequestRow {
            id: uuid::Uuid::now_v7().simple().to_string(),
            requester: p.uri.clone(),
            requester_agency: p.agency.as_str().into(),
            requester_division: p.division.clone(),
            purpose: purpose.unwrap_or_default().into(),
            due_date: due.to_string(),
            state: RequestState::Pending,
            note: req.note.clone(),
            withdraw_reason: String::new(),
            warnings,
            revision: 1,
            create_time_us: now,
            update_time_us: now,
            cadres: ids.clone(),
        };
        let response = self
            .view(call, &row)
            .await?
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "policies let a requester ask about cadres it may not read opinions about"
                ))
            })?
            .request;
        call.resources = std::iter::once(response.name.clone())
            .chain(response.cadres.iter().cloned())
            .collect();
        let meta = WriteMeta {
            log: call.entry(0, String::new()),
            changes: vec![Change {
                op: ChangeOp::Upsert,
                resource: request_name(&row.id),
                kind: ChangeKind::OpinionRequest.as_str().into(),
                revision: 1,
                division: p.division.clone(),
                from_division: None,
            }],
            idempotency: key.remember(&Outcome::one(request_name(&row.id), row.revision)),
        };
        self.state.store.create_opinion_request(&row, meta).await?;
        call.logged = true;
        Ok(response)
    }

    pub async fn withdraw(
        &self,
        call: &mut Call,
        req: proto::WithdrawOpinionRequestRequest,
    ) -> Result<proto::OpinionRequest> {
        let (row, _) = self.load(call, &req.name).await?;
        let p = call.principal.clone();
        if !(p.agency.as_str() == row.requester_agency && p.division == row.requester_division) {
            let d = self.state.authz.authorize(
                &p,
                Action::RequestOpinion,
                &cadre_resource("-", &p.division),
            );
            call.deny(&d);
            return Err(Error::denied(
                Reason::NotRequester,
                "only the requesting organization department withdraws",
            ));
        }
        let reason = req.reason.trim();
        if let Some(v) = free_text("reason", reason, 500, true) {
            return Err(Error::InvalidArgument {
                violations: vec![v],
            });
        }
        let meta = WriteMeta {
            log: call.entry(0, String::new()),
            changes: vec![Change {
                op: ChangeOp::Upsert,
                resource: request_name(&row.id),
                kind: ChangeKind::OpinionRequest.as_str().into(),
                revision: row.revision + 1,
                division: row.requester_division.clone(),
                from_division: None,
            }],
            idempotency: None,
        };
        let updated = self
            .state
            .store
            .withdraw_opinion_request(&row.id, reason, meta)
            .await?;
        call.logged = true;
        match self.view(call, &updated).await? {
            Some(view) => Ok(view.request),
            None => Err(Error::NotFound(request_name(&updated.id))),
        }
    }

    /// The cadre of a request that discipline drafts or replies for.
    pub(super) async fn request_cadre(
        &self,
        call: &mut Call,
        name: &str,
        cadre: &str,
        action: Action,
    ) -> Result<(OpinionRequestRow, String)> {
        let (row, view) = self.load(call, name).await?;
        let id = cadre_id(cadre, "cadre")?;
        // A cadre of the request the caller does not see gets the same answer
        // as one the request does not name: no oracle for who else is asked about.
        if !view.sees(&id) {
            return Err(Error::invalid("cadre", "not a cadre of this request"));
        }
        call.resources.push(format!("cadres/{id}"));
        let c = self
            .state
            .store
            .get_cadre(&id)
            .await?
            .filter(|c| division::covers(&call.principal.division, &c.managing_division))
            // A piece kept after the cadre moved away is read, not worked on.
            .ok_or(Error::CadreNotAccessible)?;
        call.require(
            &self.state.authz,
            action,
            &cadre_resource(&id, &c.managing_division),
            || {
                Error::denied(
                    Reason::ActionNotPermitted,
                    "only discipline systems draft and reply to integrity opinions",
                )
            },
        )?;
        Ok((row, id))
    }

    pub async fn draft(
        &self,
        call: &mut Call,
        req: proto::DraftOpinionRequest,
    ) -> Result<proto::OpinionDraft> {
        let (_, id) = self
            .request_cadre(call, &req.name, &req.cadre, Action::DraftOpinion)
            .await?;
        let as_of = if req.as_of_date.is_empty() {
            today()
        } else {
            parse_date(&req.as_of_date)
                .ok_or_else(|| Error::invalid("as_of_date", "a date YYYY-MM-DD"))?
        };
        let as_of_time = now_us();
        let visible = visible_records(&self.records, &self.state, call, &id).await?;
        let facts: Vec<rules::Fact> = visible.iter().filter_map(records::fact_of).collect();
        call.resources
            .extend(visible.iter().map(|r| r.name.clone()));
        let draft = rules::draft(&facts, as_of, &self.state.rules);
        let (barred_until, barred_permanently) = barred(draft.barred_until);
        Ok(proto::OpinionDraft {
            cadre: format!("cadres/{id}"),
            verdict: verdict_proto(draft.verdict) as i32,
            reasons: reasons_proto(&draft.reasons),
            barred_until,
            barred_permanently,
            as_of_date: as_of.to_string(),
            as_of_time: Some(timestamp(as_of_time)),
        })
    }

    pub async fn reply(
        &self,
        call: &mut Call,
        req: proto::ReplyOpinionRequest,
    ) -> Result<proto::OpinionReply> {
        let key = RequestKey::new(&self.state, call, &req, &req.request_id)?;
        let (row, id) = self
            .request_cadre(call, &req.name, &req.cadre, Action::ReplyOpinion)
            .await?;
        if let Some(previous) = key
            .replay::<proto::OpinionReply>(&self.state, |r| Outcome::one(r.name, 0))
            .await?
        {
            let name = previous.single()?.to_string();
            call.resources.push(name.clone());
            // A replay answers in the caller's view of now (staleness included).
            let reply_id = name.rsplit('/').next().unwrap_or_default();
            let stored = self.state.store.opinion_replies(&row.id).await?;
            return match stored.iter().find(|r| r.id == reply_id && r.cadre_id == id) {
                Some(r) => self.reply_proto(call, &row, r).await,
                None => Err(Error::internal(anyhow::anyhow!(
                    "a replayed reply is not stored"
                ))),
            };
        }
        let mut violations = Vec::new();
        let verdict = verdict_name(req.verdict);
        if verdict.is_none() {
            violations.push(FieldViolation::new(
                "verdict",
                "required: NO_ISSUE, ISSUE_NOT_BLOCKING, DEFER or NOT_AGREE",
            ));
        }
        violations.extend(free_text("text", &req.text, 4000, true));
        violations.extend(label("signer", &req.signer, 64, true));
        violations.extend(free_text(
            "correction_reason",
            &req.correction_reason,
            500,
            false,
        ));
        violations.extend(free_text(
            "deviation_reason",
            &req.deviation_reason,
            500,
            false,
        ));
        for (i, r) in req.cited_records.iter().enumerate() {
            if records::parse_record_name(r).is_none_or(|(c, _)| c != id) {
                violations.push(FieldViolation::new(
                    format!("cited_records[{i}]"),
                    "must name a record of this cadre",
                ));
            }
        }
        let previous = self
            .state
            .store
            .opinion_replies(&row.id)
            .await?
            .into_iter()
            .rev()
            .find(|r| r.cadre_id == id);
        if previous.is_some() && req.correction_reason.trim().is_empty() {
            violations.push(FieldViolation::new(
                "correction_reason",
                "this cadre has a reply; a correction needs a reason",
            ));
        }
        let now = now_us();
        let as_of = req.as_of_time.as_ref().map(micros).unwrap_or(now);
        if as_of > now {
            violations.push(FieldViolation::new(
                "as_of_time",
                "must not be in the future",
            ));
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument { violations });
        }
        // The draft the rules give this replier, from its own view of the
        // records held now, at the reply's as-of date (DESIGN §6): a kinder
        // verdict must say why it departs from it.
        let visible = visible_records(&self.records, &self.state, call, &id).await?;
        let facts: Vec<rules::Fact> = visible.iter().filter_map(records::fact_of).collect();
        call.resources
            .extend(visible.iter().map(|r| r.name.clone()));
        let draft = rules::draft(&facts, date_of(as_of), &self.state.rules).verdict;
        let kinder = verdict
            .and_then(rules::Verdict::parse)
            .is_some_and(|v| v < draft);
        let deviation_reason = req.deviation_reason.trim();
        // A reason must say something: a string of format or invisible
        // characters (U+200B, U+FEFF, …) passes a check for emptiness only.
        let says_something = deviation_reason
            .chars()
            .any(|c| c.is_alphanumeric() || c.is_ascii_punctuation());
        if kinder && !says_something {
            return Err(Error::DeviationReasonRequired {
                draft: draft.as_str(),
            });
        }
        let reply = ReplyRow {
            id: uuid::Uuid::now_v7().simple().to_string(),
            request_id: row.id.clone(),
            cadre_id: id.clone(),
            verdict: verdict.unwrap_or_default().into(),
            text: req.text.trim().to_string(),
            cited_records: req.cited_records.clone(),
            signer: req.signer.trim().to_string(),
            as_of_us: as_of,
            correction_reason: req.correction_reason.trim().to_string(),
            corrects: previous
                .map(|p| format!("{}/replies/{}", request_name(&row.id), p.id))
                .unwrap_or_default(),
            replier: call.principal.uri.clone(),
            purpose: row.purpose.clone(),
            revision: 1,
            create_time_us: now,
            draft_verdict: draft.as_str().into(),
            deviation_reason: if kinder {
                deviation_reason.to_string()
            } else {
                String::new()
            },
        };
        let response = self.reply_proto(call, &row, &reply).await?;
        call.resources.push(response.name.clone());
        let meta = WriteMeta {
            log: call.entry(0, String::new()),
            changes: vec![Change {
                op: ChangeOp::Upsert,
                resource: response.name.clone(),
                kind: ChangeKind::OpinionReply.as_str().into(),
                revision: 1,
                division: row.requester_division.clone(),
                from_division: None,
            }],
            idempotency: key.remember(&Outcome::one(response.name.clone(), reply.revision)),
        };
        self.state.store.add_opinion_reply(&reply, meta).await?;
        call.logged = true;
        Ok(response)
    }
}
