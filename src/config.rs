//! Layered configuration: built-in defaults, then a TOML file, then `CADREX_*` variables, then flags.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Server configuration. Durations are humantime strings (`30s`, `5m`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (loopback by default).
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://…`.
    pub store: String,
    /// Directory of the PKI files (ca.crt, server.crt/key, crl.pem, log-signing.key).
    pub pki_dir: PathBuf,
    /// Create a development PKI in `pki_dir` when it has none.
    pub create_dev_pki: bool,
    /// CA certificate; default `pki_dir/ca.crt`.
    pub ca_cert: Option<PathBuf>,
    /// Server certificate; default `pki_dir/server.crt`.
    pub server_cert: Option<PathBuf>,
    /// Server key; default `pki_dir/server.key`.
    pub server_key: Option<PathBuf>,
    /// CRL file, re-read on change and SIGHUP; default `pki_dir/crl.pem` when present.
    pub crl: Option<PathBuf>,
    /// Ed25519 PKCS#8 key that signs access-log checkpoints; default `pki_dir/log-signing.key`.
    pub log_signing_key: Option<PathBuf>,
    /// Informant key ring (`id:hex` lines, current key first); default `pki_dir/informant.key`.
    pub informant_key: Option<PathBuf>,
    /// Digest key (HMAC-SHA-256, one hex line) that keys every digest stored over data
    /// that may include informant identities; default `pki_dir/digest.key`.
    pub digest_key: Option<PathBuf>,
    /// Directory with `cadrex.cedarschema` and `*.cedar`; the shipped policies when unset.
    pub policy_dir: Option<PathBuf>,
    /// Largest decoded request message, in bytes.
    pub max_message_bytes: usize,
    /// Per-call timeout.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Time a client has to finish the TLS handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Longest gap between signed access-log checkpoints while rows arrive.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// How often certificate, key and CRL files are checked for changes.
    #[serde(with = "humantime_serde")]
    pub reload_poll: Duration,
    /// Most access-log rows committed in one group-commit transaction.
    pub log_batch_max: usize,
    /// A reply goes stale this long after its as-of time (DESIGN §6: 90 days).
    #[serde(with = "humantime_serde")]
    pub opinion_stale_after: Duration,
    /// Rule parameters (TOML); the DESIGN §6 defaults when unset.
    pub rules_file: Option<PathBuf>,
    /// Directory of `calendar-cn-YYYY.toml` files; the shipped calendar when unset.
    pub calendar_dir: Option<PathBuf>,
    /// How long change rows are kept for the feed; older cursors get CURSOR_EXPIRED.
    #[serde(with = "humantime_serde")]
    pub change_retention: Duration,
    /// How often old change rows are pruned.
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
    /// A watch stream re-reads the feed at least this often, whatever notifications say.
    #[serde(with = "humantime_serde")]
    pub feed_poll_interval: Duration,
    /// A watch stream sends a bookmark after this long without a frame.
    #[serde(with = "humantime_serde")]
    pub watch_bookmark_interval: Duration,
    /// Calls per second each calling system may make, sustained; 0 = no rate limit.
    pub rate_limit_per_system: u32,
    /// Calls a system may make at once above its rate; 0 = equal to the rate.
    pub rate_limit_burst: u32,
    /// Calls (streams until they end) a system may have in progress; 0 = no limit.
    pub max_concurrent_calls_per_system: u32,
    /// Per-system overrides of the three limits above, keyed by the system's SAN URI.
    pub system_limits: BTreeMap<String, crate::ratelimit::LimitOverride>,
    /// Prometheus endpoint (`GET /metrics`, plain HTTP): an address, or `off`.
    pub metrics_listen: String,
    /// Allow `metrics_listen` on a non-loopback address (the endpoint has no authentication).
    pub metrics_allow_non_loopback: bool,
    /// Warn (at start, after a TLS reload, and daily) when the server or CA certificate
    /// expires within this.
    #[serde(with = "humantime_serde")]
    pub expiry_warning: Duration,
    /// Warn likewise when the CRL's next update is due within this.
    #[serde(with = "humantime_serde")]
    pub crl_update_warning: Duration,
    /// A metrics listener bound by the caller (tests bind port 0); wins over `metrics_listen`.
    #[serde(skip)]
    pub metrics_listener: Option<crate::metrics::PreboundListener>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            store: "sqlite://./cadrex-data/cadrex.db".into(),
            pki_dir: PathBuf::from("./cadrex-data/pki"),
            create_dev_pki: true,
            ca_cert: None,
            server_cert: None,
            server_key: None,
            crl: None,
            log_signing_key: None,
            informant_key: None,
            digest_key: None,
            policy_dir: None,
            max_message_bytes: 4 * 1024 * 1024,
            call_timeout: Duration::from_secs(30),
            max_concurrent_streams: 128,
            handshake_timeout: Duration::from_secs(10),
            checkpoint_interval: Duration::from_secs(3),
            reload_poll: Duration::from_secs(2),
            log_batch_max: 512,
            opinion_stale_after: Duration::from_secs(90 * 24 * 3600),
            rules_file: None,
            calendar_dir: None,
            // DESIGN §5 leaves the window open; 90 days covers a quarter's sync.
            change_retention: Duration::from_secs(90 * 24 * 3600),
            prune_interval: Duration::from_secs(60),
            feed_poll_interval: Duration::from_secs(1),
            watch_bookmark_interval: Duration::from_secs(30),
            rate_limit_per_system: 0,
            rate_limit_burst: 0,
            max_concurrent_calls_per_system: 0,
            system_limits: BTreeMap::new(),
            // Off unless asked for: a fixed default port would make every second
            // `cadrex serve` on one machine (tests, several instances) fail to start.
            // Deployments set e.g. `127.0.0.1:9464` (docs/deployment.md).
            metrics_listen: "off".into(),
            metrics_allow_non_loopback: false,
            expiry_warning: Duration::from_secs(30 * 24 * 3600),
            // The development CRL is re-signed for 30 days, so a 30-day threshold would
            // warn every day of its life; a week leaves time to publish the next one.
            crl_update_warning: Duration::from_secs(7 * 24 * 3600),
            metrics_listener: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("store", &crate::store::redact_url(&self.store))
            .field("pki_dir", &self.pki_dir)
            .field("create_dev_pki", &self.create_dev_pki)
            .field("ca_cert", &self.ca_cert_path())
            .field("server_cert", &self.server_cert_path())
            .field("server_key", &self.server_key_path())
            .field("crl", &self.crl_path())
            .field("log_signing_key", &self.log_signing_key_path())
            .field("informant_key", &self.informant_key_path())
            .field("digest_key", &self.digest_key_path())
            .field("policy_dir", &self.policy_dir)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("call_timeout", &self.call_timeout)
            .field("max_concurrent_streams", &self.max_concurrent_streams)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("rate_limit_per_system", &self.rate_limit_per_system)
            .field(
                "max_concurrent_calls_per_system",
                &self.max_concurrent_calls_per_system,
            )
            .field("metrics_listen", &self.metrics_listen)
            .finish_non_exhaustive()
    }
}

/// Keys `CADREX_*` variables may set; other `CADREX_` variables (such as
/// `CADREX_LOG` or `CADREX_TEST_POSTGRES_URL`) belong to other parts.
const KEYS: &[&str] = &[
    "listen",
    "store",
    "pki_dir",
    "create_dev_pki",
    "ca_cert",
    "server_cert",
    "server_key",
    "crl",
    "log_signing_key",
    "informant_key",
    "digest_key",
    "policy_dir",
    "max_message_bytes",
    "call_timeout",
    "max_concurrent_streams",
    "handshake_timeout",
    "checkpoint_interval",
    "reload_poll",
    "log_batch_max",
    "opinion_stale_after",
    "rules_file",
    "calendar_dir",
    "change_retention",
    "prune_interval",
    "feed_poll_interval",
    "watch_bookmark_interval",
    "rate_limit_per_system",
    "rate_limit_burst",
    "max_concurrent_calls_per_system",
    "metrics_listen",
    "metrics_allow_non_loopback",
    "expiry_warning",
    "crl_update_warning",
];

impl Config {
    /// Loads defaults ← `file` (if given) ← `CADREX_*` environment ← `overrides`.
    /// Nested keys are not used, so `CADREX_CALL_TIMEOUT=10s` sets `call_timeout`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                anyhow::bail!("config file {} does not exist", f.display());
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig
            .merge(
                Env::prefixed("CADREX_")
                    .filter(|k| KEYS.contains(&k.as_str().to_ascii_lowercase().as_str())),
            )
            .merge(Serialized::defaults(overrides));
        Ok(fig.extract()?)
    }

    pub fn ca_cert_path(&self) -> PathBuf {
        self.ca_cert
            .clone()
            .unwrap_or_else(|| self.pki_dir.join("ca.crt"))
    }

    pub fn server_cert_path(&self) -> PathBuf {
        self.server_cert
            .clone()
            .unwrap_or_else(|| self.pki_dir.join("server.crt"))
    }

    pub fn server_key_path(&self) -> PathBuf {
        self.server_key
            .clone()
            .unwrap_or_else(|| self.pki_dir.join("server.key"))
    }

    /// The CRL in use: the configured one, else `pki_dir/crl.pem` when it exists.
    pub fn crl_path(&self) -> Option<PathBuf> {
        self.crl.clone().or_else(|| {
            let p = self.pki_dir.join("crl.pem");
            p.exists().then_some(p)
        })
    }

    pub fn informant_key_path(&self) -> PathBuf {
        self.informant_key
            .clone()
            .unwrap_or_else(|| self.pki_dir.join("informant.key"))
    }

    pub fn digest_key_path(&self) -> PathBuf {
        self.digest_key
            .clone()
            .unwrap_or_else(|| self.pki_dir.join("digest.key"))
    }

    pub fn log_signing_key_path(&self) -> PathBuf {
        self.log_signing_key
            .clone()
            .unwrap_or_else(|| self.pki_dir.join("log-signing.key"))
    }
}

/// Values from command-line flags; unset flags leave lower layers alone.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pki_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crl: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn layers_and_redaction() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "call_timeout = \"5s\"\nstore = \"postgres://u:secret@h/db\"",
            )?;
            jail.set_env("CADREX_MAX_CONCURRENT_STREAMS", "7");
            let o = Overrides {
                listen: Some("127.0.0.1:1".parse().unwrap()),
                ..Default::default()
            };
            let c = Config::load(Some(Path::new("c.toml")), &o).unwrap();
            assert_eq!(c.call_timeout, Duration::from_secs(5));
            assert_eq!(c.max_concurrent_streams, 7);
            assert_eq!(c.listen.port(), 1);
            let dbg = format!("{c:?}");
            assert!(!dbg.contains("secret"), "{dbg}");
            Ok(())
        });
    }
}
