//! What one caller sees of an opinion request: the pieces it may read, their replies (up to a move for a piece kept outside its jurisdiction), staleness as the caller may be told it, and Get.

use super::*;

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
    pub(super) async fn visible_cadres(
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
                history.push(self.reply_proto(call, req, r).await?);
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
    pub(super) async fn kept_cutoffs(
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
    pub(super) async fn moved_out(&self, here: &str, cadre_id: &str) -> Result<Option<CadreMove>> {
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
    pub(super) async fn load(
        &self,
        call: &mut Call,
        name: &str,
    ) -> Result<(OpinionRequestRow, RequestView)> {
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
    /// there never tells what was written about the cadre since. `managed` is
    /// the cadre's managing division (`None`: not in the registry).
    async fn stale(&self, call: &Call, reply: &ReplyRow, managed: Option<&str>) -> Result<bool> {
        let limit = reply.as_of_us + self.state.config.opinion_stale_after.as_micros() as i64;
        if now_us() >= limit {
            return Ok(true);
        }
        let here = &call.principal.division;
        let last = if managed.is_some_and(|m| division::covers(here, m)) {
            self.state
                .store
                .last_matter_write_us(&reply.cadre_id)
                .await?
        } else {
            // The latest move out of the caller's jurisdiction; none (it was
            // never here) lets no write count.
            self.moved_out(here, &reply.cadre_id)
                .await?
                .and_then(|m| m.last_matter_write_us)
        };
        Ok(last.is_some_and(|t| t > reply.as_of_us))
    }

    /// Whether `call`'s principal is told that `reply` departs from the rules'
    /// draft, and why (DESIGN §6): a Cedar decision on the reply's facts — the
    /// requester and discipline bodies at or above the replying one are.
    fn shows_deviation(
        &self,
        call: &mut Call,
        req: &OpinionRequestRow,
        reply: &ReplyRow,
        managed: Option<&str>,
    ) -> bool {
        if reply.deviation_reason.is_empty() {
            return false;
        }
        let Some(managed) = managed else {
            return false;
        };
        let p = &call.principal;
        let replier = crate::identity::parse_uri(&reply.replier).ok();
        let facts = Facts {
            purpose: None,
            request: Some(RequestFacts {
                own: is_requester(p, req),
                names_cadre: true,
                visible: true,
                replied_by_own: replier
                    .as_ref()
                    .is_some_and(|(agency, d, _)| *agency == p.agency && *d == p.division),
                reply_within: replier.as_ref().is_some_and(|(agency, d, _)| {
                    *agency == p.agency && division::covers(&p.division, d)
                }),
                ..RequestFacts::default()
            }),
        };
        call.authorize_with(
            &self.state.authz,
            Action::ReadDeviation,
            &cadre_resource(&reply.cadre_id, managed),
            &facts,
        )
        .allowed
    }

    /// A reply of `req` as `call`'s principal is shown it: its staleness is
    /// the caller's (see [`Self::stale`]), its deviation told only where
    /// [`Self::shows_deviation`] allows.
    pub(crate) async fn reply_proto(
        &self,
        call: &mut Call,
        req: &OpinionRequestRow,
        r: &ReplyRow,
    ) -> Result<proto::OpinionReply> {
        let managed = self
            .state
            .store
            .get_cadre(&r.cadre_id)
            .await?
            .map(|c| c.managing_division);
        let deviation = self.shows_deviation(call, req, r, managed.as_deref());
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
            stale: self.stale(call, r, managed.as_deref()).await?,
            replier: r.replier.clone(),
            deviation,
            deviation_reason: if deviation {
                r.deviation_reason.clone()
            } else {
                String::new()
            },
            draft_verdict: if deviation {
                verdict_from_name(&r.draft_verdict) as i32
            } else {
                proto::Verdict::Unspecified as i32
            },
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
}
