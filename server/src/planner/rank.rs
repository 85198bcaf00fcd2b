//! Planning `ROW_NUMBER()` / `RANK()` / `DENSE_RANK()` `OVER (PARTITION BY ... ORDER BY
//! ...)` under a filter on the rank (Flink's spellings of Top-N and deduplication):
//!
//! - **window Top-N**: the partition includes a window's bounds (`window_start`,
//!   `window_end` of TUMBLE or HOP, or of an aggregate over them). The window's rows
//!   are ranked with DataFusion's own window operator when the window closes, and the
//!   rows whose rank passes the filter are emitted once.
//! - **deduplication**: `ROW_NUMBER() ... = 1` partitioned by keys alone, ordered by an
//!   event-time column: ascending keeps each key's first row (an append-only stream),
//!   descending its latest (a view).
//!
//! Any other window function is refused with what to write instead.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::{EmptyRelation, Expr, ExprSchemable, LogicalPlan, Operator, Window};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;

use super::refuse;

/// A window Top-N: ranks each closed window's rows.
#[derive(Debug, Clone)]
pub struct TopNPlan {
    /// DataFusion's physical plan of the window function over an empty input; the
    /// operator runs it over the rows of the windows that closed.
    pub exec: Arc<dyn ExecutionPlan>,
    pub input_schema: SchemaRef,
    /// The input's columns, then the rank.
    pub output_schema: SchemaRef,
    /// The window key in the partition, on the input, and what to add to it to get the
    /// window's end (ns).
    pub window: Arc<dyn PhysicalExpr>,
    pub end_offset_ns: i64,
    /// Rows whose rank is above it are dropped (from the filter above), if known.
    pub max_rank: Option<u64>,
    pub label: String,
}

/// Deduplication: one row per key.
#[derive(Debug, Clone)]
pub struct DedupPlan {
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The event-time column ordering the rows, on the input.
    pub time: Arc<dyn PhysicalExpr>,
    /// `ORDER BY ts DESC`: keep the latest row per key (else the first).
    pub latest: bool,
    /// Any other ORDER BY (`ORDER BY price DESC, ts`): keep each key's best row by it,
    /// replaced as better ones arrive (a view, like the latest; `latest` is set too).
    pub best: Option<
        Vec<(
            Arc<dyn PhysicalExpr>,
            datafusion::arrow::compute::SortOptions,
        )>,
    >,
    /// The input's columns, then the row number (always 1).
    pub output_schema: SchemaRef,
    pub label: String,
}

/// What a ranking over a window function plans as.
pub enum Ranked {
    TopN(TopNPlan),
    Dedup(DedupPlan),
}

/// `rank <= N` (and `<`, `=`, mirrored) found in a filter's conjuncts: the column's name
/// and the largest rank kept.
pub fn rank_limits(predicate: &Expr) -> Vec<(String, u64)> {
    fn column(e: &Expr) -> Option<String> {
        match e {
            Expr::Column(c) => Some(c.name.clone()),
            Expr::Cast(c) => column(&c.expr),
            Expr::TryCast(c) => column(&c.expr),
            _ => None,
        }
    }
    fn number(e: &Expr) -> Option<i128> {
        match e {
            Expr::Literal(v, _) => match v {
                ScalarValue::Int8(Some(n)) => Some(*n as i128),
                ScalarValue::Int16(Some(n)) => Some(*n as i128),
                ScalarValue::Int32(Some(n)) => Some(*n as i128),
                ScalarValue::Int64(Some(n)) => Some(*n as i128),
                ScalarValue::UInt8(Some(n)) => Some(*n as i128),
                ScalarValue::UInt16(Some(n)) => Some(*n as i128),
                ScalarValue::UInt32(Some(n)) => Some(*n as i128),
                ScalarValue::UInt64(Some(n)) => Some(*n as i128),
                _ => None,
            },
            Expr::Cast(c) => number(&c.expr),
            _ => None,
        }
    }
    datafusion::logical_expr::utils::split_conjunction(predicate)
        .into_iter()
        .filter_map(|e| {
            let Expr::BinaryExpr(b) = e else { return None };
            let (name, op, n) = match (column(&b.left), number(&b.right)) {
                (Some(name), Some(n)) => (name, b.op, n),
                _ => (column(&b.right)?, b.op.swap()?, number(&b.left)?),
            };
            let max = match op {
                Operator::LtEq => n,
                Operator::Lt => n - 1,
                Operator::Eq if n == 1 => 1,
                _ => return None,
            };
            (max >= 0).then(|| (name, max as u64))
        })
        .collect()
}

/// Plans `window` (already known to feed a filter on its rank when `max_rank` is set).
pub fn plan_window(state: &SessionState, window: &Window, max_rank: Option<u64>) -> Result<Ranked> {
    let [expr] = window.window_expr.as_slice() else {
        return Err(refuse(
            "one window function per query runs continuously: ROW_NUMBER(), RANK() or \
             DENSE_RANK() OVER (PARTITION BY window_start, window_end ORDER BY ...) for a Top-N",
        ));
    };
    let function = match expr.clone().unalias_nested().data {
        Expr::WindowFunction(f) => *f,
        other => {
            return Err(refuse(format!(
                "{other} cannot run continuously as a window function"
            )));
        }
    };
    let WindowFunction {
        fun,
        params:
            WindowFunctionParams {
                args,
                partition_by,
                order_by,
                filter,
                ..
            },
    } = &function;
    let name = fun.name().to_ascii_lowercase();
    if !matches!(name.as_str(), "row_number" | "rank" | "dense_rank") || !args.is_empty() {
        return Err(refuse(format!(
            "{name}() OVER (...) cannot run continuously; continuous queries rank rows with \
             ROW_NUMBER(), RANK() or DENSE_RANK() under a filter on the rank (a Top-N per \
             window, or ROW_NUMBER() ... = 1 to deduplicate); compute other window functions \
             when you read the result"
        )));
    }
    if filter.is_some() {
        return Err(refuse(
            "a FILTER clause on a ranking function cannot run continuously; filter the rows below it",
        ));
    }
    if order_by.is_empty() {
        return Err(refuse(format!(
            "{name}() needs an ORDER BY in its OVER clause to rank rows continuously"
        )));
    }
    let input = window.input.schema();
    let output_schema: SchemaRef = Arc::new(window.schema.as_arrow().clone());
    let window_key = partition_by
        .iter()
        .filter_map(|e| super::aggregate::window_key(e, input).map(|offset| (offset, e)))
        .min_by_key(|(offset, _)| *offset != 0);
    if let Some((end_offset_ns, key)) = window_key {
        return plan_top_n(
            state,
            window,
            key,
            end_offset_ns,
            max_rank,
            output_schema,
            &name,
        )
        .map(Ranked::TopN);
    }
    // No window: deduplication, if that is what it says.
    let dedup_hint = "to keep one row per key write ROW_NUMBER() OVER (PARTITION BY key ORDER BY ts) = 1 \
                      (the first row by event time; ORDER BY ts DESC for the latest)";
    let topn_hint = "a Top-N runs continuously per window: rank the rows of a windowed aggregate \
                     (or of TUMBLE / HOP) with PARTITION BY window_start, window_end";
    if name != "row_number" || max_rank != Some(1) {
        return Err(refuse(format!(
            "{name}() without a window in its PARTITION BY never finishes ranking an \
             unbounded input; {topn_hint}; {dedup_hint}"
        )));
    }
    if partition_by.is_empty() {
        return Err(refuse(format!(
            "deduplication needs the key to deduplicate on: PARTITION BY it; {dedup_hint}"
        )));
    }
    let keys = partition_by
        .iter()
        .map(|e| state.create_physical_expr(e.clone(), input))
        .collect::<Result<Vec<_>>>()?;
    let sort = &order_by[0];
    let by_time = order_by.len() == 1
        && matches!(
            sort.expr.get_type(input)?,
            datafusion::arrow::datatypes::DataType::Timestamp(_, _)
        );
    if !by_time {
        // Top-1 per key by any order: the best row so far, in a view.
        let best = order_by
            .iter()
            .map(|s| {
                Ok((
                    state.create_physical_expr(s.expr.clone(), input)?,
                    datafusion::arrow::compute::SortOptions {
                        descending: !s.asc,
                        nulls_first: s.nulls_first,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let key_names: Vec<String> = partition_by.iter().map(shown).collect();
        let order: Vec<String> = order_by
            .iter()
            .map(|s| format!("{}{}", shown(&s.expr), if s.asc { "" } else { " DESC" }))
            .collect();
        return Ok(Ranked::Dedup(DedupPlan {
            keys,
            time: state.create_physical_expr(sort.expr.clone(), input)?,
            latest: true,
            best: Some(best),
            output_schema,
            label: format!(
                "Dedup: best row per [{}] by {} (ROW_NUMBER() = 1, replaced as better rows arrive)",
                key_names.join(", "),
                order.join(", ")
            ),
        }));
    }
    let latest = !sort.asc;
    let key_names: Vec<String> = partition_by.iter().map(shown).collect();
    let label = format!(
        "Dedup: {} row per [{}] by {} (ROW_NUMBER() = 1)",
        if latest { "latest" } else { "first" },
        key_names.join(", "),
        shown(&sort.expr)
    );
    Ok(Ranked::Dedup(DedupPlan {
        keys,
        time: state.create_physical_expr(sort.expr.clone(), input)?,
        latest,
        best: None,
        output_schema,
        label,
    }))
}

fn plan_top_n(
    state: &SessionState,
    window: &Window,
    key: &Expr,
    end_offset_ns: i64,
    max_rank: Option<u64>,
    output_schema: SchemaRef,
    name: &str,
) -> Result<TopNPlan> {
    let input: &DFSchema = window.input.schema();
    // DataFusion's window operator, planned over an empty input of the same schema.
    let empty = LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: window.input.schema().clone(),
    });
    let standalone = Window::try_new(window.window_expr.clone(), Arc::new(empty))?;
    let exec = futures::executor::block_on(
        state
            .query_planner()
            .create_physical_plan(&LogicalPlan::Window(standalone), state),
    )?;
    let Expr::WindowFunction(function) = window.window_expr[0].clone().unalias_nested().data else {
        unreachable!("checked by plan_window")
    };
    let partition: Vec<String> = function.params.partition_by.iter().map(shown).collect();
    let order: Vec<String> = function
        .params
        .order_by
        .iter()
        .map(|s| match s.asc {
            true => shown(&s.expr),
            false => format!("{} DESC", shown(&s.expr)),
        })
        .collect();
    let kept = match max_rank {
        Some(n) => format!("keeps rank <= {n}"),
        None => "keeps every rank".into(),
    };
    let label = format!(
        "TopN: {}() per [{}] order by [{}], {kept}, when the window closes",
        name.to_ascii_uppercase(),
        partition.join(", "),
        order.join(", ")
    );
    Ok(TopNPlan {
        exec,
        input_schema: Arc::new(input.as_arrow().clone()),
        output_schema,
        window: state.create_physical_expr(key.clone(), input)?,
        end_offset_ns,
        max_rank,
        label,
    })
}

/// An expression as EXPLAIN shows it: a column by its name.
fn shown(expr: &Expr) -> String {
    match expr {
        Expr::Column(c) => c.name.clone(),
        other => other.to_string(),
    }
}
