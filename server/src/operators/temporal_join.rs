//! Temporal join: each row of the left input (port 0, the orders) joins the version of
//! its key valid at its time — the latest row of the right input (port 1, the
//! versioned stream) with that key at or before it; INNER or LEFT (NULLs when no
//! version exists).
//!
//! An order waits until the watermark (the minimum of both inputs') passes its time, so
//! every version that could be valid at it has arrived (a version later than that is
//! late and dropped, as is a late order). Then DataFusion's join (the plan's hash join
//! with the ON clause and `r.ts <= o.ts`) pairs the due orders with the versions held,
//! and the operator keeps, per order, the pair with the latest version. Versions older
//! than the watermark are dropped except the latest of each key, which orders still to
//! come may need: the state is the waiting orders, one version per key, and the
//! versions newer than the watermark. The output is append-only.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array, UInt64Array, new_null_array,
};
use datafusion::arrow::compute::{filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{SchemaRef, UInt64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::JoinType;
use datafusion::physical_expr::PhysicalExpr;

use super::join_rows::{self, numbered_schema, run_numbered};
use super::{Figures, Input, KeptRows, Operator, OperatorState, Output, Role};
use crate::planner::join::ROW_COLUMNS;
use crate::planner::session_bounds::nanos;
use crate::planner::temporal::TemporalJoinPlan;

pub struct TemporalJoin {
    plan: TemporalJoinPlan,
    role: Role,
    /// Each side's input schema with the row number appended.
    held_schema: [SchemaRef; 2],
    watermark: Option<i64>,
    /// The watermark moved since the last emission.
    due: bool,
    /// Orders waiting for the watermark, and the versions held (numbered).
    held: [Vec<RecordBatch>; 2],
    keys: RowConverter,
    next_row: u64,
    out: Vec<RecordBatch>,
    late: Output,
    kept: KeptRows,
    task: Arc<TaskContext>,
    rows_in: u64,
    rows_out: u64,
    late_rows: u64,
}

fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef> {
    expr.evaluate(batch)?.into_array(batch.num_rows())
}

impl TemporalJoin {
    pub fn new(plan: TemporalJoinPlan, role: Role) -> Result<Self> {
        let held_schema = [
            numbered_schema(&plan.left_schema, ROW_COLUMNS[0]),
            numbered_schema(&plan.right_schema, ROW_COLUMNS[1]),
        ];
        let key_types = plan
            .right_keys
            .iter()
            .map(|k| Ok(SortField::new(k.data_type(&plan.right_schema)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(TemporalJoin {
            keys: RowConverter::new(key_types)?,
            plan,
            role,
            held_schema,
            watermark: None,
            due: false,
            held: [Vec::new(), Vec::new()],
            next_row: 0,
            out: Vec::new(),
            late: Output::default(),
            kept: KeptRows::default(),
            task: Arc::new(TaskContext::default()),
            rows_in: 0,
            rows_out: 0,
            late_rows: 0,
        })
    }

    fn times(&self, side: usize, batch: &RecordBatch) -> Result<Vec<Option<i64>>> {
        let time = match side {
            0 => &self.plan.left_time,
            _ => &self.plan.right_time,
        };
        nanos(evaluate(time, batch)?.as_ref())
    }

    /// Emits the orders the watermark has passed, each with its version.
    async fn emit(&mut self, watermark: i64) -> Result<()> {
        let mut due = Vec::new();
        let mut waiting = Vec::new();
        for batch in std::mem::take(&mut self.held[0]) {
            // An order without a time has no version; it is due at once.
            let is_due: BooleanArray = self
                .times(0, &batch)?
                .into_iter()
                .map(|t| Some(t.is_none_or(|t| t < watermark)))
                .collect();
            match is_due.true_count() {
                0 => waiting.push(batch),
                n if n == batch.num_rows() => due.push(batch),
                _ => {
                    due.push(filter_record_batch(&batch, &is_due)?);
                    let not = datafusion::arrow::compute::not(&is_due)?;
                    waiting.push(filter_record_batch(&batch, &not)?);
                }
            }
        }
        self.held[0] = waiting;
        if !due.is_empty() {
            self.match_versions(due).await?;
        }
        self.drop_old_versions(watermark)
    }

    /// Joins due orders with the versions held, keeping the latest version per order.
    async fn match_versions(&mut self, due: Vec<RecordBatch>) -> Result<()> {
        let joined = match self.held[1].is_empty() {
            true => Vec::new(),
            false => {
                run_numbered(
                    &self.plan.exec,
                    &self.task,
                    &self.held_schema,
                    due.clone(),
                    self.held[1].clone(),
                )
                .await?
            }
        };
        let left_width = self.held_schema[0].fields().len();
        // Per order (row number): (version time, version row number, batch, row).
        let mut best: HashMap<u64, (i64, u64, usize, usize)> = HashMap::new();
        for (b, batch) in joined.iter().enumerate() {
            let right = RecordBatch::try_new(
                self.held_schema[1].clone(),
                batch.columns()[left_width..].to_vec(),
            )?;
            let times = self.times(1, &right)?;
            let orders = batch.column(left_width - 1).as_primitive::<UInt64Type>();
            let versions = batch
                .column(batch.num_columns() - 1)
                .as_primitive::<UInt64Type>();
            for (i, t) in times.into_iter().enumerate() {
                let Some(t) = t else { continue };
                let candidate = (t, versions.value(i), b, i);
                best.entry(orders.value(i))
                    .and_modify(|held| {
                        if (t, candidate.1) > (held.0, held.1) {
                            *held = candidate;
                        }
                    })
                    .or_insert(candidate);
            }
        }
        let row_columns = [
            left_width - 1,
            self.held_schema[1].fields().len() + left_width - 1,
        ];
        for (b, batch) in joined.iter().enumerate() {
            let chosen: Vec<u32> = best
                .values()
                .filter(|(_, _, at, _)| *at == b)
                .map(|(_, _, _, i)| *i as u32)
                .collect();
            if chosen.is_empty() {
                continue;
            }
            let rows = take_record_batch(batch, &UInt32Array::from(chosen))?;
            let columns: Vec<ArrayRef> = (0..rows.num_columns())
                .filter(|i| !row_columns.contains(i))
                .map(|i| rows.column(i).clone())
                .collect();
            self.out.push(RecordBatch::try_new(
                self.plan.output_schema.clone(),
                columns,
            )?);
        }
        if self.plan.join_type == JoinType::Left {
            for batch in &due {
                let numbers = batch.column(left_width - 1).as_primitive::<UInt64Type>();
                let lonely: Vec<u32> = (0..batch.num_rows() as u32)
                    .filter(|&i| !best.contains_key(&numbers.value(i as usize)))
                    .collect();
                if lonely.is_empty() {
                    continue;
                }
                let rows = take_record_batch(batch, &UInt32Array::from(lonely))?;
                let columns: Vec<ArrayRef> = self
                    .plan
                    .output_schema
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| match i < left_width - 1 {
                        true => rows.column(i).clone(),
                        false => new_null_array(f.data_type(), rows.num_rows()),
                    })
                    .collect();
                self.out.push(RecordBatch::try_new(
                    self.plan.output_schema.clone(),
                    columns,
                )?);
            }
        }
        Ok(())
    }

    /// Drops versions older than the watermark except the latest of each key.
    fn drop_old_versions(&mut self, watermark: i64) -> Result<()> {
        let mut latest: HashMap<Vec<u8>, (i64, u64)> = HashMap::new();
        let mut scanned = Vec::with_capacity(self.held[1].len());
        for batch in &self.held[1] {
            let keys = self
                .plan
                .right_keys
                .iter()
                .map(|k| evaluate(k, batch))
                .collect::<Result<Vec<_>>>()?;
            let keys = self.keys.convert_columns(&keys)?;
            let times = self.times(1, batch)?;
            let numbers = batch
                .column(batch.num_columns() - 1)
                .as_primitive::<UInt64Type>()
                .clone();
            for (i, t) in times.iter().enumerate() {
                if let Some(t) = *t
                    && t < watermark
                {
                    let n = numbers.value(i);
                    latest
                        .entry(keys.row(i).as_ref().to_vec())
                        .and_modify(|held| *held = (*held).max((t, n)))
                        .or_insert((t, n));
                }
            }
            scanned.push((keys, times, numbers));
        }
        let mut kept = Vec::with_capacity(self.held[1].len());
        for (batch, (keys, times, numbers)) in
            std::mem::take(&mut self.held[1]).into_iter().zip(scanned)
        {
            let keep: BooleanArray = (0..batch.num_rows())
                .map(|i| {
                    Some(match times[i] {
                        None => false,
                        Some(t) if t >= watermark => true,
                        Some(t) => latest.get(keys.row(i).as_ref()) == Some(&(t, numbers.value(i))),
                    })
                })
                .collect();
            match keep.true_count() {
                0 => {}
                n if n == batch.num_rows() => kept.push(batch),
                _ => kept.push(filter_record_batch(&batch, &keep)?),
            }
        }
        self.held[1] = kept;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Operator for TemporalJoin {
    async fn process(&mut self, input: usize, rows: Input) -> Result<()> {
        let side = input.min(1);
        let batch = rows.batch;
        self.rows_in += batch.num_rows() as u64;
        let times = self.times(side, &batch)?;
        let late: Vec<u32> = (0..batch.num_rows() as u32)
            .filter(|&i| times[i as usize].is_some_and(|t| self.watermark.is_some_and(|w| t < w)))
            .collect();
        self.late_rows += late.len() as u64;
        self.late.add_late(&rows.source, &late)?;
        let batch = match late.len() {
            0 => batch,
            n if n == batch.num_rows() => return Ok(()),
            _ => {
                let on_time: BooleanArray = (0..batch.num_rows())
                    .map(|i| Some(late.binary_search(&(i as u32)).is_err()))
                    .collect();
                filter_record_batch(&batch, &on_time)?
            }
        };
        let first = self.next_row;
        self.next_row += batch.num_rows() as u64;
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(UInt64Array::from_iter_values(
            first..self.next_row,
        )));
        self.held[side].push(RecordBatch::try_new(
            self.held_schema[side].clone(),
            columns,
        )?);
        // Orders without a time go out at the next flush.
        if side == 0 && times.iter().any(|t| t.is_none()) {
            self.due = true;
        }
        Ok(())
    }

    fn advance(&mut self, watermark: i64) {
        self.watermark = Some(watermark);
        self.due = true;
    }

    async fn flush(&mut self) -> Result<Output> {
        if std::mem::take(&mut self.due) {
            self.emit(self.watermark.unwrap_or(i64::MIN)).await?;
        }
        let mut output = std::mem::take(&mut self.late);
        let rows = std::mem::take(&mut self.out);
        self.rows_out += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        output.rows = self.kept.hand_out(self.role.view, rows);
        Ok(output)
    }

    fn snapshot(&mut self, epoch: u64) -> Result<OperatorState> {
        Ok(OperatorState {
            state: join_rows::tagged(&self.held, |_, _| Vec::new())?,
            closed: self.kept.snapshot(&self.role, epoch),
            watermark: self.watermark,
            rows_in: self.rows_in,
        })
    }

    async fn restore(&mut self, state: OperatorState) -> Result<()> {
        for batch in state.state {
            let (side, rows, _) =
                join_rows::untagged(batch, 0, &self.held_schema, "temporal join")?;
            let numbers = rows
                .column(rows.num_columns() - 1)
                .as_primitive::<UInt64Type>();
            if let Some(max) = numbers.values().iter().max() {
                self.next_row = self.next_row.max(max + 1);
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
