//! Operator commands that work on a store directly: `cadrex log verify|checkpoint`, `cadrex backup` and `cadrex restore`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use anyhow::Context;

use crate::access_log::{self, LogSigner};
use crate::store::{self, CheckpointRow};

/// Arguments of `cadrex log …`.
pub enum LogArgs {
    Verify {
        store: String,
        key: LogKey,
        no_signatures: bool,
        checkpoint: Option<PathBuf>,
        max_unsigned_age: std::time::Duration,
    },
    Checkpoint {
        store: String,
        key: LogKey,
    },
}

/// Where the operator's log-signing public key comes from.
pub enum LogKey {
    /// PEM `PUBLIC KEY` file (`log-signing.pub`).
    Public(PathBuf),
    /// The private key file, at the exchange itself.
    Private(PathBuf),
    None,
}

impl LogKey {
    /// The raw public key, `None` when none was given.
    fn load(&self) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(match self {
            LogKey::Public(p) => Some(access_log::load_public_key(p)?),
            LogKey::Private(p) => Some(LogSigner::load(p)?.public_key().to_vec()),
            LogKey::None => None,
        })
    }
}

/// Runs a `cadrex log` command; exit 0 when the chain is intact, 1 when broken
/// or when it could not be checked as asked.
pub async fn log(args: LogArgs) -> anyhow::Result<ExitCode> {
    match args {
        LogArgs::Verify {
            store,
            key,
            no_signatures,
            checkpoint,
            max_unsigned_age,
        } => {
            let public_key = key.load()?;
            if public_key.is_none() && !no_signatures {
                eprintln!(
                    "cannot check checkpoint signatures: give --public-key FILE (log-signing.pub), \
                     or --no-signatures to check the chain alone"
                );
                return Ok(ExitCode::FAILURE);
            }
            let external = match &checkpoint {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Some(checkpoint_from_json(&text).with_context(|| {
                        format!("{} is not a cadrex.v1.Checkpoint", path.display())
                    })?)
                }
                None => None,
            };
            let s = store::connect(&store).await?;
            let options = access_log::VerifyOptions {
                external: external.clone(),
                max_unsigned_age: Some(max_unsigned_age),
            };
            let report =
                access_log::verify_with(&*s, public_key.as_deref(), None, &options).await?;
            s.close().await;
            if report.intact {
                println!(
                    "access log intact: rows {}..={}, {} signed checkpoints confirmed{}{}",
                    report.start_seq.min(report.end_seq),
                    report.end_seq,
                    report.checkpoints_verified,
                    if external.is_some() {
                        " (including the exported one)"
                    } else {
                        ""
                    },
                    if public_key.is_none() {
                        "; signatures NOT checked (--no-signatures)"
                    } else {
                        ""
                    }
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
            let public_key = key.load()?;
            let s = store::connect(&store).await?;
            let cp = s.latest_checkpoint().await?;
            s.close().await;
            let Some(cp) = cp else {
                eprintln!("no checkpoint yet");
                return Ok(ExitCode::FAILURE);
            };
            if let Some(pk) = &public_key
                && !access_log::signature_valid(pk, &cp)
            {
                eprintln!("the newest checkpoint's signature does not verify with this public key");
                return Ok(ExitCode::FAILURE);
            }
            let json = checkpoint_json(&cp, public_key.as_deref().unwrap_or_default());
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cadrex.v1.Checkpoint` in proto3 canonical JSON (lowerCamelCase names,
/// int64 as a string, bytes as base64, Timestamp as RFC 3339), exactly what a
/// JSON transcoding of `GetCheckpoint` returns. Empty fields are omitted.
pub fn checkpoint_json(cp: &CheckpointRow, public_key: &[u8]) -> serde_json::Value {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(cp.time_us) * 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let mut m = serde_json::Map::new();
    m.insert("seq".into(), cp.seq.to_string().into());
    m.insert("hash".into(), cp.hash.clone().into());
    m.insert("time".into(), time.into());
    m.insert("keyId".into(), cp.key_id.clone().into());
    m.insert("signature".into(), STANDARD.encode(&cp.signature).into());
    let signed = crate::domain::chain::checkpoint_bytes(cp.seq, &cp.hash, cp.time_us, &cp.key_id);
    m.insert("signedBytes".into(), STANDARD.encode(signed).into());
    if !public_key.is_empty() {
        m.insert("publicKey".into(), STANDARD.encode(public_key).into());
    }
    serde_json::Value::Object(m)
}

/// Reads the protobuf JSON of a `cadrex.v1.Checkpoint`. Accepts what proto3
/// JSON parsers accept for these fields: int64 as string or number, bytes in
/// standard or URL-safe base64, lowerCamelCase or original field names. The
/// `publicKey` in the file is ignored: only the operator's key is trusted.
pub fn checkpoint_from_json(text: &str) -> anyhow::Result<CheckpointRow> {
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    let v: serde_json::Value = serde_json::from_str(text)?;
    let field = |camel: &str, snake: &str| v.get(camel).or_else(|| v.get(snake)).cloned();
    let seq = match field("seq", "seq") {
        Some(serde_json::Value::String(s)) => s.parse::<i64>()?,
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("seq is not an integer"))?,
        _ => anyhow::bail!("seq is missing"),
    };
    let text_field = |camel: &str, snake: &str| -> anyhow::Result<String> {
        match field(camel, snake) {
            Some(serde_json::Value::String(s)) => Ok(s),
            _ => anyhow::bail!("{camel} is missing"),
        }
    };
    let hash = text_field("hash", "hash")?;
    let key_id = text_field("keyId", "key_id")?;
    let sig = text_field("signature", "signature")?;
    let signature = STANDARD
        .decode(&sig)
        .or_else(|_| URL_SAFE.decode(&sig))
        .or_else(|_| URL_SAFE_NO_PAD.decode(&sig))
        .map_err(|e| anyhow::anyhow!("signature is not base64: {e}"))?;
    let time = text_field("time", "time")?;
    let t = time::OffsetDateTime::parse(&time, &time::format_description::well_known::Rfc3339)
        .map_err(|e| anyhow::anyhow!("time is not RFC 3339: {e}"))?;
    let time_us = i64::try_from(t.unix_timestamp_nanos() / 1000)?;
    Ok(CheckpointRow {
        seq,
        hash,
        time_us,
        key_id,
        signature,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_json_round_trips_in_proto3_canonical_form() {
        let cp = CheckpointRow {
            seq: 9_007_199_254_740_993,
            hash: "ab".repeat(32),
            time_us: 1_764_800_000_123_456,
            key_id: "0123456789abcdef".into(),
            signature: vec![0xfb; 64],
        };
        let json = checkpoint_json(&cp, &[7; 32]);
        assert_eq!(json["seq"], "9007199254740993", "int64 as a string");
        assert_eq!(json["time"], "2025-12-03T22:13:20.123456Z");
        assert!(json.get("key_id").is_none() && json["keyId"].is_string());
        let back = checkpoint_from_json(&json.to_string()).unwrap();
        assert_eq!(back, cp);
        // Numbers for int64 and original field names are accepted too.
        let alt = serde_json::json!({
            "seq": 3, "hash": "h", "time": "2026-01-01T00:00:00Z",
            "key_id": "k", "signature": STANDARD.encode([1u8, 2])
        });
        assert_eq!(checkpoint_from_json(&alt.to_string()).unwrap().seq, 3);
        assert!(checkpoint_from_json("{\"seq\": \"x\"}").is_err());
    }
}
