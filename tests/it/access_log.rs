//! The access log through the real server: rows for allowed and denied calls, own-calls visibility and the subject view, discipline's jurisdiction, validated names only, the final checkpoint, and tamper detection by `cadrex log verify`.

use std::time::Duration;

use cadrex::proto::{self, GetCadreRequest, ListAccessEventsRequest};
use tonic::Code;

use crate::both_backends;
use std::path::PathBuf;

use crate::common::{
    Backend, TestServer, cadrex_bin, cadrex_bin_split, count_rows, exec_sql, new_cadre,
};

both_backends!(
    allowed_and_denied_calls_are_logged,
    verify_rpc_and_checkpoints,
    log_verify_detects_an_edited_row,
    log_verify_detects_a_deleted_row,
    log_verify_detects_an_inserted_row,
    log_verify_detects_reordered_rows,
    log_verify_detects_truncation_below_a_checkpoint,
    log_verify_detects_a_rewritten_chain_whose_checkpoints_were_deleted,
    log_verify_detects_a_rewritten_chain_re_signed_with_another_key,
    log_verify_detects_deleted_and_added_index_rows,
    log_verify_needs_a_public_key_or_no_signatures,
    subject_view_reads_the_same_for_missing_and_out_of_jurisdiction,
    a_hidden_record_and_a_missing_one_leave_the_same_row,
    a_partial_row_keeps_no_digest_and_no_request_id,
    batch_items_about_foreign_and_missing_cadres_leave_the_same_row,
    discipline_reads_the_log_of_its_jurisdiction,
    dossier_opinion_request_is_validated_before_the_log,
    graceful_shutdown_signs_a_final_checkpoint,
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
    // Let the server's own checkpoint cover the GetCheckpoint row too, so that
    // nothing the server signs later races a test's tampering.
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Another agency keeps a copy of the newest checkpoint, as `log checkpoint` prints it.
    let (ok, json, stderr) = cadrex_bin_split(&[
        "log",
        "checkpoint",
        "--store",
        &server.store_url,
        "--public-key",
        public_key(&server).to_str().unwrap(),
    ]);
    assert!(ok, "{json}{stderr}");
    std::fs::write(exported(&server), json).unwrap();
    let (ok, out) = verify_with(
        &server,
        &["--checkpoint", exported(&server).to_str().unwrap()],
    );
    assert!(
        ok,
        "an untouched chain verifies against its exported checkpoint: {out}"
    );
    (server, cadre)
}

fn public_key(server: &TestServer) -> PathBuf {
    server.pki.join("log-signing.pub")
}

fn exported(server: &TestServer) -> PathBuf {
    server.dir.path().join("exported-checkpoint.json")
}

/// `cadrex log verify` with the operator's public key (never the private one).
fn verify(server: &TestServer) -> (bool, String) {
    verify_with(server, &[])
}

fn verify_with(server: &TestServer, extra: &[&str]) -> (bool, String) {
    let key = public_key(server);
    let mut args = vec![
        "log",
        "verify",
        "--store",
        &server.store_url,
        "--public-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cadrex_bin(&args)
}

/// The tamper is found at `seq` by a plain verify, and found (wherever) by a
/// verify against the exported checkpoint.
fn assert_detected(server: &TestServer, seq: i64) {
    let (ok, out) = verify(server);
    assert!(!ok, "{out}");
    assert_eq!(broken_at(&out), seq, "{out}");
    let (ok, out) = verify_with(
        server,
        &["--checkpoint", exported(server).to_str().unwrap()],
    );
    assert!(!ok, "with the exported checkpoint too: {out}");
    assert!(out.contains("BROKEN"), "{out}");
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
        // Keyed: the exchange can match an answer shown to it; a reader of
        // the row cannot test a guess at what the answer held.
        assert!(
            e.response_sha256.starts_with("k1:") && e.response_sha256.len() == 67,
            "allowed reads carry the keyed digest of what was disclosed: {}",
            e.response_sha256
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

    // The CLI prints the newest checkpoint as the protobuf JSON of
    // cadrex.v1.Checkpoint, checked with the public key alone.
    let (ok, out, stderr) = cadrex_bin_split(&[
        "log",
        "checkpoint",
        "--store",
        &server.store_url,
        "--public-key",
        public_key(&server).to_str().unwrap(),
    ]);
    assert!(ok, "{out}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let b64 = |k: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(json[k].as_str().unwrap_or_else(|| panic!("{k} in {out}")))
            .unwrap()
    };
    assert!(
        json["seq"].as_str().unwrap().parse::<i64>().unwrap() >= cp.seq,
        "int64 as a string: {out}"
    );
    assert_eq!(json["keyId"], cp.key_id.as_str());
    assert_eq!(
        b64("publicKey"),
        cp.public_key,
        "the same key GetCheckpoint names"
    );
    let time = json["time"].as_str().unwrap();
    assert!(
        time.ends_with('Z') && time.contains('T'),
        "RFC 3339: {time}"
    );
    key.verify(&b64("signedBytes"), &b64("signature"))
        .expect("the printed checkpoint's signature verifies");
    // The private key is not needed, and a wrong public key is refused.
    let other = tempfile::tempdir().unwrap();
    cadrex::pki::init(other.path(), "360821").unwrap();
    let (ok, out) = cadrex_bin(&[
        "log",
        "checkpoint",
        "--store",
        &server.store_url,
        "--public-key",
        other.path().join("log-signing.pub").to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
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
    assert_detected(&server, 5);
}

async fn log_verify_detects_a_deleted_row(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    exec_sql(&server.store_url, "DELETE FROM access_log WHERE seq = 4").await;
    assert_detected(&server, 4);
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
    assert_detected(&server, 3);
}

async fn log_verify_detects_reordered_rows(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    exec_sql(
        &server.store_url,
        "UPDATE access_log SET seq = -1 WHERE seq = 3; UPDATE access_log SET seq = 3 WHERE seq = 4; UPDATE access_log SET seq = 4 WHERE seq = -1;",
    )
    .await;
    assert_detected(&server, 3);
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
    // Also with the stored checkpoints deleted: the exported one still names row 7 and after.
    exec_sql(&server.store_url, "DELETE FROM log_checkpoints").await;
    let (ok, out) = verify_with(
        &server,
        &["--checkpoint", exported(&server).to_str().unwrap()],
    );
    assert!(!ok, "{out}");
    assert_eq!(broken_at(&out), 7, "{out}");
    assert!(out.contains("exported checkpoint"), "{out}");
}

/// Rewrites the chain as an insider with database access would: edits row
/// `seq`, recomputes every hash from there on and the head, so that the
/// chain alone verifies again, and deletes every stored checkpoint.
async fn rewrite_chain(server: &TestServer, seq: i64) -> (i64, String) {
    use cadrex::domain::chain::{GENESIS, row_hash};
    let store = cadrex::store::connect(&server.store_url).await.unwrap();
    let rows = store.read_log(0, 100_000).await.unwrap();
    store.close().await;
    let mut prev = GENESIS.to_string();
    let mut sql = String::from("DELETE FROM log_checkpoints;");
    for mut row in rows {
        if row.seq == seq {
            row.entry.decision = "ALLOW".into();
            row.entry.status_code = 0;
        }
        let hash = row_hash(&prev, row.seq, row.time_us, &row.entry);
        if row.seq >= seq {
            sql.push_str(&format!(
                "UPDATE access_log SET decision = '{}', status_code = {}, prev_hash = '{prev}', hash = '{hash}' WHERE seq = {};",
                row.entry.decision, row.entry.status_code, row.seq
            ));
        }
        prev = hash;
    }
    let head = count_rows(&server.store_url, "SELECT MAX(seq) FROM access_log").await;
    sql.push_str(&format!(
        "UPDATE access_log_head SET hash = '{prev}' WHERE id = 1;"
    ));
    exec_sql(&server.store_url, &sql).await;
    (head, prev)
}

async fn log_verify_detects_a_rewritten_chain_whose_checkpoints_were_deleted(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    let (head, _) = rewrite_chain(&server, 5).await;
    // The exported checkpoint, kept elsewhere, names a row that no longer matches.
    let cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exported(&server)).unwrap()).unwrap();
    let cp_seq: i64 = cp["seq"].as_str().unwrap().parse().unwrap();
    assert!(cp_seq >= 5 && cp_seq <= head);
    let (ok, out) = verify_with(
        &server,
        &["--checkpoint", exported(&server).to_str().unwrap()],
    );
    assert!(!ok, "{out}");
    assert_eq!(broken_at(&out), cp_seq, "{out}");
    assert!(out.contains("exported checkpoint"), "{out}");
    // Without the exported copy, what is left is a chain no signature covers:
    // found once those rows are older than the server's signing interval.
    let (ok, out) = verify_with(&server, &["--max-unsigned-age", "0s"]);
    assert!(!ok, "{out}");
    assert_eq!(broken_at(&out), 1, "{out}");
    assert!(out.contains("no signed checkpoint"), "{out}");
}

async fn log_verify_detects_a_rewritten_chain_re_signed_with_another_key(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    let (head, hash) = rewrite_chain(&server, 5).await;
    // The rewriter signs its chain with a key of its own, stored beside the
    // checkpoints; verification trusts only the operator's public key.
    let other = tempfile::tempdir().unwrap();
    cadrex::pki::init(other.path(), "360821").unwrap();
    let forger =
        cadrex::access_log::LogSigner::load(&other.path().join("log-signing.key")).unwrap();
    let store = cadrex::store::connect(&server.store_url).await.unwrap();
    store
        .insert_checkpoint(&forger.sign(head, &hash))
        .await
        .unwrap();
    store.close().await;
    let (ok, out) = verify(&server);
    assert!(!ok, "{out}");
    assert_eq!(broken_at(&out), head, "{out}");
    assert!(out.contains("invalid signature"), "{out}");
    let (ok, out) = verify_with(
        &server,
        &["--checkpoint", exported(&server).to_str().unwrap()],
    );
    assert!(!ok, "{out}");
}

async fn log_verify_detects_deleted_and_added_index_rows(backend: Backend) {
    let (server, cadre) = busy_server(backend).await;
    let url = server.store_url.clone();
    // "Who read this cadre" loses a reader.
    let seq = count_rows(&url, "SELECT MAX(seq) FROM access_log_cadres").await;
    exec_sql(
        &url,
        &format!("DELETE FROM access_log_cadres WHERE seq = {seq}"),
    )
    .await;
    assert_detected(&server, seq);
    exec_sql(
        &url,
        &format!(
            "INSERT INTO access_log_cadres (cadre, seq) VALUES ('{}', {seq})",
            cadre.name
        ),
    )
    .await;
    let (ok, out) = verify(&server);
    assert!(ok, "restored: {out}");

    // ... or gains one it never had.
    exec_sql(
        &url,
        "INSERT INTO access_log_cadres (cadre, seq) VALUES ('cadres/forged', 2)",
    )
    .await;
    assert_detected(&server, 2);
    exec_sql(
        &url,
        "DELETE FROM access_log_cadres WHERE cadre = 'cadres/forged'",
    )
    .await;

    // ... or one past the end of the chain.
    exec_sql(
        &url,
        "INSERT INTO access_log_cadres (cadre, seq) VALUES ('cadres/forged', 1000000)",
    )
    .await;
    let (ok, out) = verify(&server);
    assert!(!ok, "{out}");
    assert_eq!(broken_at(&out), 1_000_000, "{out}");
}

async fn log_verify_needs_a_public_key_or_no_signatures(backend: Backend) {
    let (server, _) = busy_server(backend).await;
    let (ok, out) = cadrex_bin(&["log", "verify", "--store", &server.store_url]);
    assert!(!ok, "no key, no pass: {out}");
    assert!(out.contains("--no-signatures"), "{out}");
    let (ok, out) = cadrex_bin(&[
        "log",
        "verify",
        "--store",
        &server.store_url,
        "--no-signatures",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("NOT checked"), "{out}");
    // A checkpoint with a zeroed signature fails with the key; passes only without it.
    let zero = match backend {
        Backend::Sqlite => "zeroblob(64)",
        Backend::Postgres => "decode(repeat('00', 64), 'hex')",
    };
    exec_sql(
        &server.store_url,
        &format!("UPDATE log_checkpoints SET signature = {zero}"),
    )
    .await;
    let (ok, out) = verify(&server);
    assert!(!ok, "{out}");
    assert!(out.contains("invalid signature"), "{out}");
}

/// `msg` with an `x-request-id`, so the call's row can be found again.
fn tagged<T>(msg: T, id: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("x-request-id", id.parse().unwrap());
    r
}

async fn own_rows(server: &TestServer, agency: &str, division: &str) -> Vec<proto::AccessEvent> {
    server
        .access_log(agency, division)
        .await
        .list_access_events(ListAccessEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events
}

fn row<'a>(rows: &'a [proto::AccessEvent], request_id: &str) -> &'a proto::AccessEvent {
    rows.iter()
        .find(|e| e.request_id == request_id)
        .unwrap_or_else(|| panic!("no row {request_id} in {rows:#?}"))
}

/// What a twin comparison keeps: everything but seq, time and request id,
/// with the two cadres' names replaced by one placeholder.
fn comparable(e: &proto::AccessEvent, names: &[&str]) -> proto::AccessEvent {
    let mut e = e.clone();
    e.seq = 0;
    e.time = None;
    e.request_id.clear();
    for r in &mut e.resources {
        if names.contains(&r.as_str()) {
            *r = "NAME".into();
        }
    }
    e
}

/// The reference: a record of a kind the caller may not see, on a cadre it
/// sees, is answered like one that does not exist — and its own log row, the
/// subject view, may not tell them apart either (a red-team finding: the row
/// said ALLOW for the hidden record, DENY for the missing one).
async fn a_hidden_record_and_a_missing_one_leave_the_same_row(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = crate::common::cadre(&server, 17).await;
    let all = crate::common::one_of_each_kind(&server, &c, "hidden-row").await;
    let hidden = all["PERSONAL_MATTERS_CHECK"].name.clone();
    let missing = format!("{}/records/01a2539516f8729ab7c1e9fcb8982c00", c.name);
    for agency in ["inspection", "audit", "petition"] {
        let mut records = crate::common::records_client(server.channel(agency, "360821").await);
        let mut answers = Vec::new();
        for (tag, name) in [("hidden", &hidden), ("missing", &missing)] {
            let err = records
                .get_record(tagged(
                    proto::GetRecordRequest { name: name.clone() },
                    &format!("{agency}-{tag}"),
                ))
                .await
                .unwrap_err();
            answers.push((err.code(), err.message().replace(name.as_str(), "NAME")));
        }
        assert_eq!(answers[0], answers[1], "{agency}: the answers");
        let rows = own_rows(&server, agency, "360821").await;
        let (a, b) = (
            row(&rows, &format!("{agency}-hidden")),
            row(&rows, &format!("{agency}-missing")),
        );
        assert_eq!(a.decision, proto::Decision::Deny as i32, "{agency}");
        assert_eq!(
            comparable(a, &[&hidden, &missing]),
            comparable(b, &[&hidden, &missing]),
            "{agency}: its own rows"
        );
    }
}

async fn subject_view_reads_the_same_for_missing_and_out_of_jurisdiction(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let there = server
        .cadres("organization", "360821")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(new_cadre("郑二", "360821", 11)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let missing_id_number = new_cadre("无", "360821", 13).id_number;
    let missing_name = "cadres/nosuchcadre";
    let mut county = server.cadres("audit", "360802").await;
    let mut answers = Vec::new();
    for (tag, name) in [
        ("get-there", &there.name),
        ("get-missing", &missing_name.to_string()),
    ] {
        let e = county
            .get_cadre(tagged(GetCadreRequest { name: name.clone() }, tag))
            .await
            .unwrap_err();
        answers.push((e.code(), e.details().to_vec()));
    }
    for (tag, id_number) in [
        ("lookup-there", &there.id_number),
        ("lookup-missing", &missing_id_number),
    ] {
        let e = county
            .lookup_cadre(tagged(
                proto::LookupCadreRequest {
                    id_number: id_number.clone(),
                },
                tag,
            ))
            .await
            .unwrap_err();
        answers.push((e.code(), e.details().to_vec()));
    }
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "the answers are identical"
    );

    let rows = own_rows(&server, "audit", "360802").await;
    let names = [there.name.as_str(), missing_name];
    for (a, b) in [
        ("get-there", "get-missing"),
        ("lookup-there", "lookup-missing"),
    ] {
        assert_eq!(
            comparable(row(&rows, a), &names),
            comparable(row(&rows, b), &names),
            "the caller's own rows of {a} and {b} read the same"
        );
    }
    let lookup = row(&rows, "lookup-there");
    assert!(
        !lookup.resources.contains(&there.name),
        "a refused lookup does not show the cadre it resolved: {lookup:?}"
    );
    for e in &rows {
        assert!(
            e.hash.is_empty() && e.prev_hash.is_empty(),
            "subject view: {e:?}"
        );
        assert!(e.policy_ids.is_empty(), "subject view: {e:?}");
    }
    // Filtering its own rows by the cadre's name does not find the refused calls either.
    let by_cadre = server
        .access_log("audit", "360802")
        .await
        .list_access_events(ListAccessEventsRequest {
            cadre: there.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    assert!(by_cadre.is_empty(), "{by_cadre:#?}");

    // The stored row keeps the truth for the auditor in the cadre's jurisdiction.
    let truth = server
        .access_log("discipline", "360821")
        .await
        .list_access_events(ListAccessEventsRequest {
            cadre: there.name.clone(),
            method: "/cadrex.v1.CadreService/LookupCadre".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    let full = row(&truth, "lookup-there");
    assert_eq!(full.resources, std::slice::from_ref(&there.name));
    assert!(!full.policy_ids.is_empty() || full.decision == proto::Decision::Deny as i32);
    assert_eq!(full.hash.len(), 64, "{full:?}");
}

/// A row about cadres of two counties, read by one county's discipline
/// commission: the other county's names are left out, and so is everything
/// that could confirm a guess of them — the digests and the request id (which
/// `cadrex import` makes a digest of the whole batch).
async fn a_partial_row_keeps_no_digest_and_no_request_id(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let mut names = Vec::new();
    for (division, seq) in [("360821", 41), ("360802", 42)] {
        names.push(server.register(division, "卫一", seq).await.name);
    }
    let secret = "b7f3c1d2e4a5968877665544332211009988776655443322110099887766554433";
    proto::opinion_service_client::OpinionServiceClient::new(
        server.channel("organization", "360000").await,
    )
    .create_opinion_request(tagged(
        proto::CreateOpinionRequestRequest {
            cadres: names.clone(),
            purpose: proto::OpinionPurpose::Promotion as i32,
            ..Default::default()
        },
        secret,
    ))
    .await
    .unwrap();

    let province = own_rows(&server, "discipline", "360000").await;
    let full = row(&province, secret);
    assert_eq!(
        full.hash.len(),
        64,
        "the province reads the whole row: {full:?}"
    );
    assert!(names.iter().all(|n| full.resources.contains(n)), "{full:?}");

    let county = own_rows(&server, "discipline", "360821").await;
    let partial: Vec<&proto::AccessEvent> = county
        .iter()
        .filter(|e| e.method.ends_with("/CreateOpinionRequest"))
        .collect();
    assert_eq!(partial.len(), 1, "{county:#?}");
    let e = partial[0];
    assert!(e.resources.contains(&names[0]), "{e:?}");
    assert!(!e.resources.contains(&names[1]), "{e:?}");
    assert!(
        e.hash.is_empty()
            && e.prev_hash.is_empty()
            && e.response_sha256.is_empty()
            && e.request_id.is_empty(),
        "a row with pieces left out carries no digest and no request id: {e:?}"
    );
    assert!(county.iter().all(|e| e.request_id != secret), "{county:#?}");
    // Nor does filtering by the other county's cadre find that row: it reads
    // as filtering by a cadre that does not exist.
    let mut log = server.access_log("discipline", "360821").await;
    let missing = format!("cadres/{}", "0".repeat(32));
    for cadre in [&names[1], &missing] {
        let found = log
            .list_access_events(ListAccessEventsRequest {
                cadre: cadre.clone(),
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            found.access_events.is_empty() && found.next_page_token.is_empty(),
            "{cadre}: {found:?}"
        );
    }
}

/// A batch naming its own cadre and one other by 公民身份号码: whether the
/// other is registered in another county or nowhere, the answer and the row
/// the caller's own discipline commission reads in full are the same (no
/// policy of the refused item is recorded on the call), dry run or not.
async fn batch_items_about_foreign_and_missing_cadres_leave_the_same_row(backend: Backend) {
    use crate::common::{record, submit};
    let server = TestServer::spawn(backend).await;
    let own = server.register("360821", "蒋一", 51).await;
    let foreign = server.register("360802", "蒋二", 52).await;
    let own = &own;
    let missing = new_cadre("无", "360802", 53).id_number;
    let sanction = || crate::common::warning("2025-04-01");
    let mut client = crate::common::records_client(server.channel("discipline", "360821").await);
    let mut answers = Vec::new();
    for validate_only in [true, false] {
        for (side, number) in [("foreign", &foreign.id_number), ("missing", &missing)] {
            let mut other = record(own, &format!("SC-{side}-{validate_only}"), 1, sanction());
            other.cadre_id_number = number.clone();
            let tag = format!("batch-{side}-{validate_only}");
            let answer = client
                .batch_submit_records(tagged(
                    proto::BatchSubmitRecordsRequest {
                        requests: vec![
                            submit(record(
                                own,
                                &format!("SC-OWN-{side}-{validate_only}"),
                                1,
                                sanction(),
                            )),
                            submit(other),
                        ],
                        request_id: String::new(),
                        validate_only,
                    },
                    &tag,
                ))
                .await
                .unwrap()
                .into_inner();
            let refusal = answer.results[1]
                .error
                .clone()
                .expect("the other item is refused");
            answers.push((side, validate_only, refusal.code, refusal.message));
        }
    }
    for pair in answers.chunks(2) {
        assert_eq!(
            (pair[0].2, &pair[0].3),
            (pair[1].2, &pair[1].3),
            "foreign and missing answer alike: {answers:?}"
        );
    }

    let rows = own_rows(&server, "discipline", "360821").await;
    for validate_only in [true, false] {
        let f = row(&rows, &format!("batch-foreign-{validate_only}"));
        let m = row(&rows, &format!("batch-missing-{validate_only}"));
        assert_eq!(f.resources.len(), m.resources.len(), "{f:?}\n{m:?}");
        assert!(
            f.resources.iter().all(|r| r.starts_with(&own.name)),
            "{f:?}"
        );
        assert_eq!(
            (&f.policy_ids, f.decision, f.status_code),
            (&m.policy_ids, m.decision, m.status_code),
            "validate_only {validate_only}: foreign and missing leave the same row"
        );
        assert!(
            !f.policy_ids.iter().any(|p| p.contains("outside")),
            "{:?}",
            f.policy_ids
        );
    }
}

async fn discipline_reads_the_log_of_its_jurisdiction(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let mut cadres = Vec::new();
    for (division, seq) in [("360821", 21), ("360802", 22)] {
        let c = server
            .cadres("organization", division)
            .await
            .create_cadre(proto::CreateCadreRequest {
                cadre: Some(new_cadre("冯一", division, seq)),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        // Read by a system of its own county, and refused to the other county.
        server
            .cadres("audit", division)
            .await
            .get_cadre(tagged(
                GetCadreRequest {
                    name: c.name.clone(),
                },
                &format!("read-{division}"),
            ))
            .await
            .unwrap();
        cadres.push(c);
    }
    let _ = server
        .cadres("petition", "360802")
        .await
        .get_cadre(tagged(
            GetCadreRequest {
                name: cadres[0].name.clone(),
            },
            "probe-from-360802",
        ))
        .await
        .unwrap_err();

    let rows = own_rows(&server, "discipline", "360802").await;
    assert!(
        rows.iter().all(|e| e.request_id != "read-360821"),
        "discipline-360802 does not read a 360821 system's call about a 360821 cadre: {rows:#?}"
    );
    assert!(
        !rows
            .iter()
            .any(|e| e.resources.contains(&cadres[0].name) && e.principal.contains(":360821:")),
        "{rows:#?}"
    );
    let own = row(&rows, "read-360802");
    assert_eq!(
        own.resources,
        [cadres[1].name.clone()],
        "about its cadre: the full row"
    );
    assert_eq!(own.hash.len(), 64);
    let probe = row(&rows, "probe-from-360802");
    assert!(
        probe.hash.is_empty() && probe.policy_ids.is_empty() && probe.resources.is_empty(),
        "a call by a system in its jurisdiction about a cadre outside it: subject view: {probe:?}"
    );
    // Filtering by the other county's cadre finds nothing its full view does not cover.
    let by_cadre = server
        .access_log("discipline", "360802")
        .await
        .list_access_events(ListAccessEventsRequest {
            cadre: cadres[0].name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    assert!(by_cadre.is_empty(), "{by_cadre:#?}");

    let province = own_rows(&server, "discipline", "360000").await;
    for tag in ["read-360821", "read-360802", "probe-from-360802"] {
        let e = row(&province, tag);
        assert_eq!(
            e.hash.len(),
            64,
            "discipline-360000 reads both counties in full: {e:?}"
        );
        assert!(!e.resources.is_empty());
    }
}

async fn dossier_opinion_request_is_validated_before_the_log(backend: Backend) {
    use tonic_types::StatusExt;
    let server = TestServer::spawn(backend).await;
    let far = server
        .cadres("organization", "360821")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(new_cadre("褚一", "360821", 31)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let near = server
        .cadres("organization", "360802")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(new_cadre("褚二", "360802", 32)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut dossiers = proto::dossier_service_client::DossierServiceClient::new(
        server.channel("audit", "360802").await,
    );
    let far_record = format!("{}/records/forged", far.name);
    let big = "x".repeat(1 << 20);
    for (tag, value) in [
        ("false-entry", far_record.as_str()),
        ("request-not-for-audit", "opinionRequests/abc123"),
        ("one-megabyte", big.as_str()),
        ("nul", "opinionRequests/a\0b"),
    ] {
        let e = dossiers
            .get_cadre_dossier(tagged(
                proto::GetCadreDossierRequest {
                    cadre: near.name.clone(),
                    purpose: proto::Purpose::AuditPlanning as i32,
                    opinion_request: value.to_string(),
                },
                tag,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{tag}: {e:?}");
        let fields: Vec<String> = e
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["opinion_request"], "{tag}");
    }
    // Nothing of it entered the log: not in the rows, not in "who read this cadre".
    let rows = own_rows(&server, "audit", "360802").await;
    for tag in [
        "false-entry",
        "request-not-for-audit",
        "one-megabyte",
        "nul",
    ] {
        let e = row(&rows, tag);
        assert_eq!(e.status_code, Code::InvalidArgument as i32);
    }
    let url = &server.store_url;
    assert_eq!(
        count_rows(url, "SELECT COUNT(*) FROM access_log WHERE resources LIKE '%forged%' OR resources LIKE '%abc123%' OR length(resources) > 10000").await,
        0
    );
    let readers = server
        .access_log("discipline", "360821")
        .await
        .list_access_events(ListAccessEventsRequest {
            cadre: far.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    assert!(
        readers.iter().all(|e| !e.principal.contains(":360802:")),
        "who read this cadre is unaffected: {readers:#?}"
    );
}

async fn graceful_shutdown_signs_a_final_checkpoint(backend: Backend) {
    // No periodic checkpoint will come: only the one signed at shutdown.
    let mut server = TestServer::spawn_with(backend, |c| {
        c.checkpoint_interval = Duration::from_secs(3600);
    })
    .await;
    let cadre = server
        .cadres("organization", "360821")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(new_cadre("卫一", "360821", 41)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..5 {
        server
            .cadres("discipline", "360821")
            .await
            .get_cadre(GetCadreRequest {
                name: cadre.name.clone(),
            })
            .await
            .unwrap();
    }
    server.stop().await;
    let store = cadrex::store::connect(&server.store_url).await.unwrap();
    let (head, hash) = store.log_head().await.unwrap();
    let cp = store
        .latest_checkpoint()
        .await
        .unwrap()
        .expect("a final checkpoint");
    store.close().await;
    assert!(head >= 6);
    assert_eq!(
        (cp.seq, cp.hash),
        (head, hash),
        "the final checkpoint covers the last row"
    );
    let (ok, out) = verify_with(&server, &["--max-unsigned-age", "0s"]);
    assert!(ok, "{out}");
}
