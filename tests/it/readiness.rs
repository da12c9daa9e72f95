//! 凡提四必 readiness through the real server (DESIGN §6a): each of the four musts missing, satisfied and blocking — archive discrepancies, a concealment within its bar, an unclosed specific petition, a stale reply — who may ask, and the vetting dossier that shows it.

use cadrex::proto::{self, record::Payload};
use time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{
    Backend, TestServer, cadre, petition_with_informant, record, records_client, submit,
};

both_backends!(the_four_musts_in_every_state, who_may_ask_for_readiness);

type Opinions = proto::opinion_service_client::OpinionServiceClient<tonic::transport::Channel>;

const COUNTY: &str = "360821";

async fn opinions(server: &TestServer, agency: &str, division: &str) -> Opinions {
    Opinions::new(server.channel(agency, division).await)
}

async fn ask(server: &TestServer, division: &str, cadre: &str) -> String {
    server.ask_opinion(division, vec![cadre.into()]).await.name
}

fn day(offset: i64) -> String {
    (cadrex::domain::clock::today() + Duration::days(offset)).to_string()
}

fn year() -> i32 {
    cadrex::domain::clock::today().year()
}

fn review(request: &str, date: String, discrepancies: bool) -> Payload {
    Payload::ArchiveReview(proto::ArchiveReview {
        opinion_request: request.into(),
        review_date: date,
        reviewer: "干部监督科 王某".into(),
        result: if discrepancies {
            proto::ArchiveReviewResult::Discrepancies
        } else {
            proto::ArchiveReviewResult::Consistent
        } as i32,
        note: if discrepancies {
            "参加工作时间与档案记载不一致".into()
        } else {
            String::new()
        },
    })
}

fn check(report_year: i32, result: proto::PersonalMattersResult, date: String) -> Payload {
    Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
        report_year,
        result: result as i32,
        check_date: date,
        handling: String::new(),
    })
}

fn petition(status: proto::PetitionStatus) -> Payload {
    let mut p = petition_with_informant("readiness");
    if let Payload::Petition(x) = &mut p {
        x.status = status as i32;
    }
    p
}

async fn readiness(
    server: &TestServer,
    request: &str,
    cadre: &str,
) -> Result<proto::VettingReadiness, tonic::Status> {
    readiness_as(server, "organization", COUNTY, request, cadre).await
}

async fn readiness_as(
    server: &TestServer,
    agency: &str,
    division: &str,
    request: &str,
    cadre: &str,
) -> Result<proto::VettingReadiness, tonic::Status> {
    opinions(server, agency, division)
        .await
        .get_vetting_readiness(proto::GetVettingReadinessRequest {
            name: request.into(),
            cadre: cadre.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// The state of each item, in order.
fn states(r: &proto::VettingReadiness) -> Vec<proto::ReadinessState> {
    r.checks
        .iter()
        .map(|c| proto::ReadinessState::try_from(c.state).unwrap())
        .collect()
}

async fn the_four_musts_in_every_state(backend: Backend) {
    use proto::PersonalMattersResult::{Concealed, Consistent};
    use proto::ReadinessState::{Blocking as B, Missing as M, Satisfied as S};
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 81).await;
    let request = ask(&server, COUNTY, &a.name).await;
    let r = readiness(&server, &request, &a.name).await.unwrap();
    let items: Vec<i32> = r.checks.iter().map(|c| c.item).collect();
    assert_eq!(
        items,
        [
            proto::ReadinessItem::ArchiveReview as i32,
            proto::ReadinessItem::PersonalMatters as i32,
            proto::ReadinessItem::DisciplineOpinion as i32,
            proto::ReadinessItem::SpecificPetitions as i32,
        ]
    );
    assert_eq!(states(&r), [M, M, M, S]);
    assert!(!r.ready);

    let mut org = records_client(server.channel("organization", COUNTY).await);
    let mut bureau = records_client(server.channel("petition", COUNTY).await);
    // 档案必审: discrepancies block; a later consistent review satisfies.
    let found = org
        .submit_record(submit(record(
            &a,
            "AR-1",
            1,
            review(&request, day(-3), true),
        )))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
        .name;
    let r = readiness(&server, &request, &a.name).await.unwrap();
    assert_eq!(states(&r)[0], B);
    assert_eq!(r.checks[0].cited, [found]);
    org.submit_record(submit(record(
        &a,
        "AR-2",
        1,
        review(&request, day(-1), false),
    )))
    .await
    .unwrap();
    // 个人有关事项报告必核: last year's report checked and consistent.
    org.submit_record(submit(record(
        &a,
        "PM-1",
        1,
        check(year() - 1, Consistent, day(-10)),
    )))
    .await
    .unwrap();
    // 线索具体的信访举报必查: a specific petition still being handled blocks.
    let open = bureau
        .submit_record(submit(record(
            &a,
            "XF-1",
            1,
            petition(proto::PetitionStatus::Accepted),
        )))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
        .name;
    let r = readiness(&server, &request, &a.name).await.unwrap();
    assert_eq!(states(&r), [S, S, M, B]);
    assert_eq!(r.checks[3].cited, std::slice::from_ref(&open));
    bureau
        .submit_record(submit(record(
            &a,
            "XF-1",
            2,
            petition(proto::PetitionStatus::Closed),
        )))
        .await
        .unwrap();

    // 纪检监察机关意见必听: the reply in force decides.
    let mut disc = opinions(&server, "discipline", COUNTY).await;
    let reply = |verdict: proto::Verdict, correction: &str| proto::ReplyOpinionRequest {
        name: request.clone(),
        cadre: a.name.clone(),
        verdict: verdict as i32,
        text: "经查".into(),
        signer: "县纪委 张某".into(),
        correction_reason: correction.into(),
        // The closed petition is a matter: ISSUE_NOT_BLOCKING is the draft.
        deviation_reason: "经集体研究".into(),
        ..Default::default()
    };
    disc.reply_opinion(reply(proto::Verdict::Defer, ""))
        .await
        .unwrap();
    let r = readiness(&server, &request, &a.name).await.unwrap();
    assert_eq!(states(&r), [S, S, B, S]);
    let replied = disc
        .reply_opinion(reply(proto::Verdict::IssueNotBlocking, "线索已了结"))
        .await
        .unwrap()
        .into_inner();
    let r = readiness(&server, &request, &a.name).await.unwrap();
    assert_eq!(states(&r), [S, S, S, S]);
    assert!(r.ready);
    assert_eq!(r.checks[2].cited, std::slice::from_ref(&replied.name));

    // The vetting dossier carries the same judgement.
    let dossier = proto::dossier_service_client::DossierServiceClient::new(
        server.channel("organization", COUNTY).await,
    )
    .get_cadre_dossier(proto::GetCadreDossierRequest {
        cadre: a.name.clone(),
        purpose: proto::Purpose::AppointmentVetting as i32,
        opinion_request: request.clone(),
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(
        dossier.readiness.as_ref().map(states),
        Some(vec![S, S, S, S])
    );

    // A concealment found within its bar blocks item 2 — and, a matter
    // written after the reply, makes the reply stale: item 3 is missing again.
    org.submit_record(submit(record(
        &a,
        "PM-2",
        1,
        check(year() - 1, Concealed, day(-5)),
    )))
    .await
    .unwrap();
    let r = readiness(&server, &request, &a.name).await.unwrap();
    assert_eq!(states(&r), [S, B, M, S]);
    assert!(!r.ready);
}

async fn who_may_ask_for_readiness(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 82).await;
    let request = ask(&server, COUNTY, &a.name).await;
    let reason = |s: &tonic::Status| {
        s.get_details_error_info()
            .map(|i| i.reason)
            .unwrap_or_default()
    };
    for agency in ["discipline", "audit", "petition", "inspection"] {
        let err = readiness_as(&server, agency, COUNTY, &request, &a.name)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{agency}");
        assert_eq!(reason(&err), "ACTION_NOT_PERMITTED", "{agency}");
    }
    // Another county's organization department: the cadre reads as missing,
    // like one that does not exist.
    let outside = readiness_as(&server, "organization", "360802", &request, &a.name)
        .await
        .unwrap_err();
    let missing = readiness_as(
        &server,
        "organization",
        "360802",
        &request,
        "cadres/0000000000000000000000000000000a",
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&outside), "CADRE_NOT_ACCESSIBLE");
    assert_eq!(
        (outside.code(), outside.message()),
        (missing.code(), missing.message())
    );
    // The province's own request is not the county's; a request not naming
    // the cadre and a withdrawn one are not open requests for it.
    let province = ask(&server, "360000", &a.name).await;
    let b = cadre(&server, 83).await;
    let other = ask(&server, COUNTY, &b.name).await;
    for name in [province.as_str(), other.as_str(), "opinionRequests/nope"] {
        let err = readiness(&server, name, &a.name).await.unwrap_err();
        assert_eq!(reason(&err), "NO_OPEN_REQUEST", "{name}");
    }
    opinions(&server, "organization", COUNTY)
        .await
        .withdraw_opinion_request(proto::WithdrawOpinionRequestRequest {
            name: request.clone(),
            reason: "人选调整".into(),
        })
        .await
        .unwrap();
    let err = readiness(&server, &request, &a.name).await.unwrap_err();
    assert_eq!(reason(&err), "NO_OPEN_REQUEST");
    // An archive review must serve a request of the submitter's naming the cadre.
    let mut org = records_client(server.channel("organization", COUNTY).await);
    for name in [province.as_str(), other.as_str()] {
        let err = org
            .submit_record(submit(record(&a, "AR-9", 1, review(name, day(-1), false))))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
    }
}
