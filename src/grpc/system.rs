//! `SystemService`: who the caller is, and which RPCs it may use.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{METHODS, Target};
use crate::app::AppState;
use crate::authz::Resource;
use crate::domain::agency::Agency;
use crate::domain::records::Kind;
use crate::identity;
use crate::proto::{self, system_service_server::SystemService};

pub struct SystemApi {
    state: Arc<AppState>,
}

impl SystemApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

fn agency_proto(a: Agency) -> proto::Agency {
    match a {
        Agency::Discipline => proto::Agency::Discipline,
        Agency::Organization => proto::Agency::Organization,
        Agency::Audit => proto::Agency::Audit,
        Agency::Petition => proto::Agency::Petition,
    }
}

#[tonic::async_trait]
impl SystemService for SystemApi {
    async fn who_am_i(
        &self,
        request: Request<proto::WhoAmIRequest>,
    ) -> Result<Response<proto::WhoAmIResponse>, Status> {
        let p = identity::principal(&request)?;
        Ok(Response::new(proto::WhoAmIResponse {
            principal: p.uri.clone(),
            agency: agency_proto(p.agency) as i32,
            division: p.division.clone(),
            system: p.system.clone(),
            certificate_fingerprint: p.fingerprint.clone(),
            certificate_expire_time: Some(prost_types::Timestamp {
                seconds: p.not_after,
                nanos: 0,
            }),
            certificate_serial: p.serial.clone(),
            officer: identity::officer(&request)?,
        }))
    }

    async fn allowed_methods(
        &self,
        request: Request<proto::AllowedMethodsRequest>,
    ) -> Result<Response<proto::AllowedMethodsResponse>, Status> {
        let p = identity::principal(&request)?;
        // Each RPC is tried against a resource in the caller's own jurisdiction,
        // so the answer is what the caller can do there, X-Road style.
        let own_cadre = Resource::Cadre {
            id: "-".into(),
            division: p.division.clone(),
        };
        let methods = METHODS
            .iter()
            .filter(|m| {
                let resource = match m.target {
                    Target::Exchange => Resource::Exchange,
                    Target::Cadre => own_cadre.clone(),
                    Target::AccessLog => Resource::AccessLog,
                    // A record method is allowed when it is allowed for some
                    // kind (submitting depends on the kind).
                    Target::Record => {
                        return Kind::ALL.into_iter().any(|k| {
                            let r = Resource::Record {
                                id: "-".into(),
                                division: p.division.clone(),
                                kind: k.as_str().into(),
                                owner_agency: p.agency.as_str().into(),
                                owner_division: p.division.clone(),
                                transfer_agency: String::new(),
                                transfer_division: String::new(),
                            };
                            self.state.authz.authorize(&p, m.action, &r).allowed
                        });
                    }
                };
                self.state.authz.authorize(&p, m.action, &resource).allowed
            })
            .map(|m| m.path.to_string())
            .collect();
        Ok(Response::new(proto::AllowedMethodsResponse { methods }))
    }
}
