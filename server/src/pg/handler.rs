//! The query handlers: the simple protocol (one text, several statements), the extended
//! protocol (Parse / Bind / Describe / Execute with `$n` parameters), push queries as
//! `COPY ... TO STDOUT`, and the startup handshake.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_ready_for_query,
};
use pgwire::api::results::{
    CopyEncoder, CopyTextOptions, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
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
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::errors::{error_info, statement_error, user_error};
use super::split::{Piece, copy_to_stdout, is_catalog_query, leading_words, split_statements};
use crate::engine::{Engine, StatementResult, pg_setting};

/// Batches a push query may buffer for a slow client.
const PUSH_BUFFER: usize = 16;

/// The startup handshake: no password yet (authentication is a later step), the
/// session's parameters, and a registration for cancel requests.
pub struct Startup {
    connections: Arc<ConnectionManager>,
    pids: RandomPidSecretKeyGenerator,
    parameters: DefaultServerParameterProvider,
}

impl Startup {
    pub fn new(connections: Arc<ConnectionManager>) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = format!("{} (Weir)", crate::engine::SERVER_VERSION);
        Startup {
            connections,
            pids: RandomPidSecretKeyGenerator::default(),
            parameters,
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            let (pid, key) = self.pids.generate(&*client);
            client.set_pid_and_secret_key(pid, key.clone());
            let (handle, guard) = self.connections.register(pid, key);
            client
                .session_extensions()
                .insert::<Arc<ConnectionHandle>>(handle);
            client.session_extensions().insert::<ConnectionGuard>(guard);
            finish_authentication(client, &self.parameters).await?;
        }
        Ok(())
    }
}

/// A statement the listener answers itself.
#[derive(Debug, Clone, PartialEq)]
enum Session {
    Set { name: String, value: String },
    Show(String),
    Begin,
    Commit,
    Rollback,
    /// Accepted and ignored, answered with this tag.
    Ignored(String),
}

/// Recognises session statements (`SHOW STREAMS` and Weir's other SHOWs are not).
fn session_statement(text: &str) -> Option<Session> {
    let words = leading_words(text, 3);
    let first = words.first()?.as_str();
    match first {
        "BEGIN" | "START" => Some(Session::Begin),
        "COMMIT" | "END" => Some(Session::Commit),
        "ROLLBACK" | "ABORT" => Some(Session::Rollback),
        "RESET" | "DISCARD" | "DEALLOCATE" | "CLOSE" | "LISTEN" | "UNLISTEN" => {
            Some(Session::Ignored(first.to_string()))
        }
        "SHOW" => {
            let name = words.get(1)?;
            if matches!(
                name.as_str(),
                "STREAMS" | "QUERIES" | "MATERIALIZED" | "SINKS" | "TABLES" | "COLUMNS"
            ) {
                return None;
            }
            let rest = text.trim()[4..].trim().trim_end_matches(';').trim();
            Some(Session::Show(rest.trim_matches('"').to_string()))
        }
        "SET" => {
            let rest = text.trim()[3..].trim();
            let rest = strip_word(rest, "SESSION")
                .or_else(|| strip_word(rest, "LOCAL"))
                .unwrap_or(rest);
            if let Some(zone) = strip_word(rest, "TIME").and_then(|r| strip_word(r, "ZONE")) {
                return Some(Session::Set {
                    name: "TimeZone".into(),
                    value: unquote(zone),
                });
            }
            let (name, value) = match rest.split_once('=') {
                Some((n, v)) => (n.trim(), v.trim()),
                None => {
                    let (n, v) = rest.split_once(char::is_whitespace)?;
                    (n.trim(), strip_word(v.trim(), "TO").unwrap_or(v).trim())
                }
            };
            Some(Session::Set {
                name: name.trim_matches('"').to_string(),
                value: unquote(value),
            })
        }
        _ => None,
    }
}

fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    let rest = &text[word.len()..];
    (head.eq_ignore_ascii_case(word) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

fn unquote(value: &str) -> String {
    let v = value.trim().trim_end_matches(';').trim();
    let v = v
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(v);
    v.replace("''", "'")
}

/// The command tag psql prints for a statement of Weir's that returned no rows.
fn command_tag(text: &str, rows: Option<u64>) -> Tag {
    let words = leading_words(text, 3);
    let take = match words.get(1).map(String::as_str) {
        Some("MATERIALIZED") => 3,
        _ if words.first().is_some_and(|w| w == "FLUSH") => 1,
        _ => 2,
    };
    let command = words.iter().take(take).cloned().collect::<Vec<_>>().join(" ");
    match (words.first().map(String::as_str), rows) {
        (Some("INSERT"), Some(n)) => Tag::new("INSERT").with_oid(0).with_rows(n as usize),
        (_, Some(n)) => Tag::new(&command).with_rows(n as usize),
        _ => Tag::new(&command),
    }
}

/// The rows of a result as a query response, each column in `format`.
fn rows_response(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    format: &Format,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(arrow_pg::datatypes::arrow_schema_to_pg_fields(
        schema, format, None,
    )?);
    let batches = batches
        .into_iter()
        .map(|batch| postgres_text(batch, &fields))
        .collect::<PgWireResult<Vec<_>>>()?;
    let encode = fields.clone();
    let rows = stream::iter(
        batches
            .into_iter()
            .flat_map(move |batch| arrow_pg::encode_recordbatch(encode.clone(), batch)),
    );
    Ok(QueryResponse::new(fields, rows))
}

/// Timestamps sent as text the way Postgres writes them (`2024-01-01 00:00:01`, a
/// fraction only when there is one), not with six zeros after every second.
fn postgres_text(batch: RecordBatch, fields: &[FieldInfo]) -> PgWireResult<RecordBatch> {
    use datafusion::arrow::array::{Array, AsArray};
    let schema = batch.schema();
    let is_text_timestamp = |i: usize| {
        matches!(schema.field(i).data_type(), DataType::Timestamp(_, None))
            && fields.get(i).is_some_and(|f| f.format() == FieldFormat::Text)
    };
    if !(0..batch.num_columns()).any(is_text_timestamp) {
        return Ok(batch);
    }
    let internal = |e: datafusion::arrow::error::ArrowError| PgWireError::ApiError(Box::new(e));
    let mut columns = Vec::with_capacity(batch.num_columns());
    let mut new_fields = Vec::with_capacity(batch.num_columns());
    for (i, column) in batch.columns().iter().enumerate() {
        if !is_text_timestamp(i) {
            columns.push(column.clone());
            new_fields.push(schema.field(i).clone());
            continue;
        }
        let text = datafusion::arrow::compute::cast(column, &DataType::Utf8).map_err(internal)?;
        let text = text.as_string::<i32>();
        let formatted: datafusion::arrow::array::StringArray = (0..text.len())
            .map(|r| {
                (!text.is_null(r)).then(|| {
                    let v = text.value(r).replacen('T', " ", 1);
                    match v.split_once('.') {
                        Some((whole, fraction)) => {
                            let fraction = fraction.trim_end_matches('0');
                            if fraction.is_empty() {
                                whole.to_string()
                            } else {
                                format!("{whole}.{fraction}")
                            }
                        }
                        None => v,
                    }
                })
            })
            .collect();
        columns.push(Arc::new(formatted));
        new_fields.push(datafusion::arrow::datatypes::Field::new(
            schema.field(i).name(),
            DataType::Utf8,
            true,
        ));
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), columns).map_err(internal)
}

fn result_response(text: &str, result: StatementResult, format: &Format) -> PgWireResult<Response> {
    match result {
        StatementResult::Rows { schema, batches, .. } => {
            Ok(Response::Query(rows_response(&schema, batches, format)?))
        }
        StatementResult::Ok { rows_affected, .. } => {
            Ok(Response::Execution(command_tag(text, rows_affected)))
        }
    }
}

/// One row of one text column.
fn single_text(name: &str, value: &str) -> PgWireResult<Response> {
    let schema = Arc::new(Schema::new(vec![datafusion::arrow::datatypes::Field::new(
        name.to_ascii_lowercase(),
        DataType::Utf8,
        true,
    )]));
    let column = Arc::new(datafusion::arrow::array::StringArray::from(vec![value]));
    let batch = RecordBatch::try_new(schema.clone(), vec![column])
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok(Response::Query(rows_response(&schema, vec![batch], &Format::UnifiedText)?))
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
        if !is_catalog_query(text) {
            return None;
        }
        self.parser.compat.parse(text).ok().filter(|s| !s.is_empty())
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
                .execute_sql(select)
                .await
                .map_err(|e| statement_error(&e, text, piece.offset_chars))?;
            return match results.into_iter().last() {
                Some(StatementResult::Rows { schema, batches, .. }) => {
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
        if let Some(statements) = self.rewrite_catalog(text) {
            let mut responses = Vec::new();
            for statement in statements {
                let result = self
                    .engine
                    .execute_catalog_query(statement)
                    .await
                    .map_err(|e| error_info(&e))?;
                responses.push(result_response(text, result, &Format::UnifiedText).map_err(pg_error_info)?);
            }
            return Ok(responses);
        }
        match self.engine.execute_sql(text).await {
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
                let mut columns: Vec<_> = query.plan.output_schema.fields().iter().cloned().collect();
                if query.def.emit_changes && query.plan.aggregate.is_some() {
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
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::from(tag)))
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

/// A batch's rows in COPY's text format.
fn copy_rows(
    fields: &Arc<Vec<FieldInfo>>,
    batch: &RecordBatch,
) -> PgWireResult<Vec<pgwire::messages::copy::CopyData>> {
    let schema = batch.schema();
    if schema.fields().len() != fields.len() {
        return Err(PgWireError::UserError(Box::new(user_error(
            "XX000",
            format!(
                "internal error (a bug in Weir, please report it): a batch of {} columns for {} COPY columns",
                schema.fields().len(),
                fields.len()
            ),
        ))));
    }
    let mut encoder = CopyEncoder::new_text(fields.clone(), CopyTextOptions::default());
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (column, field) in schema.fields().iter().enumerate() {
            arrow_pg::encoder::encode_value(
                &mut encoder,
                batch.column(column),
                row,
                field,
                &fields[column],
            )?;
        }
        out.push(encoder.take_copy());
    }
    Ok(out)
}

fn pg_error_info(e: PgWireError) -> ErrorInfo {
    match e {
        PgWireError::UserError(info) => *info,
        other => user_error("XX000", other.to_string()),
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

/// The Arrow type a Postgres parameter type decodes to.
fn arrow_type_of(t: &Type) -> Option<DataType> {
    use datafusion::arrow::datatypes::TimeUnit;
    Some(match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::INTERVAL => DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano),
        _ => return None,
    })
}

/// Decodes parameter `i` of `portal` (text or binary) as a value of `target`.
fn parameter_value(
    portal: &Portal<Prepared>,
    i: usize,
    target: Option<&DataType>,
) -> PgWireResult<ScalarValue> {
    let given = portal
        .statement
        .parameter_types
        .get(i)
        .cloned()
        .flatten()
        .filter(|t| *t != Type::UNKNOWN);
    let target = target
        .cloned()
        .or_else(|| given.as_ref().and_then(arrow_type_of))
        .unwrap_or(DataType::Utf8);
    let bad = |what: String| {
        PgWireError::UserError(Box::new(user_error(
            "22P02",
            format!("parameter ${}: {what}", i + 1),
        )))
    };
    let Some(bytes) = portal.parameters.get(i).cloned().flatten() else {
        return ScalarValue::try_from(&target).map_err(|e| bad(e.to_string()));
    };
    let value = match portal.parameter_format.format_for(i) {
        FieldFormat::Text => ScalarValue::Utf8(Some(
            String::from_utf8(bytes.to_vec()).map_err(|_| bad("not UTF-8 text".into()))?,
        )),
        FieldFormat::Binary => {
            let pg = given.clone().unwrap_or_else(|| {
                arrow_pg::datatypes::into_pg_type(&target).unwrap_or(Type::TEXT)
            });
            match pg {
                Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, &pg)?),
                Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, &pg)?),
                Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, &pg)?),
                Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, &pg)?),
                Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, &pg)?),
                Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, &pg)?),
                Type::BYTEA => ScalarValue::Binary(Some(bytes.to_vec())),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    ScalarValue::Utf8(Some(
                        String::from_utf8(bytes.to_vec())
                            .map_err(|_| bad("not UTF-8 text".into()))?,
                    ))
                }
                Type::DATE | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::NUMERIC | Type::INTERVAL => {
                    binary_temporal_or_numeric(&pg, &bytes).ok_or_else(|| {
                        bad(format!("malformed binary {} value", pg.name()))
                    })?
                }
                other => {
                    return Err(bad(format!(
                        "binary parameters of type {} are not supported; send it as text",
                        other.name()
                    )));
                }
            }
        }
    };
    if value.data_type() == target {
        return Ok(value);
    }
    match (&value, &target) {
        (ScalarValue::Utf8(Some(text)), _) => ScalarValue::try_from_string(text.clone(), &target)
            .map_err(|_| bad(format!("\"{text}\" is not a valid {target}"))),
        _ => value
            .cast_to(&target)
            .map_err(|e| bad(format!("cannot be read as {target}: {e}"))),
    }
}

/// Microseconds from the Unix epoch to Postgres's epoch (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Decodes a binary DATE, TIMESTAMP[TZ], NUMERIC or INTERVAL parameter.
fn binary_temporal_or_numeric(pg: &Type, bytes: &[u8]) -> Option<ScalarValue> {
    let i16_at = |at: usize| Some(i16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let i32_at = |at: usize| Some(i32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let i64_at = |at: usize| Some(i64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    Some(match *pg {
        Type::DATE => ScalarValue::Date32(Some(i32_at(0)? + 10_957)),
        Type::TIMESTAMP => {
            ScalarValue::TimestampMicrosecond(Some(i64_at(0)? + PG_EPOCH_MICROS), None)
        }
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            Some(i64_at(0)? + PG_EPOCH_MICROS),
            Some("+00:00".into()),
        ),
        Type::INTERVAL => ScalarValue::new_interval_mdn(i32_at(12)?, i32_at(8)?, i64_at(0)? * 1000),
        Type::NUMERIC => {
            // ndigits, weight, sign, dscale, then base-10000 digits.
            let (ndigits, weight, sign, dscale) = (i16_at(0)?, i16_at(2)?, i16_at(4)? as u16, i16_at(6)?);
            if sign == 0xC000 {
                return Some(ScalarValue::Utf8(Some("NaN".into())));
            }
            let mut integer = String::new();
            let mut fraction = String::new();
            for i in 0..ndigits as i32 {
                let digit = i16_at(8 + 2 * i as usize)?;
                let power = weight as i32 - i;
                if power >= 0 {
                    if integer.is_empty() {
                        integer = digit.to_string();
                    } else {
                        integer.push_str(&format!("{digit:04}"));
                    }
                } else {
                    while (fraction.len() as i32) < (-power - 1) * 4 {
                        fraction.push_str("0000");
                    }
                    fraction.push_str(&format!("{digit:04}"));
                }
            }
            if integer.is_empty() {
                integer.push('0');
            }
            // Trailing whole groups of zeros (weight beyond the digits).
            let missing = weight as i32 + 1 - ndigits as i32;
            if missing > 0 && ndigits > 0 {
                integer.push_str(&"0000".repeat(missing as usize));
            }
            fraction.truncate(dscale.max(0) as usize);
            while (fraction.len() as i16) < dscale {
                fraction.push('0');
            }
            let sign = if sign == 0x4000 { "-" } else { "" };
            let text = match fraction.is_empty() {
                true => format!("{sign}{integer}"),
                false => format!("{sign}{integer}.{fraction}"),
            };
            ScalarValue::Utf8(Some(text))
        }
        _ => return None,
    })
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
            .execute_with_params(&statement.sql, params)
            .await
            .map_err(|e| PgWireError::UserError(Box::new(statement_error(&e, &statement.sql, 0))))?;
        match results.into_iter().last() {
            Some(result) => result_response(&statement.sql, result, &portal.result_column_format),
            None => Ok(Response::EmptyQuery),
        }
    }
}
