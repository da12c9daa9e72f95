//! Shared plumbing of the gRPC services: application state, the per-call context that authorizes and writes the access-log row, and the method catalogue.

use std::sync::{Arc, Mutex};

use prost::Message;
use tonic::{Request, Response, Status};

use crate::access_log::{self, AccessLog, LogSigner};
use crate::authz::{Action, Authorizer, Decision, Resource};
use crate::config::Config;
use crate::domain::chain::LogEntry;
use crate::error::{Error, Result};
use crate::identity::{self, Principal};
use crate::store::Store;
use crate::tls::TlsState;

pub mod access_log_service;
pub mod cadres;
pub mod changes;
pub mod dossier;
pub mod opinions;
pub mod records;
pub mod system;

/// Everything a handler needs, shared by all services.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub authz: Authorizer,
    pub log: AccessLog,
    pub signer: Arc<LogSigner>,
    pub tls: Arc<TlsState>,
    /// Informant keys (检举人信息 is sealed under the first).
    pub informant: crate::informant::KeyRing,
    /// The store's epoch, carried in every cursor.
    pub epoch: String,
    /// Rule parameters for drafts and dossier flags.
    pub rules: crate::domain::rules::RuleParams,
    /// Working-day calendar for due dates.
    pub calendar: crate::domain::calendar::Calendar,
    /// Newest checkpoint `VerifyAccessLog` confirmed, where the next run starts.
    pub verified: Mutex<Option<(i64, String)>>,
    /// Turns true when the server begins shutting down, so that long-lived
    /// watch streams end and graceful shutdown can finish.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// What an RPC acts on, for `AllowedMethods`.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Exchange,
    Cadre,
    Record,
    AccessLog,
}

/// One RPC and the action that authorizes it.
pub struct MethodSpec {
    pub path: &'static str,
    pub action: Action,
    pub target: Target,
}

pub const M_WHO_AM_I: &str = "/cadrex.v1.SystemService/WhoAmI";
pub const M_ALLOWED_METHODS: &str = "/cadrex.v1.SystemService/AllowedMethods";
pub const M_CREATE_CADRE: &str = "/cadrex.v1.CadreService/CreateCadre";
pub const M_GET_CADRE: &str = "/cadrex.v1.CadreService/GetCadre";
pub const M_UPDATE_CADRE: &str = "/cadrex.v1.CadreService/UpdateCadre";
pub const M_LIST_CADRES: &str = "/cadrex.v1.CadreService/ListCadres";
pub const M_LOOKUP_CADRE: &str = "/cadrex.v1.CadreService/LookupCadre";
pub const M_BATCH_CREATE_CADRES: &str = "/cadrex.v1.CadreService/BatchCreateCadres";
pub const M_SUBMIT_RECORD: &str = "/cadrex.v1.RecordService/SubmitRecord";
pub const M_BATCH_SUBMIT_RECORDS: &str = "/cadrex.v1.RecordService/BatchSubmitRecords";
pub const M_GET_RECORD: &str = "/cadrex.v1.RecordService/GetRecord";
pub const M_LIST_RECORDS: &str = "/cadrex.v1.RecordService/ListRecords";
pub const M_RETRACT_RECORD: &str = "/cadrex.v1.RecordService/RetractRecord";
pub const M_LIST_CHANGES: &str = "/cadrex.v1.ChangeFeedService/ListChanges";
pub const M_WATCH_CHANGES: &str = "/cadrex.v1.ChangeFeedService/WatchChanges";
pub const M_CREATE_OPINION_REQUEST: &str = "/cadrex.v1.OpinionService/CreateOpinionRequest";
pub const M_GET_OPINION_REQUEST: &str = "/cadrex.v1.OpinionService/GetOpinionRequest";
pub const M_LIST_OPINION_REQUESTS: &str = "/cadrex.v1.OpinionService/ListOpinionRequests";
pub const M_WITHDRAW_OPINION_REQUEST: &str = "/cadrex.v1.OpinionService/WithdrawOpinionRequest";
pub const M_DRAFT_OPINION: &str = "/cadrex.v1.OpinionService/DraftOpinion";
pub const M_REPLY_OPINION: &str = "/cadrex.v1.OpinionService/ReplyOpinion";
pub const M_GET_CADRE_DOSSIER: &str = "/cadrex.v1.DossierService/GetCadreDossier";
pub const M_LIST_ACCESS_EVENTS: &str = "/cadrex.v1.AccessLogService/ListAccessEvents";
pub const M_GET_CHECKPOINT: &str = "/cadrex.v1.AccessLogService/GetCheckpoint";
pub const M_VERIFY_ACCESS_LOG: &str = "/cadrex.v1.AccessLogService/VerifyAccessLog";

/// Every cadrex RPC, in the order `AllowedMethods` reports them.
pub const METHODS: &[MethodSpec] = &[
    MethodSpec {
        path: M_WHO_AM_I,
        action: Action::WhoAmI,
        target: Target::Exchange,
    },
    MethodSpec {
        path: M_ALLOWED_METHODS,
        action: Action::AllowedMethods,
        target: Target::Exchange,
    },
    MethodSpec {
        path: M_CREATE_CADRE,
        action: Action::CreateCadre,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_GET_CADRE,
        action: Action::GetCadre,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_UPDATE_CADRE,
        action: Action::UpdateCadre,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_LIST_CADRES,
        action: Action::ListCadres,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_LOOKUP_CADRE,
        action: Action::LookupCadre,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_BATCH_CREATE_CADRES,
        action: Action::CreateCadre,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_SUBMIT_RECORD,
        action: Action::SubmitRecord,
        target: Target::Record,
    },
    MethodSpec {
        path: M_BATCH_SUBMIT_RECORDS,
        action: Action::SubmitRecord,
        target: Target::Record,
    },
    MethodSpec {
        path: M_GET_RECORD,
        action: Action::GetRecord,
        target: Target::Record,
    },
    MethodSpec {
        path: M_LIST_RECORDS,
        action: Action::ListRecords,
        target: Target::Record,
    },
    MethodSpec {
        path: M_RETRACT_RECORD,
        action: Action::RetractRecord,
        target: Target::Record,
    },
    MethodSpec {
        path: M_LIST_CHANGES,
        action: Action::ReadChanges,
        target: Target::Exchange,
    },
    MethodSpec {
        path: M_WATCH_CHANGES,
        action: Action::ReadChanges,
        target: Target::Exchange,
    },
    MethodSpec {
        path: M_CREATE_OPINION_REQUEST,
        action: Action::RequestOpinion,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_GET_OPINION_REQUEST,
        action: Action::ReadOpinions,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_LIST_OPINION_REQUESTS,
        action: Action::ReadOpinions,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_WITHDRAW_OPINION_REQUEST,
        action: Action::RequestOpinion,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_DRAFT_OPINION,
        action: Action::DraftOpinion,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_REPLY_OPINION,
        action: Action::ReplyOpinion,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_GET_CADRE_DOSSIER,
        action: Action::ReadDossier,
        target: Target::Cadre,
    },
    MethodSpec {
        path: M_LIST_ACCESS_EVENTS,
        action: Action::ListAccessEvents,
        target: Target::AccessLog,
    },
    MethodSpec {
        path: M_GET_CHECKPOINT,
        action: Action::GetCheckpoint,
        target: Target::AccessLog,
    },
    MethodSpec {
        path: M_VERIFY_ACCESS_LOG,
        action: Action::VerifyAccessLog,
        target: Target::AccessLog,
    },
];

/// One call in progress: who is calling, what it touched, how it was decided.
/// `finish` writes the access-log row (unless a write already wrote it inside
/// its own transaction) before the response leaves.
pub struct Call {
    pub principal: Principal,
    pub officer: String,
    pub method: &'static str,
    pub request_id: String,
    pub resources: Vec<String>,
    pub purpose: String,
    pub(crate) decision: Option<bool>,
    policy_ids: Vec<String>,
    /// Set by a write whose row went into its own transaction.
    pub logged: bool,
}

impl Call {
    /// Reads the principal the identity layer attached; `x-request-id` metadata
    /// names the call in the log unless the body carries a request id.
    pub fn start<T>(request: &Request<T>, method: &'static str) -> Result<Self, Status> {
        let principal = identity::principal(request)?;
        let request_id = request
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Ok(Self {
            principal,
            officer: identity::officer(request)?,
            method,
            request_id,
            resources: Vec::new(),
            purpose: String::new(),
            decision: None,
            policy_ids: Vec::new(),
            logged: false,
        })
    }

    /// Asks the authorizer; an allow is remembered for the log row. A deny is
    /// recorded only through `deny`, because trying view levels from the top
    /// down denies on purpose.
    pub fn authorize(
        &mut self,
        authz: &Authorizer,
        action: Action,
        resource: &Resource,
    ) -> Decision {
        let d = authz.authorize(&self.principal, action, resource);
        if d.allowed {
            self.allow(&d);
        }
        d
    }

    /// Requires `action`; records the deny and returns `refusal` otherwise.
    pub fn require(
        &mut self,
        authz: &Authorizer,
        action: Action,
        resource: &Resource,
        refusal: impl FnOnce() -> Error,
    ) -> Result<()> {
        let d = self.authorize(authz, action, resource);
        if d.allowed {
            Ok(())
        } else {
            self.deny(&d);
            Err(refusal())
        }
    }

    fn allow(&mut self, d: &Decision) {
        if self.decision.is_none() {
            self.decision = Some(true);
        }
        for id in &d.policy_ids {
            if !self.policy_ids.contains(id) {
                self.policy_ids.push(id.clone());
            }
        }
    }

    pub fn deny(&mut self, d: &Decision) {
        self.decision = Some(false);
        for id in &d.policy_ids {
            if !self.policy_ids.contains(id) {
                self.policy_ids.push(id.clone());
            }
        }
    }

    /// The log row for this call with the given outcome.
    pub fn entry(&self, status_code: i32, response_sha256: String) -> LogEntry {
        let decision = match self.decision {
            Some(true) => "ALLOW",
            Some(false) => "DENY",
            // Refused before any policy was asked (bad input, unknown cadre).
            None if status_code == 0 => "ALLOW",
            None => "DENY",
        };
        LogEntry {
            principal: self.principal.uri.clone(),
            fingerprint: self.principal.fingerprint.clone(),
            officer: self.officer.clone(),
            method: self.method.to_string(),
            resources: self.resources.clone(),
            purpose: self.purpose.clone(),
            decision: decision.to_string(),
            policy_ids: self.policy_ids.clone(),
            request_id: self.request_id.clone(),
            status_code,
            response_sha256,
        }
    }

    /// Writes the log row and turns the result into a response. A response is
    /// sent only once its row is durable; if the log cannot be written the call
    /// fails rather than disclose anything unlogged.
    pub async fn finish<R: Message>(
        self,
        state: &AppState,
        result: Result<R>,
    ) -> Result<Response<R>, Status> {
        // Only validated values enter the log: a value the store could refuse
        // (NUL, over-long) fails this call at validation, with its row written
        // sanitized, before it could fail the other calls of its batch.
        let result = match result {
            Ok(resp) if !self.logged => match access_log::sanitize(&self.entry(0, String::new())) {
                Some((_, fields)) => Err(refused_fields(&fields)),
                None => Ok(resp),
            },
            other => other,
        };
        match result {
            Ok(resp) if self.logged => Ok(Response::new(resp)),
            Ok(resp) => {
                let digest = access_log::digest(&resp.encode_to_vec());
                state.log.append(self.entry(0, digest)).await?;
                Ok(Response::new(resp))
            }
            Err(e) => {
                let mut call = self;
                let mut e = e;
                if let Some((clean, fields)) =
                    access_log::sanitize(&call.entry(e.code() as i32, String::new()))
                {
                    e = refused_fields(&fields);
                    call.resources = clean.resources;
                    call.officer = clean.officer;
                    call.purpose = clean.purpose;
                    call.request_id = clean.request_id;
                    call.policy_ids = clean.policy_ids;
                }
                if matches!(
                    e,
                    Error::CadreNotAccessible | Error::PermissionDenied { .. }
                ) && call.decision != Some(false)
                {
                    call.decision = Some(false);
                }
                state
                    .log
                    .append(call.entry(e.code() as i32, String::new()))
                    .await?;
                Err(e.into())
            }
        }
    }
}

/// INVALID_ARGUMENT naming the log fields that held a value the log refuses.
fn refused_fields(fields: &[&'static str]) -> Error {
    Error::InvalidArgument {
        violations: fields
            .iter()
            .map(|f| {
                crate::error::FieldViolation::new(
                    *f,
                    format!(
                        "must not contain NUL or exceed {} bytes",
                        access_log::MAX_FIELD_BYTES
                    ),
                )
            })
            .collect(),
    }
}

/// Microseconds to a protobuf timestamp.
pub fn timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// A protobuf timestamp to microseconds.
pub fn micros(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(ts.nanos) / 1000)
}

/// Opaque page tokens: a tagged cursor, base64url so clients do not parse them.
pub mod page_token {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use crate::error::{Error, Result};

    pub fn encode(tag: &str, cursor: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{tag}:{cursor}"))
    }

    /// The cursor inside `token`, `None` for an empty token.
    pub fn decode(tag: &str, token: &str) -> Result<Option<String>> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || Error::invalid("page_token", "not a page token returned by this method");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let s = String::from_utf8(raw).map_err(|_| bad())?;
        let cursor = s
            .strip_prefix(tag)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or_else(bad)?;
        Ok(Some(cursor.to_string()))
    }
}

/// Page size within [1, max], `default` for 0; negative is invalid.
pub fn page_size(requested: i32, default: i64, max: i64) -> Result<i64> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        0 => Ok(default),
        n => Ok(i64::from(n).min(max)),
    }
}

/// A batch item's failure, carrying what its own status would have carried.
pub fn item_error(e: &Error) -> crate::proto::ItemError {
    e.log_fault();
    let field_violations = match e {
        Error::InvalidArgument { violations } => violations
            .iter()
            .map(|v| crate::proto::FieldViolation {
                field: v.field.clone(),
                description: v.description.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    crate::proto::ItemError {
        code: e.code() as i32,
        reason: e.reason().to_string(),
        message: e.public_message(),
        field_violations,
    }
}

/// Hex SHA-256 of a request message, to tell a replay from a reused request id.
pub fn request_digest<M: Message>(m: &M) -> String {
    access_log::digest(&m.encode_to_vec())
}

/// Checks an AIP-155 request id: at most 128 printable characters.
pub fn validate_request_id(id: &str, field: &str) -> Result<()> {
    if id.len() > 128 || crate::domain::text_fault(id, crate::domain::Text::Line).is_some() {
        return Err(Error::invalid(field, "at most 128 printable characters"));
    }
    Ok(())
}

/// The outcome of an earlier call with the same request id, or ABORTED
/// REQUEST_ID_REUSED when that id named a different request. The caller
/// re-renders it in the caller's current view (see [`Outcome`]). A response
/// stored whole by an older version (`L`) is read as the outcome it names.
pub async fn replay<L: Message + Default>(
    state: &AppState,
    call: &Call,
    request_id: &str,
    request_sha: &str,
    legacy: impl FnOnce(L) -> Outcome,
) -> Result<Option<Outcome>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    let Some(stored) = state
        .store
        .lookup_request(&call.principal.uri, request_id)
        .await?
    else {
        return Ok(None);
    };
    if stored.method != call.method || stored.request_sha256 != request_sha {
        return Err(Error::Aborted {
            reason: "REQUEST_ID_REUSED",
            message: "request_id was already used for a different request".into(),
        });
    }
    Ok(Some(match stored.response.split_first() {
        Some((&OUTCOME_TAG, rest)) => Outcome::decode(rest).map_err(Error::internal)?,
        _ => legacy(L::decode(stored.response.as_slice()).map_err(Error::internal)?),
    }))
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

/// Opaque change-feed cursors: the store's epoch and a change seq, so a cursor
/// from another database (or from before a restore) is recognised as such.
pub mod cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(epoch: &str, seq: i64) -> String {
        URL_SAFE_NO_PAD.encode(format!("c1:{epoch}:{seq}"))
    }

    /// (epoch, seq), or `None` when the text is not a cursor.
    pub fn decode(cursor: &str) -> Option<(String, i64)> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let rest = s.strip_prefix("c1:")?;
        let (epoch, seq) = rest.rsplit_once(':')?;
        Some((epoch.to_string(), seq.parse().ok()?))
    }
}

pub use crate::domain::calendar::today;
