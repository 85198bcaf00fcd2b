//! A materialized view as a DataFusion table: its current rows ([`ViewState`], which
//! the runtime updates) and a scan of them.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use datafusion::arrow::array::RecordBatch;
use parking_lot::RwLock;

/// The current rows of a materialized view.
#[derive(Debug)]
pub struct ViewState {
    pub schema: SchemaRef,
    /// Rows appended by a stateless query.
    batches: RwLock<Vec<RecordBatch>>,
    /// Contents replaced by each operator of an aggregating query (one slot each).
    slots: RwLock<Vec<Vec<RecordBatch>>>,
    /// The epoch of the checkpoint the contents are of (0 before the first): sinks of
    /// the view wake on it.
    epoch: tokio::sync::watch::Sender<u64>,
}

impl ViewState {
    pub fn new(schema: SchemaRef) -> Self {
        ViewState {
            schema,
            batches: RwLock::new(Vec::new()),
            slots: RwLock::new(Vec::new()),
            epoch: tokio::sync::watch::channel(0).0,
        }
    }

    /// Marks the contents as those of checkpoint `epoch` (called once it committed).
    pub fn committed(&self, epoch: u64) {
        self.epoch.send_replace(epoch);
    }

    /// Wakes when a checkpoint's contents are in place.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// A snapshot of the rows (cheap: batches are shared).
    pub fn batches(&self) -> Vec<RecordBatch> {
        let mut all = self.batches.read().clone();
        all.extend(self.slots.read().iter().flatten().cloned());
        all
    }

    /// Replaces the contents of one operator's slot (a view whose rows update).
    pub fn replace(&self, slot: usize, batches: Vec<RecordBatch>) -> Result<(), String> {
        let batches = batches
            .into_iter()
            .map(|b| {
                RecordBatch::try_new(self.schema.clone(), b.columns().to_vec())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut slots = self.slots.write();
        if slots.len() <= slot {
            slots.resize(slot + 1, Vec::new());
        }
        slots[slot] = batches;
        Ok(())
    }

    /// Appends rows (a view whose rows only grow).
    pub fn append(&self, batches: Vec<RecordBatch>) -> Result<(), String> {
        let mut state = self.batches.write();
        for batch in batches {
            state.push(
                RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.batches().iter().map(|b| b.num_rows()).sum()
    }
}

#[derive(Debug)]
pub struct ViewTable {
    view: Arc<ViewState>,
}

impl ViewTable {
    pub fn new(view: Arc<ViewState>) -> Self {
        ViewTable { view }
    }
}

#[async_trait]
impl TableProvider for ViewTable {
    fn schema(&self) -> SchemaRef {
        self.view.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = self.view.batches();
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.view.schema.clone(),
            projection.cloned(),
        )?)
    }
}
