//! A lazy scan over a range of offsets, one frame per step. Knows nothing about how the
//! range was chosen; `PartitionLog::scan` clamps it and picks the segments.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;

use super::segment::{FrameMeta, Segment, decode_payload};
use super::{LogBatch, LogError, Result};

/// Iterator over the rows at offsets `[from, to)` of a partition, as [`LogBatch`]es in
/// offset order. The first and last frames are sliced to the range. Reads and decodes
/// one frame per `next()`. After an error it yields nothing more.
#[derive(Debug)]
pub struct LogScan {
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    /// Segments still to read, oldest first. Holding the `Arc`s keeps their files open
    /// (and readable) even if retention unlinks them during the scan.
    segments: VecDeque<Arc<Segment>>,
    /// Next frame to read in `segments[0]`; `None` until found by binary search.
    frame: Option<usize>,
    /// Offset of the next row to yield.
    next: u64,
    /// End of the range (exclusive).
    to: u64,
    /// An error to yield before anything else.
    error: Option<LogError>,
    /// The projection leaves columns out: each batch's columns are copied out of the
    /// frame, and the frame's buffer is reused for the next read (see [`Self::read`]).
    compact: bool,
    scratch: Vec<u8>,
}

impl LogScan {
    pub(super) fn new(
        schema: SchemaRef,
        projection: Option<Vec<usize>>,
        segments: Vec<Arc<Segment>>,
        from: u64,
        to: u64,
    ) -> Self {
        let compact = projection
            .as_ref()
            .is_some_and(|p| p.len() < schema.fields().len());
        Self {
            compact,
            scratch: Vec::new(),
            schema,
            projection,
            segments: segments.into(),
            frame: None,
            next: from,
            to,
            error: None,
        }
    }

    /// A scan that yields `error` and then ends.
    pub(super) fn failed(error: LogError) -> Self {
        let mut scan = Self::new(
            Arc::new(arrow::datatypes::Schema::empty()),
            None,
            Vec::new(),
            0,
            0,
        );
        scan.error = Some(error);
        scan
    }

    /// Offset of the next row this scan will yield (the end once exhausted).
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Exclusive end of the scanned range, after clamping to the committed offset.
    pub fn end_offset(&self) -> u64 {
        self.to
    }

    /// Reads the frame `meta` and decodes the rows of the range in it.
    ///
    /// Decoded arrays share the frame's buffer. A narrow read (`compact`) copies its
    /// columns out instead, so that a caller keeping the rows does not keep every column
    /// of every frame, and the frame's allocation is reused for the next read: a fresh
    /// one per frame cost more in page faults (zeroing new pages) than the copy.
    fn read(&mut self, segment: &Segment, meta: &FrameMeta) -> Result<LogBatch> {
        let corrupt = |reason: String| LogError::Corrupt {
            path: segment.path().to_path_buf(),
            position: meta.position,
            reason,
        };
        if meta.offset > self.next || meta.end_offset() <= self.next {
            return Err(corrupt(format!(
                "bug: frame {meta:?} does not hold offset {}",
                self.next
            )));
        }
        let frame = segment.read_frame_into(meta, std::mem::take(&mut self.scratch))?;
        let payload = frame.slice(super::segment::HEADER_LEN);
        let batch = decode_payload(&payload, &self.schema, self.projection.as_deref()).map_err(
            |source| LogError::Decode {
                path: segment.path().to_path_buf(),
                position: meta.position,
                source,
            },
        )?;
        if batch.num_rows() != meta.rows as usize {
            return Err(corrupt(format!(
                "header says {} rows, payload has {}",
                meta.rows,
                batch.num_rows()
            )));
        }
        let start = (self.next - meta.offset) as usize;
        let end = (meta.end_offset().min(self.to) - meta.offset) as usize;
        let batch = if start == 0 && end == batch.num_rows() {
            batch
        } else {
            batch.slice(start, end - start)
        };
        let batch = if self.compact {
            let copied = batch
                .columns()
                .iter()
                .map(owned)
                .collect::<std::result::Result<Vec<_>, _>>()
                .and_then(|columns| {
                    // A read of no columns still has its rows.
                    let rows = arrow::array::RecordBatchOptions::new()
                        .with_row_count(Some(batch.num_rows()));
                    RecordBatch::try_new_with_options(batch.schema(), columns, &rows)
                })
                .map_err(|source| LogError::Decode {
                    path: segment.path().to_path_buf(),
                    position: meta.position,
                    source,
                })?;
            drop((batch, payload));
            if let Ok(bytes) = frame.into_vec::<u8>() {
                self.scratch = bytes;
            }
            copied
        } else {
            batch
        };
        Ok(LogBatch {
            base_offset: self.next,
            ingest_time_ms: meta.ingest_time_ms,
            batch,
        })
    }
}

impl Iterator for LogScan {
    type Item = Result<LogBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            self.next = self.to;
            return Some(Err(error));
        }
        while self.next < self.to {
            let segment = self.segments.front()?.clone();
            let index = *self
                .frame
                .get_or_insert_with(|| segment.find_frame(self.next));
            let Some(meta) = segment.frame(index) else {
                self.segments.pop_front();
                self.frame = None;
                continue;
            };
            self.frame = Some(index + 1);
            let result = self.read(&segment, &meta);
            match &result {
                Ok(batch) => self.next += batch.batch.num_rows() as u64,
                Err(_) => self.next = self.to,
            }
            return Some(result);
        }
        None
    }
}

/// A copy of `array` in buffers of its own (not slices of the frame's).
fn owned(array: &ArrayRef) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    use arrow::array::{MutableArrayData, make_array};
    let data = array.to_data();
    let mut copy = MutableArrayData::new(vec![&data], false, data.len());
    copy.try_extend(0, 0, data.len())?;
    Ok(make_array(copy.freeze()))
}
