//! Keyed digests at rest (DESIGN §2): HMAC-SHA-256 under a secret kept outside the database, over a SHA-256, so a stored digest never lets a reader of the store test a guessed informant.
//!
//! A stored digest is `k1:` followed by 64 hex digits of
//! HMAC-SHA-256(digest key, SHA-256(bytes)). Keying the SHA-256 rather than
//! the bytes lets an older store be re-keyed from the unkeyed SHA-256 values
//! it holds, without their plaintext: [`DigestKey::rekey`] turns such a value
//! into the keyed form, and [`DigestKey::same`] compares a fresh keyed digest
//! with a stored value of either form, so old and new values can sit in one
//! column while the re-keying pass runs.

use std::path::Path;

use ring::hmac;
use sha2::{Digest, Sha256};

/// The prefix naming the keyed form (version 1: HMAC-SHA-256 over SHA-256).
pub const KEYED_PREFIX: &str = "k1:";

/// The digest key: 32 random bytes, the same for every server process on one
/// store (like the log-signing key), never rotated with the informant keys.
#[derive(Clone)]
pub struct DigestKey {
    key: hmac::Key,
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(…)")
    }
}

impl DigestKey {
    /// A key from its 32 raw bytes.
    pub fn from_bytes(raw: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, raw),
        }
    }

    /// Reads a key file: one line of 64 hex digits; `#` starts a comment.
    ///
    /// Refuses a file that others than its owner may read or write (see
    /// [`private_file`]).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        private_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "reading the digest key {}: {e} (create one with `cadrex keys digest-init`)",
                path.display()
            )
        })?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("digest key {}: {e}", path.display()))
    }

    /// Parses the text of a key file (see [`load`](Self::load)).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(|| anyhow::anyhow!("no key"))?;
        if lines.next().is_some() {
            anyhow::bail!("more than one key line");
        }
        let raw = hex::decode(line).map_err(|_| anyhow::anyhow!("the key is not hex"))?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| anyhow::anyhow!("the key is not 32 bytes"))?;
        Ok(Self::from_bytes(&raw))
    }

    /// The text of a new key file holding `raw`.
    pub fn file_text(raw: &[u8; 32]) -> String {
        format!(
            "# cadrex digest key (HMAC-SHA-256): keys every digest stored over data that may\n\
             # include informant identities. Back it up with the informant keys; never rotate it.\n\
             {}\n",
            hex::encode(raw)
        )
    }

    /// The keyed digest of `bytes`.
    pub fn keyed(&self, bytes: &[u8]) -> String {
        self.keyed_sha256(&Sha256::digest(bytes))
    }

    /// The keyed form of an already computed SHA-256.
    fn keyed_sha256(&self, sha: &[u8]) -> String {
        let tag = hmac::sign(&self.key, sha);
        format!("{KEYED_PREFIX}{}", hex::encode(tag.as_ref()))
    }

    /// The keyed form of a stored value: itself when already keyed, the keyed
    /// form of the SHA-256 it holds when it is an unkeyed hex SHA-256; `None`
    /// for anything else (an empty value, a value this version does not know).
    pub fn rekey(&self, stored: &str) -> Option<String> {
        if is_keyed(stored) {
            return Some(stored.to_string());
        }
        if stored.len() != 64 {
            return None;
        }
        let sha = hex::decode(stored).ok()?;
        Some(self.keyed_sha256(&sha))
    }

    /// True when `stored` (keyed or an unkeyed SHA-256 of an older version)
    /// is the digest whose keyed form is `keyed`.
    pub fn same(&self, stored: &str, keyed: &str) -> bool {
        stored == keyed || (!is_keyed(stored) && self.rekey(stored).is_some_and(|k| k == keyed))
    }
}

/// Fails when the key file at `path` may be read or written by anyone but
/// its owner (mode bits 0o077): a key the docs say to keep 0600 that any
/// local user can copy protects nothing, and starting quietly would hide it.
pub fn private_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} is accessible to others (mode {:o}); make it readable by its owner only: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// True when `stored` is in the keyed form.
pub fn is_keyed(stored: &str) -> bool {
    stored.len() == KEYED_PREFIX.len() + 64
        && stored.starts_with(KEYED_PREFIX)
        && stored[KEYED_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// Hex SHA-256 of `bytes`: the unkeyed form, for digests sent to a caller who
/// may read everything they cover.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values_compare_with_old_and_new_forms() {
        let key = DigestKey::from_bytes(&[7u8; 32]);
        let bytes = b"payload";
        let keyed = key.keyed(bytes);
        assert!(is_keyed(&keyed));
        assert!(key.same(&keyed, &keyed));
        assert!(
            key.same(&sha256_hex(bytes), &keyed),
            "an unkeyed value keys on the fly"
        );
        assert!(!key.same(&sha256_hex(b"other"), &keyed));
        assert!(!key.same("", &keyed));
        assert_eq!(
            key.rekey(&sha256_hex(bytes)).as_deref(),
            Some(keyed.as_str())
        );
        let other = DigestKey::from_bytes(&[8u8; 32]);
        assert_ne!(other.keyed(bytes), keyed, "the key changes the digest");
        assert!(!keyed.contains(&sha256_hex(bytes)));
    }

    #[test]
    fn key_files_parse() {
        let text = DigestKey::file_text(&[1u8; 32]);
        let a = DigestKey::parse(&text).unwrap();
        assert_eq!(a.keyed(b"x"), DigestKey::from_bytes(&[1u8; 32]).keyed(b"x"));
        assert!(DigestKey::parse("abcd").is_err());
        assert!(DigestKey::parse("").is_err());
        assert!(format!("{a:?}").find("01").is_none(), "Debug shows no key");
    }

    #[test]
    fn key_files_others_may_read_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digest.key");
        std::fs::write(&path, DigestKey::file_text(&[2u8; 32])).unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o644, false),
            (0o606, false),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(DigestKey::load(&path).is_ok(), ok, "mode {mode:o}");
        }
    }
}
