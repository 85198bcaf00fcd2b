//! Bound parameters: Postgres values (text, or binary for the common types) decoded into
//! the Arrow types DataFusion inferred for `$1`, `$2`, ...

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::api::results::FieldFormat;
use pgwire::error::{PgWireError, PgWireResult};

use super::errors::user_error;
use super::handler::Prepared;

/// The Arrow type a Postgres parameter type decodes to.
pub fn arrow_type_of(t: &Type) -> Option<DataType> {
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
        Type::INTERVAL => {
            DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
        }
        _ => return None,
    })
}

/// Decodes parameter `i` of `portal` (text or binary) as a value of `target`.
pub fn parameter_value(
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
                Type::DATE
                | Type::TIMESTAMP
                | Type::TIMESTAMPTZ
                | Type::NUMERIC
                | Type::INTERVAL => binary_temporal_or_numeric(&pg, &bytes)
                    .ok_or_else(|| bad(format!("malformed binary {} value", pg.name())))?,
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
            let (ndigits, weight, sign, dscale) =
                (i16_at(0)?, i16_at(2)?, i16_at(4)? as u16, i16_at(6)?);
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
