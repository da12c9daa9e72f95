//! `ChangeFeedService` on the wire: ListChanges as one call; WatchChanges as a stream that pumps the feed use case's batches, bookmarks while nothing visible changes, and ends on revocation or shutdown.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{M_LIST_CHANGES, M_WATCH_CHANGES, finish, start};
use crate::app::Call;
use crate::app::feed::{ChangeApi, Watch};
use crate::proto::{
    self, change_feed_service_server::ChangeFeedService, watch_changes_response::Frame,
};

type WatchStream = ReceiverStream<Result<proto::WatchChangesResponse, Status>>;

/// Shared handle so that the watch task can outlive the request.
pub struct ChangeFeed(pub Arc<ChangeApi>);

/// Follows the feed for one watcher until it goes away, its certificate is
/// revoked, the server stops, or the store fails.
async fn follow(
    api: Arc<ChangeApi>,
    mut call: Call,
    mut watch: Watch,
    tx: mpsc::Sender<Result<proto::WatchChangesResponse, Status>>,
) {
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
    loop {
        if state.tls.is_revoked(&call.principal.serial) {
            tracing::warn!(principal = %call.principal.uri, "ending the watch stream of a revoked certificate");
            let _ = tx
                .send(Err(Status::unauthenticated("certificate revoked")))
                .await;
            return;
        }
        // Mark what we have seen before reading, so a commit during the read wakes us again.
        changed.borrow_and_update();
        let batch = match api.next_batch(&mut call, &mut watch).await {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
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
                let _ = tx.send(Err(Status::unavailable("server shutting down; resume from your cursor"))).await;
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl ChangeFeedService for ChangeFeed {
    async fn list_changes(
        &self,
        request: Request<proto::ListChangesRequest>,
    ) -> Result<Response<proto::ListChangesResponse>, Status> {
        let mut call = start(&self.0.state, &request, M_LIST_CHANGES).await?;
        let result = self.0.list(&mut call, request.into_inner()).await;
        finish(call, &self.0.state, result).await
    }

    type WatchChangesStream = WatchStream;

    async fn watch_changes(
        &self,
        request: Request<proto::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let mut call = start(&self.0.state, &request, M_WATCH_CHANGES).await?;
        let watch = self.0.open_watch(&mut call, request.into_inner()).await?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(follow(self.0.clone(), call, watch, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
