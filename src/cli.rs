//! Operator commands that work on a store directly: `cadrex log verify|checkpoint`, `cadrex backup` and `cadrex restore`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::access_log::{self, LogSigner};
use crate::store;

/// Arguments of `cadrex log …`.
pub enum LogArgs {
    Verify { store: String, key: PathBuf },
    Checkpoint { store: String, key: PathBuf },
}

fn load_key(key: &Path) -> Option<LogSigner> {
    match LogSigner::load(key) {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("warning: {e:#}; checkpoint signatures are not checked");
            None
        }
    }
}

/// Runs a `cadrex log` command; exit 0 when the chain is intact, 1 when broken.
pub async fn log(args: LogArgs) -> anyhow::Result<ExitCode> {
    match args {
        LogArgs::Verify { store, key } => {
            let signer = load_key(&key);
            let s = store::connect(&store).await?;
            let report =
                access_log::verify(&*s, signer.as_ref().map(|k| k.public_key()), None).await?;
            s.close().await;
            if report.intact {
                println!(
                    "access log intact: rows {}..={}, {} signed checkpoints confirmed",
                    report.start_seq.min(report.end_seq),
                    report.end_seq,
                    report.checkpoints_verified
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "access log BROKEN at seq {}: {}",
                    report.first_broken_seq.unwrap_or(0),
                    report.problem
                );
                Ok(ExitCode::FAILURE)
            }
        }
        LogArgs::Checkpoint { store, key } => {
            let signer = load_key(&key);
            let s = store::connect(&store).await?;
            let cp = s.latest_checkpoint().await?;
            s.close().await;
            let Some(cp) = cp else {
                println!("no checkpoint yet");
                return Ok(ExitCode::FAILURE);
            };
            let valid = signer
                .as_ref()
                .map(|k| access_log::signature_valid(k.public_key(), &cp));
            let json = serde_json::json!({
                "seq": cp.seq,
                "hash": cp.hash,
                "time_us": cp.time_us,
                "key_id": cp.key_id,
                "signature": STANDARD.encode(&cp.signature),
                "signed_bytes": String::from_utf8_lossy(&crate::domain::chain::checkpoint_bytes(cp.seq, &cp.hash, cp.time_us, &cp.key_id)),
                "signature_valid": valid,
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cadrex backup`: a consistent copy of the store at `out` (refuses to overwrite).
pub async fn backup(store_url: &str, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!("{} exists; choose a new file", out.display());
    }
    let s = store::connect(store_url).await?;
    let result = s.backup(out).await;
    s.close().await;
    result.map_err(|e| anyhow::anyhow!("{}", e.public_message()))
}

/// `cadrex restore`: copies a SQLite backup into a new store file (or, with
/// `epoch_only`, works on a store restored by other means) and renews its epoch.
pub async fn restore(
    from: Option<&Path>,
    store_url: &str,
    epoch_only: bool,
) -> anyhow::Result<String> {
    if !epoch_only {
        let from = from.ok_or_else(|| anyhow::anyhow!("--from is required unless --epoch-only"))?;
        let path = store_url
            .strip_prefix("sqlite://")
            .or_else(|| store_url.strip_prefix("sqlite:"))
            .ok_or_else(|| anyhow::anyhow!("restoring a file needs a sqlite:// store; for PostgreSQL use pg_restore, then --epoch-only"))?;
        let path = Path::new(path.split('?').next().unwrap_or(path));
        if path.exists() {
            anyhow::bail!("{} exists; restore into a new store", path.display());
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, path)?;
    }
    let s = store::connect(store_url).await?;
    let epoch = s.renew_epoch().await;
    s.close().await;
    epoch.map_err(|e| anyhow::anyhow!("{}", e.public_message()))
}
