//! `cadrex backup` and `cadrex restore`: a consistent copy of a SQLite store, and a restore that renews the epoch.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::store;

/// `cadrex backup`: writes a consistent copy of a SQLite store (PostgreSQL: use pg_dump).
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[arg(long)]
    store: String,
    #[arg(long)]
    out: PathBuf,
}

impl BackupArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        backup(&self.store, &self.out).await?;
        println!("backup written to {}", self.out.display());
        Ok(ExitCode::SUCCESS)
    }
}

/// `cadrex restore`: restores a SQLite backup into a new store and gives it a
/// new epoch, so that change-feed cursors from before the restore are refused.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Backup file (from `cadrex backup`); not needed with --epoch-only.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Target store URL.
    #[arg(long)]
    store: String,
    /// Only renew the epoch (after restoring PostgreSQL with pg_restore).
    #[arg(long)]
    epoch_only: bool,
}

impl RestoreArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let epoch = restore(self.from.as_deref(), &self.store, self.epoch_only).await?;
        println!(
            "restored; new epoch {epoch}; feed cursors from before the restore are refused (CURSOR_EXPIRED)"
        );
        Ok(ExitCode::SUCCESS)
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
