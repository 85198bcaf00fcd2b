//! `/v1/dashboards`: the console's saved dashboards (design/HTTP.md).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, ApiState};

pub async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let all = state.engine()?.dashboards().await;
    Ok(Json(json!({ "dashboards": all })).into_response())
}

pub async fn get_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.engine()?.dashboard(&id).await?).into_response())
}

/// PUT creates (201) or replaces (200) and answers with the stored dashboard.
pub async fn put(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the dashboard is not valid JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        ))
    })?;
    let (stored, created) = state.engine()?.put_dashboard(&id, body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(stored)).into_response())
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.engine()?.delete_dashboard(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
