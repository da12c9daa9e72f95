//! The composition root of a server's state: authorizer, access log, keys, rules and calendar built from the config over an open store; shared by `serve` and bench's in-process baseline.

use std::sync::{Arc, Mutex};

use crate::app::AppState;
use crate::config::Config;
use crate::error::Result;
use crate::{access_log, app, authz, digest, domain, identity, informant, proto, store, tls};

/// What [`build_state`] made: the state every service shares, and what the
/// owner must stop when it is done with it.
pub struct BuiltState {
    pub state: Arc<AppState>,
    /// The access log's batching and checkpoint tasks; abort them once every
    /// call has returned.
    pub log_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Send `true` when shutting down, so that watch streams end.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// The state a server holds, built from `config` over an open `store` and a
/// loaded `tls`: authorizer, log signer and access log, informant keys, the
/// store's epoch, rule parameters and calendar. Used by `serve` and by
/// `cadrex bench` for its in-process baseline, so both run the same code.
///
/// Fails when the policies, a key file, the rules file or the calendar cannot
/// be read, or the store cannot tell its epoch.
pub async fn build_state(
    config: Config,
    store: Arc<dyn store::Store>,
    tls: Arc<tls::TlsState>,
) -> anyhow::Result<BuiltState> {
    let authz = authz::Authorizer::load(config.policy_dir.as_deref())?;
    let signer = Arc::new(access_log::LogSigner::load(&config.log_signing_key_path())?);
    let informant = informant::KeyRing::load(&config.informant_key_path())?;
    let digest = digest::DigestKey::load(&config.digest_key_path())?;
    let epoch = store.epoch().await?;
    store::digests::rekey_at_start(&*store, &digest).await?;
    let rules = match &config.rules_file {
        Some(path) => domain::rules::RuleParams::from_toml(&std::fs::read_to_string(path)?)?,
        None => domain::rules::RuleParams::default(),
    };
    let calendar = match &config.calendar_dir {
        Some(dir) => domain::calendar::Calendar::load_dir(dir)?,
        None => domain::calendar::Calendar::embedded(),
    };
    let (log, log_tasks) = access_log::AccessLog::start(
        store.clone(),
        signer.clone(),
        digest.clone(),
        config.log_batch_max,
        config.checkpoint_interval,
    );
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    let state = Arc::new(AppState {
        config,
        store,
        authz,
        log,
        signer,
        tls,
        informant,
        digest,
        epoch,
        rules,
        calendar,
        verified: Mutex::new(None),
        stopping: stopping_rx,
    });
    Ok(BuiltState {
        state,
        log_tasks,
        stopping,
    })
}

/// The dossier `principal` would get from `GetCadreDossier` — the same
/// authorization decisions, views and flags — built without gRPC, TLS or the
/// access-log row. `cadrex bench` compares the RPC against it to measure what
/// the transport and the log cost; nothing that serves callers uses it.
pub async fn dossier_in_process(
    state: Arc<AppState>,
    principal: identity::Principal,
    request: proto::GetCadreDossierRequest,
) -> Result<proto::CadreDossier> {
    app::dossier::assemble(state, principal, request, app::methods::M_GET_CADRE_DOSSIER).await
}
