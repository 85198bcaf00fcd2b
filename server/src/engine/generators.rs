//! Generator streams at run time: one task per stream created `WITH (connector = ...)`
//! appends the generator's rows (see [`crate::connector`]) to the stream's log, paced to
//! its `rate`, until `max_events`.
//!
//! Resuming: offsets are dense and never reused, so the rows a stream ever received are
//! the sum of its partitions' end offsets; after a restart the task asks the generator
//! for the next index, and the stream holds exactly the rows an uninterrupted run would
//! have written (each append is one durable write).
//!
//! Without `rate` or `max_events` a generator would fill the disk as fast as it can, so
//! an unbounded generator without a rate runs at [`DEFAULT_UNBOUNDED_RATE`] rows/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;

use crate::connector::GeneratorSpec;
use crate::stream::Stream;

/// Rows per append when running as fast as possible.
const BATCH_ROWS: usize = 64 * 1024;
/// Rows/s of a generator with neither `rate` nor `max_events` (Flink datagen's default).
pub const DEFAULT_UNBOUNDED_RATE: u64 = 10_000;

/// The generator of a stream definition's options, if it has one.
pub fn spec_of(def: &crate::catalog::StreamDef) -> Result<Option<GeneratorSpec>, String> {
    GeneratorSpec::from_options_with_schema(
        &def.options,
        def.created_at_ms,
        Some(Arc::new(def.schema.clone())),
    )
}

/// Rows the stream has ever received (its partitions' end offsets).
fn produced(stream: &Stream) -> u64 {
    stream.partitions().iter().map(|p| p.latest_offset()).sum()
}

/// Appends the generator's rows to `stream` until `max_events` (or forever), paced to
/// its rate. Runs until aborted.
pub async fn run(stream: Arc<Stream>, spec: Arc<GeneratorSpec>) {
    let rate = spec.rate().or(match spec.max_events() {
        None => Some(DEFAULT_UNBOUNDED_RATE),
        Some(_) => None,
    });
    let end = spec.max_events().unwrap_or(u64::MAX);
    let first = produced(&stream);
    let mut next = first;
    let started = Instant::now();
    tracing::info!(stream = stream.name(), from = next, ?rate, max_events = ?spec.max_events(), "generator started");
    while next < end {
        let due = match rate {
            // Rows the rate allows by now, counted from where this run started.
            Some(r) => first.saturating_add((started.elapsed().as_secs_f64() * r as f64) as u64),
            None => u64::MAX,
        };
        let n = due.min(end).saturating_sub(next).min(BATCH_ROWS as u64) as usize;
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let (s, g) = (stream.clone(), spec.clone());
        let written = tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let batch = g.batch(next, n);
            let rows = batch.num_rows();
            if rows == 0 {
                return Ok(0);
            }
            let batch = RecordBatch::try_new(s.schema.clone(), batch.columns().to_vec())
                .map_err(|e| format!("generated rows do not fit the stream's columns: {e}"))?;
            s.append_spread(&batch).map_err(|e| e.to_string())?;
            Ok(rows)
        })
        .await;
        match written {
            Ok(Ok(0)) => break, // the generator ended (a finite sequence)
            Ok(Ok(rows)) => next += rows as u64,
            Ok(Err(e)) => {
                tracing::error!(stream = stream.name(), "generator stopped: {e}");
                return;
            }
            Err(e) => {
                tracing::error!(stream = stream.name(), "generator task failed: {e}");
                return;
            }
        }
        tokio::task::yield_now().await;
    }
    tracing::info!(stream = stream.name(), rows = next, "generator finished");
}
