//! `TUMBLE(stream, ts, size)`: the tumbling-window table function. It is a view over
//! the stream that adds `window_start = date_bin(size, ts)` (aligned to the Unix
//! epoch) and `window_end = window_start + size`, both of the time column's type. A
//! bounded query reads it like any view (every retained row counts); the continuous
//! planner sees the same projection and closes a window when the watermark reaches its
//! end. `window_start` carries the window's size in its field metadata
//! ([`WINDOW_SIZE_METADATA`]), so a query grouped by `window_start` alone still knows
//! each window's end (`window_start + size`).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Column, Result, ScalarValue, plan_err};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};

use crate::table::{StreamRegistry, StreamTable};

#[derive(Debug)]
pub struct TumbleFunction {
    streams: StreamRegistry,
    relations: Relations,
}

impl TumbleFunction {
    pub fn new(streams: StreamRegistry, relations: Relations) -> Self {
        TumbleFunction { streams, relations }
    }
}

/// Relations a window function can read besides streams, by name: the lifted first
/// arguments of the statement being planned (a subquery, a CTE, a view; see
/// `sql::lift_window_inputs`), each the logical plan of its SQL.
pub type Relations = Arc<parking_lot::RwLock<std::collections::HashMap<String, LogicalPlan>>>;

const USAGE: &str = "use TUMBLE(stream, time_column, INTERVAL '10' SECOND)";

/// Field metadata key on a TUMBLE or HOP `window_start`: the window's size in
/// nanoseconds, so the continuous planner can close windows grouped by their start.
pub const WINDOW_SIZE_METADATA: &str = "weir.window_size_ns";

/// `start AS window_start`, tagged with the window's size (see [`WINDOW_SIZE_METADATA`]).
pub(super) fn window_start_alias(start: Expr, size_ns: i64) -> Expr {
    let metadata = datafusion::common::metadata::FieldMetadata::from(
        std::collections::BTreeMap::from([(WINDOW_SIZE_METADATA.to_string(), size_ns.to_string())]),
    );
    start.alias_with_metadata("window_start", Some(metadata))
}

/// An argument written as a bare name: a stream or a column.
pub(super) fn name_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Some(s.clone()),
        _ => None,
    }
}

/// The parts every window table function starts from: the stream's scan, its user
/// columns, and the time column (checked to be a TIMESTAMP).
pub(super) struct WindowSource {
    pub scan: LogicalPlanBuilder,
    pub columns: Vec<Expr>,
    pub time: String,
    /// The time column's type (a TIMESTAMP).
    pub time_type: DataType,
}

/// `timestamp + ns` for a timestamp expression of type `time_type`.
///
/// As integer arithmetic on the timestamp's own unit when `ns` is a whole number of
/// them: adding an INTERVAL goes through calendar arithmetic per row (chrono), which
/// was 40 % of a HOP query's time in the profile; window bounds are fixed durations.
pub(super) fn plus_nanos(timestamp: Expr, ns: i64, time_type: &DataType) -> Expr {
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::logical_expr::Cast;
    let unit_ns = match time_type {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        _ => 1,
    };
    if ns % unit_ns != 0 {
        return timestamp + lit(ScalarValue::new_interval_mdn(0, 0, ns));
    }
    let raw = Expr::Cast(Cast::new(Box::new(timestamp), DataType::Int64));
    Expr::Cast(Cast::new(
        Box::new(raw + lit(ns / unit_ns)),
        time_type.clone(),
    ))
}

pub(super) fn window_source(
    streams: &StreamRegistry,
    relations: &Relations,
    function: &str,
    stream: &Expr,
    time: &Expr,
    usage: &str,
) -> Result<WindowSource> {
    let Some(stream_name) = name_of(stream) else {
        return plan_err!(
            "{function}: the first argument names a stream, a view or a CTE, or is a subquery; {usage}"
        );
    };
    let Some(time) = name_of(time) else {
        return plan_err!("{function}: the second argument names a TIMESTAMP column; {usage}");
    };
    let stream = streams.read().get(&stream_name).cloned();
    let (scan, schema) = match stream {
        Some(stream) => {
            let table = Arc::new(StreamTable::new(stream.clone()));
            let scan = LogicalPlanBuilder::scan(&stream_name, provider_as_source(table), None)?;
            (scan, stream.schema.clone())
        }
        None => {
            let Some(plan) = relations.read().get(&stream_name).cloned() else {
                return plan_err!("{function}: unknown stream \"{stream_name}\"");
            };
            // A query's output: its own window bounds give way to the new window's.
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
                plan.schema()
                    .fields()
                    .iter()
                    .filter(|f| !matches!(f.name().as_str(), "window_start" | "window_end"))
                    .cloned()
                    .collect::<Vec<_>>(),
            ));
            let scan = LogicalPlanBuilder::from(plan).alias(stream_name.as_str())?;
            (scan, schema)
        }
    };
    let shown = match stream_name.starts_with(LIFTED_PREFIX) {
        true => "the query".to_string(),
        false => stream_name.clone(),
    };
    let time_type = match schema.field_with_name(&time).map(|f| f.data_type().clone()) {
        Ok(t @ DataType::Timestamp(_, _)) => t,
        Ok(other) => return plan_err!("{function}: {time} is {other}, not a TIMESTAMP column"),
        Err(_) if time == "window_end" || time == "window_start" => {
            // The input's window_end, time of its (closed) windows: kept under its name.
            match relations.read().get(&stream_name).map(|p| {
                p.schema()
                    .field_with_unqualified_name(&time)
                    .map(|f| f.data_type().clone())
            }) {
                Some(Ok(t @ DataType::Timestamp(_, _))) => {
                    return window_over_bounds(scan, schema, stream_name, time, t);
                }
                _ => return plan_err!("{function}: {shown} has no column {time}"),
            }
        }
        Err(_) => return plan_err!("{function}: {shown} has no column {time}"),
    };
    let columns = schema
        .fields()
        .iter()
        .map(|f| Expr::Column(Column::new(Some(stream_name.clone()), f.name())))
        .collect();
    Ok(WindowSource {
        scan,
        columns,
        time,
        time_type,
    })
}

/// Prefix of the generated names of lifted window-function inputs.
pub const LIFTED_PREFIX: &str = "__window_input_";

/// A window over an input's own `window_end` (or `window_start`): the input's other
/// columns, then its time column renamed so the new window's bounds can take the names.
fn window_over_bounds(
    scan: LogicalPlanBuilder,
    schema: datafusion::arrow::datatypes::SchemaRef,
    relation: String,
    time: String,
    time_type: DataType,
) -> Result<WindowSource> {
    let mut columns: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| Expr::Column(Column::new(Some(relation.clone()), f.name())))
        .collect();
    let renamed = format!("input_{time}");
    columns.push(Expr::Column(Column::new(Some(relation.clone()), &time)).alias(&renamed));
    let scan = scan.project(columns)?;
    let columns = scan
        .schema()
        .fields()
        .iter()
        .map(|f| Expr::Column(Column::new_unqualified(f.name())))
        .collect();
    Ok(WindowSource {
        scan,
        columns,
        time: renamed,
        time_type,
    })
}

/// An INTERVAL argument (`what` names it in errors), in nanoseconds with its literal.
pub(super) fn interval_arg(function: &str, what: &str, expr: &Expr) -> Result<(ScalarValue, i64)> {
    let value = match expr {
        Expr::Literal(v, _) => v.clone(),
        _ => {
            return plan_err!(
                "{function}: the {what} must be an INTERVAL such as INTERVAL '10' SECOND"
            );
        }
    };
    let ns = match &value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            v.days as i64 * 86_400_000_000_000 + v.nanoseconds
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            v.days as i64 * 86_400_000_000_000 + v.milliseconds as i64 * 1_000_000
        }
        _ => {
            return plan_err!(
                "{function}: the {what} must be an INTERVAL of days or less, such as INTERVAL '10' SECOND"
            );
        }
    };
    if ns <= 0 {
        return plan_err!("{function}: the {what} must be positive");
    }
    Ok((value, ns))
}

impl TableFunctionImpl for TumbleFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let [stream, time, size] = args.exprs() else {
            return plan_err!("TUMBLE takes three arguments; {USAGE}");
        };
        let source = window_source(
            &self.streams,
            &self.relations,
            "TUMBLE",
            stream,
            time,
            USAGE,
        )?;
        let (size, size_ns) = interval_arg("TUMBLE", "window size", size)?;
        let mut columns = source.columns;
        let start = datafusion::functions::datetime::date_bin()
            .call(vec![lit(size), col(source.time.as_str())]);
        columns.push(window_start_alias(start.clone(), size_ns));
        columns.push(plus_nanos(start, size_ns, &source.time_type).alias("window_end"));
        let plan = source.scan.project(columns)?.build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}
