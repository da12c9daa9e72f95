//! One caller cannot fail another's call: values a store refuses (NUL, over-long) in every string that can reach a log row, sent by one system while another runs a steady load, on both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cadrex::domain::chain::LogEntry;
use cadrex::proto::{self, GetCadreRequest};
use tonic::Code;

use crate::both_backends;
use crate::common::{Backend, TestDb, TestServer, count_rows, new_cadre};

both_backends!(
    poison_in_every_string_fails_no_other_call,
    appender_writes_a_refused_row_sanitized_and_the_rest_unharmed,
);

/// Sends NUL (and over-long values) in every request string of the cadre,
/// record, dossier and access-log reads an audit system may call, until
/// `stop`; returns every status code it got back.
async fn poisoner(server: &TestServer, cadre: String, stop: Arc<AtomicBool>) -> Vec<Code> {
    let ch = server.channel("audit", "360821").await;
    let mut cadres = proto::cadre_service_client::CadreServiceClient::new(ch.clone());
    let mut records = proto::record_service_client::RecordServiceClient::new(ch.clone());
    let mut dossiers = proto::dossier_service_client::DossierServiceClient::new(ch.clone());
    let mut log = proto::access_log_service_client::AccessLogServiceClient::new(ch);
    let nul = "cadres/a\0b".to_string();
    let long = "y".repeat(100_000);
    let mut codes = Vec::new();
    // Whole rounds, so every kind of poison is sent at least once.
    while codes.is_empty() || !stop.load(Ordering::SeqCst) {
        let round = async {
            let mut out = Vec::new();
            for opinion_request in ["opinionRequests/a\0", long.as_str()] {
                out.push(
                    dossiers
                        .get_cadre_dossier(proto::GetCadreDossierRequest {
                            cadre: cadre.clone(),
                            purpose: proto::Purpose::AuditPlanning as i32,
                            opinion_request: opinion_request.into(),
                        })
                        .await
                        .map(drop),
                );
            }
            out.push(
                cadres
                    .get_cadre(GetCadreRequest { name: nul.clone() })
                    .await
                    .map(drop),
            );
            out.push(
                cadres
                    .lookup_cadre(proto::LookupCadreRequest {
                        id_number: "36082119800101\x00011".into(),
                    })
                    .await
                    .map(drop),
            );
            out.push(
                cadres
                    .list_cadres(proto::ListCadresRequest {
                        filter: "display_name = \"\0\"".into(),
                        page_token: "\0".into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            );
            out.push(
                records
                    .get_record(proto::GetRecordRequest {
                        name: format!("{cadre}/records/\0"),
                    })
                    .await
                    .map(drop),
            );
            out.push(
                records
                    .list_records(proto::ListRecordsRequest {
                        parent: nul.clone(),
                        filter: "\0".into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            );
            for (principal, method, cadre) in [
                ("\0", "", ""),
                ("", "\0", ""),
                ("", "", nul.as_str()),
                ("", "", long.as_str()),
            ] {
                out.push(
                    log.list_access_events(proto::ListAccessEventsRequest {
                        principal: principal.into(),
                        method: method.into(),
                        cadre: cadre.into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
                );
            }
            out
        };
        codes.extend(round.await.into_iter().map(|r| match r {
            Ok(()) => Code::Ok,
            Err(s) => s.code(),
        }));
    }
    codes
}

async fn poison_in_every_string_fails_no_other_call(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let cadre = server
        .cadres("organization", "360821")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(new_cadre("蒋一", "360821", 51)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let stop = Arc::new(AtomicBool::new(false));
    let mut poisoners = Vec::new();
    for _ in 0..3 {
        poisoners.push(poisoner(&server, cadre.name.clone(), stop.clone()));
    }
    let poisoners = futures::future::join_all(poisoners);
    let steady = async {
        // Let the poisoners get going, then the steady load shares their batches.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ch = server.channel("discipline", "360821").await;
        let calls = (0..300).map(|i| {
            let mut c = proto::cadre_service_client::CadreServiceClient::new(ch.clone());
            let name = cadre.name.clone();
            async move {
                let mut r = tonic::Request::new(GetCadreRequest { name });
                r.metadata_mut()
                    .insert("x-request-id", format!("steady-{i}").parse().unwrap());
                c.get_cadre(r).await.map(drop)
            }
        });
        let results = futures::future::join_all(calls).await;
        stop.store(true, Ordering::SeqCst);
        results
    };
    let (codes, results) = tokio::join!(poisoners, steady);
    let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "the steady system saw errors: {errors:?}"
    );
    assert_eq!(
        count_rows(
            &server.store_url,
            "SELECT COUNT(*) FROM access_log WHERE request_id LIKE 'steady-%' AND status_code = 0"
        )
        .await,
        300,
        "every steady call has its durable row"
    );
    let codes: Vec<Code> = codes.into_iter().flatten().collect();
    assert!(codes.len() >= 12, "the poisoners ran: {}", codes.len());
    for c in &codes {
        assert!(
            !matches!(
                c,
                Code::Ok | Code::Unavailable | Code::Internal | Code::Unknown
            ),
            "poison is refused as the caller's own fault, not the store's: {codes:?}"
        );
    }
    assert!(codes.contains(&Code::InvalidArgument));
    // No NUL reached a row on either backend.
    assert_eq!(
        count_rows(
            &server.store_url,
            "SELECT COUNT(*) FROM access_log WHERE resources LIKE '%yyyyyyyyyy%'"
        )
        .await,
        0
    );
}

async fn appender_writes_a_refused_row_sanitized_and_the_rest_unharmed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (_db, url) = match backend {
        Backend::Sqlite => (
            None,
            format!("sqlite://{}", dir.path().join("a.db").display()),
        ),
        Backend::Postgres => {
            let db = TestDb::create().await;
            let url = db.url.clone();
            (Some(db), url)
        }
    };
    cadrex::server::install_crypto_provider();
    cadrex::pki::init(&dir.path().join("pki"), "360821").unwrap();
    let signer = Arc::new(
        cadrex::access_log::LogSigner::load(&dir.path().join("pki/log-signing.key")).unwrap(),
    );
    let digest = cadrex::digest::DigestKey::load(&dir.path().join("pki/digest.key")).unwrap();
    let store = cadrex::store::connect(&url).await.unwrap();
    let (log, tasks) = cadrex::access_log::AccessLog::start(
        store.clone(),
        signer,
        digest.clone(),
        512,
        Duration::from_secs(3600),
    );
    let entry = |i: usize, resource: String| LogEntry {
        principal: format!("urn:cadrex:system:audit:360821:s{}", i % 7),
        method: "/cadrex.v1.CadreService/GetCadre".into(),
        resources: vec![resource],
        decision: "ALLOW".into(),
        request_id: format!("r-{i}"),
        ..Default::default()
    };
    let poison = |i: usize| {
        if i.is_multiple_of(2) {
            format!("cadres/{i}\0")
        } else {
            "z".repeat(1 << 20)
        }
    };
    let calls = (0..320).map(|i| {
        let log = log.clone();
        let e = if i % 16 == 5 {
            entry(i, poison(i))
        } else {
            entry(i, format!("cadres/c{i}"))
        };
        async move { (i, log.append(e).await) }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in &results {
        if i % 16 == 5 {
            let e = r.as_ref().expect_err("a poisoned row fails its own call");
            assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        } else {
            assert!(r.is_ok(), "row {i}: {r:?}");
        }
    }
    let rows = store.read_log(0, 1000).await.unwrap();
    assert_eq!(rows.len(), 320, "every call, poisoned or not, has its row");
    let sanitized: Vec<_> = rows
        .iter()
        .filter(|r| r.entry.resources[0].starts_with("sanitized:len="))
        .collect();
    assert_eq!(sanitized.len(), 20);
    for r in &sanitized {
        let i: usize = r.entry.request_id[2..].parse().unwrap();
        let v = poison(i);
        assert_eq!(
            r.entry.resources[0],
            cadrex::access_log::sanitized_value(&v, &digest)
        );
    }
    let report = cadrex::access_log::verify(&*store, None, None)
        .await
        .unwrap();
    assert!(report.intact, "{report:?}");
    for t in tasks {
        t.abort();
    }
    store.close().await;
}
