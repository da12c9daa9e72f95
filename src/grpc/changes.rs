//! `ChangeFeedService` on the wire: ListChanges as one call; WatchChanges as a stream pumped from the feed use case's follow loop.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{M_LIST_CHANGES, M_WATCH_CHANGES, finish, start};
use crate::app::feed::{ChangeFeedApi, WatchEnd, follow};
use crate::proto::{self, change_feed_service_server::ChangeFeedService};

type WatchStream = ReceiverStream<Result<proto::WatchChangesResponse, Status>>;

/// How a watch stream ends on the wire.
impl From<WatchEnd> for Status {
    fn from(end: WatchEnd) -> Self {
        match end {
            WatchEnd::Revoked => Status::unauthenticated("certificate revoked"),
            WatchEnd::Stopping => {
                Status::unavailable("server shutting down; resume from your cursor")
            }
            WatchEnd::Failed(e) => e.into(),
        }
    }
}

#[tonic::async_trait]
impl ChangeFeedService for ChangeFeedApi {
    async fn list_changes(
        &self,
        request: Request<proto::ListChangesRequest>,
    ) -> Result<Response<proto::ListChangesResponse>, Status> {
        let mut call = start(&self.state, &request, M_LIST_CHANGES).await?;
        let result = self.list(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    type WatchChangesStream = WatchStream;

    async fn watch_changes(
        &self,
        request: Request<proto::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let mut call = start(&self.state, &request, M_WATCH_CHANGES).await?;
        let watch = self.open_watch(&mut call, request.into_inner()).await?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(follow(self.clone(), call, watch, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
