//! The rows a join holds, shared by the join operators: each side's rows carry a row
//! number (last column) into DataFusion's join (`planner::join::numbered_exec`), which
//! [`run_numbered`] runs over them; checkpoints store them tagged with their side
//! ([`tagged`], [`untagged`]).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt8Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::{Figures, KeptRows};

/// The column that tags a checkpointed row with its side (0 left, 1 right).
const SIDE: &str = "__join_side";

/// Runs a join planned by `planner::join::numbered_exec` over rows `left` and `right`
/// (each with its row number, in `held_schema`): the plan's empty inputs replaced.
/// The output has the left columns and row number, then the right ones.
pub async fn run_numbered(
    exec: &Arc<dyn ExecutionPlan>,
    task: &Arc<TaskContext>,
    held_schema: &[SchemaRef; 2],
    left: Vec<RecordBatch>,
    right: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    let mut sources: Vec<Arc<dyn ExecutionPlan>> = vec![
        MemorySourceConfig::try_new_exec(&[left], held_schema[0].clone(), None)?,
        MemorySourceConfig::try_new_exec(&[right], held_schema[1].clone(), None)?,
    ];
    // The empty inputs, left first in the plan's tree unless DataFusion swapped the
    // sides: each takes the first source left whose schema it has.
    let exec = exec
        .clone()
        .transform_down(|node| {
            if node.downcast_ref::<EmptyExec>().is_none() {
                return Ok(Transformed::no(node));
            }
            let fits = |s: &Arc<dyn ExecutionPlan>| s.schema().fields() == node.schema().fields();
            Ok(match sources.iter().position(fits) {
                Some(at) => Transformed::yes(sources.remove(at)),
                None => Transformed::no(node),
            })
        })?
        .data;
    if !sources.is_empty() {
        return Err(DataFusionError::Internal(
            "a join's plan has fewer inputs than two".into(),
        ));
    }
    // A hash join keeps its build side across runs unless told to forget it.
    let exec = datafusion::physical_plan::execution_plan::reset_plan_states(exec)?;
    collect(exec, task.clone()).await
}

/// A side's schema with its row number column appended.
pub fn numbered_schema(schema: &SchemaRef, row: &str) -> SchemaRef {
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(row, DataType::UInt64, false)));
    Arc::new(Schema::new(fields))
}

/// The held rows as checkpoint batches: each with its side, then the columns `extra`
/// gives for it.
pub fn tagged(
    held: &[Vec<RecordBatch>; 2],
    extra: impl Fn(usize, &RecordBatch) -> Vec<(Field, ArrayRef)>,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for (side, batches) in held.iter().enumerate() {
        for batch in batches {
            let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
            let mut columns = batch.columns().to_vec();
            fields.push(Arc::new(Field::new(SIDE, DataType::UInt8, false)));
            columns.push(Arc::new(UInt8Array::from(vec![
                side as u8;
                batch.num_rows()
            ])));
            for (field, column) in extra(side, batch) {
                fields.push(Arc::new(field));
                columns.push(column);
            }
            out.push(RecordBatch::try_new(
                Arc::new(Schema::new(fields)),
                columns,
            )?);
        }
    }
    Ok(out)
}

/// A checkpoint batch of [`tagged`] with `extras` extra columns: its side, its rows (in
/// that side's held schema) and the extra columns; an error names `what` if it does not
/// fit this plan.
pub fn untagged(
    batch: RecordBatch,
    extras: usize,
    held_schema: &[SchemaRef; 2],
    what: &str,
) -> Result<(usize, RecordBatch, Vec<ArrayRef>)> {
    let unfit = || {
        DataFusionError::Plan(format!(
            "the checkpointed {what} state does not fit this query's plan"
        ))
    };
    let width = batch.num_columns();
    if width < extras + 2 {
        return Err(unfit());
    }
    let at = width - extras - 1;
    let side = match batch.column(at).as_any().downcast_ref::<UInt8Array>() {
        Some(sides) if !sides.is_empty() => sides.value(0).min(1) as usize,
        _ => return Err(unfit()),
    };
    let rows = batch.project(&(0..at).collect::<Vec<_>>())?;
    if rows.schema().fields() != held_schema[side].fields() {
        return Err(unfit());
    }
    let rows = RecordBatch::try_new(held_schema[side].clone(), rows.columns().to_vec())?;
    Ok((side, rows, batch.columns()[at + 1..].to_vec()))
}

/// A join's figures: `counts` are rows in, rows out and late rows; the state is what it
/// holds and what it keeps for a view.
pub fn figures(
    held: &[Vec<RecordBatch>; 2],
    kept: &KeptRows,
    counts: [u64; 3],
    watermark: Option<i64>,
) -> Figures {
    let held = held.iter().flatten();
    Figures {
        rows_in: counts[0],
        rows_out: counts[1],
        late_rows: counts[2],
        state_rows: held.clone().map(|b| b.num_rows() as u64).sum(),
        state_bytes: super::memory_bytes(held.chain(&kept.batches)),
        watermark,
        ..Figures::default()
    }
}
