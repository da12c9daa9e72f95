//! Server-level behaviour: reflection in v1 and v1alpha, and several server processes on one PostgreSQL keeping one access-log chain.

use std::process::Command;
use std::time::Duration;

use cadrex::proto;
use tokio_stream::StreamExt;

use crate::common::{
    Backend, CadreServiceClient, ServeProcess, SystemServiceClient, TestDb, TestServer, cadrex_bin,
    new_cadre, postgres_admin_url,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_services_in_v1_and_v1alpha() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let ch = server.channel("audit", "360821").await;
    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(ch.clone())
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("{resp:?}")
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for s in [
            "cadrex.v1.CadreService",
            "cadrex.v1.SystemService",
            "cadrex.v1.AccessLogService",
            "grpc.health.v1.Health",
        ] {
            assert!(names.iter().any(|n| n == s), "v1 lists {s}: {names:?}");
        }
    }
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "cadrex.v1.CadreService".into(),
            )),
        };
        let mut stream = ServerReflectionClient::new(ch)
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.next().await.unwrap().unwrap();
        let Some(MessageResponse::FileDescriptorResponse(fds)) = resp.message_response else {
            panic!("{resp:?}")
        };
        assert!(
            !fds.file_descriptor_proto.is_empty(),
            "v1alpha serves descriptors"
        );
    }
}

/// `cadrex serve` on `store` with the test PKI, on a port of its choosing.
fn serve(store: &str, pki: &std::path::Path) -> ServeProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cadrex"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store,
        "--pki-dir",
    ])
    .arg(pki)
    .env("CADREX_CHECKPOINT_INTERVAL", "200ms");
    ServeProcess::announced(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_postgres_keep_one_chain() {
    if postgres_admin_url().is_none() {
        return;
    }
    // The in-process server only provides the PKI and test clients; the two
    // processes under test share its PostgreSQL database and certificates.
    let db = TestDb::create().await;
    let helper = TestServer::spawn(Backend::Sqlite).await;
    let a = serve(&db.url, &helper.pki);
    let b = serve(&db.url, &helper.pki);
    let mut tasks = Vec::new();
    for (i, addr) in [a.addr, b.addr, a.addr, b.addr].into_iter().enumerate() {
        let ch = helper.channel_to(addr, "organization", "360821").await;
        tasks.push(tokio::spawn(async move {
            let mut cadres = CadreServiceClient::new(ch.clone());
            let mut system = SystemServiceClient::new(ch);
            for k in 0..15u32 {
                let seq = (i as u32) * 100 + k;
                let created = cadres
                    .create_cadre(proto::CreateCadreRequest {
                        cadre: Some(new_cadre("并发", "360821", seq)),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                cadres
                    .get_cadre(proto::GetCadreRequest { name: created.name })
                    .await
                    .unwrap();
                system.who_am_i(proto::WhoAmIRequest {}).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let key = helper.pki.join("log-signing.key");
    let (ok, out) = cadrex_bin(&[
        "log",
        "verify",
        "--store",
        &db.url,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("rows 1..=120"),
        "4 callers × 15 × (create + get) rows in one chain: {out}"
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_on_two_processes_see_every_change_once_in_order() {
    if postgres_admin_url().is_none() {
        return;
    }
    let db = TestDb::create().await;
    let helper = TestServer::spawn(Backend::Sqlite).await;
    let a = serve(&db.url, &helper.pki);
    let b = serve(&db.url, &helper.pki);
    let mut watchers = Vec::new();
    for addr in [a.addr, b.addr] {
        let ch = helper.channel_to(addr, "discipline", "360821").await;
        let mut stream = proto::change_feed_service_client::ChangeFeedServiceClient::new(ch)
            .watch_changes(proto::WatchChangesRequest::default())
            .await
            .unwrap()
            .into_inner();
        watchers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while seen.len() < 40 {
                let frame = tokio::time::timeout(Duration::from_secs(30), stream.next())
                    .await
                    .expect("events keep coming")
                    .expect("stream open")
                    .expect("no error");
                if let Some(proto::watch_changes_response::Frame::Event(e)) = frame.frame {
                    seen.push((e.seq, e.resource));
                }
            }
            seen
        }));
    }
    let mut writers = Vec::new();
    for (w, addr) in [a.addr, b.addr].into_iter().enumerate() {
        let ch = helper.channel_to(addr, "organization", "360821").await;
        writers.push(tokio::spawn(async move {
            let mut cadres = CadreServiceClient::new(ch);
            for k in 0..20u32 {
                cadres
                    .create_cadre(proto::CreateCadreRequest {
                        cadre: Some(new_cadre("双实例", "360821", 400 + w as u32 * 50 + k)),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut results = Vec::new();
    for w in watchers {
        results.push(w.await.unwrap());
    }
    for seen in &results {
        assert_eq!(seen.len(), 40);
        assert!(
            seen.windows(2).all(|p| p[0].0 < p[1].0),
            "in seq order, no repeats"
        );
    }
    assert_eq!(results[0], results[1], "both watchers saw the same changes");
    let key = helper.pki.join("log-signing.key");
    let (ok, out) = cadrex_bin(&[
        "log",
        "verify",
        "--store",
        &db.url,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_resource_exhausted_and_deadline_exceeded_with_nothing_written() {
    let server = TestServer::spawn_with(Backend::Sqlite, |c| c.max_message_bytes = 2048).await;
    let mut org = server.cadres("organization", "360821").await;
    let mut big = new_cadre("超长", "360821", 1);
    big.posts[0].unit_name = "单".repeat(2000);
    let err = org
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(big),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");

    let listed = org
        .list_cadres(proto::ListCadresRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.cadres.is_empty(),
        "nothing written by the refused call: {listed:?}"
    );

    // A call that outlives the server's per-call deadline: 1000 findings in one
    // batch. The data is prepared through a normal server first, so that only
    // the call under test races the 50 ms deadline.
    let mut setup = TestServer::spawn(Backend::Sqlite).await;
    let c = crate::common::cadre(&setup, 3).await;
    crate::common::records_client(setup.channel("audit", "360821").await)
        .submit_record(crate::common::submit(crate::common::record(
            &c,
            "AE-1",
            1,
            crate::common::engagement(),
        )))
        .await
        .unwrap();
    setup.stop().await;
    let slow = TestServer::spawn_with(Backend::Sqlite, |cfg| {
        cfg.call_timeout = Duration::from_millis(50);
        cfg.store = setup.store_url.clone();
        cfg.pki_dir = setup.pki.clone();
    })
    .await;
    let requests = (0..1000)
        .map(|i| {
            crate::common::submit(crate::common::record(
                &c,
                &format!("AF-{i}"),
                1,
                crate::common::finding("AE-1", i),
            ))
        })
        .collect();
    let err = crate::common::records_client(slow.channel("audit", "360821").await)
        .batch_submit_records(proto::BatchSubmitRecordsRequest {
            requests,
            request_id: String::new(),
            validate_only: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = crate::common::count_rows(&slow.store_url, "SELECT COUNT(*) FROM records").await;
    assert_eq!(
        stored, 1,
        "only the engagement: the abandoned batch wrote nothing"
    );
    let key = slow.pki.join("log-signing.key");
    let (ok, out) = cadrex_bin(&[
        "log",
        "verify",
        "--store",
        &slow.store_url,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_gives_a_new_epoch_and_an_intact_chain() {
    let original = TestServer::spawn(Backend::Sqlite).await;
    let c = crate::common::cadre(&original, 5).await;
    let mut audit = crate::common::records_client(original.channel("audit", "360821").await);
    audit
        .submit_record(crate::common::submit(crate::common::record(
            &c,
            "AE-1",
            1,
            crate::common::engagement(),
        )))
        .await
        .unwrap();
    let mut feed = proto::change_feed_service_client::ChangeFeedServiceClient::new(
        original.channel("discipline", "360821").await,
    );
    let cursor = feed
        .list_changes(proto::ListChangesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .next_cursor;

    let backup = original.dir.path().join("backup.db");
    let (ok, out) = cadrex_bin(&[
        "backup",
        "--store",
        &original.store_url,
        "--out",
        backup.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let restored_url = format!(
        "sqlite://{}",
        original.dir.path().join("restored.db").display()
    );
    let (ok, out) = cadrex_bin(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--store",
        &restored_url,
    ]);
    assert!(ok, "{out}");
    let key = original.pki.join("log-signing.key");
    let (ok, out) = cadrex_bin(&[
        "log",
        "verify",
        "--store",
        &restored_url,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(ok, "the restored chain verifies: {out}");

    let restored = serve(&restored_url, &original.pki);
    let ch = original
        .channel_to(restored.addr, "discipline", "360821")
        .await;
    let dossier = proto::dossier_service_client::DossierServiceClient::new(ch.clone())
        .get_cadre_dossier(proto::GetCadreDossierRequest {
            cadre: c.name.clone(),
            purpose: proto::Purpose::CaseHandling as i32,
            opinion_request: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        dossier
            .sections
            .iter()
            .any(|s| s.kind == proto::RecordKind::AuditEngagement as i32 && s.records.len() == 1)
    );
    let err = proto::change_feed_service_client::ChangeFeedServiceClient::new(ch)
        .list_changes(proto::ListChangesRequest {
            after_cursor: cursor,
            ..Default::default()
        })
        .await
        .unwrap_err();
    use tonic_types::StatusExt;
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "CURSOR_EXPIRED",
        "cursors from before the restore are refused"
    );
}
