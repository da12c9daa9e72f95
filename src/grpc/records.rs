//! `RecordService` on the wire: each RPC starts its call, runs the records use case and answers once its row is durable.

use tonic::{Request, Response, Status};

use super::{
    M_BATCH_SUBMIT_RECORDS, M_GET_RECORD, M_LIST_RECORDS, M_RETRACT_RECORD, M_SUBMIT_RECORD,
    finish, start,
};
use crate::app::records::RecordApi;
use crate::proto::{self, record_service_server::RecordService};

#[tonic::async_trait]
impl RecordService for RecordApi {
    async fn submit_record(
        &self,
        request: Request<proto::SubmitRecordRequest>,
    ) -> Result<Response<proto::SubmitRecordResponse>, Status> {
        let mut call = start(&self.state, &request, M_SUBMIT_RECORD).await?;
        let result = self.submit(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn batch_submit_records(
        &self,
        request: Request<proto::BatchSubmitRecordsRequest>,
    ) -> Result<Response<proto::BatchSubmitRecordsResponse>, Status> {
        let mut call = start(&self.state, &request, M_BATCH_SUBMIT_RECORDS).await?;
        let result = self.batch(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn get_record(
        &self,
        request: Request<proto::GetRecordRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        let mut call = start(&self.state, &request, M_GET_RECORD).await?;
        let result = self.get(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn list_records(
        &self,
        request: Request<proto::ListRecordsRequest>,
    ) -> Result<Response<proto::ListRecordsResponse>, Status> {
        let mut call = start(&self.state, &request, M_LIST_RECORDS).await?;
        let result = self.list(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn retract_record(
        &self,
        request: Request<proto::RetractRecordRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        let mut call = start(&self.state, &request, M_RETRACT_RECORD).await?;
        let result = self.retract(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }
}
