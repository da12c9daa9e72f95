//! 检举人保护: the informant block of a petition, sealed with AES-256-GCM under a rotating key ring.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::error::{Error, Result};

/// An informant block as stored: ciphertext with the key id and nonce beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub data: Vec<u8>,
}

/// The informant keys. The first line of the key file is the key new data is
/// sealed under; later lines are older keys still needed to open old rows.
pub struct KeyRing {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeyRing")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Reads `id:hex` lines (64 hex digits each); `#` starts a comment.
    /// Refuses a file others than its owner may read or write
    /// (`crate::digest::private_file`).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        crate::digest::private_file(path)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading informant key file {}: {e}", path.display()))?;
        Self::parse(&text)
            .map_err(|e| anyhow::anyhow!("informant key file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (id, hex_key) = line
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("a line is not `id:hex`"))?;
            let raw =
                hex::decode(hex_key.trim()).map_err(|_| anyhow::anyhow!("key {id} is not hex"))?;
            if raw.len() != 32 {
                anyhow::bail!("key {id} is not 32 bytes");
            }
            let cipher = Aes256Gcm::new_from_slice(&raw)
                .map_err(|_| anyhow::anyhow!("key {id} is not a valid AES-256 key"))?;
            keys.push((id.trim().to_string(), cipher));
        }
        if keys.is_empty() {
            anyhow::bail!("no keys");
        }
        Ok(Self { keys })
    }

    /// Id of the key new data is sealed under.
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `plain` under the current key, bound to `context` (the record's
    /// owner system and source id) so a ciphertext cannot be moved to another row.
    ///
    /// The plaintext is padded to a multiple of [`PAD_TO`] bytes first, so
    /// that the ciphertext's length does not narrow a guess at its content.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Sealed> {
        let (id, cipher) = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let padded = pad(plain)?;
        let data = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &padded,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::internal(anyhow::anyhow!("sealing informant data failed")))?;
        Ok(Sealed {
            key_id: id.clone(),
            nonce: nonce.to_vec(),
            data,
        })
    }

    /// Opens a sealed block, padded or (sealed by an older version) not.
    /// Errors name the key id only, never content.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Vec<u8>> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "informant key {} is not loaded",
                    sealed.key_id
                ))
            })?;
        let nonce: [u8; 12] = sealed.nonce.as_slice().try_into().map_err(|_| {
            Error::internal(anyhow::anyhow!("informant nonce has the wrong length"))
        })?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.data,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::internal(anyhow::anyhow!(
                    "informant data under key {} failed authentication",
                    sealed.key_id
                ))
            })
            .and_then(|padded| unpad(padded, &sealed.key_id))
    }
}

/// Sealed plaintexts are a multiple of this many bytes long.
pub const PAD_TO: usize = 256;

/// Marks a padded plaintext. The informant block is a protobuf message, and
/// no protobuf message starts with a zero byte (field numbers start at 1), so
/// a block sealed unpadded by an older version is told apart from it.
const PADDED: u8 = 0;

/// `PADDED`, the length (4 bytes, big-endian), the plaintext, then zeros up
/// to a multiple of [`PAD_TO`].
fn pad(plain: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(plain.len())
        .map_err(|_| Error::internal(anyhow::anyhow!("informant block too large")))?;
    let used = 5 + plain.len();
    let mut out = Vec::with_capacity(used.div_ceil(PAD_TO) * PAD_TO);
    out.push(PADDED);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(plain);
    out.resize(used.div_ceil(PAD_TO) * PAD_TO, 0);
    Ok(out)
}

/// The plaintext of an opened block: unpadded when it was padded, as is when
/// an older version sealed it without padding.
fn unpad(mut opened: Vec<u8>, key_id: &str) -> Result<Vec<u8>> {
    if opened.first() != Some(&PADDED) {
        return Ok(opened);
    }
    let len = opened
        .get(1..5)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .filter(|len| 5 + len <= opened.len())
        .ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "informant data under key {key_id} has a bad padding header"
            ))
        })?;
    opened.truncate(5 + len);
    opened.drain(..5);
    Ok(opened)
}

/// The additional data an informant block is sealed with: it binds the
/// ciphertext to its owner system and source record, so a block copied to
/// another record does not open.
pub fn informant_context(owner_system: &str, source_record_id: &str) -> String {
    format!("{owner_system}|{source_record_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate_and_bind() {
        let old = KeyRing::parse(&format!("k1:{}", "11".repeat(32))).unwrap();
        let sealed = old.seal(b"canary-name", "sys|P-1").unwrap();
        assert!(!sealed.data.windows(11).any(|w| w == b"canary-name"));
        assert_eq!(old.open(&sealed, "sys|P-1").unwrap(), b"canary-name");
        assert!(old.open(&sealed, "sys|P-2").is_err(), "bound to its row");
        let rotated =
            KeyRing::parse(&format!("k2:{}\nk1:{}", "22".repeat(32), "11".repeat(32))).unwrap();
        assert_eq!(rotated.current_id(), "k2");
        assert_eq!(rotated.open(&sealed, "sys|P-1").unwrap(), b"canary-name");
        assert_eq!(rotated.seal(b"x", "c").unwrap().key_id, "k2");
        assert!(KeyRing::parse("k1:abcd").is_err());
    }

    #[test]
    fn sealed_lengths_tell_nothing_and_unpadded_blocks_still_open() {
        let ring = KeyRing::parse(&format!("k1:{}", "11".repeat(32))).unwrap();
        for n in [0usize, 1, 2, 250, 251, 252, 300, 507, 700, 4000] {
            let plain = vec![0x0a; n];
            let sealed = ring.seal(&plain, "c").unwrap();
            assert_eq!(
                sealed.data.len() % PAD_TO,
                16,
                "{n} bytes: padded, plus the tag"
            );
            assert_eq!(ring.open(&sealed, "c").unwrap(), plain);
        }
        assert_eq!(
            ring.seal(&[0x0a; 10], "c").unwrap().data.len(),
            ring.seal(&[0x0a; 200], "c").unwrap().data.len(),
            "a short and a long name seal alike"
        );
        // A block an older version sealed without padding.
        let (_, cipher) = &ring.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let legacy = Sealed {
            key_id: "k1".into(),
            nonce: nonce.to_vec(),
            data: cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: b"\x0a\x03abc",
                        aad: b"c",
                    },
                )
                .unwrap(),
        };
        assert_eq!(ring.open(&legacy, "c").unwrap(), b"\x0a\x03abc");
    }
}
