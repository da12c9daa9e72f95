//! The access log's group-commit appender, signed checkpoints, and chain verification.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::domain::chain::{self, GENESIS, LogEntry, Verifier};
use crate::error::{Error, Result};
use crate::store::{CheckpointRow, Store, now_us};

/// The key that signs checkpoints; every instance of one exchange shares it.
pub struct LogSigner {
    key: Ed25519KeyPair,
    key_id: String,
}

impl LogSigner {
    /// Reads an Ed25519 PKCS#8 PEM private key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let der = PrivatePkcs8KeyDer::from_pem_file(path)
            .map_err(|e| anyhow::anyhow!("reading log-signing key {}: {e}", path.display()))?;
        let key =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der()).map_err(|e| {
                anyhow::anyhow!("log-signing key {} is not Ed25519: {e}", path.display())
            })?;
        let key_id = key_id(key.public_key().as_ref());
        Ok(Self { key, key_id })
    }

    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// A checkpoint of the chain at (`seq`, `hash`), signed now.
    pub fn sign(&self, seq: i64, hash: &str) -> CheckpointRow {
        let time_us = now_us();
        let msg = chain::checkpoint_bytes(seq, hash, time_us, &self.key_id);
        CheckpointRow {
            seq,
            hash: hash.to_string(),
            time_us,
            key_id: self.key_id.clone(),
            signature: self.key.sign(&msg).as_ref().to_vec(),
        }
    }
}

/// Key id: the first 16 hex digits of SHA-256 over the raw public key.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(Sha256::digest(public_key))[..16].to_string()
}

/// True when `cp` carries a valid signature by `public_key`.
pub fn signature_valid(public_key: &[u8], cp: &CheckpointRow) -> bool {
    let msg = chain::checkpoint_bytes(cp.seq, &cp.hash, cp.time_us, &cp.key_id);
    cp.key_id == key_id(public_key)
        && UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&msg, &cp.signature)
            .is_ok()
}

type Job = (LogEntry, oneshot::Sender<Result<i64>>);

/// Handle to the appender task. Cloning shares the task.
#[derive(Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Job>,
}

impl AccessLog {
    /// Starts the group-commit appender and the checkpoint task. Both end when
    /// every handle is dropped (appender) or the returned handles are aborted.
    pub fn start(
        store: Arc<dyn Store>,
        signer: Arc<LogSigner>,
        batch_max: usize,
        checkpoint_interval: Duration,
    ) -> (Self, Vec<tokio::task::JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let a = tokio::spawn(appender(store.clone(), rx, batch_max.max(1)));
        let c = tokio::spawn(checkpointer(store, signer, checkpoint_interval));
        (Self { tx }, vec![a, c])
    }

    /// Appends one row and waits until it is durable; returns its seq.
    pub async fn append(&self, entry: LogEntry) -> Result<i64> {
        #[cfg(feature = "bench-nolog")]
        if bench_nolog::enabled() {
            drop(entry);
            return Ok(0);
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send((entry, done))
            .await
            .map_err(|_| Error::Unavailable("access log appender stopped".into()))?;
        wait.await
            .map_err(|_| Error::Unavailable("access log appender stopped".into()))?
    }
}

/// Benchmark builds only (`--features bench-nolog`): a switch that turns the
/// appender into a no-op, set only by the hidden `cadrex bench-server`, so that
/// `cadrex bench` can measure what the durable log costs. `serve` never sets it,
/// and without the feature it does not exist.
#[cfg(feature = "bench-nolog")]
pub mod bench_nolog {
    use std::sync::atomic::{AtomicBool, Ordering};

    static DISABLED: AtomicBool = AtomicBool::new(false);

    /// Replaces every appender append in this process with a no-op.
    pub fn disable_logging() {
        DISABLED.store(true, Ordering::SeqCst);
    }

    pub fn enabled() -> bool {
        DISABLED.load(Ordering::Relaxed)
    }
}

/// Takes whatever has queued up since the last commit and commits it in one
/// transaction: concurrent requests share the cost of one durable write.
async fn appender(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>, batch_max: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(batch_max);
    while rx.recv_many(&mut batch, batch_max).await > 0 {
        let entries: Vec<LogEntry> = batch.iter().map(|(e, _)| e.clone()).collect();
        let started = std::time::Instant::now();
        let appended = store.append_log(&entries).await;
        metrics::histogram!("cadrex_access_log_batch_rows").record(entries.len() as f64);
        metrics::histogram!("cadrex_access_log_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        match appended {
            Ok(seqs) => {
                for ((_, done), seq) in batch.drain(..).zip(seqs) {
                    let _ = done.send(Ok(seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = entries.len(), "access log append failed");
                for (_, done) in batch.drain(..) {
                    let _ = done.send(Err(Error::Unavailable("access log unavailable".into())));
                }
            }
        }
    }
}

/// Signs the chain head whenever it has moved since the last checkpoint, at most
/// every `interval`. Rows written inside write transactions are covered too,
/// because the head is read from the store, not from the appender.
async fn checkpointer(store: Arc<dyn Store>, signer: Arc<LogSigner>, interval: Duration) {
    let mut last = match store.latest_checkpoint().await {
        Ok(cp) => cp.map(|c| c.seq).unwrap_or(0),
        Err(e) => {
            tracing::warn!(error = %e, "reading latest checkpoint");
            0
        }
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = checkpoint_once(&*store, &signer, &mut last).await {
            tracing::warn!(error = %e, "writing access-log checkpoint");
        }
    }
}

/// Writes a checkpoint of the current head if it is newer than `last`.
pub async fn checkpoint_once(
    store: &dyn Store,
    signer: &LogSigner,
    last: &mut i64,
) -> Result<Option<CheckpointRow>> {
    let (seq, hash) = store.log_head().await?;
    if seq <= *last {
        return Ok(None);
    }
    let cp = signer.sign(seq, &hash);
    store.insert_checkpoint(&cp).await?;
    *last = seq;
    Ok(Some(cp))
}

/// Outcome of verifying the chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub intact: bool,
    pub start_seq: i64,
    pub end_seq: i64,
    /// First seq found broken or missing.
    pub first_broken_seq: Option<i64>,
    pub problem: String,
    pub checkpoints_verified: i64,
    /// Newest checkpoint confirmed, a starting point for the next incremental run.
    pub last_good_checkpoint: Option<(i64, String)>,
}

/// Recomputes the chain after `from` (a verified (seq, hash), or the genesis),
/// then checks every checkpoint from there on: its signature (when
/// `public_key` is given), that the row it names exists, and that its hash
/// matches. A chain cut off below a checkpoint is reported as rows missing.
pub async fn verify(
    store: &dyn Store,
    public_key: Option<&[u8]>,
    from: Option<(i64, String)>,
) -> Result<VerifyReport> {
    let (start_after, start_hash) = from.unwrap_or((0, GENESIS.to_string()));
    let mut report = VerifyReport {
        start_seq: start_after + 1,
        end_seq: start_after,
        ..Default::default()
    };
    if start_after > 0
        && store.log_hash_at(start_after).await?.as_deref() != Some(start_hash.as_str())
    {
        report.first_broken_seq = Some(start_after);
        report.problem = format!("row {start_after} no longer matches its verified checkpoint");
        return Ok(report);
    }
    // Checkpoints are read first: every one of them names a row that existed
    // before the rows are read, so a live server appending meanwhile cannot
    // make a checkpoint look as if it pointed past the end of the chain.
    let checkpoints = store.checkpoints().await?;
    let mut v = Verifier::new(start_after, &start_hash);
    let mut catch_up = 0;
    loop {
        let rows = store.read_log(v.last_seq, 2000).await?;
        for row in &rows {
            if let Err(b) = v.check(row) {
                report.end_seq = v.last_seq;
                report.first_broken_seq = Some(b.seq);
                report.problem = b.problem;
                return Ok(report);
            }
        }
        if !rows.is_empty() {
            continue;
        }
        let (head_seq, head_hash) = store.log_head().await?;
        if head_seq > v.last_seq && catch_up < 3 {
            // Rows committed while we were reading; read them too.
            catch_up += 1;
            continue;
        }
        report.end_seq = v.last_seq;
        if head_seq > v.last_seq {
            report.first_broken_seq = Some(v.last_seq + 1);
            report.problem = format!(
                "rows {}..={head_seq} are missing (chain head is {head_seq})",
                v.last_seq + 1
            );
            return Ok(report);
        }
        if head_seq < v.last_seq {
            report.first_broken_seq = Some(head_seq + 1);
            report.problem =
                format!("rows after the chain head ({head_seq}) were added outside the appender");
            return Ok(report);
        }
        if head_seq == v.last_seq && head_seq > 0 && head_hash != v.last_hash {
            report.first_broken_seq = Some(head_seq);
            report.problem = "chain head does not match the last row".into();
            return Ok(report);
        }
        break;
    }
    for cp in checkpoints {
        if cp.seq < start_after {
            continue;
        }
        if let Some(pk) = public_key
            && !signature_valid(pk, &cp)
        {
            report.first_broken_seq = Some(cp.seq);
            report.problem = format!("checkpoint at seq {} has an invalid signature", cp.seq);
            return Ok(report);
        }
        if cp.seq > v.last_seq {
            report.first_broken_seq = Some(v.last_seq + 1);
            report.problem = format!(
                "rows {}..={} are missing below the signed checkpoint at seq {}",
                v.last_seq + 1,
                cp.seq,
                cp.seq
            );
            return Ok(report);
        }
        match store.log_hash_at(cp.seq).await? {
            Some(h) if h == cp.hash => {
                report.checkpoints_verified += 1;
                report.last_good_checkpoint = Some((cp.seq, cp.hash.clone()));
            }
            _ => {
                report.first_broken_seq = Some(cp.seq);
                report.problem = format!("row {} does not match its signed checkpoint", cp.seq);
                return Ok(report);
            }
        }
    }
    report.intact = true;
    Ok(report)
}

/// Hex SHA-256 of an encoded response: the evidence of what a read disclosed.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
