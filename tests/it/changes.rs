//! The change feed through the real server: commit-ordered pages, views and redaction, cursors across retention and epochs, and watch streams.

use std::time::Duration;

use cadrex::proto::{self, change_event, record::Payload, watch_changes_response::Frame};
use prost::Message;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{Backend, TestServer};
use crate::common::{cadre, engagement, finding, one_of_each_kind, record, records_client, submit};

both_backends!(
    list_changes_in_order_with_views,
    expired_and_foreign_cursors_take_the_resnapshot_path,
    watch_streams_commits_retractions_and_bookmarks,
);

type Feed = proto::change_feed_service_client::ChangeFeedServiceClient<tonic::transport::Channel>;

async fn feed(server: &TestServer, agency: &str) -> Feed {
    Feed::new(server.channel(agency, "360821").await)
}

/// Every visible event from `cursor` on, paging until the cursor stops moving.
async fn drain(
    client: &mut Feed,
    mut cursor: String,
    kinds: Vec<i32>,
) -> (Vec<proto::ChangeEvent>, String) {
    let mut events = Vec::new();
    loop {
        let page = client
            .list_changes(proto::ListChangesRequest {
                after_cursor: cursor.clone(),
                kinds: kinds.clone(),
                page_size: 3,
            })
            .await
            .unwrap()
            .into_inner();
        events.extend(page.events);
        if page.next_cursor == cursor {
            return (events, cursor);
        }
        cursor = page.next_cursor;
    }
}

async fn list_changes_in_order_with_views(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 21).await;
    let canary = format!("FEED{}", uuid::Uuid::new_v4().simple());
    let all = one_of_each_kind(&server, &c, &canary).await;

    let (org, _) = drain(
        &mut feed(&server, "organization").await,
        String::new(),
        vec![],
    )
    .await;
    let seqs: Vec<i64> = org.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq order: {seqs:?}");
    assert!(
        org.iter()
            .any(|e| e.kind == proto::ChangeKind::Cadre as i32)
    );
    let petition = org
        .iter()
        .find(|e| e.resource == all["PETITION"].name)
        .expect("organization sees the petition summary");
    let Some(change_event::View::Record(r)) = &petition.view else {
        panic!()
    };
    assert!(matches!(r.payload, Some(Payload::PetitionSummary(_))));
    for e in &org {
        let bytes = e.encode_to_vec();
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "organization's feed carries petition content"
        );
    }
    // Audit's feed has no petitions at all, and findings in full.
    let (audit, _) = drain(&mut feed(&server, "audit").await, String::new(), vec![]).await;
    assert!(
        audit
            .iter()
            .all(|e| e.kind != proto::ChangeKind::Petition as i32)
    );
    assert!(
        audit
            .iter()
            .any(|e| e.kind == proto::ChangeKind::AuditFinding as i32)
    );
    // A kinds filter.
    let (findings, end) = drain(
        &mut feed(&server, "discipline").await,
        String::new(),
        vec![proto::ChangeKind::AuditFinding as i32],
    )
    .await;
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].resource, all["AUDIT_FINDING"].name);

    // Snapshot + tail: the first page of ListRecords carries a cursor; the feed
    // from there holds exactly what changed after the snapshot.
    let snap = records_client(server.channel("discipline", "360821").await)
        .list_records(proto::ListRecordsRequest {
            parent: "cadres/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        snap.cursor, end,
        "snapshot cursor and feed position agree when nothing changed in between"
    );
    records_client(server.channel("audit", "360821").await)
        .submit_record(submit(record(&c, "AF-NEW", 1, finding("AE-1", 1))))
        .await
        .unwrap();
    let (after, _) = drain(&mut feed(&server, "discipline").await, snap.cursor, vec![]).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].kind, proto::ChangeKind::AuditFinding as i32);
}

async fn expired_and_foreign_cursors_take_the_resnapshot_path(backend: Backend) {
    let mut server = TestServer::spawn_with(backend, |c| {
        c.change_retention = Duration::from_millis(300);
        c.prune_interval = Duration::from_millis(100);
    })
    .await;
    let c = cadre(&server, 22).await;
    let mut client = feed(&server, "discipline").await;
    let first = client
        .list_changes(proto::ListChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.events.len(), 1);
    let early = first.events[0].cursor.clone();
    let mut audit = records_client(server.channel("audit", "360821").await);
    audit
        .submit_record(submit(record(&c, "AE-1", 1, engagement())))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    audit
        .submit_record(submit(record(&c, "AF-1", 1, finding("AE-1", 5))))
        .await
        .unwrap();
    // The pruner keeps the newest change, so the engagement's row goes only
    // after the finding arrives; wait for a pass that passes the early cursor.
    let mut err = None;
    for _ in 0..100 {
        match client
            .list_changes(proto::ListChangesRequest {
                after_cursor: early.clone(),
                ..Default::default()
            })
            .await
        {
            Err(e) => {
                err = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let err = err.expect("the early cursor expires once its successor is pruned");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = err.get_details_error_info().unwrap();
    assert_eq!(info.reason, "CURSOR_EXPIRED");
    let oldest = info
        .metadata
        .get("oldest_cursor")
        .cloned()
        .expect("the oldest valid cursor");
    client
        .list_changes(proto::ListChangesRequest {
            after_cursor: oldest,
            ..Default::default()
        })
        .await
        .expect("the oldest cursor is valid");

    // Re-snapshot: ListRecords, then tail from its cursor.
    let snap = records_client(server.channel("discipline", "360821").await)
        .list_records(proto::ListRecordsRequest {
            parent: "cadres/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snap.records.len(), 2);
    let tail = client
        .list_changes(proto::ListChangesRequest {
            after_cursor: snap.cursor,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(tail.events.is_empty());

    // A cursor from another database (epoch) is refused the same way.
    let other = TestServer::spawn(backend).await;
    let foreign = Feed::new(other.channel("discipline", "360821").await)
        .list_changes(proto::ListChangesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .next_cursor;
    let err = client
        .list_changes(proto::ListChangesRequest {
            after_cursor: foreign,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "CURSOR_EXPIRED"
    );
    let err = client
        .list_changes(proto::ListChangesRequest {
            after_cursor: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.stop().await;
}

async fn next(
    s: &mut tonic::Streaming<proto::WatchChangesResponse>,
) -> proto::WatchChangesResponse {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("a frame in time")
        .expect("stream open")
        .expect("no error")
}

async fn watch_streams_commits_retractions_and_bookmarks(backend: Backend) {
    let server = TestServer::spawn_with(backend, |c| {
        c.watch_bookmark_interval = Duration::from_millis(300);
    })
    .await;
    let c = cadre(&server, 23).await;
    let mut stream = feed(&server, "discipline")
        .await
        .watch_changes(proto::WatchChangesRequest {
            after_cursor: String::new(),
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    // The backlog: the cadre.
    let Some(Frame::Event(e)) = next(&mut stream).await.frame else {
        panic!("event")
    };
    assert_eq!(e.resource, c.name);
    // Nothing visible: a bookmark.
    let Some(Frame::Bookmark(b)) = next(&mut stream).await.frame else {
        panic!("bookmark")
    };
    assert_eq!(b.cursor, e.cursor);
    // A commit is delivered promptly.
    let mut audit = records_client(server.channel("audit", "360821").await);
    audit
        .submit_record(submit(record(&c, "AE-1", 1, engagement())))
        .await
        .unwrap();
    let frame = loop {
        match next(&mut stream).await.frame {
            Some(Frame::Event(e)) => break e,
            Some(Frame::Bookmark(_)) => continue,
            None => panic!(),
        }
    };
    assert_eq!(frame.kind, proto::ChangeKind::AuditEngagement as i32);
    let Some(change_event::View::Record(r)) = frame.view else {
        panic!()
    };
    audit
        .retract_record(proto::RetractRecordRequest {
            name: r.name.clone(),
            reason: "重复报送".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
    let retract = loop {
        match next(&mut stream).await.frame {
            Some(Frame::Event(e)) => break e,
            _ => continue,
        }
    };
    assert_eq!(retract.op, proto::ChangeOp::Retract as i32);
    let Some(change_event::View::Record(t)) = retract.view else {
        panic!()
    };
    assert_eq!(t.view, proto::RecordView::Tombstone as i32);
    // The stream's deliveries are in the access log.
    let events = server
        .access_log("discipline", "360821")
        .await
        .list_access_events(proto::ListAccessEventsRequest {
            method: "/cadrex.v1.ChangeFeedService/WatchChanges".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    assert!(
        events.len() >= 3,
        "one row on open and one per delivered batch: {}",
        events.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_ends_open_watch_streams() {
    let mut server = TestServer::spawn(Backend::Sqlite).await;
    cadre(&server, 24).await;
    let mut stream = feed(&server, "discipline")
        .await
        .watch_changes(proto::WatchChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let _ = next(&mut stream).await;
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown does not wait for watchers to leave");
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends");
    match end {
        Some(Err(e)) => assert_eq!(e.code(), Code::Unavailable, "{e:?}"),
        None => {}
        Some(Ok(frame)) => panic!("unexpected frame {frame:?}"),
    }
}
