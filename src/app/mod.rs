//! Use cases between the wire and the store: validation, authorization, decisions, idempotent replay, and rendering each caller's view. No gRPC transport types live here.

use std::sync::{Arc, Mutex};

use prost::Message;

use crate::access_log::{AccessLog, LogSigner};
use crate::authz::{Action, Authorizer, Decision, Resource};
use crate::config::Config;
use crate::domain::chain::LogEntry;
use crate::domain::states;
use crate::error::{Error, Result};
use crate::identity::Principal;
use crate::store::Store;
use crate::tls::TlsState;

pub mod access_log;
pub mod cadres;
pub mod dossier;
pub mod feed;
pub mod methods;
pub mod opinions;
mod paging;
pub mod records;
mod replay;
pub mod system;
pub mod text;
pub mod unit_heads;

pub use paging::{cursor, item_error, page_size, page_token};
pub use replay::{Outcome, OutcomeItem, RequestKey};

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
    /// Keys every digest stored over data that may include an informant (DESIGN §2).
    pub digest: crate::digest::DigestKey,
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
    /// A `validate_only` call: an allowed answer is logged as VALIDATED.
    pub validated: bool,
}

impl Call {
    /// A call by `principal`, acting for `officer`, of `method`; `request_id`
    /// names it in the log until the body carries one of its own. The wire
    /// layer reads all three from the verified connection and metadata.
    pub fn new(
        principal: Principal,
        officer: String,
        method: &'static str,
        request_id: String,
    ) -> Self {
        Self {
            principal,
            officer,
            method,
            request_id,
            resources: Vec::new(),
            purpose: String::new(),
            decision: None,
            policy_ids: Vec::new(),
            logged: false,
            validated: false,
        }
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

    /// Asks the authorizer with the facts of the call's context (see
    /// [`crate::authz::Facts`]); an allow is remembered for the log row.
    pub fn authorize_with(
        &mut self,
        authz: &Authorizer,
        action: Action,
        resource: &Resource,
        facts: &crate::authz::Facts,
    ) -> Decision {
        let d = authz.authorize_with(&self.principal, action, resource, facts);
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

    /// A mark to [`Call::forget_policies_since`]: how many policy ids the
    /// call has recorded so far.
    pub fn policy_mark(&self) -> usize {
        self.policy_ids.len()
    }

    /// Forgets the policy ids recorded since `mark`. A batch item that is
    /// refused read nothing and wrote nothing, so the policies that decided it
    /// are not the call's: kept, they would tell a reader of the row (the
    /// caller's own discipline commission) a foreign cadre from a missing one.
    pub fn forget_policies_since(&mut self, mark: usize) {
        self.policy_ids.truncate(mark);
    }

    pub fn deny(&mut self, d: &Decision) {
        self.decision = Some(false);
        for id in &d.policy_ids {
            if !self.policy_ids.contains(id) {
                self.policy_ids.push(id.clone());
            }
        }
    }

    /// The access log's digest of an answer, always keyed (DESIGN §2, §3).
    /// A plain SHA-256 would let anyone who reads the row — or its chain hash,
    /// which covers it — test a guess at what the answer held: a reader of
    /// the store guessing an informant, and a discipline body reading another
    /// body's rows about its cadres guessing what was shown to that body but
    /// not to it (a deviation from the draft and its reason, told only to the
    /// requester and to discipline at or above the replier; a full evaluation).
    /// The exchange, holding the key, still matches an answer a caller shows.
    pub fn response_digest(&self, state: &AppState, encoded: &[u8]) -> String {
        state.digest.keyed(encoded)
    }

    /// Writes the row of a call refused with `error` before its use case ran,
    /// and gives back what to answer: `error`, or the log's own failure when
    /// the row could not be made durable.
    pub async fn refuse(self, state: &AppState, error: Error) -> Error {
        match self.finish::<()>(state, Err(error)).await {
            Err(e) => e,
            Ok(()) => Error::internal(anyhow::anyhow!("a refused call finished without error")),
        }
    }

    /// The log row for this call with the given outcome.
    pub fn entry(&self, status_code: i32, response_sha256: String) -> LogEntry {
        let decision = match self.decision {
            Some(true) if self.validated && status_code == 0 => states::Decision::Validated,
            Some(true) => states::Decision::Allow,
            Some(false) => states::Decision::Deny,
            // Refused before any policy was asked (bad input, unknown cadre).
            None if status_code == 0 => states::Decision::Allow,
            None => states::Decision::Deny,
        };
        LogEntry {
            principal: self.principal.uri.clone(),
            fingerprint: self.principal.fingerprint.clone(),
            officer: self.officer.clone(),
            method: self.method.to_string(),
            resources: self.resources.clone(),
            purpose: self.purpose.clone(),
            decision: decision.as_str().to_string(),
            policy_ids: self.policy_ids.clone(),
            request_id: self.request_id.clone(),
            status_code,
            response_sha256,
        }
    }

    /// Writes the log row and gives back what may be answered. An answer may
    /// leave only once its row is durable; if the log cannot be written the
    /// call fails rather than disclose anything unlogged.
    pub async fn finish<R: Message>(self, state: &AppState, result: Result<R>) -> Result<R> {
        // Only validated values enter the log: a value the store could refuse
        // (NUL, over-long) fails this call at validation, with its row written
        // sanitized, before it could fail the other calls of its batch.
        let result = match result {
            Ok(resp) if !self.logged => {
                match crate::access_log::sanitize(&self.entry(0, String::new()), &state.digest) {
                    Some((_, fields)) => Err(refused_fields(&fields)),
                    None => Ok(resp),
                }
            }
            other => other,
        };
        match result {
            Ok(resp) if self.logged => Ok(resp),
            Ok(resp) => {
                let digest = self.response_digest(state, &resp.encode_to_vec());
                state.log.append(self.entry(0, digest)).await?;
                Ok(resp)
            }
            Err(e) => {
                let mut call = self;
                let mut e = e;
                if let Some((clean, fields)) = crate::access_log::sanitize(
                    &call.entry(e.code() as i32, String::new()),
                    &state.digest,
                ) {
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
                Err(e)
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
                        crate::access_log::MAX_FIELD_BYTES
                    ),
                )
            })
            .collect(),
    }
}
