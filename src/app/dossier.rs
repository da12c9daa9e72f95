//! The dossier use case: a cadre's consolidated record with computed flags, all from the caller's own view, under a required purpose of use.

use std::sync::Arc;

use super::cadres::{self, cadre_resource};
use super::opinions::{
    OpinionApi, RequestView, barred, is_requester, reasons_proto, verdict_proto, visible_records,
};
use super::records::RecordApi;
use super::{AppState, Call};
use crate::authz::{Action, Facts, RequestFacts};
use crate::domain::clock::{now_us, timestamp, today};
use crate::domain::division;
use crate::domain::records::{self, Kind};
use crate::domain::rules;
use crate::error::{Error, Reason, Result};
use crate::proto;
use crate::store::OpinionRequestRow;

pub struct DossierApi {
    pub(crate) state: Arc<AppState>,
    pub(crate) records: RecordApi,
    opinions: OpinionApi,
}

impl DossierApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            records: RecordApi::new(state.clone()),
            opinions: OpinionApi::new(state.clone()),
            state,
        }
    }
}

fn purpose_name(p: i32) -> Option<&'static str> {
    Some(match proto::Purpose::try_from(p).ok()? {
        proto::Purpose::AppointmentVetting => "APPOINTMENT_VETTING",
        proto::Purpose::CaseHandling => "CASE_HANDLING",
        proto::Purpose::RoutineSupervision => "ROUTINE_SUPERVISION",
        proto::Purpose::AuditPlanning => "AUDIT_PLANNING",
        proto::Purpose::PetitionHandling => "PETITION_HANDLING",
        proto::Purpose::PreInspectionBriefing => "PRE_INSPECTION_BRIEFING",
        proto::Purpose::Unspecified => return None,
    })
}

impl DossierApi {
    /// The facts of the request a dossier call names (DESIGN §2: Cedar
    /// context), as the caller may know them, with the caller's view of it;
    /// a request that is missing, or whose piece about this cadre the caller
    /// does not see, has every fact false and no view.
    async fn request_facts(
        &self,
        call: &mut Call,
        name: &str,
        cadre_id: &str,
    ) -> Result<(RequestFacts, Option<(OpinionRequestRow, RequestView)>)> {
        let none = Ok((RequestFacts::default(), None));
        let Some(id) = name
            .strip_prefix("opinionRequests/")
            .filter(|s| records::is_resource_id(s))
        else {
            return none;
        };
        let Some(req) = self.state.store.get_opinion_request(id).await? else {
            return none;
        };
        let Some(view) = self.opinions.view(call, &req).await? else {
            return none;
        };
        let cadre = format!("cadres/{cadre_id}");
        let Some(piece) = view
            .request
            .cadre_opinions
            .iter()
            .find(|c| c.cadre == cadre)
        else {
            return none;
        };
        let facts = RequestFacts {
            own: is_requester(&call.principal, &req),
            withdrawn: view.request.state == proto::OpinionRequestState::Withdrawn as i32,
            names_cadre: true,
            reply_stale: piece.reply.as_ref().is_some_and(|r| r.stale),
            replied_by_own: false,
            visible: true,
            reply_within: false,
        };
        Ok((facts, Some((req, view))))
    }

    /// What an `APPOINTMENT_VETTING` dossier shows of the request it is read
    /// under (DESIGN §6): state, due date and every reply for this cadre,
    /// rendered through the same request view and reply renderer as
    /// `OpinionService`.
    async fn vetting(
        &self,
        call: &mut Call,
        req: &OpinionRequestRow,
        view: RequestView,
        cadre_id: &str,
    ) -> Result<proto::DossierVetting> {
        let id = view
            .request
            .name
            .strip_prefix("opinionRequests/")
            .unwrap_or_default()
            .to_string();
        let mut replies = Vec::new();
        for r in self.state.store.opinion_replies(&id).await? {
            if r.cadre_id == cadre_id {
                let reply = self.opinions.reply_proto(call, req, &r).await?;
                call.resources.push(reply.name.clone());
                replies.push(reply);
            }
        }
        Ok(proto::DossierVetting {
            opinion_request: view.request.name,
            state: view.request.state,
            due_date: view.request.due_date,
            overdue: view.request.overdue,
            replies,
        })
    }

    pub async fn dossier(
        &self,
        call: &mut Call,
        req: proto::GetCadreDossierRequest,
    ) -> Result<proto::CadreDossier> {
        let id = req
            .cadre
            .strip_prefix("cadres/")
            .filter(|s| records::is_resource_id(s))
            .ok_or_else(|| Error::invalid("cadre", "must be cadres/{cadre}"))?
            .to_string();
        call.resources.push(format!("cadres/{id}"));
        let purpose = purpose_name(req.purpose)
            .ok_or_else(|| Error::invalid("purpose", "a purpose of use is required"))?;
        call.purpose = purpose.to_string();
        // Checked before anything is looked up, so the answer cannot depend on
        // whether the cadre exists.
        if !req.opinion_request.is_empty()
            && !req
                .opinion_request
                .strip_prefix("opinionRequests/")
                .is_some_and(records::is_resource_id)
        {
            return Err(Error::invalid(
                "opinion_request",
                "must be opinionRequests/{request} (1-64 letters, digits or '-')",
            ));
        }
        let Some(cadre) = self.state.store.get_cadre(&id).await? else {
            return Err(if call.principal.division == division::NATIONAL {
                Error::NotFound(format!("cadres/{id}"))
            } else {
                Error::CadreNotAccessible
            });
        };
        let resource = cadre_resource(&cadre);
        let authz = &self.state.authz;
        // Who may read this cadre's dossier at all, first, so that a cadre
        // outside the caller's jurisdiction answers as a missing one whatever
        // the rest of the request says.
        call.require(authz, Action::ReadDossier, &resource, || {
            Error::CadreNotAccessible
        })?;
        // Then the purpose of use and the named request, as Cedar context:
        // the conditions on them are policies (DESIGN §2).
        let mut facts = Facts {
            purpose: Some(purpose.to_string()),
            request: None,
        };
        let mut named = None;
        if !req.opinion_request.is_empty() {
            let (request, view) = self.request_facts(call, &req.opinion_request, &id).await?;
            facts.request = Some(request);
            named = view;
        }
        let decision = call.authorize_with(authz, Action::ReadDossier, &resource, &facts);
        if !decision.allowed {
            call.deny(&decision);
            let by = |policy: &str| decision.policy_ids.iter().any(|p| p == policy);
            return Err(if by("vetting-needs-an-open-request") {
                if req.opinion_request.is_empty() {
                    Error::invalid(
                        "opinion_request",
                        "APPOINTMENT_VETTING by organization names opinionRequests/{request}",
                    )
                } else {
                    Error::denied(
                        Reason::NoOpenRequest,
                        "appointment vetting needs an open integrity-opinion request of yours for this cadre",
                    )
                }
            } else if by("named-request-must-be-visible") {
                Error::invalid(
                    "opinion_request",
                    "not an integrity-opinion request about this cadre that you can read",
                )
            } else if decision.policy_ids.is_empty() {
                // No permit for this purpose, though one for reading at all.
                Error::denied(
                    Reason::ActionNotPermitted,
                    "this system may not read dossiers for this purpose of use",
                )
            } else {
                Error::CadreNotAccessible
            });
        }
        // Only validated names enter the log: a name the caller sees.
        let (mut vetting, mut readiness) = (None, None);
        if let Some((row, view)) = named {
            call.resources.push(view.request.name.clone());
            if purpose == "APPOINTMENT_VETTING" && facts.request.is_some_and(|r| r.own) {
                readiness = Some(
                    self.opinions
                        .judge_readiness(call, &row, &view, &id)
                        .await?,
                );
                vetting = Some(self.vetting(call, &row, view, &id).await?);
            }
        }
        let view = if call.authorize(authz, Action::ReadFull, &resource).allowed {
            cadres::View::Full
        } else if call
            .authorize(authz, Action::ReadSummary, &resource)
            .allowed
        {
            cadres::View::IdMasked
        } else {
            return Err(Error::CadreNotAccessible);
        };
        let visible = visible_records(&self.records, &self.state, call, &id).await?;
        // Sections: every kind the caller may see at all, in DESIGN order.
        let mut sections = Vec::new();
        for kind in Kind::ALL {
            let probe = crate::authz::Resource::Record {
                id: "-".into(),
                division: cadre.managing_division.clone(),
                kind: kind.as_str().into(),
                owner_agency: String::new(),
                owner_division: String::new(),
                transfer_agency: call.principal.agency.as_str().into(),
                transfer_division: call.principal.division.clone(),
            };
            let records: Vec<proto::Record> = visible
                .iter()
                .filter(|r| r.kind == kind.to_proto() as i32)
                .cloned()
                .collect();
            if records.is_empty() && self.records.level(call, &probe, kind).is_none() {
                continue;
            }
            sections.push(proto::DossierSection {
                kind: kind.to_proto() as i32,
                records,
            });
        }
        call.resources
            .extend(visible.iter().map(|r| r.name.clone()));
        let facts: Vec<rules::Fact> = visible.iter().filter_map(records::fact_of).collect();
        let draft = rules::draft(&facts, today(), &self.state.rules);
        let unit_head_tenures = self.unit_head_tenures(call, &cadre, &visible);
        Ok(proto::CadreDossier {
            cadre: Some(cadres::to_proto(&cadre, view)),
            sections,
            flags: Some(flags(&draft)),
            as_of_time: Some(timestamp(now_us())),
            purpose: req.purpose,
            vetting,
            unit_head_tenures,
            readiness,
        })
    }
}

/// The dossier `principal` would get from `GetCadreDossier` — the same
/// authorization decisions, views and flags — built without gRPC, TLS or the
/// access-log row. `cadrex bench` compares the RPC against it to measure what
/// the transport and the log cost; nothing that serves callers uses it.
pub async fn assemble(
    state: Arc<AppState>,
    principal: crate::identity::Principal,
    req: proto::GetCadreDossierRequest,
    method: &'static str,
) -> Result<proto::CadreDossier> {
    let api = DossierApi::new(state);
    let mut call = Call::new(principal, String::new(), method, String::new());
    api.dossier(&mut call, req).await
}

/// The computed flags: the rule engine's reasons over the records as the
/// caller sees them, computed once for the draft, each flag the records of
/// one rule (a condition the rules compute is never computed again here).
fn flags(draft: &rules::Draft) -> proto::DossierFlags {
    use rules::rule_id;
    let (promotion_barred_until, promotion_barred_permanently) = barred(draft.barred_until);
    let records_of = |rule: &str| -> Vec<String> {
        draft
            .reasons
            .iter()
            .filter(|r| r.rule == rule)
            .flat_map(|r| r.records.iter().cloned())
            .collect()
    };
    proto::DossierFlags {
        promotion_barred_until,
        promotion_barred_permanently,
        bar_reasons: draft
            .reasons
            .iter()
            .filter(|r| r.verdict == rules::Verdict::NotAgree)
            .map(|r| r.description.clone())
            .collect(),
        open_clues: records_of(rule_id::OPEN_CLUE),
        unclosed_specific_petitions: records_of(rule_id::UNCLOSED_SPECIFIC_PETITION),
        findings_transferred_to_discipline: records_of(rule_id::FINDING_TRANSFERRED_TO_DISCIPLINE),
        unrectified_findings_past_deadline: records_of(
            rule_id::FINDING_PAST_RECTIFICATION_DEADLINE,
        ),
        concealed_personal_matters: records_of(rule_id::CONCEALED_PERSONAL_MATTERS_PERIOD),
        verdict: verdict_proto(draft.verdict) as i32,
        reasons: reasons_proto(&draft.reasons),
    }
}
