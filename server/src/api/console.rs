//! The console at `/`: the files of `console/dist`, embedded at build time (see
//! `build.rs`), or read from `--console-dir` when given (for console development).
//!
//! Caching: Vite names its bundles by content hash under `assets/`, so those are
//! `immutable` for a year; `index.html` and other files are `no-cache` so a new binary's
//! console is picked up at once. Paths without a file extension get `index.html`, so a
//! deep link into the console opens it.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

const PLACEHOLDER: &str = "<!doctype html><meta charset=utf-8><title>Weir</title>\
<h1>Weir</h1><p>This binary was built without its console (npm was not found). \
Install Node.js 20+ and rebuild, or use the HTTP API at <a href=/v1/openapi.json>/v1/openapi.json</a>.</p>";

pub async fn serve(State(state): State<ApiState>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("v1/") {
        return super::health::not_found(uri).await.into_response();
    }
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some(response) = file(state.inner.console_dir.as_ref(), path).await {
        return response;
    }
    let last = path.rsplit('/').next().unwrap_or(path);
    if !last.contains('.') {
        if let Some(response) = file(state.inner.console_dir.as_ref(), "index.html").await {
            return response;
        }
        return (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            PLACEHOLDER,
        )
            .into_response();
    }
    super::health::not_found(uri).await.into_response()
}

async fn file(dir: Option<&PathBuf>, path: &str) -> Option<Response> {
    if path.split('/').any(|part| part == ".." || part.is_empty()) {
        return None;
    }
    let bytes: Vec<u8> = match dir {
        Some(dir) => tokio::fs::read(dir.join(path)).await.ok()?,
        None => assets::ASSETS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, b)| b.to_vec())?,
    };
    let cache = if path.starts_with("assets/") && dir.is_none() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::auth::CONSOLE_CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(response)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
