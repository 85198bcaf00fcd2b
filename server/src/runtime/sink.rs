//! Where a continuous query's output goes: a derived stream (appended durably, so its
//! readers see it once committed) or a materialized view's state (held in memory and
//! rebuilt from the source at start-up).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;

use crate::stream::Stream;
pub use crate::table::ViewState;

#[derive(Debug, Clone)]
pub enum Sink {
    Stream(Arc<Stream>),
    View(Arc<ViewState>),
    /// A push query's subscriber. Bounded: a subscriber that falls this far behind
    /// fails the query (and is told so) rather than growing the server's memory.
    Channel(tokio::sync::mpsc::Sender<RecordBatch>),
}

impl Sink {
    /// Takes one step's output; returns once it is durable (streams) or visible (views).
    pub async fn write(&self, batches: Vec<RecordBatch>) -> Result<(), String> {
        if batches.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Stream(stream) => {
                let stream = stream.clone();
                tokio::task::spawn_blocking(move || {
                    let batch =
                        concat_batches(&stream.schema, &batches).map_err(|e| e.to_string())?;
                    let batch =
                        RecordBatch::try_new(stream.schema.clone(), batch.columns().to_vec())
                            .map_err(|e| e.to_string())?;
                    // Readable once the checkpoint covering it commits (read-committed).
                    stream.append_uncommitted(&batch).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Sink::Channel(tx) => {
                for batch in batches {
                    tx.try_send(batch).map_err(|e| match e {
                        tokio::sync::mpsc::error::TrySendError::Full(_) => format!(
                            "the client fell more than {} result batches behind and was disconnected; read faster or narrow the query",
                            tx.max_capacity()
                        ),
                        tokio::sync::mpsc::error::TrySendError::Closed(_) => "the client went away".to_string(),
                    })?;
                }
                Ok(())
            }
            Sink::View(view) => view.append(batches),
        }
    }
}
