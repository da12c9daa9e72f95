//! 凡提四必 readiness (`GetVettingReadiness`, DESIGN §6a): the four musts for one cadre of one of organization's own requests, judged from its own view of the records and of the request.

use super::*;
use crate::domain::readiness::{self, Evidence, Item, State};
use crate::proto::record::Payload;

fn item_proto(i: Item) -> proto::ReadinessItem {
    match i {
        Item::ArchiveReview => proto::ReadinessItem::ArchiveReview,
        Item::PersonalMatters => proto::ReadinessItem::PersonalMatters,
        Item::DisciplineOpinion => proto::ReadinessItem::DisciplineOpinion,
        Item::SpecificPetitions => proto::ReadinessItem::SpecificPetitions,
    }
}

fn state_proto(s: State) -> proto::ReadinessState {
    match s {
        State::Satisfied => proto::ReadinessState::Satisfied,
        State::Missing => proto::ReadinessState::Missing,
        State::Blocking => proto::ReadinessState::Blocking,
    }
}

/// What the four musts are judged on, from records the caller sees and the
/// reply in force in its view of the request.
fn evidence(
    request: &str,
    records: &[proto::Record],
    reply: Option<&proto::OpinionReply>,
) -> Evidence {
    let mut e = Evidence::default();
    for r in records {
        match &r.payload {
            Some(Payload::ArchiveReview(a)) if a.opinion_request == request => {
                if let Some(date) = parse_date(&a.review_date) {
                    e.reviews.push(readiness::Review {
                        name: r.name.clone(),
                        date,
                        discrepancies: a.result == proto::ArchiveReviewResult::Discrepancies as i32,
                        written: r.revision,
                    });
                }
            }
            Some(Payload::PersonalMattersCheck(c)) => {
                if let Some(check_date) = parse_date(&c.check_date) {
                    e.checks.push(readiness::Check {
                        name: r.name.clone(),
                        report_year: c.report_year,
                        check_date,
                        concealed: c.result == proto::PersonalMattersResult::Concealed as i32,
                    });
                }
            }
            Some(Payload::Petition(proto::Petition {
                specific: true,
                status,
                ..
            }))
            | Some(Payload::PetitionSummary(proto::PetitionSummary {
                specific: true,
                status,
                ..
            })) => e.specific_petitions.push(readiness::Petition {
                name: r.name.clone(),
                done: *status == proto::PetitionStatus::Closed as i32
                    || *status == proto::PetitionStatus::Rejected as i32,
            }),
            _ => {}
        }
    }
    e.reply = reply.and_then(|r| {
        Some(readiness::Reply {
            name: r.name.clone(),
            verdict: rules::Verdict::parse(
                proto::Verdict::try_from(r.verdict)
                    .ok()?
                    .as_str_name()
                    .strip_prefix("VERDICT_")?,
            )?,
            stale: r.stale,
        })
    });
    e
}

impl OpinionApi {
    /// 凡提四必 for `cadre_id` under `req`, as `call`'s principal sees them;
    /// the caller was authorized for the request already. Names what decided
    /// each item in the access-log row.
    pub(crate) async fn judge_readiness(
        &self,
        call: &mut Call,
        req: &OpinionRequestRow,
        view: &RequestView,
        cadre_id: &str,
    ) -> Result<proto::VettingReadiness> {
        let request = request_name(&req.id);
        let cadre = format!("cadres/{cadre_id}");
        let records = visible_records(&self.records, &self.state, call, cadre_id).await?;
        let reply = view
            .request
            .cadre_opinions
            .iter()
            .find(|c| c.cadre == cadre)
            .and_then(|c| c.reply.as_ref());
        let as_of = today();
        let judged = readiness::judge(
            &evidence(&request, &records, reply),
            as_of,
            &self.state.rules,
        );
        for j in &judged {
            call.resources.extend(j.cited.iter().cloned());
        }
        Ok(proto::VettingReadiness {
            opinion_request: request,
            cadre,
            ready: judged.iter().all(|j| j.state == State::Satisfied),
            checks: judged
                .into_iter()
                .map(|j| proto::ReadinessCheck {
                    item: item_proto(j.item) as i32,
                    state: state_proto(j.state) as i32,
                    reason: j.reason,
                    cited: j.cited,
                })
                .collect(),
            as_of_date: as_of.to_string(),
        })
    }

    /// `GetVettingReadiness`: organization, on a request of its own, not
    /// withdrawn, naming the cadre (Cedar decides, on the request's facts as
    /// context); a cadre outside the caller's jurisdiction answers as a
    /// missing one.
    pub async fn readiness(
        &self,
        call: &mut Call,
        req: proto::GetVettingReadinessRequest,
    ) -> Result<proto::VettingReadiness> {
        let id = parse_request_name(&req.name)?;
        let cadre_id = cadre_id(&req.cadre, "cadre")?;
        call.resources.push(format!("cadres/{cadre_id}"));
        let authz = &self.state.authz;
        let own = Resource::Cadre {
            id: "-".into(),
            division: call.principal.division.clone(),
        };
        call.require(authz, Action::ReadReadiness, &own, || {
            Error::denied(
                Reason::ActionNotPermitted,
                "only organization departments judge 凡提四必 readiness",
            )
        })?;
        let cadre = self.state.store.get_cadre(&cadre_id).await?;
        let Some(cadre) = cadre.filter(|c| {
            call.authorize(
                authz,
                Action::ReadReadiness,
                &cadre_resource(&c.id, &c.managing_division),
            )
            .allowed
        }) else {
            return Err(if call.principal.division == division::NATIONAL {
                Error::NotFound(format!("cadres/{cadre_id}"))
            } else {
                Error::CadreNotAccessible
            });
        };
        let row = self.state.store.get_opinion_request(&id).await?;
        let view = match &row {
            Some(r) => self.view(call, r).await?,
            None => None,
        };
        let facts = RequestFacts {
            own: row
                .as_ref()
                .is_some_and(|r| is_requester(&call.principal, r)),
            withdrawn: row
                .as_ref()
                .is_some_and(|r| r.state == RequestState::Withdrawn),
            names_cadre: row.as_ref().is_some_and(|r| r.cadres.contains(&cadre_id)),
            visible: view.as_ref().is_some_and(|v| v.sees(&cadre_id)),
            ..RequestFacts::default()
        };
        let decision = call.authorize_with(
            authz,
            Action::ReadReadiness,
            &cadre_resource(&cadre.id, &cadre.managing_division),
            &Facts {
                purpose: None,
                request: Some(facts),
            },
        );
        let (Some(row), Some(view), true) = (row, view, decision.allowed) else {
            call.deny(&decision);
            return Err(Error::denied(
                Reason::NoOpenRequest,
                "readiness is judged on an integrity-opinion request of yours, not withdrawn, naming this cadre",
            ));
        };
        call.resources.push(request_name(&row.id));
        self.judge_readiness(call, &row, &view, &cadre_id).await
    }
}
