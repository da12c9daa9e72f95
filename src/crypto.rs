//! The process-wide rustls crypto provider (ring): installed once by every entry point that speaks TLS, server and client tools alike.

/// Installs the ring provider as the process default; harmless when already done.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
