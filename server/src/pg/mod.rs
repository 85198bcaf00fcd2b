//! The PostgreSQL wire protocol listener (`--pg-listen`): psql, drivers (psycopg,
//! pgjdbc, ...) and BI tools talk to the same engine as the HTTP API. `pgwire` speaks the
//! protocol; `arrow-pg` turns Arrow columns into Postgres values (text and binary); the
//! engine's `pg_catalog` answers the catalog queries clients send when they connect.
//!
//! What reaches the engine and what is answered here:
//! - every statement of Weir's dialect runs through [`Engine::execute_sql`] exactly as
//!   over HTTP, with the same results and messages; errors carry a SQLSTATE
//!   ([`errors`]) and the position of the failing statement (or token) in the text;
//! - session statements are answered here: `SET` (kept per connection), `SHOW name`,
//!   `BEGIN` / `COMMIT` / `ROLLBACK` (accepted; Weir has no transactions: every statement
//!   takes effect when it succeeds), `RESET`, `DISCARD`, `DEALLOCATE`;
//! - catalog queries (naming `pg_catalog`, `pg_*` tables, `information_schema`, ...) are
//!   rewritten for DataFusion by `datafusion-pg-catalog`'s parser first;
//! - `COPY (SELECT ... [EMIT CHANGES]) TO STDOUT` streams a push query's rows (with its
//!   `_op` column) to the client until the client cancels (Ctrl-C in psql); without EMIT
//!   it copies a bounded query's rows.
//!
//! The extended protocol (Parse / Bind / Describe / Execute) takes `$n` parameters in
//! queries and INSERTs, with types inferred by DataFusion or given by the client, and
//! results in text or binary per column.

mod encode;
mod errors;
mod handler;
mod params;
mod session;
mod split;

use std::sync::Arc;

use pgwire::api::PgWireServerHandlers;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ConnectionManager, auth::StartupHandler};

use crate::engine::Engine;
pub use handler::PgService;

/// The handlers of every connection.
struct Handlers {
    service: Arc<PgService>,
    startup: Arc<handler::Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// What the Postgres listener enforces.
pub struct PgOptions {
    pub auth: Arc<crate::auth::Auth>,
    /// TLS for clients that ask for it (`sslmode=require`); without it they are told no.
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
    /// Refuse clients that did not ask for TLS (set whenever `tls` is).
    pub require_tls: bool,
    pub limit: crate::net::ConnectionLimit,
}

impl PgOptions {
    /// No authentication, no TLS, the default connection cap (tests, embedding).
    pub fn open() -> PgOptions {
        PgOptions {
            auth: Arc::new(crate::auth::Auth::off()),
            tls: None,
            require_tls: false,
            limit: crate::net::ConnectionLimit::new("postgres", 4096),
        }
    }
}

/// Serves Postgres clients on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, engine: Arc<Engine>, options: PgOptions) {
    let connections = Arc::new(ConnectionManager::new());
    let handlers = Arc::new(Handlers {
        service: Arc::new(PgService::new(engine)),
        startup: Arc::new(handler::Startup::new(
            connections.clone(),
            options.auth,
            options.require_tls,
        )),
        cancel: Arc::new(DefaultCancelHandler::new(connections)),
    });
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("postgres listener: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(permit) = options.limit.admit(peer) else {
            continue;
        };
        let (handlers, tls) = (handlers.clone(), options.tls.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                tracing::debug!(%peer, "postgres connection ended: {e}");
            }
        });
    }
}
