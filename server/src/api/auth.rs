//! Guarding the HTTP API: the browser-safety checks on `Origin` / `Sec-Fetch-Site`, who
//! the caller is (`Authorization: Bearer`, or the console's session cookie) and whether
//! their role allows the route; and the console's login routes:
//!
//! - `POST /v1/auth/login` `{"token": "..."}` → the caller's name and role, and a
//!   `weir_session` cookie (HttpOnly, SameSite=Strict, Secure over TLS);
//! - `POST /v1/auth/logout` ends the session;
//! - `GET /v1/auth/me` → `{"auth_required", "authenticated", "name"?, "role"?}`.
//!
//! Open without credentials: `/healthz`, `/readyz`, `/v1/openapi.json`, `/v1/auth/*`,
//! the console's static files (the data they show comes from `/v1`), and `/metrics`
//! with `--metrics-public`. `POST /v1/sql` needs a token of any role here; each
//! statement is then checked against the role by the engine.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, ApiState};
use crate::auth::{Denied, Principal, Role, now_ms, sessions::COOKIE};

/// What the HTTP listener adds to the shared [`crate::auth::Auth`].
#[derive(Debug, Clone, Default)]
pub struct HttpSecurity {
    /// Origins (`https://dash.example.com`) whose pages may call the API: they pass the
    /// Origin check and get CORS answers.
    pub allowed_origins: Vec<String>,
    /// `/metrics` without a token.
    pub metrics_public: bool,
    /// Served over TLS: cookies are `Secure`.
    pub tls: bool,
    /// Listening on loopback only: then, without tokens, requests must name a loopback
    /// host, so that a web page cannot rebind its own domain to 127.0.0.1 and reach Weir.
    pub loopback_only: bool,
}

/// Refuses a request whose `Host` is not a loopback name on a server that relies on
/// listening on loopback (no tokens): DNS rebinding makes a page's own domain resolve
/// to 127.0.0.1, and the browser then sends that domain as the Host.
fn check_host(
    request: &Request,
    security: &HttpSecurity,
    auth_enabled: bool,
) -> Result<(), ApiError> {
    if auth_enabled || !security.loopback_only {
        return Ok(());
    }
    let Some(host) = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(()); // HTTP/1.0 without Host: not a browser
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let allowed = security.allowed_origins.iter().any(|o| {
        o.split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    });
    if loopback || allowed {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden_host",
        format!(
            "a request for host {host:?} reached this Weir, which listens on loopback without \
             a token; open it as http://127.0.0.1:PORT or http://localhost:PORT (a web page \
             may be rebinding its domain to this machine), or give Weir --auth-token"
        ),
    ))
}

/// The Content-Security-Policy of the console's pages: its own scripts, styles and API
/// only; no framing, no plugins, no inline script.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The role a route needs; `None` for the open ones.
fn required_role(
    method: &Method,
    path: &str,
    security: &HttpSecurity,
) -> Option<(Role, &'static str)> {
    match path {
        "/healthz" | "/readyz" | "/v1/openapi.json" => return None,
        "/metrics" if security.metrics_public => return None,
        "/metrics" => return Some((Role::Read, "reading /metrics")),
        _ => {}
    }
    if path.starts_with("/v1/auth/") {
        return None;
    }
    if !path.starts_with("/v1/") {
        return None; // the console's files
    }
    if *method == Method::GET || *method == Method::HEAD {
        return Some((Role::Read, "reading"));
    }
    if path == "/v1/sql" {
        return Some((Role::Read, "running SQL")); // each statement is checked as it runs
    }
    if path.starts_with("/v1/streams/") && path.ends_with("/records") {
        return Some((Role::Write, "ingesting records"));
    }
    if path.starts_with("/v1/dashboards/") {
        return Some((Role::Write, "changing dashboards"));
    }
    Some((Role::Admin, "this request"))
}

/// The session cookie's ticket, if the request carries one.
fn session_ticket(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who sent the request: a bearer token first, else the console's session.
pub fn principal(state: &ApiState, headers: &HeaderMap) -> Result<Principal, Denied> {
    let auth = &state.inner.auth;
    if !auth.is_enabled() {
        return Ok(Principal::anonymous());
    }
    if let Some(token) = bearer(headers) {
        return auth.check_secret(Some(token));
    }
    if let Some(ticket) = session_ticket(headers) {
        return auth.sessions.check(ticket, &auth.tokens, now_ms());
    }
    auth.check_secret(None)
}

/// Refuses a state-changing request that a page of another site sent (a cross-origin
/// form POST, a fetch from a page the user happened to open), unless its origin is one
/// of `--allowed-origins`.
fn check_origin(request: &Request, security: &HttpSecurity) -> Result<(), ApiError> {
    let method = request.method();
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let headers = request.headers();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let allowed = |o: &str| {
        security
            .allowed_origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(o))
    };
    if let Some(origin) = origin {
        if allowed(origin) {
            return Ok(());
        }
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let same = host.is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        });
        if !same {
            return Err(forbidden_origin(origin));
        }
    }
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site == Some("cross-site") && !origin.is_some_and(allowed) {
        return Err(forbidden_origin(origin.unwrap_or("(another site)")));
    }
    Ok(())
}

fn forbidden_origin(origin: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden_origin",
        format!(
            "a page from {origin} may not change this Weir (a cross-site request); if that \
             site is yours, list it with --allowed-origins {origin}"
        ),
    )
}

/// The middleware in front of every route.
pub async fn guard(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let security = &state.inner.security;
    if let Err(e) = check_host(&request, security, state.inner.auth.is_enabled())
        .and_then(|()| check_origin(&request, security))
    {
        return e.into_response();
    }
    let Some((needed, action)) = required_role(request.method(), request.uri().path(), security)
    else {
        return next.run(request).await;
    };
    let principal = match principal(&state, request.headers()) {
        Ok(p) => p,
        Err(denied) => return ApiError::denied(denied).into_response(),
    };
    if let Err(denied) = principal.require(needed, action) {
        return ApiError::denied(denied).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

fn cookie(value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .expect("a cookie of hex and ASCII")
}

pub async fn login(State(state): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    struct Login {
        token: String,
    }
    let login: Login = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"token\": \"...\"}}: {e}")))?;
    let auth = &state.inner.auth;
    if !auth.is_enabled() {
        return Ok(
            Json(json!({"name": "anonymous", "role": "admin", "auth_required": false}))
                .into_response(),
        );
    }
    let principal = auth
        .check_secret(Some(login.token.trim()))
        .map_err(ApiError::denied)?;
    let ticket = auth.sessions.open(&principal, now_ms());
    tracing::info!(token = %principal.name, "console login");
    let mut response = Json(json!({
        "name": principal.name,
        "role": principal.role,
        "auth_required": true,
    }))
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(
            &ticket,
            crate::auth::sessions::SESSION_MS / 1000,
            state.inner.security.tls,
        ),
    );
    Ok(response)
}

pub async fn logout(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(ticket) = session_ticket(&headers) {
        state.inner.auth.sessions.close(ticket);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, state.inner.security.tls));
    response
}

pub async fn me(State(state): State<ApiState>, headers: HeaderMap) -> Json<serde_json::Value> {
    let required = state.inner.auth.is_enabled();
    match principal(&state, &headers) {
        Ok(p) => Json(json!({
            "auth_required": required,
            "authenticated": true,
            "name": p.name,
            "role": p.role,
        })),
        Err(_) => Json(json!({"auth_required": required, "authenticated": false})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_role_of_what_they_do() {
        let s = HttpSecurity::default();
        let role = |m: Method, p: &str| required_role(&m, p, &s).map(|(r, _)| r);
        assert_eq!(role(Method::GET, "/healthz"), None);
        assert_eq!(role(Method::GET, "/"), None);
        assert_eq!(role(Method::GET, "/metrics"), Some(Role::Read));
        assert_eq!(role(Method::GET, "/v1/streams"), Some(Role::Read));
        assert_eq!(role(Method::POST, "/v1/sql"), Some(Role::Read));
        assert_eq!(
            role(Method::POST, "/v1/streams/s/records"),
            Some(Role::Write)
        );
        assert_eq!(role(Method::DELETE, "/v1/queries/3"), Some(Role::Admin));
        let open = HttpSecurity {
            metrics_public: true,
            ..Default::default()
        };
        assert_eq!(required_role(&Method::GET, "/metrics", &open), None);
    }
}
