//! Pre-appointment vetting through the real server: requests, drafts, replies, withdrawal, overdue, staleness, purpose of use and the dossier.

use cadrex::proto::{self, change_event, record::Payload};
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{Backend, TestServer, exec_sql, violated_fields};
use crate::records::{cadre, engagement, finding, record, records_client, submit};

both_backends!(
    organization_asks_discipline_replies,
    withdrawal_overdue_and_staleness,
    purpose_of_use_and_dossier_views,
    nul_in_free_text_is_refused_on_both_backends,
);

type Opinions = proto::opinion_service_client::OpinionServiceClient<tonic::transport::Channel>;
type Dossiers = proto::dossier_service_client::DossierServiceClient<tonic::transport::Channel>;

async fn opinions(server: &TestServer, agency: &str) -> Opinions {
    Opinions::new(server.channel(agency, "360821").await)
}

async fn dossiers(server: &TestServer, agency: &str) -> Dossiers {
    Dossiers::new(server.channel(agency, "360821").await)
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// A party warning decided on `decided` about `c`.
fn warning(decided: &str) -> Payload {
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

async fn ask(server: &TestServer, cadres: Vec<String>) -> proto::OpinionRequest {
    opinions(server, "organization")
        .await
        .create_opinion_request(proto::CreateOpinionRequestRequest {
            cadres,
            purpose: proto::OpinionPurpose::Promotion as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn reply_req(request: &str, cadre: &str, verdict: proto::Verdict) -> proto::ReplyOpinionRequest {
    proto::ReplyOpinionRequest {
        name: request.into(),
        cadre: cadre.into(),
        verdict: verdict as i32,
        text: "经查".into(),
        signer: "县纪委 张某".into(),
        ..Default::default()
    }
}

async fn organization_asks_discipline_replies(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 31).await;
    let b = cadre(&server, 32).await;
    let today = time::OffsetDateTime::now_utc().date();
    let sanction = records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(
            &a,
            "SC-1",
            1,
            warning(&(today - time::Duration::days(30)).to_string()),
        )))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();

    let req = ask(&server, vec![a.name.clone(), b.name.clone()]).await;
    assert_eq!(req.state, proto::OpinionRequestState::Pending as i32);
    assert!(
        !req.due_date.is_empty(),
        "a default due date of 10 working days"
    );
    assert!(!req.overdue);

    // Audit and petition take no part.
    for agency in ["audit", "petition"] {
        let err = opinions(&server, agency)
            .await
            .list_opinion_requests(proto::ListOpinionRequestsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{agency}");
        let err = opinions(&server, agency)
            .await
            .create_opinion_request(proto::CreateOpinionRequestRequest {
                cadres: vec![a.name.clone()],
                purpose: 1,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{agency}");
    }
    // Discipline sees the pending request, in its feed too.
    let mut disc = opinions(&server, "discipline").await;
    let pending = disc
        .list_opinion_requests(proto::ListOpinionRequestsRequest {
            filter: r#"state = "PENDING""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.opinion_requests.len(), 1);
    let feed = proto::change_feed_service_client::ChangeFeedServiceClient::new(
        server.channel("discipline", "360821").await,
    )
    .list_changes(proto::ListChangesRequest {
        kinds: vec![proto::ChangeKind::OpinionRequest as i32],
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert!(matches!(
        feed.events[0].view,
        Some(change_event::View::OpinionRequest(_))
    ));

    let draft_a = disc
        .draft_opinion(proto::DraftOpinionRequest {
            name: req.name.clone(),
            cadre: a.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(draft_a.verdict, proto::Verdict::NotAgree as i32);
    assert!(
        draft_a
            .reasons
            .iter()
            .any(|r| r.records.contains(&sanction.name)),
        "{draft_a:#?}"
    );
    assert!(!draft_a.barred_until.is_empty());
    let draft_b = disc
        .draft_opinion(proto::DraftOpinionRequest {
            name: req.name.clone(),
            cadre: b.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(draft_b.verdict, proto::Verdict::NoIssue as i32);

    let mut ra = reply_req(&req.name, &a.name, proto::Verdict::NotAgree);
    ra.cited_records = vec![sanction.name.clone()];
    ra.as_of_time = draft_a.as_of_time;
    ra.request_id = "5d6c3c9e-1111-4000-8000-000000000001".into();
    let first = disc.reply_opinion(ra.clone()).await.unwrap().into_inner();
    assert_eq!(
        disc.reply_opinion(ra).await.unwrap().into_inner(),
        first,
        "request_id replays"
    );
    let mid = opinions(&server, "organization")
        .await
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: req.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        mid.state,
        proto::OpinionRequestState::Pending as i32,
        "one cadre still unanswered"
    );
    disc.reply_opinion(reply_req(&req.name, &b.name, proto::Verdict::NoIssue))
        .await
        .unwrap();

    let done = opinions(&server, "organization")
        .await
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: req.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state, proto::OpinionRequestState::Replied as i32);
    let verdicts: Vec<i32> = done
        .cadre_opinions
        .iter()
        .map(|c| c.reply.as_ref().unwrap().verdict)
        .collect();
    assert_eq!(
        verdicts,
        [
            proto::Verdict::NotAgree as i32,
            proto::Verdict::NoIssue as i32
        ]
    );
    assert!(
        done.cadre_opinions
            .iter()
            .all(|c| !c.reply.as_ref().unwrap().stale)
    );

    // A correction is a new reply and needs a reason.
    let err = disc
        .reply_opinion(reply_req(&req.name, &b.name, proto::Verdict::Defer))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fix = reply_req(&req.name, &b.name, proto::Verdict::IssueNotBlocking);
    fix.correction_reason = "补充核查".into();
    let corrected = disc.reply_opinion(fix).await.unwrap().into_inner();
    assert!(!corrected.corrects.is_empty());
    // Organization's feed tells it of the replies.
    let feed = proto::change_feed_service_client::ChangeFeedServiceClient::new(
        server.channel("organization", "360821").await,
    )
    .list_changes(proto::ListChangesRequest {
        kinds: vec![proto::ChangeKind::OpinionReply as i32],
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(feed.events.len(), 3);
    // Another county's organization department cannot see the request.
    let err = proto::opinion_service_client::OpinionServiceClient::new(
        server.channel("organization", "360802").await,
    )
    .get_opinion_request(proto::GetOpinionRequestRequest {
        name: req.name.clone(),
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

async fn withdrawal_overdue_and_staleness(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 33).await;
    let req = ask(&server, vec![a.name.clone()]).await;
    let mut org = opinions(&server, "organization").await;
    let withdrawn = org
        .withdraw_opinion_request(proto::WithdrawOpinionRequestRequest {
            name: req.name.clone(),
            reason: "人选调整".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        withdrawn.state,
        proto::OpinionRequestState::Withdrawn as i32
    );
    let err = opinions(&server, "discipline")
        .await
        .reply_opinion(reply_req(&req.name, &a.name, proto::Verdict::NoIssue))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Overdue is computed: move the due date into the past as time would.
    let late = ask(&server, vec![a.name.clone()]).await;
    let id = late.name.trim_start_matches("opinionRequests/");
    exec_sql(
        &server.store_url,
        &format!("UPDATE opinion_requests SET due_date = '2020-01-02' WHERE id = '{id}'"),
    )
    .await;
    let got = org
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: late.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.overdue);
    let overdue = org
        .list_opinion_requests(proto::ListOpinionRequestsRequest {
            filter: r#"overdue = "true""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overdue.opinion_requests.len(), 1);

    // Staleness: a reply goes stale when a matter record is written after its as-of time,
    // even one about something long past (a late-arriving old sanction).
    let mut disc = opinions(&server, "discipline").await;
    disc.reply_opinion(reply_req(&late.name, &a.name, proto::Verdict::NoIssue))
        .await
        .unwrap();
    let fresh = org
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: late.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!fresh.cadre_opinions[0].reply.as_ref().unwrap().stale);
    records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(&a, "SC-OLD", 1, warning("2019-05-01"))))
        .await
        .unwrap();
    let stale = org
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: late.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stale.cadre_opinions[0].reply.as_ref().unwrap().stale);
    let listed = org
        .list_opinion_requests(proto::ListOpinionRequestsRequest {
            filter: r#"stale = "true""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.opinion_requests.len(), 1);
}

async fn purpose_of_use_and_dossier_views(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 34).await;
    let mut audit = records_client(server.channel("audit", "360821").await);
    audit
        .submit_record(submit(record(&a, "AE-1", 1, engagement())))
        .await
        .unwrap();
    audit
        .submit_record(submit(record(&a, "AF-1", 1, finding("AE-1", 10_000))))
        .await
        .unwrap();

    let mut org = dossiers(&server, "organization").await;
    let ask_dossier = |purpose: proto::Purpose, request: &str| proto::GetCadreDossierRequest {
        cadre: a.name.clone(),
        purpose: purpose as i32,
        opinion_request: request.into(),
    };
    let err = org
        .get_cadre_dossier(ask_dossier(proto::Purpose::Unspecified, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = org
        .get_cadre_dossier(ask_dossier(
            proto::Purpose::AppointmentVetting,
            "opinionRequests/nope",
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "NO_OPEN_REQUEST");
    let req = ask(&server, vec![a.name.clone()]).await;
    let d = org
        .get_cadre_dossier(ask_dossier(proto::Purpose::AppointmentVetting, &req.name))
        .await
        .unwrap()
        .into_inner();
    let flags = d.flags.unwrap();
    assert_eq!(flags.findings_transferred_to_discipline.len(), 1);
    assert_eq!(flags.verdict, proto::Verdict::Defer as i32);
    assert!(
        d.sections
            .iter()
            .any(|s| s.kind == proto::RecordKind::AuditFinding as i32 && s.records.len() == 1)
    );
    // Another body's request does not open the dossier.
    let other = proto::opinion_service_client::OpinionServiceClient::new(
        server.channel("organization", "360000").await,
    )
    .create_opinion_request(proto::CreateOpinionRequestRequest {
        cadres: vec![a.name.clone()],
        purpose: 1,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    let err = org
        .get_cadre_dossier(ask_dossier(proto::Purpose::AppointmentVetting, &other.name))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "NO_OPEN_REQUEST");
    // Withdrawn: closed again.
    opinions(&server, "organization")
        .await
        .withdraw_opinion_request(proto::WithdrawOpinionRequestRequest {
            name: req.name.clone(),
            reason: "撤回".into(),
        })
        .await
        .unwrap();
    let err = org
        .get_cadre_dossier(ask_dossier(proto::Purpose::AppointmentVetting, &req.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Other purposes need no request.
    org.get_cadre_dossier(ask_dossier(proto::Purpose::RoutineSupervision, ""))
        .await
        .unwrap();

    // Petition's dossier has no audit sections and an id number masked.
    let p = dossiers(&server, "petition")
        .await
        .get_cadre_dossier(ask_dossier(proto::Purpose::PetitionHandling, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(p.cadre.unwrap().id_number_masked);
    assert!(
        p.sections
            .iter()
            .all(|s| s.kind != proto::RecordKind::AuditFinding as i32)
    );
    assert!(
        p.flags
            .unwrap()
            .findings_transferred_to_discipline
            .is_empty(),
        "no flag from what petition cannot read"
    );

    // Every dossier read is in the access log with its purpose.
    let events = server
        .access_log("discipline", "360821")
        .await
        .list_access_events(proto::ListAccessEventsRequest {
            method: "/cadrex.v1.DossierService/GetCadreDossier".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    assert!(
        events
            .iter()
            .any(|e| e.purpose == "APPOINTMENT_VETTING" && e.resources.contains(&req.name))
    );
    assert!(events.iter().any(|e| e.purpose == "PETITION_HANDLING"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_cli_drives_the_workflow() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let a = cadre(&server, 35).await;
    records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(&a, "SC-1", 1, warning("2026-01-05"))))
        .await
        .unwrap();
    let url = format!("https://localhost:{}", server.addr.port());
    let run = |agency: &str, args: &[&str]| {
        let (crt, key) = server.client_files(agency, "360821");
        let mut all: Vec<String> = vec![
            "client".into(),
            "--cert".into(),
            crt.display().to_string(),
            "--key".into(),
            key.display().to_string(),
            "--server".into(),
            url.clone(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        crate::common::cadrex_bin(&refs)
    };
    let (ok, out) = run(
        "organization",
        &[
            "opinion",
            "create",
            "--cadre",
            &a.name,
            "--purpose",
            "promotion",
        ],
    );
    assert!(ok, "{out}");
    let request = out
        .split_whitespace()
        .find(|w| w.starts_with("opinionRequests/"))
        .expect("request name")
        .to_string();
    let (ok, out) = run(
        "discipline",
        &[
            "opinion",
            "draft",
            "--request",
            &request,
            "--cadre",
            &a.name,
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("NOT_AGREE"), "{out}");
    let (ok, out) = run(
        "discipline",
        &[
            "opinion",
            "reply",
            "--request",
            &request,
            "--cadre",
            &a.name,
            "--verdict",
            "not-agree",
            "--text",
            "处分影响期内",
            "--signer",
            "张某",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = run("organization", &["opinion", "show", "--request", &request]);
    assert!(ok, "{out}");
    assert!(out.contains("REPLIED") && out.contains("不同意"), "{out}");
    let (ok, out) = run(
        "organization",
        &[
            "dossier",
            "--cadre",
            &a.name,
            "--purpose",
            "routine_supervision",
        ],
    );
    assert!(ok, "{out}");
    let flags_at = out.find("rule verdict").expect("flags");
    let sanction_at = out
        .find("RECORD_KIND_SANCTION")
        .expect("a sanction section");
    assert!(flags_at < sanction_at, "flags first:\n{out}");
    // Refusals read as refusals.
    let (ok, out) = run("audit", &["opinion", "list"]);
    assert!(!ok);
    assert!(out.contains("PermissionDenied"), "{out}");
}

/// NUL (U+0000) in free text: PostgreSQL cannot store it and SQLite could, so
/// the exchange refuses it on input with a field violation, and both backends
/// answer the same and keep what they had.
async fn nul_in_free_text_is_refused_on_both_backends(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 41).await;
    let mut org = opinions(&server, "organization").await;
    let err = org
        .create_opinion_request(proto::CreateOpinionRequestRequest {
            cadres: vec![a.name.clone()],
            purpose: proto::OpinionPurpose::Promotion as i32,
            note: "请\0回复".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["note"]);

    let req = ask(&server, vec![a.name.clone()]).await;
    let mut discipline = opinions(&server, "discipline").await;
    let mut bad = reply_req(&req.name, &a.name, proto::Verdict::NoIssue);
    bad.text = "经\0查".into();
    bad.signer = "张\0某".into();
    bad.correction_reason = "\0".into();
    let err = discipline.reply_opinion(bad).await.unwrap_err();
    assert_eq!(
        violated_fields(&err),
        ["text", "signer", "correction_reason"]
    );
    let err = org
        .withdraw_opinion_request(proto::WithdrawOpinionRequestRequest {
            name: req.name.clone(),
            reason: "人选\0调整".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["reason"]);
    let still = org
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: req.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.state, proto::OpinionRequestState::Pending as i32);
    assert_eq!(still.update_time, req.update_time, "nothing was written");

    let mut audit = records_client(server.channel("audit", "360821").await);
    let stored = audit
        .submit_record(submit(record(&a, "AE-NUL", 1, engagement())))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let err = audit
        .retract_record(proto::RetractRecordRequest {
            name: stored.name.clone(),
            reason: "数据\0错误".into(),
            etag: stored.etag.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["reason"]);
    let again = audit
        .get_record(proto::GetRecordRequest {
            name: stored.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.state, proto::RecordState::Active as i32);
    assert_eq!(again.revision, stored.revision);

    let err = server
        .cadres("organization", "360821")
        .await
        .list_cadres(proto::ListCadresRequest {
            filter: "display_name = \"张\0三\"".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["filter"]);
}
