//! Results as Postgres messages: rows (text or binary per column, through `arrow-pg`),
//! command tags, and rows in COPY's text format.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use futures::stream;
use pgwire::api::portal::Format;
use pgwire::api::results::{
    CopyEncoder, CopyTextOptions, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::error::{PgWireError, PgWireResult};

use super::errors::user_error;
use super::split::leading_words;
use crate::engine::StatementResult;

/// The command tag psql prints for a statement of Weir's that returned no rows.
pub fn command_tag(text: &str, rows: Option<u64>) -> Tag {
    let words = leading_words(text, 3);
    let take = match words.get(1).map(String::as_str) {
        Some("MATERIALIZED") => 3,
        _ if words.first().is_some_and(|w| w == "FLUSH") => 1,
        _ => 2,
    };
    let command = words
        .iter()
        .take(take)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    match (words.first().map(String::as_str), rows) {
        (Some("INSERT"), Some(n)) => Tag::new("INSERT").with_oid(0).with_rows(n as usize),
        (_, Some(n)) => Tag::new(&command).with_rows(n as usize),
        _ => Tag::new(&command),
    }
}

/// The rows of a result as a query response, each column in `format`.
pub fn rows_response(
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
            && fields
                .get(i)
                .is_some_and(|f| f.format() == FieldFormat::Text)
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

pub fn result_response(
    text: &str,
    result: StatementResult,
    format: &Format,
) -> PgWireResult<Response> {
    match result {
        StatementResult::Rows {
            schema, batches, ..
        } => Ok(Response::Query(rows_response(&schema, batches, format)?)),
        StatementResult::Ok { rows_affected, .. } => {
            Ok(Response::Execution(command_tag(text, rows_affected)))
        }
    }
}

/// One row of one text column.
pub fn single_text(name: &str, value: &str) -> PgWireResult<Response> {
    let schema = Arc::new(Schema::new(vec![datafusion::arrow::datatypes::Field::new(
        name.to_ascii_lowercase(),
        DataType::Utf8,
        true,
    )]));
    let column = Arc::new(datafusion::arrow::array::StringArray::from(vec![value]));
    let batch = RecordBatch::try_new(schema.clone(), vec![column])
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok(Response::Query(rows_response(
        &schema,
        vec![batch],
        &Format::UnifiedText,
    )?))
}

/// A batch's rows in COPY's text format.
pub fn copy_rows(
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
