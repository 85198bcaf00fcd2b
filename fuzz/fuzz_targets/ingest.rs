//! Ingest bodies: the first byte picks the format (NDJSON, JSON array, CSV with and
//! without a header, Arrow IPC), the rest is the body, decoded against a stream schema
//! of every kind of column. A body is accepted whole or refused with an error.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use weir::ingest::{Format, decode};

#[path = "../common/schema.rs"]
mod schema;

static SCHEMA: LazyLock<arrow::datatypes::SchemaRef> = LazyLock::new(schema::schema);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = match selector % 5 {
        0 => Format::Ndjson,
        1 => Format::JsonArray,
        2 => Format::Csv { header: true },
        3 => Format::Csv { header: false },
        _ => Format::ArrowIpc,
    };
    if let Ok(batch) = decode(&format, body, &SCHEMA) {
        assert_eq!(batch.schema(), Arc::clone(&SCHEMA));
    }
});
