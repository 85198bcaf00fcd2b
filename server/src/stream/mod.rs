//! A live stream: its definition, one [`PartitionLog`] per partition, and the routing of
//! written rows to partitions (hash of the key columns, or round-robin per batch).
//! Knows nothing about SQL or HTTP; the engine owns the set of streams.

mod routing;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use datafusion::arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::catalog::StreamDef;
use crate::clock::Clock;
use crate::log::{LogBatch, LogConfig, LogError, PartitionLog, RecoveryReport};

/// Hidden per-row metadata, visible to SQL only when named.
pub const METADATA_COLUMNS: [&str; 3] = ["_partition", "_offset", "_ingest_time"];

/// The offsets one write got in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionWrite {
    pub partition: u32,
    pub first_offset: u64,
    pub last_offset: u64,
}

/// A stream that is open for reading and writing.
#[derive(Debug)]
pub struct Stream {
    pub def: StreamDef,
    /// The user columns, as stored.
    pub schema: SchemaRef,
    /// The user columns followed by the metadata columns: what SQL sees.
    pub table_schema: SchemaRef,
    pub dir: PathBuf,
    partitions: Vec<Arc<PartitionLog>>,
    key_indices: Vec<usize>,
    next_partition: AtomicUsize,
    /// Rows and Arrow bytes appended since the process started (for metrics).
    ingested_rows: AtomicU64,
    ingested_bytes: AtomicU64,
    /// Per partition, the largest event time appended (ns; i64::MIN when unknown), for
    /// the partition watermarks the API shows.
    max_event_ns: Vec<std::sync::atomic::AtomicI64>,
}

impl Stream {
    /// Opens (creating or recovering) every partition of `def` under `dir`.
    pub fn open(
        dir: &Path,
        def: StreamDef,
        segment_bytes: u64,
        clock: Arc<dyn Clock>,
    ) -> Result<(Stream, Vec<RecoveryReport>), LogError> {
        let schema = Arc::new(def.schema.clone());
        let config = LogConfig {
            segment_bytes,
            retention_ms: def.retention_ms,
            retention_bytes: def.retention_bytes,
        };
        let mut partitions = Vec::new();
        let mut reports = Vec::new();
        for p in 0..def.partitions {
            let (log, report) = PartitionLog::open(
                dir.join(p.to_string()),
                schema.clone(),
                config.clone(),
                clock.clone(),
            )?;
            partitions.push(Arc::new(log));
            reports.push(report);
        }
        let key_indices = def
            .key
            .iter()
            .map(|k| {
                schema
                    .index_of(k)
                    .expect("key columns are checked at CREATE STREAM")
            })
            .collect();
        let max_event_ns = (0..partitions.len())
            .map(|_| std::sync::atomic::AtomicI64::new(i64::MIN))
            .collect();
        let stream = Stream {
            max_event_ns,
            table_schema: table_schema(&schema),
            schema,
            dir: dir.to_path_buf(),
            partitions,
            key_indices,
            next_partition: AtomicUsize::new(0),
            ingested_rows: AtomicU64::new(0),
            ingested_bytes: AtomicU64::new(0),
            def,
        };
        // Event time of what the logs hold: the newest frame of each partition.
        for (p, log) in stream.partitions.iter().enumerate() {
            let end = log.committed_offset();
            if end > log.earliest_offset() {
                for batch in log.scan(end - 1, end, None).flatten() {
                    stream.observe_event_time(p, &batch.batch);
                }
            }
        }
        Ok((stream, reports))
    }

    /// Notes the largest event time of rows appended to partition `p`.
    fn observe_event_time(&self, p: usize, batch: &RecordBatch) {
        let Some(column) = self
            .def
            .watermark
            .as_ref()
            .and_then(|w| self.schema.index_of(&w.column).ok())
        else {
            return;
        };
        use arrow::array::AsArray;
        let Ok(ns) = arrow::compute::cast(
            batch.column(column),
            &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
        ) else {
            return;
        };
        if let Some(max) =
            arrow::compute::max(ns.as_primitive::<arrow::datatypes::TimestampNanosecondType>())
        {
            self.max_event_ns[p].fetch_max(max, Ordering::Relaxed);
        }
    }

    /// A partition's watermark: its largest event time minus the stream's delay (ns).
    pub fn partition_watermark(&self, p: usize) -> Option<i64> {
        let delay = self.def.watermark.as_ref()?.delay_ms * 1_000_000;
        let max = self.max_event_ns.get(p)?.load(Ordering::Relaxed);
        (max != i64::MIN).then(|| max - delay)
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub fn partitions(&self) -> &[Arc<PartitionLog>] {
        &self.partitions
    }

    /// Appends `batch` (which has exactly the user columns) and returns once every row is
    /// durable and readable. Blocking: call from a blocking thread.
    ///
    /// Each partition's part is appended first, then all touched partitions are committed
    /// (fsynced) in parallel; concurrent writers to a partition share its fsyncs.
    pub fn append(&self, batch: &RecordBatch) -> Result<Vec<PartitionWrite>, LogError> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let parts = if self.key_indices.is_empty() {
            let p = self.next_partition.fetch_add(1, Ordering::Relaxed) % self.partitions.len();
            vec![(p, batch.clone())]
        } else {
            routing::split_by_key(batch, &self.key_indices, self.partitions.len())?
        };
        self.write_parts(batch, parts)
    }

    /// Appends `batch` (user columns) without committing: the rows get offsets but
    /// stay invisible until [`Self::commit_exact`] (a derived stream written by a query
    /// between checkpoints). Blocking.
    pub fn append_uncommitted(&self, batch: &RecordBatch) -> Result<(), LogError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let parts = if self.key_indices.is_empty() {
            let p = self.next_partition.fetch_add(1, Ordering::Relaxed) % self.partitions.len();
            vec![(p, batch.clone())]
        } else {
            routing::split_by_key(batch, &self.key_indices, self.partitions.len())?
        };
        for (p, part) in &parts {
            self.partitions[*p].append(part)?;
            self.observe_event_time(*p, part);
        }
        self.ingested_rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        self.ingested_bytes
            .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The written end of every partition.
    pub fn latest_offsets(&self) -> Vec<u64> {
        self.partitions.iter().map(|p| p.latest_offset()).collect()
    }

    /// Makes each partition durable up to `ends`, without publishing. Blocking.
    pub fn sync_to(&self, ends: &[u64]) -> Result<(), LogError> {
        for (log, end) in self.partitions.iter().zip(ends) {
            log.sync_to(*end)?;
        }
        Ok(())
    }

    /// Makes each partition durable and readable exactly up to `ends` (a checkpoint's
    /// record of this output). Blocking.
    pub fn commit_exact(&self, ends: &[u64]) -> Result<(), LogError> {
        for (log, end) in self.partitions.iter().zip(ends) {
            log.commit_exact(*end)?;
        }
        Ok(())
    }

    /// Removes what a crash left beyond `ends` (output no checkpoint covers); returns
    /// the rows removed. Blocking.
    pub fn rewind(&self, ends: &[u64]) -> Result<u64, LogError> {
        let mut removed = 0;
        for (log, end) in self.partitions.iter().zip(ends) {
            removed += log.rewind(*end)?;
        }
        Ok(removed)
    }

    /// Appends `batch` (user columns) to partition `p` (a Kafka producer chose it) and
    /// returns its first offset once the rows are durable and readable. Blocking.
    pub fn append_to(&self, p: usize, batch: &RecordBatch) -> Result<u64, LogError> {
        let first = self.partitions[p].latest_offset();
        let writes = self.write_parts(batch, vec![(p, batch.clone())])?;
        Ok(writes.first().map_or(first, |w| w.first_offset))
    }

    /// Why clients may not write this stream, if they may not: a Kafka source's rows must
    /// stay exactly its topic's records.
    pub fn refuses_writes(&self) -> Option<String> {
        crate::connector::kafka::is_source(&self.def.options).then(|| {
            format!(
                "stream {} is read from Kafka (connector = 'kafka'); produce to its topic instead of writing to the stream",
                self.name()
            )
        })
    }

    /// Appends `batch` (user columns) to partition `p` without publishing it, until
    /// [`Self::commit_exact`] (a Kafka source, which publishes once its positions are
    /// saved). Blocking.
    pub fn append_to_unpublished(&self, p: usize, batch: &RecordBatch) -> Result<(), LogError> {
        self.partitions[p].append(batch)?;
        self.observe_event_time(p, batch);
        self.ingested_rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        self.ingested_bytes
            .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Like [`Self::append`], but a stream without a key spreads the batch over all its
    /// partitions in equal contiguous slices (generators, which write large batches).
    pub fn append_spread(&self, batch: &RecordBatch) -> Result<Vec<PartitionWrite>, LogError> {
        let n = self.partitions.len();
        if !self.key_indices.is_empty() || n == 1 || batch.num_rows() < n {
            return self.append(batch);
        }
        let first = self.next_partition.fetch_add(1, Ordering::Relaxed);
        let rows = batch.num_rows();
        let parts = (0..n)
            .map(|i| {
                let (start, end) = (rows * i / n, rows * (i + 1) / n);
                ((first + i) % n, batch.slice(start, end - start))
            })
            .collect();
        self.write_parts(batch, parts)
    }

    fn write_parts(
        &self,
        batch: &RecordBatch,
        parts: Vec<(usize, RecordBatch)>,
    ) -> Result<Vec<PartitionWrite>, LogError> {
        let mut writes = Vec::with_capacity(parts.len());
        for (p, part) in &parts {
            let appended = self.partitions[*p].append(part)?;
            self.observe_event_time(*p, part);
            writes.push((*p, appended));
        }
        if writes.len() == 1 {
            let (p, a) = &writes[0];
            self.partitions[*p].commit(a.end_offset)?;
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = writes
                    .iter()
                    .map(|(p, a)| {
                        let log = &self.partitions[*p];
                        scope.spawn(move || log.commit(a.end_offset))
                    })
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().expect("commit thread panicked"))
            })?;
        }
        self.ingested_rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        self.ingested_bytes
            .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
        Ok(writes
            .into_iter()
            .map(|(p, a)| PartitionWrite {
                partition: p as u32,
                first_offset: a.first_offset,
                last_offset: a.last_offset,
            })
            .collect())
    }

    /// Rows appended since the process started.
    pub fn ingested_rows(&self) -> u64 {
        self.ingested_rows.load(Ordering::Relaxed)
    }

    /// Arrow bytes appended since the process started.
    pub fn ingested_bytes(&self) -> u64 {
        self.ingested_bytes.load(Ordering::Relaxed)
    }

    /// Rows retained now (committed minus earliest, over partitions).
    pub fn retained_rows(&self) -> u64 {
        self.partitions
            .iter()
            .map(|p| p.committed_offset().saturating_sub(p.earliest_offset()))
            .sum()
    }

    pub fn size_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.size_bytes()).sum()
    }

    /// Applies retention to every partition.
    pub fn enforce_retention(&self) -> Result<(), LogError> {
        for p in &self.partitions {
            p.enforce_retention()?;
        }
        Ok(())
    }
}

/// The schema SQL sees: user columns, then `_partition INT, _offset BIGINT, _ingest_time TIMESTAMP`.
pub fn table_schema(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    // Never NULL when read; nullable so an INSERT without them (they get NULL, then
    // the values Weir assigns) plans.
    fields.push(Field::new(METADATA_COLUMNS[0], DataType::Int32, true));
    fields.push(Field::new(METADATA_COLUMNS[1], DataType::Int64, true));
    fields.push(Field::new(
        METADATA_COLUMNS[2],
        DataType::Timestamp(TimeUnit::Millisecond, None),
        true,
    ));
    Arc::new(Schema::new(fields))
}

/// The metadata column `index` (0 = `_partition`, 1 = `_offset`, 2 = `_ingest_time`) for
/// the rows of one log batch.
pub fn metadata_column(index: usize, partition: u32, batch: &LogBatch) -> ArrayRef {
    let n = batch.batch.num_rows();
    match index {
        0 => Arc::new(Int32Array::from_value(partition as i32, n)),
        1 => Arc::new(Int64Array::from_iter_values(
            (batch.base_offset..batch.base_offset + n as u64).map(|o| o as i64),
        )),
        _ => Arc::new(TimestampMillisecondArray::from_value(
            batch.ingest_time_ms,
            n,
        )),
    }
}
