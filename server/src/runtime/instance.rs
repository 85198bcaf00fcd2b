//! An operator instance's task: takes the chunks of messages its inputs send, runs its
//! operator, hands the output on (to the next node's instances, or to the sink), and
//! forwards event time, progress and barriers (see the module docs of [`super`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::RecordBatch;
use tokio::sync::{mpsc, watch};

use super::progress::ProgressStore;
use super::{InputTime, Message, Result, Route, RunningQuery, RuntimeError, Sink, Snapshot};
use crate::operators::{Emitted, Operator, OperatorState, Role, aggregate::with_op};

/// The watermark of an instance's inputs: the minimum over those that are not idle,
/// held (`None`) while any is unknown or every one is idle. An idle input (a reader, or an
/// instance whose inputs are all idle) counts again once a log behind it has rows past
/// where it went idle (see [`InputTime::Idle`]).
fn combined(times: &[InputTime], logs: &[Vec<Arc<crate::log::PartitionLog>>]) -> Option<i64> {
    let mut least: Option<i64> = None;
    for (time, logs) in times.iter().zip(logs) {
        let at = match *time {
            InputTime::Unknown => return None,
            InputTime::Idle { upto, watermark } => {
                let written: u64 = logs.iter().map(|l| l.latest_offset()).sum();
                match written > upto {
                    false => continue,
                    true => match watermark {
                        Some(w) => w,
                        None => return None,
                    },
                }
            }
            InputTime::At(w) => w,
        };
        least = Some(least.map_or(at, |l| l.min(at)));
    }
    least
}

impl RunningQuery {
    /// Task of instance `k` of stateful node `n` (an index into `self.nodes`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn operate(
        self: Arc<Self>,
        n: usize,
        k: usize,
        mut rx: mpsc::Receiver<Vec<Message>>,
        routes: Vec<Route>,
        restored: Option<OperatorState>,
        start: Arc<Vec<u64>>,
        snapshots: mpsc::Sender<Snapshot>,
    ) -> Result<()> {
        let node = &self.nodes[n];
        let last = n + 1 == self.nodes.len();
        let view = last && matches!(self.sink, Sink::View(_));
        let role = Role {
            view,
            changes: last && self.def.emit_changes,
            retention_ns: match last {
                true => self.def.retention_ms.map(|ms| ms * 1_000_000),
                false => None,
            },
            dedup_retention_ns: self.def.dedup_retention_ms.map(|ms| ms * 1_000_000),
            state_ttl_ns: self.def.state_ttl_ms.map(|ms| ms * 1_000_000),
            instance: k,
            node: node.id,
            run_ms: self.started_ms,
        };
        let mut operator = crate::operators::instantiate(&node.node, role)?;
        if let Some(state) = restored {
            operator.restore(state).await?;
            if let (Sink::View(state), Some(contents)) =
                (&self.sink, operator.view_contents().await?)
            {
                state.replace(k, self.to_sink(contents)?)?;
            }
        }
        let mut watermark = operator.figures().watermark;
        self.restored.send_modify(|n| *n += 1);
        let slot = &node.instances[k];
        *slot.progress.lock() = start.to_vec();
        // Late events already routed (before a restart) are not routed again.
        let mut late = match &self.late {
            Some((stream, dir)) => {
                let first = self.nodes.first().is_some_and(|f| f.id == node.id);
                let dir = match first {
                    true => dir.join(k.to_string()),
                    false => dir.join(format!("n{}-{k}", node.id)),
                };
                let partitions = self.sources[0].stream.partitions().len();
                let store = ProgressStore::open(dir, partitions)?;
                let floor = store.load()?;
                Some((stream.clone(), store, floor))
            }
            None => None,
        };
        let mut times = vec![InputTime::Unknown; node.senders];
        let mut frontiers: Vec<Arc<Vec<u64>>> = vec![start.clone(); node.senders];
        let mut sent_time: Option<InputTime> = None;
        let mut barriers: Option<(u64, usize)> = None;
        let mut cancel = self.cancel.subscribe();
        let mut resumed = match &self.checkpoints {
            Some(c) => c.resumed.subscribe(),
            None => watch::channel(0).1,
        };
        loop {
            let chunk = tokio::select! {
                _ = cancel.changed() => return Ok(()),
                chunk = rx.recv() => match chunk {
                    Some(chunk) => chunk,
                    None => return Ok(()),
                },
            };
            let mut progressed = false;
            for message in chunk {
                match message {
                    Message::Rows { port, rows } => operator.process(port, rows).await?,
                    Message::Time { sender, time } => {
                        times[sender] = time;
                        if let Some(w) = combined(&times, &node.sender_logs)
                            && watermark.is_none_or(|c| w > c)
                        {
                            watermark = Some(w);
                            operator.advance(w);
                        }
                    }
                    Message::Progress { sender, frontier } => {
                        frontiers[sender] = frontier;
                        progressed = true;
                    }
                    Message::Barrier { epoch } => {
                        let (at, seen) = barriers.get_or_insert((epoch, 0));
                        if *at != epoch {
                            return Err(RuntimeError::Checkpoint(format!(
                                "checkpoint barriers out of order ({at} then {epoch})"
                            )));
                        }
                        *seen += 1;
                    }
                }
            }
            let output = operator.flush().await?;
            self.metrics
                .late_rows
                .fetch_add(output.late_rows, Ordering::Relaxed);
            if let Some((stream, store, floor)) = &mut late
                && !output.late.is_empty()
            {
                self.route_late(stream, store, floor, output.late).await?;
            }
            if !self.hand_on(&routes, last, output.rows).await? {
                return Ok(());
            }
            // Event time and progress follow the output they cover.
            let time = match times.iter().all(|t| matches!(t, InputTime::Idle { .. })) {
                true => InputTime::Idle {
                    upto: times
                        .iter()
                        .map(|t| match t {
                            InputTime::Idle { upto, .. } => *upto,
                            _ => 0,
                        })
                        .sum(),
                    watermark,
                },
                false => watermark.map_or(InputTime::Unknown, InputTime::At),
            };
            let mut forward = Vec::new();
            if sent_time != Some(time) {
                sent_time = Some(time);
                forward.push(time);
            }
            let frontier = progressed.then(|| {
                let mut least = vec![u64::MAX; start.len()];
                for f in &frontiers {
                    for (l, v) in least.iter_mut().zip(f.iter()) {
                        *l = (*l).min(*v);
                    }
                }
                Arc::new(least)
            });
            if last {
                if let Some(frontier) = &frontier {
                    *slot.progress.lock() = frontier.to_vec();
                }
            } else if !self.forward(&routes, k, &forward, frontier.as_ref()).await {
                return Ok(());
            }
            *slot.figures.lock() = operator.figures();
            if frontier.is_some() {
                self.progressed.send_replace(());
            }
            if let Some((epoch, seen)) = barriers
                && seen == node.senders
            {
                barriers = None;
                if !self
                    .checkpoint_instance(n, k, epoch, &mut operator, &routes, &snapshots)
                    .await?
                {
                    return Ok(());
                }
                // Nothing may change the state or the output until the coordinator has
                // every snapshot and read the output's end.
                tokio::select! {
                    done = resumed.wait_for(|e| *e >= epoch) => if done.is_err() { return Ok(()) },
                    _ = cancel.changed() => return Ok(()),
                }
            }
        }
    }

    /// Snapshots the operator at `epoch`'s barrier and forwards the barrier; `false`
    /// when the query stopped.
    async fn checkpoint_instance(
        &self,
        n: usize,
        k: usize,
        epoch: u64,
        operator: &mut Box<dyn Operator>,
        routes: &[Route],
        snapshots: &mpsc::Sender<Snapshot>,
    ) -> Result<bool> {
        let state = operator.snapshot(epoch)?;
        let view = match operator.view_contents().await? {
            Some(contents) => Some(self.to_sink(contents)?),
            None => None,
        };
        let snapshot = Snapshot::Instance {
            node: n,
            instance: k,
            epoch,
            state,
            view,
        };
        if snapshots.send(snapshot).await.is_err() {
            return Ok(false);
        }
        for route in routes {
            for target in &route.targets {
                if target.send(vec![Message::Barrier { epoch }]).await.is_err() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The sink's rows for a view's contents: through the steps to the sink.
    fn to_sink(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        batches
            .into_iter()
            .map(|b| Ok(crate::operators::stateless::run(&self.sink_steps, b)?))
            .collect()
    }

    /// Hands an operator's output on: to the sink (the last node) or along its routes.
    /// `false` when the query stopped.
    async fn hand_on(&self, routes: &[Route], last: bool, rows: Vec<Emitted>) -> Result<bool> {
        if rows.is_empty() {
            return Ok(true);
        }
        if last {
            let mut batches = Vec::with_capacity(rows.len());
            let mut changes = false;
            for Emitted { batch, op } in rows {
                let batch = crate::operators::stateless::run(&self.sink_steps, batch)?;
                if batch.num_rows() == 0 {
                    continue;
                }
                batches.push(match op {
                    Some(op) => {
                        changes = true;
                        with_op(&batch, op)?
                    }
                    None => batch,
                });
            }
            if changes && batches.len() > 1 {
                // One batch per step, retractions first: readers see each change whole.
                let schema = batches[0].schema();
                batches = vec![datafusion::arrow::compute::concat_batches(
                    &schema, &batches,
                )?];
            }
            let appended: usize = batches.iter().map(|b| b.num_rows()).sum();
            self.sink.write(batches).await.map_err(RuntimeError::Sink)?;
            if !matches!(self.sink, Sink::View(_)) {
                self.metrics
                    .rows_out
                    .fetch_add(appended as u64, Ordering::Relaxed);
            }
            return Ok(true);
        }
        for route in routes {
            let mut chunks: Vec<Vec<Message>> = route.targets.iter().map(|_| Vec::new()).collect();
            for emitted in &rows {
                for (i, part) in route
                    .route(emitted.batch.clone(), None)?
                    .into_iter()
                    .enumerate()
                {
                    if let Some(rows) = part {
                        chunks[i].push(Message::Rows {
                            port: route.port,
                            rows,
                        });
                    }
                }
            }
            for (target, chunk) in route.targets.iter().zip(chunks) {
                if !chunk.is_empty() && target.send(chunk).await.is_err() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Sends event time and progress on every route; `false` when the query stopped.
    async fn forward(
        &self,
        routes: &[Route],
        k: usize,
        times: &[InputTime],
        frontier: Option<&Arc<Vec<u64>>>,
    ) -> bool {
        if times.is_empty() && frontier.is_none() {
            return true;
        }
        for route in routes {
            let sender = route.sender_base + k;
            for target in &route.targets {
                let mut chunk: Vec<Message> = times
                    .iter()
                    .map(|&time| Message::Time { sender, time })
                    .collect();
                if let Some(frontier) = frontier {
                    chunk.push(Message::Progress {
                        sender,
                        frontier: frontier.clone(),
                    });
                }
                if target.send(chunk).await.is_err() {
                    return false;
                }
            }
        }
        true
    }

    /// Appends late events (source rows, table schema) to the late-data stream, skipping
    /// those at offsets routed before, then records the new floor per partition.
    async fn route_late(
        &self,
        stream: &Arc<crate::stream::Stream>,
        store: &ProgressStore,
        floor: &mut [u64],
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        use datafusion::arrow::array::{AsArray, BooleanArray};
        use datafusion::arrow::datatypes::{Int32Type, Int64Type};
        let schema = &self.sources[0].stream.table_schema;
        let p_col = schema.index_of("_partition")?;
        let o_col = schema.index_of("_offset")?;
        let user: Vec<usize> = (0..stream.schema.fields().len()).collect();
        let mut rows = Vec::new();
        let mut touched = Vec::new();
        for batch in batches {
            let partitions = batch.column(p_col).as_primitive::<Int32Type>().clone();
            let offsets = batch.column(o_col).as_primitive::<Int64Type>().clone();
            let keep: BooleanArray = (0..batch.num_rows())
                .map(|i| Some(offsets.value(i) as u64 >= floor[partitions.value(i) as usize]))
                .collect();
            for i in 0..batch.num_rows() {
                if keep.value(i) {
                    let p = partitions.value(i) as usize;
                    floor[p] = floor[p].max(offsets.value(i) as u64 + 1);
                    touched.push(p);
                }
            }
            let kept = datafusion::arrow::compute::filter_record_batch(&batch, &keep)?;
            let kept = kept.project(&user)?;
            rows.push(RecordBatch::try_new(
                stream.schema.clone(),
                kept.columns().to_vec(),
            )?);
        }
        // Late events are committed at once (their floors keep them from repeating).
        let late_stream = stream.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let rows: Vec<_> = rows.into_iter().filter(|b| b.num_rows() > 0).collect();
            if rows.is_empty() {
                return Ok(());
            }
            let batch = datafusion::arrow::compute::concat_batches(&late_stream.schema, &rows)?;
            late_stream
                .append(&batch)
                .map_err(|e| RuntimeError::Storage(e.to_string()))?;
            Ok(())
        })
        .await??;
        touched.sort_unstable();
        touched.dedup();
        let store = store.clone();
        let saves: Vec<(usize, u64)> = touched.into_iter().map(|p| (p, floor[p])).collect();
        tokio::task::spawn_blocking(move || {
            saves.into_iter().try_for_each(|(p, o)| store.save(p, o))
        })
        .await??;
        Ok(())
    }
}

impl From<String> for RuntimeError {
    fn from(message: String) -> Self {
        RuntimeError::Storage(message)
    }
}
