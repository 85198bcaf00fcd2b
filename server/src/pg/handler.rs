//! The query handlers: the simple protocol (one text, several statements), the extended
//! protocol (Parse / Bind / Describe / Execute with `$n` parameters), push queries as
//! `COPY ... TO STDOUT`, and the startup handshake.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_ready_for_query};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionGuard, ConnectionHandle, ConnectionManager,
    PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyDone, CopyOutResponse};
use pgwire::messages::response::CommandComplete;
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::encode::{copy_rows, result_response, single_text};
use super::errors::{error_info, pg_error_info, statement_error, user_error};
use super::params::{arrow_type_of, parameter_value};
use super::session::{Session, session_statement};
use super::split::{Piece, copy_to_stdout, is_catalog_query, split_statements};
use crate::auth::Principal;
use crate::engine::{Engine, StatementResult, pg_setting};

/// Batches a push query may buffer for a slow client.
const PUSH_BUFFER: usize = 16;

/// The startup handshake: the password (a token's secret, asked for in clear text —
/// use TLS, `sslmode=require`, beyond loopback) when authentication is on, the
/// session's parameters, and a registration for cancel requests.
pub struct Startup {
    connections: Arc<ConnectionManager>,
    pids: RandomPidSecretKeyGenerator,
    parameters: DefaultServerParameterProvider,
    auth: Arc<crate::auth::Auth>,
    /// The server has a certificate: a password never crosses the network in clear.
    require_tls: bool,
}

/// Where a connection's principal is kept among the client's metadata.
const TOKEN_NAME: &str = "weir.token";
const TOKEN_ROLE: &str = "weir.role";

impl Startup {
    pub fn new(
        connections: Arc<ConnectionManager>,
        auth: Arc<crate::auth::Auth>,
        require_tls: bool,
    ) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = format!("{} (Weir)", crate::engine::SERVER_VERSION);
        Startup {
            connections,
            pids: RandomPidSecretKeyGenerator::default(),
            parameters,
            auth,
            require_tls,
        }
    }

    async fn finish<C>(&self, client: &mut C, principal: Principal) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client
            .metadata_mut()
            .insert(TOKEN_NAME.into(), principal.name.clone());
        client
            .metadata_mut()
            .insert(TOKEN_ROLE.into(), principal.role.as_str().into());
        let (pid, key) = self.pids.generate(&*client);
        client.set_pid_and_secret_key(pid, key.clone());
        let (handle, guard) = self.connections.register(pid, key);
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert::<ConnectionGuard>(guard);
        finish_authentication(client, &self.parameters).await
    }
}

/// The principal a connection authenticated as (everyone may do everything when
/// authentication is off).
pub fn principal_of<C: ClientInfo>(client: &C) -> Principal {
    let metadata = client.metadata();
    match (
        metadata.get(TOKEN_NAME),
        metadata
            .get(TOKEN_ROLE)
            .and_then(|r| crate::auth::Role::parse(r)),
    ) {
        (Some(name), Some(role)) => Principal {
            name: name.clone(),
            role,
        },
        _ => Principal::anonymous(),
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                if self.require_tls && !client.is_secure() {
                    return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "28000".into(),
                        "this Weir requires TLS: connect with sslmode=require (or verify-full)"
                            .into(),
                    ))));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.auth.is_enabled() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                } else {
                    self.finish(client, Principal::anonymous()).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                match self.auth.check_secret(Some(&password.password)) {
                    Ok(principal) => {
                        tracing::debug!(token = %principal.name, "postgres login");
                        self.finish(client, principal).await?;
                    }
                    Err(denied) => {
                        let user = client
                            .metadata()
                            .get(pgwire::api::METADATA_USER)
                            .cloned()
                            .unwrap_or_default();
                        tracing::info!(%user, "postgres login refused: {denied}");
                        let error = ErrorInfo::new(
                            "FATAL".into(),
                            "28P01".into(),
                            format!(
                                "password authentication failed for user \"{user}\": {denied} \
                                 (the password is a Weir token)"
                            ),
                        );
                        // FATAL: pgwire sends it and closes the connection.
                        return Err(PgWireError::UserError(Box::new(error)));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The listener's query service over one engine.
pub struct PgService {
    engine: Arc<Engine>,
    parser: Arc<Parser>,
}

impl PgService {
    pub fn new(engine: Arc<Engine>) -> Self {
        PgService {
            parser: Arc::new(Parser {
                engine: engine.clone(),
                compat: PostgresCompatibilityParser::new(),
            }),
            engine,
        }
    }

    /// Answers a session statement.
    fn session<C: ClientInfo>(&self, client: &mut C, statement: Session) -> PgWireResult<Response> {
        match statement {
            Session::Begin => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Session::Commit => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
            Session::Rollback => Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
            Session::Ignored(tag) => Ok(Response::Execution(Tag::new(&tag))),
            Session::Set { name, value } => {
                client
                    .metadata_mut()
                    .insert(format!("setting.{}", name.to_ascii_lowercase()), value);
                Ok(Response::Execution(Tag::new("SET")))
            }
            Session::Show(name) => {
                let key = format!("setting.{}", name.to_ascii_lowercase());
                let value = client
                    .metadata()
                    .get(&key)
                    .cloned()
                    .or_else(|| pg_setting(&name).map(str::to_string));
                match value {
                    Some(value) => single_text(&name, &value),
                    None => Err(PgWireError::UserError(Box::new(user_error(
                        "42704",
                        format!("unrecognized configuration parameter \"{name}\""),
                    )))),
                }
            }
        }
    }

    /// Rewrites a catalog query for DataFusion; `None` when it does not parse that way.
    fn rewrite_catalog(
        &self,
        text: &str,
    ) -> Option<Vec<datafusion::sql::sqlparser::ast::Statement>> {
        if !is_catalog_query(text) || self.engine.check_sql_limits(text).is_err() {
            return None; // over a limit: the plain path answers with the error
        }
        self.parser
            .compat
            .parse(text)
            .ok()
            .filter(|s| !s.is_empty())
    }

    /// Runs one statement of a simple query; an error ends the query.
    async fn run_piece<C: ClientInfo>(
        &self,
        client: &mut C,
        piece: &Piece<'_>,
    ) -> Result<Vec<Response>, ErrorInfo> {
        let text = piece.text;
        if let Some(statement) = session_statement(text) {
            return self
                .session(client, statement)
                .map(|r| vec![r])
                .map_err(pg_error_info);
        }
        if let Some(select) = copy_to_stdout(text) {
            // A bounded COPY (a push query is streamed by `copy_push`).
            let results = self
                .engine
                .execute_sql_as(select, &principal_of(client))
                .await
                .map_err(|e| statement_error(&e, text, piece.offset_chars))?;
            return match results.into_iter().last() {
                Some(StatementResult::Rows {
                    schema, batches, ..
                }) => {
                    let fields = Arc::new(
                        arrow_pg::datatypes::arrow_schema_to_pg_fields(
                            &schema,
                            &Format::UnifiedText,
                            None,
                        )
                        .map_err(pg_error_info)?,
                    );
                    let mut data = Vec::new();
                    for batch in &batches {
                        data.extend(copy_rows(&fields, batch).map_err(pg_error_info)?);
                    }
                    Ok(vec![Response::CopyOut(
                        pgwire::api::results::CopyResponse::new(
                            0,
                            fields.len(),
                            stream::iter(data.into_iter().map(Ok)),
                        ),
                    )])
                }
                _ => Err(user_error("42601", "COPY (...) TO STDOUT needs a query")),
            };
        }
        // A catalog query runs rewritten; should that fail (a stream whose name merely
        // starts with pg_, say), it runs as written, and that answer stands.
        let mut rewritten_failed = false;
        if let Some(statements) = self.rewrite_catalog(text) {
            let mut responses = Vec::new();
            for statement in statements {
                match self.engine.execute_catalog_query(statement).await {
                    Ok(result) => responses.push(
                        result_response(text, result, &Format::UnifiedText)
                            .map_err(pg_error_info)?,
                    ),
                    Err(e) => {
                        tracing::debug!(
                            "catalog query failed rewritten ({e}); running it as written"
                        );
                        rewritten_failed = true;
                        break;
                    }
                }
            }
            if !rewritten_failed {
                return Ok(responses);
            }
        }
        match self
            .engine
            .execute_sql_as(text, &principal_of(client))
            .await
        {
            Ok(results) => results
                .into_iter()
                .map(|r| result_response(text, r, &Format::UnifiedText))
                .collect::<PgWireResult<Vec<_>>>()
                .map_err(pg_error_info),
            Err(e) => Err(statement_error(&e, text, piece.offset_chars)),
        }
    }

    /// `COPY (SELECT ... EMIT ...) TO STDOUT`: streams a push query's rows, each flushed
    /// as it comes, until the client cancels or the query ends.
    async fn copy_push<C>(&self, client: &mut C, select: &str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.set_state(PgWireConnectionState::QueryInProgress);
        let (select, emit) = crate::sql::strip_emit(select);
        let outcome = match self
            .engine
            .start_push_query(&select, emit, PUSH_BUFFER)
            .await
        {
            Err(e) => Err(error_info(&e)),
            Ok((query, mut rx)) => {
                // Changes of an aggregate carry their _op column after the query's own.
                let mut columns: Vec<_> =
                    query.plan.output_schema.fields().iter().cloned().collect();
                if query.def.emit_changes && query.plan.aggregates().next().is_some() {
                    columns.push(Arc::new(datafusion::arrow::datatypes::Field::new(
                        crate::runtime::OP_COLUMN,
                        DataType::Utf8,
                        false,
                    )));
                }
                let fields = Arc::new(arrow_pg::datatypes::arrow_schema_to_pg_fields(
                    &Schema::new(columns),
                    &Format::UnifiedText,
                    None,
                )?);
                client
                    .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                        0,
                        fields.len() as i16,
                        vec![0; fields.len()],
                    )))
                    .await?;
                // Resolves when the client sends a cancel request (Ctrl-C in psql).
                let handle = client.session_extensions().get::<Arc<ConnectionHandle>>();
                let cancel = async move {
                    if let Some(handle) = handle
                        && handle.start_query().await.await.is_ok()
                    {
                        return;
                    }
                    futures::future::pending::<()>().await
                };
                let mut cancel = std::pin::pin!(cancel);
                let mut rows = 0usize;
                let outcome = loop {
                    tokio::select! {
                        batch = rx.recv() => match batch {
                            Some(batch) => {
                                for data in copy_rows(&fields, &batch)? {
                                    client.feed(PgWireBackendMessage::CopyData(data)).await?;
                                    rows += 1;
                                }
                                client.flush().await?;
                            }
                            None => break match query.status() {
                                s if s.starts_with("failed") => Err(user_error("XX000", s)),
                                _ => Ok(rows),
                            },
                        },
                        _ = &mut cancel => {
                            break Err(user_error("57014", "canceling statement due to user request"));
                        }
                    }
                };
                query.stop();
                if outcome.is_ok() {
                    client
                        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
                        .await?;
                }
                outcome
            }
        };
        match outcome {
            Ok(rows) => {
                let tag = Tag::new("COPY").with_rows(rows);
                client
                    .feed(PgWireBackendMessage::CommandComplete(
                        CommandComplete::from(tag),
                    ))
                    .await?;
            }
            Err(e) => {
                client
                    .feed(PgWireBackendMessage::ErrorResponse(e.into()))
                    .await?;
            }
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        send_ready_for_query(client, client.transaction_status()).await
    }
}

#[async_trait]
impl SimpleQueryHandler for PgService {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let pieces = split_statements(&query.query);
        if let [piece] = pieces.as_slice()
            && let Some(select) = copy_to_stdout(piece.text)
            && crate::sql::strip_emit(select).1.is_some()
            && matches!(client.state(), PgWireConnectionState::ReadyForQuery)
        {
            return self.copy_push(client, select).await;
        }
        self._on_query(client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut responses = Vec::new();
        for piece in split_statements(query) {
            match self.run_piece(client, &piece).await {
                Ok(mut done) => responses.append(&mut done),
                Err(error) => {
                    responses.push(Response::Error(Box::new(error)));
                    break;
                }
            }
        }
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}

/// A prepared statement: its text (rewritten when it is a catalog query) and what
/// Describe says of it.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: String,
    session: Option<Session>,
    schema: Option<SchemaRef>,
    params: Vec<Option<DataType>>,
}

pub struct Parser {
    engine: Arc<Engine>,
    compat: PostgresCompatibilityParser,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let pieces = split_statements(sql);
        let Some(piece) = pieces.first() else {
            return Ok(None);
        };
        if pieces.len() > 1 {
            return Err(PgWireError::UserError(Box::new(user_error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ))));
        }
        if let Some(session) = session_statement(piece.text) {
            let schema = match &session {
                Session::Show(name) => Some(Arc::new(Schema::new(vec![
                    datafusion::arrow::datatypes::Field::new(
                        name.to_ascii_lowercase(),
                        DataType::Utf8,
                        true,
                    ),
                ]))),
                _ => None,
            };
            return Ok(Some(Prepared {
                sql: piece.text.to_string(),
                session: Some(session),
                schema,
                params: Vec::new(),
            }));
        }
        let text = if is_catalog_query(piece.text) {
            match self.compat.parse(piece.text) {
                Ok(statements) if statements.len() == 1 => statements[0].to_string(),
                _ => piece.text.to_string(),
            }
        } else {
            piece.text.to_string()
        };
        let described = self.engine.describe_sql(&text).await.map_err(|e| {
            let mut info = error_info(&e);
            if let crate::engine::Error::Parse {
                position: Some((line, column)),
                ..
            } = &e
            {
                let before: usize = text
                    .split_inclusive('\n')
                    .take(line.saturating_sub(1) as usize)
                    .map(|l| l.chars().count())
                    .sum();
                info.position = Some((before + *column as usize).to_string());
            }
            PgWireError::UserError(Box::new(info))
        })?;
        // Types the client gave win over what DataFusion inferred.
        let mut params = described.params;
        for (i, given) in types.iter().enumerate() {
            if let Some(t) = given.as_ref().and_then(arrow_type_of)
                && i < params.len()
                && params[i].is_none()
            {
                params[i] = Some(t);
            }
        }
        Ok(Some(Prepared {
            sql: text,
            session: None,
            schema: described.schema,
            params,
        }))
    }

    fn get_parameter_types(&self, statement: &Prepared) -> PgWireResult<Vec<Type>> {
        statement
            .params
            .iter()
            .map(|t| match t {
                Some(t) => arrow_pg::datatypes::into_pg_type(t),
                None => Ok(Type::TEXT),
            })
            .collect()
    }

    fn get_result_schema(
        &self,
        statement: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &statement.schema {
            Some(schema) => arrow_pg::datatypes::arrow_schema_to_pg_fields(
                schema,
                format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgService {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared: &StoredStatement<Prepared> = &portal.statement;
        let statement = &prepared.statement;
        if let Some(session) = &statement.session {
            return self.session(client, session.clone());
        }
        let params = (0..portal.parameter_len())
            .map(|i| parameter_value(portal, i, statement.params.get(i).and_then(Option::as_ref)))
            .collect::<PgWireResult<Vec<_>>>()?;
        let results = self
            .engine
            .execute_with_params(&statement.sql, params, &principal_of(client))
            .await
            .map_err(|e| {
                PgWireError::UserError(Box::new(statement_error(&e, &statement.sql, 0)))
            })?;
        match results.into_iter().last() {
            Some(result) => result_response(&statement.sql, result, &portal.result_column_format),
            None => Ok(Response::EmptyQuery),
        }
    }
}
