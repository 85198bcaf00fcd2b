//! The fuzzers (fuzz/, cargo-fuzz on nightly) and schemathesis (PyPI) against the
//! OpenAPI document, each for a short budget: WEIR_FUZZ_SECONDS per fuzz target
//! (default 10) and WEIR_SCHEMATHESIS_SECONDS (default 30); longer runs only change the
//! variables. Without the tools the tests say SKIPPED, unless WEIR_REQUIRE_FUZZ=1 (CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::server::Weir;

fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var_os("WEIR_REQUIRE_FUZZ").is_some() {
        panic!("{what} is required (WEIR_REQUIRE_FUZZ is set)");
    }
    eprintln!("SKIPPED: {what} is not installed");
    false
}

fn seconds(variable: &str, default: u64) -> u64 {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Where the fuzz build goes: beside the main target dir, never inside the clone.
fn fuzz_target_dir() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    std::env::var_os("WEIR_FUZZ_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cache/weir-fuzz-target"))
}

const TARGETS: &[&str] = &[
    "ingest",
    "sql",
    "segment",
    "kafka_request",
    "pg_message",
    "scram",
];

#[test]
fn fuzz_targets_find_nothing_in_their_budget() {
    let available = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !require("cargo-fuzz on a nightly toolchain", available) {
        return;
    }
    let budget = seconds("WEIR_FUZZ_SECONDS", 10);
    let binaries = fuzz_target_dir().join("x86_64-unknown-linux-gnu/debug");
    if TARGETS.iter().any(|t| !binaries.join(t).exists()) {
        // `.ci/run` builds them first; here only when they are missing (run
        // `cd fuzz && cargo +nightly fuzz build --dev -s none` after changing Weir).
        build_fuzz_targets();
    }
    for target in TARGETS {
        // New inputs go to a scratch corpus; the committed one seeds it.
        let scratch = tempfile::tempdir().unwrap();
        let seeds = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(fuzz_dir().join("artifacts").join(target)).unwrap();
        let output = Command::new(binaries.join(target))
            .arg(scratch.path())
            .arg(&seeds)
            .arg(format!("-max_total_time={budget}"))
            // The same inputs on every run unless asked otherwise, so CI is repeatable.
            .arg(format!(
                "-seed={}",
                std::env::var("WEIR_FUZZ_SEED").unwrap_or_else(|_| "1".into())
            ))
            .args(["-rss_limit_mb=4096", "-timeout=20", "-print_final_stats=1"])
            .arg(format!(
                "-artifact_prefix={}/",
                fuzz_dir().join("artifacts").join(target).display()
            ))
            .output()
            .expect("run the fuzz target");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "fuzz target {target} failed; the input is under fuzz/artifacts/{target}/ — fix \
             the bug and copy the input to fuzz/regressions/{target}/:\n{}",
            stderr
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        let runs = stderr
            .lines()
            .find(|l| l.contains("stat::number_of_executed_units"))
            .unwrap_or("")
            .to_string();
        eprintln!("fuzz {target}: {budget} s, {}", runs.trim());
        // Crashes found before stay fixed: each input is replayed.
        let regressions = fuzz_dir().join("regressions").join(target);
        if regressions.is_dir() {
            let files: Vec<_> = std::fs::read_dir(&regressions)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            if !files.is_empty() {
                let status = Command::new(binaries.join(target))
                    .args(&files)
                    .status()
                    .unwrap();
                assert!(
                    status.success(),
                    "a regression input of {target} fails again"
                );
            }
        }
    }
}

/// `cargo +nightly fuzz build`, with the environment `cargo test` set for this process
/// removed (it would point the nested build at this toolchain and target dir).
fn build_fuzz_targets() {
    let mut command = Command::new("cargo");
    command.current_dir(fuzz_dir());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().to_string();
        if key.starts_with("CARGO")
            || key.starts_with("RUSTC")
            || key == "RUSTUP_TOOLCHAIN"
            || key == "RUSTFLAGS"
        {
            command.env_remove(key);
        }
    }
    let status = command
        .args([
            "+nightly",
            "fuzz",
            "build",
            "--dev",
            "-s",
            "none",
            "--target-dir",
        ])
        .arg(fuzz_target_dir())
        .status()
        .expect("cargo fuzz build");
    assert!(status.success(), "cargo fuzz build failed");
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let available = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require("schemathesis", available) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &["--pg-listen", "off"]);
    weir.sql_ok(
        "CREATE STREAM clicks (user_id BIGINT, page TEXT, ts TIMESTAMP); \
         INSERT INTO clicks VALUES (1, '/a', now()); \
         CREATE MATERIALIZED VIEW per_page AS SELECT page, count(*) AS n FROM clicks GROUP BY page",
    );
    let budget = seconds("WEIR_SCHEMATHESIS_SECONDS", 30);
    let output = Command::new("schemathesis")
        .arg("run")
        .arg(format!("{}/v1/openapi.json", weir.url))
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            // A push query never ends: it is tested by the push tests instead.
            "--exclude-path",
            "/v1/sql/stream",
            "--workers",
            "1",
            "--seed",
            "1",
        ])
        .arg(format!("--max-time={budget}"))
        .current_dir(dir.path())
        .output()
        .expect("schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found answers that are 5xx or off the documented schema:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = stdout
        .lines()
        .find(|l| l.contains("generated"))
        .unwrap_or("")
        .trim()
        .to_string();
    eprintln!("schemathesis: {summary}");
    assert_eq!(weir.get("/healthz").0, 200);
}
