//! Records through the real server: ownership, validation, idempotency and revisions, retraction, batches, the access matrix and informant protection.

use std::collections::HashMap;

use cadrex::domain::records::Kind;
use cadrex::proto::{self, record::Payload};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::matrix::{agencies, expected_view};
use crate::common::{
    Backend, TestServer, new_cadre, own_access_events, server_log, violated_fields,
};
use crate::common::{
    cadre, engagement, finding, one_of_each_kind, petition_with_informant, record, records_client,
    submit,
};

both_backends!(
    submit_versions_and_retraction,
    ownership_jurisdiction_and_validation,
    batch_stores_good_items_and_logs_one_row,
    access_matrix_for_every_agency_kind_and_read_rpc,
    informant_never_reaches_other_agencies,
    replay_cache_holds_no_informant_and_rerenders,
    petition_reads_informants_filed_within_its_jurisdiction,
    views_that_omit_fields_carry_no_digest,
    record_naming_two_cadres_is_refused,
    validate_only_checks_everything_and_stores_nothing,
    a_finding_before_its_engagement_is_a_failed_precondition,
    hidden_records_never_shape_a_page,
);

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

async fn rec(
    server: &TestServer,
    agency: &str,
) -> proto::record_service_client::RecordServiceClient<tonic::transport::Channel> {
    records_client(server.channel(agency, "360821").await)
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
    // DESIGN §4: the engagement may arrive later, so a precondition, not bad input.
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "ENGAGEMENT_NOT_FOUND");

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
            validate_only: false,
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

async fn access_matrix_for_every_agency_kind_and_read_rpc(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 14).await;
    let all = one_of_each_kind(&server, &c, "matrix").await;
    assert_eq!(all.len(), Kind::ALL.len());
    let Some(Payload::Clue(clue)) = &all["CLUE"].payload else {
        panic!("the fixture's clue: {:?}", all["CLUE"])
    };
    let transferred_by = &all
        .values()
        .find(|r| r.name == clue.source_record)
        .expect("the clue's source is one of the fixture's records")
        .owner_system;
    for agency in agencies() {
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
            // A clue is the caller's own transfer when its source record's owner is of
            // the caller's agency (every system here is at 360821).
            let own_transfer = *kind == "CLUE"
                && transferred_by.starts_with(&format!("urn:cadrex:system:{agency}:360821:"));
            let expected = expected_view(agency, kind, own_transfer);
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
                                | Payload::AdmonishmentSummary(_)
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

fn informant_of(r: &proto::Record) -> Option<proto::Informant> {
    match &r.payload {
        Some(Payload::Petition(p)) => p.informant.clone(),
        other => panic!("{} is not a full petition: {other:?}", r.name),
    }
}

/// The replay cache of `request_id` keeps which records a submission wrote,
/// not what they say: no informant byte is stored in it, and a replay reads
/// the record again, so it answers in the caller's current view (here: after
/// a retraction, the record as retracted).
async fn replay_cache_holds_no_informant_and_rerenders(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 16).await;
    let mut client = rec(&server, "petition").await;
    let single_canary = format!("RPLSINGLE{}", uuid::Uuid::new_v4().simple());
    let batch_canary = format!("RPLBATCH{}", uuid::Uuid::new_v4().simple());
    let single = proto::SubmitRecordRequest {
        record: Some(record(
            &c,
            "XF-R-1",
            1,
            petition_with_informant(&single_canary),
        )),
        request_id: "replay-single-1".into(),
        validate_only: false,
    };
    let first = client
        .submit_record(single.clone())
        .await
        .unwrap()
        .into_inner();
    let batch = proto::BatchSubmitRecordsRequest {
        requests: vec![
            submit(record(
                &c,
                "XF-R-2",
                1,
                petition_with_informant(&batch_canary),
            )),
            // Refused (no cadre named): its error is part of the outcome.
            submit(proto::Record {
                cadre_id_number: String::new(),
                ..record(&c, "XF-R-3", 1, petition_with_informant(&batch_canary))
            }),
        ],
        request_id: "replay-batch-1".into(),
        validate_only: false,
    };
    let first_batch = client
        .batch_submit_records(batch.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(first_batch.results[0].error.is_none());
    assert!(first_batch.results[1].error.is_some());

    // Nothing of either informant in the replay cache, in any form.
    let informants: Vec<String> = [&single_canary, &batch_canary]
        .iter()
        .flat_map(|c| ["name", "unit", "contact", "address"].map(|f| format!("{c}-{f}")))
        .collect();
    let hits = crate::common::plaintext_cells(&server.store_url, &informants).await;
    assert!(hits.is_empty(), "informant stored in clear: {hits:?}");

    // Same id, same request: the same outcome.
    let again = client
        .submit_record(single.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first, "a replay answers as the original call");
    let again = client
        .batch_submit_records(batch.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again, first_batch,
        "a batch replay answers as the original call"
    );
    // Same id, another request: refused as before.
    let mut other = single.clone();
    other.record.as_mut().unwrap().source_record_id = "XF-R-9".into();
    let err = client.submit_record(other).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(reason(&err), "REQUEST_ID_REUSED");

    // A replay renders the record as it is now.
    let name = first.record.as_ref().unwrap().name.clone();
    client
        .retract_record(proto::RetractRecordRequest {
            name: name.clone(),
            reason: "重复登记".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    let replayed = client.submit_record(single).await.unwrap().into_inner();
    let r = replayed.record.unwrap();
    assert_eq!(r.name, name);
    assert_eq!(r.state, proto::RecordState::Retracted as i32);
    assert_eq!(
        informant_of(&r).unwrap().name,
        format!("{single_canary}-name"),
        "the owner still reads its informant"
    );
}

/// 检举人保护 by jurisdiction: a county petition bureau does not read the
/// informant of a petition filed with the province; the province reads the
/// county's. Lists and the feed decide per owner, not once per kind.
async fn petition_reads_informants_filed_within_its_jurisdiction(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 17).await;
    let province_canary = format!("PROV{}", uuid::Uuid::new_v4().simple());
    let county_canary = format!("CNTY{}", uuid::Uuid::new_v4().simple());
    let mut province = records_client(server.channel("petition", "360000").await);
    let mut county = rec(&server, "petition").await;
    let filed_province = province
        .submit_record(submit(record(
            &c,
            "XF-P-1",
            1,
            petition_with_informant(&province_canary),
        )))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let filed_county = county
        .submit_record(submit(record(
            &c,
            "XF-C-1",
            1,
            petition_with_informant(&county_canary),
        )))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();

    // GetRecord.
    let get = |name: &str| proto::GetRecordRequest { name: name.into() };
    let seen = county
        .get_record(get(&filed_province.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.view, proto::RecordView::Full as i32);
    assert_eq!(
        informant_of(&seen),
        None,
        "county reads a province informant"
    );
    let seen = province
        .get_record(get(&filed_county.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        informant_of(&seen).unwrap().name,
        format!("{county_canary}-name")
    );
    for division in ["360821", "360000"] {
        let mut d = records_client(server.channel("discipline", division).await);
        for (filed, canary) in [
            (&filed_province, &province_canary),
            (&filed_county, &county_canary),
        ] {
            let r = d.get_record(get(&filed.name)).await.unwrap().into_inner();
            assert_eq!(informant_of(&r).unwrap().name, format!("{canary}-name"));
        }
    }

    // A page holding both: each row decided by its own owner.
    for order in 0..2 {
        let listed = county
            .list_records(proto::ListRecordsRequest {
                parent: c.name.clone(),
                filter: r#"kind = "PETITION""#.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.records.len(), 2, "pass {order}");
        for r in &listed.records {
            let expect = (r.name == filed_county.name).then(|| format!("{county_canary}-name"));
            assert_eq!(informant_of(r).map(|i| i.name), expect, "{}", r.name);
        }
    }
    let feed = proto::change_feed_service_client::ChangeFeedServiceClient::new(
        server.channel("petition", "360821").await,
    )
    .list_changes(proto::ListChangesRequest::default())
    .await
    .unwrap()
    .into_inner();
    let mut seen = 0;
    for e in &feed.events {
        if let Some(proto::change_event::View::Record(r)) = &e.view {
            seen += 1;
            let expect = (r.name == filed_county.name).then(|| format!("{county_canary}-name"));
            assert_eq!(informant_of(r).map(|i| i.name), expect, "feed {}", r.name);
        }
    }
    assert_eq!(seen, 2);
    let everything = [
        county
            .list_records(proto::ListRecordsRequest {
                parent: "cadres/-".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec(),
        feed.encode_to_vec(),
    ];
    for bytes in everything {
        let informant = format!("{province_canary}-name");
        assert!(
            !bytes
                .windows(informant.len())
                .any(|w| w == informant.as_bytes()),
            "a province informant reached the county bureau"
        );
    }
}

/// A view that leaves fields out carries no digest over them: summaries and a
/// full view without the informant have no `payload_sha256`, which would let
/// a guessed informant (or any hidden field) be confirmed offline.
async fn views_that_omit_fields_carry_no_digest(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 18).await;
    let canary = format!("DIGEST{}", uuid::Uuid::new_v4().simple());
    let all = one_of_each_kind(&server, &c, &canary).await;
    let digest = |r: &proto::Record| {
        r.provenance
            .as_ref()
            .map(|p| p.payload_sha256.clone())
            .unwrap_or_default()
    };
    let mut summaries = 0;
    for agency in agencies() {
        let mut client = rec(&server, agency).await;
        let mut seen: Vec<proto::Record> = Vec::new();
        for stored in all.values() {
            if let Ok(r) = client
                .get_record(proto::GetRecordRequest {
                    name: stored.name.clone(),
                })
                .await
            {
                seen.push(r.into_inner());
            }
        }
        seen.extend(
            client
                .list_records(proto::ListRecordsRequest {
                    parent: "cadres/-".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .records,
        );
        for r in &seen {
            let full_with_everything = r.view == proto::RecordView::Full as i32
                && match &r.payload {
                    Some(Payload::Petition(p)) => p.informant.is_some(),
                    _ => true,
                };
            if full_with_everything {
                assert_eq!(digest(r).len(), 64, "{agency}: {} full view", r.name);
            } else {
                summaries += 1;
                assert_eq!(digest(r), "", "{agency}: {} view {}", r.name, r.view);
            }
        }
    }
    // organization: clue and petition; audit: sanction (and its own clue
    // transfer when any); discipline: evaluation — each by get and by list.
    assert!(summaries >= 8, "{summaries} summaries seen");
    // A full petition view without the informant (a county bureau reading a
    // province petition) carries none either, with an informant or — were
    // the digest there only when no informant is held back, it would tell
    // which petitions have one — without.
    let Payload::Petition(mut anonymous) = petition_with_informant(&canary) else {
        unreachable!()
    };
    anonymous.anonymous = true;
    anonymous.informant = None;
    for (source, payload) in [
        ("XF-D-1", petition_with_informant(&canary)),
        ("XF-D-2", Payload::Petition(anonymous)),
    ] {
        let filed = records_client(server.channel("petition", "360000").await)
            .submit_record(submit(record(&c, source, 1, payload)))
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap();
        assert_eq!(
            digest(&filed).len(),
            64,
            "{source}: the owner's view keeps it"
        );
        let r = rec(&server, "petition")
            .await
            .get_record(proto::GetRecordRequest {
                name: filed.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.view, proto::RecordView::Full as i32, "{source}");
        assert_eq!(informant_of(&r), None, "{source}");
        assert_eq!(
            digest(&r),
            "",
            "{source}: a county bureau reading a province petition"
        );
    }
}

/// A record naming its cadre by resource name and by a 公民身份号码 must name
/// one cadre: another cadre's number, or a number of no cadre, is refused
/// with a violation on `record.cadre_id_number`, alone and in a batch; the
/// matching number in lowercase is the same number.
async fn record_naming_two_cadres_is_refused(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 19).await;
    let b = cadre(&server, 20).await;
    let unregistered = crate::common::id_number("360821", "19800101", 777);
    let mut client = rec(&server, "discipline").await;
    let sanction = || {
        Payload::Admonishment(proto::Admonishment {
            r#type: proto::AdmonishmentType::Admonition as i32,
            date: "2025-02-01".into(),
            issuer: "县纪委".into(),
        })
    };
    let naming = |number: &str, source: &str| proto::Record {
        cadre: a.name.clone(),
        cadre_id_number: number.into(),
        ..record(&a, source, 1, sanction())
    };
    for (i, number) in [b.id_number.clone(), unregistered.clone()]
        .iter()
        .enumerate()
    {
        let err = client
            .submit_record(submit(naming(number, &format!("AD-X-{i}"))))
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&err),
            ["record.cadre_id_number"],
            "{number}"
        );
    }
    let batch = client
        .batch_submit_records(proto::BatchSubmitRecordsRequest {
            requests: vec![
                submit(naming(&b.id_number, "AD-X-3")),
                submit(naming(&a.id_number.to_ascii_lowercase(), "AD-X-4")),
            ],
            request_id: String::new(),
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    let fields: Vec<String> = batch.results[0]
        .error
        .as_ref()
        .expect("refused item")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["record.cadre_id_number"]);
    let stored = batch.results[1].record.as_ref().expect("stored item");
    assert_eq!(stored.cadre, a.name);
    // Nothing was filed under either cadre by the refused items.
    let listed = client
        .list_records(proto::ListRecordsRequest {
            parent: b.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.records.is_empty());

    // A cadre outside the caller's jurisdiction is not accessible whatever
    // number comes with it: the mismatch answer must not confirm a number.
    let outside = server
        .cadres("organization", "360802")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(crate::common::new_cadre("外县干部", "360802", 21)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    for number in [outside.id_number.clone(), b.id_number.clone()] {
        let err = client
            .submit_record(submit(proto::Record {
                cadre: outside.name.clone(),
                cadre_id_number: number,
                ..record(&a, "AD-X-5", 1, sanction())
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert_eq!(reason(&err), "CADRE_NOT_ACCESSIBLE");
    }
}

/// AIP-163 `validate_only` (DESIGN §7): every check runs and answers as a
/// real call would, nothing is stored (no record, no feed event, no cadre),
/// the request_id cache is neither read nor written, and the call's log row
/// says VALIDATED.
async fn validate_only_checks_everything_and_stores_nothing(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 51).await;
    let mut audit = rec(&server, "audit").await;
    let feed_head = || async {
        proto::change_feed_service_client::ChangeFeedServiceClient::new(
            server.channel("discipline", "360821").await,
        )
        .list_changes(proto::ListChangesRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .len()
    };
    let events_before = feed_head().await;

    let mut dry = submit(record(&c, "AE-1", 1, engagement()));
    dry.validate_only = true;
    dry.request_id = "dry-run-1".into();
    let answer = audit.submit_record(dry.clone()).await.unwrap().into_inner();
    assert!(answer.record.is_none(), "nothing was written");
    let listed = audit
        .list_records(proto::ListRecordsRequest {
            parent: c.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.records.is_empty());
    assert_eq!(feed_head().await, events_before, "no change in the feed");

    // Bad input is refused exactly as for a real submission.
    let mut bad = dry.clone();
    if let Some(Payload::AuditEngagement(e)) = bad.record.as_mut().and_then(|r| r.payload.as_mut())
    {
        e.period_end = "2020-01-01".into();
    }
    let err = audit.submit_record(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // No existence oracle: a cadre registered in another county and one never
    // registered, named by id number, answer alike.
    let elsewhere = server
        .cadres("organization", "360802")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(new_cadre("外县", "360802", 54)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let nobody = new_cadre("无此人", "360821", 55);
    let mut answers = Vec::new();
    for id_number in [&elsewhere.id_number, &nobody.id_number] {
        let mut probe = dry.clone();
        probe.request_id.clear();
        if let Some(r) = probe.record.as_mut() {
            r.cadre_id_number = id_number.clone();
            r.source_record_id = "AE-PROBE".into();
        }
        let err = audit.submit_record(probe).await.unwrap_err();
        answers.push((err.code(), reason(&err), err.message().to_string()));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, Code::PermissionDenied);

    // The same request id on a real call is a first call, not a replay of
    // the validation nor a reuse with other content.
    let mut real = dry.clone();
    real.validate_only = false;
    let stored = audit.submit_record(real).await.unwrap().into_inner();
    assert!(stored.record.is_some());

    // A batch: each item answers with its refusal or with nothing.
    let batch = audit
        .batch_submit_records(proto::BatchSubmitRecordsRequest {
            requests: vec![
                submit(record(&c, "AF-1", 1, finding("AE-1", 100))),
                submit(record(&c, "AF-2", 1, finding("AE-1", -1))),
                submit(record(&c, "AF-3", 1, finding("AE-404", 100))),
            ],
            request_id: "dry-batch".into(),
            validate_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<i32> = batch
        .results
        .iter()
        .map(|r| r.error.as_ref().map_or(0, |e| e.code))
        .collect();
    assert_eq!(
        codes,
        [
            0,
            Code::InvalidArgument as i32,
            Code::FailedPrecondition as i32
        ]
    );
    assert!(batch.results.iter().all(|r| r.record.is_none()));
    let findings = audit
        .list_records(proto::ListRecordsRequest {
            parent: c.name.clone(),
            filter: r#"kind = "AUDIT_FINDING""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(findings.records.is_empty());

    // Cadres: a new one answers as it would be registered, with no name, and
    // is not registered.
    let mut org = server.cadres("organization", "360821").await;
    let newcomer = new_cadre("试报", "360821", 52);
    let dry_cadres = org
        .batch_create_cadres(proto::BatchCreateCadresRequest {
            requests: vec![proto::CreateCadreRequest {
                cadre: Some(newcomer.clone()),
                request_id: String::new(),
            }],
            request_id: "dry-cadres".into(),
            validate_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    let item = &dry_cadres.results[0];
    assert!(item.error.is_none() && item.created);
    assert!(item.cadre.as_ref().unwrap().name.is_empty());
    let err = org
        .lookup_cadre(proto::LookupCadreRequest {
            id_number: newcomer.id_number.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "not registered");

    // The log says VALIDATED for the checked calls, ALLOW for the real one.
    let rows = own_access_events(server.channel("audit", "360821").await).await;
    let decisions: Vec<(i32, i32)> = rows
        .iter()
        .filter(|e| e.method.contains("RecordService/") && e.method.contains("Submit"))
        .map(|e| (e.decision, e.status_code))
        .collect();
    assert_eq!(
        decisions,
        [
            (proto::Decision::Validated as i32, 0),
            // Allowed by policy, refused by validation: as for a real call.
            (proto::Decision::Allow as i32, Code::InvalidArgument as i32),
            (proto::Decision::Deny as i32, Code::PermissionDenied as i32),
            (proto::Decision::Deny as i32, Code::PermissionDenied as i32),
            (proto::Decision::Allow as i32, 0),
            (proto::Decision::Validated as i32, 0),
        ],
        "{rows:#?}"
    );
}

/// DESIGN §4: a finding whose engagement is not (yet) in the exchange is
/// FAILED_PRECONDITION / ENGAGEMENT_NOT_FOUND — it may arrive later — and
/// the same finding goes in once its engagement has.
async fn a_finding_before_its_engagement_is_a_failed_precondition(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 53).await;
    let mut audit = rec(&server, "audit").await;
    let early = submit(record(&c, "AF-1", 1, finding("AE-9", 100)));
    let err = audit.submit_record(early.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "ENGAGEMENT_NOT_FOUND");
    assert!(
        err.message()
            .starts_with("record.audit_finding.engagement_source_record_id"),
        "{}",
        err.message()
    );
    audit
        .submit_record(submit(record(&c, "AE-9", 1, engagement())))
        .await
        .unwrap();
    audit.submit_record(early).await.unwrap();
}

/// A record the caller may not see (a clue not transferred from it) is simply
/// absent from a listing: it neither ends a page nor makes a page token
/// appear, so the token cannot tell its id or that it exists.
async fn hidden_records_never_shape_a_page(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let investigated = cadre(&server, 91).await;
    let clean = cadre(&server, 92).await;
    for i in 0..3 {
        rec(&server, "discipline")
            .await
            .submit_record(submit(record(
                &investigated,
                &format!("XS-HIDDEN-{i}"),
                1,
                Payload::Clue(proto::Clue {
                    source: proto::ClueSource::Other as i32,
                    disposal: proto::ClueDisposal::Registered as i32,
                    status: proto::ClueStatus::Open as i32,
                    received_date: "2026-11-01".into(),
                    ..Default::default()
                }),
            )))
            .await
            .unwrap();
    }
    let mut audit = rec(&server, "audit").await;
    let list = |parent: &str, filter: &str, page_token: &str| proto::ListRecordsRequest {
        parent: parent.into(),
        filter: filter.into(),
        page_size: 1,
        page_token: page_token.into(),
    };
    for c in [&investigated, &clean] {
        let page = audit
            .list_records(list(&c.name, "kind = \"CLUE\"", ""))
            .await
            .unwrap()
            .into_inner();
        assert!(
            page.records.is_empty() && page.next_page_token.is_empty(),
            "{}: {page:?}",
            c.display_name
        );
    }
    // Audit's own engagements after the hidden clues, one per page: the
    // pages hold them alone and the last page has no token.
    for (c, n) in [
        (&investigated, "AE-A"),
        (&investigated, "AE-B"),
        (&clean, "AE-A"),
    ] {
        audit
            .submit_record(submit(record(
                c,
                &format!("{n}-{}", c.name),
                1,
                engagement(),
            )))
            .await
            .unwrap();
    }
    for (c, expected) in [(&investigated, 2), (&clean, 1)] {
        let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = audit
                .list_records(list(&c.name, "", &token))
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert_eq!(page.records.len(), 1, "{page:?}");
            seen.extend(page.records.into_iter().map(|r| r.kind));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(pages, expected, "{}", c.display_name);
        assert!(
            seen.iter()
                .all(|k| *k == proto::RecordKind::AuditEngagement as i32),
            "{seen:?}"
        );
    }
}
