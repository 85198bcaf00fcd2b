//! Building a [`ContinuousPlan`] from an optimized `LogicalPlan`: one node per scan,
//! stateless step, union and stateful operator, inputs first (see the module docs of
//! [`super`]).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;

use super::{
    AggregatePlan, ContinuousPlan, Node, NodeId, NodeKind, SessionTable, SessionWindow,
    StatefulKind, StatefulNode, Step, aggregate, join, rank, refuse,
};
use crate::stream::Stream;

/// Plans `plan` (an optimized logical plan) as a continuous query over the streams that
/// `stream_of` resolves.
pub fn plan_continuous(
    state: &SessionState,
    plan: &LogicalPlan,
    stream_of: &dyn Fn(&str) -> Option<Arc<Stream>>,
) -> Result<ContinuousPlan> {
    let mut builder = Builder {
        state,
        stream_of,
        nodes: Vec::new(),
        sessions: HashMap::new(),
        rank_limits: HashMap::new(),
    };
    let mut top = builder.plan(plan)?;
    if !builder.sessions.is_empty() {
        return Err(refuse(
            "SESSION windows run continuously as an aggregate: GROUP BY window_start, window_end (and the session's keys)",
        ));
    }
    // The sink is fed by a stateful node: a query without one ends in a merge (which
    // also keeps a stateless view's rows).
    if !builder.feeds_from_stateful(top) {
        top = builder.add(
            vec![top],
            NodeKind::Stateful(StatefulNode {
                kind: StatefulKind::Merge,
                keys: None,
            }),
            "Merge: rows in arrival order".into(),
        );
    }
    builder.add(vec![top], NodeKind::Sink, "Sink".into());
    Ok(ContinuousPlan {
        nodes: builder.nodes,
        output_schema: Arc::new(plan.schema().as_arrow().clone()),
    })
}

struct Builder<'a> {
    state: &'a SessionState,
    stream_of: &'a dyn Fn(&str) -> Option<Arc<Stream>>,
    nodes: Vec<Node>,
    /// Session scans (their source node): the session's keys and gap.
    sessions: HashMap<NodeId, (Vec<String>, i64)>,
    /// Window nodes (by address) whose rank a filter above limits: the largest rank kept.
    rank_limits: HashMap<usize, u64>,
}

impl Builder<'_> {
    fn add(&mut self, inputs: Vec<NodeId>, kind: NodeKind, label: String) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            id,
            inputs,
            kind,
            label,
        });
        id
    }

    /// Whether `node`, through stateless steps, is the output of one stateful node.
    fn feeds_from_stateful(&self, mut node: NodeId) -> bool {
        loop {
            match &self.nodes[node].kind {
                NodeKind::Step(_) => node = self.nodes[node].inputs[0],
                NodeKind::Stateful(_) => return true,
                _ => return false,
            }
        }
    }

    /// The session scan below `node` (through stateless steps), if any.
    fn session_below(&mut self, mut node: NodeId) -> Option<(Vec<String>, i64)> {
        loop {
            if let Some(session) = self.sessions.remove(&node) {
                return Some(session);
            }
            match &self.nodes[node].kind {
                NodeKind::Step(_) => node = self.nodes[node].inputs[0],
                _ => return None,
            }
        }
    }

    fn plan(&mut self, plan: &LogicalPlan) -> Result<NodeId> {
        match plan {
            LogicalPlan::Projection(p) => {
                let input = self.plan(&p.input)?;
                let exprs = p
                    .expr
                    .iter()
                    .map(|e| self.state.create_physical_expr(e.clone(), p.input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                let names: Vec<String> =
                    p.schema.fields().iter().map(|f| f.name().clone()).collect();
                let step = Step::Project {
                    exprs,
                    schema: Arc::new(p.schema.as_arrow().clone()),
                };
                Ok(self.add(
                    vec![input],
                    NodeKind::Step(step),
                    format!("Project: {}", names.join(", ")),
                ))
            }
            LogicalPlan::Filter(f) => {
                let mut label = format!("Filter: {}", f.predicate);
                for (column, max) in rank::rank_limits(&f.predicate) {
                    if let Some(window) = ranked_window(&f.input, &column) {
                        let limit = self.rank_limits.entry(window as *const _ as usize);
                        let kept = limit.or_insert(max);
                        *kept = (*kept).min(max);
                        label = label.replace(&column, "rank");
                    }
                }
                let input = self.plan(&f.input)?;
                let step = Step::Filter(
                    self.state
                        .create_physical_expr(f.predicate.clone(), f.input.schema())?,
                );
                Ok(self.add(vec![input], NodeKind::Step(step), label))
            }
            LogicalPlan::SubqueryAlias(a) => self.plan(&a.input),
            LogicalPlan::Union(union) => self.plan_union(union),
            LogicalPlan::TableScan(scan)
                if datafusion::datasource::source_as_provider(&scan.source)
                    .is_ok_and(|p| p.is::<SessionTable>()) =>
            {
                self.plan_session_scan(scan)
            }
            LogicalPlan::TableScan(scan) => {
                let (stream, projection) = self.scanned(scan)?;
                let columns: Vec<String> = scan
                    .projected_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let label = format!(
                    "Source: {} ({}), reads {}",
                    stream.name(),
                    partitions(&stream),
                    columns.join(", ")
                );
                Ok(self.add(Vec::new(), NodeKind::Source { stream, projection }, label))
            }
            LogicalPlan::Aggregate(agg) => {
                let input = self.plan(&agg.input)?;
                let mut planned = aggregate::plan_aggregate(self.state, agg)?;
                if let Some((keys, gap_ns)) = self.session_below(input) {
                    attach_session(&mut planned, keys, gap_ns)?;
                }
                let label = planned.describe();
                // Sessions: by the group keys without the (per-event) window bounds, so
                // all of a key's sessions meet in one instance.
                let session = planned.window.as_ref().and_then(|w| w.session.as_ref());
                let keys: Vec<_> = planned
                    .group_by
                    .expr()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| {
                        session.is_none_or(|s| *i != s.start_index && *i != s.end_index)
                    })
                    .map(|(_, (e, _))| e.clone())
                    .collect();
                Ok(self.add(
                    vec![input],
                    NodeKind::Stateful(StatefulNode {
                        kind: StatefulKind::Aggregate(planned),
                        keys: Some(vec![keys]),
                    }),
                    label,
                ))
            }
            LogicalPlan::Window(window) => {
                let input = self.plan(&window.input)?;
                let max_rank = self
                    .rank_limits
                    .get(&(window as *const _ as usize))
                    .copied();
                let Expr::WindowFunction(function) =
                    window.window_expr[0].clone().unalias_nested().data
                else {
                    return Err(refuse("only window functions can run in a window node"));
                };
                let keys = function
                    .params
                    .partition_by
                    .iter()
                    .map(|e| {
                        self.state
                            .create_physical_expr(e.clone(), window.input.schema())
                    })
                    .collect::<Result<Vec<_>>>()?;
                let (kind, label) = match rank::plan_window(self.state, window, max_rank)? {
                    rank::Ranked::TopN(p) => {
                        let label = p.label.clone();
                        (StatefulKind::TopN(p), label)
                    }
                    rank::Ranked::Dedup(p) => {
                        let label = p.label.clone();
                        (StatefulKind::Dedup(p), label)
                    }
                };
                Ok(self.add(
                    vec![input],
                    NodeKind::Stateful(StatefulNode {
                        kind,
                        keys: Some(vec![keys]),
                    }),
                    label,
                ))
            }
            LogicalPlan::Sort(_) => Err(refuse(
                "ORDER BY over an unbounded input cannot run continuously: it would wait forever \
                 for the last row; remove it and sort when you read the result",
            )),
            LogicalPlan::Limit(_) => Err(refuse(
                "LIMIT cannot run continuously over an unbounded input; remove it",
            )),
            LogicalPlan::Join(join) if super::lookup::reads_only_views(&join.right) => {
                let left = self.plan(&join.left)?;
                let planned = super::lookup::plan_lookup_join(self.state, join)?;
                let label = planned.label.clone();
                Ok(self.add(
                    vec![left],
                    NodeKind::Stateful(StatefulNode {
                        kind: StatefulKind::LookupJoin(planned),
                        keys: None,
                    }),
                    label,
                ))
            }
            LogicalPlan::Join(join) if super::lookup::reads_only_views(&join.left) => Err(refuse(
                "a join of a view with a stream is a lookup join: write the stream first (FROM \
                 stream s [LEFT] JOIN view v ON ...), so each event joins the view's rows",
            )),
            LogicalPlan::Join(join) => {
                let left = self.plan(&join.left)?;
                let right = self.plan(&join.right)?;
                let (kind, label) = match super::temporal::find_marker(join.filter.as_ref()) {
                    Some(marker) => {
                        let planned =
                            super::temporal::plan_temporal_join(self.state, join, marker)?;
                        let label = planned.label.clone();
                        (StatefulKind::TemporalJoin(planned), label)
                    }
                    None => {
                        let planned = join::plan_interval_join(self.state, join, &|side| {
                            self.event_time(side)
                        })?;
                        let label = planned.label.clone();
                        (StatefulKind::IntervalJoin(planned), label)
                    }
                };
                let keys = match join.on.is_empty() {
                    true => None,
                    false => {
                        let side = |exprs: Vec<&Expr>, schema| {
                            exprs
                                .into_iter()
                                .map(|e| self.state.create_physical_expr(e.clone(), schema))
                                .collect::<Result<Vec<_>>>()
                        };
                        Some(vec![
                            side(join.on.iter().map(|(l, _)| l).collect(), join.left.schema())?,
                            side(
                                join.on.iter().map(|(_, r)| r).collect(),
                                join.right.schema(),
                            )?,
                        ])
                    }
                };
                Ok(self.add(
                    vec![left, right],
                    NodeKind::Stateful(StatefulNode { kind, keys }),
                    label,
                ))
            }
            other => Err(refuse(format!(
                "{} cannot run continuously yet; continuous queries support filters, projections, \
                 UNION ALL, aggregates and Top-N / deduplication over streams",
                other.display()
            ))),
        }
    }

    /// A join side's event-time column: the WATERMARK column of the one stream it reads,
    /// when the side's output still has it.
    fn event_time(&self, side: &LogicalPlan) -> Option<datafusion::common::Column> {
        use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
        let mut streams = Vec::new();
        let _ = side.apply(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Some(stream) = (self.stream_of)(scan.table_name.table())
            {
                streams.push(stream);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        let [stream] = streams.as_slice() else {
            return None;
        };
        let column = &stream.def.watermark.as_ref()?.column;
        let (qualifier, field) = side
            .schema()
            .qualified_field_with_unqualified_name(column)
            .ok()?;
        Some(datafusion::common::Column::new(
            qualifier.cloned(),
            field.name(),
        ))
    }

    /// The stream a scan reads and its projection of the stream's table schema.
    fn scanned(
        &self,
        scan: &datafusion::logical_expr::TableScan,
    ) -> Result<(Arc<Stream>, Vec<usize>)> {
        let name = scan.table_name.table();
        let stream = (self.stream_of)(name).ok_or_else(|| {
            refuse(format!(
                "{name} is not a stream; continuous queries read streams"
            ))
        })?;
        let projection = scan
            .projection
            .clone()
            .unwrap_or_else(|| (0..stream.table_schema.fields().len()).collect());
        Ok((stream, projection))
    }

    /// `UNION ALL`: branches that are stateless over the same columns of one stream
    /// become one step on one scan (HOP is planned so: one branch per window); any
    /// other union is a node with one input per branch.
    fn plan_union(&mut self, union: &datafusion::logical_expr::Union) -> Result<NodeId> {
        let schema = Arc::new(union.schema.as_arrow().clone());
        if let Some(fused) = self.fused_union(union, &schema)? {
            return Ok(fused);
        }
        let inputs = union
            .inputs
            .iter()
            .map(|input| self.plan(input))
            .collect::<Result<Vec<_>>>()?;
        let label = format!("Union: {} inputs (UNION ALL)", inputs.len());
        Ok(self.add(inputs, NodeKind::Union, label))
    }

    fn fused_union(
        &mut self,
        union: &datafusion::logical_expr::Union,
        schema: &SchemaRef,
    ) -> Result<Option<NodeId>> {
        let mut scans = Vec::new();
        for input in &union.inputs {
            match stateless_scan(input) {
                Some(scan) => scans.push(scan),
                None => return Ok(None),
            }
        }
        let first = &scans[0];
        let same = scans
            .iter()
            .all(|s| s.table_name == first.table_name && s.projection == first.projection);
        if !same {
            return Ok(None);
        }
        // Each branch as its own little graph over its own scan, then its steps.
        let mut branches = Vec::new();
        let mut source = None;
        for input in &union.inputs {
            let mark = self.nodes.len();
            let top = self.plan(input)?;
            let mut steps = Vec::new();
            let mut node = top;
            while let NodeKind::Step(step) = &self.nodes[node].kind {
                steps.push(step.clone());
                node = self.nodes[node].inputs[0];
            }
            steps.reverse();
            branches.push(steps);
            let scan = self
                .nodes
                .drain(mark..)
                .find(|n| matches!(n.kind, NodeKind::Source { .. }));
            source = source.or(scan);
        }
        let Some(mut source) = source else {
            return Err(refuse("an empty UNION cannot run continuously"));
        };
        source.id = self.nodes.len();
        let source_id = source.id;
        self.nodes.push(source);
        let label = format!(
            "Union: {} branches of one scan (one row per window of each event)",
            branches.len()
        );
        Ok(Some(self.add(
            vec![source_id],
            NodeKind::Step(Step::Union {
                branches,
                schema: schema.clone(),
            }),
            label,
        )))
    }

    /// A `SESSION(...)` table: its stream's rows, each starting its own session
    /// `[ts, ts + gap)`; the aggregate above merges the sessions of a key that touch.
    fn plan_session_scan(&mut self, scan: &datafusion::logical_expr::TableScan) -> Result<NodeId> {
        let provider = datafusion::datasource::source_as_provider(&scan.source)?;
        let table = provider.downcast_ref::<SessionTable>().expect("checked");
        let stream = table.stream.clone();
        let user = datafusion::common::DFSchema::try_from(stream.schema.as_ref().clone())?;
        let full = datafusion::catalog::TableProvider::schema(table);
        let source = self.add(
            Vec::new(),
            NodeKind::Source {
                stream: stream.clone(),
                projection: (0..stream.schema.fields().len()).collect(),
            },
            format!("Source: {} ({})", stream.name(), partitions(&stream)),
        );
        self.sessions
            .insert(source, (table.keys.clone(), table.gap_ns));
        let mut exprs = Vec::new();
        for field in stream.schema.fields() {
            exprs.push(self.state.create_physical_expr(
                datafusion::logical_expr::col(field.name().as_str()),
                &user,
            )?);
        }
        let time = datafusion::logical_expr::col(table.time.as_str());
        exprs.push(self.state.create_physical_expr(time.clone(), &user)?);
        exprs.push(self.state.create_physical_expr(
            time + datafusion::logical_expr::lit(table.gap.clone()),
            &user,
        )?);
        let label = format!(
            "Session: gap {} on {}, per [{}] (each event starts a session; sessions of a key that touch merge)",
            table.gap,
            table.time,
            table.keys.join(", ")
        );
        let mut top = self.add(
            vec![source],
            NodeKind::Step(Step::Project {
                exprs,
                schema: full.clone(),
            }),
            label,
        );
        // The scan's projection of the session table's columns.
        if let Some(projection) = &scan.projection {
            let step = Step::Project {
                exprs: projection
                    .iter()
                    .map(|&i| {
                        Arc::new(datafusion::physical_expr::expressions::Column::new(
                            full.field(i).name(),
                            i,
                        )) as Arc<dyn PhysicalExpr>
                    })
                    .collect(),
                schema: Arc::new(full.project(projection)?),
            };
            let names: Vec<String> = projection
                .iter()
                .map(|&i| full.field(i).name().clone())
                .collect();
            top = self.add(
                vec![top],
                NodeKind::Step(step),
                format!("Project: {}", names.join(", ")),
            );
        }
        Ok(top)
    }
}

/// The window node whose window function's output `column` is, through projections
/// that pass it on (renamed or not), aliases and filters.
fn ranked_window<'a>(
    plan: &'a LogicalPlan,
    column: &str,
) -> Option<&'a datafusion::logical_expr::Window> {
    match plan {
        LogicalPlan::Projection(p) => {
            let (i, _) = p
                .schema
                .iter()
                .enumerate()
                .find(|(_, (_, f))| f.name() == column)?;
            match p.expr[i].clone().unalias() {
                Expr::Column(c) => ranked_window(&p.input, &c.name),
                _ => None,
            }
        }
        LogicalPlan::SubqueryAlias(a) => ranked_window(&a.input, column),
        LogicalPlan::Filter(f) => ranked_window(&f.input, column),
        LogicalPlan::Window(w) => {
            let first = w.input.schema().fields().len();
            w.schema.fields()[first..]
                .iter()
                .any(|f| f.name() == column)
                .then_some(w)
        }
        _ => None,
    }
}

/// The scan at the bottom of a plan of projections and filters over one stream.
fn stateless_scan(plan: &LogicalPlan) -> Option<&datafusion::logical_expr::TableScan> {
    match plan {
        LogicalPlan::Projection(p) => stateless_scan(&p.input),
        LogicalPlan::Filter(f) => stateless_scan(&f.input),
        LogicalPlan::SubqueryAlias(a) => stateless_scan(&a.input),
        LogicalPlan::TableScan(scan)
            if !datafusion::datasource::source_as_provider(&scan.source)
                .is_ok_and(|p| p.is::<SessionTable>()) =>
        {
            Some(scan)
        }
        _ => None,
    }
}

fn partitions(stream: &Stream) -> String {
    match stream.partitions().len() {
        1 => "1 partition".into(),
        n => format!("{n} partitions"),
    }
}

/// Makes `agg` (grouped over a `SESSION(...)`) a session aggregate.
fn attach_session(agg: &mut AggregatePlan, keys: Vec<String>, gap_ns: i64) -> Result<()> {
    let groups = &agg.group_names;
    let Some(window) = agg.window.as_mut() else {
        return Err(refuse(
            "SESSION windows run continuously as an aggregate: GROUP BY window_start, window_end (and the session's keys)",
        ));
    };
    let position = |name: &str| groups.iter().position(|g| g == name);
    let (Some(start_index), Some(end_index)) = (position("window_start"), position("window_end"))
    else {
        return Err(refuse(
            "group a SESSION by both window_start and window_end: a session's start and end \
             both move as events join it, so neither can be derived from the other",
        ));
    };
    let key_indices = keys
        .iter()
        .map(|k| {
            position(k).ok_or_else(|| {
                refuse(format!(
                    "sessions are kept per {k}, so group by {k} as well"
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    window.session = Some(SessionWindow {
        start_index,
        end_index,
        key_indices,
        gap_ns,
    });
    Ok(())
}
