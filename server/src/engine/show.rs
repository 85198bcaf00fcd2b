//! `SHOW STREAMS` and `DESCRIBE s`: the catalog and live offsets as result rows.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::StatementResult;
use crate::stream::Stream;
use crate::types::sql_type_name;

/// `"7 days"`, `"90 seconds"`, ...: durations as people write them.
pub fn human_duration(ms: i64) -> String {
    const UNITS: [(i64, &str); 5] = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1000, "second"),
        (1, "millisecond"),
    ];
    for (size, unit) in UNITS {
        if ms != 0 && ms % size == 0 {
            let n = ms / size;
            return format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
        }
    }
    "0 seconds".into()
}

fn text_column(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

pub(super) fn rows(fields: Vec<Field>, columns: Vec<ArrayRef>) -> StatementResult {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("columns match their schema");
    StatementResult::Rows {
        schema,
        batches: vec![batch],
        elapsed: Duration::ZERO,
    }
}

/// One row per stream: name, partitions, key, watermark, retention, retained rows.
pub fn show_streams(streams: &[Arc<Stream>]) -> StatementResult {
    let def = |f: fn(&Stream) -> String| streams.iter().map(|s| f(s)).collect::<Vec<_>>();
    rows(
        vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("partitions", DataType::Int64, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("watermark", DataType::Utf8, false),
            Field::new("retention", DataType::Utf8, false),
            Field::new("rows", DataType::Int64, false),
        ],
        vec![
            text_column(def(|s| s.def.name.clone())),
            Arc::new(Int64Array::from_iter_values(
                streams.iter().map(|s| s.def.partitions as i64),
            )),
            text_column(def(|s| s.def.key.join(", "))),
            text_column(def(|s| {
                s.def
                    .watermark
                    .as_ref()
                    .map(|w| w.expression.clone())
                    .unwrap_or_default()
            })),
            text_column(def(retention_text)),
            Arc::new(Int64Array::from_iter_values(
                streams.iter().map(|s| s.retained_rows() as i64),
            )),
        ],
    )
}

fn retention_text(s: &Stream) -> String {
    let mut parts = Vec::new();
    if let Some(ms) = s.def.retention_ms {
        parts.push(human_duration(ms));
    }
    if let Some(bytes) = s.def.retention_bytes {
        parts.push(format!("{bytes} bytes"));
    }
    if parts.is_empty() {
        "unlimited".into()
    } else {
        parts.join(", ")
    }
}

/// `DESCRIBE s`: one row per property (columns first, then the stream's settings and
/// each partition's offsets).
pub fn describe(stream: &Stream) -> StatementResult {
    let mut props: Vec<(String, String)> = Vec::new();
    for field in stream.schema.fields() {
        let mut text = sql_type_name(field.data_type());
        if !field.is_nullable() {
            text.push_str(" NOT NULL");
        }
        props.push((format!("column {}", field.name()), text));
    }
    let def = &stream.def;
    if let Some(w) = &def.watermark {
        props.push((
            "watermark".into(),
            format!("FOR {} AS {}", w.column, w.expression),
        ));
        props.push(("idle_timeout".into(), human_duration(def.idle_timeout_ms)));
    }
    props.push((
        "key".into(),
        if def.key.is_empty() {
            "(round-robin)".into()
        } else {
            def.key.join(", ")
        },
    ));
    props.push(("partitions".into(), def.partitions.to_string()));
    props.push(("retention".into(), retention_text(stream)));
    for (p, log) in stream.partitions().iter().enumerate() {
        props.push((
            format!("partition {p}"),
            format!(
                "offsets {}..{} ({} rows)",
                log.earliest_offset(),
                log.committed_offset(),
                log.committed_offset() - log.earliest_offset()
            ),
        ));
    }
    let (names, values): (Vec<_>, Vec<_>) = props.into_iter().unzip();
    rows(
        vec![
            Field::new("property", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, false),
        ],
        vec![text_column(names), text_column(values)],
    )
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(7 * 86_400_000), "7 days");
        assert_eq!(human_duration(4000), "4 seconds");
        assert_eq!(human_duration(60_000), "1 minute");
        assert_eq!(human_duration(1500), "1500 milliseconds");
    }
}
