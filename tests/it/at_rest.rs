//! At-rest scan: canaries planted in every informant field by every write path, then every column of every table of the store (found from its catalog, never a hand list) searched for them in plaintext, hex and base64 — and for every unkeyed digest an offline guesser could compute over them.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cadrex::proto;
use cadrex::tools::import::{ImportArgs, ImportKind};
use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};

use crate::both_backends;
use crate::common::{
    Backend, TestDb, TestServer, cadrex_bin, contains, forms, plaintext_cells, postgres_columns,
    server_log, server_url, sqlite_columns,
};
use crate::common::{cadre, petition_with_informant, record, records_client, submit};

both_backends!(
    no_informant_in_plaintext_anywhere_at_rest,
    an_older_store_is_upgraded_and_keeps_nothing_a_guesser_can_test,
    every_start_keys_what_an_older_server_wrote_since
);

const DIVISION: &str = "360821";
const FIELDS: [&str; 4] = ["name", "unit", "contact", "address"];

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

/// Every unkeyed digest an offline guesser could compute from the stored
/// rows and a guessed informant: SHA-256 of each informant field alone, of
/// the payload formula (classification, payload with the informant), of
/// whole request messages and of whole responses that carried an informant.
/// The test knows the bytes the guesser would rebuild.
#[derive(Default)]
pub struct Guesses(Vec<(String, [u8; 32])>);

impl Guesses {
    fn add(&mut self, label: String, bytes: &[u8]) {
        self.0.push((label, Sha256::digest(bytes).into()));
    }

    pub fn canaries(&mut self, canaries: &[String]) {
        for c in canaries {
            self.add(format!("sha256({c})"), c.as_bytes());
        }
    }

    /// The payload formula of every record a message carries (both the
    /// digest's bytes now and the plain payload encoding alone).
    pub fn payload(&mut self, label: &str, r: &proto::Record) {
        let Some(payload) = &r.payload else { return };
        let class = cadrex::domain::records::classification_name(r.classification);
        self.add(
            format!("payload formula of {label}"),
            &cadrex::domain::records::digest_bytes(class, payload),
        );
        let alone = proto::Record {
            payload: Some(payload.clone()),
            ..Default::default()
        };
        self.add(format!("payload bytes of {label}"), &alone.encode_to_vec());
    }

    pub fn message<M: Message>(&mut self, label: &str, m: &M) {
        self.add(format!("message {label}"), &m.encode_to_vec());
    }

    /// The forms a digest could take in a cell: raw, hex (either case),
    /// base64 of the raw bytes, and base64 of the hex text.
    fn needles(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for (label, d) in &self.0 {
            let hex = hex::encode(d);
            out.push((format!("{label} raw"), d.to_vec()));
            out.push((format!("{label} hex"), hex.clone().into_bytes()));
            out.push((format!("{label} HEX"), hex.to_uppercase().into_bytes()));
            out.push((
                format!("{label} b64"),
                STANDARD.encode(d).as_bytes()[..40].to_vec(),
            ));
            out.push((
                format!("{label} b64(hex)"),
                STANDARD.encode(hex.as_bytes()).as_bytes()[..80].to_vec(),
            ));
        }
        out
    }
}

/// `(column, what)` for every cell of the store at `url` that holds one of
/// the guessed digests in any form.
async fn digest_hits(url: &str, guesses: &Guesses) -> Vec<(String, String)> {
    let columns = if url.starts_with("sqlite:") {
        sqlite_columns(url).await
    } else {
        postgres_columns(url).await
    };
    let needles = guesses.needles();
    let mut hits = Vec::new();
    for (column, cells) in &columns {
        for cell in cells {
            for (what, needle) in &needles {
                if contains(cell, needle) {
                    hits.push((column.clone(), what.clone()));
                }
            }
        }
    }
    hits.sort();
    hits.dedup();
    hits
}

/// Runs one query on the store at `url` and gives back the first column of
/// every row as text.
async fn texts(url: &str, sql: &str) -> Vec<String> {
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let out = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        let _ = c.close().await;
        out
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let out = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        let _ = c.close().await;
        out
    }
}

/// The last access-log seq that may hold an unkeyed response digest: the
/// chain head recorded at the upgrade to keyed digests, or, once `cadrex
/// keys rekey-digests` ran after the last older server stopped, the head
/// recorded then.
async fn upgrade_head(url: &str) -> i64 {
    let seq = |key: &str| {
        let sql = format!("SELECT value FROM meta WHERE key = '{key}'");
        async move {
            texts(url, &sql)
                .await
                .first()
                .map(|v| v.split_once(':').unwrap().0.parse::<i64>().unwrap())
        }
    };
    let head = seq("digest_upgrade_head")
        .await
        .expect("the store records the chain head at the upgrade");
    seq("digest_upgrade_end").await.unwrap_or(head).max(head)
}

/// Nothing at rest confirms a guess (DESIGN §2): no guessed digest anywhere
/// except `access_log.response_sha256` of rows at or below the chain head
/// recorded at the upgrade; every stored payload and request digest keyed;
/// every sealed informant block padded. Returns how many permitted hits
/// (old chained rows) there were.
async fn assert_no_guess_confirmable(
    url: &str,
    guesses: &Guesses,
    padded: bool,
    when: &str,
) -> usize {
    assert!(guesses.0.len() > 10, "{when}: the guesser has guesses");
    let head = upgrade_head(url).await;
    let hits = digest_hits(url, guesses).await;
    let mut permitted = 0;
    for (column, what) in &hits {
        assert!(
            column.ends_with("access_log.response_sha256"),
            "{when}: {column} holds {what}: a reader of the store can test a guess"
        );
        let hex = guesses
            .0
            .iter()
            .find(|(l, _)| what.starts_with(l.as_str()))
            .map(|(_, d)| hex::encode(d))
            .unwrap();
        let seqs = texts(
            url,
            &format!("SELECT CAST(seq AS TEXT) FROM access_log WHERE response_sha256 = '{hex}'"),
        )
        .await;
        for seq in seqs {
            let seq: i64 = seq.parse().unwrap();
            assert!(
                seq <= head,
                "{when}: access-log row {seq}, above the upgrade head {head}, holds {what}"
            );
            permitted += 1;
        }
    }
    for (table, column) in [
        ("records", "payload_sha256"),
        ("record_versions", "payload_sha256"),
        ("request_ids", "request_sha256"),
    ] {
        let unkeyed = texts(
            url,
            &format!("SELECT {column} FROM {table} WHERE {column} NOT LIKE 'k1:%'"),
        )
        .await;
        assert!(
            unkeyed.is_empty(),
            "{when}: unkeyed {table}.{column}: {unkeyed:?}"
        );
    }
    let lengths = texts(
        url,
        "SELECT CAST(length(informant_data) AS TEXT) FROM records WHERE informant_data IS NOT NULL",
    )
    .await;
    assert!(!lengths.is_empty(), "{when}: sealed blocks exist");
    for l in lengths.into_iter().filter(|_| padded) {
        let l: usize = l.parse().unwrap();
        assert_eq!(
            l % 256,
            16,
            "{when}: a sealed block of {l} bytes is not padded"
        );
    }
    permitted
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
    let mut guesses = Guesses::default();

    // Single submit.
    let tag = planted.tag(&base, "single");
    let single = submit(record(&c, "AR-1", 1, petition_with_informant(&tag)));
    guesses.message("single submit", &single);
    guesses.payload("single", single.record.as_ref().unwrap());
    let answer = client.submit_record(single).await.unwrap().into_inner();
    guesses.message("single submit's answer", &answer);

    // Submit with request_id, and its replay.
    let tag = planted.tag(&base, "rid");
    let with_id = proto::SubmitRecordRequest {
        record: Some(record(&c, "AR-2", 1, petition_with_informant(&tag))),
        request_id: format!("{base}-rid"),
        validate_only: false,
    };
    guesses.message("submit with request id", &with_id);
    guesses.payload("rid", with_id.record.as_ref().unwrap());
    let first = client
        .submit_record(with_id.clone())
        .await
        .unwrap()
        .into_inner();
    guesses.message("its answer", &first);
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
    guesses.message("batch", &batch);
    for r in &batch.requests {
        guesses.message("batch item", r);
        guesses.payload("batch item", r.record.as_ref().unwrap());
    }
    let first = client
        .batch_submit_records(batch.clone())
        .await
        .unwrap()
        .into_inner();
    guesses.message("batch answer", &first);
    assert!(first.results.iter().all(|r| r.error.is_none()), "{first:?}");
    let replayed = client
        .batch_submit_records(batch)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, replayed);
    let tag = planted.tag(&base, "plainbatch");
    let plain = proto::BatchSubmitRecordsRequest {
        requests: vec![submit(record(&c, "AR-5", 1, petition_with_informant(&tag)))],
        request_id: String::new(),
        validate_only: false,
    };
    guesses.message("plain batch", &plain);
    guesses.payload("plain batch", plain.requests[0].record.as_ref().unwrap());
    let answer = client
        .batch_submit_records(plain)
        .await
        .unwrap()
        .into_inner();
    guesses.message("plain batch answer", &answer);

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
    let corrected = submit(record(&c, "AR-2", 2, petition_with_informant(&tag)));
    guesses.message("correction", &corrected);
    guesses.payload("correction", corrected.record.as_ref().unwrap());
    let answer = client.submit_record(corrected).await.unwrap().into_inner();
    guesses.message("correction's answer", &answer);

    // Discipline reads them, listed and in the feed (reads are logged; the
    // log holds names only, and digests of these answers keyed).
    let mut discipline = records_client(server.channel("discipline", DIVISION).await);
    let listed = discipline
        .list_records(proto::ListRecordsRequest {
            parent: c.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    guesses.message("discipline's list", &listed);
    for r in &listed.records {
        // The guesser rebuilds every payload the store holds, the imported
        // one included, from the row and a guessed informant.
        guesses.payload(&r.name, r);
    }
    let feed = proto::change_feed_service_client::ChangeFeedServiceClient::new(
        server.channel("discipline", DIVISION).await,
    )
    .list_changes(proto::ListChangesRequest::default())
    .await
    .unwrap()
    .into_inner();
    guesses.message("discipline's feed page", &feed);
    guesses.canaries(&planted.informants);
    assert_clean(&server.store_url, &planted, "after every write path").await;
    let permitted =
        assert_no_guess_confirmable(&server.store_url, &guesses, true, "after every write path")
            .await;
    assert_eq!(permitted, 0, "a store that started keyed has no old rows");

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
    assert_no_guess_confirmable(&reopened.store_url, &guesses, true, "after key rotation").await;

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
        assert_no_guess_confirmable(&restored, &guesses, true, "in the restored store").await;
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

/// The fixture of a store written by the version before keyed digests.
fn fixture_dir(backend: Backend) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upgrade-204eda4")
        .join(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
}

/// A copy of the fixture store to work on: its URL, and the PostgreSQL
/// database holding it (dropped with it).
async fn fixture_store(backend: Backend, dir: &Path) -> (String, Option<TestDb>) {
    let fixture = fixture_dir(backend);
    match backend {
        Backend::Sqlite => {
            let path = dir.join("old.db");
            std::fs::copy(fixture.join("store.db"), &path).unwrap();
            (format!("sqlite://{}", path.display()), None)
        }
        Backend::Postgres => {
            let db = TestDb::create().await;
            // pg_dump's psql meta-commands (`\restrict`) are not SQL.
            let sql: String = std::fs::read_to_string(fixture.join("store.sql"))
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with('\\'))
                .map(|l| format!("{l}\n"))
                .collect();
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .unwrap();
            let _ = c.close().await;
            (db.url.clone(), Some(db))
        }
    }
}

/// A store written before digests were keyed (a fixture made by that
/// version, on each backend) is upgraded by the first server of this one:
/// the chain head is recorded, every payload and request digest keyed
/// (historical versions included), the chain still verifies, and after
/// `cadrex keys rotate` re-pads the sealed blocks, the guesser finds nothing
/// but the old chained response digests, all at or below the recorded head.
async fn an_older_store_is_upgraded_and_keeps_nothing_a_guesser_can_test(backend: Backend) {
    let work = tempfile::tempdir().unwrap();
    let (url, _db) = fixture_store(backend, work.path()).await;
    let fixture = fixture_dir(backend);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("manifest.json")).unwrap())
            .unwrap();
    let decode = |v: &serde_json::Value| STANDARD.decode(v.as_str().unwrap()).unwrap();
    let canaries: Vec<String> = manifest["canaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let mut guesses = Guesses::default();
    guesses.canaries(&canaries);
    for (i, bytes) in manifest["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(decode)
        .enumerate()
    {
        guesses.add(format!("old request {i}"), &bytes);
        // The third request is the batch; the others are single submits.
        let records: Vec<proto::Record> = if i == 2 {
            proto::BatchSubmitRecordsRequest::decode(bytes.as_slice())
                .unwrap()
                .requests
                .into_iter()
                .filter_map(|r| r.record)
                .collect()
        } else {
            proto::SubmitRecordRequest::decode(bytes.as_slice())
                .unwrap()
                .record
                .into_iter()
                .collect()
        };
        for r in &records {
            guesses.payload(&format!("old request {i}"), r);
        }
    }
    for (i, bytes) in manifest["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(decode)
        .enumerate()
    {
        guesses.add(format!("old response {i}"), &bytes);
    }

    // The test sees what the old version left: without the upgrade, every
    // digest column confirms a guess.
    let before: Vec<String> = digest_hits(&url, &guesses)
        .await
        .into_iter()
        .map(|(column, _)| column)
        .collect();
    for column in [
        "records.payload_sha256",
        "record_versions.payload_sha256",
        "request_ids.request_sha256",
        "access_log.response_sha256",
    ] {
        assert!(
            before.iter().any(|c| c.ends_with(column)),
            "the old store's {column} confirms a guess (the test can see it): {before:?}"
        );
    }

    // The first server of this version upgrades it at start.
    let keys = work.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for f in ["informant.key", "log-signing.key", "log-signing.pub"] {
        std::fs::copy(fixture.join(f), keys.join(f)).unwrap();
        // A clone keeps no file modes but the executable bit; key files are
        // refused unless only their owner may read them.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(keys.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config_keys = keys.clone();
    let store = url.clone();
    let mut server = TestServer::spawn_with(backend, move |cfg| {
        cfg.store = store;
        cfg.informant_key = Some(config_keys.join("informant.key"));
        cfg.log_signing_key = Some(config_keys.join("log-signing.key"));
    })
    .await;
    let old_head: i64 = texts(
        &url,
        "SELECT CAST(seq AS TEXT) FROM access_log ORDER BY seq DESC",
    )
    .await[0]
        .parse()
        .unwrap();
    let head = upgrade_head(&url).await;
    assert!(
        head >= old_head - 1 && head > 0,
        "head {head}, old rows up to {old_head}"
    );

    // Discipline reads everything now: the same old payloads, old and new
    // informants, and a new petition with its own informant.
    let cadre_name = manifest["cadre"].as_str().unwrap().to_string();
    let mut petition = records_client(server.channel("petition", DIVISION).await);
    let c = proto::Cadre {
        name: cadre_name.clone(),
        id_number: proto::cadre_service_client::CadreServiceClient::new(
            server.channel("organization", DIVISION).await,
        )
        .get_cadre(proto::GetCadreRequest {
            name: cadre_name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .id_number,
        ..Default::default()
    };
    let new = proto::SubmitRecordRequest {
        record: Some(record(&c, "UP-NEW", 1, petition_with_informant("UPGnew"))),
        request_id: "after-upgrade".into(),
        validate_only: false,
    };
    guesses.canaries(&informant_canaries("UPGnew"));
    guesses.message("new submit", &new);
    guesses.payload("new submit", new.record.as_ref().unwrap());
    let answer = petition
        .submit_record(new.clone())
        .await
        .unwrap()
        .into_inner();
    guesses.message("new answer", &answer);
    // The same old version again is recognised (its stored digest was keyed
    // from the old value), not a conflict.
    let again = manifest["requests"][0].clone();
    let old_single = proto::SubmitRecordRequest::decode(decode(&again).as_slice()).unwrap();
    let resent = petition
        .submit_record(proto::SubmitRecordRequest {
            request_id: String::new(),
            ..old_single
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !resent.stale,
        "same version, same content: the stored record"
    );
    let mut discipline = records_client(server.channel("discipline", DIVISION).await);
    let listed = discipline
        .list_records(proto::ListRecordsRequest {
            parent: cadre_name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.records.len() >= 6, "{listed:?}");
    guesses.message("discipline's list after the upgrade", &listed);
    for r in &listed.records {
        guesses.payload(&r.name, r);
    }
    let permitted = assert_no_guess_confirmable(&url, &guesses, false, "after the upgrade").await;
    // The replaced values stay nowhere in the file's free space or WAL
    // either: the pass scrubs what it rewrote (found by a red-team pass).
    // Old chained response digests are in the log's live rows, so only the
    // payload and request digests are looked for.
    if let Some(path) = url.strip_prefix("sqlite://") {
        let stored_forms = Guesses(
            guesses
                .0
                .iter()
                .filter(|(label, _)| !label.contains("response") && !label.contains("answer"))
                .cloned()
                .collect(),
        );
        for file in [path.to_string(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for (what, needle) in stored_forms.needles() {
                assert!(
                    !contains(&bytes, &needle),
                    "{file} still holds {what} after the upgrade"
                );
            }
        }
    }
    assert!(
        permitted > 0,
        "the old chained rows are still there, as they must be"
    );

    // The chain the old version wrote still verifies, with the rows since.
    server.stop().await;
    let (ok, out) = cadrex_bin(&[
        "log",
        "verify",
        "--store",
        &url,
        "--public-key",
        keys.join("log-signing.pub").to_str().unwrap(),
    ]);
    assert!(ok, "cadrex log verify after the upgrade: {out}");

    // Rotation re-pads every sealed block; a second pass has nothing to do.
    let (ok, out) = cadrex_bin(&[
        "keys",
        "rotate",
        "--store",
        &url,
        "--key-file",
        keys.join("informant.key").to_str().unwrap(),
    ]);
    assert!(ok, "cadrex keys rotate: {out}");
    let (ok, out) = cadrex_bin(&[
        "keys",
        "rekey-digests",
        "--store",
        &url,
        "--key-file",
        server.pki.join("digest.key").to_str().unwrap(),
    ]);
    assert!(ok && out.contains("records.payload_sha256 0;"), "{out}");
    assert!(
        out.contains(&format!("up to seq {head} ")),
        "the head stays: {out}"
    );
    assert_no_guess_confirmable(&url, &guesses, true, "after rotation").await;
    assert_clean_of(&url, &canaries).await;

    // A server or pass holding another digest key is refused, not let loose
    // keying rows under a key the others do not hold.
    let other = work.path().join("other-digest.key");
    let (ok, out) = cadrex_bin(&["keys", "digest-init", "--key-file", other.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = cadrex_bin(&["keys", "digest-init", "--key-file", other.to_str().unwrap()]);
    assert!(!ok && out.contains("never replaced"), "{out}");
    let (ok, out) = cadrex_bin(&[
        "keys",
        "rekey-digests",
        "--store",
        &url,
        "--key-file",
        other.to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("not the one"), "{out}");
}

/// No canary in plaintext anywhere in the store.
async fn assert_clean_of(url: &str, canaries: &[String]) {
    let hits = plaintext_cells(url, canaries).await;
    assert!(hits.is_empty(), "informant data at rest: {hits:#?}");
}

/// An older server still running after the upgrade writes unkeyed digests;
/// the next start of a server of this version keys them too, rather than
/// trusting a pass that once ran to the end (found by a red-team pass). The
/// older server's write is stood in for by the value it would have stored.
async fn every_start_keys_what_an_older_server_wrote_since(backend: Backend) {
    let mut server = TestServer::spawn(backend).await;
    let c = cadre(&server, 93).await;
    let mut client = records_client(server.channel("petition", DIVISION).await);
    let answer = client
        .submit_record(submit(record(
            &c,
            "OLD-1",
            1,
            petition_with_informant("LATER"),
        )))
        .await
        .unwrap()
        .into_inner();
    let name = answer.record.unwrap().name;
    let id = name.rsplit('/').next().unwrap().to_string();
    let unkeyed = "ab".repeat(32);
    crate::common::exec_sql(
        &server.store_url,
        &format!("UPDATE records SET payload_sha256 = '{unkeyed}' WHERE id = '{id}'"),
    )
    .await;
    server.stop().await;
    let (store, pki) = (server.store_url.clone(), server.pki.clone());
    let _again = TestServer::spawn_with(backend, move |cfg| {
        cfg.store = store;
        cfg.pki_dir = pki;
    })
    .await;
    let stored = texts(
        &server.store_url,
        &format!("SELECT payload_sha256 FROM records WHERE id = '{id}'"),
    )
    .await;
    let key = cadrex::digest::DigestKey::load(&server.pki.join("digest.key")).unwrap();
    assert_eq!(stored, [key.rekey(&unkeyed).unwrap()]);
    assert!(
        server_log()
            .text()
            .contains("an older server wrote unkeyed digests"),
        "the start says so"
    );
}
