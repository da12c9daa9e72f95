//! The gRPC surface: one thin service per proto service (wire to use case and back), the method table, and the start and finish of every call.

use prost::Message;
use tonic::{Request, Response, Status};

use crate::app::{AppState, Call};
use crate::authz::Action;
use crate::identity;

pub mod access_log_service;
pub mod cadres;
pub mod changes;
pub mod dossier;
pub mod opinions;
pub mod records;
pub mod refused;
pub mod system;

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
    /// The RPC touches cadre data, so every call of it appends one access-log
    /// row (DESIGN §3) — its handler starts with [`start`], and a call refused
    /// before the handler runs gets its row from [`refused`]. Only `WhoAmI`
    /// and `AllowedMethods`, which read nothing but the caller's own
    /// certificate and the policies, log none.
    pub logged: bool,
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
        logged: false,
    },
    MethodSpec {
        path: M_ALLOWED_METHODS,
        action: Action::AllowedMethods,
        target: Target::Exchange,
        logged: false,
    },
    MethodSpec {
        path: M_CREATE_CADRE,
        action: Action::CreateCadre,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_GET_CADRE,
        action: Action::GetCadre,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_UPDATE_CADRE,
        action: Action::UpdateCadre,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_LIST_CADRES,
        action: Action::ListCadres,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_LOOKUP_CADRE,
        action: Action::LookupCadre,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_BATCH_CREATE_CADRES,
        action: Action::CreateCadre,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_SUBMIT_RECORD,
        action: Action::SubmitRecord,
        target: Target::Record,
        logged: true,
    },
    MethodSpec {
        path: M_BATCH_SUBMIT_RECORDS,
        action: Action::SubmitRecord,
        target: Target::Record,
        logged: true,
    },
    MethodSpec {
        path: M_GET_RECORD,
        action: Action::GetRecord,
        target: Target::Record,
        logged: true,
    },
    MethodSpec {
        path: M_LIST_RECORDS,
        action: Action::ListRecords,
        target: Target::Record,
        logged: true,
    },
    MethodSpec {
        path: M_RETRACT_RECORD,
        action: Action::RetractRecord,
        target: Target::Record,
        logged: true,
    },
    MethodSpec {
        path: M_LIST_CHANGES,
        action: Action::ReadChanges,
        target: Target::Exchange,
        logged: true,
    },
    MethodSpec {
        path: M_WATCH_CHANGES,
        action: Action::ReadChanges,
        target: Target::Exchange,
        logged: true,
    },
    MethodSpec {
        path: M_CREATE_OPINION_REQUEST,
        action: Action::RequestOpinion,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_GET_OPINION_REQUEST,
        action: Action::ReadOpinions,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_LIST_OPINION_REQUESTS,
        action: Action::ReadOpinions,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_WITHDRAW_OPINION_REQUEST,
        action: Action::RequestOpinion,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_DRAFT_OPINION,
        action: Action::DraftOpinion,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_REPLY_OPINION,
        action: Action::ReplyOpinion,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_GET_CADRE_DOSSIER,
        action: Action::ReadDossier,
        target: Target::Cadre,
        logged: true,
    },
    MethodSpec {
        path: M_LIST_ACCESS_EVENTS,
        action: Action::ListAccessEvents,
        target: Target::AccessLog,
        logged: true,
    },
    MethodSpec {
        path: M_GET_CHECKPOINT,
        action: Action::GetCheckpoint,
        target: Target::AccessLog,
        logged: true,
    },
    MethodSpec {
        path: M_VERIFY_ACCESS_LOG,
        action: Action::VerifyAccessLog,
        target: Target::AccessLog,
        logged: true,
    },
];

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
    let principal = identity::principal(request)?;
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128)
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
