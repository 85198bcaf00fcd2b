//! The streaming planner: turns the optimized DataFusion `LogicalPlan` of a continuous
//! query's SELECT into a [`ContinuousPlan`], a graph of nodes the runtime runs batch by
//! batch. Expressions stay DataFusion's (`PhysicalExpr`s evaluated on each batch). Knows
//! nothing about sockets, files or how operators compute.
//!
//! Nodes, created inputs first (so a node's id is larger than its inputs'):
//! - **sources**: a stream and the columns a scan of it reads;
//! - **stateless steps**: a filter, a projection, or HOP's one-branch-per-window
//!   expansion ([`Step`]), run on each batch on the edge where it is produced;
//! - **unions**: the rows of several inputs (`UNION ALL` of streams, or of aggregates);
//!   a union of branches that read the same columns of one stream is one step instead,
//!   so the stream is read once;
//! - **stateful nodes** ([`StatefulNode`]): an aggregate, a window Top-N, a
//!   deduplication, a join of two inputs (interval, window, semi or regular: [`join`];
//!   temporal: [`temporal`]), a lookup join of a stream with a view ([`lookup`]), or a
//!   merge of inputs that reach the output without state; each runs as one or more
//!   instances, fed through a hash exchange on its keys (per input: a join's sides hash
//!   on their own keys);
//! - the **sink**: the stream, view or push subscriber the output goes to.
//!
//! The node that feeds the sink (through stateless steps) is always stateful: a query
//! without state ends in a merge. Joins other than those, ORDER BY, LIMIT and window
//! functions other than a ranking under a filter ([`rank`])
//! are refused with an error that says why and what to do.

mod aggregate;
mod build;
mod hop;
pub mod join;
pub mod lookup;
pub mod rank;
mod session;
pub mod temporal;
mod tumble;

pub use aggregate::{AggregatePlan, WindowClose};
pub use build::plan_continuous;
pub use hop::HopFunction;
pub use join::IntervalJoinPlan;
pub use rank::{DedupPlan, TopNPlan};
pub use session::{SessionFunction, SessionTable, SessionWindow};
pub use temporal::TemporalJoinPlan;

/// Session bounds helpers shared with the operators.
pub mod session_bounds {
    pub use super::session::{merge_intervals, nanos, timestamps};
}
pub use tumble::{LIFTED_PREFIX, Relations, TumbleFunction};

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DataFusionError;
use datafusion::physical_expr::PhysicalExpr;

use crate::stream::Stream;

/// A node's id: its index in [`ContinuousPlan::nodes`].
pub type NodeId = usize;

/// One stateless step, applied to every batch in order.
#[derive(Clone)]
pub enum Step {
    /// Keep the rows where the predicate is true.
    Filter(Arc<dyn PhysicalExpr>),
    /// Compute new columns; the output has `schema`.
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    },
    /// Run each branch on the batch and concatenate (HOP: one branch per window an
    /// event belongs to, the branch of its latest window first).
    Union {
        branches: Vec<Vec<Step>>,
        schema: SchemaRef,
    },
}

/// What a stateful node computes.
// Plans are built once per query; the size of a node does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum StatefulKind {
    Aggregate(AggregatePlan),
    /// Ranks each window's rows when it closes and keeps the top ones.
    TopN(TopNPlan),
    /// One row per key: the first by event time, or the latest.
    Dedup(DedupPlan),
    /// Matches rows of two inputs whose times lie within bounds of each other.
    IntervalJoin(IntervalJoinPlan),
    /// Joins each left row with the version of its key valid at its time.
    TemporalJoin(TemporalJoinPlan),
    /// Joins each row with a view's rows as they are when it is processed.
    LookupJoin(lookup::LookupJoinPlan),
    /// Hands its inputs' rows on (keeps them, into a view).
    Merge,
}

/// A node with state, run as instances by the runtime.
#[derive(Debug, Clone)]
pub struct StatefulNode {
    pub kind: StatefulKind,
    /// The hash exchange in front of it: rows go to the instance their keys hash to,
    /// per input port (a join's two sides each have theirs), evaluated on that input.
    /// `None`: one instance takes every row.
    pub keys: Option<Vec<Vec<Arc<dyn PhysicalExpr>>>>,
}

impl StatefulNode {
    /// How many instances run it in a query `WITH (parallelism = n)`: a keyed node runs
    /// `n`, a merge (or a node without keys) one.
    pub fn instances(&self, parallelism: usize) -> usize {
        match (&self.kind, &self.keys) {
            (StatefulKind::Merge, _) | (_, None) => 1,
            _ => parallelism.max(1),
        }
    }

    /// Whether its rows are final per window, emitted when the window closes.
    pub fn closes_windows(&self) -> bool {
        match &self.kind {
            StatefulKind::Aggregate(a) => a.window.is_some(),
            StatefulKind::TopN(_) => true,
            StatefulKind::Dedup(_)
            | StatefulKind::IntervalJoin(_)
            | StatefulKind::TemporalJoin(_)
            | StatefulKind::LookupJoin(_)
            | StatefulKind::Merge => false,
        }
    }
}

#[allow(clippy::large_enum_variant)]
pub enum NodeKind {
    /// A scan of a stream: its table schema's columns `projection` (user columns, then
    /// the metadata columns).
    Source {
        stream: Arc<Stream>,
        projection: Vec<usize>,
    },
    Step(Step),
    Union,
    Stateful(StatefulNode),
    Sink,
}

pub struct Node {
    pub id: NodeId,
    pub inputs: Vec<NodeId>,
    pub kind: NodeKind,
    /// Its EXPLAIN line (without id and inputs).
    pub label: String,
}

impl Node {
    /// `source`, `filter`, `project`, `union`, `aggregate`, `merge`, `session`, `sink`.
    pub fn kind_name(&self) -> String {
        self.label
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    }
}

/// An input of a stateful node as the runtime runs it: rows from a source or a
/// stateful node, through stateless steps, to one input (`port`) of `to`. A union
/// between them makes one edge per branch.
#[derive(Clone)]
pub struct Edge {
    pub from: NodeId,
    pub to: NodeId,
    pub port: usize,
    /// Source first.
    pub steps: Vec<Step>,
}

/// A continuous query's plan: a graph of nodes (see the module docs), the sink last.
pub struct ContinuousPlan {
    pub nodes: Vec<Node>,
    pub output_schema: SchemaRef,
}

impl fmt::Debug for ContinuousPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContinuousPlan")
            .field("nodes", &self.explain_lines())
            .finish()
    }
}

impl ContinuousPlan {
    pub fn sink(&self) -> &Node {
        self.nodes.last().expect("a plan ends in its sink")
    }

    /// The streams the query reads, each once, in the order of their first scan.
    pub fn sources(&self) -> Vec<Arc<Stream>> {
        let mut streams: Vec<Arc<Stream>> = Vec::new();
        for node in &self.nodes {
            if let NodeKind::Source { stream, .. } = &node.kind
                && !streams.iter().any(|s| s.name() == stream.name())
            {
                streams.push(stream.clone());
            }
        }
        streams
    }

    /// The stateful nodes, inputs first.
    pub fn stateful(&self) -> impl Iterator<Item = (NodeId, &StatefulNode)> {
        self.nodes.iter().filter_map(|n| match &n.kind {
            NodeKind::Stateful(s) => Some((n.id, s)),
            _ => None,
        })
    }

    /// The aggregates, inputs first.
    pub fn aggregates(&self) -> impl Iterator<Item = &AggregatePlan> {
        self.stateful().filter_map(|(_, s)| match &s.kind {
            StatefulKind::Aggregate(a) => Some(a),
            _ => None,
        })
    }

    /// The node feeding the sink.
    pub fn last_node(&self) -> &StatefulNode {
        match &self.nodes[self.last_stateful()].kind {
            NodeKind::Stateful(s) => s,
            _ => unreachable!("a plan's sink is fed by a stateful node"),
        }
    }

    /// Whether a deduplication is part of it.
    pub fn deduplicates(&self) -> bool {
        self.stateful()
            .any(|(_, s)| matches!(s.kind, StatefulKind::Dedup(_)))
    }

    /// The last stateful node (the one feeding the sink).
    pub fn last_stateful(&self) -> NodeId {
        self.edges_into(self.sink().id)[0].from
    }

    /// The aggregate feeding the sink, if the last stateful node is one.
    pub fn final_aggregate(&self) -> Option<&AggregatePlan> {
        match &self.nodes[self.last_stateful()].kind {
            NodeKind::Stateful(StatefulNode {
                kind: StatefulKind::Aggregate(a),
                ..
            }) => Some(a),
            _ => None,
        }
    }

    /// Whether any node works by event time (a window, a Top-N, a deduplication): it
    /// needs a watermark on every input.
    pub fn windowed(&self) -> bool {
        self.stateful().any(|(_, s)| {
            s.closes_windows()
                || matches!(
                    s.kind,
                    StatefulKind::Dedup(_)
                        | StatefulKind::IntervalJoin(IntervalJoinPlan { regular: false, .. })
                        | StatefulKind::TemporalJoin(_)
                )
        })
    }

    /// The edges into `node`, one per path from a source or stateful node.
    pub fn edges_into(&self, node: NodeId) -> Vec<Edge> {
        let mut edges = Vec::new();
        for (port, &input) in self.nodes[node].inputs.iter().enumerate() {
            self.walk(input, node, port, Vec::new(), &mut edges);
        }
        edges
    }

    fn walk(&self, at: NodeId, to: NodeId, port: usize, suffix: Vec<Step>, out: &mut Vec<Edge>) {
        let node = &self.nodes[at];
        match &node.kind {
            NodeKind::Step(step) => {
                let mut steps = vec![step.clone()];
                steps.extend(suffix);
                self.walk(node.inputs[0], to, port, steps, out);
            }
            NodeKind::Union => {
                for &input in &node.inputs {
                    self.walk(input, to, port, suffix.clone(), out);
                }
            }
            NodeKind::Source { .. } | NodeKind::Stateful(_) | NodeKind::Sink => out.push(Edge {
                from: at,
                to,
                port,
                steps: suffix,
            }),
        }
    }

    /// Every edge of the graph, by the stateful node or sink it ends at (inputs first).
    pub fn edges(&self) -> Vec<Edge> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Stateful(_) | NodeKind::Sink))
            .flat_map(|n| self.edges_into(n.id))
            .collect()
    }

    /// EXPLAIN's lines, the sink first: `[id] label <- [inputs]`.
    pub fn explain_lines(&self) -> Vec<String> {
        self.nodes
            .iter()
            .rev()
            .filter(|n| !matches!(n.kind, NodeKind::Sink))
            .map(|n| {
                let inputs: Vec<String> = n.inputs.iter().map(|i| format!("[{i}]")).collect();
                match inputs.is_empty() {
                    true => format!("[{}] {}", n.id, n.label),
                    false => format!("[{}] {} <- {}", n.id, n.label, inputs.join(", ")),
                }
            })
            .collect()
    }
}

/// Why a query cannot run continuously, worded for the user.
fn refuse(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(message.into())
}
