//! JSON bodies: NDJSON (one object per line) and a JSON array of objects (or a single
//! object, taken as one row). Owns object framing, field-to-column matching and row
//! numbering; each value goes to `value::ColumnBuilder`, which owns the type rules.
//!
//! Mechanism: serde visitors stream every object's fields straight into the column
//! builders, so a row costs no `serde_json::Value`, map or key allocation (string values
//! with escapes reuse serde_json's scratch buffer). A JSON array is visited element by
//! element rather than parsed whole, so a 64 MiB body is never held as a value tree.
//! Because a serde error only carries text, a refusal is parked in `Rows::stop` and the
//! visitor returns a placeholder error that unwinds the parser; the caller then reports
//! the parked refusal instead.

use std::fmt;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::value::{self, ColumnBuilder, Got, Refusal};
use super::{ColumnNames, DecodeError, RowKind};

/// Decode NDJSON: `row` in errors is the 1-based physical line; blank lines are skipped.
pub(super) fn decode_ndjson(body: &[u8], schema: &SchemaRef) -> Result<RecordBatch, DecodeError> {
    let lines = body.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut rows = Rows::new(schema, lines)?;
    for (index, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows.row = index + 1;
        let mut de = serde_json::Deserializer::from_slice(line);
        let result = RowSeed(&mut rows)
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if let Err(e) = result {
            return Err(rows.take_stop(RowKind::Line).unwrap_or_else(|| {
                // serde's position is "line 1 column N" of this one line: keep the column.
                let text = e.to_string();
                let position = format!(" at line {} column {}", e.line(), e.column());
                let reason = text.strip_suffix(&position).unwrap_or(&text);
                DecodeError {
                    row: Some(index + 1),
                    row_kind: RowKind::Line,
                    column: None,
                    message: format!(
                        "expected a JSON object, got invalid JSON ({reason} at column {})",
                        e.column()
                    ),
                }
            }));
        }
    }
    rows.finish(schema)
}

/// Decode a JSON array of objects (or one object): `row` in errors is the 1-based
/// element index. A syntax error is reported with serde's line and column in the body.
pub(super) fn decode_array(body: &[u8], schema: &SchemaRef) -> Result<RecordBatch, DecodeError> {
    let mut rows = Rows::new(schema, body.len() / 64)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return rows.finish(schema);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = ArraySeed(&mut rows)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Err(e) = result {
        return Err(rows
            .take_stop(RowKind::Row)
            .unwrap_or_else(|| DecodeError::body(format!("body is not valid JSON: {e}"))));
    }
    rows.finish(schema)
}

/// The columns being filled, and where the parser is.
struct Rows {
    names: ColumnNames,
    builders: Vec<ColumnBuilder>,
    /// Per column, the number of the last row that gave it a value: a per-row "seen"
    /// set that never needs clearing, because row numbers only grow.
    seen: Vec<usize>,
    /// The current row's number (line or element), also its stamp in `seen`.
    row: usize,
    /// Rows appended so far.
    count: usize,
    /// Why a visitor stopped the parser, if it was a refusal rather than bad syntax.
    stop: Option<Stop>,
}

struct Stop {
    row: Option<usize>,
    column: Option<usize>,
    message: String,
}

impl Rows {
    fn new(schema: &SchemaRef, capacity: usize) -> Result<Self, DecodeError> {
        Ok(Rows {
            names: ColumnNames::new(schema),
            builders: value::builders(schema, capacity)?,
            seen: vec![0; schema.fields().len()],
            row: 0,
            count: 0,
            stop: None,
        })
    }

    /// Park a refusal at the current row and return the error that unwinds serde.
    fn refuse<E: de::Error>(&mut self, column: Option<usize>, message: Refusal) -> E {
        self.refuse_at(Some(self.row), column, message)
    }

    fn refuse_at<E: de::Error>(
        &mut self,
        row: Option<usize>,
        column: Option<usize>,
        message: Refusal,
    ) -> E {
        self.stop = Some(Stop {
            row,
            column,
            message,
        });
        E::custom("refused (see Rows::stop)")
    }

    fn take_stop(&mut self, row_kind: RowKind) -> Option<DecodeError> {
        let stop = self.stop.take()?;
        Some(DecodeError {
            row: stop.row,
            row_kind,
            column: stop.column.map(|c| self.names.name(c).to_string()),
            message: stop.message,
        })
    }

    /// Put one value's outcome through: a refusal parks and unwinds.
    fn put<E: de::Error>(&mut self, column: usize, result: Result<(), Refusal>) -> Result<(), E> {
        result.map_err(|message| self.refuse(Some(column), message))
    }

    /// One JSON object into one row: its fields, then NULL for every column it left out.
    fn read_object<'de, A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        let mut hint = 0;
        while let Some(column) = map.next_key_seed(KeySeed { rows: self, hint })? {
            hint = column + 1;
            map.next_value_seed(ValueSeed { rows: self, column })?;
        }
        for column in 0..self.builders.len() {
            if self.seen[column] != self.row {
                let result = self.builders[column].append_null();
                self.put(column, result)?;
            }
        }
        self.count += 1;
        Ok(())
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, DecodeError> {
        value::finish_batch(schema, &mut self.builders, self.count)
    }
}

/// The whole body of `application/json`: an array of row objects, or one object.
struct ArraySeed<'r>(&'r mut Rows);

impl<'de> DeserializeSeed<'de> for ArraySeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let rows = self.0;
        loop {
            rows.row += 1;
            if seq.next_element_seed(RowSeed(&mut *rows))?.is_none() {
                return Ok(());
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.row = 1;
        self.0.read_object(map)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.not_rows(Got::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Err(self.not_rows(Got::Int(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Err(self.not_rows(Got::Int(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Err(self.not_rows(Got::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(self.not_rows(Got::Str(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_rows(Got::Json("null")))
    }
}

impl ArraySeed<'_> {
    fn not_rows<E: de::Error>(self, got: Got) -> E {
        self.0.refuse_at(
            None,
            None,
            format!("expected a JSON array of objects, got {got}"),
        )
    }
}

/// One row: must be a JSON object.
struct RowSeed<'r>(&'r mut Rows);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.read_object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let json = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?.to_string();
        Err(self.not_object(Got::Json(&json)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.not_object(Got::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Err(self.not_object(Got::Int(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Err(self.not_object(Got::Int(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Err(self.not_object(Got::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(self.not_object(Got::Str(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_object(Got::Json("null")))
    }
}

impl RowSeed<'_> {
    fn not_object<E: de::Error>(self, got: Got) -> E {
        self.0
            .refuse(None, format!("expected a JSON object, got {got}"))
    }
}

/// A field name, resolved to its column and marked seen for this row.
struct KeySeed<'r> {
    rows: &'r mut Rows,
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<usize, E> {
        let rows = self.rows;
        match rows.names.resolve(name, self.hint) {
            Ok(column) if rows.seen[column] == rows.row => Err(rows.refuse(
                Some(column),
                "more than one field gives this column".to_string(),
            )),
            Ok(column) => {
                rows.seen[column] = rows.row;
                Ok(column)
            }
            Err(message) => Err(rows.refuse(None, message)),
        }
    }
}

/// One field value into its column's builder.
struct ValueSeed<'r> {
    rows: &'r mut Rows,
    column: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        let result = self.rows.builders[self.column].append_bool(v);
        self.rows.put(self.column, result)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let result = self.rows.builders[self.column].append_i64(v);
        self.rows.put(self.column, result)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let result = self.rows.builders[self.column].append_u64(v);
        self.rows.put(self.column, result)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let result = self.rows.builders[self.column].append_f64(v);
        self.rows.put(self.column, result)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let result = self.rows.builders[self.column].append_str(v);
        self.rows.put(self.column, result)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        let result = self.rows.builders[self.column].append_null();
        self.rows.put(self.column, result)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let json = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?.to_string();
        let refusal = self.rows.builders[self.column].refuse_json(&json);
        self.rows.put(self.column, Err(refusal))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let json = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?.to_string();
        let refusal = self.rows.builders[self.column].refuse_json(&json);
        self.rows.put(self.column, Err(refusal))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, decode};
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        DataType, Field, Int64Type, Schema, TimeUnit, TimestampMillisecondType,
    };
    use std::sync::Arc;

    fn bids() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("auction", DataType::Int64, false),
            Field::new("bidder", DataType::Utf8, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new(
                "date_time",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
        ]))
    }

    fn ndjson(body: &str) -> Result<RecordBatch, DecodeError> {
        decode(&Format::Ndjson, body.as_bytes(), &bids())
    }

    fn array(body: &str) -> Result<RecordBatch, DecodeError> {
        decode(&Format::JsonArray, body.as_bytes(), &bids())
    }

    fn message(result: Result<RecordBatch, DecodeError>) -> String {
        result.unwrap_err().to_string()
    }

    fn auctions(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn ndjson_round_trip() {
        let body = concat!(
            "{\"auction\": 1, \"bidder\": \"ann\", \"price\": \"12.50\", \"date_time\": \"2024-01-01T00:00:00Z\"}\n",
            "\n",
            "  \r\n",
            "{\"date_time\": 1704067200000, \"auction\": \"2\", \"price\": 3}\r\n",
            "{\"auction\": 3, \"bidder\": null, \"price\": null, \"date_time\": null}",
        );
        let batch = ndjson(body).unwrap();
        assert_eq!(batch.schema(), bids());
        assert_eq!(auctions(&batch), vec![1, 2, 3]);
        let bidder = batch.column(1).as_string::<i32>();
        assert_eq!(
            (bidder.value(0), bidder.is_null(1), bidder.is_null(2)),
            ("ann", true, true)
        );
        let price = batch
            .column(2)
            .as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(
            (price.value(0), price.value(1), price.is_null(2)),
            (1250, 300, true)
        );
        let time = batch.column(3).as_primitive::<TimestampMillisecondType>();
        assert_eq!(
            (time.value(0), time.value(1), time.is_null(2)),
            (1_704_067_200_000, 1_704_067_200_000, true)
        );
    }

    #[test]
    fn empty_bodies_give_zero_rows() {
        for body in ["", "\n\n  \n"] {
            assert_eq!(ndjson(body).unwrap().num_rows(), 0);
            assert_eq!(array(body).unwrap().num_rows(), 0);
        }
        let batch = array(" [ ] ").unwrap();
        assert_eq!((batch.num_rows(), batch.schema()), (0, bids()));
    }

    #[test]
    fn json_array_round_trip_and_single_object() {
        let batch = array("[{\"auction\": 1}, {\"auction\": 2, \"bidder\": \"bo\"}]").unwrap();
        assert_eq!(auctions(&batch), vec![1, 2]);
        assert_eq!(batch.column(1).as_string::<i32>().value(1), "bo");
        let batch = array("{\"auction\": 7}").unwrap();
        assert_eq!(auctions(&batch), vec![7]);
    }

    #[test]
    fn value_errors_name_line_and_column() {
        let body = "{\"auction\": 1}\n\n{\"auction\": \"abc\"}";
        assert_eq!(
            message(ndjson(body)),
            "line 3, column \"auction\": expected BIGINT, got \"abc\""
        );
        let err = ndjson(body).unwrap_err();
        assert_eq!(
            (err.row, err.row_kind, err.column.as_deref()),
            (Some(3), RowKind::Line, Some("auction"))
        );
        assert_eq!(err.message, "expected BIGINT, got \"abc\"");

        let err = array(
            "[{\"auction\": 1}, {\"auction\": 2}, {\"auction\": 3, \"date_time\": \"yesterday\"}]",
        );
        assert_eq!(
            message(err),
            "row 3, column \"date_time\": expected TIMESTAMP (e.g. \"2024-01-01T00:00:00Z\" or epoch milliseconds), got \"yesterday\""
        );
        assert_eq!(
            message(ndjson("{\"auction\": 1, \"bidder\": 42}")),
            "line 1, column \"bidder\": expected TEXT, got 42"
        );
        assert_eq!(
            message(ndjson(
                "{\"auction\": 1, \"bidder\": {\"first\": \"ann\", \"last\": \"smith\", \"middle\": \"q\"}}"
            )),
            "line 1, column \"bidder\": expected TEXT, got {\"first\":\"ann\",\"last\":\"smith\",\"middle\":\"..."
        );
        assert_eq!(
            message(ndjson("{\"auction\": 1, \"bidder\": [1, 2]}")),
            "line 1, column \"bidder\": expected TEXT, got [1,2]"
        );
        assert_eq!(
            message(ndjson("{\"auction\": 1, \"price\": 1.234}")),
            "line 1, column \"price\": expected DECIMAL(10,2), got 1.234 (more than 2 digits after the point)"
        );
    }

    #[test]
    fn unknown_missing_and_duplicate_fields() {
        assert_eq!(
            message(ndjson("{\"auction\": 1, \"pricee\": 3}")),
            "line 1: unknown column \"pricee\"; the stream has columns auction, bidder, price, date_time"
        );
        assert_eq!(
            message(ndjson(
                "{\"auction\": 1}\n{\"auction\": 2}\n{\"bidder\": \"x\"}"
            )),
            "line 3, column \"auction\": missing value for NOT NULL column"
        );
        assert_eq!(
            message(ndjson("{\"auction\": null}")),
            "line 1, column \"auction\": missing value for NOT NULL column"
        );
        assert_eq!(
            message(ndjson("{\"auction\": 1, \"Auction\": 2}")),
            "line 1, column \"auction\": more than one field gives this column"
        );
        assert_eq!(
            message(ndjson("{\"auction\": 1, \"auction\": 2}")),
            "line 1, column \"auction\": more than one field gives this column"
        );
    }

    #[test]
    fn field_names_match_case_insensitively_when_unique() {
        let batch = ndjson("{\"AUCTION\": 5, \"Bidder\": \"x\"}").unwrap();
        assert_eq!(auctions(&batch), vec![5]);
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "x");
    }

    #[test]
    fn lines_that_are_not_objects() {
        assert_eq!(
            message(ndjson("{\"auction\": 1}\n[1, 2]")),
            "line 2: expected a JSON object, got [1,2]"
        );
        assert_eq!(
            message(ndjson("42")),
            "line 1: expected a JSON object, got 42"
        );
        assert_eq!(
            message(ndjson("\"hi\"")),
            "line 1: expected a JSON object, got \"hi\""
        );
        assert_eq!(
            message(ndjson("null")),
            "line 1: expected a JSON object, got null"
        );
        assert_eq!(
            message(ndjson("{\"auction\": 1}\n\n\n{auction: 1}")),
            "line 4: expected a JSON object, got invalid JSON (key must be a string at column 2)"
        );
        assert_eq!(
            message(ndjson("{\"auction\": 1")),
            "line 1: expected a JSON object, got invalid JSON (EOF while parsing an object at column 13)"
        );
        assert_eq!(
            message(ndjson("{\"auction\": 1} {\"auction\": 2}")),
            "line 1: expected a JSON object, got invalid JSON (trailing characters at column 16)"
        );
        assert_eq!(
            message(array("[{\"auction\": 1}, 5]")),
            "row 2: expected a JSON object, got 5"
        );
    }

    #[test]
    fn array_body_errors() {
        assert_eq!(
            message(array("5")),
            "expected a JSON array of objects, got 5"
        );
        assert_eq!(
            message(array("\"x\"")),
            "expected a JSON array of objects, got \"x\""
        );
        assert_eq!(
            message(array("[{\"auction\": 1},\n {\"auction\": 2}")),
            "body is not valid JSON: EOF while parsing a list at line 2 column 15"
        );
        assert_eq!(
            message(array("[{\"auction\": 1}] x")),
            "body is not valid JSON: trailing characters at line 1 column 18"
        );
        let err = array("[{\"auction\": 1}, {\"bidder\": \"b\"}]").unwrap_err();
        assert_eq!((err.row, err.row_kind), (Some(2), RowKind::Row));
        assert_eq!(
            err.to_string(),
            "row 2, column \"auction\": missing value for NOT NULL column"
        );
    }

    #[test]
    fn strings_with_escapes() {
        let batch = ndjson(r#"{"auction": 1, "bidder": "a\"b\\c\nd\u00e9"}"#).unwrap();
        assert_eq!(
            batch.column(1).as_string::<i32>().value(0),
            "a\"b\\c\nd\u{e9}"
        );
    }

    #[test]
    fn utf8_bom_is_skipped() {
        let body = b"\xEF\xBB\xBF{\"auction\": 1}";
        assert_eq!(
            decode(&Format::Ndjson, body, &bids()).unwrap().num_rows(),
            1
        );
    }

    /// Throughput check, run by hand: `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn ndjson_throughput() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("auction", DataType::Int64, false),
            Field::new("bidder", DataType::Int64, false),
            Field::new("price", DataType::Int64, false),
            Field::new("channel", DataType::Utf8, true),
            Field::new("url", DataType::Utf8, true),
            Field::new(
                "date_time",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("extra", DataType::Utf8, true),
        ]));
        let rows = 500_000;
        let mut body = String::new();
        for i in 0..rows {
            body.push_str(&format!(
                "{{\"auction\": {}, \"bidder\": {}, \"price\": {}, \"channel\": \"channel-{}\", \"url\": \"https://www.nexmark.com/item.htm?query=1&channel_id={}\", \"date_time\": \"2024-01-01T00:{:02}:{:02}.{:03}Z\", \"extra\": \"\"}}\n",
                1000 + i % 100, i, 100 + i % 9000, i % 10, i, (i / 60) % 60, i % 60, i % 1000
            ));
        }
        let start = std::time::Instant::now();
        let batch = decode(&Format::Ndjson, body.as_bytes(), &schema).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(batch.num_rows(), rows);
        println!(
            "{:.0} rows/s, {:.0} MB/s",
            rows as f64 / secs,
            body.len() as f64 / secs / 1e6
        );
    }
}
