//! The outer layer that enforces the per-call deadline and reports limits with the codes gRPC specifies.
//!
//! tonic answers an oversized request with OUT_OF_RANGE and its own server timeout
//! with CANCELLED; gRPC says RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED (DESIGN §7).
//! tonic applies its timeout outside every user layer, so this layer owns the
//! deadline itself and rewrites the size status on the way out.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

/// Wraps services with [`Limits`].
#[derive(Clone, Debug)]
pub struct LimitsLayer {
    call_timeout: Duration,
}

impl LimitsLayer {
    pub fn new(call_timeout: Duration) -> Self {
        Self { call_timeout }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limits {
            inner,
            call_timeout: self.call_timeout,
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Limits<S> {
    inner: S,
    call_timeout: Duration,
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

/// Rewrites tonic's size-limit status in a header map (headers of a
/// trailers-only response, or the trailers of a normal one).
fn rewrite_status(headers: &mut http::HeaderMap) {
    let out_of_range = headers.get("grpc-status").is_some_and(|s| s == "11");
    if out_of_range
        && headers
            .get("grpc-message")
            .is_some_and(|m| is_size_limit(m.as_bytes()))
    {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
}

/// A response body whose trailers get the same rewrite.
struct Rewritten {
    inner: Body,
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
        // The clone that was polled ready serves this call (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match tokio::time::timeout(deadline, inner.call(req)).await {
                Ok(Ok(resp)) => {
                    let (mut parts, body) = resp.into_parts();
                    rewrite_status(&mut parts.headers);
                    Ok(Response::from_parts(
                        parts,
                        Body::new(Rewritten { inner: body }),
                    ))
                }
                Ok(Err(e)) => Err(e),
                // Dropping the handler's future rolls back any open transaction.
                Err(_) => Ok(tonic::Status::deadline_exceeded(
                    "the call did not finish within its deadline",
                )
                .into_http()),
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
}
