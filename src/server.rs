//! `run(config, listener, shutdown)`: wires store, authorizer, access log, TLS acceptor and the gRPC services into one server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::access_log::LogSigner;
use crate::app::access_log::AccessLogApi;
use crate::app::cadres::CadreApi;
use crate::app::dossier::DossierApi;
use crate::app::feed::ChangeFeedApi;
use crate::app::opinions::OpinionApi;
use crate::app::records::RecordApi;
use crate::app::system::SystemApi;
use crate::config::Config;
use crate::pki;
use crate::proto::access_log_service_server::AccessLogServiceServer;
use crate::proto::cadre_service_server::CadreServiceServer;
use crate::proto::change_feed_service_server::ChangeFeedServiceServer;
use crate::proto::dossier_service_server::DossierServiceServer;
use crate::proto::opinion_service_server::OpinionServiceServer;
use crate::proto::record_service_server::RecordServiceServer;
use crate::proto::system_service_server::SystemServiceServer;
use crate::tls::{self, TlsPaths, TlsState};
use crate::{proto, store};

pub use crate::crypto::install_crypto_provider;

/// Creates the development PKI when the configured directory has none.
fn ensure_pki(config: &Config) -> anyhow::Result<()> {
    let paths = pki::PkiPaths::new(&config.pki_dir);
    if config.ca_cert_path().exists() {
        // A development PKI made before digest keys existed gets one; a
        // deployment's key is made on purpose (`cadrex keys digest-init`).
        if config.create_dev_pki
            && config.digest_key.is_none()
            && !config.digest_key_path().exists()
        {
            pki::write_digest_key(&config.digest_key_path())?;
            tracing::warn!(
                path = %config.digest_key_path().display(),
                "created a digest key for the DEVELOPMENT PKI; back it up with the informant keys"
            );
        }
        return Ok(());
    }
    if !config.create_dev_pki || config.ca_cert.is_some() {
        anyhow::bail!(
            "CA certificate {} not found",
            config.ca_cert_path().display()
        );
    }
    pki::init(&config.pki_dir, pki::DEFAULT_DIVISION)?;
    tracing::warn!(
        dir = %paths.dir.display(),
        "created DEVELOPMENT certificates (CA, server, one client per agency); do not use them in production"
    );
    Ok(())
}

/// Serves cadrex on `listener` until `shutdown` resolves, then drains calls in
/// flight and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    install_crypto_provider();
    let metrics_addr =
        crate::metrics::parse_listen(&config.metrics_listen, config.metrics_allow_non_loopback)?;
    ensure_pki(&config)?;
    let tls = TlsState::load(TlsPaths {
        ca_cert: config.ca_cert_path(),
        server_cert: config.server_cert_path(),
        server_key: config.server_key_path(),
        crl: config.crl_path(),
    })?;
    let reloader = tls.spawn_reloader(config.reload_poll);
    let expiry = tokio::spawn(crate::metrics::watch_expiry(
        crate::metrics::ExpiryPaths {
            server_cert: config.server_cert_path(),
            ca_cert: config.ca_cert_path(),
            crl: config.crl_path(),
        },
        crate::metrics::ExpiryWarning {
            certificate: config.expiry_warning,
            crl: config.crl_update_warning,
        },
        tls.reloads(),
    ));
    let metrics_server = match crate::metrics::bind(
        metrics_addr,
        config.metrics_listener.as_ref(),
        config.metrics_allow_non_loopback,
    )
    .await?
    {
        Some(listener) => match crate::metrics::handle() {
            Some(handle) => {
                tracing::info!(addr = %listener.local_addr()?, "metrics endpoint listening (GET /metrics)");
                Some(tokio::spawn(crate::metrics::serve(listener, handle)))
            }
            None => None,
        },
        None => None,
    };
    let system_limits = Arc::new(crate::ratelimit::SystemLimits::new(
        crate::ratelimit::LimitSpec {
            rate_per_second: config.rate_limit_per_system,
            burst: config.rate_limit_burst,
            max_concurrent_calls: config.max_concurrent_calls_per_system,
        },
        config.system_limits.clone(),
    ));
    let store = store::connect(&config.store).await?;
    let crate::state::BuiltState {
        state,
        log_tasks,
        stopping,
    } = crate::state::build_state(config.clone(), store.clone(), tls.clone()).await?;
    let calendar = tokio::spawn(crate::metrics::watch_calendar(state.calendar.data_end()));
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CadreServiceServer<CadreApi>>().await;
    health.set_serving::<SystemServiceServer<SystemApi>>().await;
    health
        .set_serving::<AccessLogServiceServer<AccessLogApi>>()
        .await;
    health.set_serving::<RecordServiceServer<RecordApi>>().await;
    health
        .set_serving::<ChangeFeedServiceServer<ChangeFeedApi>>()
        .await;
    health
        .set_serving::<OpinionServiceServer<OpinionApi>>()
        .await;
    health
        .set_serving::<DossierServiceServer<DossierApi>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    // The identity layer: every cadrex call carries the principal of its
    // connection's verified certificate, re-checked against the current CRL.
    let auth = {
        let tls = tls.clone();
        move |mut req: tonic::Request<()>| -> Result<tonic::Request<()>, tonic::Status> {
            tls::authenticate(&tls, req.extensions_mut())?;
            Ok(req)
        }
    };
    let max = config.max_message_bytes;
    let cadres = CadreServiceServer::new(CadreApi::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let feed = ChangeFeedServiceServer::new(ChangeFeedApi::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let opinions = OpinionServiceServer::new(OpinionApi::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let dossier = DossierServiceServer::new(DossierApi::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let pruner = tokio::spawn(crate::app::feed::prune_forever(state.clone()));
    let records = RecordServiceServer::new(RecordApi::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let system =
        SystemServiceServer::new(SystemApi::new(state.clone())).max_decoding_message_size(max);
    let access = AccessLogServiceServer::new(AccessLogApi::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = %store::redact_url(&config.store), backend = store.backend(), "cadrex listening");
    let incoming = tls::incoming(listener, tls.clone(), config.handshake_timeout);
    let result = Server::builder()
        .layer(
            crate::limits::LimitsLayer::new(config.call_timeout).with_system_limits(system_limits),
        )
        // Inside the limits: a call refused for them never gets this far.
        .layer(crate::grpc::refused::RefusedLayer::new(state.clone()))
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(system, auth.clone()))
        .add_service(InterceptedService::new(cadres, auth.clone()))
        .add_service(InterceptedService::new(records, auth.clone()))
        .add_service(InterceptedService::new(feed, auth.clone()))
        .add_service(InterceptedService::new(opinions, auth.clone()))
        .add_service(InterceptedService::new(dossier, auth.clone()))
        .add_service(InterceptedService::new(access, auth))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    reloader.abort();
    pruner.abort();
    expiry.abort();
    calendar.abort();
    if let Some(m) = metrics_server {
        m.abort();
    }
    for t in log_tasks {
        t.abort();
    }
    // Every call has returned, so every row is durable: sign the head, or the
    // rows of the last seconds could be cut off without breaking a signature.
    if let Err(e) = final_checkpoint(&*store, &state.signer).await {
        tracing::error!(error = %e, "signing the final access-log checkpoint");
    }
    store.close().await;
    tracing::info!("cadrex stopped");
    Ok(result?)
}

/// Signs a checkpoint of the chain head unless the newest one already covers it.
async fn final_checkpoint(
    store: &dyn store::Store,
    signer: &LogSigner,
) -> crate::error::Result<()> {
    let mut last = store.latest_checkpoint().await?.map(|c| c.seq).unwrap_or(0);
    if let Some(cp) = crate::access_log::checkpoint_once(store, signer, &mut last).await? {
        tracing::info!(seq = cp.seq, "final access-log checkpoint signed");
    }
    Ok(())
}
