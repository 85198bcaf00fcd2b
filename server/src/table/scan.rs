//! `LogScanExec`: a bounded scan of a stream's partition logs, one DataFusion partition
//! per log partition, reading offsets `[from, to)` fixed when the plan was made (a
//! consistent snapshot: rows committed later are not seen by this query).
//!
//! Reading is blocking file IO, so each partition reads on a blocking thread and hands
//! batches over a channel of two: a slow consumer stops the reader (backpressure).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

use super::filters::PartitionRange;
use crate::stream::{Stream, metadata_column};

/// Scan of a stream's logs.
#[derive(Debug)]
pub struct LogScanExec {
    stream: Arc<Stream>,
    /// Indices into the stream's table schema (user columns, then metadata columns).
    projection: Vec<usize>,
    /// What each output partition reads; empty means one empty partition.
    ranges: Vec<PartitionRange>,
    /// Stop each partition after this many rows (DataFusion still applies the LIMIT).
    limit: Option<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl LogScanExec {
    pub fn try_new(
        stream: Arc<Stream>,
        projection: Option<Vec<usize>>,
        ranges: Vec<PartitionRange>,
        limit: Option<usize>,
    ) -> Result<Self> {
        let projection =
            projection.unwrap_or_else(|| (0..stream.table_schema.fields().len()).collect());
        let schema = Arc::new(stream.table_schema.project(&projection)?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(ranges.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(LogScanExec {
            stream,
            projection,
            ranges,
            limit,
            schema,
            properties,
        })
    }

    pub fn ranges(&self) -> &[PartitionRange] {
        &self.ranges
    }
}

impl DisplayAs for LogScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let ranges: Vec<String> = self
            .ranges
            .iter()
            .map(|r| format!("p{}:{}..{}", r.partition, r.from, r.to))
            .collect();
        write!(
            f,
            "LogScanExec: stream={}, offsets=[{}]",
            self.stream.name(),
            ranges.join(", ")
        )?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for LogScanExec {
    fn name(&self) -> &str {
        "LogScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 2);
        let Some(range) = self.ranges.get(partition).copied() else {
            return Ok(builder.build());
        };
        let tx = builder.tx();
        let log = self.stream.partitions()[range.partition as usize].clone();
        let user_columns = self.stream.schema.fields().len();
        // The user columns to decode, in table order; at least one so rows can be counted.
        let mut decode: Vec<usize> = self
            .projection
            .iter()
            .copied()
            .filter(|&i| i < user_columns)
            .collect();
        decode.sort_unstable();
        decode.dedup();
        if decode.is_empty() {
            decode.push(0);
        }
        let projection = self.projection.clone();
        let schema = self.schema.clone();
        let limit = self.limit;
        builder.spawn_blocking(move || {
            let mut emitted = 0usize;
            for item in log.scan(range.from, range.to, Some(decode.clone())) {
                let log_batch = item.map_err(|e| DataFusionError::External(Box::new(e)))?;
                let columns: Vec<ArrayRef> = projection
                    .iter()
                    .map(|&i| {
                        if i < user_columns {
                            let at = decode.iter().position(|&d| d == i).expect("decoded");
                            // A narrow read's columns are the log's own copies (see
                            // `LogScan::read`), not slices of whole frames.
                            Ok(log_batch.batch.column(at).clone())
                        } else {
                            Ok(metadata_column(
                                i - user_columns,
                                range.partition,
                                &log_batch,
                            ))
                        }
                    })
                    .collect::<Result<_>>()?;
                let options =
                    RecordBatchOptions::new().with_row_count(Some(log_batch.batch.num_rows()));
                let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
                emitted += batch.num_rows();
                if tx.blocking_send(Ok(batch)).is_err() {
                    break; // the consumer is gone (LIMIT reached or query cancelled)
                }
                if limit.is_some_and(|l| emitted >= l) {
                    break;
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}
