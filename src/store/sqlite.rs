//! SQLite backend: the embedded default. WAL, a busy timeout, and `BEGIN IMMEDIATE` for every write.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, SqliteConnection};

/// Read connections: enough to keep two cores busy while some wait on I/O.
const READERS: u32 = 4;
/// Page cache of the write connection, in KiB (negative, as SQLite takes it):
/// a batch of writes touches index pages all over the file, and a cold 2 MiB
/// default cache sends most of them back to the OS.
const WRITER_CACHE: &str = "-16384";
/// WAL pages at which the writer itself copies the WAL back into the database
/// file: only a backstop, since [`checkpoint_forever`] does it on another
/// connection (and core) without holding up the writer.
const WAL_CHECKPOINT_PAGES: &str = "16000";
/// Rows buffered between a connection's thread and the reading task.
const ROW_BUFFER: usize = 1024;
/// How often the background checkpoint runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Store on one SQLite file.
pub struct SqliteStore {
    /// Readers. SQLite readers run in parallel under WAL.
    pool: SqlitePool,
    /// The one write connection: SQLite admits one writer at a time anyway,
    /// and queueing writers here (FIFO, async) instead of letting them meet in
    /// `BEGIN IMMEDIATE` keeps them out of SQLite's sleeping busy handler and
    /// keeps the pages writes touch in one warm cache.
    writer: SqlitePool,
    changed: tokio::sync::watch::Sender<u64>,
    checkpointer: tokio::task::AbortHandle,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

/// Copies committed WAL pages back into the database file, on its own
/// connection, so that the writer's commits never pay for it. PASSIVE never
/// waits for readers or the writer; a page written by several transactions
/// between two runs is copied once.
async fn checkpoint_forever(mut conn: SqliteConnection) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::debug!(error = %e, "background WAL checkpoint");
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and runs migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL is durable across process crashes; only an OS
            // crash can lose the newest commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Rows cross from the connection's thread to the task through a
            // bounded channel; at the default of 50 a page of 1,000 rows
            // stalls the thread about twenty times.
            .row_buffer_size(ROW_BUFFER);
        if let Some(parent) = opts.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                opts.clone()
                    .pragma("cache_size", WRITER_CACHE)
                    .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES),
            )
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        init_epoch(&writer).await?;
        let checkpointer = tokio::spawn(checkpoint_forever(
            SqliteConnection::connect_with(&opts).await?,
        ))
        .abort_handle();
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(opts)
            .await?;
        Ok(Self {
            pool,
            writer,
            changed: tokio::sync::watch::channel(0).0,
            checkpointer,
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Single-statement writes go through the one writer too.
    fn writes(&self) -> &SqlitePool {
        &self.writer
    }
}

/// SQLite finds substrings with `instr`.
const STRPOS: &str = "instr";

/// "Is one of the JSON array bound as `$n`": SQLite has no array parameters.
fn in_list(n: u8) -> String {
    format!("IN (SELECT value FROM json_each(${n}))")
}

/// The value for [`in_list`]: a JSON array.
fn list_arg<S: serde::Serialize>(values: &[S]) -> Result<String> {
    serde_json::to_string(values).map_err(Error::internal)
}

/// SQLite runs in this process, so a statement costs no round trip to save:
/// the append keeps to the shared multi-row chunks, as it always has here.
async fn append_in_one_statement(
    _tx: &mut SqliteConnection,
    _rows: &[LogRow],
    _lists: &[(String, String)],
    _touched: &[(String, i64)],
) -> Result<bool> {
    Ok(false)
}

/// Copies the WAL back into the file and truncates it to nothing, so no old
/// frame stays in it. A reader in the middle of a snapshot makes SQLite
/// report the checkpoint busy (and leave the WAL as it is) rather than
/// fail: try again until it went through, for a few seconds at most.
async fn truncate_wal(conn: &mut SqliteConnection) -> Result<()> {
    for _ in 0..200 {
        let (busy,): (i64,) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await?;
        if busy == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(Error::Unavailable(
        "the WAL could not be truncated: readers kept it busy".into(),
    ))
}

/// Tells other server processes that changes are about to commit; one process
/// owns a SQLite file, so there is no one to tell.
async fn announce(_tx: &mut SqliteConnection) -> Result<()> {
    Ok(())
}

super::sql::store_body! {
    store: SqliteStore,
    db: sqlx::Sqlite,
    // `BEGIN IMMEDIATE` already holds the write lock.
    for_update: "",
    name: "sqlite",
    own: {
        async fn backup(&self, out: &std::path::Path) -> Result<()> {
            sqlx::query("VACUUM INTO $1")
                .bind(out.display().to_string())
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn scrub(&self, _tables: &[&str]) -> Result<()> {
            // VACUUM rebuilds the whole file; the WAL frames holding old page
            // images go with the truncating checkpoints around it.
            let mut conn = self.writer.acquire().await?;
            truncate_wal(&mut conn).await?;
            sqlx::query("VACUUM").execute(&mut *conn).await?;
            truncate_wal(&mut conn).await
        }

        async fn close(&self) {
            self.checkpointer.abort();
            self.pool.close().await;
            self.writer.close().await;
        }
    },
}
