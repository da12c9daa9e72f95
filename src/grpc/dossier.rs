//! `DossierService` on the wire: starts the call, assembles the dossier in the caller's view and answers once its row is durable.

use tonic::{Request, Response, Status};

use super::{M_GET_CADRE_DOSSIER, M_LIST_AUDIT_CANDIDATES, finish, start};
use crate::app::dossier::DossierApi;
use crate::proto::{self, dossier_service_server::DossierService};

#[tonic::async_trait]
impl DossierService for DossierApi {
    async fn get_cadre_dossier(
        &self,
        request: Request<proto::GetCadreDossierRequest>,
    ) -> Result<Response<proto::CadreDossier>, Status> {
        let mut call = start(&self.state, &request, M_GET_CADRE_DOSSIER).await?;
        let result = self.dossier(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }

    async fn list_audit_candidates(
        &self,
        request: Request<proto::ListAuditCandidatesRequest>,
    ) -> Result<Response<proto::ListAuditCandidatesResponse>, Status> {
        let mut call = start(&self.state, &request, M_LIST_AUDIT_CANDIDATES).await?;
        let result = self.audit_candidates(&mut call, request.into_inner()).await;
        finish(call, &self.state, result).await
    }
}
