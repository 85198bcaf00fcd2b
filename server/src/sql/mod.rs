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

/// Where the literal or comment starting at byte `i` of `sql` ends (the index just past
/// it), or `None` when none starts there: `'...'` and `"..."` (doubled quotes inside),
/// `E'...'` with backslash escapes, `-- ...` to the end of the line, `/* ... */`, and
/// `$tag$ ... $tag$` (not a `$1` parameter). The one lexer that the statement splitter
/// and the nesting check share, so that both see the same text as code.
pub fn skip_literal(sql: &str, i: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    match *bytes.get(i)? {
        quote @ (b'\'' | b'"') => {
            // E'...' (escape strings): an E right before the quote, not ending a word.
            let escapes = quote == b'\''
                && i > 0
                && matches!(bytes[i - 1], b'e' | b'E')
                && (i < 2 || !(bytes[i - 2].is_ascii_alphanumeric() || bytes[i - 2] == b'_'));
            let mut j = i + 1;
            while j < bytes.len() {
                if escapes && bytes[j] == b'\\' {
                    j += 2;
                    continue;
                }
                if bytes[j] == quote {
                    if bytes.get(j + 1) == Some(&quote) {
                        j += 2;
                        continue;
                    }
                    return Some(j + 1);
                }
                j += 1;
            }
            Some(bytes.len())
        }
        b'-' if bytes.get(i + 1) == Some(&b'-') => {
            Some(sql[i..].find('\n').map_or(bytes.len(), |end| i + end + 1))
        }
        b'/' if bytes.get(i + 1) == Some(&b'*') => Some(
            sql[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |end| i + 2 + end + 2),
        ),
        b'$' => {
            let rest = sql.get(i + 1..)?;
            let e = i + 1 + rest.find('$')?;
            let tag_body = &sql[i + 1..e];
            if !tag_body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                || tag_body.starts_with(|c: char| c.is_ascii_digit())
            {
                return None;
            }
            let tag = &sql[i..=e];
            Some(
                sql[e + 1..]
                    .find(tag)
                    .map_or(bytes.len(), |close| e + 1 + close + tag.len()),
            )
        }
        _ => None,
    }
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
