//! The differential property of design/ARCHITECTURE.md (invariant 5): a continuous
//! window view (tumbling, hopping, and session) equals a bounded DataFusion GROUP BY over exactly
//! the (event, window) pairs it admitted, for many random seeds, with 1 and 2 source partitions and
//! 1 and 2 operators (parallelism 2 = hash exchange on the group keys).
//!
//! Events arrive out of order, some late. The test knows which ones are late by
//! following the rules of design/SQL.md: each INSERT is one batch (round-robin over
//! partitions), FLUSH after each, a partition's watermark is its largest event time
//! minus the delay, the query's is the minimum over its partitions (one without rows yet
//! holds it back), and a row is
//! late when its window ended at or before the watermark its batch arrived under (for
//! sessions: when `ts + gap` is at or before it). For sessions the bounded query is a
//! SESSION over exactly the admitted events.
//! `WEIR_DIFFERENTIAL_SEEDS` sets the number of seeds (default 8).

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weir::clock::SystemClock;
use weir::engine::{Engine, EngineConfig, StatementResult};

const DELAY_MS: i64 = 3_000;
const SLIDE_MS: i64 = 5_000;
const BASE_MS: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

pub(crate) async fn run(engine: &Engine, sql: &str) -> Vec<StatementResult> {
    engine
        .execute_sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", e.error))
}

/// A query's rows, as a pretty table.
pub(crate) async fn table(engine: &Engine, sql: &str) -> String {
    match run(engine, sql).await.pop() {
        Some(StatementResult::Rows { batches, .. }) => {
            pretty_format_batches(&batches).unwrap().to_string()
        }
        other => panic!("{sql}: expected rows, got {other:?}"),
    }
}

/// The windows of an event: `(start, end)` in ms, latest first. Tumbling windows are
/// hopping windows whose size equals their slide.
fn windows(ts: i64, size_ms: i64) -> Vec<(i64, i64)> {
    let latest = ts - ts.rem_euclid(SLIDE_MS);
    (0..size_ms / SLIDE_MS)
        .map(|j| (latest - j * SLIDE_MS, latest - j * SLIDE_MS + size_ms))
        .collect()
}

const GAP_MS: i64 = 2_000;

/// The window shape of a case: hopping of this size (tumbling when it equals the slide),
/// or sessions with a gap of [`GAP_MS`] when `None`.
type Shape = Option<i64>;

/// Runs one random case; returns how many events were late.
async fn one_case(seed: u64, partitions: usize, parallelism: usize, shape: Shape) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path()), Arc::new(SystemClock))
        .await
        .unwrap();
    let size_ms = shape.unwrap_or(0);
    let window = if shape.is_none() {
        format!("SESSION(ev, ts, INTERVAL '{GAP_MS}' MILLISECOND)")
    } else if size_ms == SLIDE_MS {
        "TUMBLE(ev, ts, INTERVAL '5' SECOND)".to_string()
    } else {
        format!(
            "HOP(ev, ts, INTERVAL '5' SECOND, INTERVAL '{}' SECOND)",
            size_ms / 1000
        )
    };
    // Odd seeds of tumbling and hopping windows group by window_start alone (its end is
    // window_start + size), the rest by both bounds.
    let by_start = shape.is_some() && seed % 2 == 1;
    let (keys, window_end) = match by_start {
        true => (
            "window_start, k",
            format!("window_start + INTERVAL '{size_ms}' MILLISECOND AS window_end"),
        ),
        false => ("window_start, window_end, k", "window_end".to_string()),
    };
    run(
        &engine,
        &format!(
            "CREATE STREAM ev (k BIGINT, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '3' SECOND) WITH (partitions = {partitions});
             CREATE STREAM admitted (k BIGINT, v BIGINT, window_start TIMESTAMP);
             CREATE STREAM admitted_events (k BIGINT, v BIGINT, ts TIMESTAMP);
             CREATE MATERIALIZED VIEW per_window WITH (parallelism = {parallelism}) AS
               SELECT {keys}, count(*) AS n, sum(v) AS total
               FROM {window} GROUP BY {keys}"
        ),
    )
    .await;
    let case = format!(
        "seed {seed}, {partitions} partitions, parallelism {parallelism}, {window} grouped by {keys}"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let mut partition_watermarks: Vec<Option<i64>> = vec![None; partitions];
    let mut watermark: Option<i64> = None;
    let mut clock = BASE_MS;
    let mut late_events = 0usize;
    for batch in 0..rng.random_range(5..25) {
        let rows: Vec<(i64, i64, i64)> = (0..rng.random_range(1..20))
            .map(|_| {
                clock += rng.random_range(0..800);
                let jitter = if rng.random_bool(0.2) {
                    rng.random_range(-9_000..0)
                } else {
                    rng.random_range(-1_000..200)
                };
                (
                    rng.random_range(0..4),
                    rng.random_range(0..100),
                    clock + jitter,
                )
            })
            .collect();
        let values: Vec<String> = rows
            .iter()
            .map(|(k, v, ts)| format!("({k}, {v}, to_timestamp_millis({ts}))"))
            .collect();
        run(
            &engine,
            &format!("INSERT INTO ev VALUES {}; FLUSH", values.join(", ")),
        )
        .await;
        // The (event, window) pairs the rules admit: windows still open when the batch came.
        let mut admitted = Vec::new();
        if shape.is_none() {
            // Sessions: an event is late when ts + gap is at or before the watermark.
            let on_time: Vec<String> = rows
                .iter()
                .filter(|(_, _, ts)| watermark.is_none_or(|w| ts + GAP_MS > w))
                .map(|(k, v, ts)| format!("({k}, {v}, to_timestamp_millis({ts}))"))
                .collect();
            late_events += rows.len() - on_time.len();
            if !on_time.is_empty() {
                run(
                    &engine,
                    &format!("INSERT INTO admitted_events VALUES {}", on_time.join(", ")),
                )
                .await;
            }
        }
        for (k, v, ts) in rows.iter().filter(|_| shape.is_some()) {
            let open: Vec<_> = windows(*ts, size_ms)
                .into_iter()
                .filter(|(_, end)| watermark.is_none_or(|w| *end > w))
                .collect();
            if open.is_empty() {
                late_events += 1;
            }
            admitted.extend(
                open.into_iter()
                    .map(|(start, _)| format!("({k}, {v}, to_timestamp_millis({start}))")),
            );
        }
        if !admitted.is_empty() {
            run(
                &engine,
                &format!("INSERT INTO admitted VALUES {}", admitted.join(", ")),
            )
            .await;
        }
        let p = batch % partitions;
        let max_ts = rows.iter().map(|r| r.2).max().unwrap();
        partition_watermarks[p] =
            Some(partition_watermarks[p].map_or(max_ts - DELAY_MS, |w| w.max(max_ts - DELAY_MS)));
        // A partition without rows holds the watermark back (its idle timeout is not
        // reached here).
        if partition_watermarks.iter().all(Option::is_some)
            && let Some(global) = partition_watermarks.iter().flatten().min()
        {
            watermark = Some(watermark.map_or(*global, |w| w.max(*global)));
        }
    }
    let streaming = table(
        &engine,
        &format!(
            "SELECT window_start, {window_end}, k, n, total FROM per_window ORDER BY window_start, k"
        ),
    )
    .await;
    let bounded = match shape {
        Some(size_ms) => format!(
            "SELECT window_start, window_start + INTERVAL '{size_ms}' MILLISECOND AS window_end, k, count(*) AS n, sum(v) AS total
             FROM admitted GROUP BY 1, 2, 3 ORDER BY 1, 3"
        ),
        None => format!(
            "SELECT window_start, window_end, k, count(*) AS n, sum(v) AS total
             FROM SESSION(admitted_events, ts, INTERVAL '{GAP_MS}' MILLISECOND)
             GROUP BY window_start, window_end, k ORDER BY 1, 3"
        ),
    };
    let bounded = table(&engine, &bounded).await;
    assert_eq!(streaming, bounded, "{case}");
    let query = engine.queries().pop().expect("the view's query");
    let late = query
        .metrics
        .late_rows
        .load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert_eq!(late, late_events, "{case}: late events");
    late
}

#[test]
fn window_views_equal_bounded_queries_over_admitted_events() {
    let seeds: u64 = std::env::var("WEIR_DIFFERENTIAL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut late = 0;
        for shape in [Some(SLIDE_MS), Some(3 * SLIDE_MS), None] {
            for (partitions, parallelism) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
                for seed in 0..seeds {
                    late += one_case(seed, partitions, parallelism, shape).await;
                }
            }
        }
        assert!(late > 0, "the generated events should include late ones");
    });
}
