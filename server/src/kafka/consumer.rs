//! The consumer-group APIs: each request decoded, handed to the coordinator
//! ([`super::groups`]), and its answer encoded.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::groups::Groups;
use super::{decoded, encoded};

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Answers a consumer-group request.
pub async fn handle(
    groups: &Groups,
    client: &str,
    advertised: SocketAddr,
    key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<Bytes, String> {
    match key {
        ApiKey::FindCoordinator => {
            let request: FindCoordinatorRequest = decoded(body, version)?;
            let host = text(&advertised.ip().to_string());
            let port = advertised.port() as i32;
            let response = FindCoordinatorResponse::default()
                .with_node_id(BrokerId(0))
                .with_host(host.clone())
                .with_port(port)
                .with_coordinators(
                    request
                        .coordinator_keys
                        .into_iter()
                        .map(|k| {
                            Coordinator::default()
                                .with_key(k)
                                .with_node_id(BrokerId(0))
                                .with_host(host.clone())
                                .with_port(port)
                        })
                        .collect(),
                );
            encoded(&response, version)
        }
        ApiKey::JoinGroup => {
            let request: JoinGroupRequest = decoded(body, version)?;
            let rebalance = match request.rebalance_timeout_ms {
                t if t > 0 => t,
                _ => request.session_timeout_ms,
            };
            let joined = groups
                .join(
                    &request.group_id.0,
                    &request.member_id,
                    client,
                    &request.protocol_type,
                    request
                        .protocols
                        .into_iter()
                        .map(|p| (p.name.to_string(), p.metadata))
                        .collect(),
                    Duration::from_millis(request.session_timeout_ms.max(1000) as u64),
                    Duration::from_millis(rebalance.clamp(1000, 300_000) as u64),
                    version,
                )
                .await;
            let response = JoinGroupResponse::default()
                .with_error_code(joined.error)
                .with_generation_id(joined.generation)
                .with_protocol_type(Some(text(&joined.protocol_type)))
                // Nullable only from v7: older clients read a missing one as "".
                .with_protocol_name(match (joined.protocol.as_deref(), version) {
                    (Some(p), _) => Some(text(p)),
                    (None, v) if v < 7 => Some(text("")),
                    (None, _) => None,
                })
                .with_leader(text(&joined.leader))
                .with_member_id(text(&joined.member_id))
                .with_members(
                    joined
                        .members
                        .into_iter()
                        .map(|(id, metadata)| {
                            JoinGroupResponseMember::default()
                                .with_member_id(text(&id))
                                .with_metadata(metadata)
                        })
                        .collect(),
                );
            encoded(&response, version)
        }
        ApiKey::SyncGroup => {
            let request: SyncGroupRequest = decoded(body, version)?;
            let result = groups
                .sync(
                    &request.group_id.0,
                    &request.member_id,
                    request.generation_id,
                    request
                        .assignments
                        .into_iter()
                        .map(|a| (a.member_id.to_string(), a.assignment))
                        .collect(),
                )
                .await;
            let response = match result {
                Ok(assignment) => SyncGroupResponse::default()
                    .with_assignment(assignment)
                    .with_protocol_type(request.protocol_type)
                    .with_protocol_name(request.protocol_name),
                Err(code) => SyncGroupResponse::default().with_error_code(code),
            };
            encoded(&response, version)
        }
        ApiKey::Heartbeat => {
            let request: HeartbeatRequest = decoded(body, version)?;
            let code = groups
                .heartbeat(
                    &request.group_id.0,
                    &request.member_id,
                    request.generation_id,
                )
                .await;
            encoded(&HeartbeatResponse::default().with_error_code(code), version)
        }
        ApiKey::LeaveGroup => {
            let request: LeaveGroupRequest = decoded(body, version)?;
            let mut members: Vec<String> = request
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect();
            if !request.member_id.is_empty() {
                members.push(request.member_id.to_string());
            }
            groups.leave(&request.group_id.0, &members).await;
            encoded(&LeaveGroupResponse::default(), version)
        }
        ApiKey::OffsetCommit => {
            let request: OffsetCommitRequest = decoded(body, version)?;
            let offsets: Vec<(String, i32, i64)> = request
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
                })
                .collect();
            let code = match groups.commit(&request.group_id.0, offsets).await {
                Ok(()) => 0,
                Err(e) => {
                    tracing::warn!("kafka offset commit: {e}");
                    56 // KAFKA_STORAGE_ERROR
                }
            };
            let response = OffsetCommitResponse::default().with_topics(
                request
                    .topics
                    .into_iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default()
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                            .with_name(t.name)
                    })
                    .collect(),
            );
            encoded(&response, version)
        }
        ApiKey::OffsetFetch => {
            let request: OffsetFetchRequest = decoded(body, version)?;
            let asked = request.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let committed = groups.committed(&request.group_id.0, asked).await;
            let response = OffsetFetchResponse::default().with_topics(
                committed
                    .into_iter()
                    .map(|(topic, parts)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(text(&topic)))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, o)| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o)
                                            .with_committed_leader_epoch(-1)
                                            .with_metadata(Some(StrBytes::default()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
            encoded(&response, version)
        }
        other => Err(format!("{other:?} is not a consumer-group API")),
    }
}
