//! `HOP(stream, ts, slide, size)`: hopping (sliding) windows of `size` starting every
//! `slide`, aligned to the Unix epoch; each event counts in every window that contains
//! it (`size / slide` of them; `size` must be a multiple of `slide`). It is a view: a
//! `UNION ALL` with one branch per window an event falls in, branch `j` giving
//! `window_start = date_bin(slide, ts) - j * slide` and `window_end = window_start +
//! size`. Branch 0 holds each event's latest window, which is how the runtime counts a
//! late event once (when that window has closed, all of them have).

use std::sync::Arc;

use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{LogicalPlanBuilder, col, lit};

use super::tumble::{interval_arg, plus_nanos, window_source, window_start_alias};
use crate::table::StreamRegistry;

const USAGE: &str =
    "use HOP(stream, time_column, INTERVAL '2' SECOND, INTERVAL '10' SECOND) (slide, then size)";

/// More windows per event than this is almost certainly a mistake (and costly).
const MAX_WINDOWS_PER_EVENT: i64 = 100;

#[derive(Debug)]
pub struct HopFunction {
    streams: StreamRegistry,
    relations: super::tumble::Relations,
}

impl HopFunction {
    pub fn new(streams: StreamRegistry, relations: super::tumble::Relations) -> Self {
        HopFunction { streams, relations }
    }
}

impl TableFunctionImpl for HopFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let [stream, time, slide, size] = args.exprs() else {
            return plan_err!("HOP takes four arguments; {USAGE}");
        };
        let source = window_source(&self.streams, &self.relations, "HOP", stream, time, USAGE)?;
        let (slide, slide_ns) = interval_arg("HOP", "slide", slide)?;
        let (_, size_ns) = interval_arg("HOP", "window size", size)?;
        if size_ns % slide_ns != 0 {
            return plan_err!("HOP: the window size must be a multiple of the slide; {USAGE}");
        }
        let windows = size_ns / slide_ns;
        if windows > MAX_WINDOWS_PER_EVENT {
            return plan_err!(
                "HOP: {windows} windows per event is too many (at most {MAX_WINDOWS_PER_EVENT}); use a larger slide"
            );
        }
        let latest = datafusion::functions::datetime::date_bin()
            .call(vec![lit(slide), col(source.time.as_str())]);
        let mut union: Option<LogicalPlanBuilder> = None;
        for j in 0..windows {
            let start = plus_nanos(latest.clone(), -j * slide_ns, &source.time_type);
            let mut columns = source.columns.clone();
            columns.push(window_start_alias(start.clone(), size_ns));
            columns.push(plus_nanos(start, size_ns, &source.time_type).alias("window_end"));
            let branch = source.scan.clone().project(columns)?.build()?;
            union = Some(match union {
                None => LogicalPlanBuilder::from(branch),
                Some(u) => u.union(branch)?,
            });
        }
        let plan = union.expect("at least one window").build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}
