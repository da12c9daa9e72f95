//! `cadrex keys`: `rotate` seals every stored informant block under a fresh key in batched transactions, then retires the old keys from the key file; `digest-init` and `rekey-digests` make the digest key and key an older store's digests.
//!
//! Rotation is an offline operation: stop every `cadrex serve` on the store,
//! rotate, start them again. A running server keeps the key ring it loaded at
//! start, so it could neither open blocks resealed under the new key nor stop
//! sealing under a key this command retires.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use anyhow::{Context, bail};

use crate::informant::KeyRing;
use crate::store::{self, Resealed};

/// Rows re-encrypted per transaction unless told otherwise.
pub const DEFAULT_BATCH: usize = 500;

/// Marks a key file whose rotation has not finished; a later run resumes it
/// under the same new key instead of starting over with yet another one.
const IN_PROGRESS: &str = "# cadrex keys rotate: in progress to ";

/// Sweeps over the store before giving up on rows that keep appearing under
/// old keys (a server still running with the old key file).
const MAX_SWEEPS: usize = 5;

/// What `rotate` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotateSummary {
    /// The key every informant block is now sealed under.
    pub key_id: String,
    /// True when an interrupted rotation was finished rather than a new one begun.
    pub resumed: bool,
    pub resealed: u64,
    /// Key ids removed from the key file.
    pub retired: Vec<String>,
}

impl fmt::Display for RotateSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "informant key {}{}: {} blocks re-encrypted; retired {}",
            self.key_id,
            if self.resumed { " (resumed)" } else { "" },
            self.resealed,
            if self.retired.is_empty() {
                "none".to_string()
            } else {
                self.retired.join(", ")
            }
        )
    }
}

/// One `id:hex` line of the key file, kept as text so that old keys are
/// written back exactly as they were.
#[derive(Clone)]
struct KeyLine {
    id: String,
    line: String,
}

/// The key lines of `text`, current first, and the key id of an unfinished rotation.
fn read_key_lines(text: &str) -> anyhow::Result<(Vec<KeyLine>, Option<String>)> {
    // Parsing validates every key before anything is written.
    KeyRing::parse(text)?;
    let mut pending = None;
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(id) = line.strip_prefix(IN_PROGRESS) {
            pending = Some(id.trim().to_string());
        } else if !line.is_empty() && !line.starts_with('#') {
            let (id, _) = line.split_once(':').unwrap_or((line, ""));
            keys.push(KeyLine {
                id: id.trim().to_string(),
                line: line.to_string(),
            });
        }
    }
    Ok((keys, pending))
}

/// A key id not used before: `k` and one more than the highest `k<number>`
/// in the file (the development PKI starts at `k1`).
fn next_key_id(keys: &[KeyLine]) -> String {
    let highest = keys
        .iter()
        .filter_map(|k| k.id.strip_prefix('k')?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    format!("k{}", highest + 1)
}

/// Replaces `path` atomically with `contents`, readable by the owner only:
/// a crash leaves the old file or the new one, never half of either.
fn write_key_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("informant.key");
    let tmp: PathBuf = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        // The rename itself is durable only once the directory is synced.
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn file_text(keys: &[KeyLine], pending: Option<&str>) -> String {
    let mut out =
        String::from("# cadrex informant keys: id:hex (AES-256); the first seals new data\n");
    if let Some(id) = pending {
        out.push_str(&format!("{IN_PROGRESS}{id}\n"));
    }
    for k in keys {
        out.push_str(&k.line);
        out.push('\n');
    }
    out
}

/// `cadrex keys …`: informant-key tools.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Re-encrypts every informant block under a new key and retires the old
    /// ones. Offline: stop every server on the store first, start them after.
    /// An interrupted run is finished by running it again.
    Rotate {
        #[arg(long)]
        store: String,
        /// Informant key file (`id:hex` lines, current key first).
        #[arg(long, default_value = "./cadrex-data/pki/informant.key")]
        key_file: std::path::PathBuf,
        /// Rows re-encrypted per transaction.
        #[arg(long, default_value_t = DEFAULT_BATCH,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
        batch: usize,
    },
    /// Writes a new digest key (the secret that keys every stored digest
    /// over data that may include an informant). Refuses to replace an
    /// existing key: the store's digests would no longer compare.
    DigestInit {
        /// Where to write it (mode 0600).
        #[arg(long, default_value = "./cadrex-data/pki/digest.key")]
        key_file: std::path::PathBuf,
    },
    /// Converts the unkeyed digests an older version stored (payload digests
    /// of records and their versions, request digests of the replay cache)
    /// to the keyed form. Safe while servers run; idempotent. A server does
    /// this once at start; run it again after the last older server on the
    /// store has stopped.
    RekeyDigests {
        #[arg(long)]
        store: String,
        /// The digest key file.
        #[arg(long, default_value = "./cadrex-data/pki/digest.key")]
        key_file: std::path::PathBuf,
        /// Rows converted per transaction.
        #[arg(long, default_value_t = 1000,
              value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch: i64,
    },
}

impl KeysCommand {
    pub async fn run(self) -> anyhow::Result<std::process::ExitCode> {
        match self {
            KeysCommand::Rotate {
                store,
                key_file,
                batch,
            } => println!("{}", rotate(&store, &key_file, batch).await?),
            KeysCommand::DigestInit { key_file } => {
                crate::pki::write_digest_key(&key_file)?;
                println!(
                    "digest key written to {}; back it up with the informant keys",
                    key_file.display()
                );
            }
            KeysCommand::RekeyDigests {
                store,
                key_file,
                batch,
            } => {
                let key = crate::digest::DigestKey::load(&key_file)?;
                let store = store::connect(&store).await?;
                let result = store::digests::rekey_and_close(&*store, &key, batch).await;
                store.close().await;
                let (summary, end) = result?;
                println!(
                    "{summary}; the upgrade ends at seq {end}: rows up to it may hold unkeyed                      response digests from older servers"
                );
            }
        }
        Ok(std::process::ExitCode::SUCCESS)
    }
}

/// Rotates the informant key of the store at `store_url` whose key file is
/// `key_file`, re-encrypting `batch` rows per transaction.
///
/// Order of work, so that an interruption at any point loses nothing: the
/// new key is written first in the file with the old ones kept after it and
/// an in-progress marker; then rows are resealed (each batch one
/// transaction, each row only if unchanged since read); the old keys leave
/// the file only when no row is sealed under them. Running again after an
/// interruption resumes with the same new key, skipping rows already under it.
///
/// Fails, keeping every key, when a row is sealed under a key the file does
/// not hold, or when rows keep appearing under old keys (a server is still
/// running with the old file).
pub async fn rotate(
    store_url: &str,
    key_file: &Path,
    batch: usize,
) -> anyhow::Result<RotateSummary> {
    let batch = batch.clamp(1, 10_000);
    let text = fs::read_to_string(key_file)
        .with_context(|| format!("reading informant key file {}", key_file.display()))?;
    let (mut keys, pending) = read_key_lines(&text)
        .with_context(|| format!("informant key file {}", key_file.display()))?;
    let resumed = pending.as_deref() == Some(keys[0].id.as_str());
    if !resumed {
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let id = next_key_id(&keys);
        keys.insert(
            0,
            KeyLine {
                line: format!("{id}:{}", hex::encode(raw)),
                id,
            },
        );
        write_key_file(key_file, &file_text(&keys, Some(&keys[0].id)))?;
    }
    let key_id = keys[0].id.clone();
    let ring = KeyRing::parse(&file_text(&keys, None))?;
    tracing::info!(key_id = %key_id, resumed, "rotating informant key");

    let store = store::connect(store_url).await?;
    let mut result = reseal_all(&*store, &ring, &key_id, batch).await;
    // The blocks resealed (and re-padded) replaced older ones whose length
    // told a name's: scrub the space they held.
    if matches!(result, Ok(n) if n > 0)
        && let Err(e) = store.scrub(&["records"]).await
    {
        result = Err(e.into());
    }
    store.close().await;
    let resealed = result?;

    let retired: Vec<String> = keys[1..].iter().map(|k| k.id.clone()).collect();
    write_key_file(key_file, &file_text(&keys[..1], None))?;
    tracing::info!(key_id = %key_id, resealed, retired = ?retired, "informant key rotated");
    Ok(RotateSummary {
        key_id,
        resumed,
        resealed,
        retired,
    })
}

/// Sweeps the store until no row is sealed under another key than `key_id`.
async fn reseal_all(
    store: &dyn store::Store,
    ring: &KeyRing,
    key_id: &str,
    batch: usize,
) -> anyhow::Result<u64> {
    let mut resealed = 0;
    for _ in 0..MAX_SWEEPS {
        let mut after = String::new();
        let mut seen = 0;
        loop {
            let blocks = store
                .informant_blocks_not_under(key_id, &after, batch as i64)
                .await?;
            let Some(last) = blocks.last() else { break };
            after = last.record_id.clone();
            seen += blocks.len();
            let mut out = Vec::with_capacity(blocks.len());
            for b in &blocks {
                // The same AAD as the records service: owner system and source id.
                let context =
                    crate::informant::informant_context(&b.owner_system, &b.source_record_id);
                let plain = ring.open(&b.sealed, &context).map_err(|e| {
                    anyhow::anyhow!("record {}: {e} (key id {})", b.record_id, b.sealed.key_id)
                })?;
                out.push(Resealed {
                    record_id: b.record_id.clone(),
                    old_nonce: b.sealed.nonce.clone(),
                    sealed: ring.seal(&plain, &context)?,
                });
            }
            resealed += store.reseal_informants(&out).await?;
        }
        if seen == 0 {
            return Ok(resealed);
        }
    }
    bail!(
        "rows keep appearing under old informant keys after {MAX_SWEEPS} sweeps; \
         stop every cadrex serve on this store and run `cadrex keys rotate` again (it resumes)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines_marker_and_next_id() {
        let text = format!(
            "# comment\n{IN_PROGRESS}k3\nk3:{}\nk1:{}\n",
            "33".repeat(32),
            "11".repeat(32)
        );
        let (keys, pending) = read_key_lines(&text).unwrap();
        assert_eq!(pending.as_deref(), Some("k3"));
        assert_eq!(
            keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            ["k3", "k1"]
        );
        assert_eq!(next_key_id(&keys), "k4");
        let written = file_text(&keys[..1], None);
        assert!(!written.contains(IN_PROGRESS));
        assert_eq!(KeyRing::parse(&written).unwrap().current_id(), "k3");
        assert!(read_key_lines("k1:abcd").is_err());
    }

    #[test]
    fn key_file_is_replaced_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("informant.key");
        fs::write(&path, "old").unwrap();
        write_key_file(&path, "new\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
    }
}
