//! `/v1/streams`: list and describe streams, ingest records (answered only once durable),
//! and consume records from an offset up to the committed offset.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::sql::{ARROW_STREAM, arrow_response};
use super::{ApiError, ApiState, values};
use crate::engine::{Engine, unknown_stream_error};
use crate::ingest::{Format, decode};
use crate::stream::{Stream, table_schema};
use crate::types::sql_type_name;

pub async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let engine = state.engine()?;
    let streams: Vec<Value> = engine
        .streams()
        .iter()
        .map(|s| stream_json(s, engine))
        .collect();
    Ok(axum::Json(json!({ "streams": streams })).into_response())
}

pub async fn get_one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine()?;
    let stream = find(engine, &name)?;
    Ok(axum::Json(stream_json(&stream, engine)).into_response())
}

fn find(engine: &Engine, name: &str) -> Result<std::sync::Arc<Stream>, ApiError> {
    engine
        .stream(name)
        .ok_or_else(|| unknown_stream_error(name).into())
}

/// A stream's definition and live figures.
fn stream_json(stream: &Stream, engine: &Engine) -> Value {
    let def = &stream.def;
    let columns: Vec<Value> = stream
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": sql_type_name(f.data_type()), "nullable": f.is_nullable()}))
        .collect();
    let partitions: Vec<Value> = stream
        .partitions()
        .iter()
        .enumerate()
        .map(|(p, log)| {
            json!({
                "partition": p,
                "earliest_offset": log.earliest_offset(),
                "committed_offset": log.committed_offset(),
                "latest_offset": log.latest_offset(),
                "bytes": log.size_bytes(),
                "watermark": stream.partition_watermark(p).map(|ns| {
                    chrono::DateTime::from_timestamp_nanos(ns)
                        .naive_utc()
                        .format("%Y-%m-%dT%H:%M:%S%.f")
                        .to_string()
                }),
            })
        })
        .collect();
    json!({
        "name": def.name,
        "columns": columns,
        "partitions": partitions,
        "partition_count": def.partitions,
        "key": def.key,
        "watermark": def.watermark.as_ref().map(|w| json!({
            "column": w.column, "delay_ms": w.delay_ms, "expression": w.expression,
        })),
        "retention_ms": def.retention_ms,
        "retention_bytes": def.retention_bytes,
        "idle_timeout_ms": def.idle_timeout_ms,
        "rows": stream.retained_rows(),
        "bytes": stream.size_bytes(),
        "rows_ingested": stream.ingested_rows(),
        "created_at_ms": def.created_at_ms,
        // A Kafka source's reader: state, error, and per Kafka partition the next offset,
        // Kafka's end offset and the lag.
        "source": engine.source_status(&def.name),
    })
}

/// `POST /v1/streams/{name}/records`: the body is decoded whole (a bad row refuses all
/// of it), appended, and answered once fsynced.
pub async fn ingest(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let engine = state.engine()?.clone();
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "request body is larger than the limit of {} bytes; split it into smaller requests or raise --body-limit",
                    state.inner.body_limit
                ),
            )
        } else {
            ApiError::bad_request(format!("cannot read request body: {rejection}"))
        }
    })?;
    let stream = find(&engine, &name)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-ndjson");
    let header_row = params.get("header").is_none_or(|v| v != "false");
    let format = Format::from_content_type(content_type, header_row).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {content_type} is not supported; use application/x-ndjson, application/json, text/csv or {ARROW_STREAM}"
            ),
        )
    })?;
    let schema = stream.schema.clone();
    let batch = tokio::task::spawn_blocking(move || decode(&format, &body, &schema))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(crate::engine::Error::from)?;
    let result = engine.ingest(&name, batch).await?;
    Ok(axum::Json(result).into_response())
}

/// `GET /v1/streams/{name}/records?partition=&offset=&limit=`: records of one partition
/// from `offset` (default: earliest retained), at most `limit` (default 100, at most
/// 10000), never past the committed offset.
pub async fn consume(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let stream = find(state.engine()?, &name)?;
    let number = |key: &str| -> Result<Option<u64>, ApiError> {
        params
            .get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "{key} must be a non-negative integer, got {v:?}"
                    ))
                })
            })
            .transpose()
    };
    let partition = number("partition")?.unwrap_or(0);
    let Some(log) = stream.partitions().get(partition as usize).cloned() else {
        return Err(ApiError::bad_request(format!(
            "partition {partition} does not exist; {name} has partitions 0..{}",
            stream.partitions().len() - 1
        )));
    };
    let limit = number("limit")?.unwrap_or(100).min(10_000);
    let mut from = number("offset")?.unwrap_or(0).max(log.earliest_offset());
    if let Some(ts) = params.get("timestamp") {
        // The first offset ingested at or after `timestamp` (epoch ms or RFC 3339).
        let ms = ts
            .parse::<i64>()
            .ok()
            .or_else(|| chrono::DateTime::parse_from_rfc3339(ts).ok().map(|t| t.timestamp_millis()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "timestamp must be epoch milliseconds or RFC 3339 (2024-01-01T00:00:00Z), got {ts:?}"
                ))
            })?;
        let reader = log.clone();
        from = tokio::task::spawn_blocking(move || {
            let end = reader.committed_offset();
            reader
                .scan(reader.earliest_offset(), end, Some(vec![0]))
                .filter_map(|b| b.ok())
                .find(|b| b.ingest_time_ms >= ms)
                .map_or(end, |b| b.base_offset)
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    }
    let to = log.committed_offset().min(from.saturating_add(limit));
    let user_columns = stream.schema.fields().len();
    let batches = tokio::task::spawn_blocking(move || -> Result<Vec<_>, ApiError> {
        let mut out = Vec::new();
        for item in log.scan(from, to, None) {
            let b = item.map_err(|e| ApiError::from(crate::engine::Error::from(e)))?;
            let mut columns = b.batch.columns().to_vec();
            for m in 0..3 {
                columns.push(crate::stream::metadata_column(m, partition as u32, &b));
            }
            out.push(columns);
        }
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    let schema = table_schema(&stream.schema);
    let batches: Vec<_> = batches
        .into_iter()
        .map(|columns| datafusion::arrow::array::RecordBatch::try_new(schema.clone(), columns))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains(ARROW_STREAM) {
        return arrow_response(&schema, &batches);
    }
    let mut records = Vec::new();
    for batch in &batches {
        let rows = values::rows(std::slice::from_ref(batch)).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?;
        for row in rows {
            let Value::Array(cells) = row else { continue };
            let value: serde_json::Map<String, Value> = schema.fields()[..user_columns]
                .iter()
                .zip(&cells)
                .map(|(f, v)| (f.name().clone(), v.clone()))
                .collect();
            records.push(json!({
                "partition": partition,
                "offset": cells[user_columns + 1],
                "ingest_time": cells[user_columns + 2],
                "value": value,
            }));
        }
    }
    let next_offset = from + records.len() as u64;
    if accept.contains("application/x-ndjson") {
        let mut body = String::new();
        for record in &records {
            body.push_str(&record.to_string());
            body.push('\n');
        }
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
    }
    Ok(axum::Json(json!({
        "stream": name,
        "partition": partition,
        "records": records,
        "next_offset": next_offset,
        "committed_offset": stream.partitions()[partition as usize].committed_offset(),
    }))
    .into_response())
}
