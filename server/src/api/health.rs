//! Liveness, readiness, metrics, the OpenAPI document, and the JSON 404.

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};

/// The API's OpenAPI 3.1 description, one source checked by the integration tests.
pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<ApiState>) -> Result<&'static str, ApiError> {
    state.engine()?;
    Ok("ready\n")
}

pub async fn metrics(State(state): State<ApiState>) -> Response {
    let streams = state
        .inner
        .engine
        .get()
        .map(|e| e.streams())
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.inner.metrics.render(&streams),
    )
        .into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {}; see /v1/openapi.json", uri.path()),
    )
}
