//! `AccessLogService` on the wire: listing access events, exporting signed checkpoints, verifying the chain.

use tonic::{Request, Response, Status};

use super::{M_GET_CHECKPOINT, M_LIST_ACCESS_EVENTS, M_VERIFY_ACCESS_LOG, finish, start};
use crate::app::access_log::AccessLogApi;
use crate::proto::{self, access_log_service_server::AccessLogService};

#[tonic::async_trait]
impl AccessLogService for AccessLogApi {
    async fn list_access_events(
        &self,
        request: Request<proto::ListAccessEventsRequest>,
    ) -> Result<Response<proto::ListAccessEventsResponse>, Status> {
        let mut call = start(&self.state, &request, M_LIST_ACCESS_EVENTS).await?;
        let result = self.list(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn get_checkpoint(
        &self,
        request: Request<proto::GetCheckpointRequest>,
    ) -> Result<Response<proto::Checkpoint>, Status> {
        let mut call = start(&self.state, &request, M_GET_CHECKPOINT).await?;
        let result = self.checkpoint(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn verify_access_log(
        &self,
        request: Request<proto::VerifyAccessLogRequest>,
    ) -> Result<Response<proto::VerifyAccessLogResponse>, Status> {
        let mut call = start(&self.state, &request, M_VERIFY_ACCESS_LOG).await?;
        let result = self.verify(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }
}
