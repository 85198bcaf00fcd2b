//! Planning a continuous aggregate with DataFusion's own aggregate machinery: the
//! aggregate's group keys and `AggregateFunctionExpr`s come from DataFusion's physical
//! planner, so every aggregate DataFusion knows works, and its state is DataFusion's
//! partial-aggregate state (Arrow arrays), finished with `AggregateMode::Final`. The
//! runtime keeps it in DataFusion's hash tables where it can (`runtime::groups`), or
//! as batches merged with `AggregateMode::PartialReduce`.
//!
//! Windows: the aggregate is windowed when a group key is `window_end` (the window
//! table functions' column), a TUMBLE or HOP `window_start` (whose field metadata gives
//! the window's size, so its end is `window_start + size`), or `date_bin(size, ts)` (the
//! GROUP BY spellings); a group closes when the watermark reaches its window end.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DFSchema, DataFusionError, ExprSchema, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Aggregate, EmptyRelation, Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::udaf::AggregateFunctionExpr;

/// How groups of a windowed aggregate close.
#[derive(Debug, Clone)]
pub struct WindowClose {
    /// Position of the window group key among the group keys.
    pub group_index: usize,
    /// The group key's expression on the aggregate's input (to find late rows).
    pub expr: Arc<dyn PhysicalExpr>,
    /// Added to the key's value to get the window end (0 for `window_end`, the window
    /// size for `date_bin(size, ts)`), in nanoseconds.
    pub end_offset_ns: i64,
    /// The key as written, for EXPLAIN.
    pub label: String,
    /// Session windows: how their groups merge (set by the planner when the input is a
    /// `SESSION(...)`).
    pub session: Option<super::SessionWindow>,
}

/// A continuous aggregate: DataFusion's grouping and aggregate expressions.
#[derive(Debug, Clone)]
pub struct AggregatePlan {
    pub group_by: PhysicalGroupBy,
    pub aggr_expr: Vec<Arc<AggregateFunctionExpr>>,
    pub filter_expr: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// Schema of the aggregate's input.
    pub input_schema: SchemaRef,
    pub window: Option<WindowClose>,
    pub group_names: Vec<String>,
    pub aggregate_names: Vec<String>,
}

impl AggregatePlan {
    pub fn describe(&self) -> String {
        let window = match &self.window {
            Some(w) => format!(
                "window: {} (closes when the watermark reaches its end)",
                w.label
            ),
            None => "no window (updating: groups never close)".into(),
        };
        format!(
            "Aggregate: group by [{}], aggregates [{}], {window}",
            self.group_names.join(", "),
            self.aggregate_names.join(", ")
        )
    }

    /// An `AggregateExec` of this aggregate in `mode` over `input`.
    pub fn exec(
        &self,
        mode: AggregateMode,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<AggregateExec> {
        let group_by = match mode {
            AggregateMode::Partial => self.group_by.clone(),
            _ => self.group_by.as_final(),
        };
        AggregateExec::try_new(
            mode,
            group_by,
            self.aggr_expr.clone(),
            self.filter_expr.clone(),
            input,
            self.input_schema.clone(),
        )
    }
}

pub(super) fn interval_ns(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(v.days as i64 * 86_400_000_000_000 + v.nanoseconds)
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(v.days as i64 * 86_400_000_000_000 + v.milliseconds as i64 * 1_000_000)
        }
        _ => None,
    }
}

/// The window end offset if `expr` is a window key: `window_end`, a TUMBLE or HOP
/// `window_start` (the size in its field metadata), or `date_bin(size, ts)`.
pub(super) fn window_key(expr: &Expr, input: &DFSchema) -> Option<i64> {
    match expr {
        Expr::Column(c) if c.name == "window_end" => Some(0),
        Expr::Column(c) => input
            .field_from_column(c)
            .ok()?
            .metadata()
            .get(super::tumble::WINDOW_SIZE_METADATA)?
            .parse()
            .ok(),
        Expr::Alias(a) => window_key(&a.expr, input),
        Expr::ScalarFunction(f) if f.name() == "date_bin" && f.args.len() == 2 => {
            match &f.args[0] {
                Expr::Literal(v, _) => interval_ns(v),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Plans `agg` with DataFusion's physical planner over an empty input of the same
/// schema, and keeps the pieces of the first-phase `AggregateExec`.
pub fn plan_aggregate(state: &SessionState, agg: &Aggregate) -> Result<AggregatePlan> {
    let empty = LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: agg.input.schema().clone(),
    });
    let standalone = Aggregate::try_new(
        Arc::new(empty),
        agg.group_expr.clone(),
        agg.aggr_expr.clone(),
    )?;
    // Without the rule that answers aggregates from statistics: the empty input's
    // exact statistics would turn count(*) into a constant.
    let rules = state
        .physical_optimizers()
        .iter()
        .filter(|r| r.name() != "aggregate_statistics")
        .cloned()
        .collect();
    let planning_state = SessionStateBuilder::new_from_existing(state.clone())
        .with_physical_optimizer_rules(rules)
        .build();
    let physical = futures::executor::block_on(
        planning_state
            .query_planner()
            .create_physical_plan(&LogicalPlan::Aggregate(standalone), &planning_state),
    )?;
    let first = first_phase(&physical).ok_or_else(|| {
        DataFusionError::Internal("the aggregate did not plan as an AggregateExec".into())
    })?;
    // A grouped window_end is the window's end itself; otherwise any key that gives it.
    let keys = || {
        agg.group_expr
            .iter()
            .enumerate()
            .filter_map(|(i, e)| window_key(e, agg.input.schema()).map(|offset| (i, offset, e)))
    };
    let window = keys()
        .find(|(_, offset, _)| *offset == 0)
        .or_else(|| keys().next())
        .map(|(i, end_offset_ns, e)| -> Result<WindowClose> {
            Ok(WindowClose {
                group_index: i,
                expr: state.create_physical_expr(e.clone(), agg.input.schema())?,
                end_offset_ns,
                label: match e {
                    Expr::Column(c) => c.name.clone(),
                    other => other.to_string(),
                },
                session: None,
            })
        })
        .transpose()?;
    if window.is_none()
        && agg
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::Column(c) if c.name == "window_start"))
    {
        return Err(DataFusionError::Plan(
            "group by window_end as well as window_start: this window_start does not come from \
             TUMBLE or HOP, whose end is window_start + size, and a SESSION window's end moves \
             as events join it, so Weir cannot know when each window closes from its start"
                .into(),
        ));
    }
    let names: Vec<String> = agg
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let groups = agg.group_expr.len();
    Ok(AggregatePlan {
        group_by: first.group_expr().clone(),
        aggr_expr: first.aggr_expr().to_vec(),
        filter_expr: first.filter_expr().to_vec(),
        input_schema: first.input_schema(),
        window,
        group_names: names[..groups].to_vec(),
        aggregate_names: names[groups..].to_vec(),
    })
}

/// The `AggregateExec` nearest the leaves (Partial, or Single when DataFusion combined them).
fn first_phase(plan: &Arc<dyn ExecutionPlan>) -> Option<AggregateExec> {
    for child in plan.children() {
        if let Some(found) = first_phase(child) {
            return Some(found);
        }
    }
    let agg = plan.downcast_ref::<AggregateExec>()?;
    matches!(
        agg.mode(),
        AggregateMode::Partial | AggregateMode::Single | AggregateMode::SinglePartitioned
    )
    .then(|| agg.clone())
}
