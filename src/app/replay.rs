//! Idempotent replay (AIP-155): what the `request_id` cache keeps of a call, and reading it back.

use prost::Message;

use super::{AppState, Call};
use crate::error::{Error, Reason, Result};
use crate::store::Idempotency;

/// A create-like call's `request_id` (AIP-155), scoped to the calling
/// system: checked and hashed once when the call starts, looked up before
/// anything is decided, and stored with the call's [`Outcome`] inside the
/// write's own transaction. Every create-like use case goes through it.
#[derive(Clone, Debug)]
pub struct RequestKey {
    system: String,
    method: &'static str,
    request_id: String,
    request_sha256: String,
}

impl RequestKey {
    /// Checks `request_id` (at most 128 printable characters, not beginning
    /// with a prefix the log reserves, may be empty)
    /// and, when one is given, names the call by it in the access log.
    ///
    /// The request's digest, which tells a replay from a reused request id,
    /// is keyed (DESIGN §2): a request may carry an informant block, and the
    /// cache keeps the digest for a day or more.
    pub fn new<M: Message>(
        state: &AppState,
        call: &mut Call,
        request: &M,
        request_id: &str,
    ) -> Result<Self> {
        if request_id.len() > 128
            || crate::domain::text_fault(request_id, crate::domain::Text::Line).is_some()
            || crate::access_log::reserved(request_id)
        {
            return Err(Error::invalid(
                "request_id",
                "at most 128 printable characters, not beginning with sanitized:, refused: or undecodable:",
            ));
        }
        if !request_id.is_empty() {
            call.request_id = request_id.to_string();
        }
        Ok(Self {
            system: call.principal.uri.clone(),
            method: call.method,
            request_id: request_id.to_string(),
            request_sha256: state.digest.keyed(&request.encode_to_vec()),
        })
    }

    /// The outcome of an earlier call with the same request id, to be
    /// re-rendered in the caller's current view (see [`Outcome`]); `None` for
    /// a first call or no request id. ABORTED REQUEST_ID_REUSED when the id
    /// named a different request. A response stored whole by an older
    /// version (`L`) is read as the outcome it names.
    pub async fn replay<L: Message + Default>(
        &self,
        state: &AppState,
        legacy: impl FnOnce(L) -> Outcome,
    ) -> Result<Option<Outcome>> {
        if self.request_id.is_empty() {
            return Ok(None);
        }
        let Some(stored) = state
            .store
            .lookup_request(&self.system, &self.request_id)
            .await?
        else {
            return Ok(None);
        };
        if stored.method != self.method
            || !state
                .digest
                .same(&stored.request_sha256, &self.request_sha256)
        {
            return Err(Error::Aborted {
                reason: Reason::RequestIdReused,
                message: "request_id was already used for a different request".into(),
            });
        }
        Ok(Some(match stored.response.split_first() {
            Some((&OUTCOME_TAG, rest)) => Outcome::decode(rest).map_err(Error::internal)?,
            _ => legacy(L::decode(stored.response.as_slice()).map_err(Error::internal)?),
        }))
    }

    /// The cache row that stores `outcome` with the write, or none when the
    /// call carried no request id.
    pub fn remember(&self, outcome: &Outcome) -> Option<Idempotency> {
        (!self.request_id.is_empty()).then(|| Idempotency {
            system: self.system.clone(),
            request_id: self.request_id.clone(),
            method: self.method.to_string(),
            request_sha256: self.request_sha256.clone(),
            response: outcome.to_stored(),
        })
    }
}

/// Marks a stored [`Outcome`]. No protobuf message starts with a zero byte
/// (field numbers start at 1), so a response stored whole by an older version
/// is told apart from it.
const OUTCOME_TAG: u8 = 0;

/// What the `request_id` replay cache keeps of a create-like call: per item
/// the resource it wrote (or found), with its revision and one flag (created
/// for cadres, stale for records), or the item's refusal. Never content: a
/// replay reads the resources again and renders them through the same view
/// path as a read, so the cache holds nothing a view leaves out (a
/// petition's informant above all), and a replay answers in the caller's
/// current view.
#[derive(Clone, PartialEq, Message)]
pub struct Outcome {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<OutcomeItem>,
}

/// One item of an [`Outcome`].
#[derive(Clone, PartialEq, Message)]
pub struct OutcomeItem {
    /// Resource name of what the item wrote or found; empty on a refusal.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The revision the original call answered with.
    #[prost(int64, tag = "2")]
    pub revision: i64,
    /// Created (cadres) or stale (records).
    #[prost(bool, tag = "3")]
    pub flag: bool,
    /// The refusal as the original call answered it: the server's own texts
    /// (reason, message, field paths), never input values.
    #[prost(message, optional, tag = "4")]
    pub error: Option<crate::proto::ItemError>,
}

impl Outcome {
    /// The outcome of a call that wrote one resource.
    pub fn one(name: impl Into<String>, revision: i64) -> Self {
        Outcome {
            items: vec![OutcomeItem {
                name: name.into(),
                revision,
                ..Default::default()
            }],
        }
    }

    /// The outcome of a batch from its items: (resource name when the item
    /// succeeded, flag, refusal).
    pub fn from_items(
        items: impl IntoIterator<Item = (Option<String>, bool, Option<crate::proto::ItemError>)>,
    ) -> Self {
        Outcome {
            items: items
                .into_iter()
                .map(|(name, flag, error)| OutcomeItem {
                    name: name.unwrap_or_default(),
                    revision: 0,
                    flag,
                    error,
                })
                .collect(),
        }
    }

    /// The bytes the replay cache stores.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut out = vec![OUTCOME_TAG];
        out.extend(self.encode_to_vec());
        out
    }

    /// The only item's resource name, for calls that write one resource.
    pub fn single(&self) -> Result<&str> {
        match self.items.as_slice() {
            [item] if item.error.is_none() => Ok(&item.name),
            _ => Err(Error::internal(anyhow::anyhow!(
                "stored outcome is not one resource"
            ))),
        }
    }
}
