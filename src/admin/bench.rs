//! The store side of `cadrex bench`: seeding an empty store, the cadres and engagements the client side measures against, the server state for the in-process baseline, and the raw-insert yardstick.
//!
//! `tools::bench` measures over gRPC only and is handed these, as plain data
//! and through its `StoreSide` trait, by the `cadrex bench` command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::domain::agency::Agency;
use crate::domain::states::RecordState;
use crate::store::{CadreQuery, RecordQuery, Store};

use super::seed;

/// Most cadre ids the dossier phases choose from.
const MAX_TARGETS: i64 = 100_000;

/// A store opened for `cadrex bench`, with what was read from it up front.
pub struct BenchStore {
    store: Arc<dyn Store>,
    url: String,
    pki_dir: PathBuf,
    /// Ids of the cadres under `province`, for dossier calls.
    pub targets: Vec<String>,
    /// Engagements the province's audit system has on record, as
    /// (cadre id, source record id), for findings to cite.
    pub engagements: Vec<(String, String)>,
}

impl BenchStore {
    /// Opens `url`, first seeding it with the defaults when it has no cadres
    /// under `province` (a division code), and reads the targets and
    /// engagements there. Fails when the store cannot be opened or seeded.
    pub async fn open(url: &str, pki_dir: &Path, province: &str) -> anyhow::Result<Self> {
        crate::pki::ensure_dev(pki_dir)?;
        let list = |limit| CadreQuery {
            jurisdiction_prefix: province[..2].to_string(),
            limit,
            ..Default::default()
        };
        let store = crate::store::connect(url).await?;
        if store.list_cadres(&list(1)).await?.is_empty() {
            store.close().await;
            tracing::warn!("store has no cadres: seeding the defaults first");
            let summary = seed::run(seed::SeedArgs::new(url, pki_dir)).await?;
            eprintln!("{summary}");
        }
        let store = crate::store::connect(url).await?;
        let targets = store
            .list_cadres(&list(MAX_TARGETS))
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let audit = crate::pki::principal_of(
            &crate::pki::agency_cert(pki_dir, Agency::Audit, province)?.0,
        )?;
        let engagements = store
            .list_records(&RecordQuery {
                jurisdiction_prefix: province[..2].to_string(),
                kinds: vec!["AUDIT_ENGAGEMENT".into()],
                state: Some(RecordState::Active),
                max_revision: i64::MAX,
                limit: 1000,
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|r| r.owner_system == audit.uri)
            .map(|r| (r.cadre_id, r.source_record_id))
            .collect();
        Ok(Self {
            store,
            url: url.to_string(),
            pki_dir: pki_dir.to_path_buf(),
            targets,
            engagements,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &str {
        self.store.backend()
    }

    /// The application state a server builds over this store, for assembling
    /// dossiers in this process. Its appender is never used by the in-process
    /// dossier, and its checkpoints are an hour apart so they stay out of the
    /// way. Fails as [`crate::build_state`] does.
    pub async fn local_state(&self) -> anyhow::Result<crate::BuiltState> {
        let config = Config {
            store: self.url.clone(),
            pki_dir: self.pki_dir.clone(),
            checkpoint_interval: Duration::from_secs(3600),
            ..Config::default()
        };
        let tls = crate::tls::TlsState::load(crate::tls::TlsPaths {
            ca_cert: config.ca_cert_path(),
            server_cert: config.server_cert_path(),
            server_key: config.server_key_path(),
            crl: config.crl_path(),
        })?;
        crate::build_state(config, self.store.clone(), tls).await
    }

    /// The raw-insert yardstick for about `time` (see [`raw`]): rows written
    /// and the time they took.
    pub async fn raw_insert(
        &self,
        time: Duration,
        batch: usize,
        payload: &[u8],
    ) -> anyhow::Result<(u64, Duration)> {
        raw::measure(&self.url, time, batch, payload).await
    }

    /// The change feed's head.
    pub async fn change_head(&self) -> anyhow::Result<i64> {
        Ok(self.store.change_head().await?)
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// Measurement scaffolding, not part of cadrex's storage: the fastest plain
/// way to put rows into the same `records` table the server writes — the
/// table the migrations made, with its real keys, indexes and foreign key —
/// a multi-row INSERT of `batch` rows per transaction over one connection,
/// with no outbox, log or version rows. The rows belong to scratch cadres
/// (ids starting `bench-raw-`, which no seeded or registered cadre has),
/// made first and deleted with their rows afterwards, so the yardstick leaves
/// the store as it found it. The SQL lives here, not in the store, because it
/// exists only to give ingest a yardstick.
mod raw {
    use std::time::{Duration, Instant};

    use sqlx::{Connection, QueryBuilder};

    use crate::domain::states::RecordState;

    /// Scratch cadres the rows are spread over, as ingest spreads findings.
    const CADRES: u64 = 5000;
    const PREFIX: &str = "bench-raw-";
    const OWNER: &str = "urn:cadrex:system:audit:360000:audit-sys";

    fn cadre_id(n: u64) -> String {
        format!("{PREFIX}{:06}", n % CADRES)
    }

    /// The statements that remove every scratch row, records before cadres.
    fn cleanup() -> [String; 2] {
        [
            format!("DELETE FROM records WHERE cadre_id LIKE '{PREFIX}%'"),
            format!("DELETE FROM cadres WHERE id LIKE '{PREFIX}%'"),
        ]
    }

    /// Scratch cadres per INSERT, within SQLite's 32,766 bound parameters.
    const CADRES_PER_INSERT: u64 = 1000;

    fn push_cadres<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, first: u64)
    where
        for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'a> i32: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        q.push(
            "INSERT INTO cadres (id, id_number, display_name, gender, birth_date, \
             managing_division, posts, revision, create_time_us, update_time_us) ",
        );
        q.push_values(first..first + CADRES_PER_INSERT, |mut b, n| {
            b.push_bind(cadre_id(n))
                .push_bind(format!("{PREFIX}{n:06}"))
                .push_bind(String::new())
                .push_bind(0i32)
                .push_bind(String::new())
                .push_bind("999999".to_string())
                .push_bind("[]".to_string())
                .push_bind(0i64)
                .push_bind(0i64)
                .push_bind(0i64);
        });
    }

    fn push_rows<DB: sqlx::Database>(
        q: &mut QueryBuilder<DB>,
        first: u64,
        batch: usize,
        payload: &[u8],
    ) where
        for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'a> Vec<u8>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        q.push(
            "INSERT INTO records (id, cadre_id, kind, owner_system, owner_agency, owner_division, \
             source_record_id, source_version, revision, event_date, classification, state, \
             retraction_reason, payload, payload_sha256, transfer_agency, transfer_division, \
             submitting_system, update_time_us) ",
        );
        q.push_values(first..first + batch as u64, |mut b, n| {
            b.push_bind(uuid::Uuid::now_v7().simple().to_string())
                .push_bind(cadre_id(n))
                .push_bind("AUDIT_FINDING".to_string())
                .push_bind(OWNER.to_string())
                .push_bind("audit".to_string())
                .push_bind("360000".to_string())
                .push_bind(format!("{PREFIX}{n}"))
                .push_bind(1i64)
                .push_bind(n as i64)
                .push_bind("2026-05-20".to_string())
                .push_bind("INTERNAL".to_string())
                .push_bind(RecordState::Active.as_str().to_string())
                .push_bind(String::new())
                .push_bind(payload.to_vec())
                .push_bind(crate::access_log::digest(payload))
                .push_bind(String::new())
                .push_bind(String::new())
                .push_bind(OWNER.to_string())
                .push_bind(crate::domain::clock::now_us());
        });
    }

    /// Runs the yardstick on connection `$c` of backend `$db`: scratch cadres
    /// in, timed batches of rows for about `$time`, every scratch row out.
    /// A macro because the two connection types share no trait that runs a
    /// transaction on a `QueryBuilder`.
    macro_rules! measure_on {
        ($db:ty, $c:expr, $time:expr, $batch:expr, $payload:expr) => {{
            let c = $c;
            for sql in cleanup() {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *c)
                    .await?;
            }
            for first in (0..CADRES).step_by(CADRES_PER_INSERT as usize) {
                let mut q = QueryBuilder::<$db>::new("");
                push_cadres(&mut q, first);
                q.build().execute(&mut *c).await?;
            }
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < $time {
                let mut tx = c.begin().await?;
                let mut q = QueryBuilder::<$db>::new("");
                push_rows(&mut q, n, $batch, $payload);
                q.build().execute(&mut *tx).await?;
                tx.commit().await?;
                n += $batch as u64;
            }
            let elapsed = start.elapsed();
            for sql in cleanup() {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *c)
                    .await?;
            }
            (n, elapsed)
        }};
    }

    /// Rows written into `records` in about `time`, and the time taken.
    pub async fn measure(
        url: &str,
        time: Duration,
        batch: usize,
        payload: &[u8],
    ) -> anyhow::Result<(u64, Duration)> {
        if url.starts_with("sqlite:") {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            // The store's own settings (WAL, synchronous=NORMAL, foreign
            // keys), so the comparison is of work done, not of settings.
            let opts: SqliteConnectOptions = url.parse()?;
            let mut c = sqlx::SqliteConnection::connect_with(
                &opts
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10)),
            )
            .await?;
            let out = measure_on!(sqlx::Sqlite, &mut c, time, batch, payload);
            c.close().await?;
            Ok(out)
        } else {
            let mut c = sqlx::PgConnection::connect(url).await?;
            let out = measure_on!(sqlx::Postgres, &mut c, time, batch, payload);
            c.close().await?;
            Ok(out)
        }
    }
}
