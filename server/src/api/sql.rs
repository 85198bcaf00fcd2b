//! `POST /v1/sql`: runs `;`-separated statements and answers their results as JSON, or a
//! single query's rows as Arrow IPC or CSV when the client asks for them (`Accept`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, values};
use crate::engine::StatementResult;
use crate::types::sql_type_name;

#[derive(Deserialize)]
struct SqlRequest {
    sql: String,
}

pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

pub async fn post_sql(
    State(state): State<ApiState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let engine = state.engine()?;
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected a JSON body like {{\"sql\": \"SELECT 1\"}}: {e}"
        ))
    })?;
    let principal = principal.map_or_else(crate::auth::Principal::anonymous, |p| p.0);
    let mut results = match engine.execute_sql_as(&request.sql, &principal).await {
        Ok(results) => results,
        Err(mut e) => {
            // The statements before the failed one ran: say what they gave.
            let completed = std::mem::take(&mut e.completed)
                .iter()
                .map(result_json)
                .collect::<Result<Vec<_>, _>>()?;
            let error = ApiError::from(e);
            return Err(if completed.is_empty() {
                error
            } else {
                error.with("completed", Value::Array(completed))
            });
        }
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if results.len() == 1
        && let StatementResult::Rows {
            schema, batches, ..
        } = &results[0]
    {
        if accept.contains(ARROW_STREAM) {
            return arrow_response(schema, batches);
        }
        if accept.contains("text/csv") {
            return csv_response(schema, batches);
        }
    }
    let body = if results.len() == 1 {
        result_json(&results.remove(0))?
    } else {
        let all: Result<Vec<Value>, ApiError> = results.iter().map(result_json).collect();
        json!({"kind": "multi", "results": all?})
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("encoding the result failed: {e}"),
    )
}

/// One statement's result object.
pub fn result_json(result: &StatementResult) -> Result<Value, ApiError> {
    Ok(match result {
        StatementResult::Ok {
            message,
            rows_affected,
        } => {
            let mut v = json!({"kind": "ok", "message": message});
            if let Some(n) = rows_affected {
                v["rows_affected"] = json!(n);
            }
            v
        }
        StatementResult::Rows {
            schema,
            batches,
            elapsed,
        } => {
            let columns: Vec<Value> = schema
                .fields()
                .iter()
                .map(|f| json!({"name": f.name(), "type": sql_type_name(f.data_type())}))
                .collect();
            let rows = values::rows(batches).map_err(internal)?;
            json!({
                "kind": "rows",
                "columns": columns,
                "row_count": rows.len(),
                "rows": rows,
                "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
            })
        }
    })
}

pub fn arrow_response(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[datafusion::arrow::array::RecordBatch],
) -> Result<Response, ApiError> {
    let mut buffer = Vec::new();
    {
        let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut buffer, schema)
            .map_err(internal)?;
        for batch in batches {
            writer.write(batch).map_err(internal)?;
        }
        writer.finish().map_err(internal)?;
    }
    Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], buffer).into_response())
}

fn csv_response(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[datafusion::arrow::array::RecordBatch],
) -> Result<Response, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(schema.fields().iter().map(|f| f.name()))
        .map_err(internal)?;
    for batch in batches {
        let columns: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .map(|c| values::column_values(c.as_ref()))
            .collect::<Result<_, _>>()
            .map_err(internal)?;
        for row in 0..batch.num_rows() {
            writer
                .write_record(columns.iter().map(|c| match &c[row] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }))
                .map_err(internal)?;
        }
    }
    let bytes = writer.into_inner().map_err(internal)?;
    Ok(([(header::CONTENT_TYPE, "text/csv")], bytes).into_response())
}
