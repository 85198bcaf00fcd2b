//! `/v1/queries` and `/v1/views`: the running continuous queries with their plan and
//! live figures, and the materialized views with their current rows.

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, ApiState, values};
use crate::catalog::QueryKind;
use crate::engine::Error;
use crate::runtime::{OperatorReport, RunningQuery};
use crate::types::sql_type_name;

fn kind(kind: QueryKind) -> &'static str {
    match kind {
        QueryKind::Stream => "stream",
        QueryKind::MaterializedView => "materialized_view",
    }
}

fn timestamp_text(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.f")
        .to_string()
}

/// The plan as a graph, source first: one node per operator with its live figures,
/// edges between neighbours.
fn plan_graph(query: &RunningQuery, reports: &[OperatorReport], rate: f64) -> Value {
    let mut labels: Vec<String> = query.plan.operators.iter().rev().cloned().collect();
    labels.push(match query.def.kind {
        QueryKind::Stream => format!("Sink: stream {}", query.def.name),
        QueryKind::MaterializedView => format!("Sink: materialized view {}", query.def.name),
    });
    let m = &query.metrics;
    let rows_in = m.rows_in.load(Ordering::Relaxed);
    let rows_out = m.rows_out.load(Ordering::Relaxed);
    let nodes: Vec<Value> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let kind = label.split(':').next().unwrap_or("").to_lowercase();
            let mut node = json!({"id": i, "kind": kind, "label": label});
            match kind.as_str() {
                "source" => {
                    node["rows_out"] = json!(rows_in);
                    node["rows_per_second"] = json!(rate);
                }
                "aggregate" => {
                    node["rows_in"] = json!(m.aggregate_rows_in.load(Ordering::Relaxed));
                    node["state_rows"] = json!(reports.iter().map(|r| r.state_rows).sum::<u64>());
                    node["state_bytes"] = json!(reports.iter().map(|r| r.state_bytes).sum::<u64>());
                    node["late_rows"] = json!(m.late_rows.load(Ordering::Relaxed));
                    node["parallelism"] = json!(reports.len());
                }
                "sink" => node["rows_in"] = json!(rows_out),
                _ => {}
            }
            node
        })
        .collect();
    let edges: Vec<Value> = (1..labels.len())
        .map(|i| json!({"from": i - 1, "to": i}))
        .collect();
    json!({"nodes": nodes, "edges": edges})
}

fn query_json(query: &RunningQuery, detail: bool) -> Value {
    let watermark = query.watermark_ns.load(Ordering::Relaxed);
    let watermark = (watermark != i64::MIN).then(|| timestamp_text(watermark));
    let reports = query.reports();
    let rate = query.metrics.rows_per_second(query.started);
    let source = &query.plan.source;
    let progress: Vec<Value> = query
        .progress()
        .iter()
        .zip(source.partitions())
        .enumerate()
        .map(|(p, (done, log))| {
            // Every operator follows every partition's event time; take the furthest.
            let watermark = reports
                .iter()
                .filter_map(|r| r.partitions.get(p).and_then(|(w, _)| *w))
                .max()
                .map(timestamp_text);
            let idle = reports
                .first()
                .and_then(|r| r.partitions.get(p))
                .is_some_and(|(_, idle)| *idle);
            json!({"partition": p, "processed_offset": done, "committed_offset": log.committed_offset(),
                   "lag": log.committed_offset().saturating_sub(*done),
                   "watermark": watermark, "idle": idle})
        })
        .collect();
    let mut v = json!({
        "id": query.def.name,
        "name": query.def.name,
        "kind": kind(query.def.kind),
        "sql": query.def.select,
        "source": query.def.source,
        "status": query.status(),
        "parallelism": query.parallelism(),
        "emit": if query.def.emit_changes { "changes" } else { "final" },
        "watermark": watermark,
        "rows_in": query.metrics.rows_in.load(Ordering::Relaxed),
        "rows_out": query.metrics.rows_out.load(Ordering::Relaxed),
        "rows_per_second": rate,
        "late_rows": query.metrics.late_rows.load(Ordering::Relaxed),
        "state_rows": query.state_rows(),
        "state_bytes": reports.iter().map(|r| r.state_bytes).sum::<u64>(),
        "lag": progress.iter().map(|p| p["lag"].as_u64().unwrap_or(0)).sum::<u64>(),
        "created_at_ms": query.def.created_at_ms,
        "input_lost_rows": query.metrics.input_lost_rows.load(Ordering::Relaxed),
        "last_checkpoint": query.last_checkpoint().map(|(epoch, took_ms, at_ms)| {
            json!({"epoch": epoch, "duration_ms": took_ms, "committed_at_ms": at_ms})
        }),
    });
    if detail {
        let mut open = std::collections::BTreeMap::<i64, u64>::new();
        for report in &reports {
            for (end, groups) in &report.open_windows {
                *open.entry(*end).or_default() += groups;
            }
        }
        let open_windows: Vec<Value> = open
            .into_iter()
            .take(20)
            .map(|(end, groups)| json!({"window_end": timestamp_text(end), "groups": groups}))
            .collect();
        v["plan"] = plan_graph(query, &reports, rate);
        v["progress"] = json!(progress);
        v["open_windows"] = json!(open_windows);
    }
    v
}

fn find(state: &ApiState, id: &str) -> Result<std::sync::Arc<RunningQuery>, ApiError> {
    state
        .engine()?
        .queries()
        .into_iter()
        .find(|q| q.def.name == id || q.def.id.to_string() == id)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "unknown query \"{id}\"; GET /v1/queries lists them"
            ))
            .into()
        })
}

pub async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let queries: Vec<Value> = state
        .engine()?
        .queries()
        .iter()
        .map(|q| query_json(q, false))
        .collect();
    Ok(axum::Json(json!({ "queries": queries })).into_response())
}

pub async fn get_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let query = find(&state, &id)?;
    Ok(axum::Json(query_json(&query, true)).into_response())
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let name = find(&state, &id)?.def.name.clone();
    let kind = state.engine()?.stop_query(&name).await?;
    Ok(
        axum::Json(json!({"id": name, "kind": self::kind(kind), "status": "stopped"}))
            .into_response(),
    )
}

fn view_json(state: &ApiState, name: &str, with_rows: bool) -> Result<Value, ApiError> {
    let engine = state.engine()?;
    let view = engine.view(name).ok_or_else(|| {
        Error::NotFound(format!(
            "unknown materialized view \"{name}\"; GET /v1/views lists them"
        ))
    })?;
    let columns: Vec<Value> = view
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": sql_type_name(f.data_type())}))
        .collect();
    let sql = engine
        .queries()
        .into_iter()
        .find(|q| q.def.name == name)
        .map(|q| q.def.select.clone());
    let mut v = json!({"name": name, "sql": sql, "columns": columns, "row_count": view.rows()});
    if with_rows {
        let rows = values::rows(&view.batches()).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.to_string(),
            )
        })?;
        v["rows"] = json!(rows);
    }
    Ok(v)
}

pub async fn list_views(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let names = state.engine()?.view_names();
    let views = names
        .iter()
        .map(|n| view_json(&state, n, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(json!({ "views": views })).into_response())
}

pub async fn get_view(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(view_json(&state, &name, true)?).into_response())
}
