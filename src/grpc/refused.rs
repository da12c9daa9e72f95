//! Rows for calls whose body does not decode (DESIGN §3): tonic refuses them before any handler runs, so this layer writes their access-log row — principal, method, DENY, INVALID_ARGUMENT and the body's length, never its bytes.
//!
//! It sits inside the limits layer, so calls refused for the per-system rate
//! or concurrency limits never reach it and stay row-less (threat model row
//! 13), and outside the identity interceptor, so it sees the refusal tonic
//! sends once the certificate was accepted. Only RPCs that log rows
//! ([`MethodSpec::logged`](super::MethodSpec)) are watched.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::app::{AppState, Call};
use crate::error::Error;

/// Wraps services with [`Refused`].
#[derive(Clone)]
pub struct RefusedLayer {
    state: Arc<AppState>,
}

impl RefusedLayer {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for RefusedLayer {
    type Service = Refused<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Refused {
            inner,
            state: self.state.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Refused<S> {
    inner: S,
    state: Arc<AppState>,
}

/// What the request body delivered so far: its first bytes (the gRPC
/// message prefix: compression flag and big-endian length) and its size.
#[derive(Default)]
struct Seen {
    prefix: Vec<u8>,
    total: usize,
}

impl Seen {
    /// The length of the message that failed to decode: the length its
    /// prefix declares, or the bytes that arrived when no whole prefix did.
    fn message_len(&self) -> usize {
        match self.prefix.get(1..5) {
            Some(len) => u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize,
            None => self.total,
        }
    }
}

/// The request body, counted as tonic reads it.
struct Counted {
    inner: Body,
    seen: Arc<Mutex<Seen>>,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Ok(mut seen) = self.seen.lock()
        {
            let want = 5usize.saturating_sub(seen.prefix.len()).min(data.len());
            seen.prefix.extend_from_slice(&data[..want]);
            seen.total += data.len();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The detail of tonic's refusal of a body that does not decode, when
/// `headers` (of a trailers-only answer) carry one.
fn decode_refusal(headers: &http::HeaderMap) -> Option<String> {
    if headers.get("grpc-status").map(|v| v.as_bytes()) != Some(b"13") {
        return None;
    }
    crate::limits::decode_failure(headers.get("grpc-message")?.as_bytes())
}

/// What the log's request-id column holds for a call whose body did not
/// decode: the body carried the request id, so the row names the body by its
/// length instead (documented in docs/reference.md).
pub fn undecodable_request_id(len: usize) -> String {
    format!("undecodable:len={len}")
}

impl<S> Service<Request<Body>> for Refused<S>
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = super::METHODS
            .iter()
            .find(|m| m.logged && m.path == req.uri().path())
            .map(|m| m.path);
        // A connection without a usable identity is refused by the identity
        // interceptor, before any body is decoded.
        let principal = req
            .extensions()
            .get::<crate::tls::ConnInfo>()
            .and_then(|i| i.principal.as_ref().ok())
            .cloned();
        let (Some(method), Some(principal)) = (method, principal) else {
            return Box::pin(inner.call(req));
        };
        let state = self.state.clone();
        let metadata = tonic::metadata::MetadataMap::from_headers(req.headers().clone());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let req = req.map(|body| {
            Body::new(Counted {
                inner: body,
                seen: seen.clone(),
            })
        });
        Box::pin(async move {
            let resp = inner.call(req).await?;
            let Some(detail) = decode_refusal(resp.headers()) else {
                return Ok(resp);
            };
            let len = seen.lock().map(|s| s.message_len()).unwrap_or(0);
            let (officer, _) = super::officer_or_refusal(&metadata, &state.digest);
            let call = Call::new(principal, officer, method, undecodable_request_id(len));
            match call.refuse(&state, Error::MalformedRequest(detail)).await {
                // The row is durable: tonic's answer goes out (the limits
                // layer rewrites it to INVALID_ARGUMENT).
                Error::MalformedRequest(_) => Ok(resp),
                log_failure => Ok(tonic::Status::from(log_failure).into_http()),
            }
        })
    }
}
