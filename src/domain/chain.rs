//! The access log's hash chain: canonical row bytes and SHA-256 chaining, identical on every backend.

use sha2::{Digest, Sha256};

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The content of one access-log row, as the caller describes it. Seq, time and
/// the hashes are added by whoever appends it to the chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogEntry {
    pub principal: String,
    pub fingerprint: String,
    pub officer: String,
    pub method: String,
    pub resources: Vec<String>,
    pub purpose: String,
    /// The text of a [`Decision`](crate::domain::states::Decision). Text, not
    /// the enum: `cadrex log verify` must hash whatever a row holds, even a
    /// tampered one, and the chain encodes exactly this text.
    pub decision: String,
    pub policy_ids: Vec<String>,
    pub request_id: String,
    pub status_code: i32,
    /// Hex SHA-256 of the response message for allowed reads, else empty.
    pub response_sha256: String,
}

/// A row as stored: entry plus its chain position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    pub seq: i64,
    pub time_us: i64,
    pub entry: LogEntry,
    pub prev_hash: String,
    pub hash: String,
}

fn put(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s);
}

/// Canonical bytes: fixed field order, integers big-endian, strings and lists
/// length-prefixed so no two different rows share an encoding. Times are
/// microseconds, which both SQLite and PostgreSQL store exactly.
pub fn canonical_bytes(seq: i64, time_us: i64, e: &LogEntry) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(b"cadrex-log-v1");
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&time_us.to_be_bytes());
    for s in [&e.principal, &e.fingerprint, &e.officer, &e.method] {
        put(&mut b, s.as_bytes());
    }
    b.extend_from_slice(&(e.resources.len() as u32).to_be_bytes());
    for r in &e.resources {
        put(&mut b, r.as_bytes());
    }
    put(&mut b, e.purpose.as_bytes());
    put(&mut b, e.decision.as_bytes());
    b.extend_from_slice(&(e.policy_ids.len() as u32).to_be_bytes());
    for p in &e.policy_ids {
        put(&mut b, p.as_bytes());
    }
    put(&mut b, e.request_id.as_bytes());
    b.extend_from_slice(&e.status_code.to_be_bytes());
    put(&mut b, e.response_sha256.as_bytes());
    b
}

/// `hash = SHA-256(prev_hash ‖ canonical row bytes)`, hex. `prev_hash` enters as
/// its raw 32 bytes (hex-decoded), falling back to its text if it is not hex so
/// that a tampered value still hashes deterministically.
pub fn row_hash(prev_hash: &str, seq: i64, time_us: i64, e: &LogEntry) -> String {
    let mut h = Sha256::new();
    match hex::decode(prev_hash) {
        Ok(raw) => h.update(raw),
        Err(_) => h.update(prev_hash.as_bytes()),
    }
    h.update(canonical_bytes(seq, time_us, e));
    hex::encode(h.finalize())
}

/// Builds the rows for `entries` appended after a head at (`head_seq`, `head_hash`).
pub fn extend(head_seq: i64, head_hash: &str, time_us: i64, entries: &[LogEntry]) -> Vec<LogRow> {
    let mut prev = head_hash.to_string();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let seq = head_seq + 1 + i as i64;
        let hash = row_hash(&prev, seq, time_us, e);
        out.push(LogRow {
            seq,
            time_us,
            entry: e.clone(),
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
    }
    out
}

/// Why a chain failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub problem: String,
}

/// Incremental verifier: feed rows in seq order starting right after a known
/// (seq, hash) point.
pub struct Verifier {
    pub last_seq: i64,
    pub last_hash: String,
}

impl Verifier {
    pub fn new(after_seq: i64, after_hash: &str) -> Self {
        Self {
            last_seq: after_seq,
            last_hash: after_hash.to_string(),
        }
    }

    /// Checks one row; on success it becomes the new tip.
    pub fn check(&mut self, row: &LogRow) -> Result<(), Break> {
        let expected_seq = self.last_seq + 1;
        if row.seq != expected_seq {
            return Err(Break {
                seq: expected_seq,
                problem: format!("expected seq {expected_seq}, found {}", row.seq),
            });
        }
        if row.prev_hash != self.last_hash {
            return Err(Break {
                seq: row.seq,
                problem: "prev_hash does not match the previous row's hash".into(),
            });
        }
        let computed = row_hash(&row.prev_hash, row.seq, row.time_us, &row.entry);
        if computed != row.hash {
            return Err(Break {
                seq: row.seq,
                problem: "row content does not match its hash".into(),
            });
        }
        self.last_seq = row.seq;
        self.last_hash = row.hash.clone();
        Ok(())
    }
}

/// Bytes a checkpoint signature covers.
pub fn checkpoint_bytes(seq: i64, hash: &str, time_us: i64, key_id: &str) -> Vec<u8> {
    format!("cadrex-checkpoint-v1\n{seq}\n{hash}\n{time_us}\n{key_id}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(m: &str) -> LogEntry {
        LogEntry {
            principal: "urn:cadrex:system:audit:360821:a".into(),
            method: m.into(),
            decision: crate::domain::states::Decision::Allow.as_str().into(),
            ..Default::default()
        }
    }

    #[test]
    fn chain_detects_edits_and_reorders() {
        let rows = extend(0, GENESIS, 1, &[entry("a"), entry("b"), entry("c")]);
        let mut v = Verifier::new(0, GENESIS);
        for r in &rows {
            v.check(r).unwrap();
        }
        let mut edited = rows.clone();
        edited[1].entry.method = "x".into();
        let mut v = Verifier::new(0, GENESIS);
        v.check(&edited[0]).unwrap();
        assert_eq!(v.check(&edited[1]).unwrap_err().seq, 2);

        let mut v = Verifier::new(0, GENESIS);
        v.check(&rows[0]).unwrap();
        assert_eq!(v.check(&rows[2]).unwrap_err().seq, 2);
    }

    /// The encoding is shared by both backends and by every row already
    /// stored: one row's hash, computed independently, pins it.
    #[test]
    fn canonical_encoding_is_pinned() {
        let e = LogEntry {
            fingerprint: "f".into(),
            officer: "张三".into(),
            resources: vec!["cadres/1".into()],
            purpose: "CASE_HANDLING".into(),
            policy_ids: vec!["p1".into()],
            request_id: "r".into(),
            ..entry("m")
        };
        assert_eq!(
            row_hash(GENESIS, 7, 1_700_000_000_000_000, &e),
            "ca1bb5b6043dfac9e1679844a4b3cd79483977c5048fef84799d3cb5ea3eb172"
        );
    }

    #[test]
    fn list_boundaries_are_unambiguous() {
        let mut a = entry("m");
        a.resources = vec!["ab".into(), "c".into()];
        let mut b = entry("m");
        b.resources = vec!["a".into(), "bc".into()];
        assert_ne!(canonical_bytes(1, 1, &a), canonical_bytes(1, 1, &b));
    }
}
