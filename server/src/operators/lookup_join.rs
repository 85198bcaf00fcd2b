//! Lookup join: each row of the input (the events) joins the rows a materialized view
//! holds when it is processed (`planner::lookup`). The view's contents are read once
//! per chunk of messages and shared by its batches; nothing is held across chunks, so
//! the state is empty and a checkpoint stores only what a view output keeps.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::collect;

use super::interval_join::run_numbered;
use super::{Figures, Input, KeptRows, Operator, OperatorState, Output, Role};
use crate::planner::lookup::LookupJoinPlan;

pub struct LookupJoin {
    plan: LookupJoinPlan,
    role: Role,
    /// The view's rows for this chunk, read at its first batch.
    table: Option<Vec<RecordBatch>>,
    watermark: Option<i64>,
    out: Vec<RecordBatch>,
    kept: KeptRows,
    task: Arc<TaskContext>,
    rows_in: u64,
    rows_out: u64,
}

impl LookupJoin {
    pub fn new(plan: LookupJoinPlan, role: Role) -> Self {
        LookupJoin {
            plan,
            role,
            table: None,
            watermark: None,
            out: Vec::new(),
            kept: KeptRows::default(),
            task: Arc::new(TaskContext::default()),
            rows_in: 0,
            rows_out: 0,
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
        self.out
            .extend(joined.into_iter().filter(|b| b.num_rows() > 0));
        Ok(())
    }

    fn advance(&mut self, watermark: i64) {
        self.watermark = Some(watermark);
    }

    async fn flush(&mut self) -> Result<Output> {
        // The next chunk reads the view again.
        self.table = None;
        let rows = std::mem::take(&mut self.out);
        self.rows_out += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        Ok(Output {
            rows: self.kept.hand_out(self.role.view, rows),
            ..Output::default()
        })
    }

    fn snapshot(&mut self, epoch: u64) -> Result<OperatorState> {
        Ok(OperatorState {
            state: Vec::new(),
            closed: self.kept.snapshot(&self.role, epoch),
            watermark: self.watermark,
            rows_in: self.rows_in,
        })
    }

    async fn restore(&mut self, state: OperatorState) -> Result<()> {
        self.kept.restore(state.closed);
        self.watermark = state.watermark;
        self.rows_in = state.rows_in;
        Ok(())
    }

    async fn view_contents(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        Ok(self.role.view.then(|| self.kept.batches.clone()))
    }

    fn figures(&self) -> Figures {
        Figures {
            rows_in: self.rows_in,
            rows_out: self.rows_out,
            state_bytes: super::memory_bytes(&self.kept.batches),
            watermark: self.watermark,
            ..Figures::default()
        }
    }
}
