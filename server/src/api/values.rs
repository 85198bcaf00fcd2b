//! Arrow values as JSON (design/HTTP.md "Values in JSON"): integers and floats are
//! numbers, DECIMAL a string, TIMESTAMP an ISO 8601 string (RFC 3339 with an offset
//! when the type has a time zone), NULL `null`; other types use Arrow's display text.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::*;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Number, Value};

/// One column's values as JSON, row by row.
pub fn column_values(array: &dyn Array) -> Result<Vec<Value>, ArrowError> {
    macro_rules! numbers {
        ($t:ty) => {
            array
                .as_primitive::<$t>()
                .iter()
                .map(|v| v.map_or(Value::Null, |v| Value::from(v)))
                .collect()
        };
    }
    macro_rules! floats {
        ($t:ty) => {
            array
                .as_primitive::<$t>()
                .iter()
                .map(|v| {
                    v.and_then(|v| Number::from_f64(v as f64))
                        .map_or(Value::Null, Value::Number)
                })
                .collect()
        };
    }
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; array.len()],
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Bool))
            .collect(),
        DataType::Int8 => numbers!(Int8Type),
        DataType::Int16 => numbers!(Int16Type),
        DataType::Int32 => numbers!(Int32Type),
        DataType::Int64 => numbers!(Int64Type),
        DataType::UInt8 => numbers!(UInt8Type),
        DataType::UInt16 => numbers!(UInt16Type),
        DataType::UInt32 => numbers!(UInt32Type),
        DataType::UInt64 => numbers!(UInt64Type),
        DataType::Float16 => array
            .as_primitive::<Float16Type>()
            .iter()
            .map(|v| {
                v.and_then(|v| Number::from_f64(v.to_f64()))
                    .map_or(Value::Null, Value::Number)
            })
            .collect(),
        DataType::Float32 => floats!(Float32Type),
        DataType::Float64 => floats!(Float64Type),
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::from))
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::from))
            .collect(),
        DataType::Utf8View => array
            .as_string_view()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::from))
            .collect(),
        _ => {
            let options = FormatOptions::default().with_null("");
            let formatter = ArrayFormatter::try_new(array, &options)?;
            (0..array.len())
                .map(|i| {
                    if array.is_null(i) {
                        Value::Null
                    } else {
                        Value::String(formatter.value(i).to_string())
                    }
                })
                .collect()
        }
    })
}

/// Rows of `batches` as JSON arrays (row-major), for `{"rows": [[...], ...]}`.
pub fn rows(batches: &[RecordBatch]) -> Result<Vec<Value>, ArrowError> {
    let mut out = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for batch in batches {
        let columns: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .map(|c| column_values(c.as_ref()))
            .collect::<Result<_, _>>()?;
        let mut iters: Vec<_> = columns.into_iter().map(|c| c.into_iter()).collect();
        for _ in 0..batch.num_rows() {
            out.push(Value::Array(
                iters
                    .iter_mut()
                    .map(|c| c.next().unwrap_or(Value::Null))
                    .collect(),
            ));
        }
    }
    Ok(out)
}

/// Each row of `batch` as the text of a JSON object, column name to value, with the keys
/// in column order (what Kafka consumers read, from Weir's listener and from its sinks).
pub fn row_objects(batch: &RecordBatch) -> Result<Vec<String>, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| column_values(c.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let keys: Vec<String> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| Value::String(f.name().clone()).to_string())
        .collect();
    Ok((0..batch.num_rows())
        .map(|i| {
            let fields: Vec<String> = keys
                .iter()
                .zip(&columns)
                .map(|(k, c)| format!("{k}:{}", c[i]))
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Decimal128Array, Float64Array, Int64Array, TimestampNanosecondArray,
    };
    use std::sync::Arc;

    #[test]
    fn http_value_encodings() {
        let ts = TimestampNanosecondArray::from(vec![Some(1_704_067_210_000_000_000), None]);
        assert_eq!(
            column_values(&ts).unwrap(),
            vec![Value::from("2024-01-01T00:00:10"), Value::Null]
        );
        let tz = ts.clone().with_timezone("+00:00");
        assert_eq!(
            column_values(&tz).unwrap()[0],
            Value::from("2024-01-01T00:00:10Z")
        );
        let d = Decimal128Array::from(vec![12345])
            .with_precision_and_scale(10, 2)
            .unwrap();
        assert_eq!(column_values(&d).unwrap(), vec![Value::from("123.45")]);
        assert_eq!(
            column_values(&Int64Array::from(vec![7])).unwrap(),
            vec![Value::from(7)]
        );
        assert_eq!(
            column_values(&Float64Array::from(vec![f64::NAN, 1.5])).unwrap(),
            vec![Value::Null, Value::from(1.5)]
        );
        let batch =
            RecordBatch::try_from_iter(vec![("a", Arc::new(Int64Array::from(vec![1, 2])) as _)])
                .unwrap();
        assert_eq!(
            rows(&[batch]).unwrap(),
            vec![serde_json::json!([1]), serde_json::json!([2])]
        );
    }
}
