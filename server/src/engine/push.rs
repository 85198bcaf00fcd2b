//! Push queries and late-data streams: the continuous queries that deliver outside the
//! catalog's views and derived streams (to a subscriber, or to a stream of late events).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;

use super::{Engine, Error, Result, ddl};
use crate::catalog::{QueryDef, QueryKind, StreamDef};
use crate::planner::ContinuousPlan;
use crate::runtime::{RunningQuery, Sink};

/// Ids of push queries (transient, never persisted; high so they never meet catalog ids).
static PUSH_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 48);

impl Engine {
    /// Starts a push query (`GET /v1/sql/stream`): `select` runs continuously from the
    /// current end of its input (new rows only) and its results go to the returned
    /// channel, which holds at most `buffer` batches. It is not in the catalog: it lives
    /// as long as its subscriber.
    pub async fn start_push_query(
        &self,
        select: &str,
        emit: Option<crate::sql::Emit>,
        buffer: usize,
    ) -> Result<(
        Arc<RunningQuery>,
        tokio::sync::mpsc::Receiver<datafusion::arrow::array::RecordBatch>,
    )> {
        self.check_query_count()?;
        let plan = self.plan_select(select).await?;
        // Windowed push queries default to EMIT FINAL, the others to EMIT CHANGES (SQL.md).
        let windowed = plan.last_node().closes_windows();
        if plan
            .stateful()
            .any(|(_, s)| matches!(&s.kind, crate::planner::StatefulKind::Dedup(d) if d.latest))
        {
            return Err(Error::Invalid(
                "keeping the latest row per key replaces rows as later ones arrive, so it runs \
                 as a MATERIALIZED VIEW; a push query can keep the first row per key (ORDER BY ts)"
                    .into(),
            ));
        }
        let emit_changes = match emit {
            Some(crate::sql::Emit::Changes) => true,
            Some(crate::sql::Emit::Final) => false,
            None => !windowed,
        };
        if let Some(agg) = plan.final_aggregate() {
            if emit_changes && agg.window.as_ref().is_some_and(|w| w.session.is_some()) {
                return Err(Error::Invalid(
                    "EMIT CHANGES over SESSION windows is not available yet; use EMIT FINAL".into(),
                ));
            }
            if agg.window.is_none() && !emit_changes {
                return Err(Error::Invalid(
                    "EMIT FINAL needs a window: an aggregate without one never finishes a group; \
                     use EMIT CHANGES, or add a window"
                        .into(),
                ));
            }
        }
        if plan.windowed()
            && let Some(source) = plan.sources().iter().find(|s| s.def.watermark.is_none())
        {
            return Err(Error::Invalid(format!(
                "continuous windows need event time, but stream {} has no WATERMARK",
                source.name()
            )));
        }
        let id = PUSH_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let def = QueryDef {
            id,
            name: format!("push-{id}"),
            kind: QueryKind::Stream,
            select: select.to_string(),
            source: plan.sources()[0].name().to_string(),
            inputs: plan
                .sources()
                .iter()
                .map(|s| s.name().to_string())
                .collect(),
            created_at_ms: self.clock.now_ms(),
            // A push query shows what arrives from now on, in every input.
            start_offsets: None,
            input_start_offsets: plan
                .sources()
                .iter()
                .map(|s| {
                    let offsets = s
                        .partitions()
                        .iter()
                        .map(|p| p.committed_offset())
                        .collect();
                    (s.name().to_string(), offsets)
                })
                .collect(),
            parallelism: 1,
            retention_ms: None,
            late_data: None,
            emit_changes,
            dedup_retention_ms: None,
            state_ttl_ms: None,
            state_limit_bytes: None,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(buffer.max(1));
        let query = RunningQuery::start(
            def,
            plan,
            Sink::Channel(tx),
            crate::runtime::Start {
                store: None,
                restored: None,
                interval: std::time::Duration::MAX,
            },
            self.clock.clone(),
            None,
        )
        .map_err(|e| Error::Internal(format!("starting push query: {e}")))?;
        self.push_queries.lock().push(Arc::downgrade(&query));
        tokio::spawn(super::continuous::watch_state(
            Arc::downgrade(&query),
            self.config.limits.state_limit_bytes,
        ));
        Ok((query, rx))
    }

    /// `late_data = 'name'`: the stream late events go to. Created with the source's
    /// columns (and event time) when missing; an existing one must have those columns.
    pub(super) async fn ensure_late_stream(
        &self,
        catalog: &mut crate::catalog::Catalog,
        name: &str,
        plan: &ContinuousPlan,
    ) -> Result<()> {
        ddl::validate_name(name)?;
        let source = &plan.sources()[0];
        if let Some(existing) = self.stream(name) {
            let columns = |s: &datafusion::arrow::datatypes::Schema| -> Vec<(String, DataType)> {
                s.fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone()))
                    .collect()
            };
            if columns(&existing.schema) != columns(&source.schema) {
                return Err(Error::Invalid(format!(
                    "late_data stream {name} exists with other columns than {}'s; name a new stream, and Weir creates it",
                    source.name()
                )));
            }
            return Ok(());
        }
        if self.views.read().contains_key(name) {
            return Err(Error::Invalid(format!(
                "late_data: {name} is a materialized view, not a stream"
            )));
        }
        let def = StreamDef {
            name: name.to_string(),
            id: catalog.allocate_id(),
            schema: source.def.schema.clone(),
            partitions: 1,
            key: Vec::new(),
            watermark: source.def.watermark.clone(),
            retention_ms: None,
            retention_bytes: None,
            idle_timeout_ms: source.def.idle_timeout_ms,
            options: Vec::new(),
            query: None,
            created_at_ms: self.clock.now_ms(),
        };
        let stream = ddl::open_stream(&self.config, def.clone(), self.clock.clone()).await?;
        catalog.put_stream(def)?;
        self.streams.write().insert(name.to_string(), stream);
        Ok(())
    }
}
