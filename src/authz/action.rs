//! `Action`: every action a policy can be asked about, by its Cedar action id.

use std::fmt;

/// Every action a policy can be asked about; the names are the Cedar action ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    WhoAmI,
    AllowedMethods,
    CreateCadre,
    UpdateCadre,
    GetCadre,
    ListCadres,
    LookupCadre,
    ReadFull,
    ReadSummary,
    ListAccessEvents,
    ReadAllAccessEvents,
    GetCheckpoint,
    VerifyAccessLog,
    SubmitRecord,
    RetractRecord,
    GetRecord,
    ListRecords,
    ReadInformant,
    ReadChanges,
    RequestOpinion,
    ReadOpinions,
    DraftOpinion,
    ReplyOpinion,
    ReadDossier,
    ReadDeviation,
    ListAuditCandidates,
    ReadReadiness,
}

impl Action {
    pub const ALL: [Action; 27] = [
        Action::WhoAmI,
        Action::AllowedMethods,
        Action::CreateCadre,
        Action::UpdateCadre,
        Action::GetCadre,
        Action::ListCadres,
        Action::LookupCadre,
        Action::ReadFull,
        Action::ReadSummary,
        Action::ListAccessEvents,
        Action::ReadAllAccessEvents,
        Action::GetCheckpoint,
        Action::VerifyAccessLog,
        Action::SubmitRecord,
        Action::RetractRecord,
        Action::GetRecord,
        Action::ListRecords,
        Action::ReadInformant,
        Action::ReadChanges,
        Action::RequestOpinion,
        Action::ReadOpinions,
        Action::DraftOpinion,
        Action::ReplyOpinion,
        Action::ReadDossier,
        Action::ReadDeviation,
        Action::ListAuditCandidates,
        Action::ReadReadiness,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::WhoAmI => "WhoAmI",
            Action::AllowedMethods => "AllowedMethods",
            Action::CreateCadre => "CreateCadre",
            Action::UpdateCadre => "UpdateCadre",
            Action::GetCadre => "GetCadre",
            Action::ListCadres => "ListCadres",
            Action::LookupCadre => "LookupCadre",
            Action::ReadFull => "ReadFull",
            Action::ReadSummary => "ReadSummary",
            Action::ListAccessEvents => "ListAccessEvents",
            Action::ReadAllAccessEvents => "ReadAllAccessEvents",
            Action::GetCheckpoint => "GetCheckpoint",
            Action::VerifyAccessLog => "VerifyAccessLog",
            Action::SubmitRecord => "SubmitRecord",
            Action::RetractRecord => "RetractRecord",
            Action::GetRecord => "GetRecord",
            Action::ListRecords => "ListRecords",
            Action::ReadInformant => "ReadInformant",
            Action::ReadChanges => "ReadChanges",
            Action::RequestOpinion => "RequestOpinion",
            Action::ReadOpinions => "ReadOpinions",
            Action::DraftOpinion => "DraftOpinion",
            Action::ReplyOpinion => "ReplyOpinion",
            Action::ReadDossier => "ReadDossier",
            Action::ReadDeviation => "ReadDeviation",
            Action::ListAuditCandidates => "ListAuditCandidates",
            Action::ReadReadiness => "ReadReadiness",
        }
    }

    /// Position in `ALL`, so per-action data can live in a plain array.
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
