//! The runtime: runs continuous queries. Each query has one reader task per source
//! partition and one or more operator tasks (`WITH (parallelism = N)`). A reader reads
//! its partition from its next offset up to the committed offset, in bounded chunks,
//! runs the plan's stateless steps on each batch, and sends the result over a small
//! channel; then it waits for the log's next commit (a watch channel: no polling
//! delay). With several operators the reader is also the hash exchange: it splits each
//! batch by a hash of the aggregate's group keys, so every group lives in exactly one
//! operator, and tells every operator the batch's event time and offsets (even when it
//! got no rows of it), so all of them follow the same watermarks. An operator takes
//! chunks in arrival order, keeps its groups' state (see [`operator`]), hands results
//! to the sink and records progress.
//!
//! Backpressure: the channel holds a few chunks, so a slow operator or sink blocks the
//! readers and memory stays bounded. Progress (the next unprocessed offset per
//! partition, moved only after the sink took the result) is what `FLUSH` waits on.
//!
//! Exactly once: a coordinator task per query (views and derived streams; push queries
//! have none) takes aligned checkpoints. It raises a barrier epoch; each reader sends
//! the barrier with its offset to every operator after its current chunk and waits;
//! each operator, once it has every partition's barrier, snapshots its state and waits
//! too; then everyone goes on while the coordinator fsyncs the output written before
//! the barrier, writes the checkpoint ([`checkpoint`], manifest last) and only then
//! makes the output readable (a derived stream's committed offsets) or publishes a
//! view. A restart restores the newest checkpoint and cuts the output back to it.

pub mod checkpoint;
mod coordinator;
mod groups;
mod operator;
mod progress;
mod sink;

pub use operator::OP_COLUMN;
pub use sink::{Sink, ViewState};

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use crate::catalog::QueryDef;
use crate::clock::Clock;
use crate::log::{LogBatch, PartitionLog};
use crate::planner::ContinuousPlan;
use crate::stream::metadata_column;
use operator::Prepared;

/// Rows read per step of a partition task (bounds memory per query).
const CHUNK_ROWS: u64 = 64 * 1024;

/// A query's live figures.
#[derive(Debug, Default)]
pub struct QueryMetrics {
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    pub batches: AtomicU64,
    /// Rows dropped because all their windows had closed.
    pub late_rows: AtomicU64,
    /// Rows that reached the aggregate (after the stateless steps).
    pub aggregate_rows_in: AtomicU64,
    /// Input rows retention deleted before this query read them.
    pub input_lost_rows: AtomicU64,
    /// (when, rows_in) of the last rate sample, and the rate then.
    rate: Mutex<Option<(std::time::Instant, u64, f64)>>,
}

impl QueryMetrics {
    /// Input rows per second over the last second or so (between calls); the first call
    /// gives the rate since `started`.
    pub fn rows_per_second(&self, started: std::time::Instant) -> f64 {
        let now = std::time::Instant::now();
        let rows = self.rows_in.load(Ordering::Relaxed);
        let mut rate = self.rate.lock();
        match *rate {
            Some((at, _, r)) if now.duration_since(at) < std::time::Duration::from_secs(1) => r,
            Some((at, before, _)) => {
                let r = (rows - before) as f64 / now.duration_since(at).as_secs_f64();
                *rate = Some((now, rows, r));
                r
            }
            None => {
                let r = rows as f64 / now.duration_since(started).as_secs_f64().max(1e-3);
                *rate = Some((now, rows, r));
                r
            }
        }
    }
}

/// What an operator task last reported about itself, for the queries API and the
/// console's "why no output yet?".
#[derive(Debug, Clone, Default)]
pub struct OperatorReport {
    /// Per source partition: its watermark (ns) and whether it counts as idle.
    pub partitions: Vec<(Option<i64>, bool)>,
    pub state_rows: u64,
    pub state_bytes: u64,
    /// Open windows, earliest end first (at most 20): (window end ns, groups).
    pub open_windows: Vec<(i64, u64)>,
}

/// What travels on the edge from a reader to an operator: the rows of one chunk of a
/// partition meant for this operator, with the event time they carried; or a
/// checkpoint barrier: the reader stopped at `offset` for checkpoint `epoch`.
enum Message {
    Chunk {
        partition: usize,
        /// Offset after the chunk's last row.
        end: u64,
        batches: Vec<Prepared>,
    },
    Barrier {
        partition: usize,
        epoch: u64,
        offset: u64,
    },
}

/// An operator's part of a checkpoint, sent to the query's coordinator.
struct Snapshot {
    operator: usize,
    epoch: u64,
    /// Where the readers stopped, per source partition.
    offsets: Vec<u64>,
    state: checkpoint::OperatorSnapshot,
    /// A view's contents at the barrier, published when the checkpoint commits.
    view: Option<Vec<RecordBatch>>,
}

/// The checkpointing of a catalog query (push queries have none).
struct Checkpointing {
    store: checkpoint::CheckpointStore,
    interval: std::time::Duration,
    /// The epoch readers are asked to stop at (a barrier).
    barrier: watch::Sender<u64>,
    /// The epoch whose snapshots are taken: readers and operators go on.
    resumed: watch::Sender<u64>,
    /// Ask for a checkpoint now; answered once one taken after the request committed.
    requests: mpsc::Sender<oneshot::Sender<Result<(), String>>>,
    /// Last committed checkpoint: (epoch, milliseconds it took, when, unix ms).
    last: Mutex<Option<(u64, u64, i64)>>,
}

/// How a query starts: from a checkpoint, or fresh from its start offsets.
pub struct Start {
    pub store: Option<checkpoint::CheckpointStore>,
    pub restored: Option<checkpoint::Checkpoint>,
    pub interval: std::time::Duration,
}

/// One operator task's handles.
struct OperatorSlot {
    /// Next unprocessed offset per source partition.
    progress: Vec<AtomicU64>,
    /// Asks the operator to re-check idleness now; answered once done (FLUSH).
    ticks: mpsc::Sender<oneshot::Sender<()>>,
    state_rows: AtomicU64,
    report: Mutex<OperatorReport>,
}

/// A continuous query that is running (or failed).
pub struct RunningQuery {
    pub def: QueryDef,
    pub plan: Arc<ContinuousPlan>,
    pub sink: Sink,
    pub metrics: QueryMetrics,
    /// The query's watermark in nanoseconds (i64::MIN until known).
    pub watermark_ns: AtomicI64,
    /// When this run of the query started (rates).
    pub started: std::time::Instant,
    /// The engine clock's time when this run started: partitions count as active since.
    started_ms: i64,
    /// Operators that have restored their state (and published a view's contents).
    restored: watch::Sender<usize>,
    operators: Vec<OperatorSlot>,
    progressed: watch::Sender<()>,
    error: Mutex<Option<String>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    checkpoints: Option<Checkpointing>,
    /// The late-data stream, and where its routing progress is kept (per operator).
    late: Option<(Arc<crate::stream::Stream>, std::path::PathBuf)>,
    /// Set to stop the tasks between steps (graceful shutdown).
    cancel: watch::Sender<bool>,
}

impl std::fmt::Debug for RunningQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningQuery")
            .field("name", &self.def.name)
            .finish()
    }
}

impl Drop for RunningQuery {
    fn drop(&mut self) {
        self.stop();
    }
}

impl RunningQuery {
    /// Starts `plan` into `sink`: from `start.restored` (a checkpoint: state, event time
    /// and source offsets) or from the query's start offsets with empty state. With a
    /// checkpoint store the query checkpoints every `start.interval` (derived streams
    /// and views); without one (push queries) it never does.
    pub fn start(
        def: QueryDef,
        plan: ContinuousPlan,
        sink: Sink,
        start: Start,
        clock: Arc<dyn Clock>,
        late: Option<(Arc<crate::stream::Stream>, std::path::PathBuf)>,
    ) -> std::io::Result<Arc<RunningQuery>> {
        let partitions = plan.source.partitions().len();
        let stateful = plan.aggregate.is_some();
        let parallelism = if stateful { def.parallelism.max(1) } else { 1 };
        let floor = def
            .start_offsets
            .clone()
            .unwrap_or_else(|| vec![0; partitions]);
        let from: Vec<u64> = match &start.restored {
            Some(c) if c.source_offsets.len() == partitions => c.source_offsets.clone(),
            _ => floor,
        };
        let restored_epoch = start.restored.as_ref().map_or(0, |c| c.epoch);
        let counters = start.restored.as_ref().map_or([0; 3], |c| c.counters);
        let mut snapshots: Vec<Option<checkpoint::OperatorSnapshot>> = match start.restored {
            Some(c) if c.operators.len() == parallelism => {
                c.operators.into_iter().map(Some).collect()
            }
            _ => (0..parallelism).map(|_| None).collect(),
        };
        let (progressed, _) = watch::channel(());
        let mut operator_inputs = Vec::new();
        let mut operators = Vec::new();
        for _ in 0..parallelism {
            let (tx, rx) = mpsc::channel::<Message>(4);
            let (ticks, tick_rx) = mpsc::channel(4);
            operators.push(OperatorSlot {
                progress: from.iter().map(|&o| AtomicU64::new(o)).collect(),
                ticks,
                state_rows: AtomicU64::new(0),
                report: Mutex::new(OperatorReport::default()),
            });
            operator_inputs.push((tx, rx, tick_rx));
        }
        let (requests_tx, requests_rx) = mpsc::channel(16);
        let checkpoints = start.store.map(|store| Checkpointing {
            store,
            interval: start.interval,
            barrier: watch::channel(restored_epoch).0,
            resumed: watch::channel(restored_epoch).0,
            requests: requests_tx,
            last: Mutex::new(None),
        });
        let query = Arc::new(RunningQuery {
            def,
            plan: Arc::new(plan),
            sink,
            metrics: QueryMetrics::default(),
            watermark_ns: AtomicI64::new(i64::MIN),
            started: std::time::Instant::now(),
            started_ms: clock.now_ms(),
            restored: watch::channel(0).0,
            operators,
            progressed,
            error: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            checkpoints,
            late,
            cancel: watch::channel(false).0,
        });
        let [rows_in, rows_out, late] = counters;
        query.metrics.rows_in.store(rows_in, Ordering::Relaxed);
        query.metrics.rows_out.store(rows_out, Ordering::Relaxed);
        query.metrics.late_rows.store(late, Ordering::Relaxed);
        let senders: Vec<mpsc::Sender<Message>> = operator_inputs
            .iter()
            .map(|(tx, _, _)| tx.clone())
            .collect();
        let mut handles: Vec<_> = (0..partitions)
            .map(|p| {
                let (q, senders) = (query.clone(), senders.clone());
                let from = from[p];
                tokio::spawn(async move {
                    if let Err(e) = q.clone().read_partition(p, from, senders).await {
                        q.fail(format!("reading partition {p}: {e}"));
                    }
                })
            })
            .collect();
        let (snapshot_tx, snapshot_rx) = mpsc::channel::<Snapshot>(parallelism.max(1));
        for (i, (_, rx, tick_rx)) in operator_inputs.into_iter().enumerate() {
            let q = query.clone();
            let (clock, from) = (clock.clone(), from.clone());
            let restored = snapshots[i].take();
            let snapshot_tx = snapshot_tx.clone();
            handles.push(tokio::spawn(async move {
                if let Err(e) = q
                    .clone()
                    .operate(i, rx, tick_rx, restored, clock, from, snapshot_tx)
                    .await
                {
                    q.fail(e);
                }
            }));
        }
        if query.checkpoints.is_some() {
            let q = query.clone();
            handles.push(tokio::spawn(async move {
                if let Err(e) = q.clone().coordinate(requests_rx, snapshot_rx).await {
                    q.fail(e);
                }
            }));
        }
        *query.tasks.lock() = handles;
        Ok(query)
    }

    /// Waits until every operator has restored its checkpointed state (a view then
    /// shows its restored contents), or the query failed.
    pub async fn wait_restored(&self) -> Result<(), String> {
        let operators = self.operators.len();
        let mut restored = self.restored.subscribe();
        let mut progressed = self.progressed.subscribe();
        loop {
            if let Some(e) = &*self.error.lock() {
                return Err(e.clone());
            }
            if *restored.borrow_and_update() >= operators {
                return Ok(());
            }
            tokio::select! {
                changed = restored.changed() => if changed.is_err() { return Ok(()) },
                _ = progressed.changed() => {}
            }
        }
    }

    fn fail(&self, error: String) {
        tracing::error!(query = %self.def.name, "continuous query failed: {error}");
        *self.error.lock() = Some(error);
        self.progressed.send_replace(());
        // The other tasks stop too (a checkpoint waiting for this one's snapshot ends).
        self.cancel.send_replace(true);
    }

    pub fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }

    /// Stops the tasks between steps and waits for them, so nothing of this query writes
    /// afterwards (a step in progress, its fsync included, finishes first).
    pub async fn shutdown(&self) {
        self.cancel.send_replace(true);
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// `running` or `failed: <why>`.
    pub fn status(&self) -> String {
        match &*self.error.lock() {
            None => "running".into(),
            Some(e) => format!("failed: {e}"),
        }
    }

    /// Operator tasks of this query.
    pub fn parallelism(&self) -> usize {
        self.operators.len()
    }

    /// Groups held open in the operators' state.
    pub fn state_rows(&self) -> u64 {
        self.operators
            .iter()
            .map(|o| o.state_rows.load(Ordering::Relaxed))
            .sum()
    }

    /// The operator tasks' last reports.
    pub fn reports(&self) -> Vec<OperatorReport> {
        self.operators
            .iter()
            .map(|o| o.report.lock().clone())
            .collect()
    }

    /// Per source partition, the next offset not yet processed by every operator.
    pub fn progress(&self) -> Vec<u64> {
        let partitions = self.plan.source.partitions().len();
        (0..partitions)
            .map(|p| {
                self.operators
                    .iter()
                    .map(|o| o.progress[p].load(Ordering::Acquire))
                    .min()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Has every operator re-check idleness against the clock now (FLUSH does, so
    /// tests that move an injected clock see its effect deterministically).
    pub async fn tick(&self) {
        for operator in &self.operators {
            let (done, wait) = oneshot::channel();
            if operator.ticks.send(done).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Waits until every partition has processed everything below `targets` (FLUSH).
    pub async fn wait_for(&self, targets: &[u64]) -> Result<(), String> {
        let mut rx = self.progressed.subscribe();
        loop {
            if let Some(e) = &*self.error.lock() {
                return Err(format!("query {} failed: {e}", self.def.name));
            }
            if self
                .progress()
                .iter()
                .zip(targets)
                .all(|(done, target)| done >= target)
            {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(format!("query {} stopped", self.def.name));
            }
        }
    }

    /// Reader task: reads partition `p` from offset `next`, runs the stateless steps,
    /// splits by group key for the operators, forever.
    async fn read_partition(
        self: Arc<Self>,
        p: usize,
        mut next: u64,
        operators: Vec<mpsc::Sender<Message>>,
    ) -> Result<(), String> {
        let log: Arc<PartitionLog> = self.plan.source.partitions()[p].clone();
        let mut commits = log.subscribe();
        let mut cancel = self.cancel.subscribe();
        let (mut barriers, mut resumed) = match &self.checkpoints {
            Some(c) => (c.barrier.subscribe(), c.resumed.subscribe()),
            None => (watch::channel(0).1, watch::channel(0).1),
        };
        // The last epoch every reader took part in: a barrier asked for before this task
        // started still needs this partition's barrier.
        let mut barrier_sent = *resumed.borrow();
        let read_columns = Arc::new(ReadColumns::new(&self.plan, self.late.is_some()));
        loop {
            if *cancel.borrow() {
                return Ok(());
            }
            // A checkpoint: tell every operator where this partition stopped, then wait
            // until all snapshots are taken.
            let wanted = *barriers.borrow_and_update();
            if wanted > barrier_sent {
                for tx in &operators {
                    let barrier = Message::Barrier {
                        partition: p,
                        epoch: wanted,
                        offset: next,
                    };
                    if tx.send(barrier).await.is_err() {
                        return Ok(());
                    }
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
                    query = %self.def.name, partition = p, lost_rows = earliest - next,
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
                }
                continue;
            }
            let to = committed.min(next + CHUNK_ROWS);
            let reader = log.clone();
            let read_columns = read_columns.clone();
            let plan = self.plan.clone();
            let parts = operators.len();
            let prepared =
                tokio::task::spawn_blocking(move || -> Result<Vec<Vec<Prepared>>, String> {
                    let mut per_operator: Vec<Vec<Prepared>> =
                        (0..parts).map(|_| Vec::new()).collect();
                    for item in reader.scan(next, to, read_columns.decode.clone()) {
                        let batch = item.map_err(|e| e.to_string())?;
                        let table = read_columns
                            .table_batch(p as u32, &batch)
                            .map_err(|e| e.to_string())?;
                        let prepared = operator::prepare(&plan, &table)
                            .map_err(|e| crate::engine::datafusion_message(&e))?;
                        for (i, part) in operator::split(&plan, prepared, parts)
                            .map_err(|e| crate::engine::datafusion_message(&e))?
                            .into_iter()
                            .enumerate()
                        {
                            per_operator[i].push(part);
                        }
                    }
                    Ok(per_operator)
                })
                .await
                .map_err(|e| e.to_string())??;
            let source_rows: usize = prepared[0].iter().map(|b| b.source_rows).sum();
            self.metrics
                .rows_in
                .fetch_add(source_rows as u64, Ordering::Relaxed);
            self.metrics
                .batches
                .fetch_add(prepared[0].len() as u64, Ordering::Relaxed);
            for (tx, batches) in operators.iter().zip(prepared) {
                if tx
                    .send(Message::Chunk {
                        partition: p,
                        end: to,
                        batches,
                    })
                    .await
                    .is_err()
                {
                    return Ok(()); // the operator stopped
                }
            }
            next = to;
        }
    }

    /// Operator task `index`: runs the plan's stateful part on each chunk and hands
    /// results to the sink.
    #[allow(clippy::too_many_arguments)]
    async fn operate(
        self: Arc<Self>,
        index: usize,
        mut rx: mpsc::Receiver<Message>,
        mut ticks: mpsc::Receiver<oneshot::Sender<()>>,
        restored: Option<checkpoint::OperatorSnapshot>,
        clock: Arc<dyn Clock>,
        start: Vec<u64>,
        snapshots: mpsc::Sender<Snapshot>,
    ) -> Result<(), String> {
        let keeps_closed = matches!(self.sink, Sink::View(_));
        // Late events already routed (before a restart) are not routed again.
        let partitions = self.plan.source.partitions().len();
        let late_store = match &self.late {
            Some((_, dir)) => Some(
                progress::ProgressStore::open(dir.join(index.to_string()), partitions)
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let mut late_floor = match &late_store {
            Some(store) => store.load().map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        let mut operator = operator::Operator::new(
            self.plan.clone(),
            keeps_closed,
            self.def.emit_changes,
            clock,
            Some(self.started_ms),
            &start,
            self.def.retention_ms,
        );
        if let Some(snapshot) = restored {
            operator
                .restore(snapshot)
                .await
                .map_err(|e| crate::engine::datafusion_message(&e))?;
            let open = operator
                .state_batches()
                .map_err(|e| crate::engine::datafusion_message(&e))?;
            if let (Sink::View(state), Some(view)) = (
                &self.sink,
                operator
                    .view_contents(&open)
                    .await
                    .map_err(|e| crate::engine::datafusion_message(&e))?,
            ) {
                state.replace(index, view)?;
            }
        }
        self.restored.send_modify(|n| *n += 1);
        let slot = &self.operators[index];
        let mut cancel = self.cancel.subscribe();
        let mut resumed = match &self.checkpoints {
            Some(c) => c.resumed.subscribe(),
            None => watch::channel(0).1,
        };
        // Barriers of the checkpoint under way: (epoch, offset per partition, partitions seen).
        let mut barrier: Option<(u64, Vec<u64>, usize)> = None;
        // Idleness is re-checked on this timer (and when FLUSH asks).
        let mut timer = tokio::time::interval(std::time::Duration::from_millis(500));
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (output, done, progressed) = tokio::select! {
                _ = cancel.changed() => return Ok(()),
                message = rx.recv() => match message {
                    None => return Ok(()),
                    Some(Message::Chunk { partition, end, batches }) => {
                        let output = operator
                            .process(partition, end, batches)
                            .await
                            .map_err(|e| crate::engine::datafusion_message(&e))?;
                        (output, None, Some((partition, end)))
                    }
                    Some(Message::Barrier { partition, epoch, offset }) => {
                        let (at, offsets, seen) = barrier
                            .get_or_insert_with(|| (epoch, vec![0; partitions], 0));
                        if *at != epoch {
                            return Err(format!("checkpoint barriers out of order ({at} then {epoch})"));
                        }
                        offsets[partition] = offset;
                        *seen += 1;
                        if *seen == partitions {
                            let (epoch, offsets, _) = barrier.take().expect("set above");
                            let state = operator
                                .snapshot(index, epoch)
                                .map_err(|e| crate::engine::datafusion_message(&e))?;
                            let view = operator
                                .view_contents(&state.state)
                                .await
                                .map_err(|e| crate::engine::datafusion_message(&e))?;
                            let snapshot = Snapshot {
                                operator: index,
                                epoch,
                                offsets,
                                state,
                                view,
                            };
                            if snapshots.send(snapshot).await.is_err() {
                                return Ok(());
                            }
                            // Nothing may change the state or the output until the
                            // coordinator has every snapshot and read the output's end.
                            tokio::select! {
                                done = resumed.wait_for(|e| *e >= epoch) => if done.is_err() { return Ok(()) },
                                _ = cancel.changed() => return Ok(()),
                            }
                        }
                        continue;
                    }
                },
                request = ticks.recv() => {
                    let output = operator.tick().await.map_err(|e| crate::engine::datafusion_message(&e))?;
                    (output, request, None)
                }
                _ = timer.tick() => {
                    let output = operator.tick().await.map_err(|e| crate::engine::datafusion_message(&e))?;
                    (output, None, None)
                }
            };
            self.metrics
                .late_rows
                .fetch_add(output.late_rows, Ordering::Relaxed);
            if let (Some((stream, _)), Some(store)) = (&self.late, &late_store)
                && !output.late.is_empty()
            {
                self.route_late(stream, store, &mut late_floor, output.late)
                    .await?;
            }
            let appended: usize = output.append.iter().map(|b| b.num_rows()).sum();
            self.sink.write(output.append).await?;
            if !keeps_closed {
                self.metrics
                    .rows_out
                    .fetch_add(appended as u64, Ordering::Relaxed);
            }
            if let Some(w) = operator.watermark {
                self.watermark_ns.fetch_max(w, Ordering::Relaxed);
            }
            slot.state_rows
                .store(operator.state_rows() as u64, Ordering::Relaxed);
            *slot.report.lock() = operator.report();
            self.metrics
                .aggregate_rows_in
                .store(operator.rows_in, Ordering::Relaxed);
            if let Some((p, end)) = progressed {
                slot.progress[p].store(end, Ordering::Release);
                self.progressed.send_replace(());
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
    }
}

impl RunningQuery {
    /// Appends late events (source rows, table schema) to the late-data stream, skipping
    /// those at offsets routed before, then records the new floor per partition.
    async fn route_late(
        &self,
        stream: &Arc<crate::stream::Stream>,
        store: &progress::ProgressStore,
        floor: &mut [u64],
        batches: Vec<RecordBatch>,
    ) -> Result<(), String> {
        use datafusion::arrow::array::{AsArray, BooleanArray};
        use datafusion::arrow::datatypes::{Int32Type, Int64Type};
        let schema = &self.plan.source.table_schema;
        let p_col = schema.index_of("_partition").map_err(|e| e.to_string())?;
        let o_col = schema.index_of("_offset").map_err(|e| e.to_string())?;
        let user: Vec<usize> = (0..stream.schema.fields().len()).collect();
        let mut rows = Vec::new();
        let mut touched = Vec::new();
        for batch in batches {
            let partitions = batch.column(p_col).as_primitive::<Int32Type>().clone();
            let offsets = batch.column(o_col).as_primitive::<Int64Type>().clone();
            let keep: BooleanArray = (0..batch.num_rows())
                .map(|i| Some(offsets.value(i) as u64 >= floor[partitions.value(i) as usize]))
                .collect();
            for i in 0..batch.num_rows() {
                if keep.value(i) {
                    let p = partitions.value(i) as usize;
                    floor[p] = floor[p].max(offsets.value(i) as u64 + 1);
                    touched.push(p);
                }
            }
            let kept = datafusion::arrow::compute::filter_record_batch(&batch, &keep)
                .map_err(|e| e.to_string())?;
            let kept = kept.project(&user).map_err(|e| e.to_string())?;
            rows.push(
                RecordBatch::try_new(stream.schema.clone(), kept.columns().to_vec())
                    .map_err(|e| e.to_string())?,
            );
        }
        // Late events are committed at once (their floors keep them from repeating).
        let late_stream = stream.clone();
        tokio::task::spawn_blocking(move || {
            let rows: Vec<_> = rows.into_iter().filter(|b| b.num_rows() > 0).collect();
            if rows.is_empty() {
                return Ok(());
            }
            let batch = datafusion::arrow::compute::concat_batches(&late_stream.schema, &rows)
                .map_err(|e| e.to_string())?;
            late_stream
                .append(&batch)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        touched.sort_unstable();
        touched.dedup();
        let store = store.clone();
        let saves: Vec<(usize, u64)> = touched.into_iter().map(|p| (p, floor[p])).collect();
        tokio::task::spawn_blocking(move || {
            saves.into_iter().try_for_each(|(p, o)| store.save(p, o))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }
}

/// A log batch with its metadata columns appended: the source's table schema.
/// The columns of the source a query's readers decode from the log, and how they
/// build the table-schema batches the plan runs on.
///
/// A reader decodes only the columns the plan reads (its scan projection and the event
/// time), so a query over three columns of a wide stream does not decode (or validate
/// the UTF-8 of) the others. The columns it skips are all-null arrays, in a copy of the
/// table schema where they are nullable; a query that routes late events to a stream
/// decodes every column, since the late rows are written as they arrived.
struct ReadColumns {
    /// User columns to decode, in order; `None`: all of them.
    decode: Option<Vec<usize>>,
    /// Which table-schema columns (user then metadata) are needed.
    needed: Vec<bool>,
    schema: datafusion::arrow::datatypes::SchemaRef,
}

impl ReadColumns {
    fn new(plan: &ContinuousPlan, all: bool) -> Self {
        use datafusion::arrow::datatypes::Schema;
        let table = &plan.source.table_schema;
        let user_columns = table.fields().len() - 3;
        let event_time = plan
            .source
            .def
            .watermark
            .as_ref()
            .and_then(|w| table.index_of(&w.column).ok());
        let mut needed: Vec<bool> = (0..table.fields().len())
            .map(|i| all || plan.scan_projection.contains(&i) || event_time == Some(i))
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
