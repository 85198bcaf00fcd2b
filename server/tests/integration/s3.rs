//! Checkpoints in an S3-compatible object store (`--storage s3://bucket/prefix`), against
//! the server that `WEIR_S3_ENDPOINT` names (`.ci/run` starts moto's S3 server). Without
//! it the test is skipped with a message, unless `WEIR_REQUIRE_S3=1` makes that a failure.

use serde_json::json;

use crate::server::Weir;

#[test]
fn checkpoints_in_s3_survive_kill_9() {
    let Ok(endpoint) = std::env::var("WEIR_S3_ENDPOINT") else {
        assert!(
            std::env::var("WEIR_REQUIRE_S3").as_deref() != Ok("1"),
            "WEIR_REQUIRE_S3=1 but WEIR_S3_ENDPOINT is not set"
        );
        eprintln!("SKIPPED: set WEIR_S3_ENDPOINT to an S3-compatible server (e.g. moto_server)");
        return;
    };
    let client = reqwest::blocking::Client::new();
    let bucket = format!("weir-{}", std::process::id());
    let created = client.put(format!("{endpoint}/{bucket}")).send().unwrap();
    assert!(
        created.status().is_success(),
        "create bucket: {}",
        created.status()
    );
    let storage = format!("s3://{bucket}/checkpoints");
    let args = [
        "--storage",
        storage.as_str(),
        "--checkpoint-interval",
        "200ms",
    ];
    let envs = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start_with_env(dir.path(), &args, &envs);
    weir.sql_ok(
        "CREATE STREAM clicks (page TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (partitions = 2);
         CREATE MATERIALIZED VIEW per_page AS SELECT window_start, page, count(*) AS n
           FROM TUMBLE(clicks, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end, page;
         INSERT INTO clicks VALUES ('a', '2024-01-01 00:00:01'), ('b', '2024-01-01 00:00:02'), ('a', '2024-01-01 00:00:12');
         FLUSH",
    );
    let listing = client
        .get(format!(
            "{endpoint}/{bucket}?list-type=2&prefix=checkpoints/queries/"
        ))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        listing.contains("manifest.json"),
        "no checkpoint in the bucket: {listing}"
    );
    // The catalog's durable copy follows within a second or so.
    let mut copied = false;
    for _ in 0..50 {
        let root = client
            .get(format!(
                "{endpoint}/{bucket}?list-type=2&prefix=checkpoints/catalog.json"
            ))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if root.contains("<Key>checkpoints/catalog.json</Key>") {
            copied = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(copied, "the catalog was not copied to the bucket");
    weir.kill9();

    let weir = Weir::start_with_env(dir.path(), &args, &envs);
    weir.sql_ok("INSERT INTO clicks VALUES ('b', '2024-01-01 00:00:13'); FLUSH");
    assert_eq!(
        weir.sql_ok("SELECT * FROM per_page ORDER BY window_start, page")["rows"],
        json!([
            ["2024-01-01T00:00:00", "a", 1],
            ["2024-01-01T00:00:00", "b", 1],
            ["2024-01-01T00:00:10", "a", 1],
            ["2024-01-01T00:00:10", "b", 1]
        ])
    );
}
