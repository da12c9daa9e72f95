//! `OpinionService` on the wire: each RPC starts its call, runs the integrity-opinion use case and answers once its row is durable.

use tonic::{Request, Response, Status};

use super::{
    M_CREATE_OPINION_REQUEST, M_DRAFT_OPINION, M_GET_OPINION_REQUEST, M_GET_VETTING_READINESS,
    M_LIST_OPINION_REQUESTS, M_REPLY_OPINION, M_WITHDRAW_OPINION_REQUEST, finish, start,
};
use crate::app::opinions::OpinionApi;
use crate::proto::{self, opinion_service_server::OpinionService};

#[tonic::async_trait]
impl OpinionService for OpinionApi {
    async fn create_opinion_request(
        &self,
        request: Request<proto::CreateOpinionRequestRequest>,
    ) -> Result<Response<proto::OpinionRequest>, Status> {
        let mut call = start(&self.state, &request, M_CREATE_OPINION_REQUEST).await?;
        let result = self.create(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn get_opinion_request(
        &self,
        request: Request<proto::GetOpinionRequestRequest>,
    ) -> Result<Response<proto::OpinionRequest>, Status> {
        let mut call = start(&self.state, &request, M_GET_OPINION_REQUEST).await?;
        let result = self.get(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn list_opinion_requests(
        &self,
        request: Request<proto::ListOpinionRequestsRequest>,
    ) -> Result<Response<proto::ListOpinionRequestsResponse>, Status> {
        let mut call = start(&self.state, &request, M_LIST_OPINION_REQUESTS).await?;
        let result = self.list(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn withdraw_opinion_request(
        &self,
        request: Request<proto::WithdrawOpinionRequestRequest>,
    ) -> Result<Response<proto::OpinionRequest>, Status> {
        let mut call = start(&self.state, &request, M_WITHDRAW_OPINION_REQUEST).await?;
        let result = self.withdraw(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn draft_opinion(
        &self,
        request: Request<proto::DraftOpinionRequest>,
    ) -> Result<Response<proto::OpinionDraft>, Status> {
        let mut call = start(&self.state, &request, M_DRAFT_OPINION).await?;
        let result = self.draft(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn reply_opinion(
        &self,
        request: Request<proto::ReplyOpinionRequest>,
    ) -> Result<Response<proto::OpinionReply>, Status> {
        let mut call = start(&self.state, &request, M_REPLY_OPINION).await?;
        let result = self.reply(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn get_vetting_readiness(
        &self,
        request: Request<proto::GetVettingReadinessRequest>,
    ) -> Result<Response<proto::VettingReadiness>, Status> {
        let mut call = start(&self.state, &request, M_GET_VETTING_READINESS).await?;
        let result = self.readiness(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }
}
