//! The checkpoint coordinator of a query (see the module docs of [`super`]): barriers,
//! snapshots, and the commit that makes output visible.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::{Checkpointing, RunningQuery, Sink, Snapshot, checkpoint};

impl RunningQuery {
    /// Takes a checkpoint now and waits until it committed (FLUSH, shutdown). Queries
    /// without checkpoints return at once.
    pub async fn checkpoint_now(&self) -> Result<(), String> {
        let Some(c) = &self.checkpoints else {
            return Ok(());
        };
        let (done, wait) = oneshot::channel();
        if c.requests.send(done).await.is_err() {
            return Err(format!("query {} is not running", self.def.name));
        }
        wait.await
            .map_err(|_| format!("query {} stopped before its checkpoint", self.def.name))?
    }

    /// The last committed checkpoint: (epoch, duration ms, unix ms when it committed).
    pub fn last_checkpoint(&self) -> Option<(u64, u64, i64)> {
        self.checkpoints.as_ref().and_then(|c| *c.last.lock())
    }

    /// The checkpoint coordinator: every interval (or when asked) it stops the readers
    /// at a barrier, collects every operator's snapshot (taken when the barrier of
    /// every partition reached it), lets the readers go on, then makes the output
    /// durable, writes the checkpoint (its manifest last), and only then makes the
    /// output readable (derived streams) or publishes the contents (views).
    pub(super) async fn coordinate(
        self: Arc<Self>,
        mut requests: mpsc::Receiver<oneshot::Sender<Result<(), String>>>,
        mut snapshots: mpsc::Receiver<Snapshot>,
    ) -> Result<(), String> {
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
            let mut taken: Vec<Option<Snapshot>> =
                (0..self.operators.len()).map(|_| None).collect();
            while taken.iter().any(Option::is_none) {
                tokio::select! {
                    _ = cancel.changed() => return Ok(()),
                    snapshot = snapshots.recv() => {
                        let Some(snapshot) = snapshot else { return Ok(()) };
                        if snapshot.epoch == epoch {
                            let i = snapshot.operator;
                            taken[i] = Some(snapshot);
                        }
                    }
                }
            }
            let taken: Vec<Snapshot> = taken.into_iter().flatten().collect();
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
                    Sink::View(_) => taken
                        .iter()
                        .flat_map(|t| t.view.iter().flatten())
                        .map(|b| b.num_rows() as u64)
                        .sum(),
                    _ => m.rows_out.load(Ordering::Relaxed),
                },
                m.late_rows.load(Ordering::Relaxed),
            ];
            c.resumed.send_replace(epoch);
            let now = (
                taken.first().map(|t| t.offsets.clone()).unwrap_or_default(),
                output_offsets.clone(),
                taken
                    .iter()
                    .flat_map(|t| {
                        t.state
                            .partition_watermarks
                            .iter()
                            .copied()
                            .chain([t.state.watermark])
                    })
                    .collect::<Vec<_>>(),
            );
            if covered.as_ref() == Some(&now) {
                for done in waiters {
                    let _ = done.send(Ok(()));
                }
                continue;
            }
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
    async fn commit(
        &self,
        c: &Checkpointing,
        epoch: u64,
        output_offsets: &[u64],
        counters: [u64; 3],
        taken: Vec<Snapshot>,
    ) -> Result<(), String> {
        if let Sink::Stream(stream) = &self.sink {
            let (stream, ends) = (stream.clone(), output_offsets.to_vec());
            tokio::task::spawn_blocking(move || stream.sync_to(&ends))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        let mut views = Vec::new();
        let mut operators = Vec::new();
        let source_offsets = taken.first().map(|s| s.offsets.clone()).unwrap_or_default();
        for snapshot in taken {
            views.push((snapshot.operator, snapshot.view));
            operators.push(snapshot.state);
        }
        let checkpoint = checkpoint::Checkpoint {
            epoch,
            source_offsets,
            output_offsets: output_offsets.to_vec(),
            operators,
            counters,
        };
        c.store.save(self.def.id, &checkpoint).await?;
        match &self.sink {
            Sink::Stream(stream) => {
                let (stream, ends) = (stream.clone(), output_offsets.to_vec());
                tokio::task::spawn_blocking(move || stream.commit_exact(&ends))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            Sink::View(state) => {
                for (operator, view) in views {
                    if let Some(view) = view {
                        state.replace(operator, view)?;
                    }
                }
                self.metrics
                    .rows_out
                    .store(state.rows() as u64, Ordering::Relaxed);
            }
            Sink::Channel(_) => {}
        }
        Ok(())
    }
}
