//! One value into one column: the per-type rules every text format shares, and the Arrow
//! builders the values go into. Knows nothing of rows, field names or body formats; a
//! refusal is a message without a location, which the format's decoder completes.
//!
//! Values arrive as what a JSON parser sees (bool, integer, float, string, null) or as
//! CSV text, which takes the string path. Per type:
//! - integers: JSON integers, or text holding an integer (`"42"`); range-checked
//!   (`expected SMALLINT, got 70000`). A JSON float is refused, even `42.0`.
//! - REAL, DOUBLE: any JSON number, or text Rust's float parser accepts (`"1.5e3"`,
//!   `"NaN"`, `"inf"`); a finite value too large for REAL is refused.
//! - BOOLEAN: `true`/`false`, or text `true`/`false`/`t`/`f`/`1`/`0` in any case.
//! - TEXT: strings only; a JSON number or boolean is refused (`expected TEXT, got 42`)
//!   rather than silently reformatted.
//! - BYTEA: text of hex digit pairs, optionally after `\x` (Postgres' output form).
//! - DECIMAL(p,s): text or a JSON number, exact: more than `s` significant digits after
//!   the point, or more than `p-s` before it, is refused rather than rounded. A JSON float
//!   is read as its shortest round-trip spelling (`12.34` stays `12.34`).
//! - DATE: `YYYY-MM-DD`.
//! - TIMESTAMP[TZ]: RFC 3339 with or without an offset, `T` or space between date and
//!   time, fractional seconds up to nanoseconds, or a bare date (midnight); a JSON
//!   integer, or text holding one, is epoch milliseconds. An offset is converted to UTC;
//!   a value without one is taken as UTC (as Postgres does with `TimeZone = UTC`), also
//!   for a column with a time zone. Stored in the column's unit; finer digits are
//!   truncated toward the past.
//! - Surrounding ASCII whitespace is ignored except for TEXT and BYTEA.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, PrimitiveBuilder,
    StringBuilder, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Date32Type, Field, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use chrono::NaiveDate;

use super::DecodeError;
use super::parse::{
    Fail, decimal_from_f64, decode_hex, millis_to_unit, parse_bool, parse_decimal, parse_timestamp,
    scale_decimal,
};
use crate::types::sql_type_name;

/// Why a value was refused (`expected BIGINT, got "abc"`); the caller adds the location.
pub(super) type Refusal = String;

/// Longest rendering of a bad value in a message, in characters.
const MAX_SHOWN: usize = 40;

/// A bad value as the user sent it, rendered as JSON (strings quoted) and truncated.
#[derive(Clone, Copy)]
pub(super) enum Got<'a> {
    Str(&'a str),
    Int(i128),
    Float(f64),
    Bool(bool),
    /// Already JSON text, e.g. an object that was sent where a scalar belongs.
    Json(&'a str),
}

impl fmt::Display for Got<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match *self {
            Got::Str(s) => serde_json::Value::from(s).to_string(),
            Got::Int(v) => v.to_string(),
            Got::Float(v) => serde_json::Value::from(v).to_string(),
            Got::Bool(v) => v.to_string(),
            Got::Json(s) => s.to_string(),
        };
        match text.char_indices().nth(MAX_SHOWN) {
            Some((cut, _)) => write!(f, "{}...", &text[..cut]),
            None => f.write_str(&text),
        }
    }
}

/// The builder of one stream column, plus what its messages need to know.
pub(super) struct ColumnBuilder {
    data_type: DataType,
    nullable: bool,
    kind: Kind,
}

enum Kind {
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Text(StringBuilder),
    /// With a scratch buffer reused for hex decoding, so a value costs no allocation.
    Bytes(BinaryBuilder, Vec<u8>),
    Date(Date32Builder),
    /// Epoch values in the column's unit; `finish` gives them the column's type.
    Timestamp(TimeUnit, Int64Builder),
    /// Precision, non-negative scale, builder.
    Decimal(u8, u8, Decimal128Builder),
}

/// Runs `$body` with `$b` bound to whichever builder `$kind` holds.
macro_rules! with_builder {
    ($kind:expr, $b:ident => $body:expr) => {
        match $kind {
            Kind::I8($b) => $body,
            Kind::I16($b) => $body,
            Kind::I32($b) => $body,
            Kind::I64($b) => $body,
            Kind::U8($b) => $body,
            Kind::U16($b) => $body,
            Kind::U32($b) => $body,
            Kind::U64($b) => $body,
            Kind::F32($b) => $body,
            Kind::F64($b) => $body,
            Kind::Bool($b) => $body,
            Kind::Text($b) => $body,
            Kind::Bytes($b, _) => $body,
            Kind::Date($b) => $body,
            Kind::Timestamp(_, $b) => $body,
            Kind::Decimal(_, _, $b) => $body,
        }
    };
}

impl ColumnBuilder {
    /// A builder for `field`, room for `capacity` values. Refuses types ingest cannot fill.
    pub(super) fn new(field: &Field, capacity: usize) -> Result<Self, Refusal> {
        let kind = match field.data_type() {
            DataType::Int8 => Kind::I8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => Kind::I16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => Kind::I32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Kind::I64(Int64Builder::with_capacity(capacity)),
            DataType::UInt8 => Kind::U8(UInt8Builder::with_capacity(capacity)),
            DataType::UInt16 => Kind::U16(UInt16Builder::with_capacity(capacity)),
            DataType::UInt32 => Kind::U32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => Kind::U64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => Kind::F32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Kind::F64(Float64Builder::with_capacity(capacity)),
            DataType::Boolean => Kind::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Utf8 => Kind::Text(StringBuilder::with_capacity(capacity, capacity * 8)),
            DataType::Binary => Kind::Bytes(BinaryBuilder::with_capacity(capacity, 0), Vec::new()),
            DataType::Date32 => Kind::Date(Date32Builder::with_capacity(capacity)),
            DataType::Timestamp(unit, _) => {
                Kind::Timestamp(*unit, Int64Builder::with_capacity(capacity))
            }
            DataType::Decimal128(p, s) if *s >= 0 => {
                let builder = Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?;
                Kind::Decimal(*p, *s as u8, builder)
            }
            other => {
                return Err(format!(
                    "ingest does not support columns of type {}",
                    sql_type_name(other)
                ));
            }
        };
        Ok(ColumnBuilder {
            data_type: field.data_type().clone(),
            nullable: field.is_nullable(),
            kind,
        })
    }

    pub(super) fn nullable(&self) -> bool {
        self.nullable
    }

    pub(super) fn append_null(&mut self) -> Result<(), Refusal> {
        if !self.nullable {
            return Err("missing value for NOT NULL column".to_string());
        }
        with_builder!(&mut self.kind, b => b.append_null());
        Ok(())
    }

    pub(super) fn append_bool(&mut self, v: bool) -> Result<(), Refusal> {
        match &mut self.kind {
            Kind::Bool(b) => {
                b.append_value(v);
                Ok(())
            }
            _ => Err(self.refuse(Got::Bool(v), Fail::Type)),
        }
    }

    pub(super) fn append_i64(&mut self, v: i64) -> Result<(), Refusal> {
        self.append_int(v.into(), Got::Int(v.into()))
    }

    pub(super) fn append_u64(&mut self, v: u64) -> Result<(), Refusal> {
        self.append_int(v.into(), Got::Int(v.into()))
    }

    /// An integer from JSON or from text; `got` is how the user spelled it.
    fn append_int(&mut self, v: i128, got: Got) -> Result<(), Refusal> {
        let result = match &mut self.kind {
            Kind::I8(b) => push_int(b, v),
            Kind::I16(b) => push_int(b, v),
            Kind::I32(b) => push_int(b, v),
            Kind::I64(b) => push_int(b, v),
            Kind::U8(b) => push_int(b, v),
            Kind::U16(b) => push_int(b, v),
            Kind::U32(b) => push_int(b, v),
            Kind::U64(b) => push_int(b, v),
            Kind::F32(b) => {
                b.append_value(v as f32);
                Ok(())
            }
            Kind::F64(b) => {
                b.append_value(v as f64);
                Ok(())
            }
            Kind::Timestamp(unit, b) => i64::try_from(v)
                .ok()
                .and_then(|ms| millis_to_unit(ms, *unit))
                .map(|t| b.append_value(t))
                .ok_or(Fail::Range),
            Kind::Decimal(p, s, b) => scale_decimal(v, 0, *p, *s).map(|d| b.append_value(d)),
            Kind::Bool(_) | Kind::Text(_) | Kind::Bytes(..) | Kind::Date(_) => Err(Fail::Type),
        };
        result.map_err(|fail| self.refuse(got, fail))
    }

    pub(super) fn append_f64(&mut self, v: f64) -> Result<(), Refusal> {
        let result = match &mut self.kind {
            Kind::F64(b) => {
                b.append_value(v);
                Ok(())
            }
            Kind::F32(b) => push_f32(b, v as f32, v.is_finite()),
            Kind::Decimal(p, s, b) => decimal_from_f64(v, *p, *s).map(|d| b.append_value(d)),
            _ => Err(Fail::Type),
        };
        result.map_err(|fail| self.refuse(Got::Float(v), fail))
    }

    /// A JSON string or a CSV field, parsed by the column's type.
    pub(super) fn append_str(&mut self, s: &str) -> Result<(), Refusal> {
        let t = s.trim_ascii();
        let result = match &mut self.kind {
            Kind::Text(b) => {
                b.append_value(s);
                Ok(())
            }
            Kind::Bytes(b, scratch) => match decode_hex(s, scratch) {
                true => {
                    b.append_value(&scratch[..]);
                    Ok(())
                }
                false => Err(Fail::Type),
            },
            Kind::Bool(b) => parse_bool(t).map(|v| b.append_value(v)).ok_or(Fail::Type),
            Kind::F64(b) => t
                .parse::<f64>()
                .map(|v| b.append_value(v))
                .map_err(|_| Fail::Type),
            Kind::F32(b) => match t.parse::<f32>() {
                // The parser saturates to infinity; only a spelled-out infinity may.
                Ok(v) => push_f32(b, v, !t.bytes().any(|c| c.eq_ignore_ascii_case(&b'i'))),
                Err(_) => Err(Fail::Type),
            },
            Kind::Date(b) => t
                .parse::<NaiveDate>()
                .map(|d| b.append_value(Date32Type::from_naive_date(d)))
                .map_err(|_| Fail::Type),
            Kind::Timestamp(unit, b) => parse_timestamp(t, *unit).map(|v| b.append_value(v)),
            Kind::Decimal(p, sc, b) => parse_decimal(t, *p, *sc).map(|v| b.append_value(v)),
            Kind::I8(_)
            | Kind::I16(_)
            | Kind::I32(_)
            | Kind::I64(_)
            | Kind::U8(_)
            | Kind::U16(_)
            | Kind::U32(_)
            | Kind::U64(_) => match t.parse::<i128>() {
                Ok(v) => return self.append_int(v, Got::Str(s)),
                Err(_) => Err(Fail::Type),
            },
        };
        result.map_err(|fail| self.refuse(Got::Str(s), fail))
    }

    /// The refusal for a value no column type takes (a JSON object or array), given as
    /// JSON text.
    pub(super) fn refuse_json(&self, json: &str) -> Refusal {
        self.refuse(Got::Json(json), Fail::Type)
    }

    fn refuse(&self, got: Got, fail: Fail) -> Refusal {
        let name = sql_type_name(&self.data_type);
        let expected = match self.kind {
            Kind::Timestamp(..) => {
                format!("{name} (e.g. \"2024-01-01T00:00:00Z\" or epoch milliseconds)")
            }
            Kind::Date(_) => format!("{name} (e.g. \"2024-01-01\")"),
            Kind::Bytes(..) => format!("{name} as hex (e.g. \"0a1b\")"),
            _ => name,
        };
        let note = match (fail, &self.kind) {
            (Fail::Scale, Kind::Decimal(_, s, _)) => {
                format!(" (more than {s} digits after the point)")
            }
            (Fail::Precision, Kind::Decimal(p, s, _)) => {
                format!(
                    " (more than {} digits before the point)",
                    p.saturating_sub(*s)
                )
            }
            (Fail::Range, Kind::Timestamp(..)) => " (out of range)".to_string(),
            _ => String::new(),
        };
        format!("expected {expected}, got {got}{note}")
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        if let Kind::Timestamp(unit, b) = &mut self.kind {
            let tz = match &self.data_type {
                DataType::Timestamp(_, tz) => tz.clone(),
                _ => None,
            };
            let (_, values, nulls) = b.finish().into_parts();
            return match unit {
                TimeUnit::Second => {
                    Arc::new(TimestampSecondArray::new(values, nulls).with_timezone_opt(tz))
                }
                TimeUnit::Millisecond => {
                    Arc::new(TimestampMillisecondArray::new(values, nulls).with_timezone_opt(tz))
                }
                TimeUnit::Microsecond => {
                    Arc::new(TimestampMicrosecondArray::new(values, nulls).with_timezone_opt(tz))
                }
                TimeUnit::Nanosecond => {
                    Arc::new(TimestampNanosecondArray::new(values, nulls).with_timezone_opt(tz))
                }
            };
        }
        with_builder!(&mut self.kind, b => Arc::new(b.finish()) as ArrayRef)
    }
}

/// One builder per schema column, each with room for `capacity` rows.
pub(super) fn builders(
    schema: &SchemaRef,
    capacity: usize,
) -> Result<Vec<ColumnBuilder>, DecodeError> {
    let capacity = capacity.min(1 << 20); // an estimate, not a promise: cap the up-front allocation
    schema
        .fields()
        .iter()
        .map(|f| {
            ColumnBuilder::new(f, capacity).map_err(|message| DecodeError {
                column: Some(f.name().clone()),
                ..DecodeError::body(message)
            })
        })
        .collect()
}

/// The batch the builders hold; `rows` matters only for a schema with no columns.
pub(super) fn finish_batch(
    schema: &SchemaRef,
    builders: &mut [ColumnBuilder],
    rows: usize,
) -> Result<RecordBatch, DecodeError> {
    let columns = builders.iter_mut().map(ColumnBuilder::finish).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| DecodeError::body(format!("internal error building the batch (a bug): {e}")))
}

fn push_int<T>(b: &mut PrimitiveBuilder<T>, v: i128) -> Result<(), Fail>
where
    T: ArrowPrimitiveType,
    T::Native: TryFrom<i128>,
{
    let v = T::Native::try_from(v).map_err(|_| Fail::Type)?;
    b.append_value(v);
    Ok(())
}

fn push_f32(b: &mut Float32Builder, v: f32, must_be_finite: bool) -> Result<(), Fail> {
    if v.is_infinite() && must_be_finite {
        return Err(Fail::Type);
    }
    b.append_value(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
        Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, StringArray, UInt8Array,
        UInt64Array,
    };
    use arrow::datatypes::{
        TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };

    fn column(dt: DataType) -> ColumnBuilder {
        ColumnBuilder::new(&Field::new("c", dt, true), 4).unwrap()
    }

    /// Feed `values` as text to a fresh column and return the array.
    fn from_text(dt: DataType, values: &[&str]) -> ArrayRef {
        let mut b = column(dt);
        for v in values {
            b.append_str(v).unwrap();
        }
        b.finish()
    }

    fn text_err(dt: DataType, value: &str) -> String {
        column(dt).append_str(value).unwrap_err()
    }

    #[test]
    fn integers_from_json_and_text_with_range_checks() {
        let mut b = column(DataType::Int16);
        b.append_i64(-5).unwrap();
        b.append_str(" 42 ").unwrap();
        b.append_str("+7").unwrap();
        b.append_null().unwrap();
        assert_eq!(
            b.append_i64(70000).unwrap_err(),
            "expected SMALLINT, got 70000"
        );
        assert_eq!(
            b.append_str("70000").unwrap_err(),
            "expected SMALLINT, got \"70000\""
        );
        assert_eq!(
            b.append_str("abc").unwrap_err(),
            "expected SMALLINT, got \"abc\""
        );
        assert_eq!(b.append_f64(1.5).unwrap_err(), "expected SMALLINT, got 1.5");
        assert_eq!(
            b.append_f64(42.0).unwrap_err(),
            "expected SMALLINT, got 42.0"
        );
        assert_eq!(
            b.append_bool(true).unwrap_err(),
            "expected SMALLINT, got true"
        );
        let a = b.finish();
        assert_eq!(
            a.as_any().downcast_ref::<Int16Array>().unwrap(),
            &Int16Array::from(vec![Some(-5), Some(42), Some(7), None])
        );

        let a = from_text(DataType::Int8, &["-128", "127"]);
        assert_eq!(
            a.as_any().downcast_ref::<Int8Array>().unwrap().values(),
            &[-128, 127]
        );
        assert_eq!(
            text_err(DataType::Int8, "128"),
            "expected TINYINT, got \"128\""
        );
        let a = from_text(DataType::Int32, &["2147483647"]);
        assert_eq!(
            a.as_any().downcast_ref::<Int32Array>().unwrap().value(0),
            i32::MAX
        );
        assert_eq!(
            column(DataType::Int64).append_u64(u64::MAX).unwrap_err(),
            "expected BIGINT, got 18446744073709551615"
        );
        let mut b = column(DataType::Int64);
        b.append_i64(i64::MIN).unwrap();
        assert_eq!(
            b.finish()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0),
            i64::MIN
        );

        let mut b = column(DataType::UInt64);
        b.append_u64(u64::MAX).unwrap();
        b.append_str("18446744073709551615").unwrap();
        assert_eq!(
            b.append_i64(-1).unwrap_err(),
            "expected BIGINT UNSIGNED, got -1"
        );
        assert_eq!(
            b.finish()
                .as_any()
                .downcast_ref::<UInt64Array>()
                .unwrap()
                .values(),
            &[u64::MAX, u64::MAX]
        );
        assert_eq!(
            column(DataType::UInt8).append_i64(256).unwrap_err(),
            "expected TINYINT UNSIGNED, got 256"
        );
        let a = from_text(DataType::UInt8, &["255"]);
        assert_eq!(
            a.as_any().downcast_ref::<UInt8Array>().unwrap().value(0),
            255
        );
        for dt in [DataType::UInt16, DataType::UInt32] {
            assert_eq!(from_text(dt, &["9"]).len(), 1);
        }
    }

    #[test]
    fn floats() {
        let mut b = column(DataType::Float64);
        b.append_f64(1.5).unwrap();
        b.append_i64(3).unwrap();
        b.append_str("2.5e3").unwrap();
        b.append_str("NaN").unwrap();
        assert_eq!(b.append_str("x").unwrap_err(), "expected DOUBLE, got \"x\"");
        assert_eq!(
            b.append_bool(false).unwrap_err(),
            "expected DOUBLE, got false"
        );
        let a = b.finish();
        let a = a.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(&a.values()[..3], &[1.5, 3.0, 2500.0]);
        assert!(a.value(3).is_nan());

        let mut b = column(DataType::Float32);
        b.append_f64(0.25).unwrap();
        b.append_str("-inf").unwrap();
        assert_eq!(
            b.append_f64(1e300).unwrap_err(),
            "expected REAL, got 1e+300"
        );
        assert_eq!(
            b.append_str("1e300").unwrap_err(),
            "expected REAL, got \"1e300\""
        );
        let a = b.finish();
        assert_eq!(
            a.as_any().downcast_ref::<Float32Array>().unwrap().values(),
            &[0.25, f32::NEG_INFINITY]
        );
    }

    #[test]
    fn booleans() {
        let mut b = column(DataType::Boolean);
        b.append_bool(true).unwrap();
        for t in ["true", "FALSE", "t", "f", "1", "0", " True "] {
            b.append_str(t).unwrap();
        }
        assert_eq!(b.append_i64(1).unwrap_err(), "expected BOOLEAN, got 1");
        assert_eq!(
            b.append_str("yes").unwrap_err(),
            "expected BOOLEAN, got \"yes\""
        );
        let a = b.finish();
        let expected = BooleanArray::from(vec![true, true, false, true, false, true, false, true]);
        assert_eq!(
            a.as_any().downcast_ref::<BooleanArray>().unwrap(),
            &expected
        );
    }

    #[test]
    fn text_takes_strings_only_and_keeps_whitespace() {
        let mut b = column(DataType::Utf8);
        b.append_str(" a b ").unwrap();
        b.append_str("").unwrap();
        b.append_str("ünïcode ✓").unwrap();
        assert_eq!(b.append_i64(42).unwrap_err(), "expected TEXT, got 42");
        assert_eq!(b.append_bool(true).unwrap_err(), "expected TEXT, got true");
        assert_eq!(b.refuse_json("{\"a\":1}"), "expected TEXT, got {\"a\":1}");
        let a = b.finish();
        assert_eq!(
            a.as_string::<i32>(),
            &StringArray::from(vec![" a b ", "", "ünïcode ✓"])
        );
    }

    #[test]
    fn bytea_is_hex() {
        let a = from_text(DataType::Binary, &["0a1B", "\\xff00", ""]);
        let a = a.as_any().downcast_ref::<BinaryArray>().unwrap();
        assert_eq!(a.value(0), &[0x0a, 0x1b]);
        assert_eq!(a.value(1), &[0xff, 0x00]);
        assert_eq!(a.value(2), b"");
        assert_eq!(
            text_err(DataType::Binary, "abc"),
            "expected BYTEA as hex (e.g. \"0a1b\"), got \"abc\""
        );
        assert_eq!(
            text_err(DataType::Binary, "zz"),
            "expected BYTEA as hex (e.g. \"0a1b\"), got \"zz\""
        );
    }

    #[test]
    fn dates() {
        let a = from_text(
            DataType::Date32,
            &["1970-01-02", "2024-02-29", "1969-12-31"],
        );
        assert_eq!(
            a.as_any().downcast_ref::<Date32Array>().unwrap().values(),
            &[1, 19782, -1]
        );
        let err = "expected DATE (e.g. \"2024-01-01\"), got \"2023-02-29\"";
        assert_eq!(text_err(DataType::Date32, "2023-02-29"), err);
        assert_eq!(
            column(DataType::Date32).append_i64(5).unwrap_err(),
            "expected DATE (e.g. \"2024-01-01\"), got 5"
        );
    }

    #[test]
    fn decimals_are_exact() {
        let dt = DataType::Decimal128(6, 2);
        let mut b = column(dt.clone());
        b.append_str("12.5").unwrap();
        b.append_str("-0.01").unwrap();
        b.append_str("1.230").unwrap(); // trailing zeros do not count against the scale
        b.append_str(".5").unwrap();
        b.append_i64(7).unwrap();
        b.append_f64(12.34).unwrap();
        b.append_f64(-0.1).unwrap();
        b.append_str("9999.99").unwrap();
        let a = b.finish();
        let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(a.values(), &[1250, -1, 123, 50, 700, 1234, -10, 999999]);
        assert_eq!(a.data_type(), &dt);

        let scale = " (more than 2 digits after the point)";
        let precision = " (more than 4 digits before the point)";
        assert_eq!(
            text_err(dt.clone(), "1.234"),
            format!("expected DECIMAL(6,2), got \"1.234\"{scale}")
        );
        assert_eq!(
            text_err(dt.clone(), "10000"),
            format!("expected DECIMAL(6,2), got \"10000\"{precision}")
        );
        assert_eq!(
            column(dt.clone()).append_f64(0.125).unwrap_err(),
            format!("expected DECIMAL(6,2), got 0.125{scale}")
        );
        assert_eq!(
            column(dt.clone()).append_i64(12345).unwrap_err(),
            format!("expected DECIMAL(6,2), got 12345{precision}")
        );
        assert_eq!(
            column(dt.clone()).append_f64(1e300).unwrap_err(),
            format!("expected DECIMAL(6,2), got 1e+300{precision}")
        );
        assert_eq!(
            column(dt.clone()).append_f64(1e-300).unwrap_err(),
            format!("expected DECIMAL(6,2), got 1e-300{scale}")
        );
        for bad in ["", ".", "1e3", "1.2.3", "--1", "abc", "1,5"] {
            assert_eq!(
                text_err(dt.clone(), bad),
                format!(
                    "expected DECIMAL(6,2), got {}",
                    serde_json::Value::from(bad)
                )
            );
        }

        let wide = DataType::Decimal128(38, 0);
        let a = from_text(wide, &["99999999999999999999999999999999999999"]);
        assert_eq!(
            a.as_any()
                .downcast_ref::<Decimal128Array>()
                .unwrap()
                .value(0),
            10i128.pow(38) - 1
        );
        let err = text_err(
            DataType::Decimal128(38, 0),
            "100000000000000000000000000000000000000000",
        );
        assert!(
            err.ends_with("(more than 38 digits before the point)"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_in_every_accepted_spelling() {
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        let base = 1_704_067_200_000; // 2024-01-01T00:00:00Z
        let cases = [
            ("2024-01-01T00:00:00Z", base),
            ("2024-01-01T00:00:00z", base),
            ("2024-01-01T02:00:00+02:00", base),
            ("2023-12-31T19:00:00-05:00", base),
            ("2024-01-01T00:00:00", base),
            ("2024-01-01 00:00:00", base),
            ("2024-01-01t00:00:00", base),
            ("2024-01-01", base),
            ("2024-01-01T00:00:00.5Z", base + 500),
            ("2024-01-01T00:00:00.123456789", base + 123),
            ("2024-01-01 00:00:00.999+00:00", base + 999),
            (" 1704067200000 ", base),
            ("-1", -1),
        ];
        let mut b = column(ms.clone());
        for (text, _) in cases {
            b.append_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        b.append_i64(base).unwrap();
        let a = b.finish();
        let a = a.as_primitive::<TimestampMillisecondType>();
        let expected: Vec<i64> = cases.iter().map(|(_, v)| *v).chain([base]).collect();
        assert_eq!(a.values().to_vec(), expected);
        assert_eq!(a.data_type(), &ms);

        let err = "expected TIMESTAMP (e.g. \"2024-01-01T00:00:00Z\" or epoch milliseconds), got \"yesterday\"";
        assert_eq!(text_err(ms.clone(), "yesterday"), err);
        let err =
            "expected TIMESTAMP (e.g. \"2024-01-01T00:00:00Z\" or epoch milliseconds), got 1.5";
        assert_eq!(column(ms.clone()).append_f64(1.5).unwrap_err(), err);
        assert!(text_err(ms, "2024-13-01T00:00:00Z").ends_with("got \"2024-13-01T00:00:00Z\""));
    }

    #[test]
    fn timestamps_are_stored_in_the_column_unit_and_zone() {
        let ns = DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into()));
        let mut b = column(ns.clone());
        b.append_str("2024-01-01T02:00:00.123456789+02:00").unwrap();
        b.append_i64(1).unwrap();
        let a = b.finish();
        assert_eq!(a.data_type(), &ns);
        let a = a.as_primitive::<TimestampNanosecondType>();
        assert_eq!(a.values(), &[1_704_067_200_123_456_789, 1_000_000]);
        let tz = "expected TIMESTAMPTZ (e.g. \"2024-01-01T00:00:00Z\" or epoch milliseconds), got \"3000-01-01T00:00:00Z\" (out of range)";
        assert_eq!(
            column(ns).append_str("3000-01-01T00:00:00Z").unwrap_err(),
            tz
        );

        // Finer digits than the unit are truncated toward the past, also before 1970.
        let s = DataType::Timestamp(TimeUnit::Second, Some("UTC".into()));
        let mut b = column(s);
        b.append_str("2024-01-01T00:00:00.9Z").unwrap();
        b.append_i64(-1).unwrap();
        b.append_str("1969-12-31T23:59:59.5").unwrap();
        let a = b.finish();
        assert_eq!(
            a.as_primitive::<TimestampSecondType>().values(),
            &[1_704_067_200, -1, -1]
        );

        let us = DataType::Timestamp(TimeUnit::Microsecond, None);
        let a = from_text(us, &["1970-01-01T00:00:00.000001"]);
        assert_eq!(
            a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(0),
            1
        );
    }

    #[test]
    fn not_null_and_unsupported_types() {
        let mut b = ColumnBuilder::new(&Field::new("c", DataType::Int64, false), 1).unwrap();
        assert_eq!(
            b.append_null().unwrap_err(),
            "missing value for NOT NULL column"
        );
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        let err = ColumnBuilder::new(&Field::new("c", list, true), 1)
            .err()
            .unwrap();
        assert_eq!(err, "ingest does not support columns of type BIGINT[]");
    }

    #[test]
    fn bad_values_are_shown_truncated() {
        let long = "x".repeat(100);
        let err = text_err(DataType::Int64, &long);
        assert_eq!(err, format!("expected BIGINT, got \"{}...", "x".repeat(39)));
        assert_eq!(
            text_err(DataType::Int64, "a\"b"),
            "expected BIGINT, got \"a\\\"b\""
        );
    }
}
