//! Freshness: from an ingest acknowledgement to the rows being readable in a view, and
//! from the event that closes a window to its row in a derived stream, under open-loop
//! load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{run, scratch_engine};
use crate::engine::Engine;

/// The views of the freshness measurements, over a stream `lat (id BIGINT)` that gets
/// batches of `rows_per_batch` consecutive ids: an aggregate with one group per batch,
/// and a view that keeps every row.
#[derive(Clone, Copy)]
pub(super) enum LatencyView {
    Aggregate,
    Rows,
}

impl LatencyView {
    fn sql(self, rows_per_batch: usize) -> String {
        match self {
            LatencyView::Aggregate => format!(
                "SELECT id / {rows_per_batch} AS batch, count(*) AS n FROM lat GROUP BY id / {rows_per_batch}"
            ),
            LatencyView::Rows => "SELECT id FROM lat".into(),
        }
    }

    /// Batches whose rows the view shows, from its row count.
    fn batches(self, rows: usize, rows_per_batch: usize) -> usize {
        match self {
            LatencyView::Aggregate => rows,
            LatencyView::Rows => rows / rows_per_batch,
        }
    }

    fn label(self) -> &'static str {
        match self {
            LatencyView::Aggregate => "aggregate view",
            LatencyView::Rows => "view of every row",
        }
    }
}

/// The engine of a freshness measurement: the stream `lat` and the view `lat_view`.
async fn latency_engine(
    interval: Duration,
    view: LatencyView,
    rows_per_batch: usize,
) -> Result<(tempfile::TempDir, Arc<Engine>), String> {
    let (dir, engine) = scratch_engine(interval).await?;
    run(
        &engine,
        &format!(
            "CREATE STREAM lat (id BIGINT); CREATE MATERIALIZED VIEW lat_view AS {}",
            view.sql(rows_per_batch)
        ),
    )
    .await?;
    Ok((dir, engine))
}

/// A batch of `rows` ids from `first`.
fn id_batch(first: usize, rows: usize) -> Result<datafusion::arrow::array::RecordBatch, String> {
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    RecordBatch::try_from_iter([(
        "id",
        Arc::new(Int64Array::from_iter_values(
            first as i64..(first + rows) as i64,
        )) as _,
    )])
    .map_err(|e| e.to_string())
}

/// Rows/s the freshness setup sustains: durable ingest of 10,000-row batches back to
/// back for a second into the aggregate view, until the view shows them all.
pub(super) async fn max_view_ingest() -> Result<f64, String> {
    let (_dir, engine) =
        latency_engine(Duration::from_millis(1000), LatencyView::Aggregate, 10_000).await?;
    let (started, mut rows) = (Instant::now(), 0);
    while started.elapsed() < Duration::from_secs(1) {
        engine
            .ingest("lat", id_batch(rows, 10_000)?)
            .await
            .map_err(|e| e.to_string())?;
        rows += 10_000;
    }
    run(&engine, "FLUSH").await?;
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    engine.shutdown().await;
    Ok(rate)
}

/// Freshness of a view without a window: batches of `rows_per_batch` rows are ingested
/// open-loop at 100 batches/s; for each batch, the time from its ingest
/// acknowledgement (durable) until the view shows its rows. Results become visible at
/// checkpoints, so the checkpoint interval bounds it from below.
pub(super) async fn view_latency(
    interval: Duration,
    kind: LatencyView,
    batches: usize,
    rows_per_batch: usize,
) -> Result<Value, String> {
    let (_dir, engine) = latency_engine(interval, kind, rows_per_batch).await?;
    let view = engine.view("lat_view").ok_or("the view is not running")?;
    let acked: Arc<parking_lot::Mutex<Vec<(usize, Instant)>>> = Default::default();
    // Watches the view and notes when each batch's rows became visible.
    let watcher = {
        let (acked, view) = (acked.clone(), view.clone());
        tokio::spawn(async move {
            let mut seen = vec![None; batches];
            let mut done = 0;
            while done < batches {
                let visible = kind.batches(view.rows(), rows_per_batch);
                let now = Instant::now();
                for slot in seen.iter_mut().take(visible.min(batches)).skip(done) {
                    *slot = Some(now);
                }
                done = done.max(visible.min(batches));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let acked = acked.lock().clone();
            acked
                .into_iter()
                .filter_map(|(b, at)| seen[b].map(|s| s.saturating_duration_since(at)))
                .collect::<Vec<_>>()
        })
    };
    let started = Instant::now();
    for b in 0..batches {
        // Open loop: batch b goes out at b × 10 ms, however long earlier ones took.
        let due = started + Duration::from_millis(10 * b as u64);
        tokio::time::sleep_until(due.into()).await;
        let batch = id_batch(b * rows_per_batch, rows_per_batch)?;
        engine
            .ingest("lat", batch)
            .await
            .map_err(|e| e.to_string())?;
        acked.lock().push((b, Instant::now()));
    }
    let latencies = tokio::time::timeout(Duration::from_secs(60), watcher)
        .await
        .map_err(|_| "the view did not show every row within 60 s".to_string())?
        .map_err(|e| e.to_string())?;
    let (p50, p99, max) = percentiles(latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect());
    println!(
        "freshness ({}), checkpoint every {} ms: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} batches at 100/s)",
        kind.label(),
        interval.as_millis(),
        latencies.len()
    );
    engine.shutdown().await;
    Ok(
        json!({"view": kind.label(), "checkpoint_interval_ms": interval.as_millis() as u64, "p50_ms": p50, "p99_ms": p99, "max_ms": max}),
    )
}

/// Latency of a window result: events with event time = wall time since the start, in
/// batches every 10 ms, into a 100 ms tumbling-window derived stream (EMIT FINAL, no
/// watermark delay); for each window, the time from the acknowledgement of the first
/// batch whose event time reaches its end (which moves the watermark past it) until its
/// row is readable in the derived stream.
pub(super) async fn window_latency_ms(
    interval: Duration,
    windows: usize,
    rows_per_batch: usize,
) -> Result<Value, String> {
    use datafusion::arrow::array::{RecordBatch, TimestampMillisecondArray};
    let (_dir, engine) = scratch_engine(interval).await?;
    run(
        &engine,
        "CREATE STREAM ticks (ts TIMESTAMP(3), WATERMARK FOR ts AS ts);
         CREATE STREAM per_100ms AS SELECT window_start, window_end, count(*) AS n
           FROM TUMBLE(ticks, ts, INTERVAL '100' MILLISECOND) GROUP BY window_start, window_end",
    )
    .await?;
    let out = engine
        .stream("per_100ms")
        .ok_or("the derived stream is missing")?;
    let visible = move || -> u64 { out.partitions().iter().map(|p| p.committed_offset()).sum() };
    let started = Instant::now();
    let base_ms = 1_704_067_200_000i64;
    // closes[w]: when the batch that closes window w was acknowledged.
    let mut closes: Vec<Option<Instant>> = vec![None; windows + 1];
    let mut seen: Vec<Option<Instant>> = vec![None; windows + 1];
    let mut tick = 0u64;
    loop {
        let elapsed_ms = (tick * 10) as i64;
        tokio::time::sleep_until((started + Duration::from_millis(tick * 10)).into()).await;
        let batch = RecordBatch::try_from_iter([(
            "ts",
            Arc::new(TimestampMillisecondArray::from_value(
                base_ms + elapsed_ms,
                rows_per_batch,
            )) as _,
        )])
        .map_err(|e| e.to_string())?;
        engine
            .ingest("ticks", batch)
            .await
            .map_err(|e| e.to_string())?;
        let acked = Instant::now();
        // Windows whose end this event time reached are closed by it.
        let closed = (elapsed_ms / 100) as usize;
        for slot in closes.iter_mut().take(closed.min(windows + 1)) {
            slot.get_or_insert(acked);
        }
        let rows = visible() as usize;
        for slot in seen.iter_mut().take(rows.min(windows + 1)) {
            slot.get_or_insert(acked);
        }
        if rows >= windows {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("window results did not appear within 60 s".into());
        }
        tick += 1;
    }
    let latencies: Vec<f64> = closes
        .iter()
        .zip(&seen)
        .take(windows)
        .filter_map(|(c, s)| {
            Some(
                s.as_ref()?
                    .saturating_duration_since(*c.as_ref()?)
                    .as_secs_f64()
                    * 1000.0,
            )
        })
        .collect();
    let count = latencies.len();
    let (p50, p99, max) = percentiles(latencies);
    println!(
        "window result after its watermark, checkpoint every {} ms: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms ({count} windows; 10 ms resolution)",
        interval.as_millis(),
    );
    engine.shutdown().await;
    Ok(
        json!({"checkpoint_interval_ms": interval.as_millis() as u64, "p50_ms": p50, "p99_ms": p99, "max_ms": max}),
    )
}

/// p50, p99 and max of milliseconds.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        ms.get(((ms.len() as f64 * q) as usize).min(ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    (pick(0.5), pick(0.99), pick(1.0))
}
