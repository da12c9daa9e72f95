//! Record use cases: typed records submitted by their owner agency and read by the others in the view the access matrix gives them.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use super::{
    AppState, Call, Outcome, OutcomeItem, RequestKey, cursor, item_error, page_size, page_token,
};
use crate::authz::{Action, Resource};
use crate::domain::clock::timestamp;
use crate::domain::records::{self, Kind, parse_record_name};
use crate::domain::states::RecordState;
use crate::domain::{division, filter, free_text, ids};
use crate::error::{Error, FieldViolation, Reason, Result};
use crate::identity::Principal;
use crate::proto::{self, record::Payload};
use crate::store::{CadreRow, RecordQuery, RecordRow, SubmitOutcome};

/// Most items in one batch call.
pub const BATCH_MAX: usize = 1000;

#[derive(Clone)]
pub struct RecordApi {
    pub(crate) state: Arc<AppState>,
}

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
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// What a caller sees of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// Every field; the informant block only when `informant`.
    Full { informant: bool },
    /// The kind's summary type.
    Summary,
    /// A retracted record seen by someone other than its owner.
    Tombstone,
}

pub(crate) fn record_name(row: &RecordRow) -> String {
    format!("cadres/{}/records/{}", row.cadre_id, row.id)
}

pub(crate) fn resource_of(row: &RecordRow) -> Resource {
    Resource::Record {
        id: row.id.clone(),
        division: row.division.clone(),
        kind: row.kind.clone(),
        owner_agency: row.owner_agency.clone(),
        owner_division: row.owner_division.clone(),
        transfer_agency: row.transfer_agency.clone(),
        transfer_division: row.transfer_division.clone(),
    }
}

/// A record not yet stored, of `kind`, at `division`.
fn new_resource(kind: Kind, division: &str) -> Resource {
    Resource::Record {
        id: "-".into(),
        division: division.to_string(),
        kind: kind.as_str().into(),
        owner_agency: String::new(),
        owner_division: String::new(),
        transfer_agency: String::new(),
        transfer_division: String::new(),
    }
}

/// View levels decided once per distinct authorization resource of a page.
/// The key is the Cedar resource itself with its id blanked, so every
/// attribute a policy can test (kind, cadre division, owner agency and
/// division, transferring body, …) is in it, including any added later.
#[derive(Default)]
pub(crate) struct ViewCache(HashMap<Resource, Option<View>>);

impl ViewCache {
    /// The base view level of `row` for the caller (no tombstoning).
    pub(crate) fn level(
        &mut self,
        api: &RecordApi,
        call: &mut Call,
        row: &RecordRow,
    ) -> Result<Option<View>> {
        let resource = resource_of(row);
        let key = resource.without_id();
        if let Some(v) = self.0.get(&key) {
            return Ok(*v);
        }
        let kind = Kind::parse(&row.kind)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("unknown stored kind {}", row.kind)))?;
        let v = api.level(call, &resource, kind);
        self.0.insert(key, v);
        Ok(v)
    }

    /// The view of `row` for the caller: its level, or a tombstone for a
    /// retracted record the caller does not own.
    pub(crate) fn view(
        &mut self,
        api: &RecordApi,
        call: &mut Call,
        row: &RecordRow,
    ) -> Result<Option<View>> {
        let level = self.level(api, call, row)?;
        if level == Some(View::Full { informant: true }) && row.informant.is_some() {
            call.carries_informant = true;
        }
        Ok(level.map(|v| {
            if row.state == RecordState::Retracted && !is_owner(&call.principal, row) {
                View::Tombstone
            } else {
                v
            }
        }))
    }
}

pub(crate) fn is_owner(p: &Principal, row: &RecordRow) -> bool {
    p.agency.as_str() == row.owner_agency && p.division == row.owner_division
}

pub(crate) use crate::informant::informant_context;

fn etag(revision: i64) -> String {
    format!("r{revision}")
}

impl RecordApi {
    /// The base view level of a record for the caller (no tombstoning), by Cedar.
    pub(crate) fn level(&self, call: &mut Call, resource: &Resource, kind: Kind) -> Option<View> {
        let authz = &self.state.authz;
        if call.authorize(authz, Action::ReadFull, resource).allowed {
            let informant = kind == Kind::Petition
                && call
                    .authorize(authz, Action::ReadInformant, resource)
                    .allowed;
            return Some(View::Full { informant });
        }
        if records::summary(&sample_payload(kind)).is_some()
            && call.authorize(authz, Action::ReadSummary, resource).allowed
        {
            return Some(View::Summary);
        }
        None
    }

    fn view_of(&self, call: &mut Call, row: &RecordRow) -> Result<Option<View>> {
        ViewCache::default().view(self, call, row)
    }

    /// Renders rows in the caller's view with one Cedar decision per distinct
    /// set of attributes a policy can tell apart rather than per row; rows the
    /// caller may not see are left out, and retracted ones become tombstones
    /// for non-owners.
    pub(crate) fn render_rows(
        &self,
        call: &mut Call,
        rows: &[RecordRow],
    ) -> Result<Vec<proto::Record>> {
        let mut views = ViewCache::default();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(view) = views.view(self, call, row)? else {
                continue;
            };
            out.push(self.render(row, view, is_owner(&call.principal, row))?);
        }
        Ok(out)
    }

    /// Renders a stored record in `view`. Decrypts the informant block only for
    /// a full view that includes it.
    pub(crate) fn render(&self, row: &RecordRow, view: View, owner: bool) -> Result<proto::Record> {
        let kind = Kind::parse(&row.kind)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("unknown stored kind {}", row.kind)))?;
        let mut out = proto::Record {
            name: record_name(row),
            cadre: format!("cadres/{}", row.cadre_id),
            kind: kind.to_proto() as i32,
            revision: row.revision,
            state: row.state.to_proto() as i32,
            update_time: Some(timestamp(row.update_time_us)),
            etag: etag(row.revision),
            ..Default::default()
        };
        if view == View::Tombstone {
            out.view = proto::RecordView::Tombstone as i32;
            return Ok(out);
        }
        out.owner_system = row.owner_system.clone();
        out.source_record_id = row.source_record_id.clone();
        out.source_version = row.source_version;
        out.event_date = row.event_date.clone();
        out.classification = records::classification_from_name(&row.classification) as i32;
        // The digest covers the whole payload, informant included; a view that
        // leaves out any of it carries none, or a guessed informant (or any
        // other hidden field) could be confirmed offline against it. A petition
        // read without the right to its informant carries none whether or not
        // it has one, or the digest's presence would tell which.
        let shows_everything = match view {
            View::Full { informant } => informant || row.kind != Kind::Petition.as_str(),
            View::Summary | View::Tombstone => false,
        };
        out.provenance = Some(proto::Provenance {
            submitting_system: row.submitting_system.clone(),
            submit_time: Some(timestamp(row.update_time_us)),
            payload_sha256: String::new(),
        });
        if owner {
            out.retraction_reason = row.retraction_reason.clone();
        }
        let stored = proto::Record::decode(row.payload.as_slice()).map_err(Error::internal)?;
        let payload = stored
            .payload
            .ok_or_else(|| Error::internal(anyhow::anyhow!("record {} has no payload", row.id)))?;
        match view {
            View::Full { informant } => {
                out.view = proto::RecordView::Full as i32;
                let mut payload = payload;
                if let (true, Payload::Petition(p), Some(sealed)) =
                    (informant, &mut payload, &row.informant)
                {
                    let plain = self.state.informant.open(
                        sealed,
                        &informant_context(&row.owner_system, &row.source_record_id),
                    )?;
                    p.informant =
                        Some(proto::Informant::decode(plain.as_slice()).map_err(Error::internal)?);
                }
                // The stored digest is keyed (DESIGN §2); the one sent is
                // computed now, over what this caller reads in full.
                if shows_everything && let Some(p) = out.provenance.as_mut() {
                    p.payload_sha256 = records::payload_sha256(&row.classification, &payload);
                }
                out.payload = Some(payload);
            }
            View::Summary => {
                out.view = proto::RecordView::Summary as i32;
                out.payload = records::summary(&payload);
            }
            View::Tombstone => {}
        }
        Ok(out)
    }

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
        let Some(rec) = &req.record else {
            return Err(Error::invalid("record", "required"));
        };
        let Some(payload) = &rec.payload else {
            return Err(Error::invalid(
                "record.payload",
                "required: exactly one full record kind",
            ));
        };
        let Some(kind) = Kind::of(payload) else {
            return Err(Error::invalid(
                "record.payload",
                "summary views are output only; submit the full kind",
            ));
        };
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
        let mut violations: Vec<FieldViolation> = Vec::new();
        match records::classification_accepted(rec.classification) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::precondition(
                    Reason::ClassifiedNotAccepted,
                    "state-secret records must not enter a system not certified for them",
                ));
            }
            Err(v) => violations.push(v),
        }
        let sid = &rec.source_record_id;
        if sid.trim().is_empty() || sid.len() > 128 || sid.chars().any(char::is_control) {
            violations.push(FieldViolation::new(
                "record.source_record_id",
                "required, at most 128 printable characters",
            ));
        }
        if rec.source_version < 1 {
            violations.push(FieldViolation::new(
                "record.source_version",
                "must be 1 or more",
            ));
        }
        violations.extend(records::validate_payload(payload));
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

        let mut payload = payload.clone();
        let sha = self.state.digest.keyed(&records::digest_bytes(
            records::classification_name(rec.classification),
            &payload,
        ));
        let (mut transfer_agency, mut transfer_division) = (String::new(), String::new());
        match &mut payload {
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
                let Some(engagement) = engagement else {
                    return Err(Error::precondition(
                        Reason::EngagementNotFound,
                        "record.audit_finding.engagement_source_record_id: no active engagement \
                         with this source record id from this system for this cadre (yet)",
                    ));
                };
                f.engagement = record_name(engagement);
            }
            Payload::Clue(k) if !k.source_record.is_empty() => {
                let source = match parse_record_name(&k.source_record) {
                    Some((cadre_id, id)) => self
                        .state
                        .store
                        .get_record(&id)
                        .await?
                        .filter(|r| r.cadre_id == cadre_id && r.cadre_id == cadre.id),
                    None => None,
                };
                let Some(source) = source else {
                    return Err(Error::invalid(
                        "record.clue.source_record",
                        "no such record about this cadre",
                    ));
                };
                transfer_agency = source.owner_agency.clone();
                transfer_division = source.owner_division.clone();
            }
            _ => {}
        }
        let mut informant = None;
        if let Payload::Petition(p) = &mut payload
            && let Some(i) = p.informant.take()
            && i != proto::Informant::default()
        {
            informant = Some(
                self.state
                    .informant
                    .seal(&i.encode_to_vec(), &informant_context(&principal.uri, sid))?,
            );
        }
        let event_date = records::event_date(&payload);
        let stored = proto::Record {
            payload: Some(payload),
            ..Default::default()
        };
        Ok(RecordRow {
            id: uuid::Uuid::now_v7().simple().to_string(),
            cadre_id: cadre.id.clone(),
            kind: kind.as_str().into(),
            owner_system: principal.uri.clone(),
            owner_agency: principal.agency.as_str().into(),
            owner_division: principal.division.clone(),
            source_record_id: sid.clone(),
            source_version: rec.source_version,
            revision: 0,
            event_date,
            classification: records::classification_name(rec.classification).into(),
            state: RecordState::Active,
            retraction_reason: String::new(),
            payload: stored.encode_to_vec(),
            payload_sha256: sha,
            informant,
            transfer_agency,
            transfer_division,
            submitting_system: principal.uri.clone(),
            update_time_us: 0,
            division: cadre.managing_division.clone(),
        })
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
            .map(|item| super::text::check_item(call.method, item, ""))
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

    pub async fn get(
        &self,
        call: &mut Call,
        req: proto::GetRecordRequest,
    ) -> Result<proto::Record> {
        let (cadre_id, id) = named_record(&req.name)?;
        call.resources.push(req.name.clone());
        let row = self
            .state
            .store
            .get_record(&id)
            .await?
            .filter(|r| r.cadre_id == cadre_id);
        let Some(row) = row else {
            return Err(self.missing(call, &cadre_id, &req.name).await?);
        };
        call.require(
            &self.state.authz,
            Action::GetRecord,
            &resource_of(&row),
            || Error::CadreNotAccessible,
        )?;
        let Some(view) = self.view_of(call, &row)? else {
            return Err(Error::NotFound(req.name.clone()));
        };
        self.render(&row, view, is_owner(&call.principal, &row))
    }

    /// The answer for a record that is not there: out-of-jurisdiction and
    /// missing cadres answer as for cadres; a cadre the caller may see answers
    /// NOT_FOUND, the same as for a record kind it may not see.
    async fn missing(&self, call: &Call, cadre_id: &str, name: &str) -> Result<Error> {
        let cadre = self.state.store.get_cadre(cadre_id).await?;
        Ok(match cadre {
            Some(c) if division::covers(&call.principal.division, &c.managing_division) => {
                Error::NotFound(name.to_string())
            }
            Some(_) => Error::CadreNotAccessible,
            None if call.principal.division == division::NATIONAL => {
                Error::NotFound(name.to_string())
            }
            None => Error::CadreNotAccessible,
        })
    }

    pub async fn list(
        &self,
        call: &mut Call,
        req: proto::ListRecordsRequest,
    ) -> Result<proto::ListRecordsResponse> {
        let principal = call.principal.clone();
        let cadre_id = match req.parent.strip_prefix("cadres/") {
            Some("-") => None,
            Some(id) if records::is_resource_id(id) => Some(id.to_string()),
            _ => {
                return Err(Error::invalid(
                    "parent",
                    "must be cadres/{cadre} or cadres/-",
                ));
            }
        };
        let mut place = principal.division.clone();
        if let Some(id) = &cadre_id {
            call.resources.push(format!("cadres/{id}"));
            let Some(cadre) = self.state.store.get_cadre(id).await? else {
                return Err(if principal.division == division::NATIONAL {
                    Error::NotFound(format!("cadres/{id}"))
                } else {
                    Error::CadreNotAccessible
                });
            };
            place = cadre.managing_division;
        }
        let probe = |kind: Kind| Resource::Record {
            id: "-".into(),
            division: place.clone(),
            kind: kind.as_str().into(),
            owner_agency: String::new(),
            owner_division: String::new(),
            transfer_agency: principal.agency.as_str().into(),
            transfer_division: principal.division.clone(),
        };
        call.require(
            &self.state.authz,
            Action::ListRecords,
            &probe(Kind::Sanction),
            || {
                if cadre_id.is_some() {
                    Error::CadreNotAccessible
                } else {
                    Error::denied(
                        Reason::ActionNotPermitted,
                        "this system may not list records",
                    )
                }
            },
        )?;
        let limit = page_size(req.page_size, 100, 1000)?;
        let mut query = RecordQuery {
            cadre_id: cadre_id.clone(),
            jurisdiction_prefix: division::jurisdiction_prefix(&principal.division).to_string(),
            limit: limit + 1,
            ..Default::default()
        };
        let mut wanted: Vec<Kind> = Kind::ALL.to_vec();
        for term in filter::parse(&req.filter)? {
            match (term.field.as_str(), term.op) {
                ("kind", filter::Op::Eq) => {
                    let k = Kind::parse(term.value.trim_start_matches("RECORD_KIND_")).ok_or_else(
                        || Error::invalid("filter", format!("unknown kind {:?}", term.value)),
                    )?;
                    wanted.retain(|w| *w == k);
                }
                ("state", filter::Op::Eq) => {
                    let s = RecordState::parse(term.value.trim_start_matches("RECORD_STATE_"))
                        .ok_or_else(|| Error::invalid("filter", "state is ACTIVE or RETRACTED"))?;
                    query.state = Some(s);
                }
                ("update_time", op) => {
                    let t = time::OffsetDateTime::parse(
                        &term.value,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|_| Error::invalid("filter", "update_time takes an RFC 3339 time"))?;
                    let us = (t.unix_timestamp_nanos() / 1000) as i64;
                    match op {
                        filter::Op::Ge => query.updated_from_us = Some(us),
                        filter::Op::Gt => query.updated_from_us = Some(us + 1),
                        filter::Op::Lt => query.updated_before_us = Some(us),
                        filter::Op::Le => query.updated_before_us = Some(us + 1),
                        filter::Op::Eq => {
                            query.updated_from_us = Some(us);
                            query.updated_before_us = Some(us + 1);
                        }
                    }
                }
                (other, _) => {
                    return Err(Error::invalid(
                        "filter",
                        format!("cannot filter on {other:?} that way"),
                    ));
                }
            }
        }
        // One decision per kind for the page: kinds the caller cannot see at all
        // are never read from the store.
        let mut levels: HashMap<Kind, View> = HashMap::new();
        for kind in wanted {
            if let Some(v) = self.level(call, &probe(kind), kind) {
                levels.insert(kind, v);
            }
        }
        query.kinds = levels.keys().map(|k| k.as_str().to_string()).collect();
        query.kinds.sort();
        let (snapshot, after) = match page_token::decode("records", &req.page_token)? {
            Some(t) => {
                let (snap, after) = t.split_once(':').ok_or_else(|| {
                    Error::invalid("page_token", "not a page token returned by this method")
                })?;
                let snap: i64 = snap.parse().map_err(|_| {
                    Error::invalid("page_token", "not a page token returned by this method")
                })?;
                (snap, Some(after.to_string()))
            }
            None => (self.state.store.change_head().await?, None),
        };
        query.max_revision = snapshot;
        query.after_id = after;
        // The page and its token are made of visible rows only: a row the
        // caller may not see (a clue not transferred from it) must not end a
        // page, start the next one or make a token appear, or the token would
        // tell its id and the page that it exists. So scan on past hidden rows
        // until the page is full and one more visible row shows there is a next.
        let mut views = ViewCache::default();
        let mut records = Vec::new();
        let mut last_id = String::new();
        let mut next_page_token = String::new();
        'scan: while !query.kinds.is_empty() {
            let rows = self.state.store.list_records(&query).await?;
            for row in &rows {
                let Some(view) = views.view(self, call, row)? else {
                    continue;
                };
                if records.len() as i64 == limit {
                    next_page_token =
                        page_token::encode("records", &format!("{snapshot}:{last_id}"));
                    break 'scan;
                }
                records.push(self.render(row, view, is_owner(&call.principal, row))?);
                last_id = row.id.clone();
            }
            match rows.last() {
                Some(r) if rows.len() as i64 >= query.limit => query.after_id = Some(r.id.clone()),
                _ => break,
            }
        }
        call.resources = records.iter().map(|r| r.name.clone()).collect();
        Ok(proto::ListRecordsResponse {
            records,
            next_page_token,
            cursor: cursor::encode(&self.state.epoch, snapshot),
        })
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

/// (cadre id, record id) of the `name` field of Get and Retract.
fn named_record(name: &str) -> Result<(String, String)> {
    parse_record_name(name).ok_or_else(|| {
        Error::invalid(
            "name",
            "must be a record name cadres/{cadre}/records/{record}",
        )
    })
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

/// A payload of `kind` with default content, to ask whether the kind has a summary type.
fn sample_payload(kind: Kind) -> Payload {
    match kind {
        Kind::Sanction => Payload::Sanction(Default::default()),
        Kind::Admonishment => Payload::Admonishment(Default::default()),
        Kind::Clue => Payload::Clue(Default::default()),
        Kind::OrgHandling => Payload::OrgHandling(Default::default()),
        Kind::PersonalMattersCheck => Payload::PersonalMattersCheck(Default::default()),
        Kind::Evaluation => Payload::Evaluation(Default::default()),
        Kind::AuditEngagement => Payload::AuditEngagement(Default::default()),
        Kind::AuditFinding => Payload::AuditFinding(Default::default()),
        Kind::Petition => Payload::Petition(Default::default()),
    }
}
