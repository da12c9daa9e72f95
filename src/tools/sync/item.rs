//! What gets applied: one cadre or record at one revision, from a feed event or a snapshot page, and the copy it goes to.

use anyhow::anyhow;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;

use super::mirror::Mirror;
use super::ndjson::NdjsonOut;
use super::{change_kind_of, kind_suffix};
use crate::domain::clock::{self, rfc3339};
use crate::domain::states::ChangeOp;
use crate::proto::{self, ChangeKind, change_event};

/// One cadre or record at one revision, from a feed event or a snapshot page.
pub(super) struct Item {
    pub(super) resource: String,
    pub(super) kind: ChangeKind,
    pub(super) revision: i64,
    pub(super) retracted: bool,
    /// It left the caller's view (an `OUT_OF_VIEW` event): kept as a marker
    /// at its revision, without content, until an UPSERT restores it.
    pub(super) out_of_view: bool,
    /// Protobuf of the `Cadre` or `Record` as the caller may see it.
    pub(super) body: Vec<u8>,
    /// The same as protobuf canonical JSON, for SQL's JSON functions and jq.
    pub(super) json: serde_json::Value,
    /// The cadre it is about (`cadres/{id}`; a cadre's own name).
    pub(super) cadre: String,
    /// A record's event date (YYYY-MM-DD); empty for cadres.
    pub(super) event_date: String,
    pub(super) commit_time_us: i64,
    /// Feed events only (NDJSON lines).
    pub(super) event: Option<(String, i64, String)>,
}

/// The record as the agent may keep it: never with an informant block, which
/// an entitled system reads with `GetRecord` so that every read of an
/// informant's identity is in the access log. The provenance digest covers
/// the informant too, so it goes with it: a kept digest would confirm a
/// guessed informant offline.
fn without_informant(mut r: proto::Record) -> proto::Record {
    if let Some(proto::record::Payload::Petition(p)) = &mut r.payload
        && p.informant.take().is_some()
        && let Some(provenance) = &mut r.provenance
    {
        provenance.payload_sha256.clear();
    }
    r
}

/// `message` as canonical JSON; null (and a warning) in the one case it
/// cannot be, a descriptor set that does not describe the message, so that
/// the protobuf body still reaches the mirror.
fn json_of(message: &impl Message, full_name: &str) -> serde_json::Value {
    crate::protojson::to_json(message, full_name).unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "cannot render {full_name} as JSON");
        serde_json::Value::Null
    })
}

/// What the agent keeps of a record: the protobuf body, its JSON, the cadre
/// and the event date; never the informant block (see [`without_informant`]).
fn record_parts(r: proto::Record) -> (Vec<u8>, serde_json::Value, String, String) {
    let r = without_informant(r);
    (
        r.encode_to_vec(),
        json_of(&r, "cadrex.v1.Record"),
        r.cadre.clone(),
        r.event_date.clone(),
    )
}

impl Item {
    pub(super) fn from_event(e: proto::ChangeEvent) -> Option<Item> {
        let kind = ChangeKind::try_from(e.kind).ok()?;
        let ((body, json, cadre, event_date), retracted_view) = match &e.view {
            Some(change_event::View::Cadre(c)) => (
                (
                    c.encode_to_vec(),
                    json_of(c, "cadrex.v1.Cadre"),
                    c.name.clone(),
                    String::new(),
                ),
                false,
            ),
            Some(change_event::View::Record(r)) => (
                record_parts(r.clone()),
                r.state == proto::RecordState::Retracted as i32,
            ),
            _ => (
                (
                    Vec::new(),
                    serde_json::Value::Null,
                    String::new(),
                    String::new(),
                ),
                false,
            ),
        };
        let out_of_view = e.op == proto::ChangeOp::OutOfView as i32;
        // An OUT_OF_VIEW event has no view; its cadre is in its name.
        let cadre = if cadre.is_empty() {
            e.resource.split('/').take(2).collect::<Vec<_>>().join("/")
        } else {
            cadre
        };
        Some(Item {
            resource: e.resource,
            kind,
            revision: e.revision,
            retracted: e.op == proto::ChangeOp::Retract as i32 || retracted_view,
            out_of_view,
            body,
            json,
            cadre,
            event_date,
            commit_time_us: e.commit_time.as_ref().map_or(0, clock::micros),
            event: Some((e.event_id, e.seq, e.cursor)),
        })
    }

    pub(super) fn from_record(r: proto::Record) -> Option<Item> {
        let kind = change_kind_of(r.kind)?;
        let (resource, revision) = (r.name.clone(), r.revision);
        let retracted = r.state == proto::RecordState::Retracted as i32;
        let commit_time_us = r.update_time.as_ref().map_or(0, clock::micros);
        let (body, json, cadre, event_date) = record_parts(r);
        Some(Item {
            kind,
            resource,
            revision,
            retracted,
            out_of_view: false,
            commit_time_us,
            body,
            json,
            cadre,
            event_date,
            event: None,
        })
    }

    pub(super) fn from_cadre(c: proto::Cadre) -> anyhow::Result<Item> {
        // The etag is the cadre's revision, `r{n}`, the number its feed events carry.
        let revision = c
            .etag
            .strip_prefix('r')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                anyhow!(
                    "cadre {} has an etag {:?} without a revision",
                    c.name,
                    c.etag
                )
            })?;
        Ok(Item {
            kind: ChangeKind::Cadre,
            resource: c.name.clone(),
            revision,
            retracted: false,
            out_of_view: false,
            commit_time_us: c.update_time.as_ref().map_or(0, clock::micros),
            body: c.encode_to_vec(),
            json: json_of(&c, "cadrex.v1.Cadre"),
            cadre: c.name.clone(),
            event_date: String::new(),
            event: None,
        })
    }

    fn op(&self) -> ChangeOp {
        if self.out_of_view {
            ChangeOp::OutOfView
        } else if self.retracted {
            ChangeOp::Retract
        } else {
            ChangeOp::Upsert
        }
    }

    pub(super) fn json_line(&self, snapshot: bool) -> String {
        let (event_id, seq, cursor) = match &self.event {
            Some((id, seq, cursor)) => (Some(id.as_str()), Some(*seq), Some(cursor.as_str())),
            None => (None, None, None),
        };
        let mut line = serde_json::json!({
            "event_id": event_id,
            "seq": seq,
            "cursor": cursor,
            "op": self.op().as_str(),
            "resource": self.resource,
            "kind": kind_suffix(self.kind),
            "revision": self.revision,
            "commit_time": rfc3339(self.commit_time_us),
            "body": if self.retracted || self.out_of_view { serde_json::Value::Null } else { self.json.clone() },
            "body_base64": STANDARD.encode(&self.body),
        });
        if snapshot {
            line["snapshot"] = serde_json::Value::Bool(true);
        }
        let mut s = line.to_string();
        s.push('\n');
        s
    }
}

/// What a write does to the checkpoint besides applying its items.
pub(super) enum Checkpoint<'a> {
    /// Leave it (a snapshot page that is not the last).
    Keep,
    /// Resume after this cursor from now on.
    Cursor(&'a str),
    /// A snapshot starts: no cursor until it is complete, so that a crash
    /// mid-snapshot redoes the snapshot rather than tailing from a gap.
    SnapshotStart { kinds: &'a str },
    /// The snapshot is complete and consistent with `cursor`. Resources of the
    /// synced kinds it did not list are no longer visible (moved out of the
    /// caller's jurisdiction, or gone while the cursor was expired).
    SnapshotDone { cursor: &'a str, kinds: &'a str },
}

/// The stored checkpoint.
#[derive(Debug, Default)]
pub(super) struct Stored {
    pub(super) cursor: Option<String>,
    pub(super) kinds: String,
}

/// Counts of one write.
#[derive(Default)]
pub(super) struct Written {
    pub(super) applied: u64,
    pub(super) unchanged: u64,
}

pub(super) enum Sink {
    Mirror(Mirror),
    File(NdjsonOut),
}

impl Sink {
    pub(super) async fn load(&mut self) -> anyhow::Result<Stored> {
        match self {
            Sink::Mirror(m) => m.load().await,
            Sink::File(f) => f.load(),
        }
    }

    pub(super) async fn write(
        &mut self,
        items: &[Item],
        snapshot: bool,
        checkpoint: Checkpoint<'_>,
    ) -> anyhow::Result<Written> {
        match self {
            Sink::Mirror(m) => m.write(items, snapshot, checkpoint).await,
            Sink::File(f) => f.write(items, snapshot, checkpoint).await,
        }
    }
}
