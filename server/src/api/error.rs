//! One error shape for every route (design/HTTP.md):
//! `{"error": {"code", "message", "position"?, "row"?, "column_name"?}}` with the right
//! status. 4xx are the caller's to fix and logged at debug; 5xx are ours and logged as errors.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::engine::{Error, StatementError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields of the error object (position, row, column_name, statement, ...).
    pub details: serde_json::Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Default::default(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no credentials, or ones that are not valid; 403: not allowed.
    pub fn denied(denied: crate::auth::Denied) -> Self {
        match denied {
            crate::auth::Denied::Unauthenticated(m) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
            }
            crate::auth::Denied::Forbidden(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", m)
            }
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_string(), value);
        self
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        let api = match &error {
            Error::Parse { position, .. } => {
                let e = ApiError::new(StatusCode::BAD_REQUEST, "sql_parse_error", message);
                match position {
                    Some((line, column)) => {
                        e.with("position", json!({"line": line, "column": column}))
                    }
                    None => e,
                }
            }
            Error::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            Error::AlreadyExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", message)
            }
            Error::Decode(d) => {
                let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_rows", message);
                if let Some(row) = d.row {
                    e = e.with("row", json!(row));
                }
                if let Some(column) = &d.column {
                    e = e.with("column_name", json!(column));
                }
                e
            }
            Error::NotReady => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message),
            Error::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            // Over a limit: the caller changes the request (or the operator the flag).
            Error::Limit(_) => ApiError::new(StatusCode::BAD_REQUEST, "limit_exceeded", message),
            Error::ResourcesExhausted(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "resources_exhausted", message)
            }
            Error::Timeout(_) => {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "statement_timeout", message)
            }
            e if e.is_user_error() => ApiError::new(StatusCode::BAD_REQUEST, "invalid", message),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        };
        if api.status.is_server_error() {
            tracing::error!("{}", api.message);
        } else {
            tracing::debug!("{}", api.message);
        }
        api
    }
}

impl From<StatementError> for ApiError {
    /// Names the failed statement when the request had several, and where it starts.
    fn from(e: StatementError) -> Self {
        let many = e.index > 1 || !e.completed.is_empty();
        let position_known = matches!(
            &e.error,
            Error::Parse {
                position: Some(_),
                ..
            }
        );
        let mut api = ApiError::from(e.error);
        if many {
            api.message = format!("statement {} (line {}): {}", e.index, e.line, api.message);
        }
        api = api.with("statement", json!(e.index));
        if !position_known {
            api = api.with("position", json!({"line": e.line, "column": e.column}));
        }
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        error.extend(self.details);
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"weir\""),
            );
        }
        response
    }
}
