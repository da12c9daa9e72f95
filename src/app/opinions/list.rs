//! `ListOpinionRequests`: the requests a caller sees a piece of, filtered and paged by what its view shows.

use super::*;

impl OpinionApi {
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
}
