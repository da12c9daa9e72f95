//! Operator commands that work on a store or a PKI directory directly, with no server running: backup and restore, access-log verification and checkpoints, informant-key rotation, development certificates, seeding a store, and the store side of `cadrex bench`.

pub mod backup;
pub mod bench;
pub mod keys;
pub mod log;
pub mod pki;
pub mod seed;
