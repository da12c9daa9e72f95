//! Pre-appointment vetting through the real server: requests, drafts, replies, withdrawal, overdue, staleness, purpose of use and the dossier.

use cadrex::proto::{self, change_event, record::Payload};
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{Backend, TestServer, exec_sql, new_cadre, own_access_events, violated_fields};
use crate::common::{cadre, engagement, finding, record, records_client, submit};
use crate::common::{petition_with_informant, warning};

both_backends!(
    organization_asks_discipline_replies,
    withdrawal_overdue_and_staleness,
    purpose_of_use_and_dossier_views,
    nul_in_free_text_is_refused_on_both_backends,
    a_partial_view_has_its_own_state_overdue_note_and_events,
    vetting_dossier_shows_the_request_and_this_cadres_replies,
    another_countys_reply_never_shapes_a_list_page,
    dossier_flags_are_the_rules_reasons,
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
    // The request shows the correction in force and the reply it corrects.
    let shown = opinions(&server, "organization")
        .await
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: req.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let piece = shown
        .cadre_opinions
        .iter()
        .find(|c| c.cadre == b.name)
        .unwrap();
    assert_eq!(piece.reply.as_ref().unwrap().name, corrected.name);
    let earlier: Vec<&str> = piece
        .earlier_replies
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(earlier, [corrected.corrects.as_str()]);
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
        .find("党纪政务处分 SANCTION (1)")
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

type Feed = proto::change_feed_service_client::ChangeFeedServiceClient<tonic::transport::Channel>;

async fn opinions_at(server: &TestServer, agency: &str, division: &str) -> Opinions {
    Opinions::new(server.channel(agency, division).await)
}

async fn get_at(
    server: &TestServer,
    agency: &str,
    division: &str,
    name: &str,
) -> proto::OpinionRequest {
    opinions_at(server, agency, division)
        .await
        .get_opinion_request(proto::GetOpinionRequestRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
}

/// Names of the requests `division`'s discipline commission lists under `filter`.
async fn listed(server: &TestServer, division: &str, filter: &str) -> Vec<String> {
    opinions_at(server, "discipline", division)
        .await
        .list_opinion_requests(proto::ListOpinionRequestsRequest {
            filter: filter.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .opinion_requests
        .into_iter()
        .map(|r| r.name)
        .collect()
}

/// The opinion events after `cursor` as `agency`-`division` reads them, and the cursor reached.
async fn opinion_events(
    server: &TestServer,
    agency: &str,
    division: &str,
    cursor: &str,
) -> (Vec<proto::ChangeEvent>, String) {
    let r = Feed::new(server.channel(agency, division).await)
        .list_changes(proto::ListChangesRequest {
            after_cursor: cursor.into(),
            kinds: vec![
                proto::ChangeKind::OpinionRequest as i32,
                proto::ChangeKind::OpinionReply as i32,
            ],
            page_size: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    (r.events, r.next_cursor)
}

/// DESIGN §1 and §6: a province request names a cadre of 360821 and one of
/// 360802. Each county's discipline commission sees its own piece only, with
/// state, OVERDUE, update time and feed events computed from that piece; the
/// note and the withdrawal reason only where every cadre is seen; a cadre it
/// cannot see reads as one the request does not name; and organization's
/// vetting check is judged on the cadre's own reply.
async fn a_partial_view_has_its_own_state_overdue_note_and_events(backend: Backend) {
    let server = TestServer::spawn_with(backend, |c| {
        c.watch_bookmark_interval = std::time::Duration::from_millis(300);
    })
    .await;
    let a = cadre(&server, 51).await;
    let b = server.register("360802", "乙县干部", 52).await;
    let mut province = opinions_at(&server, "organization", "360000").await;
    let create = proto::CreateOpinionRequestRequest {
        cadres: vec![a.name.clone(), b.name.clone()],
        purpose: proto::OpinionPurpose::Promotion as i32,
        note: "两县人选一并征求意见".into(),
        request_id: "7f1c2d3e-2222-4000-8000-000000000002".into(),
        ..Default::default()
    };
    let req = province
        .create_opinion_request(create.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(req.cadres, [a.name.clone(), b.name.clone()]);
    assert_eq!(
        req.note, "两县人选一并征求意见",
        "the requester sees every cadre"
    );
    let id = req.name.trim_start_matches("opinionRequests/").to_string();
    exec_sql(
        &server.store_url,
        &format!("UPDATE opinion_requests SET due_date = '2020-01-02' WHERE id = '{id}'"),
    )
    .await;

    // Each county sees its own cadre only, and no note.
    for (division, cadre) in [("360821", &a), ("360802", &b)] {
        let got = get_at(&server, "discipline", division, &req.name).await;
        assert_eq!(got.cadres, std::slice::from_ref(&cadre.name), "{division}");
        assert_eq!(got.cadre_opinions.len(), 1, "{division}");
        assert_eq!(got.note, "", "{division} does not see every cadre");
        assert_eq!(got.state, proto::OpinionRequestState::Pending as i32);
        assert!(got.overdue, "{division}");
    }
    let (_, before_reply) = opinion_events(&server, "discipline", "360802", "").await;

    // 360821 replies: REPLIED and no longer overdue for it, unchanged for 360802.
    let b_before = get_at(&server, "discipline", "360802", &req.name).await;
    let reply = opinions_at(&server, "discipline", "360821")
        .await
        .reply_opinion(reply_req(&req.name, &a.name, proto::Verdict::NoIssue))
        .await
        .unwrap()
        .into_inner();
    let seen_a = get_at(&server, "discipline", "360821", &req.name).await;
    assert_eq!(seen_a.state, proto::OpinionRequestState::Replied as i32);
    assert!(!seen_a.overdue, "replied is not overdue");
    assert_eq!(seen_a.update_time, reply.create_time);
    let seen_b = get_at(&server, "discipline", "360802", &req.name).await;
    assert_eq!(seen_b, b_before, "nothing of 360802's view changed");
    let whole = get_at(&server, "organization", "360000", &req.name).await;
    assert_eq!(whole.state, proto::OpinionRequestState::Pending as i32);
    assert!(whole.overdue);
    // A replay answers as things are now, not as they were stored.
    let replayed = province
        .create_opinion_request(create)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed, whole);
    for (division, replied) in [("360821", true), ("360802", false)] {
        let r = listed(&server, division, r#"state = "REPLIED""#).await;
        let p = listed(&server, division, r#"state = "PENDING""#).await;
        let o = listed(&server, division, r#"overdue = "true""#).await;
        assert_eq!(r.contains(&req.name), replied, "{division} REPLIED");
        assert_eq!(p.contains(&req.name), !replied, "{division} PENDING");
        assert_eq!(o.contains(&req.name), !replied, "{division} overdue");
    }
    // The reply reaches 360802's feed as nothing; its cursor moves on.
    let (events, after_reply) =
        opinion_events(&server, "discipline", "360802", &before_reply).await;
    assert!(events.is_empty(), "{events:#?}");
    assert_ne!(after_reply, before_reply, "the cursor advances past it");
    // A stream says so with a bookmark, not with the event.
    let mut stream = Feed::new(server.channel("discipline", "360802").await)
        .watch_changes(proto::WatchChangesRequest {
            after_cursor: before_reply.clone(),
            kinds: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match frame.frame {
        Some(proto::watch_changes_response::Frame::Bookmark(bm)) => {
            assert_eq!(bm.cursor, after_reply)
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }

    // A cadre it cannot see reads as one the request does not name.
    let mut disc_b = opinions_at(&server, "discipline", "360802").await;
    let outsider = server
        .cadres("organization", "360802")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(new_cadre("不在请求中", "360802", 53)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut answers = Vec::new();
    for cadre in [&a.name, &outsider.name, &"cadres/0000000000".to_string()] {
        let err = disc_b
            .draft_opinion(proto::DraftOpinionRequest {
                name: req.name.clone(),
                cadre: cadre.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        answers.push((err.code(), err.message().to_string(), violated_fields(&err)));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);

    // 360802 replies too: the request is REPLIED, an event 360821 is not told of.
    let (_, before_last) = opinion_events(&server, "discipline", "360821", "").await;
    disc_b
        .reply_opinion(reply_req(&req.name, &b.name, proto::Verdict::NoIssue))
        .await
        .unwrap();
    let (events, _) = opinion_events(&server, "discipline", "360821", &before_last).await;
    assert!(events.is_empty(), "{events:#?}");
    let (events, _) = opinion_events(&server, "discipline", "360000", &before_last).await;
    assert_eq!(
        events.len(),
        2,
        "the province sees the reply and the request REPLIED"
    );
    // From the start, each county has the request once, in its own view.
    for division in ["360821", "360802"] {
        let (events, _) = opinion_events(&server, "discipline", division, "").await;
        let requests: Vec<&proto::OpinionRequest> = events
            .iter()
            .filter_map(|e| match &e.view {
                Some(change_event::View::OpinionRequest(r)) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(requests.len(), 1, "{division}");
        assert_eq!(requests[0].cadres.len(), 1);
        assert_eq!(requests[0].note, "");
        assert_eq!(
            requests[0].state,
            proto::OpinionRequestState::Replied as i32
        );
        let replies = events
            .iter()
            .filter(|e| matches!(e.view, Some(change_event::View::OpinionReply(_))))
            .count();
        assert_eq!(replies, 1, "{division}: its own reply only");
    }

    // Withdrawal: every county is told; the reason only where every cadre is seen.
    let second = province
        .create_opinion_request(proto::CreateOpinionRequestRequest {
            cadres: vec![a.name.clone(), b.name.clone()],
            purpose: proto::OpinionPurpose::Promotion as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    province
        .withdraw_opinion_request(proto::WithdrawOpinionRequestRequest {
            name: second.name.clone(),
            reason: "乙县人选另有安排".into(),
        })
        .await
        .unwrap();
    let county = get_at(&server, "discipline", "360821", &second.name).await;
    assert_eq!(county.state, proto::OpinionRequestState::Withdrawn as i32);
    assert_eq!(county.withdraw_reason, "");
    let whole = get_at(&server, "organization", "360000", &second.name).await;
    assert_eq!(whole.withdraw_reason, "乙县人选另有安排");

    // Vetting is judged on the cadre's own reply: a stale reply for a closes
    // the request for a, though the request is still pending for others.
    let third = province
        .create_opinion_request(proto::CreateOpinionRequestRequest {
            cadres: vec![a.name.clone(), b.name.clone()],
            purpose: proto::OpinionPurpose::Promotion as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    opinions_at(&server, "discipline", "360821")
        .await
        .reply_opinion(reply_req(&third.name, &a.name, proto::Verdict::NoIssue))
        .await
        .unwrap();
    records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(&a, "SC-LATE", 1, warning("2019-05-01"))))
        .await
        .unwrap();
    let mut dossier = Dossiers::new(server.channel("organization", "360000").await);
    let vet = |cadre: &str| proto::GetCadreDossierRequest {
        cadre: cadre.into(),
        purpose: proto::Purpose::AppointmentVetting as i32,
        opinion_request: third.name.clone(),
    };
    let err = dossier.get_cadre_dossier(vet(&a.name)).await.unwrap_err();
    assert_eq!(reason(&err), "NO_OPEN_REQUEST");
    dossier.get_cadre_dossier(vet(&b.name)).await.unwrap();
}

/// DESIGN §6: organization's vetting dossier carries the named request's
/// state and due date and every reply for this cadre (the first and each
/// correction, oldest first) — not another cadre's — and its access-log row
/// names the replies it disclosed. Other purposes carry none.
async fn vetting_dossier_shows_the_request_and_this_cadres_replies(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 41).await;
    let b = cadre(&server, 42).await;
    let req = ask(&server, vec![a.name.clone(), b.name.clone()]).await;
    let mut org = dossiers(&server, "organization").await;
    let vetting = |request: &str| proto::GetCadreDossierRequest {
        cadre: a.name.clone(),
        purpose: proto::Purpose::AppointmentVetting as i32,
        opinion_request: request.into(),
    };
    let before = org
        .get_cadre_dossier(vetting(&req.name))
        .await
        .unwrap()
        .into_inner()
        .vetting
        .expect("a vetting dossier carries its request");
    assert_eq!(before.opinion_request, req.name);
    assert_eq!(before.state, proto::OpinionRequestState::Pending as i32);
    assert_eq!(before.due_date, req.due_date);
    assert!(!before.due_date.is_empty());
    assert!(before.replies.is_empty());

    let mut disc = opinions(&server, "discipline").await;
    let first = disc
        .reply_opinion(reply_req(&req.name, &a.name, proto::Verdict::NoIssue))
        .await
        .unwrap()
        .into_inner();
    let mut fix = reply_req(&req.name, &a.name, proto::Verdict::IssueNotBlocking);
    fix.correction_reason = "补充核查".into();
    let corrected = disc.reply_opinion(fix).await.unwrap().into_inner();
    let other = disc
        .reply_opinion(reply_req(&req.name, &b.name, proto::Verdict::Defer))
        .await
        .unwrap()
        .into_inner();

    let after = org
        .get_cadre_dossier(vetting(&req.name))
        .await
        .unwrap()
        .into_inner()
        .vetting
        .unwrap();
    assert_eq!(after.state, proto::OpinionRequestState::Replied as i32);
    let names: Vec<&str> = after.replies.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, [first.name.as_str(), corrected.name.as_str()]);
    assert_eq!(after.replies[1].correction_reason, "补充核查");
    assert_eq!(
        after.replies[1].verdict,
        proto::Verdict::IssueNotBlocking as i32
    );
    assert_eq!(after.replies[0].text, "经查");
    assert!(after.replies.iter().all(|r| r.cadre == a.name));

    let rows = own_access_events(server.channel("organization", "360821").await).await;
    let row = rows
        .iter()
        .rev()
        .find(|e| e.method.ends_with("/GetCadreDossier") && e.status_code == 0)
        .unwrap();
    for name in [&req.name, &first.name, &corrected.name] {
        assert!(
            row.resources.contains(name),
            "{name} in {:?}",
            row.resources
        );
    }
    assert!(!row.resources.contains(&other.name));

    let routine = org
        .get_cadre_dossier(proto::GetCadreDossierRequest {
            cadre: a.name.clone(),
            purpose: proto::Purpose::RoutineSupervision as i32,
            opinion_request: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(routine.vetting.is_none());
}

/// A province request about a cadre of each county, answered by 360821 only,
/// is REPLIED to 360821 while stored PENDING. 360821's listing of PENDING
/// requests, one per page, must read the same whether or not 360802 has
/// answered: the request it is shown as REPLIED neither ends a page nor makes
/// a token appear.
async fn another_countys_reply_never_shapes_a_list_page(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 61).await;
    let b = server.register("360802", "乙县干部", 62).await;
    let spanning = opinions_at(&server, "organization", "360000")
        .await
        .create_opinion_request(proto::CreateOpinionRequestRequest {
            cadres: vec![a.name.clone(), b.name.clone()],
            purpose: proto::OpinionPurpose::Promotion as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let own = ask(&server, vec![a.name.clone()]).await;
    opinions_at(&server, "discipline", "360821")
        .await
        .reply_opinion(reply_req(&spanning.name, &a.name, proto::Verdict::NoIssue))
        .await
        .unwrap();

    let pages = || async {
        let mut client = opinions_at(&server, "discipline", "360821").await;
        let (mut pages, mut token) = (Vec::new(), String::new());
        loop {
            let page = client
                .list_opinion_requests(proto::ListOpinionRequestsRequest {
                    filter: "state = \"PENDING\"".into(),
                    page_size: 1,
                    page_token: token.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            let names: Vec<String> = page.opinion_requests.into_iter().map(|r| r.name).collect();
            pages.push(names);
            if page.next_page_token.is_empty() {
                return pages;
            }
            token = page.next_page_token;
        }
    };
    let before = pages().await;
    assert_eq!(before, [vec![own.name.clone()]], "{before:?}");
    opinions_at(&server, "discipline", "360802")
        .await
        .reply_opinion(reply_req(&spanning.name, &b.name, proto::Verdict::NoIssue))
        .await
        .unwrap();
    assert_eq!(
        pages().await,
        before,
        "360802's reply changed 360821's pages"
    );
}

/// The dossier's flags are the rule engine's reasons, one flag per rule id:
/// each lists exactly the records its rule cites, for discipline (full
/// views) and organization (summaries) alike, and a retracted record, which
/// the rules count for nothing, flags nothing even for its owner.
async fn dossier_flags_are_the_rules_reasons(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 77).await;
    let submit_as = |agency: &'static str, r: proto::Record| {
        let server = &server;
        async move {
            records_client(server.channel(agency, "360821").await)
                .submit_record(submit(r))
                .await
                .unwrap()
                .into_inner()
                .record
                .unwrap()
                .name
        }
    };
    let clue = |disposal: proto::ClueDisposal| {
        Payload::Clue(proto::Clue {
            source: proto::ClueSource::Other as i32,
            source_record: String::new(),
            disposal: disposal as i32,
            status: proto::ClueStatus::Open as i32,
            conclusion: String::new(),
            received_date: "2025-03-05".into(),
            reply_due_date: "2025-04-05".into(),
        })
    };
    let open_clue = submit_as(
        "discipline",
        record(&a, "XS-1", 1, clue(proto::ClueDisposal::TalkOrInquiry)),
    )
    .await;
    let retracted = submit_as(
        "discipline",
        record(&a, "XS-2", 1, clue(proto::ClueDisposal::CaseOpened)),
    )
    .await;
    records_client(server.channel("discipline", "360821").await)
        .retract_record(proto::RetractRecordRequest {
            name: retracted.clone(),
            reason: "误录".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    submit_as(
        "discipline",
        record(&a, "XS-3", 1, clue(proto::ClueDisposal::Shelved)),
    )
    .await;
    let petition = submit_as(
        "petition",
        // Specific and ACCEPTED: not closed.
        record(&a, "XF-1", 1, petition_with_informant("FLAGS")),
    )
    .await;
    let concealed = submit_as(
        "organization",
        record(
            &a,
            "GR-1",
            1,
            Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
                report_year: 2024,
                result: proto::PersonalMattersResult::Concealed as i32,
                check_date: "2025-01-10".into(),
                handling: "诫勉".into(),
            }),
        ),
    )
    .await;
    submit_as("audit", record(&a, "AE-1", 1, engagement())).await;
    let finding = submit_as("audit", record(&a, "AF-1", 1, finding("AE-1", 10_000))).await;

    for (agency, purpose) in [
        ("discipline", proto::Purpose::CaseHandling),
        ("organization", proto::Purpose::RoutineSupervision),
    ] {
        let d = dossiers(&server, agency)
            .await
            .get_cadre_dossier(proto::GetCadreDossierRequest {
                cadre: a.name.clone(),
                purpose: purpose as i32,
                opinion_request: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let f = d.flags.unwrap();
        assert_eq!(f.open_clues, std::slice::from_ref(&open_clue), "{agency}");
        assert_eq!(
            f.unclosed_specific_petitions,
            std::slice::from_ref(&petition),
            "{agency}"
        );
        assert_eq!(
            f.concealed_personal_matters,
            std::slice::from_ref(&concealed),
            "{agency}"
        );
        assert_eq!(
            f.findings_transferred_to_discipline,
            std::slice::from_ref(&finding),
            "{agency}"
        );
        // The finding's deadline (2025-12-31) has passed.
        assert_eq!(
            f.unrectified_findings_past_deadline,
            std::slice::from_ref(&finding),
            "{agency}"
        );
        for (flag, rule) in [
            (&f.open_clues, "open_clue"),
            (&f.unclosed_specific_petitions, "unclosed_specific_petition"),
            (
                &f.concealed_personal_matters,
                "concealed_personal_matters_period",
            ),
            (
                &f.findings_transferred_to_discipline,
                "finding_transferred_to_discipline",
            ),
            (
                &f.unrectified_findings_past_deadline,
                "finding_past_rectification_deadline",
            ),
        ] {
            let cited: Vec<&String> = f
                .reasons
                .iter()
                .filter(|r| r.rule == rule)
                .flat_map(|r| &r.records)
                .collect();
            assert_eq!(flag.iter().collect::<Vec<_>>(), cited, "{agency} {rule}");
        }
        assert!(
            f.reasons.iter().all(|r| !r.records.contains(&retracted)),
            "{agency}: a retracted record counts for nothing"
        );
    }
}
