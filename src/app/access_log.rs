//! Access-log use cases: reading the access log in the caller's view, exporting signed checkpoints, and verifying the chain.

use std::sync::Arc;

use super::{AppState, Call, page_size, page_token};
use crate::access_log;
use crate::authz::{Action, Resource};
use crate::domain::chain::{self, LogRow};
use crate::domain::clock::{micros, timestamp};
use crate::domain::division;
use crate::domain::states::Decision;
use crate::error::{Error, Reason, Result};
use crate::proto;
use crate::store::{CheckpointRow, LogQuery};

pub struct AccessLogApi {
    pub(crate) state: Arc<AppState>,
}

impl AccessLogApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

fn event(r: LogRow) -> proto::AccessEvent {
    // The stored text, not an enum: a tampered row must still be shown as stored.
    let decision =
        Decision::parse(&r.entry.decision).map_or(proto::Decision::Unspecified, Decision::to_proto);
    proto::AccessEvent {
        seq: r.seq,
        time: Some(timestamp(r.time_us)),
        principal: r.entry.principal,
        certificate_fingerprint: r.entry.fingerprint,
        officer: r.entry.officer,
        method: r.entry.method,
        resources: r.entry.resources,
        purpose: r.entry.purpose,
        decision: decision as i32,
        policy_ids: r.entry.policy_ids,
        request_id: r.entry.request_id,
        status_code: r.entry.status_code,
        response_sha256: r.entry.response_sha256,
        prev_hash: r.prev_hash,
        hash: r.hash,
    }
}

/// A row as its subject reads it: never more than the call's own answer told.
/// The deciding policy ids are dropped (a denial for a cadre outside the
/// caller's jurisdiction names a policy that a denial for a missing cadre does
/// not), and so are the resource names of a call that did not succeed (a
/// refused lookup may have resolved a cadre the caller was never shown); so is
/// the chain position (`hash`, `prev_hash`), from which what was left out could
/// be recomputed. The stored row keeps all of it for auditors.
pub fn subject_view(mut e: proto::AccessEvent) -> proto::AccessEvent {
    e.policy_ids.clear();
    e.prev_hash.clear();
    e.hash.clear();
    if e.status_code != 0 {
        e.resources.clear();
    }
    e
}

/// One request's cadre ids, and each of its replies as (reply id, cadre id).
type RequestPieces = (Vec<String>, Vec<(String, String)>);

/// Which names of a page of rows lie in a jurisdiction, looked up once each.
#[derive(Default)]
struct Pieces {
    /// Cadre id to managing division (`None`: no such cadre).
    cadres: std::collections::HashMap<String, Option<String>>,
    /// Request id to (its cadre ids, reply id to cadre id).
    requests: std::collections::HashMap<String, RequestPieces>,
}

impl Pieces {
    async fn cadre_in(
        &mut self,
        store: &dyn crate::store::Store,
        prefix: &str,
        id: &str,
    ) -> Result<bool> {
        if !self.cadres.contains_key(id) {
            let division = store.get_cadre(id).await?.map(|c| c.managing_division);
            self.cadres.insert(id.to_string(), division);
        }
        Ok(self.cadres[id]
            .as_deref()
            .is_some_and(|d| d.starts_with(prefix)))
    }

    /// True when `name` is about a cadre in the jurisdiction `prefix`; a name
    /// of another shape (nothing cadre-bound) is kept.
    async fn in_scope(
        &mut self,
        store: &dyn crate::store::Store,
        prefix: &str,
        name: &str,
    ) -> Result<bool> {
        if let Some(rest) = name.strip_prefix("cadres/") {
            let id = rest.split('/').next().unwrap_or_default();
            return self.cadre_in(store, prefix, id).await;
        }
        let Some(rest) = name.strip_prefix("opinionRequests/") else {
            return Ok(true);
        };
        let mut parts = rest.split('/');
        let request = parts.next().unwrap_or_default().to_string();
        let reply = match (parts.next(), parts.next()) {
            (Some("replies"), Some(r)) => Some(r.to_string()),
            _ => None,
        };
        if !self.requests.contains_key(&request) {
            let cadres = store
                .get_opinion_request(&request)
                .await?
                .map(|r| r.cadres)
                .unwrap_or_default();
            let replies = store
                .opinion_replies(&request)
                .await?
                .into_iter()
                .map(|r| (r.id, r.cadre_id))
                .collect();
            self.requests.insert(request.clone(), (cadres, replies));
        }
        let (cadres, replies) = self.requests[&request].clone();
        match reply {
            Some(reply) => match replies.iter().find(|(id, _)| *id == reply) {
                Some((_, cadre)) => self.cadre_in(store, prefix, cadre).await,
                None => Ok(false),
            },
            None => {
                for c in &cadres {
                    if self.cadre_in(store, prefix, c).await? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }
}

/// A checkpoint as exported, with the exact signed bytes and the public key.
pub fn checkpoint_proto(cp: &CheckpointRow, public_key: &[u8]) -> proto::Checkpoint {
    proto::Checkpoint {
        seq: cp.seq,
        hash: cp.hash.clone(),
        time: Some(timestamp(cp.time_us)),
        key_id: cp.key_id.clone(),
        signature: cp.signature.clone(),
        signed_bytes: chain::checkpoint_bytes(cp.seq, &cp.hash, cp.time_us, &cp.key_id),
        public_key: public_key.to_vec(),
    }
}

impl AccessLogApi {
    pub async fn list(
        &self,
        call: &mut Call,
        req: proto::ListAccessEventsRequest,
    ) -> Result<proto::ListAccessEventsResponse> {
        let authz = &self.state.authz;
        call.require(
            authz,
            Action::ListAccessEvents,
            &Resource::AccessLog,
            || {
                Error::denied(
                    Reason::ActionNotPermitted,
                    "this system may not read the access log",
                )
            },
        )?;
        let sees_all = call
            .authorize(authz, Action::ReadAllAccessEvents, &Resource::AccessLog)
            .allowed;
        let limit = page_size(req.page_size, 100, 1000)?;
        let after_seq = match page_token::decode("log", &req.page_token)? {
            Some(s) => s.parse().map_err(|_| {
                Error::invalid("page_token", "not a page token returned by this method")
            })?,
            None => 0,
        };
        // Both go into the query as text: NUL would be a store error on PostgreSQL.
        for (field, value) in [("principal", &req.principal), ("method", &req.method)] {
            if value.len() > 512 || value.chars().any(char::is_control) {
                return Err(Error::invalid(
                    field,
                    "at most 512 bytes and no control characters",
                ));
            }
        }
        if !req.cadre.is_empty() {
            let ok = req
                .cadre
                .strip_prefix("cadres/")
                .is_some_and(crate::domain::records::is_resource_id);
            if !ok {
                return Err(Error::invalid(
                    "cadre",
                    "must be a resource name cadres/{cadre}",
                ));
            }
            call.resources.push(req.cadre.clone());
        }
        let mut query = LogQuery {
            principal: (!req.principal.is_empty()).then(|| req.principal.clone()),
            cadre: (!req.cadre.is_empty()).then(|| req.cadre.clone()),
            method: (!req.method.is_empty()).then(|| req.method.clone()),
            start_us: req.start_time.as_ref().map(micros),
            end_us: req.end_time.as_ref().map(micros),
            after_seq,
            limit: limit + 1,
            principal_prefix: None,
            scope: None,
            cadre_ok_only: false,
        };
        if !sees_all {
            // "Own calls": any system of the caller's own agency and division.
            let p = &call.principal;
            query.principal_prefix =
                Some(format!("urn:cadrex:system:{}:{}:", p.agency, p.division));
        } else {
            // Discipline reads rows about cadres in its jurisdiction and calls
            // by systems in it; `000000` reads everything.
            let prefix = division::jurisdiction_prefix(&call.principal.division);
            query.scope = (!prefix.is_empty()).then(|| prefix.to_string());
        }
        if let Some(name) = &query.cadre {
            // Rows outside the caller's full view show no resources when their
            // call failed, so the cadre filter must not find them either.
            query.cadre_ok_only = match &query.scope {
                _ if !sees_all => true,
                None => false,
                Some(prefix) => {
                    let id = name.trim_start_matches("cadres/");
                    !self
                        .state
                        .store
                        .get_cadre(id)
                        .await?
                        .is_some_and(|c| c.managing_division.starts_with(prefix.as_str()))
                }
            };
        }
        // Filtering a scoped reader's rows by a cadre outside its scope (or
        // one that does not exist) finds only calls by its own systems: a full
        // row about its own cadres that also named that one would show the
        // name left out, and so confirm it. Rows so passed over must not shape
        // the page or its token either, so scan on past them.
        let out_of_scope_cadre = query.scope.is_some() && query.cadre_ok_only;
        let mut access_events = Vec::new();
        let mut pieces = Pieces::default();
        let mut last_seq = 0;
        let mut next_page_token = String::new();
        'scan: loop {
            let rows = self.state.store.list_access_events(&query).await?;
            let scanned = rows.len() as i64;
            let mut last_scanned = None;
            for h in rows {
                last_scanned = Some(h.row.seq);
                let full = sees_all && h.about_scope;
                if full && out_of_scope_cadre {
                    continue;
                }
                if access_events.len() as i64 == limit {
                    next_page_token = page_token::encode("log", &last_seq.to_string());
                    break 'scan;
                }
                last_seq = h.row.seq;
                if !full {
                    access_events.push(subject_view(event(h.row)));
                    continue;
                }
                let mut e = event(h.row);
                if let Some(prefix) = &query.scope {
                    self.keep_pieces_in(prefix, &mut e, &mut pieces).await?;
                }
                access_events.push(e);
            }
            match last_scanned {
                Some(seq) if scanned >= query.limit => query.after_seq = seq,
                _ => break,
            }
        }
        Ok(proto::ListAccessEventsResponse {
            access_events,
            next_page_token,
        })
    }

    /// DESIGN §1, jurisdiction applies to every piece: a full row about a
    /// cadre in the caller's jurisdiction may also name cadres, records,
    /// requests or replies outside it (a province's request spanning two
    /// counties). Those names are left out, and with them every digest over the
    /// row or the answer it logged (`hash`, `prev_hash`, `response_sha256`),
    /// which would otherwise confirm a guess of what was left out — and the
    /// request id, which the other county's system chose and which `cadrex
    /// import` makes a digest of the whole batch, its pieces included.
    async fn keep_pieces_in(
        &self,
        prefix: &str,
        e: &mut proto::AccessEvent,
        pieces: &mut Pieces,
    ) -> Result<()> {
        let before = e.resources.len();
        let mut kept = Vec::with_capacity(before);
        for name in std::mem::take(&mut e.resources) {
            if pieces.in_scope(&*self.state.store, prefix, &name).await? {
                kept.push(name);
            }
        }
        if kept.len() != before {
            e.hash.clear();
            e.prev_hash.clear();
            e.response_sha256.clear();
            e.request_id.clear();
        }
        e.resources = kept;
        Ok(())
    }

    pub async fn checkpoint(
        &self,
        call: &mut Call,
        _req: proto::GetCheckpointRequest,
    ) -> Result<proto::Checkpoint> {
        call.require(
            &self.state.authz,
            Action::GetCheckpoint,
            &Resource::AccessLog,
            || {
                Error::denied(
                    Reason::ActionNotPermitted,
                    "this system may not read checkpoints",
                )
            },
        )?;
        let store = &*self.state.store;
        let mut last = store.latest_checkpoint().await?.map(|c| c.seq).unwrap_or(0);
        // Sign the current head first, so the export covers everything up to now.
        access_log::checkpoint_once(store, &self.state.signer, &mut last).await?;
        let cp = store
            .latest_checkpoint()
            .await?
            .ok_or_else(|| Error::NotFound("checkpoint (the access log is empty)".into()))?;
        Ok(checkpoint_proto(&cp, self.state.signer.public_key()))
    }

    pub async fn verify(
        &self,
        call: &mut Call,
        req: proto::VerifyAccessLogRequest,
    ) -> Result<proto::VerifyAccessLogResponse> {
        call.require(
            &self.state.authz,
            Action::VerifyAccessLog,
            &Resource::AccessLog,
            || {
                Error::denied(
                    Reason::ActionNotPermitted,
                    "only discipline systems verify the access log",
                )
            },
        )?;
        let from = if req.full {
            None
        } else {
            self.state
                .verified
                .lock()
                .map_err(|_| Error::internal(anyhow::anyhow!("poisoned")))?
                .clone()
        };
        let report = access_log::verify(
            &*self.state.store,
            Some(self.state.signer.public_key()),
            from,
        )
        .await?;
        if report.intact
            && let Some(cp) = &report.last_good_checkpoint
        {
            *self
                .state
                .verified
                .lock()
                .map_err(|_| Error::internal(anyhow::anyhow!("poisoned")))? = Some(cp.clone());
        }
        Ok(proto::VerifyAccessLogResponse {
            intact: report.intact,
            start_seq: report.start_seq,
            end_seq: report.end_seq,
            first_broken_seq: report.first_broken_seq.unwrap_or(0),
            problem: report.problem,
            checkpoints_verified: report.checkpoints_verified,
        })
    }
}
