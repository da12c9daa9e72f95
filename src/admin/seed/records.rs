//! The records of a seeded store: for each fictitious cadre, a plausible history of every kind, as each owner agency's system would submit it.

use crate::domain::agency::Agency;
use crate::domain::records::Kind;
use crate::proto::{self, record::Payload};
use crate::rng::Rng;

use super::people::{DEPARTMENTS, PROVINCES, Person, days_before_anchor, name};

/// One generated record: the id the seeded row gets (a server would choose
/// its own), the agency whose system of the cadre's province submits it, and
/// the record as that system would send it to SubmitRecord.
#[derive(Clone, Debug)]
pub struct Generated {
    pub id: String,
    pub owner: Agency,
    pub record: proto::Record,
}

/// Which kind the next record of a cadre is; weights are rough shares of the
/// records a provincial exchange holds (evaluations and checks dominate).
fn pick_kind(rng: &mut Rng) -> Kind {
    const TABLE: &[(Kind, u32)] = &[
        (Kind::Evaluation, 34),
        (Kind::PersonalMattersCheck, 18),
        (Kind::AuditEngagement, 9),
        (Kind::AuditFinding, 13),
        (Kind::Admonishment, 6),
        (Kind::Petition, 8),
        (Kind::Clue, 6),
        (Kind::Sanction, 4),
        (Kind::OrgHandling, 2),
        (Kind::InspectionFinding, 3),
        (Kind::ArchiveReview, 2),
    ];
    let total: u32 = TABLE.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total as usize) as u32;
    for (k, w) in TABLE {
        if x < *w {
            return *k;
        }
        x -= w;
    }
    Kind::Evaluation
}

fn pick_enum(rng: &mut Rng, max: i32) -> i32 {
    1 + rng.below(max as usize) as i32
}

/// The id of the opinion request a seeded archive review of `person` serves;
/// the seed creates it before the person's records.
pub fn archive_request_id(person: &Person) -> String {
    format!("arch-{}", &person.id[..12])
}

/// `n` records about `person`, oldest links first: an audit finding names an
/// engagement generated before it, a clue may name an earlier petition (by
/// the seeded ids, `cadres/{person.id}/records/{id}`).
pub fn records(rng: &mut Rng, person: &Person, n: usize) -> Vec<Generated> {
    let province = PROVINCES[person.province].code;
    let cadre_name = format!("cadres/{}", person.id);
    let mut out = Vec::with_capacity(n);
    let mut engagement: Option<String> = None;
    let mut petition: Option<String> = None;
    for k in 0..n {
        let mut kind = pick_kind(rng);
        if kind == Kind::AuditFinding && engagement.is_none() {
            kind = Kind::AuditEngagement;
        }
        let days = 30 + rng.below(6 * 365);
        let date = days_before_anchor(days);
        let d = date.to_string();
        let sid_prefix = kind.as_str().to_ascii_lowercase().replace('_', "-");
        let source_record_id = format!("{sid_prefix}-{}-{k}", &person.id[..12]);
        let id = rng.id();
        let (payload, owner_agency) = match kind {
            Kind::Sanction => {
                let party = rng.chance(0.6);
                let decision = date;
                let party_type = if party { pick_enum(rng, 5) } else { 0 };
                let probation_years = if party_type == proto::PartySanctionType::Probation as i32 {
                    1 + rng.below(2) as i32
                } else {
                    0
                };
                (
                    Payload::Sanction(proto::Sanction {
                        track: if party {
                            proto::SanctionTrack::Party as i32
                        } else {
                            proto::SanctionTrack::State as i32
                        },
                        party_type,
                        state_type: if party { 0 } else { pick_enum(rng, 5) },
                        probation_years,
                        decision_number: format!(
                            "{}纪处〔{}〕{}号",
                            &province[..2],
                            decision.year(),
                            1 + rng.below(300)
                        ),
                        decision_date: d.clone(),
                        effective_date: (decision + time::Duration::days(rng.below(20) as i64))
                            .to_string(),
                        form_of_discipline: 2 + rng.below(3) as i32,
                    }),
                    Agency::Discipline,
                )
            }
            Kind::Admonishment => (
                Payload::Admonishment(proto::Admonishment {
                    r#type: pick_enum(rng, 4),
                    date: d.clone(),
                    issuer: "纪委监委第三监督检查室".into(),
                }),
                if rng.chance(0.7) {
                    Agency::Discipline
                } else {
                    Agency::Organization
                },
            ),
            Kind::Clue => {
                let disposal = pick_enum(rng, 6);
                let concluded = disposal >= proto::ClueDisposal::Shelved as i32 || rng.chance(0.5);
                let (source, source_record) = match &petition {
                    Some(p) if rng.chance(0.6) => (proto::ClueSource::Petition as i32, p.clone()),
                    _ => (pick_enum(rng, 5), String::new()),
                };
                let source =
                    if source == proto::ClueSource::Petition as i32 && source_record.is_empty() {
                        proto::ClueSource::Inspection as i32
                    } else {
                        source
                    };
                (
                    Payload::Clue(proto::Clue {
                        source,
                        source_record,
                        disposal,
                        status: if concluded {
                            proto::ClueStatus::Concluded as i32
                        } else {
                            proto::ClueStatus::Open as i32
                        },
                        conclusion: if concluded {
                            "经核查，问题不属实，予以了结。".into()
                        } else {
                            String::new()
                        },
                        received_date: d.clone(),
                        reply_due_date: (date + time::Duration::days(15)).to_string(),
                    }),
                    Agency::Discipline,
                )
            }
            Kind::OrgHandling => (
                Payload::OrgHandling(proto::OrgHandling {
                    r#type: pick_enum(rng, 5),
                    date: d.clone(),
                }),
                Agency::Organization,
            ),
            Kind::PersonalMattersCheck => {
                let result = match rng.below(20) {
                    0 => proto::PersonalMattersResult::Concealed,
                    1..=3 => proto::PersonalMattersResult::UnderReported,
                    _ => proto::PersonalMattersResult::Consistent,
                } as i32;
                (
                    Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
                        report_year: date.year() - 1,
                        result,
                        check_date: d.clone(),
                        handling: if result == proto::PersonalMattersResult::Consistent as i32 {
                            String::new()
                        } else {
                            "批评教育，责令作出书面说明".into()
                        },
                    }),
                    Agency::Organization,
                )
            }
            Kind::Evaluation => {
                let grade = match rng.below(20) {
                    0 => proto::EvaluationGrade::BasicallyCompetent,
                    1..=5 => proto::EvaluationGrade::Excellent,
                    _ => proto::EvaluationGrade::Competent,
                } as i32;
                (
                    Payload::Evaluation(proto::Evaluation {
                        year: date.year(),
                        kind: pick_enum(rng, 2),
                        grade,
                    }),
                    Agency::Organization,
                )
            }
            Kind::AuditEngagement => {
                let start = date - time::Duration::days(3 * 365);
                engagement = Some(source_record_id.clone());
                (
                    Payload::AuditEngagement(proto::AuditEngagement {
                        r#type: pick_enum(rng, 2),
                        period_start: start.to_string(),
                        period_end: (date - time::Duration::days(30)).to_string(),
                        report_number: format!("审经责〔{}〕{}号", date.year(), 1 + rng.below(200)),
                        audited_post: person
                            .cadre
                            .posts
                            .first()
                            .map(|p| format!("{}{}", p.unit_name, p.title))
                            .unwrap_or_default(),
                        report_date: d.clone(),
                        audited_unit_credit_code: person
                            .cadre
                            .posts
                            .first()
                            .map(|p| p.unit_credit_code.clone())
                            .unwrap_or_default(),
                    }),
                    Agency::Audit,
                )
            }
            Kind::AuditFinding => {
                let eng_sid = engagement.clone().unwrap_or_default();
                let status = pick_enum(rng, 3);
                (
                    Payload::AuditFinding(proto::AuditFinding {
                        engagement_source_record_id: eng_sid,
                        problem_type: pick_enum(rng, 5),
                        amount_fen: (rng.below(5_000_000) as i64) * 100,
                        characterisation: "违反财经纪律，超范围列支费用".into(),
                        responsibility: pick_enum(rng, 3),
                        transfer: match rng.below(10) {
                            0 => proto::Transfer::Discipline,
                            1 => proto::Transfer::CompetentDept,
                            _ => proto::Transfer::None,
                        } as i32,
                        rectification: Some(proto::Rectification {
                            deadline: (date + time::Duration::days(180)).to_string(),
                            status,
                            report_ref: if status == proto::RectificationStatus::Done as i32 {
                                format!("整改报告〔{}〕{}号", date.year(), 1 + rng.below(100))
                            } else {
                                String::new()
                            },
                        }),
                        finding_date: d.clone(),
                        engagement: String::new(),
                    }),
                    Agency::Audit,
                )
            }
            Kind::InspectionFinding => {
                let post = person.cadre.posts.first().cloned().unwrap_or_default();
                let status = pick_enum(rng, 3);
                (
                    Payload::InspectionFinding(proto::InspectionFinding {
                        tour_round: format!("省委第{}轮巡视", 1 + rng.below(12)),
                        unit_name: post.unit_name,
                        unit_credit_code: post.unit_credit_code,
                        concerns_unit_head: post.unit_head && rng.chance(0.5),
                        category: pick_enum(rng, 5),
                        summary: "落实全面从严治党主体责任不到位，“三重一大”决策制度执行不严"
                            .into(),
                        transfer: match rng.below(10) {
                            0 => proto::Transfer::Discipline,
                            1 => proto::Transfer::Organization,
                            _ => proto::Transfer::None,
                        } as i32,
                        rectification: Some(proto::Rectification {
                            deadline: (date + time::Duration::days(90)).to_string(),
                            status,
                            report_ref: String::new(),
                        }),
                        finding_date: d.clone(),
                    }),
                    Agency::Inspection,
                )
            }
            Kind::ArchiveReview => {
                let discrepancies = rng.chance(0.1);
                (
                    Payload::ArchiveReview(proto::ArchiveReview {
                        opinion_request: format!("opinionRequests/{}", archive_request_id(person)),
                        review_date: d.clone(),
                        reviewer: name(rng),
                        result: if discrepancies {
                            proto::ArchiveReviewResult::Discrepancies
                        } else {
                            proto::ArchiveReviewResult::Consistent
                        } as i32,
                        note: if discrepancies {
                            "入党时间与档案记载不一致".into()
                        } else {
                            String::new()
                        },
                    }),
                    Agency::Organization,
                )
            }
            Kind::Petition => {
                let anonymous = rng.chance(0.4);
                petition = Some(format!("{cadre_name}/records/{id}"));
                let informant = (!anonymous).then(|| proto::Informant {
                    name: name(rng),
                    unit: format!("{}{}", rng.pick(DEPARTMENTS), "干部"),
                    contact: format!("1{:010}", rng.next_u64() % 10_000_000_000),
                    address: "某小区3栋2单元".into(),
                });
                (
                    Payload::Petition(proto::Petition {
                        received_date: d.clone(),
                        channel: pick_enum(rng, 4),
                        anonymous,
                        category: pick_enum(rng, 4),
                        specific: rng.chance(0.3),
                        status: pick_enum(rng, 6),
                        forwarded_to: String::new(),
                        summary: "反映其在工程项目招投标中为亲属谋利".into(),
                        informant,
                    }),
                    Agency::Petition,
                )
            }
        };
        let classification = if kind == Kind::Petition || kind == Kind::Clue {
            proto::Classification::WorkSecret
        } else {
            proto::Classification::Internal
        } as i32;
        out.push(Generated {
            id,
            owner: owner_agency,
            record: proto::Record {
                cadre: cadre_name.clone(),
                source_record_id,
                source_version: 1,
                classification,
                payload: Some(payload),
                ..Default::default()
            },
        });
    }
    out
}
