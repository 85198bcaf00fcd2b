//! Deduplication: `ROW_NUMBER() OVER (PARTITION BY key ORDER BY ts) = 1`.
//!
//! - **First row per key** (`ORDER BY ts`, append-only): a key's candidate is its
//!   earliest row so far; it is emitted once the watermark passes its time, when no
//!   earlier row of the key can still be admitted (a row older than the watermark is
//!   late: dropped and counted, as a window would). The key is then remembered so its
//!   later rows are dropped — forever, or for `WITH (dedup_retention = ...)` past its
//!   row's time, after which a new row of the key counts as a first again (as Flink's
//!   state TTL).
//! - **Latest row per key** (`ORDER BY ts DESC`, a view): each key's row with the
//!   greatest time (ties: the later arrival); the view shows them.
//! - **Best row per key** (any other ORDER BY, e.g. `ORDER BY price DESC, ts`: an
//!   updating Top-1, Nexmark q9's winning bid): each key's first row in that order so
//!   far (ties: the later arrival), replaced as better rows arrive; a view, as the latest.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};

/// A key in the row format (`RowConverter`).
type Key = Box<[u8]>;
use datafusion::common::{DataFusionError, Result};

use super::{Figures, Input, KeptRows, Operator, OperatorState, Output, Role};
use crate::planner::DedupPlan;
use crate::planner::session_bounds::{nanos, timestamps};

struct Entry {
    /// The time of the key's row (its candidate's, or the emitted one's).
    ts: i64,
    seq: u64,
    /// The row (input schema); `None` once a first row has been emitted.
    row: Option<RecordBatch>,
    /// The row's place in a best-row order (row format; smaller is better).
    order: Option<Key>,
}

pub struct Dedup {
    plan: DedupPlan,
    role: Role,
    converter: RowConverter,
    /// A best-row order's columns in the row format (with their sort options).
    order: Option<RowConverter>,
    /// The key columns' types, then the time (the emitted keys' state schema).
    keys_schema: SchemaRef,
    input_schema: SchemaRef,
    watermark: Option<i64>,
    keys: HashMap<Key, Entry>,
    /// First-row candidates waiting for the watermark, by time.
    waiting: BTreeMap<(i64, u64), Key>,
    /// Emitted keys by their row's time (for `dedup_retention`).
    emitted: BTreeMap<(i64, u64), Key>,
    seq: u64,
    out: Vec<RecordBatch>,
    kept: KeptRows,
    late: Output,
    rows_in: u64,
    rows_out: u64,
    late_rows: u64,
}

impl Dedup {
    pub fn new(plan: DedupPlan, role: Role) -> Result<Self> {
        let fields = plan.output_schema.fields();
        let input_schema = Arc::new(Schema::new(fields[..fields.len() - 1].to_vec()));
        let mut key_fields = Vec::new();
        for (i, key) in plan.keys.iter().enumerate() {
            let dt = key.data_type(&input_schema)?;
            key_fields.push(Field::new(format!("__dedup_key{i}"), dt, true));
        }
        let time_type = plan.time.data_type(&input_schema)?;
        key_fields.push(Field::new("__dedup_ts", time_type, true));
        let converter = RowConverter::new(
            key_fields[..plan.keys.len()]
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let order = match &plan.best {
            Some(best) => Some(RowConverter::new(
                best.iter()
                    .map(|(e, options)| {
                        Ok(SortField::new_with_options(
                            e.data_type(&input_schema)?,
                            *options,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?,
            )?),
            None => None,
        };
        Ok(Dedup {
            plan,
            role,
            converter,
            order,
            keys_schema: Arc::new(Schema::new(key_fields)),
            input_schema,
            watermark: None,
            keys: HashMap::new(),
            waiting: BTreeMap::new(),
            emitted: BTreeMap::new(),
            seq: 0,
            out: Vec::new(),
            kept: KeptRows::default(),
            late: Output::default(),
            rows_in: 0,
            rows_out: 0,
            late_rows: 0,
        })
    }

    fn key_columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.plan
            .keys
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(batch.num_rows()))
            .collect()
    }

    /// Keeps each key's best row by the plan's order.
    fn take_best(&mut self, batch: &RecordBatch) -> Result<()> {
        let (Some(order), Some(best)) = (&self.order, &self.plan.best) else {
            return Ok(());
        };
        let keys = self.converter.convert_columns(&self.key_columns(batch)?)?;
        let columns = best
            .iter()
            .map(|(e, _)| e.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<Result<Vec<_>>>()?;
        let ranks = order.convert_columns(&columns)?;
        for i in 0..batch.num_rows() {
            let rank = ranks.row(i);
            match self.keys.get_mut(keys.row(i).as_ref()) {
                Some(entry) if entry.order.as_deref().is_some_and(|o| o < rank.as_ref()) => {}
                Some(entry) => {
                    entry.order = Some(Key::from(rank.as_ref()));
                    entry.row = Some(own_row(batch, i)?);
                }
                None => {
                    self.seq += 1;
                    let entry = Entry {
                        ts: 0,
                        seq: self.seq,
                        row: Some(own_row(batch, i)?),
                        order: Some(Key::from(rank.as_ref())),
                    };
                    self.keys.insert(Key::from(keys.row(i).as_ref()), entry);
                }
            }
        }
        Ok(())
    }

    fn take(&mut self, rows: Input) -> Result<()> {
        let batch = &rows.batch;
        if self.plan.best.is_some() {
            return self.take_best(batch);
        }
        let keys = self.converter.convert_columns(&self.key_columns(batch)?)?;
        let times = nanos(
            self.plan
                .time
                .evaluate(batch)?
                .into_array(batch.num_rows())?
                .as_ref(),
        )?;
        let mut late = Vec::new();
        for (i, ts) in times.into_iter().enumerate() {
            // A row without a time has no place in the order: it is never first or latest.
            let Some(ts) = ts else { continue };
            let key = keys.row(i);
            if self.plan.latest {
                match self.keys.get_mut(key.as_ref()) {
                    Some(entry) if ts < entry.ts => {}
                    Some(entry) => {
                        entry.ts = ts;
                        entry.row = Some(own_row(batch, i)?);
                    }
                    None => {
                        self.seq += 1;
                        let entry = Entry {
                            ts,
                            seq: self.seq,
                            row: Some(own_row(batch, i)?),
                            order: None,
                        };
                        self.keys.insert(Key::from(key.as_ref()), entry);
                    }
                }
                continue;
            }
            if self.watermark.is_some_and(|w| ts < w) {
                late.push(i as u32);
                continue;
            }
            self.seq += 1;
            let seq = self.seq;
            match self.keys.get_mut(key.as_ref()) {
                // Emitted already, or an earlier (or as early) candidate waits.
                Some(entry) if entry.row.is_none() || entry.ts <= ts => {}
                Some(entry) => {
                    self.waiting.remove(&(entry.ts, entry.seq));
                    self.waiting.insert((ts, seq), Key::from(key.as_ref()));
                    *entry = Entry {
                        ts,
                        seq,
                        row: Some(own_row(batch, i)?),
                        order: None,
                    };
                }
                None => {
                    self.waiting.insert((ts, seq), Key::from(key.as_ref()));
                    let entry = Entry {
                        ts,
                        seq,
                        row: Some(own_row(batch, i)?),
                        order: None,
                    };
                    self.keys.insert(Key::from(key.as_ref()), entry);
                }
            }
        }
        self.late_rows += late.len() as u64;
        self.late.add_late(&rows.source, &late)?;
        Ok(())
    }

    /// Input rows with the row number (1) appended: the output schema.
    fn numbered(&self, rows: &[RecordBatch]) -> Result<Option<RecordBatch>> {
        let total: usize = rows.iter().map(|b| b.num_rows()).sum();
        if total == 0 {
            return Ok(None);
        }
        let rows = concat_batches(&self.input_schema, rows)?;
        let mut columns = rows.columns().to_vec();
        let one: ArrayRef = Arc::new(UInt64Array::from(vec![1u64; total]));
        let rank = &self.plan.output_schema.fields()[columns.len()];
        columns.push(datafusion::arrow::compute::cast(&one, rank.data_type())?);
        Ok(Some(RecordBatch::try_new(
            self.plan.output_schema.clone(),
            columns,
        )?))
    }

    /// The emitted keys and their times, as a batch (the checkpointed state).
    fn emitted_keys(&self) -> Result<RecordBatch> {
        let entries: Vec<(&Key, &Entry)> =
            self.keys.iter().filter(|(_, e)| e.row.is_none()).collect();
        let parser = self.converter.parser();
        let mut columns = self
            .converter
            .convert_rows(entries.iter().map(|(k, _)| parser.parse(k)))?;
        let ts_type = self.keys_schema.fields().last().expect("ts").data_type();
        columns.push(timestamps(
            entries.iter().map(|(_, e)| Some(e.ts)).collect(),
            ts_type,
        )?);
        Ok(RecordBatch::try_new(self.keys_schema.clone(), columns)?)
    }
}

#[async_trait::async_trait]
impl Operator for Dedup {
    async fn process(&mut self, _input: usize, rows: Input) -> Result<()> {
        self.rows_in += rows.batch.num_rows() as u64;
        self.take(rows)
    }

    fn advance(&mut self, watermark: i64) {
        self.watermark = Some(watermark);
        if self.plan.latest {
            return;
        }
        // Candidates older than the watermark are first for good.
        let still = self.waiting.split_off(&(watermark, 0));
        for ((ts, seq), key) in std::mem::replace(&mut self.waiting, still) {
            if let Some(entry) = self.keys.get_mut(&key)
                && let Some(row) = entry.row.take()
            {
                self.out.push(row);
                if self.role.dedup_retention_ns.is_some() {
                    self.emitted.insert((ts, seq), key);
                }
            }
        }
        if let Some(retention) = self.role.dedup_retention_ns {
            let still = self
                .emitted
                .split_off(&(watermark.saturating_sub(retention), 0));
            for ((_, seq), key) in std::mem::replace(&mut self.emitted, still) {
                if self.keys.get(&key).is_some_and(|e| e.seq == seq) {
                    self.keys.remove(&key);
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<Output> {
        let mut output = std::mem::take(&mut self.late);
        let rows = std::mem::take(&mut self.out);
        let Some(batch) = self.numbered(&rows)? else {
            return Ok(output);
        };
        self.rows_out += batch.num_rows() as u64;
        output.rows = self.kept.hand_out(self.role.view, vec![batch]);
        Ok(output)
    }

    fn snapshot(&mut self, epoch: u64) -> Result<OperatorState> {
        let rows: Vec<RecordBatch> = self.keys.values().filter_map(|e| e.row.clone()).collect();
        let rows = concat_batches(&self.input_schema, &rows)?;
        Ok(OperatorState {
            state: vec![rows, self.emitted_keys()?],
            closed: self.kept.snapshot(&self.role, epoch),
            watermark: self.watermark,
            rows_in: self.rows_in,
        })
    }

    async fn restore(&mut self, state: OperatorState) -> Result<()> {
        // Batches of the input's schema are rows; of the keys' schema, emitted keys.
        let mut rows = Vec::new();
        for batch in state.state {
            if batch.schema().fields() == self.input_schema.fields() {
                rows.push(batch);
                continue;
            }
            if batch.schema().fields() != self.keys_schema.fields() {
                return Err(DataFusionError::Plan(
                    "the checkpointed deduplication state does not fit this query's plan".into(),
                ));
            }
            let keys = self
                .converter
                .convert_columns(&batch.columns()[..self.plan.keys.len()])?;
            let times = nanos(batch.columns().last().expect("ts").as_ref())?;
            for (i, ts) in times.into_iter().enumerate() {
                self.seq += 1;
                let ts = ts.unwrap_or(i64::MIN);
                let key = Key::from(keys.row(i).as_ref());
                if self.role.dedup_retention_ns.is_some() {
                    self.emitted.insert((ts, self.seq), key.clone());
                }
                let entry = Entry {
                    ts,
                    seq: self.seq,
                    row: None,
                    order: None,
                };
                self.keys.insert(key, entry);
            }
        }
        for batch in rows {
            self.take(Input::rows(batch))?;
        }
        self.kept.restore(state.closed);
        self.watermark = state.watermark;
        self.rows_in = state.rows_in;
        Ok(())
    }

    async fn view_contents(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        if !self.role.view {
            return Ok(None);
        }
        if !self.plan.latest {
            return Ok(Some(self.kept.batches.clone()));
        }
        let rows: Vec<RecordBatch> = self.keys.values().filter_map(|e| e.row.clone()).collect();
        Ok(Some(self.numbered(&rows)?.into_iter().collect()))
    }

    fn figures(&self) -> Figures {
        let rows = self.keys.values().filter_map(|e| e.row.as_ref());
        Figures {
            rows_in: self.rows_in,
            rows_out: match (self.role.view, self.plan.latest) {
                (true, true) => self.keys.len() as u64,
                _ => self.rows_out,
            },
            late_rows: self.late_rows,
            state_rows: self.keys.len() as u64,
            state_bytes: super::memory_bytes(rows.chain(&self.kept.batches))
                + self.keys.keys().map(|k| k.len() as u64 + 48).sum::<u64>(),
            watermark: self.watermark,
            ..Figures::default()
        }
    }
}

/// Row `i` of `batch` in buffers of its own: a slice would keep the whole batch alive
/// for as long as the key keeps its row.
fn own_row(batch: &RecordBatch, i: usize) -> Result<RecordBatch> {
    Ok(take_record_batch(
        batch,
        &UInt32Array::from(vec![i as u32]),
    )?)
}
