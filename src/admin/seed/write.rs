//! Writing what the generator made: cadres and records turned into rows by the server's own conversions, batched per owning system, each batch one transaction with its access-log row.

use std::sync::Arc;

use crate::app::cadres;
use crate::app::records::row::{self, Links, RowKeys};
use crate::digest::DigestKey;
use crate::domain::cadre;
use crate::domain::records::Kind;
use crate::identity::Principal;
use crate::informant::KeyRing;
use crate::proto::{self, record::Payload};
use crate::store::{CadreRow, RecordRow, Store};

use super::people::{PROVINCES, Person};
use super::records::Generated;
use super::{BATCH, Owners, log_entry, rpc};

/// The row CreateCadre would store for `person`, or an error naming what the
/// server would have refused: a generator bug must not seed a cadre the server
/// would not register.
pub(super) fn cadre_row(person: &Person, now: i64) -> anyhow::Result<CadreRow> {
    let violations = cadre::validate(&person.cadre, "cadre");
    if !violations.is_empty() {
        anyhow::bail!("seed generated an invalid cadre: {violations:?}");
    }
    Ok(cadres::new_row(person.id.clone(), &person.cadre, now))
}

/// Writes `rows` as `org` in one transaction, with one access-log row naming
/// them all; returns how many were written.
pub(super) async fn write_cadres(
    store: &dyn Store,
    org: &Principal,
    rows: Vec<CadreRow>,
) -> anyhow::Result<usize> {
    let names: Vec<String> = rows.iter().map(|r| format!("cadres/{}", r.id)).collect();
    let entry = log_entry(
        org,
        &rpc(
            proto::cadre_service_server::SERVICE_NAME,
            "BatchCreateCadres",
        ),
        names,
    );
    let finish = move |_: &[crate::Result<()>]| (entry.clone(), None);
    let outcomes = store.create_cadres(rows, &finish).await?;
    let mut ok = 0;
    for o in outcomes {
        o?;
        ok += 1;
    }
    Ok(ok)
}

/// Buffers records per owning system and writes each owner's records in
/// batches, one transaction (and one access-log row) per batch.
pub(super) struct RecordWriter<'a> {
    pub store: Arc<dyn Store>,
    pub informant: &'a KeyRing,
    pub digest: &'a DigestKey,
    pub owners: &'a Owners,
    pub pending: Vec<(Principal, Vec<RecordRow>)>,
    pub written: usize,
}

impl RecordWriter<'_> {
    /// Turns the records generated about `cadre` into rows through the
    /// server's checks and conversion, resolving what each links to among the
    /// cadre's rows made before it, as SubmitRecord resolves it in the store.
    pub async fn cadre(
        &mut self,
        person: &Person,
        cadre: &CadreRow,
        generated: Vec<Generated>,
    ) -> anyhow::Result<()> {
        let province = PROVINCES[person.province].code;
        let mut made: Vec<(Principal, RecordRow)> = Vec::with_capacity(generated.len());
        for g in generated {
            let owner = self.owners.of(province, g.owner).clone();
            let (rec, payload, kind) = row::submitted(Some(&g.record))?;
            // A generator bug must not seed records the server would have refused.
            let violations = row::field_violations(rec, payload)?;
            if !violations.is_empty() {
                anyhow::bail!(
                    "seed generated an invalid {} record: {violations:?}",
                    kind.as_str()
                );
            }
            let links = Links {
                engagement: match payload {
                    Payload::AuditFinding(f) => made.iter().map(|(_, r)| r).find(|r| {
                        r.kind == Kind::AuditEngagement.as_str()
                            && r.owner_system == owner.uri
                            && r.source_record_id == f.engagement_source_record_id
                    }),
                    _ => None,
                },
                clue_source: match payload {
                    Payload::Clue(k) if !k.source_record.is_empty() => made
                        .iter()
                        .map(|(_, r)| r)
                        .find(|r| crate::app::records::record_name(r) == k.source_record),
                    _ => None,
                },
            };
            if matches!(payload, Payload::AuditFinding(_)) && links.engagement.is_none()
                || matches!(payload, Payload::Clue(k) if !k.source_record.is_empty())
                    && links.clue_source.is_none()
            {
                anyhow::bail!("seed generated a {} that links to nothing", kind.as_str());
            }
            let keys = RowKeys {
                digest: self.digest,
                informant: self.informant,
            };
            let row = row::stored_row(keys, &owner, g.id, rec, cadre, links)?;
            made.push((owner, row));
        }
        for (owner, row) in made {
            match self.pending.iter_mut().find(|(p, _)| p.uri == owner.uri) {
                Some((_, rows)) => rows.push(row),
                None => self.pending.push((owner, vec![row])),
            }
        }
        self.flush_full().await
    }

    async fn flush_full(&mut self) -> anyhow::Result<()> {
        for i in 0..self.pending.len() {
            if self.pending[i].1.len() >= BATCH {
                self.flush(i).await?;
            }
        }
        Ok(())
    }

    pub async fn flush_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.pending.len() {
            self.flush(i).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, i: usize) -> anyhow::Result<()> {
        let rows = std::mem::take(&mut self.pending[i].1);
        if rows.is_empty() {
            return Ok(());
        }
        let owner = &self.pending[i].0;
        let names: Vec<String> = rows
            .iter()
            .map(|r| format!("cadres/{}/records/{}", r.cadre_id, r.id))
            .collect();
        let entry = log_entry(
            owner,
            &rpc(
                proto::record_service_server::SERVICE_NAME,
                "BatchSubmitRecords",
            ),
            names,
        );
        let finish = move |_: &[crate::Result<crate::store::SubmitOutcome>]| (entry.clone(), None);
        for o in self
            .store
            .submit_records(rows, self.digest, &finish)
            .await?
        {
            o?;
            self.written += 1;
        }
        Ok(())
    }
}
