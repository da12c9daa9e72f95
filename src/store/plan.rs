//! Batch planning: the writes a batch of record submissions comes to, decided in memory above the backends.

use std::collections::HashMap;

use super::{Change, RecordRow, SubmitOutcome};
use crate::digest::DigestKey;
use crate::domain::records::stored_is_matter;
use crate::domain::states::{ChangeOp, RecordState};
use crate::error::{Error, Reason, Result};

/// A source record's key: (owner system, source record id).
pub(crate) type SourceKey = (String, String);

/// The writes a batch of submissions comes to, decided in memory against the
/// stored rows while the transaction holds the outbox counter (so no other
/// writer can interleave), so that a batch of a thousand costs a handful of
/// statements instead of several per item.
#[derive(Debug, Default)]
pub(crate) struct BatchPlan {
    /// One answer per item, in order.
    pub outcomes: Vec<Result<SubmitOutcome>>,
    /// (owner system, source id, source version, payload sha) of each version written.
    pub versions: Vec<(String, String, i64, String)>,
    /// Final state of records the store did not hold.
    pub inserts: Vec<RecordRow>,
    /// Final state of stored records written again.
    pub updates: Vec<RecordRow>,
    /// Outbox rows with their seqs.
    pub changes: Vec<(i64, Change)>,
    /// The last seq used (the counter's new value).
    pub last_seq: i64,
    /// Cadres with a record written that is a matter before or after the
    /// write (DESIGN §6), each once: their last matter-write time becomes `now`.
    pub matter_writes: Vec<String>,
}

fn version_conflict() -> Error {
    Error::Aborted {
        reason: Reason::VersionConflict,
        message: "this source version was already submitted with different content".into(),
    }
}

/// Decides every item of a batch in order: `stored` holds the current row of
/// each source record the batch names, `prior` the payload digest of each of
/// their stored versions older than the current one (needed only for items
/// older than what is stored). Later items see the writes of earlier ones.
pub(crate) fn plan_batch(
    items: Vec<RecordRow>,
    stored: HashMap<SourceKey, RecordRow>,
    prior: &HashMap<(String, String, i64), String>,
    digest: &DigestKey,
    start_seq: i64,
    now: i64,
) -> BatchPlan {
    // Rows written by this batch: key → (final row, was it in the store).
    let mut written: HashMap<SourceKey, (RecordRow, bool)> = HashMap::new();
    let mut batch_versions: HashMap<(String, String, i64), String> = HashMap::new();
    let mut plan = BatchPlan {
        last_seq: start_seq,
        ..BatchPlan::default()
    };
    for item in items {
        let key = (item.owner_system.clone(), item.source_record_id.clone());
        let current = written.get(&key).map(|(r, _)| r).or(stored.get(&key));
        let outcome = match current {
            Some(e) if e.cadre_id != item.cadre_id => Err(Error::invalid(
                "record.cadre",
                "a source record cannot move to another cadre",
            )),
            Some(e) if item.source_version < e.source_version => {
                let vkey = (
                    item.owner_system.clone(),
                    item.source_record_id.clone(),
                    item.source_version,
                );
                match batch_versions.get(&vkey).or(prior.get(&vkey)) {
                    Some(sha) if !digest.same(sha, &item.payload_sha256) => Err(version_conflict()),
                    _ => Ok(SubmitOutcome::Stale(e.clone())),
                }
            }
            Some(e) if item.source_version == e.source_version => {
                if digest.same(&e.payload_sha256, &item.payload_sha256) {
                    Ok(SubmitOutcome::Unchanged(e.clone()))
                } else {
                    Err(version_conflict())
                }
            }
            Some(e) if e.kind != item.kind => Err(Error::invalid(
                "record.payload",
                "a source record cannot change its kind",
            )),
            _ => {
                let matter_before = current
                    .is_some_and(|e| stored_is_matter(&e.payload, e.state == RecordState::Active));
                if (matter_before || stored_is_matter(&item.payload, true))
                    && !plan.matter_writes.contains(&item.cadre_id)
                {
                    plan.matter_writes.push(item.cadre_id.clone());
                }
                plan.last_seq += 1;
                let mut row = item;
                if let Some(e) = current {
                    row.id = e.id.clone();
                }
                row.revision = plan.last_seq;
                row.state = RecordState::Active;
                row.retraction_reason = String::new();
                row.update_time_us = now;
                let vkey = (
                    row.owner_system.clone(),
                    row.source_record_id.clone(),
                    row.source_version,
                );
                batch_versions.insert(vkey.clone(), row.payload_sha256.clone());
                plan.versions
                    .push((vkey.0, vkey.1, vkey.2, row.payload_sha256.clone()));
                plan.changes.push((
                    plan.last_seq,
                    Change {
                        op: ChangeOp::Upsert,
                        resource: format!("cadres/{}/records/{}", row.cadre_id, row.id),
                        kind: row.kind.clone(),
                        revision: row.revision,
                        division: row.division.clone(),
                        from_division: None,
                    },
                ));
                let was_stored = stored.contains_key(&key);
                written.insert(key.clone(), (row.clone(), was_stored));
                Ok(SubmitOutcome::Written(row))
            }
        };
        plan.outcomes.push(outcome);
    }
    // In revision order, so that the statements are deterministic.
    let mut finals: Vec<(RecordRow, bool)> = written.into_values().collect();
    finals.sort_by_key(|(r, _)| r.revision);
    for (row, was_stored) in finals {
        if was_stored {
            plan.updates.push(row);
        } else {
            plan.inserts.push(row);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_key() -> DigestKey {
        DigestKey::from_bytes(&[3u8; 32])
    }

    fn item(sid: &str, version: i64, sha: &str) -> RecordRow {
        RecordRow {
            id: format!("new-{sid}-{version}"),
            cadre_id: "c1".into(),
            kind: "AUDIT_FINDING".into(),
            owner_system: "sys".into(),
            source_record_id: sid.into(),
            source_version: version,
            payload_sha256: sha.into(),
            division: "360821".into(),
            ..RecordRow::default()
        }
    }

    fn written(o: &Result<SubmitOutcome>) -> &RecordRow {
        match o {
            Ok(SubmitOutcome::Written(r)) => r,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn later_items_see_earlier_writes_of_the_same_batch() {
        let items = vec![
            item("a", 1, "x"),
            item("a", 2, "y"),
            item("a", 1, "x"),
            item("a", 1, "other"),
            item("a", 2, "y"),
            item("b", 1, "z"),
        ];
        let plan = plan_batch(items, HashMap::new(), &HashMap::new(), &test_key(), 10, 5);
        let first = written(&plan.outcomes[0]).clone();
        let second = written(&plan.outcomes[1]);
        assert_eq!((first.revision, second.revision), (11, 12));
        assert_eq!(second.id, first.id, "a newer version keeps the record id");
        assert!(matches!(&plan.outcomes[2], Ok(SubmitOutcome::Stale(r)) if r.revision == 12));
        assert!(matches!(
            &plan.outcomes[3],
            Err(Error::Aborted {
                reason: Reason::VersionConflict,
                ..
            })
        ));
        assert!(matches!(&plan.outcomes[4], Ok(SubmitOutcome::Unchanged(r)) if r.revision == 12));
        assert_eq!(written(&plan.outcomes[5]).revision, 13);
        assert_eq!(plan.last_seq, 13);
        // One insert per new record, in its final state; every version and change kept.
        let finals: Vec<(&str, i64)> = plan
            .inserts
            .iter()
            .map(|r| (r.source_record_id.as_str(), r.source_version))
            .collect();
        assert_eq!(finals, [("a", 2), ("b", 1)]);
        assert!(plan.updates.is_empty());
        assert_eq!(plan.versions.len(), 3);
        let seqs: Vec<i64> = plan.changes.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [11, 12, 13]);
    }

    #[test]
    fn stored_rows_decide_staleness_conflicts_moves_and_kind() {
        let mut current = item("a", 3, "v3");
        current.id = "stored".into();
        current.revision = 4;
        let stored = HashMap::from([(("sys".to_string(), "a".to_string()), current)]);
        let prior = HashMap::from([(("sys".to_string(), "a".to_string(), 2), "v2".to_string())]);
        let mut moved = item("a", 4, "v4");
        moved.cadre_id = "c2".into();
        let mut rekinded = item("a", 4, "v4");
        rekinded.kind = "SANCTION".into();
        let items = vec![
            item("a", 2, "v2"),
            item("a", 2, "changed"),
            item("a", 1, "unknown"),
            moved,
            rekinded,
            item("a", 4, "v4"),
        ];
        let plan = plan_batch(items, stored, &prior, &test_key(), 20, 5);
        assert!(matches!(&plan.outcomes[0], Ok(SubmitOutcome::Stale(r)) if r.id == "stored"));
        assert!(matches!(
            &plan.outcomes[1],
            Err(Error::Aborted {
                reason: Reason::VersionConflict,
                ..
            })
        ));
        assert!(matches!(&plan.outcomes[2], Ok(SubmitOutcome::Stale(_))));
        assert!(matches!(
            &plan.outcomes[3],
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            &plan.outcomes[4],
            Err(Error::InvalidArgument { .. })
        ));
        let w = written(&plan.outcomes[5]);
        assert_eq!((w.id.as_str(), w.revision), ("stored", 21));
        assert!(plan.inserts.is_empty());
        assert_eq!(plan.updates.len(), 1);
    }
}
