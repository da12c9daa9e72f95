//! The system use cases: who the calling system is (from its certificate), and which RPCs the policies let it use in its own jurisdiction.

use std::sync::Arc;

use super::AppState;
use super::methods::{METHODS, Target};
use crate::authz::Resource;
use crate::domain::records::Kind;
use crate::identity::Principal;
use crate::proto;

pub struct SystemApi {
    pub(crate) state: Arc<AppState>,
}

impl SystemApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl SystemApi {
    /// The caller as its verified certificate names it, and the officer it
    /// says it acts for.
    pub fn who_am_i(&self, p: &Principal, officer: String) -> proto::WhoAmIResponse {
        proto::WhoAmIResponse {
            principal: p.uri.clone(),
            agency: p.agency.to_proto() as i32,
            division: p.division.clone(),
            system: p.system.clone(),
            certificate_fingerprint: p.fingerprint.clone(),
            certificate_expire_time: Some(prost_types::Timestamp {
                seconds: p.not_after,
                nanos: 0,
            }),
            certificate_serial: p.serial.clone(),
            officer,
        }
    }

    /// The paths of every RPC of the method table the policies allow the
    /// caller, each tried against a resource in its own jurisdiction, so the
    /// answer is what the caller can do there (X-Road style). A record method
    /// is allowed when it is allowed for some kind (submitting depends on
    /// the kind).
    pub fn allowed_methods(&self, p: &Principal) -> proto::AllowedMethodsResponse {
        let authz = &self.state.authz;
        let own_cadre = Resource::Cadre {
            id: "-".into(),
            division: p.division.clone(),
        };
        let methods = METHODS
            .iter()
            .filter(|m| match m.target {
                Target::Exchange => authz.authorize(p, m.action, &Resource::Exchange).allowed,
                Target::Cadre => authz.authorize(p, m.action, &own_cadre).allowed,
                Target::AccessLog => authz.authorize(p, m.action, &Resource::AccessLog).allowed,
                Target::Record => Kind::ALL.into_iter().any(|k| {
                    let r = Resource::Record {
                        id: "-".into(),
                        division: p.division.clone(),
                        kind: k.as_str().into(),
                        owner_agency: p.agency.as_str().into(),
                        owner_division: p.division.clone(),
                        transfer_agency: String::new(),
                        transfer_division: String::new(),
                    };
                    authz.authorize(p, m.action, &r).allowed
                }),
            })
            .map(|m| m.path.to_string())
            .collect();
        proto::AllowedMethodsResponse { methods }
    }
}
