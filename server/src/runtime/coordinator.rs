//! The checkpoint coordinator of a query (see the module docs of [`super`]): barriers,
//! snapshots, and the commit that makes output visible.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::{Checkpointing, Result, RunningQuery, RuntimeError, Sink, Snapshot, checkpoint};
use crate::operators::OperatorState;

impl RunningQuery {
    /// Takes a checkpoint now and waits until it committed (FLUSH, shutdown). Queries
    /// without checkpoints return at once.
    pub async fn checkpoint_now(&self) -> Result<()> {
        let Some(c) = &self.checkpoints else {
            return Ok(());
        };
        let (done, wait) = oneshot::channel();
        if c.requests.send(done).await.is_err() {
            return Err(RuntimeError::Stopped(format!(
                "query {} is not running",
                self.def.name
            )));
        }
        wait.await.map_err(|_| {
            RuntimeError::Stopped(format!(
                "query {} stopped before its checkpoint",
                self.def.name
            ))
        })?
    }

    /// The last committed checkpoint: (epoch, duration ms, unix ms when it committed).
    pub fn last_checkpoint(&self) -> Option<(u64, u64, i64)> {
        self.checkpoints.as_ref().and_then(|c| *c.last.lock())
    }

    /// The checkpoint coordinator: every interval (or when asked) it stops the readers
    /// at a barrier, collects every reader's position and every operator instance's
    /// snapshot (taken when the barrier came on all its inputs), lets everyone go on,
    /// then makes the output
    /// durable, writes the checkpoint (its manifest last), and only then makes the
    /// output readable (derived streams) or publishes the contents (views).
    pub(super) async fn coordinate(
        self: Arc<Self>,
        mut requests: mpsc::Receiver<oneshot::Sender<Result<()>>>,
        mut snapshots: mpsc::Receiver<Snapshot>,
    ) -> Result<()> {
        let c = self.checkpoints.as_ref().expect("a checkpointing query");
        let mut cancel = self.cancel.subscribe();
        let mut timer = tokio::time::interval(c.interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut epoch = *c.barrier.borrow();
        let mut previous: Option<u64> = None;
        // What the last committed checkpoint covered: an idle query does not write the
        // same checkpoint again every interval.
        let mut covered: Option<(Vec<u64>, Vec<u64>, Vec<Option<i64>>)> = None;
        loop {
            let mut waiters = Vec::new();
            tokio::select! {
                _ = cancel.changed() => return Ok(()),
                _ = timer.tick() => {}
                request = requests.recv() => match request {
                    Some(done) => waiters.push(done),
                    None => return Ok(()),
                },
            }
            while let Ok(done) = requests.try_recv() {
                waiters.push(done);
            }
            let started = std::time::Instant::now();
            epoch += 1;
            c.barrier.send_replace(epoch);
            let mut positions: Vec<Option<(u64, Option<i64>)>> = vec![None; self.readers.len()];
            let mut states: Vec<
                Vec<
                    Option<(
                        OperatorState,
                        Option<Vec<datafusion::arrow::array::RecordBatch>>,
                    )>,
                >,
            > = self
                .nodes
                .iter()
                .map(|n| (0..n.parallelism).map(|_| None).collect())
                .collect();
            let missing = |p: &[Option<(u64, Option<i64>)>], s: &[Vec<Option<_>>]| {
                p.iter().any(Option::is_none) || s.iter().flatten().any(Option::is_none)
            };
            while missing(&positions, &states) {
                tokio::select! {
                    _ = cancel.changed() => return Ok(()),
                    snapshot = snapshots.recv() => match snapshot {
                        None => return Ok(()),
                        Some(Snapshot::Reader { slot, epoch: e, offset, watermark }) if e == epoch => {
                            positions[slot] = Some((offset, watermark));
                        }
                        Some(Snapshot::Instance { node, instance, epoch: e, state, view }) if e == epoch => {
                            states[node][instance] = Some((state, view));
                        }
                        Some(_) => {}
                    }
                }
            }
            let positions: Vec<(u64, Option<i64>)> = positions.into_iter().flatten().collect();
            let states: Vec<
                Vec<(
                    OperatorState,
                    Option<Vec<datafusion::arrow::array::RecordBatch>>,
                )>,
            > = states
                .into_iter()
                .map(|n| n.into_iter().flatten().collect())
                .collect();
            // Every output of the data before the barrier is appended; nothing after it
            // is until the readers go on.
            let output_offsets = match &self.sink {
                Sink::Stream(stream) => stream.latest_offsets(),
                _ => Vec::new(),
            };
            let m = &self.metrics;
            let counters = [
                m.rows_in.load(Ordering::Relaxed),
                match &self.sink {
                    // A view's count is of the rows it publishes at this commit.
                    Sink::View(_) => states
                        .iter()
                        .flatten()
                        .flat_map(|(_, view)| view.iter().flatten())
                        .map(|b| b.num_rows() as u64)
                        .sum(),
                    _ => m.rows_out.load(Ordering::Relaxed),
                },
                m.late_rows.load(Ordering::Relaxed),
            ];
            c.resumed.send_replace(epoch);
            let now = (
                positions.iter().map(|p| p.0).collect::<Vec<_>>(),
                output_offsets.clone(),
                positions
                    .iter()
                    .map(|p| p.1)
                    .chain(states.iter().flatten().map(|(s, _)| s.watermark))
                    .collect::<Vec<_>>(),
            );
            if covered.as_ref() == Some(&now) {
                for done in waiters {
                    let _ = done.send(Ok(()));
                }
                continue;
            }
            let taken = (positions, states);
            let result = self
                .commit(c, epoch, &output_offsets, counters, taken)
                .await;
            if result.is_ok() {
                covered = Some(now);
            }
            match &result {
                Ok(()) => {
                    *c.last.lock() = Some((
                        epoch,
                        started.elapsed().as_millis() as u64,
                        chrono::Utc::now().timestamp_millis(),
                    ));
                    if let Some(previous) = previous {
                        // Keep the previous checkpoint too; drop the ones before it.
                        if let Err(e) = c.store.collect_garbage(self.def.id, previous).await {
                            tracing::warn!(query = %self.def.name, "could not delete old checkpoints: {e}");
                        }
                    }
                    previous = Some(epoch);
                }
                Err(e) => {
                    tracing::warn!(query = %self.def.name, epoch, "checkpoint failed (the next one retries; output stays unpublished until one commits): {e}");
                }
            }
            for done in waiters {
                let _ = done.send(result.clone());
            }
        }
    }

    /// Second half of a checkpoint: output durable, checkpoint written, then visible.
    #[allow(clippy::type_complexity)]
    async fn commit(
        &self,
        c: &Checkpointing,
        epoch: u64,
        output_offsets: &[u64],
        counters: [u64; 3],
        taken: (
            Vec<(u64, Option<i64>)>,
            Vec<
                Vec<(
                    OperatorState,
                    Option<Vec<datafusion::arrow::array::RecordBatch>>,
                )>,
            >,
        ),
    ) -> Result<()> {
        if let Sink::Stream(stream) = &self.sink {
            let (stream, ends) = (stream.clone(), output_offsets.to_vec());
            tokio::task::spawn_blocking(move || stream.sync_to(&ends)).await??;
        }
        let (positions, states) = taken;
        let sources = self
            .sources
            .iter()
            .map(|s| {
                let slots = &positions[s.first..s.first + s.stream.partitions().len()];
                checkpoint::SourcePosition {
                    stream: s.stream.name().to_string(),
                    offsets: slots.iter().map(|p| p.0).collect(),
                    watermarks: slots.iter().map(|p| p.1).collect(),
                }
            })
            .collect();
        let mut views = Vec::new();
        let mut nodes = Vec::new();
        for (node, instances) in self.nodes.iter().zip(states) {
            let mut states = Vec::with_capacity(instances.len());
            for (k, (state, view)) in instances.into_iter().enumerate() {
                if let Some(view) = view {
                    views.push((k, view));
                }
                states.push(state);
            }
            nodes.push(checkpoint::NodeState {
                node: node.id,
                kind: super::restore::node_kind(&node.node).into(),
                instances: states,
            });
        }
        let checkpoint = checkpoint::Checkpoint {
            epoch,
            sources,
            output_offsets: output_offsets.to_vec(),
            nodes,
            counters,
            legacy: false,
        };
        c.store
            .save(self.def.id, &checkpoint)
            .await
            .map_err(RuntimeError::Storage)?;
        match &self.sink {
            Sink::Stream(stream) => {
                let (stream, ends) = (stream.clone(), output_offsets.to_vec());
                tokio::task::spawn_blocking(move || stream.commit_exact(&ends)).await??;
            }
            Sink::View(state) => {
                for (instance, view) in views {
                    state.replace(instance, view)?;
                }
                state.committed(epoch);
                self.metrics
                    .rows_out
                    .store(state.rows() as u64, Ordering::Relaxed);
            }
            Sink::Channel(_) => {}
        }
        Ok(())
    }
}
