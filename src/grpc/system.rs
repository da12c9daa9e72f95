//! `SystemService` on the wire: who the caller is, and which RPCs it may use.

use tonic::{Request, Response, Status};

use crate::app::system::SystemApi;
use crate::identity;
use crate::proto::{self, system_service_server::SystemService};

#[tonic::async_trait]
impl SystemService for SystemApi {
    async fn who_am_i(
        &self,
        request: Request<proto::WhoAmIRequest>,
    ) -> Result<Response<proto::WhoAmIResponse>, Status> {
        let p = identity::principal(&request)?;
        let officer = identity::officer(&request)?;
        Ok(Response::new(self.who_am_i(&p, officer)))
    }

    async fn allowed_methods(
        &self,
        request: Request<proto::AllowedMethodsRequest>,
    ) -> Result<Response<proto::AllowedMethodsResponse>, Status> {
        let p = identity::principal(&request)?;
        Ok(Response::new(self.allowed_methods(&p)))
    }
}
