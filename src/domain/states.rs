//! Record and opinion-request states, outbox ops, change kinds and access-log decisions as enums whose `as_str` is the exact stored text.
//!
//! Both databases, the change feed and the access-log chain hold these as
//! text, so the text of each variant is part of the stored format: it never
//! changes, and a new variant needs no migration only because the columns
//! are plain text.

use std::fmt;

use crate::domain::records::Kind;
use crate::proto;

/// Implements `as_str`, `parse`, `ALL` and `Display` for a fieldless enum
/// from one table of variant ⇄ stored text, so the two directions cannot drift.
macro_rules! stored_text {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The exact text stored and logged.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }

            /// The variant stored as `s`; `None` for any other text.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Whether a record is in force. A retracted record stays stored (and
/// readable by its owner) with its retraction reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RecordState {
    #[default]
    Active,
    Retracted,
}

stored_text!(RecordState {
    Active => "ACTIVE",
    Retracted => "RETRACTED",
});

impl RecordState {
    /// The wire enum of this state.
    pub fn to_proto(self) -> proto::RecordState {
        match self {
            RecordState::Active => proto::RecordState::Active,
            RecordState::Retracted => proto::RecordState::Retracted,
        }
    }
}

/// Where an integrity-opinion request stands: open until every cadre has a
/// reply (then REPLIED) or the requester withdraws it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RequestState {
    #[default]
    Pending,
    Replied,
    Withdrawn,
}

stored_text!(RequestState {
    Pending => "PENDING",
    Replied => "REPLIED",
    Withdrawn => "WITHDRAWN",
});

impl RequestState {
    /// The wire enum of this state.
    pub fn to_proto(self) -> proto::OpinionRequestState {
        match self {
            RequestState::Pending => proto::OpinionRequestState::Pending,
            RequestState::Replied => proto::OpinionRequestState::Replied,
            RequestState::Withdrawn => proto::OpinionRequestState::Withdrawn,
        }
    }
}

/// What an outbox row says happened to its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeOp {
    /// Created or replaced: the feed carries the current state.
    Upsert,
    /// A record was retracted.
    Retract,
    /// The resource left the caller's view (its cadre moved); never stored,
    /// derived per caller from a move row when the feed is read (DESIGN §5).
    OutOfView,
}

stored_text!(ChangeOp {
    Upsert => "UPSERT",
    Retract => "RETRACT",
    OutOfView => "OUT_OF_VIEW",
});

impl ChangeOp {
    /// The wire enum of this op.
    pub fn to_proto(self) -> proto::ChangeOp {
        match self {
            ChangeOp::Upsert => proto::ChangeOp::Upsert,
            ChangeOp::Retract => proto::ChangeOp::Retract,
            ChangeOp::OutOfView => proto::ChangeOp::OutOfView,
        }
    }
}

/// What kind of resource an outbox row is about: a cadre, a record of one of
/// the record kinds, or an opinion request or reply. Its text is the
/// record kind's own text for records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Cadre,
    Record(Kind),
    OpinionRequest,
    OpinionReply,
}

impl ChangeKind {
    /// The exact text stored in the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Cadre => "CADRE",
            ChangeKind::Record(k) => k.as_str(),
            ChangeKind::OpinionRequest => "OPINION_REQUEST",
            ChangeKind::OpinionReply => "OPINION_REPLY",
        }
    }

    /// The kind stored as `s`; `None` for any other text (a kind written by
    /// a newer server on a shared database, which this one skips).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CADRE" => Some(ChangeKind::Cadre),
            "OPINION_REQUEST" => Some(ChangeKind::OpinionRequest),
            "OPINION_REPLY" => Some(ChangeKind::OpinionReply),
            _ => Kind::parse(s).map(ChangeKind::Record),
        }
    }

    /// The wire enum of this kind; `const` so that tools can build fixed lists from it.
    pub const fn to_proto(self) -> proto::ChangeKind {
        use proto::ChangeKind as C;
        match self {
            ChangeKind::Cadre => C::Cadre,
            ChangeKind::Record(Kind::Sanction) => C::Sanction,
            ChangeKind::Record(Kind::Admonishment) => C::Admonishment,
            ChangeKind::Record(Kind::Clue) => C::Clue,
            ChangeKind::Record(Kind::OrgHandling) => C::OrgHandling,
            ChangeKind::Record(Kind::PersonalMattersCheck) => C::PersonalMattersCheck,
            ChangeKind::Record(Kind::Evaluation) => C::Evaluation,
            ChangeKind::Record(Kind::AuditEngagement) => C::AuditEngagement,
            ChangeKind::Record(Kind::AuditFinding) => C::AuditFinding,
            ChangeKind::Record(Kind::Petition) => C::Petition,
            ChangeKind::Record(Kind::InspectionFinding) => C::InspectionFinding,
            ChangeKind::Record(Kind::ArchiveReview) => C::ArchiveReview,
            ChangeKind::OpinionRequest => C::OpinionRequest,
            ChangeKind::OpinionReply => C::OpinionReply,
        }
    }

    /// The kind a wire value names; `None` for UNSPECIFIED.
    pub fn from_proto(k: proto::ChangeKind) -> Option<Self> {
        use proto::ChangeKind as C;
        Some(match k {
            C::Cadre => ChangeKind::Cadre,
            C::Sanction => ChangeKind::Record(Kind::Sanction),
            C::Admonishment => ChangeKind::Record(Kind::Admonishment),
            C::Clue => ChangeKind::Record(Kind::Clue),
            C::OrgHandling => ChangeKind::Record(Kind::OrgHandling),
            C::PersonalMattersCheck => ChangeKind::Record(Kind::PersonalMattersCheck),
            C::Evaluation => ChangeKind::Record(Kind::Evaluation),
            C::AuditEngagement => ChangeKind::Record(Kind::AuditEngagement),
            C::AuditFinding => ChangeKind::Record(Kind::AuditFinding),
            C::Petition => ChangeKind::Record(Kind::Petition),
            C::InspectionFinding => ChangeKind::Record(Kind::InspectionFinding),
            C::ArchiveReview => ChangeKind::Record(Kind::ArchiveReview),
            C::OpinionRequest => ChangeKind::OpinionRequest,
            C::OpinionReply => ChangeKind::OpinionReply,
            C::Unspecified => return None,
        })
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An access-log row's decision. The chain hashes the row's decision as this
/// text (`domain::chain`), so the text is part of the chain encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    Deny,
    /// A `validate_only` call (AIP-163) that passed every check; nothing was stored.
    Validated,
}

stored_text!(Decision {
    Allow => "ALLOW",
    Deny => "DENY",
    Validated => "VALIDATED",
});

impl Decision {
    /// The wire enum of this decision.
    pub fn to_proto(self) -> proto::Decision {
        match self {
            Decision::Allow => proto::Decision::Allow,
            Decision::Deny => proto::Decision::Deny,
            Decision::Validated => proto::Decision::Validated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_texts_round_trip() {
        for s in RecordState::ALL {
            assert_eq!(RecordState::parse(s.as_str()), Some(*s));
        }
        for s in RequestState::ALL {
            assert_eq!(RequestState::parse(s.as_str()), Some(*s));
        }
        for o in ChangeOp::ALL {
            assert_eq!(ChangeOp::parse(o.as_str()), Some(*o));
        }
        for d in Decision::ALL {
            assert_eq!(Decision::parse(d.as_str()), Some(*d));
        }
        assert_eq!(RecordState::parse("active"), None, "the text is exact");
    }

    #[test]
    fn change_kinds_cover_the_wire_enum_and_the_record_kinds() {
        let mut texts = Vec::new();
        // Past the last wire value: every one before it is checked.
        for k in proto::ChangeKind::Unspecified as i32..=64 {
            let Ok(wire) = proto::ChangeKind::try_from(k) else {
                continue;
            };
            let Some(kind) = ChangeKind::from_proto(wire) else {
                assert_eq!(wire, proto::ChangeKind::Unspecified);
                continue;
            };
            assert_eq!(kind.to_proto(), wire);
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                kind.as_str(),
                wire.as_str_name().trim_start_matches("CHANGE_KIND_")
            );
            texts.push(kind.as_str());
        }
        for k in Kind::ALL {
            assert!(texts.contains(&k.as_str()), "{k:?}");
        }
        assert_eq!(ChangeKind::parse("INSPECTION"), None);
    }
}
