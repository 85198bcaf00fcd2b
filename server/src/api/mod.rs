//! The HTTP API (see design/HTTP.md): routes, error mapping, content negotiation and
//! metrics. Business rules live in the engine; handlers translate requests to engine calls.
//!
//! Every request passes [`auth::guard`] first: the browser-safety checks (Origin,
//! Sec-Fetch-Site), then the caller's token or console session and the role the route
//! needs (see [`crate::auth`]).
//!
//! Start-up: the server listens before recovery finishes so `/healthz` answers at once;
//! until the engine is set, `/readyz` and every `/v1` route answer 503.

pub mod auth;
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
    /// Tokens and console sessions (shared with the other listeners).
    auth: Arc<crate::auth::Auth>,
    /// Allowed origins, public metrics, TLS.
    security: auth::HttpSecurity,
}

/// How to build an [`ApiState`]; `Default` is an open server on loopback.
#[derive(Default)]
pub struct ApiOptions {
    pub body_limit: usize,
    /// Serve the console from this directory instead of the embedded copy.
    pub console_dir: Option<std::path::PathBuf>,
    pub auth: Option<Arc<crate::auth::Auth>>,
    pub security: auth::HttpSecurity,
}

impl ApiState {
    pub fn new(body_limit: usize) -> Self {
        ApiState::configured(ApiOptions {
            body_limit,
            ..Default::default()
        })
    }

    pub fn configured(options: ApiOptions) -> Self {
        ApiState {
            inner: Arc::new(Inner {
                engine: OnceLock::new(),
                body_limit: options.body_limit,
                metrics: Default::default(),
                console_dir: options.console_dir,
                push: Default::default(),
                auth: options
                    .auth
                    .unwrap_or_else(|| Arc::new(crate::auth::Auth::off())),
                security: options.security,
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
    let router = Router::new()
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
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/me", get(auth::me))
        .fallback(console::serve)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard));
    let router = match cors(&state.inner.security.allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
        .with_state(state)
}

/// CORS answers for the `--allowed-origins`, and none for anyone else.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("last-event-id"),
            ])
            .allow_credentials(true),
    )
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
pub async fn serve<L>(
    listener: L,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
