//! Weir's errors as Postgres errors: a SQLSTATE from what went wrong, the message Weir
//! gives over HTTP, and the position (1-based characters into the query text) of the
//! failing statement, or of the token a parse error names, so psql can underline it.

use datafusion::arrow::error::ArrowError;
use datafusion::common::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

use crate::engine::{Error, StatementError};

/// The SQLSTATE of an engine error.
pub fn sqlstate(error: &Error) -> &'static str {
    match error {
        Error::Parse { .. } => "42601",
        Error::NotFound(_) => "42P01",
        Error::AlreadyExists(_) => "42P07",
        Error::Decode(_) => "22P02",
        Error::Invalid(message) => {
            if message.contains("not available") || message.contains("cannot run continuously") {
                "0A000"
            } else {
                "42000"
            }
        }
        Error::DataFusion(e) => datafusion_sqlstate(e),
        Error::NotReady => "57P03",
        Error::Forbidden(_) => "42501",
        Error::Limit(_) => "54000",
        Error::ResourcesExhausted(_) => "53200",
        Error::Timeout(_) => "57014",
        Error::Log(_) | Error::Catalog(_) | Error::Internal(_) => "XX000",
    }
}

fn datafusion_sqlstate(e: &DataFusionError) -> &'static str {
    match e.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::SchemaError(..) => {
            let text = e.to_string();
            if text.contains("No field named") || text.contains("not found") {
                "42703"
            } else {
                "42000"
            }
        }
        DataFusionError::Plan(text) if text.contains("not found") => "42P01",
        DataFusionError::Plan(_) => "42000",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::ArrowError(inner, _) => match inner.as_ref() {
            ArrowError::DivideByZero => "22012",
            ArrowError::CastError(_) | ArrowError::ParseError(_) => "22P02",
            ArrowError::ComputeError(_) | ArrowError::ArithmeticOverflow(_) => "22003",
            _ => "XX000",
        },
        DataFusionError::Execution(_) => "22000",
        DataFusionError::Internal(_) => "XX000",
        _ => "XX000",
    }
}

/// The 0-based character offset of (1-based) `line`, `column` in `text`.
fn char_offset(text: &str, line: u64, column: u64) -> usize {
    let before: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(|l| l.chars().count())
        .sum();
    before + column.saturating_sub(1) as usize
}

/// A Postgres error for `error`, positioned in the piece of text that starts at
/// `offset_chars` of the whole query.
pub fn statement_error(error: &StatementError, piece: &str, offset_chars: usize) -> ErrorInfo {
    let (line, column) = match &error.error {
        Error::Parse {
            position: Some(p), ..
        } => *p,
        _ => (error.line, error.column),
    };
    let mut info = error_info(&error.error);
    info.position = Some((offset_chars + char_offset(piece, line, column) + 1).to_string());
    info
}

/// A Postgres error for `error`, without a position.
pub fn error_info(error: &Error) -> ErrorInfo {
    let severity = "ERROR".to_string();
    ErrorInfo::new(severity, sqlstate(error).into(), error.to_string())
}

/// An error of the listener's own (session statements, parameters).
pub fn user_error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("ERROR".into(), code.into(), message.into())
}

/// The Postgres error of a listener failure.
pub fn pg_error_info(e: PgWireError) -> ErrorInfo {
    match e {
        PgWireError::UserError(info) => *info,
        other => user_error("XX000", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_from_one() {
        assert_eq!(char_offset("SELECT 1", 1, 1), 0);
        assert_eq!(char_offset("SELECT\n  x", 2, 3), 9);
        assert_eq!(char_offset("é\nab", 2, 2), 3);
    }
}
