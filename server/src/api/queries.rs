//! `/v1/queries` and `/v1/views`: the running continuous queries with their plan and
//! live figures, and the materialized views with their current rows.

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, ApiState, values};
use crate::catalog::QueryKind;
use crate::engine::Error;
use crate::operators::Figures;
use crate::planner::NodeKind;
use crate::runtime::RunningQuery;
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

/// The plan as a graph, inputs first: one node per plan node with its live figures
/// (stateful nodes summed over their instances), an edge from each input.
fn plan_graph(query: &RunningQuery, rate: f64) -> Value {
    let m = &query.metrics;
    let figures: std::collections::HashMap<usize, Vec<Figures>> =
        query.node_figures().into_iter().collect();
    let reader_rows = query.reader_rows();
    let nodes: Vec<Value> = query
        .plan
        .nodes
        .iter()
        .map(|n| {
            let label = match n.kind {
                NodeKind::Sink => match query.def.kind {
                    QueryKind::Stream => format!("Sink: stream {}", query.def.name),
                    QueryKind::MaterializedView => {
                        format!("Sink: materialized view {}", query.def.name)
                    }
                },
                _ => n.label.clone(),
            };
            let mut node =
                json!({"id": n.id, "kind": n.kind_name(), "label": label, "inputs": n.inputs});
            match &n.kind {
                NodeKind::Source { stream, .. } => {
                    let rows: u64 = query
                        .sources()
                        .iter()
                        .zip(&reader_rows)
                        .filter(|(s, _)| s.stream.name() == stream.name())
                        .map(|(_, rows)| *rows)
                        .sum();
                    node["rows_out"] = json!(rows);
                    node["rows_per_second"] = json!(match query.sources().len() {
                        1 => rate,
                        _ => rate * rows as f64 / m.rows_in.load(Ordering::Relaxed).max(1) as f64,
                    });
                }
                NodeKind::Stateful(_) => {
                    let f = figures.get(&n.id).map(Vec::as_slice).unwrap_or_default();
                    node["rows_in"] = json!(f.iter().map(|f| f.rows_in).sum::<u64>());
                    node["rows_out"] = json!(f.iter().map(|f| f.rows_out).sum::<u64>());
                    node["state_rows"] = json!(f.iter().map(|f| f.state_rows).sum::<u64>());
                    node["state_bytes"] = json!(f.iter().map(|f| f.state_bytes).sum::<u64>());
                    node["late_rows"] = json!(f.iter().map(|f| f.late_rows).sum::<u64>());
                    node["parallelism"] = json!(f.len());
                    let watermark = f.iter().map(|f| f.watermark).collect::<Option<Vec<_>>>();
                    node["watermark"] = json!(
                        watermark
                            .and_then(|w| w.into_iter().min())
                            .map(timestamp_text)
                    );
                }
                NodeKind::Sink => node["rows_in"] = json!(m.rows_out.load(Ordering::Relaxed)),
                _ => {}
            }
            node
        })
        .collect();
    let edges: Vec<Value> = query
        .plan
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().map(|&i| json!({"from": i, "to": n.id})))
        .collect();
    json!({"nodes": nodes, "edges": edges})
}

fn query_json(query: &RunningQuery, detail: bool) -> Value {
    let watermark = query.watermark().map(timestamp_text);
    let rate = query.metrics.rows_per_second(query.started);
    let readers = query.reader_reports();
    let done = query.progress();
    let mut progress: Vec<Value> = Vec::new();
    for source in query.sources() {
        for (p, log) in source.stream.partitions().iter().enumerate() {
            let slot = source.first + p;
            let (watermark, idle) = readers[slot];
            let done = done[slot];
            progress.push(json!({"stream": source.stream.name(), "partition": p,
                "processed_offset": done, "committed_offset": log.committed_offset(),
                "lag": log.committed_offset().saturating_sub(done),
                "watermark": watermark.map(timestamp_text), "idle": idle}));
        }
    }
    let mut v = json!({
        "id": query.def.name,
        "name": query.def.name,
        "kind": kind(query.def.kind),
        "sql": query.def.select,
        "source": query.def.source,
        "inputs": query.def.inputs(),
        "status": query.status(),
        "parallelism": query.parallelism(),
        "emit": if query.def.emit_changes { "changes" } else { "final" },
        "watermark": watermark,
        "rows_in": query.metrics.rows_in.load(Ordering::Relaxed),
        "rows_out": query.metrics.rows_out.load(Ordering::Relaxed),
        "rows_per_second": rate,
        "late_rows": query.metrics.late_rows.load(Ordering::Relaxed),
        "state_rows": query.state_rows(),
        "state_bytes": query.state_bytes(),
        "lag": progress.iter().map(|p| p["lag"].as_u64().unwrap_or(0)).sum::<u64>(),
        "created_at_ms": query.def.created_at_ms,
        "input_lost_rows": query.metrics.input_lost_rows.load(Ordering::Relaxed),
        "last_checkpoint": query.last_checkpoint().map(|(epoch, took_ms, at_ms)| {
            json!({"epoch": epoch, "duration_ms": took_ms, "committed_at_ms": at_ms})
        }),
    });
    if detail {
        let open_windows: Vec<Value> = query
            .open_windows()
            .into_iter()
            .map(|(end, groups)| json!({"window_end": timestamp_text(end), "groups": groups}))
            .collect();
        v["plan"] = plan_graph(query, rate);
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

/// A sink as `GET /v1/sinks` shows it.
fn sink_json(def: &crate::catalog::SinkDef, status: &crate::external::SinkStatus) -> Value {
    let spec = crate::connector::sink::SinkSpec::from_options(&def.name, &def.options).ok();
    json!({
        "name": def.name,
        "from": def.from,
        "connector": spec.as_ref().map_or("?", |s| s.connector()),
        "target": spec.as_ref().map(|s| s.target()).unwrap_or_default(),
        "state": status.state,
        "error": status.error,
        "rows": status.rows,
        "lag": status.lag,
        "epoch": status.epoch,
        "positions": status.positions,
        "created_at_ms": def.created_at_ms,
    })
}

/// `GET /v1/sinks`
pub async fn list_sinks(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let sinks: Vec<Value> = state
        .engine()?
        .sinks()
        .await
        .iter()
        .map(|(def, status)| sink_json(def, status))
        .collect();
    Ok(axum::Json(json!({ "sinks": sinks })).into_response())
}

/// `GET /v1/sinks/{name}`
pub async fn get_sink(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let sinks = state.engine()?.sinks().await;
    let (def, status) = sinks.iter().find(|(d, _)| d.name == name).ok_or_else(|| {
        Error::NotFound(format!("unknown sink \"{name}\"; GET /v1/sinks lists them"))
    })?;
    Ok(axum::Json(sink_json(def, status)).into_response())
}
