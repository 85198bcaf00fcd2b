//! `CREATE SINK`, `DROP SINK`, `SHOW SINKS`, and starting the sinks at start-up: the
//! catalog side of [`crate::external`]'s sinks.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::sql::sqlparser::ast::SqlOption;
use parking_lot::Mutex;

use super::{Engine, Error, Result, StatementResult};
use crate::catalog::SinkDef;
use crate::connector::sink::SinkSpec;
use crate::external::{SinkHandle, SinkInput, SinkStatus, kafka_sink, postgres_sink};

impl Engine {
    pub(super) async fn create_sink(
        &self,
        name: String,
        if_not_exists: bool,
        from: String,
        options: &[SqlOption],
    ) -> Result<StatementResult> {
        let options = crate::sql::StreamOptions::option_pairs(options).map_err(Error::Invalid)?;
        let mut catalog = self.catalog.lock().await;
        if catalog.sink(&name).is_some() {
            if if_not_exists {
                return Ok(ok(format!("sink {name} already exists")));
            }
            return Err(Error::AlreadyExists(format!(
                "sink \"{name}\" already exists; use CREATE SINK IF NOT EXISTS, or DROP SINK {name} first"
            )));
        }
        let spec = SinkSpec::from_options(&name, &options).map_err(Error::Invalid)?;
        let input = self.sink_input(&from)?;
        match (&spec, &input) {
            (SinkSpec::Postgres(pg), _) => {
                postgres_sink::prepare(
                    pg,
                    &name,
                    &input.schema(),
                    matches!(input, SinkInput::View(_)),
                )
                .await
                .map_err(Error::Invalid)?;
            }
            (SinkSpec::Kafka(_), SinkInput::View(_)) => {
                return Err(Error::Invalid(format!(
                    "{from} is a materialized view, whose rows change; a Kafka sink writes a stream's rows: \
                     write the changes as a stream (CREATE STREAM {from}_changes AS SELECT ... EMIT CHANGES) and sink that"
                )));
            }
            (SinkSpec::Kafka(kafka), SinkInput::Stream(stream)) => {
                if let Some(key) = &kafka.key
                    && stream.schema.index_of(key).is_err()
                {
                    return Err(Error::Invalid(format!(
                        "key column \"{key}\" is not a column of {from}"
                    )));
                }
                let (check, sink) = (kafka.clone(), name.clone());
                tokio::task::spawn_blocking(move || kafka_sink::check(&check, &sink))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
                    .map_err(Error::Invalid)?;
            }
        }
        let def = SinkDef {
            name: name.clone(),
            from,
            options,
            created_at_ms: self.clock.now_ms(),
        };
        catalog.put_sink(def.clone())?;
        drop(catalog);
        self.start_sink(&def);
        tracing::info!(sink = %name, "created sink");
        Ok(ok(format!("created sink {name}")))
    }

    pub(super) async fn drop_sink(&self, name: &str, if_exists: bool) -> Result<StatementResult> {
        let mut catalog = self.catalog.lock().await;
        if catalog.remove_sink(name)?.is_none() {
            if if_exists {
                return Ok(ok(format!("sink {name} does not exist")));
            }
            return Err(Error::NotFound(format!(
                "unknown sink \"{name}\"; SHOW SINKS lists the sinks that exist"
            )));
        }
        self.sinks.lock().remove(name);
        Ok(ok(format!("dropped sink {name}")))
    }

    /// The sinks reading `from` (DROP of a stream or view they read is refused).
    pub(super) fn sinks_of(&self, catalog: &crate::catalog::Catalog, from: &str) -> Vec<String> {
        catalog
            .sinks()
            .filter(|s| s.from == from)
            .map(|s| s.name.clone())
            .collect()
    }

    fn sink_input(&self, from: &str) -> Result<SinkInput> {
        if let Some(view) = self.view(from) {
            return Ok(SinkInput::View(view));
        }
        if let Some(stream) = self.stream(from) {
            return Ok(SinkInput::Stream(stream));
        }
        Err(Error::NotFound(format!(
            "unknown stream or materialized view \"{from}\"; a sink reads one of them"
        )))
    }

    /// Starts a sink of the catalog (at CREATE and at start-up).
    pub(super) fn start_sink(&self, def: &SinkDef) {
        let status = Arc::new(Mutex::new(SinkStatus {
            state: "starting".into(),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (spec, input) = match (
            SinkSpec::from_options(&def.name, &def.options),
            self.sink_input(&def.from),
        ) {
            (Ok(spec), Ok(input)) => (spec, input),
            (Err(e), _) | (_, Err(Error::NotFound(e))) => {
                tracing::error!(sink = %def.name, "cannot start the sink: {e}");
                return;
            }
            (_, Err(e)) => {
                tracing::error!(sink = %def.name, "cannot start the sink: {e}");
                return;
            }
        };
        // What the sink's progress is stored under (in `weir_sink_progress`, or as the
        // Kafka group and transactional id): the name and the creation time, so a sink
        // dropped and created again starts afresh.
        let identity = format!("{}-{}", def.name, def.created_at_ms);
        let task = match (spec, input) {
            (SinkSpec::Postgres(pg), input) => Some(tokio::spawn(postgres_sink::run(
                identity,
                pg,
                input,
                status.clone(),
            ))),
            (SinkSpec::Kafka(kafka), SinkInput::Stream(stream)) => {
                kafka_sink::start(
                    def.name.clone(),
                    kafka,
                    stream,
                    status.clone(),
                    stop.clone(),
                );
                None
            }
            (SinkSpec::Kafka(_), SinkInput::View(_)) => return,
        };
        self.sinks
            .lock()
            .insert(def.name.clone(), SinkHandle { status, task, stop });
    }

    pub(super) async fn start_catalog_sinks(&self) {
        let defs: Vec<SinkDef> = self.catalog.lock().await.sinks().cloned().collect();
        for def in defs {
            self.start_sink(&def);
        }
    }

    /// Every sink with its state (`GET /v1/sinks`, the console).
    pub async fn sinks(&self) -> Vec<(SinkDef, SinkStatus)> {
        let defs: Vec<SinkDef> = self.catalog.lock().await.sinks().cloned().collect();
        defs.into_iter()
            .map(|d| {
                let status = self.sink_status(&d.name).unwrap_or_default();
                (d, status)
            })
            .collect()
    }

    /// A sink's state, for the queries API and the console.
    pub fn sink_status(&self, name: &str) -> Option<SinkStatus> {
        self.sinks.lock().get(name).map(|s| s.status.lock().clone())
    }

    /// `SHOW SINKS`: name, input, connector, target, state, rows written, lag, error.
    pub(super) async fn show_sinks(&self) -> StatementResult {
        let defs: Vec<SinkDef> = self.catalog.lock().await.sinks().cloned().collect();
        let statuses: Vec<SinkStatus> = defs
            .iter()
            .map(|d| self.sink_status(&d.name).unwrap_or_default())
            .collect();
        let specs: Vec<Option<SinkSpec>> = defs
            .iter()
            .map(|d| SinkSpec::from_options(&d.name, &d.options).ok())
            .collect();
        let text = |values: Vec<String>| Arc::new(StringArray::from(values)) as ArrayRef;
        super::show::rows(
            vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("from", DataType::Utf8, false),
                Field::new("connector", DataType::Utf8, false),
                Field::new("target", DataType::Utf8, false),
                Field::new("state", DataType::Utf8, false),
                Field::new("rows", DataType::Int64, false),
                Field::new("lag", DataType::Int64, false),
                Field::new("error", DataType::Utf8, true),
            ],
            vec![
                text(defs.iter().map(|d| d.name.clone()).collect()),
                text(defs.iter().map(|d| d.from.clone()).collect()),
                text(
                    specs
                        .iter()
                        .map(|s| s.as_ref().map_or("?", |s| s.connector()).to_string())
                        .collect(),
                ),
                text(
                    specs
                        .iter()
                        .map(|s| s.as_ref().map_or(String::new(), |s| s.target()))
                        .collect(),
                ),
                text(statuses.iter().map(|s| s.state.clone()).collect()),
                Arc::new(Int64Array::from_iter_values(
                    statuses.iter().map(|s| s.rows as i64),
                )),
                Arc::new(Int64Array::from_iter_values(
                    statuses.iter().map(|s| s.lag as i64),
                )),
                Arc::new(StringArray::from(
                    statuses.iter().map(|s| s.error.clone()).collect::<Vec<_>>(),
                )),
            ],
        )
    }
}

fn ok(message: String) -> StatementResult {
    StatementResult::Ok {
        message,
        rows_affected: None,
    }
}
