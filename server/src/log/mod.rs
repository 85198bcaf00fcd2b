//! Append-only partition log of Arrow record batches, addressed by offset: segments,
//! group-committed fsync, recovery and retention. Knows nothing about SQL, streams or
//! the catalog; the caller owns the directory and the schema.
//!
//! # Offsets and the two ends
//!
//! Every row of a partition has an offset; offsets are dense, start at 0 and are never
//! reused. A partition has two ends:
//!
//! * [`PartitionLog::latest_offset`], the *written* end: the next offset `append` will assign.
//! * [`PartitionLog::committed_offset`], the *readable* end: scans never return rows at or
//!   past it, and everything below it is durable.
//!
//! [`PartitionLog::append`] writes a batch but neither syncs nor publishes it;
//! [`PartitionLog::commit`] fsyncs (shared between concurrent callers: group commit) and
//! moves the committed offset. Internally durability (`durable_offset`) and visibility
//! (`committed_offset`) are separate so derived streams can later publish at checkpoint
//! commit instead. Rows past the committed offset may be lost in a crash and their offsets
//! assigned again after recovery; no reader can have seen them (architecture invariant 1).
//!
//! # On-disk format
//!
//! A partition is a directory of segment files named `{base_offset:020}.seg`, where
//! `base_offset` is the offset of the segment's first row (so names sort by offset, and
//! each segment's name is the end offset of the one before). A segment is a sequence of
//! frames with nothing between or after them; a segment is sealed (fsynced, then never
//! written again) once it holds at least [`LogConfig::segment_bytes`] and another append
//! arrives. Each frame holds one appended batch:
//!
//! ```text
//! byte  size  field         (all integers little-endian)
//!    0     4  magic         b"WLF1"
//!    4     4  payload_len   u32, bytes of payload following the header
//!    8     4  crc           u32 CRC-32 (IEEE, as crc32fast) of header bytes 0..8,
//!                           then header bytes 12..32, then the payload
//!   12     8  base_offset   u64, offset of the frame's first row
//!   20     4  rows          u32, row count, never 0
//!   24     8  ingest_ms     i64, wall-clock ms (Unix epoch) when the frame was appended
//!   32     …  payload       one Arrow IPC encapsulated message holding a RecordBatch:
//!                           0xFFFFFFFF, i32 metadata length, flatbuffer `Message`
//!                           (metadata V5) padded to 8 bytes, then the body buffers
//!                           (8-byte alignment, uncompressed)
//! ```
//!
//! Frames are dense: a frame's `base_offset` is the previous frame's `base_offset + rows`.
//! The schema is not stored: it is the stream's schema, held by the caller, and every
//! frame of a partition uses it. Dictionary-encoded columns are refused. The payload can
//! be decoded by any Arrow IPC reader given the schema (e.g. arrow-rs
//! `reader::read_record_batch`), which is how scans decode only the projected columns.
//!
//! # Recovery and retention
//!
//! [`PartitionLog::open`] rebuilds the in-memory frame index from the headers, checks
//! the CRC of every frame in the last segment, and cuts the log at the first torn or
//! corrupt frame, so a recovered log is always a prefix of what was written (invariant 3).
//! [`PartitionLog::enforce_retention`] deletes whole sealed segments, oldest first.

mod partition;
mod recovery;
mod scan;
mod segment;
#[cfg(test)]
mod testing;

use std::path::PathBuf;

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

pub use partition::PartitionLog;
pub use scan::LogScan;

/// Result alias for log operations.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Tuning of one partition log. Defaults: 64 MiB segments, keep everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A new segment file is started when the active one has reached this many bytes.
    pub segment_bytes: u64,
    /// Delete sealed segments whose newest frame is older than this (ms). `None`: forever.
    pub retention_ms: Option<i64>,
    /// Delete the oldest sealed segments while the log is larger than this. `None`: no cap.
    pub retention_bytes: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            retention_ms: None,
            retention_bytes: None,
        }
    }
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first row.
    pub first_offset: u64,
    /// Offset of the batch's last row (inclusive).
    pub last_offset: u64,
    /// One past the last row; pass it to [`PartitionLog::commit`].
    pub end_offset: u64,
}

impl Appended {
    /// The result of appending an empty batch when the written end is `offset`: nothing
    /// was written, `first_offset == end_offset == offset`, and `last_offset` (which
    /// would be meaningless) is set equal to them.
    pub(crate) fn empty_at(offset: u64) -> Self {
        Self {
            first_offset: offset,
            last_offset: offset,
            end_offset: offset,
        }
    }

    /// Rows appended.
    pub fn rows(&self) -> u64 {
        self.end_offset - self.first_offset
    }

    /// True if the batch had no rows and nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }
}

/// Rows read back from the log.
#[derive(Debug, Clone)]
pub struct LogBatch {
    /// Offset of `batch`'s first row.
    pub base_offset: u64,
    /// When the frame holding these rows was appended (ms since the Unix epoch).
    pub ingest_time_ms: i64,
    /// The rows, with the projected columns of the partition schema.
    pub batch: RecordBatch,
}

/// What [`PartitionLog::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files kept.
    pub segments: usize,
    /// Frames kept across all segments.
    pub frames: usize,
    /// The recovered end: next offset to assign, and the committed offset.
    pub next_offset: u64,
    /// Bytes cut off torn or corrupt tails, including deleted later segments.
    pub bytes_truncated: u64,
}

/// What one [`PartitionLog::enforce_retention`] pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segment files deleted.
    pub segments_deleted: usize,
    /// Bytes those segments held.
    pub bytes_deleted: u64,
    /// First retained offset after the pass.
    pub earliest_offset: u64,
}

/// Everything that can go wrong in the log. Messages name the file and position.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The operating system refused a file operation.
    #[error("log I/O error: {op} {}: {source}", path.display())]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// What was being done, e.g. "fsync segment".
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A frame read back does not match what was written (bit rot or a bug).
    #[error("corrupt log frame in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// Segment file.
        path: PathBuf,
        /// Byte position of the frame's header.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// The batch's columns differ from the partition's schema.
    #[error("batch does not match the stream schema: {0}")]
    SchemaMismatch(String),
    /// The schema uses something the log cannot store.
    #[error("unsupported in a stream log: {0}")]
    Unsupported(String),
    /// A projection names a column the schema does not have.
    #[error("projection column {index} is out of range: the stream has {columns} columns")]
    BadProjection {
        /// The offending index.
        index: usize,
        /// Columns in the partition schema.
        columns: usize,
    },
    /// Arrow IPC failed to encode a batch.
    #[error("encoding batch as Arrow IPC: {0}")]
    Encode(#[source] ArrowError),
    /// Arrow IPC failed to decode a frame that passed its CRC check.
    #[error("decoding Arrow IPC frame in {} at byte {position}: {source}", path.display())]
    Decode {
        /// Segment file.
        path: PathBuf,
        /// Byte position of the frame's header.
        position: u64,
        /// The Arrow error.
        #[source]
        source: ArrowError,
    },
    /// One batch encodes to more than a frame can hold (u32 payload length).
    #[error("batch encodes to {bytes} bytes, more than a log frame holds (4 GiB); split it")]
    BatchTooLarge {
        /// Encoded size.
        bytes: usize,
    },
    /// `commit` was asked to cover offsets that were never appended.
    #[error("bug: commit up to offset {end} requested but only {latest} offsets were written")]
    CommitBeyondEnd {
        /// Requested end.
        end: u64,
        /// Written end at the time.
        latest: u64,
    },
    /// An earlier write or fsync failed, so what is on disk is unknown; reopen the log.
    #[error("partition log {} stopped after an I/O failure ({reason}); reopen it to recover", dir.display())]
    Failed {
        /// Partition directory.
        dir: PathBuf,
        /// The first failure.
        reason: String,
    },
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            op,
            source,
        }
    }
}
