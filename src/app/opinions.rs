//! Integrity-opinion use cases (廉政意见回复): requests from organization departments, rule-computed drafts and immutable replies from discipline commissions.

use std::collections::HashMap;
use std::sync::Arc;

use super::records::RecordApi;
use super::{AppState, Call, Outcome, RequestKey, page_size, page_token};
use crate::authz::{Action, Facts, RequestFacts, Resource};
use crate::domain::clock::{micros, now_us, timestamp, today};
use crate::domain::records::{self, Kind};
use crate::domain::rules::{self, BarredUntil};
use crate::domain::states::{ChangeKind, ChangeOp, RecordState, RequestState};
use crate::domain::{division, filter, free_text, label, parse_date};
use crate::error::{Error, FieldViolation, Reason, Result};
use crate::proto;
use crate::store::{
    CadreMove, Change, OpinionQuery, OpinionRequestRow, RecordQuery, ReplyRow, WriteMeta,
};

#[derive(Clone)]
pub struct OpinionApi {
    pub(crate) state: Arc<AppState>,
    records: RecordApi,
}

impl OpinionApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            records: RecordApi::new(state.clone()),
            state,
        }
    }
}

const PREFIX: &str = "opinionRequests/";

fn request_name(id: &str) -> String {
    format!("{PREFIX}{id}")
}

fn parse_request_name(name: &str) -> Result<String> {
    name.strip_prefix(PREFIX)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_string)
        .ok_or_else(|| Error::invalid("name", "must be opinionRequests/{request}"))
}

fn cadre_id(name: &str, field: &str) -> Result<String> {
    name.strip_prefix("cadres/")
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(field, "must be cadres/{cadre}"))
}

fn purpose_name(p: i32) -> Option<&'static str> {
    Some(match proto::OpinionPurpose::try_from(p).ok()? {
        proto::OpinionPurpose::Promotion => "PROMOTION",
        proto::OpinionPurpose::FurtherUse => "FURTHER_USE",
        proto::OpinionPurpose::ReElection => "RE_ELECTION",
        proto::OpinionPurpose::Award => "AWARD",
        proto::OpinionPurpose::Transfer => "TRANSFER",
        proto::OpinionPurpose::Unspecified => return None,
    })
}

fn purpose_proto(s: &str) -> proto::OpinionPurpose {
    match s {
        "PROMOTION" => proto::OpinionPurpose::Promotion,
        "FURTHER_USE" => proto::OpinionPurpose::FurtherUse,
        "RE_ELECTION" => proto::OpinionPurpose::ReElection,
        "AWARD" => proto::OpinionPurpose::Award,
        "TRANSFER" => proto::OpinionPurpose::Transfer,
        _ => proto::OpinionPurpose::Unspecified,
    }
}

pub fn verdict_proto(v: rules::Verdict) -> proto::Verdict {
    match v {
        rules::Verdict::NoIssue => proto::Verdict::NoIssue,
        rules::Verdict::IssueNotBlocking => proto::Verdict::IssueNotBlocking,
        rules::Verdict::Defer => proto::Verdict::Defer,
        rules::Verdict::NotAgree => proto::Verdict::NotAgree,
    }
}

fn verdict_name(v: i32) -> Option<&'static str> {
    Some(match proto::Verdict::try_from(v).ok()? {
        proto::Verdict::NoIssue => "NO_ISSUE",
        proto::Verdict::IssueNotBlocking => "ISSUE_NOT_BLOCKING",
        proto::Verdict::Defer => "DEFER",
        proto::Verdict::NotAgree => "NOT_AGREE",
        proto::Verdict::Unspecified => return None,
    })
}

fn verdict_from_name(s: &str) -> proto::Verdict {
    match s {
        "NO_ISSUE" => proto::Verdict::NoIssue,
        "ISSUE_NOT_BLOCKING" => proto::Verdict::IssueNotBlocking,
        "DEFER" => proto::Verdict::Defer,
        "NOT_AGREE" => proto::Verdict::NotAgree,
        _ => proto::Verdict::Unspecified,
    }
}

/// `(date, permanent)` of a bar, for the wire.
pub fn barred(b: BarredUntil) -> (String, bool) {
    match b {
        BarredUntil::None => (String::new(), false),
        BarredUntil::Date(d) => (d.to_string(), false),
        BarredUntil::Permanent => (String::new(), true),
    }
}

pub fn reasons_proto(reasons: &[rules::Reason]) -> Vec<proto::DraftReason> {
    reasons
        .iter()
        .map(|r| {
            let (barred_until, barred_permanently) = barred(r.barred_until);
            proto::DraftReason {
                rule: r.rule.to_string(),
                verdict: verdict_proto(r.verdict) as i32,
                description: r.description.clone(),
                records: r.records.clone(),
                barred_until,
                barred_permanently,
            }
        })
        .collect()
}

fn cadre_resource(id: &str, division: &str) -> Resource {
    Resource::Cadre {
        id: id.to_string(),
        division: division.to_string(),
    }
}

/// Whether `p` is the requester of `req`: a system of the same agency and
/// division ("own", DESIGN §1). A fact the policies decide on, not a decision.
pub(crate) fn is_requester(p: &crate::identity::Principal, req: &OpinionRequestRow) -> bool {
    p.agency.as_str() == req.requester_agency && p.division == req.requester_division
}

/// An opinion request as one caller sees it (DESIGN §1 "jurisdiction applies
/// to every piece", §6): only the cadres the caller may read opinions about
/// and their replies, with state, OVERDUE and update time computed from those
/// pieces alone. Every answer, feed event, stream frame and replay that shows
/// a request is built here, so what a caller sees is decided in one place.
pub(crate) struct RequestView {
    pub request: proto::OpinionRequest,
    /// Cadre ids of the visible pieces, in request order.
    pub cadres: Vec<String>,
    /// The request's newest revision that changed what this caller sees: a
    /// feed event of an older revision is superseded, one of a newer revision
    /// told this caller nothing.
    pub revision: i64,
    /// Ids of the replies this view shows (a piece kept outside the caller's
    /// jurisdiction shows those up to the move only).
    pub replies: Vec<String>,
}

impl RequestView {
    /// Whether the caller sees the piece about this cadre.
    pub fn sees(&self, cadre_id: &str) -> bool {
        self.cadres.iter().any(|c| c == cadre_id)
    }

    /// Whether the view shows this reply: the one test the feed and every
    /// other path put a reply to, so none shows what the view leaves out.
    pub fn shows_reply(&self, reply_id: &str) -> bool {
        self.replies.iter().any(|r| r == reply_id)
    }
}

impl OpinionApi {
    /// The cadres of a request whose pieces the caller sees, in request order
    /// (DESIGN §1, §6): organization only in its own body's requests, and
    /// everyone the cadres the policies let it read opinions about, judged by
    /// where each cadre is managed now (the jurisdiction forbid decides per
    /// cadre, not per request). Outside the caller's jurisdiction a piece stays
    /// visible only to the requester (every piece of its own requests, also
    /// after a cadre moved away) and to a discipline body that replied to it.
    /// `at` places one cadre at another division: the feed asks how a request
    /// looked on either side of that cadre's move.
    async fn visible_cadres(
        &self,
        call: &mut Call,
        req: &OpinionRequestRow,
        replies: &[ReplyRow],
        at: Option<(&str, &str)>,
    ) -> Result<Vec<String>> {
        let p = call.principal.clone();
        let own = is_requester(&p, req);
        let mut managed: HashMap<String, String> = self
            .state
            .store
            .get_cadres(&req.cadres)
            .await?
            .into_iter()
            .map(|c| (c.id, c.managing_division))
            .collect();
        if let Some((id, division)) = at
            && let Some(d) = managed.get_mut(id)
        {
            *d = division.to_string();
        }
        // "Own" replies are those of any system of the caller's agency and division.
        let own_replier = format!("urn:cadrex:system:{}:{}:", p.agency, p.division);
        // Policies tell pieces apart only by the cadre's division and these
        // facts: one decision per distinct pair.
        let mut decided: HashMap<(String, bool), bool> = HashMap::new();
        let mut out = Vec::new();
        for id in &req.cadres {
            let Some(division) = managed.get(id) else {
                continue;
            };
            let replied_by_own = replies
                .iter()
                .any(|r| &r.cadre_id == id && r.replier.starts_with(&own_replier));
            let key = (division.clone(), replied_by_own);
            let allowed = match decided.get(&key) {
                Some(a) => *a,
                None => {
                    let facts = Facts {
                        purpose: None,
                        request: Some(RequestFacts {
                            own,
                            names_cadre: true,
                            replied_by_own,
                            ..RequestFacts::default()
                        }),
                    };
                    let a = call
                        .authorize_with(
                            &self.state.authz,
                            Action::ReadOpinions,
                            &cadre_resource(id, division),
                            &facts,
                        )
                        .allowed;
                    decided.insert(key, a);
                    a
                }
            };
            if allowed {
                out.push(id.clone());
            }
        }
        Ok(out)
    }

    /// The cadres of a request whose pieces the caller sees now, or would see
    /// with cadre `at.0` managed at division `at.1`: the change feed compares
    /// both sides of a move.
    pub(crate) async fn visible_pieces(
        &self,
        call: &mut Call,
        req: &OpinionRequestRow,
        at: Option<(&str, &str)>,
    ) -> Result<Vec<String>> {
        let replies = self.state.store.opinion_replies(&req.id).await?;
        self.visible_cadres(call, req, &replies, at).await
    }

    /// The request in `call`'s view, or `None` when the caller sees no piece
    /// of it (then it is answered as if it did not exist). The one renderer of
    /// a request: Get, List, Create, Withdraw, their replays, the change feed
    /// and watch streams, and the dossier's vetting check all come here.
    pub(crate) async fn view(
        &self,
        call: &mut Call,
        req: &OpinionRequestRow,
    ) -> Result<Option<RequestView>> {
        let replies = self.state.store.opinion_replies(&req.id).await?;
        let cadres = self.visible_cadres(call, req, &replies, None).await?;
        if cadres.is_empty() {
            return Ok(None);
        }
        let whole = cadres.len() == req.cadres.len();
        let cutoffs = self.kept_cutoffs(call, req, &cadres).await?;
        let mut cadre_opinions = Vec::with_capacity(cadres.len());
        let mut shown = Vec::new();
        let mut answered = 0;
        let mut update_time_us = req.create_time_us;
        for id in &cadres {
            // Replies come oldest first; the last is the one in force, the
            // others are the history of corrections. A piece a discipline
            // body keeps outside its jurisdiction ends at the move.
            let cutoff = cutoffs.get(id).copied().unwrap_or(i64::MAX);
            let mut history = Vec::new();
            for r in replies
                .iter()
                .filter(|r| &r.cadre_id == id && r.create_time_us <= cutoff)
            {
                shown.push(r.id.clone());
                update_time_us = update_time_us.max(r.create_time_us);
                history.push(self.reply_proto(call, r).await?);
            }
            let reply = history.pop();
            if reply.is_some() {
                answered += 1;
            }
            cadre_opinions.push(proto::CadreOpinion {
                cadre: format!("cadres/{id}"),
                reply,
                earlier_replies: history,
            });
        }
        // The stored state is the whole request's; a caller's is its pieces'.
        // Withdrawal concerns every piece, so it shows (with its time) to all.
        let state = if req.state == RequestState::Withdrawn {
            update_time_us = update_time_us.max(req.update_time_us);
            proto::OpinionRequestState::Withdrawn
        } else if answered == cadres.len() {
            proto::OpinionRequestState::Replied
        } else {
            proto::OpinionRequestState::Pending
        };
        let overdue = state == proto::OpinionRequestState::Pending
            && parse_date(&req.due_date).is_some_and(|d| today() > d);
        // The note and the withdrawal reason are the requester's own words about
        // the whole request and may name any of its cadres (DESIGN §6).
        let (note, withdraw_reason) = if whole {
            (req.note.clone(), req.withdraw_reason.clone())
        } else {
            (String::new(), String::new())
        };
        // Revisions: 1 at creation, then at most one more, when the request is
        // withdrawn (which every caller is told of) or when its last cadre gets a
        // reply (REPLIED, which nothing follows). That last one is about every
        // cadre at once, so only a caller seeing every cadre is told of it; one
        // seeing some learns of its own pieces' replies from their reply events,
        // and its view last changed as a request at the revision before.
        let revision = if whole || req.state != RequestState::Replied {
            req.revision
        } else {
            req.revision - 1
        };
        Ok(Some(RequestView {
            request: proto::OpinionRequest {
                name: request_name(&req.id),
                requester: req.requester.clone(),
                cadres: cadres.iter().map(|c| format!("cadres/{c}")).collect(),
                purpose: purpose_proto(&req.purpose) as i32,
                due_date: req.due_date.clone(),
                state: state as i32,
                overdue,
                cadre_opinions,
                warnings: req.warnings.clone(),
                create_time: Some(timestamp(req.create_time_us)),
                update_time: Some(timestamp(update_time_us)),
                withdraw_reason,
                note,
            },
            cadres,
            revision,
            replies: shown,
        }))
    }

    /// For a caller other than the requester, the pieces it sees of cadres
    /// now managed outside its jurisdiction (a discipline body keeps the
    /// pieces it replied to, DESIGN §6), each with the time of the move that
    /// took the cadre out: replies written after it (another body's
    /// correction, citing what was written about the cadre since) are not
    /// shown there.
    async fn kept_cutoffs(
        &self,
        call: &Call,
        req: &OpinionRequestRow,
        cadres: &[String],
    ) -> Result<HashMap<String, i64>> {
        let p = &call.principal;
        let mut out = HashMap::new();
        if is_requester(p, req) {
            return Ok(out);
        }
        for c in self.state.store.get_cadres(cadres).await? {
            if division::covers(&p.division, &c.managing_division) {
                continue;
            }
            let cutoff = self
                .moved_out(&p.division, &c.id)
                .await?
                .map_or(0, |m| m.move_time_us);
            out.insert(c.id, cutoff);
        }
        Ok(out)
    }

    /// The latest move that took the cadre out of the jurisdiction of
    /// `here`; `None` when it was never inside.
    async fn moved_out(&self, here: &str, cadre_id: &str) -> Result<Option<CadreMove>> {
        Ok(self
            .state
            .store
            .cadre_moves(cadre_id)
            .await?
            .into_iter()
            .rev()
            .find(|m| {
                division::covers(here, &m.from_division) && !division::covers(here, &m.to_division)
            }))
    }

    /// A request the caller sees some piece of, with its view, or NOT_FOUND
    /// for missing and invisible alike.
    async fn load(&self, call: &mut Call, name: &str) -> Result<(OpinionRequestRow, RequestView)> {
        let id = parse_request_name(name)?;
        call.resources.push(request_name(&id));
        if let Some(req) = self.state.store.get_opinion_request(&id).await?
            && let Some(view) = self.view(call, &req).await?
        {
            return Ok((req, view));
        }
        Err(Error::NotFound(request_name(&id)))
    }

    /// Whether a reply is stale as `call`'s principal may be told: past its
    /// age limit, or a matter record about the cadre was written after its
    /// as-of time. For a cadre managed outside the caller's jurisdiction only
    /// writes up to the move that took it out count (DESIGN §6): a reply seen
    /// there never tells what was written about the cadre since.
    async fn stale(&self, call: &Call, reply: &ReplyRow) -> Result<bool> {
        let limit = reply.as_of_us + self.state.config.opinion_stale_after.as_micros() as i64;
        if now_us() >= limit {
            return Ok(true);
        }
        let store = &self.state.store;
        let here = &call.principal.division;
        let inside = store
            .get_cadre(&reply.cadre_id)
            .await?
            .is_some_and(|c| division::covers(here, &c.managing_division));
        let last = if inside {
            store.last_matter_write_us(&reply.cadre_id).await?
        } else {
            // The latest move out of the caller's jurisdiction; none (it was
            // never here) lets no write count.
            self.moved_out(here, &reply.cadre_id)
                .await?
                .and_then(|m| m.last_matter_write_us)
        };
        Ok(last.is_some_and(|t| t > reply.as_of_us))
    }

    /// A reply as `call`'s principal is shown it (its staleness is the
    /// caller's, see [`Self::stale`]).
    pub(crate) async fn reply_proto(
        &self,
        call: &Call,
        r: &ReplyRow,
    ) -> Result<proto::OpinionReply> {
        Ok(proto::OpinionReply {
            name: format!("{}/replies/{}", request_name(&r.request_id), r.id),
            cadre: format!("cadres/{}", r.cadre_id),
            verdict: verdict_from_name(&r.verdict) as i32,
            text: r.text.clone(),
            cited_records: r.cited_records.clone(),
            signer: r.signer.clone(),
            as_of_time: Some(timestamp(r.as_of_us)),
            correction_reason: r.correction_reason.clone(),
            corrects: r.corrects.clone(),
            create_time: Some(timestamp(r.create_time_us)),
            purpose: purpose_proto(&r.purpose) as i32,
            stale: self.stale(call, r).await?,
            replier: r.replier.clone(),
        })
    }

    /// `GetOpinionRequest`: the request as the caller sees it, piece by piece.
    pub async fn get(
        &self,
        call: &mut Call,
        req: proto::GetOpinionRequestRequest,
    ) -> Result<proto::OpinionRequest> {
        Ok(self.load(call, &req.name).await?.1.request)
    }

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

    pub async fn list(
        &self,
        call: &mut Call,
        req: proto::ListOpinionRequestsRequest,
    ) -> Result<proto::ListOpinionRequestsResponse> {
        let p = call.principal.clone();
        call.require(
            &self.state.authz,
            Action::ReadOpinions,
            &cadre_resource("-", &p.division),
            || {
                Error::denied(
                    Reason::ActionNotPermitted,
                    "only organization and discipline systems take part in vetting",
                )
            },
        )?;
        let limit = page_size(req.page_size, 50, 500)?;
        let mut query = OpinionQuery {
            after_id: page_token::decode("opinions", &req.page_token)?,
            limit: limit + 1,
            ..Default::default()
        };
        // Which requests to look at is the policies' call too: a caller that
        // may read the pieces of requests not its own (discipline) lists by
        // where the cadres are; one that reads only its own (organization),
        // by requester.
        let others = Facts {
            purpose: None,
            request: Some(RequestFacts {
                names_cadre: true,
                ..RequestFacts::default()
            }),
        };
        let by_jurisdiction = self
            .state
            .authz
            .authorize_with(
                &p,
                Action::ReadOpinions,
                &cadre_resource("-", &p.division),
                &others,
            )
            .allowed;
        if !by_jurisdiction {
            query.requester = Some((p.agency.as_str().into(), p.division.clone()));
        } else {
            query.cadre_prefix = Some(division::jurisdiction_prefix(&p.division).to_string());
            // A discipline body keeps the pieces it replied to, wherever the
            // cadre is managed now (DESIGN §6).
            query.replier_prefix = Some(format!("urn:cadrex:system:{}:{}:", p.agency, p.division));
        }
        let (mut want_state, mut want_overdue, mut want_stale) = (None, None, None);
        for term in filter::parse(&req.filter)? {
            let flag = || match term.value.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(Error::invalid(
                    "filter",
                    "overdue and stale take \"true\" or \"false\"",
                )),
            };
            match (term.field.as_str(), term.op) {
                ("state", filter::Op::Eq) => {
                    let s = RequestState::parse(
                        term.value.trim_start_matches("OPINION_REQUEST_STATE_"),
                    )
                    .ok_or_else(|| {
                        Error::invalid("filter", "state is PENDING, REPLIED or WITHDRAWN")
                    })?;
                    want_state = Some(s.to_proto());
                    // The stored state is the whole request's: a caller seeing
                    // some cadres sees REPLIED once its own are, while the
                    // request is still PENDING. Stored REPLIED and WITHDRAWN
                    // read the same to everyone, so only those narrow the query.
                    query.state = (s != RequestState::Replied).then_some(s);
                }
                ("overdue", filter::Op::Eq) => want_overdue = Some(flag()?),
                ("stale", filter::Op::Eq) => want_stale = Some(flag()?),
                (other, _) => {
                    return Err(Error::invalid(
                        "filter",
                        format!("cannot filter on {other:?}"),
                    ));
                }
            }
        }
        // The page and its token are made of requests the caller is shown and
        // that match in its view only: a request whose stored state differs
        // from the caller's piece (PENDING while its own cadres are answered)
        // must not end a page or make a token appear, or the token would tell
        // how another county's piece stands. So scan on past what is not shown
        // until the page is full and one more match shows there is a next.
        let mut out: Vec<proto::OpinionRequest> = Vec::new();
        let mut last_id = String::new();
        let mut next_page_token = String::new();
        'scan: loop {
            let rows = self.state.store.list_opinion_requests(&query).await?;
            for r in &rows {
                let Some(view) = self.view(call, r).await? else {
                    continue;
                };
                let rendered = view.request;
                let stale = rendered
                    .cadre_opinions
                    .iter()
                    .any(|c| c.reply.as_ref().is_some_and(|r| r.stale));
                if want_state.is_some_and(|w| w as i32 != rendered.state)
                    || want_overdue.is_some_and(|w| w != rendered.overdue)
                    || want_stale.is_some_and(|w| w != stale)
                {
                    continue;
                }
                if out.len() as i64 == limit {
                    next_page_token = page_token::encode("opinions", &last_id);
                    break 'scan;
                }
                out.push(rendered);
                last_id = r.id.clone();
            }
            match rows.last() {
                Some(r) if rows.len() as i64 >= query.limit => query.after_id = Some(r.id.clone()),
                _ => break,
            }
        }
        call.resources = out.iter().map(|r| r.name.clone()).collect();
        Ok(proto::ListOpinionRequestsResponse {
            opinion_requests: out,
            next_page_token,
        })
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
    async fn request_cadre(
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
                Some(r) => self.reply_proto(call, r).await,
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
        };
        let response = self.reply_proto(call, &reply).await?;
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

/// Every record of a cadre as `call`'s principal may see it (no tombstones:
/// retracted records count for nothing).
pub async fn visible_records(
    api: &RecordApi,
    state: &AppState,
    call: &mut Call,
    cadre_id: &str,
) -> Result<Vec<proto::Record>> {
    let query = RecordQuery {
        cadre_id: Some(cadre_id.to_string()),
        jurisdiction_prefix: String::new(),
        kinds: Kind::ALL.iter().map(|k| k.as_str().to_string()).collect(),
        state: Some(RecordState::Active),
        max_revision: i64::MAX,
        limit: 100_000,
        ..Default::default()
    };
    let rows = state.store.list_records(&query).await?;
    api.render_rows(call, &rows)
}
