//! The Kafka APIs Weir answers, one function each.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::producers::{Batch, Check, Producers};
use super::{decoded, encoded};
use crate::auth::{Principal, Role};
use crate::engine::Engine;
use crate::stream::Stream;

/// The APIs and versions served: (key, min, max).
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 3),
    (ApiKey::Heartbeat, 0, 3),
    (ApiKey::LeaveGroup, 0, 3),
    (ApiKey::OffsetCommit, 2, 7),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// Kafka's error codes Weir answers with.
const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_RECORD: i16 = 87;
/// The stream is not written by clients (a Kafka source).
const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;
const KAFKA_STORAGE_ERROR: i16 = 56;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// The one broker's id.
const BROKER: BrokerId = BrokerId(0);

/// Answers one request; `None` when the request wants no response (Produce, acks 0).
#[allow(clippy::too_many_arguments)]
pub(super) async fn handle(
    shared: &super::Shared,
    client: &str,
    principal: Option<&Principal>,
    key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<Option<Bytes>, String> {
    let (engine, groups, producers, advertised) = (
        &shared.engine,
        &*shared.groups,
        &*shared.producers,
        shared.advertised,
    );
    let served = SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .is_some_and(|(_, min, max)| (*min..=*max).contains(&version));
    if !served && key != ApiKey::ApiVersions {
        return Err(format!(
            "Weir's Kafka listener does not serve {key:?} v{version} yet (it serves ApiVersions, \
             Metadata, ListOffsets, Fetch, Produce with idempotent producers, and consumer \
             groups; topic creation and transactions are to come)"
        ));
    }
    match key {
        ApiKey::ApiVersions => api_versions(version, served).map(Some),
        ApiKey::Metadata => {
            metadata(engine, advertised, version, decoded(body, version)?).map(Some)
        }
        ApiKey::ListOffsets => list_offsets(engine, version, decoded(body, version)?).map(Some),
        ApiKey::Fetch => fetch(engine, version, decoded(body, version)?)
            .await
            .map(Some),
        ApiKey::Produce => {
            let refused = principal
                .and_then(|p| p.require(Role::Write, "producing").err())
                .map(|denied| denied.to_string());
            produce(engine, producers, version, decoded(body, version)?, refused).await
        }
        ApiKey::InitProducerId => {
            init_producer_id(producers, version, decoded(body, version)?).map(Some)
        }
        _ => super::consumer::handle(groups, client, advertised, key, version, body)
            .await
            .map(Some),
    }
}

fn api_versions(version: i16, served: bool) -> Result<Bytes, String> {
    let response = ApiVersionsResponse::default()
        .with_error_code(if served { NONE } else { UNSUPPORTED_VERSION })
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        );
    // A client asking in a version we do not serve reads the v0 answer and retries.
    encoded(&response, if served { version } else { 0 })
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn metadata(
    engine: &Arc<Engine>,
    advertised: SocketAddr,
    version: i16,
    request: MetadataRequest,
) -> Result<Bytes, String> {
    let streams: Vec<(String, Option<Arc<Stream>>)> = match request.topics {
        None => engine
            .streams()
            .into_iter()
            .map(|s| (s.name().to_string(), Some(s)))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .filter_map(|t| t.name.map(|n| n.0.to_string()))
            .map(|n| {
                let stream = engine.stream(&n);
                (n, stream)
            })
            .collect(),
    };
    let topics = streams
        .into_iter()
        .map(|(name, stream)| {
            let topic = MetadataResponseTopic::default().with_name(Some(topic_name(&name)));
            match stream {
                None => topic.with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                Some(stream) => topic.with_partitions(
                    (0..stream.partitions().len() as i32)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BROKER)
                                .with_replica_nodes(vec![BROKER])
                                .with_isr_nodes(vec![BROKER])
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BROKER)
                .with_host(StrBytes::from_string(advertised.ip().to_string()))
                .with_port(advertised.port() as i32),
        ])
        .with_cluster_id(Some(StrBytes::from_static_str("weir")))
        .with_controller_id(BROKER)
        .with_topics(topics);
    encoded(&response, version)
}

/// The stream and partition log a request names, or the error code to answer with.
fn partition_of(
    engine: &Engine,
    topic: &TopicName,
    partition: i32,
) -> Result<Arc<crate::log::PartitionLog>, i16> {
    let stream = engine.stream(&topic.0).ok_or(UNKNOWN_TOPIC_OR_PARTITION)?;
    usize::try_from(partition)
        .ok()
        .and_then(|p| stream.partitions().get(p).cloned())
        .ok_or(UNKNOWN_TOPIC_OR_PARTITION)
}

fn list_offsets(
    engine: &Arc<Engine>,
    version: i16,
    request: ListOffsetsRequest,
) -> Result<Bytes, String> {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let answer = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match partition_of(engine, &topic.name, p.partition_index) {
                        Err(code) => answer.with_error_code(code),
                        // -2: the earliest offset; -1: the end; a time (ms): the first
                        // row appended at or after it, else the end.
                        Ok(log) => {
                            let end = log.committed_offset() as i64;
                            let (timestamp, offset) = match p.timestamp {
                                -2 => (-1, log.earliest_offset() as i64),
                                t if t < 0 => (-1, end),
                                t => match log.offset_for_time(t) {
                                    Some((offset, at)) => (at, offset as i64),
                                    None => (-1, end),
                                },
                            };
                            answer.with_timestamp(timestamp).with_offset(offset)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    encoded(&ListOffsetsResponse::default().with_topics(topics), version)
}

/// The committed records of `log` from `from`, about `max_bytes` of them (at least one
/// frame), as a Kafka record batch.
fn records(
    log: &crate::log::PartitionLog,
    from: u64,
    max_bytes: usize,
) -> Result<Option<Bytes>, String> {
    let end = log.committed_offset();
    let mut out: Vec<Record> = Vec::new();
    let mut bytes = 0;
    for scanned in log.scan(from, end, None) {
        let scanned = scanned.map_err(|e| e.to_string())?;
        let values: Vec<Bytes> = crate::api::values::row_objects(&scanned.batch)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(Bytes::from)
            .collect();
        for (i, value) in values.into_iter().enumerate() {
            let offset = scanned.base_offset + i as u64;
            if offset < from {
                continue;
            }
            bytes += value.len() + 32;
            out.push(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::LogAppend,
                offset: offset as i64,
                sequence: -1,
                timestamp: scanned.ingest_time_ms,
                key: None,
                value: Some(value),
                headers: Default::default(),
            });
        }
        if bytes >= max_bytes {
            break;
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        out.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| format!("cannot encode records: {e}"))?;
    Ok(Some(buf.freeze()))
}

async fn fetch(engine: &Arc<Engine>, version: i16, request: FetchRequest) -> Result<Bytes, String> {
    let answer = |request: &FetchRequest| -> Result<(FetchResponse, bool), String> {
        let mut any = false;
        let mut responses = Vec::new();
        for topic in &request.topics {
            let mut partitions = Vec::new();
            for p in &topic.partitions {
                // An empty record set, never a null one (clients read its size).
                let data = PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_records(Some(Bytes::new()));
                let data = match partition_of(engine, &topic.topic, p.partition) {
                    Err(code) => data.with_error_code(code),
                    Ok(log) => {
                        let (start, end) = (log.earliest_offset(), log.committed_offset());
                        let from = p.fetch_offset.max(0) as u64;
                        let data = data
                            .with_high_watermark(end as i64)
                            .with_last_stable_offset(end as i64)
                            .with_log_start_offset(start as i64);
                        if from < start || from > end {
                            data.with_error_code(OFFSET_OUT_OF_RANGE)
                        } else {
                            let records =
                                records(&log, from, p.partition_max_bytes.max(1) as usize)?;
                            any |= records.is_some();
                            data.with_records(Some(records.unwrap_or_default()))
                        }
                    }
                };
                partitions.push(data);
            }
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(topic.topic.clone())
                    .with_partitions(partitions),
            );
        }
        Ok((FetchResponse::default().with_responses(responses), any))
    };
    // Long poll: wait up to max_wait_ms for committed rows when there are none yet.
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_millis(request.max_wait_ms.clamp(0, 30_000) as u64);
    loop {
        let (response, any) = answer(&request)?;
        if any || std::time::Instant::now() >= deadline {
            return encoded(&response, version);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// InitProducerId: an id for an idempotent producer; transactions are refused.
fn init_producer_id(
    producers: &Producers,
    version: i16,
    request: kafka_protocol::messages::InitProducerIdRequest,
) -> Result<Bytes, String> {
    use kafka_protocol::messages::{InitProducerIdResponse, ProducerId};
    let response = if request.transactional_id.is_some() {
        tracing::info!(
            "kafka: a transactional producer was refused (transactions are not served yet)"
        );
        InitProducerIdResponse::default()
            .with_error_code(INVALID_REQUEST)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    } else {
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producers.allocate()))
            .with_producer_epoch(0)
    };
    encoded(&response, version)
}

/// Appends what a Produce request carries; `refused` (the caller may not produce)
/// answers every partition with TOPIC_AUTHORIZATION_FAILED instead.
async fn produce(
    engine: &Arc<Engine>,
    producers: &Producers,
    version: i16,
    request: ProduceRequest,
    refused: Option<String>,
) -> Result<Option<Bytes>, String> {
    let mut responses = Vec::new();
    for topic in request.topic_data {
        let mut partitions = Vec::new();
        for data in topic.partition_data {
            let answer = PartitionProduceResponse::default().with_index(data.index);
            let outcome = match &refused {
                Some(message) => Err((TOPIC_AUTHORIZATION_FAILED, message.clone())),
                None => {
                    produce_partition(engine, producers, &topic.name, data.index, data.records)
                        .await
                }
            };
            let answer = match outcome {
                Ok(base) => answer.with_base_offset(base),
                Err((code, message)) => {
                    if code == INVALID_RECORD {
                        tracing::info!("kafka produce to {}: {message}", topic.name.0);
                    }
                    answer
                        .with_error_code(code)
                        .with_base_offset(-1)
                        .with_error_message(Some(StrBytes::from_string(message)))
                }
            };
            partitions.push(answer);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if request.acks == 0 {
        return Ok(None);
    }
    encoded(
        &ProduceResponse::default().with_responses(responses),
        version,
    )
    .map(Some)
}

/// Appends the records of one partition's produce data; returns its base offset once
/// the rows are durable.
async fn produce_partition(
    engine: &Arc<Engine>,
    producers: &Producers,
    topic: &TopicName,
    partition: i32,
    records: Option<Bytes>,
) -> Result<i64, (i16, String)> {
    let stream = engine.stream(&topic.0).ok_or((
        UNKNOWN_TOPIC_OR_PARTITION,
        format!(
            "there is no stream {}; create it with CREATE STREAM",
            topic.0.as_str()
        ),
    ))?;
    let p = usize::try_from(partition)
        .ok()
        .filter(|p| *p < stream.partitions().len())
        .ok_or((
            UNKNOWN_TOPIC_OR_PARTITION,
            format!("{} has no partition {partition}", topic.0.as_str()),
        ))?;
    if let Some(refusal) = stream.refuses_writes() {
        return Err((INVALID_REQUEST, refusal));
    }
    let mut bytes = records.unwrap_or_default();
    let sets = RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|e| (INVALID_RECORD, format!("cannot read the record batch: {e}")))?;
    // An idempotent producer's batch: its id, epoch and first sequence number.
    let records: Vec<_> = sets.iter().flat_map(|s| &s.records).collect();
    let idempotent = records
        .first()
        .filter(|r| r.producer_id >= 0)
        .map(|r| Batch {
            producer: r.producer_id,
            epoch: r.producer_epoch,
            first: r.sequence,
            count: records.len() as i32,
        });
    if let Some(batch) = &idempotent {
        match producers.check(batch, &topic.0, partition) {
            Check::Append => {}
            Check::Duplicate(offset) => return Ok(offset),
            Check::OutOfOrder(message) => return Err((OUT_OF_ORDER_SEQUENCE_NUMBER, message)),
        }
    }
    let mut lines = Vec::new();
    for record in records {
        let value = record.value.clone().unwrap_or_default();
        if value.contains(&b'\n') {
            // One JSON object per record: compact it so records stay one per line.
            let parsed: serde_json::Value = serde_json::from_slice(&value).map_err(|e| {
                (
                    INVALID_RECORD,
                    format!("record {}: not a JSON object: {e}", lines.len() + 1),
                )
            })?;
            lines.push(parsed.to_string().into_bytes());
        } else {
            lines.push(value.to_vec());
        }
    }
    let body = lines.join(&b'\n');
    let batch = crate::ingest::decode(&crate::ingest::Format::Ndjson, &body, &stream.schema)
        .map_err(|e| {
            (
                INVALID_RECORD,
                // NDJSON lines are records here.
                format!("{e}").replacen("line ", "record ", 1)
                    + "; nothing of this batch was appended",
            )
        })?;
    let appended = tokio::task::spawn_blocking(move || stream.append_to(p, &batch))
        .await
        .map_err(|e| (KAFKA_STORAGE_ERROR, e.to_string()))?
        .map_err(|e| (KAFKA_STORAGE_ERROR, e.to_string()))?;
    if let Some(batch) = &idempotent {
        producers.appended(batch, &topic.0, partition, appended as i64);
    }
    Ok(appended as i64)
}
