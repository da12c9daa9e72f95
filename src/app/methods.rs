//! The method table: every cadrex RPC by its path, the action that authorizes it, what it acts on, and whether it is logged — read by AllowedMethods, the wire and the refusal layer.

use crate::authz::Action;

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
    /// row (DESIGN §3) — its handler starts with `grpc::start`, and a call
    /// refused before the handler runs gets its row from `grpc::refused`. Only `WhoAmI`
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
pub const M_GET_VETTING_READINESS: &str = "/cadrex.v1.OpinionService/GetVettingReadiness";
pub const M_GET_CADRE_DOSSIER: &str = "/cadrex.v1.DossierService/GetCadreDossier";
pub const M_LIST_AUDIT_CANDIDATES: &str = "/cadrex.v1.DossierService/ListAuditCandidates";
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
        path: M_GET_VETTING_READINESS,
        action: Action::ReadReadiness,
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
        path: M_LIST_AUDIT_CANDIDATES,
        action: Action::ListAuditCandidates,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::METHODS;

    /// Every RPC the server serves (its descriptors, as reflection serves
    /// them) is in the table, once, and the table names no other: a method
    /// added to a proto cannot silently drop out of AllowedMethods, the
    /// access log or the refusal layer.
    #[test]
    fn the_table_holds_every_served_method_once() {
        let pool = prost_reflect::DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the served descriptors decode");
        let served: BTreeSet<String> = pool
            .services()
            .filter(|s| s.package_name() == "cadrex.v1")
            .flat_map(|s| {
                s.methods()
                    .map(|m| format!("/{}/{}", s.full_name(), m.name()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let table: Vec<&str> = METHODS.iter().map(|m| m.path).collect();
        let unique: BTreeSet<String> = table.iter().map(|p| p.to_string()).collect();
        assert_eq!(unique.len(), table.len(), "a method is in the table twice");
        assert!(served.len() > 20, "{served:?}");
        assert_eq!(served, unique);
    }
}
