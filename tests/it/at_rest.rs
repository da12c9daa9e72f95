//! At-rest scan: canaries planted in every informant field by every write path, then every column of every table of the store (found from its catalog, never a hand list) searched for them in plaintext, hex and base64.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cadrex::proto;
use cadrex::tools::import::{ImportArgs, ImportKind};
use sqlx::{Connection, Row};

use crate::both_backends;
use crate::common::{Backend, TestServer, cadrex_bin, server_log, server_url};
use crate::records::{cadre, petition_with_informant, record, records_client, submit};

both_backends!(no_informant_in_plaintext_anywhere_at_rest);

const DIVISION: &str = "360821";
const FIELDS: [&str; 4] = ["name", "unit", "contact", "address"];

/// The forms a canary could take in a cell: as is (also inside protobuf or
/// any other bytes), hex in either case, and base64 at each of its three
/// alignments (the quanta that mix in neighbouring bytes left out).
fn forms(canary: &str) -> Vec<(String, Vec<u8>)> {
    let raw = canary.as_bytes();
    let mut out = vec![
        ("plain".to_string(), raw.to_vec()),
        ("hex".to_string(), hex::encode(raw).into_bytes()),
        ("HEX".to_string(), hex::encode_upper(raw).into_bytes()),
    ];
    for shift in 0..3 {
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(raw);
        let enc = STANDARD.encode(&padded);
        let start = if shift == 0 { 0 } else { 4 };
        let end = enc.len().saturating_sub(4);
        if end > start + 8 {
            out.push((
                format!("base64/{shift}"),
                enc.as_bytes()[start..end].to_vec(),
            ));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Cells of one column, as bytes.
pub type Cells = Vec<Vec<u8>>;

fn quoted(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Every column of every table of a SQLite store, from `sqlite_master` and
/// `pragma table_info`; each value as its bytes (integers and text alike).
pub async fn sqlite_columns(url: &str) -> Vec<(String, Cells)> {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert!(tables.len() > 5, "catalog lists tables: {tables:?}");
    let mut out = Vec::new();
    for t in tables {
        let columns: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA table_info({})",
            quoted(&t)
        )))
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("name"))
        .collect();
        for col in columns {
            let sql = format!(
                "SELECT CAST({col} AS BLOB) FROM {t} WHERE {col} IS NOT NULL",
                col = quoted(&col),
                t = quoted(&t)
            );
            let cells = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut c)
                .await
                .unwrap_or_else(|e| panic!("reading {t}.{col}: {e}"))
                .iter()
                .map(|r| r.get::<Vec<u8>, _>(0))
                .collect();
            out.push((format!("{t}.{col}"), cells));
        }
    }
    let _ = c.close().await;
    out
}

/// Every column of every base table of a PostgreSQL store outside the system
/// schemas, from `information_schema`: bytea as its bytes, anything else as
/// its text form.
pub async fn postgres_columns(url: &str) -> Vec<(String, Cells)> {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let columns = sqlx::query(
        "SELECT c.table_schema::text, c.table_name::text, c.column_name::text, c.data_type::text \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE t.table_type = 'BASE TABLE' \
           AND c.table_schema NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY 1, 2, 3",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert!(columns.len() > 20, "catalog lists columns");
    let mut out = Vec::new();
    for r in columns {
        let (schema, table, col, ty): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let from = format!("{}.{}", quoted(&schema), quoted(&table));
        let cells: Cells = if ty == "bytea" {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {c} FROM {from} WHERE {c} IS NOT NULL",
                c = quoted(&col)
            )))
            .fetch_all(&mut c)
            .await
            .unwrap_or_else(|e| panic!("reading {table}.{col}: {e}"))
            .iter()
            .map(|r| r.get::<Vec<u8>, _>(0))
            .collect()
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {c}::text FROM {from} WHERE {c} IS NOT NULL",
                c = quoted(&col)
            )))
            .fetch_all(&mut c)
            .await
            .unwrap_or_else(|e| panic!("reading {table}.{col}: {e}"))
            .iter()
            .map(|r| r.get::<String, _>(0).into_bytes())
            .collect()
        };
        out.push((format!("{schema}.{table}.{col}"), cells));
    }
    let _ = c.close().await;
    out
}

/// `table.column (form): canary` for every cell of the store at `url` in
/// which one of `canaries` appears in any of its forms.
pub async fn plaintext_cells(url: &str, canaries: &[String]) -> Vec<String> {
    let columns = if url.starts_with("sqlite:") {
        sqlite_columns(url).await
    } else {
        postgres_columns(url).await
    };
    let needles: Vec<(String, String, Vec<u8>)> = canaries
        .iter()
        .flat_map(|c| {
            forms(c)
                .into_iter()
                .map(move |(form, bytes)| (c.clone(), form, bytes))
        })
        .collect();
    let mut hits = Vec::new();
    for (column, cells) in &columns {
        for cell in cells {
            for (canary, form, needle) in &needles {
                if contains(cell, needle) {
                    hits.push(format!("{column} ({form}): {canary}"));
                }
            }
        }
    }
    hits.sort();
    hits.dedup();
    hits
}

/// Hits of `canaries` (any form) in the raw bytes of a file, e.g. a SQLite
/// database with its free pages, or a backup.
fn file_hits(path: &Path, canaries: &[String]) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for c in canaries {
        for (form, needle) in forms(c) {
            if contains(&bytes, &needle) {
                hits.push(format!("{} ({form}): {c}", path.display()));
            }
        }
    }
    hits
}

/// The informant canaries of one write path.
fn informant_canaries(tag: &str) -> Vec<String> {
    FIELDS.iter().map(|f| format!("{tag}-{f}")).collect()
}

struct Planted {
    /// Must appear nowhere at rest.
    informants: Vec<String>,
    /// Free text that is content, stored as is: the scan must find these,
    /// which shows that it reads the cells it claims to.
    controls: Vec<String>,
}

impl Planted {
    fn tag(&mut self, base: &str, path: &str) -> String {
        let tag = format!("{base}{path}");
        self.informants.extend(informant_canaries(&tag));
        self.controls.push(format!("{tag}-summary"));
        tag
    }
}

async fn assert_clean(url: &str, planted: &Planted, when: &str) {
    let hits = plaintext_cells(url, &planted.informants).await;
    assert!(hits.is_empty(), "{when}: informant data at rest: {hits:#?}");
    let found = plaintext_cells(url, &planted.controls).await;
    for control in &planted.controls {
        assert!(
            found.iter().any(|h| h.ends_with(control.as_str())),
            "{when}: the scan did not find the free-text control {control}: it reads nothing"
        );
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        for file in [path.to_string(), format!("{path}-wal")] {
            let hits = file_hits(Path::new(&file), &planted.informants);
            assert!(
                hits.is_empty(),
                "{when}: informant bytes in the file: {hits:?}"
            );
        }
    }
}

/// Every write path that can carry an informant — single submit, submit with
/// `request_id` and its replay, batch with `request_id` and its replay, batch
/// without, `cadrex import`, retraction, a correcting newer version, key
/// rotation, backup and restore — and then every cell of the store.
async fn no_informant_in_plaintext_anywhere_at_rest(backend: Backend) {
    let mut server = TestServer::spawn(backend).await;
    let c = cadre(&server, 90).await;
    let base = format!("AR{}", uuid::Uuid::new_v4().simple());
    let mut planted = Planted {
        informants: Vec::new(),
        controls: Vec::new(),
    };
    let mut client = records_client(server.channel("petition", DIVISION).await);

    // Single submit.
    let tag = planted.tag(&base, "single");
    client
        .submit_record(submit(record(&c, "AR-1", 1, petition_with_informant(&tag))))
        .await
        .unwrap();

    // Submit with request_id, and its replay.
    let tag = planted.tag(&base, "rid");
    let with_id = proto::SubmitRecordRequest {
        record: Some(record(&c, "AR-2", 1, petition_with_informant(&tag))),
        request_id: format!("{base}-rid"),
        validate_only: false,
    };
    let first = client
        .submit_record(with_id.clone())
        .await
        .unwrap()
        .into_inner();
    let replayed = client
        .submit_record(with_id.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, replayed);

    // Batch with request_id, and its replay; batch without.
    let tag = planted.tag(&base, "batch");
    let tag2 = planted.tag(&base, "batchtwo");
    let batch = proto::BatchSubmitRecordsRequest {
        requests: vec![
            submit(record(&c, "AR-3", 1, petition_with_informant(&tag))),
            submit(record(&c, "AR-4", 1, petition_with_informant(&tag2))),
        ],
        request_id: format!("{base}-batch"),
        validate_only: false,
    };
    let first = client
        .batch_submit_records(batch.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(first.results.iter().all(|r| r.error.is_none()), "{first:?}");
    let replayed = client
        .batch_submit_records(batch)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, replayed);
    let tag = planted.tag(&base, "plainbatch");
    client
        .batch_submit_records(proto::BatchSubmitRecordsRequest {
            requests: vec![submit(record(&c, "AR-5", 1, petition_with_informant(&tag)))],
            request_id: String::new(),
            validate_only: false,
        })
        .await
        .unwrap();

    // `cadrex import` of a petitions file (batches with request ids).
    let tag = planted.tag(&base, "import");
    let file = server.dir.path().join("petitions.ndjson");
    let line = serde_json::json!({
        "cadre_id_number": c.id_number, "source_record_id": "AR-6", "source_version": 1,
        "classification": "WORK_SECRET", "received_date": "2025-04-17", "channel": "LETTER",
        "anonymous": false, "category": "ACCUSATION_DISCIPLINE", "specific": true,
        "status": "IN_DISPOSAL", "forwarded_to": "", "summary": format!("{tag}-summary"),
        "informant_name": format!("{tag}-name"), "informant_unit": format!("{tag}-unit"),
        "informant_contact": format!("{tag}-contact"),
        "informant_address": format!("{tag}-address"),
    });
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let (cert, key) = server.client_files("petition", DIVISION);
    let mut args = ImportArgs::new(ImportKind::Petition, file, cert, key);
    args.server = server_url(&server);
    let s = cadrex::tools::import::run(args).await.unwrap();
    assert_eq!((s.rows, s.accepted, s.rejected), (1, 1, 0), "{s}");

    // Retraction with a free-text reason.
    let tag = planted.tag(&base, "retract");
    let retracted = client
        .submit_record(submit(record(&c, "AR-7", 1, petition_with_informant(&tag))))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    client
        .retract_record(proto::RetractRecordRequest {
            name: retracted.name,
            reason: format!("{tag}-reason 重复登记"),
            etag: String::new(),
        })
        .await
        .unwrap();

    // A correction: a newer version with another informant (the first
    // version's summary is gone with it, so it is no control any more).
    let tag = planted.tag(&base, "corrected");
    planted
        .controls
        .retain(|c| *c != format!("{base}rid-summary"));
    client
        .submit_record(submit(record(&c, "AR-2", 2, petition_with_informant(&tag))))
        .await
        .unwrap();

    // Discipline reads them (reads are logged; the log holds names only).
    let mut discipline = records_client(server.channel("discipline", DIVISION).await);
    discipline
        .list_records(proto::ListRecordsRequest {
            parent: c.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_clean(&server.store_url, &planted, "after every write path").await;

    // Key rotation, offline; the replay still answers, re-rendered under the new key.
    server.stop().await;
    let key_file = server.pki.join("informant.key");
    let (ok, out) = cadrex_bin(&[
        "keys",
        "rotate",
        "--store",
        &server.store_url,
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    assert!(ok, "cadrex keys rotate: {out}");
    let (store, pki) = (server.store_url.clone(), server.pki.clone());
    let reopened = TestServer::spawn_with(backend, move |cfg| {
        cfg.store = store;
        cfg.pki_dir = pki;
    })
    .await;
    let mut client = records_client(reopened.channel("petition", DIVISION).await);
    let again = client.submit_record(with_id).await.unwrap().into_inner();
    let Some(proto::record::Payload::Petition(p)) = again.record.unwrap().payload else {
        panic!("replay is not a full petition")
    };
    assert_eq!(
        p.informant.unwrap().name,
        format!("{base}corrected-name"),
        "a replay renders the record as it is now, under the new key"
    );
    assert_clean(&reopened.store_url, &planted, "after key rotation").await;

    // Backup and restore (SQLite; PostgreSQL is backed up with pg_dump).
    if backend == Backend::Sqlite {
        let backup = reopened.dir.path().join("backup.db");
        let (ok, out) = cadrex_bin(&[
            "backup",
            "--store",
            &reopened.store_url,
            "--out",
            backup.to_str().unwrap(),
        ]);
        assert!(ok, "cadrex backup: {out}");
        let hits = file_hits(&backup, &planted.informants);
        assert!(hits.is_empty(), "informant bytes in the backup: {hits:?}");
        let restored = format!(
            "sqlite://{}",
            reopened.dir.path().join("restored.db").display()
        );
        let (ok, out) = cadrex_bin(&[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--store",
            &restored,
        ]);
        assert!(ok, "cadrex restore: {out}");
        assert_clean(&restored, &planted, "in the restored store").await;
    }

    // And nothing in the server's own log output.
    let log = server_log().text();
    for canary in &planted.informants {
        assert!(
            !log.contains(canary.as_str()),
            "informant in the server log"
        );
    }
}
