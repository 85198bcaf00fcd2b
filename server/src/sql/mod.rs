//! The Weir dialect: statements DataFusion does not know (`CREATE STREAM`, `SHOW STREAMS`,
//! `FLUSH`, ...) parsed by a wrapper around DataFusion's `DFParser`, and the helpers that
//! turn their clauses (intervals, options, column lists) into typed values.
//! Knows nothing about HTTP, storage or execution.

mod options;
mod parser;
mod rewrite;
pub mod temporal;
mod window_inputs;

pub use options::{StreamOptions, parse_duration_ms};
pub use parser::{ParseError, ParsedStatement, parse_sql};
pub use rewrite::{
    Emit, hide_metadata_columns, name_insert_columns, rewrite_group_windows,
    rewrite_window_functions, session_keys, strip_emit,
};
pub use window_inputs::{LiftedInput, inline_window_views, lift_window_inputs};

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{ColumnDef, Expr, Ident, ObjectName, Query, SqlOption};

/// One statement of the Weir dialect.
#[derive(Debug, Clone)]
pub enum WeirStatement {
    /// `CREATE STREAM [IF NOT EXISTS] s (cols, WATERMARK FOR ts AS ts - INTERVAL ..) WITH (..) [AS SELECT ..]`
    CreateStream(Box<CreateStream>),
    /// `DROP STREAM [IF EXISTS] s`
    DropStream { name: String, if_exists: bool },
    /// `SHOW STREAMS`
    ShowStreams,
    /// `DESCRIBE s`
    Describe { name: String },
    /// `FLUSH`: wait until continuous queries caught up with their inputs (see SQL.md).
    Flush,
    /// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] v [WITH (...)] AS SELECT ...`
    CreateMaterializedView {
        name: String,
        if_not_exists: bool,
        options: Vec<SqlOption>,
        query: Box<Query>,
    },
    /// `DROP MATERIALIZED VIEW [IF EXISTS] v`
    DropMaterializedView { name: String, if_exists: bool },
    /// `SHOW QUERIES`
    ShowQueries,
    /// `CREATE SINK [IF NOT EXISTS] name FROM stream_or_view WITH (connector = ..., ...)`
    CreateSink {
        name: String,
        if_not_exists: bool,
        from: String,
        options: Vec<SqlOption>,
    },
    /// `DROP SINK [IF EXISTS] name`
    DropSink { name: String, if_exists: bool },
    /// `SHOW SINKS`
    ShowSinks,
    /// `SHOW MATERIALIZED VIEWS`
    ShowMaterializedViews,
    /// `EXPLAIN CREATE ...`: the streaming plan of a continuous query, without running it.
    ExplainContinuous(Box<WeirStatement>),
    /// Anything else: planned and run by DataFusion (SELECT, INSERT, EXPLAIN, ...).
    DataFusion(Box<DFStatement>),
}

/// A parsed `CREATE STREAM`.
#[derive(Debug, Clone)]
pub struct CreateStream {
    pub name: String,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    pub watermark: Option<WatermarkClause>,
    pub options: Vec<SqlOption>,
    /// `AS SELECT ...`: a derived stream (continuous query).
    pub query: Option<Box<Query>>,
}

/// `WATERMARK FOR column AS expression`.
#[derive(Debug, Clone)]
pub struct WatermarkClause {
    pub column: Ident,
    pub expr: Expr,
}

/// Whether the quote at `at` opens a Postgres escape string (`E'...'`, where a backslash
/// escapes the next character, a quote included): an `E` right before it that is not
/// the end of a longer word.
pub fn opens_escape_string(bytes: &[u8], at: usize) -> bool {
    bytes.get(at) == Some(&b'\'')
        && at > 0
        && matches!(bytes[at - 1], b'e' | b'E')
        && (at < 2 || !(bytes[at - 2].is_ascii_alphanumeric() || bytes[at - 2] == b'_'))
}

/// The normalized name of a table-like object: unquoted identifiers are lower-cased,
/// as DataFusion does, so `Bids` and `bids` are the same stream and `"Bids"` is not.
pub fn normalize_ident(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

/// The last part of an object name, normalized (`weir.public.bids` → `bids`).
pub fn object_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(normalize_ident)
        .unwrap_or_default()
}

impl WeirStatement {
    /// The role a caller needs to run this statement, and what to call it in a refusal.
    pub fn required_role(&self) -> (crate::auth::Role, &'static str) {
        use crate::auth::Role;
        match self {
            WeirStatement::ShowStreams
            | WeirStatement::Describe { .. }
            | WeirStatement::ShowQueries
            | WeirStatement::ShowSinks
            | WeirStatement::ShowMaterializedViews
            | WeirStatement::ExplainContinuous(_) => (Role::Read, "a query"),
            WeirStatement::Flush => (Role::Write, "FLUSH"),
            WeirStatement::CreateStream(_) => (Role::Admin, "CREATE STREAM"),
            WeirStatement::DropStream { .. } => (Role::Admin, "DROP STREAM"),
            WeirStatement::CreateMaterializedView { .. } => {
                (Role::Admin, "CREATE MATERIALIZED VIEW")
            }
            WeirStatement::DropMaterializedView { .. } => (Role::Admin, "DROP MATERIALIZED VIEW"),
            WeirStatement::CreateSink { .. } => (Role::Admin, "CREATE SINK"),
            WeirStatement::DropSink { .. } => (Role::Admin, "DROP SINK"),
            WeirStatement::DataFusion(statement) => datafusion_role(statement),
        }
    }
}

/// Queries and SHOW read, INSERT writes, everything else (DDL, COPY TO files, SET of
/// server options) is for admins.
fn datafusion_role(statement: &DFStatement) -> (crate::auth::Role, &'static str) {
    use crate::auth::Role;
    use datafusion::sql::sqlparser::ast::Statement;
    match statement {
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::Query(_) => (Role::Read, "a query"),
            Statement::Insert(_) => (Role::Write, "INSERT"),
            Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowVariables { .. }
            | Statement::ExplainTable { .. } => (Role::Read, "a query"),
            Statement::Explain {
                analyze, statement, ..
            } => match statement.as_ref() {
                Statement::Query(_) => (Role::Read, "EXPLAIN"),
                Statement::Insert(_) if *analyze => (Role::Write, "EXPLAIN ANALYZE INSERT"),
                _ if !*analyze => (Role::Read, "EXPLAIN"),
                _ => (Role::Admin, "EXPLAIN ANALYZE"),
            },
            _ => (Role::Admin, "this statement"),
        },
        DFStatement::Explain(explain) => {
            let (role, _) = datafusion_role(&explain.statement);
            if explain.options.analyze {
                (role, "EXPLAIN ANALYZE")
            } else {
                (crate::auth::Role::Read, "EXPLAIN")
            }
        }
        DFStatement::CreateExternalTable(_) => (Role::Admin, "CREATE EXTERNAL TABLE"),
        DFStatement::CopyTo(_) => (Role::Admin, "COPY ... TO (it writes files on the server)"),
        _ => (Role::Admin, "this statement"),
    }
}
