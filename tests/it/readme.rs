//! The README's walk-throughs, run as written: every `sh` block in order, against `cadrex serve` started in an empty directory as the first set-up command starts it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::both_backends;
use crate::common::{Backend, ServeProcess, TestDb};

both_backends!(every_sh_block_of_the_readme_runs_as_written);

/// The store the README's log block names: the embedded default.
const README_STORE: &str = "sqlite://./cadrex-data/cadrex.db";

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `sh` blocks of the README, in order, each as one script.
fn sh_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in readme.lines() {
        match current.as_mut() {
            None if line == "```sh" => current = Some(Vec::new()),
            Some(lines) if line.starts_with("```") => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    assert!(current.is_none(), "an sh block of the README is not closed");
    blocks
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What a block needs beyond cadrex, bash, jq and sqlite3, when it is missing
/// here; CI has everything but grpcurl.
fn missing_for(block: &str) -> Option<&'static str> {
    if block.contains("grpcurl") && !runs("grpcurl", &["-version"]) {
        return Some("grpcurl");
    }
    if block.contains("examples/python")
        && !runs("python3", &["-c", "import grpc, grpc_tools, grpc_status"])
    {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must have grpcio, grpcio-tools and grpcio-status (.ci/run installs them)"
        );
        return Some("python3 with grpcio, grpcio-tools and grpcio-status");
    }
    None
}

/// Removes every `CADREX_*` variable of this process from `cmd`: the
/// walk-throughs start from a fresh shell, as a new user's would.
fn without_cadrex_settings(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CADREX_") {
            cmd.env_remove(name);
        }
    }
}

/// Copies the files of `from` into `to` (one level: the example data).
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Every `sh` block of the README after the two set-up commands runs, in
/// order, in `bash -euo pipefail`, from a directory where `cadrex serve` made
/// `cadrex-data/` on first start and which holds a copy of `examples/import/`
/// (so that reports written beside the inputs stay out of the source tree).
/// `cadrex` is on the PATH and `CADREX_SERVER` names the server; the one
/// change to a block's text is the port, for blocks that spell out
/// `localhost:50051`. On PostgreSQL the server gets `--store` and the one
/// other change is that store's URL for the embedded default's in the log
/// block. Then what the walk-throughs promise is checked in the files they
/// leave.
async fn every_sh_block_of_the_readme_runs_as_written(backend: Backend) {
    if !["jq", "sqlite3"].iter().all(|t| runs(t, &["--version"])) || !runs("bash", &["--version"]) {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must have bash, jq and sqlite3 (.ci/run installs them)"
        );
        eprintln!(
            "notice: bash, jq or sqlite3 is not installed; skipping the README walk-throughs"
        );
        return;
    }
    let readme = std::fs::read_to_string(README).unwrap();
    let blocks = sh_blocks(&readme);
    assert_eq!(
        blocks[..2],
        ["cargo run --release -- serve", "cargo nextest run"],
        "the README opens with its two set-up commands"
    );

    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    copy_files(
        &Path::new(ROOT).join("examples/import"),
        &work.join("examples/import"),
    );
    std::os::unix::fs::symlink(
        Path::new(ROOT).join("examples/python"),
        work.join("examples/python"),
    )
    .unwrap();
    std::os::unix::fs::symlink(Path::new(ROOT).join("proto"), work.join("proto")).unwrap();

    // The first set-up command, without cargo: the embedded default in
    // ./cadrex-data, whatever CADREX_* settings the machine running the tests
    // has (a CADREX_STORE there would move the store the log block reads).
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDb::create().await),
    };
    let store = db.as_ref().map_or(README_STORE, |d| d.url.as_str());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_cadrex"));
    serve
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(work);
    if let Some(db) = &db {
        serve.args(["--store", &db.url]);
    }
    without_cadrex_settings(&mut serve);
    let server = ServeProcess::announced(serve);
    let port = server.addr.port();
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_cadrex"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut outputs = Vec::new();
    for block in &blocks[2..] {
        if let Some(tool) = missing_for(block) {
            eprintln!("notice: {tool} is not installed; skipping the README block\n{block}");
            continue;
        }
        let script = block
            .replace("localhost:50051", &format!("localhost:{port}"))
            .replace("127.0.0.1:50051", &format!("127.0.0.1:{port}"))
            .replace(README_STORE, store);
        let mut bash = Command::new("bash");
        without_cadrex_settings(&mut bash);
        let out = bash
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(work)
            .env("PATH", &path)
            .env("CADREX_SERVER", format!("https://localhost:{port}"))
            .env("CADREX_LOG", "warn")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "README block failed ({}):\n{script}\n--- output ---\n{text}",
            out.status
        );
        // Shown with a later failure: what each block printed.
        eprintln!("--- README block, as run ---\n{script}\n--- printed ---\n{text}");
        outputs.push((block.clone(), text));
    }
    let output_of = |start: &str| -> &str {
        &outputs
            .iter()
            .find(|(b, _)| b.contains(start))
            .unwrap_or_else(|| panic!("a README block ran that contains {start:?}"))
            .1
    };

    // From a 公民身份号码 to the reply history and a vetting dossier.
    let terminal = output_of("cadrex client opinion show");
    for expected in [
        "常伟",
        "乔立新",
        "影响期已满",
        "补充线索",
        "另有问题线索正在核查",
    ] {
        assert!(terminal.contains(expected), "{expected:?} in\n{terminal}");
    }
    let html = std::fs::read_to_string(work.join("dossier.html")).unwrap();
    assert!(html.contains("常伟") && html.contains("补充线索"), "{html}");

    // An inspection tour's briefing and findings, 凡提四必, a reply kinder than
    // the draft with its reason, the audit office's worklist.
    let tour = output_of("--purpose pre_inspection_briefing");
    for expected in [
        "22 rows: 22 accepted",
        "PRE_INSPECTION_BRIEFING",
        "360826********0059 (已遮蔽 masked)",
        "移送纪检 findings transferred to discipline",
        "草拟结论 draft verdict: 暂缓 DEFER",
        "巡察移交问题线索",
        "可以提交讨论 ready",
        "TERM_AUDIT_DUE",
    ] {
        assert!(tour.contains(expected), "{expected:?} in\n{tour}");
    }
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("checkpoint.json")).unwrap()).unwrap();
    assert!(checkpoint["signature"].is_string(), "{checkpoint}");

    // The bulk import: the bad file's five rejected rows, reported beside it.
    let rejected =
        std::fs::read_to_string(work.join("examples/import/bad-findings.rejected.csv")).unwrap();
    assert_eq!(rejected.lines().count(), 1 + 5, "{rejected}");

    // The copies an integrator reads with sqlite3 and jq.
    let count = output_of("sqlite3 findings.db \"SELECT count(*)");
    let active: u64 = count
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("a count in\n{count}"));
    assert!(active >= 10_000, "{count}");
    let transferred = output_of("jq -r 'select");
    assert!(
        transferred
            .lines()
            .any(|l| l.starts_with("cadres/") && l.contains('\t')),
        "{transferred}"
    );

    // Revocation and the log.
    assert!(
        work.join("cadrex-data/pki/clients/audit-360800-audit-mis.crt")
            .exists()
    );
    assert!(work.join("exported.json").exists());
    if db.is_some() {
        assert!(
            !work.join("cadrex-data/cadrex.db").exists(),
            "the PostgreSQL run left an embedded store behind"
        );
    }
    drop(server);
    drop(db);
}
