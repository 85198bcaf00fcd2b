//! Lookup join: each row of the input (the events) joins the rows a materialized view
//! holds when it is processed (`planner::lookup`). The view's contents are read once
//! per chunk of messages and shared by its batches; nothing is held across chunks. The
//! joined rows go on as a merge's do (handed on, or kept for a view), so a checkpoint
//! stores only what a view output keeps.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::collect;

use super::join_rows::run_numbered;
use super::merge::Merge;
use super::{Figures, Input, Operator, OperatorState, Output, Role};
use crate::planner::lookup::LookupJoinPlan;

pub struct LookupJoin {
    plan: LookupJoinPlan,
    /// The view's rows for this chunk, read at its first batch.
    table: Option<Vec<RecordBatch>>,
    /// Where the joined rows go.
    output: Merge,
    task: Arc<TaskContext>,
    rows_in: u64,
}

impl LookupJoin {
    pub fn new(plan: LookupJoinPlan, role: Role) -> Self {
        LookupJoin {
            plan,
            table: None,
            output: Merge::new(role),
            task: Arc::new(TaskContext::default()),
            rows_in: 0,
        }
    }

    /// The view's rows as they are now.
    async fn read_table(&self) -> Result<Vec<RecordBatch>> {
        let state = &self.plan.state;
        let exec = state.create_physical_plan(&self.plan.table).await?;
        let batches = collect(exec, state.task_ctx()).await?;
        batches
            .into_iter()
            .map(|b| {
                RecordBatch::try_new(self.plan.schemas[1].clone(), b.columns().to_vec())
                    .map_err(Into::into)
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Operator for LookupJoin {
    async fn process(&mut self, _input: usize, rows: Input) -> Result<()> {
        let batch = rows.batch;
        self.rows_in += batch.num_rows() as u64;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let table = match &self.table {
            Some(t) => t.clone(),
            None => {
                let t = self.read_table().await?;
                self.table = Some(t.clone());
                t
            }
        };
        let joined = run_numbered(
            &self.plan.exec,
            &self.task,
            &self.plan.schemas,
            vec![batch],
            table,
        )
        .await?;
        for batch in joined {
            self.output.process(0, Input::rows(batch)).await?;
        }
        Ok(())
    }

    fn advance(&mut self, watermark: i64) {
        self.output.advance(watermark);
    }

    async fn flush(&mut self) -> Result<Output> {
        // The next chunk reads the view again.
        self.table = None;
        self.output.flush().await
    }

    fn snapshot(&mut self, epoch: u64) -> Result<OperatorState> {
        let mut state = self.output.snapshot(epoch)?;
        state.rows_in = self.rows_in;
        Ok(state)
    }

    async fn restore(&mut self, state: OperatorState) -> Result<()> {
        self.rows_in = state.rows_in;
        self.output.restore(state).await
    }

    async fn view_contents(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        self.output.view_contents().await
    }

    fn figures(&self) -> Figures {
        Figures {
            rows_in: self.rows_in,
            ..self.output.figures()
        }
    }
}
