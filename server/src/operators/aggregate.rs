//! The window aggregate: a grouped aggregate over its input, windowed (tumbling and
//! hopping windows close when the watermark reaches their end; session windows merge
//! as events join them) or unwindowed (groups never close: views and `EMIT CHANGES`).
//!
//! Rows are judged late against the watermark as it was before their batch: a row
//! whose window has closed is dropped and counted (and, for a query with `late_data`,
//! its source row is handed on to be routed). The groups live in DataFusion's own
//! hash-aggregation parts when the aggregate allows ([`LiveGroups`]), else as partial
//! aggregate states merged with `AggregateMode::PartialReduce` at each step. A window
//! closes with `AggregateMode::Final` over its groups' states.
//!
//! Into a stream it emits each closed window once (FINAL), or with `EMIT CHANGES` a
//! retraction and the new row for each group a step touched. Into a view it keeps the
//! final rows of closed windows (for `retention`) and computes the view's contents, with
//! the open windows' current values unless the view is `EMIT FINAL`, at each checkpoint.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::Result;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::aggregates::AggregateMode;
use datafusion::physical_plan::collect;

use super::live_groups::LiveGroups;
use super::{Emitted, Figures, Input, KeptRows, Op, Operator, OperatorState, Output, Role};
use crate::planner::AggregatePlan;
use crate::planner::session_bounds::nanos;

pub struct WindowAggregate {
    agg: AggregatePlan,
    role: Role,
    /// The watermark of the inputs, in nanoseconds.
    watermark: Option<i64>,
    /// Partial-aggregate state of groups that are still open (the batch-merging path).
    state: Vec<RecordBatch>,
    /// The open groups as live hash tables, when the aggregate allows (see
    /// [`LiveGroups`]); then `state` stays empty. (The mutex only makes the operator
    /// `Sync`, as DataFusion's hash tables are not; it is reached through `&mut self`.)
    live: Option<parking_lot::Mutex<LiveGroups>>,
    /// Partial states of the rows taken since the last flush (the batch path).
    partials: Vec<RecordBatch>,
    /// Something changed since the last flush (rows or the watermark).
    dirty: bool,
    /// Late rows found since the last flush.
    late: Output,
    /// Final rows of closed windows a view keeps (before the steps above the aggregate).
    closed: KeptRows,
    /// `EMIT CHANGES` into a stream: each step emits, for the groups it touched, a
    /// retraction of the old result and the new one.
    changes: bool,
    /// A view `EMIT FINAL`: only closed windows show.
    view_final: bool,
    task: Arc<TaskContext>,
    rows_in: u64,
    rows_out: u64,
    late_rows: u64,
}

impl WindowAggregate {
    pub fn new(agg: AggregatePlan, role: Role) -> Self {
        let view_final = role.view && !role.changes;
        let changes = role.changes && !role.view;
        // EMIT CHANGES needs each touched group's previous result: the batch path.
        let live = match changes {
            false => partial_schema(&agg)
                .and_then(|schema| LiveGroups::try_new(&agg, schema))
                .unwrap_or_else(|e| {
                    tracing::warn!("live aggregate state unavailable, merging batches: {e}");
                    None
                }),
            true => None,
        };
        WindowAggregate {
            agg,
            role,
            watermark: None,
            state: Vec::new(),
            live: live.map(parking_lot::Mutex::new),
            partials: Vec::new(),
            dirty: false,
            late: Output::default(),
            closed: KeptRows::default(),
            changes,
            view_final,
            task: Arc::new(TaskContext::default()),
            rows_in: 0,
            rows_out: 0,
            late_rows: 0,
        }
    }
}

#[async_trait::async_trait]
impl Operator for WindowAggregate {
    async fn process(&mut self, _input: usize, rows: Input) -> Result<()> {
        let agg = self.agg.clone();
        let mut input = rows.batch;
        if let (Some(window), Some(watermark)) = (&agg.window, self.watermark) {
            let ends = nanos(
                window
                    .expr
                    .evaluate(&input)?
                    .into_array(input.num_rows())?
                    .as_ref(),
            )?;
            let keep: BooleanArray = ends
                .iter()
                .map(|end| Some(end.is_some_and(|e| e + window.end_offset_ns > watermark)))
                .collect();
            // Late events: dropped rows that stand for their event.
            let late: Vec<u32> = (0..keep.len())
                .filter(|&i| !keep.value(i) && rows.primary.as_ref().is_none_or(|p| p.value(i)))
                .map(|i| i as u32)
                .collect();
            self.late.late_rows += late.len() as u64;
            if let (false, Some((source, origin))) = (late.is_empty(), &rows.source) {
                let origins: UInt32Array = late.iter().map(|&i| origin.value(i as usize)).collect();
                self.late.late.push(take_record_batch(source, &origins)?);
            }
            input = filter_record_batch(&input, &keep)?;
        }
        self.rows_in += input.num_rows() as u64;
        if input.num_rows() == 0 {
            return Ok(());
        }
        self.dirty = true;
        let input = RecordBatch::try_new(agg.input_schema.clone(), input.columns().to_vec())?;
        if let Some(live) = &mut self.live {
            live.get_mut().update(&input)?;
        } else {
            let schema = agg.input_schema.clone();
            let partial = self
                .run(AggregateMode::Partial, vec![input], schema)
                .await?;
            self.partials.extend(partial);
        }
        Ok(())
    }

    fn advance(&mut self, watermark: i64) {
        if self.watermark.is_none_or(|w| watermark > w) {
            self.watermark = Some(watermark);
            self.dirty = true;
        }
    }

    async fn flush(&mut self) -> Result<Output> {
        let mut out = std::mem::take(&mut self.late);
        self.late_rows += out.late_rows;
        if !std::mem::take(&mut self.dirty) {
            return Ok(out);
        }
        let old = std::mem::take(&mut self.state);
        let new = std::mem::take(&mut self.partials);
        self.finish_step(old, new, &mut out).await?;
        self.rows_out += out
            .rows
            .iter()
            .map(|e| e.batch.num_rows() as u64)
            .sum::<u64>();
        Ok(out)
    }

    fn snapshot(&mut self, epoch: u64) -> Result<OperatorState> {
        Ok(OperatorState {
            state: self.state_batches()?,
            closed: self.closed.snapshot(&self.role, epoch),
            watermark: self.watermark,
            rows_in: self.rows_in,
        })
    }

    async fn restore(&mut self, snapshot: OperatorState) -> Result<()> {
        if let Some(first) = snapshot.state.first() {
            let expected = partial_schema(&self.agg)?;
            let fits = expected.fields().len() == first.num_columns()
                && expected
                    .fields()
                    .iter()
                    .zip(first.schema().fields())
                    .all(|(a, b)| a.data_type() == b.data_type());
            if !fits {
                return Err(datafusion::common::DataFusionError::Plan(
                    "the checkpointed state does not fit this query's plan (was it written by another \
                     version of Weir?); drop and re-create the query to start it afresh"
                        .into(),
                ));
            }
        }
        match &mut self.live {
            Some(live) => {
                for batch in &snapshot.state {
                    live.get_mut().merge(batch)?;
                }
            }
            None => self.state = snapshot.state,
        }
        self.closed.restore(snapshot.closed);
        self.watermark = snapshot.watermark;
        self.rows_in = snapshot.rows_in;
        Ok(())
    }

    async fn view_contents(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        if !self.role.view {
            return Ok(None);
        }
        let mut view = self.closed.batches.clone();
        if !self.view_final {
            let open = self.state_batches()?;
            view.extend(self.finalize(open).await?);
        }
        Ok(Some(view))
    }

    fn figures(&self) -> Figures {
        let mut open = std::collections::BTreeMap::<i64, u64>::new();
        if let Some(live) = &self.live {
            let live = live.lock();
            open.extend(
                live.windows()
                    .filter(|(end, _)| self.watermark.is_none_or(|w| *end > w)),
            );
        } else if let Some(window) = &self.agg.window {
            for batch in &self.state {
                if let Ok(ends) = nanos(batch.column(window.group_index).as_ref()) {
                    for end in ends.into_iter().flatten() {
                        let end = end + window.end_offset_ns;
                        if self.watermark.is_none_or(|w| end > w) {
                            *open.entry(end).or_default() += 1;
                        }
                    }
                }
            }
        }
        Figures {
            rows_in: self.rows_in,
            rows_out: match self.role.view {
                true => self.closed.rows() as u64,
                false => self.rows_out,
            },
            late_rows: self.late_rows,
            state_rows: self.state_rows() as u64,
            state_bytes: super::memory_bytes(self.state.iter().chain(&self.closed.batches))
                + self.live.as_ref().map_or(0, |l| l.lock().bytes()),
            open_windows: open.into_iter().take(20).collect(),
            watermark: self.watermark,
        }
    }
}

impl WindowAggregate {
    async fn run(
        &self,
        mode: AggregateMode,
        input: Vec<RecordBatch>,
        schema: SchemaRef,
    ) -> Result<Vec<RecordBatch>> {
        let source = MemorySourceConfig::try_new_exec(&[input], schema, None)?;
        let exec = self.agg.exec(mode, source)?;
        collect(Arc::new(exec), self.task.clone()).await
    }

    /// Finalizes partial states (no rows in, none out).
    async fn finalize(&self, state: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let state: Vec<RecordBatch> = state.into_iter().filter(|b| b.num_rows() > 0).collect();
        match state.first() {
            Some(first) => {
                let schema = first.schema();
                self.run(AggregateMode::Final, state, schema).await
            }
            None => Ok(Vec::new()),
        }
    }

    /// Merges the new partial states (`new`) into the state (`old`), closes windows,
    /// and fills the output.
    async fn finish_step(
        &mut self,
        old: Vec<RecordBatch>,
        new: Vec<RecordBatch>,
        out: &mut Output,
    ) -> Result<()> {
        let agg = self.agg.clone();
        let groups = agg.group_by.expr().len();
        // EMIT CHANGES: the groups this step touched, and their results before it.
        let touched = match (self.changes, new.is_empty()) {
            (true, false) => Some(GroupSet::of(&new, groups)?),
            _ => None,
        };
        let before = match &touched {
            Some(t) => self.finalize(t.select(&old)?).await?,
            None => Vec::new(),
        };
        // Merge the new partial states into one state per group.
        self.state = if new.is_empty() {
            old
        } else {
            let mut all = old;
            all.extend(new);
            let schema = all[0].schema();
            self.run(AggregateMode::PartialReduce, all, schema).await?
        };
        if let Some(session) = agg.window.as_ref().and_then(|w| w.session.as_ref()) {
            self.merge_sessions(session).await?;
        }
        if let Some(t) = &touched {
            // Retractions first, then the new rows: readers see each change whole.
            let after = self.finalize(t.select(&self.state)?).await?;
            for (batches, op) in [(before, Op::Retract), (after, Op::Insert)] {
                for batch in batches {
                    if batch.num_rows() > 0 {
                        out.rows.push(Emitted {
                            batch,
                            op: Some(op),
                        });
                    }
                }
            }
        }
        let closed_now = self.close_windows(&agg).await?;
        if self.changes {
            // Closed windows were emitted as they changed; closing only drops their state.
            return Ok(());
        }
        if self.role.view {
            // The view's rows are computed when a checkpoint publishes them.
            closed_now.into_iter().for_each(|b| self.closed.push(b));
            self.apply_retention(&agg)?;
        } else {
            out.rows.extend(
                closed_now
                    .into_iter()
                    .map(|batch| Emitted { batch, op: None }),
            );
        }
        Ok(())
    }

    /// Session windows: merges the sessions of a key that touch (the planner's module
    /// docs), giving their rows the merged bounds, and re-merges their partial states.
    async fn merge_sessions(&mut self, session: &crate::planner::SessionWindow) -> Result<()> {
        use crate::planner::session_bounds::{merge_intervals, timestamps};
        if self.state.is_empty() {
            return Ok(());
        }
        let schema = self.state[0].schema();
        let batch = datafusion::arrow::compute::concat_batches(&schema, &self.state)?;
        let starts = nanos(batch.column(session.start_index).as_ref())?;
        let ends = nanos(batch.column(session.end_index).as_ref())?;
        let keys: Vec<_> = session
            .key_indices
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let (merged_starts, merged_ends) = merge_intervals(&keys, &starts, &ends)?;
        if merged_starts == starts && merged_ends == ends {
            self.state = vec![batch];
            return Ok(());
        }
        let mut columns = batch.columns().to_vec();
        let time_type = schema.field(session.start_index).data_type().clone();
        columns[session.start_index] = timestamps(merged_starts, &time_type)?;
        columns[session.end_index] = timestamps(merged_ends, &time_type)?;
        let rewritten = RecordBatch::try_new(schema.clone(), columns)?;
        self.state = self
            .run(AggregateMode::PartialReduce, vec![rewritten], schema)
            .await?;
        Ok(())
    }

    /// A view `WITH (retention = 'd')` forgets closed windows that ended more than `d`
    /// of event time before the watermark, so its state stays bounded.
    fn apply_retention(&mut self, agg: &AggregatePlan) -> Result<()> {
        let (Some(retention), Some(window), Some(watermark)) =
            (self.role.retention_ns, &agg.window, self.watermark)
        else {
            return Ok(());
        };
        let horizon = watermark - retention;
        if window.session.is_some() {
            // Sessions of a view live in the state (see close_windows).
            let mut kept = Vec::with_capacity(self.state.len());
            for batch in std::mem::take(&mut self.state) {
                let ends = nanos(batch.column(window.group_index).as_ref())?;
                let keep: BooleanArray = ends
                    .iter()
                    .map(|e| Some(e.is_none_or(|e| e > horizon)))
                    .collect();
                let batch = filter_record_batch(&batch, &keep)?;
                if batch.num_rows() > 0 {
                    kept.push(batch);
                }
            }
            self.state = kept;
        }
        let mut kept = Vec::with_capacity(self.closed.batches.len());
        let mut forgot = false;
        for batch in &self.closed.batches {
            let ends = nanos(batch.column(window.group_index).as_ref())?;
            let keep: BooleanArray = ends
                .iter()
                .map(|e| Some(e.is_none_or(|e| e + window.end_offset_ns > horizon)))
                .collect();
            if keep.true_count() == batch.num_rows() {
                kept.push(batch.clone());
                continue;
            }
            forgot = true;
            let batch = filter_record_batch(batch, &keep)?;
            if batch.num_rows() > 0 {
                kept.push(batch);
            }
        }
        if forgot {
            // The stored chunks hold rows the view no longer has: store it anew.
            self.closed.replace(kept);
        }
        Ok(())
    }

    /// Finalizes and removes the groups whose window end the watermark reached.
    async fn close_windows(&mut self, agg: &AggregatePlan) -> Result<Vec<RecordBatch>> {
        let (Some(window), Some(watermark)) = (&agg.window, self.watermark) else {
            return Ok(Vec::new());
        };
        if window.session.is_some() && self.role.view && !self.view_final {
            // A view keeps its sessions mergeable: an on-time event that touches a
            // session whose end the watermark passed still joins it, so the view equals
            // the sessions of every admitted event (a stream emits and forgets them).
            return Ok(Vec::new());
        }
        let mut closed = Vec::new();
        let mut open = Vec::new();
        if let Some(live) = &mut self.live {
            closed = live.get_mut().take_closed(watermark)?;
        }
        for batch in std::mem::take(&mut self.state) {
            let ends = nanos(batch.column(window.group_index).as_ref())?;
            let is_closed: BooleanArray = ends
                .iter()
                .map(|e| Some(e.is_some_and(|e| e + window.end_offset_ns <= watermark)))
                .collect();
            let is_open = datafusion::arrow::compute::not(&is_closed)?;
            closed.push(filter_record_batch(&batch, &is_closed)?);
            open.push(filter_record_batch(&batch, &is_open)?);
        }
        self.state = open.into_iter().filter(|b| b.num_rows() > 0).collect();
        closed.retain(|b| b.num_rows() > 0);
        match closed.first() {
            Some(first) => {
                let schema = first.schema();
                self.run(AggregateMode::Final, closed, schema).await
            }
            None => Ok(Vec::new()),
        }
    }

    /// The open groups as partial-state rows (live tables are drained and refilled).
    fn state_batches(&mut self) -> Result<Vec<RecordBatch>> {
        match &mut self.live {
            Some(live) => live.get_mut().state_batches(),
            None => Ok(self.state.clone()),
        }
    }

    /// The state's size, for metrics: groups still open.
    fn state_rows(&self) -> usize {
        self.state.iter().map(|b| b.num_rows()).sum::<usize>()
            + self.live.as_ref().map_or(0, |l| l.lock().len())
    }
}

/// The layout of the aggregate's partial-state rows: its partial `AggregateExec`'s
/// output schema.
fn partial_schema(agg: &AggregatePlan) -> Result<SchemaRef> {
    let empty = MemorySourceConfig::try_new_exec(&[vec![]], agg.input_schema.clone(), None)?;
    Ok(datafusion::physical_plan::ExecutionPlan::schema(
        &agg.exec(AggregateMode::Partial, empty)?,
    ))
}

/// The name of the change column of `EMIT CHANGES` output.
pub const OP_COLUMN: &str = "_op";

/// `batch` with an `_op` column of `op` appended.
pub fn with_op(batch: &RecordBatch, op: Op) -> Result<RecordBatch> {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{Field, Schema};
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false)));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![
        op.symbol();
        batch.num_rows()
    ])));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// A set of group keys (the first `groups` columns of partial-state batches), to pick
/// the state rows of the groups a step touched.
struct GroupSet {
    converter: datafusion::arrow::row::RowConverter,
    groups: usize,
    keys: std::collections::HashSet<Box<[u8]>>,
}

impl GroupSet {
    fn of(batches: &[RecordBatch], groups: usize) -> Result<GroupSet> {
        use datafusion::arrow::row::{RowConverter, SortField};
        let schema = batches[0].schema();
        let converter = RowConverter::new(
            schema.fields()[..groups]
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let mut keys = std::collections::HashSet::new();
        for batch in batches {
            let rows = converter.convert_columns(&batch.columns()[..groups])?;
            keys.extend(rows.iter().map(|r| Box::<[u8]>::from(r.as_ref())));
        }
        Ok(GroupSet {
            converter,
            groups,
            keys,
        })
    }

    /// The rows of `batches` whose group is in the set.
    fn select(&self, batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for batch in batches {
            let rows = self
                .converter
                .convert_columns(&batch.columns()[..self.groups])?;
            let mask: BooleanArray = rows
                .iter()
                .map(|r| Some(self.keys.contains(r.as_ref())))
                .collect();
            let selected = filter_record_batch(batch, &mask)?;
            if selected.num_rows() > 0 {
                out.push(selected);
            }
        }
        Ok(out)
    }
}
