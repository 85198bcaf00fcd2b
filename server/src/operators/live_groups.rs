//! Live aggregate state: the groups of a continuous aggregate kept in DataFusion's own
//! hash-aggregation parts ([`GroupValues`] to find a row's group, one
//! [`GroupsAccumulator`] per aggregate) from one step to the next, one table per window.
//!
//! Each step feeds only its new rows: a row finds (or adds) its group and updates the
//! accumulators in place, so a step costs what its rows cost, whatever the number of
//! groups already held. When the watermark passes a window's end, its table is taken
//! whole and handed on as partial-state rows (the layout of DataFusion's partial
//! aggregate: group columns, then each aggregate's state columns), which the operator
//! finishes with `AggregateMode::Final`. Checkpoints and views read the same layout:
//! [`LiveGroups::state_batches`] drains every table and merges the rows straight back.
//!
//! Used when every aggregate has a `GroupsAccumulator` and there are group keys and no
//! grouping sets, for tumbling and hopping windows and unwindowed aggregates. Session
//! windows (which merge groups) and `EMIT CHANGES` (which needs a group's previous
//! result) keep the operator's batch-merging path.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use datafusion::physical_plan::aggregates::{AggregateMode, aggregate_expressions};

use crate::planner::AggregatePlan;
use crate::planner::session_bounds::nanos;

/// The window key of an unwindowed aggregate's one table, and of rows without a
/// window end (they never close).
const NEVER: i64 = i64::MAX;

/// One window's groups.
struct Table {
    groups: Box<dyn GroupValues>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// Reused between steps: the group of each row.
    ids: Vec<usize>,
}

/// The open groups of a continuous aggregate, by window end.
pub struct LiveGroups {
    agg: AggregatePlan,
    /// Layout of the partial-state rows (the partial aggregate's output schema).
    state_schema: SchemaRef,
    group_schema: SchemaRef,
    /// Per aggregate: its argument expressions over the input.
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Per aggregate: its state columns' expressions over a partial-state row.
    merge_arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    tables: BTreeMap<i64, Table>,
}

impl LiveGroups {
    /// `None` when this aggregate needs the batch-merging path (see the module docs).
    pub fn try_new(agg: &AggregatePlan, state_schema: SchemaRef) -> Result<Option<Self>> {
        let eligible = !agg.group_by.expr().is_empty()
            && !agg.group_by.has_grouping_set()
            && agg.window.as_ref().is_none_or(|w| w.session.is_none())
            && agg
                .aggr_expr
                .iter()
                .all(|a| a.groups_accumulator_supported());
        if !eligible {
            return Ok(None);
        }
        let groups = agg.group_by.expr().len();
        Ok(Some(LiveGroups {
            group_schema: agg.group_by.group_schema(&agg.input_schema)?,
            arguments: aggregate_expressions(&agg.aggr_expr, &AggregateMode::Partial, 0)?,
            merge_arguments: aggregate_expressions(
                &agg.aggr_expr,
                &AggregateMode::PartialReduce,
                groups,
            )?,
            agg: agg.clone(),
            state_schema,
            tables: BTreeMap::new(),
        }))
    }

    fn new_table(&self) -> Result<Table> {
        Ok(Table {
            groups: new_group_values(self.group_schema.clone(), &GroupOrdering::None)?,
            accumulators: self
                .agg
                .aggr_expr
                .iter()
                .map(|a| a.create_groups_accumulator())
                .collect::<Result<_>>()?,
            ids: Vec::new(),
        })
    }

    /// The table of the window ending at `end`, made when it is new.
    fn table(&mut self, end: i64) -> Result<&mut Table> {
        if !self.tables.contains_key(&end) {
            let table = self.new_table()?;
            self.tables.insert(end, table);
        }
        Ok(self.tables.get_mut(&end).expect("inserted above"))
    }

    /// The window end (ns) of each row, from its group columns.
    fn window_ends(&self, group_columns: &[ArrayRef]) -> Result<Option<Vec<i64>>> {
        let Some(window) = &self.agg.window else {
            return Ok(None);
        };
        let ends = nanos(group_columns[window.group_index].as_ref())?;
        Ok(Some(
            ends.into_iter()
                .map(|e| e.map_or(NEVER, |e| e + window.end_offset_ns))
                .collect(),
        ))
    }

    /// Row indices by window; `None` when every row is in one window (no copy needed).
    fn by_window(ends: Option<&[i64]>) -> (i64, Option<BTreeMap<i64, Vec<u32>>>) {
        let Some(ends) = ends.filter(|e| !e.is_empty()) else {
            return (NEVER, None);
        };
        let first = ends[0];
        if ends.iter().all(|&e| e == first) {
            return (first, None);
        }
        let mut rows = BTreeMap::<i64, Vec<u32>>::new();
        for (row, &end) in ends.iter().enumerate() {
            rows.entry(end).or_default().push(row as u32);
        }
        (first, Some(rows))
    }

    /// Runs `apply` on each window's share of `columns` (the rows of one batch).
    fn for_each_window(
        &mut self,
        group_columns: Vec<ArrayRef>,
        values: Vec<Vec<ArrayRef>>,
        filters: Vec<Option<BooleanArray>>,
        apply: impl Fn(&mut Table, &[ArrayRef], &[Vec<ArrayRef>], &[Option<BooleanArray>]) -> Result<()>,
    ) -> Result<()> {
        let ends = self.window_ends(&group_columns)?;
        let (only, split) = Self::by_window(ends.as_deref());
        let Some(split) = split else {
            let table = self.table(only)?;
            return apply(table, &group_columns, &values, &filters);
        };
        for (end, rows) in split {
            let rows = UInt32Array::from(rows);
            let pick = |a: &ArrayRef| take(a.as_ref(), &rows, None);
            let groups: Vec<ArrayRef> = group_columns.iter().map(pick).collect::<Result<_, _>>()?;
            let values: Vec<Vec<ArrayRef>> = values
                .iter()
                .map(|v| v.iter().map(pick).collect::<Result<_, _>>())
                .collect::<Result<_, _>>()?;
            let filters: Vec<Option<BooleanArray>> = filters
                .iter()
                .map(|f| {
                    f.as_ref()
                        .map(|f| take(f, &rows, None).map(|a| a.as_boolean().clone()))
                        .transpose()
                })
                .collect::<Result<_, _>>()?;
            apply(self.table(end)?, &groups, &values, &filters)?;
        }
        Ok(())
    }

    /// Adds input rows (the aggregate's input schema) to their groups.
    pub fn update(&mut self, input: &RecordBatch) -> Result<()> {
        if input.num_rows() == 0 {
            return Ok(());
        }
        let rows = input.num_rows();
        let evaluate = |e: &Arc<dyn PhysicalExpr>| e.evaluate(input)?.into_array(rows);
        let group_columns = self
            .agg
            .group_by
            .input_exprs()
            .iter()
            .map(evaluate)
            .collect::<Result<Vec<_>>>()?;
        let values = self
            .arguments
            .iter()
            .map(|args| args.iter().map(evaluate).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let filters = self
            .agg
            .filter_expr
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|f| evaluate(f).map(|a| a.as_boolean().clone()))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        self.for_each_window(
            group_columns,
            values,
            filters,
            |table, groups, values, filters| {
                table.groups.intern(groups, &mut table.ids)?;
                let total = table.groups.len();
                for ((acc, values), filter) in
                    table.accumulators.iter_mut().zip(values).zip(filters)
                {
                    acc.update_batch(values, &table.ids, filter.as_ref(), total)?;
                }
                Ok(())
            },
        )
    }

    /// Merges partial-state rows (a checkpoint's, or drained ones) into their groups.
    pub fn merge(&mut self, state: &RecordBatch) -> Result<()> {
        if state.num_rows() == 0 {
            return Ok(());
        }
        let groups = self.agg.group_by.expr().len();
        let group_columns = state.columns()[..groups].to_vec();
        let values = self
            .merge_arguments
            .iter()
            .map(|args| {
                args.iter()
                    .map(|e| e.evaluate(state)?.into_array(state.num_rows()))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let filters = vec![None; values.len()];
        self.for_each_window(
            group_columns,
            values,
            filters,
            |table, groups, values, _| {
                table.groups.intern(groups, &mut table.ids)?;
                let total = table.groups.len();
                for (acc, values) in table.accumulators.iter_mut().zip(values) {
                    acc.merge_batch(values, &table.ids, total)?;
                }
                Ok(())
            },
        )
    }

    /// A table's groups as partial-state rows; leaves the table empty.
    fn drain(&self, table: &mut Table) -> Result<RecordBatch> {
        let mut columns = table.groups.emit(EmitTo::All)?;
        for acc in &mut table.accumulators {
            columns.extend(acc.state(EmitTo::All)?);
        }
        Ok(RecordBatch::try_new(self.state_schema.clone(), columns)?)
    }

    /// Removes the windows whose end the watermark reached; their partial-state rows.
    pub fn take_closed(&mut self, watermark: i64) -> Result<Vec<RecordBatch>> {
        let open = self.tables.split_off(&watermark.saturating_add(1));
        let closed = std::mem::replace(&mut self.tables, open);
        closed
            .into_values()
            .map(|mut table| self.drain(&mut table))
            .collect()
    }

    /// Every open group as partial-state rows; the groups stay (for checkpoints and
    /// views: O(groups), once per checkpoint).
    pub fn state_batches(&mut self) -> Result<Vec<RecordBatch>> {
        let tables = std::mem::take(&mut self.tables);
        let mut batches = Vec::with_capacity(tables.len());
        for mut table in tables.into_values() {
            batches.push(self.drain(&mut table)?);
        }
        for batch in &batches {
            self.merge(batch)?;
        }
        Ok(batches)
    }

    /// Open groups.
    pub fn len(&self) -> usize {
        self.tables.values().map(|t| t.groups.len()).sum()
    }

    /// Bytes the tables hold (DataFusion's own accounting of its hash tables and
    /// accumulators).
    pub fn bytes(&self) -> u64 {
        self.tables
            .values()
            .map(|t| {
                t.groups.size()
                    + t.ids.capacity() * size_of::<usize>()
                    + t.accumulators.iter().map(|a| a.size()).sum::<usize>()
            })
            .sum::<usize>() as u64
    }

    /// Open windows (window end, groups), earliest first; unwindowed: none.
    pub fn windows(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        let windowed = self.agg.window.is_some();
        self.tables
            .iter()
            .filter(move |_| windowed)
            .map(|(end, t)| (*end, t.groups.len() as u64))
    }
}
