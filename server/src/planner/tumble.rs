//! `TUMBLE(stream, ts, size)`: the tumbling-window table function. It is a view over
//! the stream that adds `window_start = date_bin(size, ts)` (aligned to the Unix
//! epoch) and `window_end = window_start + size`, both of the time column's type. A
//! bounded query reads it like any view (every retained row counts); the continuous
//! planner sees the same projection and groups by `window_end` to know when a window
//! closes.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Column, Result, ScalarValue, plan_err};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col, lit};

use crate::table::{StreamRegistry, StreamTable};

#[derive(Debug)]
pub struct TumbleFunction {
    streams: StreamRegistry,
}

impl TumbleFunction {
    pub fn new(streams: StreamRegistry) -> Self {
        TumbleFunction { streams }
    }
}

const USAGE: &str = "use TUMBLE(stream, time_column, INTERVAL '10' SECOND)";

/// An argument written as a bare name: a stream or a column.
fn name_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Some(s.clone()),
        _ => None,
    }
}

impl TableFunctionImpl for TumbleFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let [stream, time, size] = args.exprs() else {
            return plan_err!("TUMBLE takes three arguments; {USAGE}");
        };
        let Some(stream_name) = name_of(stream) else {
            return plan_err!("TUMBLE: the first argument names a stream; {USAGE}");
        };
        let Some(stream) = self.streams.read().get(&stream_name).cloned() else {
            return plan_err!("TUMBLE: unknown stream \"{stream_name}\"");
        };
        let Some(time) = name_of(time) else {
            return plan_err!("TUMBLE: the second argument names a TIMESTAMP column; {USAGE}");
        };
        match stream
            .schema
            .field_with_name(&time)
            .map(|f| f.data_type().clone())
        {
            Ok(DataType::Timestamp(_, _)) => {}
            Ok(other) => return plan_err!("TUMBLE: {time} is {other}, not a TIMESTAMP column"),
            Err(_) => return plan_err!("TUMBLE: {stream_name} has no column {time}"),
        }
        let size = match size {
            Expr::Literal(
                v @ (ScalarValue::IntervalMonthDayNano(Some(_))
                | ScalarValue::IntervalDayTime(Some(_))),
                _,
            ) => v.clone(),
            _ => {
                return plan_err!(
                    "TUMBLE: the window size must be an INTERVAL such as INTERVAL '10' SECOND"
                );
            }
        };
        let table = Arc::new(StreamTable::new(stream.clone()));
        let mut columns: Vec<Expr> = stream
            .schema
            .fields()
            .iter()
            .map(|f| Expr::Column(Column::new(Some(stream_name.clone()), f.name())))
            .collect();
        let start = datafusion::functions::datetime::date_bin()
            .call(vec![lit(size.clone()), col(time.as_str())]);
        columns.push(start.clone().alias("window_start"));
        columns.push((start + lit(size)).alias("window_end"));
        let plan = LogicalPlanBuilder::scan(stream_name.clone(), provider_as_source(table), None)?
            .project(columns)?
            .build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}
