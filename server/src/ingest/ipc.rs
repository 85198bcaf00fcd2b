//! Arrow IPC stream bodies (`application/vnd.apache.arrow.stream`). Arrow's
//! `StreamReader` owns the format; this file owns fitting the body's batches to the
//! stream's schema and concatenating them into one batch.
//!
//! - Body columns are matched to stream columns by name, like JSON fields (exact, else
//!   a unique case-insensitive match). A body column the stream lacks is an error; a
//!   stream column the body lacks is all NULL, or an error if it is NOT NULL.
//! - A column of another type is converted with arrow's `cast` in its non-lenient mode,
//!   so a value that does not fit (300 into TINYINT) is an error naming the column
//!   rather than a silent NULL.
//! - `row` in errors is the 1-based row across all of the body's batches.

use arrow::array::{Array, ArrayRef, new_null_array};
use arrow::compute::{CastOptions, cast_with_options, concat_batches};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::{ColumnNames, DecodeError, RowKind};
use crate::types::sql_type_name;

pub(super) fn decode(body: &[u8], schema: &SchemaRef) -> Result<RecordBatch, DecodeError> {
    if body.is_empty() {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    let reader = StreamReader::try_new(body, None).map_err(invalid)?;
    let sources = source_columns(&reader.schema(), schema)?;
    let mut batches = Vec::new();
    let mut rows_before = 0;
    for batch in reader {
        let batch = batch.map_err(invalid)?;
        let columns = schema
            .fields()
            .iter()
            .zip(&sources)
            .map(|(field, source)| {
                fit(
                    field,
                    source.map(|i| batch.column(i)),
                    batch.num_rows(),
                    rows_before,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        batches.push(
            RecordBatch::try_new_with_options(schema.clone(), columns, &options).map_err(bug)?,
        );
        rows_before += batch.num_rows();
    }
    concat_batches(schema, &batches).map_err(bug)
}

/// For each stream column, the index of the body column that fills it, if any.
fn source_columns(body: &Schema, schema: &SchemaRef) -> Result<Vec<Option<usize>>, DecodeError> {
    let names = ColumnNames::new(schema);
    let mut sources = vec![None; schema.fields().len()];
    for (i, field) in body.fields().iter().enumerate() {
        let column = names.resolve(field.name(), i).map_err(DecodeError::body)?;
        if sources[column].replace(i).is_some() {
            return Err(in_column(
                names.name(column),
                "more than one column of the body gives this column",
            ));
        }
    }
    for (field, source) in schema.fields().iter().zip(&sources) {
        if source.is_none() && !field.is_nullable() {
            return Err(in_column(
                field.name(),
                "missing from the body, and the column is NOT NULL",
            ));
        }
    }
    Ok(sources)
}

/// One body column (or its absence) as `field` wants it: cast if needed, NOT NULL checked.
fn fit(
    field: &Field,
    source: Option<&ArrayRef>,
    rows: usize,
    rows_before: usize,
) -> Result<ArrayRef, DecodeError> {
    let array = match source {
        None => new_null_array(field.data_type(), rows),
        Some(array) if array.data_type() == field.data_type() => array.clone(),
        Some(array) => {
            let options = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(array, field.data_type(), &options).map_err(|e| {
                let (from, to) = (
                    sql_type_name(array.data_type()),
                    sql_type_name(field.data_type()),
                );
                in_column(field.name(), &format!("cannot convert {from} to {to}: {e}"))
            })?
        }
    };
    if !field.is_nullable() {
        // Logical nulls, so a body column of Arrow's Null type counts as all NULL.
        if let Some(first) = array
            .logical_nulls()
            .and_then(|nulls| (0..rows).find(|&i| nulls.is_null(i)))
        {
            return Err(DecodeError {
                row: Some(rows_before + first + 1),
                row_kind: RowKind::Row,
                column: Some(field.name().clone()),
                message: "missing value for NOT NULL column".to_string(),
            });
        }
    }
    Ok(array)
}

fn in_column(column: &str, message: &str) -> DecodeError {
    DecodeError {
        column: Some(column.to_string()),
        ..DecodeError::body(message)
    }
}

fn invalid(e: ArrowError) -> DecodeError {
    DecodeError::body(format!("body is not a valid Arrow IPC stream: {e}"))
}

fn bug(e: ArrowError) -> DecodeError {
    DecodeError::body(format!("internal error assembling the batch (a bug): {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::{Format, decode as decode_body};
    use super::*;
    use arrow::array::{AsArray, Int8Array, Int32Array, Int64Array, NullArray, StringArray};
    use arrow::datatypes::{DataType, Int8Type, Int64Type};
    use arrow::ipc::writer::StreamWriter;
    use std::sync::Arc;

    fn stream() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("small", DataType::Int8, true),
        ]))
    }

    /// An IPC stream body holding `batches` (all with the first batch's schema).
    fn body(batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = StreamWriter::try_new(&mut out, &batches[0].schema()).unwrap();
        for batch in batches {
            writer.write(batch).unwrap();
        }
        writer.finish().unwrap();
        drop(writer);
        out
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn ipc(bytes: &[u8]) -> Result<RecordBatch, DecodeError> {
        decode_body(&Format::ArrowIpc, bytes, &stream())
    }

    #[test]
    fn round_trip_concatenates_batches() {
        let make = |ids: Vec<i64>| {
            let n = ids.len();
            RecordBatch::try_new(
                stream(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(vec![Some("x"); n])),
                    Arc::new(Int8Array::from(vec![None; n])),
                ],
            )
            .unwrap()
        };
        let decoded = ipc(&body(&[make(vec![1, 2]), make(vec![3])])).unwrap();
        assert_eq!(decoded, make(vec![1, 2, 3]));
    }

    #[test]
    fn columns_match_by_name_cast_and_fill_nulls() {
        let sent = batch(vec![
            ("SMALL", Arc::new(Int32Array::from(vec![1, -2])) as ArrayRef),
            ("id", Arc::new(Int32Array::from(vec![10, 20]))),
        ]);
        let decoded = ipc(&body(&[sent])).unwrap();
        assert_eq!(decoded.schema(), stream());
        assert_eq!(
            decoded.column(0).as_primitive::<Int64Type>().values(),
            &[10, 20]
        );
        assert_eq!(decoded.column(1).null_count(), 2);
        assert_eq!(
            decoded.column(2).as_primitive::<Int8Type>().values(),
            &[1, -2]
        );
    }

    #[test]
    fn column_errors() {
        let ids = || Arc::new(Int64Array::from(vec![1])) as ArrayRef;
        let extra = batch(vec![
            ("id", ids()),
            ("nmae", Arc::new(StringArray::from(vec!["a"]))),
        ]);
        assert_eq!(
            ipc(&body(&[extra])).unwrap_err().to_string(),
            "unknown column \"nmae\"; the stream has columns id, name, small"
        );
        let no_id = batch(vec![(
            "name",
            Arc::new(StringArray::from(vec!["a"])) as ArrayRef,
        )]);
        assert_eq!(
            ipc(&body(&[no_id])).unwrap_err().to_string(),
            "column \"id\": missing from the body, and the column is NOT NULL"
        );
        let twice = batch(vec![("id", ids()), ("ID", ids())]);
        assert_eq!(
            ipc(&body(&[twice])).unwrap_err().to_string(),
            "column \"id\": more than one column of the body gives this column"
        );
        let overflow = batch(vec![
            ("id", ids()),
            ("small", Arc::new(Int32Array::from(vec![300]))),
        ]);
        let err = ipc(&body(&[overflow])).unwrap_err();
        assert_eq!(err.column.as_deref(), Some("small"));
        assert!(
            err.to_string()
                .starts_with("column \"small\": cannot convert INT to TINYINT: "),
            "{err}"
        );
        let text = batch(vec![(
            "id",
            Arc::new(StringArray::from(vec!["abc"])) as ArrayRef,
        )]);
        let err = ipc(&body(&[text])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("column \"id\": cannot convert TEXT to BIGINT: "),
            "{err}"
        );
    }

    #[test]
    fn nulls_in_not_null_columns_name_the_row() {
        let nullable = |ids: Vec<Option<i64>>| {
            let ids = Arc::new(Int64Array::from(ids)) as ArrayRef;
            RecordBatch::try_from_iter_with_nullable(vec![("id", ids, true)]).unwrap()
        };
        let (first, second) = (
            nullable(vec![Some(1), Some(2)]),
            nullable(vec![Some(3), None]),
        );
        let err = ipc(&body(&[first, second])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 4, column \"id\": missing value for NOT NULL column"
        );
        let nulls = batch(vec![("id", Arc::new(NullArray::new(1)) as ArrayRef)]);
        let err = ipc(&body(&[nulls])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 1, column \"id\": missing value for NOT NULL column"
        );
    }

    #[test]
    fn empty_and_malformed_bodies() {
        assert_eq!(ipc(b"").unwrap().num_rows(), 0);
        let schema_only = {
            let mut out = Vec::new();
            StreamWriter::try_new(&mut out, &stream())
                .unwrap()
                .finish()
                .unwrap();
            out
        };
        assert_eq!(ipc(&schema_only).unwrap().num_rows(), 0);
        let err = ipc(b"{\"id\": 1}").unwrap_err();
        assert_eq!((err.row, err.column.as_deref()), (None, None));
        assert!(
            err.message
                .starts_with("body is not a valid Arrow IPC stream: "),
            "{err}"
        );
        let sent = body(&[batch(vec![(
            "id",
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        )])]);
        let err = ipc(&sent[..sent.len() - 20]).unwrap_err();
        assert!(
            err.message
                .starts_with("body is not a valid Arrow IPC stream: "),
            "{err}"
        );
    }
}
