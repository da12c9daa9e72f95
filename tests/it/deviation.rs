//! Replies kinder than the rules and what makes a reply stale (DESIGN §6), through the real server: the draft computed inside ReplyOpinion, the reason it then needs, who is told of the deviation, and which writes count.

use cadrex::proto::{self, change_event, record::Payload};
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{Backend, TestServer, cadre, record, records_client, submit, warning};

both_backends!(
    a_kinder_reply_says_why_and_only_those_who_answer_for_it_are_told,
    only_matter_writes_make_a_reply_stale,
);

type Opinions = proto::opinion_service_client::OpinionServiceClient<tonic::transport::Channel>;
type Feed = proto::change_feed_service_client::ChangeFeedServiceClient<tonic::transport::Channel>;

const COUNTY: &str = "360821";
const PREFECTURE: &str = "360800";
const PROVINCE: &str = "360000";

/// A channel for `agency` at `division`; the prefecture has no development
/// certificate, so one is issued for it.
async fn channel(server: &TestServer, agency: &str, division: &str) -> tonic::transport::Channel {
    if division != PREFECTURE {
        return server.channel(agency, division).await;
    }
    let system = format!("{agency}-pref");
    let (crt, key) = match cadrex::pki::issue(&server.pki, agency, division, &system) {
        Ok(pair) => pair,
        // Issued by an earlier call of this test.
        Err(_) => {
            let clients = server.pki.join("clients");
            let stem = format!("{agency}-{division}-{system}");
            (
                clients.join(format!("{stem}.crt")),
                clients.join(format!("{stem}.key")),
            )
        }
    };
    server.channel_with(Some((&crt, &key)), None).await
}

async fn opinions(server: &TestServer, agency: &str, division: &str) -> Opinions {
    Opinions::new(channel(server, agency, division).await)
}

fn reply_req(request: &str, cadre: &str, verdict: proto::Verdict) -> proto::ReplyOpinionRequest {
    proto::ReplyOpinionRequest {
        name: request.into(),
        cadre: cadre.into(),
        verdict: verdict as i32,
        text: "经查".into(),
        signer: "纪委 张某".into(),
        ..Default::default()
    }
}

/// The reply for `cadre` in force as `agency`-`division` reads the request.
async fn reply_seen(
    server: &TestServer,
    agency: &str,
    division: &str,
    request: &str,
    cadre: &str,
) -> proto::OpinionReply {
    opinions(server, agency, division)
        .await
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: request.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cadre_opinions
        .into_iter()
        .find(|c| c.cadre == cadre)
        .and_then(|c| c.reply)
        .expect("a reply in force")
}

/// A party warning decided a month ago: the draft is NOT_AGREE for a year.
fn recent_warning() -> Payload {
    let decided = cadrex::domain::clock::today() - time::Duration::days(30);
    warning(&decided.to_string())
}

fn told(r: &proto::OpinionReply) -> (bool, &str, i32) {
    (r.deviation, r.deviation_reason.as_str(), r.draft_verdict)
}

const NOT_TOLD: (bool, &str, i32) = (false, "", proto::Verdict::Unspecified as i32);

async fn a_kinder_reply_says_why_and_only_those_who_answer_for_it_are_told(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let barred = cadre(&server, 51).await;
    let by_prefecture = cadre(&server, 52).await;
    let clean = cadre(&server, 53).await;
    let mut records = records_client(server.channel("discipline", COUNTY).await);
    for (c, source) in [(&barred, "SC-51"), (&by_prefecture, "SC-52")] {
        records
            .submit_record(submit(record(c, source, 1, recent_warning())))
            .await
            .unwrap();
    }
    let req = server
        .ask_opinion(
            COUNTY,
            vec![
                barred.name.clone(),
                by_prefecture.name.clone(),
                clean.name.clone(),
            ],
        )
        .await;
    let feed_start = Feed::new(server.channel("organization", COUNTY).await)
        .list_changes(proto::ListChangesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .next_cursor;

    // Kinder than the draft without a reason: refused, told the draft's verdict.
    let mut county = opinions(&server, "discipline", COUNTY).await;
    let err = county
        .reply_opinion(reply_req(&req.name, &barred.name, proto::Verdict::NoIssue))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "DEVIATION_REASON_REQUIRED");
    assert_eq!(info.metadata["draft_verdict"], "NOT_AGREE");
    assert!(err.message().contains("deviation_reason"), "{err:?}");
    assert!(
        err.get_details_localized_message()
            .is_some_and(|m| m.locale == "zh-CN" && !m.message.is_empty())
    );
    assert!(
        reply_seen_none(&server, &req.name, &barred.name).await,
        "nothing is stored"
    );

    // A reason of invisible characters says nothing (a red-team finding).
    let mut blank = reply_req(&req.name, &barred.name, proto::Verdict::NoIssue);
    blank.deviation_reason = "\u{200B}\u{FEFF}\u{200E}".into();
    let err = county.reply_opinion(blank).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // With a reason: stored with the draft it departs from.
    let mut kinder = reply_req(&req.name, &barred.name, proto::Verdict::NoIssue);
    kinder.deviation_reason = "处分系误报，已报请撤销".into();
    let given = county.reply_opinion(kinder).await.unwrap().into_inner();
    let flagged = (
        true,
        "处分系误报，已报请撤销",
        proto::Verdict::NotAgree as i32,
    );
    assert_eq!(told(&given), flagged, "the replier reads what it wrote");
    // The requester and discipline at and above the replier are told; so is
    // the feed of the requester.
    for (agency, division) in [
        ("organization", COUNTY),
        ("discipline", COUNTY),
        ("discipline", PREFECTURE),
        ("discipline", PROVINCE),
    ] {
        let r = reply_seen(&server, agency, division, &req.name, &barred.name).await;
        assert_eq!(told(&r), flagged, "{agency} at {division}");
    }
    let events = Feed::new(server.channel("organization", COUNTY).await)
        .list_changes(proto::ListChangesRequest {
            after_cursor: feed_start.clone(),
            kinds: vec![proto::ChangeKind::OpinionReply as i32],
            page_size: 100,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let in_feed: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.view {
            Some(change_event::View::OpinionReply(r)) => Some(told(r)),
            _ => None,
        })
        .collect();
    assert_eq!(in_feed, [flagged], "the feed carries the flag");
    // The vetting dossier shows it to the requester.
    let vetting = proto::dossier_service_client::DossierServiceClient::new(
        server.channel("organization", COUNTY).await,
    )
    .get_cadre_dossier(proto::GetCadreDossierRequest {
        cadre: barred.name.clone(),
        purpose: proto::Purpose::AppointmentVetting as i32,
        opinion_request: req.name.clone(),
    })
    .await
    .unwrap()
    .into_inner()
    .vetting
    .expect("vetting section");
    assert_eq!(told(&vetting.replies[0]), flagged);

    // A prefecture's kinder reply is not told to the county below it.
    let mut kinder = reply_req(
        &req.name,
        &by_prefecture.name,
        proto::Verdict::IssueNotBlocking,
    );
    kinder.deviation_reason = "影响期将满".into();
    opinions(&server, "discipline", PREFECTURE)
        .await
        .reply_opinion(kinder)
        .await
        .unwrap();
    let above = (true, "影响期将满", proto::Verdict::NotAgree as i32);
    for (agency, division, expect) in [
        ("discipline", COUNTY, NOT_TOLD),
        ("discipline", PREFECTURE, above),
        ("discipline", PROVINCE, above),
        ("organization", COUNTY, above),
    ] {
        let r = reply_seen(&server, agency, division, &req.name, &by_prefecture.name).await;
        assert_eq!(told(&r), expect, "{agency} at {division}");
        assert_eq!(r.verdict, proto::Verdict::IssueNotBlocking as i32);
    }
    // Nor can the county read it off the log: the requester's row of the
    // answer that carried the deviation holds no digest the county could
    // match a guess against (a red-team finding: it held the plain SHA-256).
    let mut read = tonic::Request::new(proto::GetOpinionRequestRequest {
        name: req.name.clone(),
    });
    read.metadata_mut()
        .insert("x-request-id", "requester-reads-deviation".parse().unwrap());
    let answer = opinions(&server, "organization", COUNTY)
        .await
        .get_opinion_request(read)
        .await
        .unwrap()
        .into_inner();
    let plain = cadrex::digest::sha256_hex(&prost::Message::encode_to_vec(&answer));
    let rows = server
        .access_log("discipline", COUNTY)
        .await
        .list_access_events(proto::ListAccessEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    let row = rows
        .iter()
        .find(|e| e.request_id == "requester-reads-deviation")
        .expect("the county reads the requester's row about its cadre");
    assert!(row.response_sha256.starts_with("k1:"), "{row:?}");
    assert!(
        rows.iter()
            .all(|e| e.response_sha256 != plain && e.hash != plain),
        "no row the county reads holds the plain digest of the requester's answer"
    );

    // An equal verdict keeps no reason; a harsher one needs none.
    let mut equal = reply_req(&req.name, &barred.name, proto::Verdict::NotAgree);
    equal.correction_reason = "撤销申请未获批准".into();
    equal.deviation_reason = "不需要".into();
    let equal = county.reply_opinion(equal).await.unwrap().into_inner();
    assert_eq!(told(&equal), NOT_TOLD);
    let harsher = county
        .reply_opinion(reply_req(&req.name, &clean.name, proto::Verdict::Defer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(told(&harsher), NOT_TOLD);
    let r = reply_seen(&server, "organization", COUNTY, &req.name, &barred.name).await;
    assert_eq!(told(&r), NOT_TOLD, "the correction is the reply in force");
}

/// Whether the request has no reply yet for `cadre`, as the requester reads it.
async fn reply_seen_none(server: &TestServer, request: &str, cadre: &str) -> bool {
    opinions(server, "organization", COUNTY)
        .await
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: request.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cadre_opinions
        .iter()
        .any(|c| c.cadre == cadre && c.reply.is_none())
}

fn check(result: proto::PersonalMattersResult) -> Payload {
    Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
        report_year: 2025,
        result: result as i32,
        check_date: "2026-01-10".into(),
        handling: String::new(),
    })
}

/// DESIGN §6: the organization department checks personal matters and the
/// archive while it waits for the reply, and that must not undo the reply:
/// a CONSISTENT check leaves it in force, a CONCEALED one makes it stale, and
/// so does correcting a CONCEALED check to CONSISTENT.
async fn only_matter_writes_make_a_reply_stale(backend: Backend) {
    use proto::PersonalMattersResult::{Concealed, Consistent};
    let server = TestServer::spawn(backend).await;
    let a = cadre(&server, 54).await;
    let b = cadre(&server, 55).await;
    let req = server
        .ask_opinion(COUNTY, vec![a.name.clone(), b.name.clone()])
        .await;
    let mut county = opinions(&server, "discipline", COUNTY).await;
    for c in [&a, &b] {
        county
            .reply_opinion(reply_req(&req.name, &c.name, proto::Verdict::NoIssue))
            .await
            .unwrap();
    }
    let stale = |c: String| {
        let server = &server;
        let req = req.name.clone();
        async move {
            reply_seen(server, "organization", COUNTY, &req, &c)
                .await
                .stale
        }
    };
    let mut org = records_client(server.channel("organization", COUNTY).await);
    org.submit_record(submit(record(&a, "PM-A", 1, check(Consistent))))
        .await
        .unwrap();
    assert!(
        !stale(a.name.clone()).await,
        "a consistent check is no matter"
    );
    org.submit_record(submit(record(&b, "PM-B", 1, check(Concealed))))
        .await
        .unwrap();
    assert!(stale(b.name.clone()).await, "a concealed check is a matter");
    assert!(!stale(a.name.clone()).await, "per cadre");

    // Replied again after the concealment, then corrected to consistent:
    // what the reply relied on changed, so it is stale again.
    let mut again = reply_req(&req.name, &b.name, proto::Verdict::NotAgree);
    again.correction_reason = "瞒报个人有关事项".into();
    county.reply_opinion(again).await.unwrap();
    assert!(!stale(b.name.clone()).await);
    org.submit_record(submit(record(&b, "PM-B", 2, check(Consistent))))
        .await
        .unwrap();
    assert!(stale(b.name.clone()).await, "a matter before the write");
}
