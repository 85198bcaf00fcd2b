//! A reader task: one partition of one source stream, read from its next offset up to
//! the committed offset, forever; its event time, idleness and barriers (see the
//! module docs of [`super`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, max};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampNanosecondType};
use tokio::sync::{mpsc, oneshot, watch};

use super::{CHUNK_ROWS, InputTime, Message, Result, Route, RunningQuery, Snapshot};
use crate::log::{LogBatch, PartitionLog};
use crate::stream::{Stream, metadata_column};

/// A reader's event time: its partition's watermark and when it last read rows.
struct EventTime {
    /// Index of the event-time column in the table schema, and the delay (ns).
    column: Option<(usize, i64)>,
    watermark: Option<i64>,
    last_active_ms: i64,
    idle_timeout_ms: i64,
}

impl EventTime {
    /// Notes the rows of one table-schema batch.
    fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some((column, delay)) = self.column else {
            return Ok(());
        };
        let ts = cast(
            batch.column(column),
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
        )?;
        if let Some(max_ts) = max(ts.as_primitive::<TimestampNanosecondType>()) {
            let candidate = max_ts - delay;
            self.watermark = Some(self.watermark.map_or(candidate, |w| w.max(candidate)));
        }
        Ok(())
    }

    /// What the partition reports now, having read up to `next`.
    fn status(&self, log: &PartitionLog, next: u64, now_ms: i64) -> InputTime {
        // The written end, not the committed one: a write spanning partitions appends
        // to all of them before committing any, so a partition whose part is still
        // being committed already holds the watermark (no race with its neighbours).
        let written = log.latest_offset();
        // An empty log holds the watermark back like any other partition until it has
        // been idle for the idle timeout (from the query's start): its first rows may be
        // older than its siblings'. Then it is left out, as an idle partition.
        if written <= log.earliest_offset() && self.watermark.is_none() {
            if now_ms - self.last_active_ms >= self.idle_timeout_ms {
                return InputTime::Idle {
                    upto: written,
                    watermark: None,
                };
            }
            return InputTime::Unknown;
        }
        if next >= written && now_ms - self.last_active_ms >= self.idle_timeout_ms {
            return InputTime::Idle {
                upto: next,
                watermark: self.watermark,
            };
        }
        match self.watermark {
            None => InputTime::Unknown,
            Some(w) => InputTime::At(w),
        }
    }
}

impl RunningQuery {
    /// Reader task of partition slot `slot`: from `position` (next offset, watermark).
    pub(super) async fn read(
        self: Arc<Self>,
        slot: usize,
        position: (u64, Option<i64>),
        routes: Vec<Route>,
        mut ticks: mpsc::Receiver<oneshot::Sender<()>>,
        snapshots: mpsc::Sender<Snapshot>,
    ) -> Result<()> {
        let reader = &self.readers[slot];
        let p = reader.partition;
        let stream = self.sources[reader.source].stream.clone();
        let log: Arc<PartitionLog> = stream.partitions()[p].clone();
        let (mut next, watermark) = position;
        let mut time = EventTime {
            column: stream.def.watermark.as_ref().and_then(|w| {
                stream
                    .table_schema
                    .index_of(&w.column)
                    .ok()
                    .map(|i| (i, w.delay_ms * 1_000_000))
            }),
            watermark,
            last_active_ms: self.started_ms,
            idle_timeout_ms: stream.def.idle_timeout_ms,
        };
        let mut commits = log.subscribe();
        let mut cancel = self.cancel.subscribe();
        let (mut barriers, mut resumed) = match &self.checkpoints {
            Some(c) => (c.barrier.subscribe(), c.resumed.subscribe()),
            None => (watch::channel(0).1, watch::channel(0).1),
        };
        // The last epoch every reader took part in: a barrier asked for before this task
        // started still needs this partition's barrier.
        let mut barrier_sent = *resumed.borrow();
        let late = self.late.is_some();
        let columns = Arc::new(ReadColumns::new(&stream, &routes, late));
        let targets: Vec<(usize, &mpsc::Sender<Vec<Message>>)> = routes
            .iter()
            .flat_map(|r| r.targets.iter().map(move |t| (r.sender_base + p, t)))
            .collect();
        let mut sent: Option<InputTime> = None;
        // Where this partition starts: until a reader says, its slot holds the others'
        // progress back (an empty partition never reads a chunk).
        let mut frontier = vec![u64::MAX; self.readers.len()];
        frontier[slot] = next;
        let frontier = Arc::new(frontier);
        for (sender, tx) in &targets {
            let message = Message::Progress {
                sender: *sender,
                frontier: frontier.clone(),
            };
            if tx.send(vec![message]).await.is_err() {
                return Ok(());
            }
        }
        let mut timer = tokio::time::interval(std::time::Duration::from_millis(500));
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *cancel.borrow() {
                return Ok(());
            }
            // Event time, including idleness, whenever it changed.
            let now = time.status(&log, next, self.clock.now_ms());
            *reader.report.lock() = (time.watermark, matches!(now, InputTime::Idle { .. }));
            if sent != Some(now) {
                sent = Some(now);
                for (sender, tx) in &targets {
                    let message = Message::Time {
                        sender: *sender,
                        time: now,
                    };
                    if tx.send(vec![message]).await.is_err() {
                        return Ok(()); // the query stopped
                    }
                }
            }
            if let Ok(done) = ticks.try_recv() {
                // Answered after the status above went out.
                let _ = done.send(());
                continue;
            }
            // A checkpoint: send the barrier on every edge, report where this
            // partition stopped, then wait until all snapshots are taken.
            let wanted = *barriers.borrow_and_update();
            if wanted > barrier_sent {
                for (_, tx) in &targets {
                    if tx
                        .send(vec![Message::Barrier { epoch: wanted }])
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                let snapshot = Snapshot::Reader {
                    slot,
                    epoch: wanted,
                    offset: next,
                    watermark: time.watermark,
                };
                if snapshots.send(snapshot).await.is_err() {
                    return Ok(());
                }
                barrier_sent = wanted;
                tokio::select! {
                    done = resumed.wait_for(|e| *e >= wanted) => if done.is_err() { return Ok(()) },
                    _ = cancel.changed() => return Ok(()),
                }
                continue;
            }
            let earliest = log.earliest_offset();
            if next < earliest {
                tracing::warn!(
                    query = %self.def.name, stream = %stream.name(), partition = p, lost_rows = earliest - next,
                    "retention deleted input this query had not read yet; continuing from offset {earliest}"
                );
                self.metrics
                    .input_lost_rows
                    .fetch_add(earliest - next, Ordering::Relaxed);
                next = earliest;
            }
            let committed = log.committed_offset();
            if next >= committed {
                tokio::select! {
                    changed = commits.changed() => {
                        if changed.is_err() {
                            return Ok(()); // the stream was dropped
                        }
                    }
                    _ = barriers.changed() => {}
                    _ = cancel.changed() => return Ok(()),
                    request = ticks.recv() => {
                        // Re-checked at the top of the loop, then answered.
                        if let Some(done) = request {
                            let now = time.status(&log, next, self.clock.now_ms());
                            if sent != Some(now) {
                                sent = Some(now);
                                for (sender, tx) in &targets {
                                    let message = Message::Time { sender: *sender, time: now };
                                    if tx.send(vec![message]).await.is_err() {
                                        return Ok(());
                                    }
                                }
                            }
                            *reader.report.lock() = (time.watermark, matches!(now, InputTime::Idle { .. }));
                            let _ = done.send(());
                        }
                    }
                    _ = timer.tick() => {}
                }
                continue;
            }
            let to = committed.min(next + CHUNK_ROWS);
            let (chunks, rows, batches, moved) = {
                let log = log.clone();
                let columns = columns.clone();
                let routes = routes.clone();
                let mut watermark = time.watermark;
                let column = time.column;
                let mut last = sent;
                tokio::task::spawn_blocking(move || -> Result<_> {
                    let mut out: Vec<Vec<Message>> = routes
                        .iter()
                        .flat_map(|r| r.targets.iter().map(|_| Vec::new()))
                        .collect();
                    let (mut rows, mut batches) = (0usize, 0u64);
                    let mut observer = EventTime {
                        column,
                        watermark,
                        last_active_ms: 0,
                        idle_timeout_ms: 0,
                    };
                    // The event time goes out on every edge, before the rows it judges.
                    let push_time = |out: &mut Vec<Vec<Message>>, time: InputTime| {
                        let mut at = 0;
                        for route in &routes {
                            for i in 0..route.targets.len() {
                                out[at + i].push(Message::Time {
                                    sender: route.sender_base + p,
                                    time,
                                });
                            }
                            at += route.targets.len();
                        }
                    };
                    for item in log.scan(next, to, columns.decode.clone()) {
                        let batch = item?;
                        let table = columns.table_batch(p as u32, &batch)?;
                        if table.num_rows() == 0 {
                            continue;
                        }
                        rows += table.num_rows();
                        batches += 1;
                        if matches!(last, Some(InputTime::Idle { .. })) {
                            // Rows again: the partition counts before they are judged.
                            let now = watermark.map_or(InputTime::Unknown, InputTime::At);
                            last = Some(now);
                            push_time(&mut out, now);
                        }
                        let source = late.then_some(&table);
                        let mut at = 0;
                        for route in &routes {
                            for (i, part) in
                                route.route(table.clone(), source)?.into_iter().enumerate()
                            {
                                if let Some(rows) = part {
                                    out[at + i].push(Message::Rows {
                                        port: route.port,
                                        rows,
                                    });
                                }
                            }
                            at += route.targets.len();
                        }
                        // The event time after this batch: the next is judged by it.
                        observer.observe(&table)?;
                        if observer.watermark != watermark {
                            watermark = observer.watermark;
                            let now = watermark.map_or(InputTime::Unknown, InputTime::At);
                            last = Some(now);
                            push_time(&mut out, now);
                        }
                    }
                    Ok((out, rows, batches, (watermark, last)))
                })
                .await??
            };
            time.watermark = moved.0;
            sent = moved.1;
            if rows > 0 {
                time.last_active_ms = self.clock.now_ms();
            }
            self.metrics
                .rows_in
                .fetch_add(rows as u64, Ordering::Relaxed);
            reader.rows.fetch_add(rows as u64, Ordering::Relaxed);
            self.metrics.batches.fetch_add(batches, Ordering::Relaxed);
            let mut frontier = vec![u64::MAX; self.readers.len()];
            frontier[slot] = to;
            let frontier = Arc::new(frontier);
            for ((sender, tx), mut chunk) in targets.iter().zip(chunks) {
                chunk.push(Message::Progress {
                    sender: *sender,
                    frontier: frontier.clone(),
                });
                if tx.send(chunk).await.is_err() {
                    return Ok(()); // the query stopped
                }
            }
            next = to;
        }
    }
}

/// The columns of a source a query's readers decode from the log, and how they build
/// the table-schema batches its edges run on.
///
/// A reader decodes only the columns the edges read (their scans' projections) and the
/// event time, so a query over three columns of a wide stream does not decode (or
/// validate the UTF-8 of) the others. The columns it skips are all-null arrays, in a
/// copy of the table schema where they are nullable; a query that routes late events
/// to a stream decodes every column, since the late rows are written as they arrived.
struct ReadColumns {
    /// User columns to decode, in order; `None`: all of them.
    decode: Option<Vec<usize>>,
    /// Which table-schema columns (user then metadata) are needed.
    needed: Vec<bool>,
    schema: SchemaRef,
}

impl ReadColumns {
    fn new(stream: &Stream, routes: &[Route], all: bool) -> Self {
        use datafusion::arrow::datatypes::Schema;
        let table = &stream.table_schema;
        let user_columns = table.fields().len() - 3;
        let event_time = stream
            .def
            .watermark
            .as_ref()
            .and_then(|w| table.index_of(&w.column).ok());
        let read = |i: usize| {
            routes
                .iter()
                .any(|r| r.projection.as_ref().is_none_or(|p| p.contains(&i)))
        };
        let mut needed: Vec<bool> = (0..table.fields().len())
            .map(|i| all || read(i) || event_time == Some(i))
            .collect();
        if !needed[..user_columns].contains(&true) {
            // Decode one column (the first) so a frame's rows are counted.
            needed[0] = true;
        }
        let decode = (!all).then(|| (0..user_columns).filter(|&i| needed[i]).collect());
        let fields: Vec<_> = table
            .fields()
            .iter()
            .zip(&needed)
            .map(|(f, &needed)| match needed {
                true => f.clone(),
                false => Arc::new(f.as_ref().clone().with_nullable(true)),
            })
            .collect();
        ReadColumns {
            decode,
            needed,
            schema: Arc::new(Schema::new_with_metadata(fields, table.metadata().clone())),
        }
    }

    /// The table-schema batch of one log batch (read with `self.decode`).
    fn table_batch(
        &self,
        partition: u32,
        batch: &LogBatch,
    ) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        use datafusion::arrow::array::new_null_array;
        let rows = batch.batch.num_rows();
        let user_columns = self.needed.len() - 3;
        let mut decoded = batch.batch.columns().iter();
        let mut columns = Vec::with_capacity(self.needed.len());
        for (i, field) in self.schema.fields().iter().enumerate() {
            columns.push(match (self.needed[i], i < user_columns) {
                (true, true) => decoded.next().cloned().ok_or_else(|| {
                    datafusion::arrow::error::ArrowError::SchemaError(
                        "the log returned fewer columns than asked".into(),
                    )
                })?,
                (true, false) => metadata_column(i - user_columns, partition, batch),
                (false, _) => new_null_array(field.data_type(), rows),
            });
        }
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}
