//! The one integration-test binary: every test talks to the real server over mutual TLS.

#[allow(dead_code)]
mod common;

mod access_log;
mod at_rest;
mod bench;
mod cadres;
mod changes;
mod client;
mod deviation;
mod faults;
mod identity;
mod import;
mod keys;
mod layout;
mod load;
mod metrics;
mod opinions;
mod poison;
mod poison_all;
mod props;
mod readiness;
mod readme;
mod records;
mod refusals;
mod seed;
mod server;
mod strings;
mod sweep;
mod sync;
mod transfers;
mod twins;
mod unit_heads;
