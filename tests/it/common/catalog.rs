//! Every column of every table of a store, read from its catalog (never a hand list), for the scans that look for what must not be at rest.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sqlx::{Connection, Row};

/// Cells of one column, as bytes.
pub type Cells = Vec<Vec<u8>>;

pub fn quoted(ident: &str) -> String {
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

/// The forms a canary could take in a cell: as is (also inside protobuf or
/// any other bytes), hex in either case, and base64 at each of its three
/// alignments (the quanta that mix in neighbouring bytes left out).
pub fn forms(canary: &str) -> Vec<(String, Vec<u8>)> {
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

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
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
