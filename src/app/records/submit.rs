//! Writing records: Submit, BatchSubmit and Retract, with the checks of what a submission names and the replay of a stored outcome.

use std::collections::HashMap;

use super::{
    BATCH_MAX, RecordApi, View, ViewCache, etag, is_owner, named_record, new_resource, record_name,
    resource_of, row,
};
use crate::app::{Call, Outcome, OutcomeItem, RequestKey, item_error};
use crate::authz::Action;
use crate::domain::records::{self, Kind, parse_record_name};
use crate::domain::states::RecordState;
use crate::domain::{division, free_text, ids};
use crate::error::{Error, FieldViolation, Reason, Result};
use crate::identity::Principal;
use crate::proto::{self, record::Payload};
use crate::store::{CadreRow, RecordRow, SubmitOutcome};

/// What the items of a submission name — cadres and audit engagements — read
/// in a few queries for the whole batch instead of two per item.
#[derive(Default)]
struct Named {
    cadres: HashMap<String, CadreRow>,
    by_id_number: HashMap<String, CadreRow>,
    /// The caller's own engagements by source record id.
    engagements: HashMap<String, RecordRow>,
}

impl RecordApi {
    /// Reads the cadres and engagements that `requests` name.
    async fn named(
        &self,
        principal: &Principal,
        requests: &[&proto::SubmitRecordRequest],
    ) -> Result<Named> {
        let (mut ids, mut numbers, mut engagements) = (Vec::new(), Vec::new(), Vec::new());
        for rec in requests.iter().filter_map(|r| r.record.as_ref()) {
            if let Some(id) = rec
                .cadre
                .strip_prefix("cadres/")
                .filter(|id| records::is_resource_id(id))
            {
                ids.push(id.to_string());
            } else if !rec.cadre_id_number.is_empty() {
                numbers.push(rec.cadre_id_number.to_ascii_uppercase());
            }
            if let Some(Payload::AuditFinding(f)) = &rec.payload {
                engagements.push(f.engagement_source_record_id.clone());
            }
        }
        let store = &self.state.store;
        let by_id_number = store
            .get_cadres_by_id_numbers(&numbers)
            .await?
            .into_iter()
            .map(|c| (c.id_number.clone(), c))
            .collect();
        Ok(Named {
            cadres: store
                .get_cadres(&ids)
                .await?
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect(),
            by_id_number,
            engagements: store
                .find_records(&principal.uri, &engagements)
                .await?
                .into_iter()
                .map(|r| (r.source_record_id.clone(), r))
                .collect(),
        })
    }

    /// Validates one submitted record and resolves what it names (cadre,
    /// engagement, clue source) through `named`, sealing the informant block.
    /// Nothing is stored.
    async fn prepare(
        &self,
        call: &mut Call,
        req: &proto::SubmitRecordRequest,
        named: &Named,
    ) -> Result<RecordRow> {
        let authz = &self.state.authz;
        let (rec, payload, kind) = row::submitted(req.record.as_ref())?;
        let principal = call.principal.clone();
        call.require(
            authz,
            Action::SubmitRecord,
            &new_resource(kind, &principal.division),
            || {
                Error::denied(
                    Reason::KindNotOwned,
                    format!(
                        "{} systems are not the authoritative source of {} records",
                        principal.agency,
                        kind.as_str()
                    ),
                )
            },
        )?;
        let mut violations = row::field_violations(rec, payload)?;
        // A record naming its cadre both ways must name one cadre; the number
        // is compared, canonicalized, once the named cadre is known to be
        // accessible, so that the answer confirms nothing about a cadre the
        // caller may not see.
        let mut number_to_check = None;
        let cadre = if !rec.cadre.is_empty() {
            if !rec.cadre_id_number.is_empty() {
                let number = rec.cadre_id_number.to_ascii_uppercase();
                if ids::is_valid_id_number(&number) {
                    number_to_check = Some(number);
                } else {
                    violations.push(FieldViolation::new(
                        "record.cadre_id_number",
                        "not a valid 18-character 公民身份号码",
                    ));
                }
            }
            match rec
                .cadre
                .strip_prefix("cadres/")
                .filter(|id| records::is_resource_id(id))
            {
                Some(id) => named.cadres.get(id).cloned(),
                None => {
                    violations.push(FieldViolation::new(
                        "record.cadre",
                        "must be a resource name cadres/{cadre}",
                    ));
                    None
                }
            }
        } else if !rec.cadre_id_number.is_empty() {
            let number = rec.cadre_id_number.to_ascii_uppercase();
            if ids::is_valid_id_number(&number) {
                let found = named.by_id_number.get(&number).cloned();
                crate::metrics::id_number_lookup(
                    &call.principal.uri,
                    &call.principal.division,
                    found.as_ref().map(|c| c.managing_division.as_str()),
                );
                found
            } else {
                violations.push(FieldViolation::new(
                    "record.cadre_id_number",
                    "not a valid 18-character 公民身份号码",
                ));
                None
            }
        } else {
            violations.push(FieldViolation::new(
                "record.cadre",
                "name the cadre by cadre or cadre_id_number",
            ));
            None
        };
        if !violations.is_empty() {
            return Err(Error::InvalidArgument { violations });
        }
        let Some(cadre) = cadre else {
            return Err(Error::CadreNotAccessible);
        };
        call.require(
            authz,
            Action::SubmitRecord,
            &new_resource(kind, &cadre.managing_division),
            || Error::CadreNotAccessible,
        )?;
        if number_to_check.is_some_and(|n| n != cadre.id_number.to_ascii_uppercase()) {
            return Err(Error::invalid(
                "record.cadre_id_number",
                "names a different cadre than record.cadre",
            ));
        }

        let mut links = row::Links::default();
        let source;
        match payload {
            Payload::AuditFinding(f) => {
                let engagement = named
                    .engagements
                    .get(&f.engagement_source_record_id)
                    .filter(|e| {
                        e.kind == Kind::AuditEngagement.as_str()
                            && e.cadre_id == cadre.id
                            && e.state == RecordState::Active
                    });
                // The engagement may still be on its way (an import that
                // sends findings first, a retry after a failed batch): a
                // precondition the caller can wait for, not bad input.
                if engagement.is_none() {
                    return Err(Error::precondition(
                        Reason::EngagementNotFound,
                        "record.audit_finding.engagement_source_record_id: no active engagement \
                         with this source record id from this system for this cadre (yet)",
                    ));
                }
                links.engagement = engagement;
            }
            Payload::Clue(k) if !k.source_record.is_empty() => {
                source = match parse_record_name(&k.source_record) {
                    Some((cadre_id, id)) => self
                        .state
                        .store
                        .get_record(&id)
                        .await?
                        .filter(|r| r.cadre_id == cadre_id && r.cadre_id == cadre.id),
                    None => None,
                };
                if source.is_none() {
                    return Err(Error::invalid(
                        "record.clue.source_record",
                        "no such record about this cadre",
                    ));
                }
                links.clue_source = source.as_ref();
            }
            // 档案必审 is done for a request (DESIGN §6a): one of the
            // submitter's own, naming this cadre. Any other request — missing,
            // another body's, about other cadres — gets one answer, so that
            // the field tells nothing about requests the caller cannot see.
            Payload::ArchiveReview(a) => {
                let serves = match a.opinion_request.strip_prefix("opinionRequests/") {
                    Some(id) => self
                        .state
                        .store
                        .get_opinion_request(id)
                        .await?
                        .is_some_and(|r| {
                            crate::app::opinions::is_requester(&principal, &r)
                                && r.cadres.contains(&cadre.id)
                        }),
                    None => false,
                };
                if !serves {
                    return Err(Error::invalid(
                        "record.archive_review.opinion_request",
                        "not an integrity-opinion request of yours naming this cadre",
                    ));
                }
            }
            _ => {}
        }
        let keys = row::RowKeys {
            digest: &self.state.digest,
            informant: &self.state.informant,
        };
        row::stored_row(
            keys,
            &principal,
            uuid::Uuid::now_v7().simple().to_string(),
            rec,
            &cadre,
            links,
        )
    }

    /// The owner's view of a record just written: full, informant included
    /// where the owner may read it.
    fn owner_view(&self, call: &mut Call, row: &RecordRow) -> Result<proto::Record> {
        let view = self
            .view_of(call, row)?
            .unwrap_or(View::Full { informant: false });
        self.render(row, view, is_owner(&call.principal, row))
    }

    pub async fn submit(
        &self,
        call: &mut Call,
        req: proto::SubmitRecordRequest,
    ) -> Result<proto::SubmitRecordResponse> {
        let key = RequestKey::new(&self.state, call, &req, &req.request_id)?;
        if req.validate_only {
            let named = self.named(&call.principal, &[&req]).await?;
            let row = self.prepare(call, &req, &named).await?;
            validated(call, std::slice::from_ref(&row));
            return Ok(proto::SubmitRecordResponse {
                record: None,
                stale: false,
            });
        }
        if let Some(previous) = key
            .replay::<proto::SubmitRecordResponse>(&self.state, |r| {
                Outcome::from_items([(r.record.map(|r| r.name), r.stale, None)])
            })
            .await?
        {
            let mut items = self.rerender(call, &previous).await?;
            return match items.pop() {
                Some(Ok((record, stale))) => Ok(proto::SubmitRecordResponse {
                    record: Some(record),
                    stale,
                }),
                Some(Err(e)) if e.code == crate::error::Code::NotFound as i32 => {
                    Err(Error::NotFound("the record this request_id wrote".into()))
                }
                // A single submission stores only a success; anything else is
                // not an outcome this code wrote.
                _ => Err(Error::internal(anyhow::anyhow!(
                    "stored outcome of request {} is not one record",
                    req.request_id
                ))),
            };
        }
        let named = self.named(&call.principal, &[&req]).await?;
        let row = self.prepare(call, &req, &named).await?;
        let base = call.entry(0, String::new());
        // Views are decided before the transaction: the owner's view of its own
        // kind does not depend on the row's revision.
        let view = self.level(
            call,
            &resource_of(&row),
            Kind::parse(&row.kind).unwrap_or(Kind::Sanction),
        );
        let render = |o: &SubmitOutcome| -> Result<proto::SubmitRecordResponse> {
            Ok(proto::SubmitRecordResponse {
                record: Some(self.render(
                    o.row(),
                    view.unwrap_or(View::Full { informant: false }),
                    true,
                )?),
                stale: matches!(o, SubmitOutcome::Stale(_)),
            })
        };
        let finish = |outcomes: &[Result<SubmitOutcome>]| {
            let mut log = base.clone();
            let mut idempotency = None;
            match outcomes.first() {
                Some(Ok(o)) => {
                    log.resources = vec![record_name(o.row())];
                    idempotency = key.remember(&outcome_of(std::iter::once(Ok(o))));
                }
                Some(Err(e)) => log.status_code = e.code() as i32,
                None => {}
            }
            (log, idempotency)
        };
        let mut outcomes = self
            .state
            .store
            .submit_records(vec![row], &self.state.digest, &finish)
            .await?;
        call.logged = true;
        let outcome = outcomes
            .pop()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("no outcome")))?;
        let outcome = outcome?;
        call.resources = vec![record_name(outcome.row())];
        render(&outcome)
    }

    pub async fn batch(
        &self,
        call: &mut Call,
        req: proto::BatchSubmitRecordsRequest,
    ) -> Result<proto::BatchSubmitRecordsResponse> {
        if req.requests.is_empty() || req.requests.len() > BATCH_MAX {
            return Err(Error::invalid(
                "requests",
                format!("between 1 and {BATCH_MAX} records"),
            ));
        }
        let key = RequestKey::new(&self.state, call, &req, &req.request_id)?;
        if !req.validate_only
            && let Some(previous) = key
                .replay::<proto::BatchSubmitRecordsResponse>(&self.state, |r| {
                    Outcome::from_items(
                        r.results
                            .into_iter()
                            .map(|r| (r.record.map(|r| r.name), r.stale, r.error)),
                    )
                })
                .await?
        {
            let results = self
                .rerender(call, &previous)
                .await?
                .into_iter()
                .enumerate()
                .map(|(index, item)| batch_result(index, item))
                .collect();
            return Ok(proto::BatchSubmitRecordsResponse { results });
        }
        let mut prepared: Vec<std::result::Result<RecordRow, Error>> =
            Vec::with_capacity(req.requests.len());
        let mut views: HashMap<String, Option<View>> = HashMap::new();
        // Text first, as `grpc::start` checks a single submission: a refused
        // item is that item's answer, and names nothing that is looked up.
        let text: Vec<Result<()>> = req
            .requests
            .iter()
            .map(|item| crate::app::text::check_item(call.method, item, ""))
            .collect();
        let all: Vec<&proto::SubmitRecordRequest> = req
            .requests
            .iter()
            .zip(&text)
            .filter(|(_, t)| t.is_ok())
            .map(|(item, _)| item)
            .collect();
        let named = self.named(&call.principal, &all).await?;
        for (i, (item, text)) in req.requests.iter().zip(text).enumerate() {
            if let Err(e) = text {
                prepared.push(Err(e));
                continue;
            }
            // Preparing a large batch is CPU work with no await in it; yielding
            // now and then lets the runtime drive other calls' transactions,
            // which hold the store's one writer while they wait to be polled.
            if i % 32 == 31 {
                tokio::task::yield_now().await;
            }
            let mark = call.policy_mark();
            match self.prepare(call, item, &named).await {
                Ok(row) => {
                    views.entry(row.kind.clone()).or_insert_with(|| {
                        self.level(
                            call,
                            &resource_of(&row),
                            Kind::parse(&row.kind).unwrap_or(Kind::Sanction),
                        )
                    });
                    prepared.push(Ok(row));
                }
                Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => return Err(e),
                Err(e) => {
                    call.forget_policies_since(mark);
                    prepared.push(Err(e));
                }
            }
        }
        // A refused item is that item's answer, not a refusal of the call.
        call.decision = Some(true);
        let rows: Vec<RecordRow> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok().cloned())
            .collect();
        if req.validate_only {
            validated(call, &rows);
            let results = prepared
                .iter()
                .enumerate()
                .map(|(index, p)| proto::BatchSubmitResult {
                    index: index as i32,
                    error: p.as_ref().err().map(item_error),
                    ..Default::default()
                })
                .collect();
            return Ok(proto::BatchSubmitRecordsResponse { results });
        }
        let render = |o: &SubmitOutcome| -> Result<proto::Record> {
            let view = views
                .get(&o.row().kind)
                .copied()
                .flatten()
                .unwrap_or(View::Full { informant: false });
            self.render(o.row(), view, true)
        };
        let assemble = |outcomes: &[Result<SubmitOutcome>]| -> proto::BatchSubmitRecordsResponse {
            let mut stored = outcomes.iter();
            let results = prepared
                .iter()
                .enumerate()
                .map(|(index, p)| {
                    let outcome = match p {
                        Err(e) => Err(item_error(e)),
                        Ok(_) => match stored.next() {
                            Some(Ok(o)) => render(o)
                                .map(|r| (r, matches!(o, SubmitOutcome::Stale(_))))
                                .map_err(|e| item_error(&e)),
                            Some(Err(e)) => Err(item_error(e)),
                            None => Err(item_error(&Error::internal(anyhow::anyhow!(
                                "missing outcome"
                            )))),
                        },
                    };
                    batch_result(index, outcome)
                })
                .collect();
            proto::BatchSubmitRecordsResponse { results }
        };
        if rows.is_empty() {
            return Ok(assemble(&[]));
        }
        let base = call.entry(0, String::new());
        let missing: Result<SubmitOutcome> =
            Err(Error::internal(anyhow::anyhow!("missing outcome")));
        let finish = |outcomes: &[Result<SubmitOutcome>]| {
            let mut log = base.clone();
            // One row for the batch, naming every record it touched.
            log.resources = outcomes
                .iter()
                .filter_map(|o| o.as_ref().ok().map(|o| record_name(o.row())))
                .collect();
            let mut stored = outcomes.iter();
            let outcome = outcome_of(prepared.iter().map(|p| match p {
                Err(e) => Err(e),
                Ok(_) => stored.next().unwrap_or(&missing).as_ref(),
            }));
            (log, key.remember(&outcome))
        };
        let outcomes = self
            .state
            .store
            .submit_records(rows, &self.state.digest, &finish)
            .await?;
        call.logged = true;
        Ok(assemble(&outcomes))
    }

    pub async fn retract(
        &self,
        call: &mut Call,
        req: proto::RetractRecordRequest,
    ) -> Result<proto::Record> {
        let (cadre_id, id) = named_record(&req.name)?;
        call.resources.push(req.name.clone());
        let reason = req.reason.trim();
        if let Some(v) = free_text("reason", reason, 500, true) {
            return Err(Error::InvalidArgument {
                violations: vec![v],
            });
        }
        let row = self
            .state
            .store
            .get_record(&id)
            .await?
            .filter(|r| r.cadre_id == cadre_id);
        let Some(row) = row else {
            return Err(self.missing(call, &cadre_id, &req.name).await?);
        };
        let resource = resource_of(&row);
        let decision = call.authorize(&self.state.authz, Action::RetractRecord, &resource);
        if !decision.allowed {
            call.deny(&decision);
            let visible = division::covers(&call.principal.division, &row.division);
            return Err(if !visible {
                Error::CadreNotAccessible
            } else if self.view_of(call, &row)?.is_some() {
                Error::denied(
                    Reason::NotOwner,
                    "only a system of the owner agency and division retracts a record",
                )
            } else {
                Error::NotFound(req.name.clone())
            });
        }
        if !req.etag.is_empty() && req.etag != etag(row.revision) {
            return Err(Error::precondition(
                Reason::EtagMismatch,
                "the record has changed since it was read",
            ));
        }
        if row.state == RecordState::Retracted {
            return self.owner_view(call, &row);
        }
        let log = call.entry(0, String::new());
        let retracted = self
            .state
            .store
            .retract_record(&row.id, row.revision, reason, &call.principal.uri, log)
            .await?;
        call.logged = true;
        self.owner_view(call, &retracted)
    }
}

/// The outcome of a record submission as the replay cache keeps it.
fn outcome_of<'a>(
    outcomes: impl Iterator<Item = std::result::Result<&'a SubmitOutcome, &'a Error>>,
) -> Outcome {
    Outcome {
        items: outcomes
            .map(|o| match o {
                Ok(o) => OutcomeItem {
                    name: record_name(o.row()),
                    revision: o.row().revision,
                    flag: matches!(o, SubmitOutcome::Stale(_)),
                    error: None,
                },
                Err(e) => OutcomeItem {
                    error: Some(item_error(e)),
                    ..Default::default()
                },
            })
            .collect(),
    }
}

impl RecordApi {
    /// A stored submission outcome in the caller's current view: each record
    /// read again and rendered as a read of it would be. A record the caller
    /// can no longer see answers NOT_FOUND for its item.
    async fn rerender(
        &self,
        call: &mut Call,
        stored: &Outcome,
    ) -> Result<Vec<std::result::Result<(proto::Record, bool), proto::ItemError>>> {
        let ids: Vec<String> = stored
            .items
            .iter()
            .filter(|i| i.error.is_none())
            .filter_map(|i| parse_record_name(&i.name).map(|(_, id)| id))
            .collect();
        let rows: HashMap<String, RecordRow> = self
            .state
            .store
            .get_records(&ids, "")
            .await?
            .into_iter()
            .map(|r| (record_name(&r), r))
            .collect();
        let mut views = ViewCache::default();
        let mut out = Vec::with_capacity(stored.items.len());
        for item in &stored.items {
            if let Some(e) = &item.error {
                out.push(Err(e.clone()));
                continue;
            }
            call.resources.push(item.name.clone());
            let view = match rows.get(&item.name) {
                Some(row) => views.view(self, call, row)?.map(|v| (row, v)),
                None => None,
            };
            let Some((row, view)) = view else {
                out.push(Err(item_error(&Error::NotFound(item.name.clone()))));
                continue;
            };
            out.push(Ok((
                self.render(row, view, is_owner(&call.principal, row))?,
                item.flag,
            )));
        }
        Ok(out)
    }
}

/// Marks a `validate_only` call (AIP-163): nothing was written, so its log
/// row names the cadres the accepted items would have been filed under (all
/// resolved by the server) and says VALIDATED.
fn validated(call: &mut Call, rows: &[RecordRow]) {
    call.validated = true;
    call.resources = rows
        .iter()
        .map(|r| format!("cadres/{}", r.cadre_id))
        .collect();
    call.resources.sort();
    call.resources.dedup();
}

/// One item's result of a batch: the record in the caller's view with its
/// stale flag, or the item's error.
fn batch_result(
    index: usize,
    outcome: std::result::Result<(proto::Record, bool), proto::ItemError>,
) -> proto::BatchSubmitResult {
    match outcome {
        Ok((record, stale)) => proto::BatchSubmitResult {
            index: index as i32,
            record: Some(record),
            stale,
            error: None,
        },
        Err(error) => proto::BatchSubmitResult {
            index: index as i32,
            record: None,
            stale: false,
            error: Some(error),
        },
    }
}
