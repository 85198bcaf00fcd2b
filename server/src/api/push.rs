//! `GET /v1/sql/stream?sql=...`: push queries over Server-Sent Events (design/HTTP.md).
//! The query runs from the current end of its input; the client gets `event: ready`
//! with the columns, then `event: rows` per result batch and `event: watermark` when
//! the query's watermark moves, each with an increasing `id`; `event: error` ends it.
//!
//! Memory stays bounded: results wait in a channel of [`BUFFER`] batches; a client that
//! falls further behind gets an `error` event and is disconnected. The query stops
//! when the client goes away (the response stream is dropped).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::json;

use super::{ApiError, ApiState, values};
use crate::runtime::RunningQuery;
use crate::types::sql_type_name;

/// Result batches a subscriber may have waiting before it is disconnected.
pub const BUFFER: usize = 64;

/// Stops the push query when the response stream is dropped (client gone).
struct StopOnDrop(Arc<RunningQuery>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

struct Push {
    query: StopOnDrop,
    rx: tokio::sync::mpsc::Receiver<datafusion::arrow::array::RecordBatch>,
    next_id: u64,
    ready: Option<Event>,
    watermark: i64,
    ticker: tokio::time::Interval,
    done: bool,
}

fn watermark_text(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.f")
        .to_string()
}

/// A `rows` event's data: `{"rows": [...]}`, plus `"ops": ["+", "-", ...]` when the
/// query emits changes (the `_op` column, taken out of the rows).
fn rows_event(
    batch: &datafusion::arrow::array::RecordBatch,
) -> Result<serde_json::Value, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::AsArray;
    let schema = batch.schema();
    match schema.index_of(crate::runtime::OP_COLUMN) {
        Ok(i) if i + 1 == batch.num_columns() => {
            let ops: Vec<&str> = batch
                .column(i)
                .as_string::<i32>()
                .iter()
                .map(|o| o.unwrap_or("+"))
                .collect();
            let rows = values::rows(std::slice::from_ref(
                &batch.project(&(0..i).collect::<Vec<_>>())?,
            ))?;
            Ok(json!({"rows": rows, "ops": ops}))
        }
        _ => Ok(json!({"rows": values::rows(std::slice::from_ref(batch))?})),
    }
}

pub async fn stream(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let engine = state.engine()?;
    let sql = params.get("sql").ok_or_else(|| {
        ApiError::bad_request("give the push query as ?sql=SELECT ... (URL-encoded)")
    })?;
    let (select, emit) = crate::sql::strip_emit(sql);
    let (query, rx) = engine.start_push_query(&select, emit, BUFFER).await?;
    let columns: Vec<_> = query
        .plan
        .output_schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": sql_type_name(f.data_type())}))
        .collect();
    let ready = Event::default()
        .event("ready")
        .id("0")
        .data(json!({"query": query.def.name, "columns": columns}).to_string());
    let push = Push {
        query: StopOnDrop(query),
        rx,
        next_id: 1,
        ready: Some(ready),
        watermark: i64::MIN,
        ticker: tokio::time::interval(Duration::from_millis(200)),
        done: false,
    };
    let events = futures::stream::unfold(push, |mut push| async move {
        if let Some(ready) = push.ready.take() {
            return Some((Ok(ready), push));
        }
        if push.done {
            return None;
        }
        loop {
            tokio::select! {
                batch = push.rx.recv() => {
                    let id = push.next_id.to_string();
                    push.next_id += 1;
                    let event = match batch {
                        Some(batch) => match rows_event(&batch) {
                            Ok(data) => Event::default().event("rows").id(id).data(data.to_string()),
                            Err(e) => {
                                push.done = true;
                                Event::default().event("error").id(id).data(json!({"message": e.to_string()}).to_string())
                            }
                        },
                        None => {
                            push.done = true;
                            let status = push.query.0.status();
                            let message = status.strip_prefix("failed: ").unwrap_or(&status).to_string();
                            Event::default().event("error").id(id).data(json!({"message": message}).to_string())
                        }
                    };
                    return Some((Ok(event), push));
                }
                _ = push.ticker.tick() => {
                    let status = push.query.0.status();
                    if let Some(message) = status.strip_prefix("failed: ") {
                        push.done = true;
                        let id = push.next_id.to_string();
                        let event = Event::default().event("error").id(id).data(json!({"message": message}).to_string());
                        return Some((Ok(event), push));
                    }
                    let w = push.query.0.watermark_ns.load(Ordering::Relaxed);
                    if w != push.watermark && w != i64::MIN {
                        push.watermark = w;
                        let id = push.next_id.to_string();
                        push.next_id += 1;
                        let event = Event::default().event("watermark").id(id).data(json!({"watermark": watermark_text(w)}).to_string());
                        return Some((Ok(event), push));
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
