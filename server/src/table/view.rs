//! A materialized view as a DataFusion table: a scan of its current rows.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::runtime::ViewState;

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
