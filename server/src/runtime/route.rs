//! Routes: the stateless steps of an edge and the hash exchange that splits their
//! output over the instances of the node the edge goes to.

use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{take, take_record_batch};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::physical_expr::PhysicalExpr;

use super::{Result, Route};
use crate::operators::Input;
use std::sync::Arc;

/// The hash exchange: which of `parts` instances each row goes to, by a hash of `keys`
/// evaluated on the batch (every group lives in exactly one instance).
fn exchange(
    keys: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
    parts: usize,
) -> Result<Vec<UInt32Array>> {
    let keys = keys
        .iter()
        .map(|e| {
            e.evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
        })
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    let mut hashes = vec![0u64; batch.num_rows()];
    create_hashes(&keys, &RandomState::with_seed(0x4558_4348), &mut hashes)?;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); parts];
    for (row, hash) in hashes.iter().enumerate() {
        rows[((*hash as u128 * parts as u128) >> 64) as usize].push(row as u32);
    }
    Ok(rows.into_iter().map(UInt32Array::from).collect())
}

impl Route {
    /// Runs the route's steps on `batch` and splits the result over its targets:
    /// per target, the rows it gets (`None`: none).
    pub(super) fn route(
        &self,
        batch: RecordBatch,
        source: Option<&RecordBatch>,
    ) -> Result<Vec<Option<Input>>> {
        let batch = match &self.projection {
            Some(projection) => batch.project(projection)?,
            None => batch,
        };
        let tracked = crate::operators::stateless::run_tracking(&self.steps, batch)?;
        if tracked.batch.num_rows() == 0 {
            return Ok((0..self.targets.len()).map(|_| None).collect());
        }
        let input = Input {
            batch: tracked.batch,
            primary: tracked.primary,
            source: source.map(|s| (s.clone(), tracked.origin)),
        };
        let Some(keys) = &self.keys else {
            let mut parts: Vec<Option<Input>> = (0..self.targets.len()).map(|_| None).collect();
            parts[0] = Some(input);
            return Ok(parts);
        };
        exchange(keys, &input.batch, self.targets.len())?
            .into_iter()
            .map(|indices| {
                if indices.is_empty() {
                    return Ok(None);
                }
                let primary = match &input.primary {
                    Some(p) => Some(take(p, &indices, None)?.as_boolean().clone()),
                    None => None,
                };
                let source = match &input.source {
                    Some((rows, origin)) => Some((
                        rows.clone(),
                        take(origin, &indices, None)?
                            .as_primitive::<datafusion::arrow::datatypes::UInt32Type>()
                            .clone(),
                    )),
                    None => None,
                };
                Ok(Some(Input {
                    batch: take_record_batch(&input.batch, &indices)?,
                    primary,
                    source,
                }))
            })
            .collect()
    }
}
