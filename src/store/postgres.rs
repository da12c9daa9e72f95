//! PostgreSQL backend for shared deployments: several servers on one database; row locks keep the chain and the outbox linear.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// Store on a PostgreSQL database, shared by any number of server processes.
pub struct PostgresStore {
    pool: PgPool,
    changed: tokio::sync::watch::Sender<u64>,
    listener: tokio::task::JoinHandle<()>,
}

/// The NOTIFY channel on which every process announces committed changes.
const CHANNEL: &str = "cadrex_changes";

/// Relays NOTIFYs from every server process on this database to this
/// process's watchers. PgListener reconnects by itself; watchers also poll,
/// so a notification lost while reconnecting only delays delivery.
async fn relay(pool: PgPool, changed: tokio::sync::watch::Sender<u64>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "change-feed LISTEN connection failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(_) => changed.send_modify(|v| *v = v.wrapping_add(1)),
                Err(e) => {
                    tracing::warn!(error = %e, "change-feed LISTEN lost; reconnecting");
                    break;
                }
            }
        }
    }
}

impl PostgresStore {
    /// Connects to `url` and runs migrations (serialized across processes by sqlx's advisory lock).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        init_epoch(&pool).await?;
        let changed = tokio::sync::watch::channel(0).0;
        let listener = tokio::spawn(relay(pool.clone(), changed.clone()));
        Ok(Self {
            pool,
            changed,
            listener,
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Single-statement writes share the pool with everything else.
    fn writes(&self) -> &PgPool {
        &self.pool
    }
}

/// PostgreSQL finds substrings with `strpos`.
const STRPOS: &str = "strpos";

/// "Is one of the array bound as `$n`".
fn in_list(n: u8) -> String {
    format!("= ANY(${n})")
}

/// The value for [`in_list`]: a text array.
fn list_arg<S: AsRef<str>>(values: &[S]) -> Result<Vec<&str>> {
    Ok(values.iter().map(AsRef::as_ref).collect())
}

/// Bound parameters PostgreSQL accepts in one statement (65,535), with room.
const MAX_PARAMS: usize = 60_000;

/// Writes the log rows, cadre index and head in one statement when the
/// parameters fit: with BEGIN, the head lock and COMMIT an append is then four
/// round trips, which is what a lone caller waits for. `false` (a huge batch)
/// leaves the append to the shared chunks.
async fn append_in_one_statement(
    tx: &mut PgConnection,
    rows: &[LogRow],
    lists: &[(String, String)],
    touched: &[(String, i64)],
) -> Result<bool> {
    let Some(last) = rows.last() else {
        return Ok(true);
    };
    if rows.len() * 15 + touched.len() * 2 + 2 > MAX_PARAMS {
        return Ok(false);
    }
    let mut q = sqlx::QueryBuilder::new(format!("WITH log AS ({LOG_COLUMNS}"));
    push_log_rows(&mut q, rows, lists);
    q.push(")");
    if !touched.is_empty() {
        q.push(", cadres AS (INSERT INTO access_log_cadres (cadre, seq) ");
        q.push_values(touched, |mut b, (cadre, seq)| {
            b.push_bind(cadre.clone()).push_bind(*seq);
        });
        q.push(" ON CONFLICT DO NOTHING)");
    }
    q.push(" UPDATE access_log_head SET seq = ")
        .push_bind(last.seq)
        .push(", hash = ")
        .push_bind(last.hash.clone())
        .push(" WHERE id = 1");
    q.build().execute(&mut *tx).await?;
    Ok(true)
}

/// Tells every server process on this database that changes commit with this
/// transaction (PostgreSQL delivers the NOTIFY at commit, not before).
async fn announce(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

super::sql::store_body! {
    store: PostgresStore,
    db: sqlx::Postgres,
    // Several processes share the database: the lock rows are row-locked.
    for_update: " FOR UPDATE",
    name: "postgres",
    own: {
        async fn backup(&self, _out: &std::path::Path) -> Result<()> {
            Err(Error::precondition(
                Reason::UsePgDump,
                "back up PostgreSQL with pg_dump, restore with pg_restore, then run `cadrex restore --epoch-only`",
            ))
        }

        async fn scrub(&self, tables: &[&str]) -> Result<()> {
            for table in tables {
                // Table names come from the code, never from a caller.
                if !table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    return Err(Error::internal(anyhow::anyhow!("not a table name: {table:?}")));
                }
                sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM {table}")))
                    .execute(&self.pool)
                    .await?;
            }
            Ok(())
        }

        async fn close(&self) {
            self.listener.abort();
            self.pool.close().await;
        }
    },
}
