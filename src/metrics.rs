//! Prometheus metrics: one process-wide recorder, its text served on a loopback HTTP port, and the certificate-expiry gauges and warnings.
//!
//! The `metrics` recorder is global to the process, while a process may run several
//! servers (the integration tests do): the recorder is installed once and every server
//! serves the same handle on its own port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Latency buckets (seconds) for calls and commits: from a cached read to a long stream.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Rows per group commit: powers of two up to well past the default `log_batch_max`.
const ROWS_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Scrapes served at once; a scraper needs one, so this only bounds a misbehaving one.
const MAX_SCRAPES: usize = 8;

/// How long a scraper may take to send its request head.
const SCRAPE_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The process's recorder handle, installed on first use; `None` when another
/// recorder was installed first (then nothing of ours is recorded).
pub fn handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("cadrex_rpc_duration_seconds".into()),
                    SECONDS_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("cadrex_access_log_commit_seconds".into()),
                        SECONDS_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("cadrex_access_log_batch_rows".into()),
                        ROWS_BUCKETS,
                    )
                })
                .and_then(|b| b.install_recorder());
            match built {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot install the metrics recorder; metrics are not recorded");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "cadrex_rpc_requests_total",
        "gRPC calls finished, by method and status code"
    );
    describe_histogram!(
        "cadrex_rpc_duration_seconds",
        Unit::Seconds,
        "time from request to final status (streams: their whole life), by method"
    );
    describe_counter!(
        "cadrex_rpc_limited_total",
        "calls refused by the per-system rate or concurrency limit"
    );
    describe_counter!(
        "cadrex_tls_handshakes_refused_total",
        "TLS handshakes refused, by reason"
    );
    describe_counter!(
        "cadrex_tls_calls_refused_total",
        "calls refused by the identity check on an open connection, by reason"
    );
    describe_counter!(
        "cadrex_id_number_lookups_not_found_total",
        "lookups by 公民身份号码 (LookupCadre, records naming their cadre by number) that found no cadre in the caller's jurisdiction, by calling system"
    );
    describe_histogram!(
        "cadrex_access_log_batch_rows",
        "access-log rows per group commit"
    );
    describe_histogram!(
        "cadrex_access_log_commit_seconds",
        Unit::Seconds,
        "duration of one access-log group commit"
    );
    describe_gauge!(
        "cadrex_change_feed_lag",
        "changes committed but not yet delivered to a watcher, by principal"
    );
    describe_gauge!(
        "cadrex_certificate_expiry_seconds",
        Unit::Seconds,
        "seconds until the server certificate or the CA expires (negative: expired)"
    );
    describe_gauge!(
        "cadrex_crl_next_update_seconds",
        Unit::Seconds,
        "seconds until the CRL's next update is due (negative: overdue)"
    );
    describe_gauge!(
        "cadrex_calendar_data_end_seconds",
        Unit::Seconds,
        "seconds until the first day no official holiday schedule covers (negative: past)"
    );
}

/// Counts a lookup by 公民身份号码 whose cadre the caller cannot see: `found` is
/// the managing division of the cadre registered under the number, if any. A
/// cadre outside `caller_division`'s jurisdiction counts like a missing one,
/// because the caller learns the same and it is the guess that an operator
/// alerts on (DESIGN §2, residual risk).
pub fn id_number_lookup(system: &str, caller_division: &str, found: Option<&str>) {
    if found.is_some_and(|d| crate::domain::division::covers(caller_division, d)) {
        return;
    }
    metrics::counter!("cadrex_id_number_lookups_not_found_total", "system" => system.to_string())
        .increment(1);
}

/// The `method` label of a call: its path when it names a served method, else
/// `unknown`. Any path a client sends reaches the outer layer (and a limited or
/// cancelled call never reaches the router), so only the methods in the served
/// descriptor sets get their own series and the label set stays bounded.
pub fn method_label(path: &str) -> &str {
    static KNOWN: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        use prost::Message;
        let mut set = std::collections::HashSet::new();
        for fds in [
            crate::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(fds) = prost_types::FileDescriptorSet::decode(fds) else {
                continue;
            };
            for file in fds.file {
                let package = file.package();
                for service in &file.service {
                    for method in &service.method {
                        set.insert(format!("/{package}.{}/{}", service.name(), method.name()));
                    }
                }
            }
        }
        set
    });
    if known.contains(path) {
        path
    } else {
        "unknown"
    }
}

/// Where the metrics endpoint listens: config `metrics_listen` (`off` disables it).
pub fn parse_listen(value: &str, allow_non_loopback: bool) -> anyhow::Result<Option<SocketAddr>> {
    let v = value.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr: SocketAddr = v
        .parse()
        .with_context(|| format!("metrics_listen {v:?} is neither an address:port nor \"off\""))?;
    check_loopback(addr, allow_non_loopback)?;
    Ok(Some(addr))
}

fn check_loopback(addr: SocketAddr, allow_non_loopback: bool) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && !allow_non_loopback {
        anyhow::bail!(
            "metrics_listen {addr} is not a loopback address; the endpoint has no authentication, \
             so set metrics_allow_non_loopback = true only behind a firewall"
        );
    }
    Ok(())
}

/// A listener bound before `run` (tests bind port 0 and need to know the port).
/// Taken once; clones share it.
#[derive(Clone, Debug, Default)]
pub struct PreboundListener(Arc<Mutex<Option<std::net::TcpListener>>>);

impl PreboundListener {
    pub fn new(listener: std::net::TcpListener) -> Self {
        Self(Arc::new(Mutex::new(Some(listener))))
    }

    fn take(&self) -> Option<std::net::TcpListener> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Opens the metrics listener: the pre-bound one if given, else `listen`.
pub async fn bind(
    listen: Option<SocketAddr>,
    prebound: Option<&PreboundListener>,
    allow_non_loopback: bool,
) -> anyhow::Result<Option<TcpListener>> {
    if let Some(l) = prebound.and_then(PreboundListener::take) {
        check_loopback(l.local_addr()?, allow_non_loopback)?;
        l.set_nonblocking(true)?;
        return Ok(Some(TcpListener::from_std(l)?));
    }
    match listen {
        Some(addr) => {
            Ok(Some(TcpListener::bind(addr).await.with_context(|| {
                format!("binding the metrics endpoint on {addr}")
            })?))
        }
        None => Ok(None),
    }
}

/// Serves `GET /metrics` (Prometheus text format) until the task is aborted; also runs
/// the recorder's upkeep so that histograms do not grow without bound between scrapes.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    };
    let _upkeep = AbortOnDrop(upkeep);
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: too many scrapers at once
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let handle = handle.clone();
                async move { Ok::<_, Infallible>(respond(&req, &handle)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(SCRAPE_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            // A scrape is a few kilobytes; a connection lasting this long is stuck.
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn respond<B>(req: &http::Request<B>, handle: &PrometheusHandle) -> http::Response<Full<Bytes>> {
    let (status, ctype, body) = if req.method() != http::Method::GET {
        (
            http::StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_string(),
        )
    } else if req.uri().path() == "/metrics" {
        (
            http::StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        )
    } else {
        (
            http::StatusCode::NOT_FOUND,
            "text/plain",
            "see /metrics\n".to_string(),
        )
    };
    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ctype),
    );
    resp
}

/// Keeps `cadrex_change_feed_lag` for one watch stream; zeroes it when the stream ends,
/// so a departed watcher does not look stuck forever. Labelled by principal, which
/// keeps the series bounded by the issued certificates.
pub struct LagGauge(metrics::Gauge);

impl LagGauge {
    pub fn new(principal: &str) -> Self {
        Self(metrics::gauge!("cadrex_change_feed_lag", "watcher" => principal.to_string()))
    }

    pub fn set(&self, lag: i64) {
        self.0.set(lag.max(0) as f64);
    }
}

impl Drop for LagGauge {
    fn drop(&mut self) {
        self.0.set(0.0);
    }
}

/// One dated piece of TLS material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// `server`, `ca` or `crl`.
    pub which: &'static str,
    pub path: PathBuf,
    /// Unix time of `notAfter` (certificates) or `nextUpdate` (CRL).
    pub at: i64,
}

/// Files whose dates are watched.
#[derive(Clone, Debug)]
pub struct ExpiryPaths {
    pub server_cert: PathBuf,
    pub ca_cert: PathBuf,
    pub crl: Option<PathBuf>,
}

fn earliest_not_after(path: &Path) -> anyhow::Result<i64> {
    let mut earliest: Option<i64> = None;
    for der in CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
    {
        let der = der.map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
        let t = cert.validity().not_after.timestamp();
        earliest = Some(earliest.map_or(t, |e| e.min(t)));
    }
    earliest.with_context(|| format!("no certificate in {}", path.display()))
}

fn crl_next_update(path: &Path) -> anyhow::Result<Option<i64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading CRL {}", path.display()))?;
    let ders = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("reading CRL {}: {e}", path.display()))?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    let mut earliest: Option<i64> = None;
    for der in &ders {
        let (_, crl) = x509_parser::parse_x509_crl(der)
            .map_err(|e| anyhow::anyhow!("parsing CRL {}: {e}", path.display()))?;
        if let Some(t) = crl.next_update().map(|t| t.timestamp()) {
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
    }
    Ok(earliest)
}

/// Reads the dates of the server certificate (the earliest `notAfter` in its chain
/// file), the CA and the CRL. A file that cannot be read is skipped with a warning:
/// the TLS layer reports the real problem.
pub fn read_expiries(paths: &ExpiryPaths) -> Vec<Expiry> {
    let mut out = Vec::new();
    for (which, path) in [("server", &paths.server_cert), ("ca", &paths.ca_cert)] {
        match earliest_not_after(path) {
            Ok(at) => out.push(Expiry {
                which,
                path: path.clone(),
                at,
            }),
            Err(e) => {
                tracing::warn!(which, error = %format!("{e:#}"), "cannot read certificate dates")
            }
        }
    }
    if let Some(path) = &paths.crl
        && path.exists()
    {
        match crl_next_update(path) {
            Ok(Some(at)) => out.push(Expiry {
                which: "crl",
                path: path.clone(),
                at,
            }),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the CRL's next update")
            }
        }
    }
    out
}

/// Warning thresholds: certificates, and the CRL's next update.
#[derive(Clone, Copy, Debug)]
pub struct ExpiryWarning {
    pub certificate: Duration,
    pub crl: Duration,
}

/// Sets the gauges from `expiries` at `now` (unix seconds); logs a warning for each
/// item under its threshold when `warn` is set. Returns how many were under.
pub fn report_expiries(expiries: &[Expiry], now: i64, warning: ExpiryWarning, warn: bool) -> usize {
    let mut under = 0;
    for e in expiries {
        let left = e.at - now;
        if e.which == "crl" {
            metrics::gauge!("cadrex_crl_next_update_seconds").set(left as f64);
        } else {
            metrics::gauge!("cadrex_certificate_expiry_seconds", "which" => e.which)
                .set(left as f64);
        }
        let threshold = if e.which == "crl" {
            warning.crl
        } else {
            warning.certificate
        };
        if left >= threshold.as_secs() as i64 {
            continue;
        }
        under += 1;
        if !warn {
            continue;
        }
        let days = left.div_euclid(86_400);
        if e.which == "crl" {
            tracing::warn!(
                which = e.which,
                path = %e.path.display(),
                seconds_left = left,
                days_left = days,
                "the CRL's next update is due soon or overdue; re-sign it with `cadrex pki crl --dir DIR` (same revocations, new next update)"
            );
        } else {
            tracing::warn!(
                which = e.which,
                path = %e.path.display(),
                seconds_left = left,
                days_left = days,
                "certificate expires soon or has expired; renew it and reload (SIGHUP)"
            );
        }
    }
    under
}

/// How often the gauges are recomputed (they count down) and how often the warning repeats.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
const WARN_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Keeps the expiry gauges current and warns at start, after every TLS reload, and
/// daily, whenever anything is under its threshold. Runs until aborted.
pub async fn watch_expiry(
    paths: ExpiryPaths,
    warning: ExpiryWarning,
    mut reloads: tokio::sync::watch::Receiver<u64>,
) {
    let mut expiries = read_expiries(&paths);
    let now = || time::OffsetDateTime::now_utc().unix_timestamp();
    report_expiries(&expiries, now(), warning, true);
    let mut last_warn = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let reloaded = tokio::select! {
            _ = tick.tick() => false,
            r = reloads.changed() => {
                if r.is_err() {
                    return;
                }
                true
            }
        };
        if reloaded {
            expiries = read_expiries(&paths);
        }
        let warn = reloaded || last_warn.elapsed() >= WARN_EVERY;
        report_expiries(&expiries, now(), warning, warn);
        if warn {
            last_warn = tokio::time::Instant::now();
        }
    }
}

/// How long before the holiday data runs out the server starts warning:
/// due dates are 10 working days ahead, so a year's schedule (published each
/// November) should be installed well before December ends.
pub const CALENDAR_WARNING: Duration = Duration::from_secs(60 * 24 * 3600);

/// Sets `cadrex_calendar_data_end_seconds` (seconds until the first day no
/// official holiday schedule covers, midnight Asia/Shanghai; negative once
/// past) and says whether it is under [`CALENDAR_WARNING`], logging a warning
/// when `warn` is set.
pub fn report_calendar_end(end: Option<time::Date>, now: i64, warn: bool) -> bool {
    let Some(end) = end else {
        return false;
    };
    let offset = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let at = end.midnight().assume_offset(offset).unix_timestamp();
    let left = at - now;
    metrics::gauge!("cadrex_calendar_data_end_seconds").set(left as f64);
    let under = left < CALENDAR_WARNING.as_secs() as i64;
    if under && warn {
        tracing::warn!(
            data_end = %end,
            days_left = left.div_euclid(86_400),
            "the holiday calendar has no official schedule from {end}: add the State Council's \
             calendar-cn-YYYY.toml to calendar_dir (until then statutory holidays are skipped \
             and make-up working days are unknown)"
        );
    }
    under
}

/// Reports the calendar's end at start and warns once a day while it is near.
pub async fn watch_calendar(end: Option<time::Date>) {
    let now = || time::OffsetDateTime::now_utc().unix_timestamp();
    let mut tick = tokio::time::interval(WARN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        report_calendar_end(end, now(), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_end_is_near_within_sixty_days() {
        let end = time::macros::date!(2027 - 01 - 01);
        // 2027-01-01 00:00 +08:00 is 2026-12-31 16:00 UTC.
        let at = 1_798_732_800;
        assert!(report_calendar_end(Some(end), at - 59 * 86_400, false));
        assert!(!report_calendar_end(Some(end), at - 61 * 86_400, false));
        assert!(report_calendar_end(Some(end), at + 1, false));
        assert!(!report_calendar_end(None, at, false));
    }

    #[test]
    fn method_labels_are_bounded() {
        for m in [
            "/cadrex.v1.CadreService/GetCadre",
            "/cadrex.v1.ChangeFeedService/WatchChanges",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(method_label(m), m);
        }
        assert_eq!(method_label("/cadrex.v1.CadreService/Nope"), "unknown");
        assert_eq!(method_label("/x"), "unknown");
    }

    #[test]
    fn listen_values() {
        assert_eq!(parse_listen("off", false).unwrap(), None);
        assert_eq!(
            parse_listen("127.0.0.1:9464", false).unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert!(parse_listen("[::1]:9464", false).unwrap().is_some());
        assert!(parse_listen("0.0.0.0:9464", false).is_err());
        assert!(parse_listen("0.0.0.0:9464", true).unwrap().is_some());
        assert!(parse_listen("localhost", false).is_err());
    }

    #[test]
    fn dev_pki_dates() {
        let tmp = tempfile::tempdir().unwrap();
        crate::pki::init(tmp.path(), "360821").unwrap();
        let p = crate::pki::PkiPaths::new(tmp.path());
        let e = read_expiries(&ExpiryPaths {
            server_cert: p.server_cert(),
            ca_cert: p.ca_cert(),
            crl: Some(p.crl()),
        });
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let left = |w: &str| e.iter().find(|x| x.which == w).unwrap().at - now;
        let day = 86_400;
        assert!((364 * day..=366 * day).contains(&left("server")));
        assert!((3649 * day..=3651 * day).contains(&left("ca")));
        assert!((29 * day..=31 * day).contains(&left("crl")));
        let w = ExpiryWarning {
            certificate: Duration::from_secs(30 * day as u64),
            crl: Duration::from_secs(7 * day as u64),
        };
        assert_eq!(report_expiries(&e, now, w, false), 0);
        // A year on, the server certificate has expired and the CRL is overdue; the CA is fine.
        assert_eq!(report_expiries(&e, now + 366 * day, w, false), 2);
    }
}
