//! Window Top-N: `ROW_NUMBER()` / `RANK()` / `DENSE_RANK()` `OVER (PARTITION BY
//! window_start, window_end, ... ORDER BY ...)` under a filter on the rank.
//!
//! It holds each open window's rows (from a windowed aggregate, its final rows, which
//! arrive before the watermark that closes their window; or a window TVF's rows). When
//! the watermark reaches a window's end, DataFusion's own window operator ranks the
//! window's rows (so ties, NULLs and orderings are exactly as in the bounded query) and
//! the rows whose rank is within the limit are emitted, once. A row for a window that
//! has already closed is late: dropped and counted.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{filter_record_batch, kernels::cmp::lt_eq, take_record_batch};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::{Figures, Input, KeptRows, Operator, OperatorState, Output, Role};
use crate::planner::TopNPlan;
use crate::planner::session_bounds::nanos;

pub struct TopN {
    plan: TopNPlan,
    role: Role,
    watermark: Option<i64>,
    /// Rows of open windows, by window end (ns).
    open: BTreeMap<i64, Vec<RecordBatch>>,
    /// Rows of windows that closed since the last flush.
    closing: Vec<RecordBatch>,
    late: Output,
    /// Ranked rows a view keeps.
    kept: KeptRows,
    task: Arc<TaskContext>,
    rows_in: u64,
    rows_out: u64,
    late_rows: u64,
}

impl TopN {
    pub fn new(plan: TopNPlan, role: Role) -> Self {
        TopN {
            plan,
            role,
            watermark: None,
            open: BTreeMap::new(),
            closing: Vec::new(),
            late: Output::default(),
            kept: KeptRows::default(),
            task: Arc::new(TaskContext::default()),
            rows_in: 0,
            rows_out: 0,
            late_rows: 0,
        }
    }

    /// Each row's window end (ns; `None` for a NULL window).
    fn ends(&self, batch: &RecordBatch) -> Result<Vec<Option<i64>>> {
        let key = self
            .plan
            .window
            .evaluate(batch)?
            .into_array(batch.num_rows())?;
        Ok(nanos(key.as_ref())?
            .into_iter()
            .map(|v| v.map(|v| v + self.plan.end_offset_ns))
            .collect())
    }

    /// Files `batch`'s rows under their windows; rows of closed windows are late.
    fn take(&mut self, rows: Input) -> Result<()> {
        let batch = &rows.batch;
        let ends = self.ends(batch)?;
        let mut by_end: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut late = Vec::new();
        for (i, end) in ends.iter().enumerate() {
            let Some(end) = *end else { continue };
            if self.watermark.is_some_and(|w| end <= w) {
                let primary = rows.primary.as_ref().is_none_or(|p| p.value(i));
                if primary {
                    late.push(i as u32);
                }
                continue;
            }
            by_end.entry(end).or_default().push(i as u32);
        }
        for (end, indices) in by_end {
            let taken = match indices.len() == batch.num_rows() {
                true => batch.clone(),
                false => take_record_batch(batch, &UInt32Array::from(indices))?,
            };
            self.open.entry(end).or_default().push(taken);
        }
        self.late_rows += late.len() as u64;
        self.late.add_late(&rows.source, &late)?;
        Ok(())
    }

    /// DataFusion's window operator over `batches`, then the rank limit.
    async fn rank(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let source: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[batches], self.plan.input_schema.clone(), None)?;
        let mut replaced = false;
        let exec = self
            .plan
            .exec
            .clone()
            .transform_up(|node| {
                Ok(match node.downcast_ref::<EmptyExec>() {
                    Some(_) => {
                        replaced = true;
                        Transformed::yes(source.clone())
                    }
                    None => Transformed::no(node),
                })
            })?
            .data;
        if !replaced {
            return Err(DataFusionError::Internal(
                "the Top-N's window plan has no input to replace".into(),
            ));
        }
        // Operators may keep state across runs (a hash join's build side) unless reset.
        let exec = datafusion::physical_plan::execution_plan::reset_plan_states(exec)?;
        let ranked = collect(exec, self.task.clone()).await?;
        let Some(max) = self.plan.max_rank else {
            return Ok(ranked);
        };
        let limit = UInt64Array::new_scalar(max);
        ranked
            .into_iter()
            .map(|batch| {
                let rank = batch.column(batch.num_columns() - 1);
                let rank = datafusion::arrow::compute::cast(
                    rank,
                    &datafusion::arrow::datatypes::DataType::UInt64,
                )?;
                let keep = lt_eq(&rank, &limit)?;
                Ok(filter_record_batch(&batch, &keep)?)
            })
            .collect()
    }

    /// Views `WITH (retention = ...)`: forgets kept rows of windows that ended longer
    /// ago than the retention.
    fn forget_old(&mut self, watermark: i64) -> Result<()> {
        let Some(retention) = self.role.retention_ns else {
            return Ok(());
        };
        let horizon = watermark - retention;
        let mut kept = Vec::new();
        let mut changed = false;
        for batch in &self.kept.batches {
            let ends = self.ends(batch)?;
            if ends.iter().all(|e| e.is_some_and(|e| e > horizon)) {
                kept.push(batch.clone());
                continue;
            }
            changed = true;
            let keep: datafusion::arrow::array::BooleanArray = ends
                .iter()
                .map(|e| Some(e.is_some_and(|e| e > horizon)))
                .collect();
            kept.push(filter_record_batch(batch, &keep)?);
        }
        if changed {
            self.kept.replace(kept);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Operator for TopN {
    async fn process(&mut self, _input: usize, rows: Input) -> Result<()> {
        self.rows_in += rows.batch.num_rows() as u64;
        self.take(rows)
    }

    fn advance(&mut self, watermark: i64) {
        self.watermark = Some(watermark);
        let still_open = self.open.split_off(&(watermark + 1));
        let closed = std::mem::replace(&mut self.open, still_open);
        self.closing.extend(closed.into_values().flatten());
    }

    async fn flush(&mut self) -> Result<Output> {
        let mut output = std::mem::take(&mut self.late);
        if self.closing.is_empty() {
            return Ok(output);
        }
        let closing = std::mem::take(&mut self.closing);
        let ranked = self.rank(closing).await?;
        self.rows_out += ranked.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        output.rows = self.kept.hand_out(self.role.view, ranked);
        if let (true, Some(w)) = (self.role.view, self.watermark) {
            self.forget_old(w)?;
        }
        Ok(output)
    }

    fn snapshot(&mut self, epoch: u64) -> Result<OperatorState> {
        Ok(OperatorState {
            state: self
                .open
                .values()
                .flatten()
                .chain(&self.closing)
                .cloned()
                .collect(),
            closed: self.kept.snapshot(&self.role, epoch),
            watermark: self.watermark,
            rows_in: self.rows_in,
        })
    }

    async fn restore(&mut self, state: OperatorState) -> Result<()> {
        for batch in state.state {
            if batch.schema().fields() != self.plan.input_schema.fields() {
                return Err(DataFusionError::Plan(
                    "the checkpointed Top-N state does not fit this query's plan".into(),
                ));
            }
            self.take(Input::rows(batch))?;
        }
        self.kept.restore(state.closed);
        self.watermark = state.watermark;
        self.rows_in = state.rows_in;
        if let Some(w) = self.watermark {
            self.advance(w);
        }
        Ok(())
    }

    async fn view_contents(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        Ok(self.role.view.then(|| self.kept.batches.clone()))
    }

    fn figures(&self) -> Figures {
        let open = self.open.values().flatten();
        Figures {
            rows_in: self.rows_in,
            rows_out: self.rows_out,
            late_rows: self.late_rows,
            state_rows: open.clone().map(|b| b.num_rows() as u64).sum(),
            state_bytes: super::memory_bytes(open.chain(&self.kept.batches)),
            open_windows: self
                .open
                .iter()
                .take(20)
                .map(|(end, b)| (*end, b.iter().map(|b| b.num_rows() as u64).sum()))
                .collect(),
            watermark: self.watermark,
        }
    }
}
