//! `SESSION(stream, ts, gap [, 'k1, k2'])`: session windows. Events of one key that are
//! within `gap` of each other form a session; `window_start` is its first event time
//! and `window_end` its last event time + `gap` (SQL.md). An event that falls within
//! `gap` of two sessions merges them. Sessions are kept per key: the optional fourth
//! argument, which Weir fills in from the GROUP BY columns other than the window
//! columns (see `sql::rewrite::session_keys`), or from Flink's `PARTITION BY`.
//!
//! - Bounded queries: [`SessionTable::scan`] reads the stream and assigns each row its
//!   session (sort by key and time, one sweep).
//! - Continuous queries: the planner reads the stream, gives each event its own
//!   proto-session `[ts, ts + gap)` and marks the aggregate as a session aggregate
//!   ([`SessionWindow`]); after each merge of partial states the operator merges the
//!   sessions of a key that touch (`start <= other end`), re-merging their partial
//!   states with DataFusion's own `PartialReduce`. A session closes when the watermark
//!   reaches its end; an event is late when `ts + gap <= watermark`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampNanosecondArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimeUnit, TimestampNanosecondType,
};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::tumble::{interval_arg, window_source};
use crate::stream::Stream;
use crate::table::{StreamRegistry, StreamTable};

const USAGE: &str = "use SESSION(stream, time_column, INTERVAL '30' SECOND)";

#[derive(Debug)]
pub struct SessionFunction {
    streams: StreamRegistry,
}

impl SessionFunction {
    pub fn new(streams: StreamRegistry) -> Self {
        SessionFunction { streams }
    }
}

/// A session aggregate, as the runtime needs it.
#[derive(Debug, Clone)]
pub struct SessionWindow {
    /// Positions of `window_start` and `window_end` among the group keys.
    pub start_index: usize,
    pub end_index: usize,
    /// Positions of the session key among the group keys.
    pub key_indices: Vec<usize>,
    pub gap_ns: i64,
}

/// The table a `SESSION(...)` call stands for.
#[derive(Debug)]
pub struct SessionTable {
    pub stream: Arc<Stream>,
    pub time: String,
    pub gap: ScalarValue,
    pub gap_ns: i64,
    pub keys: Vec<String>,
    schema: SchemaRef,
}

impl TableFunctionImpl for SessionFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (stream, time, gap, keys) = match args.exprs() {
            [s, t, g] => (s, t, g, None),
            [s, t, g, k] => (s, t, g, Some(k)),
            _ => return plan_err!("SESSION takes three arguments; {USAGE}"),
        };
        let source = window_source(
            &self.streams,
            &Default::default(),
            "SESSION",
            stream,
            time,
            USAGE,
        )?;
        let (gap, gap_ns) = interval_arg("SESSION", "gap", gap)?;
        let Some(name) = super::tumble::name_of(stream) else {
            return plan_err!("SESSION: the first argument names a stream; {USAGE}");
        };
        let stream = self.streams.read().get(&name).cloned().expect("checked");
        let keys: Vec<String> = match keys {
            None => Vec::new(),
            Some(Expr::Literal(ScalarValue::Utf8(Some(k)), _)) => k
                .split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
            Some(_) => return plan_err!("SESSION: the keys are given as a string, 'k1, k2'"),
        };
        for key in &keys {
            if stream.schema.index_of(key).is_err() {
                return plan_err!("SESSION: {name} has no column {key} to keep sessions by");
            }
        }
        let time_type = stream
            .schema
            .field_with_name(&source.time)?
            .data_type()
            .clone();
        let mut fields: Vec<_> = stream.schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            "window_start",
            time_type.clone(),
            true,
        )));
        fields.push(Arc::new(Field::new("window_end", time_type, true)));
        Ok(Arc::new(SessionTable {
            stream,
            time: source.time,
            gap,
            gap_ns,
            keys,
            schema: Arc::new(Schema::new(fields)),
        }))
    }
}

#[async_trait]
impl TableProvider for SessionTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table = StreamTable::new(self.stream.clone());
        let user: Vec<usize> = (0..self.stream.schema.fields().len()).collect();
        let input = table.scan(state, Some(&user), &[], None).await?;
        let batches = collect(input, state.task_ctx()).await?;
        let rows = sessionize(
            &self.stream.schema,
            &batches,
            &self.time,
            &self.keys,
            self.gap_ns,
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[rows.into_iter().collect()],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// The timestamps of `array` as nanoseconds since the epoch.
pub fn nanos(array: &dyn Array) -> Result<Vec<Option<i64>>> {
    let ns = cast(
        &array.slice(0, array.len()),
        &DataType::Timestamp(TimeUnit::Nanosecond, None),
    )?;
    Ok(ns
        .as_primitive::<TimestampNanosecondType>()
        .iter()
        .collect())
}

/// Nanoseconds back to the time column's type.
pub fn timestamps(values: Vec<Option<i64>>, to: &DataType) -> Result<ArrayRef> {
    let array: ArrayRef = Arc::new(TimestampNanosecondArray::from(values));
    Ok(cast(&array, to)?)
}

/// Bounded sessions: every row with its session's start and end appended.
fn sessionize(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    time: &str,
    keys: &[String],
    gap_ns: i64,
) -> Result<Option<RecordBatch>> {
    let batch = concat_batches(schema, batches)?;
    if batch.num_rows() == 0 {
        return Ok(None);
    }
    let ts = nanos(batch.column(schema.index_of(time)?).as_ref())?;
    let key_columns: Vec<ArrayRef> = keys
        .iter()
        .map(|k| Ok(batch.column(schema.index_of(k)?).clone()))
        .collect::<Result<_>>()?;
    let starts: Vec<Option<i64>> = ts.clone();
    let ends: Vec<Option<i64>> = ts.iter().map(|t| t.map(|t| t + gap_ns)).collect();
    let (starts, ends) = merge_intervals(&key_columns, &starts, &ends)?;
    let time_type = schema.field_with_name(time)?.data_type().clone();
    let mut columns = batch.columns().to_vec();
    columns.push(timestamps(starts, &time_type)?);
    columns.push(timestamps(ends, &time_type)?);
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        "window_start",
        time_type.clone(),
        true,
    )));
    fields.push(Arc::new(Field::new("window_end", time_type, true)));
    Ok(Some(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?))
}

/// Merges, per key, the intervals `[start, end]` that touch, and gives every row the
/// bounds of its merged interval. Rows without a time keep their own (null) bounds.
pub fn merge_intervals(
    keys: &[ArrayRef],
    starts: &[Option<i64>],
    ends: &[Option<i64>],
) -> Result<(Vec<Option<i64>>, Vec<Option<i64>>)> {
    let n = starts.len();
    let rows = if keys.is_empty() {
        None
    } else {
        let converter = RowConverter::new(
            keys.iter()
                .map(|k| SortField::new(k.data_type().clone()))
                .collect(),
        )?;
        Some(converter.convert_columns(keys)?)
    };
    let key = |i: usize| rows.as_ref().map(|r| r.row(i));
    let mut order: Vec<usize> = (0..n).filter(|&i| starts[i].is_some()).collect();
    order.sort_by(|&a, &b| key(a).cmp(&key(b)).then(starts[a].cmp(&starts[b])));
    let (mut out_start, mut out_end) = (starts.to_vec(), ends.to_vec());
    let mut run: Vec<usize> = Vec::new();
    let (mut run_start, mut run_end) = (0i64, 0i64);
    let mut flush = |run: &mut Vec<usize>, s: i64, e: i64| {
        for &i in run.iter() {
            out_start[i] = Some(s);
            out_end[i] = Some(e);
        }
        run.clear();
    };
    for &i in &order {
        let (s, e) = (starts[i].unwrap_or(0), ends[i].unwrap_or(0));
        let same_key = run.last().is_some_and(|&j| key(j) == key(i));
        if same_key && s <= run_end {
            run_end = run_end.max(e);
        } else {
            flush(&mut run, run_start, run_end);
            run_start = s;
            run_end = e;
        }
        run.push(i);
    }
    flush(&mut run, run_start, run_end);
    Ok((out_start, out_end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    #[test]
    fn touching_sessions_merge_per_key() {
        let keys: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["a", "a", "b", "a", "a"]))];
        let s = [Some(0), Some(20), Some(5), Some(10), Some(100)];
        let e: Vec<_> = s.iter().map(|t: &Option<i64>| t.map(|t| t + 10)).collect();
        let (start, end) = merge_intervals(&keys, &s, &e).unwrap();
        // a: 0..10, 10..20, 20..30 bridge into 0..30; 100..110 apart; b alone.
        assert_eq!(start, vec![Some(0), Some(0), Some(5), Some(0), Some(100)]);
        assert_eq!(end, vec![Some(30), Some(30), Some(15), Some(30), Some(110)]);
    }
}
