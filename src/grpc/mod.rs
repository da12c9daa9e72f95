//! The gRPC surface: one thin service per proto service (wire to use case and back), the method table, and the start and finish of every call.

use prost::Message;
use tonic::{Request, Response, Status};

use crate::app::{AppState, Call};
use crate::identity;

pub mod access_log_service;
pub mod cadres;
pub mod changes;
pub mod dossier;
pub mod opinions;
pub mod records;
pub mod refused;
pub mod system;

// The method table is the use cases' (AllowedMethods reads it); the wire
// names methods by the same constants.
pub use crate::app::methods::*;

/// The call `request` starts: the principal the identity layer attached, the
/// officer from `x-cadrex-officer`, and `x-request-id` to name the call in
/// the log until the body carries a request id.
///
/// A call refused here still gets its row, durable before the refusal is
/// answered (DESIGN §3): an officer value that does not decode or is not a
/// name is recorded only by [`refused_officer`], and a request with a string
/// field [`crate::app::text::check`] refuses is INVALID_ARGUMENT before the use case has
/// looked anything up.
pub async fn start<T: Message>(
    state: &AppState,
    request: &Request<T>,
    method: &'static str,
) -> Result<Call, Status> {
    // From here on the call's row is written by the handler, not by the
    // layer that logs calls refused before one ran.
    if let Some(started) = request.extensions().get::<refused::Started>() {
        started.set();
    }
    let principal = identity::principal(request)?;
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        // Only a clean label names the call; anything else is ignored, as
        // the header is advice, not part of the request.
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && crate::domain::text_fault(s, crate::domain::Text::Line).is_none()
                && !crate::access_log::reserved(s)
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (officer, refusal) = officer_or_refusal(request.metadata(), &state.digest);
    let call = Call::new(principal, officer, method, request_id);
    let refusal = refusal.or_else(|| crate::app::text::check(method, request.get_ref()).err());
    match refusal {
        None => Ok(call),
        Some(e) => Err(call.refuse(state, e).await.into()),
    }
}

/// The officer the log row names, and the refusal when the metadata value is
/// not acceptable: then the row names it by [`refused_officer`] only.
pub(crate) fn officer_or_refusal(
    metadata: &tonic::metadata::MetadataMap,
    digest: &crate::digest::DigestKey,
) -> (String, Option<crate::error::Error>) {
    let Some(raw) = metadata.get(identity::OFFICER_KEY) else {
        return (String::new(), None);
    };
    match identity::decode_officer(raw.as_bytes()) {
        Ok(officer) => (officer, None),
        Err(e) => (refused_officer(raw.as_bytes(), digest), Some(e)),
    }
}

/// What the log's officer column holds for a refused `x-cadrex-officer`
/// value: `refused:len=<bytes>:k1:<hex>`, its length and keyed digest. The
/// raw value may be anything a prober sends, a name to test included; keyed,
/// the row lets the exchange match a copy the caller shows without letting a
/// reader of the store test a guess (DESIGN §2).
pub fn refused_officer(raw: &[u8], digest: &crate::digest::DigestKey) -> String {
    format!("refused:len={}:{}", raw.len(), digest.keyed(raw))
}

/// Writes the call's log row, then answers: the response only once its row
/// is durable, an error through the one `From<Error> for Status`.
pub async fn finish<R: Message>(
    call: Call,
    state: &AppState,
    result: crate::error::Result<R>,
) -> Result<Response<R>, Status> {
    Ok(Response::new(call.finish(state, result).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one text check knows the input of every method in the table (an
    /// unknown method is refused, never skipped).
    #[test]
    fn every_method_has_an_input_descriptor() {
        for m in METHODS {
            assert!(
                crate::app::text::check(m.path, &crate::proto::WhoAmIRequest {}).is_ok(),
                "{}",
                m.path
            );
        }
        assert!(
            crate::app::text::check("/cadrex.v1.Nope/Nope", &crate::proto::WhoAmIRequest {})
                .is_err()
        );
    }
}
