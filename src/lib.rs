//! cadrex: the mutual-TLS gRPC exchange of leading-cadre records between supervisory bodies.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod app;
pub mod authz;
pub mod config;
pub mod crypto;
pub mod digest;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod informant;
pub mod limits;
pub mod metrics;
pub mod pki;
pub mod proto;
pub mod protojson;
pub mod ratelimit;
pub mod rng;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod tools;

pub use app::AppState;
pub use config::Config;
pub use error::{Error, Result};
pub use server::run;
pub use state::{BuiltState, build_state, dossier_in_process};
