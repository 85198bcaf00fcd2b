//! The Kafka protocol listener (`--kafka-listen`): Weir as a Kafka broker for its own
//! streams, so unmodified Kafka clients produce to and fetch from them. A topic is a
//! stream, a Kafka partition a Weir partition, a Kafka offset a Weir offset. The wire
//! format and record batches are the `kafka-protocol` crate's.
//!
//! The first slice of the broker: ApiVersions, Metadata, ListOffsets, Fetch
//! (read-committed: never past a partition's committed offset) and Produce (acks 0, 1
//! and all, each answered once the rows are durable; gzip, snappy, lz4 and zstd). A
//! message value is a JSON object whose keys are the stream's columns, decoded as HTTP
//! ingest decodes NDJSON: a batch with a bad record is refused whole with INVALID_RECORD
//! and a message naming the record and column. Rows are fetched as the same JSON.
//! Consumer groups ([`groups`]: FindCoordinator, Join/Sync/Heartbeat/LeaveGroup,
//! OffsetCommit/OffsetFetch) work with subscribing consumers. Topic creation and
//! idempotent producers are not served yet: their requests close the connection with
//! a log line saying so.

mod consumer;
mod groups;
mod handlers;
mod producers;
mod sasl;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::engine::Engine;

/// Largest request Weir reads (the Kafka broker's default `socket.request.max.bytes`).
const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
/// Largest request before SASL authentication (Kafka's own bound for it).
const MAX_UNAUTHENTICATED_BYTES: usize = 512 * 1024;
/// How long a connection may take to authenticate when authentication is on.
const AUTHENTICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the Kafka listener enforces.
pub struct KafkaOptions {
    pub auth: Arc<crate::auth::Auth>,
    /// TLS from the first byte (`security.protocol=SSL` or `SASL_SSL`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub limit: crate::net::ConnectionLimit,
}

impl KafkaOptions {
    pub fn open() -> KafkaOptions {
        KafkaOptions {
            auth: Arc::new(crate::auth::Auth::off()),
            tls: None,
            limit: crate::net::ConnectionLimit::new("kafka", 4096),
        }
    }
}

/// Serves the Kafka protocol on `listener` until the task is dropped. `advertised` is
/// the address Metadata gives clients for the one broker (this listener's).
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    advertised: SocketAddr,
    data_dir: std::path::PathBuf,
    options: KafkaOptions,
) {
    let groups = Arc::new(groups::Groups::open(data_dir.join("kafka-offsets.json")));
    let producers = Arc::new(producers::Producers::new(engine.clock().now_ms()));
    let auth = options.auth.clone();
    let mut acceptor = crate::net::Acceptor::new(listener, options.tls, options.limit);
    while let Some((socket, peer)) = acceptor.next().await {
        let shared = Shared {
            engine: engine.clone(),
            groups: groups.clone(),
            producers: producers.clone(),
            auth: auth.clone(),
            advertised,
        };
        tokio::spawn(async move {
            if let Err(e) = connection(socket, shared).await {
                tracing::debug!(%peer, "kafka connection closed: {e}");
            }
        });
    }
}

/// What every connection of the listener shares.
struct Shared {
    engine: Arc<Engine>,
    groups: Arc<groups::Groups>,
    producers: Arc<producers::Producers>,
    auth: Arc<crate::auth::Auth>,
    advertised: SocketAddr,
}

async fn connection<S>(mut socket: S, shared: Shared) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut sasl = sasl::Sasl::default();
    let connected = tokio::time::Instant::now();
    loop {
        let pending = shared.auth.is_enabled() && sasl.principal.is_none();
        let size = if pending {
            match tokio::time::timeout_at(connected + AUTHENTICATION_TIMEOUT, socket.read_i32())
                .await
            {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return Ok(()),
                Err(_) => return Err("no SASL authentication within 30 s".into()),
            }
        } else {
            match socket.read_i32().await {
                Ok(n) => n,
                Err(_) => return Ok(()), // the client went away
            }
        };
        let most = if pending {
            MAX_UNAUTHENTICATED_BYTES
        } else {
            MAX_REQUEST_BYTES
        };
        if size < 8 || size as usize > most {
            return Err(format!("a request of {size} bytes is out of bounds"));
        }
        let mut frame = vec![0u8; size as usize];
        socket
            .read_exact(&mut frame)
            .await
            .map_err(|e| e.to_string())?;
        let (key, version, header, mut body) = request_header(Bytes::from(frame))?;
        let client = header
            .client_id
            .as_ref()
            .map_or("", |c| c.as_str())
            .to_string();
        let mut close = false;
        let reply = match key {
            ApiKey::SaslHandshake => Some(
                sasl.handshake(&shared.auth, version, decoded(&mut body, version)?)
                    .map_err(|e| format!("{key:?} v{version}: {e}"))?,
            ),
            ApiKey::SaslAuthenticate => {
                let step = sasl
                    .authenticate(&shared.auth, version, decoded(&mut body, version)?)
                    .map_err(|e| format!("{key:?} v{version}: {e}"))?;
                close = step.close;
                Some(step.reply)
            }
            ApiKey::ApiVersions => {
                handlers::handle(&shared, &client, None, key, version, &mut body)
                    .await
                    .map_err(|e| format!("{key:?} v{version}: {e}"))?
            }
            _ => {
                let principal = match (&sasl.principal, shared.auth.is_enabled()) {
                    (Some(p), _) => p.clone(),
                    (None, false) => crate::auth::Principal::anonymous(),
                    (None, true) => {
                        tracing::info!(
                            client,
                            "kafka {key:?} before SASL authentication: closing the connection \
                             (this Weir needs security.protocol=SASL_PLAINTEXT or SASL_SSL with \
                             sasl.mechanism=PLAIN or SCRAM-SHA-256, user = a token's name)"
                        );
                        return Err("unauthenticated request".into());
                    }
                };
                handlers::handle(&shared, &client, Some(&principal), key, version, &mut body)
                    .await
                    .map_err(|e| format!("{key:?} v{version}: {e}"))?
            }
        };
        let Some(reply) = reply else {
            continue; // acks = 0: no response
        };
        let mut out = BytesMut::new();
        // ApiVersions answers with header v0 whatever the version, so that a client
        // that does not know the broker yet can read it.
        let header_version = match key {
            ApiKey::ApiVersions => 0,
            _ => key.response_header_version(version),
        };
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, header_version)
            .map_err(|e| e.to_string())?;
        out.put(reply);
        let mut framed = BytesMut::with_capacity(out.len() + 4);
        framed.put_i32(out.len() as i32);
        framed.put(out);
        socket
            .write_all(framed.chunk())
            .await
            .map_err(|e| e.to_string())?;
        socket.flush().await.map_err(|e| e.to_string())?;
        if close {
            return Err("SASL authentication failed".into());
        }
    }
}

/// Splits a request frame (without its length prefix) into its API, version, header
/// and body.
fn request_header(frame: Bytes) -> Result<(ApiKey, i16, RequestHeader, Bytes), String> {
    if frame.len() < 4 {
        return Err(format!("a request of {} bytes has no header", frame.len()));
    }
    let mut body = frame;
    let (api_key, version) = (
        i16::from_be_bytes([body[0], body[1]]),
        i16::from_be_bytes([body[2], body[3]]),
    );
    let Ok(key) = ApiKey::try_from(api_key) else {
        return Err(format!("unknown API key {api_key}"));
    };
    let header = RequestHeader::decode(&mut body, key.request_header_version(version))
        .map_err(|e| format!("{key:?} v{version}: bad request header: {e}"))?;
    Ok((key, version, header, body))
}

/// Reads one request frame as the listener does: its header, its body as the request
/// of its API, and for Produce the record batches it carries. For the fuzzer: whatever
/// the bytes, an error and never a panic.
pub fn decode_request(frame: &[u8]) -> Result<(), String> {
    use kafka_protocol::messages::RequestKind;
    let (key, version, _, mut body) = request_header(Bytes::copy_from_slice(frame))?;
    let request = RequestKind::decode(key, &mut body, version).map_err(|e| e.to_string())?;
    if let RequestKind::Produce(produce) = request {
        for topic in produce.topic_data {
            for partition in topic.partition_data {
                let mut records = partition.records.unwrap_or_default();
                kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Encodes a response body at `version`.
fn encoded<T: Encodable>(message: &T, version: i16) -> Result<Bytes, String> {
    let mut out = BytesMut::new();
    message
        .encode(&mut out, version)
        .map_err(|e| format!("cannot encode the response: {e}"))?;
    Ok(out.freeze())
}

/// Decodes a request body at `version`.
fn decoded<T: Decodable>(body: &mut Bytes, version: i16) -> Result<T, String> {
    T::decode(body, version).map_err(|e| format!("bad request: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_request_declaring_billions_of_topics_is_refused_not_allocated() {
        // Found by the kafka_request fuzz target: a 26-byte Metadata request whose topic
        // count made the decoder reserve 129 GB (fixed in vendor/kafka-protocol).
        let frame =
            include_bytes!("../../../fuzz/regressions/kafka_request/metadata-topic-count-oom");
        assert!(super::decode_request(frame).is_err());
    }
}
