//! Temporal (versioned) joins: `... FROM orders o [LEFT] JOIN rates FOR SYSTEM_TIME AS
//! OF o.ts AS r ON o.currency = r.currency` — each order joins the version of its key
//! (the equality keys of the ON clause) valid at the order's time: the latest `rates`
//! row of that key at or before `o.ts`.
//!
//! Weir's dialect layer (`sql::temporal`) leaves the marker `__weir_as_of(o.ts, r.ts)`
//! in the join's ON clause. Bounded, [`expand_bounded`] rewrites the join into plain
//! SQL that DataFusion runs: each version gets the time the next version of its key
//! starts (`LEAD(r.ts) OVER (PARTITION BY keys ORDER BY r.ts)`) and an order matches
//! the version whose interval `[r.ts, next)` holds `o.ts`. Continuous,
//! [`plan_temporal_join`] plans the operator (`operators::temporal_join`), whose
//! DataFusion join finds every version at or before the order and keeps the latest.
//! When two versions of a key have the same time, which one wins is not defined.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprFunctionExt, Join, JoinType, LogicalPlan,
    LogicalPlanBuilder, Operator, ScalarUDF, Volatility, create_udf,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;

use super::refuse;
use crate::sql::temporal::AS_OF;

/// The column that holds when the next version of a key starts, in a bounded run.
const VERSION_END: &str = "__weir_version_end";

const HOW: &str = "a temporal join matches the versioned stream's key, e.g. ... JOIN rates \
    FOR SYSTEM_TIME AS OF o.ts AS r ON o.currency = r.currency";

/// The marker `__weir_as_of(left time, right time)`: true when the right row is not
/// after the left one (all it means outside a temporal join's planning).
pub fn as_of_udf() -> ScalarUDF {
    let ns = DataType::Timestamp(TimeUnit::Nanosecond, None);
    create_udf(
        AS_OF,
        vec![ns.clone(), ns],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let at: BooleanArray =
                datafusion::arrow::compute::kernels::cmp::lt_eq(&arrays[1], &arrays[0])?;
            Ok(ColumnarValue::Array(Arc::new(at) as ArrayRef))
        }),
    )
}

/// A temporal join's marker, found in a join filter: the left (probe) time, the right
/// (version) time, and the rest of the filter.
pub struct Marker {
    pub left_time: Expr,
    pub right_time: Expr,
    pub rest: Option<Expr>,
}

/// The marker among the conjuncts of `filter`, if the join is a temporal one.
pub fn find_marker(filter: Option<&Expr>) -> Option<Marker> {
    let conjuncts = split_conjunction(filter?);
    let at = conjuncts.iter().position(
        |e| matches!(e, Expr::ScalarFunction(ScalarFunction { func, .. }) if func.name() == AS_OF),
    )?;
    let Expr::ScalarFunction(ScalarFunction { args, .. }) = conjuncts[at] else {
        return None;
    };
    let strip = |e: &Expr| match e {
        Expr::Cast(c) => c.expr.as_ref().clone(),
        other => other.clone(),
    };
    let (left_time, right_time) = (strip(&args[0]), strip(&args[1]));
    let rest = conjunction(
        conjuncts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != at)
            .map(|(_, e)| (*e).clone()),
    );
    Some(Marker {
        left_time,
        right_time,
        rest,
    })
}

/// `right time <= left time`, the condition the marker stands for in the join.
fn not_after(marker: &Marker) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(
        Box::new(marker.right_time.clone()),
        Operator::LtEq,
        Box::new(marker.left_time.clone()),
    ))
}

fn only_columns_of(expr: &Expr, schema: &DFSchema) -> bool {
    let columns = expr.column_refs();
    !columns.is_empty() && columns.iter().all(|c| schema.has_column(c))
}

/// The right side's key expressions: the ON clause's equalities (planned keys, or
/// `left = right` conjuncts of the filter before the optimizer extracted them).
fn right_keys(join: &Join, rest: Option<&Expr>) -> Vec<Expr> {
    let (left, right) = (join.left.schema(), join.right.schema());
    let mut keys: Vec<Expr> = join.on.iter().map(|(_, r)| r.clone()).collect();
    for e in rest.map(split_conjunction).unwrap_or_default() {
        if let Expr::BinaryExpr(BinaryExpr {
            left: a,
            op: Operator::Eq,
            right: b,
        }) = e
        {
            if only_columns_of(a, left) && only_columns_of(b, right) {
                keys.push(b.as_ref().clone());
            } else if only_columns_of(b, left) && only_columns_of(a, right) {
                keys.push(a.as_ref().clone());
            }
        }
    }
    keys
}

/// Rewrites every temporal join of a bounded plan into plain SQL DataFusion runs: the
/// versions with when the next one of their key starts, matched by interval.
pub fn expand_bounded(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::Join(join) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(marker) = find_marker(join.filter.as_ref()) else {
            return Ok(Transformed::no(node));
        };
        let keys = right_keys(join, marker.rest.as_ref());
        if keys.is_empty() {
            return Err(refuse(format!("the join has no key to version by; {HOW}")));
        }
        let next =
            datafusion::functions_window::expr_fn::lead(marker.right_time.clone(), Some(1), None)
                .partition_by(keys)
                .order_by(vec![marker.right_time.clone().sort(true, false)])
                .build()?
                .alias(VERSION_END);
        let versions = LogicalPlanBuilder::from(join.right.as_ref().clone())
            .window(vec![next])?
            .build()?;
        let columns: Vec<Expr> = join
            .schema
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        // Keys the optimizer already took out of the filter go back in as equalities.
        let on = join.on.iter().map(|(l, r)| l.clone().eq(r.clone()));
        let expanded = LogicalPlanBuilder::from(join.left.as_ref().clone()).join_on(
            versions,
            join.join_type,
            on.chain(std::iter::once(within_version(&marker))),
        )?;
        let projected = expanded.project(columns)?.build()?;
        Ok(Transformed::yes(projected))
    })
    .map(|t| t.data)
}

/// The ON clause of the expanded join: the rest of the filter, and the order's time
/// within the version's interval `[r.ts, next)`.
fn within_version(marker: &Marker) -> Expr {
    let end = Expr::Column(Column::new_unqualified(VERSION_END));
    let before_end = Expr::BinaryExpr(BinaryExpr::new(
        Box::new(marker.left_time.clone()),
        Operator::Lt,
        Box::new(end.clone()),
    ));
    let within = not_after(marker).and(end.is_null().or(before_end));
    match &marker.rest {
        Some(rest) => rest.clone().and(within),
        None => within,
    }
}

/// A temporal join, as the operator needs it.
#[derive(Debug, Clone)]
pub struct TemporalJoinPlan {
    /// INNER, or LEFT: an order without a version is emitted with NULLs.
    pub join_type: JoinType,
    /// DataFusion's INNER join over two empty numbered inputs (see
    /// `join::numbered_exec`) with the ON clause and `r.ts <= o.ts`.
    pub exec: Arc<dyn ExecutionPlan>,
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
    pub output_schema: SchemaRef,
    /// The order's time (left input) and the version's (right input).
    pub left_time: Arc<dyn PhysicalExpr>,
    pub right_time: Arc<dyn PhysicalExpr>,
    /// The versioned key, on the right input.
    pub right_keys: Vec<Arc<dyn PhysicalExpr>>,
    pub label: String,
}

/// Plans `join` (an optimized temporal join, its inputs already planned).
pub fn plan_temporal_join(
    state: &SessionState,
    join: &Join,
    marker: Marker,
) -> Result<TemporalJoinPlan> {
    if !matches!(join.join_type, JoinType::Inner | JoinType::Left) {
        return Err(refuse(format!(
            "a temporal join is INNER or LEFT, not {}; {HOW}",
            join.join_type
        )));
    }
    if join.on.is_empty() {
        return Err(refuse(format!("the join has no key to version by; {HOW}")));
    }
    let (left, right) = (join.left.schema(), join.right.schema());
    let filter = match &marker.rest {
        Some(rest) => rest.clone().and(not_after(&marker)),
        None => not_after(&marker),
    };
    let exec = super::join::numbered_exec(state, join, Some(filter))?;
    let right_keys = join
        .on
        .iter()
        .map(|(_, r)| state.create_physical_expr(r.clone(), right))
        .collect::<Result<Vec<_>>>()?;
    let on: Vec<String> = join.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
    let label = format!(
        "TemporalJoin: {} on [{}], each row with the latest version at or before it ({} <= {}; rows held until the watermark passes them{})",
        join.join_type.to_string().to_ascii_uppercase(),
        on.join(", "),
        marker.right_time,
        marker.left_time,
        match join.join_type {
            JoinType::Left => "; without a version, with NULLs",
            _ => "",
        }
    );
    Ok(TemporalJoinPlan {
        join_type: join.join_type,
        exec,
        left_schema: Arc::new(left.as_arrow().clone()),
        right_schema: Arc::new(right.as_arrow().clone()),
        output_schema: Arc::new(join.schema.as_arrow().clone()),
        left_time: state.create_physical_expr(marker.left_time, left)?,
        right_time: state.create_physical_expr(marker.right_time, right)?,
        right_keys,
        label,
    })
}
