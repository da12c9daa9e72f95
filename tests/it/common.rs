//! TestServer: a per-test PKI, the real server on 127.0.0.1:0 over SQLite or PostgreSQL, and mTLS clients per agency.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cadrex::config::Config;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

pub use cadrex::proto::access_log_service_client::AccessLogServiceClient;
pub use cadrex::proto::cadre_service_client::CadreServiceClient;
pub use cadrex::proto::system_service_client::SystemServiceClient;

pub mod catalog;
pub mod fixtures;
pub mod matrix;
pub mod scrape;
pub mod wire;

pub use catalog::{Cells, contains, forms, plaintext_cells, postgres_columns, sqlite_columns};
pub use fixtures::*;
pub use wire::set_path;

/// Which store a test server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The one `TestDb` of the crate, shared with the store suite.
pub use cadrex::store::test_db::{TestDb, postgres_admin_url};

/// Runs `$name(Backend)` once per backend as `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::common::postgres_admin_url().is_some() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        }
    )*};
}

/// Everything the server logs in this test process, for asserting on log lines.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide captured log (installed once).
pub fn server_log() -> LogBuffer {
    static LOG: OnceLock<LogBuffer> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = LogBuffer::default();
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buf
    })
    .clone()
}

/// The real server on 127.0.0.1:0 with its own PKI and store.
pub struct TestServer {
    pub addr: SocketAddr,
    pub backend: Backend,
    pub store_url: String,
    pub pki: PathBuf,
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Held for their Drop: the temporary directory and the PostgreSQL database.
    pub db: Option<TestDb>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn spawn(backend: Backend) -> TestServer {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with a config adjusted by `tweak` (after the test defaults).
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        server_log();
        cadrex::server::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (db, store_url) = match backend {
            Backend::Sqlite => (
                None,
                format!("sqlite://{}", dir.path().join("cadrex.db").display()),
            ),
            Backend::Postgres => {
                let db = TestDb::create().await;
                let url = db.url.clone();
                (Some(db), url)
            }
        };
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            store: store_url,
            pki_dir: dir.path().join("pki"),
            create_dev_pki: false,
            checkpoint_interval: Duration::from_millis(200),
            reload_poll: Duration::from_millis(100),
            handshake_timeout: Duration::from_secs(5),
            ..Config::default()
        };
        // A tweak may point at another server's store and PKI (to reopen them).
        tweak(&mut config);
        if !config.pki_dir.join("ca.crt").exists() {
            cadrex::pki::init(&config.pki_dir, "360821").unwrap();
        }
        let pki = config.pki_dir.clone();
        let store_url = config.store.clone();
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(cadrex::run(config.clone(), listener, async move {
            let _ = rx.await;
        }));
        let server = TestServer {
            addr,
            backend,
            store_url,
            pki,
            config,
            shutdown: Some(tx),
            handle: Some(handle),
            db,
            dir,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Some(h) = &self.handle {
                assert!(!h.is_finished(), "server exited during start-up");
            }
            let ch = self.channel("organization", "360821").await;
            if SystemServiceClient::new(ch)
                .who_am_i(cadrex::proto::WhoAmIRequest {})
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not become ready");
    }

    /// Paths of the development client pair of `agency` at `division`.
    pub fn client_files(&self, agency: &str, division: &str) -> (PathBuf, PathBuf) {
        let p = cadrex::pki::PkiPaths::new(&self.pki);
        (
            p.client_cert(agency, division),
            p.client_key(agency, division),
        )
    }

    /// A channel presenting the given certificate pair (or none), trusting the test CA.
    ///
    /// Like grpc-core, the connector counts a connection as established only
    /// once the server's HTTP/2 preface has arrived. Under TLS 1.3 the client
    /// finishes its handshake before the server has judged the client
    /// certificate, so without this wait a refused certificate would surface as
    /// a broken first request (UNKNOWN/CANCELLED in tonic) rather than as the
    /// connection failure it is (UNAVAILABLE).
    pub async fn channel_with(&self, pair: Option<(&Path, &Path)>, ca: Option<&Path>) -> Channel {
        let ca_path = ca
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.pki.join("ca.crt"));
        let connector = connector::PrefaceConnector::new(self.addr, &ca_path, pair);
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .connect_with_connector_lazy(connector)
    }

    /// A channel to another server at `addr` that trusts this test CA.
    pub async fn channel_to(&self, addr: SocketAddr, agency: &str, division: &str) -> Channel {
        let (crt, key) = self.client_files(agency, division);
        let connector =
            connector::PrefaceConnector::new(addr, &self.pki.join("ca.crt"), Some((&crt, &key)));
        Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .connect_with_connector_lazy(connector)
    }

    /// A channel for the development client of `agency` at `division`.
    pub async fn channel(&self, agency: &str, division: &str) -> Channel {
        let (crt, key) = self.client_files(agency, division);
        self.channel_with(Some((&crt, &key)), None).await
    }

    pub async fn opinions(
        &self,
        agency: &str,
        division: &str,
    ) -> cadrex::proto::opinion_service_client::OpinionServiceClient<Channel> {
        cadrex::proto::opinion_service_client::OpinionServiceClient::new(
            self.channel(agency, division).await,
        )
    }

    /// An integrity-opinion request for promotion about `cadres`, made by
    /// `division`'s organization department.
    pub async fn ask_opinion(
        &self,
        division: &str,
        cadres: Vec<String>,
    ) -> cadrex::proto::OpinionRequest {
        self.opinions("organization", division)
            .await
            .create_opinion_request(cadrex::proto::CreateOpinionRequestRequest {
                cadres,
                purpose: cadrex::proto::OpinionPurpose::Promotion as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn cadres(&self, agency: &str, division: &str) -> CadreServiceClient<Channel> {
        CadreServiceClient::new(self.channel(agency, division).await)
    }

    /// Registers a cadre at `division` as that division's organization
    /// system (`new_cadre(name, division, seq)`) and returns it.
    pub async fn register(&self, division: &str, name: &str, seq: u32) -> cadrex::proto::Cadre {
        self.cadres("organization", division)
            .await
            .create_cadre(cadrex::proto::CreateCadreRequest {
                cadre: Some(new_cadre(name, division, seq)),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn system(&self, agency: &str, division: &str) -> SystemServiceClient<Channel> {
        SystemServiceClient::new(self.channel(agency, division).await)
    }

    pub async fn access_log(
        &self,
        agency: &str,
        division: &str,
    ) -> AccessLogServiceClient<Channel> {
        AccessLogServiceClient::new(self.channel(agency, division).await)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Executes raw SQL against a store URL (for tests that tamper with rows).
pub async fn exec_sql(url: &str, sql: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
        let _ = c.close().await;
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
        let _ = c.close().await;
    }
}

/// Runs the `cadrex` binary with `args`; returns (exit success, stdout+stderr).
pub fn cadrex_bin(args: &[&str]) -> (bool, String) {
    let (ok, mut text, stderr) = cadrex_bin_split(args);
    text.push_str(&stderr);
    (ok, text)
}

/// Runs the cadrex binary; (success, stdout, stderr) kept apart, for output
/// that is data (a warning on stderr must not end up in an exported file).
pub fn cadrex_bin_split(args: &[&str]) -> (bool, String, String) {
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cadrex"))
            .args(args)
            .env("CADREX_LOG", "warn")
            .output()
            .expect("run cadrex")
    };
    // Called from async tests whose runtime also runs the server: waiting on
    // the child in place would park a worker together with any task queued
    // on it (a task in a worker's LIFO slot cannot be stolen), such as the
    // appender holding the store's write lock the child is waiting for.
    let in_multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let out = if in_multi_thread {
        tokio::task::block_in_place(run)
    } else {
        run()
    };
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A valid 公民身份号码 built from a division, a birth date and a sequence (odd = male).
pub fn id_number(division: &str, birth: &str, seq: u32) -> String {
    let first17 = format!("{division}{birth}{seq:03}");
    let check = cadrex::domain::ids::id_number_check_char(first17.as_bytes()) as char;
    format!("{first17}{check}")
}

/// A valid 统一社会信用代码 ending a given 9-character organisation code body.
pub fn credit_code(body: &str) -> String {
    let first17 = format!("91360800{body}");
    assert_eq!(first17.len(), 17);
    let check = cadrex::domain::ids::credit_code_check_char(first17.as_bytes()).unwrap() as char;
    format!("{first17}{check}")
}

/// A cadre ready to create.
pub fn new_cadre(name: &str, division: &str, seq: u32) -> cadrex::proto::Cadre {
    cadrex::proto::Cadre {
        display_name: name.into(),
        gender: cadrex::proto::Gender::Male as i32,
        id_number: id_number(division, "19750312", seq * 2 + 1),
        managing_division: division.into(),
        posts: vec![cadrex::proto::Post {
            unit_name: "某县财政局".into(),
            unit_credit_code: credit_code("MA35X1234"),
            title: "局长".into(),
            rank: "正科级".into(),
            unit_head: true,
            start_date: "2021-03-01".into(),
            end_date: String::new(),
        }],
        ..Default::default()
    }
}

/// The test client's TLS connector.
mod connector {
    use std::future::Future;
    use std::io;
    use std::net::SocketAddr;
    use std::path::Path;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use hyper_util::rt::TokioIo;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
    use tokio::net::TcpStream;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream;

    #[derive(Clone)]
    pub struct PrefaceConnector {
        addr: SocketAddr,
        tls: TlsConnector,
    }

    impl PrefaceConnector {
        pub fn new(addr: SocketAddr, ca: &Path, pair: Option<(&Path, &Path)>) -> Self {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
            let mut config = match pair {
                Some((crt, key)) => {
                    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(crt)
                        .unwrap()
                        .map(|c| c.unwrap())
                        .collect();
                    let key = PrivateKeyDer::from_pem_file(key).unwrap();
                    builder.with_client_auth_cert(chain, key).unwrap()
                }
                None => builder.with_no_client_auth(),
            };
            config.alpn_protocols = vec![b"h2".to_vec()];
            Self {
                addr,
                tls: TlsConnector::from(Arc::new(config)),
            }
        }
    }

    /// The TLS stream with the bytes read while waiting for the preface put back in front.
    pub struct Prefaced {
        head: Vec<u8>,
        pos: usize,
        inner: TlsStream<TcpStream>,
    }

    impl AsyncRead for Prefaced {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.pos < self.head.len() {
                let n = (self.head.len() - self.pos).min(buf.remaining());
                let start = self.pos;
                buf.put_slice(&self.head[start..start + n]);
                self.pos += n;
                return Poll::Ready(Ok(()));
            }
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Prefaced {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    impl tower::Service<http::Uri> for PrefaceConnector {
        type Response = TokioIo<Prefaced>;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Uri) -> Self::Future {
            let this = self.clone();
            Box::pin(async move {
                let tcp = TcpStream::connect(this.addr).await?;
                // As grpc-core and tonic's own connector do: small frames must not
                // wait for a delayed ACK.
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from("localhost").unwrap();
                let mut tls = this.tls.connect(name, tcp).await?;
                let mut head = vec![0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut head))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "no HTTP/2 preface from the server")
                    })??;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "server closed the connection",
                    ));
                }
                head.truncate(n);
                Ok(TokioIo::new(Prefaced {
                    head,
                    pos: 0,
                    inner: tls,
                }))
            })
        }
    }
}

/// Every byte of the records table's payload and informant columns, for checking that
/// informant data is stored encrypted.
pub async fn raw_informant_bytes(url: &str) -> Vec<u8> {
    use sqlx::{Connection, Row};
    let sql = "SELECT payload, informant_data FROM records";
    let mut out = Vec::new();
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        for r in sqlx::query(sql).fetch_all(&mut c).await.unwrap() {
            out.extend(r.get::<Vec<u8>, _>(0));
            out.extend(r.get::<Option<Vec<u8>>, _>(1).unwrap_or_default());
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        for r in sqlx::query(sql).fetch_all(&mut c).await.unwrap() {
            out.extend(r.get::<Vec<u8>, _>(0));
            out.extend(r.get::<Option<Vec<u8>>, _>(1).unwrap_or_default());
        }
    }
    out
}

/// The single number a `SELECT COUNT(*) …` returns, read directly from the store.
pub async fn count_rows(url: &str, sql: &str) -> i64 {
    use sqlx::{Connection, Row};
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get::<i64, _>(0)
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get::<i64, _>(0)
    }
}

/// A file of `examples/import/`.
pub fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/import")
        .join(file)
}

/// The URL a client command (`cadrex import`, `cadrex sync`) is given for `server`.
pub fn server_url(server: &TestServer) -> String {
    format!("https://localhost:{}", server.addr.port())
}

/// The field paths of a refusal, which must be INVALID_ARGUMENT with
/// `google.rpc.BadRequest` details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// One RPC of the served descriptor set.
#[derive(Clone, Debug)]
pub struct RpcMethod {
    /// `/cadrex.v1.CadreService/GetCadre`.
    pub path: String,
    /// `CadreService/GetCadre`, the short form tests name methods by.
    pub short: String,
    /// Fully qualified input type with its leading dot, `.cadrex.v1.GetCadreRequest`.
    pub input: String,
    /// Fully qualified output type, `.cadrex.v1.Cadre`.
    pub output: String,
    pub server_streaming: bool,
    pub client_streaming: bool,
}

/// The descriptor set the server registers for reflection, decoded.
pub fn descriptor_set() -> prost_types::FileDescriptorSet {
    use prost::Message;
    prost_types::FileDescriptorSet::decode(cadrex::proto::FILE_DESCRIPTOR_SET).unwrap()
}

/// Every method of every service of package `cadrex.v1`, read from the
/// descriptors so an RPC added later is covered without editing a test.
pub fn cadrex_methods() -> Vec<RpcMethod> {
    let mut out = Vec::new();
    for file in descriptor_set().file {
        if file.package() != "cadrex.v1" {
            continue;
        }
        for service in &file.service {
            for m in &service.method {
                let short = format!("{}/{}", service.name(), m.name());
                out.push(RpcMethod {
                    path: format!("/cadrex.v1.{short}"),
                    short,
                    input: m.input_type().to_string(),
                    output: m.output_type().to_string(),
                    server_streaming: m.server_streaming(),
                    client_streaming: m.client_streaming(),
                });
            }
        }
    }
    assert!(out.len() > 20, "descriptor set lists {} methods", out.len());
    out
}

/// The message type named `.pkg.Name` (nested types included) in `set`.
pub fn message_type<'a>(
    set: &'a prost_types::FileDescriptorSet,
    full_name: &str,
) -> Option<&'a prost_types::DescriptorProto> {
    fn walk<'a>(
        prefix: &str,
        msgs: &'a [prost_types::DescriptorProto],
        want: &str,
    ) -> Option<&'a prost_types::DescriptorProto> {
        for m in msgs {
            let name = format!("{prefix}.{}", m.name());
            if name == want {
                return Some(m);
            }
            if let Some(found) = walk(&name, &m.nested_type, want) {
                return Some(found);
            }
        }
        None
    }
    set.file.iter().find_map(|f| {
        let prefix = if f.package().is_empty() {
            String::new()
        } else {
            format!(".{}", f.package())
        };
        walk(&prefix, &f.message_type, full_name)
    })
}

/// A gRPC codec over already-encoded message bytes, so one call function
/// serves every method of the descriptor set.
#[derive(Clone, Copy, Default)]
pub struct RawCodec;

pub struct RawEncoder;
pub struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        let n = buf.remaining();
        Ok(Some(buf.copy_to_bytes(n).to_vec()))
    }
}

/// Calls the unary method at `path` with an encoded request and `metadata`
/// (ASCII or binary values as raw bytes); the answer is the encoded response.
pub async fn raw_unary(
    channel: Channel,
    path: &str,
    body: Vec<u8>,
    metadata: &[(&'static str, Vec<u8>)],
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("channel not ready: {e}")))?;
    let mut request = tonic::Request::new(body);
    for (key, value) in metadata {
        let value = tonic::metadata::MetadataValue::try_from(value.as_slice())
            .unwrap_or_else(|e| panic!("metadata {key} is not a valid header value: {e}"));
        request.metadata_mut().insert(*key, value);
    }
    let path = http::uri::PathAndQuery::try_from(path).unwrap();
    grpc.unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// Calls `method` of the descriptor set with an encoded request and
/// `metadata`: unary calls answer with the encoded response; a server stream
/// that opened answers with no bytes, and one refused at once with its status.
pub async fn raw_call(
    channel: Channel,
    method: &RpcMethod,
    body: Vec<u8>,
    metadata: &[(&'static str, Vec<u8>)],
) -> Result<Vec<u8>, tonic::Status> {
    if !method.server_streaming {
        return raw_unary(channel, &method.path, body, metadata).await;
    }
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("channel not ready: {e}")))?;
    let mut request = tonic::Request::new(body);
    for (key, value) in metadata {
        let value = tonic::metadata::MetadataValue::try_from(value.as_slice()).unwrap();
        request.metadata_mut().insert(*key, value);
    }
    let path = http::uri::PathAndQuery::try_from(method.path.as_str()).unwrap();
    let mut stream = grpc
        .server_streaming(request, path, RawCodec)
        .await?
        .into_inner();
    // An open stream is an answer; a refusal arrives at once.
    match tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
        Ok(Err(status)) => Err(status),
        _ => Ok(Vec::new()),
    }
}

/// Every row `sql` returns, each column read as text, directly from the store.
pub async fn text_rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    use sqlx::{Connection, Row};
    fn texts<R: Row>(r: &R) -> Vec<String>
    where
        for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        usize: sqlx::ColumnIndex<R>,
    {
        (0..r.columns().len())
            .map(|i| r.get::<String, _>(i))
            .collect()
    }
    let sql = || sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let rows = sqlx::query(sql()).fetch_all(&mut c).await.unwrap();
        rows.iter().map(texts).collect()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let rows = sqlx::query(sql()).fetch_all(&mut c).await.unwrap();
        rows.iter().map(texts).collect()
    }
}

/// Every access-log row `caller` may read about its own principal, paging
/// through `ListAccessEvents`.
pub async fn own_access_events(channel: Channel) -> Vec<cadrex::proto::AccessEvent> {
    let principal = SystemServiceClient::new(channel.clone())
        .who_am_i(cadrex::proto::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner()
        .principal;
    let mut client = AccessLogServiceClient::new(channel);
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_access_events(cadrex::proto::ListAccessEventsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                principal: principal.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.access_events);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

/// A `cadrex serve` child process that announced its address; killed on drop.
pub struct ServeProcess {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl ServeProcess {
    /// Spawns `cmd` (a `cadrex serve` listening on port 0) with its log at
    /// info on a pipe, and waits up to 60 s for the `addr=` of its
    /// "cadrex listening" line; the rest of the log is drained and dropped.
    pub fn announced(mut cmd: std::process::Command) -> ServeProcess {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = cmd
            .env("CADREX_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cadrex serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent
                    && line.contains("cadrex listening")
                    && let Some(rest) = line.split("addr=").nth(1)
                {
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("cadrex serve announced its address")
            .parse()
            .unwrap();
        ServeProcess { child, addr }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
