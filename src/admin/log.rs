//! `cadrex log verify|checkpoint`: checks the access log's hash chain and signed checkpoints in a store, with no server running.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use anyhow::Context;

use crate::access_log::{self, LogSigner};
use crate::protojson;
use crate::store::{self, CheckpointRow};

/// `cadrex log …`: access-log tools.
#[derive(clap::Subcommand, Debug)]
pub enum LogCommand {
    /// Recomputes the hash chain, checks the per-cadre index against it, and
    /// checks every signed checkpoint (and an exported one) with a public key
    /// you supply. Fails unless signatures can be checked or --no-signatures.
    Verify {
        #[arg(long)]
        store: String,
        /// The exchange's log-signing public key (PEM `PUBLIC KEY`, as
        /// `cadrex pki init` writes `log-signing.pub`). Keys stored in the
        /// database are never trusted.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The log-signing private key, at the exchange itself: its public half is used.
        #[arg(long, conflicts_with = "public_key")]
        key: Option<PathBuf>,
        /// Checks the chain without checking checkpoint signatures.
        #[arg(long, conflicts_with_all = ["public_key", "key"])]
        no_signatures: bool,
        /// A checkpoint exported earlier (the protobuf JSON of
        /// `cadrex.v1.Checkpoint` that `GetCheckpoint` returns and
        /// `cadrex log checkpoint` prints), kept outside this database.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Rows covered by no signed checkpoint and older than this fail the
        /// check (a running server signs every few seconds, a stopping one
        /// signs its last row).
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        max_unsigned_age: std::time::Duration,
    },
    /// Prints the newest signed checkpoint as the protobuf JSON of `cadrex.v1.Checkpoint`.
    Checkpoint {
        #[arg(long)]
        store: String,
        /// Checks the checkpoint's signature with this public key and includes it.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The log-signing private key: its public half is used.
        #[arg(long, conflicts_with = "public_key")]
        key: Option<PathBuf>,
    },
}

impl LogCommand {
    /// Runs the command; see [`log`] for the exit code.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        log(self.into()).await
    }
}

impl From<LogCommand> for LogArgs {
    fn from(c: LogCommand) -> Self {
        let key = |public_key: Option<PathBuf>, key: Option<PathBuf>| match (public_key, key) {
            (Some(p), _) => LogKey::Public(p),
            (None, Some(k)) => LogKey::Private(k),
            (None, None) => LogKey::None,
        };
        match c {
            LogCommand::Verify {
                store,
                public_key,
                key: private,
                no_signatures,
                checkpoint,
                max_unsigned_age,
            } => LogArgs::Verify {
                store,
                key: key(public_key, private),
                no_signatures,
                checkpoint,
                max_unsigned_age,
            },
            LogCommand::Checkpoint {
                store,
                public_key,
                key: private,
            } => LogArgs::Checkpoint {
                store,
                key: key(public_key, private),
            },
        }
    }
}

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
/// JSON transcoding of `GetCheckpoint` returns and what `cadrex client log
/// checkpoint` prints: both go through [`protojson`]. Empty fields are omitted.
pub fn checkpoint_json(cp: &CheckpointRow, public_key: &[u8]) -> serde_json::Value {
    let message = crate::proto::Checkpoint {
        seq: cp.seq,
        hash: cp.hash.clone(),
        time: Some(prost_types::Timestamp {
            seconds: cp.time_us.div_euclid(1_000_000),
            nanos: (cp.time_us.rem_euclid(1_000_000) * 1000) as i32,
        }),
        key_id: cp.key_id.clone(),
        signature: cp.signature.clone(),
        signed_bytes: crate::domain::chain::checkpoint_bytes(
            cp.seq, &cp.hash, cp.time_us, &cp.key_id,
        ),
        public_key: public_key.to_vec(),
    };
    // The descriptor set is compiled from the same protos as the type, so
    // this cannot fail short of a broken build.
    protojson::to_json(&message, "cadrex.v1.Checkpoint")
        .expect("cadrex.v1.Checkpoint is in the built-in descriptor set")
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
