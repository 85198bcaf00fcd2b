//! Builds the console (`../console`, a Vite app) and embeds its files in the binary.
//!
//! - With npm on the PATH, runs `npm ci` (when `node_modules` is missing) and `npm run build`
//!   whenever the console's sources change.
//! - Without npm, embeds an existing `console/dist`; with neither, a debug build (and
//!   `cargo check` / clippy) embeds a page saying how to build the console, and a release
//!   build fails with that message.
//! - `WEIR_SKIP_CONSOLE_BUILD=1` skips npm and embeds whatever `console/dist` holds.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let console = manifest.join("../console");
    let dist = console.join("dist");
    for watched in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "public",
    ] {
        println!("cargo:rerun-if-changed={}", console.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=WEIR_SKIP_CONSOLE_BUILD");

    let skip = std::env::var_os("WEIR_SKIP_CONSOLE_BUILD").is_some_and(|v| v != "0");
    if skip || !has_npm() {
        // Embedding a dist built elsewhere: follow it (npm's own builds are not watched,
        // since they happen during this script).
        println!("cargo:rerun-if-changed={}", dist.display());
        println!("cargo:rerun-if-changed={}", dist.join("assets").display());
    }
    if !skip && console.join("package.json").exists() && has_npm() {
        if !console.join("node_modules").exists() {
            npm(&console, &["ci", "--no-audit", "--no-fund"]);
        }
        npm(&console, &["run", "build"]);
    }

    let mut files = Vec::new();
    if dist.join("index.html").exists() {
        collect(&dist, &dist, &mut files);
    } else if std::env::var("PROFILE").as_deref() == Ok("release") {
        panic!(
            "the console is not built and npm was not found: install Node.js 20+ (with npm) \
             and run `cargo build --release` again, or build it yourself with \
             `cd console && npm ci && npm run build`"
        );
    } else {
        println!(
            "cargo:warning=console not built (no npm and no console/dist): the binary serves a placeholder at /"
        );
    }
    files.sort();
    let mut out = String::from(
        "/// Console files: (path relative to dist, contents).\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            abs.display().to_string()
        ));
    }
    out.push_str("];\n");
    let out_path = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("console_assets.rs");
    std::fs::write(out_path, out).unwrap();
}

fn has_npm() -> bool {
    Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn npm(dir: &Path, args: &[&str]) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("could not run npm {}: {e}", args.join(" ")));
    if !status.success() {
        panic!(
            "`npm {}` failed in {} (see its output above); fix the console build or set \
             WEIR_SKIP_CONSOLE_BUILD=1 to embed the existing console/dist",
            args.join(" "),
            dir.display()
        );
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, path.canonicalize().unwrap()));
        }
    }
}
