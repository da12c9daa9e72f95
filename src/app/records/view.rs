//! What a caller sees of a record: its view level by Cedar, the rendering of that view, and Get.

use std::collections::HashMap;

use prost::Message;

use super::{RecordApi, informant_context};
use crate::app::Call;
use crate::authz::{Action, Resource};
use crate::domain::clock::timestamp;
use crate::domain::division;
use crate::domain::records::{self, Kind, parse_record_name};
use crate::domain::states::RecordState;
use crate::error::{Error, Result};
use crate::identity::Principal;
use crate::proto::{self, record::Payload};
use crate::store::RecordRow;

/// What a caller sees of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// Every field; the informant block only when `informant`.
    Full { informant: bool },
    /// The kind's summary type.
    Summary,
    /// A retracted record seen by someone other than its owner.
    Tombstone,
}

pub(crate) fn record_name(row: &RecordRow) -> String {
    format!("cadres/{}/records/{}", row.cadre_id, row.id)
}

pub(crate) fn resource_of(row: &RecordRow) -> Resource {
    Resource::Record {
        id: row.id.clone(),
        division: row.division.clone(),
        kind: row.kind.clone(),
        owner_agency: row.owner_agency.clone(),
        owner_division: row.owner_division.clone(),
        transfer_agency: row.transfer_agency.clone(),
        transfer_division: row.transfer_division.clone(),
    }
}

/// A record not yet stored, of `kind`, at `division`.
pub(super) fn new_resource(kind: Kind, division: &str) -> Resource {
    Resource::Record {
        id: "-".into(),
        division: division.to_string(),
        kind: kind.as_str().into(),
        owner_agency: String::new(),
        owner_division: String::new(),
        transfer_agency: String::new(),
        transfer_division: String::new(),
    }
}

/// View levels decided once per distinct authorization resource of a page.
/// The key is the Cedar resource itself with its id blanked, so every
/// attribute a policy can test (kind, cadre division, owner agency and
/// division, transferring body, …) is in it, including any added later.
#[derive(Default)]
pub(crate) struct ViewCache(HashMap<Resource, Option<View>>);

impl ViewCache {
    /// The base view level of `row` for the caller (no tombstoning).
    pub(crate) fn level(
        &mut self,
        api: &RecordApi,
        call: &mut Call,
        row: &RecordRow,
    ) -> Result<Option<View>> {
        let resource = resource_of(row);
        let key = resource.without_id();
        if let Some(v) = self.0.get(&key) {
            return Ok(*v);
        }
        let kind = Kind::parse(&row.kind)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("unknown stored kind {}", row.kind)))?;
        let v = api.level(call, &resource, kind);
        self.0.insert(key, v);
        Ok(v)
    }

    /// The view of `row` for the caller: its level, or a tombstone for a
    /// retracted record the caller does not own.
    pub(crate) fn view(
        &mut self,
        api: &RecordApi,
        call: &mut Call,
        row: &RecordRow,
    ) -> Result<Option<View>> {
        let level = self.level(api, call, row)?;
        Ok(level.map(|v| {
            if row.state == RecordState::Retracted && !is_owner(&call.principal, row) {
                View::Tombstone
            } else {
                v
            }
        }))
    }
}

pub(crate) fn is_owner(p: &Principal, row: &RecordRow) -> bool {
    p.agency.as_str() == row.owner_agency && p.division == row.owner_division
}

pub(super) fn etag(revision: i64) -> String {
    format!("r{revision}")
}

impl RecordApi {
    /// The base view level of a record for the caller (no tombstoning), by Cedar.
    pub(crate) fn level(&self, call: &mut Call, resource: &Resource, kind: Kind) -> Option<View> {
        let authz = &self.state.authz;
        if call.authorize(authz, Action::ReadFull, resource).allowed {
            let informant = kind == Kind::Petition
                && call
                    .authorize(authz, Action::ReadInformant, resource)
                    .allowed;
            return Some(View::Full { informant });
        }
        if records::summary(&sample_payload(kind)).is_some()
            && call.authorize(authz, Action::ReadSummary, resource).allowed
        {
            return Some(View::Summary);
        }
        None
    }

    pub(super) fn view_of(&self, call: &mut Call, row: &RecordRow) -> Result<Option<View>> {
        ViewCache::default().view(self, call, row)
    }

    /// Renders rows in the caller's view with one Cedar decision per distinct
    /// set of attributes a policy can tell apart rather than per row; rows the
    /// caller may not see are left out, and retracted ones become tombstones
    /// for non-owners.
    pub(crate) fn render_rows(
        &self,
        call: &mut Call,
        rows: &[RecordRow],
    ) -> Result<Vec<proto::Record>> {
        let mut views = ViewCache::default();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(view) = views.view(self, call, row)? else {
                continue;
            };
            out.push(self.render(row, view, is_owner(&call.principal, row))?);
        }
        Ok(out)
    }

    /// Renders a stored record in `view`. Decrypts the informant block only for
    /// a full view that includes it.
    pub(crate) fn render(&self, row: &RecordRow, view: View, owner: bool) -> Result<proto::Record> {
        let kind = Kind::parse(&row.kind)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("unknown stored kind {}", row.kind)))?;
        let mut out = proto::Record {
            name: record_name(row),
            cadre: format!("cadres/{}", row.cadre_id),
            kind: kind.to_proto() as i32,
            revision: row.revision,
            state: row.state.to_proto() as i32,
            update_time: Some(timestamp(row.update_time_us)),
            etag: etag(row.revision),
            ..Default::default()
        };
        if view == View::Tombstone {
            out.view = proto::RecordView::Tombstone as i32;
            return Ok(out);
        }
        out.owner_system = row.owner_system.clone();
        out.source_record_id = row.source_record_id.clone();
        out.source_version = row.source_version;
        out.event_date = row.event_date.clone();
        out.classification = records::classification_from_name(&row.classification) as i32;
        // The digest covers the whole payload, informant included; a view that
        // leaves out any of it carries none, or a guessed informant (or any
        // other hidden field) could be confirmed offline against it. A petition
        // read without the right to its informant carries none whether or not
        // it has one, or the digest's presence would tell which.
        let shows_everything = match view {
            View::Full { informant } => informant || row.kind != Kind::Petition.as_str(),
            View::Summary | View::Tombstone => false,
        };
        out.provenance = Some(proto::Provenance {
            submitting_system: row.submitting_system.clone(),
            submit_time: Some(timestamp(row.update_time_us)),
            payload_sha256: String::new(),
        });
        if owner {
            out.retraction_reason = row.retraction_reason.clone();
        }
        let stored = proto::Record::decode(row.payload.as_slice()).map_err(Error::internal)?;
        let payload = stored
            .payload
            .ok_or_else(|| Error::internal(anyhow::anyhow!("record {} has no payload", row.id)))?;
        match view {
            View::Full { informant } => {
                out.view = proto::RecordView::Full as i32;
                let mut payload = payload;
                if let (true, Payload::Petition(p), Some(sealed)) =
                    (informant, &mut payload, &row.informant)
                {
                    let plain = self.state.informant.open(
                        sealed,
                        &informant_context(&row.owner_system, &row.source_record_id),
                    )?;
                    p.informant =
                        Some(proto::Informant::decode(plain.as_slice()).map_err(Error::internal)?);
                }
                // The stored digest is keyed (DESIGN §2); the one sent is
                // computed now, over what this caller reads in full.
                if shows_everything && let Some(p) = out.provenance.as_mut() {
                    p.payload_sha256 = records::payload_sha256(&row.classification, &payload);
                }
                out.payload = Some(payload);
            }
            View::Summary => {
                out.view = proto::RecordView::Summary as i32;
                out.payload = records::summary(&payload);
            }
            View::Tombstone => {}
        }
        Ok(out)
    }

    pub async fn get(
        &self,
        call: &mut Call,
        req: proto::GetRecordRequest,
    ) -> Result<proto::Record> {
        let (cadre_id, id) = named_record(&req.name)?;
        call.resources.push(req.name.clone());
        let row = self
            .state
            .store
            .get_record(&id)
            .await?
            .filter(|r| r.cadre_id == cadre_id);
        let Some(row) = row else {
            return Err(self.missing(call, &cadre_id, &req.name).await?);
        };
        call.require(
            &self.state.authz,
            Action::GetRecord,
            &resource_of(&row),
            || Error::CadreNotAccessible,
        )?;
        let Some(view) = self.view_of(call, &row)? else {
            // No view of this kind: the read is denied, and its row says so
            // as it does for a record that does not exist, so that the
            // caller's own log rows tell the two apart no more than the answer.
            let d = self.state.authz.authorize(
                &call.principal,
                Action::ReadSummary,
                &resource_of(&row),
            );
            call.deny(&d);
            return Err(Error::NotFound(req.name.clone()));
        };
        self.render(&row, view, is_owner(&call.principal, &row))
    }

    /// The answer for a record that is not there: out-of-jurisdiction and
    /// missing cadres answer as for cadres; a cadre the caller may see answers
    /// NOT_FOUND, the same as for a record kind it may not see.
    pub(super) async fn missing(&self, call: &Call, cadre_id: &str, name: &str) -> Result<Error> {
        let cadre = self.state.store.get_cadre(cadre_id).await?;
        Ok(match cadre {
            Some(c) if division::covers(&call.principal.division, &c.managing_division) => {
                Error::NotFound(name.to_string())
            }
            Some(_) => Error::CadreNotAccessible,
            None if call.principal.division == division::NATIONAL => {
                Error::NotFound(name.to_string())
            }
            None => Error::CadreNotAccessible,
        })
    }
}

/// (cadre id, record id) of the `name` field of Get and Retract.
pub(super) fn named_record(name: &str) -> Result<(String, String)> {
    parse_record_name(name).ok_or_else(|| {
        Error::invalid(
            "name",
            "must be a record name cadres/{cadre}/records/{record}",
        )
    })
}

/// A payload of `kind` with default content, to ask whether the kind has a summary type.
fn sample_payload(kind: Kind) -> Payload {
    match kind {
        Kind::Sanction => Payload::Sanction(Default::default()),
        Kind::Admonishment => Payload::Admonishment(Default::default()),
        Kind::Clue => Payload::Clue(Default::default()),
        Kind::OrgHandling => Payload::OrgHandling(Default::default()),
        Kind::PersonalMattersCheck => Payload::PersonalMattersCheck(Default::default()),
        Kind::Evaluation => Payload::Evaluation(Default::default()),
        Kind::AuditEngagement => Payload::AuditEngagement(Default::default()),
        Kind::AuditFinding => Payload::AuditFinding(Default::default()),
        Kind::Petition => Payload::Petition(Default::default()),
        Kind::InspectionFinding => Payload::InspectionFinding(Default::default()),
        Kind::ArchiveReview => Payload::ArchiveReview(Default::default()),
    }
}
