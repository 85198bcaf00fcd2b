//! `weir bench --quick` runs in CI so the command keeps working: it prints its table and
//! writes its JSON. The figures are printed, never asserted (speed is not a test).

use std::process::Command;

#[test]
fn quick_benchmark_prints_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["bench", "--quick", "--json"])
        .arg(&json)
        .env("WEIR_LOG", "warn")
        .output()
        .expect("run weir bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "weir bench failed");
    assert!(stdout.contains("q0 pass-through"), "{stdout}");
    assert!(
        stdout.contains("not run:"),
        "queries that cannot run are listed: {stdout}"
    );
    let figures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let queries = figures["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 12, "{figures}");
    for q in queries {
        assert!(q["streaming_events_per_s"].as_f64().is_some(), "{q}");
        assert!(q["batch_events_per_s"].as_f64().is_some(), "{q}");
    }
    assert_eq!(
        figures["state"]["groups"].as_u64(),
        Some(100_000),
        "the state view has exactly the groups asked for: {figures}"
    );
    let ingest = figures["ingest"].as_array().unwrap();
    assert_eq!(
        ingest.len(),
        8,
        "NDJSON and Arrow × 100 B and 1 KB × 1 and 4 producers"
    );
    assert!(
        ingest
            .iter()
            .all(|i| i["rows_per_s"].as_f64().is_some_and(|r| r > 0.0)),
        "{figures}"
    );
    let latency = figures["view_latency"].as_array().unwrap();
    assert_eq!(
        latency.len(),
        4,
        "an aggregate view and a view of every row, at the default and a short checkpoint interval"
    );
    assert!(
        latency.iter().all(|l| l["p99_ms"].as_f64().is_some()),
        "{figures}"
    );
    assert_eq!(
        figures["window_latency"].as_array().unwrap().len(),
        2,
        "{figures}"
    );
}
