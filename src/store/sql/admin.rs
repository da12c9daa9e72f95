//! Administration: `StoreAdmin`, with the backend's own methods (`own`) spliced in.
//!
//! Expanded by [`store_body!`](super::store_body) into each backend module beside
//! the other repositories' parts: the `use`s, `Db` types and shared helpers named
//! here come from there, and every part sees the helpers the others define.

/// `StoreAdmin` for `$store`, with the helpers that belong to it; invoked only by
/// [`store_body!`](super::store_body).
macro_rules! admin_repo {
    (store: $store:ident, name: $name:literal, own: { $($own:tt)* } $(,)?) => {
#[async_trait::async_trait]
impl StoreAdmin for $store {
    fn backend(&self) -> &'static str {
        $name
    }

    $($own)*

    async fn epoch(&self) -> Result<String> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = 'epoch'")
            .fetch_one(&self.pool)
            .await?
            .try_get("value")?)
    }

    async fn renew_epoch(&self) -> Result<String> {
        let epoch = uuid::Uuid::new_v4().to_string();
        sqlx::query("UPDATE meta SET value = $1 WHERE key = 'epoch'")
            .bind(&epoch)
            .execute(self.writes())
            .await?;
        Ok(epoch)
    }

    async fn informant_blocks_not_under(
        &self,
        key_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<super::InformantBlock>> {
        let rows = sqlx::query(
            "SELECT id, owner_system, source_record_id, informant_key_id, informant_nonce, informant_data \
             FROM records WHERE informant_key_id IS NOT NULL AND informant_key_id <> $1 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(key_id)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(super::InformantBlock {
                    record_id: r.try_get("id")?,
                    owner_system: r.try_get("owner_system")?,
                    source_record_id: r.try_get("source_record_id")?,
                    sealed: Sealed {
                        key_id: r.try_get("informant_key_id")?,
                        nonce: r.try_get("informant_nonce")?,
                        data: r.try_get("informant_data")?,
                    },
                })
            })
            .collect()
    }

    async fn digest_upgrade_head(&self) -> Result<(i64, String)> {
        let mut tx = self.begin().await?;
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM access_log_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('digest_upgrade_head', $1) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(format!("{seq}:{hash}"))
        .execute(&mut *tx)
        .await?;
        let (value,): (String,) =
            sqlx::query_as("SELECT value FROM meta WHERE key = 'digest_upgrade_head'")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        value
            .split_once(':')
            .and_then(|(seq, hash)| Some((seq.parse().ok()?, hash.to_string())))
            .ok_or_else(|| Error::internal(anyhow::anyhow!("bad digest_upgrade_head {value:?}")))
    }

    async fn unkeyed_digests(
        &self,
        column: super::DigestColumn,
        after: &super::DigestRowKey,
        limit: i64,
    ) -> Result<Vec<super::StoredDigest>> {
        use super::DigestColumn as C;
        // Keyset order over each table's primary key, so a pass reads every
        // row once however many it converts.
        let sql = match column {
            C::RecordPayload => {
                "SELECT id AS a, '' AS b, CAST(0 AS BIGINT) AS c, payload_sha256 AS v FROM records \
                 WHERE id > $1 AND $2 = $2 AND $3 = $3 AND payload_sha256 NOT LIKE 'k1:%' \
                 ORDER BY id LIMIT $4"
            }
            C::VersionPayload => {
                "SELECT owner_system AS a, source_record_id AS b, source_version AS c, \
                 payload_sha256 AS v FROM record_versions \
                 WHERE (owner_system, source_record_id, source_version) > ($1, $2, $3) \
                 AND payload_sha256 NOT LIKE 'k1:%' \
                 ORDER BY owner_system, source_record_id, source_version LIMIT $4"
            }
            C::RequestDigest => {
                "SELECT system AS a, request_id AS b, CAST(0 AS BIGINT) AS c, request_sha256 AS v FROM request_ids \
                 WHERE (system, request_id) > ($1, $2) AND $3 = $3 \
                 AND request_sha256 NOT LIKE 'k1:%' ORDER BY system, request_id LIMIT $4"
            }
        };
        let rows = sqlx::query(sql)
            .bind(&after.0)
            .bind(&after.1)
            .bind(after.2)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(super::StoredDigest {
                    column,
                    key: super::DigestRowKey(r.try_get("a")?, r.try_get("b")?, r.try_get("c")?),
                    value: r.try_get("v")?,
                })
            })
            .collect()
    }

    async fn replace_digests(&self, replaced: &[(super::StoredDigest, String)]) -> Result<u64> {
        use super::DigestColumn as C;
        let mut tx = self.begin().await?;
        let mut n = 0;
        for (old, new) in replaced {
            let sql = match old.column {
                C::RecordPayload => {
                    "UPDATE records SET payload_sha256 = $1 \
                     WHERE id = $2 AND $3 = $3 AND $4 = $4 AND payload_sha256 = $5"
                }
                C::VersionPayload => {
                    "UPDATE record_versions SET payload_sha256 = $1 WHERE owner_system = $2 \
                     AND source_record_id = $3 AND source_version = $4 AND payload_sha256 = $5"
                }
                C::RequestDigest => {
                    "UPDATE request_ids SET request_sha256 = $1 \
                     WHERE system = $2 AND request_id = $3 AND $4 = $4 AND request_sha256 = $5"
                }
            };
            n += sqlx::query(sql)
                .bind(new)
                .bind(&old.key.0)
                .bind(&old.key.1)
                .bind(old.key.2)
                .bind(&old.value)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reseal_informants(&self, blocks: &[super::Resealed]) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut replaced = 0;
        for b in blocks {
            replaced += sqlx::query(
                "UPDATE records SET informant_key_id = $1, informant_nonce = $2, informant_data = $3 \
                 WHERE id = $4 AND informant_nonce = $5",
            )
            .bind(&b.sealed.key_id)
            .bind(&b.sealed.nonce)
            .bind(&b.sealed.data)
            .bind(&b.record_id)
            .bind(&b.old_nonce)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(replaced)
    }
}
    };
}
pub(crate) use admin_repo;
