//! cadrex: the mutual-TLS gRPC exchange of leading-cadre records between supervisory bodies.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod authz;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod import;
pub mod informant;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod pki;
pub mod proto;
pub mod ratelimit;
pub mod seed;
pub mod server;
pub mod soak;
pub mod store;
pub mod sync;
pub mod tls;

pub use config::Config;
pub use error::{Error, Result};
pub use server::run;
