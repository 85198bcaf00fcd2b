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
    let engine = state.inner.engine.get();
    let streams = engine.map(|e| e.streams()).unwrap_or_default();
    let mut text = state.inner.metrics.render(&streams);
    if let Some(engine) = engine {
        text.push_str(&engine_metrics(engine));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Recovery time and per-query figures: late rows, lost input, checkpoints.
fn engine_metrics(engine: &crate::engine::Engine) -> String {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;
    let mut out = String::new();
    let recovery = engine.recovery_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    let _ = writeln!(
        out,
        "# HELP weir_recovery_seconds Time start-up recovery took (streams and queries)."
    );
    let _ = writeln!(out, "# TYPE weir_recovery_seconds gauge");
    let _ = writeln!(out, "weir_recovery_seconds {recovery}");
    let queries = engine.queries();
    let series: [(&str, &str, &dyn Fn(&crate::runtime::RunningQuery) -> u64); 4] = [
        (
            "weir_query_rows_in_total",
            "Rows a continuous query read.",
            &|q| q.metrics.rows_in.load(Ordering::Relaxed),
        ),
        (
            "weir_query_late_rows_total",
            "Late rows a continuous query dropped.",
            &|q| q.metrics.late_rows.load(Ordering::Relaxed),
        ),
        (
            "weir_query_input_lost_rows_total",
            "Input rows retention deleted before the query read them.",
            &|q| q.metrics.input_lost_rows.load(Ordering::Relaxed),
        ),
        (
            "weir_query_checkpoint_epoch",
            "Epoch of the query's last committed checkpoint.",
            &|q| q.last_checkpoint().map_or(0, |c| c.0),
        ),
    ];
    for (name, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for q in &queries {
            let _ = writeln!(out, "{name}{{query=\"{}\"}} {}", q.def.name, value(q));
        }
    }
    let sources: Vec<_> = engine
        .streams()
        .iter()
        .filter_map(|s| Some((s.name().to_string(), engine.source_status(s.name())?)))
        .collect();
    if !sources.is_empty() {
        let _ = writeln!(
            out,
            "# HELP weir_kafka_source_lag Records in the Kafka partition not yet in the stream (Kafka's end offset minus Weir's next offset).\n# TYPE weir_kafka_source_lag gauge"
        );
        for (stream, status) in &sources {
            for p in &status.partitions {
                if let Some(lag) = p.lag {
                    let _ = writeln!(
                        out,
                        "weir_kafka_source_lag{{stream=\"{stream}\",topic=\"{}\",partition=\"{}\"}} {lag}",
                        status.topic, p.kafka_partition
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP weir_kafka_source_dead_letters_total Records of a Kafka source that did not decode, sent to its dead-letter stream.\n# TYPE weir_kafka_source_dead_letters_total counter"
        );
        for (stream, status) in &sources {
            let _ = writeln!(
                out,
                "weir_kafka_source_dead_letters_total{{stream=\"{stream}\"}} {}",
                status.dead_letters
            );
        }
        let _ = writeln!(
            out,
            "# HELP weir_kafka_source_running 1 while a Kafka source reads, 0 when it is stopped or retrying.\n# TYPE weir_kafka_source_running gauge"
        );
        for (stream, status) in &sources {
            let _ = writeln!(
                out,
                "weir_kafka_source_running{{stream=\"{stream}\"}} {}",
                u8::from(status.state == "running")
            );
        }
    }
    out
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
