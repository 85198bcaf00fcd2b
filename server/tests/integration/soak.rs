//! A short soak: mixed ingest, queries and abuse (wrong tokens, cross-site posts,
//! oversized and deeply nested SQL, runaway queries, bad rows, garbage on the Postgres
//! and Kafka ports, idle connections) against one server for WEIR_SOAK_SECONDS (60 in
//! CI; 600 for the long run), with its RSS sampled every second. Prints the samples'
//! peak per third of the run: memory must level off, not climb with the load.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::server::Weir;

const SECRET: &str = "soak-secret-0123456789";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn mixed_load_and_abuse_with_rss_sampled() {
    let seconds: u64 = std::env::var("WEIR_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let token = format!("soak:admin:{SECRET}");
    let weir = Arc::new(Weir::start(
        dir.path(),
        &[
            "--auth-token",
            &token,
            "--pg-listen",
            "127.0.0.1:0",
            "--kafka-listen",
            "127.0.0.1:0",
            "--statement-timeout",
            "1s",
            "--checkpoint-interval",
            "200ms",
        ],
    ));
    let post = |weir: &Weir, sql: &str| {
        weir.client
            .post(format!("{}/v1/sql", weir.url))
            .bearer_auth(SECRET)
            .json(&json!({ "sql": sql }))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(
        post(
            &weir,
            "CREATE STREAM events (k BIGINT, v DOUBLE, ts TIMESTAMP, \
             WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (partitions = 2, retention_bytes = '32 MiB'); \
             CREATE MATERIALIZED VIEW per_window AS SELECT window_start, k % 10 AS bucket, count(*) AS n, \
             sum(v) AS total FROM TUMBLE(events, ts, INTERVAL '1' SECOND) GROUP BY 1, 2"
        ),
        200
    );
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default()); // ingested, queries, refused, errors
    let mut workers = Vec::new();

    // Ingest: NDJSON batches of 1,000 rows, event time moving forward.
    {
        let (weir, stop, counts) = (weir.clone(), stop.clone(), counts.clone());
        workers.push(std::thread::spawn(move || {
            let mut second = 0u64;
            while !stop.load(Ordering::Relaxed) {
                second += 1;
                let body: String = (0..1000)
                    .map(|i| {
                        format!(
                            "{{\"k\": {i}, \"v\": {}.5, \"ts\": {}}}\n",
                            i % 97,
                            1_700_000_000_000u64 + second * 1000 + i / 10
                        )
                    })
                    .collect();
                let ok = weir
                    .client
                    .post(format!("{}/v1/streams/events/records", weir.url))
                    .bearer_auth(SECRET)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    eprintln!("soak: an ingest request failed");
                }
                let slot = if ok { 0 } else { 3 };
                counts[slot].fetch_add(if ok { 1000 } else { 1 }, Ordering::Relaxed);
            }
        }));
    }
    // Queries: the view, a bounded aggregate, a join, metadata.
    {
        let (weir, stop, counts) = (weir.clone(), stop.clone(), counts.clone());
        workers.push(std::thread::spawn(move || {
            let queries = [
                "SELECT bucket, sum(n) FROM per_window GROUP BY bucket ORDER BY bucket",
                "SELECT count(*), avg(v) FROM events",
                "SELECT k % 5, count(*) FROM events GROUP BY 1",
                "SHOW STREAMS",
            ];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let query = queries[i % queries.len()];
                let status = post(&weir, query);
                // 408: a scan that outgrew the 1 s statement timeout under the load,
                // which is the timeout doing its job.
                let slot = match status {
                    200 | 408 => 1,
                    other => {
                        eprintln!("soak: {query} answered {other}");
                        3
                    }
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    // Abuse: each must be refused with a 4xx, never a 5xx or a dead server.
    {
        let (weir, stop, counts) = (weir.clone(), stop.clone(), counts.clone());
        workers.push(std::thread::spawn(move || {
            let deep = format!("SELECT {}1{}", "(".repeat(20_000), ")".repeat(20_000));
            let big = format!("SELECT '{}'", "x".repeat(2 << 20));
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let url = format!("{}/v1/sql", weir.url);
                let status = match i % 7 {
                    0 => weir.client.post(&url).bearer_auth("wrong-token-0123456789").json(&json!({"sql": "SELECT 1"})).send(),
                    1 => weir.client.post(&url).bearer_auth(SECRET).header("origin", "https://evil.example").json(&json!({"sql": "DROP STREAM events"})).send(),
                    2 => weir.client.post(&url).bearer_auth(SECRET).json(&json!({ "sql": deep })).send(),
                    3 => weir.client.post(&url).bearer_auth(SECRET).json(&json!({ "sql": big })).send(),
                    4 => weir.client.post(&url).bearer_auth(SECRET).json(&json!({"sql": "SELECT count(*) FROM generate_series(1, 100000000) a CROSS JOIN generate_series(1, 100000000) b"})).send(),
                    5 => weir.client.post(format!("{}/v1/streams/events/records", weir.url)).bearer_auth(SECRET).header("content-type", "application/x-ndjson").body("{\"k\": \"not a number\"}\n").send(),
                    _ => weir.client.post(&url).bearer_auth(SECRET).body("not json").send(),
                }
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
                let refused = (400..500).contains(&status);
                if !refused {
                    eprintln!("soak: abusive request {} answered {status}", i % 7);
                }
                counts[if refused { 2 } else { 3 }].fetch_add(1, Ordering::Relaxed);
                // Garbage on the other listeners, and connections left idle.
                for port in [weir.pg_port.unwrap(), weir.kafka_port.unwrap()] {
                    if let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                        let _ = socket.write_all(&[0xff, 0x00, 0x00, 0x10, 0xde, 0xad, 0xbe, 0xef, 0x01]);
                    }
                }
                let _idle = std::net::TcpStream::connect(weir.url.trim_start_matches("http://"));
                i += 1;
            }
        }));
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        samples.push(rss_kib(weir.pid()));
        assert_eq!(weir.get("/healthz").0, 200, "the server stopped answering");
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let third = (samples.len() / 3).max(1);
    let peak = |s: &[u64]| s.iter().copied().max().unwrap_or(0);
    let (first, middle, last) = (
        peak(&samples[..third]),
        peak(&samples[third..(2 * third).min(samples.len())]),
        peak(&samples[(2 * third).min(samples.len())..]),
    );
    let [ingested, queries, refused, errors] =
        [0, 1, 2, 3].map(|i| counts[i].load(Ordering::Relaxed));
    eprintln!(
        "soak {seconds} s: {ingested} rows ingested, {queries} queries, {refused} abusive requests \
         refused, {errors} unexpected answers; RSS peak {} MiB (per third: {} / {} / {} MiB)",
        peak(&samples) / 1024,
        first / 1024,
        middle / 1024,
        last / 1024
    );
    assert_eq!(
        errors, 0,
        "requests that got neither their answer nor a 4xx"
    );
    assert!(ingested > 0 && queries > 0 && refused > 0);
    // Levels off: the last third's peak within 1.5x (plus 64 MiB of slack) of the first's.
    assert!(
        last <= first * 3 / 2 + 64 * 1024,
        "RSS kept climbing: {first} KiB -> {middle} KiB -> {last} KiB"
    );
}
