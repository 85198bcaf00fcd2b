//! The Kafka source at run time: a thread per stream created `WITH (connector = 'kafka')`
//! reads its topic with librdkafka and appends the records to the stream's log.
//!
//! # Exactly once across kill -9
//!
//! The stream's log and the Kafka offsets reached must move together. After each poll
//! the thread (1) appends the decoded rows to the partitions without publishing them,
//! (2) fsyncs them, (3) writes the positions file `kafka-positions.json` in the stream's
//! directory — each Kafka partition's next offset and each Weir partition's end — by
//! write, fsync and rename, and only then (4) publishes the rows. A crash before (3)
//! leaves rows on disk that no positions file covers: when the stream is opened again,
//! [`recover`] cuts every partition back to the ends the file names before anyone reads
//! it, and the thread reads those records from Kafka again. So each Kafka record is in
//! the stream exactly once. Only this thread writes a source stream (HTTP, INSERT and
//! Kafka produce are refused), which is what makes the cut safe.
//!
//! Kafka partition `k` goes to Weir partition `k % partitions`; a stream created without
//! `partitions` gets one Weir partition per Kafka partition. Kafka partitions added later
//! are found by a metadata check every few seconds and read from their start.
//!
//! Records that do not decode go to the dead-letter stream (`errors = 'name'`), appended
//! durably before the positions file is written — after a crash between the two, a
//! dead letter can appear twice; the stream itself never — or stop the source with the
//! record named in its status (`errors = 'stop'`, the default).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::connector::kafka::{
    DeadLetter, KafkaSourceSpec, OnError, RawRecord, StartAt, dead_letter_batch,
};
use crate::stream::Stream;

/// Name of the positions file in a source stream's directory.
const POSITIONS_FILE: &str = "kafka-positions.json";
/// Most records taken in one round (one append and one positions write per round).
const ROUND_RECORDS: usize = 20_000;
/// Longest a round waits for more records once it has some.
const ROUND_WAIT: Duration = Duration::from_millis(100);
/// How often lag and the topic's partition count are refreshed.
const METADATA_EVERY: Duration = Duration::from_secs(3);
/// How long CREATE STREAM waits for the cluster to answer.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the positions file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Positions {
    topic: String,
    /// Kafka partition → the next offset to read.
    offsets: BTreeMap<i32, i64>,
    /// Each Weir partition's end offset covered by `offsets`.
    weir_ends: Vec<u64>,
}

/// A source's state for `GET /v1/streams/{name}`, `/metrics` and the console.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SourceStatus {
    /// `starting`, `running`, `retrying` (the cluster is unreachable; it retries), or
    /// `stopped` (a record did not decode and `errors = 'stop'`).
    pub state: String,
    pub topic: String,
    pub bootstrap_servers: String,
    /// The last error, if any, for the user.
    pub error: Option<String>,
    /// Records appended to the stream since the server started.
    pub records: u64,
    /// Records sent to the dead-letter stream since the server started.
    pub dead_letters: u64,
    pub partitions: Vec<PartitionStatus>,
}

/// One Kafka partition of a source.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub kafka_partition: i32,
    pub weir_partition: u32,
    /// The next Kafka offset Weir reads (everything before it is in the stream).
    pub next_offset: i64,
    /// Kafka's end offset (high watermark) when last asked.
    pub end_offset: Option<i64>,
    /// `end_offset - next_offset`.
    pub lag: Option<i64>,
}

/// A running source; stopping it (or dropping it) ends its thread after the round.
#[derive(Debug)]
pub struct KafkaSource {
    status: Arc<Mutex<SourceStatus>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KafkaSource {
    pub fn status(&self) -> SourceStatus {
        self.status.lock().clone()
    }

    /// Stops the thread and waits for it (at most one round).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The librdkafka configuration of a source's consumer.
fn consumer_config(spec: &KafkaSourceSpec, stream: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &spec.bootstrap_servers)
        // Offsets are Weir's (the positions file); the group id only names the client.
        .set("group.id", format!("weir-source-{stream}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Only committed records of transactional producers, as Weir's own readers.
        .set("isolation.level", "read_committed")
        // An offset retention already deleted: go on from the oldest record kept.
        .set("auto.offset.reset", "earliest")
        .set("client.id", format!("weir-source-{stream}"))
        .set("log_level", "3");
    for (key, value) in &spec.properties {
        config.set(key, value);
    }
    config
}

fn connect(spec: &KafkaSourceSpec, stream: &str) -> Result<BaseConsumer, String> {
    consumer_config(spec, stream)
        .create()
        .map_err(|e| format!("cannot configure the Kafka client: {e}"))
}

/// The topic's partition count, or why it cannot be read: the cluster unreachable, the
/// topic missing.
fn partition_count(
    consumer: &BaseConsumer,
    spec: &KafkaSourceSpec,
    timeout: Duration,
) -> Result<usize, String> {
    let metadata = consumer
        .fetch_metadata(Some(&spec.topic), timeout)
        .map_err(|e| {
            format!(
                "cannot reach the Kafka cluster at {}: {e}; check bootstrap_servers and that the brokers run",
                spec.bootstrap_servers
            )
        })?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == spec.topic)
        .ok_or_else(|| {
            format!(
                "the Kafka cluster at {} did not describe topic '{}'",
                spec.bootstrap_servers, spec.topic
            )
        })?;
    if let Some(error) = topic.error() {
        let error = rdkafka::error::RDKafkaErrorCode::from(error);
        return Err(
            if error == rdkafka::error::RDKafkaErrorCode::UnknownTopicOrPartition {
                format!(
                    "topic '{}' does not exist on the Kafka cluster at {}; create it (kafka-topics.sh --create --topic {}) or check the name",
                    spec.topic, spec.bootstrap_servers, spec.topic
                )
            } else {
                format!("cannot read topic '{}': {error}", spec.topic)
            },
        );
    }
    if topic.partitions().is_empty() {
        return Err(format!("topic '{}' has no partitions", spec.topic));
    }
    Ok(topic.partitions().len())
}

/// Where each Kafka partition starts, resolved to concrete offsets (so a restart before
/// the first record still starts there).
fn resolve_start(
    consumer: &BaseConsumer,
    spec: &KafkaSourceSpec,
    partitions: std::ops::Range<i32>,
    start: StartAt,
    timeout: Duration,
) -> Result<BTreeMap<i32, i64>, String> {
    let mut offsets = BTreeMap::new();
    let times = if let StartAt::Time(ms) = start {
        let mut tpl = TopicPartitionList::new();
        for p in partitions.clone() {
            tpl.add_partition_offset(&spec.topic, p, Offset::Offset(ms))
                .map_err(|e| e.to_string())?;
        }
        Some(
            consumer
                .offsets_for_times(tpl, timeout)
                .map_err(|e| format!("cannot look up offsets by time in '{}': {e}", spec.topic))?,
        )
    } else {
        None
    };
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&spec.topic, p, timeout)
            .map_err(|e| {
                format!(
                    "cannot read the offsets of '{}' partition {p}: {e}",
                    spec.topic
                )
            })?;
        let offset = match start {
            StartAt::Earliest => low,
            StartAt::Latest => high,
            StartAt::Time(_) => times
                .as_ref()
                .and_then(|t| t.find_partition(&spec.topic, p))
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0)
                .unwrap_or(high),
        };
        offsets.insert(p, offset);
    }
    Ok(offsets)
}

/// CREATE STREAM: checks the cluster and the topic, and returns the topic's partition
/// count. Blocking.
pub fn check(spec: &KafkaSourceSpec, stream: &str) -> Result<usize, String> {
    let consumer = connect(spec, stream)?;
    partition_count(&consumer, spec, CREATE_TIMEOUT)
}

/// CREATE STREAM, once the stream's directory exists: fixes where each partition starts
/// by writing the first positions file. Blocking.
pub fn initialize(stream: &Stream, spec: &KafkaSourceSpec) -> Result<(), String> {
    let consumer = connect(spec, stream.name())?;
    let count = partition_count(&consumer, spec, CREATE_TIMEOUT)?;
    let offsets = resolve_start(&consumer, spec, 0..count as i32, spec.start, CREATE_TIMEOUT)?;
    let positions = Positions {
        topic: spec.topic.clone(),
        offsets,
        weir_ends: stream.latest_offsets(),
    };
    write_positions(&positions_path(stream), &positions)
}

fn positions_path(stream: &Stream) -> PathBuf {
    let partition_dir = stream.partitions()[0].dir();
    partition_dir
        .parent()
        .unwrap_or(partition_dir)
        .join(POSITIONS_FILE)
}

fn read_positions(path: &Path) -> Result<Option<Positions>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is damaged: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the file whole or not at all: a temporary file, fsync, rename, fsync of the
/// directory.
fn write_positions(path: &Path, positions: &Positions) -> Result<(), String> {
    let bytes = serde_json::to_vec(positions).expect("positions serialize");
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Opening a source stream (before anything reads it): cuts each partition back to the
/// end the positions file covers, removing rows a crash left beyond it. Blocking.
pub fn recover(stream: &Stream) -> Result<(), String> {
    let Some(positions) = read_positions(&positions_path(stream))? else {
        return Ok(());
    };
    let removed = stream.rewind(&positions.weir_ends).map_err(|e| {
        format!(
            "cannot cut {} back to its Kafka positions: {e}",
            stream.name()
        )
    })?;
    if removed > 0 {
        tracing::warn!(
            stream = stream.name(),
            rows = removed,
            "removed rows appended after the last Kafka positions were saved; they are read from Kafka again"
        );
    }
    Ok(())
}

/// Starts the source thread of `stream`.
pub fn start(
    stream: Arc<Stream>,
    spec: KafkaSourceSpec,
    dead_letters: Option<Arc<Stream>>,
) -> KafkaSource {
    let status = Arc::new(Mutex::new(SourceStatus {
        state: "starting".into(),
        topic: spec.topic.clone(),
        bootstrap_servers: spec.bootstrap_servers.clone(),
        ..Default::default()
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let mut source = Reader {
        stream,
        spec,
        dead_letters,
        status: status.clone(),
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("kafka-source-{}", source.stream.name()))
        .spawn(move || source.run())
        .expect("spawn the Kafka source thread");
    KafkaSource {
        status,
        stop,
        thread: Some(thread),
    }
}

struct Reader {
    stream: Arc<Stream>,
    spec: KafkaSourceSpec,
    dead_letters: Option<Arc<Stream>>,
    status: Arc<Mutex<SourceStatus>>,
    stop: Arc<AtomicBool>,
}

/// A record taken from Kafka, owned (the round decodes them together).
struct Taken {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

impl Reader {
    fn run(&mut self) {
        let mut backoff = Duration::from_millis(500);
        while !self.stopped() {
            match self.read() {
                Ok(()) => return,
                Err(Failure::Stop(e)) => {
                    tracing::error!(stream = self.stream.name(), "Kafka source stopped: {e}");
                    let mut status = self.status.lock();
                    status.state = "stopped".into();
                    status.error = Some(e);
                    return;
                }
                Err(Failure::Retry(e)) => {
                    tracing::warn!(
                        stream = self.stream.name(),
                        "Kafka source retrying in {backoff:?}: {e}"
                    );
                    {
                        let mut status = self.status.lock();
                        status.state = "retrying".into();
                        status.error = Some(e);
                    }
                    let until = Instant::now() + backoff;
                    while Instant::now() < until && !self.stopped() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Reads until stopped; an error says whether to retry.
    fn read(&mut self) -> Result<(), Failure> {
        let consumer = connect(&self.spec, self.stream.name()).map_err(Failure::Stop)?;
        let path = positions_path(&self.stream);
        let mut positions = match read_positions(&path).map_err(Failure::Stop)? {
            Some(p) => p,
            None => {
                let count = partition_count(&consumer, &self.spec, CREATE_TIMEOUT)
                    .map_err(Failure::Retry)?;
                Positions {
                    topic: self.spec.topic.clone(),
                    offsets: resolve_start(
                        &consumer,
                        &self.spec,
                        0..count as i32,
                        self.spec.start,
                        CREATE_TIMEOUT,
                    )
                    .map_err(Failure::Retry)?,
                    weir_ends: self.stream.latest_offsets(),
                }
            }
        };
        assign(&consumer, &self.spec.topic, &positions.offsets)?;
        {
            let mut status = self.status.lock();
            status.state = "running".into();
            status.error = None;
        }
        tracing::info!(stream = self.stream.name(), topic = %self.spec.topic, partitions = positions.offsets.len(), "Kafka source started");
        let mut last_metadata: Option<Instant> = None;
        let mut ends: HashMap<i32, i64> = HashMap::new();
        self.publish_status(&positions, &ends);
        while !self.stopped() {
            if last_metadata.is_none_or(|t| t.elapsed() >= METADATA_EVERY) {
                last_metadata = Some(Instant::now());
                self.refresh(&consumer, &mut positions, &mut ends)?;
            }
            let taken = self.take(&consumer)?;
            if !taken.is_empty() {
                self.append(&taken, &mut positions, &path)?;
            }
            self.publish_status(&positions, &ends);
        }
        Ok(())
    }

    /// Lag (Kafka's end offsets) and new partitions of the topic.
    fn refresh(
        &self,
        consumer: &BaseConsumer,
        positions: &mut Positions,
        ends: &mut HashMap<i32, i64>,
    ) -> Result<(), Failure> {
        let timeout = Duration::from_secs(2);
        match partition_count(consumer, &self.spec, timeout) {
            Ok(count) if count > positions.offsets.len() => {
                let new = positions.offsets.len() as i32..count as i32;
                let found = resolve_start(consumer, &self.spec, new, StartAt::Earliest, timeout)
                    .map_err(Failure::Retry)?;
                tracing::info!(
                    stream = self.stream.name(),
                    partitions = count,
                    "the topic has new partitions; reading them from their start"
                );
                positions.offsets.extend(found);
                assign(consumer, &self.spec.topic, &positions.offsets)?;
            }
            Ok(_) => {}
            Err(e) => {
                let mut status = self.status.lock();
                status.error = Some(e);
                return Ok(());
            }
        }
        for p in positions.offsets.keys() {
            if let Ok((_, high)) = consumer.fetch_watermarks(&self.spec.topic, *p, timeout) {
                ends.insert(*p, high);
            }
        }
        if self.status.lock().state == "running" {
            self.status.lock().error = None;
        }
        Ok(())
    }

    /// Up to [`ROUND_RECORDS`] records, waiting at most [`ROUND_WAIT`] once one came.
    fn take(&self, consumer: &BaseConsumer) -> Result<Vec<Taken>, Failure> {
        let mut taken = Vec::new();
        let started = Instant::now();
        while taken.len() < ROUND_RECORDS && !self.stopped() {
            let wait = if taken.is_empty() {
                Duration::from_millis(200)
            } else {
                ROUND_WAIT.saturating_sub(started.elapsed())
            };
            match consumer.poll(wait) {
                Some(Ok(message)) => taken.push(Taken {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                }),
                Some(Err(e)) => {
                    // librdkafka reconnects on its own; the error is shown meanwhile.
                    let mut status = self.status.lock();
                    status.error = Some(format!("Kafka: {e}"));
                    if taken.is_empty() {
                        return Ok(taken);
                    }
                    break;
                }
                None if taken.is_empty() => return Ok(taken),
                None => break,
            }
            if started.elapsed() >= ROUND_WAIT && !taken.is_empty() {
                break;
            }
        }
        Ok(taken)
    }

    /// One round: decode, append unpublished, fsync, write the positions, publish.
    fn append(
        &self,
        taken: &[Taken],
        positions: &mut Positions,
        path: &Path,
    ) -> Result<(), Failure> {
        let n = self.stream.partitions().len();
        let mut by_partition: BTreeMap<i32, Vec<&Taken>> = BTreeMap::new();
        for record in taken {
            by_partition
                .entry(record.partition)
                .or_default()
                .push(record);
        }
        let mut letters = Vec::new();
        let mut appended = 0u64;
        let mut stop_error = None;
        let mut next = positions.clone();
        for (kafka_partition, records) in &by_partition {
            let raw: Vec<RawRecord<'_>> = records
                .iter()
                .map(|r| RawRecord {
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                })
                .collect();
            let decoded = self.spec.decode(&raw, &self.stream.schema);
            let mut batch = decoded.batch;
            let mut last = records.len();
            if let Some((index, reason)) = decoded.bad.first()
                && self.spec.errors == OnError::Stop
            {
                // Keep what came before the (first) bad record; stop there.
                batch = batch.slice(0, *index);
                last = *index;
                let record = records[*index];
                stop_error = Some(format!(
                    "record at offset {} of '{}' partition {kafka_partition} does not decode: {reason}; \
                     fix the producer, or set errors = 'a_dead_letter_stream' to set such records aside",
                    record.offset, self.spec.topic
                ));
            } else {
                for (index, reason) in &decoded.bad {
                    let record = records[*index];
                    letters.push(DeadLetter {
                        error: reason.clone(),
                        partition: *kafka_partition,
                        offset: record.offset,
                        key: record.key.clone(),
                        value: record.value.clone(),
                    });
                }
            }
            let weir = (*kafka_partition as usize) % n;
            if batch.num_rows() > 0 {
                self.stream
                    .append_to_unpublished(weir, &batch)
                    .map_err(|e| {
                        Failure::Stop(format!("cannot append to {}: {e}", self.stream.name()))
                    })?;
                appended += batch.num_rows() as u64;
            }
            if last > 0 {
                next.offsets
                    .insert(*kafka_partition, records[last - 1].offset + 1);
            }
            if stop_error.is_some() {
                break;
            }
        }
        next.weir_ends = self.stream.latest_offsets();
        self.stream
            .sync_to(&next.weir_ends)
            .map_err(|e| Failure::Stop(format!("cannot write {}: {e}", self.stream.name())))?;
        if !letters.is_empty()
            && let Some(dead) = &self.dead_letters
        {
            let batch = dead_letter_batch(self.stream.name(), &self.spec.topic, &letters);
            dead.append(&batch).map_err(|e| {
                Failure::Stop(format!(
                    "cannot write the dead-letter stream {}: {e}",
                    dead.name()
                ))
            })?;
        }
        write_positions(path, &next).map_err(Failure::Stop)?;
        self.stream
            .commit_exact(&next.weir_ends)
            .map_err(|e| Failure::Stop(format!("cannot write {}: {e}", self.stream.name())))?;
        *positions = next;
        {
            let mut status = self.status.lock();
            status.records += appended;
            status.dead_letters += letters.len() as u64;
        }
        match stop_error {
            Some(e) => Err(Failure::Stop(e)),
            None => Ok(()),
        }
    }

    fn publish_status(&self, positions: &Positions, ends: &HashMap<i32, i64>) {
        let n = self.stream.partitions().len();
        let mut status = self.status.lock();
        status.partitions = positions
            .offsets
            .iter()
            .map(|(p, next)| {
                let end = ends.get(p).copied();
                PartitionStatus {
                    kafka_partition: *p,
                    weir_partition: (*p as usize % n) as u32,
                    next_offset: *next,
                    end_offset: end,
                    lag: end.map(|e| (e - next).max(0)),
                }
            })
            .collect();
    }
}

/// Why reading stopped: for good, or until a retry.
enum Failure {
    Stop(String),
    Retry(String),
}

fn assign(
    consumer: &BaseConsumer,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<(), Failure> {
    let mut tpl = TopicPartitionList::new();
    for (p, offset) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*offset))
            .map_err(|e| Failure::Stop(e.to_string()))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Failure::Retry(format!("cannot assign the partitions of '{topic}': {e}")))
}
