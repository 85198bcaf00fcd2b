//! The operator side of a query: takes the source batches in arrival order, runs the
//! plan's stateless steps, keeps the aggregate's state, tracks event time, closes
//! windows, and produces what the sink should get.
//!
//! Event time (design/SQL.md): a partition's watermark is the largest event time it
//! has delivered minus the stream's delay; the query's watermark is the minimum over
//! the partitions that have delivered rows, and never moves back. Rows are judged late
//! against the watermark as it was before their batch: a row whose window has closed is
//! dropped and counted. A window closes when the watermark reaches its end.
//!
//! Idleness is the only clock-driven step: a partition that has delivered everything
//! in its log and had no new rows for the stream's `idle_timeout` (processing time, from
//! the engine's clock) is left out of the minimum; when every partition is idle the
//! watermark holds. The operator re-checks on a timer and whenever FLUSH asks.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, filter_record_batch, max};
use datafusion::arrow::compute::{take, take_record_batch};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampNanosecondType, UInt32Type};
use datafusion::common::Result;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::aggregates::AggregateMode;
use datafusion::physical_plan::collect;

use super::groups::LiveGroups;
use crate::clock::Clock;
use crate::planner::{AggregatePlan, ContinuousPlan};

use crate::planner::session_bounds::nanos;

/// A source batch after the plan's stateless steps, with the largest event time of
/// the source rows it came from (so an operator that gets none of its rows still
/// follows the partition's event time).
pub struct Prepared {
    pub batch: RecordBatch,
    pub max_event_ns: Option<i64>,
    /// Rows of the source batch (activity, for idleness).
    pub source_rows: usize,
    /// Which rows stand for their event when one event gives several rows (HOP);
    /// `None`: every row is its own event. Lateness is counted on these rows.
    pub primary: Option<BooleanArray>,
    /// The source row (in `source`) each row came from.
    pub origin: UInt32Array,
    /// The source batch (table schema), for routing late events as they arrived.
    pub source: RecordBatch,
}

/// Runs the stateless steps on one source batch (table schema) and notes its event time.
pub fn prepare(plan: &ContinuousPlan, table_batch: &RecordBatch) -> Result<Prepared> {
    let max_event_ns = match plan
        .source
        .def
        .watermark
        .as_ref()
        .and_then(|w| plan.source.table_schema.index_of(&w.column).ok())
    {
        Some(column) => {
            let ts = cast(
                table_batch.column(column),
                &DataType::Timestamp(TimeUnit::Nanosecond, None),
            )?;
            max(ts.as_primitive::<TimestampNanosecondType>())
        }
        None => None,
    };
    let tracked = plan.apply_tracking(table_batch)?;
    Ok(Prepared {
        batch: tracked.batch,
        max_event_ns,
        source_rows: table_batch.num_rows(),
        primary: tracked.primary,
        origin: tracked.origin,
        source: table_batch.clone(),
    })
}

/// The hash exchange: splits a prepared batch over `parts` operators by a hash of the
/// aggregate's group keys (every part keeps the event time and row count of the whole).
pub fn split(plan: &ContinuousPlan, prepared: Prepared, parts: usize) -> Result<Vec<Prepared>> {
    let agg = match (&plan.aggregate, parts) {
        (Some(agg), n) if n > 1 => agg,
        _ => return Ok(vec![prepared]),
    };
    let batch = &prepared.batch;
    // Sessions: by the group keys without the (per-event) window bounds, so all of a
    // key's sessions meet in one operator.
    let session = agg.window.as_ref().and_then(|w| w.session.as_ref());
    let keys = agg
        .group_by
        .expr()
        .iter()
        .enumerate()
        .filter(|(i, _)| session.is_none_or(|s| *i != s.start_index && *i != s.end_index))
        .map(|(_, (e, _))| {
            e.evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut hashes = vec![0u64; batch.num_rows()];
    create_hashes(&keys, &RandomState::with_seed(0x4558_4348), &mut hashes)?;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); parts];
    for (row, hash) in hashes.iter().enumerate() {
        rows[((*hash as u128 * parts as u128) >> 64) as usize].push(row as u32);
    }
    rows.into_iter()
        .map(|indices| {
            let indices = UInt32Array::from(indices);
            let primary = match &prepared.primary {
                Some(p) => Some(take(p, &indices, None)?.as_boolean().clone()),
                None => None,
            };
            Ok(Prepared {
                batch: take_record_batch(batch, &indices)?,
                max_event_ns: prepared.max_event_ns,
                source_rows: prepared.source_rows,
                primary,
                origin: take(&prepared.origin, &indices, None)?
                    .as_primitive::<UInt32Type>()
                    .clone(),
                source: prepared.source.clone(),
            })
        })
        .collect()
}

/// What one input step produced.
#[derive(Default)]
pub struct Output {
    /// Rows to append to a derived stream.
    pub append: Vec<RecordBatch>,
    pub late_rows: u64,
    /// The source rows (table schema) of late events, for a late-data stream.
    pub late: Vec<RecordBatch>,
}

pub struct Operator {
    plan: Arc<ContinuousPlan>,
    /// Index of the event-time column in the source's table schema, and the delay.
    event_time: Option<(usize, i64)>,
    partition_watermarks: Vec<Option<i64>>,
    /// The query's watermark, in nanoseconds.
    pub watermark: Option<i64>,
    /// Partial-aggregate state of groups that are still open (the batch-merging path).
    state: Vec<RecordBatch>,
    /// The open groups as live hash tables, when the aggregate allows (see
    /// [`LiveGroups`]); then `state` stays empty. (The mutex only makes the operator
    /// `Sync`, as DataFusion's hash tables are not; it is reached through `&mut self`.)
    live: Option<parking_lot::Mutex<LiveGroups>>,
    /// Final rows of closed windows (views keep them; streams emitted them).
    closed: Vec<RecordBatch>,
    /// The checkpoint chunks (name, number of batches) that hold `closed`'s first
    /// batches, in order; the batches after them go into the next checkpoint's new chunk.
    closed_chunks: Vec<(String, usize)>,
    /// Processing time this run of the query started (ms): in chunk names, so a chunk
    /// name never comes back with other rows (epochs restart from a checkpoint's).
    run_ms: i64,
    keeps_closed: bool,
    /// Views: how long (event time, ns) closed windows are kept past the watermark.
    retention_ns: Option<i64>,
    /// `EMIT CHANGES`: each step emits, for the groups it touched, a retraction of
    /// the old result ('-') and the new one ('+'), in an `_op` column. Views ignore it
    /// (they always hold current results) unless `view_final` says to show only closed
    /// windows.
    changes: bool,
    view_final: bool,
    task: Arc<TaskContext>,
    clock: Arc<dyn Clock>,
    idle_timeout_ms: i64,
    /// Processing time at which each partition last delivered rows.
    last_active_ms: Vec<i64>,
    /// Offset after the last row each partition delivered.
    delivered: Vec<u64>,
    /// Rows that reached the aggregate (after lateness filtering), for metrics.
    pub rows_in: u64,
}

impl Operator {
    /// `keeps_closed`: a view keeps the results of closed windows; a stream emits them.
    /// `changes`: the query said `EMIT CHANGES` (see the field docs).
    pub fn new(
        plan: Arc<ContinuousPlan>,
        keeps_closed: bool,
        changes: bool,
        clock: Arc<dyn Clock>,
        started_ms: Option<i64>,
        start: &[u64],
        retention_ms: Option<i64>,
    ) -> Self {
        let source = &plan.source;
        let event_time = source.def.watermark.as_ref().and_then(|w| {
            source
                .table_schema
                .index_of(&w.column)
                .ok()
                .map(|i| (i, w.delay_ms * 1_000_000))
        });
        let plan_retention_ns = retention_ms.map(|ms| ms * 1_000_000);
        // Processing time starts when the query started (set synchronously by the
        // caller), not when this task first ran.
        let now = started_ms.unwrap_or_else(|| clock.now_ms());
        let view_final = keeps_closed && !changes;
        let changes = changes && !keeps_closed;
        // EMIT CHANGES needs each touched group's previous result: the batch path.
        let live = match &plan.aggregate {
            Some(agg) if !changes => partial_schema(agg)
                .and_then(|schema| LiveGroups::try_new(agg, schema))
                .unwrap_or_else(|e| {
                    tracing::warn!("live aggregate state unavailable, merging batches: {e}");
                    None
                }),
            _ => None,
        };
        Operator {
            run_ms: now,
            live: live.map(parking_lot::Mutex::new),
            idle_timeout_ms: source.def.idle_timeout_ms,
            last_active_ms: vec![now; source.partitions().len()],
            delivered: start.to_vec(),
            clock,
            partition_watermarks: vec![None; source.partitions().len()],
            plan,
            event_time,
            watermark: None,
            state: Vec::new(),
            closed: Vec::new(),
            closed_chunks: Vec::new(),
            keeps_closed,
            retention_ns: plan_retention_ns,
            rows_in: 0,
            changes,
            view_final,
            task: Arc::new(TaskContext::default()),
        }
    }

    fn aggregate(&self) -> Option<&AggregatePlan> {
        self.plan.aggregate.as_ref()
    }

    async fn run(
        &self,
        agg: &AggregatePlan,
        mode: AggregateMode,
        input: Vec<RecordBatch>,
        schema: datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<Vec<RecordBatch>> {
        let source = MemorySourceConfig::try_new_exec(&[input], schema, None)?;
        let exec = agg.exec(mode, source)?;
        collect(Arc::new(exec), self.task.clone()).await
    }

    /// Processes what one partition delivered to this operator (already through the
    /// plan's stateless steps).
    pub async fn process(
        &mut self,
        partition: usize,
        end: u64,
        batches: Vec<Prepared>,
    ) -> Result<Output> {
        self.delivered[partition] = end;
        if batches.iter().any(|b| b.source_rows > 0) {
            self.last_active_ms[partition] = self.clock.now_ms();
        }
        let mut out = Output::default();
        let Some(agg) = self.plan.aggregate.clone() else {
            let rows = batches
                .into_iter()
                .map(|b| b.batch)
                .filter(|b| b.num_rows() > 0);
            if self.keeps_closed {
                // A stateless view holds every row it got (its checkpointed contents).
                self.closed.extend(rows);
            } else {
                out.append = rows.collect();
            }
            return Ok(out);
        };
        let old = std::mem::take(&mut self.state);
        let mut partials = Vec::new();
        for prepared in batches {
            let mut input = prepared.batch;
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
                let kept = filter_record_batch(&input, &keep)?;
                // Late events: dropped rows that stand for their event.
                let late: Vec<u32> = (0..keep.len())
                    .filter(|&i| {
                        !keep.value(i) && prepared.primary.as_ref().is_none_or(|p| p.value(i))
                    })
                    .map(|i| prepared.origin.value(i))
                    .collect();
                out.late_rows += late.len() as u64;
                if !late.is_empty() {
                    out.late.push(take_record_batch(
                        &prepared.source,
                        &UInt32Array::from(late),
                    )?);
                }
                input = kept;
            }
            self.rows_in += input.num_rows() as u64;
            if let Some(live) = &mut self.live {
                let input =
                    RecordBatch::try_new(agg.input_schema.clone(), input.columns().to_vec())?;
                live.get_mut().update(&input)?;
            } else if input.num_rows() > 0 {
                let schema = agg.input_schema.clone();
                let input = RecordBatch::try_new(schema.clone(), input.columns().to_vec())?;
                partials.extend(
                    self.run(&agg, AggregateMode::Partial, vec![input], schema)
                        .await?,
                );
            }
            self.observe_event_time(partition, prepared.max_event_ns);
        }
        self.finish_step(&agg, old, partials, out).await
    }

    /// Re-evaluates idleness (no new rows): the watermark may move and windows close.
    pub async fn tick(&mut self) -> Result<Output> {
        let Some(agg) = self.plan.aggregate.clone() else {
            return Ok(Output::default());
        };
        let before = self.watermark;
        self.recompute_watermark();
        if self.watermark == before {
            return Ok(Output::default());
        }
        let old = std::mem::take(&mut self.state);
        self.finish_step(&agg, old, Vec::new(), Output::default())
            .await
    }

    /// Finalizes partial states (no rows in, none out).
    async fn finalize(
        &self,
        agg: &AggregatePlan,
        state: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        let state: Vec<RecordBatch> = state.into_iter().filter(|b| b.num_rows() > 0).collect();
        match state.first() {
            Some(first) => {
                let schema = first.schema();
                self.run(agg, AggregateMode::Final, state, schema).await
            }
            None => Ok(Vec::new()),
        }
    }

    /// Merges the new partial states (`new`) into the state (`old`), closes windows,
    /// and fills the output.
    async fn finish_step(
        &mut self,
        agg: &AggregatePlan,
        old: Vec<RecordBatch>,
        new: Vec<RecordBatch>,
        mut out: Output,
    ) -> Result<Output> {
        let agg = agg.clone();
        let groups = agg.group_by.expr().len();
        // EMIT CHANGES: the groups this step touched, and their results before it.
        let touched = match (self.changes, new.is_empty()) {
            (true, false) => Some(GroupSet::of(&new, groups)?),
            _ => None,
        };
        let before = match &touched {
            Some(t) => self.finalize(&agg, t.select(&old)?).await?,
            None => Vec::new(),
        };
        // Merge the new partial states into one state per group.
        self.state = if new.is_empty() {
            old
        } else {
            let mut all = old;
            all.extend(new);
            let schema = all[0].schema();
            self.run(&agg, AggregateMode::PartialReduce, all, schema)
                .await?
        };
        if let Some(session) = agg.window.as_ref().and_then(|w| w.session.as_ref()) {
            self.merge_sessions(&agg, session).await?;
        }
        if let Some(t) = &touched {
            // One batch per step, retractions first: readers see each change whole.
            let after = self.finalize(&agg, t.select(&self.state)?).await?;
            let mut changes = Vec::new();
            for (batches, op) in [(before, "-"), (after, "+")] {
                for batch in batches {
                    let batch = self.plan.apply_post(batch)?;
                    if batch.num_rows() > 0 {
                        changes.push(with_op(&batch, op)?);
                    }
                }
            }
            if let Some(first) = changes.first() {
                out.append.push(datafusion::arrow::compute::concat_batches(
                    &first.schema(),
                    &changes,
                )?);
            }
        }
        let closed_now = self.close_windows(&agg).await?;
        if self.changes {
            // Closed windows were emitted as they changed; closing only drops their state.
            return Ok(out);
        }
        if self.keeps_closed {
            // The view's rows are computed when a checkpoint publishes them.
            self.closed.extend(closed_now);
            self.apply_retention(&agg)?;
        } else {
            out.append = closed_now
                .into_iter()
                .map(|b| self.plan.apply_post(b))
                .collect::<Result<_>>()?;
        }
        Ok(out)
    }

    /// Session windows: merges the sessions of a key that touch (the planner's module
    /// docs), giving their rows the merged bounds, and re-merges their partial states.
    async fn merge_sessions(
        &mut self,
        agg: &AggregatePlan,
        session: &crate::planner::SessionWindow,
    ) -> Result<()> {
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
            .run(agg, AggregateMode::PartialReduce, vec![rewritten], schema)
            .await?;
        Ok(())
    }

    /// A view `WITH (retention = 'd')` forgets closed windows that ended more than `d`
    /// of event time before the watermark, so its state stays bounded.
    fn apply_retention(&mut self, agg: &AggregatePlan) -> Result<()> {
        let (Some(retention), Some(window), Some(watermark)) =
            (self.retention_ns, &agg.window, self.watermark)
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
        let mut kept = Vec::with_capacity(self.closed.len());
        let mut forgot = false;
        for batch in std::mem::take(&mut self.closed) {
            let ends = nanos(batch.column(window.group_index).as_ref())?;
            let keep: BooleanArray = ends
                .iter()
                .map(|e| Some(e.is_none_or(|e| e + window.end_offset_ns > horizon)))
                .collect();
            if keep.true_count() == batch.num_rows() {
                kept.push(batch);
                continue;
            }
            forgot = true;
            let batch = filter_record_batch(&batch, &keep)?;
            if batch.num_rows() > 0 {
                kept.push(batch);
            }
        }
        self.closed = kept;
        if forgot {
            // The stored chunks hold rows the view no longer has: store it anew.
            self.closed_chunks.clear();
        }
        Ok(())
    }

    fn observe_event_time(&mut self, partition: usize, max_event_ns: Option<i64>) {
        if let (Some(max_ts), Some((_, delay))) = (max_event_ns, self.event_time) {
            let candidate = max_ts - delay;
            let slot = &mut self.partition_watermarks[partition];
            *slot = Some(slot.map_or(candidate, |w| w.max(candidate)));
        }
        self.recompute_watermark();
    }

    /// The query's watermark from the partitions' (see the module docs).
    fn recompute_watermark(&mut self) {
        let now = self.clock.now_ms();
        let mut global: Option<i64> = None;
        for (p, log) in self.plan.source.partitions().iter().enumerate() {
            // The written end, not the committed one: a write spanning partitions appends
            // to all of them before committing any, so a partition whose part is still
            // being committed already holds the watermark (no race with its neighbours).
            let written = log.latest_offset();
            if written <= log.earliest_offset() && self.partition_watermarks[p].is_none() {
                continue; // empty log
            }
            let caught_up = self.delivered[p] >= written;
            if caught_up && now - self.last_active_ms[p] >= self.idle_timeout_ms {
                continue; // idle
            }
            match self.partition_watermarks[p] {
                None => return, // rows not yet seen: event time unknown, hold
                Some(w) => global = Some(global.map_or(w, |g: i64| g.min(w))),
            }
        }
        if let Some(global) = global {
            self.watermark = Some(self.watermark.map_or(global, |w| w.max(global)));
        }
    }

    /// Finalizes and removes the groups whose window end the watermark reached.
    async fn close_windows(&mut self, agg: &AggregatePlan) -> Result<Vec<RecordBatch>> {
        let (Some(window), Some(watermark)) = (&agg.window, self.watermark) else {
            return Ok(Vec::new());
        };
        if window.session.is_some() && self.keeps_closed && !self.view_final {
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
        let mut results = Vec::new();
        if let Some(first) = closed.first() {
            let schema = first.schema();
            // Final rows, before the steps above the aggregate: views keep them with
            // their window key (for retention) and apply those steps when they publish.
            results = self.run(agg, AggregateMode::Final, closed, schema).await?;
        }
        Ok(results)
    }

    /// The open groups as partial-state rows (live tables are drained and refilled).
    pub fn state_batches(&mut self) -> Result<Vec<RecordBatch>> {
        match &mut self.live {
            Some(live) => live.get_mut().state_batches(),
            None => Ok(self.state.clone()),
        }
    }

    /// The operator's state at the barrier of checkpoint `epoch`; operator `index`.
    pub fn snapshot(
        &mut self,
        index: usize,
        epoch: u64,
    ) -> Result<super::checkpoint::OperatorSnapshot> {
        let covered: usize = self.closed_chunks.iter().map(|(_, n)| n).sum();
        if covered < self.closed.len() {
            let name = format!("op{index}-e{epoch}-r{}", self.run_ms);
            self.closed_chunks.push((name, self.closed.len() - covered));
        }
        let mut closed = Vec::with_capacity(self.closed_chunks.len());
        let mut at = 0;
        for (name, n) in &self.closed_chunks {
            closed.push(super::checkpoint::ClosedChunk {
                name: name.clone(),
                batches: self.closed[at..at + n].to_vec(),
            });
            at += n;
        }
        Ok(super::checkpoint::OperatorSnapshot {
            state: self.state_batches()?,
            closed,
            partition_watermarks: self.partition_watermarks.clone(),
            watermark: self.watermark,
            rows_in: self.rows_in,
        })
    }

    /// Restores a checkpointed state; refuses state that does not fit this plan (the
    /// query's SQL is fixed, so only a different Weir version could cause that).
    pub async fn restore(&mut self, snapshot: super::checkpoint::OperatorSnapshot) -> Result<()> {
        if let (Some(agg), Some(first)) = (self.plan.aggregate.clone(), snapshot.state.first()) {
            let empty =
                MemorySourceConfig::try_new_exec(&[vec![]], agg.input_schema.clone(), None)?;
            let expected = datafusion::physical_plan::ExecutionPlan::schema(
                &agg.exec(AggregateMode::Partial, empty)?,
            );
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
        if snapshot.partition_watermarks.len() == self.partition_watermarks.len() {
            self.partition_watermarks = snapshot.partition_watermarks;
        }
        match &mut self.live {
            Some(live) => {
                for batch in &snapshot.state {
                    live.get_mut().merge(batch)?;
                }
            }
            None => self.state = snapshot.state,
        }
        self.closed_chunks = snapshot
            .closed
            .iter()
            .map(|c| (c.name.clone(), c.batches.len()))
            .collect();
        self.closed = snapshot
            .closed
            .into_iter()
            .flat_map(|c| c.batches)
            .collect();
        self.watermark = snapshot.watermark;
        self.rows_in = snapshot.rows_in;
        Ok(())
    }

    /// The view's contents now, given the open groups' state (from
    /// [`Self::state_batches`]); views publish them when a checkpoint commits.
    pub async fn view_contents(&self, state: &[RecordBatch]) -> Result<Option<Vec<RecordBatch>>> {
        if !self.keeps_closed {
            return Ok(None);
        }
        let Some(agg) = self.plan.aggregate.clone() else {
            return Ok(Some(self.closed.clone()));
        };
        let mut view = Vec::with_capacity(self.closed.len() + 1);
        for batch in &self.closed {
            view.push(self.plan.apply_post(batch.clone())?);
        }
        if !self.view_final {
            for batch in self.finalize(&agg, state.to_vec()).await? {
                view.push(self.plan.apply_post(batch)?);
            }
        }
        Ok(Some(view))
    }

    /// What the queries API shows about this operator.
    pub fn report(&self) -> super::OperatorReport {
        let now = self.clock.now_ms();
        let partitions = self
            .plan
            .source
            .partitions()
            .iter()
            .enumerate()
            .map(|(p, log)| {
                let idle = self.delivered[p] >= log.latest_offset()
                    && now - self.last_active_ms[p] >= self.idle_timeout_ms;
                (self.partition_watermarks[p], idle)
            })
            .collect();
        let mut open = std::collections::BTreeMap::<i64, u64>::new();
        if let Some(live) = &self.live {
            let live = live.lock();
            open.extend(
                live.windows()
                    .filter(|(end, _)| self.watermark.is_none_or(|w| *end > w)),
            );
        } else if let Some(window) = self.aggregate().and_then(|a| a.window.as_ref()) {
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
        super::OperatorReport {
            partitions,
            state_rows: self.state_rows() as u64,
            state_bytes: memory_bytes(self.state.iter().chain(&self.closed))
                + self.live.as_ref().map_or(0, |l| l.lock().bytes()),
            open_windows: open.into_iter().take(20).collect(),
        }
    }

    /// The state's size, for metrics: groups still open.
    pub fn state_rows(&self) -> usize {
        self.state.iter().map(|b| b.num_rows()).sum::<usize>()
            + self.live.as_ref().map_or(0, |l| l.lock().len())
    }
}

/// The layout of the aggregate's partial-state rows: its partial `AggregateExec`'s
/// output schema.
fn partial_schema(agg: &AggregatePlan) -> Result<datafusion::arrow::datatypes::SchemaRef> {
    let empty = MemorySourceConfig::try_new_exec(&[vec![]], agg.input_schema.clone(), None)?;
    Ok(datafusion::physical_plan::ExecutionPlan::schema(
        &agg.exec(AggregateMode::Partial, empty)?,
    ))
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

/// The name of the change column of `EMIT CHANGES` output.
pub const OP_COLUMN: &str = "_op";

/// `batch` with an `_op` column of `op` ('+' or '-') appended.
pub fn with_op(batch: &RecordBatch, op: &str) -> Result<RecordBatch> {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{Field, Schema};
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false)));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![op; batch.num_rows()])));
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

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
