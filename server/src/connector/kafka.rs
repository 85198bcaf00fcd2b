//! The Kafka source's options and record decoding: what `CREATE STREAM s (...) WITH
//! (connector = 'kafka', ...)` means, and how a Kafka record's value becomes a row. Pure:
//! the consumer, the log and the positions file are in [`crate::external::kafka_source`].
//!
//! | option              | meaning                                                     | default    |
//! |---------------------|-------------------------------------------------------------|------------|
//! | `bootstrap_servers` | the Kafka cluster, `host:port[,host:port...]`               | required   |
//! | `topic`             | the topic to read                                           | required   |
//! | `format`            | `json` (an object per record), `csv` (one line in column order), `raw` (columns `key`, `value`) | `json` |
//! | `start`             | `earliest`, `latest`, or a timestamp: where a new stream starts reading | `earliest` |
//! | `errors`            | `stop` (the source stops with a visible error), or the name of a dead-letter stream | `stop` |
//! | `properties.*`      | passed to the Kafka client as is (`properties.security.protocol = 'SSL'`) | none |
//!
//! A dead-letter stream gets the columns [`dead_letter_schema`]: the error, the topic,
//! partition and offset of the record, and its key and value as bytes.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, Int32Array, Int64Array, StringArray};
use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::ingest::{self, Format};

/// How a record's value maps to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// A JSON object whose keys are column names (validated as HTTP ingest validates).
    Json,
    /// One CSV line with the stream's columns in order.
    Csv,
    /// The bytes as they are: column `value` (BYTEA or TEXT) and, if declared, `key`.
    Raw,
}

/// Where a stream without stored positions starts reading each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    /// The first record at or after this time (ms since the epoch).
    Time(i64),
}

/// What happens to a record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnError {
    /// The source stops and shows the error in its status; nothing is dropped.
    Stop,
    /// The record goes to this stream, with the error text.
    DeadLetter(String),
}

/// A Kafka source's options.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSourceSpec {
    pub bootstrap_servers: String,
    pub topic: String,
    pub format: ValueFormat,
    pub start: StartAt,
    pub errors: OnError,
    /// `properties.*` options, without the prefix, for the Kafka client.
    pub properties: Vec<(String, String)>,
}

/// Options only the Kafka connectors read.
pub const OPTIONS: &[&str] = &["bootstrap_servers", "topic", "format", "errors"];

/// Whether a stream's options make it a Kafka source.
pub fn is_source(options: &[(String, String)]) -> bool {
    options
        .iter()
        .any(|(k, v)| k == "connector" && v.trim().eq_ignore_ascii_case("kafka"))
}

impl KafkaSourceSpec {
    /// Parses the options of a stream with `connector = 'kafka'` (lowercase keys), given
    /// its declared columns.
    pub fn from_options(
        options: &[(String, String)],
        schema: &Schema,
    ) -> Result<KafkaSourceSpec, String> {
        let get = |key: &str| {
            options
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim().to_string())
        };
        let required = |key: &str, example: &str| {
            get(key).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("a Kafka source needs {key}; add {key} = '{example}' to WITH (...)")
            })
        };
        for (key, _) in options {
            if matches!(
                key.as_str(),
                "event" | "rate" | "max_events" | "base_time" | "seed" | "rows_per_second"
            ) || key.starts_with("fields.")
            {
                return Err(format!(
                    "{key} is an option of the generators, not of connector 'kafka'; remove it"
                ));
            }
        }
        let bootstrap_servers = required("bootstrap_servers", "localhost:9092")?;
        let topic = required("topic", "orders")?;
        let format = match get("format")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("json") => ValueFormat::Json,
            Some("csv") => ValueFormat::Csv,
            Some("raw") => ValueFormat::Raw,
            Some(other) => {
                return Err(format!(
                    "format must be 'json', 'csv' or 'raw', got '{other}'"
                ));
            }
        };
        let start = match get("start") {
            None => StartAt::Earliest,
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "earliest" => StartAt::Earliest,
                "latest" => StartAt::Latest,
                _ => StartAt::Time(
                    string_to_timestamp_nanos(&text)
                        .map(|ns| ns.div_euclid(1_000_000))
                        .map_err(|_| {
                            format!(
                                "start must be 'earliest', 'latest' or a timestamp such as '2024-01-01 00:00:00', got '{text}'"
                            )
                        })?,
                ),
            },
        };
        let errors = match get("errors") {
            None => OnError::Stop,
            Some(text) if text.eq_ignore_ascii_case("stop") => OnError::Stop,
            Some(text) if text.is_empty() => {
                return Err("errors must be 'stop' or the name of a dead-letter stream".into());
            }
            Some(text) => OnError::DeadLetter(text.to_ascii_lowercase()),
        };
        if schema.fields().is_empty() {
            return Err(format!(
                "a Kafka source needs its columns: CREATE STREAM name (col TYPE, ...) WITH (connector = 'kafka', topic = '{topic}', ...)"
            ));
        }
        if format == ValueFormat::Raw {
            check_raw_columns(schema)?;
        }
        let properties = options
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("properties.")?.to_string(), v.clone())))
            .collect();
        Ok(KafkaSourceSpec {
            bootstrap_servers,
            topic,
            format,
            start,
            errors,
            properties,
        })
    }

    /// Decodes the values (and keys) of consecutive records into rows of `schema`. A
    /// record that does not decode is left out of the batch and reported by its index in
    /// `records` with the reason; the others keep their order.
    pub fn decode(&self, records: &[RawRecord<'_>], schema: &SchemaRef) -> Decoded {
        match self.format {
            ValueFormat::Raw => Decoded {
                batch: raw_batch(records, schema),
                bad: Vec::new(),
            },
            ValueFormat::Json => decode_lines(records, schema, Format::Ndjson),
            ValueFormat::Csv => decode_lines(records, schema, Format::Csv { header: false }),
        }
    }
}

/// One Kafka record as the decoder sees it.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// The rows of a run of records, and the records that did not decode.
#[derive(Debug)]
pub struct Decoded {
    pub batch: RecordBatch,
    /// (index into the records, why it was refused)
    pub bad: Vec<(usize, String)>,
}

/// JSON or CSV: the values as lines of one body, decoded in one pass; a refused line is
/// set aside and decoding resumes after it.
fn decode_lines(records: &[RawRecord<'_>], schema: &SchemaRef, format: Format) -> Decoded {
    let mut batches = Vec::new();
    let mut bad = Vec::new();
    let mut start = 0;
    while start < records.len() {
        // A value holding a newline (pretty-printed JSON), a blank one or none cannot
        // share a body with others: it is decoded on its own.
        let end = records[start..]
            .iter()
            .position(|r| !fits_on_a_line(r))
            .map_or(records.len(), |i| start + i.max(1));
        let run = &records[start..end];
        let body = if run.len() == 1 {
            compact(run[0].value.unwrap_or_default(), format)
        } else {
            run.iter()
                .map(|r| r.value.unwrap_or_default())
                .collect::<Vec<_>>()
                .join(&b'\n')
        };
        match ingest::decode(&format, &body, schema) {
            Ok(batch) if batch.num_rows() == run.len() => {
                batches.push(batch);
                start = end;
            }
            Ok(_) => {
                // Only a blank value, decoded on its own, gives no row.
                bad.push((start, "the record has no value".to_string()));
                start = end;
            }
            Err(e) => {
                let line = e.row.unwrap_or(1).clamp(1, run.len());
                if line > 1
                    && let Ok(good) = ingest::decode(&format, &lines(&run[..line - 1]), schema)
                {
                    batches.push(good);
                }
                let reason = match &e.column {
                    Some(column) => format!("column \"{column}\": {}", e.message),
                    None => e.message.clone(),
                };
                bad.push((start + line - 1, reason));
                start += line;
            }
        }
    }
    let batch = arrow::compute::concat_batches(schema, &batches)
        .unwrap_or_else(|_| RecordBatch::new_empty(schema.clone()));
    Decoded { batch, bad }
}

fn lines(records: &[RawRecord<'_>]) -> Vec<u8> {
    records
        .iter()
        .map(|r| r.value.unwrap_or_default())
        .collect::<Vec<_>>()
        .join(&b'\n')
}

/// Whether a value can share a body with others: one non-blank line.
fn fits_on_a_line(record: &RawRecord<'_>) -> bool {
    record
        .value
        .is_some_and(|v| !v.contains(&b'\n') && !v.iter().all(u8::is_ascii_whitespace))
}

/// A pretty-printed JSON value on one line (CSV values are left alone).
fn compact(value: &[u8], format: Format) -> Vec<u8> {
    if format == Format::Ndjson
        && value.contains(&b'\n')
        && let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(value)
    {
        return parsed.to_string().into_bytes();
    }
    value.to_vec()
}

/// `raw`: the stream has `value` and optionally `key`, each BYTEA or TEXT.
fn check_raw_columns(schema: &Schema) -> Result<(), String> {
    let fix = "declare (key BYTEA, value BYTEA) or (value TEXT)";
    for field in schema.fields() {
        let name = field.name().as_str();
        if name != "key" && name != "value" {
            return Err(format!(
                "format 'raw' fills only the columns key and value, not \"{name}\"; {fix}, then parse value in a derived stream"
            ));
        }
        if !matches!(field.data_type(), DataType::Binary | DataType::Utf8) {
            return Err(format!(
                "format 'raw' puts bytes in \"{name}\", which is {}; {fix}",
                crate::types::sql_type_name(field.data_type())
            ));
        }
    }
    if schema.index_of("value").is_err() {
        return Err(format!("format 'raw' needs a column named value; {fix}"));
    }
    Ok(())
}

fn raw_batch(records: &[RawRecord<'_>], schema: &SchemaRef) -> RecordBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| {
            let bytes = records.iter().map(|r| match field.name().as_str() {
                "key" => r.key,
                _ => r.value,
            });
            match field.data_type() {
                DataType::Utf8 => Arc::new(
                    bytes
                        .map(|b| b.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect::<StringArray>(),
                ) as ArrayRef,
                _ => Arc::new(bytes.collect::<BinaryArray>()) as ArrayRef,
            }
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("raw columns were checked at CREATE")
}

/// The columns of a dead-letter stream.
pub fn dead_letter_schema() -> Schema {
    Schema::new(vec![
        Field::new("error", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
    ])
}

/// One refused record, for the dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub error: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Dead letters of source `source` (a stream name) as rows of [`dead_letter_schema`].
pub fn dead_letter_batch(source: &str, topic: &str, letters: &[DeadLetter]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            letters.iter().map(|l| l.error.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            letters.iter().map(|_| source),
        )),
        Arc::new(StringArray::from_iter_values(letters.iter().map(|_| topic))),
        Arc::new(Int32Array::from_iter_values(
            letters.iter().map(|l| l.partition),
        )),
        Arc::new(Int64Array::from_iter_values(
            letters.iter().map(|l| l.offset),
        )),
        Arc::new(
            letters
                .iter()
                .map(|l| l.key.as_deref())
                .collect::<BinaryArray>(),
        ),
        Arc::new(
            letters
                .iter()
                .map(|l| l.value.as_deref())
                .collect::<BinaryArray>(),
        ),
    ];
    RecordBatch::try_new(Arc::new(dead_letter_schema()), columns)
        .expect("dead letters match their schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::opts;
    use arrow::array::Array;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn rec(value: &str) -> RawRecord<'_> {
        RawRecord {
            key: None,
            value: Some(value.as_bytes()),
        }
    }

    #[test]
    fn options_and_their_errors() {
        let spec = KafkaSourceSpec::from_options(
            &opts(&[
                ("connector", "kafka"),
                ("bootstrap_servers", "127.0.0.1:9092"),
                ("topic", "t"),
                ("start", "latest"),
                ("errors", "Bad_Orders"),
                ("properties.client.id", "weir"),
            ]),
            &schema(),
        )
        .unwrap();
        assert_eq!(spec.start, StartAt::Latest);
        assert_eq!(spec.errors, OnError::DeadLetter("bad_orders".into()));
        assert_eq!(spec.properties, vec![("client.id".into(), "weir".into())]);
        let err = KafkaSourceSpec::from_options(&opts(&[("topic", "t")]), &schema()).unwrap_err();
        assert_eq!(
            err,
            "a Kafka source needs bootstrap_servers; add bootstrap_servers = 'localhost:9092' to WITH (...)"
        );
        let err = KafkaSourceSpec::from_options(
            &opts(&[
                ("bootstrap_servers", "h:1"),
                ("topic", "t"),
                ("format", "avro"),
            ]),
            &schema(),
        )
        .unwrap_err();
        assert_eq!(err, "format must be 'json', 'csv' or 'raw', got 'avro'");
        let err = KafkaSourceSpec::from_options(
            &opts(&[
                ("bootstrap_servers", "h:1"),
                ("topic", "t"),
                ("format", "raw"),
            ]),
            &schema(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("format 'raw' fills only the columns key and value, not \"id\""),
            "{err}"
        );
    }

    #[test]
    fn bad_records_are_set_aside_in_order() {
        let spec = KafkaSourceSpec::from_options(
            &opts(&[("bootstrap_servers", "h:1"), ("topic", "t")]),
            &schema(),
        )
        .unwrap();
        let records = [
            rec(r#"{"id": 1, "name": "a"}"#),
            rec(r#"{"id": "x"}"#),
            rec("{\n \"id\": 3\n}"),
            rec("not json"),
            rec(r#"{"id": 5}"#),
            RawRecord {
                key: None,
                value: None,
            },
        ];
        let decoded = spec.decode(&records, &schema());
        let ids = decoded
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec();
        assert_eq!(ids, vec![1, 3, 5]);
        let bad: Vec<usize> = decoded.bad.iter().map(|(i, _)| *i).collect();
        assert_eq!(bad, vec![1, 3, 5]);
        assert!(
            decoded.bad[0]
                .1
                .starts_with("column \"id\": expected BIGINT"),
            "{:?}",
            decoded.bad
        );
    }

    #[test]
    fn csv_and_raw_values() {
        let csv = KafkaSourceSpec::from_options(
            &opts(&[
                ("bootstrap_servers", "h:1"),
                ("topic", "t"),
                ("format", "csv"),
            ]),
            &schema(),
        )
        .unwrap();
        let decoded = csv.decode(
            &[rec("1,ann"), rec("two,bob"), rec("3,\"c, d\"")],
            &schema(),
        );
        assert_eq!(decoded.batch.num_rows(), 2);
        assert_eq!(decoded.bad.len(), 1);
        assert_eq!(decoded.bad[0].0, 1);

        let raw_schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, true),
            Field::new("value", DataType::Binary, true),
        ]));
        let raw = KafkaSourceSpec::from_options(
            &opts(&[
                ("bootstrap_servers", "h:1"),
                ("topic", "t"),
                ("format", "raw"),
            ]),
            &raw_schema,
        )
        .unwrap();
        let decoded = raw.decode(
            &[
                RawRecord {
                    key: Some(b"k1"),
                    value: Some(b"\x00\xffbytes"),
                },
                RawRecord {
                    key: None,
                    value: None,
                },
            ],
            &raw_schema,
        );
        assert!(decoded.bad.is_empty());
        let keys = decoded
            .batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((keys.value(0), keys.is_null(1)), ("k1", true));
        let values = decoded
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap();
        assert_eq!(values.value(0), b"\x00\xffbytes");
    }

    #[test]
    fn start_at_a_time() {
        let spec = KafkaSourceSpec::from_options(
            &opts(&[
                ("bootstrap_servers", "h:1"),
                ("topic", "t"),
                ("start", "2024-01-01 00:00:01"),
            ]),
            &schema(),
        )
        .unwrap();
        assert_eq!(spec.start, StartAt::Time(1_704_067_201_000));
        let err = KafkaSourceSpec::from_options(
            &opts(&[
                ("bootstrap_servers", "h:1"),
                ("topic", "t"),
                ("start", "soon"),
            ]),
            &schema(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("start must be 'earliest', 'latest' or a timestamp"),
            "{err}"
        );
    }
}
