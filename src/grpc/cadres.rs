//! `CadreService` on the wire: each RPC starts its call, runs the cadre registry use case and answers once its row is durable.

use tonic::{Request, Response, Status};

use super::{
    M_BATCH_CREATE_CADRES, M_CREATE_CADRE, M_GET_CADRE, M_LIST_CADRES, M_LOOKUP_CADRE,
    M_UPDATE_CADRE, finish, start,
};
use crate::app::cadres::CadreApi;
use crate::proto::{self, cadre_service_server::CadreService};

#[tonic::async_trait]
impl CadreService for CadreApi {
    async fn batch_create_cadres(
        &self,
        request: Request<proto::BatchCreateCadresRequest>,
    ) -> Result<Response<proto::BatchCreateCadresResponse>, Status> {
        let mut call = start(&self.state, &request, M_BATCH_CREATE_CADRES).await?;
        let result = self.batch_create(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn create_cadre(
        &self,
        request: Request<proto::CreateCadreRequest>,
    ) -> Result<Response<proto::Cadre>, Status> {
        let mut call = start(&self.state, &request, M_CREATE_CADRE).await?;
        let result = self.create(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn get_cadre(
        &self,
        request: Request<proto::GetCadreRequest>,
    ) -> Result<Response<proto::Cadre>, Status> {
        let mut call = start(&self.state, &request, M_GET_CADRE).await?;
        let result = self.get(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn update_cadre(
        &self,
        request: Request<proto::UpdateCadreRequest>,
    ) -> Result<Response<proto::Cadre>, Status> {
        let mut call = start(&self.state, &request, M_UPDATE_CADRE).await?;
        let result = self.update(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn list_cadres(
        &self,
        request: Request<proto::ListCadresRequest>,
    ) -> Result<Response<proto::ListCadresResponse>, Status> {
        let mut call = start(&self.state, &request, M_LIST_CADRES).await?;
        let result = self.list(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn lookup_cadre(
        &self,
        request: Request<proto::LookupCadreRequest>,
    ) -> Result<Response<proto::Cadre>, Status> {
        let mut call = start(&self.state, &request, M_LOOKUP_CADRE).await?;
        let result = self.lookup(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }
}
