//! Helpers shared by the log's unit tests.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::{LogConfig, PartitionLog};
use crate::clock::{Clock, ManualClock};

/// `id` (NOT NULL), `name` and `score`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]))
}

/// `rows` rows with ids `first..first + rows`; other columns derived from the id.
pub fn batch(first: u64, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (first as i64..).take(rows).collect();
    let names: Vec<Option<String>> = ids
        .iter()
        .map(|id| (id % 3 != 0).then(|| format!("n{id}")))
        .collect();
    let scores: Vec<f64> = ids.iter().map(|id| *id as f64 * 0.5).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(scores)),
        ],
    )
    .unwrap()
}

/// Segments of a few frames each.
pub fn tiny_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1_000,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    open_with_clock(dir, config, Arc::new(ManualClock::new(1_000)))
}

pub fn open_with_clock(dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> PartitionLog {
    PartitionLog::open(dir, schema(), config, clock).unwrap().0
}

/// Appends batches of the given sizes, each with ids equal to its offsets, and commits.
pub fn fill(log: &PartitionLog, sizes: &[usize]) {
    for &rows in sizes {
        log.append_durable(&batch(log.latest_offset(), rows))
            .unwrap();
    }
}

/// The `id` column (column `column` of each batch) of a scan, checking that each
/// batch's `base_offset` continues from the previous one.
pub fn scan_ids(
    log: &PartitionLog,
    from: u64,
    to: u64,
    projection: Option<Vec<usize>>,
    column: usize,
) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut expected_base = None;
    for item in log.scan(from, to, projection) {
        let item = item.unwrap();
        if let Some(base) = expected_base {
            assert_eq!(item.base_offset, base, "scan batches must be contiguous");
        }
        expected_base = Some(item.base_offset + item.batch.num_rows() as u64);
        let col = item
            .batch
            .column(column)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(col.len(), item.batch.num_rows());
        assert_eq!(col.value(0) as u64, item.base_offset, "ids equal offsets");
        ids.extend(col.values().iter().copied());
    }
    ids
}

pub fn range(from: u64, to: u64) -> Vec<i64> {
    (from as i64..to as i64).collect()
}
