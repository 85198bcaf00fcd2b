//! CSV bodies. The `csv` crate owns the RFC 4180 grammar (quoting, escaped quotes,
//! quoted line breaks, CRLF, blank lines skipped); this file owns the header, field
//! counts, NULLs and row numbering, and hands each field to `value::ColumnBuilder`.
//!
//! - With a header (the default) the first record names the columns, in any order,
//!   matched like JSON field names (surrounding whitespace ignored). A column the header
//!   leaves out is NULL in every row; if it is NOT NULL the header line is refused.
//!   Every record must then have as many fields as the header.
//! - Without a header, every record has exactly the stream's columns in schema order.
//! - An empty unquoted field is NULL; a quoted empty field (`""`) is the empty string,
//!   parsed by the column's type like any other text. The `csv` crate does not say
//!   whether a field was quoted, so for an empty field (only) the record's raw bytes are
//!   re-scanned to tell the two apart.
//! - `row` in errors is the 1-based physical line where the record starts (the header
//!   is line 1); a record with a quoted line break spans several lines.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use csv::{ByteRecord, Reader, ReaderBuilder};

use super::value::{self, ColumnBuilder};
use super::{ColumnNames, DecodeError, RowKind};

pub(super) fn decode(
    body: &[u8],
    header: bool,
    schema: &SchemaRef,
) -> Result<RecordBatch, DecodeError> {
    let names = ColumnNames::new(schema);
    let lines = body.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut builders = value::builders(schema, lines)?;
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut record = ByteRecord::new();

    // `targets[i]` is the column field i fills; `absent` are columns no field fills.
    let (targets, absent) = if header {
        if !read(&mut reader, &mut record)? {
            return value::finish_batch(schema, &mut builders, 0);
        }
        header_targets(&record, record_start(body, &record).1, &names, &builders)?
    } else {
        ((0..builders.len()).collect(), Vec::new())
    };

    let mut count = 0;
    while read(&mut reader, &mut record)? {
        let (_, line) = record_start(body, &record);
        if record.len() != targets.len() {
            let context = if header { " (as in the header)" } else { "" };
            return Err(at(
                line,
                None,
                format!(
                    "expected {} fields{context}, got {}",
                    targets.len(),
                    record.len()
                ),
            ));
        }
        for (i, field) in record.iter().enumerate() {
            let column = targets[i];
            let builder = &mut builders[column];
            let result = if field.is_empty() && !quoted_empty(raw_record(body, &record, &reader), i)
            {
                builder.append_null()
            } else {
                match std::str::from_utf8(field) {
                    Ok(text) => builder.append_str(text),
                    Err(_) => Err("not valid UTF-8".to_string()),
                }
            };
            result.map_err(|message| at(line, Some(names.name(column)), message))?;
        }
        for &column in &absent {
            let result = builders[column].append_null();
            result.map_err(|message| at(line, Some(names.name(column)), message))?;
        }
        count += 1;
    }
    value::finish_batch(schema, &mut builders, count)
}

/// The next record into `record`; false at the end of the body.
fn read(reader: &mut Reader<&[u8]>, record: &mut ByteRecord) -> Result<bool, DecodeError> {
    reader
        .read_byte_record(record)
        .map_err(|e| DecodeError::body(format!("body is not valid CSV: {e}")))
}

/// Map header fields to columns; columns the header leaves out must be nullable.
fn header_targets(
    record: &ByteRecord,
    line: usize,
    names: &ColumnNames,
    builders: &[ColumnBuilder],
) -> Result<(Vec<usize>, Vec<usize>), DecodeError> {
    let mut targets = Vec::with_capacity(record.len());
    let mut given = vec![false; builders.len()];
    for (i, field) in record.iter().enumerate() {
        let name = std::str::from_utf8(field.trim_ascii()).map_err(|_| {
            at(
                line,
                None,
                format!("header field {} is not valid UTF-8", i + 1),
            )
        })?;
        let column = names
            .resolve(name, i)
            .map_err(|message| at(line, None, message))?;
        if std::mem::replace(&mut given[column], true) {
            return Err(at(
                line,
                Some(names.name(column)),
                "named twice in the header".to_string(),
            ));
        }
        targets.push(column);
    }
    let mut absent = Vec::new();
    for (column, builder) in builders.iter().enumerate() {
        if !given[column] {
            if !builder.nullable() {
                return Err(at(
                    line,
                    Some(names.name(column)),
                    "missing from the header, and the column is NOT NULL".to_string(),
                ));
            }
            absent.push(column);
        }
    }
    Ok((targets, absent))
}

/// Where the record just read starts: byte offset and 1-based line. The `csv` crate
/// records its position before skipping the blank lines (and the `\n` of a CRLF) in
/// front of a record, so step over those here.
fn record_start(body: &[u8], record: &ByteRecord) -> (usize, usize) {
    let (mut byte, mut line) = record
        .position()
        .map_or((0, 1), |p| (p.byte() as usize, p.line() as usize));
    while let Some(&b @ (b'\r' | b'\n')) = body.get(byte) {
        line += usize::from(b == b'\n');
        byte += 1;
    }
    (byte, line)
}

fn at(line: usize, column: Option<&str>, message: String) -> DecodeError {
    DecodeError {
        row: Some(line),
        row_kind: RowKind::Line,
        column: column.map(str::to_string),
        message,
    }
}

/// The raw bytes of the record just read: from its start to where the reader now is.
fn raw_record<'a>(body: &'a [u8], record: &ByteRecord, reader: &Reader<&[u8]>) -> &'a [u8] {
    let (start, _) = record_start(body, record);
    let end = reader.position().byte() as usize;
    body.get(start..end).unwrap_or_default()
}

/// Whether field `index` of a raw record is written as `""`. Quote state flips on every
/// `"`, which also handles escaped quotes (`""` inside a quoted field flips twice).
fn quoted_empty(raw: &[u8], index: usize) -> bool {
    let mut field = 0;
    let mut start = 0;
    let mut quoted = false;
    for (i, &b) in raw.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' | b'\n' | b'\r' if !quoted => {
                if field == index {
                    return &raw[start..i] == b"\"\"";
                }
                if b != b',' {
                    return false;
                }
                field += 1;
                start = i + 1;
            }
            _ => {}
        }
    }
    field == index && &raw[start..] == b"\"\""
}

#[cfg(test)]
mod tests {
    use super::super::{Format, decode as decode_body};
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;
    use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int32Type, Schema, TimeUnit};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]))
    }

    fn csv(body: &str) -> Result<RecordBatch, DecodeError> {
        decode_body(&Format::Csv { header: true }, body.as_bytes(), &schema())
    }

    fn bare(body: &str) -> Result<RecordBatch, DecodeError> {
        decode_body(&Format::Csv { header: false }, body.as_bytes(), &schema())
    }

    fn message(result: Result<RecordBatch, DecodeError>) -> String {
        result.unwrap_err().to_string()
    }

    fn names(batch: &RecordBatch) -> Vec<Option<String>> {
        batch
            .column(1)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn header_in_any_order_and_quoting() {
        let body = "score,id,name\r\n1.5,1,plain\n,2,\"with, comma\"\n2,3,\"say \"\"hi\"\"\"\n3,4,\"two\nlines\"\n";
        let batch = csv(body).unwrap();
        assert_eq!(batch.schema(), schema());
        assert_eq!(
            batch.column(0).as_primitive::<Int32Type>().values(),
            &[1, 2, 3, 4]
        );
        let expected = ["plain", "with, comma", "say \"hi\"", "two\nlines"];
        assert_eq!(
            names(&batch),
            expected.map(|s| Some(s.to_string())).to_vec()
        );
        let score = batch.column(2).as_primitive::<Float64Type>();
        assert_eq!(
            (score.value(0), score.is_null(1), score.value(3)),
            (1.5, true, 3.0)
        );
    }

    #[test]
    fn empty_unquoted_is_null_and_quoted_is_empty_text() {
        let batch = csv("id,name,score\n1,,\n2,\"\",\n3,\"\"\n").unwrap_err();
        assert_eq!(
            batch.to_string(),
            "line 4: expected 3 fields (as in the header), got 2"
        );
        let batch = csv("id,name,score\n1,,\n2,\"\",\n3,x,\"\"\n");
        assert_eq!(
            message(batch),
            "line 4, column \"score\": expected DOUBLE, got \"\""
        );
        let batch = csv("id,name,score\n1,,\n2,\"\",\n3,x,\n4,\"\"\"\",\n5,\"\"\r\n").unwrap_err();
        assert_eq!(
            batch.to_string(),
            "line 6: expected 3 fields (as in the header), got 2"
        );
        let batch = csv("id,score,name\n1,,\n2,,\"\"\n3,,\"\"\r\n4,,\"a,\"\"\"\n").unwrap();
        assert_eq!(
            names(&batch),
            vec![
                None,
                Some(String::new()),
                Some(String::new()),
                Some("a,\"".to_string())
            ]
        );
        let batch = csv("name,id\n\"\",1\n,2\n").unwrap();
        assert_eq!(names(&batch), vec![Some(String::new()), None]);
    }

    #[test]
    fn header_columns_may_be_left_out_unless_not_null() {
        let batch = csv("ID , Name\n7,x\n").unwrap();
        assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(0), 7);
        assert_eq!(batch.column(2).null_count(), 1);
        assert_eq!(
            message(csv("name,score\nx,1\n")),
            "line 1, column \"id\": missing from the header, and the column is NOT NULL"
        );
        assert_eq!(
            message(csv("id,nmae\n1,x\n")),
            "line 1: unknown column \"nmae\"; the stream has columns id, name, score"
        );
        assert_eq!(
            message(csv("id,name,ID\n")),
            "line 1, column \"id\": named twice in the header"
        );
        assert_eq!(
            message(csv("\r\n\nid,nmae\n")).split(':').next(),
            Some("line 3")
        );
    }

    #[test]
    fn header_only_or_empty_gives_zero_rows() {
        for body in ["", "id,name,score\n", "\n\nid,name,score\n\n"] {
            let batch = csv(body).unwrap();
            assert_eq!((batch.num_rows(), batch.num_columns()), (0, 3));
        }
        assert_eq!(bare("").unwrap().num_rows(), 0);
    }

    #[test]
    fn headerless_rows_follow_schema_order() {
        let batch = bare("1,a,0.5\n2,,\n\n3,\"c\",1e2").unwrap();
        assert_eq!(
            batch.column(0).as_primitive::<Int32Type>().values(),
            &[1, 2, 3]
        );
        assert_eq!(
            names(&batch),
            vec![Some("a".into()), None, Some("c".into())]
        );
        let batch = bare("1,,\n\n\n2,\"\",\n").unwrap();
        assert_eq!(names(&batch), vec![None, Some(String::new())]);
        assert_eq!(
            message(bare("1,a,0.5\n2,b\n")),
            "line 2: expected 3 fields, got 2"
        );
        assert_eq!(
            message(bare("1,a,0.5\r\n\r\n\n2,b\r\n")),
            "line 4: expected 3 fields, got 2"
        );
        assert_eq!(
            message(bare("1,a,0.5,9\n")),
            "line 1: expected 3 fields, got 4"
        );
    }

    #[test]
    fn errors_name_the_physical_line() {
        let body = "id,name,score\n1,\"multi\nline\",1\n2,x,abc\n";
        let err = csv(body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 4, column \"score\": expected DOUBLE, got \"abc\""
        );
        assert_eq!((err.row, err.row_kind), (Some(4), RowKind::Line));
        assert_eq!(
            message(csv("id,name\n1,a\n,b\n")),
            "line 3, column \"id\": missing value for NOT NULL column"
        );
        let invalid = decode_body(
            &Format::Csv { header: true },
            b"id,name\n1,\xff\n",
            &schema(),
        );
        assert_eq!(message(invalid), "line 2, column \"name\": not valid UTF-8");
    }

    #[test]
    fn every_type_parses_from_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("b", DataType::Boolean, true),
            Field::new("d", DataType::Date32, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("x", DataType::Binary, true),
            Field::new("m", DataType::Decimal128(5, 1), true),
        ]));
        let body = "b,d,t,x,m\nTRUE,1970-01-03,2024-01-01 00:00:00+01:00,00ff,-1.5\nf,,1000,,\n";
        let batch = decode_body(&Format::Csv { header: true }, body.as_bytes(), &schema).unwrap();
        assert_eq!(batch.schema(), schema);
        assert_eq!(
            batch.column(0).as_boolean().iter().collect::<Vec<_>>(),
            vec![Some(true), Some(false)]
        );
        assert_eq!(batch.column(1).as_primitive::<Date32Type>().value(0), 2);
        let t = batch.column(2).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(t.values(), &[1_704_063_600_000_000, 1_000_000]);
        assert_eq!(batch.column(3).as_binary::<i32>().value(0), &[0, 255]);
        assert_eq!(
            batch
                .column(4)
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(0),
            -15
        );
    }

    #[test]
    fn quoted_empty_scanner() {
        assert!(quoted_empty(b"\"\",a\n", 0));
        assert!(quoted_empty(b"a,\"\"\r\n", 1));
        assert!(quoted_empty(b"a,\"\"", 1));
        assert!(!quoted_empty(b"a,,b\n", 1));
        assert!(!quoted_empty(b"\"x,\"\"\",,\"\"\n", 1));
        assert!(quoted_empty(b"\"x,\"\"\",,\"\"\n", 2));
        assert!(!quoted_empty(b"a\n", 3));
    }
}
