//! Request ids (AIP-155): `RequestRepo` and the idempotency rows a write stores.
//!
//! Expanded by [`store_body!`](super::store_body) into each backend module beside
//! the other repositories' parts: the `use`s, `Db` types and shared helpers named
//! here come from there, and every part sees the helpers the others define.

/// `RequestRepo` for `$store`, with the helpers that belong to it; invoked only by
/// [`store_body!`](super::store_body).
macro_rules! request_repo {
    (store: $store:ident $(,)?) => {
async fn insert_idempotency(tx: &mut DbConn, i: &Idempotency) -> Result<()> {
    let r = sqlx::query(
        "INSERT INTO request_ids (system, request_id, method, request_sha256, response, create_time_us) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&i.system)
    .bind(&i.request_id)
    .bind(&i.method)
    .bind(&i.request_sha256)
    .bind(&i.response)
    .bind(now_us())
    .execute(&mut *tx)
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            Err(Error::AlreadyExists(format!("request {}", i.request_id)))
        }
        Err(e) => Err(e.into()),
    }
}

#[async_trait::async_trait]
impl RequestRepo for $store {
    async fn lookup_request(&self, system: &str, request_id: &str) -> Result<Option<Idempotency>> {
        let row = sqlx::query(
            "SELECT system, request_id, method, request_sha256, response FROM request_ids \
             WHERE system = $1 AND request_id = $2",
        )
        .bind(system)
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Idempotency {
                system: r.try_get("system")?,
                request_id: r.try_get("request_id")?,
                method: r.try_get("method")?,
                request_sha256: r.try_get("request_sha256")?,
                response: r.try_get("response")?,
            })
        })
        .transpose()
    }
}
    };
}
pub(crate) use request_repo;
