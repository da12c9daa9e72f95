//! The outer layer that enforces the per-call deadline and reports limits with the codes gRPC specifies.
//!
//! tonic answers an oversized request with OUT_OF_RANGE, its own server timeout
//! with CANCELLED and a body that does not decode with INTERNAL; gRPC says
//! RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED and INVALID_ARGUMENT (DESIGN §7).
//! tonic applies its timeout outside every user layer, so this layer owns the
//! deadline itself and rewrites the size status on the way out.
//!
//! Being outermost, it also applies the per-system limits (`ratelimit`) before any
//! work is done, and records every call's final status and duration (`metrics`),
//! trailers-only answers included.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::ratelimit::{Slot, SystemLimits};

/// Wraps services with [`Limits`].
#[derive(Clone, Debug)]
pub struct LimitsLayer {
    call_timeout: Duration,
    systems: Option<Arc<SystemLimits>>,
}

impl LimitsLayer {
    pub fn new(call_timeout: Duration) -> Self {
        Self {
            call_timeout,
            systems: None,
        }
    }

    /// Also applies per-system rate and concurrency limits (unless all are off).
    pub fn with_system_limits(mut self, limits: Arc<SystemLimits>) -> Self {
        self.systems = (!limits.is_off()).then_some(limits);
        self
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limits {
            inner,
            call_timeout: self.call_timeout,
            systems: self.systems.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Limits<S> {
    inner: S,
    call_timeout: Duration,
    systems: Option<Arc<SystemLimits>>,
}

/// Parses a `grpc-timeout` header value (an integer of at most 8 digits and a unit).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// tonic's own status for a request over the decoding limit (the header is
/// percent-encoded on the wire).
fn is_size_limit(message: &[u8]) -> bool {
    let m = String::from_utf8_lossy(message).replace("%20", " ");
    m.contains("message length too large")
}

/// prost's text for a message that does not decode, which tonic sends as
/// INTERNAL (`tonic_prost::codec::from_decode_error`); the part after it says
/// where and why.
const DECODE_ERROR: &str = "failed to decode Protobuf message: ";

/// The decoder's detail when `message` (percent-encoded as on the wire) is
/// tonic's status for a request body that does not decode.
pub(crate) fn decode_failure(message: &[u8]) -> Option<String> {
    let m = percent_encoding::percent_decode(message).decode_utf8_lossy();
    m.strip_prefix(DECODE_ERROR).map(str::to_string)
}

/// Rewrites tonic's own statuses in a header map (headers of a trailers-only
/// response, or the trailers of a normal one): the size limit to
/// RESOURCE_EXHAUSTED, and a body that does not decode to INVALID_ARGUMENT
/// with the same `google.rpc` details as every other refusal. Only these
/// exact tonic texts match: the handlers' own INTERNAL says "internal error".
fn rewrite_status(headers: &mut http::HeaderMap) {
    let status = headers.get("grpc-status").map(HeaderValue::as_bytes);
    let message = headers.get("grpc-message").map(HeaderValue::as_bytes);
    match (status, message) {
        (Some(b"11"), Some(m)) if is_size_limit(m) => {
            headers.insert("grpc-status", HeaderValue::from_static("8"));
        }
        (Some(b"13"), Some(m)) => {
            let Some(detail) = decode_failure(m) else {
                return;
            };
            let status = tonic::Status::from(crate::error::Error::MalformedRequest(detail));
            headers.remove("grpc-message");
            headers.remove("grpc-status-details-bin");
            if let Err(e) = status.add_header(headers) {
                tracing::warn!(error = %e, "cannot rewrite a decode failure's status");
                headers.insert("grpc-status", HeaderValue::from_static("3"));
            }
        }
        _ => {}
    }
}

/// One call's metrics, recorded once its final status is known; a call dropped
/// before that (the client went away) counts as CANCELLED.
struct CallMetrics {
    method: String,
    started: Instant,
    done: bool,
}

impl CallMetrics {
    /// Records the status in `headers` (headers of a trailers-only answer, or
    /// trailers); returns false when they carry none.
    fn finish_from(&mut self, headers: &http::HeaderMap) -> bool {
        let Some(code) = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
        else {
            return false;
        };
        self.finish(tonic::Code::from(code));
        true
    }

    fn finish(&mut self, code: tonic::Code) {
        if self.done {
            return;
        }
        self.done = true;
        let method = crate::metrics::method_label(&self.method).to_string();
        metrics::counter!("cadrex_rpc_requests_total", "method" => method.clone(), "code" => format!("{code:?}"))
            .increment(1);
        metrics::histogram!("cadrex_rpc_duration_seconds", "method" => method)
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallMetrics {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

/// A response body whose trailers get the same rewrite; it also holds the call's
/// concurrency slot and metrics until the last frame, so a stream counts for as long as
/// it is open.
struct Rewritten {
    inner: Body,
    metrics: Option<CallMetrics>,
    _slot: Slot,
}

impl http_body::Body for Rewritten {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(match frame.into_trailers() {
                Ok(mut trailers) => {
                    rewrite_status(&mut trailers);
                    if let Some(m) = &mut self.metrics {
                        m.finish_from(&trailers);
                    }
                    http_body::Frame::trailers(trailers)
                }
                Err(data) => data,
            }))),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<S> Service<Request<Body>> for Limits<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let client = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let deadline = client.map_or(self.call_timeout, |c| c.min(self.call_timeout));
        let mut metrics = CallMetrics {
            method: req.uri().path().to_string(),
            started: Instant::now(),
            done: false,
        };
        // The caller's system, known from the connection's verified certificate; a
        // connection without a usable identity is refused by the identity check later.
        let principal = req
            .extensions()
            .get::<crate::tls::ConnInfo>()
            .and_then(|i| i.principal.as_ref().ok());
        let slot = match (&self.systems, principal) {
            (Some(limits), Some(p)) => match limits.admit(&p.uri, &metrics.method) {
                Ok(slot) => slot,
                Err(e) => {
                    metrics.finish(e.code());
                    let resp = tonic::Status::from(e).into_http();
                    return Box::pin(std::future::ready(Ok(resp)));
                }
            },
            _ => None,
        };
        // The clone that was polled ready serves this call (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match tokio::time::timeout(deadline, inner.call(req)).await {
                Ok(Ok(resp)) => {
                    let (mut parts, body) = resp.into_parts();
                    rewrite_status(&mut parts.headers);
                    let metrics = (!metrics.finish_from(&parts.headers)).then_some(metrics);
                    Ok(Response::from_parts(
                        parts,
                        Body::new(Rewritten {
                            inner: body,
                            metrics,
                            _slot: slot,
                        }),
                    ))
                }
                Ok(Err(e)) => {
                    metrics.finish(tonic::Code::Unknown);
                    Err(e)
                }
                // Dropping the handler's future rolls back any open transaction.
                Err(_) => {
                    metrics.finish(tonic::Code::DeadlineExceeded);
                    Ok(tonic::Status::deadline_exceeded(
                        "the call did not finish within its deadline",
                    )
                    .into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_values() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }

    #[test]
    fn decode_failures_become_invalid_argument() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static("13"));
        h.insert(
            "grpc-message",
            HeaderValue::from_static(
                "failed%20to%20decode%20Protobuf%20message:%20invalid%20wire%20type",
            ),
        );
        rewrite_status(&mut h);
        let status = tonic::Status::from_header_map(&h).unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().ends_with("invalid wire type"),
            "{}",
            status.message()
        );
        assert!(h.contains_key("grpc-status-details-bin"));
        // The handlers' own INTERNAL stays what it is.
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static("13"));
        h.insert("grpc-message", HeaderValue::from_static("internal%20error"));
        rewrite_status(&mut h);
        assert_eq!(h["grpc-status"], "13");
    }
}
