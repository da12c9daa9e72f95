//! A cadre's transfer moves its data (DESIGN §5, §6): a province organization moves a cadre between two counties and back; eight `cadrex sync` mirrors, the feed's OUT_OF_VIEW and UPSERT events, and the old county's own opinion requests follow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cadrex::proto::{self, record::Payload};
use cadrex::tools::sync::{KINDS, SyncArgs, SyncMode};
use sqlx::{Connection, Row, SqliteConnection};
use tonic::Code;

use crate::both_backends;
use crate::common::matrix::agencies;
use crate::common::warning;
use crate::common::{Backend, TestServer, server_url};
use crate::common::{one_of_each_kind, record, records_client, submit};

both_backends!(
    a_moved_cadre_takes_its_data_along,
    a_kept_piece_in_the_feed_ends_at_the_move
);

const A: &str = "360821";
const B: &str = "360802";
const PROVINCE: &str = "360000";

type Feed = proto::change_feed_service_client::ChangeFeedServiceClient<tonic::transport::Channel>;
type Opinions = proto::opinion_service_client::OpinionServiceClient<tonic::transport::Channel>;

/// (revision, state) of each live resource.
type Live = BTreeMap<String, (i64, String)>;

async fn feed(server: &TestServer, agency: &str, division: &str) -> Feed {
    Feed::new(server.channel(agency, division).await)
}

async fn opinions(server: &TestServer, agency: &str, division: &str) -> Opinions {
    Opinions::new(server.channel(agency, division).await)
}

/// Every event after `after` (empty: from the start) and the cursor at the end.
async fn changes_since(
    server: &TestServer,
    agency: &str,
    division: &str,
    after: &str,
) -> (Vec<proto::ChangeEvent>, String) {
    let mut client = feed(server, agency, division).await;
    let (mut events, mut cursor) = (Vec::new(), after.to_string());
    loop {
        let page = client
            .list_changes(proto::ListChangesRequest {
                after_cursor: cursor.clone(),
                kinds: Vec::new(),
                page_size: 5000,
            })
            .await
            .unwrap_or_else(|e| panic!("{agency} {division}: {e:?}"))
            .into_inner();
        events.extend(page.events);
        if page.next_cursor == cursor {
            return (events, cursor);
        }
        cursor = page.next_cursor;
    }
}

/// Cursors at the head of the feed for each caller, taken before a move.
async fn heads(server: &TestServer, callers: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (agency, division) in callers {
        out.push(changes_since(server, agency, division, "").await.1);
    }
    out
}

fn state_text(state: i32) -> String {
    if state == proto::RecordState::Retracted as i32 {
        "RETRACTED".into()
    } else {
        "ACTIVE".into()
    }
}

/// What a fresh `ListRecords` on `cadres/-` and `ListCadres` show the system.
async fn server_live(server: &TestServer, agency: &str, division: &str) -> Live {
    let channel = server.channel(agency, division).await;
    let mut records = records_client(channel.clone());
    let mut out = Live::new();
    let mut token = String::new();
    loop {
        let page = records
            .list_records(proto::ListRecordsRequest {
                parent: "cadres/-".into(),
                page_size: 1000,
                page_token: token,
                filter: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        for r in page.records {
            out.insert(r.name.clone(), (r.revision, state_text(r.state)));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut cadres = proto::cadre_service_client::CadreServiceClient::new(channel);
    let mut token = String::new();
    loop {
        let page = cadres
            .list_cadres(proto::ListCadresRequest {
                page_size: 1000,
                page_token: token,
                filter: String::new(),
                include_past_posts: false,
            })
            .await
            .unwrap()
            .into_inner();
        for c in page.cadres {
            let revision = c.etag.trim_start_matches('r').parse().unwrap();
            out.insert(c.name.clone(), (revision, "ACTIVE".into()));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    out
}

fn mirror_path(server: &TestServer, agency: &str, division: &str) -> PathBuf {
    server.dir.path().join(format!("{agency}-{division}.db"))
}

/// `cadrex sync --once` of every kind it copies, for one system.
async fn sync(server: &TestServer, agency: &str, division: &str) {
    let (cert, key) = server.client_files(agency, division);
    let mut a = SyncArgs::new(KINDS.to_vec(), cert, key);
    a.into = Some(format!(
        "sqlite://{}",
        mirror_path(server, agency, division).display()
    ));
    a.server = server_url(server);
    a.mode = SyncMode::Once;
    cadrex::tools::sync::run(a)
        .await
        .unwrap_or_else(|e| panic!("sync {agency} {division}: {e:#}"));
}

/// The mirror's live rows and the resources it holds as out of view.
async fn mirror(path: &Path) -> (Live, BTreeSet<String>) {
    let mut c = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT resource, revision, state, out_of_view, body IS NOT NULL AS has_body \
         FROM mirror_resources",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let _ = c.close().await;
    let (mut live, mut gone) = (Live::new(), BTreeSet::new());
    for r in &rows {
        let resource: String = r.get("resource");
        if r.get::<i64, _>("out_of_view") == 1 {
            assert!(
                !r.get::<bool, _>("has_body"),
                "{resource} out of view keeps content"
            );
            gone.insert(resource);
        } else {
            live.insert(resource, (r.get("revision"), r.get("state")));
        }
    }
    (live, gone)
}

/// Syncs all eight county mirrors and asserts each holds, as live, exactly
/// what the system is shown now; returns the live sets.
async fn sync_all(
    server: &TestServer,
    when: &str,
) -> BTreeMap<(String, String), (Live, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for division in [A, B] {
        for agency in agencies() {
            sync(server, agency, division).await;
            let held = mirror(&mirror_path(server, agency, division)).await;
            let expected = server_live(server, agency, division).await;
            assert_eq!(held.0, expected, "{when}: mirror of {agency} {division}");
            out.insert((agency.to_string(), division.to_string()), held);
        }
    }
    out
}

fn under<'a>(live: &'a Live, cadre: &str) -> BTreeSet<&'a str> {
    let prefix = format!("{cadre}/");
    live.keys()
        .filter(|k| *k == cadre || k.starts_with(&prefix))
        .map(String::as_str)
        .collect()
}

/// (resource, op) of events, with each OUT_OF_VIEW checked to carry no view
/// and every other one to carry one.
fn ops(events: &[proto::ChangeEvent]) -> BTreeSet<(String, i32)> {
    events
        .iter()
        .map(|e| {
            let out = e.op == proto::ChangeOp::OutOfView as i32;
            assert_eq!(e.view.is_none(), out, "{e:?}");
            (e.resource.clone(), e.op)
        })
        .collect()
}

fn expect(resources: &BTreeSet<&str>, op: proto::ChangeOp) -> BTreeSet<(String, i32)> {
    resources
        .iter()
        .map(|r| (r.to_string(), op as i32))
        .collect()
}

async fn move_to(server: &TestServer, cadre: &proto::Cadre, division: &str) -> proto::Cadre {
    server
        .cadres("organization", PROVINCE)
        .await
        .update_cadre(proto::UpdateCadreRequest {
            cadre: Some(proto::Cadre {
                name: cadre.name.clone(),
                managing_division: division.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["managing_division".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn get(
    server: &TestServer,
    agency: &str,
    division: &str,
    name: &str,
) -> Result<proto::OpinionRequest, tonic::Status> {
    opinions(server, agency, division)
        .await
        .get_opinion_request(proto::GetOpinionRequestRequest { name: name.into() })
        .await
        .map(tonic::Response::into_inner)
}

/// Staleness of the one reply of the request's only piece, as `agency` at `division` sees it.
async fn stale(server: &TestServer, agency: &str, division: &str, name: &str) -> bool {
    let r = get(server, agency, division, name)
        .await
        .unwrap_or_else(|e| panic!("{agency} {division} {name}: {e:?}"));
    r.cadre_opinions[0].reply.as_ref().expect("a reply").stale
}

async fn a_moved_cadre_takes_its_data_along(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let moved = server.register(A, "调动对象", 71).await;
    let stays = server.register(A, "留任对象", 72).await;
    let kinds = one_of_each_kind(&server, &moved, "transfer-canary").await;
    assert!(kinds.contains_key("PETITION"));
    // The request the fixture's archive review serves: pending, never replied to.
    let Some(Payload::ArchiveReview(review)) = &kinds["ARCHIVE_REVIEW"].payload else {
        panic!("the fixture's archive review")
    };
    let reviewed = review.opinion_request.clone();
    records_client(server.channel("organization", A).await)
        .submit_record(submit(record(
            &stays,
            "EV-STAYS",
            1,
            Payload::Evaluation(proto::Evaluation {
                year: 2024,
                kind: proto::EvaluationKind::AnnualReview as i32,
                grade: proto::EvaluationGrade::Excellent as i32,
            }),
        )))
        .await
        .unwrap();
    // County A's organization asks twice about the cadre; A's discipline
    // answers the first (NOT_AGREE needs no deviation reason).
    let mut org_a = opinions(&server, "organization", A).await;
    let ask = || {
        let cadres = vec![moved.name.clone()];
        let mut org = org_a.clone();
        async move {
            org.create_opinion_request(proto::CreateOpinionRequestRequest {
                cadres,
                purpose: proto::OpinionPurpose::Promotion as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .name
        }
    };
    let replied = ask().await;
    let pending = ask().await;
    opinions(&server, "discipline", A)
        .await
        .reply_opinion(proto::ReplyOpinionRequest {
            name: replied.clone(),
            cadre: moved.name.clone(),
            verdict: proto::Verdict::NotAgree as i32,
            text: "经查".into(),
            signer: "县纪委 张某".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!stale(&server, "organization", A, &replied).await);

    let before = sync_all(&server, "before the move").await;
    for agency in agencies() {
        let a = &before[&(agency.to_string(), A.to_string())].0;
        assert!(a.contains_key(&moved.name), "{agency} of A sees the cadre");
        assert!(under(&before[&(agency.to_string(), B.to_string())].0, &moved.name).is_empty());
    }

    // Move A → B.
    let callers: Vec<(&str, &str)> = [A, B, PROVINCE]
        .iter()
        .flat_map(|d| agencies().into_iter().map(move |a| (a, *d)))
        .collect();
    let cursors = heads(&server, &callers).await;
    let at_b = move_to(&server, &moved, B).await;
    let after = sync_all(&server, "after the move to B").await;
    for (i, (agency, division)) in callers.iter().enumerate() {
        let (events, _) = changes_since(&server, agency, division, &cursors[i]).await;
        let got = ops(&events);
        let key = (agency.to_string(), division.to_string());
        let mut want = BTreeSet::new();
        match *division {
            A => {
                // Everything of the cadre it saw left its view; nothing came.
                want = expect(
                    &under(&before[&key].0, &moved.name),
                    proto::ChangeOp::OutOfView,
                );
                assert!(under(&after[&key].0, &moved.name).is_empty(), "{key:?}");
                let gone = &after[&key].1;
                for r in under(&before[&key].0, &moved.name) {
                    assert!(gone.contains(r), "{key:?}: {r} is held out of view");
                }
            }
            B => want = expect(&under(&after[&key].0, &moved.name), proto::ChangeOp::Upsert),
            _ => {
                // The province's view did not change: the cadre's ordinary update, once.
                want.insert((moved.name.clone(), proto::ChangeOp::Upsert as i32));
            }
        }
        match (*agency, *division) {
            // A's discipline keeps the piece it replied to, loses the other.
            ("discipline", A) => {
                for r in [&pending, &reviewed] {
                    want.insert((r.clone(), proto::ChangeOp::OutOfView as i32));
                }
            }
            ("discipline", B) => {
                for r in [&replied, &pending, &reviewed] {
                    want.insert((r.clone(), proto::ChangeOp::Upsert as i32));
                }
            }
            _ => {}
        }
        assert_eq!(got, want, "{agency} {division} after the move to B");
        if *division != PROVINCE {
            assert!(!want.is_empty(), "{agency} {division}");
        }
    }
    let province_org = callers
        .iter()
        .position(|c| *c == ("organization", PROVINCE))
        .unwrap();
    let cadre_event = changes_since(&server, "organization", PROVINCE, &cursors[province_org])
        .await
        .0
        .remove(0);
    assert_eq!(cadre_event.revision, at_b.etag[1..].parse::<i64>().unwrap());

    // The requester keeps its own requests, whole; A's discipline the replied one.
    let own = get(&server, "organization", A, &replied).await.unwrap();
    assert_eq!(own.cadres, vec![moved.name.clone()]);
    assert!(own.cadre_opinions[0].reply.is_some());
    assert!(!stale(&server, "discipline", A, &replied).await);
    let err = get(&server, "discipline", A, &pending).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let listed: Vec<String> = opinions(&server, "discipline", A)
        .await
        .list_opinion_requests(proto::ListOpinionRequestsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .opinion_requests
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(listed, vec![replied.clone()]);
    let err = get(&server, "organization", B, &replied).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // A matter written in B after the move makes the reply stale for B, not
    // for A, which must not learn of it.
    records_client(server.channel("discipline", B).await)
        .submit_record(submit(record(&moved, "SC-B", 1, warning("2026-01-05"))))
        .await
        .unwrap();
    assert!(stale(&server, "discipline", B, &replied).await);
    assert!(!stale(&server, "organization", A, &replied).await);
    assert!(!stale(&server, "discipline", A, &replied).await);

    // B's discipline corrects the reply (as of the original's time, so it is
    // as stale as that one inside B): the requester reads the correction; A's
    // discipline keeps its piece as it was at the move, without it.
    let original = get(&server, "discipline", A, &replied).await.unwrap();
    let original = original.cadre_opinions[0].reply.clone().unwrap();
    opinions(&server, "discipline", B)
        .await
        .reply_opinion(proto::ReplyOpinionRequest {
            name: replied.clone(),
            cadre: moved.name.clone(),
            verdict: proto::Verdict::Defer as i32,
            text: "复核".into(),
            signer: "县纪委 李某".into(),
            as_of_time: original.as_of_time,
            correction_reason: "调入后发现新情况".into(),
            // Kinder than the sanction's NOT_AGREE, so it says why.
            deviation_reason: "经集体研究".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let for_requester = get(&server, "organization", A, &replied).await.unwrap();
    let piece = &for_requester.cadre_opinions[0];
    assert_eq!(
        piece.reply.as_ref().unwrap().verdict,
        proto::Verdict::Defer as i32
    );
    assert_eq!(piece.earlier_replies.len(), 1);
    assert!(
        !piece.reply.as_ref().unwrap().stale,
        "as at the move, for A"
    );
    let for_a = get(&server, "discipline", A, &replied).await.unwrap();
    let piece = &for_a.cadre_opinions[0];
    assert_eq!(piece.reply.as_ref().unwrap().name, original.name);
    assert!(piece.earlier_replies.is_empty(), "{for_a:?}");

    // The old county's organization withdraws its own pending request.
    let withdrawn = org_a
        .withdraw_opinion_request(proto::WithdrawOpinionRequestRequest {
            name: pending.clone(),
            reason: "干部已调出本县".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        withdrawn.state,
        proto::OpinionRequestState::Withdrawn as i32
    );

    // And back B → A.
    let cursors = heads(&server, &callers).await;
    let before = sync_all(&server, "before the return").await;
    move_to(&server, &moved, A).await;
    let after = sync_all(&server, "after the return to A").await;
    for (i, (agency, division)) in callers.iter().enumerate() {
        let (events, _) = changes_since(&server, agency, division, &cursors[i]).await;
        let got = ops(&events);
        let key = (agency.to_string(), division.to_string());
        let mut want = BTreeSet::new();
        match *division {
            A => {
                want = expect(&under(&after[&key].0, &moved.name), proto::ChangeOp::Upsert);
                // What came back is live again, at the revisions held out of view.
                for r in under(&after[&key].0, &moved.name) {
                    assert!(!after[&key].1.contains(r), "{key:?}: {r} restored");
                }
            }
            B => {
                want = expect(
                    &under(&before[&key].0, &moved.name),
                    proto::ChangeOp::OutOfView,
                );
                assert!(under(&after[&key].0, &moved.name).is_empty(), "{key:?}");
            }
            _ => {
                want.insert((moved.name.clone(), proto::ChangeOp::Upsert as i32));
            }
        }
        match (*agency, *division) {
            ("discipline", A) => {
                for r in [&pending, &reviewed] {
                    want.insert((r.clone(), proto::ChangeOp::Upsert as i32));
                }
            }
            // B's discipline keeps the piece it replied to (its correction).
            ("discipline", B) => {
                for r in [&pending, &reviewed] {
                    want.insert((r.clone(), proto::ChangeOp::OutOfView as i32));
                }
            }
            _ => {}
        }
        assert_eq!(got, want, "{agency} {division} after the return to A");
    }
    // Back in A's jurisdiction, A sees what was written about the cadre meanwhile.
    assert!(stale(&server, "organization", A, &replied).await);
    // B's discipline keeps the piece it corrected, as it was when the cadre
    // left B; the other request is gone from its view.
    let kept = get(&server, "discipline", B, &replied).await.unwrap();
    assert_eq!(
        kept.cadre_opinions[0].reply.as_ref().unwrap().verdict,
        proto::Verdict::Defer as i32
    );
    let err = get(&server, "discipline", B, &pending).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// A discipline body keeps the piece it replied to after the cadre moved
/// away, as it was at the move, on every path: its feed is not handed the new
/// county's later correction (its verdict, text, or the records written in
/// the new county that it cites) either (found by a red-team pass).
async fn a_kept_piece_in_the_feed_ends_at_the_move(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let moved = server.register(A, "调出对象", 81).await;
    let request = opinions(&server, "organization", A)
        .await
        .create_opinion_request(proto::CreateOpinionRequestRequest {
            cadres: vec![moved.name.clone()],
            purpose: proto::OpinionPurpose::Promotion as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .name;
    let reply =
        |division: &'static str, verdict: proto::Verdict, text: &str, cited: Vec<String>| {
            let (server, request, cadre, text) = (
                &server,
                request.clone(),
                moved.name.clone(),
                text.to_string(),
            );
            async move {
                opinions(server, "discipline", division)
                    .await
                    .reply_opinion(proto::ReplyOpinionRequest {
                        name: request,
                        cadre,
                        verdict: verdict as i32,
                        text,
                        signer: "县纪委 张某".into(),
                        cited_records: cited,
                        correction_reason: if division == B {
                            "调入后发现新情况".into()
                        } else {
                            String::new()
                        },
                        // Kept only when kinder than the draft.
                        deviation_reason: "经集体研究".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
    let original = reply(A, proto::Verdict::NotAgree, "经查", Vec::new()).await;
    move_to(&server, &moved, B).await;
    let (_, cursor) = changes_since(&server, "discipline", A, "").await;

    let sanction = records_client(server.channel("discipline", B).await)
        .submit_record(submit(record(
            &moved,
            "SC-B-LATER",
            1,
            warning("2026-01-05"),
        )))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
        .name;
    let correction = reply(
        B,
        proto::Verdict::Defer,
        "调入后新发现 B-CANARY",
        vec![sanction.clone()],
    )
    .await;

    let got = opinions(&server, "discipline", A)
        .await
        .get_opinion_request(proto::GetOpinionRequestRequest {
            name: request.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.cadre_opinions[0].reply.as_ref().unwrap().name,
        original.name
    );
    let (events, _) = changes_since(&server, "discipline", A, &cursor).await;
    for e in &events {
        let text = format!("{e:?}");
        assert!(
            e.resource != correction.name
                && !text.contains("B-CANARY")
                && !text.contains(&sanction),
            "A's discipline learns from its feed what was written in B after the move: {e:?}"
        );
    }
    // The requester does read the correction, in its feed too.
    let (events, _) = changes_since(&server, "organization", A, "").await;
    assert!(events.iter().any(|e| e.resource == correction.name));
}
