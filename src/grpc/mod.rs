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

/// The call `request` starts: the principal the identity layer attached, the
/// officer from `x-cadrex-officer`, and `x-request-id` to name the call in
/// the log until the body carries a request id.
pub fn start<T>(request: &Request<T>, method: &'static str) -> Result<Call, Status> {
    let principal = identity::principal(request)?;
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let officer = identity::officer(request)?;
    Ok(Call::new(principal, officer, method, request_id))
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
