//! Records and payloads every test builds: a valid record of each kind, submissions, and the clients that send them.

use std::collections::HashMap;

use cadrex::proto::{self, record::Payload};
use tonic::Code;

use super::TestServer;

pub fn records_client(
    ch: tonic::transport::Channel,
) -> proto::record_service_client::RecordServiceClient<tonic::transport::Channel> {
    proto::record_service_client::RecordServiceClient::new(ch)
}

/// Registers a cadre at 360821 and returns it.
pub async fn cadre(server: &TestServer, seq: u32) -> proto::Cadre {
    server.register("360821", "记录对象", seq).await
}

pub fn engagement() -> Payload {
    Payload::AuditEngagement(proto::AuditEngagement {
        r#type: proto::AuditEngagementType::Departure as i32,
        period_start: "2021-01-01".into(),
        period_end: "2024-12-31".into(),
        report_number: "赣审经责〔2025〕12号".into(),
        audited_post: "局长".into(),
        report_date: "2025-06-30".into(),
        // The unit `new_cadre` heads.
        audited_unit_credit_code: super::credit_code("MA35X1234"),
    })
}

pub fn finding(engagement: &str, amount_fen: i64) -> Payload {
    Payload::AuditFinding(proto::AuditFinding {
        engagement_source_record_id: engagement.into(),
        problem_type: proto::ProblemType::IrregularFunds as i32,
        amount_fen,
        characterisation: "违规发放津补贴".into(),
        responsibility: proto::Responsibility::Direct as i32,
        transfer: proto::Transfer::Discipline as i32,
        rectification: Some(proto::Rectification {
            deadline: "2025-12-31".into(),
            status: proto::RectificationStatus::InProgress as i32,
            report_ref: String::new(),
        }),
        finding_date: "2025-06-30".into(),
        engagement: String::new(),
    })
}

pub fn record(cadre: &proto::Cadre, source: &str, version: i64, payload: Payload) -> proto::Record {
    proto::Record {
        cadre_id_number: cadre.id_number.clone(),
        source_record_id: source.into(),
        source_version: version,
        classification: proto::Classification::Internal as i32,
        payload: Some(payload),
        ..Default::default()
    }
}

pub fn submit(r: proto::Record) -> proto::SubmitRecordRequest {
    proto::SubmitRecordRequest {
        record: Some(r),
        request_id: String::new(),
        validate_only: false,
    }
}

/// One record of every kind about `c`, each submitted by its owner at 360821.
pub async fn one_of_each_kind(
    server: &TestServer,
    c: &proto::Cadre,
    canary: &str,
) -> HashMap<&'static str, proto::Record> {
    let mut out = HashMap::new();
    let mut put = |k: &'static str, r: proto::Record| {
        out.insert(k, r);
    };
    let s = |agency: &'static str, source: &'static str, p: Payload| (agency, source, p);
    let mut petition = None;
    for (agency, source, payload) in [
        s("audit", "AE-1", engagement()),
        s("audit", "AF-1", finding("AE-1", 1234500)),
        s("petition", "XF-1", petition_with_informant(canary)),
        s(
            "discipline",
            "SC-1",
            Payload::Sanction(proto::Sanction {
                track: proto::SanctionTrack::Party as i32,
                party_type: proto::PartySanctionType::Warning as i32,
                decision_number: "赣纪〔2025〕3号".into(),
                decision_date: "2025-04-01".into(),
                effective_date: "2025-04-01".into(),
                form_of_discipline: 2,
                ..Default::default()
            }),
        ),
        s(
            "discipline",
            "AD-1",
            Payload::Admonishment(proto::Admonishment {
                r#type: proto::AdmonishmentType::Admonition as i32,
                date: "2025-02-01".into(),
                issuer: "县纪委".into(),
            }),
        ),
        s(
            "organization",
            "OH-1",
            Payload::OrgHandling(proto::OrgHandling {
                r#type: proto::OrgHandlingType::Reassignment as i32,
                date: "2024-05-01".into(),
            }),
        ),
        s(
            "organization",
            "PM-1",
            Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
                report_year: 2024,
                result: proto::PersonalMattersResult::UnderReported as i32,
                check_date: "2025-01-10".into(),
                handling: "批评教育".into(),
            }),
        ),
        s(
            "organization",
            "EV-1",
            Payload::Evaluation(proto::Evaluation {
                year: 2024,
                kind: proto::EvaluationKind::AnnualReview as i32,
                grade: proto::EvaluationGrade::Competent as i32,
            }),
        ),
    ] {
        let stored = records_client(server.channel(agency, "360821").await)
            .submit_record(submit(record(c, source, 1, payload)))
            .await
            .unwrap_or_else(|e| panic!("{agency} {source}: {e:?}"))
            .into_inner()
            .record
            .unwrap();
        let kind = match stored.payload.as_ref().unwrap() {
            Payload::AuditEngagement(_) => "AUDIT_ENGAGEMENT",
            Payload::AuditFinding(_) => "AUDIT_FINDING",
            Payload::Petition(_) => {
                petition = Some(stored.name.clone());
                "PETITION"
            }
            Payload::Sanction(_) => "SANCTION",
            Payload::Admonishment(_) => "ADMONISHMENT",
            Payload::OrgHandling(_) => "ORG_HANDLING",
            Payload::PersonalMattersCheck(_) => "PERSONAL_MATTERS_CHECK",
            Payload::Evaluation(_) => "EVALUATION",
            other => panic!("unexpected {other:?}"),
        };
        put(kind, stored);
    }
    // A clue transferred from the petition bureau's report.
    let clue = records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(
            c,
            "XS-1",
            1,
            Payload::Clue(proto::Clue {
                source: proto::ClueSource::Petition as i32,
                source_record: petition.unwrap(),
                disposal: proto::ClueDisposal::PreliminaryCheck as i32,
                status: proto::ClueStatus::Open as i32,
                conclusion: String::new(),
                received_date: "2025-03-05".into(),
                reply_due_date: "2025-04-05".into(),
            }),
        )))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    put("CLUE", clue);
    let finding = records_client(server.channel("inspection", "360821").await)
        .submit_record(submit(record(c, "XC-1", 1, inspection_finding())))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    put("INSPECTION_FINDING", finding);
    // An archive review serves an opinion request of the reviewing body.
    let request = server
        .ask_opinion("360821", vec![c.name.clone()])
        .await
        .name;
    let review = records_client(server.channel("organization", "360821").await)
        .submit_record(submit(record(c, "DA-1", 1, archive_review(&request))))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    put("ARCHIVE_REVIEW", review);
    out
}

/// An inspection finding about the unit `new_cadre` heads, transferred to
/// discipline and not rectified.
pub fn inspection_finding() -> Payload {
    Payload::InspectionFinding(proto::InspectionFinding {
        tour_round: "十五届省委第三轮巡视".into(),
        unit_name: "某县财政局".into(),
        unit_credit_code: super::credit_code("MA35X1234"),
        concerns_unit_head: true,
        category: proto::InspectionCategory::Integrity as i32,
        summary: "落实中央八项规定精神不到位，违规发放津贴补贴".into(),
        transfer: proto::Transfer::Discipline as i32,
        rectification: Some(proto::Rectification {
            deadline: "2025-12-31".into(),
            status: proto::RectificationStatus::InProgress as i32,
            report_ref: String::new(),
        }),
        finding_date: "2025-06-20".into(),
    })
}

/// A consistent archive review for `request`.
pub fn archive_review(request: &str) -> Payload {
    Payload::ArchiveReview(proto::ArchiveReview {
        opinion_request: request.into(),
        review_date: "2025-06-25".into(),
        reviewer: "干部监督科 王某".into(),
        result: proto::ArchiveReviewResult::Consistent as i32,
        note: String::new(),
    })
}

/// A petition whose informant fields are `{canary}-name` etc.
pub fn petition_with_informant(canary: &str) -> Payload {
    Payload::Petition(proto::Petition {
        received_date: "2025-03-01".into(),
        channel: proto::PetitionChannel::Letter as i32,
        anonymous: false,
        category: proto::PetitionCategory::AccusationDiscipline as i32,
        specific: true,
        status: proto::PetitionStatus::Accepted as i32,
        forwarded_to: String::new(),
        summary: format!("{canary}-summary"),
        informant: Some(proto::Informant {
            name: format!("{canary}-name"),
            unit: format!("{canary}-unit"),
            contact: format!("{canary}-contact"),
            address: format!("{canary}-address"),
        }),
    })
}

/// A party warning decided on `decided`.
pub fn warning(decided: &str) -> Payload {
    Payload::Sanction(proto::Sanction {
        track: proto::SanctionTrack::Party as i32,
        party_type: proto::PartySanctionType::Warning as i32,
        decision_number: "赣纪〔2026〕9号".into(),
        decision_date: decided.into(),
        effective_date: decided.into(),
        form_of_discipline: 2,
        ..Default::default()
    })
}

/// A valid payload of each kind (by index) and the agency that owns it.
pub fn baseline_payload(kind: usize, petition: &str) -> (Payload, &'static str) {
    match kind % 10 {
        0 => (
            Payload::Sanction(proto::Sanction {
                track: proto::SanctionTrack::Party as i32,
                party_type: proto::PartySanctionType::Probation as i32,
                probation_years: 1,
                decision_number: "赣纪〔2025〕7号".into(),
                decision_date: "2025-04-01".into(),
                effective_date: "2025-04-02".into(),
                form_of_discipline: 3,
                ..Default::default()
            }),
            "discipline",
        ),
        1 => (
            Payload::Sanction(proto::Sanction {
                track: proto::SanctionTrack::State as i32,
                state_type: proto::StateSanctionType::Demerit as i32,
                decision_number: "赣监〔2025〕8号".into(),
                decision_date: "2025-05-01".into(),
                effective_date: "2025-05-02".into(),
                form_of_discipline: 2,
                ..Default::default()
            }),
            "discipline",
        ),
        2 => (
            Payload::Admonishment(proto::Admonishment {
                r#type: proto::AdmonishmentType::TalkReminder as i32,
                date: "2025-02-01".into(),
                issuer: "县委组织部".into(),
            }),
            "organization",
        ),
        3 => (
            Payload::Clue(proto::Clue {
                source: proto::ClueSource::Petition as i32,
                source_record: petition.into(),
                disposal: proto::ClueDisposal::TalkOrInquiry as i32,
                status: proto::ClueStatus::Open as i32,
                conclusion: String::new(),
                received_date: "2025-03-05".into(),
                reply_due_date: "2025-04-05".into(),
            }),
            "discipline",
        ),
        4 => (
            Payload::OrgHandling(proto::OrgHandling {
                r#type: proto::OrgHandlingType::RemovalFromPost as i32,
                date: "2024-05-01".into(),
            }),
            "organization",
        ),
        5 => (
            Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
                report_year: 2024,
                result: proto::PersonalMattersResult::Concealed as i32,
                check_date: "2025-01-10".into(),
                handling: "诫勉".into(),
            }),
            "organization",
        ),
        6 => (
            Payload::Evaluation(proto::Evaluation {
                year: 2024,
                kind: proto::EvaluationKind::DemocraticAssessment as i32,
                grade: proto::EvaluationGrade::Excellent as i32,
            }),
            "organization",
        ),
        7 => (engagement(), "audit"),
        8 => (finding("AE-1", 880_000), "audit"),
        _ => (
            Payload::Petition(proto::Petition {
                received_date: "2025-03-01".into(),
                channel: proto::PetitionChannel::Online as i32,
                anonymous: false,
                category: proto::PetitionCategory::AccusationDutyCrime as i32,
                specific: true,
                status: proto::PetitionStatus::Received as i32,
                forwarded_to: String::new(),
                summary: "反映问题".into(),
                informant: Some(proto::Informant {
                    name: "PROPS-CANARY-name".into(),
                    unit: "PROPS-CANARY-unit".into(),
                    contact: "PROPS-CANARY-contact".into(),
                    address: "PROPS-CANARY-address".into(),
                }),
            }),
            "petition",
        ),
    }
}

/// Every code the API documents for a refusal (DESIGN §1–§7).
pub const DOCUMENTED: [Code; 8] = [
    Code::InvalidArgument,
    Code::NotFound,
    Code::PermissionDenied,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::AlreadyExists,
    Code::Unauthenticated,
    Code::ResourceExhausted,
];
