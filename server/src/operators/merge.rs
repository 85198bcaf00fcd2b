//! Merge: the union of its inputs, in arrival order. The planner places it where rows of
//! several inputs (`UNION ALL` of streams) or of one input without state reach the
//! query's output. Into a stream it hands every row on once; into a view it keeps every
//! row (the view's contents, checkpointed in chunks written once each). Its watermark is
//! the minimum of its inputs', as for every operator.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;

use super::{Emitted, Figures, Input, KeptRows, Operator, OperatorState, Output, Role};

pub struct Merge {
    role: Role,
    pending: Vec<RecordBatch>,
    kept: KeptRows,
    watermark: Option<i64>,
    rows_in: u64,
    rows_out: u64,
}

impl Merge {
    pub fn new(role: Role) -> Self {
        Merge {
            role,
            pending: Vec::new(),
            kept: KeptRows::default(),
            watermark: None,
            rows_in: 0,
            rows_out: 0,
        }
    }
}

#[async_trait::async_trait]
impl Operator for Merge {
    async fn process(&mut self, _input: usize, rows: Input) -> Result<()> {
        self.rows_in += rows.batch.num_rows() as u64;
        if rows.batch.num_rows() > 0 {
            self.pending.push(rows.batch);
        }
        Ok(())
    }

    fn advance(&mut self, watermark: i64) {
        self.watermark = Some(watermark);
    }

    async fn flush(&mut self) -> Result<Output> {
        let rows = std::mem::take(&mut self.pending);
        if self.role.view {
            rows.into_iter().for_each(|b| self.kept.push(b));
            return Ok(Output::default());
        }
        self.rows_out += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        Ok(Output {
            rows: rows
                .into_iter()
                .map(|batch| Emitted { batch, op: None })
                .collect(),
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
            rows_out: match self.role.view {
                true => self.kept.rows() as u64,
                false => self.rows_out,
            },
            state_rows: 0,
            state_bytes: super::memory_bytes(&self.kept.batches),
            watermark: self.watermark,
            ..Figures::default()
        }
    }
}
