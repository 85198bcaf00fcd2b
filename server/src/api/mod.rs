//! The HTTP API (see design/HTTP.md): routes, error mapping, content negotiation and
//! metrics. Business rules live in the engine; handlers translate requests to engine calls.
//!
//! Start-up: the server listens before recovery finishes so `/healthz` answers at once;
//! until the engine is set, `/readyz` and every `/v1` route answer 503.

mod console;
mod dashboards;
mod error;
mod health;
mod metrics;
mod push;
mod queries;
mod sql;
mod streams;
pub mod values;

pub use error::ApiError;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::engine::Engine;

/// Shared by every handler.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: OnceLock<Arc<Engine>>,
    body_limit: usize,
    metrics: metrics::HttpMetrics,
    /// Serve the console from this directory instead of the embedded copy.
    console_dir: Option<std::path::PathBuf>,
    /// Running push queries, for clients that reconnect.
    push: push::PushSessions,
}

impl ApiState {
    pub fn new(body_limit: usize) -> Self {
        ApiState {
            inner: Arc::new(Inner {
                engine: OnceLock::new(),
                body_limit,
                metrics: Default::default(),
                console_dir: None,
                push: Default::default(),
            }),
        }
    }

    /// Serves the console from `dir` (console development) rather than the embedded files.
    pub fn with_console_dir(body_limit: usize, dir: std::path::PathBuf) -> Self {
        ApiState {
            inner: Arc::new(Inner {
                engine: OnceLock::new(),
                body_limit,
                metrics: Default::default(),
                console_dir: Some(dir),
                push: Default::default(),
            }),
        }
    }

    /// A state whose engine is already open (tests, embedding).
    pub fn with_engine(engine: Arc<Engine>, body_limit: usize) -> Self {
        let state = ApiState::new(body_limit);
        state.set_engine(engine);
        state
    }

    /// Marks recovery done: from now on the API serves.
    pub fn set_engine(&self, engine: Arc<Engine>) {
        let _ = self.inner.engine.set(engine);
    }

    /// The engine, or 503 while Weir is still recovering.
    pub fn engine(&self) -> Result<&Arc<Engine>, ApiError> {
        self.inner
            .engine
            .get()
            .ok_or_else(|| ApiError::from(crate::engine::Error::NotReady))
    }
}

/// All routes. A plain function so tests can call it without a socket.
pub fn router(state: ApiState) -> Router {
    let body_limit = state.inner.body_limit;
    Router::new()
        .route("/v1/sql", post(sql::post_sql))
        .route("/v1/sql/stream", get(push::stream))
        .route("/v1/streams", get(streams::list))
        .route("/v1/streams/{name}", get(streams::get_one))
        .route(
            "/v1/streams/{name}/records",
            post(streams::ingest).get(streams::consume),
        )
        .route("/v1/queries", get(queries::list))
        .route(
            "/v1/queries/{id}",
            get(queries::get_one).delete(queries::delete),
        )
        .route("/v1/views", get(queries::list_views))
        .route("/v1/sinks", get(queries::list_sinks))
        .route("/v1/sinks/{name}", get(queries::get_sink))
        .route("/v1/views/{name}", get(queries::get_view))
        .route("/v1/dashboards", get(dashboards::list))
        .route(
            "/v1/dashboards/{id}",
            get(dashboards::get_one)
                .put(dashboards::put)
                .delete(dashboards::delete),
        )
        .route("/v1/openapi.json", get(health::openapi))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(console::serve)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
        .with_state(state)
}

/// Counts requests and their latency per route and status.
async fn record_request(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    state.inner.metrics.observe(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
