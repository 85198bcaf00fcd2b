//! The runtime: runs continuous queries as the graph the planner made
//! ([`ContinuousPlan`]), without knowing what any operator computes.
//!
//! Tasks: one reader per (source stream, partition) and one task per instance of each
//! stateful node (`WITH (parallelism = N)` for aggregates; a merge has one). A reader
//! reads its partition from its next offset up to the committed offset, in bounded
//! chunks, runs the stateless steps of each edge leaving its stream on each batch, and
//! sends the rows to the instance their keys hash to (the exchange). An instance runs
//! its operator and does the same with its output: through the steps of its out-edges
//! to the next node, or, for the last node, to the sink.
//!
//! Every edge carries, in order: rows, event time ([`InputTime`]: a watermark, unknown,
//! or idle), progress (the source offsets everything before it covers) and checkpoint
//! barriers. A reader's watermark is the largest event time it has read minus the
//! stream's delay; it is idle once it has read everything in its log and had no new
//! rows for the stream's `idle_timeout` (processing time, from the engine's clock;
//! re-checked on a timer and when FLUSH asks). An instance's watermark is the minimum
//! over its inputs that are not idle (held while any is unknown), and never moves back;
//! it forwards it after the output it caused. Channels hold a few chunks, so a slow
//! operator or sink blocks what feeds it and memory stays bounded.
//!
//! Progress: the last node's instances record, per source partition, the offset
//! everything before which has reached the sink; `FLUSH` waits on it.
//!
//! Exactly once: a coordinator task per query (views and derived streams; push queries
//! have none) takes aligned checkpoints. It raises a barrier epoch; each reader sends
//! the barrier on every edge after its current chunk, reports its offset and watermark,
//! and waits; each instance, once the barrier came on every input, hands on what is
//! due, snapshots its operator, forwards the barrier and waits too; then everyone goes
//! on while the coordinator fsyncs the output written before the barrier, writes the
//! checkpoint ([`checkpoint`], manifest last) and only then makes the output readable
//! (a derived stream's committed offsets) or publishes a view. A restart restores the
//! newest checkpoint and cuts the output back to it.

pub mod checkpoint;
mod coordinator;
mod error;
mod instance;
mod observe;
mod progress;
mod reader;
mod restore;
mod route;
mod sink;

pub use crate::operators::aggregate::OP_COLUMN;
pub use error::{Result, RuntimeError, datafusion_message};
pub use sink::{Sink, ViewState};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use crate::catalog::QueryDef;
use crate::clock::Clock;
use crate::operators::{Figures, Input, OperatorState};
use crate::planner::{ContinuousPlan, NodeId, NodeKind, StatefulKind, StatefulNode, Step};
use crate::stream::Stream;

/// Rows read per step of a reader (bounds memory per query).
const CHUNK_ROWS: u64 = 64 * 1024;

/// Chunks of messages an edge holds before its sender waits (backpressure).
const EDGE_CAPACITY: usize = 4;

/// A query's live figures.
#[derive(Debug, Default)]
pub struct QueryMetrics {
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    pub batches: AtomicU64,
    /// Rows dropped because all their windows had closed.
    pub late_rows: AtomicU64,
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

/// The event time an input reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputTime {
    /// Not known yet (no rows read with event time): holds the watermark.
    Unknown,
    /// Everything read (up to offset `upto` of its log, which may be empty) and quiet
    /// for the idle timeout: left out of the minimum while its log holds nothing past
    /// `upto`. A write spanning partitions appends to all of them before committing
    /// any, so a receiver that sees rows written past `upto` counts the input at
    /// `watermark` again before its reader has noticed (no race between neighbours).
    /// An operator instance whose inputs are all idle says so with `upto` the sum of
    /// theirs: it counts again as soon as any log behind it holds more (the sum of their
    /// written ends exceeds `upto`), before its own report of new rows arrives.
    Idle {
        upto: u64,
        watermark: Option<i64>,
    },
    At(i64),
}

/// What travels on an edge, in chunks (`Vec<Message>`): one sender's messages in order.
// Most messages are rows; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Message {
    Rows {
        port: usize,
        rows: Input,
    },
    Time {
        sender: usize,
        time: InputTime,
    },
    /// Per source partition (the query's partition slots), the offset everything
    /// before which the sender has handed on.
    Progress {
        sender: usize,
        frontier: Arc<Vec<u64>>,
    },
    Barrier {
        epoch: u64,
    },
}

/// A part of a checkpoint, sent to the query's coordinator.
enum Snapshot {
    Reader {
        slot: usize,
        epoch: u64,
        offset: u64,
        watermark: Option<i64>,
    },
    Instance {
        node: usize,
        instance: usize,
        epoch: u64,
        state: OperatorState,
        /// A view's contents at the barrier, published when the checkpoint commits.
        view: Option<Vec<RecordBatch>>,
    },
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
    requests: mpsc::Sender<oneshot::Sender<Result<()>>>,
    /// Last committed checkpoint: (epoch, milliseconds it took, when, unix ms).
    last: Mutex<Option<(u64, u64, i64)>>,
}

/// How a query starts: from a checkpoint, or fresh from its start offsets.
pub struct Start {
    pub store: Option<checkpoint::CheckpointStore>,
    pub restored: Option<checkpoint::Checkpoint>,
    pub interval: std::time::Duration,
}

/// An input stream of the query and where its partitions are among the slots.
pub struct SourceSlots {
    pub stream: Arc<Stream>,
    /// The slot of its partition 0; partition p is slot `first + p`.
    pub first: usize,
}

/// A reader's handles.
struct ReaderSlot {
    source: usize,
    partition: usize,
    /// Asks the reader to re-check idleness now; answered once it sent the result (FLUSH).
    ticks: mpsc::Sender<oneshot::Sender<()>>,
    /// Its watermark and whether it is idle, for the queries API.
    report: Mutex<(Option<i64>, bool)>,
    /// Rows it read.
    rows: AtomicU64,
}

/// A stateful node as the runtime runs it.
struct NodeRun {
    id: NodeId,
    node: StatefulNode,
    parallelism: usize,
    /// Senders into each instance: one per upstream reader or instance per edge.
    senders: usize,
    /// Per sender: the partition logs behind it — the one a reader reads, or for an
    /// operator instance every log behind its own senders (counted once per path).
    sender_logs: Vec<Vec<Arc<crate::log::PartitionLog>>>,
    instances: Vec<InstanceSlot>,
}

struct InstanceSlot {
    figures: Mutex<Figures>,
    /// The last node's instances: the source offsets whose rows reached the sink.
    progress: Mutex<Vec<u64>>,
}

/// How rows leave a reader or an instance along one edge.
#[derive(Clone)]
struct Route {
    /// Sources: the scan's columns of the table batch.
    projection: Option<Vec<usize>>,
    steps: Vec<Step>,
    port: usize,
    /// The sender id of this route's first sender (reader of partition 0, instance 0).
    sender_base: usize,
    keys: Option<Vec<Arc<dyn PhysicalExpr>>>,
    targets: Vec<mpsc::Sender<Vec<Message>>>,
}

/// A continuous query that is running (or failed).
pub struct RunningQuery {
    pub def: QueryDef,
    pub plan: Arc<ContinuousPlan>,
    pub sink: Sink,
    pub metrics: QueryMetrics,
    /// When this run of the query started (rates).
    pub started: std::time::Instant,
    /// The engine clock's time when this run started: partitions count as active since.
    started_ms: i64,
    clock: Arc<dyn Clock>,
    sources: Vec<SourceSlots>,
    readers: Vec<ReaderSlot>,
    /// Stateful nodes, inputs first; the last one feeds the sink.
    nodes: Vec<NodeRun>,
    /// Steps between the last node and the sink.
    sink_steps: Vec<Step>,
    /// Instances that have restored their state (and published a view's contents).
    restored: watch::Sender<usize>,
    progressed: watch::Sender<()>,
    error: Mutex<Option<RuntimeError>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    checkpoints: Option<Checkpointing>,
    /// The late-data stream, and where its routing progress is kept (per instance).
    late: Option<(Arc<Stream>, std::path::PathBuf)>,
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

/// What a restored checkpoint gives each task.
struct Restored {
    epoch: u64,
    counters: [u64; 3],
    /// Per slot: next offset and watermark.
    positions: Vec<(u64, Option<i64>)>,
    /// Per node (in `nodes` order), per instance.
    states: Vec<Vec<Option<OperatorState>>>,
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
        late: Option<(Arc<Stream>, std::path::PathBuf)>,
    ) -> Result<Arc<RunningQuery>> {
        let mut sources = Vec::new();
        let mut slots = 0;
        for stream in plan.sources() {
            let partitions = stream.partitions().len();
            sources.push(SourceSlots {
                stream,
                first: slots,
            });
            slots += partitions;
        }
        let nodes: Vec<NodeRun> = plan
            .stateful()
            .map(|(id, node)| {
                let parallelism = node.instances(def.parallelism);
                NodeRun {
                    id,
                    node: node.clone(),
                    parallelism,
                    senders: 0,
                    sender_logs: Vec::new(),
                    instances: (0..parallelism)
                        .map(|_| InstanceSlot {
                            figures: Mutex::new(Figures::default()),
                            progress: Mutex::new(Vec::new()),
                        })
                        .collect(),
                }
            })
            .collect();
        let restored = Self::restore_plan(&def, &sources, &nodes, start.restored)?;
        let floor: Vec<(u64, Option<i64>)> = sources
            .iter()
            .flat_map(|s| {
                let offsets = def
                    .start_offsets_of(s.stream.name())
                    .filter(|o| o.len() == s.stream.partitions().len())
                    .unwrap_or_else(|| vec![0; s.stream.partitions().len()]);
                offsets.into_iter().map(|o| (o, None))
            })
            .collect();
        let positions = restored.as_ref().map_or(floor, |r| r.positions.clone());
        let start_frontier: Arc<Vec<u64>> = Arc::new(positions.iter().map(|p| p.0).collect());
        let restored_epoch = restored.as_ref().map_or(0, |r| r.epoch);
        let (requests_tx, requests_rx) = mpsc::channel(16);
        let checkpoints = start.store.map(|store| Checkpointing {
            store,
            interval: start.interval,
            barrier: watch::channel(restored_epoch).0,
            resumed: watch::channel(restored_epoch).0,
            requests: requests_tx,
            last: Mutex::new(None),
        });
        let sink_steps = plan
            .edges_into(plan.sink().id)
            .pop()
            .map(|e| e.steps)
            .unwrap_or_default();
        let mut readers = Vec::new();
        let mut reader_ticks = Vec::new();
        for (s, source) in sources.iter().enumerate() {
            for p in 0..source.stream.partitions().len() {
                let (ticks, rx) = mpsc::channel(4);
                readers.push(ReaderSlot {
                    source: s,
                    partition: p,
                    ticks,
                    report: Mutex::new((None, false)),
                    rows: AtomicU64::new(0),
                });
                reader_ticks.push(rx);
            }
        }
        // The edges into each node, their sender ids, and the instances' channels.
        let mut nodes = nodes;
        let mut inboxes = Vec::new();
        let mut senders_of: Vec<Vec<mpsc::Sender<Vec<Message>>>> = Vec::new();
        for node in &nodes {
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..node.parallelism)
                .map(|_| mpsc::channel::<Vec<Message>>(EDGE_CAPACITY))
                .unzip();
            senders_of.push(txs);
            inboxes.push(rxs);
        }
        let node_index = |id: NodeId| nodes.iter().position(|n| n.id == id);
        // Routes out of each source (by index) and each node (by index).
        let mut source_routes: Vec<Vec<Route>> = sources.iter().map(|_| Vec::new()).collect();
        let mut node_routes: Vec<Vec<Route>> = nodes.iter().map(|_| Vec::new()).collect();
        let mut senders_into = vec![0usize; nodes.len()];
        let mut sender_logs: Vec<Vec<Vec<Arc<crate::log::PartitionLog>>>> =
            nodes.iter().map(|_| Vec::new()).collect();
        for edge in plan.edges() {
            let Some(to) = node_index(edge.to) else {
                continue; // the sink's edge: the last node writes it
            };
            let sender_base = senders_into[to];
            let mut route = Route {
                projection: None,
                steps: edge.steps.clone(),
                port: edge.port,
                sender_base,
                keys: match nodes[to].parallelism {
                    1 => None,
                    _ => nodes[to]
                        .node
                        .keys
                        .as_ref()
                        .map(|ports| ports[edge.port].clone()),
                },
                targets: senders_of[to].clone(),
            };
            match &plan.nodes[edge.from].kind {
                NodeKind::Source { stream, projection } => {
                    let s = sources
                        .iter()
                        .position(|s| s.stream.name() == stream.name())
                        .expect("every source stream has slots");
                    route.projection = Some(projection.clone());
                    senders_into[to] += stream.partitions().len();
                    sender_logs[to].extend(stream.partitions().iter().map(|p| vec![p.clone()]));
                    source_routes[s].push(route);
                }
                NodeKind::Stateful(_) => {
                    let from = node_index(edge.from).expect("a stateful node");
                    senders_into[to] += nodes[from].parallelism;
                    let behind: Vec<_> = sender_logs[from].iter().flatten().cloned().collect();
                    sender_logs[to].extend((0..nodes[from].parallelism).map(|_| behind.clone()));
                    node_routes[from].push(route);
                }
                _ => unreachable!("edges start at sources and stateful nodes"),
            }
        }
        for ((node, senders), logs) in nodes.iter_mut().zip(&senders_into).zip(sender_logs) {
            node.senders = *senders;
            node.sender_logs = logs;
        }
        let query = Arc::new(RunningQuery {
            def,
            plan: Arc::new(plan),
            sink,
            metrics: QueryMetrics::default(),
            started: std::time::Instant::now(),
            started_ms: clock.now_ms(),
            clock,
            sources,
            readers,
            nodes,
            sink_steps,
            restored: watch::channel(0).0,
            progressed: watch::channel(()).0,
            error: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            checkpoints,
            late,
            cancel: watch::channel(false).0,
        });
        let [rows_in, rows_out, late_rows] = restored.as_ref().map_or([0; 3], |r| r.counters);
        query.metrics.rows_in.store(rows_in, Ordering::Relaxed);
        query.metrics.rows_out.store(rows_out, Ordering::Relaxed);
        query.metrics.late_rows.store(late_rows, Ordering::Relaxed);
        let instances: usize = query.nodes.iter().map(|n| n.parallelism).sum();
        let (snapshot_tx, snapshot_rx) = mpsc::channel::<Snapshot>(instances + query.readers.len());
        let mut handles = Vec::new();
        for (slot, ticks) in reader_ticks.into_iter().enumerate() {
            let q = query.clone();
            let routes = source_routes[q.readers[slot].source].clone();
            let position = positions[slot];
            let snapshots = snapshot_tx.clone();
            handles.push(tokio::spawn(async move {
                let result = q
                    .clone()
                    .read(slot, position, routes, ticks, snapshots)
                    .await;
                if let Err(e) = result {
                    let r = &q.readers[slot];
                    let stream = q.sources[r.source].stream.name().to_string();
                    q.fail(RuntimeError::Storage(format!(
                        "reading {stream} partition {}: {e}",
                        r.partition
                    )));
                }
            }));
        }
        let mut states = restored.map(|r| r.states);
        for (n, rxs) in inboxes.into_iter().enumerate() {
            for (k, rx) in rxs.into_iter().enumerate() {
                let q = query.clone();
                let routes = node_routes[n].clone();
                let state = states.as_mut().and_then(|s| s[n][k].take());
                let snapshots = snapshot_tx.clone();
                let frontier = start_frontier.clone();
                handles.push(tokio::spawn(async move {
                    let result = q
                        .clone()
                        .operate(n, k, rx, routes, state, frontier, snapshots)
                        .await;
                    if let Err(e) = result {
                        q.fail(e);
                    }
                }));
            }
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

    /// Waits until every instance has restored its checkpointed state (a view then
    /// shows its restored contents), or the query failed.
    pub async fn wait_restored(&self) -> Result<()> {
        let instances: usize = self.nodes.iter().map(|n| n.parallelism).sum();
        let mut restored = self.restored.subscribe();
        let mut progressed = self.progressed.subscribe();
        loop {
            if let Some(e) = &*self.error.lock() {
                return Err(e.clone());
            }
            if *restored.borrow_and_update() >= instances {
                return Ok(());
            }
            tokio::select! {
                changed = restored.changed() => if changed.is_err() { return Ok(()) },
                _ = progressed.changed() => {}
            }
        }
    }

    fn fail(&self, error: RuntimeError) {
        tracing::error!(query = %self.def.name, "continuous query failed: {error}");
        *self.error.lock() = Some(error);
        self.progressed.send_replace(());
        // The other tasks stop too (a checkpoint waiting for this one's snapshot ends).
        self.cancel.send_replace(true);
    }

    /// Whether the query has stopped with an error.
    pub fn has_failed(&self) -> bool {
        self.error.lock().is_some()
    }

    /// Stops the query because it holds more state than it may; its status says why.
    pub fn stop_over_budget(&self, message: String) {
        self.fail(RuntimeError::Compute(message));
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
}
