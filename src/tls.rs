//! The exchange's own mutual-TLS acceptor: CRL-aware client verification, logged and counted refusals, live reload.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{CertificateError, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::identity::{Principal, principal_from_der, serial_hex};

/// Files the TLS material is read from.
#[derive(Clone, Debug)]
pub struct TlsPaths {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// When `None`, or when the file does not exist, clients are verified without a CRL.
    pub crl: Option<PathBuf>,
}

impl TlsPaths {
    fn all(&self) -> Vec<&Path> {
        let mut v = vec![
            self.ca_cert.as_path(),
            self.server_cert.as_path(),
            self.server_key.as_path(),
        ];
        v.extend(self.crl.as_deref());
        v
    }
}

/// What identifies one version of a file: a rename brings a new inode even when size and
/// mtime happen to match the old file.
type Stamp = Option<(u64, i64, i64, u64)>;

fn stamps(paths: &TlsPaths) -> Vec<Stamp> {
    paths
        .all()
        .into_iter()
        .map(|p| {
            fs::metadata(p)
                .ok()
                .map(|m| (m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
        })
        .collect()
}

/// One consistent generation of TLS material.
struct Material {
    config: Arc<ServerConfig>,
    revoked: HashSet<String>,
    /// File stamps taken before the files were read, so a change during reading is seen later.
    stamps: Vec<Stamp>,
}

/// Current TLS material: the rustls `ServerConfig` and the revoked serial set, swapped
/// atomically on reload; plus the refusal counters.
pub struct TlsState {
    paths: TlsPaths,
    current: ArcSwap<Material>,
    refused_handshakes: AtomicU64,
    refused_calls: AtomicU64,
    by_reason: Mutex<BTreeMap<String, u64>>,
    next_conn_id: AtomicU64,
    generation: watch::Sender<u64>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("paths", &self.paths)
            .field("revoked", &self.current.load().revoked.len())
            .field("refused_handshakes", &self.refused_handshakes())
            .finish_non_exhaustive()
    }
}

impl TlsState {
    /// Reads all files and builds the server configuration. Installs no global crypto
    /// provider: ring is passed explicitly.
    pub fn load(paths: TlsPaths) -> anyhow::Result<Arc<Self>> {
        let material = build_material(&paths)?;
        tracing::info!(
            revoked = material.revoked.len(),
            crl = ?paths.crl,
            "TLS material loaded"
        );
        Ok(Arc::new(Self {
            paths,
            current: ArcSwap::from_pointee(material),
            refused_handshakes: AtomicU64::new(0),
            refused_calls: AtomicU64::new(0),
            by_reason: Mutex::new(BTreeMap::new()),
            next_conn_id: AtomicU64::new(1),
            generation: watch::Sender::new(0),
        }))
    }

    /// Re-reads every file. On any error the previous material stays in force.
    pub fn reload(&self) -> anyhow::Result<()> {
        let material = build_material(&self.paths)?;
        let revoked = material.revoked.len();
        self.current.store(Arc::new(material));
        self.generation.send_modify(|g| *g += 1);
        tracing::debug!(revoked, "TLS material swapped");
        Ok(())
    }

    /// True when the serial (normalised with `identity::serial_hex`) is on the current CRL.
    pub fn is_revoked(&self, serial_hex: &str) -> bool {
        self.current.load().revoked.contains(serial_hex)
    }

    /// Handshakes refused since start.
    pub fn refused_handshakes(&self) -> u64 {
        self.refused_handshakes.load(Ordering::Relaxed)
    }

    /// Calls refused by `authenticate` since start.
    pub fn refused_calls(&self) -> u64 {
        self.refused_calls.load(Ordering::Relaxed)
    }

    /// Every refusal, handshake and call alike, counted by reason; sorted by reason.
    pub fn refusals_by_reason(&self) -> Vec<(String, u64)> {
        let map = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Ticks once per successful reload, so long-lived streams can re-check their caller
    /// against the new CRL instead of waiting for their next message.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The configuration new handshakes use.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.load().config.clone()
    }

    /// Reloads when any file changes and on SIGHUP; logs the outcome. The task holds only a
    /// weak reference and ends once the state is dropped; callers may also abort it.
    pub fn spawn_reloader(self: &Arc<Self>, poll: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut hup = match tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::hangup(),
            ) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS reload by file polling only");
                    None
                }
            };
            // Polling metadata rather than inotify: certificate tooling and our own `revoke`
            // replace files by rename, which inotify watches on the old inode miss, and a
            // stat of four files every few seconds costs nothing.
            let mut tick = tokio::time::interval(poll.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_failed: Option<Vec<Stamp>> = None;
            loop {
                let signalled = tokio::select! {
                    _ = tick.tick() => false,
                    () = next_hup(&mut hup) => true,
                };
                let Some(state) = weak.upgrade() else { return };
                let now = stamps(&state.paths);
                if !signalled
                    && (now == state.current.load().stamps || last_failed.as_ref() == Some(&now))
                {
                    continue;
                }
                let trigger = if signalled { "SIGHUP" } else { "file change" };
                match state.reload() {
                    Ok(()) => {
                        last_failed = None;
                        tracing::info!(
                            trigger,
                            revoked = state.current.load().revoked.len(),
                            "TLS certificates, key and CRL reloaded"
                        );
                    }
                    Err(e) => {
                        // Retried on the next change, not on every tick, so a broken file
                        // is reported once rather than flooding the log.
                        last_failed = Some(now);
                        tracing::error!(trigger, error = %format!("{e:#}"), "TLS reload failed; keeping the previous certificates and CRL");
                    }
                }
            }
        })
    }

    fn count(&self, reason: &str) {
        let mut map = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(reason.to_string()).or_default() += 1;
    }

    fn refuse_handshake(&self, peer: SocketAddr, reason: &str, detail: &str) {
        self.refused_handshakes.fetch_add(1, Ordering::Relaxed);
        self.count(reason);
        metrics::counter!("cadrex_tls_handshakes_refused_total", "reason" => reason.to_string())
            .increment(1);
        tracing::warn!(peer = %peer, reason = %reason, detail = %detail, "TLS handshake refused");
    }

    fn refuse_call(
        &self,
        info: &ConnInfo,
        reason: &str,
        message: &str,
        detail: &str,
    ) -> tonic::Status {
        self.refused_calls.fetch_add(1, Ordering::Relaxed);
        self.count(reason);
        metrics::counter!("cadrex_tls_calls_refused_total", "reason" => reason.to_string())
            .increment(1);
        tracing::warn!(peer = %info.remote_addr, conn_id = info.conn_id, reason = %reason, detail = %detail, "{message}");
        tonic::Status::unauthenticated(format!("{message}: {detail}"))
    }
}

async fn next_hup(hup: &mut Option<tokio::signal::unix::Signal>) {
    match hup {
        Some(s) => {
            if s.recv().await.is_none() {
                *hup = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

fn build_material(paths: &TlsPaths) -> anyhow::Result<Material> {
    let stamps = stamps(paths);
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());

    let mut roots = RootCertStore::empty();
    for cert in read_certs(&paths.ca_cert)? {
        roots
            .add(cert)
            .with_context(|| format!("CA certificate in {}", paths.ca_cert.display()))?;
    }
    let chain = read_certs(&paths.server_cert)?;
    let key = PrivateKeyDer::from_pem_file(&paths.server_key)
        .map_err(|e| anyhow::anyhow!("reading server key {}: {e}", paths.server_key.display()))?;

    let (crls, revoked) = match &paths.crl {
        Some(path) if path.exists() => read_crls(path)?,
        Some(path) => {
            tracing::warn!(crl = %path.display(), "configured CRL file is absent; client certificates are not checked for revocation");
            (Vec::new(), HashSet::new())
        }
        None => (Vec::new(), HashSet::new()),
    };

    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if !crls.is_empty() {
        // Our CRL comes from the root itself and there are no intermediates, so only the
        // leaf has a CRL to be checked against; asking for the whole chain would find
        // nothing for the root and refuse every client as "unknown revocation status".
        verifier = verifier.with_crls(crls).only_check_end_entity_revocation();
    }
    let verifier: Arc<dyn ClientCertVerifier> = Arc::new(RequireClientAuthEku(
        verifier
            .build()
            .context("building the client certificate verifier")?,
    ));

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("server certificate and key do not form a usable pair")?;
    // gRPC speaks HTTP/2 only, and some clients (grpcio) refuse a server that does not say so.
    config.alpn_protocols = vec![b"h2".to_vec()];
    // A resumed session skips client-certificate verification; with connections that last
    // for hours resumption saves nothing, and turning it off keeps every connection checked
    // against the CRL in force when it was opened.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;

    Ok(Material {
        config: Arc::new(config),
        revoked,
        stamps,
    })
}

/// The webpki verifier, plus one rule it leaves out: the leaf must carry the
/// `clientAuth` extended key usage (DESIGN §1). webpki refuses a certificate
/// whose EKU list lacks it but, following RFC 5280, accepts one with no EKU
/// extension at all, which would let any certificate the CA ever signed (a
/// server's, a signing key's) act as a calling system.
#[derive(Debug)]
struct RequireClientAuthEku(Arc<dyn ClientCertVerifier>);

/// True when the certificate's extended key usages include `clientAuth`.
fn has_client_auth_eku(der: &[u8]) -> bool {
    use x509_parser::prelude::*;
    X509Certificate::from_der(der).ok().is_some_and(
        |(_, cert)| matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth),
    )
}

impl ClientCertVerifier for RequireClientAuthEku {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain first, so that a foreign or expired certificate is
        // refused for that, whatever its usages.
        let verified = self.0.verify_client_cert(end_entity, intermediates, now)?;
        if !has_client_auth_eku(end_entity) {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

/// Reads PEM (one or more `X509 CRL` blocks) or a single DER CRL, and collects the revoked
/// serials. The verifier checks the CRL signatures; this set only adds the per-call check.
fn read_crls(
    path: &Path,
) -> anyhow::Result<(Vec<CertificateRevocationListDer<'static>>, HashSet<String>)> {
    let bytes = fs::read(path).with_context(|| format!("reading CRL {}", path.display()))?;
    let crls = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("reading CRL {}: {e}", path.display()))?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if crls.is_empty() {
        bail!("no CRL in {}", path.display());
    }
    let mut revoked = HashSet::new();
    for crl in &crls {
        let (_, parsed) = x509_parser::parse_x509_crl(crl)
            .map_err(|e| anyhow::anyhow!("parsing CRL {}: {e}", path.display()))?;
        revoked.extend(
            parsed
                .iter_revoked_certificates()
                .map(|r| serial_hex(r.raw_serial())),
        );
    }
    Ok((crls, revoked))
}

/// What the gRPC layer learns about a connection; tonic puts a clone into every request's
/// extensions through `Connected`.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub remote_addr: SocketAddr,
    /// Read once per connection from the verified leaf certificate.
    pub principal: Result<Principal, String>,
    pub conn_id: u64,
}

/// A TLS connection whose handshake (client certificate included) has succeeded.
pub struct TlsConn {
    inner: TlsStream<TcpStream>,
    info: ConnInfo,
}

impl TlsConn {
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    pub fn tls_stream(&self) -> &TlsStream<TcpStream> {
        &self.inner
    }
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// Accepts TCP connections and hands tonic only those whose mutual-TLS handshake succeeded.
/// Each handshake runs in its own task under `handshake_timeout`, so a slow or silent peer
/// holds up nobody else. The loop stops, closing the listener, when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    state: Arc<TlsState>,
    handshake_timeout: Duration,
) -> impl futures::Stream<Item = Result<TlsConn, io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel(128);
    tokio::spawn(accept_loop(listener, state, handshake_timeout, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<TlsState>,
    handshake_timeout: Duration,
    tx: mpsc::Sender<Result<TlsConn, io::Error>>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = tx.closed() => return,
        };
        match accepted {
            Ok((tcp, peer)) => {
                tokio::spawn(handshake(
                    tcp,
                    peer,
                    state.clone(),
                    handshake_timeout,
                    tx.clone(),
                ));
            }
            // The peer gave up between SYN and accept: nothing wrong on our side.
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "connection reset before accept");
            }
            Err(e) => {
                // Typically EMFILE/ENFILE: accepting again at once would spin, so back off
                // briefly to let connections close.
                tracing::warn!(error = %e, "accept failed; pausing");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    state: Arc<TlsState>,
    handshake_timeout: Duration,
    tx: mpsc::Sender<Result<TlsConn, io::Error>>,
) {
    let _ = tcp.set_nodelay(true);
    let acceptor = TlsAcceptor::from(state.server_config());
    let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
        Err(_) => {
            let detail = format!("no handshake within {handshake_timeout:?}");
            state.refuse_handshake(peer, "timeout", &detail);
            return;
        }
        Ok(Err(e)) => {
            state.refuse_handshake(peer, &classify(&e), &e.to_string());
            return;
        }
        Ok(Ok(stream)) => stream,
    };
    let principal = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        Some(leaf) => principal_from_der(leaf),
        None => Err("no client certificate".to_string()),
    };
    let conn_id = state.next_conn_id.fetch_add(1, Ordering::Relaxed);
    match &principal {
        Ok(p) => {
            tracing::debug!(peer = %peer, conn_id, principal = %p.uri, "TLS connection established")
        }
        Err(reason) => {
            tracing::debug!(peer = %peer, conn_id, reason = %reason, "TLS connection established without a usable identity")
        }
    }
    let conn = TlsConn {
        inner: stream,
        info: ConnInfo {
            remote_addr: peer,
            principal,
            conn_id,
        },
    };
    // A send error only means the server is shutting down; the connection is dropped.
    let _ = tx.send(Ok(conn)).await;
}

/// Maps a failed handshake to a short, bounded reason for logs and counters.
fn classify(e: &io::Error) -> String {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::NoCertificatesPresented => "no client certificate".into(),
            rustls::Error::InvalidCertificate(cert) => match cert {
                // A foreign CA that happens to share our CA's name yields a bad signature
                // rather than an unknown issuer; for the operator both mean "not our CA".
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    "unknown issuer".into()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "expired".into()
                }
                CertificateError::Revoked => "revoked".into(),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "not yet valid".into()
                }
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => {
                    "not a client certificate".into()
                }
                // The other variants carry no per-connection data, so their text stays bounded.
                other => rustls::Error::InvalidCertificate(other.clone()).to_string(),
            },
            other => other.to_string(),
        };
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "connection closed during handshake".into(),
        _ => e.to_string(),
    }
}

/// The identity check every call passes: the connection's principal, refused when the
/// certificate carries no usable identity, has been revoked since the connection opened,
/// or has expired while the connection stayed open. On success the `Principal` is put into
/// the request extensions for the handlers.
pub fn authenticate(
    state: &TlsState,
    extensions: &mut http::Extensions,
) -> Result<(), tonic::Status> {
    let Some(info) = extensions.get::<ConnInfo>() else {
        state.refused_calls.fetch_add(1, Ordering::Relaxed);
        state.count("no connection info");
        tracing::warn!(
            reason = "no connection info",
            "call refused: request did not arrive through the TLS acceptor"
        );
        return Err(tonic::Status::unauthenticated(
            "no verified client identity",
        ));
    };
    let principal = match &info.principal {
        Ok(p) => p.clone(),
        Err(reason) => {
            return Err(state.refuse_call(
                info,
                "bad identity",
                "client certificate identity refused",
                reason,
            ));
        }
    };
    if state.is_revoked(&principal.serial) {
        let detail = format!("serial {} of {}", principal.serial, principal.uri);
        return Err(state.refuse_call(
            info,
            "revoked",
            "revoked certificate used on open connection",
            &detail,
        ));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if principal.not_after < now {
        let detail = format!(
            "{} expired at unix time {}",
            principal.uri, principal.not_after
        );
        return Err(state.refuse_call(
            info,
            "expired",
            "expired certificate used on open connection",
            &detail,
        ));
    }
    extensions.insert(principal);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::agency::Agency;
    use crate::pki::{self, ClientSpec, PkiPaths};
    use futures::StreamExt;
    use rustls::ClientConfig;
    use rustls_pki_types::ServerName;
    use tokio_rustls::TlsConnector;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn client_config(ca: &Path, client: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in read_certs(ca).unwrap() {
            roots.add(c).unwrap();
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match client {
            Some((crt, key)) => builder
                .with_client_auth_cert(
                    read_certs(crt).unwrap(),
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }

    /// Connects and keeps the client side open; TLS 1.3 clients finish before the server
    /// has judged their certificate, so a refusal shows only on the server side.
    async fn connect(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .ok()
    }

    async fn wait_refused(state: &TlsState, n: u64) {
        for _ in 0..500 {
            if state.refused_handshakes() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} refused handshakes, saw {}",
            state.refused_handshakes()
        );
    }

    fn reason_count(state: &TlsState, reason: &str) -> u64 {
        state
            .refusals_by_reason()
            .into_iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, n)| n)
    }

    #[tokio::test]
    async fn mutual_tls_acceptor() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        pki::init(dir, pki::DEFAULT_DIVISION).unwrap();
        let paths = PkiPaths::new(dir);
        let state = TlsState::load(TlsPaths {
            ca_cert: paths.ca_cert(),
            server_cert: paths.server_cert(),
            server_key: paths.server_key(),
            crl: Some(paths.crl()),
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut conns = Box::pin(incoming(listener, state.clone(), Duration::from_secs(5)));

        let (org_crt, org_key) = (
            paths.client_cert("organization", "360821"),
            paths.client_key("organization", "360821"),
        );
        let org = client_config(&paths.ca_cert(), Some((&org_crt, &org_key)));
        let client = connect(addr, org.clone()).await.expect("client handshake");
        assert_eq!(client.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let conn = tokio::time::timeout(Duration::from_secs(5), conns.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let principal = conn.info().principal.clone().unwrap();
        assert_eq!(
            (principal.agency, principal.division.as_str()),
            (Agency::Organization, "360821")
        );
        assert_eq!(
            conn.info().remote_addr,
            client.get_ref().0.local_addr().unwrap()
        );

        let mut ext = http::Extensions::new();
        ext.insert(conn.info().clone());
        authenticate(&state, &mut ext).unwrap();
        assert_eq!(ext.get::<Principal>(), Some(&principal));

        // No client certificate.
        let _anon = connect(addr, client_config(&paths.ca_cert(), None)).await;
        wait_refused(&state, 1).await;
        assert_eq!(state.refused_handshakes(), 1);
        assert_eq!(reason_count(&state, "no client certificate"), 1);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), conns.next())
                .await
                .is_err()
        );

        // Expired certificate.
        let now = time::OffsetDateTime::now_utc();
        let spec = ClientSpec {
            uris: vec!["urn:cadrex:system:audit:360821:old".into()],
            not_before: now - time::Duration::days(30),
            not_after: now - time::Duration::days(1),
            common_name: "old".into(),
        };
        let (crt, key) = pki::issue_custom(dir, "expired", &spec).unwrap();
        let _expired = connect(addr, client_config(&paths.ca_cert(), Some((&crt, &key)))).await;
        wait_refused(&state, 2).await;
        assert_eq!(reason_count(&state, "expired"), 1);

        // Certificate from another CA.
        let other = tempfile::tempdir().unwrap();
        pki::init(other.path(), "360821").unwrap();
        let foreign = PkiPaths::new(other.path());
        let (fcrt, fkey) = (
            foreign.client_cert("audit", "360821"),
            foreign.client_key("audit", "360821"),
        );
        let _foreign = connect(addr, client_config(&paths.ca_cert(), Some((&fcrt, &fkey)))).await;
        wait_refused(&state, 3).await;
        assert_eq!(
            reason_count(&state, "unknown issuer"),
            1,
            "{:?}",
            state.refusals_by_reason()
        );

        // Revocation: the open connection is refused per call, new handshakes fail.
        pki::revoke(dir, &org_crt).unwrap();
        state.reload().unwrap();
        assert!(state.is_revoked(&principal.serial));
        let mut ext = http::Extensions::new();
        ext.insert(conn.info().clone());
        let status = authenticate(&state, &mut ext).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(reason_count(&state, "revoked"), 1);
        let _revoked = connect(addr, org).await;
        wait_refused(&state, 4).await;
        assert_eq!(reason_count(&state, "revoked"), 2);

        // A certificate without a cadrex URI gets through the handshake but not the call.
        let spec = ClientSpec {
            uris: vec![],
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(1),
            common_name: "urn:cadrex:system:discipline:000000:x".into(),
        };
        let (crt, key) = pki::issue_custom(dir, "nouri", &spec).unwrap();
        let _nouri = connect(addr, client_config(&paths.ca_cert(), Some((&crt, &key))))
            .await
            .unwrap();
        let conn = tokio::time::timeout(Duration::from_secs(5), conns.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(conn.info().principal.is_err());
        let mut ext = http::Extensions::new();
        ext.insert(conn.info().clone());
        assert!(authenticate(&state, &mut ext).is_err());
        assert_eq!(reason_count(&state, "bad identity"), 1);
        assert_eq!(state.refused_handshakes(), 4);
    }

    #[tokio::test]
    async fn reloader_follows_crl_and_keeps_old_on_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        pki::init(dir, "360802").unwrap();
        let paths = PkiPaths::new(dir);
        let state = TlsState::load(TlsPaths {
            ca_cert: paths.ca_cert(),
            server_cert: paths.server_cert(),
            server_key: paths.server_key(),
            crl: Some(paths.crl()),
        })
        .unwrap();
        let reloader = state.spawn_reloader(Duration::from_millis(20));
        let mut reloads = state.reloads();
        let crt = paths.client_cert("petition", "360802");
        let der = read_certs(&crt).unwrap().remove(0);
        let serial = principal_from_der(&der).unwrap().serial;
        pki::revoke(dir, &crt).unwrap();
        tokio::time::timeout(Duration::from_secs(5), reloads.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(state.is_revoked(&serial));

        let before = state.server_config();
        fs::write(paths.server_key(), "garbage").unwrap();
        assert!(state.reload().is_err());
        assert!(Arc::ptr_eq(&before, &state.server_config()));
        assert!(state.is_revoked(&serial));
        reloader.abort();
    }
}
