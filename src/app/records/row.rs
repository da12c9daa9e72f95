//! What a submitted record becomes: the checks that need nothing looked up, and the row that is stored — shared by SubmitRecord and `cadrex seed`, so that a seeded row is one the server would have stored.

use prost::Message;

use super::{informant_context, record_name};
use crate::digest::DigestKey;
use crate::domain::records::{self, Kind};
use crate::domain::states::RecordState;
use crate::error::{Error, FieldViolation, Reason, Result};
use crate::identity::Principal;
use crate::informant::KeyRing;
use crate::proto::{self, record::Payload};
use crate::store::{CadreRow, RecordRow};

/// The record a submission carries, its payload and its kind. Fails with
/// INVALID_ARGUMENT when the record or its payload is missing, or the payload
/// is a summary view (output only).
pub fn submitted(rec: Option<&proto::Record>) -> Result<(&proto::Record, &Payload, Kind)> {
    let Some(rec) = rec else {
        return Err(Error::invalid("record", "required"));
    };
    let Some(payload) = &rec.payload else {
        return Err(Error::invalid(
            "record.payload",
            "required: exactly one full record kind",
        ));
    };
    let Some(kind) = Kind::of(payload) else {
        return Err(Error::invalid(
            "record.payload",
            "summary views are output only; submit the full kind",
        ));
    };
    Ok((rec, payload, kind))
}

/// The fields of `rec` that are wrong in themselves — classification, source
/// id and version, payload — whatever the record names. Fails with
/// FAILED_PRECONDITION (`CLASSIFIED_NOT_ACCEPTED`) for a state secret, which
/// this system is not certified to hold.
pub fn field_violations(rec: &proto::Record, payload: &Payload) -> Result<Vec<FieldViolation>> {
    let mut violations: Vec<FieldViolation> = Vec::new();
    match records::classification_accepted(rec.classification) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::precondition(
                Reason::ClassifiedNotAccepted,
                "state-secret records must not enter a system not certified for them",
            ));
        }
        Err(v) => violations.push(v),
    }
    let sid = &rec.source_record_id;
    if sid.trim().is_empty() || sid.len() > 128 || sid.chars().any(char::is_control) {
        violations.push(FieldViolation::new(
            "record.source_record_id",
            "required, at most 128 printable characters",
        ));
    }
    if rec.source_version < 1 {
        violations.push(FieldViolation::new(
            "record.source_version",
            "must be 1 or more",
        ));
    }
    violations.extend(records::validate_payload(payload));
    Ok(violations)
}

/// The stored records a payload links to, as the submitter's lookups found
/// them (and checked: an active engagement of the same owner and cadre, a
/// clue source about the same cadre).
#[derive(Clone, Copy, Default)]
pub struct Links<'a> {
    /// The engagement an audit finding belongs to.
    pub engagement: Option<&'a RecordRow>,
    /// The record a clue came from; the clue is transferred to its owner.
    pub clue_source: Option<&'a RecordRow>,
}

/// The keys a stored row is made with: the digest key of its payload digest
/// and the informant key ring that seals 检举人信息.
#[derive(Clone, Copy)]
pub struct RowKeys<'a> {
    pub digest: &'a DigestKey,
    pub informant: &'a KeyRing,
}

/// The row `owner` stores for the checked record `rec` about `cadre`, under
/// `id`: the payload digest keyed over the payload as submitted, the links
/// filled in, the informant block sealed apart from the payload under
/// (owner system | source id) so that only that context opens it. Fails only
/// when the payload is a summary view or sealing fails.
pub fn stored_row(
    keys: RowKeys<'_>,
    owner: &Principal,
    id: String,
    rec: &proto::Record,
    cadre: &CadreRow,
    links: Links<'_>,
) -> Result<RecordRow> {
    let (rec, payload, kind) = submitted(Some(rec))?;
    let mut payload = payload.clone();
    let sha = keys.digest.keyed(&records::digest_bytes(
        records::classification_name(rec.classification),
        &payload,
    ));
    let (mut transfer_agency, mut transfer_division) = (String::new(), String::new());
    match &mut payload {
        Payload::AuditFinding(f) => {
            if let Some(engagement) = links.engagement {
                f.engagement = record_name(engagement);
            }
        }
        Payload::Clue(k) if !k.source_record.is_empty() => {
            if let Some(source) = links.clue_source {
                transfer_agency = source.owner_agency.clone();
                transfer_division = source.owner_division.clone();
            }
        }
        _ => {}
    }
    let mut informant = None;
    if let Payload::Petition(p) = &mut payload
        && let Some(i) = p.informant.take()
        && i != proto::Informant::default()
    {
        informant = Some(keys.informant.seal(
            &i.encode_to_vec(),
            &informant_context(&owner.uri, &rec.source_record_id),
        )?);
    }
    let event_date = records::event_date(&payload);
    let stored = proto::Record {
        payload: Some(payload),
        ..Default::default()
    };
    Ok(RecordRow {
        id,
        cadre_id: cadre.id.clone(),
        kind: kind.as_str().into(),
        owner_system: owner.uri.clone(),
        owner_agency: owner.agency.as_str().into(),
        owner_division: owner.division.clone(),
        source_record_id: rec.source_record_id.clone(),
        source_version: rec.source_version,
        revision: 0,
        event_date,
        classification: records::classification_name(rec.classification).into(),
        state: RecordState::Active,
        retraction_reason: String::new(),
        payload: stored.encode_to_vec(),
        payload_sha256: sha,
        informant,
        transfer_agency,
        transfer_division,
        submitting_system: owner.uri.clone(),
        update_time_us: 0,
        division: cadre.managing_division.clone(),
    })
}
