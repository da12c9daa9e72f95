//! The re-keying pass: turns the unkeyed SHA-256 digests an older version stored into keyed ones (DESIGN §2), without their plaintext, safely beside running servers.

use super::{DigestColumn, DigestRowKey, Store};
use crate::digest::DigestKey;
use crate::error::Result;

/// Meta key set once a pass has run to the end, so a server start skips the
/// scan afterwards (`cadrex keys rekey-digests` always runs it).
pub const DONE_KEY: &str = "digests_rekeyed";

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RekeySummary {
    /// The access-log head recorded at the upgrade: rows at or below it keep
    /// the unkeyed response digests they were chained with.
    pub upgrade_head: i64,
    /// Values converted, per column, in `DigestColumn::ALL` order.
    pub converted: [u64; 3],
}

impl std::fmt::Display for RekeySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "digests keyed:")?;
        for (c, n) in DigestColumn::ALL.iter().zip(self.converted) {
            write!(f, " {} {n};", c.name())?;
        }
        write!(
            f,
            " access-log rows up to seq {} keep their unkeyed response digests",
            self.upgrade_head
        )
    }
}

/// Records the chain head at the upgrade (first run only), then converts
/// every unkeyed payload and request digest to the keyed form, `batch` rows
/// per transaction.
///
/// Idempotent and safe while other servers write: a value is replaced only
/// if the row still holds the value it was read with, and comparisons key
/// an unkeyed value on the fly, so a row written meanwhile by an older
/// server is merely left for the next pass.
pub async fn rekey(store: &dyn Store, key: &DigestKey, batch: i64) -> Result<RekeySummary> {
    check_key(store, key).await?;
    let (upgrade_head, _) = store.digest_upgrade_head().await?;
    let mut summary = RekeySummary {
        upgrade_head,
        ..Default::default()
    };
    for (i, column) in DigestColumn::ALL.into_iter().enumerate() {
        let mut after = DigestRowKey::default();
        loop {
            let found = store.unkeyed_digests(column, &after, batch).await?;
            let Some(last) = found.last() else { break };
            after = last.key.clone();
            let replaced: Vec<_> = found
                .into_iter()
                .filter_map(|d| key.rekey(&d.value).map(|k| (d, k)))
                .collect();
            summary.converted[i] += store.replace_digests(&replaced).await?;
        }
    }
    store
        .set_meta(DONE_KEY, &crate::domain::clock::now_us().to_string())
        .await?;
    Ok(summary)
}

/// Meta key of the digest key's check value: the keyed digest of a fixed
/// text, which tells nothing of the key but shows whether a server holds the
/// store's key.
pub const CHECK_KEY: &str = "digest_key_check";

/// Fails unless `key` is the key this store's digests are keyed with (the
/// first key to open the store becomes it). A server with another key would
/// answer every resubmission and replay as a conflict, and key new rows
/// under a key the others do not hold.
pub async fn check_key(store: &dyn Store, key: &DigestKey) -> Result<()> {
    let check = key.keyed(b"cadrex digest key check");
    match store.meta(CHECK_KEY).await? {
        Some(stored) if stored == check => Ok(()),
        Some(_) => Err(crate::error::Error::internal(anyhow::anyhow!(
            "the digest key is not the one this store's digests are keyed with; \
             every server on a store must hold the same digest_key"
        ))),
        None => store.set_meta(CHECK_KEY, &check).await,
    }
}

/// The start-up step: checks the key, then a pass unless one has already
/// run to the end.
pub async fn rekey_once(store: &dyn Store, key: &DigestKey) -> Result<Option<RekeySummary>> {
    check_key(store, key).await?;
    store.digest_upgrade_head().await?;
    if store.meta(DONE_KEY).await?.is_some() {
        return Ok(None);
    }
    rekey(store, key, 1000).await.map(Some)
}
