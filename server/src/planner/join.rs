//! Planning an interval join: `... FROM orders o [LEFT | RIGHT | FULL] JOIN payments p
//! ON o.id = p.order_id AND p.ts BETWEEN o.ts AND o.ts + INTERVAL '10' MINUTE` (also `>=`
//! / `<` pairs, and bounds written on either side), and a window join (equal
//! `window_end`s, the bounds `[0, 0]`).
//!
//! The join's matching is DataFusion's: its hash join with the whole ON clause (the
//! equality keys, and the rest as its `JoinFilter`), planned once over empty inputs and
//! run by the operator over the rows of each new batch and the other side's rows held.
//! The bounds found in the ON clause only decide how long each side's rows are held and
//! which rows are late, so they may be wider than the exact condition, never narrower.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Column, DFSchema, ExprSchema, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{
    BinaryExpr, EmptyRelation, Expr, Join, JoinType, LogicalPlan, Operator,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;

use super::refuse;

/// An interval join of two inputs, by event time.
#[derive(Debug, Clone)]
pub struct IntervalJoinPlan {
    /// INNER, LEFT, RIGHT or FULL: the outer sides' rows that never matched are emitted
    /// with NULLs once the watermark passes their interval.
    pub join_type: JoinType,
    /// DataFusion's physical INNER join over two empty inputs (left, then right), each
    /// with a row number appended ([`ROW_COLUMNS`]): the operator puts rows in their
    /// place, and learns from the row numbers which rows matched.
    pub exec: Arc<dyn ExecutionPlan>,
    /// The inputs' schemas (without the row number).
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
    /// The join's output: the left columns, then the right ones (nullable on the inner
    /// side of an outer join).
    pub output_schema: SchemaRef,
    /// Event time of each side's rows, on that side's input.
    pub left_time: Arc<dyn PhysicalExpr>,
    pub right_time: Arc<dyn PhysicalExpr>,
    /// `right time - left time` lies in `[lower_ns, upper_ns]` for every match.
    pub lower_ns: i64,
    pub upper_ns: i64,
    /// A regular join (INNER, no time bounds): every row is held and none is late; the
    /// output is append-only pairs. With `WITH (state_ttl = ...)` a row is held while
    /// its event time is within that of the watermark.
    pub regular: bool,
    /// Whether the time expressions are the sides' event times (a regular join's side
    /// may have none: then its times are NULL).
    pub timed: bool,
    pub label: String,
}

/// The row number each held row carries into the join (last column of each side: the
/// left's, the right's).
pub const ROW_COLUMNS: [&str; 2] = ["__weir_join_row_left", "__weir_join_row_right"];

const HOW: &str = "an interval join bounds the time of one side by the other's, e.g. \
    ON o.id = p.order_id AND p.ts BETWEEN o.ts AND o.ts + INTERVAL '10' MINUTE, and a \
    window join matches equal windows (ON a.window_end = b.window_end AND ...)";

/// A time column with an offset: `ts`, `ts + INTERVAL ...` or `ts - INTERVAL ...`.
fn column_offset(expr: &Expr) -> Option<(Column, i64)> {
    match expr {
        Expr::Column(c) => Some((c.clone(), 0)),
        Expr::Cast(c) => column_offset(&c.expr),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (column, base) = column_offset(left)?;
            let ns = match right.as_ref() {
                Expr::Literal(v, _) => super::aggregate::interval_ns(v)?,
                _ => return None,
            };
            match op {
                Operator::Plus => Some((column, base + ns)),
                Operator::Minus => Some((column, base - ns)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The bounds on `right time - left time` that the conjuncts of `filter` give, with the
/// two time columns.
fn bounds(
    filter: &Expr,
    left: &DFSchema,
    right: &DFSchema,
) -> (Option<(Column, Column)>, Option<i64>, Option<i64>) {
    let mut columns: Option<(Column, Column)> = None;
    let (mut lower, mut upper): (Option<i64>, Option<i64>) = (None, None);
    let mut conjuncts = Vec::new();
    for e in datafusion::logical_expr::utils::split_conjunction(filter) {
        match e {
            Expr::Between(b) if !b.negated => {
                conjuncts.push((b.expr.as_ref().clone(), Operator::GtEq, *b.low.clone()));
                conjuncts.push((b.expr.as_ref().clone(), Operator::LtEq, *b.high.clone()));
            }
            Expr::BinaryExpr(b) => conjuncts.push((*b.left.clone(), b.op, *b.right.clone())),
            _ => {}
        }
    }
    for (a, op, b) in conjuncts {
        let (Some((ca, oa)), Some((cb, ob))) = (column_offset(&a), column_offset(&b)) else {
            continue;
        };
        // a + oa OP b + ob, as right - left OP k.
        let (r, l, op, k) = if right.has_column(&ca) && left.has_column(&cb) {
            (ca, cb, op, ob - oa)
        } else if left.has_column(&ca) && right.has_column(&cb) {
            let Some(flipped) = op.swap() else { continue };
            (cb, ca, flipped, oa - ob)
        } else {
            continue;
        };
        if columns
            .as_ref()
            .is_some_and(|(cl, cr)| *cl != l || *cr != r)
        {
            continue;
        }
        match op {
            Operator::GtEq | Operator::Gt => lower = Some(lower.map_or(k, |x| x.max(k))),
            Operator::LtEq | Operator::Lt => upper = Some(upper.map_or(k, |x| x.min(k))),
            _ => continue,
        }
        columns = Some((l, r));
    }
    (columns, lower, upper)
}

/// An equality of two TIMESTAMP columns among the join's keys (`window_end` first).
fn equal_times(join: &Join) -> Option<(Column, Column)> {
    let timestamp = |schema: &DFSchema, c: &Column| {
        schema.field_from_column(c).is_ok_and(|f| {
            matches!(
                f.data_type(),
                datafusion::arrow::datatypes::DataType::Timestamp(_, _)
            )
        })
    };
    let mut pairs: Vec<(Column, Column)> = join
        .on
        .iter()
        .filter_map(|(l, r)| match (l, r) {
            (Expr::Column(l), Expr::Column(r))
                if timestamp(join.left.schema(), l) && timestamp(join.right.schema(), r) =>
            {
                Some((l.clone(), r.clone()))
            }
            _ => None,
        })
        .collect();
    pairs.sort_by_key(|(l, _)| l.name != "window_end");
    pairs.into_iter().next()
}

fn seconds(ns: i64) -> String {
    let s = ns as f64 / 1e9;
    format!("{s} s")
}

/// Plans `join` (its inputs already planned) as an interval join, a window join, or,
/// without time bounds, a regular join. `event_time` gives a side's event-time column
/// (its stream's WATERMARK column), if it has one.
pub fn plan_interval_join(
    state: &SessionState,
    join: &Join,
    event_time: &dyn Fn(&LogicalPlan) -> Option<Column>,
) -> Result<IntervalJoinPlan> {
    if !matches!(
        join.join_type,
        JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full | JoinType::LeftSemi
    ) {
        return Err(refuse(format!(
            "{} joins cannot run continuously; INNER, LEFT, RIGHT, FULL and semi (EXISTS / IN) interval joins can ({HOW})",
            join.join_type
        )));
    }
    let left = join.left.schema();
    let right = join.right.schema();
    let no_filter = Expr::Literal(ScalarValue::Boolean(Some(true)), None);
    let filter = join.filter.as_ref().unwrap_or(&no_filter);
    let (mut columns, mut lower, mut upper) = bounds(filter, left, right);
    if columns.is_none() && equal_times(join).is_none() {
        return plan_regular_join(state, join, event_time);
    }
    if columns.is_none() {
        // A window join: equal window bounds (`a.window_end = b.window_end`) hold each
        // row until the watermark passes its window's end.
        (columns, lower, upper) = (equal_times(join), Some(0), Some(0));
    }
    let (Some((left_column, right_column)), Some(lower_ns), Some(upper_ns)) =
        (columns, lower, upper)
    else {
        // One bound only (`p.ts >= o.ts`): rows could match forever, a regular join.
        return plan_regular_join(state, join, event_time);
    };
    for (schema, column) in [(left, &left_column), (right, &right_column)] {
        let field = schema.field_from_column(column)?;
        if !matches!(
            field.data_type(),
            datafusion::arrow::datatypes::DataType::Timestamp(_, _)
        ) {
            return Err(refuse(format!(
                "{column} bounds the join but is {}, not a TIMESTAMP; {HOW}",
                field.data_type()
            )));
        }
    }
    if lower_ns > upper_ns {
        return Err(refuse(format!(
            "the join's time bounds leave no match ({} after the other side at the least, \
             {} at the most); {HOW}",
            seconds(lower_ns),
            seconds(upper_ns)
        )));
    }
    let exec = numbered_exec(state, join, join.filter.clone())?;
    let on: Vec<String> = join.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
    let outer = match join.join_type {
        JoinType::Inner | JoinType::LeftSemi => "",
        _ => "; unmatched outer rows then, with NULLs",
    };
    let label = match (lower_ns, upper_ns) {
        (0, 0) => format!(
            "WindowJoin: {} on [{}], the rows of equal windows ({right_column} = {left_column}) joined when the window closes{outer}",
            join.join_type.to_string().to_ascii_uppercase(),
            on.join(", "),
        ),
        _ => format!(
            "IntervalJoin: {} on [{}], {right_column} - {left_column} in [{}, {}] (rows held until the watermark passes their bound{outer})",
            join.join_type.to_string().to_ascii_uppercase(),
            on.join(", "),
            seconds(lower_ns),
            seconds(upper_ns),
        ),
    };
    Ok(IntervalJoinPlan {
        join_type: join.join_type,
        output_schema: Arc::new(join.schema.as_arrow().clone()),
        exec,
        left_schema: Arc::new(left.as_arrow().clone()),
        right_schema: Arc::new(right.as_arrow().clone()),
        left_time: state.create_physical_expr(Expr::Column(left_column), left)?,
        right_time: state.create_physical_expr(Expr::Column(right_column), right)?,
        lower_ns,
        upper_ns,
        regular: false,
        timed: true,
        label,
    })
}

/// A join without time bounds (`ON a.seller = p.id`): INNER only, every row held.
fn plan_regular_join(
    state: &SessionState,
    join: &Join,
    event_time: &dyn Fn(&LogicalPlan) -> Option<Column>,
) -> Result<IntervalJoinPlan> {
    if join.join_type != JoinType::Inner {
        return Err(refuse(format!(
            "{} joins without time bounds cannot run continuously yet (a NULL row would have \
             to be retracted when its match arrives); make it INNER, or bound it: {HOW}",
            join.join_type.to_string().to_ascii_uppercase()
        )));
    }
    let (left, right) = (join.left.schema(), join.right.schema());
    let times = (event_time(&join.left), event_time(&join.right));
    let timed = times.0.is_some() && times.1.is_some();
    let time = |column: Option<Column>, schema: &DFSchema| match column {
        Some(c) => state.create_physical_expr(Expr::Column(c), schema),
        None => state.create_physical_expr(
            Expr::Literal(ScalarValue::TimestampNanosecond(None, None), None),
            schema,
        ),
    };
    let exec = numbered_exec(state, join, join.filter.clone())?;
    let on: Vec<String> = join.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
    Ok(IntervalJoinPlan {
        join_type: join.join_type,
        output_schema: Arc::new(join.schema.as_arrow().clone()),
        exec,
        left_schema: Arc::new(left.as_arrow().clone()),
        right_schema: Arc::new(right.as_arrow().clone()),
        left_time: time(times.0, left)?,
        right_time: time(times.1, right)?,
        lower_ns: -i64::MAX,
        upper_ns: i64::MAX,
        regular: true,
        timed,
        label: format!(
            "Join: INNER on [{}], every row of both sides held (or for state_ttl past the watermark)",
            on.join(", ")
        ),
    })
}

/// DataFusion's physical INNER join of `join`'s inputs with `filter`, over two empty
/// inputs (left, then right), each with a row number appended ([`ROW_COLUMNS`]), in
/// one partition: the operator puts its rows in their place and learns from the row
/// numbers which rows matched.
pub(super) fn numbered_exec(
    state: &SessionState,
    join: &Join,
    filter: Option<Expr>,
) -> Result<Arc<dyn ExecutionPlan>> {
    standalone_exec(state, join, filter, JoinType::Inner, true)
}

/// DataFusion's physical join of `join_type` over two empty inputs of `join`'s input
/// schemas (each with a row number appended when `numbered`), with `join`'s keys and
/// `filter`, in one partition.
pub(super) fn standalone_exec(
    state: &SessionState,
    join: &Join,
    filter: Option<Expr>,
    join_type: JoinType,
    numbered: bool,
) -> Result<Arc<dyn ExecutionPlan>> {
    let numbered =
        |schema: &datafusion::common::DFSchemaRef, row: &str| -> Result<Arc<LogicalPlan>> {
            let mut fields: Vec<_> = schema
                .iter()
                .map(|(q, f)| (q.cloned(), f.clone()))
                .collect();
            if numbered {
                fields.push((
                    None,
                    Arc::new(datafusion::arrow::datatypes::Field::new(
                        row,
                        datafusion::arrow::datatypes::DataType::UInt64,
                        false,
                    )),
                ));
            }
            Ok(Arc::new(LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::new_with_metadata(fields, Default::default())?),
            })))
        };
    let standalone = Join::try_new(
        numbered(join.left.schema(), ROW_COLUMNS[0])?,
        numbered(join.right.schema(), ROW_COLUMNS[1])?,
        join.on.clone(),
        filter,
        join_type,
        join.join_constraint,
        join.null_equality,
        false,
    )?;
    let mut config = state.config().clone();
    config.options_mut().execution.target_partitions = 1;
    let planning = SessionStateBuilder::new_from_existing(state.clone())
        .with_config(config)
        .build();
    futures::executor::block_on(
        planning
            .query_planner()
            .create_physical_plan(&LogicalPlan::Join(standalone), &planning),
    )
}
