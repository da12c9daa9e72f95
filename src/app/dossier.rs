//! The dossier use case: a cadre's consolidated record with computed flags, all from the caller's own view, under a required purpose of use.

use std::sync::Arc;

use super::cadres::{self, cadre_resource};
use super::opinions::{OpinionApi, barred, reasons_proto, verdict_proto, visible_records};
use super::records::RecordApi;
use super::{AppState, Call};
use crate::authz::Action;
use crate::domain::agency::Agency;
use crate::domain::clock::{now_us, timestamp, today};
use crate::domain::division;
use crate::domain::records::{self, Kind};
use crate::domain::rules;
use crate::error::{Error, Reason, Result};
use crate::proto;

pub struct DossierApi {
    pub(crate) state: Arc<AppState>,
    records: RecordApi,
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
        proto::Purpose::Unspecified => return None,
    })
}

impl DossierApi {
    /// DESIGN §2: organization's APPOINTMENT_VETTING must name an open request
    /// of its own for this cadre — not withdrawn, and this cadre's reply
    /// absent or not stale. Gives back what the dossier shows of it (§6):
    /// state, due date and every reply for this cadre, rendered through the
    /// same request view and reply renderer as `OpinionService`.
    async fn check_vetting_request(
        &self,
        call: &mut Call,
        name: &str,
        cadre_id: &str,
    ) -> Result<proto::DossierVetting> {
        let refused = || {
            Error::denied(
                Reason::NoOpenRequest,
                "appointment vetting needs an open integrity-opinion request of yours for this cadre",
            )
        };
        let id = name
            .strip_prefix("opinionRequests/")
            .filter(|s| records::is_resource_id(s))
            .ok_or_else(|| {
                Error::invalid(
                    "opinion_request",
                    "APPOINTMENT_VETTING by organization names opinionRequests/{request}",
                )
            })?;
        call.resources.push(name.to_string());
        let Some(req) = self.state.store.get_opinion_request(id).await? else {
            return Err(refused());
        };
        // Judged on the request as the caller sees it (its own requests only,
        // the cadre's own piece): open means not withdrawn, and this cadre's
        // reply absent or not stale, whatever the other cadres' replies say.
        let Some(view) = self.opinions.view(call, &req).await? else {
            return Err(refused());
        };
        let cadre = format!("cadres/{cadre_id}");
        let Some(piece) = view
            .request
            .cadre_opinions
            .iter()
            .find(|c| c.cadre == cadre)
        else {
            return Err(refused());
        };
        let open = view.request.state != proto::OpinionRequestState::Withdrawn as i32
            && piece.reply.as_ref().is_none_or(|r| !r.stale);
        if !open {
            return Err(refused());
        }
        let mut replies = Vec::new();
        for r in self.state.store.opinion_replies(&req.id).await? {
            if r.cadre_id == cadre_id {
                let reply = self.opinions.reply_proto(call, &r).await?;
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

    /// A request named by a caller other than organization's vetting: it must
    /// be one whose piece about this cadre the caller sees; only then does its
    /// name enter the log.
    async fn check_named_request(&self, call: &mut Call, name: &str, cadre_id: &str) -> Result<()> {
        let refused = || {
            Error::invalid(
                "opinion_request",
                "not an integrity-opinion request about this cadre that you can read",
            )
        };
        let Some(id) = name.strip_prefix("opinionRequests/") else {
            return Err(refused());
        };
        let Some(req) = self.state.store.get_opinion_request(id).await? else {
            return Err(refused());
        };
        let Some(view) = self.opinions.view(call, &req).await? else {
            return Err(refused());
        };
        let cadre = format!("cadres/{cadre_id}");
        if !view.request.cadre_opinions.iter().any(|c| c.cadre == cadre) {
            return Err(refused());
        }
        call.resources.push(name.to_string());
        Ok(())
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
        call.require(&self.state.authz, Action::ReadDossier, &resource, || {
            Error::CadreNotAccessible
        })?;
        let mut vetting = None;
        if call.principal.agency == Agency::Organization && purpose == "APPOINTMENT_VETTING" {
            vetting = Some(
                self.check_vetting_request(call, &req.opinion_request, &id)
                    .await?,
            );
        } else if !req.opinion_request.is_empty() {
            // Only validated names enter the log: a free-form value here once
            // made the log say a caller touched records it never read. Another
            // caller (discipline reading the record it will reply on) may name
            // a request only if it sees that request's piece about this cadre;
            // a missing and an unseen request get the same answer.
            self.check_named_request(call, &req.opinion_request, &id)
                .await?;
        }
        let authz = &self.state.authz;
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
        Ok(proto::CadreDossier {
            cadre: Some(cadres::to_proto(&cadre, view)),
            sections,
            flags: Some(flags(&draft)),
            as_of_time: Some(timestamp(now_us())),
            purpose: req.purpose,
            vetting,
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
