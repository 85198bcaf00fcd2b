//! Ingest decoding: turns one request body (NDJSON, a JSON array, CSV or an Arrow IPC
//! stream) into one Arrow `RecordBatch` with exactly the stream's columns, in order.
//!
//! Owns the body formats, matching body fields to stream columns, the per-type value
//! rules (in `value`) and the user-facing error for a bad row. Does not own HTTP
//! (status codes, body limits, content negotiation beyond [`Format::from_content_type`]),
//! partitioning, durability or the catalog: the caller passes the stream's schema of
//! user columns and decides what a zero-row batch means.
//!
//! Rules that hold for every format:
//! - **All or nothing.** The first bad row fails the whole body, so a retried request
//!   never duplicates half of itself. The error names the row and column.
//! - **Strict names.** A body field must name a stream column: exactly, or else by a
//!   case-insensitive match that is unique. Anything else is an error that lists the
//!   stream's columns, so a typo (`pricee`) is never silently dropped as NULL.
//! - **Missing means NULL.** An absent field, JSON `null` or an empty unquoted CSV field
//!   is NULL; for a NOT NULL column that is an error.
//! - **A JSON string is read like a CSV field.** Text is parsed by the column's type
//!   (`"42"` into BIGINT, `"true"` into BOOLEAN, `"12.50"` into DECIMAL), so CSV and
//!   JSON accept the same spellings; see `value` for each type's rules.
//! - **Row numbers** are 1-based physical lines for NDJSON and CSV (the CSV header is
//!   line 1), element indexes for a JSON array, row indexes for Arrow IPC.
//!
//! `application/json-seq` (RFC 7464) is not accepted: its records start with an ASCII
//! RS byte that NDJSON clients never send, and no client we know of needs it.

mod csv;
mod ipc;
mod json;
mod parse;
mod value;

use std::collections::HashMap;
use std::fmt;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// A request body format, chosen from the `Content-Type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line; blank lines are skipped.
    Ndjson,
    /// A JSON array of objects (a single top-level object is accepted as one row).
    JsonArray,
    /// RFC 4180 CSV. With `header`, the first line names the columns in any order;
    /// without, every line has exactly the stream's columns in schema order.
    Csv { header: bool },
    /// An Arrow IPC stream (schema message, then record batches).
    ArrowIpc,
}

impl Format {
    /// From a Content-Type header value (parameters like `; charset=utf-8` ignored).
    /// `csv_header` comes from the `?header=` query parameter. `None` for a media type
    /// ingest does not read (the caller answers 415).
    pub fn from_content_type(content_type: &str, csv_header: bool) -> Option<Format> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonl"
            | "application/x-jsonlines" => Some(Format::Ndjson),
            "application/json" => Some(Format::JsonArray),
            "text/csv" => Some(Format::Csv { header: csv_header }),
            "application/vnd.apache.arrow.stream" => Some(Format::ArrowIpc),
            _ => None,
        }
    }
}

/// Decode a whole request body into ONE RecordBatch with exactly `schema`'s fields (in
/// order). All-or-nothing: any bad row fails the whole body. An empty body, or one with
/// no rows, gives a zero-row batch.
pub fn decode(
    format: &Format,
    body: &[u8],
    schema: &SchemaRef,
) -> Result<RecordBatch, DecodeError> {
    // Editors on Windows start UTF-8 text with a byte-order mark; it is not data.
    let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match format {
        Format::Ndjson => json::decode_ndjson(text, schema),
        Format::JsonArray => json::decode_array(text, schema),
        Format::Csv { header } => csv::decode(text, *header, schema),
        Format::ArrowIpc => ipc::decode(body, schema),
    }
}

/// Why a body was refused. `Display` reads on its own, e.g.
/// `line 2, column "id": expected BIGINT, got "abc"`; the HTTP layer also reports
/// `row` and `column` as separate fields.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// 1-based line (NDJSON, CSV) or row (JSON array, Arrow IPC); `None` when the
    /// problem is the body as a whole.
    pub row: Option<usize>,
    /// What `row` counts, which decides whether `Display` says `line` or `row`.
    pub row_kind: RowKind,
    /// The stream column the bad value was meant for.
    pub column: Option<String>,
    /// What is wrong, without the location: `expected BIGINT, got "abc"`.
    pub message: String,
}

/// What a [`DecodeError::row`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// A physical line of a text body (NDJSON, CSV).
    Line,
    /// A row: an element of a JSON array, a row of an Arrow IPC stream.
    Row,
}

impl DecodeError {
    /// An error about the body as a whole.
    fn body(message: impl Into<String>) -> Self {
        DecodeError {
            row: None,
            row_kind: RowKind::Row,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.row_kind {
            RowKind::Line => "line",
            RowKind::Row => "row",
        };
        match (self.row, &self.column) {
            (Some(row), Some(col)) => write!(f, "{unit} {row}, column \"{col}\": {}", self.message),
            (Some(row), None) => write!(f, "{unit} {row}: {}", self.message),
            (None, Some(col)) => write!(f, "column \"{col}\": {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Body field name → stream column index, shared by every format. Built once per body.
struct ColumnNames {
    names: Vec<String>,
    lower: Vec<String>,
    exact: HashMap<String, usize>,
    /// `auction, bidder, price`, for the unknown-column message.
    listing: String,
}

impl ColumnNames {
    fn new(schema: &SchemaRef) -> Self {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        ColumnNames {
            lower: names.iter().map(|n| n.to_lowercase()).collect(),
            exact: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            listing: names.join(", "),
            names,
        }
    }

    fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// The column `name` refers to. `hint` is the column a well-ordered body would name
    /// next; checking it first skips hashing on the common path.
    fn resolve(&self, name: &str, hint: usize) -> Result<usize, String> {
        if self.names.get(hint).is_some_and(|n| n == name) {
            return Ok(hint);
        }
        if let Some(&i) = self.exact.get(name) {
            return Ok(i);
        }
        // Rare path (a field not spelled like its column): allocation is fine here.
        let lower = name.to_lowercase();
        let mut matches = (0..self.names.len()).filter(|&i| self.lower[i] == lower);
        match (matches.next(), matches.next()) {
            (Some(i), None) => Ok(i),
            (Some(a), Some(b)) => Err(format!(
                "field \"{name}\" matches columns \"{}\" and \"{}\" ignoring case; use the exact name",
                self.names[a], self.names[b]
            )),
            (None, _) => Err(format!(
                "unknown column \"{name}\"; the stream has columns {}",
                self.listing
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn content_types() {
        let f = |ct| Format::from_content_type(ct, true);
        assert_eq!(f("application/x-ndjson"), Some(Format::Ndjson));
        assert_eq!(f("application/jsonl; charset=utf-8"), Some(Format::Ndjson));
        assert_eq!(f("Application/JSON"), Some(Format::JsonArray));
        assert_eq!(
            f("text/csv;charset=UTF-8"),
            Some(Format::Csv { header: true })
        );
        assert_eq!(
            Format::from_content_type("text/csv", false),
            Some(Format::Csv { header: false })
        );
        assert_eq!(
            f(" application/vnd.apache.arrow.stream "),
            Some(Format::ArrowIpc)
        );
        assert_eq!(f("application/json-seq"), None);
        assert_eq!(f("text/plain"), None);
        assert_eq!(f(""), None);
    }

    #[test]
    fn error_display() {
        let mut e = DecodeError {
            row: Some(2),
            row_kind: RowKind::Line,
            column: Some("id".into()),
            message: "expected BIGINT, got \"abc\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "line 2, column \"id\": expected BIGINT, got \"abc\""
        );
        e.row_kind = RowKind::Row;
        assert_eq!(
            e.to_string(),
            "row 2, column \"id\": expected BIGINT, got \"abc\""
        );
        e.column = None;
        assert_eq!(e.to_string(), "row 2: expected BIGINT, got \"abc\"");
        e.row = None;
        assert_eq!(e.to_string(), "expected BIGINT, got \"abc\"");
        e.column = Some("id".into());
        assert_eq!(e.to_string(), "column \"id\": expected BIGINT, got \"abc\"");
    }

    #[test]
    fn name_resolution() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("auction", DataType::Int64, true),
            Field::new("Bidder", DataType::Int64, true),
            Field::new("id", DataType::Int64, true),
            Field::new("ID", DataType::Int64, true),
        ]));
        let names = ColumnNames::new(&schema);
        assert_eq!(names.resolve("auction", 0), Ok(0));
        assert_eq!(names.resolve("auction", 3), Ok(0));
        assert_eq!(names.resolve("bidder", 0), Ok(1));
        assert_eq!(names.resolve("BIDDER", 9), Ok(1));
        assert_eq!(names.resolve("ID", 0), Ok(3));
        assert_eq!(
            names.resolve("Id", 0),
            Err(
                "field \"Id\" matches columns \"id\" and \"ID\" ignoring case; use the exact name"
                    .into()
            )
        );
        assert_eq!(
            names.resolve("pricee", 0),
            Err("unknown column \"pricee\"; the stream has columns auction, Bidder, id, ID".into())
        );
    }
}
