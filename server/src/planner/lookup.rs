//! Lookup joins: `... FROM checks c [LEFT] JOIN spend_view s ON c.acct = s.acct` (also
//! written `JOIN spend_view FOR SYSTEM_TIME AS OF PROCTIME() AS s`) — each event joins
//! the rows a materialized view holds when the event is processed, as a dimension
//! table. The view side keeps no state in the join: its committed contents are read
//! again for each chunk of events, so a change to the view applies to the events that
//! come after it (earlier results stay as they were, as in Flink's lookup join).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Join, JoinType, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;

use super::refuse;
use crate::table::ViewTable;

/// A lookup join, as the operator needs it.
#[derive(Debug, Clone)]
pub struct LookupJoinPlan {
    /// DataFusion's join (INNER or LEFT) over two empty inputs: the events, the view.
    pub exec: Arc<dyn ExecutionPlan>,
    /// The view side, planned anew each time it is read (it reads the view's rows as
    /// they are then).
    pub table: Arc<LogicalPlan>,
    pub state: Arc<SessionState>,
    pub schemas: [SchemaRef; 2],
    pub label: String,
}

/// Whether `plan` reads only materialized views (no stream): a lookup join's table.
pub fn reads_only_views(plan: &LogicalPlan) -> bool {
    let (mut views, mut other) = (0, 0);
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            match datafusion::datasource::source_as_provider(&scan.source)
                .is_ok_and(|p| p.is::<ViewTable>())
            {
                true => views += 1,
                false => other += 1,
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    views > 0 && other == 0
}

/// Plans `join`, whose right side reads only views.
pub fn plan_lookup_join(state: &SessionState, join: &Join) -> Result<LookupJoinPlan> {
    if !matches!(join.join_type, JoinType::Inner | JoinType::Left) {
        return Err(refuse(format!(
            "a join of a stream with a view is a lookup join, INNER or LEFT (each event joins \
             the view's rows when it is processed), not {}",
            join.join_type
        )));
    }
    let exec =
        super::join::standalone_exec(state, join, join.filter.clone(), join.join_type, false)?;
    let on: Vec<String> = join.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
    let label = format!(
        "LookupJoin: {} on [{}], each row with the view's rows when it is processed (no state kept)",
        join.join_type.to_string().to_ascii_uppercase(),
        on.join(", ")
    );
    Ok(LookupJoinPlan {
        exec,
        table: join.right.clone(),
        state: Arc::new(state.clone()),
        schemas: [
            Arc::new(join.left.schema().as_arrow().clone()),
            Arc::new(join.right.schema().as_arrow().clone()),
        ],
        label,
    })
}
