//! Identity from the client certificate: WhoAmI, AllowedMethods, refusals at the handshake and on the call, CRL reload.

use std::time::Duration;

use cadrex::pki::ClientSpec;
use cadrex::proto::{self, WhoAmIRequest};
use tonic::Code;

use crate::both_backends;
use crate::common::matrix::{ACCESS_LOG, CADRE, agencies, matrix};
use crate::common::{
    Backend, SystemServiceClient, TestServer, cadrex_bin, new_cadre, server_log, violated_fields,
};

both_backends!(
    who_am_i_for_each_agency,
    allowed_methods_differ_by_agency,
    officer_is_percent_encoded_utf8_and_checked_like_a_name,
    certificates_without_client_auth_are_refused_at_the_handshake,
);

async fn who_am_i_for_each_agency(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    for (agency, expected) in [
        ("discipline", proto::Agency::Discipline),
        ("organization", proto::Agency::Organization),
        ("audit", proto::Agency::Audit),
        ("petition", proto::Agency::Petition),
    ] {
        let mut req = tonic::Request::new(WhoAmIRequest {});
        // 王五, UTF-8 percent-encoded as metadata must be.
        req.metadata_mut()
            .insert("x-cadrex-officer", "%E7%8E%8B%E4%BA%94".parse().unwrap());
        let me = server
            .system(agency, "360802")
            .await
            .who_am_i(req)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.agency, expected as i32, "{agency}");
        assert_eq!(me.division, "360802");
        assert_eq!(me.system, format!("{agency}-sys"));
        assert_eq!(
            me.principal,
            format!("urn:cadrex:system:{agency}:360802:{agency}-sys")
        );
        assert_eq!(me.officer, "王五");
        assert_eq!(me.certificate_fingerprint.len(), 64);
        assert!(me.certificate_expire_time.unwrap().seconds > 0);
    }
}

async fn allowed_methods_differ_by_agency(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let mut by_agency = std::collections::HashMap::new();
    for agency in agencies() {
        let methods = server
            .system(agency, "360821")
            .await
            .allowed_methods(proto::AllowedMethodsRequest {})
            .await
            .unwrap()
            .into_inner()
            .methods;
        by_agency.insert(agency, methods);
    }
    let has = |a: &str, m: &str| by_agency[a].iter().any(|x| x.ends_with(m));
    // As the access matrix says: the registry's writer (A) creates and updates cadres,
    // an F on the access log verifies it; every agency finds cadres and asks who it is.
    for agency in agencies() {
        let cadres = matrix().cell(CADRE, agency);
        assert_eq!(has(agency, "/CreateCadre"), cadres.has("A"), "{agency}");
        assert_eq!(has(agency, "/UpdateCadre"), cadres.has("A"), "{agency}");
        assert_eq!(
            has(agency, "/VerifyAccessLog"),
            matrix().cell(ACCESS_LOG, agency).has("F"),
            "{agency}"
        );
        assert!(has(agency, "/GetCadre"), "{agency}");
        assert!(has(agency, "/WhoAmI"), "{agency}");
    }
    assert_ne!(by_agency["organization"], by_agency["audit"]);
}

/// The first RPC on a channel whose handshake the server refuses.
async fn first_call_code(channel: tonic::transport::Channel) -> Code {
    SystemServiceClient::new(channel)
        .who_am_i(WhoAmIRequest {})
        .await
        .map(|_| Code::Ok)
        .unwrap_or_else(|e| {
            eprintln!("refused: {e:?}");
            e.code()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_refusals_are_unavailable_and_logged() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let log = server_log();

    // No client certificate at all.
    let ch = server.channel_with(None, None).await;
    assert_eq!(first_call_code(ch).await, Code::Unavailable);

    // A certificate from a foreign CA, with a perfectly good URI.
    let foreign = server.dir.path().join("foreign");
    cadrex::pki::init(&foreign, "360821").unwrap();
    let fp = cadrex::pki::PkiPaths::new(&foreign);
    let (crt, key) = (
        fp.client_cert("discipline", "360821"),
        fp.client_key("discipline", "360821"),
    );
    let ch = server.channel_with(Some((&crt, &key)), None).await;
    assert_eq!(first_call_code(ch).await, Code::Unavailable);

    // An expired certificate from the right CA.
    let now = time::OffsetDateTime::now_utc();
    let (crt, key) = cadrex::pki::issue_custom(
        &server.pki,
        "expired",
        &ClientSpec {
            uris: vec!["urn:cadrex:system:audit:360821:old".into()],
            not_before: now - time::Duration::days(30),
            not_after: now - time::Duration::days(1),
            common_name: "expired".into(),
        },
    )
    .unwrap();
    let ch = server.channel_with(Some((&crt, &key)), None).await;
    assert_eq!(first_call_code(ch).await, Code::Unavailable);

    // A revoked certificate (revoked before it is ever used).
    let (crt, key) = cadrex::pki::issue(&server.pki, "audit", "360800", "audit-mis").unwrap();
    cadrex::pki::revoke(&server.pki, &crt).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let ch = server.channel_with(Some((&crt, &key)), None).await;
    assert_eq!(first_call_code(ch).await, Code::Unavailable);

    // The server writes its line after sending the alert, so the client can
    // see the refusal first: give the last line a moment to arrive.
    let mut text = log.text();
    for _ in 0..50 {
        if text.matches("TLS handshake refused").count() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = log.text();
    }
    let refusals: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("TLS handshake refused"))
        .collect();
    assert!(
        refusals.len() >= 4,
        "every refusal is logged: {refusals:#?}"
    );
    assert!(
        refusals.iter().all(|l| l.contains("127.0.0.1")),
        "with the peer address: {refusals:#?}"
    );
    for reason in [
        "no client certificate",
        "unknown issuer",
        "expired",
        "revoked",
    ] {
        assert!(
            refusals.iter().any(|l| l.to_lowercase().contains(reason)),
            "a refusal names {reason:?}: {refusals:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_without_exactly_one_uri_are_unauthenticated() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let now = time::OffsetDateTime::now_utc();
    for (stem, uris) in [
        ("no-uri", vec![]),
        (
            "two-uris",
            vec![
                "urn:cadrex:system:audit:360821:a".to_string(),
                "urn:cadrex:system:discipline:360821:b".to_string(),
            ],
        ),
    ] {
        let (crt, key) = cadrex::pki::issue_custom(
            &server.pki,
            stem,
            &ClientSpec {
                uris,
                not_before: now - time::Duration::hours(1),
                not_after: now + time::Duration::days(1),
                // A CN that looks like an identity must not be trusted.
                common_name: "urn:cadrex:system:discipline:000000:root".into(),
            },
        )
        .unwrap();
        let ch = server.channel_with(Some((&crt, &key)), None).await;
        let err = SystemServiceClient::new(ch)
            .who_am_i(WhoAmIRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{stem}: {err:?}");
    }
    let text = server_log().text();
    assert!(
        text.contains("no urn:cadrex:system URI SAN"),
        "reason logged"
    );
    assert!(
        text.contains("2 urn:cadrex:system URI SANs"),
        "reason logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_replaced_while_running_refuses_the_open_connection() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let (crt, key) = cadrex::pki::issue(&server.pki, "audit", "360821", "audit-mis").unwrap();
    let ch = server.channel_with(Some((&crt, &key)), None).await;
    let mut client = SystemServiceClient::new(ch);
    client.who_am_i(WhoAmIRequest {}).await.unwrap();
    cadrex::pki::revoke(&server.pki, &crt).unwrap();
    let mut refused = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The same client, hence the same HTTP/2 connection.
        if let Err(e) = client.who_am_i(WhoAmIRequest {}).await {
            refused = Some(e.code());
            break;
        }
    }
    assert_eq!(refused, Some(Code::Unauthenticated));
    assert!(
        server_log().text().contains("revoked"),
        "the refusal is logged"
    );
    // Others are unaffected.
    server
        .system("audit", "360821")
        .await
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap();
}

/// `cadrex pki crl` renews the CRL the server is running with: the revoked
/// certificate stays refused, the others keep working, and the CRL's next
/// update moves out by the days asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_crl_keeps_its_revocations() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let (crt, key) = cadrex::pki::issue(&server.pki, "audit", "360821", "audit-crl").unwrap();
    cadrex::pki::revoke(&server.pki, &crt).unwrap();
    let crl = server.pki.join("crl.pem");
    let before = std::fs::read(&crl).unwrap();
    let dir = server.pki.to_str().unwrap();
    let (ok, out) = cadrex_bin(&["pki", "crl", "--dir", dir, "--days", "90"]);
    assert!(ok, "{out}");
    assert_ne!(std::fs::read(&crl).unwrap(), before, "the CRL is re-signed");
    let (ok, out) = cadrex_bin(&["pki", "crl", "--dir", dir, "--days", "0"]);
    assert!(!ok, "zero days is refused: {out}");
    // The server re-reads the file on change; then a new connection with the
    // revoked certificate is refused and the others are served.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ch = server.channel_with(Some((&crt, &key)), None).await;
    assert_eq!(first_call_code(ch).await, Code::Unavailable);
    server
        .system("audit", "360821")
        .await
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_claiming_another_agency_changes_nothing() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let spoof = |mut r: tonic::metadata::MetadataMap| {
        r.insert("x-cadrex-agency", "organization".parse().unwrap());
        r.insert(
            "x-cadrex-principal",
            "urn:cadrex:system:organization:000000:org".parse().unwrap(),
        );
        r.insert(
            "x-forwarded-client-cert",
            "URI=urn:cadrex:system:organization:000000:org"
                .parse()
                .unwrap(),
        );
        r
    };
    let mut req = tonic::Request::new(WhoAmIRequest {});
    *req.metadata_mut() = spoof(req.metadata().clone());
    let me = server
        .system("audit", "360821")
        .await
        .who_am_i(req)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.agency, proto::Agency::Audit as i32);
    assert_eq!(me.division, "360821");

    let mut req = tonic::Request::new(proto::CreateCadreRequest {
        cadre: Some(new_cadre("李四", "360821", 1)),
        request_id: String::new(),
    });
    *req.metadata_mut() = spoof(req.metadata().clone());
    let err = server
        .cadres("audit", "360821")
        .await
        .create_cadre(req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_served() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let ch = server.channel("petition", "360821").await;
    let resp = tonic_health::pb::health_client::HealthClient::new(ch)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "cadrex.v1.CadreService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// A request carrying `officer` as its `x-cadrex-officer` metadata.
fn with_officer<T>(message: T, officer: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut()
        .insert("x-cadrex-officer", officer.parse().unwrap());
    req
}

/// Metadata is ASCII: the officer's name travels UTF-8 percent-encoded, is
/// decoded into the access log as the name it is, and a value that is not a
/// name is refused rather than logged as something else.
async fn officer_is_percent_encoded_utf8_and_checked_like_a_name(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let encoded = "%E5%BC%A0%E4%B8%89"; // 张三
    let me = server
        .system("organization", "360821")
        .await
        .who_am_i(with_officer(WhoAmIRequest {}, encoded))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.officer, "张三");
    let cadre = new_cadre("李四", "360821", 1);
    let created = server
        .cadres("organization", "360821")
        .await
        .create_cadre(with_officer(
            proto::CreateCadreRequest {
                cadre: Some(cadre),
                request_id: String::new(),
            },
            encoded,
        ))
        .await
        .unwrap()
        .into_inner();
    let rows = server
        .access_log("organization", "360821")
        .await
        .list_access_events(proto::ListAccessEventsRequest {
            cadre: created.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_events;
    assert!(
        rows.iter()
            .any(|r| r.method.ends_with("/CreateCadre") && r.officer == "张三"),
        "the officer reads back decoded: {rows:?}"
    );

    let too_long = "%E5%BC%A0".repeat(65);
    for bad in [
        "%E5%BC",      // cut inside a character
        "%FF%FE",      // not UTF-8
        "%zz",         // not a percent-encoding
        "50%",         // a stray percent sign
        "a%0Ab",       // a line break
        "%E2%80%AEab", // a right-to-left override
        "张三",        // raw UTF-8: not percent-encoded
        too_long.as_str(),
    ] {
        let err = server
            .system("organization", "360821")
            .await
            .who_am_i(with_officer(WhoAmIRequest {}, bad))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&err), ["x-cadrex-officer"], "{bad}");
        let err = server
            .cadres("organization", "360821")
            .await
            .get_cadre(with_officer(
                proto::GetCadreRequest {
                    name: created.name.clone(),
                },
                bad,
            ))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&err), ["x-cadrex-officer"], "{bad}");
        assert!(err.message().starts_with("x-cadrex-officer: "), "{err:?}");
    }
    // Plain ASCII needs no encoding; 64 characters is still a name.
    let me = server
        .system("organization", "360821")
        .await
        .who_am_i(with_officer(WhoAmIRequest {}, &"%E5%BC%A0".repeat(64)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.officer, "张".repeat(64));
}

/// A certificate the CA signed for another purpose (a server's, or one with no
/// extended key usage at all) cannot act as a calling system.
async fn certificates_without_client_auth_are_refused_at_the_handshake(backend: Backend) {
    use cadrex::pki::ExtendedKeyUsagePurpose as Eku;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let maddr = listener.local_addr().unwrap();
    let server = TestServer::spawn_with(backend, |c| {
        c.metrics_listener = Some(cadrex::metrics::PreboundListener::new(listener));
    })
    .await;
    let log = server_log();
    let now = time::OffsetDateTime::now_utc();
    for (stem, usages) in [
        ("no-eku", vec![]),
        ("server-only", vec![Eku::ServerAuth]),
        ("signing-only", vec![Eku::CodeSigning]),
    ] {
        let (crt, key) = cadrex::pki::issue_with_usages(
            &server.pki,
            stem,
            &ClientSpec {
                uris: vec![format!("urn:cadrex:system:audit:360821:{stem}")],
                not_before: now - time::Duration::hours(1),
                not_after: now + time::Duration::days(1),
                common_name: stem.into(),
            },
            &usages,
        )
        .unwrap();
        let ch = server.channel_with(Some((&crt, &key)), None).await;
        assert_eq!(first_call_code(ch).await, Code::Unavailable, "{stem}");
    }
    // With clientAuth, the same CA and URI shape are accepted.
    let (crt, key) = cadrex::pki::issue_with_usages(
        &server.pki,
        "client",
        &ClientSpec {
            uris: vec!["urn:cadrex:system:audit:360821:client".into()],
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(1),
            common_name: "client".into(),
        },
        &[Eku::ClientAuth],
    )
    .unwrap();
    let ch = server.channel_with(Some((&crt, &key)), None).await;
    assert_eq!(first_call_code(ch).await, Code::Ok);

    let body = crate::common::scrape::scrape_until(maddr, "refusals by purpose", |t| {
        crate::common::scrape::sample(
            t,
            "cadrex_tls_handshakes_refused_total",
            &[("reason", "not a client certificate")],
        ) == Some(3.0)
    })
    .await;
    assert!(body.contains("cadrex_tls_handshakes_refused_total"));
    let mut refusals = Vec::new();
    for _ in 0..50 {
        refusals = log
            .text()
            .lines()
            .filter(|l| {
                l.contains("TLS handshake refused") && l.contains("not a client certificate")
            })
            .map(str::to_string)
            .collect();
        if refusals.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refusals.len() >= 3, "each refusal logged: {refusals:#?}");
    assert!(
        refusals.iter().all(|l| l.contains("127.0.0.1")),
        "{refusals:#?}"
    );
}
