//! Records through the real server: ownership, validation, idempotency and revisions, retraction, batches, the access matrix and informant protection.

use std::collections::HashMap;

use cadrex::proto::{self, record::Payload};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{Backend, TestServer, new_cadre, server_log, violated_fields};

both_backends!(
    submit_versions_and_retraction,
    ownership_jurisdiction_and_validation,
    batch_stores_good_items_and_logs_one_row,
    access_matrix_for_every_agency_kind_and_read_rpc,
    informant_never_reaches_other_agencies,
);

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

pub fn records_client(
    ch: tonic::transport::Channel,
) -> proto::record_service_client::RecordServiceClient<tonic::transport::Channel> {
    proto::record_service_client::RecordServiceClient::new(ch)
}

async fn rec(
    server: &TestServer,
    agency: &str,
) -> proto::record_service_client::RecordServiceClient<tonic::transport::Channel> {
    records_client(server.channel(agency, "360821").await)
}

/// Registers a cadre at 360821 and returns it.
pub async fn cadre(server: &TestServer, seq: u32) -> proto::Cadre {
    server
        .cadres("organization", "360821")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(new_cadre("记录对象", "360821", seq)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

pub fn engagement() -> Payload {
    Payload::AuditEngagement(proto::AuditEngagement {
        r#type: proto::AuditEngagementType::Departure as i32,
        period_start: "2021-01-01".into(),
        period_end: "2024-12-31".into(),
        report_number: "赣审经责〔2025〕12号".into(),
        audited_post: "局长".into(),
        report_date: "2025-06-30".into(),
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
        s(
            "petition",
            "XF-1",
            Payload::Petition(proto::Petition {
                received_date: "2025-03-01".into(),
                channel: proto::PetitionChannel::Phone as i32,
                anonymous: false,
                category: proto::PetitionCategory::AccusationDiscipline as i32,
                specific: true,
                status: proto::PetitionStatus::Accepted as i32,
                forwarded_to: String::new(),
                summary: format!("反映其违规收受礼金 {canary}-summary"),
                informant: Some(proto::Informant {
                    name: format!("{canary}-name"),
                    unit: format!("{canary}-unit"),
                    contact: format!("{canary}-contact"),
                    address: format!("{canary}-address"),
                }),
            }),
        ),
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
        let stored = rec(server, agency)
            .await
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
    let clue = rec(server, "discipline")
        .await
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
    out
}

async fn submit_versions_and_retraction(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 11).await;
    let mut audit = rec(&server, "audit").await;
    let engagement_name = audit
        .submit_record(submit(record(&c, "AE-9", 1, engagement())))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
        .name;
    let first = audit
        .submit_record(submit(record(&c, "AF-9", 2, finding("AE-9", 500))))
        .await
        .unwrap()
        .into_inner();
    let r1 = first.record.unwrap();
    assert!(!first.stale);
    assert_eq!(r1.state, proto::RecordState::Active as i32);
    assert!(r1.name.starts_with(&format!("{}/records/", c.name)));
    assert_eq!(r1.provenance.as_ref().unwrap().payload_sha256.len(), 64);
    let Some(Payload::AuditFinding(f)) = &r1.payload else {
        panic!()
    };
    assert_eq!(
        f.engagement, engagement_name,
        "the finding names its engagement record"
    );

    // Same version, same content: the stored record, nothing new.
    let again = audit
        .submit_record(submit(record(&c, "AF-9", 2, finding("AE-9", 500))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.record.as_ref().unwrap().revision, r1.revision);
    assert!(!again.stale);
    // Older version: success, stale, nothing changes.
    let old = audit
        .submit_record(submit(record(&c, "AF-9", 1, finding("AE-9", 400))))
        .await
        .unwrap()
        .into_inner();
    assert!(old.stale);
    assert_eq!(old.record.as_ref().unwrap().revision, r1.revision);
    // Same version, other content: ABORTED.
    let err = audit
        .submit_record(submit(record(&c, "AF-9", 2, finding("AE-9", 999))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(reason(&err), "VERSION_CONFLICT");
    // Newer version: a new revision.
    let v3 = audit
        .submit_record(submit(record(&c, "AF-9", 3, finding("AE-9", 600))))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert!(v3.revision > r1.revision);
    assert_eq!(v3.name, r1.name);

    // request_id replays the original response.
    let mut req = submit(record(&c, "AF-10", 1, finding("AE-9", 700)));
    req.request_id = "2f0c9a4e-0000-4000-8000-000000000001".into();
    let a = audit.submit_record(req.clone()).await.unwrap().into_inner();
    let b = audit.submit_record(req).await.unwrap().into_inner();
    assert_eq!(a, b);

    // Retraction: by the owner, with a reason; a new revision.
    let err = rec(&server, "discipline")
        .await
        .retract_record(proto::RetractRecordRequest {
            name: v3.name.clone(),
            reason: "误报".into(),
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let gone = audit
        .retract_record(proto::RetractRecordRequest {
            name: v3.name.clone(),
            reason: "数据错误".into(),
            etag: v3.etag.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.state, proto::RecordState::Retracted as i32);
    assert!(gone.revision > v3.revision);
    assert_eq!(gone.retraction_reason, "数据错误");
    // The owner still sees it; others see a tombstone with no content.
    let seen = rec(&server, "discipline")
        .await
        .get_record(proto::GetRecordRequest {
            name: v3.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.view, proto::RecordView::Tombstone as i32);
    assert!(seen.payload.is_none());
    assert!(seen.retraction_reason.is_empty());
    // A newer version reactivates it.
    let back = audit
        .submit_record(submit(record(&c, "AF-9", 4, finding("AE-9", 650))))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(back.state, proto::RecordState::Active as i32);
    assert!(back.revision > gone.revision);
}

async fn ownership_jurisdiction_and_validation(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 12).await;
    rec(&server, "audit")
        .await
        .submit_record(submit(record(&c, "AE-1", 1, engagement())))
        .await
        .unwrap();

    let err = rec(&server, "discipline")
        .await
        .submit_record(submit(record(&c, "AF-1", 1, finding("AE-1", 1))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "KIND_NOT_OWNED");

    // Unknown cadre and out-of-jurisdiction cadre: the same answer.
    let mut ghost = record(&c, "AF-2", 1, finding("AE-1", 1));
    ghost.cadre_id_number = crate::common::id_number("360821", "19800101", 999);
    let unknown = rec(&server, "audit")
        .await
        .submit_record(submit(ghost))
        .await
        .unwrap_err();
    let elsewhere = records_client(server.channel("audit", "360802").await)
        .submit_record(submit(record(&c, "AE-2", 1, engagement())))
        .await
        .unwrap_err();
    assert_eq!(reason(&unknown), "CADRE_NOT_ACCESSIBLE");
    assert_eq!(unknown.details(), elsewhere.details());

    let mut secret = record(&c, "AF-3", 1, finding("AE-1", 1));
    secret.classification = proto::Classification::Confidential as i32;
    let err = rec(&server, "audit")
        .await
        .submit_record(submit(secret))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "CLASSIFIED_NOT_ACCEPTED");

    let mut bad = record(&c, "AF-4", 1, finding("AE-1", -1));
    bad.classification = 0;
    let err = rec(&server, "audit")
        .await
        .submit_record(submit(bad))
        .await
        .unwrap_err();
    let fields = violated_fields(&err);
    assert!(
        fields.contains(&"record.audit_finding.amount_fen".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"record.classification".to_string()),
        "{fields:?}"
    );

    let err = rec(&server, "audit")
        .await
        .submit_record(submit(record(&c, "AF-5", 1, finding("NO-SUCH", 1))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Nothing of the refused submissions was stored.
    let listed = rec(&server, "discipline")
        .await
        .list_records(proto::ListRecordsRequest {
            parent: c.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.records.len(), 1, "{listed:#?}");
}

async fn batch_stores_good_items_and_logs_one_row(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 13).await;
    let mut audit = rec(&server, "audit").await;
    audit
        .submit_record(submit(record(&c, "AE-1", 1, engagement())))
        .await
        .unwrap();
    let requests = vec![
        submit(record(&c, "AF-1", 1, finding("AE-1", 100))),
        submit(record(&c, "AF-2", 1, finding("AE-1", -100))),
        submit(record(&c, "AF-3", 1, finding("AE-1", 300))),
        submit(record(&c, "AF-4", 1, finding("AE-404", 300))),
        submit(record(&c, "AF-1", 1, finding("AE-1", 100))),
    ];
    let resp = audit
        .batch_submit_records(proto::BatchSubmitRecordsRequest {
            requests,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let ok: Vec<bool> = resp.results.iter().map(|r| r.error.is_none()).collect();
    assert_eq!(ok, [true, false, true, false, true]);
    assert_eq!(
        resp.results[1].error.as_ref().unwrap().field_violations[0].field,
        "record.audit_finding.amount_fen"
    );
    assert_eq!(
        resp.results[0].record.as_ref().unwrap().name,
        resp.results[4].record.as_ref().unwrap().name
    );
    let listed = audit
        .list_records(proto::ListRecordsRequest {
            parent: c.name.clone(),
            filter: r#"kind = "AUDIT_FINDING""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.records.len(), 2);
    let events = server
        .access_log("discipline", "360821")
        .await
        .list_access_events(proto::ListAccessEventsRequest {
            method: "/cadrex.v1.RecordService/BatchSubmitRecords".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    assert_eq!(events.len(), 1, "one row for the batch");
    let names: Vec<&String> = resp
        .results
        .iter()
        .filter_map(|r| r.record.as_ref().map(|r| &r.name))
        .collect();
    for n in names {
        assert!(events[0].resources.contains(n), "the row names {n}");
    }
}

/// What each agency sees of each kind (DESIGN §2): F, C or N.
fn expected_view(agency: &str, kind: &str) -> Option<proto::RecordView> {
    use proto::RecordView::{Full as F, Summary as C};
    let v = match (agency, kind) {
        ("discipline", "EVALUATION") => C,
        ("discipline", _) => F,
        ("organization", "CLUE" | "PETITION") => C,
        ("organization", _) => F,
        ("audit", "AUDIT_ENGAGEMENT" | "AUDIT_FINDING") => F,
        ("audit", "SANCTION") => C,
        ("petition", "PETITION") => F,
        // The clue was transferred by this petition bureau: its own transfer.
        ("petition", "CLUE") => C,
        _ => return None,
    };
    Some(v)
}

async fn access_matrix_for_every_agency_kind_and_read_rpc(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 14).await;
    let all = one_of_each_kind(&server, &c, "matrix").await;
    assert_eq!(all.len(), 9);
    for agency in ["discipline", "organization", "audit", "petition"] {
        let mut client = rec(&server, agency).await;
        let by_cadre: HashMap<String, proto::Record> = client
            .list_records(proto::ListRecordsRequest {
                parent: c.name.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .records
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let across: HashMap<String, proto::Record> = client
            .list_records(proto::ListRecordsRequest {
                parent: "cadres/-".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .records
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        for (kind, stored) in &all {
            let expected = expected_view(agency, kind);
            let got = client
                .get_record(proto::GetRecordRequest {
                    name: stored.name.clone(),
                })
                .await;
            for (rpc, seen) in [
                ("GetRecord", got.as_ref().ok().map(|r| r.get_ref().clone())),
                ("ListRecords(cadre)", by_cadre.get(&stored.name).cloned()),
                ("ListRecords(-)", across.get(&stored.name).cloned()),
            ] {
                let view = seen
                    .as_ref()
                    .map(|r| proto::RecordView::try_from(r.view).unwrap());
                assert_eq!(view, expected, "{agency} × {kind} × {rpc}");
                if let Some(r) = &seen {
                    let summary = matches!(
                        r.payload,
                        Some(
                            Payload::SanctionSummary(_)
                                | Payload::ClueSummary(_)
                                | Payload::EvaluationSummary(_)
                                | Payload::PetitionSummary(_)
                        )
                    );
                    assert_eq!(
                        summary,
                        expected == Some(proto::RecordView::Summary),
                        "{agency} × {kind} × {rpc}: payload type"
                    );
                }
            }
            if expected.is_none() {
                assert_eq!(
                    got.unwrap_err().code(),
                    Code::NotFound,
                    "{agency} × {kind}: no view, no existence"
                );
            }
        }
    }
}

async fn informant_never_reaches_other_agencies(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 15).await;
    let canary = format!("CANARY{}", uuid::Uuid::new_v4().simple());
    let all = one_of_each_kind(&server, &c, &canary).await;
    let petition = &all["PETITION"];
    for agency in ["organization", "audit"] {
        let mut client = rec(&server, agency).await;
        let mut responses: Vec<Vec<u8>> = Vec::new();
        for stored in all.values() {
            match client
                .get_record(proto::GetRecordRequest {
                    name: stored.name.clone(),
                })
                .await
            {
                Ok(r) => responses.push(r.into_inner().encode_to_vec()),
                Err(e) => responses.push(format!("{e:?}").into_bytes()),
            }
        }
        for parent in [c.name.clone(), "cadres/-".to_string()] {
            let r = client
                .list_records(proto::ListRecordsRequest {
                    parent,
                    ..Default::default()
                })
                .await
                .unwrap();
            responses.push(r.into_inner().encode_to_vec());
        }
        let events = server
            .access_log(agency, "360821")
            .await
            .list_access_events(proto::ListAccessEventsRequest::default())
            .await
            .unwrap()
            .into_inner();
        responses.push(events.encode_to_vec());
        for bytes in &responses {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{agency} received informant data"
            );
        }
    }
    // Organization sees the summary only: no content either.
    let org = rec(&server, "organization")
        .await
        .get_record(proto::GetRecordRequest {
            name: petition.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(org.payload, Some(Payload::PetitionSummary(_))));
    // Discipline and petition read the informant.
    for agency in ["discipline", "petition"] {
        let r = rec(&server, agency)
            .await
            .get_record(proto::GetRecordRequest {
                name: petition.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let Some(Payload::Petition(p)) = r.payload else {
            panic!("{agency}")
        };
        assert_eq!(
            p.informant.unwrap().name,
            format!("{canary}-name"),
            "{agency}"
        );
    }
    // Nothing in the server's log output, and nothing in clear in the store.
    assert!(
        !server_log().text().contains(&canary),
        "informant data in the server log"
    );
    let stored = crate::common::raw_informant_bytes(&server.store_url).await;
    assert!(!stored.is_empty());
    // The petition's summary is content, not informant data, and is stored as is.
    for field in ["name", "unit", "contact", "address"] {
        let planted = format!("{canary}-{field}");
        assert!(
            !stored
                .windows(planted.len())
                .any(|w| w == planted.as_bytes()),
            "informant {field} stored in clear"
        );
    }
}
