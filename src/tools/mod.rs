//! Client-side tools: bulk import, the change-feed sync agent, the operator's terminal client, and the bench and soak drivers.
//!
//! They reach the exchange over gRPC only: the generated clients with
//! [`connect`], and for bench's in-process baseline the crate-root
//! `dossier_in_process` over an `AppState` the caller builds. Nothing here
//! imports `grpc::`, `server::`, `store::` or `admin::` (`tests/it/layout.rs`);
//! what bench needs from the store is handed in (`bench::StoreSide`).

pub mod bench;
pub mod client;
pub mod connect;
pub mod html;
pub mod import;
pub mod render;
pub mod soak;
pub mod sync;
