//! `GET /v1/sql/stream?sql=...`: push queries over Server-Sent Events (design/HTTP.md).
//! The query runs from the current end of its input; the client gets `event: ready`
//! with the columns, then `event: rows` per result batch and `event: watermark` when
//! the query's watermark moves; `event: error` ends it.
//!
//! Resume: every event has an id `<push id>:<n>`. A client that loses its connection
//! reconnects with the `Last-Event-ID` header (browsers' EventSource does so by
//! itself) within [`RESUME_GRACE`]; the push query kept running meanwhile, and the
//! client gets the events after the one it saw (the last [`HISTORY`] events are kept
//! for this), then the live ones. Later, or with an unknown id, the query is gone and
//! the client gets a 404 (EventSource then stops).
//!
//! Memory stays bounded: results wait in a channel of [`BUFFER`] batches; a client that
//! falls further behind (or stays away) gets an `error` event and is disconnected.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use parking_lot::Mutex;
use serde_json::json;

use super::{ApiError, ApiState, values};
use crate::runtime::RunningQuery;
use crate::types::sql_type_name;

/// Result batches a subscriber may have waiting before it is disconnected.
pub const BUFFER: usize = 64;
/// Events kept for a reconnecting client.
pub const HISTORY: usize = 256;
/// How long a push query waits for its client to come back.
pub const RESUME_GRACE: Duration = Duration::from_secs(30);

/// A push query and what its client has been sent.
pub struct PushSession {
    id: String,
    query: Arc<RunningQuery>,
    /// Held by the connection currently streaming (at most one).
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<datafusion::arrow::array::RecordBatch>>>,
    state: Mutex<SessionState>,
}

struct SessionState {
    next: u64,
    /// The last events sent: (n, event name, data).
    history: VecDeque<(u64, &'static str, String)>,
    watermark: i64,
    done: bool,
    /// Bumped when a connection detaches; a reaper stops the query if no one came back.
    detached: u64,
}

/// The push sessions of the server, by id.
#[derive(Default)]
pub struct PushSessions {
    sessions: Mutex<HashMap<String, Arc<PushSession>>>,
}

impl PushSession {
    /// Records an event for resumption and returns it.
    fn event(&self, name: &'static str, data: String) -> Event {
        let mut state = self.state.lock();
        let n = state.next;
        state.next += 1;
        if state.history.len() == HISTORY {
            state.history.pop_front();
        }
        state.history.push_back((n, name, data.clone()));
        Event::default()
            .event(name)
            .id(format!("{}:{n}", self.id))
            .data(data)
    }
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

/// Marks the session detached when its connection's stream is dropped, and stops the
/// query if nobody resumes within the grace period.
struct Detach {
    session: Arc<PushSession>,
    sessions: ApiState,
}

impl Drop for Detach {
    fn drop(&mut self) {
        let ticket = {
            let mut state = self.session.state.lock();
            state.detached += 1;
            state.detached
        };
        let (session, api) = (self.session.clone(), self.sessions.clone());
        let done = session.state.lock().done;
        let grace = if done { Duration::ZERO } else { RESUME_GRACE };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                tokio::time::sleep(grace).await;
                // Still the same detachment, and the connection's lock is free: nobody came back.
                let gone = session.state.lock().detached == ticket && session.rx.try_lock().is_ok();
                if gone {
                    session.query.stop();
                    api.inner.push.sessions.lock().remove(&session.id);
                }
            });
        } else {
            session.query.stop();
        }
    }
}

struct Connection {
    _detach: Detach,
    session: Arc<PushSession>,
    rx: tokio::sync::OwnedMutexGuard<
        tokio::sync::mpsc::Receiver<datafusion::arrow::array::RecordBatch>,
    >,
    /// Events to send first (ready, or the ones a resuming client missed).
    pending: VecDeque<Event>,
    ticker: tokio::time::Interval,
}

pub async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let engine = state.engine()?;
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| params.get("last_event_id").cloned());
    let (session, pending) = match last_event {
        Some(last) => resume(&state, &last)?,
        None => {
            let sql = params.get("sql").ok_or_else(|| {
                ApiError::bad_request("give the push query as ?sql=SELECT ... (URL-encoded)")
            })?;
            let (select, emit) = crate::sql::strip_emit(sql);
            let (query, rx) = engine.start_push_query(&select, emit, BUFFER).await?;
            let session = Arc::new(PushSession {
                id: query.def.id.to_string(),
                query: query.clone(),
                rx: Arc::new(tokio::sync::Mutex::new(rx)),
                state: Mutex::new(SessionState {
                    next: 0,
                    history: VecDeque::new(),
                    watermark: i64::MIN,
                    done: false,
                    detached: 0,
                }),
            });
            let columns: Vec<_> = query
                .plan
                .output_schema
                .fields()
                .iter()
                .filter(|f| f.name() != crate::runtime::OP_COLUMN)
                .map(|f| json!({"name": f.name(), "type": sql_type_name(f.data_type())}))
                .collect();
            let ready = session.event(
                "ready",
                json!({"query": query.def.name, "columns": columns}).to_string(),
            );
            state
                .inner
                .push
                .sessions
                .lock()
                .insert(session.id.clone(), session.clone());
            (session, VecDeque::from([ready]))
        }
    };
    let rx = session.rx.clone().lock_owned().await;
    let connection = Connection {
        _detach: Detach {
            session: session.clone(),
            sessions: state.clone(),
        },
        session,
        rx,
        pending,
        ticker: tokio::time::interval(Duration::from_millis(200)),
    };
    let events = futures::stream::unfold(connection, |mut c| async move {
        if let Some(event) = c.pending.pop_front() {
            return Some((Ok(event), c));
        }
        if c.session.state.lock().done {
            return None;
        }
        loop {
            tokio::select! {
                batch = c.rx.recv() => {
                    let event = match batch {
                        Some(batch) => match rows_event(&batch) {
                            Ok(data) => c.session.event("rows", data.to_string()),
                            Err(e) => {
                                c.session.state.lock().done = true;
                                c.session.event("error", json!({"message": e.to_string()}).to_string())
                            }
                        },
                        None => {
                            c.session.state.lock().done = true;
                            let status = c.session.query.status();
                            let message = status.strip_prefix("failed: ").unwrap_or(&status).to_string();
                            c.session.event("error", json!({"message": message}).to_string())
                        }
                    };
                    return Some((Ok(event), c));
                }
                _ = c.ticker.tick() => {
                    let status = c.session.query.status();
                    if let Some(message) = status.strip_prefix("failed: ") {
                        c.session.state.lock().done = true;
                        let event = c.session.event("error", json!({"message": message}).to_string());
                        return Some((Ok(event), c));
                    }
                    let w = c.session.query.watermark().unwrap_or(i64::MIN);
                    let moved = {
                        let mut state = c.session.state.lock();
                        let moved = w != state.watermark && w != i64::MIN;
                        if moved {
                            state.watermark = w;
                        }
                        moved
                    };
                    if moved {
                        let event = c.session.event("watermark", json!({"watermark": watermark_text(w)}).to_string());
                        return Some((Ok(event), c));
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// A reconnecting client: the session of `last` (`<push id>:<n>`) and the events after n.
fn resume(state: &ApiState, last: &str) -> Result<(Arc<PushSession>, VecDeque<Event>), ApiError> {
    let gone = || {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "push query of event {last} is gone (it stops {} s after its client leaves); start it again",
                RESUME_GRACE.as_secs()
            ),
        )
    };
    let (id, n) = last.split_once(':').ok_or_else(gone)?;
    let n: u64 = n.parse().map_err(|_| gone())?;
    let session = state
        .inner
        .push
        .sessions
        .lock()
        .get(id)
        .cloned()
        .ok_or_else(gone)?;
    let history = session.state.lock().history.clone();
    if history.front().is_some_and(|(first, _, _)| *first > n + 1) {
        return Err(ApiError::new(
            axum::http::StatusCode::GONE,
            "gone",
            format!(
                "cannot resume after event {last}: only the last {HISTORY} events are kept; start the query again"
            ),
        ));
    }
    let pending = history
        .into_iter()
        .filter(|(m, _, _)| *m > n)
        .map(|(m, name, data)| {
            Event::default()
                .event(name)
                .id(format!("{id}:{m}"))
                .data(data)
        })
        .collect();
    Ok((session, pending))
}
