//! The access log through the real server: rows for allowed and denied calls, own-calls visibility, and tamper detection by `cadrex log verify`.

use std::time::Duration;

use cadrex::proto::{self, GetCadreRequest, ListAccessEventsRequest};
use tonic::Code;

use crate::both_backends;
use crate::common::{Backend, TestServer, cadrex_bin, exec_sql, new_cadre};

both_backends!(
    allowed_and_denied_calls_are_logged,
    verify_rpc_and_checkpoints,
    log_verify_detects_an_edited_row,
    log_verify_detects_a_deleted_row,
    log_verify_detects_an_inserted_row,
    log_verify_detects_reordered_rows,
    log_verify_detects_truncation_below_a_checkpoint,
);

/// A server with a cadre and a dozen logged calls, and the intact chain verified.
async fn busy_server(backend: Backend) -> (TestServer, proto::Cadre) {
    let server = TestServer::spawn(backend).await;
    let cadre = server
        .cadres("organization", "360821")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(new_cadre("郑一", "360821", 7)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    for agency in ["discipline", "audit", "petition", "organization"] {
        for division in ["360821", "360802"] {
            let _ = server
                .cadres(agency, division)
                .await
                .get_cadre(GetCadreRequest {
                    name: cadre.name.clone(),
                })
                .await;
        }
    }
    // Force a signed checkpoint over everything so far.
    server
        .access_log("audit", "360821")
        .await
        .get_checkpoint(proto::GetCheckpointRequest {})
        .await
        .unwrap();
    let (ok, out) = verify(&server);
    assert!(ok, "an untouched chain verifies: {out}");
    (server, cadre)
}

fn verify(server: &TestServer) -> (bool, String) {
    let key = server.pki.join("log-signing.key");
    cadrex_bin(&[
        "log",
        "verify",
        "--store",
        &server.store_url,
        "--key",
        key.to_str().unwrap(),
    ])
}

async fn allowed_and_denied_calls_are_logged(backend: Backend) {
    let (server, cadre) = busy_server(backend).await;
    let events = server
        .access_log("discipline", "360821")
        .await
        .list_access_events(ListAccessEventsRequest {
            cadre: cadre.name.clone(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    let gets: Vec<_> = events
        .iter()
        .filter(|e| e.method.ends_with("/GetCadre"))
        .collect();
    assert_eq!(gets.len(), 8, "one row per call: {events:#?}");
    let allowed = gets
        .iter()
        .filter(|e| e.decision == proto::Decision::Allow as i32)
        .count();
    let denied: Vec<_> = gets
        .iter()
        .filter(|e| e.decision == proto::Decision::Deny as i32)
        .collect();
    assert_eq!(allowed, 4);
    assert_eq!(denied.len(), 4);
    assert!(
        denied
            .iter()
            .all(|e| e.status_code == Code::PermissionDenied as i32)
    );
    assert!(denied.iter().all(|e| e.principal.contains(":360802:")));
    for e in gets
        .iter()
        .filter(|e| e.decision == proto::Decision::Allow as i32)
    {
        assert_eq!(
            e.response_sha256.len(),
            64,
            "allowed reads carry the digest of what was disclosed"
        );
        assert!(!e.policy_ids.is_empty(), "the deciding policies are named");
    }
    let create = events
        .iter()
        .find(|e| e.method.ends_with("/CreateCadre"))
        .expect("the create is logged");
    assert_eq!(create.status_code, 0);

    // Audit sees only its own agency and division's calls.
    let own = server
        .access_log("audit", "360821")
        .await
        .list_access_events(ListAccessEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    assert!(!own.is_empty());
    assert!(
        own.iter()
            .all(|e| e.principal.starts_with("urn:cadrex:system:audit:360821:")),
        "{own:#?}"
    );

    // Filtering by principal and method narrows to exactly one row.
    let one = server
        .access_log("discipline", "360821")
        .await
        .list_access_events(ListAccessEventsRequest {
            principal: "urn:cadrex:system:petition:360821:petition-sys".into(),
            method: "/cadrex.v1.CadreService/GetCadre".into(),
            cadre: cadre.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    assert_eq!(one.len(), 1);
}

async fn verify_rpc_and_checkpoints(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    let err = server
        .access_log("organization", "360821")
        .await
        .verify_access_log(proto::VerifyAccessLogRequest { full: true })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut disc = server.access_log("discipline", "360821").await;
    let full = disc
        .verify_access_log(proto::VerifyAccessLogRequest { full: true })
        .await
        .unwrap()
        .into_inner();
    assert!(full.intact, "{full:?}");
    assert!(full.checkpoints_verified >= 1);
    let incremental = disc
        .verify_access_log(proto::VerifyAccessLogRequest { full: false })
        .await
        .unwrap()
        .into_inner();
    assert!(incremental.intact);
    assert!(
        incremental.start_seq > 1,
        "incremental verification starts at the last checkpoint: {incremental:?}"
    );

    let cp = disc
        .get_checkpoint(proto::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &cp.public_key);
    key.verify(&cp.signed_bytes, &cp.signature)
        .expect("checkpoint signature verifies");

    // The CLI prints the newest checkpoint with a valid signature.
    let key_path = server.pki.join("log-signing.key");
    let (ok, out) = cadrex_bin(&[
        "log",
        "checkpoint",
        "--store",
        &server.store_url,
        "--key",
        key_path.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("\"signature_valid\": true"), "{out}");
}

fn broken_at(out: &str) -> i64 {
    let rest = out
        .split("BROKEN at seq ")
        .nth(1)
        .unwrap_or_else(|| panic!("no break reported: {out}"));
    rest.split(':').next().unwrap().trim().parse().unwrap()
}

async fn log_verify_detects_an_edited_row(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    exec_sql(
        &server.store_url,
        "UPDATE access_log SET decision = 'ALLOW', status_code = 0 WHERE seq = 5",
    )
    .await;
    let (ok, out) = verify(&server);
    assert!(!ok);
    assert_eq!(broken_at(&out), 5, "{out}");
}

async fn log_verify_detects_a_deleted_row(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    exec_sql(&server.store_url, "DELETE FROM access_log WHERE seq = 4").await;
    let (ok, out) = verify(&server);
    assert!(!ok);
    assert_eq!(broken_at(&out), 4, "{out}");
}

async fn log_verify_detects_an_inserted_row(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    // Make room at seq 3 by moving rows 3.. up by one (highest first, for the key),
    // then forge a row at 3 whose own hash is computed correctly.
    exec_sql(&server.store_url, "UPDATE access_log SET seq = -seq WHERE seq >= 3; UPDATE access_log SET seq = -seq + 1 WHERE seq < 0;").await;
    let prev = "0000000000000000000000000000000000000000000000000000000000000000";
    let entry = cadrex::domain::chain::LogEntry {
        principal: "urn:cadrex:system:audit:360821:forged".into(),
        ..Default::default()
    };
    let hash = cadrex::domain::chain::row_hash(prev, 3, 1, &entry);
    exec_sql(
        &server.store_url,
        &format!(
            "INSERT INTO access_log (seq, time_us, principal, fingerprint, officer, method, resources, purpose, decision, \
             policy_ids, request_id, status_code, response_sha256, prev_hash, hash) VALUES \
             (3, 1, 'urn:cadrex:system:audit:360821:forged', '', '', '', '[]', '', '', '[]', '', 0, '', '{prev}', '{hash}')"
        ),
    )
    .await;
    let (ok, out) = verify(&server);
    assert!(!ok);
    assert_eq!(broken_at(&out), 3, "{out}");
}

async fn log_verify_detects_reordered_rows(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    exec_sql(
        &server.store_url,
        "UPDATE access_log SET seq = -1 WHERE seq = 3; UPDATE access_log SET seq = 3 WHERE seq = 4; UPDATE access_log SET seq = 4 WHERE seq = -1;",
    )
    .await;
    let (ok, out) = verify(&server);
    assert!(!ok);
    assert_eq!(broken_at(&out), 3, "{out}");
}

async fn log_verify_detects_truncation_below_a_checkpoint(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Cut the newest rows and rewind the head to match, so the chain itself is consistent.
    exec_sql(
        &server.store_url,
        "DELETE FROM access_log WHERE seq > 6; \
         UPDATE access_log_head SET seq = 6, hash = (SELECT hash FROM access_log WHERE seq = 6) WHERE id = 1;",
    )
    .await;
    let (ok, out) = verify(&server);
    assert!(!ok, "{out}");
    assert_eq!(broken_at(&out), 7, "{out}");
    assert!(out.contains("checkpoint"), "{out}");
}
