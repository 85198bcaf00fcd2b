//! What a running query reports: its sources, figures per node and instance,
//! watermark, progress, and the waits FLUSH and the tests use.

use super::*;

impl RunningQuery {
    /// The input streams and their partition slots.
    pub fn sources(&self) -> &[SourceSlots] {
        &self.sources
    }

    /// Instances of the query's widest node.
    pub fn parallelism(&self) -> usize {
        self.nodes.iter().map(|n| n.parallelism).max().unwrap_or(1)
    }

    /// The live figures of each stateful node (by node id), one entry per instance.
    pub fn node_figures(&self) -> Vec<(NodeId, Vec<Figures>)> {
        self.nodes
            .iter()
            .map(|n| {
                let figures = n
                    .instances
                    .iter()
                    .map(|i| i.figures.lock().clone())
                    .collect();
                (n.id, figures)
            })
            .collect()
    }

    /// Rows held in the operators' state.
    pub fn state_rows(&self) -> u64 {
        self.all_figures().map(|f| f.state_rows).sum()
    }

    /// Bytes held in the operators' state.
    pub fn state_bytes(&self) -> u64 {
        self.all_figures().map(|f| f.state_bytes).sum()
    }

    /// Open windows of the last node, earliest end first (at most 20): (end ns, groups).
    pub fn open_windows(&self) -> Vec<(i64, u64)> {
        let mut open = std::collections::BTreeMap::<i64, u64>::new();
        if let Some(last) = self.nodes.last() {
            for instance in &last.instances {
                for (end, groups) in &instance.figures.lock().open_windows {
                    *open.entry(*end).or_default() += groups;
                }
            }
        }
        open.into_iter().take(20).collect()
    }

    /// The query's watermark: the last node's (the least over its instances).
    pub fn watermark(&self) -> Option<i64> {
        let last = self.nodes.last()?;
        last.instances
            .iter()
            .map(|i| i.figures.lock().watermark)
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    }

    fn all_figures(&self) -> impl Iterator<Item = Figures> + '_ {
        self.nodes
            .iter()
            .flat_map(|n| n.instances.iter().map(|i| i.figures.lock().clone()))
    }

    /// Rows read per input stream (in `sources` order).
    pub fn reader_rows(&self) -> Vec<u64> {
        self.sources
            .iter()
            .enumerate()
            .map(|(s, _)| {
                self.readers
                    .iter()
                    .filter(|r| r.source == s)
                    .map(|r| r.rows.load(Ordering::Relaxed))
                    .sum()
            })
            .collect()
    }

    /// Per partition slot: its reader's watermark and whether it is idle.
    pub fn reader_reports(&self) -> Vec<(Option<i64>, bool)> {
        self.readers.iter().map(|r| *r.report.lock()).collect()
    }

    /// Per partition slot (sources in order, their partitions in order), the next
    /// offset whose rows have not all reached the sink.
    pub fn progress(&self) -> Vec<u64> {
        let last = self.nodes.last().expect("a plan has a stateful node");
        let frontiers: Vec<Vec<u64>> = last
            .instances
            .iter()
            .map(|i| i.progress.lock().clone())
            .collect();
        (0..self.readers.len())
            .map(|slot| {
                frontiers
                    .iter()
                    .map(|f| f.get(slot).copied().unwrap_or(0))
                    .min()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Has every reader re-check idleness against the clock now and hand its event
    /// time on (FLUSH does, so tests that move an injected clock see its effect
    /// deterministically: the checkpoint FLUSH takes next comes after it on every edge).
    pub async fn tick(&self) {
        for reader in &self.readers {
            let (done, wait) = oneshot::channel();
            if reader.ticks.send(done).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Waits until every partition slot has processed everything below `targets` (FLUSH).
    pub async fn wait_for(&self, targets: &[u64]) -> Result<()> {
        let mut rx = self.progressed.subscribe();
        loop {
            if let Some(e) = &*self.error.lock() {
                return Err(RuntimeError::Stopped(format!(
                    "query {} failed: {e}",
                    self.def.name
                )));
            }
            if self
                .progress()
                .iter()
                .zip(targets)
                .all(|(done, target)| done >= target)
            {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(RuntimeError::Stopped(format!(
                    "query {} stopped",
                    self.def.name
                )));
            }
        }
    }

    /// The committed end of every partition slot (what FLUSH waits for).
    pub fn committed_offsets(&self) -> Vec<u64> {
        self.sources
            .iter()
            .flat_map(|s| s.stream.partitions().iter().map(|p| p.committed_offset()))
            .collect()
    }
}
