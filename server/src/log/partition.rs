//! One partition's log: the list of segments, appends, group commit, scans and
//! retention. Recovery lives in `recovery.rs`, the frame format in `segment.rs`.
//!
//! # Locks
//!
//! * `writer` (the append lock) serialises appends and segment rolls. It is held while a
//!   frame is written to the page cache, never during a commit's fsync.
//! * `sync_lock` admits one group-commit fsync at a time (see [`PartitionLog::commit`]).
//!   It may take `writer` briefly, never the other way round.
//! * `segments` guards the list of segments; held only to push, drain or clone `Arc`s.
//!   Order: `sync_lock` → `writer` → `segments`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::recovery::{recover, sync_dir};
use super::scan::LogScan;
use super::segment::{EncodedFrame, Segment};
use super::{Appended, LogConfig, LogError, RecoveryReport, Result, RetentionReport};
use crate::clock::Clock;

/// An append-only, offset-addressed log of Arrow record batches for one partition.
///
/// All methods take `&self` and may be called from many threads (share it in an
/// `Arc`). `append`, `commit` and `enforce_retention` block on file IO: call them from
/// `spawn_blocking` in async code.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    schema: SchemaRef,
    config: LogConfig,
    clock: Arc<dyn Clock>,
    /// The append lock, owning the active segment and the next offset to assign.
    writer: Mutex<Writer>,
    /// Retained segments, oldest first. The last one is always the active segment:
    /// a roll pushes the new segment while holding the append lock.
    segments: RwLock<Vec<Arc<Segment>>>,
    /// Held by the thread currently running a group-commit fsync.
    sync_lock: Mutex<()>,
    /// Written end (mirrors `Writer::next_offset`, readable without the append lock).
    latest: AtomicU64,
    /// Everything below this has been fsynced.
    durable: AtomicU64,
    /// Readable end; the channel holds the value and wakes subscribers. Kept separate
    /// from `durable` so derived streams can publish at checkpoint commit later; for
    /// now `commit` moves both.
    committed: watch::Sender<u64>,
    /// Set by the first failed write or fsync. After a failed fsync the kernel may have
    /// dropped dirty pages, so nothing more is written or acknowledged until reopen.
    failed: OnceLock<String>,
}

#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    next_offset: u64,
}

impl PartitionLog {
    /// Opens (creating if needed) the partition log in `dir`, recovering it to its
    /// longest valid prefix. Every recovered row is durable and committed.
    pub fn open(
        dir: impl AsRef<Path>,
        schema: SchemaRef,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, RecoveryReport)> {
        if let Some(field) = schema
            .flattened_fields()
            .into_iter()
            .find(|f| matches!(f.data_type(), DataType::Dictionary(..)))
        {
            return Err(LogError::Unsupported(format!(
                "column {:?} is dictionary-encoded; declare it with its value type instead",
                field.name()
            )));
        }
        let dir = dir.as_ref().to_path_buf();
        let (segments, report) = recover(&dir)?;
        let active = segments
            .last()
            .cloned()
            .expect("recovery returns at least one segment");
        let end = report.next_offset;
        let log = Self {
            dir,
            schema,
            config,
            clock,
            writer: Mutex::new(Writer {
                active,
                next_offset: end,
            }),
            segments: RwLock::new(segments),
            sync_lock: Mutex::new(()),
            latest: AtomicU64::new(end),
            durable: AtomicU64::new(end),
            committed: watch::Sender::new(end),
            failed: OnceLock::new(),
        };
        Ok((log, report))
    }

    /// The partition's schema; every batch read back has (a projection of) it.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Written end: the offset the next appended row will get.
    pub fn latest_offset(&self) -> u64 {
        self.latest.load(Ordering::Acquire)
    }

    /// Readable end: scans return rows below it, all durable.
    pub fn committed_offset(&self) -> u64 {
        *self.committed.borrow()
    }

    /// A receiver that sees every move of the committed offset.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// First retained offset (equal to `latest_offset` if nothing is retained).
    pub fn earliest_offset(&self) -> u64 {
        self.segments.read()[0].base_offset()
    }

    /// Bytes on disk across all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().iter().map(|s| s.len()).sum()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// Writes `batch` as one frame and assigns its offsets. Neither durable nor visible
    /// until a [`commit`](Self::commit) covering `end_offset`. A batch with no rows is not
    /// written: the result has `first_offset == end_offset == latest_offset()` (see
    /// [`Appended::is_empty`]).
    pub fn append(&self, batch: &RecordBatch) -> Result<Appended> {
        self.check_schema(batch)?;
        if batch.num_rows() == 0 {
            return Ok(Appended::empty_at(self.latest_offset()));
        }
        // Encoding and the payload CRC happen before taking the lock, so concurrent
        // appenders only serialise on stamping the header and the write itself.
        let mut frame = EncodedFrame::encode(batch)?;
        let mut writer = self.writer.lock();
        self.check_failed()?;
        if writer.active.len() >= self.config.segment_bytes && writer.active.frame_count() > 0 {
            self.roll(&mut writer)?;
        }
        let first_offset = writer.next_offset;
        let header = frame.seal(first_offset, self.clock.now_ms());
        if let Err(e) = writer.active.append(&frame, &header) {
            // Part of the frame may be in the file; stop here and let recovery cut it.
            return Err(self.fail(e));
        }
        let end_offset = first_offset + u64::from(frame.rows());
        writer.next_offset = end_offset;
        self.latest.store(end_offset, Ordering::Release);
        Ok(Appended {
            first_offset,
            last_offset: end_offset - 1,
            end_offset,
        })
    }

    /// Makes every offset below `end_offset` durable and committed.
    ///
    /// Group commit: `sync_lock` admits one fsync at a time, and whoever holds it syncs
    /// everything appended so far, not just its own frames. Callers queued behind it
    /// usually find their end already durable when they get the lock and return without
    /// an fsync, so N concurrent committers cost about two fsyncs, not N.
    pub fn commit(&self, end_offset: u64) -> Result<()> {
        self.sync_to(end_offset)?;
        // Ingested streams: visibility follows durability, so publish all that is durable.
        self.publish_committed(self.durable.load(Ordering::Acquire));
        Ok(())
    }

    /// Makes every offset below `end_offset` durable and publishes exactly up to it (not
    /// beyond): a derived stream's rows become readable when the checkpoint covering them
    /// commits, while later rows already appended stay invisible.
    pub fn commit_exact(&self, end_offset: u64) -> Result<()> {
        self.sync_to(end_offset)?;
        self.publish_committed(end_offset);
        Ok(())
    }

    /// Makes every offset below `end_offset` durable without publishing it. Group
    /// commit: see [`Self::commit`].
    pub fn sync_to(&self, end_offset: u64) -> Result<()> {
        let latest = self.latest_offset();
        if end_offset > latest {
            return Err(LogError::CommitBeyondEnd {
                end: end_offset,
                latest,
            });
        }
        if self.durable.load(Ordering::Acquire) < end_offset {
            let _sync = self.sync_lock.lock();
            if self.durable.load(Ordering::Acquire) < end_offset {
                self.sync_written()?;
            }
        }
        Ok(())
    }

    /// Cuts the log back to `end`: every row at or after it is removed. For output that
    /// no checkpoint covers, at recovery before anyone reads the stream; `end` must be a
    /// frame boundary at or after the earliest retained offset.
    pub fn rewind(&self, end: u64) -> Result<u64> {
        let mut writer = self.writer.lock();
        if end >= writer.next_offset {
            return Ok(0);
        }
        let removed_rows = writer.next_offset - end;
        let mut segments = self.segments.write();
        if end < segments[0].base_offset() {
            return Err(LogError::Unsupported(format!(
                "cannot rewind {} to offset {end}: retention already deleted it",
                self.dir.display()
            )));
        }
        // Whole segments from `end` on go (but the first, which is cut instead).
        let keep = segments
            .partition_point(|seg| seg.base_offset() < end)
            .max(1);
        let dropped: Vec<_> = segments.drain(keep..).collect();
        let last = segments.last().expect("at least one segment").clone();
        last.truncate_at(end)?;
        drop(segments);
        for segment in &dropped {
            std::fs::remove_file(segment.path())
                .map_err(|e| LogError::io(segment.path(), "delete rewound segment", e))?;
        }
        if !dropped.is_empty() {
            sync_dir(&self.dir)?;
        }
        writer.active = last;
        writer.next_offset = end;
        self.latest.store(end, Ordering::Release);
        self.durable.fetch_min(end, Ordering::AcqRel);
        self.committed.send_modify(|c| *c = (*c).min(end));
        Ok(removed_rows)
    }

    /// [`append`](Self::append) then [`commit`](Self::commit): the batch is durable and
    /// visible when this returns.
    pub fn append_durable(&self, batch: &RecordBatch) -> Result<Appended> {
        let appended = self.append(batch)?;
        if !appended.is_empty() {
            self.commit(appended.end_offset)?;
        }
        Ok(appended)
    }

    /// The first committed offset whose frame was appended at or after `time_ms` (Kafka's
    /// ListOffsets by timestamp), with that frame's time; `None` when no such frame
    /// exists yet.
    pub fn offset_for_time(&self, time_ms: i64) -> Option<(u64, i64)> {
        let committed = self.committed_offset();
        let segments = self.segments.read();
        // Segments whose newest frame is older than the time hold no answer.
        let first = segments.partition_point(|s| s.newest_ingest_ms().is_some_and(|t| t < time_ms));
        for segment in &segments[first..] {
            for i in 0..segment.frame_count() {
                let frame = segment.frame(i)?;
                if frame.offset >= committed {
                    return None;
                }
                if frame.ingest_time_ms >= time_ms {
                    return Some((
                        frame.offset.max(segments[0].base_offset()),
                        frame.ingest_time_ms,
                    ));
                }
            }
        }
        None
    }

    /// Reads offsets `[from, to)` as batches, lazily one frame at a time. `to` is clamped
    /// to the committed offset and `from` up to the earliest retained offset. Only the
    /// `projection` columns are decoded. The scan holds the segments it needs, so it
    /// keeps working if retention deletes their files meanwhile.
    pub fn scan(&self, from: u64, to: u64, projection: Option<Vec<usize>>) -> LogScan {
        let columns = self.schema.fields().len();
        if let Some(&index) = projection.iter().flatten().find(|&&i| i >= columns) {
            return LogScan::failed(LogError::BadProjection { index, columns });
        }
        let to = to.min(self.committed_offset());
        let segments = self.segments.read();
        let from = from.max(segments[0].base_offset());
        // The segment holding `from` (the last with base <= from) up to the last starting below `to`.
        let first = segments.partition_point(|s| s.base_offset() <= from) - 1;
        let last = segments
            .partition_point(|s| s.base_offset() < to)
            .max(first);
        let wanted = segments[first..last].to_vec();
        drop(segments);
        LogScan::new(self.schema.clone(), projection, wanted, from, to)
    }

    /// Deletes whole sealed segments, oldest first, while the oldest is past
    /// `retention_ms` (by its newest frame's ingest time) or the log is larger than
    /// `retention_bytes`. Never deletes the active segment.
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        let cutoff = self
            .config
            .retention_ms
            .map(|ms| self.clock.now_ms().saturating_sub(ms));
        let (removed, earliest_offset) = {
            let mut segments = self.segments.write();
            let mut total: u64 = segments.iter().map(|s| s.len()).sum();
            let mut n = 0;
            while n + 1 < segments.len() {
                let oldest = &segments[n];
                let expired =
                    cutoff.is_some_and(|c| oldest.newest_ingest_ms().is_some_and(|t| t < c));
                let over = self.config.retention_bytes.is_some_and(|max| total > max);
                if !expired && !over {
                    break;
                }
                total -= oldest.len();
                n += 1;
            }
            let removed: Vec<_> = segments.drain(..n).collect();
            (removed, segments[0].base_offset())
        };
        // Unlink only after the segments left the list: new scans cannot find them, and
        // scans already holding an `Arc<Segment>` read on through their open file handle.
        let mut first_error = None;
        for segment in &removed {
            if let Err(e) = std::fs::remove_file(segment.path()) {
                tracing::warn!(path = %segment.path().display(), error = %e, "could not delete expired log segment");
                first_error.get_or_insert(LogError::io(segment.path(), "delete segment", e));
            }
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(RetentionReport {
            segments_deleted: removed.len(),
            bytes_deleted: removed.iter().map(|s| s.len()).sum(),
            earliest_offset,
        })
    }

    /// Fsyncs everything written so far. Caller holds `sync_lock`.
    fn sync_written(&self) -> Result<()> {
        self.check_failed()?;
        // Snapshot the written end and the segment holding its tail, then let appends
        // go on while we fsync. Frames below `target` in older segments were fsynced
        // when those segments were sealed (`roll`), so syncing `active` covers them all.
        let (target, active) = {
            let writer = self.writer.lock();
            (writer.next_offset, writer.active.clone())
        };
        active.sync().map_err(|e| self.fail(e))?;
        self.durable.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    fn publish_committed(&self, end: u64) {
        self.committed.send_if_modified(|committed| {
            let moved = end > *committed;
            if moved {
                *committed = end;
            }
            moved
        });
    }

    /// Seals the active segment and starts a new one at the next offset. Caller holds
    /// the append lock. The old segment is fsynced first, so a sealed segment is always
    /// durable; then the directory, so the new file's entry survives a crash.
    fn roll(&self, writer: &mut Writer) -> Result<()> {
        writer.active.sync().map_err(|e| self.fail(e))?;
        let segment = Arc::new(Segment::create(&self.dir, writer.next_offset)?);
        sync_dir(&self.dir).map_err(|e| self.fail(e))?;
        self.segments.write().push(segment.clone());
        writer.active = segment;
        Ok(())
    }

    fn check_schema(&self, batch: &RecordBatch) -> Result<()> {
        let expected = self.schema.fields();
        let got = batch.schema_ref().fields();
        if expected.len() != got.len() {
            let names: Vec<_> = expected.iter().map(|f| f.name().as_str()).collect();
            return Err(LogError::SchemaMismatch(format!(
                "batch has {} columns, the stream has {} ({})",
                got.len(),
                expected.len(),
                names.join(", ")
            )));
        }
        for (i, (e, g)) in expected.iter().zip(got.iter()).enumerate() {
            let problem = if e.name() != g.name() {
                format!(
                    "column {i} is named {:?}, the stream's is {:?}",
                    g.name(),
                    e.name()
                )
            } else if !e.data_type().equals_datatype(g.data_type()) {
                format!(
                    "column {:?} has type {}, the stream declares {}",
                    e.name(),
                    g.data_type(),
                    e.data_type()
                )
            } else if !e.is_nullable() && batch.column(i).null_count() > 0 {
                format!(
                    "column {:?} is NOT NULL but the batch has nulls in it",
                    e.name()
                )
            } else {
                continue;
            };
            return Err(LogError::SchemaMismatch(problem));
        }
        Ok(())
    }

    fn check_failed(&self) -> Result<()> {
        match self.failed.get() {
            Some(reason) => Err(LogError::Failed {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records the first IO failure, after which the log refuses writes and commits.
    fn fail(&self, error: LogError) -> LogError {
        tracing::error!(dir = %self.dir.display(), %error, "partition log stopped after an I/O failure");
        let _ = self.failed.set(error.to_string());
        error
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::Int64Array;
    use arrow::compute::concat_batches;
    use arrow::datatypes::{Field, Schema};

    use super::super::segment::segment_file_name;
    use super::super::testing::*;
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn append_scan_round_trip_with_projection() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), LogConfig::default());
        let batches = [batch(0, 3), batch(3, 1), batch(4, 5)];
        for b in &batches {
            log.append_durable(b).unwrap();
        }
        let read: Vec<_> = log.scan(0, u64::MAX, None).map(|r| r.unwrap()).collect();
        let offsets: Vec<_> = read.iter().map(|b| b.base_offset).collect();
        assert_eq!(offsets, [0, 3, 4]);
        assert!(read.iter().all(|b| b.ingest_time_ms == 1_000));
        let whole = concat_batches(&schema(), read.iter().map(|b| &b.batch)).unwrap();
        assert_eq!(whole, concat_batches(&schema(), &batches).unwrap());

        let projected: Vec<_> = log
            .scan(0, u64::MAX, Some(vec![2, 0]))
            .map(|r| r.unwrap().batch)
            .collect();
        assert_eq!(projected[2], batches[2].project(&[2, 0]).unwrap());
        assert_eq!(
            scan_ids(&log, 0, u64::MAX, Some(vec![2, 0]), 1),
            range(0, 9)
        );

        let bad: Vec<_> = log.scan(0, u64::MAX, Some(vec![3])).collect();
        assert!(matches!(
            bad[..],
            [Err(LogError::BadProjection {
                index: 3,
                columns: 3
            })]
        ));
    }

    #[test]
    fn offsets_are_dense_across_segment_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), tiny_segments());
        let mut next = 0;
        for rows in (1..=30).map(|i| i % 7 + 1) {
            let appended = log.append_durable(&batch(next, rows)).unwrap();
            assert_eq!(appended.first_offset, next);
            assert_eq!(appended.last_offset, next + rows as u64 - 1);
            assert_eq!(appended.end_offset, next + rows as u64);
            next = appended.end_offset;
        }
        assert!(log.segment_count() > 3, "{} segments", log.segment_count());
        let bases: Vec<_> = log
            .segments
            .read()
            .iter()
            .map(|s| s.base_offset())
            .collect();
        for base in &bases {
            assert!(dir.path().join(segment_file_name(*base)).exists());
        }
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(log.size_bytes(), on_disk);
        assert_eq!(scan_ids(&log, 0, u64::MAX, None, 0), range(0, next));
        assert_eq!(
            (
                log.earliest_offset(),
                log.latest_offset(),
                log.committed_offset()
            ),
            (0, next, next)
        );
    }

    #[test]
    fn scan_slices_frames_to_the_requested_range() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), tiny_segments());
        fill(&log, &[10, 10, 10, 10]);
        let shape: Vec<_> = log
            .scan(5, 25, None)
            .map(|r| r.unwrap())
            .map(|b| (b.base_offset, b.batch.num_rows()))
            .collect();
        assert_eq!(shape, [(5, 5), (10, 10), (20, 5)]);
        assert_eq!(scan_ids(&log, 5, 25, None, 0), range(5, 25));
        assert_eq!(scan_ids(&log, 13, 14, None, 0), [13]);
        assert_eq!(scan_ids(&log, 39, 1_000, None, 0), [39]);
        assert!(scan_ids(&log, 25, 25, None, 0).is_empty());
        assert!(scan_ids(&log, 30, 20, None, 0).is_empty());
        assert!(scan_ids(&log, 40, 50, None, 0).is_empty());
        let scan = log.scan(0, 1_000, None);
        assert_eq!((scan.next_offset(), scan.end_offset()), (0, 40));
    }

    #[test]
    fn reopen_after_clean_close_gives_the_same_log() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(5_000));
        let log = open_with_clock(dir.path(), tiny_segments(), clock.clone());
        for rows in [4, 1, 6, 2, 8, 3, 5] {
            clock.advance(10);
            log.append_durable(&batch(log.latest_offset(), rows))
                .unwrap();
        }
        let before: Vec<_> = log.scan(0, u64::MAX, None).map(|r| r.unwrap()).collect();
        let (segments, size) = (log.segment_count(), log.size_bytes());
        drop(log);

        let (log, report) =
            PartitionLog::open(dir.path(), schema(), tiny_segments(), clock).unwrap();
        assert_eq!(
            report,
            RecoveryReport {
                segments,
                frames: 7,
                next_offset: 29,
                bytes_truncated: 0
            }
        );
        assert_eq!(
            (
                log.latest_offset(),
                log.committed_offset(),
                log.size_bytes()
            ),
            (29, 29, size)
        );
        let after: Vec<_> = log.scan(0, u64::MAX, None).map(|r| r.unwrap()).collect();
        assert_eq!(after.len(), before.len());
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(
                (a.base_offset, a.ingest_time_ms, &a.batch),
                (b.base_offset, b.ingest_time_ms, &b.batch)
            );
        }
        assert_eq!(log.append_durable(&batch(29, 2)).unwrap().first_offset, 29);
        assert_eq!(scan_ids(&log, 0, u64::MAX, None, 0), range(0, 31));
    }

    #[test]
    fn commit_publishes_and_wakes_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), LogConfig::default());
        let mut rx = log.subscribe();
        let appended = log.append(&batch(0, 5)).unwrap();
        assert_eq!((log.latest_offset(), log.committed_offset()), (5, 0));
        assert!(
            scan_ids(&log, 0, u64::MAX, None, 0).is_empty(),
            "uncommitted rows are invisible"
        );
        assert!(!rx.has_changed().unwrap());

        log.commit(appended.end_offset).unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 5);
        assert_eq!(scan_ids(&log, 0, u64::MAX, None, 0), range(0, 5));

        log.commit(3).unwrap(); // already committed: nothing moves
        assert!(!rx.has_changed().unwrap());
        assert!(matches!(
            log.commit(6),
            Err(LogError::CommitBeyondEnd { end: 6, latest: 5 })
        ));

        let empty = log.append_durable(&batch(5, 0)).unwrap();
        assert!(empty.is_empty());
        assert_eq!(
            (empty.first_offset, empty.end_offset, log.latest_offset()),
            (5, 5, 5)
        );
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn append_refuses_other_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), LogConfig::default());
        let renamed = Arc::new(Schema::new(vec![Field::new("key", DataType::Int64, false)]));
        let one_column =
            RecordBatch::try_new(renamed, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
        let err = log.append(&one_column).unwrap_err().to_string();
        assert!(
            err.contains("batch has 1 columns, the stream has 3 (id, name, score)"),
            "{err}"
        );

        let b = batch(0, 2);
        let mut fields: Vec<Field> = schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[2] = Field::new("score", DataType::Int64, true);
        let mut columns = b.columns().to_vec();
        columns[2] = Arc::new(Int64Array::from(vec![1, 2]));
        let retyped = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let err = log.append(&retyped).unwrap_err().to_string();
        assert!(
            err.contains("column \"score\" has type Int64, the stream declares Float64"),
            "{err}"
        );
        assert_eq!(log.latest_offset(), 0);

        let dict = Arc::new(Schema::new(vec![Field::new_dictionary(
            "d",
            DataType::Int32,
            DataType::Utf8,
            true,
        )]));
        let err = PartitionLog::open(
            dir.path().join("d"),
            dict,
            LogConfig::default(),
            Arc::new(ManualClock::new(0)),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"d\" is dictionary-encoded"), "{err}");
    }

    #[test]
    fn concurrent_appenders_get_dense_unique_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(open(
            dir.path(),
            LogConfig {
                segment_bytes: 20_000,
                ..LogConfig::default()
            },
        ));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    (0..40)
                        .map(|i| {
                            // The batch's ids encode who wrote it; offsets are unknown in advance.
                            let rows = (t + i) % 5 + 1;
                            let marker = (t * 1_000 + i) as u64 * 100;
                            let appended = log.append_durable(&batch(marker, rows)).unwrap();
                            assert!(log.committed_offset() >= appended.end_offset);
                            (appended, marker)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: BTreeMap<u64, (Appended, u64)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .map(|(a, marker)| (a.first_offset, (a, marker)))
            .collect();
        assert_eq!(all.len(), 160, "first offsets are unique");
        let mut next = 0;
        for (appended, _) in all.values() {
            assert_eq!(appended.first_offset, next, "offsets are dense");
            next = appended.end_offset;
        }
        assert_eq!(log.committed_offset(), next);
        assert!(log.segment_count() > 1);
        for (appended, marker) in all.values() {
            let ids = scan_ids_raw(&log, appended.first_offset, appended.end_offset);
            assert_eq!(ids, range(*marker, marker + appended.rows()));
        }
    }

    /// The `id` column of a range, without assuming ids equal offsets.
    fn scan_ids_raw(log: &PartitionLog, from: u64, to: u64) -> Vec<i64> {
        log.scan(from, to, Some(vec![0]))
            .flat_map(|b| {
                let b = b.unwrap().batch;
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn retention_by_bytes_deletes_oldest_sealed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_segments();
        let log = open(dir.path(), config.clone());
        fill(&log, &[5; 20]);
        assert_eq!(
            log.enforce_retention().unwrap().segments_deleted,
            0,
            "unlimited by default"
        );
        let (segments, size) = (log.segment_count(), log.size_bytes());
        let largest = log.segments.read().iter().map(|s| s.len()).max().unwrap();
        drop(log);

        config.retention_bytes = Some(size / 2);
        let log = open(dir.path(), config);
        let report = log.enforce_retention().unwrap();
        assert!(report.segments_deleted > 0);
        assert_eq!(log.segment_count(), segments - report.segments_deleted);
        assert_eq!(log.size_bytes(), size - report.bytes_deleted);
        assert!(log.size_bytes() <= size / 2);
        assert!(
            log.size_bytes() + largest > size / 2,
            "deleted no more than needed"
        );
        let earliest = log.earliest_offset();
        assert_eq!(report.earliest_offset, earliest);
        assert_eq!(earliest % 5, 0);
        assert!(earliest > 0);
        assert!(!dir.path().join(segment_file_name(0)).exists());
        assert_eq!(
            scan_ids(&log, 0, u64::MAX, None, 0),
            range(earliest, 100),
            "from is clamped up"
        );
        drop(log);
        let (log, report) = PartitionLog::open(
            dir.path(),
            schema(),
            tiny_segments(),
            Arc::new(ManualClock::new(0)),
        )
        .unwrap();
        assert_eq!((log.earliest_offset(), report.next_offset), (earliest, 100));
    }

    #[test]
    fn retention_by_time_uses_the_newest_frame_of_each_segment() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let config = LogConfig {
            retention_ms: Some(1_000),
            ..tiny_segments()
        };
        let log = open_with_clock(dir.path(), config, clock.clone());
        for _ in 0..20 {
            fill(&log, &[5]);
            clock.advance(100);
        }
        // Frames were stamped 0, 100, ..., 1900; now is 2000, so the cutoff is 1000.
        let newest: Vec<_> = log
            .segments
            .read()
            .iter()
            .map(|s| s.newest_ingest_ms().unwrap())
            .collect();
        let expired = newest.iter().take_while(|&&t| t < 1_000).count();
        assert!(expired > 0 && expired < newest.len());
        let report = log.enforce_retention().unwrap();
        assert_eq!(report.segments_deleted, expired);
        assert!(
            log.segments
                .read()
                .iter()
                .all(|s| s.newest_ingest_ms().unwrap() >= 1_000)
        );

        clock.advance(1_000_000);
        log.enforce_retention().unwrap();
        assert_eq!(
            log.segment_count(),
            1,
            "the active segment is never deleted"
        );
        let earliest = log.earliest_offset();
        assert_eq!(scan_ids(&log, 0, u64::MAX, None, 0), range(earliest, 100));
    }

    #[test]
    fn scan_survives_retention_deleting_its_segments() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_bytes: Some(0),
            ..tiny_segments()
        };
        let log = open(dir.path(), config);
        fill(&log, &[5; 20]);
        let mut scan = log.scan(0, u64::MAX, None);
        let first = scan.next().unwrap().unwrap();
        assert_eq!(first.base_offset, 0);
        let report = log.enforce_retention().unwrap();
        assert_eq!(log.segment_count(), 1);
        assert!(report.segments_deleted > 2);
        assert!(!dir.path().join(segment_file_name(0)).exists());
        let rest: Vec<_> = scan.map(|b| b.unwrap()).collect();
        assert_eq!(
            rest.last().unwrap().base_offset + rest.last().unwrap().batch.num_rows() as u64,
            100
        );
        assert_eq!(
            first.batch.num_rows() + rest.iter().map(|b| b.batch.num_rows()).sum::<usize>(),
            100
        );
        assert_eq!(
            log.scan(0, u64::MAX, None)
                .next()
                .unwrap()
                .unwrap()
                .base_offset,
            log.earliest_offset()
        );
    }
}
