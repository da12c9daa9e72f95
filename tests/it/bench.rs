//! `cadrex seed` and `cadrex bench` end to end: tiny seeded stores on both backends, every benchmark figure present and positive, and seeding reproducible.

use std::path::Path;

use cadrex::store::{CadreQuery, RecordQuery};

use crate::both_backends;
use crate::common::{Backend, TestDb, cadrex_bin};

/// A store URL for `backend`, and the database to drop afterwards.
async fn store_url(backend: Backend, dir: &Path, name: &str) -> (String, Option<TestDb>) {
    match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
            None,
        ),
        Backend::Postgres => {
            let db = TestDb::create().await;
            (db.url.clone(), Some(db))
        }
    }
}

/// Runs the cadrex binary off the async workers (it takes seconds).
async fn cadrex(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cadrex_bin(&args)
    })
    .await
    .unwrap()
}

fn seed_args(url: &str, pki: &Path, cadres: &str, seed: &str) -> Vec<String> {
    [
        "seed",
        "--store",
        url,
        "--pki-dir",
        &pki.display().to_string(),
        "--cadres",
        cadres,
        "--records-per-cadre",
        "5",
        "--seed",
        seed,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn bench_reports_every_figure(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let (url, _db) = store_url(backend, dir.path(), "bench").await;
    let (ok, out) = cadrex(seed_args(&url, &pki, "50", "7")).await;
    assert!(ok, "seed failed: {out}");
    assert!(out.contains("seeded 50 cadres"), "{out}");

    let (ok, out) = cadrex(
        [
            "bench",
            "--store",
            &url,
            "--pki-dir",
            &pki.display().to_string(),
            "--duration",
            "3s",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
    .await;
    assert!(ok, "bench failed: {out}");
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON object in: {out}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let expected_backend = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(v["backend"], expected_backend, "{v}");
    let positive = |path: &str| {
        let mut x = &v;
        for part in path.split('.') {
            x = &x[part];
        }
        let n = x
            .as_f64()
            .unwrap_or_else(|| panic!("{path} missing or not a number in {v}"));
        assert!(n > 0.0, "{path} = {n} in {v}");
    };
    for n in ["1", "16", "64"] {
        for f in [
            "ceiling_rps",
            "dossier_rps",
            "dossier_p50_ms",
            "dossier_p99_ms",
            "dossier_to_ceiling",
        ] {
            positive(&format!("{f}.{n}"));
        }
    }
    for f in [
        "cadres",
        "changes",
        "dossier_in_process_rps",
        "dossier_rpc_to_in_process",
        "ingest_findings_per_s",
        "raw_insert_rows_per_s",
        "ingest_to_raw",
        "feed_changes_per_s",
        "feed_events",
        "server_peak_rss_mib",
    ] {
        positive(f);
    }
    if cfg!(feature = "bench-nolog") {
        positive("dossier_unlogged_rps");
        positive("logged_to_unlogged");
    } else {
        assert!(v["dossier_unlogged_rps"].is_null(), "{v}");
        assert!(v["logged_to_unlogged"].is_null(), "{v}");
    }
    // The feed was read from its start: at least the seeded cadres are in it.
    assert!(v["feed_events"].as_f64().unwrap() >= 50.0, "{v}");
}

/// Cadres and records of a store, in id order, as (id, content) pairs.
async fn contents(url: &str) -> (Vec<(String, String, String)>, Vec<(String, String, String)>) {
    let store = cadrex::store::connect(url).await.unwrap();
    let cadres = store
        .list_cadres(&CadreQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.id_number, c.display_name))
        .collect();
    let records = store
        .list_records(&RecordQuery {
            kinds: cadrex::domain::records::Kind::ALL
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            max_revision: i64::MAX,
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.cadre_id, r.payload_sha256))
        .collect();
    store.close().await;
    (cadres, records)
}

/// The same seed gives the same cadres and records — on SQLite and on the
/// backend under test alike — and another seed gives others.
async fn seeding_is_deterministic(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let (reference, _) = store_url(Backend::Sqlite, dir.path(), "reference").await;
    let (same, _db) = store_url(backend, dir.path(), "same").await;
    let (other, _) = store_url(Backend::Sqlite, dir.path(), "other").await;
    for (url, seed) in [(&reference, "11"), (&same, "11"), (&other, "12")] {
        let (ok, out) = cadrex(seed_args(url, &pki, "40", seed)).await;
        assert!(ok, "seed failed: {out}");
    }
    let (ref_cadres, ref_records) = contents(&reference).await;
    assert_eq!(ref_cadres.len(), 40);
    assert!(!ref_records.is_empty());
    for (_, number, _) in &ref_cadres {
        assert!(cadrex::domain::ids::is_valid_id_number(number), "{number}");
    }
    let (cadres, records) = contents(&same).await;
    assert_eq!(cadres, ref_cadres);
    assert_eq!(records, ref_records);
    let (other_cadres, _) = contents(&other).await;
    assert_ne!(other_cadres, ref_cadres);

    // A second seeding of a seeded store is refused, not half-applied.
    let (ok, out) = cadrex(seed_args(&same, &pki, "40", "11")).await;
    assert!(!ok, "{out}");
    assert!(out.contains("already has cadres"), "{out}");
}

both_backends!(bench_reports_every_figure, seeding_is_deterministic);
