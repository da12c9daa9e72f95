//! The SQLite mirror: one row per resource at its newest revision, the cursor committed in the same transaction as the page it follows.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

use super::item::{Checkpoint, Item, Stored, Written};
use super::kind_suffix;
use crate::domain::clock::now_us;
use crate::domain::states::RecordState;

const MIRROR_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mirror_resources (
    resource TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    revision INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('ACTIVE', 'RETRACTED')),
    body BLOB,
    commit_time_us INTEGER NOT NULL,
    body_json TEXT,
    cadre TEXT,
    event_date TEXT,
    out_of_view INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS mirror_resources_kind ON mirror_resources (kind, state);
CREATE TABLE IF NOT EXISTS mirror_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor TEXT,
    snapshot_done INTEGER NOT NULL DEFAULT 0,
    kinds TEXT NOT NULL DEFAULT '',
    update_time_us INTEGER NOT NULL DEFAULT 0
);
INSERT INTO mirror_state (id, cursor, snapshot_done) VALUES (1, NULL, 0) ON CONFLICT (id) DO NOTHING;
";

/// A row is replaced only by a newer revision of it, or restored by the same
/// revision when it is held as out of view (a cadre moved away and back):
/// redelivered and superseded changes leave it alone, which is what makes
/// at-least-once delivery apply exactly once.
const MIRROR_UPSERT: &str = "
INSERT INTO mirror_resources
    (resource, kind, revision, state, body, commit_time_us, body_json, cadre, event_date, out_of_view)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)
ON CONFLICT (resource) DO UPDATE SET
    kind = excluded.kind, revision = excluded.revision, state = excluded.state,
    body = excluded.body, commit_time_us = excluded.commit_time_us,
    body_json = excluded.body_json, cadre = excluded.cadre, event_date = excluded.event_date,
    out_of_view = 0
WHERE excluded.revision > mirror_resources.revision
   OR (excluded.revision = mirror_resources.revision AND mirror_resources.out_of_view = 1)";

/// An `OUT_OF_VIEW` event at a revision at least the one held: the row stays
/// (not deleted, not retracted: the data lives on, elsewhere) but keeps no
/// content the caller may no longer see. A resource not held yet gets the
/// marker too, so that an older UPSERT delivered late cannot bring it back.
const MIRROR_OUT_OF_VIEW: &str = "
INSERT INTO mirror_resources
    (resource, kind, revision, state, body, commit_time_us, body_json, cadre, event_date, out_of_view)
VALUES ($1, $2, $3, 'ACTIVE', NULL, $4, NULL, $5, NULL, 1)
ON CONFLICT (resource) DO UPDATE SET
    revision = excluded.revision, body = NULL, body_json = NULL,
    commit_time_us = excluded.commit_time_us, out_of_view = 1
WHERE excluded.revision > mirror_resources.revision
   OR (excluded.revision = mirror_resources.revision AND mirror_resources.out_of_view = 0)";

/// Columns added after the first mirrors were made, with their declarations:
/// a mirror from then gets them (empty until each row's next change; delete
/// the file to rebuild).
const MIRROR_COLUMNS: [(&str, &str); 4] = [
    ("body_json", "TEXT"),
    ("cadre", "TEXT"),
    ("event_date", "TEXT"),
    ("out_of_view", "INTEGER NOT NULL DEFAULT 0"),
];

pub(super) struct Mirror {
    conn: SqliteConnection,
}

impl Mirror {
    pub(super) async fn open(url: &str) -> anyhow::Result<Mirror> {
        let opts = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("--into {url:?} is not a SQLite URL (sqlite://FILE)"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Rows and cursor commit together, so even an OS crash that loses
            // the newest commits leaves a consistent mirror that re-syncs them.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        if let Some(parent) = opts.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut conn = opts
            .connect()
            .await
            .with_context(|| format!("cannot open the mirror {url}"))?;
        sqlx::raw_sql(MIRROR_SCHEMA)
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create the mirror tables in {url}"))?;
        for (column, declaration) in MIRROR_COLUMNS {
            let present: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pragma_table_info('mirror_resources') WHERE name = $1",
            )
            .bind(column)
            .fetch_one(&mut conn)
            .await?;
            if present == 0 {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE mirror_resources ADD COLUMN {column} {declaration}"
                )))
                .execute(&mut conn)
                .await?;
            }
        }
        sqlx::raw_sql(
            "CREATE INDEX IF NOT EXISTS mirror_resources_cadre ON mirror_resources (cadre, kind)",
        )
        .execute(&mut conn)
        .await?;
        // What the current snapshot listed, on disk rather than in memory (a
        // national caller lists millions); per connection, since a snapshot
        // that does not finish in this process is redone from the start.
        sqlx::raw_sql("CREATE TEMP TABLE mirror_seen (resource TEXT PRIMARY KEY)")
            .execute(&mut conn)
            .await?;
        Ok(Mirror { conn })
    }

    pub(super) async fn load(&mut self) -> anyhow::Result<Stored> {
        let row = sqlx::query("SELECT cursor, snapshot_done, kinds FROM mirror_state WHERE id = 1")
            .fetch_one(&mut self.conn)
            .await?;
        let done: i64 = row.try_get("snapshot_done")?;
        Ok(Stored {
            cursor: row
                .try_get::<Option<String>, _>("cursor")?
                .filter(|c| done == 1 && !c.is_empty()),
            kinds: row.try_get("kinds")?,
        })
    }

    /// Applies `items` and moves the checkpoint, in one transaction. Items of
    /// a `snapshot` page are also noted as seen by the snapshot.
    pub(super) async fn write(
        &mut self,
        items: &[Item],
        snapshot: bool,
        checkpoint: Checkpoint<'_>,
    ) -> anyhow::Result<Written> {
        let mut out = Written::default();
        // IMMEDIATE: a reader of the mirror in another process never makes
        // this writer fail half-way with SQLITE_BUSY on lock upgrade.
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        for item in items {
            if item.out_of_view {
                let done = sqlx::query(MIRROR_OUT_OF_VIEW)
                    .bind(&item.resource)
                    .bind(kind_suffix(item.kind))
                    .bind(item.revision)
                    .bind(item.commit_time_us)
                    .bind((!item.cadre.is_empty()).then_some(item.cadre.as_str()))
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() > 0 {
                    out.applied += 1;
                } else {
                    out.unchanged += 1;
                }
                continue;
            }
            let state = if item.retracted {
                RecordState::Retracted
            } else {
                RecordState::Active
            }
            .as_str();
            let body = (!item.retracted).then_some(item.body.as_slice());
            let json = (!item.retracted && !item.json.is_null()).then(|| item.json.to_string());
            let done = sqlx::query(MIRROR_UPSERT)
                .bind(&item.resource)
                .bind(kind_suffix(item.kind))
                .bind(item.revision)
                .bind(state)
                .bind(body)
                .bind(item.commit_time_us)
                .bind(json)
                .bind((!item.cadre.is_empty()).then_some(item.cadre.as_str()))
                .bind((!item.event_date.is_empty()).then_some(item.event_date.as_str()))
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                out.applied += 1;
            } else {
                out.unchanged += 1;
            }
            if snapshot {
                sqlx::query(
                    "INSERT INTO mirror_seen (resource) VALUES ($1) ON CONFLICT DO NOTHING",
                )
                .bind(&item.resource)
                .execute(&mut *tx)
                .await?;
            }
        }
        match checkpoint {
            Checkpoint::Keep => {}
            Checkpoint::Cursor(cursor) => {
                sqlx::query(
                    "UPDATE mirror_state SET cursor = $1, update_time_us = $2 WHERE id = 1",
                )
                .bind(cursor)
                .bind(now_us())
                .execute(&mut *tx)
                .await?;
            }
            Checkpoint::SnapshotStart { kinds } => {
                sqlx::query("DELETE FROM mirror_seen")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE mirror_state SET cursor = NULL, snapshot_done = 0, kinds = $1, \
                     update_time_us = $2 WHERE id = 1",
                )
                .bind(kinds)
                .bind(now_us())
                .execute(&mut *tx)
                .await?;
            }
            Checkpoint::SnapshotDone { cursor, kinds } => {
                // Out of view, not retracted: the data lives on, elsewhere
                // (DESIGN §5). The revision stays, so the resource coming back
                // into view at the same or a newer revision restores it.
                let gone = sqlx::query(
                    "UPDATE mirror_resources SET out_of_view = 1, body = NULL, body_json = NULL \
                     WHERE out_of_view = 0 AND instr($1, ',' || kind || ',') > 0 \
                       AND resource NOT IN (SELECT resource FROM mirror_seen)",
                )
                .bind(format!(",{kinds},"))
                .execute(&mut *tx)
                .await?;
                out.applied += gone.rows_affected();
                sqlx::query("DELETE FROM mirror_seen")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE mirror_state SET cursor = $1, snapshot_done = 1, kinds = $2, \
                     update_time_us = $3 WHERE id = 1",
                )
                .bind(cursor)
                .bind(kinds)
                .bind(now_us())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ChangeKind;

    async fn row(m: &mut Mirror, name: &str) -> (i64, String, Option<Vec<u8>>) {
        let r = sqlx::query(
            "SELECT revision, CASE WHEN out_of_view = 1 THEN 'OUT_OF_VIEW' ELSE state END, body \
                 FROM mirror_resources WHERE resource = $1",
        )
        .bind(format!("cadres/a/records/{name}"))
        .fetch_one(&mut m.conn)
        .await
        .unwrap();
        (r.get(0), r.get(1), r.get(2))
    }

    /// A mirror made before the JSON and typed columns gets them on open, and
    /// keeps its rows.
    #[tokio::test]
    async fn an_older_mirror_gains_the_json_columns() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        {
            let mut conn = SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true)
                .connect()
                .await
                .unwrap();
            sqlx::raw_sql(
                "CREATE TABLE mirror_resources (resource TEXT PRIMARY KEY, kind TEXT NOT NULL, \
                 revision INTEGER NOT NULL, state TEXT NOT NULL, body BLOB, \
                 commit_time_us INTEGER NOT NULL); \
                 INSERT INTO mirror_resources VALUES ('cadres/a/records/x', 'AUDIT_FINDING', 1, \
                 'ACTIVE', x'00', 1);",
            )
            .execute(&mut conn)
            .await
            .unwrap();
        }
        let mut m = Mirror::open(&url).await.unwrap();
        let row =
            sqlx::query("SELECT revision, body_json, cadre, event_date FROM mirror_resources")
                .fetch_one(&mut m.conn)
                .await
                .unwrap();
        assert_eq!(row.get::<i64, _>(0), 1);
        assert_eq!(row.get::<Option<String>, _>(1), None);
        // Opening again finds the columns present.
        drop(m);
        Mirror::open(&url).await.unwrap();
    }

    #[tokio::test]
    async fn the_mirror_applies_only_newer_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let mut m = Mirror::open(&url).await.unwrap();
        let item = |name: &str, rev: i64, retracted: bool| Item {
            resource: format!("cadres/a/records/{name}"),
            kind: ChangeKind::AuditFinding,
            revision: rev,
            retracted,
            out_of_view: false,
            body: vec![rev as u8],
            json: serde_json::json!({ "revision": rev.to_string() }),
            cadre: "cadres/a".into(),
            event_date: "2025-06-30".into(),
            commit_time_us: rev,
            event: None,
        };
        let w = m
            .write(
                &[
                    item("b", 5, false),
                    item("b", 5, false),
                    item("b", 3, false),
                ],
                false,
                Checkpoint::Cursor("c1"),
            )
            .await
            .unwrap();
        assert_eq!((w.applied, w.unchanged), (1, 2));
        let w = m
            .write(&[item("b", 7, true)], false, Checkpoint::Cursor("c2"))
            .await
            .unwrap();
        assert_eq!(w.applied, 1);
        assert_eq!(row(&mut m, "b").await, (7, "RETRACTED".into(), None));

        // A snapshot that lists `c` only: `b` (retracted) and `d` are no
        // longer visible and are marked out of view, at their revisions.
        m.write(&[item("d", 8, false)], false, Checkpoint::Cursor("c3"))
            .await
            .unwrap();
        m.write(
            &[],
            true,
            Checkpoint::SnapshotStart {
                kinds: "AUDIT_FINDING",
            },
        )
        .await
        .unwrap();
        // Without a completed snapshot there is no cursor to resume from.
        assert_eq!(m.load().await.unwrap().cursor, None);
        m.write(&[item("c", 9, false)], true, Checkpoint::Keep)
            .await
            .unwrap();
        let w = m
            .write(
                &[],
                true,
                Checkpoint::SnapshotDone {
                    cursor: "c4",
                    kinds: "AUDIT_FINDING",
                },
            )
            .await
            .unwrap();
        assert_eq!(w.applied, 2);
        assert_eq!(row(&mut m, "b").await, (7, "OUT_OF_VIEW".into(), None));
        let stored = m.load().await.unwrap();
        assert_eq!(stored.cursor.as_deref(), Some("c4"));
        assert_eq!(stored.kinds, "AUDIT_FINDING");
        assert_eq!(row(&mut m, "c").await, (9, "ACTIVE".into(), Some(vec![9])));
        assert_eq!(row(&mut m, "d").await, (8, "OUT_OF_VIEW".into(), None));
        // Coming back into view at the same revision restores it.
        m.write(&[item("d", 8, false)], false, Checkpoint::Cursor("c4"))
            .await
            .unwrap();
        assert_eq!(row(&mut m, "d").await, (8, "ACTIVE".into(), Some(vec![8])));
        // OUT_OF_VIEW applies at a revision at least the one held, not below,
        // and not twice.
        let gone = |rev: i64| Item {
            out_of_view: true,
            body: Vec::new(),
            json: serde_json::Value::Null,
            ..item("d", rev, false)
        };
        let w = m
            .write(
                &[gone(7), gone(8), gone(8)],
                false,
                Checkpoint::Cursor("c4"),
            )
            .await
            .unwrap();
        assert_eq!((w.applied, w.unchanged), (1, 2));
        assert_eq!(row(&mut m, "d").await, (8, "OUT_OF_VIEW".into(), None));
        // An older upsert delivered late does not bring it back.
        m.write(&[item("d", 7, false)], false, Checkpoint::Cursor("c4"))
            .await
            .unwrap();
        assert_eq!(row(&mut m, "d").await, (8, "OUT_OF_VIEW".into(), None));
        // Coming back into view with a newer revision restores it.
        m.write(&[item("d", 10, false)], false, Checkpoint::Cursor("c5"))
            .await
            .unwrap();
        assert_eq!(
            row(&mut m, "d").await,
            (10, "ACTIVE".into(), Some(vec![10]))
        );
    }
}
