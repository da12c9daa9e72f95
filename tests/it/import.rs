//! `cadrex import` against the real server: the shipped examples load completely, a re-run stores nothing twice, bad rows land in the report.

use std::collections::HashMap;
use std::path::Path;

use cadrex::domain::records::Kind;
use cadrex::proto::ListRecordsRequest;
use cadrex::proto::record_service_client::RecordServiceClient;
use cadrex::tools::import::{ImportArgs, ImportKind, ImportSummary};

use crate::both_backends;
use crate::common::{Backend, TestServer, cadrex_bin, example};

both_backends!(
    imports_examples_idempotently,
    imports_every_kind_and_reports_bad_rows,
);

const DIVISION: &str = "360821";
const FINDINGS: u64 = 10_000;

/// Arguments as the CLI would build them, for the development client of `agency`.
fn args(server: &TestServer, kind: ImportKind, file: &str, agency: &str) -> ImportArgs {
    let (cert, key) = server.client_files(agency, DIVISION);
    let mut a = ImportArgs::new(kind, example(file), cert, key);
    // The default CA is found from the dev PKI layout, DIR/clients/x.crt → DIR/ca.crt.
    assert_eq!(a.ca, server.pki.join("ca.crt"));
    a.server = format!("https://localhost:{}", server.addr.port());
    a
}

async fn import(server: &TestServer, kind: ImportKind, file: &str, agency: &str) -> ImportSummary {
    cadrex::tools::import::run(args(server, kind, file, agency))
        .await
        .unwrap_or_else(|e| panic!("importing {file}: {e:#}"))
}

/// Imports a file that must load completely and returns its summary.
async fn import_clean(
    server: &TestServer,
    kind: ImportKind,
    file: &str,
    agency: &str,
    rows: u64,
) -> ImportSummary {
    let s = import(server, kind, file, agency).await;
    assert_eq!(
        (s.rows, s.accepted, s.unchanged, s.stale, s.rejected),
        (rows, rows, 0, 0, 0),
        "{file}: {s}"
    );
    s
}

async fn load_cadres_and_engagements(server: &TestServer) {
    import_clean(server, ImportKind::Cadre, "cadres.csv", "organization", 200).await;
    import_clean(
        server,
        ImportKind::AuditEngagement,
        "audit-engagements.csv",
        "audit",
        200,
    )
    .await;
}

/// Audit findings visible to the discipline commission of the county.
async fn count_findings(server: &TestServer) -> u64 {
    let mut client = RecordServiceClient::new(server.channel("discipline", DIVISION).await);
    let (mut n, mut token) = (0, String::new());
    loop {
        let page = client
            .list_records(ListRecordsRequest {
                parent: "cadres/-".into(),
                page_size: 1000,
                page_token: token,
                filter: r#"kind = "AUDIT_FINDING""#.into(),
            })
            .await
            .unwrap()
            .into_inner();
        n += page.records.len() as u64;
        if page.next_page_token.is_empty() {
            return n;
        }
        token = page.next_page_token;
    }
}

async fn imports_examples_idempotently(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    load_cadres_and_engagements(&server).await;

    let first = import_clean(
        &server,
        ImportKind::AuditFinding,
        "audit-findings.csv",
        "audit",
        FINDINGS,
    )
    .await;
    eprintln!("{backend:?}: audit-findings.csv, first run: {first}");

    // A re-run stores nothing new. Other batch boundaries give other request
    // ids, so this exercises the per-record idempotency rather than the replay
    // of stored batch responses (which the bad-rows test re-runs through).
    let mut rerun = args(
        &server,
        ImportKind::AuditFinding,
        "audit-findings.csv",
        "audit",
    );
    rerun.batch_size = 1000;
    let again = cadrex::tools::import::run(rerun).await.unwrap();
    eprintln!("{backend:?}: audit-findings.csv, re-run: {again}");
    assert_eq!(
        (
            again.rows,
            again.accepted,
            again.unchanged,
            again.stale,
            again.rejected
        ),
        (FINDINGS, 0, FINDINGS, 0, 0),
        "{again}"
    );
    assert_eq!(count_findings(&server).await, FINDINGS);
}

/// One rejected row of the report.
struct Rejected {
    line: u64,
    code: String,
    reason: String,
    message: String,
    fields: String,
}

fn read_report(path: &Path) -> HashMap<String, Rejected> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        r.headers().unwrap(),
        &csv::StringRecord::from(cadrex::tools::import::REPORT_HEADER.to_vec())
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[1].to_string(),
                Rejected {
                    line: rec[0].parse().unwrap(),
                    code: rec[2].to_string(),
                    reason: rec[3].to_string(),
                    message: rec[4].to_string(),
                    fields: rec[5].to_string(),
                },
            )
        })
        .collect()
}

fn check_bad_findings_report(path: &Path) {
    let report = read_report(path);
    let dump = || {
        report
            .iter()
            .map(|(id, r)| {
                format!(
                    "{} {id} {} {} {:?} {:?}",
                    r.line, r.code, r.reason, r.message, r.fields
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(report.len(), 5, "report:\n{}", dump());
    let row = |id: &str| {
        report
            .get(id)
            .unwrap_or_else(|| panic!("{id} not in the report:\n{}", dump()))
    };

    let negative = row("AF-2025-0002-901");
    assert_eq!(
        (negative.line, negative.code.as_str()),
        (3, "INVALID_ARGUMENT")
    );
    assert!(negative.fields.contains("amount_fen"), "{}", dump());

    let unknown_enum = row("AF-2025-0003-901");
    assert_eq!(
        (
            unknown_enum.line,
            unknown_enum.code.as_str(),
            unknown_enum.reason.as_str()
        ),
        (4, "INVALID_ARGUMENT", "INVALID_ROW")
    );
    assert!(
        unknown_enum
            .fields
            .starts_with("problem_type: unknown value \"EMBEZZLEMENT\""),
        "{}",
        dump()
    );

    let no_cadre = row("AF-2025-0005-901");
    assert_eq!(
        (
            no_cadre.line,
            no_cadre.code.as_str(),
            no_cadre.reason.as_str()
        ),
        (6, "PERMISSION_DENIED", "CADRE_NOT_ACCESSIBLE")
    );

    let no_engagement = row("AF-2025-0006-901");
    assert_eq!(no_engagement.line, 7);
    assert!(
        format!("{} {}", no_engagement.message, no_engagement.fields)
            .to_lowercase()
            .contains("engagement"),
        "{}",
        dump()
    );

    let bad_date = row("AF-2025-0007-901");
    assert_eq!(
        (bad_date.line, bad_date.code.as_str()),
        (8, "INVALID_ARGUMENT")
    );
    assert!(bad_date.fields.contains("finding_date"), "{}", dump());
}

async fn imports_every_kind_and_reports_bad_rows(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    load_cadres_and_engagements(&server).await;

    // Every shipped example passes the server's validation, each sent by its owner.
    for (kind, file, agency, rows) in [
        (ImportKind::Sanction, "sanctions.csv", "discipline", 30),
        (
            ImportKind::Admonishment,
            "admonishments.csv",
            "discipline",
            30,
        ),
        (ImportKind::Clue, "clues.csv", "discipline", 30),
        (
            ImportKind::OrgHandling,
            "org-handling.csv",
            "organization",
            20,
        ),
        (
            ImportKind::PersonalMattersCheck,
            "personal-matters-checks.csv",
            "organization",
            40,
        ),
        (ImportKind::Petition, "petitions.ndjson", "petition", 30),
        (
            ImportKind::Record(Kind::InspectionFinding),
            "inspection-findings.csv",
            "inspection",
            22,
        ),
    ] {
        import_clean(&server, kind, file, agency, rows).await;
    }

    // The command line: default CA, exit status, summary on stdout.
    let report = server.dir.path().join("evaluations.rejected.csv");
    let (cert, key) = server.client_files("organization", DIVISION);
    let cli_args: Vec<String> = vec![
        "import".into(),
        "--kind".into(),
        "evaluation".into(),
        "--file".into(),
        example("evaluations.csv").display().to_string(),
        "--cert".into(),
        cert.display().to_string(),
        "--key".into(),
        key.display().to_string(),
        "--server".into(),
        format!("https://localhost:{}", server.addr.port()),
        "--report".into(),
        report.display().to_string(),
    ];
    let (ok, out) = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = cli_args.iter().map(String::as_str).collect();
        cadrex_bin(&a)
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("50 rows: 50 accepted, 0 unchanged"), "{out}");
    assert!(!report.exists(), "a clean import writes no report");

    // An organization certificate cannot send audit findings: one clear error, no rows.
    let mut wrong = args(
        &server,
        ImportKind::AuditFinding,
        "bad-findings.csv",
        "organization",
    );
    wrong.report = Some(server.dir.path().join("wrong.rejected.csv"));
    let err = cadrex::tools::import::run(wrong).await.unwrap_err();
    assert!(format!("{err:#}").contains("audit"), "{err:#}");

    // Bad rows land in the report; the good ones are stored.
    let report = server.dir.path().join("bad-findings.rejected.csv");
    let mut stored_names = Vec::new();
    // A dry run checks every row on the server and stores nothing: the same
    // rows would be accepted and rejected, and the report says which.
    let before = count_findings(&server).await;
    let mut dry = args(
        &server,
        ImportKind::AuditFinding,
        "bad-findings.csv",
        "audit",
    );
    dry.report = Some(report.clone());
    dry.batch_size = 3;
    dry.dry_run = true;
    let s = cadrex::tools::import::run(dry).await.unwrap();
    assert_eq!(
        (s.rows, s.accepted, s.unchanged, s.rejected),
        (8, 3, 0, 5),
        "{s}"
    );
    check_bad_findings_report(&report);
    assert_eq!(
        count_findings(&server).await,
        before,
        "a dry run stores nothing"
    );
    for run in 0..2 {
        let mut a = args(
            &server,
            ImportKind::AuditFinding,
            "bad-findings.csv",
            "audit",
        );
        a.report = Some(report.clone());
        a.batch_size = 3;
        let accepted_report = server.dir.path().join(format!("accepted-{run}.csv"));
        a.accepted_report = Some(accepted_report.clone());
        let s = cadrex::tools::import::run(a).await.unwrap();
        let expected = if run == 0 { (8, 3, 0, 5) } else { (8, 0, 3, 5) };
        assert_eq!(
            (s.rows, s.accepted, s.unchanged, s.rejected),
            expected,
            "{s}"
        );
        check_bad_findings_report(&report);
        // Each stored row maps to the record it became, the same one on both runs.
        let text = std::fs::read_to_string(&accepted_report).unwrap();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(rows[0], ["line", "id", "outcome", "name", "revision"]);
        assert_eq!(rows.len(), 4, "{text}");
        let outcome = if run == 0 { "ACCEPTED" } else { "UNCHANGED" };
        for r in &rows[1..] {
            assert_eq!(r[2], outcome, "{text}");
            assert!(
                r[3].starts_with("cadres/") && r[3].contains("/records/"),
                "{text}"
            );
            assert!(r[4].parse::<i64>().is_ok_and(|v| v > 0), "{text}");
        }
        let names: Vec<String> = rows[1..]
            .iter()
            .map(|r| format!("{}:{}:{}", r[0], r[3], r[4]))
            .collect();
        stored_names.push(names);
    }
    assert_eq!(
        stored_names[0], stored_names[1],
        "the same rows, the same records and revisions"
    );
    assert_eq!(count_findings(&server).await, 3);
}
