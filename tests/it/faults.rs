//! Fault tests: the server SIGKILLed mid-import, PostgreSQL connections cut mid-batch, and the server certificate replaced and reloaded on SIGHUP.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadrex::proto;
use cadrex::tools::import::{ImportArgs, ImportKind};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{
    Backend, TestServer, cadrex_bin, count_rows, example, postgres_admin_url, server_url,
};
use crate::common::{cadre, engagement, finding, record, records_client};

both_backends!(sigkill_mid_import_loses_and_duplicates_nothing);

const DIVISION: &str = "360821";
const FINDINGS: i64 = 10_000;

fn import_args(server: &TestServer, kind: ImportKind, file: &str, agency: &str) -> ImportArgs {
    let (cert, key) = server.client_files(agency, DIVISION);
    let mut a = ImportArgs::new(kind, example(file), cert, key);
    a.server = server_url(server);
    a
}

/// `cadrex serve` on the test server's address, store and PKI (the in-process
/// server must be stopped), killed when dropped.
pub struct ServeProcess(Child);

impl ServeProcess {
    /// Starts it with extra environment and waits until it answers.
    pub async fn start(server: &TestServer, env: &[(&str, &str)]) -> ServeProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_cadrex"))
            .arg("serve")
            .args(["--listen", &server.addr.to_string()])
            .args(["--store", &server.store_url])
            .arg("--pki-dir")
            .arg(&server.pki)
            .env("CADREX_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut process = ServeProcess(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = process.0.try_wait().unwrap() {
                panic!("cadrex serve exited during start-up: {status}");
            }
            let answered = server
                .system("organization", DIVISION)
                .await
                .who_am_i(proto::WhoAmIRequest {})
                .await;
            match answered {
                Ok(_) => return process,
                Err(e) if Instant::now() > deadline => panic!("cadrex serve never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no draining, no goodbye, as in a crash.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server is SIGKILLed while `cadrex import` sends 10,000 findings, then
/// restarted on the same store; the import (riding out the outage on its
/// retries, or run again) ends with every finding stored exactly once, a
/// gapless feed and an intact access-log chain.
async fn sigkill_mid_import_loses_and_duplicates_nothing(backend: Backend) {
    let mut server = TestServer::spawn(backend).await;
    for (kind, file, agency) in [
        (ImportKind::Cadre, "cadres.csv", "organization"),
        (
            ImportKind::AuditEngagement,
            "audit-engagements.csv",
            "audit",
        ),
    ] {
        let s = cadrex::tools::import::run(import_args(&server, kind, file, agency))
            .await
            .unwrap();
        assert_eq!((s.rows, s.rejected), (200, 0), "{file}: {s}");
    }
    server.stop().await;
    let serve = ServeProcess::start(&server, &[]).await;

    let (cert, key) = server.client_files("audit", DIVISION);
    let mut import = Command::new(env!("CARGO_BIN_EXE_cadrex"));
    import
        .arg("import")
        .args(["--kind", "audit-finding", "--batch", "100"])
        .arg("--file")
        .arg(example("audit-findings.csv"))
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--server", &server_url(&server)])
        .env("CADREX_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = import.spawn().unwrap();

    let findings = "SELECT COUNT(*) FROM records WHERE kind = 'AUDIT_FINDING'";
    let deadline = Instant::now() + Duration::from_secs(120);
    let before_kill = loop {
        let n = count_rows(&server.store_url, findings).await;
        if n >= 500 {
            break n;
        }
        assert!(Instant::now() < deadline, "the import made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    serve.kill();
    let at_kill = count_rows(&server.store_url, findings).await;
    assert!(
        at_kill < FINDINGS,
        "the server was killed only after the import ({before_kill} → {at_kill} rows)"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let serve = ServeProcess::start(&server, &[]).await;

    // The first import rides out the restart on its retries: a connection
    // reset mid-call (UNKNOWN "transport error" in tonic) or a refused
    // connection is retried under the same request ids, so a batch that
    // committed just before the kill replays instead of being written twice.
    let first = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let first_text = format!(
        "{}{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        first.status.success(),
        "first import did not ride out the restart: {:?} {first_text}",
        first.status
    );
    let again = cadrex::tools::import::run(import_args(
        &server,
        ImportKind::AuditFinding,
        "audit-findings.csv",
        "audit",
    ))
    .await
    .unwrap();
    eprintln!(
        "{backend:?}: killed at {at_kill} rows; first import: {}; re-run: {again}",
        first_text.trim()
    );
    assert_eq!(
        (again.rows, again.rejected, again.stale),
        (FINDINGS as u64, 0, 0),
        "{again}"
    );
    assert_eq!(again.accepted + again.unchanged, FINDINGS as u64, "{again}");
    assert_eq!(again.accepted, 0, "a completed import left nothing to do");
    drop(serve);

    let url = &server.store_url;
    assert_eq!(count_rows(url, findings).await, FINDINGS);
    assert_eq!(
        count_rows(
            url,
            "SELECT COUNT(DISTINCT source_record_id) FROM records \
             WHERE kind = 'AUDIT_FINDING' AND state = 'ACTIVE'"
        )
        .await,
        FINDINGS
    );
    // Each finding was written once: one change each, none from a replay.
    assert_eq!(
        count_rows(
            url,
            "SELECT COUNT(*) FROM changes WHERE kind = 'AUDIT_FINDING'"
        )
        .await,
        FINDINGS
    );
    // The feed has no gap: seqs are exactly 1..=max.
    let (n, max, min) = (
        count_rows(url, "SELECT COUNT(*) FROM changes").await,
        count_rows(url, "SELECT COALESCE(MAX(seq), 0) FROM changes").await,
        count_rows(url, "SELECT COALESCE(MIN(seq), 0) FROM changes").await,
    );
    assert_eq!((min, n), (1, max), "feed seqs {min}..={max} hold {n} rows");
    let (ok, out) = cadrex_bin(&[
        "log",
        "verify",
        "--store",
        url,
        "--key",
        server.pki.join("log-signing.key").to_str().unwrap(),
    ]);
    assert!(ok, "cadrex log verify: {out}");
}

/// A batch of `n` findings about `cadre` under engagement `AE-CUT`, sources `{prefix}-{i}`.
fn cut_batch(c: &proto::Cadre, prefix: &str, n: usize) -> proto::BatchSubmitRecordsRequest {
    proto::BatchSubmitRecordsRequest {
        requests: (0..n)
            .map(|i| proto::SubmitRecordRequest {
                record: Some(record(
                    c,
                    &format!("{prefix}-{i}"),
                    1,
                    finding("AE-CUT", 100 + i as i64),
                )),
                request_id: String::new(),
                validate_only: false,
            })
            .collect(),
        request_id: uuid::Uuid::new_v4().to_string(),
        validate_only: false,
    }
}

/// Ends every session of `db` but the caller's, as an operator or a failover
/// would, at a chosen moment: polls until some session of `db` is inside a
/// transaction that has written (`backend_xid` is set), then terminates every
/// session of `db` in the same statement. Returns how many were terminated;
/// 0 when `call` ended first or no write began within 10 s.
async fn cut_mid_write<T>(admin_url: &str, db: &str, call: &tokio::task::JoinHandle<T>) -> i64 {
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(admin_url).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut terminated = 0;
    while terminated == 0 && !call.is_finished() && std::time::Instant::now() < deadline {
        let rows = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() \
               AND EXISTS (SELECT 1 FROM pg_stat_activity \
                           WHERE datname = $1 AND backend_xid IS NOT NULL)",
        )
        .bind(db)
        .fetch_all(&mut c)
        .await
        .unwrap();
        terminated = rows.iter().filter(|r| r.get::<bool, _>(0)).count() as i64;
    }
    let _ = c.close().await;
    terminated
}

/// PostgreSQL sessions terminated while a 1000-item BatchSubmitRecords runs:
/// the client sees UNAVAILABLE (or ABORTED), never INTERNAL or UNKNOWN; the
/// same request retried completes with exactly its rows; the pool, the
/// access-log appender and the chain all recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_cut_mid_batch_is_retryable() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let server = TestServer::spawn(Backend::Postgres).await;
    let db = server.db.as_ref().unwrap().name.clone();
    let c = cadre(&server, 71).await;
    let mut client = records_client(server.channel("audit", DIVISION).await);
    client
        .submit_record(proto::SubmitRecordRequest {
            record: Some(record(&c, "AE-CUT", 1, engagement())),
            request_id: String::new(),
            validate_only: false,
        })
        .await
        .unwrap();

    let mut cuts = 0;
    let mut completed_rows = 0i64;
    for attempt in 0..8 {
        let prefix = format!("CUT{attempt}");
        let request = cut_batch(&c, &prefix, 1000);
        let call = {
            let mut client = client.clone();
            let request = request.clone();
            tokio::spawn(async move { client.batch_submit_records(request).await })
        };
        // The cut waits for the batch's transaction to have written (it then
        // holds a transaction id) and lands before it commits, however fast
        // the batch is on this machine; a batch that commits between two
        // polls simply finishes, and the next attempt tries again.
        let terminated = cut_mid_write(&admin, &db, &call).await;
        let status = match call.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.into_inner().results.len(), 1000);
                eprintln!(
                    "attempt {attempt}: batch finished before the cut ({terminated} sessions ended)"
                );
                completed_rows += 1000;
                continue;
            }
            Err(s) => s,
        };
        cuts += 1;
        let reason = status
            .get_details_error_info()
            .map(|i| i.reason)
            .unwrap_or_default();
        eprintln!(
            "attempt {attempt}: {terminated} sessions ended; client saw {:?} {reason}",
            status.code()
        );
        assert!(
            matches!(status.code(), Code::Unavailable | Code::Aborted),
            "a cut connection must be retryable, got {status:?}"
        );
        if status.code() == Code::Unavailable {
            assert_eq!(reason, "STORE_UNAVAILABLE");
            assert!(status.get_details_retry_info().is_some(), "{status:?}");
        }
        // The same request (same request id) completes; the pool has replaced
        // its dead connections by now or does so on this call.
        let mut retried = None;
        for _ in 0..5 {
            match client.batch_submit_records(request.clone()).await {
                Ok(r) => {
                    retried = Some(r.into_inner());
                    break;
                }
                Err(s) => {
                    assert!(
                        matches!(s.code(), Code::Unavailable | Code::Aborted),
                        "retry: {s:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let retried = retried.expect("the retried batch completes");
        assert_eq!(retried.results.len(), 1000);
        assert!(
            retried.results.iter().all(|r| r.error.is_none()),
            "every item of the retried batch is stored"
        );
        completed_rows += 1000;
        let stored = count_rows(
            &server.store_url,
            &format!("SELECT COUNT(*) FROM records WHERE source_record_id LIKE '{prefix}-%'"),
        )
        .await;
        assert_eq!(stored, 1000, "exactly the batch's rows after the retry");
        if cuts >= 2 {
            break;
        }
    }
    assert!(cuts >= 1, "no cut landed mid-batch in 8 attempts");
    let url = &server.store_url;
    assert_eq!(
        count_rows(
            url,
            "SELECT COUNT(*) FROM records WHERE kind = 'AUDIT_FINDING'"
        )
        .await,
        completed_rows
    );
    assert_eq!(
        count_rows(
            url,
            "SELECT COUNT(*) FROM changes WHERE kind = 'AUDIT_FINDING'"
        )
        .await,
        completed_rows,
        "no finding was written twice"
    );
    let (n, max) = (
        count_rows(url, "SELECT COUNT(*) FROM changes").await,
        count_rows(url, "SELECT MAX(seq) FROM changes").await,
    );
    assert_eq!(n, max, "the feed has no gap");
    // The access log kept working: a read is logged, and the chain verifies.
    server
        .system("discipline", DIVISION)
        .await
        .who_am_i(proto::WhoAmIRequest {})
        .await
        .unwrap();
    let (ok, out) = cadrex_bin(&[
        "log",
        "verify",
        "--store",
        url,
        "--key",
        server.pki.join("log-signing.key").to_str().unwrap(),
    ]);
    assert!(ok, "cadrex log verify: {out}");
}

/// The serial of the certificate the server at `addr` presents in a fresh handshake.
async fn presented_serial(server: &TestServer) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(server.pki.join("ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let (crt, key) = server.client_files("organization", DIVISION);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&crt)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(&key).unwrap())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    cert.tbs_certificate.raw_serial_as_string()
}

/// A new server pair for `localhost`, signed by the test CA, written over the old one.
fn replace_server_certificate(pki: &Path) -> String {
    let paths = cadrex::pki::PkiPaths::new(pki);
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(paths.ca_key()).unwrap()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(paths.ca_cert()).unwrap(), ca_key)
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cadrex server (renewed)");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let serial: [u8; 16] = std::array::from_fn(|i| if i == 0 { 0x5a } else { i as u8 });
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(paths.server_key(), key.serialize_pem()).unwrap();
    std::fs::write(paths.server_cert(), cert.pem()).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
    parsed.tbs_certificate.raw_serial_as_string()
}

/// SIGHUP makes a running `cadrex serve` present a renewed server certificate
/// on new connections, and calls keep working. File polling is set to an
/// hour, so the signal alone triggers the reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_server_certificate() {
    let mut server = TestServer::spawn(Backend::Sqlite).await;
    server.stop().await;
    let serve = ServeProcess::start(&server, &[("CADREX_RELOAD_POLL", "1h")]).await;
    let old = presented_serial(&server).await;

    let new = replace_server_certificate(&server.pki);
    assert_ne!(old, new);
    // Without the signal the old certificate is still served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        presented_serial(&server).await,
        old,
        "reloaded without SIGHUP"
    );

    let hup = Command::new("kill")
        .args(["-HUP", &serve.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = presented_serial(&server).await;
        if seen == new {
            break;
        }
        assert_eq!(seen, old, "an unknown certificate");
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 10 s of SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A new channel (new handshake, new certificate) carries calls as before.
    let me = server
        .system("audit", DIVISION)
        .await
        .who_am_i(proto::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        me.principal.starts_with("urn:cadrex:system:audit:360821:"),
        "{me:?}"
    );
    drop(serve);
}
