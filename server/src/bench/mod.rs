//! `weir bench`: the engine measured against its own ceiling, in one process.
//!
//! Over pre-generated Nexmark bids (a generator stream, written before timing starts),
//! each query runs as a continuous query from the start of the stream (`FLUSH` waits
//! until it has processed everything, and writes its output durably). Then the same
//! query bounded, twice, each producing every output row: as Weir's own `SELECT` over
//! the log (in the page cache), and as plain DataFusion over the bids' columns held in
//! memory (no log to read: the ceiling of the engine alone). Figures: events/s, events/s
//! per core of the engine's CPU time (user + system of this process, from
//! `/proc/self/stat`), and the ratios of the continuous figure to both bounded ones.
//! The two bounded queries must return the same number of rows, or the command fails.
//! Then a view
//! with many groups, for state bytes per group and peak RSS. Nexmark q5 and q7 run in
//! their canonical forms too (a window Top-N with `RANK() ... = 1`), and the joins q3 (a
//! regular join into a view), q8 (a window join) and q9 (a regular join under an
//! updating Top-1 per auction, in a view) over people and auctions of the same Nexmark
//! sequence. Queries that need what Weir does not run continuously yet are
//! listed as such, with why.
//!
//! Then durable ingest over real HTTP (the API served in this process on a loopback
//! port, producers on their own threads speaking HTTP/1.1 with keep-alive): NDJSON and
//! Arrow IPC, 100-byte and 1 KB rows, 1 and 4 producers; rows/s and MB/s of
//! acknowledged (fsynced) rows (`ingest`). Then freshness under open-loop load at half
//! of the most a view sustains (`latency`).
//!
//! No figure here is asserted by a test: the quick mode runs in CI to keep the command
//! working, and the full mode's table is the README's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::clock::SystemClock;
use crate::engine::{Engine, EngineConfig, StatementResult};

mod ingest;
mod latency;

use ingest::ingest_matrix;
use latency::{LatencyView, max_view_ingest, view_latency, window_latency_ms};

/// A benchmark query: its name, the Weir SQL (run continuously, and bounded over the
/// log), and the same query in plain DataFusion SQL over the bids held in memory.
struct Query {
    name: &'static str,
    sql: &'static str,
    /// Window functions spelled as DataFusion's `date_bin` (a HOP as one row per window
    /// an event belongs to), over a memory table `bids`.
    memory: &'static str,
    kind: &'static str,
    /// The streams it reads (its events are theirs, for the events/s figures).
    streams: &'static [&'static str],
}

const BIDS: &[&str] = &["bids"];

const QUERIES: &[Query] = &[
    Query {
        name: "q0 pass-through",
        sql: "SELECT auction, bidder, price, date_time FROM bids",
        memory: "SELECT auction, bidder, price, date_time FROM bids",
        kind: "stream",
        streams: BIDS,
    },
    Query {
        name: "q1 currency conversion",
        sql: "SELECT auction, bidder, price * 908 / 1000 AS price, date_time FROM bids",
        memory: "SELECT auction, bidder, price * 908 / 1000 AS price, date_time FROM bids",
        kind: "stream",
        streams: BIDS,
    },
    Query {
        name: "q2 selection",
        sql: "SELECT auction, price FROM bids WHERE auction % 123 = 0",
        memory: "SELECT auction, price FROM bids WHERE auction % 123 = 0",
        kind: "stream",
        streams: BIDS,
    },
    Query {
        name: "tumbling count (10 s)",
        sql: "SELECT window_start, window_end, count(*) AS n FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
        memory: "SELECT window_start, window_start + INTERVAL '10' SECOND AS window_end, count(*) AS n FROM (SELECT date_bin(INTERVAL '10' SECOND, date_time) AS window_start FROM bids) GROUP BY window_start",
        kind: "stream",
        streams: BIDS,
    },
    Query {
        name: "q5 hot items (hop, per auction)",
        sql: "SELECT window_start, window_end, auction, count(*) AS n FROM HOP(bids, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) GROUP BY window_start, window_end, auction",
        memory: "SELECT window_start, window_start + INTERVAL '10' SECOND AS window_end, auction, count(*) AS n FROM (SELECT auction, date_bin(INTERVAL '2' SECOND, date_time) - k.shift AS window_start FROM bids CROSS JOIN (VALUES (INTERVAL '0' SECOND), (INTERVAL '2' SECOND), (INTERVAL '4' SECOND), (INTERVAL '6' SECOND), (INTERVAL '8' SECOND)) AS k(shift)) GROUP BY window_start, auction",
        kind: "view",
        streams: BIDS,
    },
    Query {
        name: "q5 hot items (canonical, RANK)",
        sql: "SELECT window_start, window_end, auction, n FROM (SELECT window_start, window_end, auction, n, RANK() OVER (PARTITION BY window_start, window_end ORDER BY n DESC) AS r FROM (SELECT window_start, window_end, auction, count(*) AS n FROM HOP(bids, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) GROUP BY window_start, window_end, auction)) WHERE r = 1",
        memory: "SELECT window_start, window_end, auction, n FROM (SELECT window_start, window_end, auction, n, RANK() OVER (PARTITION BY window_start, window_end ORDER BY n DESC) AS r FROM (SELECT window_start, window_start + INTERVAL '10' SECOND AS window_end, auction, count(*) AS n FROM (SELECT auction, date_bin(INTERVAL '2' SECOND, date_time) - k.shift AS window_start FROM bids CROSS JOIN (VALUES (INTERVAL '0' SECOND), (INTERVAL '2' SECOND), (INTERVAL '4' SECOND), (INTERVAL '6' SECOND), (INTERVAL '8' SECOND)) AS k(shift)) GROUP BY window_start, auction)) WHERE r = 1",
        kind: "stream",
        streams: BIDS,
    },
    Query {
        name: "q7 highest bid (aggregate form)",
        sql: "SELECT window_start, window_end, max(price) AS price, first_value(auction ORDER BY price DESC) AS auction, first_value(bidder ORDER BY price DESC) AS bidder FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
        memory: "SELECT window_start, window_start + INTERVAL '10' SECOND AS window_end, max(price) AS price, first_value(auction ORDER BY price DESC) AS auction, first_value(bidder ORDER BY price DESC) AS bidder FROM (SELECT date_bin(INTERVAL '10' SECOND, date_time) AS window_start, auction, bidder, price FROM bids) GROUP BY window_start",
        kind: "stream",
        streams: BIDS,
    },
    Query {
        name: "q7 highest bid (Top-N form)",
        sql: "SELECT window_start, window_end, auction, bidder, price FROM (SELECT window_start, window_end, auction, bidder, price, RANK() OVER (PARTITION BY window_start, window_end ORDER BY price DESC) AS r FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND)) WHERE r = 1",
        memory: "SELECT window_start, window_end, auction, bidder, price FROM (SELECT window_start, window_end, auction, bidder, price, RANK() OVER (PARTITION BY window_start, window_end ORDER BY price DESC) AS r FROM (SELECT date_bin(INTERVAL '10' SECOND, date_time) AS window_start, date_bin(INTERVAL '10' SECOND, date_time) + INTERVAL '10' SECOND AS window_end, auction, bidder, price FROM bids)) WHERE r = 1",
        kind: "stream",
        streams: BIDS,
    },
    Query {
        name: "q7 highest bid (join form)",
        sql: "SELECT b.auction, b.price, b.bidder, b.date_time FROM bids b JOIN (SELECT max(price) AS maxprice, window_end FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end) m ON b.price = m.maxprice AND b.date_time BETWEEN m.window_end - INTERVAL '10' SECOND AND m.window_end",
        memory: "SELECT b.auction, b.price, b.bidder, b.date_time FROM bids b JOIN (SELECT max(price) AS maxprice, date_bin(INTERVAL '10' SECOND, date_time) + INTERVAL '10' SECOND AS window_end FROM bids GROUP BY date_bin(INTERVAL '10' SECOND, date_time)) m ON b.price = m.maxprice AND b.date_time BETWEEN m.window_end - INTERVAL '10' SECOND AND m.window_end",
        kind: "stream",
        streams: BIDS,
    },
    Query {
        name: "q3 local item suggestion (join)",
        sql: "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id WHERE a.category = 10 AND (p.state = 'or' OR p.state = 'id' OR p.state = 'ca')",
        memory: "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id WHERE a.category = 10 AND (p.state = 'or' OR p.state = 'id' OR p.state = 'ca')",
        kind: "view",
        streams: &["auction", "person"],
    },
    Query {
        name: "q8 new users (window join)",
        sql: "SELECT p.id, p.name, p.window_start FROM (SELECT id, name, window_start, window_end FROM TUMBLE(person, date_time, INTERVAL '10' SECOND) GROUP BY id, name, window_start, window_end) p JOIN (SELECT seller, window_start, window_end FROM TUMBLE(auction, date_time, INTERVAL '10' SECOND) GROUP BY seller, window_start, window_end) a ON p.id = a.seller AND p.window_start = a.window_start AND p.window_end = a.window_end",
        memory: "SELECT p.id, p.name, p.window_start FROM (SELECT id, name, date_bin(INTERVAL '10' SECOND, date_time) AS window_start FROM person GROUP BY 1, 2, 3) p JOIN (SELECT seller, date_bin(INTERVAL '10' SECOND, date_time) AS window_start FROM auction GROUP BY 1, 2) a ON p.id = a.seller AND p.window_start = a.window_start",
        kind: "stream",
        streams: &["auction", "person"],
    },
    Query {
        name: "q9 winning bids (join, Top-1)",
        sql: "SELECT id, seller, price, bidder FROM (SELECT a.id, a.seller, b.price, b.bidder, ROW_NUMBER() OVER (PARTITION BY a.id ORDER BY b.price DESC, b.date_time) AS rn FROM auction a JOIN bids b ON a.id = b.auction AND b.date_time BETWEEN a.date_time AND a.expires) WHERE rn = 1",
        memory: "SELECT id, seller, price, bidder FROM (SELECT a.id, a.seller, b.price, b.bidder, ROW_NUMBER() OVER (PARTITION BY a.id ORDER BY b.price DESC, b.date_time) AS rn FROM auction a JOIN bids b ON a.id = b.auction AND b.date_time BETWEEN a.date_time AND a.expires) WHERE rn = 1",
        kind: "view",
        streams: &["auction", "bids"],
    },
];

/// Nexmark queries that need features not built yet.
const NOT_YET: &[(&str, &str)] = &[
    (
        "q4 average price per category",
        "needs an aggregate over an updating aggregate (the closing price of each auction changes until it closes)",
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
    status_kb("VmHWM:") * 1024
}

/// Resident set size of this process now, in bytes.
fn current_rss() -> u64 {
    status_kb("VmRSS:") * 1024
}

/// A kB figure of `/proc/self/status`.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

/// An engine over a fresh temporary data dir, checkpointing every `interval`.
async fn scratch_engine(interval: Duration) -> Result<(tempfile::TempDir, Arc<Engine>), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = EngineConfig::new(dir.path());
    config.checkpoint_interval = interval;
    let engine = Engine::open(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    Ok((dir, engine))
}

async fn run(engine: &Engine, sql: &str) -> Result<Vec<StatementResult>, String> {
    engine
        .execute_sql(sql)
        .await
        .map_err(|e| format!("{sql}: {}", e.error))
}

/// Runs the benchmark; prints the table and returns the figures as JSON.
pub async fn bench(
    events: u64,
    groups: u64,
    repeats: usize,
    only: Option<&str>,
) -> Result<Value, String> {
    let wanted = |name: &str| only.is_none_or(|o| name.contains(o));
    let (_dir, engine) = scratch_engine(Duration::from_secs(1)).await?;
    println!("generating {events} Nexmark bids ...");
    let started = Instant::now();
    run(
        &engine,
        &format!(
            "CREATE STREAM bids WITH (connector = 'nexmark', event = 'bid', max_events = {events}, base_time = '2024-01-01 00:00:00'); FLUSH"
        ),
    )
    .await?;
    // People and auctions of the same Nexmark sequence (1 and 3 of every 46 bids), for
    // the joins.
    let (auctions, people) = ((events * 3 / 46).max(1), (events / 46).max(1));
    run(
        &engine,
        &format!(
            "CREATE STREAM auction WITH (connector = 'nexmark', event = 'auction', max_events = {auctions}, base_time = '2024-01-01 00:00:00'); \
             CREATE STREAM person WITH (connector = 'nexmark', event = 'person', max_events = {people}, base_time = '2024-01-01 00:00:00'); FLUSH"
        ),
    )
    .await?;
    let rows_of = |stream: &str| match stream {
        "auction" => auctions,
        "person" => people,
        _ => events,
    };
    println!(
        "  written in {:.2} s (and {auctions} auctions, {people} people)",
        started.elapsed().as_secs_f64()
    );
    // First, so the peak RSS it reports is the view's (and the generator's), not the
    // bounded queries' results'.
    let state = if wanted("state") {
        state_per_group(&engine, groups).await?
    } else {
        Value::Null
    };

    let memory = if QUERIES.iter().any(|q| wanted(q.name)) {
        Some(memory_context(&engine).await?)
    } else {
        None
    };
    let mut rows = Vec::new();
    if memory.is_some() {
        println!(
            "\n{:<34} {:>12} {:>12} {:>12} {:>8} {:>12} {:>8}",
            "query (events/s)",
            "continuous",
            "per core",
            "SELECT",
            "÷SELECT",
            "in memory",
            "÷memory"
        );
    }
    let ctx = memory.as_ref();
    for (i, q) in QUERIES.iter().enumerate().filter(|(_, q)| wanted(q.name)) {
        let ctx = ctx.ok_or("no memory table")?;
        let mut runs = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let read: u64 = q.streams.iter().map(|s| rows_of(s)).sum();
            runs.push(measure(&engine, ctx, i, q, read).await?);
        }
        // Each figure is the median of the runs (the machine's disk and page cache make
        // single runs vary by up to 2x).
        let median = |f: fn(&Figures) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let streaming = median(|r| r.streaming);
        let per_core = median(|r| r.per_core);
        let select = median(|r| r.select);
        let in_memory = median(|r| r.in_memory);
        println!(
            "{:<34} {:>12.0} {:>12.0} {:>12.0} {:>8.2} {:>12.0} {:>8.2}",
            q.name,
            streaming,
            per_core,
            select,
            streaming / select,
            in_memory,
            streaming / in_memory
        );
        rows.push(json!({"query": q.name, "runs": runs.len(),
            "streaming_events_per_s": streaming, "streaming_events_per_s_per_core": per_core,
            "select_events_per_s": select, "ratio_to_select": streaming / select,
            "batch_events_per_s": in_memory, "ratio": streaming / in_memory,
            "output_rows": runs[0].rows}));
    }
    drop(memory);
    for (name, why) in NOT_YET {
        println!("{name:<34} not run: {why}");
    }

    engine.shutdown().await;
    let ingest = if wanted("ingest") {
        ingest_matrix(if events <= 1_000_000 {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3)
        })
        .await?
    } else {
        Vec::new()
    };
    let (mut latency, mut window_latency) = (Vec::new(), Vec::new());
    let mut load = Value::Null;
    if wanted("latency") {
        // Open loop at half of the most this path sustains, in 100 batches a second.
        let max = max_view_ingest().await?;
        let rows_per_batch = ((max / 2.0 / 100.0) as usize).max(1);
        println!(
            "latency under load: {} rows/s (half of the {max:.0} rows/s a view sustains here), in 100 batches/s",
            rows_per_batch * 100
        );
        load = json!({"max_rows_per_s": max, "rows_per_s": rows_per_batch * 100});
        for kind in [LatencyView::Aggregate, LatencyView::Rows] {
            for interval in [Duration::from_millis(1000), Duration::from_millis(100)] {
                let batches = if events <= 1_000_000 { 100 } else { 500 };
                latency.push(view_latency(interval, kind, batches, rows_per_batch).await?);
            }
        }
        for interval in [Duration::from_millis(1000), Duration::from_millis(100)] {
            let windows = if events <= 1_000_000 { 10 } else { 40 };
            window_latency.push(window_latency_ms(interval, windows, rows_per_batch).await?);
        }
    }
    Ok(json!({
        "events": events,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "queries": rows,
        "not_run": NOT_YET.iter().map(|(n, w)| json!({"query": n, "why": w})).collect::<Vec<_>>(),
        "state": state,
        "peak_rss_bytes": peak_rss(),
        "ingest": ingest,
        "latency_load": load,
        "view_latency": latency,
        "window_latency": window_latency,
    }))
}

/// One run's figures of a query, in events/s.
struct Figures {
    streaming: f64,
    per_core: f64,
    select: f64,
    in_memory: f64,
    rows: usize,
}

/// Runs query `i` continuously (a derived stream or view, dropped afterwards), then
/// bounded as Weir's SELECT and in memory.
async fn measure(
    engine: &Engine,
    ctx: &SessionContext,
    i: usize,
    q: &Query,
    events: u64,
) -> Result<Figures, String> {
    let (create, drop) = match q.kind {
        "view" => ("CREATE MATERIALIZED VIEW", "DROP MATERIALIZED VIEW"),
        _ => ("CREATE STREAM", "DROP STREAM"),
    };
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    run(engine, &format!("{create} bench_{i} AS {}; FLUSH", q.sql)).await?;
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    run(engine, &format!("{drop} bench_{i}")).await?;
    // The bounded queries produce every output row, as the continuous one does
    // (wrapped in count(*), DataFusion would skip reading the columns).
    let t1 = Instant::now();
    let rows: usize = run(engine, q.sql)
        .await?
        .iter()
        .map(|r| match r {
            StatementResult::Rows { batches, .. } => batches.iter().map(|b| b.num_rows()).sum(),
            StatementResult::Ok { .. } => 0,
        })
        .sum();
    let select = events as f64 / t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let memory_rows = count_rows(ctx, q.memory).await?;
    let in_memory = events as f64 / t2.elapsed().as_secs_f64();
    if memory_rows != rows {
        return Err(format!(
            "{}: the in-memory DataFusion query returned {memory_rows} rows where Weir's SELECT returned {rows}",
            q.name
        ));
    }
    Ok(Figures {
        streaming: events as f64 / secs,
        per_core: if cpu > 0.0 {
            events as f64 / cpu
        } else {
            f64::NAN
        },
        select,
        in_memory,
        rows,
    })
}

/// A plain DataFusion context (no Weir) with the bids' columns the queries read as a
/// memory table `bids`, split over as many partitions as there are cores.
async fn memory_context(engine: &Engine) -> Result<SessionContext, String> {
    let results = run(engine, "SELECT auction, bidder, price, date_time FROM bids").await?;
    let Some(StatementResult::Rows {
        schema, batches, ..
    }) = results.into_iter().next()
    else {
        return Err("reading the bids into memory returned no rows".into());
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut partitions = vec![Vec::new(); cores];
    for (i, batch) in batches.into_iter().enumerate() {
        partitions[i % cores].push(batch);
    }
    let table = MemTable::try_new(schema, partitions).map_err(|e| e.to_string())?;
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(cores));
    ctx.register_table("bids", Arc::new(table))
        .map_err(|e| e.to_string())?;
    // The joins' people and auctions, whole (they are small).
    for (name, columns) in [
        ("auction", "id, seller, category, date_time, expires"),
        ("person", "id, name, city, state, date_time"),
    ] {
        let results = run(engine, &format!("SELECT {columns} FROM {name}")).await?;
        let Some(StatementResult::Rows {
            schema, batches, ..
        }) = results.into_iter().next()
        else {
            return Err(format!("reading {name} into memory returned no rows"));
        };
        let table = MemTable::try_new(schema, vec![batches]).map_err(|e| e.to_string())?;
        ctx.register_table(name, Arc::new(table))
            .map_err(|e| e.to_string())?;
    }
    Ok(ctx)
}

/// Runs `sql` in `ctx`, consuming every output row; returns how many.
async fn count_rows(ctx: &SessionContext, sql: &str) -> Result<usize, String> {
    use futures::StreamExt;
    let failed = |e: datafusion::error::DataFusionError| format!("{sql}: {e}");
    let mut stream = ctx
        .sql(sql)
        .await
        .map_err(failed)?
        .execute_stream()
        .await
        .map_err(failed)?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.map_err(failed)?.num_rows();
    }
    Ok(rows)
}

/// A view with exactly `groups` groups (a key over the row's offset in the one
/// partition of the bids stream): the state the engine reports for it, and the growth of
/// resident memory while it was built.
async fn state_per_group(engine: &Engine, groups: u64) -> Result<Value, String> {
    let (t, rss0) = (Instant::now(), current_rss());
    run(
        engine,
        &format!(
            "CREATE MATERIALIZED VIEW per_key AS SELECT _offset % {groups} AS k, count(*) AS n, sum(price) AS total FROM bids GROUP BY _offset % {groups}; FLUSH"
        ),
    )
    .await?;
    let query = engine
        .queries()
        .into_iter()
        .find(|q| q.def.name == "per_key")
        .ok_or("the per_key view is not running")?;
    let (state_rows, state_bytes) = (query.state_rows(), query.state_bytes());
    let per_group = state_bytes as f64 / state_rows.max(1) as f64;
    let rss_growth = current_rss().saturating_sub(rss0);
    println!(
        "\nview with {state_rows} groups: {:.1} s, state {:.1} MB ({per_group:.0} bytes/group); resident memory grew {:.0} MB, peak RSS {:.0} MB",
        t.elapsed().as_secs_f64(),
        state_bytes as f64 / 1e6,
        rss_growth as f64 / 1e6,
        peak_rss() as f64 / 1e6
    );
    let peak = peak_rss();
    run(engine, "DROP MATERIALIZED VIEW per_key").await?;
    Ok(
        json!({"groups": state_rows, "bytes": state_bytes, "bytes_per_group": per_group,
        "rss_growth_bytes": rss_growth, "peak_rss_bytes": peak}),
    )
}
