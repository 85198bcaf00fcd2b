//! The stateless steps of an edge (filters, projections, HOP's one-branch-per-window
//! expansion), run on each batch where it is produced: by a source's reader, or by the
//! operator whose output the edge carries.

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::{concat_batches, filter, filter_record_batch};
use datafusion::arrow::datatypes::UInt32Type;
use datafusion::common::Result;

use crate::planner::Step;

/// A batch after the stateless steps, with where its rows came from.
pub struct Tracked {
    pub batch: RecordBatch,
    /// Which rows stand for their event when one event gives several rows (after a
    /// [`Step::Union`]: the rows of its first branch, for HOP the event's latest window);
    /// `None`: every row is its own event. Lateness is counted on these rows.
    pub primary: Option<BooleanArray>,
    /// For each row, the index of the input row it came from (late events are routed
    /// as their source rows).
    pub origin: UInt32Array,
}

/// Runs `steps` over `batch`.
pub fn run(steps: &[Step], batch: RecordBatch) -> Result<RecordBatch> {
    if steps.is_empty() {
        return Ok(batch);
    }
    Ok(run_tracking(steps, batch)?.batch)
}

/// Runs `steps` over `batch`, tracking where each output row came from.
pub fn run_tracking(steps: &[Step], batch: RecordBatch) -> Result<Tracked> {
    let origin = UInt32Array::from_iter_values(0..batch.num_rows() as u32);
    run_from(steps, batch, origin)
}

fn run_from(steps: &[Step], mut batch: RecordBatch, mut origin: UInt32Array) -> Result<Tracked> {
    let mut primary: Option<BooleanArray> = None;
    for step in steps {
        batch = match step {
            Step::Filter(predicate) => {
                let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
                let mask = mask.as_boolean();
                if let Some(p) = &primary {
                    primary = Some(filter(p, mask)?.as_boolean().clone());
                }
                origin = filter(&origin, mask)?.as_primitive::<UInt32Type>().clone();
                filter_record_batch(&batch, mask)?
            }
            Step::Project { exprs, schema } => {
                let columns = exprs
                    .iter()
                    .map(|e| {
                        e.evaluate(&batch)
                            .and_then(|v| v.into_array(batch.num_rows()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                RecordBatch::try_new_with_options(
                    schema.clone(),
                    columns,
                    &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                )?
            }
            Step::Union { branches, schema } => {
                let outputs = branches
                    .iter()
                    .map(|branch| run_from(branch, batch.clone(), origin.clone()))
                    .collect::<Result<Vec<_>>>()?;
                let first = outputs.first().map_or(0, |t| t.batch.num_rows());
                let total: usize = outputs.iter().map(|t| t.batch.num_rows()).sum();
                primary = Some((0..total).map(|i| Some(i < first)).collect());
                origin = UInt32Array::from_iter_values(
                    outputs
                        .iter()
                        .flat_map(|t| t.origin.values().iter().copied()),
                );
                let batches = outputs
                    .into_iter()
                    .map(|t| RecordBatch::try_new(schema.clone(), t.batch.columns().to_vec()))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                concat_batches(schema, &batches)?
            }
        };
    }
    Ok(Tracked {
        batch,
        primary,
        origin,
    })
}
