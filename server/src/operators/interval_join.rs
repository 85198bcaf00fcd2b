//! Interval join: rows of two inputs (port 0 the left, port 1 the right) that match on
//! the ON clause, whose times lie within bounds of each other (`right - left` in
//! `[lower, upper]`).
//!
//! Each side's rows are held. A batch from one side is joined, by DataFusion's own join
//! (the plan's hash join with the whole ON clause), with the rows the other side holds,
//! then held itself; so every pair meets once, when its second row arrives. The output
//! is append-only.
//!
//! Time: a row older than the watermark (the minimum of both inputs') is late, dropped
//! and counted. A left row at `l` can only match right rows at `l + lower ..= l + upper`,
//! and every right row still to come is at the watermark or later, so it is dropped
//! once `l + upper` is before the watermark; a right row at `r`, once `r - lower` is.
//! Between rows that are not late, no match is missed: whichever arrives second finds
//! the first still held. `state_rows` shows what is held.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch, UInt8Array, UInt32Array};
use datafusion::arrow::compute::{filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::{Emitted, Figures, Input, KeptRows, Operator, OperatorState, Output, Role};
use crate::planner::IntervalJoinPlan;
use crate::planner::session_bounds::nanos;

/// The column that tags a checkpointed row with its side (0 left, 1 right).
const SIDE: &str = "__join_side";

pub struct IntervalJoin {
    plan: IntervalJoinPlan,
    role: Role,
    watermark: Option<i64>,
    /// The rows each side holds.
    held: [Vec<RecordBatch>; 2],
    out: Vec<RecordBatch>,
    late: Output,
    kept: KeptRows,
    task: Arc<TaskContext>,
    rows_in: u64,
    rows_out: u64,
    late_rows: u64,
}

impl IntervalJoin {
    pub fn new(plan: IntervalJoinPlan, role: Role) -> Self {
        IntervalJoin {
            plan,
            role,
            watermark: None,
            held: [Vec::new(), Vec::new()],
            out: Vec::new(),
            late: Output::default(),
            kept: KeptRows::default(),
            task: Arc::new(TaskContext::default()),
            rows_in: 0,
            rows_out: 0,
            late_rows: 0,
        }
    }

    fn time(&self, side: usize) -> &Arc<dyn PhysicalExpr> {
        match side {
            0 => &self.plan.left_time,
            _ => &self.plan.right_time,
        }
    }

    fn times(&self, side: usize, batch: &RecordBatch) -> Result<Vec<Option<i64>>> {
        let times = self
            .time(side)
            .evaluate(batch)?
            .into_array(batch.num_rows())?;
        nanos(times.as_ref())
    }

    /// DataFusion's join of `left` and `right` (the plan's empty inputs replaced).
    async fn join(
        &self,
        left: Vec<RecordBatch>,
        right: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        let mut sources: Vec<Arc<dyn ExecutionPlan>> = vec![
            MemorySourceConfig::try_new_exec(&[left], self.plan.left_schema.clone(), None)?,
            MemorySourceConfig::try_new_exec(&[right], self.plan.right_schema.clone(), None)?,
        ];
        sources.reverse();
        // The empty inputs, left first in the plan's tree.
        let exec = self
            .plan
            .exec
            .clone()
            .transform_down(|node| {
                Ok(match node.downcast_ref::<EmptyExec>() {
                    Some(_) => match sources.pop() {
                        Some(source) => Transformed::yes(source),
                        None => Transformed::no(node),
                    },
                    None => Transformed::no(node),
                })
            })?
            .data;
        if !sources.is_empty() {
            return Err(DataFusionError::Internal(
                "the interval join's plan has fewer inputs than two".into(),
            ));
        }
        // A hash join keeps its build side across runs unless told to forget it.
        let exec = datafusion::physical_plan::execution_plan::reset_plan_states(exec)?;
        collect(exec, self.task.clone()).await
    }

    /// Drops the rows no row still to come can match.
    fn expire(&mut self, watermark: i64) -> Result<()> {
        for side in 0..2 {
            // Left: held while l + upper >= watermark; right: while r - lower >= watermark.
            let offset = match side {
                0 => self.plan.upper_ns,
                _ => -self.plan.lower_ns,
            };
            let mut kept = Vec::with_capacity(self.held[side].len());
            for batch in std::mem::take(&mut self.held[side]) {
                let keep: BooleanArray = self
                    .times(side, &batch)?
                    .into_iter()
                    .map(|t| Some(t.is_some_and(|t| t.saturating_add(offset) >= watermark)))
                    .collect();
                match keep.true_count() {
                    0 => {}
                    n if n == batch.num_rows() => kept.push(batch),
                    _ => kept.push(filter_record_batch(&batch, &keep)?),
                }
            }
            self.held[side] = kept;
        }
        Ok(())
    }

    /// The held rows as checkpoint batches, each tagged with its side.
    fn tagged(&self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for (side, batches) in self.held.iter().enumerate() {
            for batch in batches {
                let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
                fields.push(Arc::new(Field::new(SIDE, DataType::UInt8, false)));
                let mut columns = batch.columns().to_vec();
                columns.push(Arc::new(UInt8Array::from(vec![
                    side as u8;
                    batch.num_rows()
                ])));
                out.push(RecordBatch::try_new(
                    Arc::new(Schema::new(fields)),
                    columns,
                )?);
            }
        }
        Ok(out)
    }

    fn schema(&self, side: usize) -> &SchemaRef {
        match side {
            0 => &self.plan.left_schema,
            _ => &self.plan.right_schema,
        }
    }
}

#[async_trait::async_trait]
impl Operator for IntervalJoin {
    async fn process(&mut self, input: usize, rows: Input) -> Result<()> {
        let side = input.min(1);
        let batch = rows.batch;
        self.rows_in += batch.num_rows() as u64;
        // Late rows: older than the watermark.
        let times = self.times(side, &batch)?;
        let on_time: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some() && self.watermark.is_none_or(|w| t.unwrap() >= w)))
            .collect();
        let late: Vec<u32> = (0..batch.num_rows() as u32)
            .filter(|&i| !on_time.value(i as usize))
            .filter(|&i| times[i as usize].is_some())
            .collect();
        self.late_rows += late.len() as u64;
        self.late.late_rows += late.len() as u64;
        if let (Some((source, index)), false) = (&rows.source, late.is_empty()) {
            let at = UInt32Array::from_iter_values(late.iter().map(|&i| index.value(i as usize)));
            self.late.late.push(take_record_batch(source, &at)?);
        }
        let batch = match on_time.true_count() {
            0 => return Ok(()),
            n if n == batch.num_rows() => batch,
            _ => filter_record_batch(&batch, &on_time)?,
        };
        let other = self.held[1 - side].clone();
        if !other.is_empty() {
            let joined = match side {
                0 => self.join(vec![batch.clone()], other).await?,
                _ => self.join(other, vec![batch.clone()]).await?,
            };
            self.out
                .extend(joined.into_iter().filter(|b| b.num_rows() > 0));
        }
        self.held[side].push(batch);
        Ok(())
    }

    fn advance(&mut self, watermark: i64) {
        self.watermark = Some(watermark);
        if let Err(e) = self.expire(watermark) {
            tracing::warn!("interval join: could not drop expired rows: {e}");
        }
    }

    async fn flush(&mut self) -> Result<Output> {
        let mut output = std::mem::take(&mut self.late);
        let rows = std::mem::take(&mut self.out);
        self.rows_out += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        match self.role.view {
            true => rows.into_iter().for_each(|b| self.kept.push(b)),
            false => {
                output.rows = rows
                    .into_iter()
                    .map(|batch| Emitted { batch, op: None })
                    .collect()
            }
        }
        Ok(output)
    }

    fn snapshot(&mut self, epoch: u64) -> Result<OperatorState> {
        Ok(OperatorState {
            state: self.tagged()?,
            closed: self.kept.snapshot(&self.role, epoch),
            watermark: self.watermark,
            rows_in: self.rows_in,
        })
    }

    async fn restore(&mut self, state: OperatorState) -> Result<()> {
        for batch in state.state {
            let schema = batch.schema();
            let (Some((at, _)), Some(side)) = (
                schema.column_with_name(SIDE),
                batch.column_by_name(SIDE).and_then(|c| {
                    c.as_any()
                        .downcast_ref::<UInt8Array>()
                        .map(|a| a.iter().next().flatten())
                }),
            ) else {
                return Err(DataFusionError::Plan(
                    "the checkpointed join state does not fit this query's plan".into(),
                ));
            };
            let side = side.unwrap_or(0).min(1) as usize;
            let rows = batch.project(&(0..at).collect::<Vec<_>>())?;
            if rows.schema().fields() != self.schema(side).fields() {
                return Err(DataFusionError::Plan(
                    "the checkpointed join state does not fit this query's plan".into(),
                ));
            }
            let rows = RecordBatch::try_new(self.schema(side).clone(), rows.columns().to_vec())?;
            self.held[side].push(rows);
        }
        self.kept.restore(state.closed);
        self.watermark = state.watermark;
        self.rows_in = state.rows_in;
        Ok(())
    }

    async fn view_contents(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        Ok(self.role.view.then(|| self.kept.batches.clone()))
    }

    fn figures(&self) -> Figures {
        let held = self.held.iter().flatten();
        Figures {
            rows_in: self.rows_in,
            rows_out: self.rows_out,
            late_rows: self.late_rows,
            state_rows: held.clone().map(|b| b.num_rows() as u64).sum(),
            state_bytes: super::memory_bytes(held.chain(&self.kept.batches)),
            watermark: self.watermark,
            ..Figures::default()
        }
    }
}
