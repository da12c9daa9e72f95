//! Cadre registry use cases, written by organization departments and read by all four agencies within their jurisdiction.

use std::sync::Arc;

use prost::Message;

use super::{AppState, Call, Outcome, RequestKey, item_error, page_size, page_token};
use crate::authz::{Action, Resource};
use crate::domain::clock::{now_us, timestamp};
use crate::domain::states::{ChangeKind, ChangeOp};
use crate::domain::{cadre, division, filter, ids};
use crate::error::{Error, FieldViolation, Reason, Result};
use crate::identity::Principal;
use crate::proto;
use crate::store::{CadreQuery, CadreRow, Change, PostRow, WriteMeta};

pub struct CadreApi {
    pub(crate) state: Arc<AppState>,
}

impl CadreApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// How much of a cadre the caller sees, chosen by the first allowed view action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    Full,
    /// The 公民身份号码 with its 8 birth-date digits masked and the birth date
    /// hidden: either one in clear would rebuild the other (DESIGN §2).
    IdMasked,
}

const RESOURCE_PREFIX: &str = "cadres/";

fn resource_name(id: &str) -> String {
    format!("{RESOURCE_PREFIX}{id}")
}

/// The id in `cadres/{id}`, or INVALID_ARGUMENT on `field`.
fn parse_name(name: &str, field: &str) -> Result<String> {
    let id = name
        .strip_prefix(RESOURCE_PREFIX)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .ok_or_else(|| Error::invalid(field, "must be a resource name cadres/{cadre}"))?;
    Ok(id.to_string())
}

fn etag(revision: i64) -> String {
    format!("r{revision}")
}

pub(crate) fn cadre_resource(c: &CadreRow) -> Resource {
    Resource::Cadre {
        id: c.id.clone(),
        division: c.managing_division.clone(),
    }
}

/// The caller's view of a cadre: the one renderer behind GetCadre, ListCadres,
/// LookupCadre, create and update answers, the change feed and the dossier.
pub(crate) fn to_proto(c: &CadreRow, view: View) -> proto::Cadre {
    let masked = view == View::IdMasked;
    proto::Cadre {
        name: resource_name(&c.id),
        display_name: c.display_name.clone(),
        gender: c.gender,
        birth_date: if masked {
            String::new()
        } else {
            c.birth_date.clone()
        },
        id_number: if masked {
            ids::mask_id_number(&c.id_number)
        } else {
            c.id_number.clone()
        },
        id_number_masked: masked,
        managing_division: c.managing_division.clone(),
        posts: c
            .posts
            .iter()
            .map(|p| proto::Post {
                unit_name: p.unit_name.clone(),
                unit_credit_code: p.unit_credit_code.clone(),
                title: p.title.clone(),
                rank: p.rank.clone(),
                unit_head: p.unit_head,
                start_date: p.start_date.clone(),
                end_date: p.end_date.clone(),
            })
            .collect(),
        etag: etag(c.revision),
        create_time: Some(timestamp(c.create_time_us)),
        update_time: Some(timestamp(c.update_time_us)),
    }
}

/// The row a registration of the checked cadre `input` stores under `id` at
/// `now`: the birth date read from the 公民身份号码, names and posts trimmed.
/// Both CreateCadre and `cadrex seed` build rows here, so that a seeded cadre
/// is one the server would have registered. `input.id_number` must already be
/// canonical ([`ids::canonical_id_number`]).
pub fn new_row(id: String, input: &proto::Cadre, now: i64) -> CadreRow {
    CadreRow {
        id,
        birth_date: ids::birth_date_of(&input.id_number).unwrap_or_default(),
        id_number: input.id_number.clone(),
        display_name: input.display_name.trim().to_string(),
        gender: input.gender,
        managing_division: input.managing_division.clone(),
        posts: posts_from_proto(&input.posts),
        revision: 1,
        create_time_us: now,
        update_time_us: now,
    }
}

fn posts_from_proto(posts: &[proto::Post]) -> Vec<PostRow> {
    posts
        .iter()
        .map(|p| PostRow {
            unit_name: p.unit_name.trim().to_string(),
            unit_credit_code: p.unit_credit_code.clone(),
            title: p.title.trim().to_string(),
            rank: p.rank.trim().to_string(),
            unit_head: p.unit_head,
            start_date: p.start_date.clone(),
            end_date: p.end_date.clone(),
        })
        .collect()
}

/// A create naming a 公民身份号码 registered outside the caller's
/// jurisdiction, dry run or not: counted in
/// `cadrex_id_number_lookups_not_found_total` like a lookup that found nothing
/// the caller may see, so that guessing through creates is as visible to an
/// operator as guessing through `LookupCadre`.
fn foreign_number(call: &Call, existing: &CadreRow) {
    crate::metrics::id_number_lookup(
        &call.principal.uri,
        &call.principal.division,
        Some(&existing.managing_division),
    );
}

/// A missing cadre: only a caller covering every division (`000000`) may learn
/// that it does not exist; everyone else gets the out-of-jurisdiction answer.
fn missing(p: &Principal, name: &str) -> Error {
    if p.division == division::NATIONAL {
        Error::NotFound(name.to_string())
    } else {
        Error::CadreNotAccessible
    }
}

impl CadreApi {
    /// Picks the caller's view of `c`, or CADRE_NOT_ACCESSIBLE when it may not
    /// read it at all (including when it is outside the jurisdiction).
    fn view_of(&self, call: &mut Call, resource: &Resource) -> Result<View> {
        let authz = &self.state.authz;
        for (action, view) in [
            (Action::ReadFull, View::Full),
            (Action::ReadSummary, View::IdMasked),
        ] {
            if call.authorize(authz, action, resource).allowed {
                return Ok(view);
            }
        }
        let d = authz.authorize(&call.principal, Action::ReadSummary, resource);
        call.deny(&d);
        Err(Error::CadreNotAccessible)
    }

    /// Reads a cadre the caller may see through `action`, with its view.
    async fn readable(
        &self,
        call: &mut Call,
        action: Action,
        row: Option<CadreRow>,
        name: &str,
    ) -> Result<(CadreRow, View)> {
        let Some(row) = row else {
            return Err(missing(&call.principal, name));
        };
        let resource = cadre_resource(&row);
        call.require(&self.state.authz, action, &resource, || {
            Error::CadreNotAccessible
        })?;
        let view = self.view_of(call, &resource)?;
        Ok((row, view))
    }

    /// Only a system that registers cadres (organization) may create them;
    /// asked against a cadre in the caller's own division, before any input
    /// is looked at.
    fn require_registrar(&self, call: &mut Call) -> Result<()> {
        let own = Resource::Cadre {
            id: "-".into(),
            division: call.principal.division.clone(),
        };
        call.require(&self.state.authz, Action::CreateCadre, &own, || {
            Error::denied(
                Reason::ActionNotPermitted,
                "only organization systems register cadres",
            )
        })
    }

    /// `GetCadre`: the cadre in the caller's view; a missing cadre and one
    /// outside the caller's jurisdiction answer alike.
    pub async fn get(&self, call: &mut Call, req: proto::GetCadreRequest) -> Result<proto::Cadre> {
        let id = parse_name(&req.name, "name")?;
        let name = resource_name(&id);
        call.resources.push(name.clone());
        let row = self.state.store.get_cadre(&id).await?;
        let (row, view) = self.readable(call, Action::GetCadre, row, &name).await?;
        Ok(to_proto(&row, view))
    }

    /// `LookupCadre`: the cadre a 公民身份号码 names, in the caller's view.
    /// Every lookup is counted per system (not-found ones apart), the
    /// residual guessing risk DESIGN names.
    pub async fn lookup(
        &self,
        call: &mut Call,
        req: proto::LookupCadreRequest,
    ) -> Result<proto::Cadre> {
        let id_number = ids::canonical_id_number(&req.id_number);
        if !ids::is_valid_id_number(&id_number) {
            return Err(Error::invalid(
                "id_number",
                "not a valid 18-character 公民身份号码",
            ));
        }
        let row = self.state.store.get_cadre_by_id_number(&id_number).await?;
        crate::metrics::id_number_lookup(
            &call.principal.uri,
            &call.principal.division,
            row.as_ref().map(|r| r.managing_division.as_str()),
        );
        if let Some(r) = &row {
            call.resources.push(resource_name(&r.id));
        }
        let (row, view) = self
            .readable(call, Action::LookupCadre, row, "cadre")
            .await?;
        Ok(to_proto(&row, view))
    }

    pub async fn batch_create(
        &self,
        call: &mut Call,
        req: proto::BatchCreateCadresRequest,
    ) -> Result<proto::BatchCreateCadresResponse> {
        let mut req = req;
        for r in &mut req.requests {
            if let Some(c) = r.cadre.as_mut() {
                c.id_number = ids::canonical_id_number(&c.id_number);
            }
        }
        let authz = &self.state.authz;
        self.require_registrar(call)?;
        if req.requests.is_empty() || req.requests.len() > 1000 {
            return Err(Error::invalid("requests", "between 1 and 1000 cadres"));
        }
        let key = RequestKey::new(&self.state, call, &req, &req.request_id)?;
        if !req.validate_only
            && let Some(previous) = key
                .replay::<proto::BatchCreateCadresResponse>(&self.state, batch_outcome)
                .await?
        {
            // Re-rendered in the caller's current view, as a read would be.
            let ids: Vec<String> = previous
                .items
                .iter()
                .filter_map(|i| i.name.strip_prefix("cadres/").map(str::to_string))
                .collect();
            let rows: std::collections::HashMap<String, CadreRow> = self
                .state
                .store
                .get_cadres(&ids)
                .await?
                .into_iter()
                .map(|c| (resource_name(&c.id), c))
                .collect();
            let mut results = Vec::with_capacity(previous.items.len());
            for (index, item) in previous.items.into_iter().enumerate() {
                let (mut cadre, mut error) = (None, item.error);
                if error.is_none() {
                    call.resources.push(item.name.clone());
                    match rows.get(&item.name) {
                        Some(row) => match self.view_of(call, &cadre_resource(row)) {
                            Ok(view) => cadre = Some(to_proto(row, view)),
                            Err(e) => error = Some(item_error(&e)),
                        },
                        None => error = Some(item_error(&Error::NotFound(item.name))),
                    }
                }
                results.push(proto::BatchCreateCadreResult {
                    index: index as i32,
                    cadre,
                    created: item.flag,
                    error,
                });
            }
            return Ok(proto::BatchCreateCadresResponse { results });
        }
        enum Item {
            Failed(Error),
            Existing(CadreRow),
            New(CadreRow),
        }
        let mut items = Vec::with_capacity(req.requests.len());
        let mut numbers = std::collections::HashSet::new();
        let now = now_us();
        for (i, r) in req.requests.iter().enumerate() {
            // Text first, as `grpc::start` checks a single create: a refused
            // item is looked up nowhere.
            if let Err(e) = super::text::check_item(call.method, r, &format!("requests[{i}]")) {
                items.push(Item::Failed(e));
                continue;
            }
            let prefix = format!("requests[{i}].cadre");
            let Some(input) = &r.cadre else {
                items.push(Item::Failed(Error::invalid(prefix, "required")));
                continue;
            };
            let violations = cadre::validate(input, &prefix);
            if !violations.is_empty() {
                items.push(Item::Failed(Error::InvalidArgument { violations }));
                continue;
            }
            let number = input.id_number.clone();
            if !numbers.insert(number.clone()) {
                items.push(Item::Failed(Error::invalid(
                    format!("{prefix}.id_number"),
                    "appears twice in this batch",
                )));
                continue;
            }
            let target = Resource::Cadre {
                id: "-".into(),
                division: input.managing_division.clone(),
            };
            if !call.authorize(authz, Action::CreateCadre, &target).allowed {
                items.push(Item::Failed(Error::denied(
                    Reason::Jurisdiction,
                    "the managing division is outside the caller's jurisdiction",
                )));
                continue;
            }
            match self.state.store.get_cadre_by_id_number(&number).await? {
                Some(existing)
                    if division::covers(&call.principal.division, &existing.managing_division) =>
                {
                    items.push(Item::Existing(existing))
                }
                Some(existing) => {
                    foreign_number(call, &existing);
                    items.push(Item::Failed(Error::CadreNotAccessible))
                }
                None => items.push(Item::New(new_row(
                    uuid::Uuid::now_v7().simple().to_string(),
                    input,
                    now,
                ))),
            }
        }
        let new_rows: Vec<CadreRow> = items
            .iter()
            .filter_map(|i| {
                if let Item::New(r) = i {
                    Some(r.clone())
                } else {
                    None
                }
            })
            .collect();
        let assemble = |outcomes: &[Result<()>]| -> proto::BatchCreateCadresResponse {
            let mut stored = outcomes.iter();
            let results = items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    let index = index as i32;
                    let (cadre, created, error) = match item {
                        Item::Failed(e) => (None, false, Some(item_error(e))),
                        Item::Existing(row) => (Some(to_proto(row, View::Full)), false, None),
                        Item::New(row) => match stored.next() {
                            Some(Ok(())) => (Some(to_proto(row, View::Full)), true, None),
                            Some(Err(e)) => (None, false, Some(item_error(e))),
                            None => (
                                None,
                                false,
                                Some(item_error(&Error::internal(anyhow::anyhow!(
                                    "missing outcome"
                                )))),
                            ),
                        },
                    };
                    proto::BatchCreateCadreResult {
                        index,
                        cadre,
                        created,
                        error,
                    }
                })
                .collect();
            proto::BatchCreateCadresResponse { results }
        };
        call.decision = Some(true);
        if req.validate_only {
            // Nothing is stored: a new cadre answers as it would be registered,
            // with no name, and `created` saying it would be.
            let none_failed: Vec<Result<()>> = new_rows.iter().map(|_| Ok(())).collect();
            let mut response = assemble(&none_failed);
            for (result, item) in response.results.iter_mut().zip(&items) {
                if let (Item::New(_), Some(c)) = (item, result.cadre.as_mut()) {
                    c.name.clear();
                    c.etag.clear();
                }
            }
            call.validated = true;
            call.resources = items
                .iter()
                .filter_map(|i| match i {
                    Item::Existing(row) => Some(resource_name(&row.id)),
                    _ => None,
                })
                .collect();
            return Ok(response);
        }
        if new_rows.is_empty() {
            let response = assemble(&[]);
            call.resources = response
                .results
                .iter()
                .filter_map(|r| r.cadre.as_ref().map(|c| c.name.clone()))
                .collect();
            return Ok(response);
        }
        let base = call.entry(0, String::new());
        let finish = |outcomes: &[Result<()>]| {
            let response = assemble(outcomes);
            let mut log = base.clone();
            log.resources = response
                .results
                .iter()
                .filter_map(|r| r.cadre.as_ref().map(|c| c.name.clone()))
                .collect();
            (log, key.remember(&batch_outcome(response)))
        };
        let outcomes = self.state.store.create_cadres(new_rows, &finish).await?;
        call.logged = true;
        Ok(assemble(&outcomes))
    }

    pub async fn create(
        &self,
        call: &mut Call,
        req: proto::CreateCadreRequest,
    ) -> Result<proto::Cadre> {
        // Canonical before the request digest and any lookup: `x` and `X` are
        // one person and one request (DESIGN §1).
        let mut req = req;
        if let Some(c) = req.cadre.as_mut() {
            c.id_number = ids::canonical_id_number(&c.id_number);
        }
        let authz = &self.state.authz;
        self.require_registrar(call)?;
        let key = RequestKey::new(&self.state, call, &req, &req.request_id)?;
        if let Some(previous) = key
            .replay::<proto::Cadre>(&self.state, |c| Outcome::one(c.name, 0))
            .await?
        {
            // Re-rendered in the caller's current view, as a read would be.
            let name = previous.single()?;
            let row = self
                .state
                .store
                .get_cadre(&parse_name(name, "name")?)
                .await?;
            let (row, view) = self.readable(call, Action::GetCadre, row, name).await?;
            call.resources.push(name.to_string());
            return Ok(to_proto(&row, view));
        }
        let Some(input) = req.cadre else {
            return Err(Error::invalid("cadre", "required"));
        };
        let violations = cadre::validate(&input, "cadre");
        if !violations.is_empty() {
            return Err(Error::InvalidArgument { violations });
        }
        let target = Resource::Cadre {
            id: "-".into(),
            division: input.managing_division.clone(),
        };
        call.require(authz, Action::CreateCadre, &target, || {
            Error::denied(
                Reason::Jurisdiction,
                "the managing division is outside the caller's jurisdiction",
            )
        })?;
        if let Some(existing) = self
            .state
            .store
            .get_cadre_by_id_number(&input.id_number)
            .await?
        {
            return Err(
                if division::covers(&call.principal.division, &existing.managing_division) {
                    call.resources.push(resource_name(&existing.id));
                    Error::AlreadyExists("cadre with this id number".into())
                } else {
                    // Registering a number held elsewhere tells the caller it
                    // exists, as the uniqueness of the number must: counted
                    // like a lookup that found nothing the caller may see.
                    foreign_number(call, &existing);
                    Error::CadreNotAccessible
                },
            );
        }
        let now = now_us();
        let row = new_row(uuid::Uuid::now_v7().simple().to_string(), &input, now);
        let response = to_proto(&row, View::Full);
        self.write(call, &row, None, &response, Some(&key))
            .await
            .map_err(|e| match e {
                // Lost a race with a concurrent create of the same id number, or
                // of the same request id: answer as the winner would be answered.
                Error::AlreadyExists(what) => Error::AlreadyExists(what),
                other => other,
            })?;
        Ok(response)
    }

    /// Stores a create (`expected` None) or update, with its log, outbox and
    /// idempotency rows in the same transaction.
    async fn write(
        &self,
        call: &mut Call,
        row: &CadreRow,
        expected: Option<i64>,
        response: &proto::Cadre,
        key: Option<&RequestKey>,
    ) -> Result<()> {
        call.resources.push(resource_name(&row.id));
        let bytes = response.encode_to_vec();
        let meta = WriteMeta {
            log: call.entry(0, crate::access_log::digest(&bytes)),
            changes: vec![Change {
                op: ChangeOp::Upsert,
                resource: resource_name(&row.id),
                kind: ChangeKind::Cadre.as_str().into(),
                revision: row.revision,
                division: row.managing_division.clone(),
                from_division: None,
            }],
            idempotency: key
                .and_then(|k| k.remember(&Outcome::one(resource_name(&row.id), row.revision))),
        };
        match expected {
            None => self.state.store.create_cadre(row, meta).await?,
            Some(rev) => self.state.store.update_cadre(row, rev, meta).await?,
        }
        call.logged = true;
        Ok(())
    }

    pub async fn update(
        &self,
        call: &mut Call,
        req: proto::UpdateCadreRequest,
    ) -> Result<proto::Cadre> {
        let authz = &self.state.authz;
        let own = Resource::Cadre {
            id: "-".into(),
            division: call.principal.division.clone(),
        };
        call.require(authz, Action::UpdateCadre, &own, || {
            Error::denied(
                Reason::ActionNotPermitted,
                "only organization systems update cadres",
            )
        })?;
        let Some(input) = req.cadre else {
            return Err(Error::invalid("cadre", "required"));
        };
        let id = parse_name(&input.name, "cadre.name")?;
        let name = resource_name(&id);
        call.resources.push(name.clone());
        let paths: Vec<String> = match req.update_mask {
            Some(m) if !m.paths.is_empty() => m.paths,
            _ => cadre::UPDATABLE.iter().map(|s| s.to_string()).collect(),
        };
        let mut violations: Vec<FieldViolation> = paths
            .iter()
            .filter(|p| !cadre::UPDATABLE.contains(&p.as_str()))
            .map(|p| FieldViolation::new("update_mask.paths", format!("{p:?} cannot be updated")))
            .collect();
        if !violations.is_empty() {
            return Err(Error::InvalidArgument { violations });
        }
        let Some(current) = self.state.store.get_cadre(&id).await? else {
            return Err(missing(&call.principal, &name));
        };
        call.resources.clear();
        call.require(
            authz,
            Action::UpdateCadre,
            &cadre_resource(&current),
            || Error::CadreNotAccessible,
        )?;
        if !input.etag.is_empty() && input.etag != etag(current.revision) {
            return Err(Error::precondition(
                Reason::EtagMismatch,
                "the cadre has changed since it was read",
            ));
        }
        let mut next = current.clone();
        for p in &paths {
            match p.as_str() {
                "display_name" => next.display_name = input.display_name.trim().to_string(),
                "gender" => next.gender = input.gender,
                "birth_date" => next.birth_date = input.birth_date.clone(),
                "managing_division" => next.managing_division = input.managing_division.clone(),
                "posts" => next.posts = posts_from_proto(&input.posts),
                _ => {}
            }
        }
        if next.birth_date.is_empty() {
            next.birth_date = ids::birth_date_of(&next.id_number).unwrap_or_default();
        }
        let merged = to_proto(&next, View::Full);
        violations = cadre::validate(&merged, "cadre");
        if !violations.is_empty() {
            return Err(Error::InvalidArgument { violations });
        }
        if next.managing_division != current.managing_division {
            // Moving a cadre takes a caller whose jurisdiction covers both ends.
            call.require(authz, Action::UpdateCadre, &cadre_resource(&next), || {
                Error::denied(
                    Reason::Jurisdiction,
                    "the new managing division is outside the caller's jurisdiction",
                )
            })?;
        }
        next.revision = current.revision + 1;
        next.update_time_us = now_us().max(current.update_time_us + 1);
        let response = to_proto(&next, View::Full);
        self.write(call, &next, Some(current.revision), &response, None)
            .await?;
        Ok(response)
    }

    /// The cadres of `query` holding a post in `unit` — current ones only
    /// unless `past` — up to `query.limit` of them: the store narrows by the
    /// stored posts' text, the dates are judged here, and a page the dates
    /// thin out is filled from the following rows.
    async fn holding_posts_in(
        &self,
        mut query: CadreQuery,
        unit: &str,
        past: bool,
    ) -> Result<Vec<CadreRow>> {
        let today = crate::domain::clock::today().to_string();
        let want = query.limit as usize;
        let mut out = Vec::new();
        loop {
            let rows = self.state.store.list_cadres(&query).await?;
            let done = (rows.len() as i64) < query.limit;
            query.after_id = rows.last().map(|r| r.id.clone()).or(query.after_id);
            out.extend(rows.into_iter().filter(|c| {
                c.posts.iter().any(|p| {
                    p.unit_credit_code == unit
                        && (past || p.end_date.is_empty() || p.end_date >= today)
                })
            }));
            if done || out.len() >= want {
                out.truncate(want);
                return Ok(out);
            }
        }
    }

    pub async fn list(
        &self,
        call: &mut Call,
        req: proto::ListCadresRequest,
    ) -> Result<proto::ListCadresResponse> {
        let own = Resource::Cadre {
            id: "-".into(),
            division: call.principal.division.clone(),
        };
        call.require(&self.state.authz, Action::ListCadres, &own, || {
            Error::denied(
                Reason::ActionNotPermitted,
                "this system may not list cadres",
            )
        })?;
        // One decision per page: every cadre of the page lies in the caller's
        // jurisdiction, where the view depends on the agency alone.
        let view = self.view_of(call, &own)?;
        let limit = page_size(req.page_size, 50, 1000)?;
        let mut query = CadreQuery {
            jurisdiction_prefix: division::jurisdiction_prefix(&call.principal.division)
                .to_string(),
            after_id: page_token::decode("cadres", &req.page_token)?,
            limit: limit + 1,
            ..Default::default()
        };
        for term in filter::parse(&req.filter)? {
            if term.op != filter::Op::Eq {
                return Err(Error::invalid("filter", "cadre filters compare with ="));
            }
            let (value, prefix) = match term.value.strip_suffix('*') {
                Some(v) => (v.to_string(), true),
                None => (term.value.clone(), false),
            };
            match term.field.as_str() {
                "managing_division" => {
                    let ok = value.len() <= 6
                        && value.bytes().all(|b| b.is_ascii_digit())
                        && (prefix || value.len() == 6);
                    if !ok {
                        return Err(Error::invalid(
                            "filter",
                            "managing_division takes a 6-digit code or a digit prefix ending in *",
                        ));
                    }
                    query.division_prefix = Some(value);
                }
                "display_name" => {
                    query.name = Some(value);
                    query.name_is_prefix = prefix;
                }
                "unit_credit_code" => {
                    let code = value.to_ascii_uppercase();
                    if prefix || !ids::is_valid_credit_code(&code) {
                        return Err(Error::invalid(
                            "filter",
                            "unit_credit_code takes a whole 18-character 统一社会信用代码",
                        ));
                    }
                    query.unit_credit_code = Some(code);
                }
                other => {
                    return Err(Error::invalid(
                        "filter",
                        format!("cannot filter on {other:?}"),
                    ));
                }
            }
        }
        let mut rows = match query.unit_credit_code.clone() {
            None => self.state.store.list_cadres(&query).await?,
            Some(unit) => {
                self.holding_posts_in(query, &unit, req.include_past_posts)
                    .await?
            }
        };
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|r| page_token::encode("cadres", &r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        call.resources = rows.iter().map(|r| resource_name(&r.id)).collect();
        Ok(proto::ListCadresResponse {
            cadres: rows.iter().map(|r| to_proto(r, view)).collect(),
            next_page_token,
        })
    }
}

/// What the replay cache keeps of a batch of cadres: names, created flags and
/// refusals, never a cadre's content.
fn batch_outcome(r: proto::BatchCreateCadresResponse) -> Outcome {
    Outcome::from_items(
        r.results
            .into_iter()
            .map(|r| (r.cadre.map(|c| c.name), r.created, r.error)),
    )
}
