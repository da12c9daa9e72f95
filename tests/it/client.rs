//! `cadrex client` as an official uses it: the officer on every call, cadres found by 公民身份号码, readable and JSON output.

use cadrex::proto::{self, record::Payload};
use unicode_width::UnicodeWidthStr;

use crate::common::{Backend, TestServer, id_number, own_access_events};
use crate::common::{cadre, record, records_client, submit};

/// A party serious warning, so that the dossier has a sanction to label.
fn serious_warning() -> Payload {
    Payload::Sanction(proto::Sanction {
        track: proto::SanctionTrack::Party as i32,
        party_type: proto::PartySanctionType::SeriousWarning as i32,
        decision_number: "赣纪〔2026〕11号".into(),
        decision_date: "2026-01-05".into(),
        effective_date: "2026-01-05".into(),
        form_of_discipline: 2,
        ..Default::default()
    })
}

/// Runs `cadrex client` as `agency` of 360821 against `server`, with
/// `CADREX_OFFICER` set to `env_officer` or removed; (success, stdout, stderr).
fn client_env(
    server: &TestServer,
    agency: &str,
    env_officer: Option<&str>,
    args: &[&str],
) -> (bool, String, String) {
    let (crt, key) = server.client_files(agency, "360821");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cadrex"));
    cmd.arg("client")
        .arg("--cert")
        .arg(&crt)
        .arg("--key")
        .arg(&key)
        .arg("--server")
        .arg(format!("https://localhost:{}", server.addr.port()))
        .args(args)
        .env("CADREX_LOG", "warn");
    match env_officer {
        Some(o) => cmd.env("CADREX_OFFICER", o),
        None => cmd.env_remove("CADREX_OFFICER"),
    };
    // Waiting in place would park a runtime worker the server's tasks need
    // (see `common::cadrex_bin_split`).
    let out = tokio::task::block_in_place(|| cmd.output().expect("run cadrex"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The opinion request `opinion create` printed.
fn request_named(out: &str) -> String {
    out.split_whitespace()
        .find(|w| w.starts_with("opinionRequests/"))
        .unwrap_or_else(|| panic!("no request name in\n{out}"))
        .to_string()
}

fn client(server: &TestServer, agency: &str, args: &[&str]) -> String {
    let (ok, out, err) = client_env(server, agency, None, args);
    assert!(ok, "cadrex client {args:?} failed:\n{out}{err}");
    out
}

/// Every line within 100 display columns, CJK counted as two.
fn assert_narrow(out: &str) {
    for line in out.lines() {
        assert!(
            line.width() <= 100,
            "{} columns:\n{line}\nin\n{out}",
            line.width()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_officer_is_recorded_on_every_call() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let a = cadre(&server, 61).await;
    client(
        &server,
        "organization",
        &["--officer", "王五", "cadre", "get", "--cadre", &a.id_number],
    );
    let (ok, _, err) = client_env(
        &server,
        "organization",
        Some("Li Si/综合科"),
        &["record", "list", "--cadre", &a.name],
    );
    assert!(ok, "{err}");
    let rows = own_access_events(server.channel("organization", "360821").await).await;
    let officer_of = |method: &str| -> Vec<String> {
        rows.iter()
            .filter(|e| e.method.ends_with(method))
            .map(|e| e.officer.clone())
            .collect()
    };
    // The lookup by 公民身份号码 and the read both carry the officer.
    assert_eq!(officer_of("/LookupCadre"), ["王五"]);
    assert_eq!(officer_of("/GetCadre"), ["王五"]);
    assert_eq!(
        officer_of("/ListRecords"),
        ["Li Si/综合科"],
        "from CADREX_OFFICER"
    );

    // A name the server would refuse fails before any call, and says why.
    let before = own_access_events(server.channel("organization", "360821").await)
        .await
        .len();
    for (bad, why) in [
        ("张".repeat(65), "at most 64"),
        ("a\u{202E}b".to_string(), "bidirectional"),
        ("a\u{7}b".to_string(), "control"),
    ] {
        let (ok, _, err) = client_env(
            &server,
            "organization",
            None,
            &["--officer", &bad, "cadre", "get", "--cadre", &a.name],
        );
        assert!(!ok);
        assert!(err.contains("--officer") && err.contains(why), "{err}");
    }
    let (ok, _, err) = client_env(
        &server,
        "organization",
        Some(&"x".repeat(65)),
        &["cadre", "get", "--cadre", &a.name],
    );
    assert!(!ok && err.contains("CADREX_OFFICER"), "{err}");
    let after = own_access_events(server.channel("organization", "360821").await)
        .await
        .len();
    // Only the two ListAccessEvents calls of this test were added.
    assert!(after <= before + 2, "{before} -> {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadres_are_found_by_id_number_within_jurisdiction_only() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let a = cadre(&server, 62).await;
    let lower = a.id_number.to_lowercase();
    let out = client(
        &server,
        "organization",
        &["cadre", "lookup", "--id-number", &lower],
    );
    assert!(
        out.contains(&a.name) && out.contains(&a.display_name),
        "{out}"
    );
    assert_narrow(&out);
    let out = client(
        &server,
        "discipline",
        &["cadre", "get", "--cadre", &a.id_number],
    );
    assert!(out.contains(&a.name), "{out}");

    // A cadre of another county and a number never registered read the same.
    let other = server
        .cadres("organization", "360802")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(crate::common::new_cadre("赵六", "360802", 63)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let missing = id_number("360821", "19800101", 997);
    let answer = |number: &str| {
        let (ok, out, err) = client_env(
            &server,
            "organization",
            None,
            &["cadre", "lookup", "--id-number", number],
        );
        assert!(!ok, "{out}");
        err.replace(number, "N")
    };
    let foreign = answer(&other.id_number);
    assert!(foreign.contains("CADRE_NOT_ACCESSIBLE"), "{foreign}");
    assert_eq!(foreign, answer(&missing));
    // The same through every command that takes a cadre.
    let (ok, _, err) = client_env(
        &server,
        "organization",
        None,
        &[
            "dossier",
            "--cadre",
            &other.id_number,
            "--purpose",
            "routine-supervision",
        ],
    );
    assert!(!ok && err.contains("CADRE_NOT_ACCESSIBLE"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readable_output_has_labels_dates_and_fits_100_columns() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let a = cadre(&server, 64).await;
    let b = cadre(&server, 65).await;
    let stored = records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(&a, "SC-64", 1, serious_warning())))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();

    let out = client(
        &server,
        "discipline",
        &[
            "dossier",
            "--cadre",
            &a.id_number,
            "--purpose",
            "case_handling",
        ],
    );
    for label in [
        "严重警告 SERIOUS_WARNING",
        "党纪处分 PARTY",
        "党纪政务处分 SANCTION (1)",
        "不同意 NOT_AGREE",
        "案件办理 CASE_HANDLING",
    ] {
        assert!(out.contains(label), "{label} missing:\n{out}");
    }
    assert!(!out.contains("RECORD_KIND_"), "{out}");
    assert!(!out.contains("track 1"), "no enum numbers:\n{out}");
    // Kinds without records print no empty table.
    assert!(!out.contains("ADMONISHMENT"), "{out}");
    assert_narrow(&out);

    let out = client(
        &server,
        "discipline",
        &["record", "get", "--name", &stored.name],
    );
    assert!(
        out.contains("严重警告 SERIOUS_WARNING") && out.contains("有效 ACTIVE"),
        "{out}"
    );
    assert_narrow(&out);
    let out = client(
        &server,
        "discipline",
        &["record", "list", "--cadre", &a.name],
    );
    assert!(
        out.contains(&stored.name) && out.contains("2026-01-05"),
        "{out}"
    );
    assert_narrow(&out);

    // A request for two cadres given as one comma-separated flag, then the
    // draft grouped by rule with the cited record's summary.
    let cadres = format!("{},{}", a.id_number, b.name);
    let out = client(
        &server,
        "organization",
        &[
            "opinion",
            "create",
            "--cadre",
            &cadres,
            "--purpose",
            "promotion",
            "--note",
            "拟提拔",
        ],
    );
    let request = request_named(&out);
    assert!(out.contains(&a.name) && out.contains(&b.name), "{out}");
    assert!(
        out.contains("待回复 PENDING") && out.contains("提拔任用 PROMOTION"),
        "{out}"
    );
    let out = client(
        &server,
        "discipline",
        &[
            "opinion",
            "draft",
            "--request",
            &request,
            "--cadre",
            &a.name,
        ],
    );
    let short = stored.name.strip_prefix(&format!("{}/", a.name)).unwrap();
    let cited = out
        .lines()
        .find(|l| l.contains(short))
        .unwrap_or_else(|| panic!("the cited record is listed:\n{out}"));
    assert!(cited.contains("严重警告 SERIOUS_WARNING"), "{out}");
    assert_narrow(&out);
    client(
        &server,
        "discipline",
        &[
            "opinion",
            "reply",
            "--request",
            &request,
            "--cadre",
            &a.name,
            "--verdict",
            "not-agree",
            "--text",
            &"处分影响期内，不同意提拔。".repeat(8),
            "--signer",
            "张某",
            "--cite",
            &stored.name,
        ],
    );
    let out = client(
        &server,
        "organization",
        &["opinion", "show", "--request", &request],
    );
    let today = time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+8))
        .date()
        .to_string();
    assert!(
        out.contains("不同意 NOT_AGREE") && out.contains("张某"),
        "{out}"
    );
    assert!(out.contains(&today), "as-of as a date:\n{out}");
    assert_narrow(&out);
    let out = client(
        &server,
        "organization",
        &["log", "events", "--method", "GetOpinionRequest"],
    );
    assert!(
        out.contains("GetOpinionRequest") && out.contains("允许 ALLOW"),
        "{out}"
    );
    assert!(
        !out.contains("CreateOpinionRequest"),
        "filtered by method:\n{out}"
    );
    assert_narrow(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_protobuf_canonical_json() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let a = cadre(&server, 66).await;
    records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(&a, "SC-66", 1, serious_warning())))
        .await
        .unwrap();
    let json = |agency: &str, args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let out = client(&server, agency, &all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}:\n{out}"))
    };
    let c = json(
        "organization",
        &["cadre", "lookup", "--id-number", &a.id_number],
    );
    assert_eq!(c["name"], a.name.as_str());
    assert_eq!(c["displayName"], a.display_name.as_str());
    assert_eq!(c["gender"], "GENDER_MALE");
    let d = json(
        "discipline",
        &["dossier", "--cadre", &a.name, "--purpose", "case-handling"],
    );
    assert_eq!(d["purpose"], "PURPOSE_CASE_HANDLING");
    assert_eq!(d["flags"]["verdict"], "VERDICT_NOT_AGREE");
    let section = &d["sections"][0];
    assert_eq!(section["kind"], "RECORD_KIND_SANCTION");
    let sanction = &section["records"][0]["sanction"];
    assert_eq!(sanction["partyType"], "PARTY_SANCTION_TYPE_SERIOUS_WARNING");
    assert_eq!(
        section["records"][0]["sourceVersion"], "1",
        "int64 as a string"
    );
    let l = json("discipline", &["record", "list"]);
    assert_eq!(l["records"].as_array().unwrap().len(), 1);
    let events = json("organization", &["log", "events"]);
    assert!(
        events["accessEvents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["method"] == "/cadrex.v1.CadreService/LookupCadre"),
        "{events}"
    );

    // The checkpoint reads as the offline `cadrex log checkpoint` prints it.
    let mut cp = serde_json::Value::Null;
    for _ in 0..50 {
        let (ok, out, _) = client_env(&server, "discipline", None, &["log", "checkpoint"]);
        if ok {
            cp = serde_json::from_str(&out).unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(cp["seq"].is_string() && cp["keyId"].is_string(), "{cp}");
    assert!(
        cp["signedBytes"].is_string() && cp["time"].is_string(),
        "{cp}"
    );
    let file = server.dir.path().join("checkpoint.json");
    std::fs::write(&file, cp.to_string()).unwrap();
    let (ok, out) = crate::common::cadrex_bin(&[
        "log",
        "verify",
        "--store",
        &server.store_url,
        "--public-key",
        &server.pki.join("log-signing.pub").display().to_string(),
        "--checkpoint",
        &file.display().to_string(),
    ]);
    assert!(ok, "the exported checkpoint verifies:\n{out}");
}

/// The printable dossier (`--format html`): one self-contained page whose
/// text a browser shows — identity, the sanction's section, the verdict —
/// with the reading system, officer, purpose and the access-log seq of this
/// very read in its footer; rendered and screenshotted by headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printable_dossier_renders_in_a_browser() {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(chromium) = chromium else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must have Chromium (.ci/run installs Debian's chromium)"
        );
        eprintln!("notice: Chromium is not installed; skipping the printable dossier test");
        return;
    };
    let server = TestServer::spawn(Backend::Sqlite).await;
    let c = cadre(&server, 81).await;
    records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(&c, "SC-HTML", 1, serious_warning())))
        .await
        .unwrap();
    let (ok, page, err) = client_env(
        &server,
        "discipline",
        Some("王五"),
        &[
            "dossier",
            "--cadre",
            &c.name,
            "--purpose",
            "case_handling",
            "--format",
            "html",
        ],
    );
    assert!(ok, "{err}");
    for external in ["src=", "href=", "http://", "https://"] {
        assert!(!page.contains(external), "self-contained: {external}");
    }
    // The footer cites this read's own access-log row.
    let rows = own_access_events(server.channel("discipline", "360821").await).await;
    let read = rows
        .iter()
        .rev()
        .find(|e| e.method.ends_with("/GetCadreDossier"))
        .unwrap();
    assert_eq!(read.officer, "王五");

    let dir = server.dir.path().join("html");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dossier.html");
    std::fs::write(&file, &page).unwrap();
    let url = format!("file://{}", file.display());
    let headless = |extra: &[&str]| {
        let out = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(extra)
            .arg(&url)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = headless(&["--dump-dom"]);
    for text in [
        "干部廉政档案",
        c.display_name.as_str(),
        "严重警告 SERIOUS_WARNING",
        "案件办理",
        "王五",
        &format!("访问日志序号 access-log seq {}", read.seq),
        "urn:cadrex:system:discipline:360821:",
    ] {
        assert!(dom.contains(text), "the page shows {text:?}");
    }
    let shot = dir.join("dossier.png");
    headless(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1000,1400",
    ]);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // Width and height from the PNG header, and enough bytes to be a page
    // with text rather than a blank one.
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1000, 1400));
    assert!(
        png.len() > 20_000,
        "a rendered page, not a blank: {} bytes",
        png.len()
    );
}

/// A personal-matters check found under-reported (a matter, no bar).
fn under_reported(year: i32) -> Payload {
    Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
        report_year: year,
        result: proto::PersonalMattersResult::UnderReported as i32,
        check_date: format!("{}-03-01", year + 1),
        handling: "批评教育".into(),
    })
}

/// A draft lists one reason per record a rule applies to; an official reads
/// one heading per rule, in Chinese, with its records under it and the rule
/// id in small print — at the terminal and on the printed dossier. The
/// dossier also shows the unit-head tenure and the term audit it is owed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_read_one_heading_per_rule_in_chinese() {
    let server = TestServer::spawn(Backend::Sqlite).await;
    let a = cadre(&server, 71).await;
    let mut org = records_client(server.channel("organization", "360821").await);
    for (i, year) in [2021, 2022, 2023].into_iter().enumerate() {
        org.submit_record(submit(record(
            &a,
            &format!("PM-{i}"),
            1,
            under_reported(year),
        )))
        .await
        .unwrap();
    }
    records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(&a, "SC-1", 1, serious_warning())))
        .await
        .unwrap();
    let out = client(
        &server,
        "organization",
        &[
            "opinion",
            "create",
            "--cadre",
            &a.name,
            "--purpose",
            "promotion",
        ],
    );
    let request = request_named(&out);
    let out = client(
        &server,
        "discipline",
        &[
            "opinion",
            "draft",
            "--request",
            &request,
            "--cadre",
            &a.name,
        ],
    );
    let headings = |title: &str| out.lines().filter(|l| l.starts_with(title)).count();
    assert_eq!(headings("有问题记录"), 1, "three records, one rule:\n{out}");
    assert_eq!(headings("党纪处分影响期"), 1, "{out}");
    assert!(out.contains("(规则 rule matter_on_record)"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("漏报 UNDER_REPORTED"))
            .count(),
        3,
        "each record once, under its rule:\n{out}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("规则 rule")),
        "no heading is a bare rule id:\n{out}"
    );
    assert_narrow(&out);

    let out = client(
        &server,
        "discipline",
        &["dossier", "--cadre", &a.name, "--purpose", "case-handling"],
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("有问题记录")).count(),
        1,
        "{out}"
    );
    // `new_cadre` has headed its unit since 2021-03 with no audit on record.
    assert!(
        out.contains("一把手任职 unit head of") && out.contains("任期审计到期 TERM_AUDIT_DUE"),
        "{out}"
    );
    assert_narrow(&out);
    let html = client(
        &server,
        "discipline",
        &[
            "dossier",
            "--cadre",
            &a.name,
            "--purpose",
            "case-handling",
            "--format",
            "html",
        ],
    );
    assert_eq!(
        html.matches("<small class=\"muted\">matter_on_record</small>")
            .count(),
        1,
        "{html}"
    );
    assert!(html.contains("有问题记录"), "{html}");
    assert!(html.contains("任期审计到期"), "{html}");
}
