//! Operator commands that work on a store or a PKI directory directly, with no server running: backup and restore, access-log verification and checkpoints, informant-key rotation, development certificates.

pub mod backup;
pub mod keys;
pub mod log;
pub mod pki;
