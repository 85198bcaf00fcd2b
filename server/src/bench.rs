//! `weir bench`: the engine measured against its own ceiling, in one process.
//!
//! Over pre-generated Nexmark bids (a generator stream, written before timing starts),
//! each query runs as a continuous query from the start of the stream (`FLUSH` waits
//! until it has processed everything), and then as a bounded DataFusion query over the
//! same rows: events/s, events/s per core of the engine's CPU time (user + system of
//! this process, from `/proc/self/stat`), and the ratio streaming ÷ batch. Then a view
//! with many groups, for state bytes per group and peak RSS. Queries that need what
//! Weir does not run continuously yet (joins) are listed as such.
//!
//! No figure here is asserted by a test: the quick mode runs in CI to keep the command
//! working, and the full mode's table is the README's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::clock::SystemClock;
use crate::engine::{Engine, EngineConfig, StatementResult};

/// A benchmark query: its name, the continuous SELECT, and the bounded one.
struct Query {
    name: &'static str,
    streaming: &'static str,
    batch: &'static str,
    kind: &'static str,
}

const QUERIES: &[Query] = &[
    Query {
        name: "q0 pass-through",
        streaming: "SELECT auction, bidder, price, date_time FROM bids",
        batch: "SELECT auction, bidder, price, date_time FROM bids",
        kind: "stream",
    },
    Query {
        name: "q1 currency conversion",
        streaming: "SELECT auction, bidder, price * 908 / 1000 AS price, date_time FROM bids",
        batch: "SELECT auction, bidder, price * 908 / 1000 AS price, date_time FROM bids",
        kind: "stream",
    },
    Query {
        name: "q2 selection",
        streaming: "SELECT auction, price FROM bids WHERE auction % 123 = 0",
        batch: "SELECT auction, price FROM bids WHERE auction % 123 = 0",
        kind: "stream",
    },
    Query {
        name: "tumbling count (10 s)",
        streaming: "SELECT window_start, window_end, count(*) AS n FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
        batch: "SELECT window_start, window_end, count(*) AS n FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
        kind: "stream",
    },
    Query {
        name: "q5 hot items (hop, per auction)",
        streaming: "SELECT window_start, window_end, auction, count(*) AS n FROM HOP(bids, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) GROUP BY window_start, window_end, auction",
        batch: "SELECT window_start, window_end, auction, count(*) AS n FROM HOP(bids, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) GROUP BY window_start, window_end, auction",
        kind: "view",
    },
];

/// Nexmark queries that need features not built yet.
const NOT_YET: &[(&str, &str)] = &[
    (
        "q5 (full)",
        "the max-per-window step needs a join of two aggregates",
    ),
    (
        "q7 highest bid",
        "needs a join of the bids with their window's maximum",
    ),
    (
        "q8 new users",
        "needs a windowed join of persons and auctions",
    ),
    ("q12 processing-time windows", "needs PROCTIME() windows"),
];

/// CPU seconds (user + system) this process used so far.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of this process, in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

async fn run(engine: &Engine, sql: &str) -> Result<Vec<StatementResult>, String> {
    engine
        .execute_sql(sql)
        .await
        .map_err(|e| format!("{sql}: {}", e.error))
}

/// Runs the benchmark; prints the table and returns the figures as JSON.
pub async fn bench(events: u64, groups: u64) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = EngineConfig::new(dir.path());
    config.checkpoint_interval = Duration::from_secs(1);
    let engine = Engine::open(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    println!("generating {events} Nexmark bids ...");
    let started = Instant::now();
    run(
        &engine,
        &format!(
            "CREATE STREAM bids WITH (connector = 'nexmark', event = 'bid', max_events = {events}, base_time = '2024-01-01 00:00:00'); FLUSH"
        ),
    )
    .await?;
    println!("  written in {:.2} s", started.elapsed().as_secs_f64());

    let mut rows = Vec::new();
    println!(
        "\n{:<34} {:>14} {:>16} {:>14} {:>10}",
        "query", "stream ev/s", "stream ev/s/core", "batch ev/s", "str÷batch"
    );
    for (i, q) in QUERIES.iter().enumerate() {
        let create = match q.kind {
            "view" => format!("CREATE MATERIALIZED VIEW bench_{i} AS {}", q.streaming),
            _ => format!("CREATE STREAM bench_{i} AS {}", q.streaming),
        };
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        run(&engine, &format!("{create}; FLUSH")).await?;
        let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
        let streaming = events as f64 / secs;
        let per_core = if cpu > 0.0 {
            events as f64 / cpu
        } else {
            f64::NAN
        };
        let t1 = Instant::now();
        run(&engine, &format!("SELECT count(*) FROM ({})", q.batch)).await?;
        let batch = events as f64 / t1.elapsed().as_secs_f64();
        println!(
            "{:<34} {:>14.0} {:>16.0} {:>14.0} {:>10.2}",
            q.name,
            streaming,
            per_core,
            batch,
            streaming / batch
        );
        rows.push(json!({"query": q.name, "streaming_events_per_s": streaming,
            "streaming_events_per_s_per_core": per_core, "cpu_seconds": cpu,
            "batch_events_per_s": batch, "ratio": streaming / batch}));
        run(
            &engine,
            &format!(
                "DROP {} bench_{i}",
                if q.kind == "view" {
                    "MATERIALIZED VIEW"
                } else {
                    "STREAM"
                }
            ),
        )
        .await?;
    }
    for (name, why) in NOT_YET {
        println!("{name:<34} not run: {why}");
    }

    // State per group: a view with `groups` groups.
    let t2 = Instant::now();
    run(
        &engine,
        &format!(
            "CREATE MATERIALIZED VIEW per_key AS SELECT (auction * 7919 + bidder) % {groups} AS k, count(*) AS n, sum(price) AS total FROM bids GROUP BY (auction * 7919 + bidder) % {groups}; FLUSH"
        ),
    )
    .await?;
    let query = engine
        .queries()
        .into_iter()
        .find(|q| q.def.name == "per_key")
        .ok_or("the per_key view is not running")?;
    let reports = query.reports();
    let state_rows: u64 = reports.iter().map(|r| r.state_rows).sum();
    let state_bytes: u64 = reports.iter().map(|r| r.state_bytes).sum();
    let per_group = state_bytes as f64 / state_rows.max(1) as f64;
    let rss = peak_rss();
    println!(
        "\nview with {state_rows} groups: {:.1} s, state {:.1} MB ({per_group:.0} bytes/group); peak RSS {:.0} MB",
        t2.elapsed().as_secs_f64(),
        state_bytes as f64 / 1e6,
        rss as f64 / 1e6
    );
    println!("not measured yet: HTTP ingest matrix, end-to-end latency (see the README)");
    engine.shutdown().await;
    Ok(json!({
        "events": events,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "queries": rows,
        "not_run": NOT_YET.iter().map(|(n, w)| json!({"query": n, "why": w})).collect::<Vec<_>>(),
        "state": {"groups": state_rows, "bytes": state_bytes, "bytes_per_group": per_group},
        "peak_rss_bytes": rss,
    }))
}
