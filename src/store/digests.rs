//! The re-keying pass: turns the unkeyed SHA-256 digests an older version stored into keyed ones (DESIGN §2), without their plaintext, safely beside running servers.

use super::{DigestColumn, DigestRowKey, Store};
use crate::digest::DigestKey;
use crate::error::Result;

/// Meta key of the digest key's check value: the keyed digest of a fixed
/// text, which tells nothing of the key but shows whether a server holds the
/// store's key.
pub const CHECK_KEY: &str = "digest_key_check";

/// Meta key of the chain head when `cadrex keys rekey-digests` last ran
/// (`seq:hash`): run once the last older server stopped, it bounds the rows
/// older servers may have chained with unkeyed response digests.
pub const END_KEY: &str = "digest_upgrade_end";

/// The tables whose digests a pass converts, to scrub afterwards.
const TABLES: [&str; 3] = ["records", "record_versions", "request_ids"];

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RekeySummary {
    /// The access-log head recorded at the upgrade: rows at or below it keep
    /// the unkeyed response digests they were chained with.
    pub upgrade_head: i64,
    /// Values converted, per column, in `DigestColumn::ALL` order.
    pub converted: [u64; 3],
}

impl RekeySummary {
    fn any(&self) -> bool {
        self.converted.iter().any(|n| *n > 0)
    }
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

/// Records the chain head at the upgrade (first run only), then converts
/// every unkeyed payload and request digest to the keyed form, `batch` rows
/// per transaction, and when it converted any, scrubs the space the old
/// values held (`Store::scrub`), so they do not stay in the file.
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
    if summary.any() {
        store.scrub(&TABLES).await?;
    }
    Ok(summary)
}

/// The start-up step: checks the key and runs a pass. A pass that finds
/// unkeyed digests after the first (an older server still writing) says so,
/// since `cadrex keys rekey-digests` must then run once that server stopped.
pub async fn rekey_at_start(store: &dyn Store, key: &DigestKey) -> Result<RekeySummary> {
    let first = store.meta(UPGRADE_KEY).await?.is_none();
    let summary = rekey(store, key, 1000).await?;
    if summary.any() && !first {
        tracing::warn!(
            %summary,
            "an older server wrote unkeyed digests since the upgrade; once the last one has \
             stopped, run `cadrex keys rekey-digests`"
        );
    } else if summary.any() {
        tracing::info!(%summary, "store upgraded to keyed digests");
    }
    Ok(summary)
}

/// Meta key of the chain head at the upgrade (see `Store::digest_upgrade_head`).
pub const UPGRADE_KEY: &str = "digest_upgrade_head";

/// `cadrex keys rekey-digests`: a pass, then the chain head recorded as the
/// end of the upgrade ([`END_KEY`]).
pub async fn rekey_and_close(
    store: &dyn Store,
    key: &DigestKey,
    batch: i64,
) -> Result<(RekeySummary, i64)> {
    let summary = rekey(store, key, batch).await?;
    let (seq, hash) = store.log_head().await?;
    store.set_meta(END_KEY, &format!("{seq}:{hash}")).await?;
    Ok((summary, seq))
}
