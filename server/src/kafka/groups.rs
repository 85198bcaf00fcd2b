//! Consumer groups: the group coordinator (this one broker) and committed offsets.
//!
//! The classic rebalance protocol, as Kafka's own coordinator runs it: a member joins
//! (v4+: first told its member id), the group rebalances — every known member must
//! rejoin within its rebalance timeout, or is dropped — then the leader (the first
//! member) sends the assignment it computed, and each member's SyncGroup returns its
//! part. Heartbeats say when a rebalance is in progress; members that stop
//! heartbeating for their session timeout are dropped. Committed offsets are kept per
//! (group, topic, partition) in `kafka-offsets.json` in the data directory, rewritten
//! atomically on each commit, so they survive restarts. Group membership itself lives
//! in memory: after a restart, consumers rejoin.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Mutex, Notify};

/// Kafka's error codes for groups.
pub const ILLEGAL_GENERATION: i16 = 22;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    Rebalancing,
    AwaitingSync,
    Stable,
}

struct Member {
    protocols: Vec<(String, Bytes)>,
    joined: bool,
    session_timeout: Duration,
    last_seen: Instant,
}

struct Group {
    state: State,
    generation: i32,
    protocol_type: String,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    assignments: HashMap<String, Bytes>,
    /// When the rebalance in progress completes at the latest.
    deadline: Instant,
}

impl Group {
    fn new(protocol_type: &str) -> Self {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: protocol_type.to_string(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            assignments: HashMap::new(),
            deadline: Instant::now(),
        }
    }

    /// Starts a rebalance: every member must join again before `timeout`.
    fn rebalance(&mut self, timeout: Duration) {
        if self.state != State::Rebalancing {
            self.state = State::Rebalancing;
            self.deadline = Instant::now() + timeout;
            for m in self.members.values_mut() {
                m.joined = false;
            }
        }
    }

    /// Drops members that stopped heartbeating; a rebalance follows.
    fn expire(&mut self) {
        let now = Instant::now();
        let before = self.members.len();
        self.members
            .retain(|_, m| now.duration_since(m.last_seen) < m.session_timeout);
        if self.members.len() != before && self.state != State::Empty {
            self.rebalance(Duration::from_secs(3));
        }
    }

    /// Completes the rebalance when every member has joined or the deadline passed.
    fn try_complete(&mut self) {
        if self.state != State::Rebalancing {
            return;
        }
        let all = self.members.values().all(|m| m.joined);
        if !all && Instant::now() < self.deadline {
            return;
        }
        self.members.retain(|_, m| m.joined);
        if self.members.is_empty() {
            self.state = State::Empty;
            return;
        }
        self.generation += 1;
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        // The first protocol of the leader's that every member supports.
        let leader = &self.members[self.leader.as_ref().expect("a member leads")];
        self.protocol = leader
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            });
        self.assignments.clear();
        self.state = State::AwaitingSync;
    }
}

/// What JoinGroup answers.
pub struct Joined {
    pub error: i16,
    pub generation: i32,
    pub protocol: Option<String>,
    pub protocol_type: String,
    pub leader: String,
    pub member_id: String,
    /// For the leader: every member and its subscription.
    pub members: Vec<(String, Bytes)>,
}

pub struct Groups {
    groups: Mutex<HashMap<String, Group>>,
    changed: Notify,
    offsets: Mutex<BTreeMap<String, BTreeMap<String, BTreeMap<i32, i64>>>>,
    path: PathBuf,
    next_member: std::sync::atomic::AtomicU64,
}

impl Groups {
    /// Groups whose committed offsets are kept in `path` (read now if it exists).
    pub fn open(path: PathBuf) -> Groups {
        let offsets = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Groups {
            groups: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            offsets: Mutex::new(offsets),
            path,
            next_member: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn new_member_id(&self, client: &str) -> String {
        let n = self
            .next_member
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{client}-{started}-{n}")
    }

    /// Waits until `done` holds for the group (or `timeout` passes), re-checking
    /// whenever any group changes and every 50 ms (deadlines pass without a change).
    async fn wait_until(
        &self,
        group_id: &str,
        timeout: Duration,
        mut done: impl FnMut(&mut Group) -> bool,
    ) {
        let end = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            {
                let mut groups = self.groups.lock().await;
                let Some(group) = groups.get_mut(group_id) else {
                    return;
                };
                group.try_complete();
                if done(group) {
                    drop(groups);
                    self.changed.notify_waiters();
                    return;
                }
            }
            if Instant::now() >= end {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn join(
        &self,
        group_id: &str,
        member_id: &str,
        client_id: &str,
        protocol_type: &str,
        protocols: Vec<(String, Bytes)>,
        session_timeout: Duration,
        rebalance_timeout: Duration,
        version: i16,
    ) -> Joined {
        let failed = |error: i16, member_id: &str| Joined {
            error,
            generation: -1,
            protocol: None,
            protocol_type: protocol_type.to_string(),
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        };
        let member_id = {
            let mut groups = self.groups.lock().await;
            let group = groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(protocol_type));
            group.expire();
            if group.state != State::Empty && group.protocol_type != protocol_type {
                return failed(INCONSISTENT_GROUP_PROTOCOL, member_id);
            }
            group.protocol_type = protocol_type.to_string();
            let member_id = match member_id {
                "" => {
                    let id = self.new_member_id(client_id);
                    if version >= 4 {
                        // The client rejoins with its id (KIP-394).
                        group.members.insert(
                            id.clone(),
                            Member {
                                protocols: protocols.clone(),
                                joined: false,
                                session_timeout,
                                last_seen: Instant::now(),
                            },
                        );
                        return failed(MEMBER_ID_REQUIRED, &id);
                    }
                    id
                }
                known if group.members.contains_key(known) => known.to_string(),
                _ => return failed(UNKNOWN_MEMBER_ID, member_id),
            };
            group.rebalance(rebalance_timeout.min(Duration::from_secs(10)));
            group.members.insert(
                member_id.clone(),
                Member {
                    protocols,
                    joined: true,
                    session_timeout,
                    last_seen: Instant::now(),
                },
            );
            member_id
        };
        self.changed.notify_waiters();
        self.wait_until(group_id, rebalance_timeout, |g| {
            g.state != State::Rebalancing
        })
        .await;
        let groups = self.groups.lock().await;
        let Some(group) = groups.get(group_id) else {
            return failed(UNKNOWN_MEMBER_ID, &member_id);
        };
        if group.state == State::Rebalancing || !group.members.contains_key(&member_id) {
            return failed(REBALANCE_IN_PROGRESS, &member_id);
        }
        let leader = group.leader.clone().unwrap_or_default();
        let protocol = group.protocol.clone();
        Joined {
            error: 0,
            generation: group.generation,
            members: match leader == member_id {
                true => group
                    .members
                    .iter()
                    .map(|(id, m)| {
                        let metadata = m
                            .protocols
                            .iter()
                            .find(|(n, _)| Some(n) == protocol.as_ref())
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default();
                        (id.clone(), metadata)
                    })
                    .collect(),
                false => Vec::new(),
            },
            protocol,
            protocol_type: group.protocol_type.clone(),
            leader,
            member_id,
        }
    }

    /// SyncGroup: the leader's assignments in, each member's part out.
    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Bytes, i16> {
        {
            let mut groups = self.groups.lock().await;
            let group = groups.get_mut(group_id).ok_or(UNKNOWN_MEMBER_ID)?;
            let member = group.members.get_mut(member_id).ok_or(UNKNOWN_MEMBER_ID)?;
            member.last_seen = Instant::now();
            if generation != group.generation {
                return Err(ILLEGAL_GENERATION);
            }
            if group.state == State::Rebalancing {
                return Err(REBALANCE_IN_PROGRESS);
            }
            if group.leader.as_deref() == Some(member_id) && group.state == State::AwaitingSync {
                group.assignments = assignments.into_iter().collect();
                group.state = State::Stable;
            }
        }
        self.changed.notify_waiters();
        self.wait_until(group_id, Duration::from_secs(30), |g| {
            g.state != State::AwaitingSync || g.generation != generation
        })
        .await;
        let groups = self.groups.lock().await;
        let group = groups.get(group_id).ok_or(UNKNOWN_MEMBER_ID)?;
        if group.state != State::Stable || group.generation != generation {
            return Err(REBALANCE_IN_PROGRESS);
        }
        Ok(group
            .assignments
            .get(member_id)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn heartbeat(&self, group_id: &str, member_id: &str, generation: i32) -> i16 {
        let mut groups = self.groups.lock().await;
        let Some(group) = groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        group.expire();
        group.try_complete();
        let Some(member) = group.members.get_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        member.last_seen = Instant::now();
        match group.state {
            State::Rebalancing => REBALANCE_IN_PROGRESS,
            _ if generation != group.generation => ILLEGAL_GENERATION,
            _ => 0,
        }
    }

    pub async fn leave(&self, group_id: &str, members: &[String]) {
        let mut groups = self.groups.lock().await;
        if let Some(group) = groups.get_mut(group_id) {
            for m in members {
                group.members.remove(m);
            }
            match group.members.is_empty() {
                true => group.state = State::Empty,
                false => group.rebalance(Duration::from_secs(3)),
            }
        }
        drop(groups);
        self.changed.notify_waiters();
    }

    /// Stores committed offsets durably (the file is replaced atomically).
    pub async fn commit(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, i64)>,
    ) -> Result<(), String> {
        let mut all = self.offsets.lock().await;
        let group = all.entry(group_id.to_string()).or_default();
        for (topic, partition, offset) in offsets {
            group.entry(topic).or_default().insert(partition, offset);
        }
        let text = serde_json::to_vec(&*all).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("json.tmp");
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "cannot store committed offsets in {}: {e}",
                self.path.display()
            )
        })
    }

    /// The committed offset of each asked (topic, partition), -1 when none; every one
    /// of the group's when `topics` is `None`.
    pub async fn committed(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, Vec<(i32, i64)>)> {
        let all = self.offsets.lock().await;
        let group = all.get(group_id);
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, parts)| {
                    let known = group.and_then(|g| g.get(&t));
                    let offsets = parts
                        .into_iter()
                        .map(|p| (p, known.and_then(|k| k.get(&p)).copied().unwrap_or(-1)))
                        .collect();
                    (t, offsets)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.iter()
                        .map(|(t, parts)| {
                            (t.clone(), parts.iter().map(|(p, o)| (*p, *o)).collect())
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}
