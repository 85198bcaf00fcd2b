//! The stateful operators of a continuous query's graph, one per file, and the
//! stateless steps that run on the edges between them.
//!
//! An operator is shaped like DataFusion's operators and Arroyo's `ArrowOperator`: the
//! runtime hands it batches from its inputs (input *i*, already through the stateless
//! steps of that edge), tells it when the watermark of its inputs (the minimum over
//! them) advanced, asks it at the end of each chunk of messages for what is due, and at
//! a checkpoint barrier (aligned across every input) for a snapshot of its state. It
//! reports its figures and its EXPLAIN line. The runtime knows none of what an operator
//! computes; [`instantiate`] turns a planned node into one.
//!
//! - [`aggregate`]: grouped aggregates, windowed (tumbling, hopping, session) or not.
//! - [`top_n`]: ranks each window's rows when it closes (`ROW_NUMBER()` / `RANK()` /
//!   `DENSE_RANK()`) and keeps the top ones.
//! - [`dedup`]: one row per key, the first by event time or the latest.
//! - [`interval_join`]: rows of two inputs whose times lie within bounds of each other.
//! - [`lookup_join`]: each row with a view's rows as they are when it is processed.
//! - [`temporal_join`]: each left row with the version of its key valid at its time.
//! - [`merge`]: the union of its inputs (also the last node of a query without state).

pub mod aggregate;
pub mod dedup;
pub mod interval_join;
mod join_rows;
mod live_groups;
pub mod lookup_join;
pub mod merge;
pub mod stateless;
pub mod temporal_join;
pub mod top_n;

use datafusion::arrow::array::{BooleanArray, RecordBatch, UInt32Array};
use datafusion::common::Result;

use crate::planner::{StatefulKind, StatefulNode};

/// What an operator instance is for: decided by where it sits in the graph.
#[derive(Debug, Clone, Copy, Default)]
pub struct Role {
    /// It feeds a materialized view: it keeps its final rows (closed windows, or every
    /// row without state) and computes the view's contents at each checkpoint.
    pub view: bool,
    /// `EMIT CHANGES`: updates as they happen, each with a retraction of the old row.
    /// Only the last operator of a query emits changes; the ones before it emit final
    /// rows (append-only), which is what their consumers can take.
    pub changes: bool,
    /// Views `WITH (retention = ...)`: closed windows kept this long past the watermark.
    pub retention_ns: Option<i64>,
    /// `WITH (dedup_retention = ...)`: how long a deduplication remembers a key after
    /// emitting its row.
    pub dedup_retention_ns: Option<i64>,
    /// `WITH (state_ttl = ...)`: how long past the watermark a regular join holds a row.
    pub state_ttl_ns: Option<i64>,
    /// The instance's number within its node (chunk names in checkpoints).
    pub instance: usize,
    /// The node's id in the graph.
    pub node: usize,
    /// Processing time this run of the query started (ms): part of checkpoint chunk
    /// names, so a name never comes back with other rows.
    pub run_ms: i64,
}

/// Rows arriving on one input.
pub struct Input {
    pub batch: RecordBatch,
    /// Which rows stand for their event when one event gives several rows (HOP);
    /// `None`: every row is its own event. Lateness is counted on these rows.
    pub primary: Option<BooleanArray>,
    /// Where the rows came from, when the query routes late events to a stream: the
    /// source rows as they arrived (the source's table schema) and, per row, its index
    /// there.
    pub source: Option<(RecordBatch, UInt32Array)>,
}

impl Input {
    /// Rows with nothing to trace (an operator's output).
    pub fn rows(batch: RecordBatch) -> Self {
        Input {
            batch,
            primary: None,
            source: None,
        }
    }
}

/// A change's sign in `EMIT CHANGES` output (the `_op` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Retract,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Insert => "+",
            Op::Retract => "-",
        }
    }
}

/// Rows an operator emits, in its output schema.
pub struct Emitted {
    pub batch: RecordBatch,
    /// `Some` in `EMIT CHANGES` output.
    pub op: Option<Op>,
}

/// What an operator has to hand on at the end of a chunk of messages.
#[derive(Default)]
pub struct Output {
    pub rows: Vec<Emitted>,
    /// Rows dropped because every window they belong to had closed.
    pub late_rows: u64,
    /// The source rows of late events (table schema), for a late-data stream.
    pub late: Vec<RecordBatch>,
}

impl Output {
    /// Counts rows `late` of an input as late and, when the query routes late events
    /// (`source`: the source rows and each row's index there), keeps their source rows.
    pub fn add_late(
        &mut self,
        source: &Option<(RecordBatch, UInt32Array)>,
        late: &[u32],
    ) -> Result<()> {
        self.late_rows += late.len() as u64;
        if let (Some((rows, index)), false) = (source, late.is_empty()) {
            let at = UInt32Array::from_iter_values(late.iter().map(|&i| index.value(i as usize)));
            self.late
                .push(datafusion::arrow::compute::take_record_batch(rows, &at)?);
        }
        Ok(())
    }
}

/// Some of the final rows an operator keeps for a view, stored as one file; its name
/// is unique within the query, and the same name always holds the same rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClosedChunk {
    pub name: String,
    pub batches: Vec<RecordBatch>,
}

/// An operator instance's part of a checkpoint. Opaque to the runtime and the
/// checkpoint store: batches and figures the operator itself reads back.
#[derive(Debug, Clone, Default)]
pub struct OperatorState {
    /// Working state (an aggregate's open groups as partial-state rows).
    pub state: Vec<RecordBatch>,
    /// Final rows kept for a view, in chunks written once each.
    pub closed: Vec<ClosedChunk>,
    /// The operator's watermark (ns).
    pub watermark: Option<i64>,
    pub rows_in: u64,
}

/// An operator instance's live figures (the queries API and the console).
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub rows_in: u64,
    pub rows_out: u64,
    pub late_rows: u64,
    pub state_rows: u64,
    pub state_bytes: u64,
    /// Open windows, earliest end first (at most 20): (window end ns, groups).
    pub open_windows: Vec<(i64, u64)>,
    pub watermark: Option<i64>,
}

/// One instance of a stateful node.
#[async_trait::async_trait]
pub trait Operator: Send {
    /// Takes rows from input `input`. Rows are judged late against the watermark as it
    /// was before them.
    async fn process(&mut self, input: usize, rows: Input) -> Result<()>;

    /// The watermark of the inputs (the minimum over them) advanced to `watermark`.
    fn advance(&mut self, watermark: i64);

    /// The end of a chunk of messages: what is due now (rows, closed windows).
    async fn flush(&mut self) -> Result<Output>;

    /// The state at checkpoint `epoch`'s barrier (every input's barrier has arrived).
    fn snapshot(&mut self, epoch: u64) -> Result<OperatorState>;

    /// Restores a checkpointed state; refuses one that does not fit this plan.
    async fn restore(&mut self, state: OperatorState) -> Result<()>;

    /// A view's contents now, in the operator's output schema (`None` unless the role
    /// says it feeds a view).
    async fn view_contents(&mut self) -> Result<Option<Vec<RecordBatch>>>;

    fn figures(&self) -> Figures;
}

/// The operator for one instance of a planned stateful node.
pub fn instantiate(node: &StatefulNode, role: Role) -> Result<Box<dyn Operator>> {
    Ok(match &node.kind {
        StatefulKind::Aggregate(plan) => {
            Box::new(aggregate::WindowAggregate::new(plan.clone(), role))
        }
        StatefulKind::TopN(plan) => Box::new(top_n::TopN::new(plan.clone(), role)),
        StatefulKind::Dedup(plan) => Box::new(dedup::Dedup::new(plan.clone(), role)?),
        StatefulKind::IntervalJoin(plan) => {
            Box::new(interval_join::IntervalJoin::new(plan.clone(), role))
        }
        StatefulKind::TemporalJoin(plan) => {
            Box::new(temporal_join::TemporalJoin::new(plan.clone(), role)?)
        }
        StatefulKind::LookupJoin(plan) => {
            Box::new(lookup_join::LookupJoin::new(plan.clone(), role))
        }
        StatefulKind::Merge => Box::new(merge::Merge::new(role)),
    })
}

/// Bytes of memory the batches hold: the capacity of each distinct allocation behind
/// their buffers, counted once however many arrays or slices share it (an aggregate's
/// output batches are slices of one set of buffers; `get_array_memory_size` would count
/// the whole buffer for every slice).
pub fn memory_bytes<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> u64 {
    use datafusion::arrow::array::{Array, ArrayData};
    use std::collections::HashSet;
    fn visit(data: &ArrayData, seen: &mut HashSet<usize>, total: &mut u64) {
        let nulls = data.nulls().map(|n| n.buffer());
        for buffer in data.buffers().iter().chain(nulls) {
            if seen.insert(buffer.data_ptr().as_ptr() as usize) {
                *total += buffer.capacity() as u64;
            }
        }
        for child in data.child_data() {
            visit(child, seen, total);
        }
    }
    let (mut seen, mut total) = (HashSet::new(), 0);
    for batch in batches {
        for column in batch.columns() {
            visit(&column.to_data(), &mut seen, &mut total);
        }
    }
    total
}

/// Keeps the final rows of a view in checkpoint chunks: the rows gained since the last
/// checkpoint become one new chunk, named once.
#[derive(Debug, Default)]
pub struct KeptRows {
    pub batches: Vec<RecordBatch>,
    /// The chunks (name, number of batches) that hold `batches`' first batches, in order.
    chunks: Vec<(String, usize)>,
}

impl KeptRows {
    pub fn push(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.batches.push(batch);
        }
    }

    /// Replaces the rows (retention forgot some): the stored chunks no longer match,
    /// so the next checkpoint stores all of them anew.
    pub fn replace(&mut self, batches: Vec<RecordBatch>) {
        self.batches = batches;
        self.chunks.clear();
    }

    /// The rows as chunks at checkpoint `epoch`; `role` names the new chunk.
    pub fn snapshot(&mut self, role: &Role, epoch: u64) -> Vec<ClosedChunk> {
        let covered: usize = self.chunks.iter().map(|(_, n)| n).sum();
        if covered < self.batches.len() {
            let name = format!(
                "n{}-op{}-e{epoch}-r{}",
                role.node, role.instance, role.run_ms
            );
            self.chunks.push((name, self.batches.len() - covered));
        }
        let mut at = 0;
        self.chunks
            .iter()
            .map(|(name, n)| {
                let chunk = ClosedChunk {
                    name: name.clone(),
                    batches: self.batches[at..at + n].to_vec(),
                };
                at += n;
                chunk
            })
            .collect()
    }

    pub fn restore(&mut self, chunks: Vec<ClosedChunk>) {
        self.chunks = chunks
            .iter()
            .map(|c| (c.name.clone(), c.batches.len()))
            .collect();
        self.batches = chunks.into_iter().flat_map(|c| c.batches).collect();
    }

    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// An operator's final rows: kept, when it feeds a view (`view`), else handed on.
    pub fn hand_out(&mut self, view: bool, rows: Vec<RecordBatch>) -> Vec<Emitted> {
        if view {
            rows.into_iter().for_each(|b| self.push(b));
            return Vec::new();
        }
        rows.into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|batch| Emitted { batch, op: None })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use std::sync::Arc;

    #[test]
    fn memory_bytes_counts_a_shared_buffer_once() {
        let column = Arc::new(Int64Array::from_iter_values(0..1000));
        let batch = RecordBatch::try_from_iter([("v", column as _)]).unwrap();
        let whole = memory_bytes([&batch]);
        assert!(whole >= 8000, "{whole}");
        let slices: Vec<_> = (0..10).map(|i| batch.slice(i * 100, 100)).collect();
        assert_eq!(memory_bytes(&slices), whole);
        let copy = RecordBatch::try_from_iter([(
            "v",
            Arc::new(Int64Array::from_iter_values(0..1000)) as _,
        )])
        .unwrap();
        assert_eq!(memory_bytes([&batch, &copy]), 2 * whole);
    }
}
