//! The storage test suite, written once and run against SQLite and (when configured) PostgreSQL.

use std::sync::Arc;

use super::*;
use crate::access_log;
use crate::domain::chain::LogEntry;
use crate::domain::clock::now_us;
use crate::domain::states::{ChangeOp, RecordState, RequestState};

/// A fresh store per test: a temporary SQLite file, or a new PostgreSQL
/// database (the shared `TestDb`, dropped with the fixture even when the test
/// panics).
struct Fixture {
    url: String,
    _dir: Option<tempfile::TempDir>,
    _db: Option<test_db::TestDb>,
}

impl Fixture {
    async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        Fixture {
            url,
            _dir: Some(dir),
            _db: None,
        }
    }

    async fn postgres() -> Option<Fixture> {
        let db = test_db::TestDb::if_configured().await?;
        Some(Fixture {
            url: db.url.clone(),
            _dir: None,
            _db: Some(db),
        })
    }
}

fn entry(i: usize) -> LogEntry {
    LogEntry {
        principal: format!("urn:cadrex:system:audit:360821:s{}", i % 7),
        method: "/cadrex.v1.CadreService/GetCadre".into(),
        resources: vec![format!("cadres/c{}", i % 5)],
        decision: "ALLOW".into(),
        ..Default::default()
    }
}

/// Two independent stores on one database (as two server processes would
/// have) append concurrently; the chain must stay one gap-free, valid line.
async fn concurrent_appends_keep_one_chain(url: &str) {
    let a = connect(url).await.unwrap();
    let b = connect(url).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s: Arc<dyn Store> = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let batch: Vec<LogEntry> =
                    (0..(1 + (i % 3))).map(|k| entry(t * 100 + i + k)).collect();
                s.append_log(&batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (head, _) = a.log_head().await.unwrap();
    assert_eq!(
        head,
        8 * (7 + 7 * 2 + 6 * 3),
        "every appended row is in the chain"
    );
    let report = access_log::verify(&*a, None, None).await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.end_seq, head);
    let by_cadre = a
        .list_access_events(&LogQuery {
            cadre: Some("cadres/c1".into()),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!by_cadre.is_empty());
    assert!(
        by_cadre
            .iter()
            .all(|h| h.row.entry.resources == ["cadres/c1"])
    );
    a.close().await;
    b.close().await;
}

async fn cadre_round_trip_and_conflicts(url: &str) {
    let s = connect(url).await.unwrap();
    let meta = |rev| WriteMeta {
        log: entry(0),
        changes: vec![Change {
            op: crate::domain::states::ChangeOp::Upsert,
            resource: "cadres/a".into(),
            kind: "CADRE".into(),
            revision: rev,
            division: "360821".into(),
            from_division: None,
        }],
        idempotency: None,
    };
    let row = CadreRow {
        id: "a".into(),
        id_number: "11010519491231002X".into(),
        display_name: "张三".into(),
        gender: 2,
        birth_date: "1949-12-31".into(),
        managing_division: "360821".into(),
        posts: vec![PostRow {
            unit_name: "u".into(),
            ..Default::default()
        }],
        revision: 1,
        create_time_us: 1,
        update_time_us: 1,
    };
    s.create_cadre(&row, meta(1)).await.unwrap();
    assert_eq!(s.get_cadre("a").await.unwrap().as_ref(), Some(&row));
    assert_eq!(s.get_cadre("zz").await.unwrap(), None);
    let mut dup = row.clone();
    dup.id = "b".into();
    assert!(matches!(
        s.create_cadre(&dup, meta(1)).await,
        Err(crate::Error::AlreadyExists(_))
    ));
    let mut next = row.clone();
    next.revision = 2;
    next.display_name = "李四".into();
    s.update_cadre(&next, 1, meta(2)).await.unwrap();
    assert!(matches!(
        s.update_cadre(&next, 1, meta(2)).await,
        Err(crate::Error::Aborted { .. })
    ));
    let mut gone = next.clone();
    gone.id = "nope".into();
    assert!(matches!(
        s.update_cadre(&gone, 2, meta(3)).await,
        Err(crate::Error::NotFound(_))
    ));
    let listed = s
        .list_cadres(&CadreQuery {
            jurisdiction_prefix: "36".into(),
            name: Some("李".into()),
            name_is_prefix: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let none = s
        .list_cadres(&CadreQuery {
            jurisdiction_prefix: "3602".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    // Two writes logged inside their transactions.
    assert_eq!(s.log_head().await.unwrap().0, 2);
    s.close().await;
}

/// Many writers on many connections while a reader tails `seq > last_seen`:
/// the reader must see every seq, in order, with no gap it could never fill
/// (commit order equals seq order).
async fn outbox_commit_order_equals_seq_order(url: &str) {
    let s = connect(url).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let s = s.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let rows = s.list_changes(last, 10_000).await.unwrap();
                for r in &rows {
                    seen.push(r.seq);
                    last = r.seq;
                }
                if finished && rows.is_empty() {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..12u32 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..15u32 {
                let n = w * 15 + i;
                let first17 = format!("36082119800101{n:03}");
                let id_number = format!(
                    "{first17}{}",
                    crate::domain::ids::id_number_check_char(first17.as_bytes()) as char
                );
                let row = CadreRow {
                    id: format!("w{w}i{i}"),
                    id_number,
                    display_name: "并发".into(),
                    gender: 1,
                    birth_date: "1980-01-01".into(),
                    managing_division: "360821".into(),
                    revision: 1,
                    ..Default::default()
                };
                let meta = WriteMeta {
                    log: entry(n as usize),
                    changes: vec![Change {
                        op: crate::domain::states::ChangeOp::Upsert,
                        resource: format!("cadres/w{w}i{i}"),
                        kind: "CADRE".into(),
                        revision: 1,
                        division: "360821".into(),
                        from_division: None,
                    }],
                    idempotency: None,
                };
                s.create_cadre(&row, meta).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let expected: Vec<i64> = (1..=180).collect();
    assert_eq!(
        seen, expected,
        "the tailing reader saw every change exactly once, in order"
    );
    s.close().await;
}

/// A request becomes REPLIED with the reply to its last cadre (one more
/// outbox row for the request), and a withdrawn request takes neither replies
/// nor a second withdrawal.
async fn opinion_request_states(url: &str) {
    let s = connect(url).await.unwrap();
    let meta = || WriteMeta {
        log: entry(0),
        changes: Vec::new(),
        idempotency: None,
    };
    for (id, number) in [("a", "11010519491231002X"), ("b", "110105194912310038")] {
        let cadre = CadreRow {
            id: id.into(),
            id_number: number.into(),
            display_name: "张三".into(),
            birth_date: "1949-12-31".into(),
            managing_division: "360821".into(),
            revision: 1,
            ..Default::default()
        };
        s.create_cadre(&cadre, meta()).await.unwrap();
    }
    let request = |id: &str| OpinionRequestRow {
        id: id.into(),
        requester: "urn:cadrex:system:organization:3608:s".into(),
        requester_agency: "organization".into(),
        requester_division: "3608".into(),
        purpose: "PROMOTION".into(),
        due_date: "2030-01-01".into(),
        state: crate::domain::states::RequestState::Pending,
        revision: 1,
        cadres: vec!["a".into(), "b".into()],
        ..Default::default()
    };
    let reply = |id: &str, request_id: &str, cadre_id: &str| ReplyRow {
        id: id.into(),
        request_id: request_id.into(),
        cadre_id: cadre_id.into(),
        verdict: "NO_OBJECTION".into(),
        revision: 1,
        ..Default::default()
    };
    // The list lookups bind their lists per backend (`json_each`, `= ANY`).
    let ids = |rows: Vec<CadreRow>| {
        let mut ids: Vec<String> = rows.into_iter().map(|c| c.id).collect();
        ids.sort();
        ids
    };
    let wanted = ["b".to_string(), "zz".into(), "a".into()];
    assert_eq!(ids(s.get_cadres(&wanted).await.unwrap()), ["a", "b"]);
    assert!(s.get_cadres(&[]).await.unwrap().is_empty());
    let numbers = ["110105194912310038".to_string()];
    assert_eq!(
        ids(s.get_cadres_by_id_numbers(&numbers).await.unwrap()),
        ["b"]
    );

    s.create_opinion_request(&request("r1"), meta())
        .await
        .unwrap();
    let head = s.change_head().await.unwrap();
    let after_one = s
        .add_opinion_reply(&reply("p1", "r1", "a"), meta())
        .await
        .unwrap();
    assert_eq!(
        after_one.state,
        crate::domain::states::RequestState::Pending
    );
    assert_eq!(
        s.change_head().await.unwrap(),
        head,
        "no request change yet"
    );
    let after_all = s
        .add_opinion_reply(&reply("p2", "r1", "b"), meta())
        .await
        .unwrap();
    assert_eq!(
        after_all.state,
        crate::domain::states::RequestState::Replied
    );
    assert_eq!(after_all.revision, 2);
    let changes = s.list_changes(head, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].resource, "opinionRequests/r1");
    assert_eq!(changes[0].revision, 2);
    assert_eq!(s.opinion_replies("r1").await.unwrap().len(), 2);
    assert!(matches!(
        s.withdraw_opinion_request("r1", "late", meta()).await,
        Err(crate::Error::FailedPrecondition { .. })
    ));

    s.create_opinion_request(&request("r2"), meta())
        .await
        .unwrap();
    let withdrawn = s
        .withdraw_opinion_request("r2", "no longer", meta())
        .await
        .unwrap();
    assert_eq!(
        withdrawn.state,
        crate::domain::states::RequestState::Withdrawn
    );
    assert!(matches!(
        s.add_opinion_reply(&reply("p3", "r2", "a"), meta()).await,
        Err(crate::Error::FailedPrecondition {
            reason: crate::error::Reason::RequestWithdrawn,
            ..
        })
    ));
    assert!(s.opinion_replies("r2").await.unwrap().is_empty());
    assert!(matches!(
        s.add_opinion_reply(&reply("p4", "nope", "a"), meta()).await,
        Err(crate::Error::NotFound(_))
    ));
    s.close().await;
}

// Fixtures of the contract tests below: small, valid rows.

/// A valid id number, distinct for each `n` below 1000.
fn id_number(n: u32) -> String {
    let first17 = format!("11010519800101{n:03}");
    let check = crate::domain::ids::id_number_check_char(first17.as_bytes()) as char;
    format!("{first17}{check}")
}

fn cadre(id: &str, n: u32, division: &str, name: &str) -> CadreRow {
    CadreRow {
        id: id.into(),
        id_number: id_number(n),
        display_name: name.into(),
        gender: 1,
        birth_date: "1980-01-01".into(),
        managing_division: division.into(),
        revision: 1,
        create_time_us: 1,
        update_time_us: 1,
        ..Default::default()
    }
}

/// What a write records beside its data when the test needs nothing else.
fn bare_meta() -> WriteMeta {
    WriteMeta {
        log: entry(0),
        changes: Vec::new(),
        idempotency: None,
    }
}

/// The meta of a cadre's creation, with its outbox row.
fn cadre_meta(c: &CadreRow) -> WriteMeta {
    WriteMeta {
        changes: vec![Change {
            op: ChangeOp::Upsert,
            resource: format!("cadres/{}", c.id),
            kind: "CADRE".into(),
            revision: c.revision,
            division: c.managing_division.clone(),
            from_division: None,
        }],
        ..bare_meta()
    }
}

async fn add_cadre(s: &dyn Store, c: &CadreRow) {
    s.create_cadre(c, cadre_meta(c)).await.unwrap();
}

fn idempotency(request_id: &str) -> Idempotency {
    Idempotency {
        system: "sys-a".into(),
        request_id: request_id.into(),
        method: "/cadrex.v1.RecordService/BatchSubmitRecords".into(),
        request_sha256: "ab".repeat(32),
        response: vec![1, 2, 3],
    }
}

/// Version `version` of source record `sid` of system `sys-a` about `cadre`.
fn record(cadre: &CadreRow, sid: &str, version: i64, sha: &str) -> RecordRow {
    RecordRow {
        id: format!("{sid}v{version}"),
        cadre_id: cadre.id.clone(),
        kind: "AUDIT_FINDING".into(),
        owner_system: "sys-a".into(),
        owner_agency: "audit".into(),
        owner_division: "360821".into(),
        source_record_id: sid.into(),
        source_version: version,
        event_date: "2024-01-01".into(),
        classification: "INTERNAL".into(),
        payload: sha.as_bytes().to_vec(),
        payload_sha256: sha.into(),
        submitting_system: "sys-a".into(),
        division: cadre.managing_division.clone(),
        ..Default::default()
    }
}

/// `row` carrying `payload` as the store keeps it (the encoded `Record`
/// holding only its payload), for tests that need the store to read it.
fn carrying(mut row: RecordRow, payload: crate::proto::record::Payload) -> RecordRow {
    use prost::Message;
    row.payload = crate::proto::Record {
        payload: Some(payload),
        ..Default::default()
    }
    .encode_to_vec();
    row
}

/// An audit finding's payload: a matter on record.
fn finding_payload() -> crate::proto::record::Payload {
    crate::proto::record::Payload::AuditFinding(crate::proto::AuditFinding::default())
}

/// A personal-matters check's payload with `result`.
fn check_payload(result: crate::proto::PersonalMattersResult) -> crate::proto::record::Payload {
    crate::proto::record::Payload::PersonalMattersCheck(crate::proto::PersonalMattersCheck {
        result: result as i32,
        check_date: "2024-01-01".into(),
        ..Default::default()
    })
}

/// The digest key the suite's batches compare payload digests with.
fn suite_key() -> crate::digest::DigestKey {
    crate::digest::DigestKey::from_bytes(&[5u8; 32])
}

/// Submits a batch whose log row is `entry(0)` and which keeps no response.
async fn submit(s: &dyn Store, items: Vec<RecordRow>) -> Vec<crate::error::Result<SubmitOutcome>> {
    s.submit_records(items, &suite_key(), &|_: &[crate::error::Result<
        SubmitOutcome,
    >]| { (entry(0), None) })
        .await
        .unwrap()
}

fn written(o: &crate::error::Result<SubmitOutcome>) -> RecordRow {
    match o {
        Ok(SubmitOutcome::Written(r)) => r.clone(),
        other => panic!("expected a write, got {other:?}"),
    }
}

fn ids_of<T>(rows: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    rows.iter().map(|r| id(r).to_string()).collect()
}

fn is_aborted(r: &crate::error::Result<impl std::fmt::Debug>, reason: &str) -> bool {
    matches!(r, Err(crate::Error::Aborted { reason: got, .. }) if got.as_str() == reason)
}

/// `backend()` names the backend of the URL; a database keeps its epoch
/// across connections until `renew_epoch` replaces it for every connection.
async fn admin_backend_epoch_and_renew_epoch(url: &str) {
    let s = connect(url).await.unwrap();
    let expected = if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(s.backend(), expected);
    let first = s.epoch().await.unwrap();
    assert!(!first.is_empty());
    let other = connect(url).await.unwrap();
    assert_eq!(
        other.epoch().await.unwrap(),
        first,
        "connecting again keeps the epoch"
    );
    let renewed = s.renew_epoch().await.unwrap();
    assert_ne!(renewed, first);
    assert_eq!(s.epoch().await.unwrap(), renewed);
    assert_eq!(other.epoch().await.unwrap(), renewed);
    other.close().await;
    s.close().await;
}

/// SQLite: a backup opened as a store reads the same data and epoch (a
/// restore renews it afterwards). PostgreSQL: FAILED_PRECONDITION USE_PG_DUMP
/// and no file.
async fn admin_backup_then_connect_reads_the_same_data(url: &str) {
    let s = connect(url).await.unwrap();
    let a = cadre("a", 1, "360821", "张三");
    add_cadre(&*s, &a).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.db");
    if s.backend() == "sqlite" {
        s.backup(&out).await.unwrap();
        let copy = connect(&format!("sqlite://{}", out.display()))
            .await
            .unwrap();
        assert_eq!(copy.get_cadre("a").await.unwrap(), Some(a));
        assert_eq!(copy.log_head().await.unwrap(), s.log_head().await.unwrap());
        assert_eq!(
            copy.list_changes(0, 10).await.unwrap(),
            s.list_changes(0, 10).await.unwrap()
        );
        assert_eq!(copy.epoch().await.unwrap(), s.epoch().await.unwrap());
        copy.close().await;
    } else {
        assert!(matches!(
            s.backup(&out).await,
            Err(crate::Error::FailedPrecondition {
                reason: crate::error::Reason::UsePgDump,
                ..
            })
        ));
        assert!(!out.exists());
    }
    s.close().await;
}

/// After `close` the store answers UNAVAILABLE instead of hanging.
async fn admin_close_makes_later_calls_unavailable(url: &str) {
    let s = connect(url).await.unwrap();
    s.close().await;
    assert!(matches!(
        s.get_cadre("a").await,
        Err(crate::Error::Unavailable(_))
    ));
}

/// The stored response is found by (system, request id) only; a write
/// reusing a taken id is refused whole.
async fn lookup_request_finds_the_response_stored_with_the_write(url: &str) {
    let s = connect(url).await.unwrap();
    assert_eq!(s.lookup_request("sys-a", "r1").await.unwrap(), None);
    let stored = idempotency("r1");
    let a = cadre("a", 1, "360821", "张三");
    let meta = WriteMeta {
        idempotency: Some(stored.clone()),
        ..cadre_meta(&a)
    };
    s.create_cadre(&a, meta.clone()).await.unwrap();
    assert_eq!(s.lookup_request("sys-a", "r1").await.unwrap(), Some(stored));
    assert_eq!(
        s.lookup_request("sys-b", "r1").await.unwrap(),
        None,
        "request ids are scoped to the calling system"
    );
    let head = (s.log_head().await.unwrap(), s.change_head().await.unwrap());
    let b = cadre("b", 2, "360821", "李四");
    assert!(matches!(
        s.create_cadre(&b, meta).await,
        Err(crate::Error::AlreadyExists(_))
    ));
    assert_eq!(s.get_cadre("b").await.unwrap(), None);
    assert_eq!(
        (s.log_head().await.unwrap(), s.change_head().await.unwrap()),
        head,
        "nothing of the refused write remains"
    );
    s.close().await;
}

/// `create_cadres` stores each item alone: a registered id number fails that
/// item only; the others, their outbox rows, the batch's log row and its
/// response are written together.
async fn create_cadres_fails_a_duplicate_alone(url: &str) {
    let s = connect(url).await.unwrap();
    add_cadre(&*s, &cadre("a", 1, "360821", "张三")).await;
    let (log0, changes0) = (
        s.log_head().await.unwrap().0,
        s.change_head().await.unwrap(),
    );
    let seen = std::sync::Mutex::new(Vec::new());
    let finish = |out: &[crate::error::Result<()>]| {
        *seen.lock().unwrap() = out.iter().map(|r| r.is_ok()).collect::<Vec<bool>>();
        (entry(1), Some(idempotency("batch")))
    };
    let items = vec![
        cadre("b", 2, "360821", "李四"),
        cadre("dup", 1, "360821", "重复"),
        cadre("c", 3, "360822", "王五"),
    ];
    let out = s.create_cadres(items, &finish).await.unwrap();
    assert!(out[0].is_ok() && out[2].is_ok());
    assert!(matches!(out[1], Err(crate::Error::AlreadyExists(_))));
    assert_eq!(*seen.lock().unwrap(), [true, false, true]);
    assert_eq!(s.get_cadre("dup").await.unwrap(), None);
    assert_eq!(
        s.get_cadre("c").await.unwrap().map(|c| c.managing_division),
        Some("360822".to_string())
    );
    let changes = s.list_changes(changes0, 10).await.unwrap();
    let got: Vec<(i64, &str, &str, &str)> = changes
        .iter()
        .map(|c| (c.seq, c.op.as_str(), c.resource.as_str(), c.kind.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (changes0 + 1, "UPSERT", "cadres/b", "CADRE"),
            (changes0 + 2, "UPSERT", "cadres/c", "CADRE")
        ]
    );
    assert_eq!(
        s.log_head().await.unwrap().0,
        log0 + 1,
        "one log row per batch"
    );
    assert!(s.lookup_request("sys-a", "batch").await.unwrap().is_some());
    s.close().await;
}

/// A cadre is found by its id number; an unregistered number is `Ok(None)`.
async fn get_cadre_by_id_number_finds_the_registered_cadre(url: &str) {
    let s = connect(url).await.unwrap();
    let a = cadre("a", 1, "360821", "张三");
    add_cadre(&*s, &a).await;
    assert_eq!(
        s.get_cadre_by_id_number(&id_number(1)).await.unwrap(),
        Some(a)
    );
    assert_eq!(s.get_cadre_by_id_number(&id_number(2)).await.unwrap(), None);
    s.close().await;
}

/// Jurisdiction and division prefixes, exact and prefix names, keyset pages
/// in id order.
async fn list_cadres_filters_and_pages(url: &str) {
    let s = connect(url).await.unwrap();
    for c in [
        cadre("d", 4, "360921", "王四"),
        cadre("b", 2, "360821", "王二"),
        cadre("a", 1, "360821", "王一"),
        cadre("c", 3, "360822", "李三"),
    ] {
        add_cadre(&*s, &c).await;
    }
    let list = |q: CadreQuery| {
        let s = s.clone();
        async move {
            let rows = s.list_cadres(&q).await.unwrap();
            ids_of(&rows, |c| &c.id)
        }
    };
    let all = CadreQuery {
        jurisdiction_prefix: "36".into(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(list(all.clone()).await, ["a", "b", "c", "d"]);
    assert_eq!(
        list(CadreQuery {
            jurisdiction_prefix: "3608".into(),
            ..all.clone()
        })
        .await,
        ["a", "b", "c"]
    );
    assert_eq!(
        list(CadreQuery {
            division_prefix: Some("360822".into()),
            ..all.clone()
        })
        .await,
        ["c"]
    );
    assert_eq!(
        list(CadreQuery {
            name: Some("王一".into()),
            ..all.clone()
        })
        .await,
        ["a"]
    );
    assert!(
        list(CadreQuery {
            name: Some("王".into()),
            ..all.clone()
        })
        .await
        .is_empty(),
        "a name without name_is_prefix matches exactly"
    );
    assert_eq!(
        list(CadreQuery {
            name: Some("王".into()),
            name_is_prefix: true,
            ..all.clone()
        })
        .await,
        ["a", "b", "d"]
    );
    assert_eq!(
        list(CadreQuery {
            limit: 2,
            ..all.clone()
        })
        .await,
        ["a", "b"]
    );
    assert_eq!(
        list(CadreQuery {
            after_id: Some("b".into()),
            limit: 2,
            ..all.clone()
        })
        .await,
        ["c", "d"]
    );
    assert!(
        list(CadreQuery {
            after_id: Some("d".into()),
            ..all
        })
        .await
        .is_empty()
    );
    s.close().await;
}

/// Per item: Written with the next change seq as revision, Unchanged, Stale
/// (also against versions stored by earlier batches), Aborted
/// VERSION_CONFLICT; good items are stored beside failing ones, with one log
/// row and the response per batch. Also the lookups by id and by source id.
async fn submit_records_written_unchanged_stale_and_conflict(url: &str) {
    let s = connect(url).await.unwrap();
    let a = cadre("a", 1, "360821", "张三");
    add_cadre(&*s, &a).await;
    let head = s.change_head().await.unwrap();
    let log0 = s.log_head().await.unwrap().0;
    let finish = |_: &[crate::error::Result<SubmitOutcome>]| (entry(1), Some(idempotency("b1")));
    let first = s
        .submit_records(
            vec![record(&a, "s1", 1, "x1"), record(&a, "s2", 1, "y1")],
            &suite_key(),
            &finish,
        )
        .await
        .unwrap();
    let (s1, s2) = (written(&first[0]), written(&first[1]));
    assert_eq!((s1.revision, s2.revision), (head + 1, head + 2));
    assert_eq!(s1.state, RecordState::Active);
    assert_eq!(s.get_record(&s1.id).await.unwrap(), Some(s1.clone()));
    assert_eq!(s.get_record("missing").await.unwrap(), None);
    assert!(s.lookup_request("sys-a", "b1").await.unwrap().is_some());
    assert_eq!(s.log_head().await.unwrap().0, log0 + 1);
    let changes = s.list_changes(head, 10).await.unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].op, "UPSERT");
    assert_eq!(changes[0].resource, format!("cadres/a/records/{}", s1.id));
    assert_eq!(
        (changes[0].kind.as_str(), changes[0].revision),
        ("AUDIT_FINDING", s1.revision)
    );

    let second = submit(
        &*s,
        vec![
            record(&a, "s1", 2, "x2"),
            record(&a, "s2", 1, "y1"),
            record(&a, "s2", 1, "other"),
        ],
    )
    .await;
    let s1v2 = written(&second[0]);
    assert_eq!(
        (s1v2.id.as_str(), s1v2.revision),
        (s1.id.as_str(), head + 3)
    );
    assert!(matches!(&second[1], Ok(SubmitOutcome::Unchanged(r)) if *r == s2));
    assert!(is_aborted(&second[2], "VERSION_CONFLICT"));
    assert_eq!(
        s.change_head().await.unwrap(),
        head + 3,
        "failures write no change"
    );
    assert_eq!(s.get_record(&s1.id).await.unwrap(), Some(s1v2.clone()));

    let third = submit(
        &*s,
        vec![record(&a, "s1", 1, "x1"), record(&a, "s1", 1, "changed")],
    )
    .await;
    assert!(matches!(&third[0], Ok(SubmitOutcome::Stale(r)) if *r == s1v2));
    assert!(is_aborted(&third[1], "VERSION_CONFLICT"));

    assert_eq!(
        s.find_record("sys-a", "s1").await.unwrap(),
        Some(s1v2.clone())
    );
    assert_eq!(s.find_record("sys-b", "s1").await.unwrap(), None);
    let wanted = ["s2".to_string(), "nope".into(), "s1".into()];
    let mut found = ids_of(&s.find_records("sys-a", &wanted).await.unwrap(), |r| {
        &r.source_record_id
    });
    found.sort();
    assert_eq!(found, ["s1", "s2"]);
    assert!(s.find_records("sys-a", &[]).await.unwrap().is_empty());
    s.close().await;
}

/// Retraction takes the next change seq as revision and writes a RETRACT
/// change; a stale revision is CONCURRENT_MODIFICATION, a missing record NotFound.
async fn retract_record_takes_a_new_revision(url: &str) {
    let s = connect(url).await.unwrap();
    let a = cadre("a", 1, "360821", "张三");
    add_cadre(&*s, &a).await;
    let row = written(&submit(&*s, vec![record(&a, "s1", 1, "x1")]).await[0]);
    assert!(matches!(
        s.retract_record("nope", 1, "why", "sys-b", entry(0)).await,
        Err(crate::Error::NotFound(_))
    ));
    assert!(is_aborted(
        &s.retract_record(&row.id, row.revision + 100, "why", "sys-b", entry(0))
            .await,
        "CONCURRENT_MODIFICATION"
    ));
    let (head, log0) = (
        s.change_head().await.unwrap(),
        s.log_head().await.unwrap().0,
    );
    let out = s
        .retract_record(&row.id, row.revision, "entered in error", "sys-b", entry(0))
        .await
        .unwrap();
    assert_eq!(out.state, RecordState::Retracted);
    assert_eq!(out.retraction_reason, "entered in error");
    assert_eq!(out.submitting_system, "sys-b");
    assert_eq!(out.revision, head + 1);
    assert_eq!(s.get_record(&row.id).await.unwrap(), Some(out.clone()));
    let changes = s.list_changes(head, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].op, "RETRACT");
    assert_eq!(changes[0].revision, out.revision);
    assert_eq!(changes[0].resource, format!("cadres/a/records/{}", row.id));
    assert_eq!(s.log_head().await.unwrap().0, log0 + 1);
    assert!(is_aborted(
        &s.retract_record(&row.id, row.revision, "again", "sys-b", entry(0))
            .await,
        "CONCURRENT_MODIFICATION"
    ));
    s.close().await;
}

/// Only existing records of cadres inside the jurisdiction; no ids, no rows.
async fn get_records_keeps_to_the_jurisdiction(url: &str) {
    let s = connect(url).await.unwrap();
    let (a, b) = (
        cadre("a", 1, "360821", "张三"),
        cadre("b", 2, "360921", "李四"),
    );
    add_cadre(&*s, &a).await;
    add_cadre(&*s, &b).await;
    let rows = submit(
        &*s,
        vec![record(&a, "s1", 1, "x"), record(&b, "s2", 1, "y")],
    )
    .await;
    let (ra, rb) = (written(&rows[0]), written(&rows[1]));
    let ids = [rb.id.clone(), "missing".into(), ra.id.clone()];
    let mut all = ids_of(&s.get_records(&ids, "").await.unwrap(), |r| &r.id);
    all.sort();
    assert_eq!(all, [ra.id.clone(), rb.id.clone()]);
    assert_eq!(s.get_records(&ids, "3608").await.unwrap(), [ra]);
    assert!(s.get_records(&[], "").await.unwrap().is_empty());
    s.close().await;
}

/// Cadre or jurisdiction, kinds (none when empty), state, update times, the
/// revision snapshot, keyset pages in id order.
async fn list_records_filters_snapshot_and_pages(url: &str) {
    let s = connect(url).await.unwrap();
    let (a, b) = (
        cadre("a", 1, "360821", "张三"),
        cadre("b", 2, "360921", "李四"),
    );
    add_cadre(&*s, &a).await;
    add_cadre(&*s, &b).await;
    let mut sanction = record(&a, "s2", 1, "y");
    sanction.kind = "SANCTION".into();
    let rows = submit(
        &*s,
        vec![record(&a, "s1", 1, "x"), sanction, record(&b, "s3", 1, "z")],
    )
    .await;
    let (r1, r2) = (written(&rows[0]), written(&rows[1]));
    s.retract_record(&r2.id, r2.revision, "why", "sys-a", entry(0))
        .await
        .unwrap();
    let all = RecordQuery {
        jurisdiction_prefix: String::new(),
        kinds: vec!["AUDIT_FINDING".into(), "SANCTION".into()],
        max_revision: i64::MAX,
        limit: 10,
        ..Default::default()
    };
    let list = |q: RecordQuery| {
        let s = s.clone();
        async move { ids_of(&s.list_records(&q).await.unwrap(), |r| &r.source_record_id) }
    };
    assert_eq!(list(all.clone()).await, ["s1", "s2", "s3"]);
    assert_eq!(
        list(RecordQuery {
            cadre_id: Some("a".into()),
            ..all.clone()
        })
        .await,
        ["s1", "s2"]
    );
    assert_eq!(
        list(RecordQuery {
            jurisdiction_prefix: "3609".into(),
            ..all.clone()
        })
        .await,
        ["s3"]
    );
    assert!(
        list(RecordQuery {
            kinds: Vec::new(),
            ..all.clone()
        })
        .await
        .is_empty(),
        "no kinds means none"
    );
    assert_eq!(
        list(RecordQuery {
            kinds: vec!["SANCTION".into()],
            ..all.clone()
        })
        .await,
        ["s2"]
    );
    assert_eq!(
        list(RecordQuery {
            state: Some(RecordState::Active),
            ..all.clone()
        })
        .await,
        ["s1", "s3"]
    );
    assert_eq!(
        list(RecordQuery {
            max_revision: r1.revision,
            ..all.clone()
        })
        .await,
        ["s1"],
        "a snapshot hides what was written after it"
    );
    assert!(
        list(RecordQuery {
            updated_from_us: Some(now_us() + 60_000_000),
            ..all.clone()
        })
        .await
        .is_empty()
    );
    assert!(
        list(RecordQuery {
            updated_before_us: Some(r1.update_time_us),
            ..all.clone()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(RecordQuery {
            limit: 1,
            ..all.clone()
        })
        .await,
        ["s1"]
    );
    assert_eq!(
        list(RecordQuery {
            after_id: Some(r1.id.clone()),
            ..all
        })
        .await,
        ["s2", "s3"]
    );
    s.close().await;
}

/// The last write or retraction of a record that was a matter before or
/// after it (DESIGN §6); `None` without one. Records that are not matters —
/// an evaluation, a CONSISTENT personal-matters check — do not count, but
/// correcting a CONCEALED check to CONSISTENT does.
async fn last_matter_write_us_counts_matter_kinds_only(url: &str) {
    use crate::proto::PersonalMattersResult::{Concealed, Consistent};
    let s = connect(url).await.unwrap();
    let a = cadre("a", 1, "360821", "张三");
    add_cadre(&*s, &a).await;
    let last = || async { s.last_matter_write_us("a").await.unwrap() };
    assert_eq!(last().await, None);
    let mut evaluation = record(&a, "e1", 1, "e");
    evaluation.kind = "EVALUATION".into();
    let evaluation = carrying(
        evaluation,
        crate::proto::record::Payload::Evaluation(Default::default()),
    );
    let evaluation = written(&submit(&*s, vec![evaluation]).await[0]);
    let mut check = record(&a, "p1", 1, "p");
    check.kind = "PERSONAL_MATTERS_CHECK".into();
    submit(
        &*s,
        vec![carrying(check.clone(), check_payload(Consistent))],
    )
    .await;
    assert_eq!(last().await, None, "neither is a matter");
    s.retract_record(
        &evaluation.id,
        evaluation.revision,
        "why",
        "sys-a",
        entry(0),
    )
    .await
    .unwrap();
    assert_eq!(last().await, None, "retracting what is no matter");

    let finding = written(
        &submit(
            &*s,
            vec![carrying(record(&a, "s1", 1, "x"), finding_payload())],
        )
        .await[0],
    );
    assert_eq!(last().await, Some(finding.update_time_us));
    let retracted = s
        .retract_record(&finding.id, finding.revision, "why", "sys-a", entry(0))
        .await
        .unwrap();
    assert_eq!(last().await, Some(retracted.update_time_us));

    let mut concealed = check.clone();
    concealed.source_version = 2;
    concealed.payload_sha256 = "p2".into();
    let concealed =
        written(&submit(&*s, vec![carrying(concealed, check_payload(Concealed))]).await[0]);
    assert_eq!(
        last().await,
        Some(concealed.update_time_us),
        "a matter after"
    );
    let mut corrected = check;
    corrected.source_version = 3;
    corrected.payload_sha256 = "p3".into();
    let corrected =
        written(&submit(&*s, vec![carrying(corrected, check_payload(Consistent))]).await[0]);
    assert_eq!(
        last().await,
        Some(corrected.update_time_us),
        "a matter before"
    );
    s.close().await;
}

/// An update that changes the managing division writes, in its transaction,
/// the cadre's row with the division left and one row per record at the
/// record's own revision, and records the move with the last matter-write
/// time; an update that keeps the division writes neither.
async fn a_move_writes_its_rows_and_is_recorded(url: &str) {
    let s = connect(url).await.unwrap();
    let a = cadre("a", 1, "360821", "张三");
    add_cadre(&*s, &a).await;
    let finding = written(
        &submit(
            &*s,
            vec![carrying(record(&a, "s1", 1, "x"), finding_payload())],
        )
        .await[0],
    );
    let mut renamed = a.clone();
    renamed.display_name = "张叁".into();
    renamed.revision = 2;
    s.update_cadre(&renamed, 1, cadre_meta(&renamed))
        .await
        .unwrap();
    assert!(s.cadre_moves("a").await.unwrap().is_empty());
    let head = s.change_head().await.unwrap();
    let mut moved = renamed.clone();
    moved.managing_division = "360802".into();
    moved.revision = 3;
    moved.update_time_us = 77;
    s.update_cadre(&moved, 2, cadre_meta(&moved)).await.unwrap();
    let rows = s.list_changes(head, 100).await.unwrap();
    let seen: Vec<(&str, i64, &str, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.resource.as_str(),
                r.revision,
                r.division.as_str(),
                r.from_division.as_deref(),
            )
        })
        .collect();
    let record_name = format!("cadres/a/records/{}", finding.id);
    assert_eq!(
        seen,
        [
            ("cadres/a", 3, "360802", Some("360821")),
            (
                record_name.as_str(),
                finding.revision,
                "360802",
                Some("360821")
            ),
        ]
    );
    assert_eq!(
        s.cadre_moves("a").await.unwrap(),
        [super::CadreMove {
            seq: head + 1,
            from_division: "360821".into(),
            to_division: "360802".into(),
            move_time_us: 77,
            last_matter_write_us: Some(finding.update_time_us),
        }]
    );
    s.close().await;
}

/// The head is 0 on an empty store and the newest seq after writes; pages of
/// the outbox follow seq order and keep what the write gave them.
async fn change_head_and_list_changes_page_in_seq_order(url: &str) {
    let s = connect(url).await.unwrap();
    assert_eq!(s.change_head().await.unwrap(), 0);
    assert!(s.list_changes(0, 10).await.unwrap().is_empty());
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        add_cadre(&*s, &cadre(id, i as u32, "360821", "张三")).await;
    }
    assert_eq!(s.change_head().await.unwrap(), 3);
    let page = s.list_changes(0, 2).await.unwrap();
    assert_eq!(page.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        (
            page[0].op.as_str(),
            page[0].resource.as_str(),
            page[0].kind.as_str()
        ),
        ("UPSERT", "cadres/a", "CADRE")
    );
    assert_eq!((page[0].revision, page[0].division.as_str()), (1, "360821"));
    assert!(page[0].commit_time_us > 0);
    let rest = s.list_changes(2, 10).await.unwrap();
    assert_eq!(ids_of(&rest, |c| &c.resource), ["cadres/c"]);
    s.close().await;
}

/// Pruning deletes what committed before the cutoff but always keeps the
/// newest row; the floor is the highest pruned seq and never goes down.
async fn prune_changes_keeps_the_newest_and_raises_the_floor(url: &str) {
    let s = connect(url).await.unwrap();
    assert_eq!(s.feed_floor().await.unwrap(), 0);
    assert_eq!(s.prune_changes(now_us()).await.unwrap(), 0);
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        add_cadre(&*s, &cadre(id, i as u32, "360821", "张三")).await;
    }
    assert_eq!(s.prune_changes(0).await.unwrap(), 0, "nothing is that old");
    assert_eq!(s.list_changes(0, 10).await.unwrap().len(), 3);
    let later = now_us() + 60_000_000;
    assert_eq!(s.prune_changes(later).await.unwrap(), 2);
    assert_eq!(s.feed_floor().await.unwrap(), 2);
    let left = s.list_changes(0, 10).await.unwrap();
    assert_eq!(left.iter().map(|c| c.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(s.prune_changes(later).await.unwrap(), 2);
    assert_eq!(s.change_head().await.unwrap(), 3);
    s.close().await;
}

/// A watcher sees a tick after a commit that wrote change rows.
async fn subscribe_ticks_after_a_commit(url: &str) {
    let s = connect(url).await.unwrap();
    let mut rx = s.subscribe();
    rx.mark_unchanged();
    add_cadre(&*s, &cadre("a", 1, "360821", "张三")).await;
    tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
        .await
        .expect("a tick after the commit")
        .unwrap();
    s.close().await;
}

/// The chain from GENESIS: appended rows read back in seq order with their
/// entries, each linked to the one before; hashes by seq; the head.
async fn append_log_read_log_log_hash_at_and_log_head(url: &str) {
    let s = connect(url).await.unwrap();
    assert_eq!(
        s.log_head().await.unwrap(),
        (0, crate::domain::chain::GENESIS.to_string())
    );
    assert!(s.read_log(0, 10).await.unwrap().is_empty());
    assert_eq!(s.log_hash_at(1).await.unwrap(), None);
    assert!(s.append_log(&[]).await.unwrap().is_empty());
    let entries = [entry(1), entry(2), entry(3)];
    assert_eq!(s.append_log(&entries).await.unwrap(), [1, 2, 3]);
    let rows = s.read_log(0, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        rows.iter().map(|r| r.entry.clone()).collect::<Vec<_>>(),
        entries
    );
    assert_eq!(rows[0].prev_hash, crate::domain::chain::GENESIS);
    assert_eq!(rows[1].prev_hash, rows[0].hash);
    assert_eq!(rows[2].prev_hash, rows[1].hash);
    assert_eq!(s.read_log(1, 1).await.unwrap(), rows[1..2]);
    assert_eq!(s.log_hash_at(2).await.unwrap(), Some(rows[1].hash.clone()));
    assert_eq!(s.log_hash_at(4).await.unwrap(), None);
    assert_eq!(s.log_head().await.unwrap(), (3, rows[2].hash.clone()));
    s.close().await;
}

/// One index row per cadre a log row names (sub-resources included), by seq
/// then cadre, bounded by `after_seq` and `through_seq`.
async fn log_cadre_index_orders_by_seq_then_cadre(url: &str) {
    let s = connect(url).await.unwrap();
    let with = |resources: &[&str]| LogEntry {
        resources: resources.iter().map(|r| r.to_string()).collect(),
        ..entry(0)
    };
    s.append_log(&[
        with(&["cadres/b/records/x", "cadres/a", "cadres/b"]),
        with(&["opinionRequests/r"]),
        with(&["cadres/c"]),
    ])
    .await
    .unwrap();
    let index = |after, through| {
        let s = s.clone();
        async move { s.log_cadre_index(after, through).await.unwrap() }
    };
    let row = |c: &str, seq: i64| (c.to_string(), seq);
    assert_eq!(
        index(0, None).await,
        [row("cadres/a", 1), row("cadres/b", 1), row("cadres/c", 3)]
    );
    assert_eq!(index(1, None).await, [row("cadres/c", 3)]);
    assert_eq!(
        index(0, Some(2)).await,
        [row("cadres/a", 1), row("cadres/b", 1)]
    );
    s.close().await;
}

/// Checkpoints oldest first; the latest is the highest seq, latest signed;
/// storing one again for the same seq and key changes nothing.
async fn checkpoints_insert_list_and_latest(url: &str) {
    let s = connect(url).await.unwrap();
    assert!(s.checkpoints().await.unwrap().is_empty());
    assert_eq!(s.latest_checkpoint().await.unwrap(), None);
    let cp = |seq: i64, key: &str, time_us: i64| CheckpointRow {
        seq,
        hash: format!("h{seq}"),
        time_us,
        key_id: key.into(),
        signature: vec![seq as u8],
    };
    for c in [cp(2, "k1", 10), cp(1, "k1", 5), cp(2, "k2", 20)] {
        s.insert_checkpoint(&c).await.unwrap();
    }
    assert_eq!(
        s.checkpoints().await.unwrap(),
        [cp(1, "k1", 5), cp(2, "k1", 10), cp(2, "k2", 20)]
    );
    assert_eq!(s.latest_checkpoint().await.unwrap(), Some(cp(2, "k2", 20)));
    let mut again = cp(1, "k1", 30);
    again.hash = "other".into();
    s.insert_checkpoint(&again).await.unwrap();
    assert_eq!(s.checkpoints().await.unwrap()[0], cp(1, "k1", 5));
    assert_eq!(s.checkpoints().await.unwrap().len(), 3);
    s.close().await;
}

/// Each filter of the access-log query, the scope with `about_scope`, and pages.
async fn list_access_events_filters_scope_and_pages(url: &str) {
    let s = connect(url).await.unwrap();
    add_cadre(&*s, &cadre("a", 1, "360821", "张三")).await;
    let after = s.log_head().await.unwrap().0;
    let outside = "urn:cadrex:system:audit:440100:x";
    let inside = "urn:cadrex:system:audit:360821:y";
    let row = |principal: &str, method: &str, cadre: &str, status_code: i32| LogEntry {
        principal: principal.into(),
        method: method.into(),
        resources: vec![cadre.into()],
        status_code,
        ..entry(0)
    };
    let get = "/cadrex.v1.CadreService/GetCadre";
    let list = "/cadrex.v1.RecordService/ListRecords";
    let seqs = s
        .append_log(&[
            row(outside, get, "cadres/a", 0),
            row(inside, list, "cadres/z", 0),
            row(outside, get, "cadres/z", 0),
            row(outside, get, "cadres/a", 7),
        ])
        .await
        .unwrap();
    let base = LogQuery {
        after_seq: after,
        limit: 100,
        ..Default::default()
    };
    let hits = |q: LogQuery| {
        let s = s.clone();
        async move {
            s.list_access_events(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|h| (h.row.seq, h.about_scope))
                .collect::<Vec<_>>()
        }
    };
    let all: Vec<(i64, bool)> = seqs.iter().map(|s| (*s, true)).collect();
    assert_eq!(hits(base.clone()).await, all);
    assert_eq!(
        hits(LogQuery {
            principal: Some(outside.into()),
            ..base.clone()
        })
        .await,
        [all[0], all[2], all[3]]
    );
    assert_eq!(
        hits(LogQuery {
            principal_prefix: Some("urn:cadrex:system:audit:3608".into()),
            ..base.clone()
        })
        .await,
        [all[1]]
    );
    assert_eq!(
        hits(LogQuery {
            method: Some(list.into()),
            ..base.clone()
        })
        .await,
        [all[1]]
    );
    assert_eq!(
        hits(LogQuery {
            cadre: Some("cadres/a".into()),
            ..base.clone()
        })
        .await,
        [all[0], all[3]]
    );
    assert_eq!(
        hits(LogQuery {
            cadre: Some("cadres/a".into()),
            cadre_ok_only: true,
            ..base.clone()
        })
        .await,
        [all[0]],
        "a failed call is not found by its cadre"
    );
    assert_eq!(
        hits(LogQuery {
            scope: Some("3608".into()),
            ..base.clone()
        })
        .await,
        [(seqs[0], true), (seqs[1], false), (seqs[3], true)],
        "about a cadre in scope, or made by a system in scope"
    );
    assert!(
        hits(LogQuery {
            start_us: Some(now_us() + 60_000_000),
            ..base.clone()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        hits(LogQuery {
            end_us: Some(now_us() + 60_000_000),
            ..base.clone()
        })
        .await,
        all
    );
    assert_eq!(
        hits(LogQuery {
            limit: 2,
            ..base.clone()
        })
        .await,
        all[..2]
    );
    assert_eq!(
        hits(LogQuery {
            after_seq: seqs[1],
            ..base
        })
        .await,
        all[2..]
    );
    s.close().await;
}

/// A request reads back as written with its cadres in request order; lists
/// filter by requester, cadre prefix and state and page by id; withdrawal of
/// a missing request is NotFound and takes the next revision into its change;
/// replies read oldest first.
async fn opinion_requests_get_list_withdraw_and_replies(url: &str) {
    let s = connect(url).await.unwrap();
    add_cadre(&*s, &cadre("a", 1, "360821", "张三")).await;
    add_cadre(&*s, &cadre("b", 2, "360921", "李四")).await;
    let request = |id: &str, division: &str, cadres: &[&str]| OpinionRequestRow {
        id: id.into(),
        requester: format!("urn:cadrex:system:organization:{division}:s"),
        requester_agency: "organization".into(),
        requester_division: division.into(),
        purpose: "PROMOTION".into(),
        due_date: "2030-01-01".into(),
        state: RequestState::Pending,
        note: "n".into(),
        warnings: vec!["w".into()],
        revision: 1,
        create_time_us: 3,
        update_time_us: 3,
        cadres: cadres.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    let r1 = request("r1", "3608", &["b", "a"]);
    for r in [
        &r1,
        &request("r2", "3609", &["b"]),
        &request("r3", "3608", &["a"]),
    ] {
        s.create_opinion_request(r, bare_meta()).await.unwrap();
    }
    assert_eq!(s.get_opinion_request("r1").await.unwrap(), Some(r1));
    assert_eq!(s.get_opinion_request("nope").await.unwrap(), None);

    assert!(matches!(
        s.withdraw_opinion_request("nope", "why", bare_meta()).await,
        Err(crate::Error::NotFound(_))
    ));
    let head = s.change_head().await.unwrap();
    let meta = WriteMeta {
        changes: vec![Change {
            op: ChangeOp::Upsert,
            resource: "opinionRequests/r3".into(),
            kind: "OPINION_REQUEST".into(),
            revision: 0,
            division: "3608".into(),
            from_division: None,
        }],
        ..bare_meta()
    };
    let withdrawn = s.withdraw_opinion_request("r3", "why", meta).await.unwrap();
    assert_eq!(
        (
            withdrawn.state.as_str(),
            withdrawn.withdraw_reason.as_str(),
            withdrawn.revision
        ),
        ("WITHDRAWN", "why", 2)
    );
    assert_eq!(withdrawn.cadres, ["a"]);
    let changes = s.list_changes(head, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].revision, 2,
        "the change carries the new revision"
    );

    let list = |q: OpinionQuery| {
        let s = s.clone();
        async move {
            let rows = s.list_opinion_requests(&q).await.unwrap();
            ids_of(&rows, |r| &r.id)
        }
    };
    let all = OpinionQuery {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(list(all.clone()).await, ["r1", "r2", "r3"]);
    assert_eq!(
        list(OpinionQuery {
            requester: Some(("organization".into(), "3608".into())),
            ..all.clone()
        })
        .await,
        ["r1", "r3"]
    );
    assert_eq!(
        list(OpinionQuery {
            cadre_prefix: Some("3609".into()),
            ..all.clone()
        })
        .await,
        ["r1", "r2"]
    );
    assert_eq!(
        list(OpinionQuery {
            state: Some(RequestState::Withdrawn),
            ..all.clone()
        })
        .await,
        ["r3"]
    );
    assert_eq!(
        list(OpinionQuery {
            after_id: Some("r1".into()),
            limit: 1,
            ..all.clone()
        })
        .await,
        ["r2"]
    );
    let listed = s.list_opinion_requests(&all).await.unwrap();
    assert_eq!(listed[0].cadres, ["b", "a"], "lists carry the cadres too");

    let reply = |id: &str, cadre: &str, create_time_us: i64| ReplyRow {
        id: id.into(),
        request_id: "r1".into(),
        cadre_id: cadre.into(),
        verdict: "NO_OBJECTION".into(),
        text: "t".into(),
        cited_records: vec!["cadres/a/records/x".into()],
        signer: "signer".into(),
        replier: "urn:cadrex:system:discipline:3608:s".into(),
        purpose: "PROMOTION".into(),
        revision: 1,
        create_time_us,
        ..Default::default()
    };
    let (late, early) = (reply("p1", "a", 20), reply("p2", "b", 10));
    s.add_opinion_reply(&late, bare_meta()).await.unwrap();
    s.add_opinion_reply(&early, bare_meta()).await.unwrap();
    assert_eq!(s.opinion_replies("r1").await.unwrap(), [early, late]);
    assert!(s.opinion_replies("nope").await.unwrap().is_empty());
    s.close().await;
}

/// Blocks under other keys are listed by record id in pages; a reseal replaces
/// only blocks still holding the nonce they were read with, and touches
/// neither revision nor feed.
async fn informant_blocks_not_under_and_reseal_informants(url: &str) {
    let s = connect(url).await.unwrap();
    let a = cadre("a", 1, "360821", "张三");
    add_cadre(&*s, &a).await;
    let sealed = |key: &str, nonce: u8| crate::informant::Sealed {
        key_id: key.into(),
        nonce: vec![nonce; 12],
        data: vec![nonce, 1, 2],
    };
    let with = |sid: &str, informant: Option<crate::informant::Sealed>| RecordRow {
        informant,
        kind: "PETITION".into(),
        ..record(&a, sid, 1, sid)
    };
    let rows = submit(
        &*s,
        vec![
            with("s1", Some(sealed("k1", 1))),
            with("s2", Some(sealed("k1", 2))),
            with("s3", Some(sealed("k2", 3))),
            with("s4", None),
        ],
    )
    .await;
    let rows: Vec<RecordRow> = rows.iter().map(written).collect();
    let blocks = s.informant_blocks_not_under("k2", "", 10).await.unwrap();
    assert_eq!(
        blocks,
        [
            InformantBlock {
                record_id: rows[0].id.clone(),
                owner_system: "sys-a".into(),
                source_record_id: "s1".into(),
                sealed: sealed("k1", 1),
            },
            InformantBlock {
                record_id: rows[1].id.clone(),
                owner_system: "sys-a".into(),
                source_record_id: "s2".into(),
                sealed: sealed("k1", 2),
            },
        ]
    );
    assert_eq!(
        s.informant_blocks_not_under("k2", &rows[0].id, 10)
            .await
            .unwrap(),
        blocks[1..]
    );
    assert_eq!(
        s.informant_blocks_not_under("k2", "", 1).await.unwrap(),
        blocks[..1]
    );
    let head = s.change_head().await.unwrap();
    let replaced = s
        .reseal_informants(&[
            Resealed {
                record_id: rows[0].id.clone(),
                old_nonce: vec![1; 12],
                sealed: sealed("k2", 9),
            },
            Resealed {
                record_id: rows[1].id.clone(),
                old_nonce: vec![77; 12],
                sealed: sealed("k2", 8),
            },
        ])
        .await
        .unwrap();
    assert_eq!(replaced, 1, "a block written meanwhile is kept");
    let resealed = s.get_record(&rows[0].id).await.unwrap().unwrap();
    assert_eq!(resealed.informant, Some(sealed("k2", 9)));
    assert_eq!(resealed.revision, rows[0].revision);
    assert_eq!(
        s.get_record(&rows[1].id).await.unwrap(),
        Some(rows[1].clone())
    );
    assert_eq!(s.change_head().await.unwrap(), head);
    assert_eq!(
        ids_of(
            &s.informant_blocks_not_under("k2", "", 10).await.unwrap(),
            |b| &b.record_id
        ),
        [rows[1].id.clone()]
    );
    s.close().await;
}

/// Runs each test once per backend as `$name::sqlite` and `$name::postgres`,
/// and records in `CONTRACTS` which repository methods each test is the
/// contract test of (checked by `every_repository_method_has_a_contract_test`).
macro_rules! suite {
    ($($name:ident: [$($method:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let f = super::Fixture::sqlite().await;
                    super::$name(&f.url).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(f) = super::Fixture::postgres().await {
                        super::$name(&f.url).await;
                    }
                }
            }
        )*

        /// (test, the repository methods whose documented contract it asserts).
        const CONTRACTS: &[(&str, &[&str])] = &[$((stringify!($name), &[$(stringify!($method)),*])),*];
    };
}

suite!(
    concurrent_appends_keep_one_chain: [append_log, log_head, list_access_events],
    cadre_round_trip_and_conflicts: [create_cadre, get_cadre, update_cadre, list_cadres],
    outbox_commit_order_equals_seq_order: [list_changes, create_cadre],
    opinion_request_states: [
        get_cadres,
        get_cadres_by_id_numbers,
        create_opinion_request,
        add_opinion_reply,
        withdraw_opinion_request,
        opinion_replies,
        change_head,
    ],
    admin_backend_epoch_and_renew_epoch: [backend, epoch, renew_epoch],
    admin_backup_then_connect_reads_the_same_data: [backup],
    admin_close_makes_later_calls_unavailable: [close],
    lookup_request_finds_the_response_stored_with_the_write: [lookup_request, create_cadre],
    create_cadres_fails_a_duplicate_alone: [create_cadres],
    get_cadre_by_id_number_finds_the_registered_cadre: [get_cadre_by_id_number],
    list_cadres_filters_and_pages: [list_cadres],
    submit_records_written_unchanged_stale_and_conflict: [
        submit_records,
        get_record,
        find_record,
        find_records,
    ],
    retract_record_takes_a_new_revision: [retract_record],
    get_records_keeps_to_the_jurisdiction: [get_records],
    list_records_filters_snapshot_and_pages: [list_records],
    last_matter_write_us_counts_matter_kinds_only: [last_matter_write_us],
    a_move_writes_its_rows_and_is_recorded: [cadre_moves, update_cadre],
    change_head_and_list_changes_page_in_seq_order: [change_head, list_changes],
    prune_changes_keeps_the_newest_and_raises_the_floor: [prune_changes, feed_floor],
    subscribe_ticks_after_a_commit: [subscribe],
    append_log_read_log_log_hash_at_and_log_head: [append_log, read_log, log_hash_at, log_head],
    log_cadre_index_orders_by_seq_then_cadre: [log_cadre_index],
    checkpoints_insert_list_and_latest: [insert_checkpoint, checkpoints, latest_checkpoint],
    list_access_events_filters_scope_and_pages: [list_access_events],
    opinion_requests_get_list_withdraw_and_replies: [
        create_opinion_request,
        get_opinion_request,
        list_opinion_requests,
        withdraw_opinion_request,
        opinion_replies,
    ],
    informant_blocks_not_under_and_reseal_informants: [
        informant_blocks_not_under,
        reseal_informants,
    ],
    scrub_keeps_the_data_and_clears_replaced_values: [scrub],
    digests_upgrade_head_unkeyed_replace_and_meta: [
        meta,
        set_meta,
        digest_upgrade_head,
        unkeyed_digests,
        replace_digests,
    ],
);

/// The meta table, the chain head recorded at the upgrade (once), and the
/// re-keying seam: unkeyed digests listed in key order per column (keyed
/// ones left out), and replaced only where the row still holds the value read.
async fn digests_upgrade_head_unkeyed_replace_and_meta(url: &str) {
    use super::{DigestColumn, DigestRowKey};
    let s = connect(url).await.unwrap();
    assert_eq!(s.meta("x").await.unwrap(), None);
    s.set_meta("x", "1").await.unwrap();
    s.set_meta("x", "2").await.unwrap();
    assert_eq!(s.meta("x").await.unwrap().as_deref(), Some("2"));

    s.append_log(&[entry(0)]).await.unwrap();
    let head = s.log_head().await.unwrap();
    assert_eq!(s.digest_upgrade_head().await.unwrap(), head);
    s.append_log(&[entry(1)]).await.unwrap();
    assert_eq!(
        s.digest_upgrade_head().await.unwrap(),
        head,
        "recorded once"
    );

    let a = cadre("a", 1, "360821", "张三");
    add_cadre(&*s, &a).await;
    let (old1, old2) = ("a1".repeat(32), "b2".repeat(32));
    let keyed = format!("k1:{}", "c3".repeat(32));
    let finish = |_: &[crate::error::Result<SubmitOutcome>]| (entry(2), Some(idempotency("r1")));
    s.submit_records(
        vec![
            record(&a, "s1", 1, &old1),
            record(&a, "s2", 1, &keyed),
            record(&a, "s3", 1, &old2),
        ],
        &suite_key(),
        &finish,
    )
    .await
    .unwrap();
    let records = s
        .unkeyed_digests(DigestColumn::RecordPayload, &DigestRowKey::default(), 10)
        .await
        .unwrap();
    assert_eq!(
        records.iter().map(|d| d.value.clone()).collect::<Vec<_>>(),
        [old1.clone(), old2.clone()],
        "unkeyed ones only, in id order"
    );
    let page = s
        .unkeyed_digests(DigestColumn::RecordPayload, &records[0].key, 10)
        .await
        .unwrap();
    assert_eq!(page, records[1..], "keyset paging");
    let versions = s
        .unkeyed_digests(DigestColumn::VersionPayload, &DigestRowKey::default(), 10)
        .await
        .unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions[0].key,
        DigestRowKey("sys-a".into(), "s1".into(), 1)
    );
    let requests = s
        .unkeyed_digests(DigestColumn::RequestDigest, &DigestRowKey::default(), 10)
        .await
        .unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].key,
        DigestRowKey("sys-a".into(), "r1".into(), 0)
    );

    let mut stale = records[0].clone();
    stale.value = "ff".repeat(32);
    let replaced = s
        .replace_digests(&[
            (stale, "k1:new-stale".into()),
            (records[1].clone(), "k1:new-s3".into()),
            (versions[0].clone(), "k1:new-v1".into()),
            (requests[0].clone(), "k1:new-r1".into()),
        ])
        .await
        .unwrap();
    assert_eq!(
        replaced, 3,
        "a row whose value changed since read is left alone"
    );
    let left = s
        .unkeyed_digests(DigestColumn::RecordPayload, &DigestRowKey::default(), 10)
        .await
        .unwrap();
    assert_eq!(left, records[..1]);
    assert_eq!(
        s.get_record(&records[1].key.0)
            .await
            .unwrap()
            .unwrap()
            .payload_sha256,
        "k1:new-s3"
    );
    assert_eq!(
        s.lookup_request("sys-a", "r1")
            .await
            .unwrap()
            .unwrap()
            .request_sha256,
        "k1:new-r1"
    );
    assert_eq!(
        s.unkeyed_digests(DigestColumn::VersionPayload, &DigestRowKey::default(), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// `scrub` keeps every row and, on SQLite, leaves no trace of the values
/// replaced digests held anywhere in the database's files.
async fn scrub_keeps_the_data_and_clears_replaced_values(url: &str) {
    use super::{DigestColumn, DigestRowKey};
    let s = connect(url).await.unwrap();
    let a = cadre("a", 1, "360821", "张三");
    add_cadre(&*s, &a).await;
    let old = "5c".repeat(32);
    let item = RecordRow {
        payload: b"payload".to_vec(),
        ..record(&a, "s1", 1, &old)
    };
    submit(&*s, vec![item]).await;
    let mut replaced = Vec::new();
    for column in [DigestColumn::RecordPayload, DigestColumn::VersionPayload] {
        let found = s
            .unkeyed_digests(column, &DigestRowKey::default(), 10)
            .await
            .unwrap();
        replaced.push((found[0].clone(), "k1:replaced".to_string()));
    }
    s.replace_digests(&replaced).await.unwrap();
    s.scrub(&["records", "record_versions", "request_ids"])
        .await
        .unwrap();
    let row = s.get_record(&replaced[0].0.key.0).await.unwrap().unwrap();
    assert_eq!(row.payload_sha256, "k1:replaced");
    assert_eq!(s.get_cadre(&a.id).await.unwrap().unwrap().id, a.id);
    if let Some(path) = url.strip_prefix("sqlite://") {
        for file in [path.to_string(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(old.len()).any(|w| w == old.as_bytes()),
                "the replaced value left a copy in {file}"
            );
        }
    }
    s.close().await;
}

/// (repository, method) for every method of every trait `Store` bundles, read
/// from the source of `mod.rs`, so that a method added later is seen here
/// without editing this test.
fn repository_methods() -> Vec<(String, String)> {
    let src = include_str!("mod.rs");
    let decl = src
        .split_once("\npub trait Store:")
        .expect("`pub trait Store:` in store/mod.rs")
        .1;
    let decl = &decl[..decl.find('{').unwrap()];
    let mut out = Vec::new();
    for repo in decl.split('+').map(str::trim) {
        if matches!(repo, "Send" | "Sync") {
            continue;
        }
        let start = src
            .find(&format!("\npub trait {repo}:"))
            .unwrap_or_else(|| panic!("trait {repo} is not declared in store/mod.rs"));
        let body = &src[start..];
        let body = &body[..body.find("\n}\n").unwrap()];
        for line in body.lines().skip(1) {
            let line = line.trim_start();
            let line = line.strip_prefix("async ").unwrap_or(line);
            if let Some(rest) = line.strip_prefix("fn ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push((repo.to_string(), name));
            }
        }
    }
    out
}

/// The body of `async fn {name}(` in this file, up to its closing brace.
fn test_body(name: &str) -> &'static str {
    let src = include_str!("suite.rs");
    let start = src
        .find(&format!("\nasync fn {name}("))
        .unwrap_or_else(|| panic!("no `async fn {name}` in store/suite.rs"));
    let body = &src[start..];
    &body[..body.find("\n}\n").unwrap()]
}

/// Every repository method has a contract test, and a test only claims
/// methods it calls itself (not through a fixture) that exist.
#[test]
fn every_repository_method_has_a_contract_test() {
    let methods = repository_methods();
    let repos: std::collections::BTreeSet<&str> = methods.iter().map(|(r, _)| r.as_str()).collect();
    assert!(
        repos.len() >= 7 && methods.len() >= 44,
        "the trait parse found too little: {repos:?}, {} methods",
        methods.len()
    );
    let untested: Vec<String> = methods
        .iter()
        .filter(|(_, m)| !CONTRACTS.iter().any(|(_, ms)| ms.contains(&m.as_str())))
        .map(|(r, m)| format!("{r}::{m}"))
        .collect();
    assert!(
        untested.is_empty(),
        "repository methods without a contract test in store/suite.rs: {untested:?}"
    );
    for (test, claimed) in CONTRACTS {
        let body = test_body(test);
        for m in *claimed {
            assert!(
                methods.iter().any(|(_, known)| known == m),
                "{test} claims `{m}`, which no repository trait declares"
            );
            assert!(
                body.contains(&format!(".{m}(")),
                "{test} claims `{m}` but never calls it"
            );
        }
    }
}
