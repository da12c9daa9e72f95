//! Rows for calls refused before their handler runs (DESIGN §3): a body that does not decode, is missing, cut short, wrongly framed or compressed as the server does not accept is answered by tonic without a handler, so this layer writes the call's access-log row — principal, method, DENY, the status and the body's length, never its bytes.
//!
//! It sits inside the limits layer, so calls refused for the per-system rate
//! or concurrency limits never reach it and stay row-less (threat model row
//! 13), and outside the identity interceptor, so it sees the refusal tonic
//! sends once the certificate was accepted. Only RPCs that log rows
//! ([`MethodSpec::logged`](super::MethodSpec)) are watched.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Put into every watched request's extensions; `grpc::start` sets it when a
/// handler takes the call (and from then on writes the call's row itself).
/// An answer to a call whose handler never started came from tonic.
#[derive(Clone, Default)]
pub struct Started(Arc<AtomicBool>);

impl Started {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The refusal tonic answered a call with before any handler ran, from the
/// headers of its trailers-only answer: `None` for an answer that is not a
/// refusal. An unsupported `grpc-encoding` and the size limit keep their
/// meaning; anything else tonic refuses before a handler (does not decode,
/// no message, cut short, a bad compression flag) is the caller's malformed
/// request, not a server fault.
fn tonic_refusal(headers: &http::HeaderMap) -> Option<Error> {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|c| *c != 0)?;
    let message = headers
        .get("grpc-message")
        .map(|m| {
            percent_encoding::percent_decode(m.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    Some(match tonic::Code::from(code) {
        tonic::Code::Unimplemented => Error::UnsupportedEncoding(message),
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => Error::MessageTooLarge(message),
        _ => Error::MalformedRequest(
            crate::limits::decode_failure(message.as_bytes()).unwrap_or(message),
        ),
    })
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
        let started = Started::default();
        let mut req = req.map(|body| {
            Body::new(Counted {
                inner: body,
                seen: seen.clone(),
            })
        });
        req.extensions_mut().insert(started.clone());
        Box::pin(async move {
            let resp = inner.call(req).await?;
            // A handler that started wrote (or writes) the row itself.
            if started.get() {
                return Ok(resp);
            }
            let Some(refusal) = tonic_refusal(resp.headers()) else {
                return Ok(resp);
            };
            let len = seen.lock().map(|s| s.message_len()).unwrap_or(0);
            let (officer, _) = super::officer_or_refusal(&metadata, &state.digest);
            let call = Call::new(principal, officer, method, undecodable_request_id(len));
            // The row is durable before the answer goes out: the refusal as
            // the one `From<Error> for Status` renders it (tonic's own INTERNAL
            // texts become INVALID_ARGUMENT / MALFORMED_REQUEST), or the
            // failure to log it.
            Ok(tonic::Status::from(call.refuse(&state, refusal).await).into_http())
        })
    }
}
