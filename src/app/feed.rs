//! The change-feed use case: every committed change in seq order, each in the caller's view, by cursor; listed or watched.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use prost::Message;

use super::cadres::{self, cadre_resource};
use super::records::{RecordApi, ViewCache, is_owner};
use super::{AppState, Call, cursor};
use crate::authz::{Action, Resource};
use crate::domain::clock::{now_us, timestamp};
use crate::domain::division;
use crate::domain::records::parse_record_name;
use crate::domain::states::{ChangeKind, ChangeOp};
use crate::error::{Error, Reason, Result};
use crate::proto::{self, change_event};
use crate::store::ChangeRow;

/// The most change rows one ListChanges page scans.
const SCAN_MAX: i64 = 5000;

#[derive(Clone)]
pub struct ChangeFeedApi {
    pub(crate) state: Arc<AppState>,
    records: RecordApi,
    opinions: super::opinions::OpinionApi,
}

impl ChangeFeedApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            records: RecordApi::new(state.clone()),
            opinions: super::opinions::OpinionApi::new(state.clone()),
            state,
        }
    }
}

/// Kinds requested; empty means every kind.
fn kinds_filter(kinds: &[i32]) -> Result<HashSet<ChangeKind>> {
    kinds
        .iter()
        .map(|k| {
            proto::ChangeKind::try_from(*k)
                .ok()
                .and_then(ChangeKind::from_proto)
                .ok_or_else(|| Error::invalid("kinds", "unknown or unspecified change kind"))
        })
        .collect()
}

/// The kind of a change row when the filter `kinds` lets it through (an empty
/// filter lets every kind through); `None` also for a kind this server does
/// not know.
fn wanted(kinds: &HashSet<ChangeKind>, row: &ChangeRow) -> Option<ChangeKind> {
    ChangeKind::parse(&row.kind).filter(|k| kinds.is_empty() || kinds.contains(k))
}

/// View decisions reused across a scan, keyed by the authorization resource
/// without its id: they depend on the attributes a policy can tell apart, not
/// on each row.
#[derive(Default)]
struct Views {
    cadre: HashMap<crate::authz::Resource, Option<cadres::View>>,
    records: ViewCache,
}

/// Current state of the cadres and records a page of changes names, by id.
struct Fetched {
    cadres: HashMap<String, crate::store::CadreRow>,
    records: HashMap<String, crate::store::RecordRow>,
}

/// What one scan of the outbox found.
struct Scan {
    events: Vec<proto::ChangeEvent>,
    /// Seq of the last row scanned (the new cursor position).
    last_seq: i64,
    scanned: i64,
}

impl ChangeFeedApi {
    /// The seq to read after: the cursor's, or the oldest retained for an empty
    /// cursor. Cursors of another epoch or below the retention floor are expired.
    async fn start_after(&self, text: &str) -> Result<i64> {
        let store = &self.state.store;
        let floor = store.feed_floor().await?;
        let oldest = cursor::encode(&self.state.epoch, floor);
        if text.is_empty() {
            return Ok(floor);
        }
        let (epoch, seq) = cursor::decode(text).ok_or_else(|| {
            Error::invalid("after_cursor", "not a cursor issued by this exchange")
        })?;
        if epoch != self.state.epoch || seq < floor || seq > store.change_head().await? {
            return Err(Error::CursorExpired { oldest });
        }
        Ok(seq)
    }

    /// Reads up to `limit` change rows after `after` and renders the visible ones.
    async fn scan(
        &self,
        call: &mut Call,
        after: i64,
        kinds: &HashSet<ChangeKind>,
        limit: i64,
        views: &mut Views,
    ) -> Result<Scan> {
        let rows = self.state.store.list_changes(after, limit).await?;
        let jurisdiction = division::jurisdiction_prefix(&call.principal.division);
        let fetched = self.prefetch(jurisdiction, &rows, kinds).await?;
        let mut out = Scan {
            events: Vec::new(),
            last_seq: after,
            scanned: rows.len() as i64,
        };
        for row in rows {
            out.last_seq = row.seq;
            // A kind this server does not know (written by a newer one) is skipped.
            let Some(kind) = wanted(kinds, &row) else {
                continue;
            };
            let stored = ChangeOp::parse(&row.op).unwrap_or(ChangeOp::Upsert);
            let event = match &row.from_division {
                None => self
                    .render(call, &row, kind, views, &fetched)
                    .await?
                    .map(|v| (stored, Some(v))),
                Some(from) => {
                    self.derive_move(call, &row, from, kind, views, &fetched)
                        .await?
                }
            };
            if let Some((op, view)) = event {
                out.events.push(proto::ChangeEvent {
                    event_id: format!("{}-{}", self.state.epoch, row.seq),
                    seq: row.seq,
                    cursor: cursor::encode(&self.state.epoch, row.seq),
                    op: op.to_proto() as i32,
                    resource: row.resource.clone(),
                    kind: kind.to_proto() as i32,
                    revision: row.revision,
                    commit_time: Some(timestamp(row.commit_time_us)),
                    view,
                });
            }
        }
        Ok(out)
    }

    /// Reads the current state of every cadre and record a page of changes
    /// names, in two queries rather than one per event; records only where
    /// their cadre is managed within `jurisdiction`.
    async fn prefetch(
        &self,
        jurisdiction: &str,
        rows: &[ChangeRow],
        kinds: &HashSet<ChangeKind>,
    ) -> Result<Fetched> {
        let mut cadre_ids = Vec::new();
        let mut record_ids = Vec::new();
        // Records a move row names are read wherever they are now: a caller
        // that saw one before the move is told it left (never shown it).
        let mut moved_ids = Vec::new();
        for row in rows {
            match wanted(kinds, row) {
                Some(ChangeKind::Cadre) => {
                    if let Some(id) = row.resource.strip_prefix("cadres/") {
                        cadre_ids.push(id.to_string());
                    }
                }
                Some(ChangeKind::Record(_)) => {
                    if let Some((_, id)) = parse_record_name(&row.resource) {
                        if row.from_division.is_some() {
                            moved_ids.push(id);
                        } else {
                            record_ids.push(id);
                        }
                    }
                }
                Some(ChangeKind::OpinionRequest | ChangeKind::OpinionReply) | None => {}
            }
        }
        let store = &self.state.store;
        let mut records: HashMap<String, crate::store::RecordRow> = store
            .get_records(&record_ids, jurisdiction)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        // `render` still checks each record's division against the caller's.
        records.extend(
            store
                .get_records(&moved_ids, "")
                .await?
                .into_iter()
                .map(|r| (r.id.clone(), r)),
        );
        Ok(Fetched {
            cadres: store
                .get_cadres(&cadre_ids)
                .await?
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect(),
            records,
        })
    }

    /// The resource of a change in the caller's view, or `None` when the caller
    /// may not see it, or when a later change supersedes it (that change carries
    /// the newer state, further on in the same feed).
    async fn render(
        &self,
        call: &mut Call,
        row: &ChangeRow,
        kind: ChangeKind,
        views: &mut Views,
        fetched: &Fetched,
    ) -> Result<Option<change_event::View>> {
        let principal = call.principal.clone();
        if kind == ChangeKind::Cadre {
            let Some(id) = row.resource.strip_prefix("cadres/") else {
                return Ok(None);
            };
            let Some(c) = fetched.cadres.get(id) else {
                return Ok(None);
            };
            if c.revision != row.revision
                || !division::covers(&principal.division, &c.managing_division)
            {
                return Ok(None);
            }
            let view = self.cadre_view(call, views, &cadre_resource(c));
            return Ok(view.map(|v| change_event::View::Cadre(cadres::to_proto(c, v))));
        }
        if matches!(kind, ChangeKind::OpinionRequest | ChangeKind::OpinionReply) {
            return self.render_opinion(call, row, kind).await;
        }
        let Some((_, id)) = parse_record_name(&row.resource) else {
            return Ok(None);
        };
        let Some(r) = fetched.records.get(&id) else {
            return Ok(None);
        };
        if r.revision != row.revision || !division::covers(&principal.division, &r.division) {
            return Ok(None);
        }
        let Some(view) = views.records.view(&self.records, call, r)? else {
            return Ok(None);
        };
        Ok(Some(change_event::View::Record(self.records.render(
            r,
            view,
            is_owner(&principal, r),
        )?)))
    }

    /// The caller's view level of a cadre at the division in `r`, decided
    /// once per division for the life of the scan (or stream).
    fn cadre_view(
        &self,
        call: &mut Call,
        views: &mut Views,
        r: &crate::authz::Resource,
    ) -> Option<cadres::View> {
        if let Some(v) = views.cadre.get(&r.without_id()) {
            return *v;
        }
        let authz = &self.state.authz;
        let v = if call.authorize(authz, Action::ReadFull, r).allowed {
            Some(cadres::View::Full)
        } else if call.authorize(authz, Action::ReadSummary, r).allowed {
            Some(cadres::View::IdMasked)
        } else {
            None
        };
        views.cadre.insert(r.without_id(), v);
        v
    }

    /// What one row written by a cadre's move from `from` tells this caller
    /// (DESIGN §5): `OUT_OF_VIEW` (no view) when it saw the resource before
    /// the move and does not after; the resource in its current view, through
    /// [`Self::render`] (so only while the row is still its current state),
    /// when it sees it after and did not before; nothing when its view did
    /// not change — except that the cadre's own row is also its ordinary
    /// update, which every caller seeing the cadre after the move gets once.
    async fn derive_move(
        &self,
        call: &mut Call,
        row: &ChangeRow,
        from: &str,
        kind: ChangeKind,
        views: &mut Views,
        fetched: &Fetched,
    ) -> Result<Option<(ChangeOp, Option<change_event::View>)>> {
        let stored = ChangeOp::parse(&row.op).unwrap_or(ChangeOp::Upsert);
        let here = call.principal.division.clone();
        let to = row.division.as_str();
        let (before, after) = match kind {
            ChangeKind::Cadre => {
                let Some(id) = row.resource.strip_prefix("cadres/") else {
                    return Ok(None);
                };
                let mut sees = |division: &str| {
                    let r = crate::authz::Resource::Cadre {
                        id: id.to_string(),
                        division: division.to_string(),
                    };
                    division::covers(&here, division) && self.cadre_view(call, views, &r).is_some()
                };
                let before = sees(from);
                let after = sees(to);
                if after {
                    let view = self.render(call, row, kind, views, fetched).await?;
                    return Ok(view.map(|v| (stored, Some(v))));
                }
                (before, after)
            }
            ChangeKind::Record(_) => {
                let Some((_, id)) = parse_record_name(&row.resource) else {
                    return Ok(None);
                };
                let Some(current) = fetched.records.get(&id) else {
                    return Ok(None);
                };
                // The view level only (no tombstoning, no informant flag):
                // nothing is rendered from these two.
                let mut at = current.clone();
                at.division = from.to_string();
                let before = division::covers(&here, from)
                    && views.records.level(&self.records, call, &at)?.is_some();
                at.division = to.to_string();
                let after = division::covers(&here, to)
                    && views.records.level(&self.records, call, &at)?.is_some();
                (before, after)
            }
            ChangeKind::OpinionRequest => return self.derive_request_move(call, row, from).await,
            ChangeKind::OpinionReply => return Ok(None),
        };
        Ok(match (before, after) {
            (true, false) => Some((ChangeOp::OutOfView, None)),
            (false, true) => self
                .render(call, row, kind, views, fetched)
                .await?
                .map(|v| (stored, Some(v))),
            _ => None,
        })
    }

    /// A move row of an opinion request: which of its pieces the caller sees
    /// with the moved cadre at the division it left and at the one it went
    /// to (DESIGN §5, §6). None after and some before: `OUT_OF_VIEW`. Other
    /// pieces after than before: the request in the caller's current view,
    /// while the row is still current (the request's revision, and the
    /// pieces the caller sees now, are still those of the move). Otherwise
    /// nothing.
    async fn derive_request_move(
        &self,
        call: &mut Call,
        row: &ChangeRow,
        from: &str,
    ) -> Result<Option<(ChangeOp, Option<change_event::View>)>> {
        let Some(id) = row.resource.strip_prefix("opinionRequests/") else {
            return Ok(None);
        };
        let store = &self.state.store;
        let Some(req) = store.get_opinion_request(id).await? else {
            return Ok(None);
        };
        // The moved cadre: of the request's cadres, the one whose latest move
        // before this row is the newest (a move writes all its rows in one
        // transaction, right after the cadre's own).
        let mut moved: Option<(i64, String)> = None;
        for c in &req.cadres {
            if let Some(m) = store
                .cadre_moves(c)
                .await?
                .into_iter()
                .rev()
                .find(|m| m.seq < row.seq)
                && moved.as_ref().is_none_or(|(seq, _)| m.seq > *seq)
            {
                moved = Some((m.seq, c.clone()));
            }
        }
        let Some((_, cadre)) = moved else {
            return Ok(None);
        };
        let api = &self.opinions;
        let before = api.visible_pieces(call, &req, Some((&cadre, from))).await?;
        let after = api
            .visible_pieces(call, &req, Some((&cadre, &row.division)))
            .await?;
        if after.is_empty() {
            return Ok((!before.is_empty()).then_some((ChangeOp::OutOfView, None)));
        }
        if before == after || req.revision != row.revision {
            return Ok(None);
        }
        let Some(view) = api.view(call, &req).await? else {
            return Ok(None);
        };
        if view.cadres != after {
            return Ok(None);
        }
        Ok(Some((
            ChangeOp::Upsert,
            Some(change_event::View::OpinionRequest(view.request)),
        )))
    }

    /// An opinion request or reply in the caller's view of the request
    /// (DESIGN §1, §6): a reply only when the caller sees its cadre, a request
    /// change only at the newest revision that changed what the caller sees.
    /// Anything else is skipped; the cursor still moves past it (bookmark
    /// frames on a stream), so a reply about a cadre the caller cannot see
    /// leaves no trace in its feed.
    async fn render_opinion(
        &self,
        call: &mut Call,
        row: &ChangeRow,
        kind: ChangeKind,
    ) -> Result<Option<change_event::View>> {
        let mut parts = row.resource.split('/');
        let (Some("opinionRequests"), Some(id)) = (parts.next(), parts.next()) else {
            return Ok(None);
        };
        let Some(req) = self.state.store.get_opinion_request(id).await? else {
            return Ok(None);
        };
        let Some(view) = self.opinions.view(call, &req).await? else {
            return Ok(None);
        };
        if kind == ChangeKind::OpinionRequest {
            if view.revision != row.revision {
                return Ok(None);
            }
            return Ok(Some(change_event::View::OpinionRequest(view.request)));
        }
        let (Some("replies"), Some(reply_id)) = (parts.next(), parts.next()) else {
            return Ok(None);
        };
        let replies = self.state.store.opinion_replies(id).await?;
        let Some(reply) = replies
            .iter()
            .find(|r| r.id == reply_id && view.shows_reply(&r.id))
        else {
            return Ok(None);
        };
        Ok(Some(change_event::View::OpinionReply(
            self.opinions.reply_proto(call, &req, reply).await?,
        )))
    }

    pub async fn list(
        &self,
        call: &mut Call,
        req: proto::ListChangesRequest,
    ) -> Result<proto::ListChangesResponse> {
        self.require_reader(call)?;
        let kinds = kinds_filter(&req.kinds)?;
        let limit = super::page_size(req.page_size, 500, SCAN_MAX)?;
        let after = self.start_after(&req.after_cursor).await?;
        let scan = self
            .scan(call, after, &kinds, limit, &mut Views::default())
            .await?;
        call.resources = scan.events.iter().map(|e| e.resource.clone()).collect();
        Ok(proto::ListChangesResponse {
            events: scan.events,
            next_cursor: cursor::encode(&self.state.epoch, scan.last_seq),
        })
    }
}

/// Change rows one step of a watch stream reads.
const WATCH_STEP: i64 = 500;

/// A watcher's place in the feed: its position, the kinds it asked for, and
/// the views decided so far (kept for the life of the stream).
pub struct Watch {
    pub after: i64,
    kinds: HashSet<ChangeKind>,
    views: Views,
}

/// One step of a watch stream.
pub struct Batch {
    /// Events in the caller's view, already in the access log.
    pub events: Vec<proto::ChangeEvent>,
    /// The step read as many rows as it may: the watcher may be behind.
    pub full: bool,
}

impl ChangeFeedApi {
    /// Reading the feed, listed or watched, is one permission of the caller's
    /// system, asked before anything is read.
    fn require_reader(&self, call: &mut Call) -> Result<()> {
        call.require(
            &self.state.authz,
            Action::ReadChanges,
            &Resource::Exchange,
            || {
                Error::denied(
                    Reason::ActionNotPermitted,
                    "this system may not read the change feed",
                )
            },
        )
    }

    /// Opens `WatchChanges`: authorizes, reads the kinds filter and the
    /// cursor, and writes the row for opening the stream, allowed or not.
    pub async fn open_watch(
        &self,
        call: &mut Call,
        req: proto::WatchChangesRequest,
    ) -> Result<Watch> {
        let opened = async {
            self.require_reader(call)?;
            let kinds = kinds_filter(&req.kinds)?;
            let after = self.start_after(&req.after_cursor).await?;
            Ok::<_, Error>((kinds, after))
        }
        .await;
        let code = opened.as_ref().err().map(|e| e.code() as i32).unwrap_or(0);
        if opened.is_err() && call.decision.is_none() {
            call.decision = Some(false);
        }
        self.state
            .log
            .append(call.entry(code, String::new()))
            .await?;
        let (kinds, after) = opened?;
        Ok(Watch {
            after,
            kinds,
            views: Views::default(),
        })
    }

    /// The next events after the watcher's position. A step that found events
    /// is one access-log row naming them, durable before they are returned:
    /// nothing leaves unlogged.
    pub async fn next_batch(&self, call: &mut Call, watch: &mut Watch) -> Result<Batch> {
        let scan = self
            .scan(
                call,
                watch.after,
                &watch.kinds,
                WATCH_STEP,
                &mut watch.views,
            )
            .await?;
        if !scan.events.is_empty() {
            let mut entry = call.entry(0, String::new());
            entry.resources = scan.events.iter().map(|e| e.resource.clone()).collect();
            let encoded: Vec<u8> = scan.events.iter().flat_map(|e| e.encode_to_vec()).collect();
            entry.response_sha256 = call.response_digest(&self.state, &encoded);
            self.state.log.append(entry).await?;
        }
        watch.after = watch.after.max(scan.last_seq);
        Ok(Batch {
            events: scan.events,
            full: scan.scanned >= WATCH_STEP,
        })
    }

    /// How many changes the watcher is behind the newest (0 when the head
    /// cannot be read: the gauge is advice, not a reason to fail the stream).
    pub async fn behind(&self, watch: &Watch) -> i64 {
        self.state
            .store
            .change_head()
            .await
            .map_or(0, |h| h - watch.after)
    }

    /// The cursor that resumes the watcher where it is.
    pub fn bookmark(&self, watch: &Watch) -> String {
        cursor::encode(&self.state.epoch, watch.after)
    }
}

/// Why a watch ended, other than by the watcher going away.
#[derive(Debug)]
pub enum WatchEnd {
    /// The caller's certificate was revoked while it watched.
    Revoked,
    /// The server is shutting down; the watcher resumes from its cursor.
    Stopping,
    /// Reading the feed failed.
    Failed(Error),
}

/// Follows the feed for one watcher, sending its frames to `tx`, until it
/// goes away, its certificate is revoked, the server stops, or the store
/// fails (the last three end the stream with the matching `E`). The policy
/// lives here: revocation checked before every step; a step at once while
/// the watcher is behind; otherwise wait for a commit, the poll interval (a
/// safety net for lost notifications) or a bookmark, which moves the cursor
/// when nothing the caller may see changed. The wire only pumps.
pub async fn follow<E: From<WatchEnd>>(
    api: ChangeFeedApi,
    mut call: Call,
    mut watch: Watch,
    tx: tokio::sync::mpsc::Sender<std::result::Result<proto::WatchChangesResponse, E>>,
) {
    use proto::watch_changes_response::Frame;
    let state = api.state.clone();
    let mut stopping = state.stopping.clone();
    if *stopping.borrow() {
        return;
    }
    let mut changed = state.store.subscribe();
    let poll = state.config.feed_poll_interval;
    let bookmark_every = state.config.watch_bookmark_interval;
    let mut last_frame = tokio::time::Instant::now();
    let lag = crate::metrics::LagGauge::new(&call.principal.uri);
    let frame = |f: Frame| Ok(proto::WatchChangesResponse { frame: Some(f) });
    let end = |e: WatchEnd| Err(E::from(e));
    loop {
        if state.tls.is_revoked(&call.principal.serial) {
            tracing::warn!(principal = %call.principal.uri, "ending the watch stream of a revoked certificate");
            let _ = tx.send(end(WatchEnd::Revoked)).await;
            return;
        }
        // Mark what we have seen before reading, so a commit during the read wakes us again.
        changed.borrow_and_update();
        let batch = match api.next_batch(&mut call, &mut watch).await {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(end(WatchEnd::Failed(e))).await;
                return;
            }
        };
        if !batch.events.is_empty() {
            for event in batch.events {
                if tx.send(frame(Frame::Event(event))).await.is_err() {
                    return;
                }
            }
            last_frame = tokio::time::Instant::now();
        }
        if batch.full {
            // Behind: one head read per full step tells how far.
            lag.set(api.behind(&watch).await);
            continue;
        }
        lag.set(0);
        let bookmark_at = last_frame + bookmark_every;
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = tokio::time::sleep_until(bookmark_at) => {
                let bookmark = proto::Bookmark { cursor: api.bookmark(&watch) };
                if tx.send(frame(Frame::Bookmark(bookmark))).await.is_err() {
                    return;
                }
                last_frame = tokio::time::Instant::now();
            }
            _ = tx.closed() => return,
            _ = stopping.changed() => {
                // Ending the stream lets graceful shutdown finish; the watcher
                // reconnects (to this or another instance) from its cursor.
                let _ = tx.send(end(WatchEnd::Stopping)).await;
                return;
            }
        }
    }
}

/// Prunes change rows older than the retention window, forever.
pub async fn prune_forever(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.prune_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cutoff = now_us() - state.config.change_retention.as_micros() as i64;
        if let Err(e) = state.store.prune_changes(cutoff).await {
            tracing::warn!(error = %e, "pruning the change feed");
        }
    }
}
