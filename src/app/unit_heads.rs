//! Unit heads (一把手) in the caller's view: the tenures a dossier shows with the audits they are owed, and the audit office's worklist `ListAuditCandidates` (DESIGN §6a).

use super::dossier::DossierApi;
use super::opinions::visible_records;
use super::{Call, page_size, page_token};
use crate::authz::{Action, Resource};
use crate::domain::clock::today;
use crate::domain::records::Kind;
use crate::domain::unit_heads::{self, Assessment, FlagKind};
use crate::domain::{division, parse_date};
use crate::error::{Error, Reason, Result};
use crate::proto::{self, record::Payload};
use crate::store::{CadreQuery, CadreRow};

/// Cadres read per store round trip while the worklist fills a page.
const SCAN: i64 = 500;

/// Cadres one call looks at, at most: a jurisdiction with few candidates
/// among many cadres answers in pages that may hold fewer than `page_size`
/// entries (AIP-158), each with a token to go on, so that no call outlives
/// the call timeout however large the jurisdiction.
const SCAN_PER_CALL: usize = 4_000;

/// The cadre's posts as the rules read them (a post whose dates do not parse
/// cannot be stored, so none is skipped in practice).
fn posts_of(cadre: &CadreRow) -> Vec<unit_heads::Post> {
    cadre
        .posts
        .iter()
        .filter_map(|p| {
            Some(unit_heads::Post {
                unit_name: p.unit_name.clone(),
                unit_credit_code: p.unit_credit_code.clone(),
                unit_head: p.unit_head,
                start: parse_date(&p.start_date)?,
                end: if p.end_date.is_empty() {
                    None
                } else {
                    Some(parse_date(&p.end_date)?)
                },
            })
        })
        .collect()
}

/// The audit engagements among records the caller sees.
fn engagements_of(visible: &[proto::Record]) -> Vec<unit_heads::Engagement> {
    visible
        .iter()
        .filter_map(|r| match &r.payload {
            Some(Payload::AuditEngagement(e)) => Some(unit_heads::Engagement {
                name: r.name.clone(),
                departure: e.r#type == proto::AuditEngagementType::Departure as i32,
                unit_credit_code: Some(e.audited_unit_credit_code.clone())
                    .filter(|c| !c.is_empty()),
                period_start: parse_date(&e.period_start)?,
                period_end: parse_date(&e.period_end)?,
            }),
            _ => None,
        })
        .collect()
}

fn flag_proto(f: FlagKind) -> proto::UnitHeadFlag {
    match f {
        FlagKind::DepartureAuditMissing => proto::UnitHeadFlag::DepartureAuditMissing,
        FlagKind::TermAuditDue => proto::UnitHeadFlag::TermAuditDue,
    }
}

fn tenure_proto(a: &Assessment, as_of: time::Date, with_flags: bool) -> proto::UnitHeadTenure {
    proto::UnitHeadTenure {
        unit_name: a.tenure.unit_name.clone(),
        unit_credit_code: a.tenure.unit_credit_code.clone(),
        start_date: a.tenure.start.to_string(),
        end_date: a.tenure.end.map(|d| d.to_string()).unwrap_or_default(),
        current: a.tenure.is_current(as_of),
        flags: if with_flags {
            a.flags.iter().map(|f| flag_proto(*f) as i32).collect()
        } else {
            Vec::new()
        },
        covering_engagements: if with_flags {
            a.covering.clone()
        } else {
            Vec::new()
        },
        planned_departure: a.planned_departure,
    }
}

impl DossierApi {
    /// Whether the caller reads a cadre's audit engagements at all: only then
    /// can the audits a tenure is owed be judged from its view (petition,
    /// which reads none, would see every tenure flagged).
    fn reads_engagements(&self, call: &mut Call, cadre: &CadreRow) -> bool {
        let probe = Resource::Record {
            id: "-".into(),
            division: cadre.managing_division.clone(),
            kind: Kind::AuditEngagement.as_str().into(),
            owner_agency: String::new(),
            owner_division: String::new(),
            transfer_agency: String::new(),
            transfer_division: String::new(),
        };
        self.records
            .level(call, &probe, Kind::AuditEngagement)
            .is_some()
    }

    /// The dossier's unit-head tenures, from the records the caller sees.
    pub(crate) fn unit_head_tenures(
        &self,
        call: &mut Call,
        cadre: &CadreRow,
        visible: &[proto::Record],
    ) -> Vec<proto::UnitHeadTenure> {
        let tenures = unit_heads::tenures(&posts_of(cadre));
        if tenures.is_empty() {
            return Vec::new();
        }
        let with_flags = self.reads_engagements(call, cadre);
        let as_of = today();
        unit_heads::assess(&tenures, &engagements_of(visible), as_of, &self.state.rules)
            .iter()
            .map(|a| tenure_proto(a, as_of, with_flags))
            .collect()
    }

    /// `ListAuditCandidates`: the unit heads in the caller's jurisdiction owed
    /// a departure or term audit, or leaving a unit-head post within the
    /// horizon, each tenure judged from the caller's own view.
    pub async fn audit_candidates(
        &self,
        call: &mut Call,
        req: proto::ListAuditCandidatesRequest,
    ) -> Result<proto::ListAuditCandidatesResponse> {
        let own = Resource::Cadre {
            id: "-".into(),
            division: call.principal.division.clone(),
        };
        call.require(&self.state.authz, Action::ListAuditCandidates, &own, || {
            Error::denied(
                Reason::ActionNotPermitted,
                "only audit offices list audit candidates",
            )
        })?;
        let limit = page_size(req.page_size, 50, 1000)? as usize;
        let mut after = page_token::decode("auditCandidates", &req.page_token)?;
        let as_of = today();
        let mut out = Vec::new();
        let mut next_page_token = String::new();
        let mut scanned = 0;
        'scan: loop {
            let page = self
                .state
                .store
                .list_cadres(&CadreQuery {
                    jurisdiction_prefix: division::jurisdiction_prefix(&call.principal.division)
                        .to_string(),
                    after_id: after.clone(),
                    limit: SCAN,
                    ..Default::default()
                })
                .await?;
            let done = (page.len() as i64) < SCAN;
            for cadre in &page {
                after = Some(cadre.id.clone());
                scanned += 1;
                let tenures = unit_heads::tenures(&posts_of(cadre));
                if tenures.is_empty() {
                    continue;
                }
                let with_flags = self.reads_engagements(call, cadre);
                let visible = visible_records(&self.records, &self.state, call, &cadre.id).await?;
                let listed: Vec<proto::UnitHeadTenure> = unit_heads::assess(
                    &tenures,
                    &engagements_of(&visible),
                    as_of,
                    &self.state.rules,
                )
                .iter()
                .filter(|a| !a.flags.is_empty() || a.planned_departure)
                .map(|a| tenure_proto(a, as_of, with_flags))
                .collect();
                if listed.is_empty() {
                    continue;
                }
                let name = format!("cadres/{}", cadre.id);
                call.resources.push(name.clone());
                for tenure in listed {
                    call.resources
                        .extend(tenure.covering_engagements.iter().cloned());
                    out.push(proto::AuditCandidate {
                        cadre: name.clone(),
                        display_name: cadre.display_name.clone(),
                        tenure: Some(tenure),
                    });
                }
                // A cadre's tenures stay on one page.
                if out.len() >= limit {
                    next_page_token = page_token::encode("auditCandidates", &cadre.id);
                    break 'scan;
                }
            }
            if done {
                break;
            }
            if scanned >= SCAN_PER_CALL {
                if let Some(last) = &after {
                    next_page_token = page_token::encode("auditCandidates", last);
                }
                break;
            }
        }
        Ok(proto::ListAuditCandidatesResponse {
            audit_candidates: out,
            next_page_token,
        })
    }
}
