//! The streaming planner: turns the optimized DataFusion `LogicalPlan` of a continuous
//! query's SELECT into a [`ContinuousPlan`] the runtime runs batch by batch. Expressions
//! stay DataFusion's (`PhysicalExpr`s evaluated on each batch). Knows nothing about
//! sockets or files.
//!
//! Shape supported: one stream, stateless steps (filters, projections, window
//! assignment), then optionally one aggregate (windowed by `window_end` or a
//! `date_bin` group key, or unwindowed in views), then stateless steps on its output.
//! Joins, ORDER BY and LIMIT are refused with an error that says why and what to do.

mod aggregate;
mod hop;
mod session;
mod tumble;

pub use aggregate::{AggregatePlan, WindowClose};
pub use hop::HopFunction;
pub use session::{SessionFunction, SessionTable, SessionWindow};

/// Session bounds helpers shared with the runtime.
pub mod session_bounds {
    pub use super::session::{merge_intervals, nanos, timestamps};
}
pub use tumble::TumbleFunction;

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::array::{BooleanArray, UInt32Array};
use datafusion::arrow::compute::{concat_batches, filter, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::UInt32Type;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::PhysicalExpr;

use crate::stream::Stream;

/// One stateless step, applied to every batch in order.
pub enum Step {
    /// Keep the rows where the predicate is true.
    Filter(Arc<dyn PhysicalExpr>),
    /// Compute new columns; the output has `schema`.
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    },
    /// Run each branch on the batch and concatenate (HOP: one branch per window an
    /// event belongs to, the branch of its latest window first).
    Union {
        branches: Vec<Vec<Step>>,
        schema: SchemaRef,
    },
}

/// A continuous query's plan: read `source`, keep the scan's columns, run the steps,
/// then the aggregate (if any) and the steps above it.
pub struct ContinuousPlan {
    pub source: Arc<Stream>,
    /// Columns of the source's table schema (user and metadata columns) the scan keeps.
    pub scan_projection: Vec<usize>,
    /// Stateless steps between the source and the aggregate (or the output).
    pub steps: Vec<Step>,
    pub aggregate: Option<AggregatePlan>,
    /// Stateless steps on the aggregate's output (HAVING, final projection).
    pub post_steps: Vec<Step>,
    pub output_schema: SchemaRef,
    /// The operators, top first, for EXPLAIN and the queries API.
    pub operators: Vec<String>,
}

impl fmt::Debug for ContinuousPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContinuousPlan")
            .field("operators", &self.operators)
            .finish()
    }
}

impl ContinuousPlan {
    /// Runs the steps over one batch of the source (table schema: user then metadata columns).
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        Ok(self.apply_tracking(batch)?.batch)
    }

    /// Like [`Self::apply`], and also tells where each output row came from (see
    /// [`Tracked`]).
    pub fn apply_tracking(&self, batch: &RecordBatch) -> Result<Tracked> {
        let origin = UInt32Array::from_iter_values(0..batch.num_rows() as u32);
        run_steps_tracking(&self.steps, batch.project(&self.scan_projection)?, origin)
    }

    /// Runs the steps above the aggregate over its finalized output.
    pub fn apply_post(&self, batch: RecordBatch) -> Result<RecordBatch> {
        run_steps(&self.post_steps, batch)
    }
}

/// A batch after the stateless steps, with where its rows came from.
pub struct Tracked {
    pub batch: RecordBatch,
    /// Which rows stand for their event when one event gives several rows (after a
    /// [`Step::Union`]: the rows of its first branch, for HOP the event's latest window);
    /// `None`: every row is its own event. Lateness is counted on these rows.
    pub primary: Option<BooleanArray>,
    /// For each row, the index of the source row it came from (late events are routed
    /// as their source rows).
    pub origin: UInt32Array,
}

fn run_steps(steps: &[Step], batch: RecordBatch) -> Result<RecordBatch> {
    let origin = UInt32Array::from_iter_values(0..batch.num_rows() as u32);
    Ok(run_steps_tracking(steps, batch, origin)?.batch)
}

fn run_steps_tracking(
    steps: &[Step],
    mut batch: RecordBatch,
    mut origin: UInt32Array,
) -> Result<Tracked> {
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
                    &datafusion::arrow::array::RecordBatchOptions::new()
                        .with_row_count(Some(batch.num_rows())),
                )?
            }
            Step::Union { branches, schema } => {
                let outputs = branches
                    .iter()
                    .map(|branch| run_steps_tracking(branch, batch.clone(), origin.clone()))
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

/// Why a query cannot run continuously, worded for the user.
fn refuse(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(message.into())
}

/// Plans `plan` (an optimized logical plan) as a continuous query over the streams that
/// `stream_of` resolves.
pub fn plan_continuous(
    state: &SessionState,
    plan: &LogicalPlan,
    stream_of: &dyn Fn(&str) -> Option<Arc<Stream>>,
) -> Result<ContinuousPlan> {
    let mut steps = Vec::new();
    let mut post_steps = Vec::new();
    let mut aggregate = None;
    let mut operators = Vec::new();
    let mut node = plan;
    let mut session: Option<(Vec<String>, i64)> = None;
    let (source, scan_projection) = loop {
        match node {
            LogicalPlan::Projection(p) => {
                let exprs = p
                    .expr
                    .iter()
                    .map(|e| state.create_physical_expr(e.clone(), p.input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                let names: Vec<String> =
                    p.schema.fields().iter().map(|f| f.name().clone()).collect();
                operators.push(format!("Project: {}", names.join(", ")));
                steps.push(Step::Project {
                    exprs,
                    schema: Arc::new(p.schema.as_arrow().clone()),
                });
                node = &p.input;
            }
            LogicalPlan::Filter(f) => {
                operators.push(format!("Filter: {}", f.predicate));
                steps.push(Step::Filter(
                    state.create_physical_expr(f.predicate.clone(), f.input.schema())?,
                ));
                node = &f.input;
            }
            LogicalPlan::SubqueryAlias(a) => node = &a.input,
            LogicalPlan::Union(union) => {
                // Every branch is stateless over the same scan of the same stream.
                let mut branches = Vec::new();
                let mut scan: Option<(Arc<Stream>, Vec<usize>, String)> = None;
                for input in &union.inputs {
                    let branch = plan_continuous(state, input, stream_of)?;
                    if branch.aggregate.is_some() {
                        return Err(refuse(
                            "UNION ALL of aggregates cannot run continuously yet",
                        ));
                    }
                    let source_line = branch.operators.last().cloned().unwrap_or_default();
                    match &scan {
                        None => {
                            scan = Some((
                                branch.source.clone(),
                                branch.scan_projection.clone(),
                                source_line,
                            ))
                        }
                        Some((source, projection, _)) => {
                            if !Arc::ptr_eq(source, &branch.source)
                                || projection != &branch.scan_projection
                            {
                                return Err(refuse(
                                    "UNION ALL in a continuous query must read the same columns of one stream in every branch",
                                ));
                            }
                        }
                    }
                    branches.push(branch.steps);
                }
                let Some((source, scan_projection, source_line)) = scan else {
                    return Err(refuse("an empty UNION cannot run continuously"));
                };
                operators.push(format!(
                    "Union: {} branches (one row per window of each event)",
                    branches.len()
                ));
                operators.push(source_line);
                steps.push(Step::Union {
                    branches,
                    schema: Arc::new(union.schema.as_arrow().clone()),
                });
                break (source, scan_projection);
            }
            LogicalPlan::TableScan(scan)
                if datafusion::datasource::source_as_provider(&scan.source)
                    .is_ok_and(|p| p.is::<SessionTable>()) =>
            {
                let provider = datafusion::datasource::source_as_provider(&scan.source)?;
                let table = provider.downcast_ref::<SessionTable>().expect("checked");
                let stream = table.stream.clone();
                let user = datafusion::common::DFSchema::try_from(stream.schema.as_ref().clone())?;
                let full = datafusion::catalog::TableProvider::schema(table);
                // The scan's projection of the session table's columns, applied last.
                if let Some(projection) = &scan.projection {
                    steps.push(Step::Project {
                        exprs: projection
                            .iter()
                            .map(|&i| {
                                Arc::new(datafusion::physical_expr::expressions::Column::new(
                                    full.field(i).name(),
                                    i,
                                )) as Arc<dyn PhysicalExpr>
                            })
                            .collect(),
                        schema: Arc::new(full.project(projection)?),
                    });
                }
                // Each event starts as its own session [ts, ts + gap); the operator merges.
                let mut exprs = Vec::new();
                for field in stream.schema.fields() {
                    exprs.push(state.create_physical_expr(
                        datafusion::logical_expr::col(field.name().as_str()),
                        &user,
                    )?);
                }
                let time = datafusion::logical_expr::col(table.time.as_str());
                exprs.push(state.create_physical_expr(time.clone(), &user)?);
                exprs.push(state.create_physical_expr(
                    time + datafusion::logical_expr::lit(table.gap.clone()),
                    &user,
                )?);
                steps.push(Step::Project {
                    exprs,
                    schema: full,
                });
                operators.push(format!(
                    "Session: gap {} on {}, per [{}] (each event starts a session; sessions of a key that touch merge)",
                    table.gap,
                    table.time,
                    table.keys.join(", ")
                ));
                operators.push(format!(
                    "Source: {} ({} partition{})",
                    stream.name(),
                    stream.partitions().len(),
                    if stream.partitions().len() == 1 {
                        ""
                    } else {
                        "s"
                    }
                ));
                session = Some((table.keys.clone(), table.gap_ns));
                break (stream.clone(), (0..stream.schema.fields().len()).collect());
            }
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table();
                let source = stream_of(name).ok_or_else(|| {
                    refuse(format!(
                        "{name} is not a stream; continuous queries read streams"
                    ))
                })?;
                let scan_projection = scan
                    .projection
                    .clone()
                    .unwrap_or_else(|| (0..source.table_schema.fields().len()).collect());
                let columns: Vec<String> = scan
                    .projected_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                operators.push(format!(
                    "Source: {name} ({} partition{}), reads {}",
                    source.partitions().len(),
                    if source.partitions().len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    columns.join(", ")
                ));
                break (source, scan_projection);
            }
            LogicalPlan::Aggregate(agg) if aggregate.is_none() => {
                let planned = aggregate::plan_aggregate(state, agg)?;
                operators.push(planned.describe());
                aggregate = Some(planned);
                // The steps seen so far (top first) run on the aggregate's output.
                steps.reverse();
                post_steps = std::mem::take(&mut steps);
                node = &agg.input;
            }
            LogicalPlan::Aggregate(_) => {
                return Err(refuse(
                    "only one level of aggregation runs continuously so far; aggregate once",
                ));
            }
            LogicalPlan::Sort(_) => {
                return Err(refuse(
                    "ORDER BY over an unbounded input cannot run continuously: it would wait forever \
                     for the last row; remove it and sort when you read the result",
                ));
            }
            LogicalPlan::Limit(_) => {
                return Err(refuse(
                    "LIMIT cannot run continuously over an unbounded input; remove it",
                ));
            }
            LogicalPlan::Join(_) => {
                return Err(refuse(
                    "joins in continuous queries are not available in this build yet",
                ));
            }
            other => {
                return Err(refuse(format!(
                    "{} cannot run continuously yet; continuous queries support filters and projections over one stream",
                    other.display()
                )));
            }
        }
    };
    steps.reverse();
    if let Some((keys, gap_ns)) = session {
        let window = aggregate
            .as_mut()
            .and_then(|a| a.window.as_mut().map(|w| (w, &a.group_names)));
        let Some((window, groups)) = window else {
            return Err(refuse(
                "SESSION windows run continuously as an aggregate: GROUP BY window_start, window_end (and the session's keys)",
            ));
        };
        let position = |name: &str| groups.iter().position(|g| g == name);
        let (Some(start_index), Some(end_index)) =
            (position("window_start"), position("window_end"))
        else {
            return Err(refuse(
                "group a SESSION by both window_start and window_end: a session's start and end \
                 both move as events join it, so neither can be derived from the other",
            ));
        };
        let key_indices = keys
            .iter()
            .map(|k| {
                position(k).ok_or_else(|| {
                    refuse(format!(
                        "sessions are kept per {k}, so group by {k} as well"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        window.session = Some(SessionWindow {
            start_index,
            end_index,
            key_indices,
            gap_ns,
        });
    }
    Ok(ContinuousPlan {
        source,
        scan_projection,
        steps,
        aggregate,
        post_steps,
        output_schema: Arc::new(plan.schema().as_arrow().clone()),
        operators,
    })
}
