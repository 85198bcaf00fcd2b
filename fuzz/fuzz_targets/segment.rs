//! Segment recovery: any bytes in a partition's segment file are recovered to a valid
//! prefix (possibly empty) and everything recovered reads back; never a panic.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use weir::log::{LogConfig, PartitionLog};

#[path = "../common/schema.rs"]
mod schema;

static SCHEMA: LazyLock<arrow::datatypes::SchemaRef> = LazyLock::new(schema::schema);

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000000.seg"), data).unwrap();
    let clock = Arc::new(weir::clock::SystemClock);
    if let Ok((log, _report)) =
        PartitionLog::open(dir.path(), SCHEMA.clone(), LogConfig::default(), clock)
    {
        for batch in log.scan(0, u64::MAX, None) {
            if batch.is_err() {
                break;
            }
        }
    }
});
