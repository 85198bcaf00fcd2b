//! Object-store faults (issue 5, test 4): checkpoints whose puts fail or are delayed at
//! chosen moments, with engine restarts in between. No manifest ever names a missing
//! file, restarts succeed, and the results equal a run without faults.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::arrow::util::pretty::pretty_format_batches;
use weir::clock::SystemClock;
use weir::engine::{Engine, EngineConfig, StatementResult};
use weir::runtime::checkpoint::CheckpointStore;

const SETUP: &str = "
    CREATE STREAM ev (k BIGINT, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
      WITH (partitions = 2, key = 'k');
    CREATE MATERIALIZED VIEW per_window WITH (parallelism = 2) AS
      SELECT window_start, k, count(*) AS n, sum(v) AS total
      FROM TUMBLE(ev, ts, INTERVAL '2' SECOND) GROUP BY window_start, window_end, k;
    CREATE STREAM windows AS
      SELECT window_start, window_end, count(*) AS n FROM TUMBLE(ev, ts, INTERVAL '2' SECOND)
      GROUP BY window_start, window_end";

/// Puts the hook failed, over the whole test.
static FAILED_PUTS: AtomicU64 = AtomicU64::new(0);

async fn open(dir: &std::path::Path, faulty: Option<Arc<AtomicU64>>) -> Arc<Engine> {
    let mut config = EngineConfig::new(dir);
    let mut store = CheckpointStore::local(&dir.join("checkpoints")).unwrap();
    if let Some(puts) = faulty {
        // One put in eight fails and one in five is slow, in a fixed pseudo-random
        // pattern (SplitMix64 of the put's number): state files and manifests alike.
        store = store.with_put_hook(Arc::new(move |path: &str| {
            let n = puts.fetch_add(1, Ordering::SeqCst);
            let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let roll = (z ^ (z >> 31)) % 100;
            if roll >= 80 {
                std::thread::sleep(Duration::from_millis(30));
            }
            if roll < 12 {
                FAILED_PUTS.fetch_add(1, Ordering::SeqCst);
                return Err(format!("injected failure of put #{n} ({path})"));
            }
            Ok(())
        }));
    }
    config.checkpoint_store = Some(store);
    config.checkpoint_interval = Duration::from_millis(50);
    Engine::open(config, Arc::new(SystemClock)).await.unwrap()
}

async fn run(engine: &Engine, sql: &str) -> Result<Vec<StatementResult>, String> {
    engine
        .execute_sql(sql)
        .await
        .map_err(|e| e.error.to_string())
}

/// FLUSH until a checkpoint commits (a failed put fails the FLUSH; the next one retries).
async fn flush(engine: &Engine) {
    let mut last = String::new();
    for _ in 0..50 {
        match run(engine, "FLUSH").await {
            Ok(_) => return,
            Err(e) => last = e,
        }
    }
    panic!("FLUSH never committed a checkpoint; the last error: {last}");
}

async fn table(engine: &Engine, sql: &str) -> String {
    match run(engine, sql).await.unwrap().pop() {
        Some(StatementResult::Rows { batches, .. }) => {
            pretty_format_batches(&batches).unwrap().to_string()
        }
        other => panic!("{sql}: {other:?}"),
    }
}

fn batches() -> Vec<String> {
    (0..12)
        .map(|b| {
            let rows: Vec<String> = (0..20)
                .map(|i| {
                    let ms = 1_704_067_200_000i64 + b * 900 + i * 37;
                    format!("({}, {}, to_timestamp_millis({ms}))", i % 4, b * 100 + i)
                })
                .collect();
            format!("INSERT INTO ev VALUES {}", rows.join(", "))
        })
        .collect()
}

async fn results(engine: &Engine) -> (String, String) {
    (
        table(engine, "SELECT * FROM per_window ORDER BY window_start, k").await,
        table(engine, "SELECT * FROM windows ORDER BY window_start").await,
    )
}

/// Every manifest names only files that exist.
fn check_manifests(dir: &std::path::Path) -> usize {
    let mut checked = 0;
    let queries = dir.join("checkpoints/queries");
    for query in std::fs::read_dir(&queries).unwrap().flatten() {
        for epoch in std::fs::read_dir(query.path()).unwrap().flatten() {
            let manifest = epoch.path().join("manifest.json");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue; // an incomplete checkpoint: never used
            };
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let instances = json["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|n| n["instances"].as_array().unwrap());
            for op in instances {
                for kind in ["state", "closed"] {
                    if let Some(name) = op[kind].as_str() {
                        assert!(
                            epoch.path().join(name).exists(),
                            "{} names {name}, which is missing",
                            manifest.display()
                        );
                    }
                }
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn checkpoints_survive_failing_and_slow_puts_and_restarts() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let reference_dir = tempfile::tempdir().unwrap();
        let engine = open(reference_dir.path(), None).await;
        run(&engine, SETUP).await.unwrap();
        for insert in batches() {
            run(&engine, &insert).await.unwrap();
            flush(&engine).await;
        }
        let expected = results(&engine).await;
        engine.shutdown().await;
        drop(engine);

        let dir = tempfile::tempdir().unwrap();
        let puts = Arc::new(AtomicU64::new(0));
        let mut engine = open(dir.path(), Some(puts.clone())).await;
        run(&engine, SETUP).await.unwrap();
        for (i, insert) in batches().iter().enumerate() {
            run(&engine, insert).await.unwrap();
            if i % 2 == 0 {
                let _ = run(&engine, "FLUSH").await; // may fail: a put failed
            }
            if i % 4 == 3 {
                check_manifests(dir.path());
                engine.shutdown().await;
                drop(engine);
                engine = open(dir.path(), Some(puts.clone())).await;
            }
        }
        flush(&engine).await;
        assert!(check_manifests(dir.path()) > 0);
        assert!(puts.load(Ordering::SeqCst) > 10, "checkpoints were written");
        assert!(FAILED_PUTS.load(Ordering::SeqCst) > 0, "some puts failed");
        assert_eq!(results(&engine).await, expected);
    });
}
