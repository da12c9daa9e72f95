//! Client-side tools: bulk import, the change-feed sync agent, the operator's terminal client, and the seed, bench and soak drivers.
//!
//! They talk to the exchange only through its public seams: the generated
//! gRPC clients with [`connect`], or the few library functions named in
//! `tests/it/layout.rs` (seed writes a store, bench measures the dossier in
//! process). Nothing here imports `grpc::` or `store::` internals.

pub mod bench;
pub mod client;
pub mod connect;
pub mod html;
pub mod import;
pub mod render;
pub mod seed;
pub mod soak;
pub mod sync;
