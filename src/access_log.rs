//! The access log's group-commit appender, signed checkpoints, and chain verification.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::digest::DigestKey;
use crate::domain::chain::{self, GENESIS, LogEntry, Verifier};
use crate::domain::clock::now_us;
use crate::error::{Error, Result};
use crate::store::{CheckpointRow, Store};

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

/// DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) before its 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The raw Ed25519 public key as PEM `PUBLIC KEY` (SubjectPublicKeyInfo, the
/// form `openssl pkey -pubout` writes), for `log-signing.pub`.
pub fn public_key_pem(raw: &[u8]) -> String {
    use base64::Engine;
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(raw);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
}

/// Reads a log-signing public key: PEM `PUBLIC KEY` (Ed25519
/// SubjectPublicKeyInfo, as `cadrex pki init` writes `log-signing.pub`).
/// Returns the raw 32 key bytes.
pub fn load_public_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading public key {}: {e}", path.display()))?;
    let body = text
        .split("-----BEGIN PUBLIC KEY-----")
        .nth(1)
        .and_then(|r| r.split("-----END PUBLIC KEY-----").next())
        .ok_or_else(|| anyhow::anyhow!("{} holds no PEM PUBLIC KEY", path.display()))?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| anyhow::anyhow!("{}: not base64: {e}", path.display()))?;
    match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(raw) if raw.len() == 32 => Ok(raw.to_vec()),
        _ => anyhow::bail!("{} is not an Ed25519 public key", path.display()),
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
        digest: DigestKey,
        batch_max: usize,
        checkpoint_interval: Duration,
    ) -> (Self, Vec<tokio::task::JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let a = tokio::spawn(appender(store.clone(), digest, rx, batch_max.max(1)));
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
///
/// One caller cannot fail another's call: a row holding a value a store could
/// refuse is written sanitized (and its call answered INVALID_ARGUMENT once
/// that row is durable), and a batch the store still refuses for a reason
/// other than an outage is retried row by row, so only the row it refuses
/// fails, and only its own call.
async fn appender(
    store: Arc<dyn Store>,
    digest: DigestKey,
    mut rx: mpsc::Receiver<Job>,
    batch_max: usize,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(batch_max);
    while rx.recv_many(&mut batch, batch_max).await > 0 {
        let mut refused: Vec<Option<Vec<&'static str>>> = Vec::with_capacity(batch.len());
        let entries: Vec<LogEntry> = batch
            .iter()
            .map(|(e, _)| match sanitize(e, &digest) {
                Some((clean, fields)) => {
                    refused.push(Some(fields));
                    clean
                }
                None => {
                    refused.push(None);
                    e.clone()
                }
            })
            .collect();
        let sanitized = refused.iter().filter(|r| r.is_some()).count();
        if sanitized > 0 {
            metrics::counter!("cadrex_access_log_rows_sanitized").increment(sanitized as u64);
        }
        let started = std::time::Instant::now();
        let appended = store.append_log(&entries).await;
        metrics::histogram!("cadrex_access_log_batch_rows").record(entries.len() as f64);
        metrics::histogram!("cadrex_access_log_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        match appended {
            Ok(seqs) => {
                for (((_, done), fields), seq) in batch.drain(..).zip(&refused).zip(seqs) {
                    answer(done, fields, Ok(seq));
                }
            }
            Err(e) if is_transient(&e) || entries.len() == 1 => {
                tracing::error!(error = %e, rows = entries.len(), "access log append failed");
                for (_, done) in batch.drain(..) {
                    let _ = done.send(Err(Error::Unavailable("access log unavailable".into())));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = entries.len(), "access log batch refused; writing its rows one by one");
                for (((_, done), fields), entry) in batch.drain(..).zip(&refused).zip(&entries) {
                    let seq = match store.append_log(std::slice::from_ref(entry)).await {
                        Ok(seqs) => seqs
                            .first()
                            .copied()
                            .ok_or_else(|| Error::Unavailable("access log unavailable".into())),
                        Err(e) => {
                            tracing::error!(error = %e, principal = %entry.principal, "access log row refused");
                            Err(Error::Unavailable("access log unavailable".into()))
                        }
                    };
                    answer(done, fields, seq);
                }
            }
        }
    }
}

/// Answers one call of a batch: a row written sanitized fails its call, after
/// the sanitized row is durable.
fn answer(
    done: oneshot::Sender<Result<i64>>,
    refused: &Option<Vec<&'static str>>,
    seq: Result<i64>,
) {
    let _ = done.send(match (seq, refused) {
        (Ok(_), Some(fields)) => Err(refused_row(fields)),
        (r, _) => r,
    });
}

/// Longest value (in bytes) one field of a log row may hold. A cadre or record
/// name is under 150 bytes, a principal URI under 100, an officer at most 128
/// characters; anything longer is not a value a well-formed call produces.
pub const MAX_FIELD_BYTES: usize = 512;

/// Prefixes the log writes itself, in place of values it will not store
/// ([`sanitized_value`], a refused officer, an undecodable body's length):
/// a caller's own request id or officer may not begin with one, or an
/// ordinary call's row could be made to read like a refused one.
pub const RESERVED_PREFIXES: [&str; 3] = ["sanitized:", "refused:", "undecodable:"];

/// True when `value` begins with one of [`RESERVED_PREFIXES`].
pub fn reserved(value: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| value.starts_with(p))
}

/// True when a store could refuse `value` (PostgreSQL refuses NUL in text) or
/// it is longer than any well-formed call produces.
pub fn refused_value(value: &str) -> bool {
    value.len() > MAX_FIELD_BYTES || value.contains('\0')
}

/// What a refused value becomes in a sanitized row: its length and keyed
/// digest (DESIGN §2: the value may be anything, an informant's name
/// included), enough for the exchange to match it against a copy the caller
/// shows, nothing a store refuses and nothing a reader of the store can test
/// a guess against.
pub fn sanitized_value(value: &str, digest: &DigestKey) -> String {
    format!(
        "sanitized:len={}:{}",
        value.len(),
        digest.keyed(value.as_bytes())
    )
}

/// The entry with every refused value replaced by [`sanitized_value`], and the
/// names of the fields that held one; `None` when nothing needed replacing.
pub fn sanitize(entry: &LogEntry, digest: &DigestKey) -> Option<(LogEntry, Vec<&'static str>)> {
    let mut out = entry.clone();
    let mut fields = Vec::new();
    let mut fix = |name: &'static str, v: &mut String| {
        if refused_value(v) {
            *v = sanitized_value(v, digest);
            if !fields.contains(&name) {
                fields.push(name);
            }
        }
    };
    fix("principal", &mut out.principal);
    fix("fingerprint", &mut out.fingerprint);
    fix("officer", &mut out.officer);
    fix("method", &mut out.method);
    for r in &mut out.resources {
        fix("resources", r);
    }
    fix("purpose", &mut out.purpose);
    fix("decision", &mut out.decision);
    for p in &mut out.policy_ids {
        fix("policy_ids", p);
    }
    fix("request_id", &mut out.request_id);
    fix("response_sha256", &mut out.response_sha256);
    (!fields.is_empty()).then_some((out, fields))
}

/// A store error that says "try again" rather than "this row is wrong".
fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Unavailable(_) | Error::Aborted { .. })
}

/// The error a call gets whose row had to be written sanitized.
fn refused_row(fields: &[&'static str]) -> Error {
    Error::InvalidArgument {
        violations: fields
            .iter()
            .map(|f| {
                crate::error::FieldViolation::new(
                    *f,
                    "holds a value the access log cannot store (NUL or over-long)",
                )
            })
            .collect(),
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
    verify_with(store, public_key, from, &VerifyOptions::default()).await
}

/// What `cadrex log verify` checks beyond the stored chain and checkpoints.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// A checkpoint exported earlier and kept elsewhere, which a rewriter of
    /// the store cannot have deleted or re-signed.
    pub external: Option<CheckpointRow>,
    /// Rows that no checkpoint covers and that are older than this are a
    /// break: a running server signs every few seconds and a stopping one
    /// signs its last row, so an old unsigned tail means checkpoints were
    /// deleted (or the chain rewritten and its checkpoints dropped).
    pub max_unsigned_age: Option<Duration>,
}

/// [`verify`] with the checks of `options`.
pub async fn verify_with(
    store: &dyn Store,
    public_key: Option<&[u8]>,
    from: Option<(i64, String)>,
    options: &VerifyOptions,
) -> Result<VerifyReport> {
    let external = options.external.as_ref();
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
    let mut checkpoints = store.checkpoints().await?;
    if let Some(cp) = external {
        checkpoints.push(cp.clone());
        checkpoints.sort_by_key(|c| (c.seq, c.time_us));
    }
    let mut v = Verifier::new(start_after, &start_hash);
    let mut catch_up = 0;
    loop {
        let rows = store.read_log(v.last_seq, 2000).await?;
        let before = v.last_seq;
        for row in &rows {
            if let Err(b) = v.check(row) {
                report.end_seq = v.last_seq;
                report.first_broken_seq = Some(b.seq);
                report.problem = b.problem;
                return Ok(report);
            }
        }
        if !rows.is_empty() {
            if let Some(b) = check_index(store, before, &rows).await? {
                report.end_seq = v.last_seq;
                report.first_broken_seq = Some(b.seq);
                report.problem = b.problem;
                return Ok(report);
            }
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
        let which = if external == Some(&cp) {
            "the exported checkpoint"
        } else {
            "the stored checkpoint"
        };
        if let Some(pk) = public_key
            && !signature_valid(pk, &cp)
        {
            report.first_broken_seq = Some(cp.seq);
            report.problem = format!(
                "{which} at seq {} has an invalid signature (or is signed by another key)",
                cp.seq
            );
            return Ok(report);
        }
        if cp.seq > v.last_seq {
            report.first_broken_seq = Some(v.last_seq + 1);
            report.problem = format!(
                "rows {}..={} are missing below {which} at seq {}",
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
                report.problem = format!("row {} does not match {which}", cp.seq);
                return Ok(report);
            }
        }
    }
    if let Some((cadre, seq)) = store.log_cadre_index(v.last_seq, None).await?.first() {
        report.first_broken_seq = Some(*seq);
        report.problem = format!(
            "the per-cadre index names {cadre} at seq {seq}, after the last row of the chain"
        );
        return Ok(report);
    }
    if let Some(max_age) = options.max_unsigned_age {
        let covered = report
            .last_good_checkpoint
            .as_ref()
            .map(|c| c.0)
            .unwrap_or(start_after);
        if v.last_seq > covered
            && let Some(oldest) = store.read_log(covered, 1).await?.first()
        {
            let age_us = now_us().saturating_sub(oldest.time_us);
            if age_us > max_age.as_micros() as i64 {
                report.first_broken_seq = Some(oldest.seq);
                report.problem = format!(
                    "rows {}..={} are covered by no signed checkpoint, and the oldest is {}s old",
                    oldest.seq,
                    v.last_seq,
                    age_us / 1_000_000
                );
                return Ok(report);
            }
        }
    }
    report.intact = true;
    Ok(report)
}

/// Compares the per-cadre index rows for the seqs of `rows` (which follow
/// `after_seq` without a gap) with what the rows themselves name: an index
/// row deleted or added changes "who read this cadre" and is a break.
async fn check_index(
    store: &dyn Store,
    after_seq: i64,
    rows: &[chain::LogRow],
) -> Result<Option<chain::Break>> {
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    let stored = store.log_cadre_index(after_seq, Some(last.seq)).await?;
    let mut expected: Vec<(String, i64)> = rows
        .iter()
        .flat_map(|r| {
            crate::store::cadres_touched(&r.entry.resources)
                .into_iter()
                .map(move |c| (c, r.seq))
        })
        .collect();
    expected.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    if stored == expected {
        return Ok(None);
    }
    let first = stored
        .iter()
        .zip(&expected)
        .find(|(a, b)| a != b)
        .map(|(a, b)| a.1.min(b.1))
        .or_else(|| {
            let n = stored.len().min(expected.len());
            stored.get(n).or(expected.get(n)).map(|x| x.1)
        })
        .unwrap_or(last.seq);
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| e.1 == first && !stored.contains(e))
        .map(|e| &e.0)
        .collect();
    let added: Vec<&String> = stored
        .iter()
        .filter(|e| e.1 == first && !expected.contains(e))
        .map(|e| &e.0)
        .collect();
    Ok(Some(chain::Break {
        seq: first,
        problem: format!(
            "the per-cadre index does not match row {first} (missing {missing:?}, not in the row {added:?})"
        ),
    }))
}

/// Hex SHA-256 of an encoded response: the evidence of what a read disclosed.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
