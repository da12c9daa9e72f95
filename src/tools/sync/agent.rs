//! The agent: connects, takes the snapshot, then drains the feed page by page or follows the watch stream, retrying what is transient.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::FutureExt;
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::item::{Checkpoint, Item, Sink};
use super::{SyncArgs, SyncMode, SyncSummary, kind_cli_name, kind_suffix, record_kind};
use crate::domain::clock::now_us;
use crate::error::Reason;
use crate::proto::cadre_service_client::CadreServiceClient;
use crate::proto::change_feed_service_client::ChangeFeedServiceClient;
use crate::proto::record_service_client::RecordServiceClient;
use crate::proto::system_service_client::SystemServiceClient;
use crate::proto::{self, ChangeKind, watch_changes_response};
use crate::tools::connect::{self, Patience};

/// Matches the server (`http2_keepalive_interval` 30 s, timeout 20 s), so a
/// watch stream idle for hours is neither dropped by middleboxes nor taken for
/// dead by either side while pings are answered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longer than the server's own per-call timeout (30 s by default), so a slow
/// page ends with the server's DEADLINE_EXCEEDED rather than ours.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// A page of 1000 records is about 1 MB; the headroom covers large payloads.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Cap of the reconnect backoff: a restarted server is picked up within 30 s.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Tries of a `--once` run before it gives up (about 8 s of backoff in all).
const ONCE_TRIES: u32 = 5;
/// Expired cursors in a row before giving up: the feed's retention is then
/// shorter than a snapshot takes, and re-snapshotting would loop forever.
const MAX_EXPIRED_IN_A_ROW: u32 = 3;
/// Most watch frames committed in one transaction; a burst of commits is
/// applied in a few transactions rather than one per event.
const WATCH_BATCH: usize = 500;

pub(super) fn channel(args: &SyncArgs) -> anyhow::Result<Channel> {
    let connection = args.connection();
    Ok(connection
        .endpoint()?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// A unary request with a deadline; watch streams get none.
fn call<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// How a failed call ends up.
enum Failure {
    /// CURSOR_EXPIRED: re-snapshot, then tail from the new cursor.
    Expired { oldest: String },
    /// Worth another try after a pause: server away, connection lost.
    Transient(anyhow::Error),
    /// Retrying cannot help: refused certificate, bad arguments, local I/O.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Fatal(e)
    }
}

fn classify(status: Status, method: &str, args: &SyncArgs) -> Failure {
    let reason = status
        .get_details_error_info()
        .map(|i| (i.reason, i.metadata))
        .filter(|(r, _)| !r.is_empty());
    let code_name = connect::code_name(status.code() as i32);
    let reason_text = reason
        .as_ref()
        .map(|(r, _)| format!(", reason {r}"))
        .unwrap_or_default();
    if status.code() == Code::FailedPrecondition
        && let Some((r, metadata)) = &reason
        && r == Reason::CursorExpired.as_str()
    {
        return Failure::Expired {
            oldest: metadata.get("oldest_cursor").cloned().unwrap_or_default(),
        };
    }
    if let Some(refused) = connect::refusal(&status, method, &args.cert) {
        return Failure::Fatal(anyhow!(refused));
    }
    if let Some(tls) = connect::tls_error(&status) {
        return Failure::Fatal(connect::tls_refusal(&tls, method, &args.connection()));
    }
    let error = anyhow!(
        "{method} on {} failed: {code_name}{reason_text}: {}",
        args.server,
        status.message()
    );
    if connect::is_transient(&status, Patience::Agent) {
        Failure::Transient(error)
    } else {
        Failure::Fatal(error)
    }
}

fn backoff(failures: u32) -> Duration {
    connect::backoff(failures, BACKOFF_MAX)
}

pub(super) fn progress_bar(show: bool) -> anyhow::Result<indicatif::ProgressBar> {
    if !show {
        return Ok(indicatif::ProgressBar::hidden());
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{spinner} {human_pos} events applied  {per_sec}  lag {msg}  {elapsed_precise}",
    )?);
    bar.set_message("-");
    bar.enable_steady_tick(Duration::from_millis(200));
    Ok(bar)
}

/// Resolves once `stop` turns true; never without one, nor when its sender
/// is gone without asking (a dropped sender must not read as "stop now",
/// which would spin the loops).
async fn stop_requested(stop: Option<watch::Receiver<bool>>) {
    if let Some(mut s) = stop
        && s.wait_for(|v| *v).await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await
}

pub(super) struct Agent {
    args: SyncArgs,
    kinds: Vec<ChangeKind>,
    /// The kinds as stored with the checkpoint, `AUDIT_FINDING,CADRE`.
    kinds_key: String,
    sink: Sink,
    feed: ChangeFeedServiceClient<Channel>,
    records: RecordServiceClient<Channel>,
    cadres: CadreServiceClient<Channel>,
    system: SystemServiceClient<Channel>,
    /// The checkpointed cursor; `None` until a snapshot completes.
    cursor: Option<String>,
    /// Consecutive transient failures, for the backoff.
    failures: u32,
    /// Expired cursors since the feed last answered; reset by any page or frame.
    expired_in_a_row: u32,
    greeted: bool,
    pub(super) summary: SyncSummary,
    pub(super) bar: indicatif::ProgressBar,
}

impl Agent {
    pub(super) fn new(
        args: SyncArgs,
        kinds: Vec<ChangeKind>,
        sink: Sink,
        channel: Channel,
        bar: indicatif::ProgressBar,
    ) -> Agent {
        let mut names: Vec<&str> = kinds.iter().map(|k| kind_suffix(*k)).collect();
        names.sort();
        Agent {
            kinds_key: names.join(","),
            kinds,
            sink,
            feed: ChangeFeedServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            records: RecordServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            cadres: CadreServiceClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            system: SystemServiceClient::new(channel),
            cursor: None,
            failures: 0,
            expired_in_a_row: 0,
            greeted: false,
            summary: SyncSummary::default(),
            bar,
            args,
        }
    }

    fn stopped(&self) -> bool {
        self.args.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Sleeps `d`, or less when told to stop; true when told to stop.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopped(),
            _ = stop_requested(self.args.stop.clone()) => true,
        }
    }

    fn say(&self, text: &str) {
        self.bar.suspend(|| eprintln!("{text}"));
    }

    pub(super) async fn run(&mut self) -> anyhow::Result<()> {
        let stored = self.sink.load().await?;
        if stored.cursor.is_some() && stored.kinds != self.kinds_key {
            self.say(&format!(
                "the copy was synced for kinds {}; re-snapshotting for {}",
                stored.kinds, self.kinds_key
            ));
        } else {
            self.cursor = stored.cursor;
        }
        self.summary.cursor = self.cursor.clone().unwrap_or_default();
        loop {
            if self.stopped() {
                return Ok(());
            }
            match self.round().await {
                Ok(()) => match self.args.mode {
                    SyncMode::Once => return Ok(()),
                    SyncMode::Interval(d) => {
                        if self.pause(d).await {
                            return Ok(());
                        }
                    }
                    SyncMode::Follow => {}
                },
                Err(Failure::Expired { oldest }) => {
                    self.expired_in_a_row += 1;
                    if self.expired_in_a_row > MAX_EXPIRED_IN_A_ROW {
                        bail!(
                            "the cursor expired {} times in a row: the server keeps changes \
                             for less time than a snapshot takes",
                            self.expired_in_a_row
                        );
                    }
                    self.summary.cursor_expired += 1;
                    tracing::debug!(%oldest, "cursor expired");
                    self.say("cursor expired; re-snapshotting");
                    self.cursor = None;
                }
                Err(Failure::Transient(e)) => {
                    if let Some(tls) = connect::tls_probe(&self.args.connection()).await {
                        return Err(connect::tls_refusal(
                            &tls,
                            "a test connection",
                            &self.args.connection(),
                        ));
                    }
                    self.failures += 1;
                    self.summary.retries += 1;
                    if self.args.mode == SyncMode::Once && self.failures >= ONCE_TRIES {
                        return Err(e.context(format!(
                            "giving up after {ONCE_TRIES} tries; everything applied so far is \
                             checkpointed, and a re-run continues from there"
                        )));
                    }
                    let wait = backoff(self.failures);
                    self.say(&format!(
                        "{e:#}; retrying in {}",
                        humantime::format_duration(wait)
                    ));
                    if self.pause(wait).await {
                        return Ok(());
                    }
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    /// Snapshot when there is no cursor, then catch up or follow.
    async fn round(&mut self) -> Result<(), Failure> {
        if !self.greeted {
            self.preflight().await?;
        }
        if self.cursor.is_none() {
            self.snapshot().await?;
        }
        match self.args.mode {
            SyncMode::Once | SyncMode::Interval(_) => self.drain().await,
            SyncMode::Follow => self.follow().await,
        }
    }

    /// Fails early and clearly on a refused certificate, before touching the copy.
    async fn preflight(&mut self) -> Result<(), Failure> {
        if let Some(tls) = connect::tls_probe(&self.args.connection()).await {
            return Err(Failure::Fatal(connect::tls_refusal(
                &tls,
                "a test connection",
                &self.args.connection(),
            )));
        }
        let me = self
            .system
            .who_am_i(call(proto::WhoAmIRequest {}))
            .await
            .map_err(|s| classify(s, "WhoAmI", &self.args))?
            .into_inner();
        tracing::info!(principal = %me.principal, kinds = %self.kinds_key, "syncing as");
        self.greeted = true;
        self.failures = 0;
        Ok(())
    }

    async fn write(
        &mut self,
        items: &[Item],
        snapshot: bool,
        checkpoint: Checkpoint<'_>,
    ) -> Result<(), Failure> {
        let w = self.sink.write(items, snapshot, checkpoint).await?;
        self.summary.applied += w.applied;
        self.summary.unchanged += w.unchanged;
        self.bar.inc(w.applied);
        if let Some(last) = items.iter().map(|i| i.commit_time_us).max()
            && !snapshot
        {
            let lag = Duration::from_micros(now_us().saturating_sub(last).max(0) as u64);
            self.bar.set_message(format!("{:.1} s", lag.as_secs_f64()));
        }
        Ok(())
    }

    fn set_cursor(&mut self, cursor: String) {
        self.summary.cursor = cursor.clone();
        self.cursor = Some(cursor);
    }

    /// Lists every wanted record kind, then cadres, and stores the cursor of
    /// the first listing once all of it is applied: every listing after that
    /// cursor was taken only holds states at or after it, and what changed
    /// after it comes again from the feed, where the revision check skips
    /// what the snapshot already applied.
    async fn snapshot(&mut self) -> Result<(), Failure> {
        let kinds_key = self.kinds_key.clone();
        self.write(&[], true, Checkpoint::SnapshotStart { kinds: &kinds_key })
            .await?;
        let names: Vec<String> = self.kinds.iter().map(|k| kind_cli_name(*k)).collect();
        self.say(&format!("snapshotting {}", names.join(",")));
        let mut cursor: Option<String> = None;
        let wanted: HashSet<ChangeKind> = self.kinds.iter().copied().collect();
        for kind in self.kinds.clone() {
            let Some(rk) = record_kind(kind) else {
                continue;
            };
            let filter = format!(
                "kind = \"{}\"",
                rk.as_str_name().trim_start_matches("RECORD_KIND_")
            );
            let mut token = String::new();
            loop {
                let page = self
                    .records
                    .list_records(call(proto::ListRecordsRequest {
                        parent: "cadres/-".into(),
                        page_size: self.args.page_size,
                        page_token: token,
                        filter: filter.clone(),
                    }))
                    .await
                    .map_err(|s| classify(s, "ListRecords", &self.args))?
                    .into_inner();
                cursor.get_or_insert(page.cursor);
                let items: Vec<Item> = page
                    .records
                    .into_iter()
                    .filter_map(Item::from_record)
                    .filter(|i| wanted.contains(&i.kind))
                    .collect();
                self.write(&items, true, Checkpoint::Keep).await?;
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        if wanted.contains(&ChangeKind::Cadre) {
            if cursor.is_none() {
                // ListCadres carries no cursor: take one before listing, so
                // every cadre change from then on comes again from the feed.
                let probe = self
                    .records
                    .list_records(call(proto::ListRecordsRequest {
                        parent: "cadres/-".into(),
                        page_size: 1,
                        ..Default::default()
                    }))
                    .await
                    .map_err(|s| classify(s, "ListRecords", &self.args))?
                    .into_inner();
                cursor = Some(probe.cursor);
            }
            let mut token = String::new();
            loop {
                let page = self
                    .cadres
                    .list_cadres(call(proto::ListCadresRequest {
                        page_size: self.args.page_size,
                        page_token: token,
                        filter: String::new(),
                        include_past_posts: false,
                    }))
                    .await
                    .map_err(|s| classify(s, "ListCadres", &self.args))?
                    .into_inner();
                let items = page
                    .cadres
                    .into_iter()
                    .map(Item::from_cadre)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                self.write(&items, true, Checkpoint::Keep).await?;
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        let cursor = cursor.context("the snapshot listing returned no cursor")?;
        self.write(
            &[],
            true,
            Checkpoint::SnapshotDone {
                cursor: &cursor,
                kinds: &kinds_key,
            },
        )
        .await?;
        self.summary.snapshots += 1;
        self.set_cursor(cursor);
        Ok(())
    }

    fn kinds_i32(&self) -> Vec<i32> {
        self.kinds.iter().map(|k| *k as i32).collect()
    }

    /// Pages through `ListChanges` until the cursor stops moving; each page and
    /// the cursor after it commit together.
    async fn drain(&mut self) -> Result<(), Failure> {
        loop {
            let after = self.cursor.clone().unwrap_or_default();
            let page = self
                .feed
                .list_changes(call(proto::ListChangesRequest {
                    after_cursor: after.clone(),
                    kinds: self.kinds_i32(),
                    page_size: self.args.page_size,
                }))
                .await
                .map_err(|s| classify(s, "ListChanges", &self.args))?
                .into_inner();
            self.failures = 0;
            self.expired_in_a_row = 0;
            let items: Vec<Item> = page
                .events
                .into_iter()
                .filter_map(Item::from_event)
                .collect();
            if page.next_cursor.is_empty() || page.next_cursor == after {
                return Ok(());
            }
            self.write(&items, false, Checkpoint::Cursor(&page.next_cursor))
                .await?;
            self.set_cursor(page.next_cursor);
            if self.stopped() {
                return Ok(());
            }
        }
    }

    /// Follows a `WatchChanges` stream until told to stop; frames that arrive
    /// together commit together, bookmarks just move the cursor.
    async fn follow(&mut self) -> Result<(), Failure> {
        let after = self.cursor.clone().unwrap_or_default();
        let mut stream = self
            .feed
            .watch_changes(proto::WatchChangesRequest {
                after_cursor: after,
                kinds: self.kinds_i32(),
            })
            .await
            .map_err(|s| classify(s, "WatchChanges", &self.args))?
            .into_inner();
        let stop = stop_requested(self.args.stop.clone());
        tokio::pin!(stop);
        let ended = || Failure::Transient(anyhow!("the server ended the watch stream"));
        loop {
            let first = tokio::select! {
                m = stream.message() => m,
                _ = &mut stop => return Ok(()),
            };
            let mut frames = match first {
                Ok(Some(f)) => vec![f],
                Ok(None) => return Err(ended()),
                Err(s) => return Err(classify(s, "WatchChanges", &self.args)),
            };
            // Whatever else has already arrived joins this transaction.
            let mut after_batch: Option<Failure> = None;
            while frames.len() < WATCH_BATCH {
                match stream.message().now_or_never() {
                    Some(Ok(Some(f))) => frames.push(f),
                    Some(Ok(None)) => {
                        after_batch = Some(ended());
                        break;
                    }
                    Some(Err(s)) => {
                        after_batch = Some(classify(s, "WatchChanges", &self.args));
                        break;
                    }
                    None => break,
                }
            }
            self.failures = 0;
            self.expired_in_a_row = 0;
            let mut cursor = None;
            let mut items = Vec::new();
            for frame in frames {
                match frame.frame {
                    Some(watch_changes_response::Frame::Event(e)) => {
                        cursor = Some(e.cursor.clone());
                        items.extend(Item::from_event(e));
                    }
                    Some(watch_changes_response::Frame::Bookmark(b)) => cursor = Some(b.cursor),
                    None => {}
                }
            }
            if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
                self.write(&items, false, Checkpoint::Cursor(&cursor))
                    .await?;
                self.set_cursor(cursor);
            }
            if let Some(f) = after_batch {
                return Err(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
