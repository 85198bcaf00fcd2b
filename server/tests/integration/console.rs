//! The console's own tests, run by the one test command: its unit tests (vitest), the
//! check that its API types match the server's OpenAPI document, and its end-to-end
//! run in headless Chromium against this build's `weir` binary (console embedded by
//! `build.rs`). They need npm with `console/node_modules` (the build installs them)
//! and Chromium; without those they are skipped with a message, unless
//! `WEIR_REQUIRE_CONSOLE_TESTS=1` (set by `.ci/run`) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../console")
}

fn required() -> bool {
    std::env::var("WEIR_REQUIRE_CONSOLE_TESTS").is_ok_and(|v| v == "1")
}

/// Whether the tools are here; otherwise skips (or fails when required).
fn ready(need_browser: bool) -> bool {
    let npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let modules = console_dir().join("node_modules").exists();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let browser = !need_browser || Path::new(&chromium).exists();
    if npm && modules && browser {
        return true;
    }
    let missing = format!(
        "console tests need npm ({npm}), console/node_modules ({modules}){}",
        if need_browser {
            format!(" and Chromium at {chromium} ({browser})")
        } else {
            String::new()
        }
    );
    assert!(!required(), "{missing}");
    eprintln!("SKIPPED: {missing}");
    false
}

fn npm(args: &[&str], envs: &[(&str, &str)]) {
    let output = Command::new("npm")
        .args(args)
        .current_dir(console_dir())
        .envs(envs.iter().copied())
        .output()
        .expect("run npm");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(
        output.status.success(),
        "npm {} failed:\n{text}",
        args.join(" ")
    );
}

#[test]
fn console_unit_tests_and_api_types() {
    if !ready(false) {
        return;
    }
    npm(&["run", "check-types"], &[]);
    npm(&["test"], &[]);
}

#[test]
fn console_end_to_end_in_chromium() {
    if !ready(true) {
        return;
    }
    npm(&["run", "e2e"], &[("WEIR_BIN", env!("CARGO_BIN_EXE_weir"))]);
}
