//! Restoring a query from a checkpoint: the checkpoint's source positions and operator
//! states mapped onto the plan being started, or refused whole.

use super::*;

impl RunningQuery {
    /// Maps a checkpoint onto this plan: source positions by stream name, operator
    /// states by node id (a version-1 checkpoint: its one source and one node). A
    /// checkpoint that does not fit is refused, never used in part.
    pub(super) fn restore_plan(
        def: &QueryDef,
        sources: &[SourceSlots],
        nodes: &[NodeRun],
        checkpoint: Option<checkpoint::Checkpoint>,
    ) -> Result<Option<Restored>> {
        let Some(mut c) = checkpoint else {
            return Ok(None);
        };
        let refuse = |why: String| {
            RuntimeError::Checkpoint(format!(
                "the checkpoint of {} (epoch {}) does not fit its plan: {why}; drop and re-create \
                 the query to start it afresh from its input",
                def.name, c.epoch
            ))
        };
        if c.legacy {
            // Written when a plan had one source and one stateful node.
            if sources.len() != 1 || nodes.len() != 1 {
                return Err(refuse(format!(
                    "it was written by an earlier version of Weir for a plan of one source and one \
                     operator, and this version plans the query as {} source(s) and {} operator(s)",
                    sources.len(),
                    nodes.len()
                )));
            }
            c.sources[0].stream = sources[0].stream.name().to_string();
            c.nodes[0].node = nodes[0].id;
            c.nodes[0].kind = node_kind(&nodes[0].node).into();
        }
        let mut positions = Vec::new();
        for source in sources {
            let partitions = source.stream.partitions().len();
            let saved = c
                .sources
                .iter()
                .find(|s| s.stream == source.stream.name())
                .ok_or_else(|| refuse(format!("it has no offsets for {}", source.stream.name())))?;
            if saved.offsets.len() != partitions {
                return Err(refuse(format!(
                    "it has offsets for {} partitions of {}, which has {partitions}",
                    saved.offsets.len(),
                    source.stream.name()
                )));
            }
            for p in 0..partitions {
                positions.push((saved.offsets[p], saved.watermarks.get(p).copied().flatten()));
            }
        }
        let mut states = Vec::new();
        for node in nodes {
            let saved = c
                .nodes
                .iter_mut()
                .find(|n| n.node == node.id)
                .ok_or_else(|| refuse(format!("it has no state for operator [{}]", node.id)))?;
            if saved.kind != node_kind(&node.node) || saved.instances.len() != node.parallelism {
                return Err(refuse(format!(
                    "operator [{}] was a {} of {} instance(s), and is now a {} of {}",
                    node.id,
                    saved.kind,
                    saved.instances.len(),
                    node_kind(&node.node),
                    node.parallelism
                )));
            }
            states.push(
                std::mem::take(&mut saved.instances)
                    .into_iter()
                    .map(Some)
                    .collect(),
            );
        }
        Ok(Some(Restored {
            epoch: c.epoch,
            counters: c.counters,
            positions,
            states,
        }))
    }
}

/// A node's kind as checkpoints name it.
pub(super) fn node_kind(node: &StatefulNode) -> &'static str {
    match node.kind {
        StatefulKind::Aggregate(_) => "aggregate",
        StatefulKind::TopN(_) => "top_n",
        StatefulKind::Dedup(_) => "dedup",
        StatefulKind::IntervalJoin(_) => "interval_join",
        StatefulKind::TemporalJoin(_) => "temporal_join",
        StatefulKind::LookupJoin(_) => "lookup_join",
        StatefulKind::Merge => "merge",
    }
}
