//! The Prometheus endpoint of a real server (calls, refusals, access-log commits, watcher lag, certificate dates) and the expiry warning.

use std::path::Path;
use std::time::{Duration, Instant};

use cadrex::metrics::PreboundListener;
use cadrex::proto::{self, CreateCadreRequest, WhoAmIRequest};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::both_backends;
use crate::common::scrape::{get, sample, scrape_until};
use crate::common::{Backend, TestServer, new_cadre, server_log};

both_backends!(
    endpoint_reports_calls_refusals_and_dates,
    expiry_warning_at_start_and_reload,
    id_number_guesses_are_counted_per_system,
);

async fn endpoint_reports_calls_refusals_and_dates(backend: Backend) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let maddr = listener.local_addr().unwrap();
    let server = TestServer::spawn_with(backend, |c| {
        c.metrics_listener = Some(PreboundListener::new(listener));
    })
    .await;

    // One allowed write, one denied (audit may not register cadres).
    let create = |agency: &'static str| {
        let server = &server;
        async move {
            server
                .cadres(agency, "360821")
                .await
                .create_cadre(CreateCadreRequest {
                    cadre: Some(new_cadre("赵六", "360821", 11)),
                    request_id: String::new(),
                })
                .await
        }
    };
    create("organization").await.unwrap();
    assert_eq!(
        create("audit").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // A refused handshake: no client certificate.
    let anonymous = server.channel_with(None, None).await;
    let status = proto::system_service_client::SystemServiceClient::new(anonymous)
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    // A path the server does not serve: counted, but not as a series of its own.
    let mut raw = tonic::client::Grpc::new(server.channel("organization", "360821").await);
    raw.ready().await.unwrap();
    let status = raw
        .unary::<_, proto::WhoAmIResponse, _>(
            tonic::Request::new(WhoAmIRequest {}),
            http::uri::PathAndQuery::from_static("/cadrex.v1.NoSuchService/Probe"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    // A watch stream that sees the cadre, then goes away.
    let mut watch = proto::change_feed_service_client::ChangeFeedServiceClient::new(
        server.channel("discipline", "360821").await,
    )
    .watch_changes(proto::WatchChangesRequest::default())
    .await
    .unwrap()
    .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(
        first.frame,
        Some(proto::watch_changes_response::Frame::Event(_))
    ));
    let watcher = "urn:cadrex:system:discipline:360821:discipline-sys";
    scrape_until(maddr, "the watcher's lag gauge", |t| {
        sample(t, "cadrex_change_feed_lag", &[("watcher", watcher)]).is_some()
    })
    .await;
    drop(watch);

    let create_m = "/cadrex.v1.CadreService/CreateCadre";
    let watch_m = "/cadrex.v1.ChangeFeedService/WatchChanges";
    let text = scrape_until(maddr, "the refused handshake and the ended stream", |t| {
        sample(
            t,
            "cadrex_tls_handshakes_refused_total",
            &[("reason", "no client certificate")],
        )
        .is_some()
            && sample(
                t,
                "cadrex_rpc_requests_total",
                &[("method", watch_m), ("code", "Cancelled")],
            )
            .is_some()
    })
    .await;
    let at_least = |name: &str, labels: &[(&str, &str)], n: f64| {
        let v = sample(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} missing"));
        assert!(v >= n, "{name} {labels:?} = {v}, expected at least {n}");
        v
    };
    at_least(
        "cadrex_rpc_requests_total",
        &[("method", create_m), ("code", "Ok")],
        1.0,
    );
    at_least(
        "cadrex_rpc_requests_total",
        &[("method", create_m), ("code", "PermissionDenied")],
        1.0,
    );
    // The start-up probe's WhoAmI calls, through the outer layer too.
    at_least(
        "cadrex_rpc_requests_total",
        &[
            ("method", "/cadrex.v1.SystemService/WhoAmI"),
            ("code", "Ok"),
        ],
        1.0,
    );
    at_least(
        "cadrex_rpc_duration_seconds_count",
        &[("method", create_m)],
        2.0,
    );
    at_least(
        "cadrex_rpc_duration_seconds_bucket",
        &[("method", create_m), ("le", "+Inf")],
        2.0,
    );
    // The denied write and the stream's opening row went through the appender.
    at_least("cadrex_access_log_batch_rows_count", &[], 2.0);
    at_least("cadrex_access_log_batch_rows_sum", &[], 2.0);
    at_least("cadrex_access_log_commit_seconds_count", &[], 2.0);
    assert!(text.contains("cadrex_access_log_commit_seconds_bucket"));

    at_least(
        "cadrex_rpc_requests_total",
        &[("method", "unknown"), ("code", "Unimplemented")],
        1.0,
    );
    assert!(!text.contains("NoSuchService"));

    let ten_years = 10.0 * 366.0 * 86_400.0;
    for which in ["server", "ca"] {
        let v = at_least(
            "cadrex_certificate_expiry_seconds",
            &[("which", which)],
            1.0,
        );
        assert!(v < ten_years, "{which}: {v}");
    }
    let crl = at_least("cadrex_crl_next_update_seconds", &[], 1.0);
    assert!(crl < ten_years, "{crl}");

    let (head, _) = get(maddr, "/metrics").await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let (head, _) = get(maddr, "/other").await;
    assert!(head.starts_with("HTTP/1.0 404"), "{head}");
}

/// Replaces the server certificate in `pki` with one of the same CA that expires in `days`.
fn short_server_cert(pki: &Path, days: i64) {
    use rcgen::{
        CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
        SanType,
    };
    let p = cadrex::pki::PkiPaths::new(pki);
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(p.ca_key()).unwrap()).unwrap();
    let issuer =
        Issuer::from_ca_cert_pem(&std::fs::read_to_string(p.ca_cert()).unwrap(), ca_key).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
    let cert = params.signed_by(&key, &issuer).unwrap();
    // Key first: the reloader must never pair the new certificate with the old key
    // for long; a failed reload in between is retried on the next change.
    std::fs::write(p.server_key(), key.serialize_pem()).unwrap();
    std::fs::write(p.server_cert(), cert.pem()).unwrap();
}

/// Waits until the captured log has a certificate warning naming `path`.
async fn wait_warning(path: &Path) {
    let needle = path.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !warned(&needle) {
        assert!(Instant::now() < deadline, "no expiry warning for {needle}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn warned(path: &str) -> bool {
    server_log()
        .text()
        .lines()
        .any(|l| l.contains("WARN") && l.contains("certificate expires soon") && l.contains(path))
}

async fn expiry_warning_at_start_and_reload(backend: Backend) {
    // A server certificate with 10 days left: warned about at start.
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    cadrex::pki::init(&pki, "360821").unwrap();
    short_server_cert(&pki, 10);
    let short = {
        let pki = pki.clone();
        TestServer::spawn_with(backend, move |c| c.pki_dir = pki).await
    };
    wait_warning(&pki.join("server.crt")).await;
    // It still serves: the warning is advice, not a refusal.
    short
        .system("organization", "360821")
        .await
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap();

    // The development certificates (a year) are not warned about, until a reload
    // brings in one that expires within the threshold.
    let server = TestServer::spawn(backend).await;
    let cert = server.pki.join("server.crt");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!warned(&cert.display().to_string()));
    short_server_cert(&server.pki, 20);
    wait_warning(&cert).await;
}

/// Lookups by 公民身份号码 that find no cadre the caller may see are counted per
/// calling system, a cadre out of jurisdiction like a missing one: the guess is
/// what an operator alerts on (DESIGN §2, residual risk).
async fn id_number_guesses_are_counted_per_system(backend: Backend) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let maddr = listener.local_addr().unwrap();
    let server = TestServer::spawn_with(backend, |c| {
        c.metrics_listener = Some(PreboundListener::new(listener));
    })
    .await;
    const NAME: &str = "cadrex_id_number_lookups_not_found_total";
    let org = "urn:cadrex:system:organization:360802:organization-sys";
    let discipline = "urn:cadrex:system:discipline:360802:discipline-sys";
    let count = |text: &str, system: &str| sample(text, NAME, &[("system", system)]).unwrap_or(0.0);
    let (_, before) = get(maddr, "/metrics").await;

    let create = |division: &'static str, seq: u32| {
        let server = &server;
        async move {
            server
                .cadres("organization", division)
                .await
                .create_cadre(CreateCadreRequest {
                    cadre: Some(new_cadre("孔十九", division, seq)),
                    request_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let elsewhere = create("360821", 19).await;
    let own = create("360802", 20).await;
    let missing = crate::common::id_number("360802", "19800101", 999);
    let mut lookup = server.cadres("organization", "360802").await;
    for (number, found) in [
        (&missing, false),
        (&elsewhere.id_number, false),
        (&own.id_number, true),
        (&missing.to_ascii_lowercase(), false),
    ] {
        let r = lookup
            .lookup_cadre(proto::LookupCadreRequest {
                id_number: number.clone(),
            })
            .await;
        assert_eq!(r.is_ok(), found, "{number}: {r:?}");
    }
    // A record naming an unknown and an out-of-jurisdiction number.
    let mut records = crate::common::records_client(server.channel("discipline", "360802").await);
    for (i, number) in [&missing, &elsewhere.id_number].into_iter().enumerate() {
        let mut r = crate::common::record(
            &own,
            &format!("AD-{i}"),
            1,
            proto::record::Payload::Admonishment(proto::Admonishment {
                r#type: proto::AdmonishmentType::TalkReminder as i32,
                date: "2025-02-01".into(),
                issuer: "县纪委".into(),
            }),
        );
        r.cadre_id_number = number.clone();
        let err = records
            .submit_record(crate::common::submit(r))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    // Registering a number held in another county, singly, in a batch and
    // in a dry run: three more guesses by the organization system.
    let at_own = |number: &str| {
        let mut c = new_cadre("孔二十", "360802", 21);
        c.id_number = number.to_string();
        CreateCadreRequest {
            cadre: Some(c),
            request_id: String::new(),
        }
    };
    let err = lookup
        .create_cadre(at_own(&elsewhere.id_number))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    for validate_only in [false, true] {
        let answer = lookup
            .batch_create_cadres(proto::BatchCreateCadresRequest {
                requests: vec![at_own(&elsewhere.id_number)],
                request_id: String::new(),
                validate_only,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(answer.results[0].error.is_some(), "{answer:?}");
    }
    let after = scrape_until(maddr, "the guess counter", |t| {
        count(t, org) - count(&before, org) == 6.0
    })
    .await;
    assert_eq!(count(&after, discipline) - count(&before, discipline), 2.0);
    assert!(after.contains(&format!("# HELP {NAME}")), "described");
}
