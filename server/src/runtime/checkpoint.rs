//! Checkpoints of continuous queries in an object store (the data dir by default, or an
//! S3-compatible bucket with `--storage s3://bucket/prefix`).
//!
//! Layout: `queries/{query id}/{epoch:020}/` holds one Arrow IPC file per operator and
//! kind of state (`op-{i}-state.arrow`: open groups' partial-aggregate state;
//! `op-{i}-closed.arrow`: final rows a view keeps) and, written **last**, `manifest.json`
//! with the source offsets, the output stream's end offsets and each operator's event
//! time. A checkpoint exists only once its manifest does, and the manifest names only
//! files written before it, so a crash or a failed put mid-checkpoint leaves nothing a
//! restart would use. The newest complete checkpoint wins; older ones are deleted once a
//! newer one is complete (the previous one is kept as well).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// One operator's part of a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct OperatorSnapshot {
    /// Partial-aggregate state of open groups.
    pub state: Vec<RecordBatch>,
    /// Final rows a view keeps (closed windows, or the rows of a stateless view).
    pub closed: Vec<RecordBatch>,
    /// Per source partition, the largest event time minus the delay, in ns.
    pub partition_watermarks: Vec<Option<i64>>,
    pub watermark: Option<i64>,
    pub rows_in: u64,
}

/// A consistent cut of one query: everything below `source_offsets` is reflected in
/// the operators' state and in the output up to `output_offsets`, nothing after.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub epoch: u64,
    pub source_offsets: Vec<u64>,
    /// End offset per partition of the derived stream the query writes (empty for views).
    pub output_offsets: Vec<u64>,
    pub operators: Vec<OperatorSnapshot>,
    /// The query's counters at the cut: rows in, rows out, late rows.
    pub counters: [u64; 3],
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    version: u32,
    query_id: u64,
    epoch: u64,
    created_at_ms: i64,
    source_offsets: Vec<u64>,
    output_offsets: Vec<u64>,
    operators: Vec<OperatorManifest>,
    #[serde(default)]
    counters: [u64; 3],
}

#[derive(Serialize, Deserialize)]
struct OperatorManifest {
    state: Option<String>,
    closed: Option<String>,
    partition_watermarks: Vec<Option<i64>>,
    watermark: Option<i64>,
    rows_in: u64,
}

/// Where checkpoints live.
#[derive(Clone)]
pub struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
    /// A label for logs (`file:///...` or `s3://...`).
    pub location: String,
    /// For `file` storage: the directory, to fsync manifests and remove empty directories.
    local: Option<std::path::PathBuf>,
    /// Fault injection for tests: called before every put with the object's path; an
    /// error fails the put (it may also sleep, to delay it).
    put_hook: Option<PutHook>,
}

/// See [`CheckpointStore::with_put_hook`].
pub type PutHook = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("location", &self.location)
            .finish()
    }
}

impl CheckpointStore {
    pub fn new(store: Arc<dyn ObjectStore>, location: String) -> Self {
        CheckpointStore {
            store,
            location,
            local: None,
            put_hook: None,
        }
    }

    /// `file` storage under `dir` (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(err)?;
        let mut store = CheckpointStore::new(Arc::new(fs), format!("file://{}", dir.display()));
        store.local = Some(dir.to_path_buf());
        Ok(store)
    }

    /// An S3-compatible bucket, `s3://bucket/prefix`, configured from the usual
    /// `AWS_*` variables (`AWS_ENDPOINT_URL` for a non-AWS server, `AWS_ALLOW_HTTP=true`
    /// for plain HTTP).
    pub fn s3(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("storage URL {url} must start with s3:// or be a local path"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        let s3 = builder
            .build()
            .map_err(|e| format!("cannot use storage {url}: {e}"))?;
        let store: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                s3,
                prefix.trim_matches('/'),
            ))
        };
        Ok(CheckpointStore::new(store, url.to_string()))
    }

    /// Runs `hook` before every put (tests inject failures and delays with it).
    pub fn with_put_hook(mut self, hook: PutHook) -> Self {
        self.put_hook = Some(hook);
        self
    }

    async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), String> {
        if let Some(hook) = &self.put_hook {
            let (hook, name) = (hook.clone(), path.to_string());
            tokio::task::spawn_blocking(move || hook(&name))
                .await
                .map_err(err)??;
        }
        self.store
            .put(path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(err)
    }

    fn dir(query_id: u64, epoch: u64) -> Path {
        Path::from(format!("queries/{query_id}/{epoch:020}"))
    }

    /// Writes `checkpoint`: the operator files, then the manifest.
    pub async fn save(&self, query_id: u64, checkpoint: &Checkpoint) -> Result<(), String> {
        let dir = Self::dir(query_id, checkpoint.epoch);
        let mut operators = Vec::with_capacity(checkpoint.operators.len());
        for (i, op) in checkpoint.operators.iter().enumerate() {
            let put =
                async |kind: &str, batches: &[RecordBatch]| -> Result<Option<String>, String> {
                    if batches.iter().all(|b| b.num_rows() == 0) {
                        return Ok(None);
                    }
                    let name = format!("op-{i}-{kind}.arrow");
                    let bytes = encode(batches)?;
                    self.put(&dir.clone().join(name.as_str()), bytes).await?;
                    Ok(Some(name))
                };
            let state = put("state", &op.state).await?;
            let closed = put("closed", &op.closed).await?;
            operators.push(OperatorManifest {
                state,
                closed,
                partition_watermarks: op.partition_watermarks.clone(),
                watermark: op.watermark,
                rows_in: op.rows_in,
            });
        }
        let manifest = Manifest {
            version: 1,
            query_id,
            epoch: checkpoint.epoch,
            created_at_ms: chrono::Utc::now().timestamp_millis(),
            source_offsets: checkpoint.source_offsets.clone(),
            output_offsets: checkpoint.output_offsets.clone(),
            operators,
            counters: checkpoint.counters,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(err)?;
        self.put(&dir.clone().join("manifest.json"), json).await?;
        if let Some(root) = &self.local {
            // The object store renames a temporary file into place; make the files and
            // the rename survive a power loss too.
            let path = root.join(dir.as_ref());
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                for entry in std::fs::read_dir(&path)? {
                    std::fs::File::open(entry?.path())?.sync_all()?;
                }
                std::fs::File::open(&path)?.sync_all()
            })
            .await
            .map_err(err)?
            .map_err(|e| format!("cannot fsync checkpoint {dir}: {e}"))?;
        }
        Ok(())
    }

    /// Stores the durable copy of the catalog (`catalog.json` at the storage's root).
    pub async fn put_catalog(&self, bytes: Vec<u8>) -> Result<(), String> {
        self.put(&Path::from("catalog.json"), bytes).await
    }

    /// The durable copy of the catalog, if one was stored.
    pub async fn get_catalog(&self) -> Result<Option<Vec<u8>>, String> {
        match self.store.get(&Path::from("catalog.json")).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(err)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Epochs with a directory, newest first.
    async fn epochs(&self, query_id: u64) -> Result<Vec<u64>, String> {
        let prefix = Path::from(format!("queries/{query_id}"));
        let listed = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(err)?;
        let mut epochs: Vec<u64> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|f| f.parse().ok()))
            .collect();
        epochs.sort_unstable_by(|a, b| b.cmp(a));
        Ok(epochs)
    }

    /// The newest complete checkpoint of `query_id`, if any.
    pub async fn latest(&self, query_id: u64) -> Result<Option<Checkpoint>, String> {
        for epoch in self.epochs(query_id).await? {
            let dir = Self::dir(query_id, epoch);
            let manifest = match self.store.get(&dir.clone().join("manifest.json")).await {
                Ok(found) => found.bytes().await.map_err(err)?,
                Err(object_store::Error::NotFound { .. }) => continue, // incomplete
                Err(e) => return Err(err(e)),
            };
            let manifest: Manifest = serde_json::from_slice(&manifest)
                .map_err(|e| format!("checkpoint {dir} has an unreadable manifest: {e}"))?;
            let mut operators = Vec::with_capacity(manifest.operators.len());
            for op in manifest.operators {
                let read = async |name: &Option<String>| -> Result<Vec<RecordBatch>, String> {
                    let Some(name) = name else {
                        return Ok(Vec::new());
                    };
                    let bytes = self
                        .store
                        .get(&dir.clone().join(name.as_str()))
                        .await
                        .map_err(|e| {
                            format!("checkpoint {dir} names {name}, which cannot be read: {e}")
                        })?
                        .bytes()
                        .await
                        .map_err(err)?;
                    decode(&bytes)
                };
                operators.push(OperatorSnapshot {
                    state: read(&op.state).await?,
                    closed: read(&op.closed).await?,
                    partition_watermarks: op.partition_watermarks,
                    watermark: op.watermark,
                    rows_in: op.rows_in,
                });
            }
            return Ok(Some(Checkpoint {
                epoch: manifest.epoch,
                source_offsets: manifest.source_offsets,
                output_offsets: manifest.output_offsets,
                operators,
                counters: manifest.counters,
            }));
        }
        Ok(None)
    }

    /// Deletes the checkpoints older than `keep_from` (an epoch with a complete checkpoint).
    pub async fn collect_garbage(&self, query_id: u64, keep_from: u64) -> Result<(), String> {
        for epoch in self.epochs(query_id).await? {
            if epoch < keep_from {
                self.delete_dir(&Self::dir(query_id, epoch)).await?;
            }
        }
        Ok(())
    }

    /// Deletes every checkpoint of a dropped query.
    pub async fn delete_query(&self, query_id: u64) -> Result<(), String> {
        for epoch in self.epochs(query_id).await? {
            self.delete_dir(&Self::dir(query_id, epoch)).await?;
        }
        Ok(())
    }

    async fn delete_dir(&self, dir: &Path) -> Result<(), String> {
        let listed = self
            .store
            .list_with_delimiter(Some(dir))
            .await
            .map_err(err)?;
        // The manifest first: a half-deleted checkpoint is then an incomplete one.
        let mut objects: Vec<_> = listed.objects.into_iter().map(|o| o.location).collect();
        objects.sort_by_key(|p| p.filename() != Some("manifest.json"));
        for object in objects {
            match self.store.delete(&object).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(err(e)),
            }
        }
        if let Some(root) = &self.local {
            let _ = std::fs::remove_dir(root.join(dir.as_ref()));
        }
        Ok(())
    }
}

fn encode(batches: &[RecordBatch]) -> Result<Vec<u8>, String> {
    let schema = batches[0].schema();
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &schema).map_err(err)?;
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        writer.write(batch).map_err(err)?;
    }
    writer.finish().map_err(err)?;
    drop(writer);
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<Vec<RecordBatch>, String> {
    StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    #[tokio::test]
    async fn newest_complete_checkpoint_wins_and_garbage_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::local(dir.path()).unwrap();
        let batch =
            RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1, 2])) as _)])
                .unwrap();
        for epoch in 1..=3 {
            let checkpoint = Checkpoint {
                epoch,
                source_offsets: vec![epoch * 10],
                output_offsets: vec![epoch],
                operators: vec![OperatorSnapshot {
                    state: vec![batch.clone()],
                    watermark: Some(epoch as i64),
                    ..Default::default()
                }],
                counters: [epoch, 0, 0],
            };
            store.save(7, &checkpoint).await.unwrap();
        }
        // An epoch whose manifest never got written is not a checkpoint.
        std::fs::create_dir_all(dir.path().join("queries/7/00000000000000000004")).unwrap();
        std::fs::write(
            dir.path()
                .join("queries/7/00000000000000000004/op-0-state.arrow"),
            b"half",
        )
        .unwrap();
        let latest = store.latest(7).await.unwrap().unwrap();
        assert_eq!(latest.epoch, 3);
        assert_eq!(latest.source_offsets, vec![30]);
        assert_eq!(latest.operators[0].state, vec![batch]);
        store.collect_garbage(7, 3).await.unwrap();
        assert_eq!(store.epochs(7).await.unwrap(), vec![4, 3]);
        assert!(store.latest(8).await.unwrap().is_none());
    }
}
