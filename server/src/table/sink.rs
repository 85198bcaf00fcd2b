//! The write side of a stream table: `INSERT INTO s ...` lands here through DataFusion's
//! `DataSinkExec`. All rows of one INSERT are appended as one durable write, so an INSERT
//! is all-or-nothing, like an HTTP ingest request.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::datasource::sink::DataSink;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, SendableRecordBatchStream};
use futures::TryStreamExt;

use crate::stream::{METADATA_COLUMNS, Stream};

/// Appends the rows of an INSERT to a stream.
#[derive(Debug)]
pub struct StreamSink {
    stream: Arc<Stream>,
}

impl StreamSink {
    pub fn new(stream: Arc<Stream>) -> Self {
        StreamSink { stream }
    }
}

impl DisplayAs for StreamSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StreamSink: stream={}", self.stream.name())
    }
}

#[async_trait]
impl DataSink for StreamSink {
    /// The table's schema (user and metadata columns): what the INSERT plan produces.
    #[allow(clippy::misnamed_getters)]
    fn schema(&self) -> &SchemaRef {
        &self.stream.table_schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let batches: Vec<_> = data.try_collect().await?;
        let user = self.stream.schema.clone();
        let n = user.fields().len();
        let mut parts = Vec::with_capacity(batches.len());
        let mut rows_before = 0;
        for batch in &batches {
            if batch.columns()[n..]
                .iter()
                .any(|c| c.null_count() != c.len())
            {
                return plan_err!(
                    "{} are assigned by Weir and cannot be inserted; leave them out of the INSERT",
                    METADATA_COLUMNS.join(", ")
                );
            }
            for (field, column) in user.fields().iter().zip(batch.columns()) {
                if !field.is_nullable() && column.null_count() > 0 {
                    let row = rows_before
                        + (0..column.len()).find(|&r| column.is_null(r)).unwrap_or(0)
                        + 1;
                    return plan_err!(
                        "row {row}, column \"{}\": NULL in a NOT NULL column",
                        field.name()
                    );
                }
            }
            rows_before += batch.num_rows();
            parts.push(RecordBatch::try_new(
                user.clone(),
                batch.columns()[..n].to_vec(),
            )?);
        }
        let batch = concat_batches(&user, &parts)?;
        let rows = batch.num_rows() as u64;
        let stream = self.stream.clone();
        tokio::task::spawn_blocking(move || stream.append(&batch))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(rows)
    }
}
