//! `cadrex sync` against the real server: a mirror that equals the server's records after concurrent writes, SIGKILL, an expired cursor, a server restart; refused certificates end it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cadrex::proto::{self, ChangeKind, record::Payload};
use cadrex::tools::import::{ImportArgs, ImportKind};
use cadrex::tools::sync::{SyncArgs, SyncMode, SyncSummary};
use prost::Message;
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::watch;

use crate::both_backends;
use crate::common::{Backend, TestServer, example, server_url};
use crate::common::{
    cadre, engagement, finding, petition_with_informant, record, records_client, submit,
};

both_backends!(
    mirror_follows_ten_thousand_findings,
    sigkill_mid_sync_loses_and_duplicates_nothing,
    expired_cursor_resnapshots,
    sync_never_keeps_an_informant,
);

const DIVISION: &str = "360821";
const FINDINGS: usize = 10_000;

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn import(server: &TestServer, kind: ImportKind, file: &str, agency: &str, rows: u64) {
    let (cert, key) = server.client_files(agency, DIVISION);
    let mut a = ImportArgs::new(kind, example(file), cert, key);
    a.server = server_url(server);
    let s = cadrex::tools::import::run(a)
        .await
        .unwrap_or_else(|e| panic!("importing {file}: {e:#}"));
    assert_eq!((s.rows, s.rejected), (rows, 0), "{file}: {s}");
}

async fn load_cadres_and_engagements(server: &TestServer) {
    import(server, ImportKind::Cadre, "cadres.csv", "organization", 200).await;
    import(
        server,
        ImportKind::AuditEngagement,
        "audit-engagements.csv",
        "audit",
        200,
    )
    .await;
}

async fn load_findings(server: &TestServer) {
    import(
        server,
        ImportKind::AuditFinding,
        "audit-findings.csv",
        "audit",
        FINDINGS as u64,
    )
    .await;
}

/// Library arguments for the county discipline commission syncing audit findings.
fn sync_args(server: &TestServer, mirror: &Path, mode: SyncMode) -> SyncArgs {
    let (cert, key) = server.client_files("discipline", DIVISION);
    let mut a = SyncArgs::new(vec![ChangeKind::AuditFinding], cert, key);
    assert_eq!(a.ca, server.pki.join("ca.crt"));
    a.into = Some(sqlite_url(mirror));
    a.server = server_url(server);
    a.mode = mode;
    a
}

async fn sync_once(server: &TestServer, mirror: &Path) -> SyncSummary {
    cadrex::tools::sync::run(sync_args(server, mirror, SyncMode::Once))
        .await
        .unwrap_or_else(|e| panic!("sync --once: {e:#}"))
}

/// The real binary, `cadrex sync --kinds audit-finding --into MIRROR` as discipline 360821.
fn sync_command(server: &TestServer, mirror: &Path, extra: &[&str]) -> Command {
    let (cert, key) = server.client_files("discipline", DIVISION);
    let mut c = Command::new(env!("CARGO_BIN_EXE_cadrex"));
    c.arg("sync")
        .args(["--kinds", "audit-finding", "--into", &sqlite_url(mirror)])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--server", &server_url(server)])
        .args(extra)
        .env("CADREX_LOG", "warn")
        .stdin(Stdio::null());
    c
}

/// Runs a command to its end off the async threads; returns (success, stdout + stderr).
async fn output(mut c: Command) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || c.output().expect("run cadrex"))
        .await
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Every audit finding the county discipline commission sees, by resource name.
async fn server_findings(server: &TestServer) -> BTreeMap<String, proto::Record> {
    let mut client = records_client(server.channel("discipline", DIVISION).await);
    let (mut out, mut token) = (BTreeMap::new(), String::new());
    loop {
        let page = client
            .list_records(proto::ListRecordsRequest {
                parent: "cadres/-".into(),
                page_size: 1000,
                page_token: token,
                filter: r#"kind = "AUDIT_FINDING""#.into(),
            })
            .await
            .unwrap()
            .into_inner();
        for r in page.records {
            out.insert(r.name.clone(), r);
        }
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// One mirror row: revision, state, body.
type MirrorRow = (i64, String, Option<Vec<u8>>);

async fn mirror_rows(mirror: &Path) -> BTreeMap<String, MirrorRow> {
    let mut c = SqliteConnection::connect(&sqlite_url(mirror))
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT resource, kind, revision, \
         CASE WHEN out_of_view = 1 THEN 'OUT_OF_VIEW' ELSE state END AS state, body \
         FROM mirror_resources ORDER BY resource",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let _ = c.close().await;
    rows.iter()
        .map(|r| {
            assert_eq!(r.get::<String, _>("kind"), "AUDIT_FINDING");
            (
                r.get("resource"),
                (r.get("revision"), r.get("state"), r.get("body")),
            )
        })
        .collect()
}

/// Rows in the mirror so far; 0 while it is being created.
async fn mirror_count(mirror: &Path) -> usize {
    let Ok(mut c) = SqliteConnection::connect(&sqlite_url(mirror)).await else {
        return 0;
    };
    let n = sqlx::query("SELECT COUNT(*) FROM mirror_resources")
        .fetch_one(&mut c)
        .await
        .map(|r| r.get::<i64, _>(0) as usize)
        .unwrap_or(0);
    let _ = c.close().await;
    n
}

async fn mirror_cursor(mirror: &Path) -> Option<String> {
    let mut c = SqliteConnection::connect(&sqlite_url(mirror))
        .await
        .unwrap();
    let v = sqlx::query("SELECT cursor FROM mirror_state WHERE id = 1")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get("cursor");
    let _ = c.close().await;
    v
}

/// Why the mirror differs from the server, or `None` when it holds exactly
/// the server's findings at their revisions, retractions applied, each active
/// body equal to the server's view.
fn difference(
    server: &BTreeMap<String, proto::Record>,
    mirror: &BTreeMap<String, MirrorRow>,
) -> Option<String> {
    if server.len() != mirror.len() {
        return Some(format!(
            "{} findings on the server, {} in the mirror",
            server.len(),
            mirror.len()
        ));
    }
    for (name, r) in server {
        let Some((revision, state, body)) = mirror.get(name) else {
            return Some(format!("{name} is missing from the mirror"));
        };
        if *revision != r.revision {
            return Some(format!(
                "{name}: revision {revision} in the mirror, {} on the server",
                r.revision
            ));
        }
        let retracted = r.state == proto::RecordState::Retracted as i32;
        match (retracted, state.as_str(), body) {
            (true, "RETRACTED", None) => {}
            (false, "ACTIVE", Some(b)) => {
                if proto::Record::decode(b.as_slice()).ok().as_ref() != Some(r) {
                    return Some(format!(
                        "{name}: the mirror's body differs from the server's"
                    ));
                }
            }
            _ => return Some(format!("{name}: {state} in the mirror, server {r:?}")),
        }
    }
    None
}

async fn assert_mirror_matches(server: &TestServer, mirror: &Path) {
    let expected = server_findings(server).await;
    if let Some(d) = difference(&expected, &mirror_rows(mirror).await) {
        panic!("{}: {d}", mirror.display());
    }
}

/// The first `n` active findings in the owner's (audit's) full view.
async fn some_findings(server: &TestServer, n: usize) -> Vec<proto::Record> {
    records_client(server.channel("audit", DIVISION).await)
        .list_records(proto::ListRecordsRequest {
            parent: "cadres/-".into(),
            page_size: n as i32,
            page_token: String::new(),
            filter: r#"kind = "AUDIT_FINDING" AND state = "ACTIVE""#.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .records
}

/// Submits the next source version of `r` with a different amount.
async fn resubmit(server: &TestServer, r: &proto::Record) -> proto::Record {
    let Some(Payload::AuditFinding(mut f)) = r.payload.clone() else {
        panic!("not a finding: {r:?}")
    };
    f.amount_fen += 100;
    f.engagement.clear();
    let next = proto::Record {
        cadre: r.cadre.clone(),
        source_record_id: r.source_record_id.clone(),
        source_version: r.source_version + 1,
        classification: r.classification,
        payload: Some(Payload::AuditFinding(f)),
        ..Default::default()
    };
    records_client(server.channel("audit", DIVISION).await)
        .submit_record(submit(next))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
}

async fn retract(server: &TestServer, name: &str) {
    records_client(server.channel("audit", DIVISION).await)
        .retract_record(proto::RetractRecordRequest {
            name: name.into(),
            reason: "审计复核后撤回".into(),
            etag: String::new(),
        })
        .await
        .unwrap();
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let start = Instant::now();
    loop {
        let Some(why) = check().await else { return };
        if start.elapsed() > limit {
            panic!("{what} within {limit:?}: {why}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An agent polling every 100 ms while 10,000 findings arrive, then newer
/// versions and retractions; a final `--once` run of the binary. Also measures
/// the snapshot and the feed tail on their own, from a standing start.
async fn mirror_follows_ten_thousand_findings(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    load_cadres_and_engagements(&server).await;
    let dir = server.dir.path();
    let (live, tail, fresh) = (
        dir.join("live.db"),
        dir.join("tail.db"),
        dir.join("fresh.db"),
    );

    // A mirror that has snapshotted the empty feed, to time the tail later.
    assert_eq!(sync_once(&server, &tail).await.snapshots, 1);

    let (stop, stopped) = watch::channel(false);
    let mut args = sync_args(
        &server,
        &live,
        SyncMode::Interval(Duration::from_millis(100)),
    );
    args.stop = Some(stopped);
    let agent = tokio::spawn(cadrex::tools::sync::run(args));

    let started = Instant::now();
    load_findings(&server).await;
    let imported = started.elapsed();

    // Newer versions, retractions, and a retraction followed by a newer version.
    let picked = some_findings(&server, 8).await;
    for r in &picked[..3] {
        resubmit(&server, r).await;
    }
    for r in &picked[3..6] {
        retract(&server, &r.name).await;
    }
    retract(&server, &picked[6].name).await;
    let back = resubmit(&server, &picked[6]).await;
    assert_eq!(back.state, proto::RecordState::Active as i32);

    let expected = server_findings(&server).await;
    assert_eq!(expected.len(), FINDINGS);
    let (want, at) = (&expected, &live);
    eventually(
        Duration::from_secs(60),
        "the live mirror catches up",
        || async move { difference(want, &mirror_rows(at).await) },
    )
    .await;
    let caught_up = started.elapsed();
    stop.send(true).unwrap();
    let live_summary = agent.await.unwrap().unwrap();
    assert_eq!(live_summary.snapshots, 1);
    assert_eq!(live_summary.cursor_expired, 0);

    let (ok, out) = output(sync_command(&server, &live, &["--once"])).await;
    assert!(ok, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("0 events applied")),
        "nothing was left: {out}"
    );
    assert_mirror_matches(&server, &live).await;

    let tail_summary = sync_once(&server, &tail).await;
    assert_eq!(tail_summary.snapshots, 0, "{tail_summary}");
    assert_mirror_matches(&server, &tail).await;
    let fresh_summary = sync_once(&server, &fresh).await;
    assert_eq!(fresh_summary.snapshots, 1);
    assert_mirror_matches(&server, &fresh).await;

    eprintln!(
        "{backend:?}: {FINDINGS} findings imported in {:.1} s; the live mirror (polling every \
         100 ms) matched the server {:.1} s after the import began ({:.0} findings/s end to end): \
         {live_summary}",
        imported.as_secs_f64(),
        caught_up.as_secs_f64(),
        FINDINGS as f64 / caught_up.as_secs_f64(),
    );
    eprintln!("{backend:?}: tail of the backlog with ListChanges: {tail_summary}");
    eprintln!("{backend:?}: snapshot into an empty mirror: {fresh_summary}");
}

/// Kills `cadrex sync --once` with SIGKILL once it has applied `at_least`
/// rows to `mirror`; returns the rows it had by then.
async fn kill_mid_sync(server: &TestServer, mirror: &Path, at_least: usize) -> usize {
    let mut child = sync_command(server, mirror, &["--once", "--page-size", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sync finished ({status}) before it could be killed");
        }
        if mirror_count(mirror).await >= at_least {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "sync made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Child::kill is SIGKILL on Unix: no chance to finish the page in hand.
    child.kill().unwrap();
    child.wait().unwrap();
    mirror_count(mirror).await
}

/// SIGKILL in the middle of the feed tail and in the middle of a snapshot; a
/// restart applies the rest and the mirror equals the server's state.
async fn sigkill_mid_sync_loses_and_duplicates_nothing(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    load_cadres_and_engagements(&server).await;
    let dir = server.dir.path();
    let tail = dir.join("tail.db");
    let snap = dir.join("snap.db");
    assert_eq!(sync_once(&server, &tail).await.snapshots, 1);
    load_findings(&server).await;

    let applied = kill_mid_sync(&server, &tail, 1000).await;
    assert!(applied < FINDINGS, "killed after {applied} rows");
    let cursor = mirror_cursor(&tail).await;
    assert!(cursor.is_some(), "the tail always has a checkpoint");
    let (ok, out) = output(sync_command(&server, &tail, &["--once"])).await;
    assert!(ok, "{out}");
    // Rows and cursor commit together, so the restart resumes exactly after
    // the last committed page: not one event is delivered twice.
    let resumed = format!(
        "{} events applied, 0 already held, 0 snapshot(s)",
        FINDINGS - applied
    );
    assert!(out.contains(&resumed), "expected {resumed:?}: {out}");
    assert_mirror_matches(&server, &tail).await;
    eprintln!("{backend:?}: tail killed after {applied} rows; restart: {out}");

    let applied = kill_mid_sync(&server, &snap, 1000).await;
    assert!(applied < FINDINGS, "killed after {applied} rows");
    assert_eq!(
        mirror_cursor(&snap).await,
        None,
        "no cursor until the snapshot is complete"
    );
    let (ok, out) = output(sync_command(&server, &snap, &["--once"])).await;
    assert!(ok, "{out}");
    // The snapshot is redone; what the killed run applied is skipped by revision.
    let redone = format!(
        "{} events applied, {applied} already held, 1 snapshot(s)",
        FINDINGS - applied
    );
    assert!(out.contains(&redone), "expected {redone:?}: {out}");
    assert_mirror_matches(&server, &snap).await;
    eprintln!("{backend:?}: snapshot killed after {applied} rows; restart: {out}");
}

/// Pruning passes the agent's cursor while it is away: the next run says it
/// re-snapshots, applies what changed, and marks findings it can no longer
/// see (their cadre moved out of the county) as out of view, not retracted.
async fn expired_cursor_resnapshots(backend: Backend) {
    let server = TestServer::spawn_with(backend, |c| {
        c.change_retention = Duration::from_millis(300);
        c.prune_interval = Duration::from_millis(100);
    })
    .await;
    let mirror = server.dir.path().join("mirror.db");
    let mut audit = records_client(server.channel("audit", DIVISION).await);
    let c = cadre(&server, 41).await;
    let moved = cadre(&server, 42).await;
    for (who, source) in [(&c, "AE-1"), (&moved, "AE-2")] {
        audit
            .submit_record(submit(record(who, source, 1, engagement())))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    for i in 1..=4 {
        let r = audit
            .submit_record(submit(record(
                &c,
                &format!("AF-{i}"),
                1,
                finding("AE-1", i),
            )))
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap();
        names.push(r.name);
    }
    let gone = audit
        .submit_record(submit(record(&moved, "AF-9", 1, finding("AE-2", 9))))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
        .name;

    let first = sync_once(&server, &mirror).await;
    assert_eq!((first.snapshots, first.cursor_expired), (1, 0), "{first}");
    assert_eq!(first.applied, 5);
    assert_mirror_matches(&server, &mirror).await;

    // While the agent is away: a new finding, a new version, a retraction, and
    // the cadre of AF-9 moves to another county (a prefecture body covers both).
    audit
        .submit_record(submit(record(&c, "AF-5", 1, finding("AE-1", 5))))
        .await
        .unwrap();
    audit
        .submit_record(submit(record(&c, "AF-1", 2, finding("AE-1", 100))))
        .await
        .unwrap();
    retract(&server, &names[1]).await;
    let (crt, key) = cadrex::pki::issue(&server.pki, "organization", "360800", "org-mis").unwrap();
    let mut prefecture = proto::cadre_service_client::CadreServiceClient::new(
        server.channel_with(Some((&crt, &key)), None).await,
    );
    prefecture
        .update_cadre(proto::UpdateCadreRequest {
            cadre: Some(proto::Cadre {
                name: moved.name.clone(),
                managing_division: "360822".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["managing_division".into()],
            }),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    // Pruning keeps the newest change; this one lets it pass everything above.
    audit
        .submit_record(submit(record(&c, "AF-6", 1, finding("AE-1", 6))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    let (ok, out) = output(sync_command(&server, &mirror, &["--once"])).await;
    assert!(ok, "{out}");
    assert!(out.contains("cursor expired; re-snapshotting"), "{out}");
    assert!(
        out.contains("re-snapshotted 1 time(s) after an expired cursor"),
        "{out}"
    );
    let mut rows = mirror_rows(&mirror).await;
    let (_, state, body) = rows.remove(&gone).expect("the moved cadre's finding stays");
    assert_eq!((state.as_str(), body), ("OUT_OF_VIEW", None));
    let expected = server_findings(&server).await;
    assert!(!expected.contains_key(&gone));
    assert_eq!(expected.len(), 6);
    if let Some(d) = difference(&expected, &rows) {
        panic!("{d}");
    }
}

async fn add_finding(server: &TestServer, c: &proto::Cadre, i: i64) {
    let r = record(c, &format!("AF-{i}"), 1, finding("AE-1", i));
    records_client(server.channel("audit", DIVISION).await)
        .submit_record(submit(r))
        .await
        .unwrap();
}

fn ndjson_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `--out FILE.ndjson`: the snapshot and then each event as one JSON line,
/// the cursor beside it; a re-run appends only what is new, and a line cut
/// off by a crash is dropped and written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_out_appends_events_and_resumes() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let c = cadre(&server, 61).await;
    records_client(server.channel("audit", DIVISION).await)
        .submit_record(submit(record(&c, "AE-1", 1, engagement())))
        .await
        .unwrap();
    for i in 1..=3 {
        add_finding(&server, &c, i).await;
    }
    let out = server.dir.path().join("feed/events.ndjson");
    let cursor_file = server.dir.path().join("feed/events.ndjson.cursor");
    let once = || {
        let mut a = sync_args(&server, Path::new("unused"), SyncMode::Once);
        a.into = None;
        a.out = Some(out.clone());
        cadrex::tools::sync::run(a)
    };
    let s = once().await.unwrap();
    assert_eq!((s.applied, s.snapshots), (3, 1), "{s}");
    let lines = ndjson_lines(&out);
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert_eq!(l["snapshot"], true, "{l}");
        assert_eq!(l["kind"], "AUDIT_FINDING");
        assert_eq!(l["op"], "UPSERT");
        let body = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            l["body_base64"].as_str().unwrap(),
        )
        .unwrap();
        let r = proto::Record::decode(body.as_slice()).unwrap();
        assert_eq!(l["resource"], r.name.as_str());
        assert_eq!(l["revision"], r.revision);
    }
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cursor_file).unwrap()).unwrap();
    assert_eq!(checkpoint["cursor"], s.cursor.as_str());

    add_finding(&server, &c, 4).await;
    retract(&server, lines[0]["resource"].as_str().unwrap()).await;
    // A crash mid-append leaves a partial line that was never checkpointed.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .unwrap()
        .write_all(b"{\"event_id\":\"cut-off")
        .unwrap();
    let s = once().await.unwrap();
    assert_eq!((s.applied, s.snapshots), (2, 0), "{s}");
    let lines = ndjson_lines(&out);
    assert_eq!(lines.len(), 5);
    let (added, retracted) = (&lines[3], &lines[4]);
    assert_eq!(added["op"], "UPSERT");
    assert_eq!(retracted["op"], "RETRACT");
    assert_eq!(retracted["resource"], lines[0]["resource"]);
    for e in [added, retracted] {
        assert!(e.get("snapshot").is_none(), "{e}");
        assert!(e["event_id"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
        assert!(e["seq"].as_i64().is_some(), "{e}");
        assert!(e["commit_time"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    assert_eq!(retracted["cursor"], s.cursor.as_str());
    assert_eq!(once().await.unwrap().applied, 0);
    assert_eq!(ndjson_lines(&out).len(), 5);
}

/// Cadres sync through `ListCadres` and their etag revisions; asking for
/// other kinds than the copy was made with re-snapshots it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadres_sync_and_changed_kinds_resnapshot() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let mirror = server.dir.path().join("mirror.db");
    let c = cadre(&server, 71).await;
    records_client(server.channel("audit", DIVISION).await)
        .submit_record(submit(record(&c, "AE-1", 1, engagement())))
        .await
        .unwrap();
    add_finding(&server, &c, 1).await;
    assert_eq!(sync_once(&server, &mirror).await.applied, 1);

    let mut args = sync_args(&server, &mirror, SyncMode::Once);
    args.kinds = vec![ChangeKind::Cadre, ChangeKind::AuditFinding];
    let s = cadrex::tools::sync::run(args.clone()).await.unwrap();
    assert_eq!((s.snapshots, s.applied, s.unchanged), (1, 1, 1), "{s}");
    let cadre_row = || async {
        let mut conn = SqliteConnection::connect(&sqlite_url(&mirror))
            .await
            .unwrap();
        let r = sqlx::query("SELECT revision, body FROM mirror_resources WHERE kind = 'CADRE'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let body: Vec<u8> = r.get("body");
        (
            r.get::<i64, _>("revision"),
            proto::Cadre::decode(body.as_slice()).unwrap(),
        )
    };
    let (revision, mirrored) = cadre_row().await;
    assert_eq!(mirrored.name, c.name);
    assert_eq!(format!("r{revision}"), c.etag);

    let mut cadres = server.cadres("organization", DIVISION).await;
    let updated = cadres
        .update_cadre(proto::UpdateCadreRequest {
            cadre: Some(proto::Cadre {
                name: c.name.clone(),
                display_name: "改名对象".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let s = cadrex::tools::sync::run(args).await.unwrap();
    assert_eq!((s.snapshots, s.applied), (0, 1), "{s}");
    let (revision, mirrored) = cadre_row().await;
    assert_eq!(format!("r{revision}"), updated.etag);
    assert_eq!(mirrored.display_name, "改名对象");
}

/// `cadrex serve` as a child process, killed when dropped.
struct ServeProcess(std::process::Child);

impl ServeProcess {
    /// Serves the test server's store and PKI on its address (the in-process
    /// server must be stopped), and waits until it answers.
    async fn start(server: &TestServer) -> ServeProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_cadrex"))
            .arg("serve")
            .args(["--listen", &server.addr.to_string()])
            .args(["--store", &server.store_url])
            .arg("--pki-dir")
            .arg(&server.pki)
            .env("CADREX_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let process = ServeProcess(child);
        eventually(Duration::from_secs(30), "cadrex serve answers", || async {
            server
                .system("organization", DIVISION)
                .await
                .who_am_i(proto::WhoAmIRequest {})
                .await
                .err()
                .map(|e| e.to_string())
        })
        .await;
        process
    }

    /// SIGKILL: open streams break off with no goodbye, as in a crash.
    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A watch-stream agent applies changes as they commit and, after the server
/// is killed and restarted, reconnects with backoff and resumes from its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_survives_a_server_restart() {
    // The test server provides PKI, store and address; the real binary serves
    // them so that it can be killed outright.
    let mut server = TestServer::spawn(Backend::Sqlite).await;
    server.stop().await;
    let serve = ServeProcess::start(&server).await;
    let mirror = server.dir.path().join("mirror.db");
    let c = cadre(&server, 51).await;
    records_client(server.channel("audit", DIVISION).await)
        .submit_record(submit(record(&c, "AE-1", 1, engagement())))
        .await
        .unwrap();
    add_finding(&server, &c, 1).await;

    let (stop, stopped) = watch::channel(false);
    let mut args = sync_args(&server, &mirror, SyncMode::Follow);
    args.stop = Some(stopped);
    let agent = tokio::spawn(cadrex::tools::sync::run(args));
    let rows = |n: usize| {
        let mirror = mirror.clone();
        move || {
            let mirror = mirror.clone();
            async move {
                let have = mirror_count(&mirror).await;
                (have != n).then(|| format!("{have} rows"))
            }
        }
    };
    eventually(Duration::from_secs(20), "the snapshot", rows(1)).await;
    add_finding(&server, &c, 2).await;
    add_finding(&server, &c, 3).await;
    eventually(Duration::from_secs(20), "streamed changes", rows(3)).await;

    // Killed with the stream open; a change made after the restart arrives.
    serve.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let serve = ServeProcess::start(&server).await;
    add_finding(&server, &c, 4).await;
    eventually(
        Duration::from_secs(40),
        "the change after the restart",
        rows(4),
    )
    .await;
    stop.send(true).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .expect("the agent stops when told")
        .unwrap()
        .unwrap();
    assert!(summary.retries >= 1, "{summary}");
    assert_eq!(summary.snapshots, 1, "{summary}");
    assert_mirror_matches(&server, &mirror).await;
    drop(serve);
}

/// Refused certificates (revoked, foreign CA, no exchange URI) and an
/// untrusted server certificate end the agent at once, with a clear message
/// and a non-zero exit, in `--once` and in follow mode alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_certificates_end_the_agent() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let dir = server.dir.path().to_path_buf();
    let (revoked, revoked_key) =
        cadrex::pki::issue(&server.pki, "discipline", DIVISION, "sync-old").unwrap();
    cadrex::pki::revoke(&server.pki, &revoked).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let now = time::OffsetDateTime::now_utc();
    let (no_uri, no_uri_key) = cadrex::pki::issue_custom(
        &server.pki,
        "no-uri",
        &cadrex::pki::ClientSpec {
            uris: vec![],
            not_before: now - time::Duration::days(1),
            not_after: now + time::Duration::days(30),
            common_name: "discipline-360821".into(),
        },
    )
    .unwrap();
    let foreign = dir.join("foreign");
    cadrex::pki::init(&foreign, DIVISION).unwrap();
    let fp = cadrex::pki::PkiPaths::new(&foreign);
    let (good, good_key) = server.client_files("discipline", DIVISION);
    let ca = server.pki.join("ca.crt");
    let refused = "refused the client certificate";
    let cases = [
        ("revoked", &revoked, &revoked_key, &ca, "--once", refused),
        ("revoked-follow", &revoked, &revoked_key, &ca, "", refused),
        (
            "foreign-ca",
            &fp.client_cert("discipline", DIVISION),
            &fp.client_key("discipline", DIVISION),
            &ca,
            "--once",
            refused,
        ),
        (
            "no-uri",
            &no_uri,
            &no_uri_key,
            &ca,
            "",
            "did not accept the client certificate",
        ),
        (
            "untrusted-server",
            &good,
            &good_key,
            &fp.ca_cert(),
            "--once",
            "the server's certificate was not accepted",
        ),
    ];
    for (what, crt, key, ca, mode, expected) in cases {
        let mirror = dir.join(format!("{what}.db"));
        let mut c = Command::new(env!("CARGO_BIN_EXE_cadrex"));
        c.args(["sync", "--kinds", "audit-finding,cadre"])
            .args(["--into", &sqlite_url(&mirror)])
            .args(["--server", &server_url(&server)])
            .arg("--cert")
            .arg(crt)
            .arg("--key")
            .arg(key)
            .arg("--ca")
            .arg(ca)
            .args([mode].into_iter().filter(|m| !m.is_empty()))
            .env("CADREX_LOG", "warn");
        let started = Instant::now();
        let (ok, out) = output(c).await;
        assert!(!ok, "{what}: {out}");
        assert!(out.contains(expected), "{what}: {out}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: fails at once rather than retrying: {out}"
        );
        eprintln!("{what}: {}", out.trim());
    }
}

/// `cadrex sync` as discipline and as petition, both entitled to informants:
/// neither the SQLite mirror nor the NDJSON file holds an informant block
/// (snapshot or feed) or a digest over one; the petitions are there, and
/// `GetRecord`, which is logged, still reads the informant.
async fn sync_never_keeps_an_informant(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let c = cadre(&server, 62).await;
    let base = format!("SYNC{}", uuid::Uuid::new_v4().simple());
    let mut petitions = records_client(server.channel("petition", DIVISION).await);
    let file =
        |tag: String, source: &str| submit(record(&c, source, 1, petition_with_informant(&tag)));
    let first = petitions
        .submit_record(file(format!("{base}snap"), "XF-S-1"))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    let mut filed = vec![format!("{base}snap")];
    for agency in ["discipline", "petition"] {
        let dir = server.dir.path().join(agency);
        std::fs::create_dir_all(&dir).unwrap();
        let (mirror, out) = (dir.join("mirror.db"), dir.join("events.ndjson"));
        let (cert, key) = server.client_files(agency, DIVISION);
        let run = |into: bool| {
            let mut a = SyncArgs::new(vec![ChangeKind::Petition], cert.clone(), key.clone());
            a.server = server_url(&server);
            a.mode = SyncMode::Once;
            if into {
                a.into = Some(sqlite_url(&mirror));
            } else {
                a.out = Some(out.clone());
            }
            cadrex::tools::sync::run(a)
        };
        // The snapshot, then a petition that arrives through the feed.
        run(true).await.unwrap();
        run(false).await.unwrap();
        let tag = format!("{base}{agency}feed");
        let source = if agency == "discipline" {
            "XF-S-2"
        } else {
            "XF-S-3"
        };
        petitions
            .submit_record(file(tag.clone(), source))
            .await
            .unwrap();
        filed.push(tag);
        assert_eq!(run(true).await.unwrap().applied, 1);
        assert_eq!(run(false).await.unwrap().applied, 1);

        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let mut conn = SqliteConnection::connect(&sqlite_url(&mirror))
            .await
            .unwrap();
        for r in sqlx::query("SELECT body FROM mirror_resources")
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            bodies.push(r.get::<Option<Vec<u8>>, _>(0).unwrap_or_default());
        }
        let _ = conn.close().await;
        assert_eq!(
            bodies.len(),
            filed.len(),
            "{agency}: every petition mirrored"
        );
        let lines = ndjson_lines(&out);
        assert_eq!(
            lines.len(),
            filed.len(),
            "{agency}: every petition written out"
        );
        for l in &lines {
            bodies.push(
                base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    l["body_base64"].as_str().unwrap(),
                )
                .unwrap(),
            );
        }
        for body in &bodies {
            let r = proto::Record::decode(body.as_slice()).unwrap();
            let Some(Payload::Petition(p)) = &r.payload else {
                panic!("{agency}: {} is not a full petition", r.name)
            };
            assert!(p.summary.starts_with(&base), "{agency}: content is kept");
            assert_eq!(p.informant, None, "{agency}: informant block kept");
            assert_eq!(
                r.provenance.as_ref().map(|p| p.payload_sha256.as_str()),
                Some(""),
                "{agency}: a digest over the informant kept"
            );
        }
        let mut files: Vec<Vec<u8>> = vec![std::fs::read(&out).unwrap()];
        for f in [mirror.clone(), dir.join("mirror.db-wal")] {
            if let Ok(b) = std::fs::read(&f) {
                files.push(b);
            }
        }
        let informants = filed
            .iter()
            .flat_map(|tag| ["name", "unit", "contact", "address"].map(|f| format!("{tag}-{f}")));
        for canary in informants {
            for bytes in bodies.iter().chain(files.iter()) {
                assert!(
                    !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                    "{agency}: {canary} stored by the agent"
                );
            }
        }
        // The entitled system reads the informant where it is logged.
        let r = records_client(server.channel(agency, DIVISION).await)
            .get_record(proto::GetRecordRequest {
                name: first.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let Some(Payload::Petition(p)) = r.payload else {
            panic!("{agency}: not a full petition")
        };
        assert_eq!(p.informant.unwrap().name, format!("{base}snap-name"));
    }
}

/// The README's `sqlite3` and `jq` examples, run as written against a real
/// mirror and a real NDJSON file: an integrator reads synced findings with
/// ordinary tools (the JSON column, the typed columns and the JSON bodies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_sqlite3_and_jq_examples_read_the_copies() {
    let tools_present = ["sqlite3", "jq"].iter().all(|t| {
        std::process::Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !tools_present {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must have sqlite3 and jq (.ci/run installs them)"
        );
        eprintln!("notice: sqlite3 or jq is not installed; skipping the README example test");
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let example = |prefix: &str| {
        readme
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("README has an example starting {prefix:?}"))
            .to_string()
    };
    let (sql, jq) = (
        example("sqlite3 findings.db \"SELECT cadre"),
        example("jq -r "),
    );

    let server = TestServer::spawn(Backend::Sqlite).await;
    let c = cadre(&server, 71).await;
    records_client(server.channel("audit", DIVISION).await)
        .submit_record(submit(record(&c, "AE-1", 1, engagement())))
        .await
        .unwrap();
    for i in 1..=3 {
        add_finding(&server, &c, i * 100).await;
    }
    let dir = server.dir.path().join("integrator");
    std::fs::create_dir_all(&dir).unwrap();
    sync_once(&server, &dir.join("findings.db")).await;
    let mut a = sync_args(&server, Path::new("unused"), SyncMode::Once);
    a.into = None;
    a.out = Some(dir.join("findings.ndjson"));
    cadrex::tools::sync::run(a).await.unwrap();

    let run = |command: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", command])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let rows = run(&sql);
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 3, "{rows}");
    let mut amounts: Vec<&str> = Vec::new();
    for l in &lines {
        let cols: Vec<&str> = l.split('|').collect();
        assert_eq!(cols[0], c.name, "{rows}");
        assert_eq!(cols[1], "2025-06-30", "{rows}");
        assert_eq!(cols[3], "RECTIFICATION_STATUS_IN_PROGRESS", "{rows}");
        amounts.push(cols[2]);
    }
    amounts.sort();
    assert_eq!(amounts, ["100", "200", "300"], "{rows}");

    let found = run(&jq);
    let mut lines: Vec<(&str, &str)> = found
        .lines()
        .map(|l| l.split_once('\t').unwrap_or_else(|| panic!("{found}")))
        .collect();
    lines.sort_by_key(|(_, amount)| amount.to_string());
    assert_eq!(lines.len(), 3, "{found}");
    for (resource, _) in &lines {
        assert!(
            resource.starts_with(&format!("{}/records/", c.name)),
            "{found}"
        );
    }
    let amounts: Vec<&str> = lines.iter().map(|(_, a)| *a).collect();
    assert_eq!(amounts, ["100", "200", "300"], "{found}");
}
