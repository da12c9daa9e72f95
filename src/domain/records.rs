//! Record kinds, their owners, validation of submitted payloads, derived event dates, canonical digests and summary views.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::domain::agency::Agency;
use crate::domain::{DATE_RULE, Text, check_text, parse_date, rules};
use crate::error::FieldViolation;
use crate::proto::{self, record::Payload};

/// The record kinds of DESIGN §4 and §6a.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Sanction,
    Admonishment,
    Clue,
    OrgHandling,
    PersonalMattersCheck,
    Evaluation,
    AuditEngagement,
    AuditFinding,
    Petition,
    InspectionFinding,
    ArchiveReview,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Sanction,
        Kind::Admonishment,
        Kind::Clue,
        Kind::OrgHandling,
        Kind::PersonalMattersCheck,
        Kind::Evaluation,
        Kind::AuditEngagement,
        Kind::AuditFinding,
        Kind::Petition,
        Kind::InspectionFinding,
        Kind::ArchiveReview,
    ];

    /// The name stored, logged, authorized on and used in filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sanction => "SANCTION",
            Kind::Admonishment => "ADMONISHMENT",
            Kind::Clue => "CLUE",
            Kind::OrgHandling => "ORG_HANDLING",
            Kind::PersonalMattersCheck => "PERSONAL_MATTERS_CHECK",
            Kind::Evaluation => "EVALUATION",
            Kind::AuditEngagement => "AUDIT_ENGAGEMENT",
            Kind::AuditFinding => "AUDIT_FINDING",
            Kind::Petition => "PETITION",
            Kind::InspectionFinding => "INSPECTION_FINDING",
            Kind::ArchiveReview => "ARCHIVE_REVIEW",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The wire enum of this kind; `const` so that tools can build fixed lists from [`Kind::ALL`].
    pub const fn to_proto(self) -> proto::RecordKind {
        match self {
            Kind::Sanction => proto::RecordKind::Sanction,
            Kind::Admonishment => proto::RecordKind::Admonishment,
            Kind::Clue => proto::RecordKind::Clue,
            Kind::OrgHandling => proto::RecordKind::OrgHandling,
            Kind::PersonalMattersCheck => proto::RecordKind::PersonalMattersCheck,
            Kind::Evaluation => proto::RecordKind::Evaluation,
            Kind::AuditEngagement => proto::RecordKind::AuditEngagement,
            Kind::AuditFinding => proto::RecordKind::AuditFinding,
            Kind::Petition => proto::RecordKind::Petition,
            Kind::InspectionFinding => proto::RecordKind::InspectionFinding,
            Kind::ArchiveReview => proto::RecordKind::ArchiveReview,
        }
    }

    /// Agencies that are an authoritative source of this kind (informational;
    /// Cedar decides).
    pub fn owners(self) -> &'static [Agency] {
        match self {
            Kind::Sanction | Kind::Clue => &[Agency::Discipline],
            Kind::Admonishment => &[Agency::Discipline, Agency::Organization],
            Kind::OrgHandling
            | Kind::PersonalMattersCheck
            | Kind::Evaluation
            | Kind::ArchiveReview => &[Agency::Organization],
            Kind::AuditEngagement | Kind::AuditFinding => &[Agency::Audit],
            Kind::Petition => &[Agency::Petition],
            Kind::InspectionFinding => &[Agency::Inspection],
        }
    }

    /// The kind of a full payload; summary payloads are output only.
    pub fn of(payload: &Payload) -> Option<Kind> {
        Some(match payload {
            Payload::Sanction(_) => Kind::Sanction,
            Payload::Admonishment(_) => Kind::Admonishment,
            Payload::Clue(_) => Kind::Clue,
            Payload::OrgHandling(_) => Kind::OrgHandling,
            Payload::PersonalMattersCheck(_) => Kind::PersonalMattersCheck,
            Payload::Evaluation(_) => Kind::Evaluation,
            Payload::AuditEngagement(_) => Kind::AuditEngagement,
            Payload::AuditFinding(_) => Kind::AuditFinding,
            Payload::Petition(_) => Kind::Petition,
            Payload::InspectionFinding(_) => Kind::InspectionFinding,
            Payload::ArchiveReview(_) => Kind::ArchiveReview,
            Payload::SanctionSummary(_)
            | Payload::ClueSummary(_)
            | Payload::EvaluationSummary(_)
            | Payload::PetitionSummary(_)
            | Payload::AdmonishmentSummary(_) => return None,
        })
    }
}

/// Whether a classification may be stored: `Ok(true)` for INTERNAL and
/// WORK_SECRET, `Ok(false)` for the state-secret levels this system is not
/// certified for, `Err` when missing or unknown.
pub fn classification_accepted(c: i32) -> Result<bool, FieldViolation> {
    match proto::Classification::try_from(c) {
        Ok(proto::Classification::Internal | proto::Classification::WorkSecret) => Ok(true),
        Ok(
            proto::Classification::Secret
            | proto::Classification::Confidential
            | proto::Classification::TopSecret,
        ) => Ok(false),
        _ => Err(FieldViolation::new(
            "record.classification",
            "required: CLASSIFICATION_INTERNAL or CLASSIFICATION_WORK_SECRET",
        )),
    }
}

pub fn classification_name(c: i32) -> &'static str {
    match proto::Classification::try_from(c) {
        Ok(proto::Classification::WorkSecret) => "WORK_SECRET",
        _ => "INTERNAL",
    }
}

pub fn classification_from_name(s: &str) -> proto::Classification {
    match s {
        "WORK_SECRET" => proto::Classification::WorkSecret,
        _ => proto::Classification::Internal,
    }
}

struct Check<'a> {
    prefix: &'a str,
    out: Vec<FieldViolation>,
}

impl Check<'_> {
    fn fail(&mut self, field: &str, why: &str) {
        self.out
            .push(FieldViolation::new(format!("{}.{field}", self.prefix), why));
    }

    /// A required enum: known and not `*_UNSPECIFIED`.
    fn en<E: TryFrom<i32>>(&mut self, field: &str, v: i32) {
        if v == 0 || E::try_from(v).is_err() {
            self.fail(field, "required: a known value other than *_UNSPECIFIED");
        }
    }

    fn date(&mut self, field: &str, v: &str) -> Option<time::Date> {
        let d = parse_date(v);
        if d.is_none() {
            self.fail(field, DATE_RULE);
        }
        d
    }

    fn optional_date(&mut self, field: &str, v: &str) -> Option<time::Date> {
        if v.is_empty() {
            None
        } else {
            self.date(field, v)
        }
    }

    /// A single-line label.
    fn text(&mut self, field: &str, v: &str, max: usize, required: bool) {
        self.checked(field, v, max, required, Text::Line);
    }

    /// Long text, which may hold line breaks and tabs.
    fn long(&mut self, field: &str, v: &str, max: usize, required: bool) {
        self.checked(field, v, max, required, Text::Long);
    }

    /// A finding's rectification (audit or inspection): required, with its
    /// deadline and status.
    fn rectification(&mut self, r: Option<&proto::Rectification>) {
        match r {
            None => self.fail("rectification", "required"),
            Some(r) => {
                self.date("rectification.deadline", &r.deadline);
                self.en::<proto::RectificationStatus>("rectification.status", r.status);
                self.text("rectification.report_ref", &r.report_ref, 128, false);
            }
        }
    }

    fn checked(&mut self, field: &str, v: &str, max: usize, required: bool, kind: Text) {
        if let Some(fv) = check_text(field, v, max, required, kind) {
            self.fail(field, &fv.description);
        }
    }
}

/// Checks a full payload; field paths are `record.{kind}.{field}`.
pub fn validate_payload(payload: &Payload) -> Vec<FieldViolation> {
    use proto::*;
    let mut c = Check {
        prefix: "record",
        out: Vec::new(),
    };
    match payload {
        Payload::Sanction(s) => {
            c.prefix = "record.sanction";
            c.en::<SanctionTrack>("track", s.track);
            match SanctionTrack::try_from(s.track) {
                Ok(SanctionTrack::Party) => {
                    c.en::<PartySanctionType>("party_type", s.party_type);
                    if s.state_type != 0 {
                        c.fail("state_type", "must be unset on the party track");
                    }
                }
                Ok(SanctionTrack::State) => {
                    c.en::<StateSanctionType>("state_type", s.state_type);
                    if s.party_type != 0 {
                        c.fail("party_type", "must be unset on the state track");
                    }
                }
                _ => {}
            }
            let probation = s.track == SanctionTrack::Party as i32
                && s.party_type == PartySanctionType::Probation as i32;
            if probation && !(s.probation_years == 1 || s.probation_years == 2) {
                c.fail("probation_years", "留党察看 takes 1 or 2 years");
            } else if !probation && s.probation_years != 0 {
                c.fail("probation_years", "only 留党察看 has a probation period");
            }
            c.text("decision_number", &s.decision_number, 64, false);
            let decided = c.date("decision_date", &s.decision_date);
            let effective = c.date("effective_date", &s.effective_date);
            if let (Some(d), Some(e)) = (decided, effective)
                && e < d
            {
                c.fail("effective_date", "must not be before decision_date");
            }
            if !(1..=4).contains(&s.form_of_discipline) {
                c.fail("form_of_discipline", "四种形态: 1 to 4");
            }
        }
        Payload::Admonishment(a) => {
            c.prefix = "record.admonishment";
            c.en::<AdmonishmentType>("type", a.r#type);
            c.date("date", &a.date);
            c.text("issuer", &a.issuer, 128, false);
        }
        Payload::Clue(k) => {
            c.prefix = "record.clue";
            c.en::<ClueSource>("source", k.source);
            c.en::<ClueDisposal>("disposal", k.disposal);
            c.en::<ClueStatus>("status", k.status);
            c.long("conclusion", &k.conclusion, 2000, false);
            let received = c.date("received_date", &k.received_date);
            let due = c.optional_date("reply_due_date", &k.reply_due_date);
            if let (Some(r), Some(d)) = (received, due)
                && d <= r
            {
                c.fail("reply_due_date", "must follow received_date");
            }
            if !k.source_record.is_empty() && parse_record_name(&k.source_record).is_none() {
                c.fail(
                    "source_record",
                    "must be a record name cadres/{cadre}/records/{record}",
                );
            }
        }
        Payload::OrgHandling(o) => {
            c.prefix = "record.org_handling";
            c.en::<OrgHandlingType>("type", o.r#type);
            c.date("date", &o.date);
        }
        Payload::PersonalMattersCheck(p) => {
            c.prefix = "record.personal_matters_check";
            if !(1990..=2100).contains(&p.report_year) {
                c.fail("report_year", "must be a year between 1990 and 2100");
            }
            c.en::<PersonalMattersResult>("result", p.result);
            c.date("check_date", &p.check_date);
            c.long("handling", &p.handling, 2000, false);
        }
        Payload::Evaluation(e) => {
            c.prefix = "record.evaluation";
            if !(1990..=2100).contains(&e.year) {
                c.fail("year", "must be a year between 1990 and 2100");
            }
            c.en::<EvaluationKind>("kind", e.kind);
            c.en::<EvaluationGrade>("grade", e.grade);
        }
        Payload::AuditEngagement(a) => {
            c.prefix = "record.audit_engagement";
            c.en::<AuditEngagementType>("type", a.r#type);
            let start = c.date("period_start", &a.period_start);
            let end = c.date("period_end", &a.period_end);
            if let (Some(s), Some(e)) = (start, end)
                && e < s
            {
                c.fail("period_end", "must not be before period_start");
            }
            c.text("report_number", &a.report_number, 64, false);
            c.text("audited_post", &a.audited_post, 128, false);
            c.date("report_date", &a.report_date);
            if !a.audited_unit_credit_code.is_empty()
                && !crate::domain::ids::is_valid_credit_code(&a.audited_unit_credit_code)
            {
                c.fail(
                    "audited_unit_credit_code",
                    "a 统一社会信用代码 of 18 characters with a valid check character",
                );
            }
        }
        Payload::AuditFinding(f) => {
            c.prefix = "record.audit_finding";
            c.text(
                "engagement_source_record_id",
                &f.engagement_source_record_id,
                128,
                true,
            );
            c.en::<ProblemType>("problem_type", f.problem_type);
            if f.amount_fen < 0 {
                c.fail("amount_fen", "must not be negative");
            }
            c.long("characterisation", &f.characterisation, 2000, false);
            c.en::<Responsibility>("responsibility", f.responsibility);
            c.en::<Transfer>("transfer", f.transfer);
            c.rectification(f.rectification.as_ref());
            c.date("finding_date", &f.finding_date);
        }
        Payload::Petition(p) => {
            c.prefix = "record.petition";
            c.date("received_date", &p.received_date);
            c.en::<PetitionChannel>("channel", p.channel);
            c.en::<PetitionCategory>("category", p.category);
            c.en::<PetitionStatus>("status", p.status);
            c.text("forwarded_to", &p.forwarded_to, 128, false);
            c.long("summary", &p.summary, 4000, false);
            if let Some(i) = &p.informant {
                let given = !(i.name.is_empty()
                    && i.unit.is_empty()
                    && i.contact.is_empty()
                    && i.address.is_empty());
                if p.anonymous && given {
                    c.fail("informant", "an anonymous petition has no informant");
                }
                c.text("informant.name", &i.name, 64, false);
                c.text("informant.unit", &i.unit, 128, false);
                c.text("informant.contact", &i.contact, 64, false);
                c.text("informant.address", &i.address, 256, false);
            }
        }
        Payload::InspectionFinding(f) => {
            c.prefix = "record.inspection_finding";
            c.text("tour_round", &f.tour_round, 128, true);
            c.text("unit_name", &f.unit_name, 128, true);
            if !crate::domain::ids::is_valid_credit_code(&f.unit_credit_code) {
                c.fail(
                    "unit_credit_code",
                    "a 统一社会信用代码 of 18 characters with a valid check character",
                );
            }
            c.en::<InspectionCategory>("category", f.category);
            c.long("summary", &f.summary, 4000, true);
            match Transfer::try_from(f.transfer) {
                Ok(Transfer::None | Transfer::Discipline | Transfer::Organization) => {}
                _ => c.fail("transfer", "required: NONE, DISCIPLINE or ORGANIZATION"),
            }
            c.rectification(f.rectification.as_ref());
            c.date("finding_date", &f.finding_date);
        }
        Payload::ArchiveReview(a) => {
            c.prefix = "record.archive_review";
            if !a
                .opinion_request
                .strip_prefix("opinionRequests/")
                .is_some_and(is_resource_id)
            {
                c.fail("opinion_request", "must be opinionRequests/{request}");
            }
            c.date("review_date", &a.review_date);
            c.text("reviewer", &a.reviewer, 64, true);
            c.en::<ArchiveReviewResult>("result", a.result);
            let discrepancies = a.result == ArchiveReviewResult::Discrepancies as i32;
            c.long("note", &a.note, 2000, discrepancies);
        }
        Payload::SanctionSummary(_)
        | Payload::ClueSummary(_)
        | Payload::EvaluationSummary(_)
        | Payload::PetitionSummary(_)
        | Payload::AdmonishmentSummary(_) => {
            c.fail(
                "payload",
                "summary views are output only; submit the full kind",
            );
        }
    }
    c.out
}

/// The record's principal date, derived from its payload.
pub fn event_date(payload: &Payload) -> String {
    match payload {
        Payload::Sanction(s) => s.decision_date.clone(),
        Payload::Admonishment(a) => a.date.clone(),
        Payload::Clue(k) => k.received_date.clone(),
        Payload::OrgHandling(o) => o.date.clone(),
        Payload::PersonalMattersCheck(p) => p.check_date.clone(),
        Payload::Evaluation(e) => format!("{:04}-12-31", e.year),
        Payload::AuditEngagement(a) => a.report_date.clone(),
        Payload::AuditFinding(f) => f.finding_date.clone(),
        Payload::Petition(p) => p.received_date.clone(),
        Payload::InspectionFinding(f) => f.finding_date.clone(),
        Payload::ArchiveReview(a) => a.review_date.clone(),
        Payload::SanctionSummary(_)
        | Payload::ClueSummary(_)
        | Payload::EvaluationSummary(_)
        | Payload::PetitionSummary(_)
        | Payload::AdmonishmentSummary(_) => String::new(),
    }
}

/// The bytes a record's payload digest covers: the classification and the
/// encoded payload, informant included, as the submitter gave it — less what
/// the exchange itself sets or leaves out (an audit finding's `engagement`, an
/// empty informant block), so that the digest can be computed again from a
/// stored record when it is sent. prost encodes fields in tag order, so equal
/// content gives equal bytes.
pub fn digest_bytes(classification: &str, payload: &Payload) -> Vec<u8> {
    let mut payload = payload.clone();
    match &mut payload {
        Payload::AuditFinding(f) => f.engagement.clear(),
        Payload::Petition(p) if p.informant == Some(proto::Informant::default()) => {
            p.informant = None
        }
        _ => {}
    }
    let record = proto::Record {
        payload: Some(payload),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(classification.len() + 1 + record.encoded_len());
    out.extend_from_slice(classification.as_bytes());
    out.push(0);
    record.encode(&mut out).expect("a Vec grows as needed");
    out
}

/// Hex SHA-256 of [`digest_bytes`]: the payload digest as sent to a caller
/// who may read the whole payload. What is stored is keyed (DESIGN §2).
pub fn payload_sha256(classification: &str, payload: &Payload) -> String {
    hex::encode(Sha256::digest(digest_bytes(classification, payload)))
}

/// The summary view of a full payload, for kinds that have one.
pub fn summary(payload: &Payload) -> Option<Payload> {
    Some(match payload {
        Payload::Sanction(s) => Payload::SanctionSummary(proto::SanctionSummary {
            track: s.track,
            party_type: s.party_type,
            state_type: s.state_type,
            decision_date: s.decision_date.clone(),
            effective_date: s.effective_date.clone(),
        }),
        Payload::Admonishment(a) => Payload::AdmonishmentSummary(proto::AdmonishmentSummary {
            r#type: a.r#type,
            date: a.date.clone(),
        }),
        Payload::Clue(k) => Payload::ClueSummary(proto::ClueSummary {
            disposal: k.disposal,
            status: k.status,
        }),
        Payload::Evaluation(e) => Payload::EvaluationSummary(proto::EvaluationSummary {
            year: e.year,
            grade: e.grade,
        }),
        Payload::Petition(p) => Payload::PetitionSummary(proto::PetitionSummary {
            category: p.category,
            status: p.status,
            received_date: p.received_date.clone(),
            specific: p.specific,
        }),
        _ => return None,
    })
}

/// True when `s` can be the id segment of a resource name: 1–64 ASCII
/// letters, digits or `-`. Checked before any lookup so that arbitrary bytes
/// (NUL above all, which PostgreSQL refuses in text) never reach the store.
pub fn is_resource_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// (cadre id, record id) of `cadres/{cadre}/records/{record}`.
pub fn parse_record_name(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("cadres/")?;
    let (cadre, rest) = rest.split_once('/')?;
    let record = rest.strip_prefix("records/")?;
    let ok = is_resource_id;
    (ok(cadre) && ok(record) && cadre != "-").then(|| (cadre.to_string(), record.to_string()))
}

/// Whether a stored record — its encoded `Record` holding only the payload, and whether it is
/// active — is a matter on record (DESIGN §6). The store asks this of the version it replaces and
/// of the one it writes, since a write counts towards a reply's staleness when either is a matter
/// (a CONCEALED check corrected to CONSISTENT counts; a new CONSISTENT check does not).
pub fn stored_is_matter(payload: &[u8], active: bool) -> bool {
    let Ok(mut record) = proto::Record::decode(payload) else {
        return false;
    };
    if !active {
        record.state = proto::RecordState::Retracted as i32;
    }
    fact_of(&record).is_some_and(|f| f.is_matter())
}

/// The rules engine's view of a record, from what the caller was shown (full
/// or summary payload), so that nothing computed from it reveals more than the
/// caller may read. `None` for tombstones and kinds without a payload.
pub fn fact_of(record: &proto::Record) -> Option<rules::Fact> {
    use proto::*;
    use rules::Fact;
    let name = record.name.clone();
    let active = record.state != RecordState::Retracted as i32;
    let date = |s: &str| parse_date(s);
    let party = |t: i32| match PartySanctionType::try_from(t).ok()? {
        PartySanctionType::Warning => Some(rules::PartyType::Warning),
        PartySanctionType::SeriousWarning => Some(rules::PartyType::SeriousWarning),
        PartySanctionType::RemovalFromPartyPost => Some(rules::PartyType::RemovalFromPartyPost),
        PartySanctionType::Probation => Some(rules::PartyType::Probation),
        PartySanctionType::Expulsion => Some(rules::PartyType::Expulsion),
        PartySanctionType::Unspecified => None,
    };
    // The full view and the summary name the measure alike.
    let admonishment = |t: i32| match AdmonishmentType::try_from(t).ok()? {
        AdmonishmentType::TalkReminder => Some(rules::AdmonishmentKind::TalkReminder),
        AdmonishmentType::Criticism => Some(rules::AdmonishmentKind::Criticism),
        AdmonishmentType::OrderedSelfReview => Some(rules::AdmonishmentKind::OrderedSelfReview),
        AdmonishmentType::Admonition => Some(rules::AdmonishmentKind::Admonition),
        AdmonishmentType::Unspecified => None,
    };
    let state = |t: i32| match StateSanctionType::try_from(t).ok()? {
        StateSanctionType::Warning => Some(rules::StateType::Warning),
        StateSanctionType::Demerit => Some(rules::StateType::Demerit),
        StateSanctionType::MajorDemerit => Some(rules::StateType::MajorDemerit),
        StateSanctionType::Demotion => Some(rules::StateType::Demotion),
        StateSanctionType::DismissalFromPost => Some(rules::StateType::DismissalFromPost),
        StateSanctionType::ExpulsionFromService => Some(rules::StateType::ExpulsionFromService),
        StateSanctionType::Unspecified => None,
    };
    let sanction = |track: i32, p: i32, s: i32, years: i32, decided: &str, effective: &str| {
        let track = match SanctionTrack::try_from(track).ok()? {
            SanctionTrack::Party => rules::Track::Party,
            SanctionTrack::State => rules::Track::State,
            SanctionTrack::Unspecified => return None,
        };
        Some(Fact::Sanction {
            name: name.clone(),
            active,
            track,
            party: party(p),
            state: state(s),
            probation_years: years.max(0) as u32,
            decision_date: date(decided)?,
            effective_date: date(effective)?,
        })
    };
    let disposal = |d: i32| match ClueDisposal::try_from(d).ok()? {
        ClueDisposal::Registered => Some(rules::Disposal::Registered),
        ClueDisposal::TalkOrInquiry => Some(rules::Disposal::TalkOrInquiry),
        ClueDisposal::PreliminaryCheck => Some(rules::Disposal::PreliminaryCheck),
        ClueDisposal::CaseOpened => Some(rules::Disposal::CaseOpened),
        ClueDisposal::Shelved => Some(rules::Disposal::Shelved),
        ClueDisposal::Closed => Some(rules::Disposal::Closed),
        ClueDisposal::Unspecified => None,
    };
    let petition_done =
        |s: i32| s == PetitionStatus::Closed as i32 || s == PetitionStatus::Rejected as i32;
    match record.payload.as_ref()? {
        Payload::Sanction(s) => sanction(
            s.track,
            s.party_type,
            s.state_type,
            s.probation_years,
            &s.decision_date,
            &s.effective_date,
        ),
        // The summary carries no probation length; one year is the shortest,
        // so the flag never claims more than the record could show.
        Payload::SanctionSummary(s) => sanction(
            s.track,
            s.party_type,
            s.state_type,
            1,
            &s.decision_date,
            &s.effective_date,
        ),
        Payload::Admonishment(a) => Some(Fact::Admonishment {
            name,
            active,
            kind: admonishment(a.r#type)?,
            date: date(&a.date)?,
        }),
        Payload::Clue(k) => Some(Fact::Clue {
            name,
            active,
            disposal: disposal(k.disposal)?,
            open: k.status == ClueStatus::Open as i32,
        }),
        Payload::ClueSummary(k) => Some(Fact::Clue {
            name,
            active,
            disposal: disposal(k.disposal)?,
            open: k.status == ClueStatus::Open as i32,
        }),
        Payload::OrgHandling(o) => Some(Fact::OrgHandling {
            name,
            active,
            kind: match OrgHandlingType::try_from(o.r#type).ok()? {
                OrgHandlingType::SuspensionForReview => rules::OrgHandlingKind::SuspensionForReview,
                OrgHandlingType::Reassignment => rules::OrgHandlingKind::Reassignment,
                OrgHandlingType::OrderedResignation => rules::OrgHandlingKind::OrderedResignation,
                OrgHandlingType::RemovalFromPost => rules::OrgHandlingKind::RemovalFromPost,
                OrgHandlingType::DemotionInRank => rules::OrgHandlingKind::DemotionInRank,
                OrgHandlingType::Unspecified => return None,
            },
            date: date(&o.date)?,
        }),
        Payload::PersonalMattersCheck(p) => Some(Fact::PersonalMatters {
            name,
            active,
            result: match PersonalMattersResult::try_from(p.result).ok()? {
                PersonalMattersResult::Consistent => rules::PmResult::Consistent,
                PersonalMattersResult::UnderReported => rules::PmResult::UnderReported,
                PersonalMattersResult::Concealed => rules::PmResult::Concealed,
                PersonalMattersResult::Unspecified => return None,
            },
            check_date: date(&p.check_date)?,
        }),
        Payload::Evaluation(_) | Payload::EvaluationSummary(_) => {
            Some(Fact::Evaluation { name, active })
        }
        Payload::AuditEngagement(_) => Some(Fact::AuditEngagement { name, active }),
        Payload::AuditFinding(f) => {
            let r = f.rectification.clone().unwrap_or_default();
            Some(Fact::AuditFinding {
                name,
                active,
                transferred_to_discipline: f.transfer == Transfer::Discipline as i32,
                rectification_done: r.status == RectificationStatus::Done as i32,
                deadline: date(&r.deadline),
            })
        }
        Payload::Petition(p) => Some(Fact::Petition {
            name,
            active,
            specific: p.specific,
            closed_or_rejected: petition_done(p.status),
        }),
        Payload::InspectionFinding(f) => {
            let r = f.rectification.clone().unwrap_or_default();
            Some(Fact::InspectionFinding {
                name,
                active,
                transferred_to_discipline: f.transfer == Transfer::Discipline as i32,
                rectification_done: r.status == RectificationStatus::Done as i32,
                deadline: date(&r.deadline),
            })
        }
        Payload::ArchiveReview(_) => Some(Fact::ArchiveReview { name, active }),
        Payload::AdmonishmentSummary(a) => Some(Fact::Admonishment {
            name,
            active,
            kind: admonishment(a.r#type)?,
            date: date(&a.date)?,
        }),
        Payload::PetitionSummary(p) => Some(Fact::Petition {
            name,
            active,
            specific: p.specific,
            closed_or_rejected: petition_done(p.status),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_record_name("cadres/a1/records/b2"),
            Some(("a1".into(), "b2".into()))
        );
        assert_eq!(parse_record_name("cadres/-/records/b2"), None);
        assert_eq!(parse_record_name("cadres/a1/records/"), None);
        assert_eq!(parse_record_name("cadres/a1/b2"), None);
    }

    #[test]
    fn finding_validation_names_fields() {
        let p = Payload::AuditFinding(proto::AuditFinding {
            engagement_source_record_id: "AE-1".into(),
            problem_type: 0,
            amount_fen: -5,
            responsibility: 1,
            transfer: 1,
            rectification: Some(proto::Rectification {
                deadline: "2026-13-01".into(),
                status: 1,
                report_ref: String::new(),
            }),
            finding_date: "2026-01-01".into(),
            ..Default::default()
        });
        let fields: Vec<String> = validate_payload(&p).into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            [
                "record.audit_finding.problem_type",
                "record.audit_finding.amount_fen",
                "record.audit_finding.rectification.deadline"
            ]
        );
    }

    #[test]
    fn sanction_rules() {
        let mut s = proto::Sanction {
            track: proto::SanctionTrack::Party as i32,
            party_type: proto::PartySanctionType::Probation as i32,
            probation_years: 3,
            decision_date: "2025-05-01".into(),
            effective_date: "2025-04-30".into(),
            form_of_discipline: 3,
            ..Default::default()
        };
        let fields = |s: &proto::Sanction| -> Vec<String> {
            validate_payload(&Payload::Sanction(s.clone()))
                .into_iter()
                .map(|v| v.field)
                .collect()
        };
        assert_eq!(
            fields(&s),
            [
                "record.sanction.probation_years",
                "record.sanction.effective_date"
            ]
        );
        s.probation_years = 2;
        s.effective_date = "2025-05-01".into();
        assert!(fields(&s).is_empty());
    }
}
