//! Streams as DataFusion tables: a [`TableProvider`] per stream whose scan reads the
//! partition logs (projection and `_partition`/`_offset` filters pushed down) and whose
//! `insert_into` appends durably, plus the schema provider that resolves stream names
//! from the live set of streams. Knows nothing about HTTP or the catalog file.

mod filters;
mod scan;
mod sink;
mod view;

pub use view::{ViewState, ViewTable};

pub use scan::LogScanExec;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use parking_lot::RwLock;

use crate::stream::Stream;

/// The live streams by name, shared by the engine (which adds and removes them) and the
/// schema provider (which resolves them while planning).
pub type StreamRegistry = Arc<RwLock<BTreeMap<String, Arc<Stream>>>>;

/// The materialized views by name, shared the same way.
pub type ViewRegistry = Arc<RwLock<BTreeMap<String, Arc<ViewState>>>>;

/// A stream seen as a table. Cheap: made per planning lookup.
#[derive(Debug)]
pub struct StreamTable {
    stream: Arc<Stream>,
}

impl StreamTable {
    pub fn new(stream: Arc<Stream>) -> Self {
        StreamTable { stream }
    }
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.stream.table_schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if filters::is_offset_filter(f) {
                    // Used to narrow the offsets read; DataFusion still applies it.
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let ranges = filters::partition_ranges(&self.stream, filters);
        Ok(Arc::new(LogScanExec::try_new(
            self.stream.clone(),
            projection.cloned(),
            ranges,
            limit,
        )?))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(refusal) = self.stream.refuses_writes() {
            return datafusion::common::plan_err!("{refusal}");
        }
        let sink = sink::StreamSink::new(self.stream.clone());
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// Resolves table names to streams while DataFusion plans a statement.
#[derive(Debug)]
pub struct StreamSchemaProvider {
    streams: StreamRegistry,
    views: ViewRegistry,
}

impl StreamSchemaProvider {
    pub fn new(streams: StreamRegistry, views: ViewRegistry) -> Self {
        StreamSchemaProvider { streams, views }
    }
}

#[async_trait]
impl SchemaProvider for StreamSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.streams.read().keys().cloned().collect();
        names.extend(self.views.read().keys().cloned());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(stream) = self.streams.read().get(name).cloned() {
            return Ok(Some(Arc::new(StreamTable::new(stream))));
        }
        let view = self.views.read().get(name).cloned();
        Ok(view.map(|v| Arc::new(ViewTable::new(v)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.streams.read().contains_key(name) || self.views.read().contains_key(name)
    }
}
