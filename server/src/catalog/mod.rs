//! The catalog: definitions of streams, continuous queries (derived streams and
//! materialized views) and dashboards,
//! persisted as one JSON document in the data dir and recovered at start.
//! Knows nothing about execution or storage of rows.
//!
//! Durability: every change rewrites `catalog.json` through a temporary file that is
//! fsynced and then renamed over the old one (and the directory fsynced), so a crash
//! leaves either the old or the new catalog, never a torn one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::Schema;
use serde::{Deserialize, Serialize};

/// A catalog file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot {action} catalog file {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "catalog file {path} is not valid: {source}; restore it from a backup or move it away to start empty"
    )]
    Invalid {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The definition of a stream, as `CREATE STREAM` gave it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamDef {
    pub name: String,
    /// Unique for the life of the data dir: names its directory, so a stream dropped and
    /// created again never sees the old one's files.
    pub id: u64,
    /// User columns (the metadata columns are not stored).
    pub schema: Schema,
    pub partitions: u32,
    /// Partitioning key columns; empty means round-robin per batch.
    pub key: Vec<String>,
    pub watermark: Option<WatermarkDef>,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub idle_timeout_ms: i64,
    /// Options interpreted by later layers (`start`, `connector`, ...).
    #[serde(default)]
    pub options: Vec<(String, String)>,
    /// For a derived stream, the query that writes it.
    #[serde(default)]
    pub query: Option<String>,
    pub created_at_ms: i64,
}

impl StreamDef {
    /// Directory of the stream's partitions, relative to the data dir.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.id)
    }
}

/// `WATERMARK FOR column AS column - INTERVAL ...`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatermarkDef {
    pub column: String,
    pub delay_ms: i64,
    /// The expression as written, for DESCRIBE and EXPLAIN.
    pub expression: String,
}

/// What a continuous query writes into.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    /// `CREATE STREAM name AS SELECT ...`
    Stream,
    /// `CREATE MATERIALIZED VIEW name AS SELECT ...`
    MaterializedView,
}

/// A continuous query: its output's name and the SELECT it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueryDef {
    pub id: u64,
    /// The stream or view it writes (also the query's name).
    pub name: String,
    pub kind: QueryKind,
    /// The SELECT, as the user wrote it.
    pub select: String,
    /// The first stream it reads (see `inputs`).
    pub source: String,
    /// Every stream it reads, in the order of their first scan (a `UNION ALL` of
    /// streams reads several). Empty in catalogs written before: then `source` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    pub created_at_ms: i64,
    /// With `start = 'latest'`: the source offsets it starts from (new rows only).
    /// `None` is the default, the earliest retained offsets (backfill).
    #[serde(default)]
    pub start_offsets: Option<Vec<u64>>,
    /// With `start = 'latest'`, for the inputs after the first (push queries: all of
    /// them): their start offsets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_start_offsets: BTreeMap<String, Vec<u64>>,
    /// Operator tasks of a stateful query (`WITH (parallelism = N)`, default 1).
    #[serde(default = "one")]
    pub parallelism: usize,
    /// Views: closed windows are kept this long (event time) past the watermark.
    #[serde(default)]
    pub retention_ms: Option<i64>,
    /// `late_data = 'stream'`: late events are appended there as they arrived.
    #[serde(default)]
    pub late_data: Option<String>,
    /// `EMIT CHANGES`: an aggregate's output updates as data arrives, each row with
    /// `_op` ('+' or '-'). Otherwise a windowed aggregate emits once per window (FINAL).
    /// Views always hold current values; with `EMIT FINAL` they show closed windows only.
    #[serde(default)]
    pub emit_changes: bool,
    /// `WITH (dedup_retention = ...)`: a deduplicated key is forgotten this long after
    /// its row was emitted (`None`: kept forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_retention_ms: Option<i64>,
    /// `WITH (state_ttl = ...)`: a regular join holds each row this long past the
    /// watermark, by its event time (`None`: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_ttl_ms: Option<i64>,
    /// `WITH (state_limit = ...)`: the state the query may hold before it stops with a
    /// message (`None`: the server's `--state-limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_limit_bytes: Option<u64>,
}

fn one() -> usize {
    1
}

impl QueryDef {
    /// The streams it reads.
    pub fn inputs(&self) -> Vec<String> {
        match self.inputs.is_empty() {
            true => vec![self.source.clone()],
            false => self.inputs.clone(),
        }
    }

    /// Whether it reads `stream` (as an input or as its late-data stream).
    pub fn reads(&self, stream: &str) -> bool {
        self.inputs().iter().any(|s| s == stream) || self.late_data.as_deref() == Some(stream)
    }

    /// With `start = 'latest'`: the offsets it starts `stream` from.
    pub fn start_offsets_of(&self, stream: &str) -> Option<Vec<u64>> {
        match self.input_start_offsets.get(stream) {
            Some(offsets) => Some(offsets.clone()),
            None if stream == self.source => self.start_offsets.clone(),
            None => None,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CatalogFile {
    version: u32,
    next_id: u64,
    streams: BTreeMap<String, StreamDef>,
    #[serde(default)]
    queries: BTreeMap<String, QueryDef>,
    /// Saved console dashboards by id, kept as the JSON the client sent (unknown fields
    /// are kept, per HTTP.md).
    #[serde(default)]
    dashboards: BTreeMap<String, serde_json::Value>,
    /// Sinks (`CREATE SINK`) by name.
    #[serde(default)]
    sinks: BTreeMap<String, SinkDef>,
}

/// `CREATE SINK name FROM source WITH (...)`: what a sink writes where.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SinkDef {
    pub name: String,
    /// The stream or materialized view it writes out.
    pub from: String,
    /// Its `WITH` options (lowercase keys, unquoted values).
    pub options: Vec<(String, String)>,
    pub created_at_ms: i64,
}

/// The persisted catalog. Callers serialise changes (the engine holds it in a mutex).
#[derive(Debug)]
pub struct Catalog {
    path: PathBuf,
    file: CatalogFile,
}

impl Catalog {
    /// Loads `catalog.json` from `data_dir`, or starts empty.
    pub fn load(data_dir: &Path) -> Result<Catalog, CatalogError> {
        let path = data_dir.join("catalog.json");
        let file = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| CatalogError::Invalid {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CatalogFile {
                version: 1,
                ..Default::default()
            },
            Err(source) => {
                return Err(CatalogError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        Ok(Catalog { path, file })
    }

    pub fn streams(&self) -> impl Iterator<Item = &StreamDef> {
        self.file.streams.values()
    }

    pub fn stream(&self, name: &str) -> Option<&StreamDef> {
        self.file.streams.get(name)
    }

    /// A fresh id for a new object.
    pub fn allocate_id(&mut self) -> u64 {
        self.file.next_id += 1;
        self.file.next_id
    }

    /// Adds (or replaces) a stream and persists the catalog.
    pub fn put_stream(&mut self, def: StreamDef) -> Result<(), CatalogError> {
        let previous = self.file.streams.insert(def.name.clone(), def.clone());
        self.save().inspect_err(|_| {
            // Keep memory equal to disk when the write failed.
            match previous {
                Some(old) => self.file.streams.insert(def.name.clone(), old),
                None => self.file.streams.remove(&def.name),
            };
        })
    }

    /// Removes a stream and persists the catalog.
    pub fn remove_stream(&mut self, name: &str) -> Result<Option<StreamDef>, CatalogError> {
        let removed = self.file.streams.remove(name);
        if let Some(def) = &removed
            && let Err(e) = self.save()
        {
            self.file.streams.insert(name.to_string(), def.clone());
            return Err(e);
        }
        Ok(removed)
    }

    pub fn queries(&self) -> impl Iterator<Item = &QueryDef> {
        self.file.queries.values()
    }

    pub fn query(&self, name: &str) -> Option<&QueryDef> {
        self.file.queries.get(name)
    }

    /// Adds a query, and the derived stream it writes if any, in one durable change.
    pub fn put_query(
        &mut self,
        query: QueryDef,
        output: Option<StreamDef>,
    ) -> Result<(), CatalogError> {
        let previous_query = self.file.queries.insert(query.name.clone(), query.clone());
        let previous_stream = output.map(|def| {
            (
                def.name.clone(),
                self.file.streams.insert(def.name.clone(), def),
            )
        });
        self.save().inspect_err(|_| {
            match previous_query {
                Some(old) => self.file.queries.insert(query.name.clone(), old),
                None => self.file.queries.remove(&query.name),
            };
            if let Some((name, old)) = previous_stream {
                match old {
                    Some(old) => self.file.streams.insert(name, old),
                    None => self.file.streams.remove(&name),
                };
            }
        })
    }

    /// Removes a query (and the stream it writes, if `with_stream`) in one durable change.
    pub fn remove_query(
        &mut self,
        name: &str,
        with_stream: bool,
    ) -> Result<Option<QueryDef>, CatalogError> {
        let Some(query) = self.file.queries.remove(name) else {
            return Ok(None);
        };
        let stream = if with_stream {
            self.file.streams.remove(name)
        } else {
            None
        };
        if let Err(e) = self.save() {
            self.file.queries.insert(name.to_string(), query);
            if let Some(def) = stream {
                self.file.streams.insert(name.to_string(), def);
            }
            return Err(e);
        }
        Ok(Some(query))
    }

    pub fn dashboards(&self) -> impl Iterator<Item = (&String, &serde_json::Value)> {
        self.file.dashboards.iter()
    }

    pub fn dashboard(&self, id: &str) -> Option<&serde_json::Value> {
        self.file.dashboards.get(id)
    }

    /// Creates or replaces a dashboard; returns whether it existed.
    pub fn put_dashboard(
        &mut self,
        id: &str,
        body: serde_json::Value,
    ) -> Result<bool, CatalogError> {
        let previous = self.file.dashboards.insert(id.to_string(), body);
        self.save().inspect_err(|_| {
            match &previous {
                Some(old) => self.file.dashboards.insert(id.to_string(), old.clone()),
                None => self.file.dashboards.remove(id),
            };
        })?;
        Ok(previous.is_some())
    }

    /// Deletes a dashboard; returns whether it existed.
    pub fn remove_dashboard(&mut self, id: &str) -> Result<bool, CatalogError> {
        let Some(old) = self.file.dashboards.remove(id) else {
            return Ok(false);
        };
        self.save()
            .inspect_err(|_| {
                self.file.dashboards.insert(id.to_string(), old);
            })
            .map(|_| true)
    }

    pub fn sinks(&self) -> impl Iterator<Item = &SinkDef> {
        self.file.sinks.values()
    }

    pub fn sink(&self, name: &str) -> Option<&SinkDef> {
        self.file.sinks.get(name)
    }

    pub fn put_sink(&mut self, def: SinkDef) -> Result<(), CatalogError> {
        let name = def.name.clone();
        let previous = self.file.sinks.insert(name.clone(), def);
        self.save().inspect_err(|_| {
            match &previous {
                Some(old) => self.file.sinks.insert(name.clone(), old.clone()),
                None => self.file.sinks.remove(&name),
            };
        })
    }

    pub fn remove_sink(&mut self, name: &str) -> Result<Option<SinkDef>, CatalogError> {
        let Some(old) = self.file.sinks.remove(name) else {
            return Ok(None);
        };
        self.save()
            .inspect_err(|_| {
                self.file.sinks.insert(name.to_string(), old.clone());
            })
            .map(|_| Some(old))
    }

    fn save(&self) -> Result<(), CatalogError> {
        let io = |action| {
            move |source| CatalogError::Io {
                action,
                path: self.path.clone(),
                source,
            }
        };
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.file).expect("catalog serialises");
        let mut f = std::fs::File::create(&tmp).map_err(io("create"))?;
        f.write_all(&bytes).map_err(io("write"))?;
        f.sync_all().map_err(io("sync"))?;
        std::fs::rename(&tmp, &self.path).map_err(io("replace"))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync directory of"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

    #[test]
    fn streams_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::load(dir.path()).unwrap();
        let id = catalog.allocate_id();
        let def = StreamDef {
            name: "bids".into(),
            id,
            schema: Schema::new(vec![
                Field::new("auction", DataType::Int64, true),
                Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            ]),
            partitions: 4,
            key: vec!["auction".into()],
            watermark: Some(WatermarkDef {
                column: "ts".into(),
                delay_ms: 4000,
                expression: "ts - INTERVAL '4' SECOND".into(),
            }),
            retention_ms: None,
            retention_bytes: Some(1 << 30),
            idle_timeout_ms: 5000,
            options: vec![],
            query: None,
            created_at_ms: 1,
        };
        catalog.put_stream(def.clone()).unwrap();
        let reloaded = Catalog::load(dir.path()).unwrap();
        assert_eq!(reloaded.stream("bids"), Some(&def));
        assert!(reloaded.file.next_id >= id);
    }

    #[test]
    fn corrupt_catalog_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("catalog.json"), b"{not json").unwrap();
        let err = Catalog::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
    }
}
