//! Listing records: a page of a cadre's records, in the caller's view, under one snapshot.

use std::collections::HashMap;

use super::{RecordApi, View, ViewCache, is_owner};
use crate::app::{Call, cursor, page_size, page_token};
use crate::authz::{Action, Resource};
use crate::domain::records::{self, Kind};
use crate::domain::states::RecordState;
use crate::domain::{division, filter};
use crate::error::{Error, Reason, Result};
use crate::proto;
use crate::store::RecordQuery;

impl RecordApi {
    pub async fn list(
        &self,
        call: &mut Call,
        req: proto::ListRecordsRequest,
    ) -> Result<proto::ListRecordsResponse> {
        let principal = call.principal.clone();
        let cadre_id = match req.parent.strip_prefix("cadres/") {
            Some("-") => None,
            Some(id) if records::is_resource_id(id) => Some(id.to_string()),
            _ => {
                return Err(Error::invalid(
                    "parent",
                    "must be cadres/{cadre} or cadres/-",
                ));
            }
        };
        let mut place = principal.division.clone();
        if let Some(id) = &cadre_id {
            call.resources.push(format!("cadres/{id}"));
            let Some(cadre) = self.state.store.get_cadre(id).await? else {
                return Err(if principal.division == division::NATIONAL {
                    Error::NotFound(format!("cadres/{id}"))
                } else {
                    Error::CadreNotAccessible
                });
            };
            place = cadre.managing_division;
        }
        let probe = |kind: Kind| Resource::Record {
            id: "-".into(),
            division: place.clone(),
            kind: kind.as_str().into(),
            owner_agency: String::new(),
            owner_division: String::new(),
            transfer_agency: principal.agency.as_str().into(),
            transfer_division: principal.division.clone(),
        };
        call.require(
            &self.state.authz,
            Action::ListRecords,
            &probe(Kind::Sanction),
            || {
                if cadre_id.is_some() {
                    Error::CadreNotAccessible
                } else {
                    Error::denied(
                        Reason::ActionNotPermitted,
                        "this system may not list records",
                    )
                }
            },
        )?;
        let limit = page_size(req.page_size, 100, 1000)?;
        let mut query = RecordQuery {
            cadre_id: cadre_id.clone(),
            jurisdiction_prefix: division::jurisdiction_prefix(&principal.division).to_string(),
            limit: limit + 1,
            ..Default::default()
        };
        let mut wanted: Vec<Kind> = Kind::ALL.to_vec();
        for term in filter::parse(&req.filter)? {
            match (term.field.as_str(), term.op) {
                ("kind", filter::Op::Eq) => {
                    let k = Kind::parse(term.value.trim_start_matches("RECORD_KIND_")).ok_or_else(
                        || Error::invalid("filter", format!("unknown kind {:?}", term.value)),
                    )?;
                    wanted.retain(|w| *w == k);
                }
                ("state", filter::Op::Eq) => {
                    let s = RecordState::parse(term.value.trim_start_matches("RECORD_STATE_"))
                        .ok_or_else(|| Error::invalid("filter", "state is ACTIVE or RETRACTED"))?;
                    query.state = Some(s);
                }
                ("update_time", op) => {
                    let t = time::OffsetDateTime::parse(
                        &term.value,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|_| Error::invalid("filter", "update_time takes an RFC 3339 time"))?;
                    let us = (t.unix_timestamp_nanos() / 1000) as i64;
                    match op {
                        filter::Op::Ge => query.updated_from_us = Some(us),
                        filter::Op::Gt => query.updated_from_us = Some(us + 1),
                        filter::Op::Lt => query.updated_before_us = Some(us),
                        filter::Op::Le => query.updated_before_us = Some(us + 1),
                        filter::Op::Eq => {
                            query.updated_from_us = Some(us);
                            query.updated_before_us = Some(us + 1);
                        }
                    }
                }
                (other, _) => {
                    return Err(Error::invalid(
                        "filter",
                        format!("cannot filter on {other:?} that way"),
                    ));
                }
            }
        }
        // One decision per kind for the page: kinds the caller cannot see at all
        // are never read from the store.
        let mut levels: HashMap<Kind, View> = HashMap::new();
        for kind in wanted {
            if let Some(v) = self.level(call, &probe(kind), kind) {
                levels.insert(kind, v);
            }
        }
        query.kinds = levels.keys().map(|k| k.as_str().to_string()).collect();
        query.kinds.sort();
        let (snapshot, after) = match page_token::decode("records", &req.page_token)? {
            Some(t) => {
                let (snap, after) = t.split_once(':').ok_or_else(|| {
                    Error::invalid("page_token", "not a page token returned by this method")
                })?;
                let snap: i64 = snap.parse().map_err(|_| {
                    Error::invalid("page_token", "not a page token returned by this method")
                })?;
                (snap, Some(after.to_string()))
            }
            None => (self.state.store.change_head().await?, None),
        };
        query.max_revision = snapshot;
        query.after_id = after;
        // The page and its token are made of visible rows only: a row the
        // caller may not see (a clue not transferred from it) must not end a
        // page, start the next one or make a token appear, or the token would
        // tell its id and the page that it exists. So scan on past hidden rows
        // until the page is full and one more visible row shows there is a next.
        let mut views = ViewCache::default();
        let mut records = Vec::new();
        let mut last_id = String::new();
        let mut next_page_token = String::new();
        'scan: while !query.kinds.is_empty() {
            let rows = self.state.store.list_records(&query).await?;
            for row in &rows {
                let Some(view) = views.view(self, call, row)? else {
                    continue;
                };
                if records.len() as i64 == limit {
                    next_page_token =
                        page_token::encode("records", &format!("{snapshot}:{last_id}"));
                    break 'scan;
                }
                records.push(self.render(row, view, is_owner(&call.principal, row))?);
                last_id = row.id.clone();
            }
            match rows.last() {
                Some(r) if rows.len() as i64 >= query.limit => query.after_id = Some(r.id.clone()),
                _ => break,
            }
        }
        call.resources = records.iter().map(|r| r.name.clone()).collect();
        Ok(proto::ListRecordsResponse {
            records,
            next_page_token,
            cursor: cursor::encode(&self.state.epoch, snapshot),
        })
    }
}
