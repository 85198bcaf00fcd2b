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
//! with many groups, for state bytes per group and peak RSS. Queries that need what
//! Weir does not run continuously yet (joins) are listed as such.
//!
//! Then durable ingest over real HTTP (the API served in this process on a loopback
//! port, producers on their own threads speaking HTTP/1.1 with keep-alive): NDJSON and
//! Arrow IPC, 100-byte and 1 KB rows, 1 and 4 producers; rows/s and MB/s of
//! acknowledged (fsynced) rows.
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

/// A benchmark query: its name, the Weir SQL (run continuously, and bounded over the
/// log), and the same query in plain DataFusion SQL over the bids held in memory.
struct Query {
    name: &'static str,
    sql: &'static str,
    /// Window functions spelled as DataFusion's `date_bin` (a HOP as one row per window
    /// an event belongs to), over a memory table `bids`.
    memory: &'static str,
    kind: &'static str,
}

const QUERIES: &[Query] = &[
    Query {
        name: "q0 pass-through",
        sql: "SELECT auction, bidder, price, date_time FROM bids",
        memory: "SELECT auction, bidder, price, date_time FROM bids",
        kind: "stream",
    },
    Query {
        name: "q1 currency conversion",
        sql: "SELECT auction, bidder, price * 908 / 1000 AS price, date_time FROM bids",
        memory: "SELECT auction, bidder, price * 908 / 1000 AS price, date_time FROM bids",
        kind: "stream",
    },
    Query {
        name: "q2 selection",
        sql: "SELECT auction, price FROM bids WHERE auction % 123 = 0",
        memory: "SELECT auction, price FROM bids WHERE auction % 123 = 0",
        kind: "stream",
    },
    Query {
        name: "tumbling count (10 s)",
        sql: "SELECT window_start, window_end, count(*) AS n FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
        memory: "SELECT window_start, window_start + INTERVAL '10' SECOND AS window_end, count(*) AS n FROM (SELECT date_bin(INTERVAL '10' SECOND, date_time) AS window_start FROM bids) GROUP BY window_start",
        kind: "stream",
    },
    Query {
        name: "q5 hot items (hop, per auction)",
        sql: "SELECT window_start, window_end, auction, count(*) AS n FROM HOP(bids, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) GROUP BY window_start, window_end, auction",
        memory: "SELECT window_start, window_start + INTERVAL '10' SECOND AS window_end, auction, count(*) AS n FROM (SELECT auction, date_bin(INTERVAL '2' SECOND, date_time) - k.shift AS window_start FROM bids CROSS JOIN (VALUES (INTERVAL '0' SECOND), (INTERVAL '2' SECOND), (INTERVAL '4' SECOND), (INTERVAL '6' SECOND), (INTERVAL '8' SECOND)) AS k(shift)) GROUP BY window_start, auction",
        kind: "view",
    },
    Query {
        name: "q7 highest bid (aggregate form)",
        sql: "SELECT window_start, window_end, max(price) AS price, first_value(auction ORDER BY price DESC) AS auction, first_value(bidder ORDER BY price DESC) AS bidder FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
        memory: "SELECT window_start, window_start + INTERVAL '10' SECOND AS window_end, max(price) AS price, first_value(auction ORDER BY price DESC) AS auction, first_value(bidder ORDER BY price DESC) AS bidder FROM (SELECT date_bin(INTERVAL '10' SECOND, date_time) AS window_start, auction, bidder, price FROM bids) GROUP BY window_start",
        kind: "stream",
    },
];

/// Nexmark queries that need features not built yet.
const NOT_YET: &[(&str, &str)] = &[
    (
        "q5 (full)",
        "the max-per-window step needs a join of two aggregates",
    ),
    (
        "q7 (join form)",
        "every bid tied at the window's maximum needs a join of the bids with it; the aggregate form above keeps one",
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
            runs.push(measure(&engine, ctx, i, q, events).await?);
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
    let reports = query.reports();
    let state_rows: u64 = reports.iter().map(|r| r.state_rows).sum();
    let state_bytes: u64 = reports.iter().map(|r| r.state_bytes).sum();
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

/// One request body of `rows` rows of about `row_bytes` bytes each.
fn body(format: &str, rows: usize, row_bytes: usize) -> Result<Vec<u8>, String> {
    let payload = "x".repeat(row_bytes.saturating_sub(30));
    match format {
        "ndjson" => Ok((0..rows)
            .map(|i| format!("{{\"id\":{i},\"payload\":\"{payload}\"}}\n"))
            .collect::<String>()
            .into_bytes()),
        _ => {
            use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
            let batch = RecordBatch::try_from_iter([
                (
                    "id",
                    Arc::new(Int64Array::from_iter_values(0..rows as i64)) as _,
                ),
                (
                    "payload",
                    Arc::new(StringArray::from(vec![payload.as_str(); rows])) as _,
                ),
            ])
            .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            let mut writer =
                datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
                    .map_err(|e| e.to_string())?;
            writer.write(&batch).map_err(|e| e.to_string())?;
            writer.finish().map_err(|e| e.to_string())?;
            drop(writer);
            Ok(out)
        }
    }
}

/// Sends `body` to `path` over one keep-alive connection until `deadline`; returns the
/// requests acknowledged with 200.
fn produce(
    address: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
    deadline: Instant,
) -> Result<u64, String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).ok();
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut acked = 0;
    while Instant::now() < deadline {
        writer
            .write_all(head.as_bytes())
            .map_err(|e| e.to_string())?;
        writer.write_all(body).map_err(|e| e.to_string())?;
        let (mut status, mut length, mut line) = (0u16, 0usize, String::new());
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(code) = l.strip_prefix("HTTP/1.1 ") {
                status = code.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            } else if let Some((name, value)) = l.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut answer = vec![0; length];
        reader.read_exact(&mut answer).map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!(
                "ingest answered {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
        acked += 1;
    }
    Ok(acked)
}

/// Durable ingest over HTTP: formats × row sizes × producers.
async fn ingest_matrix(each: Duration) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine = Engine::open(EngineConfig::new(dir.path()), Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let state = crate::api::ApiState::with_engine(engine.clone(), 256 << 20);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, crate::api::router(state)).await;
    });
    println!(
        "\n{:<10} {:>9} {:>10} {:>14} {:>10}",
        "ingest", "row size", "producers", "rows/s", "MB/s"
    );
    let mut out = Vec::new();
    let mut n = 0;
    for format in ["ndjson", "arrow"] {
        for (row_bytes, rows) in [(100usize, 2000usize), (1000, 200)] {
            for producers in [1usize, 4] {
                n += 1;
                let stream = format!("ingest_{n}");
                run(
                    &engine,
                    &format!(
                        "CREATE STREAM {stream} (id BIGINT, payload TEXT) WITH (partitions = 4)"
                    ),
                )
                .await?;
                let body = Arc::new(body(format, rows, row_bytes)?);
                let content_type = if format == "ndjson" {
                    "application/x-ndjson"
                } else {
                    "application/vnd.apache.arrow.stream"
                };
                let path = format!("/v1/streams/{stream}/records");
                let started = Instant::now();
                let deadline = started + each;
                let threads: Vec<_> = (0..producers)
                    .map(|_| {
                        let (body, path) = (body.clone(), path.clone());
                        std::thread::spawn(move || {
                            produce(address, &path, content_type, &body, deadline)
                        })
                    })
                    .collect();
                let requests = tokio::task::spawn_blocking(move || {
                    threads
                        .into_iter()
                        .map(|t| t.join().map_err(|_| "a producer panicked".to_string())?)
                        .sum::<Result<u64, String>>()
                })
                .await
                .map_err(|e| e.to_string())??;
                let secs = started.elapsed().as_secs_f64();
                let rows_per_s = (requests * rows as u64) as f64 / secs;
                let mb_per_s = (requests * body.len() as u64) as f64 / secs / 1e6;
                println!(
                    "{format:<10} {:>8}B {producers:>10} {rows_per_s:>14.0} {mb_per_s:>10.1}",
                    row_bytes
                );
                out.push(
                    json!({"format": format, "row_bytes": row_bytes, "producers": producers,
                    "rows_per_s": rows_per_s, "mb_per_s": mb_per_s}),
                );
                run(&engine, &format!("DROP STREAM {stream}")).await?;
            }
        }
    }
    server.abort();
    engine.shutdown().await;
    Ok(out)
}

/// The views of the freshness measurements, over a stream `lat (id BIGINT)` that gets
/// batches of `rows_per_batch` consecutive ids: an aggregate with one group per batch,
/// and a view that keeps every row.
#[derive(Clone, Copy)]
enum LatencyView {
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
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = EngineConfig::new(dir.path());
    config.checkpoint_interval = interval;
    let engine = Engine::open(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
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
async fn max_view_ingest() -> Result<f64, String> {
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
async fn view_latency(
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
async fn window_latency_ms(
    interval: Duration,
    windows: usize,
    rows_per_batch: usize,
) -> Result<Value, String> {
    use datafusion::arrow::array::{RecordBatch, TimestampMillisecondArray};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = EngineConfig::new(dir.path());
    config.checkpoint_interval = interval;
    let engine = Engine::open(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
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
