//! Interval join: rows of two inputs (port 0 the left, port 1 the right) that match on
//! the ON clause, whose times lie within bounds of each other (`right - left` in
//! `[lower, upper]`); INNER, LEFT, RIGHT or FULL.
//!
//! Each side's rows are held, each with a row number. A batch from one side is joined,
//! by DataFusion's own join (the plan's hash join with the whole ON clause), with the
//! rows the other side holds, then held itself; so every pair meets once, when its
//! second row arrives. The row numbers in the join's output tell which held rows have
//! matched. The output is append-only.
//!
//! Time: a row older than the watermark (the minimum of both inputs') is late, dropped
//! and counted. A left row at `l` can only match right rows at `l + lower ..= l + upper`,
//! and every right row still to come is at the watermark or later, so it is dropped
//! once `l + upper` is before the watermark; a right row at `r`, once `r - lower` is.
//! Between rows that are not late, no match is missed: whichever arrives second finds
//! the first still held. A row of an outer side that is dropped without ever having
//! matched is emitted then, with NULLs for the other side. `state_rows` shows what is
//! held.
//!
//! A **window join** (equal window bounds: `[0, 0]`) finds its pairs when the window
//! closes instead: once the watermark passes a window's end, its rows on both sides are
//! joined, emitted and dropped. A **semi join** emits each left row at its first match.
//! A **regular join** (no time bounds) holds every row, or for `state_ttl` past the
//! watermark, and has no late rows.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array, UInt64Array, new_null_array,
};
use datafusion::arrow::compute::{filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef, UInt64Type};
use datafusion::common::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::JoinType;
use datafusion::physical_expr::PhysicalExpr;

use super::join_rows::{self, numbered_schema, run_numbered};
use super::{Figures, Input, KeptRows, Operator, OperatorState, Output, Role};
use crate::planner::IntervalJoinPlan;
use crate::planner::join::ROW_COLUMNS;
use crate::planner::session_bounds::nanos;

/// The column that tags a checkpointed row (after its side's) with whether it matched.
const MATCHED: &str = "__join_matched";

pub struct IntervalJoin {
    plan: IntervalJoinPlan,
    role: Role,
    /// Each side's input schema with the row number appended.
    held_schema: [SchemaRef; 2],
    watermark: Option<i64>,
    /// The rows each side holds (with their row numbers).
    held: [Vec<RecordBatch>; 2],
    /// Row numbers of held rows that have matched (kept for outer sides only).
    matched: [HashSet<u64>; 2],
    next_row: u64,
    out: Vec<RecordBatch>,
    late: Output,
    kept: KeptRows,
    task: Arc<TaskContext>,
    rows_in: u64,
    rows_out: u64,
    late_rows: u64,
    /// A window join (equal window bounds): pairs are found when their window closes,
    /// not as rows arrive.
    window: bool,
    /// The watermark moved since windows were last closed (window joins).
    due: bool,
}

impl IntervalJoin {
    pub fn new(plan: IntervalJoinPlan, role: Role) -> Self {
        let window = !plan.regular && plan.lower_ns == 0 && plan.upper_ns == 0;
        let held_schema = [
            numbered_schema(&plan.left_schema, ROW_COLUMNS[0]),
            numbered_schema(&plan.right_schema, ROW_COLUMNS[1]),
        ];
        IntervalJoin {
            plan,
            role,
            held_schema,
            watermark: None,
            held: [Vec::new(), Vec::new()],
            matched: [HashSet::new(), HashSet::new()],
            next_row: 0,
            out: Vec::new(),
            late: Output::default(),
            kept: KeptRows::default(),
            task: Arc::new(TaskContext::default()),
            rows_in: 0,
            rows_out: 0,
            late_rows: 0,
            window,
            due: false,
        }
    }

    /// A window join closes the windows the watermark has passed: their rows on both
    /// sides are joined, then dropped (an outer side's unmatched ones with NULLs).
    async fn close_windows(&mut self, watermark: i64) -> Result<()> {
        let mut closing: [Vec<RecordBatch>; 2] = [Vec::new(), Vec::new()];
        for side in 0..2 {
            for batch in &self.held[side] {
                let closed: BooleanArray = self
                    .times(side, batch)?
                    .into_iter()
                    .map(|t| Some(t.is_some_and(|t| t < watermark)))
                    .collect();
                if closed.true_count() > 0 {
                    closing[side].push(filter_record_batch(batch, &closed)?);
                }
            }
        }
        let [left, right] = closing;
        if !left.is_empty() && !right.is_empty() {
            let joined = self.join(left, right).await?;
            self.out.extend(joined);
        }
        self.expire(watermark)
    }

    /// Whether `side`'s unmatched rows are part of the output.
    fn outer(&self, side: usize) -> bool {
        matches!(
            (self.plan.join_type, side),
            (JoinType::Full, _) | (JoinType::Left, 0) | (JoinType::Right, 1)
        )
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

    /// DataFusion's join of held rows `left` and `right` (the plan's empty inputs
    /// replaced): the output, and the row numbers of the rows that matched per side.
    async fn join(
        &mut self,
        left: Vec<RecordBatch>,
        right: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        let joined =
            run_numbered(&self.plan.exec, &self.task, &self.held_schema, left, right).await?;
        let left_width = self.held_schema[0].fields().len();
        let mut out = Vec::with_capacity(joined.len());
        for batch in joined.into_iter().filter(|b| b.num_rows() > 0) {
            // Left columns, left row number, right columns, right row number.
            let rows = [left_width - 1, batch.num_columns() - 1];
            if self.plan.join_type == JoinType::LeftSemi {
                // Each left row once, at its first match.
                let numbers = batch.column(rows[0]).as_primitive::<UInt64Type>();
                let first: Vec<u32> = (0..batch.num_rows() as u32)
                    .filter(|&i| self.matched[0].insert(numbers.value(i as usize)))
                    .collect();
                let picked = take_record_batch(&batch, &UInt32Array::from(first))?;
                let columns = picked.columns()[..left_width - 1].to_vec();
                out.push(RecordBatch::try_new(
                    self.plan.output_schema.clone(),
                    columns,
                )?);
                continue;
            }
            for side in 0..2 {
                if self.outer(side) {
                    let numbers = batch.column(rows[side]).as_primitive::<UInt64Type>();
                    self.matched[side].extend(numbers.values().iter().copied());
                }
            }
            let columns: Vec<ArrayRef> = (0..batch.num_columns())
                .filter(|i| !rows.contains(i))
                .map(|i| batch.column(i).clone())
                .collect();
            out.push(RecordBatch::try_new(
                self.plan.output_schema.clone(),
                columns,
            )?);
        }
        Ok(out)
    }

    /// Drops the rows no row still to come can match; an outer side's rows that never
    /// matched are emitted with NULLs.
    fn expire(&mut self, watermark: i64) -> Result<()> {
        // A regular join holds its rows forever, or for state_ttl past the watermark.
        let ttl = match (self.plan.regular, self.role.state_ttl_ns) {
            (false, _) => None,
            (true, Some(ttl)) if self.plan.timed => Some(ttl),
            (true, _) => return Ok(()),
        };
        for side in 0..2 {
            // Left: held while l + upper >= watermark; right: while r - lower >= watermark.
            let offset = match (side, ttl) {
                (_, Some(ttl)) => ttl,
                (0, None) => self.plan.upper_ns,
                _ => -self.plan.lower_ns,
            };
            let mut kept = Vec::with_capacity(self.held[side].len());
            for batch in std::mem::take(&mut self.held[side]) {
                let keep: BooleanArray = self
                    .times(side, &batch)?
                    .into_iter()
                    .map(|t| Some(t.is_some_and(|t| t.saturating_add(offset) >= watermark)))
                    .collect();
                if keep.true_count() == batch.num_rows() {
                    kept.push(batch);
                    continue;
                }
                if self.outer(side) {
                    self.emit_unmatched(side, &batch, &keep)?;
                } else if side == 0 && self.plan.join_type == JoinType::LeftSemi {
                    let numbers = batch
                        .column(batch.num_columns() - 1)
                        .as_primitive::<UInt64Type>();
                    for i in (0..batch.num_rows()).filter(|&i| !keep.value(i)) {
                        self.matched[0].remove(&numbers.value(i));
                    }
                }
                if keep.true_count() > 0 {
                    kept.push(filter_record_batch(&batch, &keep)?);
                }
            }
            self.held[side] = kept;
        }
        Ok(())
    }

    /// The rows of `batch` (held on `side`) that `keep` drops and that never matched,
    /// with NULLs for the other side.
    fn emit_unmatched(
        &mut self,
        side: usize,
        batch: &RecordBatch,
        keep: &BooleanArray,
    ) -> Result<()> {
        let width = batch.num_columns() - 1;
        let numbers = batch.column(width).as_primitive::<UInt64Type>().clone();
        let mut lonely = Vec::new();
        for i in 0..batch.num_rows() {
            if keep.value(i) {
                continue;
            }
            if !self.matched[side].remove(&numbers.value(i)) {
                lonely.push(i as u32);
            }
        }
        if lonely.is_empty() {
            return Ok(());
        }
        let rows = take_record_batch(batch, &UInt32Array::from(lonely))?;
        let fields = self.plan.output_schema.fields();
        let left_width = self.plan.left_schema.fields().len();
        let columns: Vec<ArrayRef> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| match (side, i < left_width) {
                (0, true) => rows.column(i).clone(),
                (1, false) => rows.column(i - left_width).clone(),
                _ => new_null_array(f.data_type(), rows.num_rows()),
            })
            .collect();
        self.out.push(RecordBatch::try_new(
            self.plan.output_schema.clone(),
            columns,
        )?);
        Ok(())
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
            .map(|t| {
                // A regular join has no late rows (nor need its rows have a time).
                Some(self.plan.regular || t.is_some_and(|t| self.watermark.is_none_or(|w| t >= w)))
            })
            .collect();
        let late: Vec<u32> = (0..batch.num_rows() as u32)
            .filter(|&i| !on_time.value(i as usize) && times[i as usize].is_some())
            .collect();
        self.late_rows += late.len() as u64;
        self.late.add_late(&rows.source, &late)?;
        let batch = match on_time.true_count() {
            0 => return Ok(()),
            n if n == batch.num_rows() => batch,
            _ => filter_record_batch(&batch, &on_time)?,
        };
        // Numbered, as held.
        let first = self.next_row;
        self.next_row += batch.num_rows() as u64;
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(UInt64Array::from_iter_values(
            first..self.next_row,
        )));
        let batch = RecordBatch::try_new(self.held_schema[side].clone(), columns)?;
        let other = self.held[1 - side].clone();
        if !other.is_empty() && !self.window {
            let joined = match side {
                0 => self.join(vec![batch.clone()], other).await?,
                _ => self.join(other, vec![batch.clone()]).await?,
            };
            self.out.extend(joined);
        }
        self.held[side].push(batch);
        Ok(())
    }

    fn advance(&mut self, watermark: i64) {
        self.watermark = Some(watermark);
        if self.window {
            self.due = true;
            return;
        }
        if let Err(e) = self.expire(watermark) {
            tracing::warn!("interval join: could not drop expired rows: {e}");
        }
    }

    async fn flush(&mut self) -> Result<Output> {
        if std::mem::take(&mut self.due)
            && let Some(watermark) = self.watermark
        {
            self.close_windows(watermark).await?;
        }
        let mut output = std::mem::take(&mut self.late);
        let rows = std::mem::take(&mut self.out);
        self.rows_out += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        output.rows = self.kept.hand_out(self.role.view, rows);
        Ok(output)
    }

    fn snapshot(&mut self, epoch: u64) -> Result<OperatorState> {
        Ok(OperatorState {
            state: join_rows::tagged(&self.held, |side, batch| {
                let numbers = batch
                    .column(batch.num_columns() - 1)
                    .as_primitive::<UInt64Type>();
                let matched: BooleanArray = numbers
                    .values()
                    .iter()
                    .map(|n| Some(self.matched[side].contains(n)))
                    .collect();
                vec![(
                    Field::new(MATCHED, DataType::Boolean, false),
                    Arc::new(matched) as ArrayRef,
                )]
            })?,
            closed: self.kept.snapshot(&self.role, epoch),
            watermark: self.watermark,
            rows_in: self.rows_in,
        })
    }

    async fn restore(&mut self, state: OperatorState) -> Result<()> {
        for batch in state.state {
            let (side, rows, tags) =
                join_rows::untagged(batch, 1, &self.held_schema, "interval join")?;
            let matched = tags[0].as_boolean().clone();
            let numbers = rows
                .column(rows.num_columns() - 1)
                .as_primitive::<UInt64Type>();
            for (i, n) in numbers.values().iter().enumerate() {
                self.next_row = self.next_row.max(n + 1);
                if matched.value(i) {
                    self.matched[side].insert(*n);
                }
            }
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
        join_rows::figures(
            &self.held,
            &self.kept,
            [self.rows_in, self.rows_out, self.late_rows],
            self.watermark,
        )
    }
}
