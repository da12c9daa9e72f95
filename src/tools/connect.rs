//! How every client tool reaches the exchange: one set of connection flags, one TLS set-up, one backoff, one reading of failures.
//!
//! `import`, `sync` and `client` flatten [`ConnectArgs`] into their flags, so
//! `--server`, `--cert`, `--key`, `--ca` and `--server-name` mean the same and
//! default the same in each; a refused certificate reads the same in each too
//! ([`describe_refusal`], [`tls_refusal`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::{Interceptor, interceptor::InterceptedService};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::error::Reason;

/// Where the server listens by default.
pub const DEFAULT_SERVER: &str = "https://localhost:50051";
/// Environment variable naming the server when `--server` is not given, so a
/// script or a shell session sets it once.
pub const SERVER_ENV: &str = "CADREX_SERVER";
/// Name checked against the server certificate by default (the development
/// server certificate carries `localhost` and `127.0.0.1`).
pub const DEFAULT_SERVER_NAME: &str = "localhost";
/// The organization system of the development PKI (`cadrex pki init`, or the
/// one `cadrex serve` creates in `./cadrex-data/pki`).
pub const DEFAULT_CERT: &str = "./cadrex-data/pki/clients/organization-360821.crt";
/// Its private key.
pub const DEFAULT_KEY: &str = "./cadrex-data/pki/clients/organization-360821.key";

/// First wait after a failure; each further failure doubles it up to a cap.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// Where and as whom to connect: the flags every client command shares.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectArgs {
    /// Server URL [default: $CADREX_SERVER, else https://localhost:50051].
    #[arg(long, global = true, default_value_t = default_server(), hide_default_value = true)]
    pub server: String,
    /// Client certificate of the calling system (PEM).
    #[arg(long, global = true, default_value = DEFAULT_CERT)]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, global = true, default_value = DEFAULT_KEY)]
    pub key: PathBuf,
    /// CA certificate [default: ca.crt one directory above the certificate's].
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    /// Name the server certificate must carry.
    #[arg(long, global = true, default_value = DEFAULT_SERVER_NAME)]
    pub server_name: String,
}

/// `CADREX_SERVER` when set and not empty, else [`DEFAULT_SERVER`].
pub fn default_server() -> String {
    std::env::var(SERVER_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER.into())
}

/// `ca.crt` one directory above the certificate's, as the development PKI lays
/// out `DIR/clients/x.crt` and `DIR/ca.crt`.
pub fn default_ca(cert: &Path) -> PathBuf {
    match cert.parent().and_then(Path::parent) {
        Some(dir) => dir.join("ca.crt"),
        // A bare file name: the certificate's directory is the current one.
        None => PathBuf::from("..").join("ca.crt"),
    }
}

pub use crate::crypto::install_crypto_provider;

impl ConnectArgs {
    /// Every default, as the certificate's own CA and [`default_server`].
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            server: default_server(),
            cert,
            key,
            ca: None,
            server_name: DEFAULT_SERVER_NAME.into(),
        }
    }

    /// The CA certificate: `--ca`, else [`default_ca`] of `--cert`.
    pub fn ca_path(&self) -> PathBuf {
        self.ca.clone().unwrap_or_else(|| default_ca(&self.cert))
    }

    /// The endpoint with mutual TLS set up; callers add timeouts and keepalive.
    /// Fails when a certificate file cannot be read or the URL is not one.
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        install_crypto_provider();
        let read = |p: &Path, what: &str| {
            std::fs::read(p)
                .map_err(|e| anyhow::anyhow!("cannot read the {what} {}: {e}", p.display()))
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(
                &self.ca_path(),
                "CA certificate (--ca)",
            )?))
            .identity(Identity::from_pem(
                read(&self.cert, "client certificate (--cert)")?,
                read(&self.key, "client key (--key)")?,
            ))
            .domain_name(self.server_name.clone());
        Ok(Endpoint::from_shared(self.server.clone())
            .map_err(|_| anyhow::anyhow!("--server {:?} is not a URL", self.server))?
            .tls_config(tls)?)
    }

    /// A lazily connecting channel presenting the certificate, with the
    /// interactive client's timeouts.
    pub fn channel(&self) -> anyhow::Result<Channel> {
        Ok(self
            .endpoint()?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .connect_lazy())
    }
}

/// Environment variable naming the officer when `--officer` is not given.
pub const OFFICER_ENV: &str = "CADREX_OFFICER";
/// Characters an officer's name may have; the server refuses longer ones.
pub const OFFICER_MAX: usize = 64;

/// RFC 3986 unreserved characters stay as they are; every other byte of the
/// UTF-8 form becomes `%XX`, so the value is the ASCII metadata must be.
const OFFICER_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The person the calling system acts for, sent as `x-cadrex-officer` on
/// every call of a channel from [`ConnectArgs::channel_as`]. The server
/// records it in the access log and never authorizes by it.
#[derive(Clone, Debug, Default)]
pub struct Officer {
    name: String,
    header: Option<AsciiMetadataValue>,
}

impl Officer {
    /// No officer: calls carry no `x-cadrex-officer`.
    pub fn none() -> Self {
        Self::default()
    }

    /// `flag` (`--officer`), else `CADREX_OFFICER`, else none; see [`Officer::new`].
    pub fn from_flag_or_env(flag: Option<&str>) -> anyhow::Result<Self> {
        match flag {
            Some(name) => {
                Self::new(name).map_err(|why| anyhow::anyhow!("--officer {name:?}: {why}"))
            }
            None => match std::env::var(OFFICER_ENV) {
                Ok(name) => {
                    Self::new(&name).map_err(|why| anyhow::anyhow!("{OFFICER_ENV}={name:?}: {why}"))
                }
                Err(std::env::VarError::NotPresent) => Ok(Self::none()),
                Err(std::env::VarError::NotUnicode(_)) => {
                    anyhow::bail!("{OFFICER_ENV} is not valid UTF-8")
                }
            },
        }
    }

    /// Checks `name` as the server will (trimmed, at most [`OFFICER_MAX`]
    /// characters, no control or bidirectional override characters), so that
    /// a bad name fails here with a clear message rather than as
    /// INVALID_ARGUMENT on every call. Blank means no officer.
    pub fn new(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(Self::none());
        }
        let count = name.chars().count();
        if count > OFFICER_MAX {
            return Err(format!(
                "an officer's name has at most {OFFICER_MAX} characters, this one {count}"
            ));
        }
        if let Some(why) = crate::domain::text_fault(name, crate::domain::Text::Line) {
            return Err(format!("an officer's name must have {why}"));
        }
        let encoded = percent_encode(name);
        // The server's own decoder has the last word, so client and server
        // can never disagree on what is a valid officer.
        crate::identity::decode_officer(encoded.as_bytes())
            .map_err(|e| format!("the server would refuse it: {e}"))?;
        let header = MetadataValue::try_from(encoded.as_str())
            .map_err(|_| "cannot be sent as metadata".to_string())?;
        Ok(Self {
            name: name.to_string(),
            header: Some(header),
        })
    }

    /// The name as given (trimmed); empty for none.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `value` UTF-8 percent-encoded as `x-cadrex-officer` carries it (RFC 3986:
/// unreserved characters kept, everything else `%XX`).
pub fn percent_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, OFFICER_ENCODE).to_string()
}

impl Interceptor for Officer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.header {
            request
                .metadata_mut()
                .insert(crate::identity::OFFICER_KEY, v.clone());
        }
        Ok(request)
    }
}

/// A channel whose every call names the officer; generated clients take it
/// like a plain [`Channel`].
pub type OfficerChannel = InterceptedService<Channel, Officer>;

impl ConnectArgs {
    /// [`ConnectArgs::channel`] with `officer` sent on every call.
    pub fn channel_as(&self, officer: Officer) -> anyhow::Result<OfficerChannel> {
        Ok(InterceptedService::new(self.channel()?, officer))
    }
}

/// The wait before try `attempt + 1` after `attempt` failures: 500 ms, doubling, at most `cap`.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(factor).min(cap)
}

/// How much a caller is willing to wait out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// A run that ends (import): retries what a retry under the same request
    /// id can cure, and fails on anything the server itself answered.
    Run,
    /// An agent that runs until stopped (sync): also waits out server-side
    /// trouble (INTERNAL, RESOURCE_EXHAUSTED, any ABORTED), since giving up
    /// would only leave the copy further behind.
    Agent,
}

/// Whole-call failures worth another try. CANCELLED is what tonic reports when
/// our own call timeout fires; UNKNOWN is how it reports a connection that
/// broke mid-call (the server never sends UNKNOWN itself), as when the server
/// is restarted. Refused certificates are never transient: see [`refusal`].
pub fn is_transient(status: &Status, patience: Patience) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => true,
        Code::Aborted => {
            patience == Patience::Agent
                || error_reason(status).as_deref() == Some(Reason::ConcurrentModification.as_str())
        }
        Code::ResourceExhausted | Code::Internal => patience == Patience::Agent,
        _ => false,
    }
}

/// The same for one item of a batch answer.
pub fn is_transient_item(code: i32, reason: &str) -> bool {
    match Code::from(code) {
        Code::Unavailable | Code::DeadlineExceeded => true,
        Code::Aborted => reason == Reason::ConcurrentModification.as_str(),
        _ => false,
    }
}

/// The `google.rpc.ErrorInfo` reason, when the server sent one.
pub fn error_reason(status: &Status) -> Option<String> {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .filter(|r| !r.is_empty())
}

/// The canonical gRPC name of a status code, as operators see it in docs and logs.
pub fn code_name(code: i32) -> &'static str {
    match Code::from(code) {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// What an operator reads when the server refuses the caller itself
/// (UNAUTHENTICATED or PERMISSION_DENIED); `None` for any other status.
pub fn refusal(status: &Status, method: &str, cert: &Path) -> Option<String> {
    let reason = error_reason(status)
        .map(|r| format!(", reason {r}"))
        .unwrap_or_default();
    match status.code() {
        Code::Unauthenticated => Some(format!(
            "the server did not accept the client certificate {} for {method} \
             (UNAUTHENTICATED{reason}: {}); use a certificate from the exchange CA that \
             carries exactly one urn:cadrex:system URI and is not revoked",
            cert.display(),
            status.message()
        )),
        Code::PermissionDenied => Some(format!(
            "the server refused {method} for this system (PERMISSION_DENIED{reason}: {})",
            status.message()
        )),
        _ => None,
    }
}

/// The TLS refusal an `io::Error` carries, if any: an alert from the server
/// refusing our certificate, or our refusal of its certificate. tokio-rustls
/// hands these over with the rustls message as text, so the text is what can
/// be recognised.
fn tls_refusal_text(e: &std::io::Error) -> Option<String> {
    let text = e.get_ref()?.to_string();
    (text.starts_with("received fatal alert") || text.starts_with("invalid peer certificate"))
        .then_some(text)
}

/// The TLS refusal somewhere in a transport error's sources, if any.
pub fn tls_error(status: &Status) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(t) = e
            .downcast_ref::<std::io::Error>()
            .and_then(tls_refusal_text)
        {
            return Some(t);
        }
        next = e.source();
    }
    None
}

/// What an operator reads when the TLS layer refused: the server refused our
/// certificate (a fatal alert) or we refused the server's.
pub fn tls_refusal(tls: &str, method: &str, conn: &ConnectArgs) -> anyhow::Error {
    let hint = if tls.contains("received fatal alert") {
        format!(
            "the server refused the client certificate {} during the TLS handshake; \
             it must be issued by the exchange CA, unexpired and not revoked",
            conn.cert.display()
        )
    } else {
        format!(
            "the server's certificate was not accepted; check --ca {} and --server-name {}",
            conn.ca_path().display(),
            conn.server_name
        )
    };
    anyhow::anyhow!("{hint} ({tls}, from {} during {method})", conn.server)
}

/// The TLS refusal behind a failed call, if that is what it was: named in
/// the error itself, or, for the bare transport failures a refusal shows as
/// under TLS 1.3, found by [`tls_probe`]. `None` when the TLS layer accepted.
pub async fn refused_by_tls(
    status: &Status,
    method: &str,
    conn: &ConnectArgs,
) -> Option<anyhow::Error> {
    if let Some(tls) = tls_error(status) {
        return Some(tls_refusal(&tls, method, conn));
    }
    if matches!(
        status.code(),
        Code::Unknown | Code::Cancelled | Code::Unavailable
    ) && let Some(tls) = tls_probe(conn).await
    {
        return Some(tls_refusal(&tls, "a test connection", conn));
    }
    None
}

/// Connects once outside tonic and waits for the server's HTTP/2 preface, to
/// tell a refused certificate from a server that is away. Under TLS 1.3 the
/// client finishes its handshake before the server has judged the client
/// certificate, so a call on a refused connection often fails as a bare
/// CANCELLED or UNKNOWN with the server's alert lost; here the alert is the
/// answer to the first read. `None` unless the TLS layer refused.
pub async fn tls_probe(conn: &ConnectArgs) -> Option<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::AsyncReadExt;

    const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
    let uri: http::Uri = conn.server.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(443);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(conn.ca_path()).ok()? {
        roots.add(c.ok()?).ok()?;
    }
    let chain = CertificateDer::pem_file_iter(&conn.cert)
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_file(&conn.key).ok()?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .ok()?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(conn.server_name.clone()).ok()?;
    let tcp = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .ok()?
        .ok()?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut tls = match tokio::time::timeout(PROBE_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return tls_refusal_text(&e),
        Err(_) => return None,
    };
    let mut preface = [0u8; 64];
    match tokio::time::timeout(PROBE_TIMEOUT, tls.read(&mut preface)).await {
        Ok(Err(e)) => tls_refusal_text(&e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cap = Duration::from_secs(30);
        assert_eq!(backoff(1, cap), Duration::from_millis(500));
        assert_eq!(backoff(2, cap), Duration::from_secs(1));
        assert_eq!(backoff(7, cap), cap);
        assert_eq!(backoff(40, cap), cap);
    }

    #[test]
    fn default_ca_is_one_directory_above_the_certificate() {
        assert_eq!(
            default_ca(Path::new("/p/clients/audit-360821.crt")),
            PathBuf::from("/p/ca.crt")
        );
    }

    #[test]
    fn refusals_read_the_same_for_every_tool() {
        let s = Status::unauthenticated("certificate revoked");
        let text = refusal(&s, "WhoAmI", Path::new("a.crt")).unwrap();
        assert!(text.contains("did not accept the client certificate a.crt"));
        assert!(text.contains("certificate revoked"));
        assert!(refusal(&Status::unavailable("x"), "WhoAmI", Path::new("a.crt")).is_none());
        assert!(!is_transient(&s, Patience::Agent));
    }

    #[test]
    fn officers_are_percent_encoded_and_checked_like_the_server() {
        assert_eq!(percent_encode("王五"), "%E7%8E%8B%E4%BA%94");
        assert_eq!(percent_encode("Li Si-1.a_b~"), "Li%20Si-1.a_b~");
        let o = Officer::new("  王五 ").unwrap();
        assert_eq!(o.name(), "王五");
        assert_eq!(o.header.unwrap().to_str().unwrap(), "%E7%8E%8B%E4%BA%94");
        assert!(Officer::new("").unwrap().header.is_none());
        assert!(Officer::new(&"张".repeat(64)).is_ok());
        let long = Officer::new(&"张".repeat(65)).unwrap_err();
        assert!(long.contains("at most 64"), "{long}");
        assert!(Officer::new("a\nb").unwrap_err().contains("control"));
        assert!(
            Officer::new("a\u{202E}b")
                .unwrap_err()
                .contains("bidirectional")
        );
    }
}
