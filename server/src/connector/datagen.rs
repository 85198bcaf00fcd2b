//! `connector = 'datagen'`: random or sequential values for a stream's declared columns,
//! after Flink's `datagen` connector. Owns the per-column options and the value
//! generators; the columns themselves come from the `CREATE STREAM` column list.
//!
//! ```sql
//! CREATE STREAM orders (
//!     id BIGINT, customer INT, amount DOUBLE, note TEXT, paid BOOLEAN, ts TIMESTAMP,
//!     WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
//! ) WITH (connector = 'datagen', rows_per_second = 1000, seed = 7,
//!         "fields.id.kind" = 'sequence',
//!         "fields.customer.min" = 1, "fields.customer.max" = 100,
//!         "fields.note.length" = 8);
//! ```
//!
//! | option            | meaning                                                  | default             |
//! |-------------------|----------------------------------------------------------|---------------------|
//! | `rows_per_second` | rows per second (`rate` is accepted too)                 | as fast as possible, stamped as 10,000/s |
//! | `max_events`      | rows in the stream, after which it ends                  | unbounded           |
//! | `seed`            | picks the random values; any whole number                | 0                   |
//! | `base_time`       | event time of row 0                                      | creation time       |
//! | `fields.<column>.<property>` | how one column is made, below                 |                     |
//!
//! Each column has a `kind`, `random` or `sequence`, and the properties of that kind:
//!
//! | column type    | `random` (default, except TIMESTAMP)                        | `sequence`                         |
//! |----------------|-------------------------------------------------------------|------------------------------------|
//! | INT, BIGINT    | uniform in `min..=max` (default: the type's whole range)    | `start`, `start + 1`, ... `end` (default 0 to the type's largest value) |
//! | DOUBLE         | uniform between `min` and `max` (default 0 and 1)           | as for BIGINT, as DOUBLE           |
//! | TEXT           | `length` lowercase letters (default 100)                     | as for BIGINT, as text             |
//! | BOOLEAN        | true or false, evenly                                        | —                                  |
//! | TIMESTAMP      | the event time minus a random lateness of up to `max_past` (default '1 second'; a duration or milliseconds), to exercise watermarks | the event time (default) |
//!
//! The event time of row `n` is `base_time + n / rows_per_second`, so a watermark declared
//! on a TIMESTAMP column advances as rows arrive; the connector itself declares none.
//! As in Flink, a sequence ends the stream after its last value: the stream has at most
//! `end - start + 1` rows.
//!
//! The value of a random column in row `n` is a hash of the seed, the column's name and
//! `n` (SplitMix64), so the same options give the same rows, any row can be produced
//! first, and adding a column leaves the others' values as they were. Columns are never
//! null.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringBuilder,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow::compute::kernels::cast_utils::parse_interval_month_day_nano;
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{
    DEFAULT_EVENT_RATE, LAST_INDEX, event_time_ns, format_base_time, option, parse_count,
    parse_rate, refuse_others_options, rows_in_range,
};

/// The longest random TEXT value, in letters.
const MAX_LENGTH: usize = 1 << 16;
/// A random TEXT column's length when none is given (Flink's default).
const DEFAULT_LENGTH: usize = 100;
/// A random TIMESTAMP column's greatest lateness when none is given.
const DEFAULT_MAX_PAST_NS: i64 = 1_000_000_000;

/// The properties a column may be given, in the order `resolved_options` writes them.
const PROPERTIES: [&str; 7] = ["kind", "start", "end", "min", "max", "length", "max_past"];

/// A datagen stream's options, resolved against its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct DatagenSpec {
    schema: SchemaRef,
    /// How each column of `schema` is made, in the same order.
    columns: Vec<Column>,
    rate: Option<u64>,
    /// The `max_events` option, as given; [`max_events`](Self::max_events) also counts
    /// sequence ends.
    max_events: Option<u64>,
    seed: u64,
    /// Event time of row 0, in nanoseconds since the Unix epoch.
    base_time_ns: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct Column {
    /// Seeds this column's random values: a hash of the seed and the column's name.
    key: u64,
    values: Values,
}

/// How a column's values are made. Which variants a type takes is checked when parsing.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    /// `start + n`, for INT, BIGINT, DOUBLE and TEXT; the stream ends after `end`.
    Sequence {
        start: i64,
        end: i64,
    },
    /// INT and BIGINT, uniform in `min..=max`.
    RandomInt {
        min: i64,
        max: i64,
    },
    /// DOUBLE, uniform between `min` and `max`.
    RandomFloat {
        min: f64,
        max: f64,
    },
    /// TEXT of `length` lowercase letters.
    RandomText {
        length: usize,
    },
    RandomBool,
    /// TIMESTAMP: the row's event time less a random lateness in `0..=max_past_ns`
    /// (0 for `kind = 'sequence'`, the default).
    EventTime {
        max_past_ns: i64,
    },
}

impl DatagenSpec {
    /// Reads the datagen options against the declared columns; `base_time` is already
    /// resolved by the caller.
    pub(super) fn from_options(
        options: &[(String, String)],
        base_time_ns: i64,
        declared: Option<SchemaRef>,
    ) -> Result<DatagenSpec, String> {
        refuse_others_options(options, "datagen")?;
        let Some(schema) = declared.filter(|schema| !schema.fields().is_empty()) else {
            return Err("connector 'datagen' needs the stream's columns, e.g. \
                        CREATE STREAM t (id BIGINT, name TEXT) WITH (connector = 'datagen')"
                .to_string());
        };
        let rate = match (option(options, "rows_per_second"), option(options, "rate")) {
            (Some(_), Some(_)) => {
                return Err("give rows_per_second or rate, not both".to_string());
            }
            (Some(text), None) => Some(parse_rate("rows_per_second", text)?),
            (None, Some(text)) => Some(parse_rate("rate", text)?),
            (None, None) => None,
        };
        let max_events = option(options, "max_events")
            .map(|text| parse_count("max_events", text))
            .transpose()?;
        let seed = option(options, "seed")
            .map(|text| parse_count("seed", text))
            .transpose()?
            .unwrap_or(0);
        check_field_options(options, &schema)?;
        let columns = schema
            .fields()
            .iter()
            .map(|field| {
                let values = column_values(field, options)?;
                let key = mix(seed ^ name_hash(&field.name().to_ascii_lowercase()));
                Ok(Column { key, values })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(DatagenSpec {
            schema,
            columns,
            rate,
            max_events,
            seed,
            base_time_ns,
        })
    }

    pub(super) fn resolved_options(&self) -> Vec<(String, String)> {
        let mut options = vec![("connector".to_string(), "datagen".to_string())];
        if let Some(rate) = self.rate {
            options.push(("rows_per_second".to_string(), rate.to_string()));
        }
        if let Some(max_events) = self.max_events {
            options.push(("max_events".to_string(), max_events.to_string()));
        }
        options.push(("seed".to_string(), self.seed.to_string()));
        options.push(("base_time".to_string(), format_base_time(self.base_time_ns)));
        for (field, column) in self.schema.fields().iter().zip(&self.columns) {
            let name = field.name().to_ascii_lowercase();
            for (property, value) in column.values.properties() {
                options.push((format!("fields.{name}.{property}"), value));
            }
        }
        options
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn rate(&self) -> Option<u64> {
        self.rate
    }

    /// The rows in the stream: `max_events`, or fewer if a sequence ends first.
    pub fn max_events(&self) -> Option<u64> {
        let sequence_ends = self
            .columns
            .iter()
            .filter_map(|column| match column.values {
                Values::Sequence { start, end } => {
                    let values = u64::try_from(i128::from(end) - i128::from(start) + 1).ok()?;
                    // A sequence that outlasts any real stream is no limit.
                    (values < LAST_INDEX).then_some(values)
                }
                _ => None,
            });
        sequence_ends.chain(self.max_events).min()
    }

    pub fn batch(&self, start: u64, len: usize) -> RecordBatch {
        let rows = rows_in_range(start, len, self.max_events());
        let columns = self
            .schema
            .fields()
            .iter()
            .zip(&self.columns)
            .map(|(field, column)| self.column(field.data_type(), column, start, rows))
            .collect();
        RecordBatch::try_new(self.schema.clone(), columns)
            .expect("bug: datagen columns do not match the declared columns")
    }

    /// Rows `start..start + rows` of one column. `rows` is within `max_events`, so
    /// sequences stay within `start..=end` and indexes below `LAST_INDEX`.
    fn column(&self, data_type: &DataType, column: &Column, start: u64, rows: usize) -> ArrayRef {
        let indexes = start..start + rows as u64;
        let random = |n: u64| cell(column.key, n);
        match (&column.values, data_type) {
            (Values::Sequence { start: first, .. }, _) => {
                let value = |n: u64| first + n as i64;
                match data_type {
                    DataType::Int32 => Arc::new(Int32Array::from_iter_values(
                        indexes.map(|n| value(n) as i32),
                    )),
                    DataType::Float64 => Arc::new(Float64Array::from_iter_values(
                        indexes.map(|n| value(n) as f64),
                    )),
                    DataType::Utf8 => {
                        let mut text = StringBuilder::with_capacity(rows, rows * 8);
                        for n in indexes {
                            write!(text, "{}", value(n)).expect("writing to memory cannot fail");
                            text.append_value("");
                        }
                        Arc::new(text.finish())
                    }
                    _ => Arc::new(Int64Array::from_iter_values(indexes.map(value))),
                }
            }
            (Values::RandomInt { min, max }, DataType::Int32) => {
                Arc::new(Int32Array::from_iter_values(
                    indexes.map(|n| in_range(random(n), *min, *max) as i32),
                ))
            }
            (Values::RandomInt { min, max }, _) => Arc::new(Int64Array::from_iter_values(
                indexes.map(|n| in_range(random(n), *min, *max)),
            )),
            (Values::RandomFloat { min, max }, _) => {
                Arc::new(Float64Array::from_iter_values(indexes.map(|n| {
                    let unit = (random(n) >> 11) as f64 / (1u64 << 53) as f64;
                    // Weighted rather than `min + unit * (max - min)`, which overflows
                    // for ranges wider than f64::MAX.
                    min * (1.0 - unit) + max * unit
                })))
            }
            (Values::RandomText { length }, _) => {
                let mut text = StringBuilder::with_capacity(rows, rows * length);
                let mut value = String::with_capacity(*length);
                for n in indexes {
                    letters(&mut value, *length, random(n));
                    text.append_value(&value);
                }
                Arc::new(text.finish())
            }
            (Values::RandomBool, _) => Arc::new(BooleanArray::from_iter(
                indexes.map(|n| Some(random(n) >> 63 == 1)),
            )),
            (Values::EventTime { max_past_ns }, DataType::Timestamp(unit, zone)) => {
                let rate = self.rate.unwrap_or(DEFAULT_EVENT_RATE);
                let nanos = indexes.map(|n| {
                    let late = if *max_past_ns > 0 {
                        in_range(random(n), 0, *max_past_ns)
                    } else {
                        0
                    };
                    event_time_ns(self.base_time_ns, n, rate).saturating_sub(late)
                });
                timestamps(nanos, unit, zone.clone())
            }
            (values, data_type) => {
                unreachable!("bug: {values:?} was accepted for a {data_type} column")
            }
        }
    }
}

impl Values {
    /// The column's options, written out in full (defaults included).
    fn properties(&self) -> Vec<(&'static str, String)> {
        match self {
            Values::Sequence { start, end } => vec![
                ("kind", "sequence".into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
            Values::RandomInt { min, max } => {
                vec![
                    ("kind", "random".into()),
                    ("min", min.to_string()),
                    ("max", max.to_string()),
                ]
            }
            Values::RandomFloat { min, max } => {
                vec![
                    ("kind", "random".into()),
                    ("min", min.to_string()),
                    ("max", max.to_string()),
                ]
            }
            Values::RandomText { length } => {
                vec![("kind", "random".into()), ("length", length.to_string())]
            }
            Values::RandomBool => vec![("kind", "random".into())],
            Values::EventTime { max_past_ns: 0 } => vec![("kind", "sequence".into())],
            Values::EventTime { max_past_ns } => {
                let max_past = if max_past_ns % 1_000_000 == 0 {
                    format!("{} milliseconds", max_past_ns / 1_000_000)
                } else {
                    format!("{max_past_ns} nanoseconds")
                };
                vec![("kind", "random".into()), ("max_past", max_past)]
            }
        }
    }
}

/// Every `fields.<column>.<property>` option must name a declared column and a known property.
fn check_field_options(options: &[(String, String)], schema: &SchemaRef) -> Result<(), String> {
    for (key, _) in options {
        let Some(rest) = key.strip_prefix("fields.") else {
            continue;
        };
        let Some((column, property)) = rest.rsplit_once('.') else {
            return Err(format!(
                "{key} is not a column option; write fields.<column>.<property>, e.g. fields.id.kind"
            ));
        };
        if !schema
            .fields()
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(column))
        {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(format!(
                "{key} names no column of the stream; its columns are {}",
                names.join(", ")
            ));
        }
        if !PROPERTIES.contains(&property) {
            return Err(format!(
                "unknown option {key}; a column takes {}",
                PROPERTIES.join(", ")
            ));
        }
    }
    Ok(())
}

/// Reads one column's `fields.<column>.*` options.
fn column_values(field: &Field, options: &[(String, String)]) -> Result<Values, String> {
    let column = field.name().to_ascii_lowercase();
    let prefix = format!("fields.{column}.");
    let given: Vec<(&str, &str)> = options
        .iter()
        .filter_map(|(key, value)| {
            let property = key.strip_prefix(&prefix)?;
            // `fields.a.b.kind` belongs to column `a.b`, not `a`.
            (!property.contains('.')).then_some((property, value.as_str()))
        })
        .collect();
    let get = |property: &str| given.iter().find(|(p, _)| *p == property).map(|(_, v)| *v);
    let name = |property: &str| format!("fields.{column}.{property}");
    let type_name = sql_name(field.data_type());

    let sequence = match get("kind").map(|k| k.trim().to_ascii_lowercase()) {
        None => matches!(field.data_type(), DataType::Timestamp(..)),
        Some(kind) if kind == "sequence" => true,
        Some(kind) if kind == "random" => false,
        Some(_) => {
            return Err(format!(
                "{} must be 'sequence' or 'random', got '{}'",
                name("kind"),
                get("kind").unwrap_or_default()
            ));
        }
    };
    let kind = if sequence { "sequence" } else { "random" };
    let takes: &[&str] = match (field.data_type(), sequence) {
        (DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Utf8, true) => {
            &["start", "end"]
        }
        (DataType::Int32 | DataType::Int64 | DataType::Float64, false) => &["min", "max"],
        (DataType::Utf8, false) => &["length"],
        (DataType::Boolean, false) => &[],
        (DataType::Timestamp(..), true) => &[],
        (DataType::Timestamp(..), false) => &["max_past"],
        (DataType::Boolean, true) => {
            return Err(format!(
                "{} = 'sequence' does not apply to BOOLEAN column {column}; BOOLEAN columns are random",
                name("kind")
            ));
        }
        (other, _) => {
            return Err(format!(
                "column {column} is {}, which datagen cannot generate; it makes INT, BIGINT, DOUBLE, \
                 TEXT, BOOLEAN and TIMESTAMP columns",
                sql_name(other)
            ));
        }
    };
    if let Some((property, _)) = given
        .iter()
        .find(|(p, _)| *p != "kind" && !takes.contains(p))
    {
        let fix = match (field.data_type(), takes.is_empty()) {
            (DataType::Timestamp(..), true) => {
                "its values are the event times, set by base_time and rows_per_second".to_string()
            }
            (_, true) => "it takes no other option".to_string(),
            (_, false) => format!("it takes {}", takes.join(" and ")),
        };
        return Err(format!(
            "{} does not apply to a {kind} {type_name} column; {fix}",
            name(property)
        ));
    }

    let int = |property: &str, default: i64, lowest: i64, highest: i64| -> Result<i64, String> {
        let Some(text) = get(property) else {
            return Ok(default);
        };
        text.trim()
            .parse::<i64>()
            .ok()
            .filter(|v| (lowest..=highest).contains(v))
            .ok_or_else(|| {
                format!("{} must be a whole number from {lowest} to {highest} for {type_name} column {column}, got '{text}'", name(property))
            })
    };
    let (lowest, highest) = match field.data_type() {
        DataType::Int32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    };
    let ordered =
        |low: &str, high: &str| format!("{} must not be greater than {}", name(low), name(high));

    Ok(match field.data_type() {
        DataType::Timestamp(..) if sequence => Values::EventTime { max_past_ns: 0 },
        DataType::Timestamp(..) => Values::EventTime {
            max_past_ns: match get("max_past") {
                Some(text) => {
                    parse_duration_ns(text).map_err(|e| format!("{}: {e}", name("max_past")))?
                }
                None => DEFAULT_MAX_PAST_NS,
            },
        },
        DataType::Boolean => Values::RandomBool,
        _ if sequence => {
            let start = int("start", 0, lowest, highest)?;
            let end = int("end", highest, lowest, highest)?;
            if start > end {
                return Err(ordered("start", "end"));
            }
            Values::Sequence { start, end }
        }
        DataType::Utf8 => {
            let length = match get("length") {
                None => DEFAULT_LENGTH,
                Some(text) => text
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= MAX_LENGTH)
                    .ok_or_else(|| {
                        format!(
                            "{} must be a whole number from 0 to {MAX_LENGTH}, got '{text}'",
                            name("length")
                        )
                    })?,
            };
            Values::RandomText { length }
        }
        DataType::Float64 => {
            let float = |property: &str, default: f64| -> Result<f64, String> {
                let Some(text) = get(property) else {
                    return Ok(default);
                };
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        format!(
                            "{} must be a number such as 2.5, got '{text}'",
                            name(property)
                        )
                    })
            };
            let (min, max) = (float("min", 0.0)?, float("max", 1.0)?);
            if min > max {
                return Err(ordered("min", "max"));
            }
            Values::RandomFloat { min, max }
        }
        _ => {
            let (min, max) = (
                int("min", lowest, lowest, highest)?,
                int("max", highest, lowest, highest)?,
            );
            if min > max {
                return Err(ordered("min", "max"));
            }
            Values::RandomInt { min, max }
        }
    })
}

/// A lateness: a whole number of milliseconds, or a duration such as `'5 seconds'`.
fn parse_duration_ns(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return (ms >= 0)
            .then(|| ms.saturating_mul(1_000_000))
            .ok_or_else(|| format!("a duration cannot be negative, got '{text}'"));
    }
    match parse_interval_month_day_nano(text) {
        Ok(interval) if interval.months == 0 && interval.days >= 0 && interval.nanoseconds >= 0 => {
            Ok(i64::from(interval.days)
                .saturating_mul(86_400_000_000_000)
                .saturating_add(interval.nanoseconds))
        }
        _ => Err(format!(
            "expected a duration such as '5 seconds' or a number of milliseconds, got '{text}'"
        )),
    }
}

/// The SQL spelling of a column type, for error messages.
fn sql_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Int32 => "INT".to_string(),
        DataType::Int64 => "BIGINT".to_string(),
        DataType::Float64 => "DOUBLE".to_string(),
        DataType::Utf8 => "TEXT".to_string(),
        DataType::Boolean => "BOOLEAN".to_string(),
        DataType::Timestamp(_, None) => "TIMESTAMP".to_string(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".to_string(),
        other => other.to_string(),
    }
}

/// Nanosecond event times as a timestamp column of the declared unit and zone.
fn timestamps(
    nanos: impl Iterator<Item = i64>,
    unit: &TimeUnit,
    zone: Option<Arc<str>>,
) -> ArrayRef {
    match unit {
        TimeUnit::Nanosecond => {
            Arc::new(TimestampNanosecondArray::from_iter_values(nanos).with_timezone_opt(zone))
        }
        TimeUnit::Microsecond => Arc::new(
            TimestampMicrosecondArray::from_iter_values(nanos.map(|t| t.div_euclid(1_000)))
                .with_timezone_opt(zone),
        ),
        TimeUnit::Millisecond => Arc::new(
            TimestampMillisecondArray::from_iter_values(nanos.map(|t| t.div_euclid(1_000_000)))
                .with_timezone_opt(zone),
        ),
        TimeUnit::Second => Arc::new(
            TimestampSecondArray::from_iter_values(nanos.map(|t| t.div_euclid(1_000_000_000)))
                .with_timezone_opt(zone),
        ),
    }
}

// Randomness: SplitMix64 (Steele, Lea and Flood, 2014), used counter-style. Its n-th output
// is `mix(seed + n * GOLDEN)`, so any row's value is computed directly from its index.

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijective 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random word of row `n` in the column keyed `key`.
fn cell(key: u64, n: u64) -> u64 {
    mix(key.wrapping_add(n.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// FNV-1a of a column name, so each column draws its own values.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A random word mapped into `min..=max` by Lemire's multiply-shift, without rejection:
/// a value's probability is off by at most one part in 2^64 / (max - min + 1), nothing
/// for the ranges test data uses.
fn in_range(word: u64, min: i64, max: i64) -> i64 {
    let span = max.wrapping_sub(min) as u64;
    if span == u64::MAX {
        return word as i64;
    }
    let offset = ((u128::from(word) * u128::from(span + 1)) >> 64) as u64;
    min.wrapping_add(offset as i64)
}

/// Fills `text` with `length` lowercase letters drawn from a SplitMix64 stream seeded with
/// `seed`, four letters to each 64-bit word.
fn letters(text: &mut String, length: usize, seed: u64) {
    text.clear();
    let mut state = seed;
    let mut word = 0u64;
    for i in 0..length {
        if i % 4 == 0 {
            state = state.wrapping_add(GOLDEN);
            word = mix(state);
        }
        let letter = ((word & 0xffff) * 26) >> 16;
        text.push(char::from(b'a' + letter as u8));
        word >>= 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::GeneratorSpec;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int32Type, Int64Type, Schema, TimestampNanosecondType};

    const BASE: &str = "2024-01-01 00:00:00";
    const BASE_NS: i64 = 1_704_067_200_000_000_000;

    fn columns() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("customer", DataType::Int32, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("paid", DataType::Boolean, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        ]))
    }

    fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut options = vec![
            ("connector".to_string(), "datagen".to_string()),
            ("base_time".to_string(), BASE.to_string()),
        ];
        options.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        options
    }

    fn spec(pairs: &[(&str, &str)]) -> Result<GeneratorSpec, String> {
        GeneratorSpec::from_options_with_schema(&options(pairs), 0, Some(columns()))
            .map(|spec| spec.expect("a connector was given"))
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        spec(pairs).unwrap_err()
    }

    #[test]
    fn same_options_same_rows() {
        let a = spec(&[("seed", "7")]).unwrap().batch(0, 1000);
        let b = spec(&[("seed", "7")]).unwrap().batch(0, 1000);
        assert_eq!(a, b);
        assert_eq!(a.num_rows(), 1000);
        let other_seed = spec(&[("seed", "8")]).unwrap().batch(0, 1000);
        assert_ne!(a.column(0), other_seed.column(0));
        assert_eq!(
            a.column(5),
            other_seed.column(5),
            "event times do not depend on the seed"
        );
    }

    #[test]
    fn a_batch_is_a_slice_of_a_larger_one() {
        let spec = spec(&[
            ("fields.id.kind", "sequence"),
            ("fields.note.kind", "sequence"),
            ("fields.ts.kind", "random"),
        ])
        .unwrap();
        let whole = spec.batch(0, 500);
        for (start, len) in [(0, 1), (3, 17), (250, 250)] {
            assert_eq!(spec.batch(start as u64, len), whole.slice(start, len));
        }
    }

    #[test]
    fn sequences_count_and_end_the_stream() {
        let spec = spec(&[
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "10"),
            ("fields.id.end", "14"),
            ("fields.note.kind", "sequence"),
            ("fields.amount.kind", "sequence"),
        ])
        .unwrap();
        assert_eq!(spec.max_events(), Some(5));
        let batch = spec.batch(0, 100);
        assert_eq!(batch.num_rows(), 5);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values().to_vec(), [10, 11, 12, 13, 14]);
        let notes = batch.column(3).as_string::<i32>();
        assert_eq!(
            notes.iter().flatten().collect::<Vec<_>>(),
            ["0", "1", "2", "3", "4"]
        );
        assert_eq!(batch.column(2).as_primitive::<Float64Type>().value(4), 4.0);
        assert_eq!(spec.batch(3, 100).num_rows(), 2);
        assert_eq!(spec.batch(5, 100).num_rows(), 0);
    }

    #[test]
    fn max_events_clamps() {
        let limited = spec(&[
            ("max_events", "42"),
            ("fields.id.kind", "sequence"),
            ("fields.id.end", "100"),
        ])
        .unwrap();
        assert_eq!(limited.max_events(), Some(42));
        assert_eq!(limited.batch(0, 8192).num_rows(), 42);
        assert_eq!(limited.batch(40, 8192).num_rows(), 2);
        assert_eq!(limited.batch(42, 10).num_rows(), 0);
        let unbounded = spec(&[("fields.id.kind", "sequence")]).unwrap();
        assert_eq!(
            unbounded.max_events(),
            None,
            "a BIGINT sequence outlasts any stream"
        );
        let int_sequence = spec(&[("fields.customer.kind", "sequence")]).unwrap();
        assert_eq!(
            int_sequence.max_events(),
            Some(1 << 31),
            "an INT sequence ends at its largest value"
        );
    }

    #[test]
    fn random_values_stay_in_range() {
        let spec = spec(&[
            ("fields.id.min", "-5"),
            ("fields.id.max", "5"),
            ("fields.customer.min", "1"),
            ("fields.customer.max", "3"),
            ("fields.amount.min", "10"),
            ("fields.amount.max", "20"),
            ("fields.note.length", "7"),
        ])
        .unwrap();
        let batch = spec.batch(0, 10_000);
        let ids = batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert!(ids.iter().all(|v| (-5..=5).contains(v)));
        assert!(
            (-5..=5).all(|v| ids.contains(&v)),
            "every value of a small range appears"
        );
        let customers = batch
            .column(1)
            .as_primitive::<Int32Type>()
            .values()
            .to_vec();
        assert!(customers.iter().all(|v| (1..=3).contains(v)));
        let amounts = batch.column(2).as_primitive::<Float64Type>();
        assert!(amounts.values().iter().all(|v| (10.0..=20.0).contains(v)));
        let notes = batch.column(3).as_string::<i32>();
        assert!(
            notes
                .iter()
                .flatten()
                .all(|s| s.len() == 7 && s.bytes().all(|b| b.is_ascii_lowercase()))
        );
        let paid = batch.column(4).as_boolean();
        assert!(
            (4_500..5_500).contains(&paid.true_count()),
            "{}",
            paid.true_count()
        );
        assert_eq!(batch.column(0).null_count(), 0);
    }

    #[test]
    fn whole_range_defaults() {
        let batch = spec(&[]).unwrap().batch(0, 1000);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert!(ids.values().iter().any(|v| *v < 0) && ids.values().iter().any(|v| *v > 0));
        let notes = batch.column(3).as_string::<i32>();
        assert_eq!(notes.value(0).len(), DEFAULT_LENGTH);
    }

    #[test]
    fn timestamps_are_event_times() {
        let spec = spec(&[("rows_per_second", "1000")]).unwrap();
        assert_eq!(spec.rate(), Some(1000));
        assert_eq!(spec.watermark(), None);
        let batch = spec.batch(10, 3);
        let ts = batch.column(5).as_primitive::<TimestampNanosecondType>();
        assert_eq!(
            ts.values().to_vec(),
            [10, 11, 12].map(|ms| BASE_NS + ms * 1_000_000)
        );

        let late = GeneratorSpec::from_options_with_schema(
            &options(&[
                ("rate", "1000"),
                ("fields.ts.kind", "random"),
                ("fields.ts.max_past", "5 seconds"),
            ]),
            0,
            Some(columns()),
        )
        .unwrap()
        .unwrap();
        let batch = late.batch(0, 10_000);
        let ts = batch.column(5).as_primitive::<TimestampNanosecondType>();
        for (n, t) in ts.values().iter().enumerate() {
            let on_time = BASE_NS + n as i64 * 1_000_000;
            assert!((on_time - 5_000_000_000..=on_time).contains(t));
        }
        assert!(
            ts.values().windows(2).any(|w| w[0] > w[1]),
            "random times arrive out of order"
        );
    }

    #[test]
    fn other_timestamp_units() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        )]));
        let spec =
            GeneratorSpec::from_options_with_schema(&options(&[("rate", "10")]), 0, Some(schema))
                .unwrap()
                .unwrap();
        let batch = spec.batch(0, 2);
        let ts = batch
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        assert_eq!(
            ts.values().to_vec(),
            [BASE_NS / 1_000_000, BASE_NS / 1_000_000 + 100]
        );
    }

    #[test]
    fn options_round_trip() {
        let spec = spec(&[
            ("rows_per_second", "50"),
            ("seed", "3"),
            ("fields.id.kind", "sequence"),
            ("fields.amount.max", "2.5"),
            ("fields.ts.kind", "random"),
        ])
        .unwrap();
        let resolved = spec.resolved_options();
        let again = GeneratorSpec::from_options_with_schema(&resolved, 1, Some(columns())).unwrap();
        assert_eq!(again.as_ref(), Some(&spec));
        assert!(resolved.contains(&("fields.customer.min".into(), i32::MIN.to_string())));
        assert!(resolved.contains(&("fields.ts.max_past".into(), "1000 milliseconds".into())));
        assert_eq!(again.unwrap().batch(0, 100), spec.batch(0, 100));

        let fine = GeneratorSpec::from_options_with_schema(
            &options(&[
                ("fields.ts.kind", "random"),
                ("fields.ts.max_past", "1500 microseconds"),
            ]),
            0,
            Some(columns()),
        )
        .unwrap()
        .unwrap();
        let resolved = fine.resolved_options();
        assert!(resolved.contains(&("fields.ts.max_past".into(), "1500000 nanoseconds".into())));
        let again = GeneratorSpec::from_options_with_schema(&resolved, 1, Some(columns())).unwrap();
        assert_eq!(again, Some(fine));
    }

    #[test]
    fn bad_options_say_how_to_fix_them() {
        let no_columns = GeneratorSpec::from_options(&options(&[]), 0).unwrap_err();
        assert_eq!(
            no_columns,
            "connector 'datagen' needs the stream's columns, e.g. CREATE STREAM t (id BIGINT, name TEXT) WITH (connector = 'datagen')"
        );
        assert_eq!(
            err(&[("fields.nope.kind", "random")]),
            "fields.nope.kind names no column of the stream; its columns are id, customer, amount, note, paid, ts"
        );
        assert_eq!(
            err(&[("fields.id.step", "2")]),
            "unknown option fields.id.step; a column takes kind, start, end, min, max, length, max_past"
        );
        assert_eq!(
            err(&[("fields.id.kind", "seq")]),
            "fields.id.kind must be 'sequence' or 'random', got 'seq'"
        );
        assert_eq!(
            err(&[("fields.note.min", "1")]),
            "fields.note.min does not apply to a random TEXT column; it takes length"
        );
        assert_eq!(
            err(&[("fields.id.kind", "sequence"), ("fields.id.max", "1")]),
            "fields.id.max does not apply to a sequence BIGINT column; it takes start and end"
        );
        assert_eq!(
            err(&[("fields.paid.kind", "sequence")]),
            "fields.paid.kind = 'sequence' does not apply to BOOLEAN column paid; BOOLEAN columns are random"
        );
        assert_eq!(
            err(&[("fields.customer.max", "3000000000")]),
            "fields.customer.max must be a whole number from -2147483648 to 2147483647 for INT column customer, got '3000000000'"
        );
        assert_eq!(
            err(&[("fields.id.min", "5"), ("fields.id.max", "1")]),
            "fields.id.min must not be greater than fields.id.max"
        );
        assert_eq!(
            err(&[("fields.ts.kind", "random"), ("fields.ts.max_past", "soon")]),
            "fields.ts.max_past: expected a duration such as '5 seconds' or a number of milliseconds, got 'soon'"
        );
        assert_eq!(
            err(&[("rate", "1"), ("rows_per_second", "1")]),
            "give rows_per_second or rate, not both"
        );
        assert_eq!(
            err(&[("event", "bid")]),
            "event is an option of connector 'nexmark', not 'datagen'; remove it"
        );
        let dates = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true)]));
        let unsupported =
            GeneratorSpec::from_options_with_schema(&options(&[]), 0, Some(dates)).unwrap_err();
        assert_eq!(
            unsupported,
            "column d is Date32, which datagen cannot generate; it makes INT, BIGINT, DOUBLE, TEXT, BOOLEAN and TIMESTAMP columns"
        );
    }

    #[test]
    fn timestamp_columns_take_no_range() {
        assert_eq!(
            err(&[("fields.ts.start", "0")]),
            "fields.ts.start does not apply to a sequence TIMESTAMP column; its values are the event \
             times, set by base_time and rows_per_second"
        );
    }

    #[test]
    fn in_range_covers_the_ends() {
        assert_eq!(in_range(0, -3, 3), -3);
        assert_eq!(in_range(u64::MAX, -3, 3), 3);
        assert_eq!(in_range(u64::MAX, i64::MIN, i64::MAX), -1);
        assert_eq!(in_range(7, 5, 5), 5);
    }
}
