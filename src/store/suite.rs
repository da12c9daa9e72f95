//! The storage test suite, written once and run against SQLite and (when configured) PostgreSQL.

use std::sync::Arc;

use super::*;
use crate::access_log;
use crate::domain::chain::LogEntry;

/// A fresh store per test: a temporary SQLite file, or a new PostgreSQL database.
struct Fixture {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Fixture {
    async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        Fixture {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    async fn postgres() -> Option<Fixture> {
        use sqlx::Connection;
        let Ok(admin) = std::env::var("CADREX_TEST_POSTGRES_URL") else {
            eprintln!(
                "notice: CADREX_TEST_POSTGRES_URL is not set; skipping the PostgreSQL store suite"
            );
            return None;
        };
        let name = format!("cadrex_s_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL unreachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        Some(Fixture {
            url: format!("{base}/{name}"),
            _dir: None,
            pg: Some((admin, name)),
        })
    }

    async fn drop_db(&self) {
        use sqlx::Connection;
        if let Some((admin, name)) = &self.pg {
            let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut c)
            .await;
        }
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

macro_rules! suite {
    ($($name:ident),*) => {$(
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
                    f.drop_db().await;
                }
            }
        }
    )*};
}

suite!(
    concurrent_appends_keep_one_chain,
    cadre_round_trip_and_conflicts,
    outbox_commit_order_equals_seq_order,
    opinion_request_states
);
