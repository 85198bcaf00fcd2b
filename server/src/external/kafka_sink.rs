//! The Kafka sink: a stream's committed rows written to a Kafka topic as JSON objects, in
//! order per partition.
//!
//! **Exactly once** (`delivery = 'exactly_once'`, the default) uses Kafka transactions the
//! way Kafka Streams does: each round begins a transaction, produces the rows read since
//! the last one, and commits, in the same transaction, the stream offsets reached as the
//! committed offset metadata of a consumer group named `weir-sink-<sink>`
//! (`send_offsets_to_transaction`). The rows and the positions become visible together or
//! not at all; after kill -9 the sink reads the positions back from the group, and a new
//! producer with the same `transactional.id` fences the old one and aborts what it left
//! open. Consumers with `isolation.level=read_committed` see each row once.
//!
//! **At least once** (`delivery = 'at_least_once'`) produces without transactions and
//! commits the positions after the rows are acknowledged; a crash in between writes
//! those rows again.
//!
//! The message key is the `key` column's value (as text), and Kafka's partitioner places
//! keyed messages; without a key, stream partition `p` goes to topic partition
//! `p % partitions`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::{SinkStatus, read_committed};
use crate::connector::sink::KafkaSinkSpec;
use crate::stream::Stream;

/// Rows per transaction.
const ROWS_PER_TRANSACTION: usize = 10_000;
const TIMEOUT: Duration = Duration::from_secs(30);

fn group(sink: &str) -> String {
    format!("weir-sink-{sink}")
}

fn client_config(spec: &KafkaSinkSpec) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &spec.bootstrap_servers)
        .set("log_level", "3");
    for (key, value) in &spec.properties {
        config.set(key, value);
    }
    config
}

fn consumer(spec: &KafkaSinkSpec, sink: &str) -> Result<BaseConsumer, String> {
    client_config(spec)
        .set("group.id", group(sink))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| format!("cannot configure the Kafka client: {e}"))
}

/// CREATE SINK: the cluster answers and the topic exists; returns its partition count.
/// Blocking.
pub fn check(spec: &KafkaSinkSpec, sink: &str) -> Result<usize, String> {
    let consumer = consumer(spec, sink)?;
    let metadata = consumer
        .fetch_metadata(Some(&spec.topic), Duration::from_secs(10))
        .map_err(|e| {
            format!(
                "cannot reach the Kafka cluster at {}: {e}; check bootstrap_servers and that the brokers run",
                spec.bootstrap_servers
            )
        })?;
    let topic = metadata.topics().iter().find(|t| t.name() == spec.topic);
    match topic {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        _ => Err(format!(
            "topic '{}' does not exist on the Kafka cluster at {}; create it first (kafka-topics.sh --create --topic {})",
            spec.topic, spec.bootstrap_servers, spec.topic
        )),
    }
}

/// Starts the sink's thread; it runs until `stop` is set.
pub fn start(
    name: String,
    spec: KafkaSinkSpec,
    stream: Arc<Stream>,
    status: Arc<Mutex<SinkStatus>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("kafka-sink-{name}"))
        .spawn(move || {
            let mut backoff = Duration::from_millis(500);
            while !stop.load(Ordering::Acquire) {
                match run(&name, &spec, &stream, &status, &stop) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(sink = %name, "Kafka sink failed, retrying in {backoff:?}: {e}");
                        {
                            let mut s = status.lock();
                            s.state = "retrying".into();
                            s.error = Some(e);
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        })
        .expect("spawn the Kafka sink thread")
}

fn run(
    name: &str,
    spec: &KafkaSinkSpec,
    stream: &Stream,
    status: &Mutex<SinkStatus>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let partitions = check(spec, name)?;
    let consumer = consumer(spec, name)?;
    let mut producer_config = client_config(spec);
    producer_config.set("enable.idempotence", "true");
    if spec.exactly_once {
        producer_config.set("transactional.id", group(name));
    }
    let producer: ThreadedProducer<DefaultProducerContext> = producer_config
        .create()
        .map_err(|e| format!("cannot configure the Kafka producer: {e}"))?;
    if spec.exactly_once {
        // Fences an earlier instance and aborts the transaction it left open.
        producer
            .init_transactions(TIMEOUT)
            .map_err(|e| format!("cannot start Kafka transactions: {e}"))?;
    }
    let (mut epoch, mut positions) = read_positions(&consumer, spec, stream)?;
    let key_index = spec
        .key
        .as_ref()
        .and_then(|k| stream.schema.index_of(k).ok());
    {
        let mut s = status.lock();
        s.state = "running".into();
        s.error = None;
        s.positions = positions.clone();
    }
    tracing::info!(sink = name, topic = %spec.topic, ?positions, "Kafka sink started");
    while !stop.load(Ordering::Acquire) {
        let mut at = positions.clone();
        let parts = read_committed(stream, &mut at, ROWS_PER_TRANSACTION)?;
        if parts.is_empty() {
            status.lock().lag = 0;
            let waits: Vec<_> = stream
                .partitions()
                .iter()
                .map(|p| p.committed_offset())
                .collect();
            if waits.iter().zip(&positions).all(|(c, p)| c <= p) {
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        }
        if spec.exactly_once {
            producer
                .begin_transaction()
                .map_err(|e| format!("begin transaction: {e}"))?;
        }
        let mut rows = 0u64;
        for (p, batch) in &parts {
            let keys = match key_index {
                Some(k) => Some(
                    crate::api::values::column_values(batch.column(k).as_ref())
                        .map_err(|e| e.to_string())?,
                ),
                None => None,
            };
            let values = crate::api::values::row_objects(batch).map_err(|e| e.to_string())?;
            for (i, value) in values.into_iter().enumerate() {
                let key = keys.as_ref().map(|k| match &k[i] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let mut record = BaseRecord::<String, String>::to(&spec.topic).payload(&value);
                record = match &key {
                    Some(key) => record.key(key),
                    None => record.partition((*p % partitions) as i32),
                };
                send(&producer, record)?;
                rows += 1;
            }
        }
        epoch += 1;
        let offsets = offsets_list(spec, epoch, &at)?;
        if spec.exactly_once {
            let group = consumer
                .group_metadata()
                .ok_or("the Kafka client has no consumer group metadata")?;
            let committed = producer
                .send_offsets_to_transaction(&offsets, &group, TIMEOUT)
                .and_then(|()| producer.commit_transaction(TIMEOUT));
            if let Err(e) = committed {
                let _ = producer.abort_transaction(TIMEOUT);
                return Err(format!("Kafka transaction failed: {e}"));
            }
        } else {
            producer
                .flush(TIMEOUT)
                .map_err(|e| format!("Kafka producer flush: {e}"))?;
            consumer
                .commit(&offsets, CommitMode::Sync)
                .map_err(|e| format!("cannot store the sink's positions in Kafka: {e}"))?;
        }
        positions = at;
        let mut s = status.lock();
        s.rows += rows;
        s.epoch = epoch as u64;
        s.positions = positions.clone();
        s.lag = super::lag(stream, &positions);
    }
    Ok(())
}

fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut record: BaseRecord<'_, String, String>,
) -> Result<(), String> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, back))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(format!("cannot produce to Kafka: {e}")),
        }
    }
}

/// The sink's positions as one committed offset of its group: partition 0 of the topic,
/// the round as the offset and the stream offsets as its metadata.
fn offsets_list(
    spec: &KafkaSinkSpec,
    epoch: i64,
    positions: &[u64],
) -> Result<TopicPartitionList, String> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&spec.topic, 0, Offset::Offset(epoch))
        .map_err(|e| e.to_string())?;
    let metadata = serde_json::to_string(positions).expect("positions serialize");
    if let Some(mut element) = list.find_partition(&spec.topic, 0) {
        element.set_metadata(metadata);
    }
    Ok(list)
}

fn read_positions(
    consumer: &BaseConsumer,
    spec: &KafkaSinkSpec,
    stream: &Stream,
) -> Result<(i64, Vec<u64>), String> {
    let mut list = TopicPartitionList::new();
    list.add_partition(&spec.topic, 0);
    let committed = consumer
        .committed_offsets(list, TIMEOUT)
        .map_err(|e| format!("cannot read the sink's positions from Kafka: {e}"))?;
    let n = stream.partitions().len();
    let Some(element) = committed.find_partition(&spec.topic, 0) else {
        return Ok((0, vec![0; n]));
    };
    let epoch = element.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0);
    let mut positions: Vec<u64> = if element.metadata().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(element.metadata())
            .map_err(|e| format!("the sink's positions in Kafka are damaged: {e}"))?
    };
    positions.resize(n, 0);
    Ok((epoch, positions))
}
