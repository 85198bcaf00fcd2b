//! The HTTP API as a client sees it: ingest in every format, the error shape and status
//! codes, consumption, metrics, OpenAPI, and shutdown.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde_json::{Value, json};

use crate::server::Weir;

fn started() -> (tempfile::TempDir, Weir) {
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &["--body-limit", "100000"]);
    (dir, weir)
}

#[test]
fn ingest_every_format_and_read_back() {
    let (_dir, weir) = started();
    weir.sql_ok("CREATE STREAM t (id BIGINT NOT NULL, name TEXT, ts TIMESTAMP) WITH (partitions = 2, key = 'id')");

    let (status, body) = weir.ingest(
        "t",
        "application/x-ndjson",
        "{\"id\": 1, \"name\": \"a\", \"ts\": \"2024-01-01T00:00:00Z\"}\n{\"id\": 2, \"ts\": 1704067201000}\n",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    let offsets: u64 = body["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["last_offset"].as_u64().unwrap() - p["first_offset"].as_u64().unwrap() + 1)
        .sum();
    assert_eq!(offsets, 2);

    let (status, body) = weir.ingest(
        "t",
        "application/json",
        r#"[{"id": 3, "name": "c"}, {"id": 4, "name": "d", "ts": "2024-01-01 00:00:04"}]"#,
    );
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(2)),
        "{body}"
    );

    let (status, body) = weir.ingest(
        "t",
        "text/csv",
        "name,id,ts\ne,5,2024-01-01T00:00:05\n\"f, quoted\",6,\n",
    );
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(2)),
        "{body}"
    );

    let response = weir
        .client
        .post(format!("{}/v1/streams/t/records?header=false", weir.url))
        .header("content-type", "text/csv")
        .body("7,g,\n")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![8, 9])),
            Arc::new(StringArray::from(vec!["h", "i"])),
        ],
    )
    .unwrap();
    let mut ipc = Vec::new();
    {
        let mut writer =
            datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut ipc, &schema).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
    }
    let (status, body) = weir.ingest("t", "application/vnd.apache.arrow.stream", ipc);
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(2)),
        "{body}"
    );

    let body = weir.sql_ok("SELECT id, name, ts FROM t ORDER BY id");
    assert_eq!(body["row_count"], 9);
    assert_eq!(
        body["columns"][2],
        json!({"name": "ts", "type": "TIMESTAMP"})
    );
    assert_eq!(body["rows"][0], json!([1, "a", "2024-01-01T00:00:00"]));
    assert_eq!(body["rows"][1], json!([2, null, "2024-01-01T00:00:01"]));
    assert_eq!(body["rows"][5], json!([6, "f, quoted", null]));

    // Rows come back as Arrow IPC and CSV too.
    let response = weir
        .client
        .post(format!("{}/v1/sql", weir.url))
        .header("accept", "text/csv")
        .json(&json!({"sql": "SELECT id, name FROM t WHERE id <= 2 ORDER BY id"}))
        .send()
        .unwrap();
    assert_eq!(response.text().unwrap(), "id,name\n1,a\n2,\n");
}

#[test]
fn bad_input_gets_precise_errors_and_nothing_is_lost() {
    let (_dir, weir) = started();
    weir.sql_ok("CREATE STREAM t (id BIGINT, name TEXT)");
    let (status, _) = weir.ingest(
        "t",
        "application/x-ndjson",
        "{\"id\": 1, \"name\": \"ok\"}\n",
    );
    assert_eq!(status, 200);

    // One bad row refuses the whole batch, naming line, column and what was expected.
    let (status, body) = weir.ingest(
        "t",
        "application/x-ndjson",
        "{\"id\": 2, \"name\": \"x\"}\n{\"id\": \"abc\", \"name\": \"y\"}\n",
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "line 2, column \"id\": expected BIGINT, got \"abc\""
    );
    assert_eq!(body["error"]["row"], 2);
    assert_eq!(body["error"]["column_name"], "id");
    let (status, body) = weir.ingest("t", "text/csv", "id,name\n3,ok\nfour,bad\n");
    assert_eq!(status, 400);
    assert_eq!(body["error"]["row"], 3, "{body}");
    let (status, body) = weir.ingest(
        "t",
        "application/x-ndjson",
        "{\"id\": 5, \"nme\": \"typo\"}\n",
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown column \"nme\""),
        "{body}"
    );
    assert_eq!(weir.scalar("SELECT count(*) FROM t"), 1);

    // Unknown stream: 404. Duplicate CREATE: 409. Unsupported body: 415. Too large: 413.
    let (status, body) = weir.ingest("nope", "application/x-ndjson", "{}\n");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(weir.get("/v1/streams/nope").0, 404);
    assert_eq!(weir.sql("SELECT * FROM nope").0, 404);
    let (status, body) = weir.sql("CREATE STREAM t (id BIGINT)");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_exists");
    assert_eq!(weir.ingest("t", "application/xml", "<x/>").0, 415);
    let big = "{\"id\": 1, \"name\": \"0123456789012345678901234567890123456789\"}\n".repeat(3000);
    let (status, body) = weir.ingest("t", "application/x-ndjson", big);
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 100000 bytes")
    );

    // Bad SQL: 400 with the position; in a multi-statement request, which statement.
    let (status, body) = weir.sql("SELECT 1;\nSELEC 2");
    assert_eq!(status, 400);
    assert_eq!(body["error"]["position"], json!({"line": 2, "column": 1}));
    let (status, body) = weir.sql("SELECT 1; SELECT * FROM t;\n  SELECT nosuchcolumn FROM t");
    assert_eq!(status, 400);
    assert_eq!(body["error"]["statement"], 3);
    // What the statements before it gave comes along.
    let completed = body["error"]["completed"]
        .as_array()
        .expect("completed results");
    assert_eq!(completed.len(), 2, "{body}");
    assert_eq!(completed[0]["rows"], json!([[1]]));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("statement 3 (line 2):"),
        "{body}"
    );
    let (status, body) = weir
        .client
        .post(format!("{}/v1/sql", weir.url))
        .body("not json")
        .send()
        .map(|r| (r.status().as_u16(), r.text().unwrap()))
        .unwrap();
    assert_eq!(status, 400, "{body}");

    // The server kept serving, and everything accepted is there.
    assert_eq!(weir.get("/healthz").0, 200);
    assert_eq!(weir.scalar("SELECT count(*) FROM t"), 1);
}

#[test]
fn multi_statement_results_and_stream_details() {
    let (_dir, weir) = started();
    let body = weir.sql_ok(
        "CREATE STREAM s (k TEXT, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND) WITH (partitions = 3, key = 'k');
         INSERT INTO s VALUES ('a', 1, '2024-01-01 00:00:00'), ('b', 2, '2024-01-01 00:00:01');
         SELECT count(*) AS n FROM s",
    );
    assert_eq!(body["kind"], "multi");
    assert_eq!(body["results"][0]["kind"], "ok");
    assert_eq!(body["results"][1]["rows_affected"], 2);
    assert_eq!(body["results"][2]["rows"], json!([[2]]));

    let stream = weir.get_json("/v1/streams/s");
    assert_eq!(stream["name"], "s");
    assert_eq!(
        stream["columns"][1],
        json!({"name": "v", "type": "BIGINT", "nullable": true})
    );
    assert_eq!(stream["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(stream["watermark"]["delay_ms"], 2000);
    let committed: u64 = stream["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed_offset"].as_u64().unwrap())
        .sum();
    assert_eq!(committed, 2);
    let list = weir.get_json("/v1/streams");
    assert_eq!(list["streams"][0]["name"], "s");

    // Consume one partition from an offset.
    let p = stream["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["committed_offset"] != 0)
        .unwrap();
    let records = weir.get_json(&format!(
        "/v1/streams/s/records?partition={p}&offset=0&limit=10"
    ));
    let first = &records["records"][0];
    assert_eq!(first["offset"], 0);
    assert!(first["value"]["k"].is_string());
    assert!(first["ingest_time"].as_str().unwrap().starts_with("20"));
    assert_eq!(weir.get("/v1/streams/s/records?partition=9").0, 400);
    // By ingest time: everything was ingested after 2020, nothing after 2100.
    let since = weir.get_json(&format!(
        "/v1/streams/s/records?partition={p}&timestamp=2020-01-01T00:00:00Z"
    ));
    assert_eq!(since["records"][0]["offset"], 0);
    let future = weir.get_json(&format!(
        "/v1/streams/s/records?partition={p}&timestamp=4102444800000"
    ));
    assert_eq!(future["records"], json!([]));
    assert_eq!(
        weir.get(&format!(
            "/v1/streams/s/records?partition={p}&timestamp=soon"
        ))
        .0,
        400
    );
}

#[test]
fn metrics_openapi_health_and_clean_shutdown() {
    let (_dir, weir) = started();
    weir.sql_ok("CREATE STREAM m (v BIGINT)");
    weir.ingest("m", "application/x-ndjson", "{\"v\": 1}\n{\"v\": 2}\n");
    assert_eq!(weir.get("/readyz").0, 200);
    let (_, metrics) = weir.get("/metrics");
    assert!(
        metrics.contains("weir_stream_ingested_rows_total{stream=\"m\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("weir_http_requests_total{method=\"POST\",route=\"/v1/streams/{name}/records\",status=\"200\"} 1"), "{metrics}");
    assert!(
        metrics.contains("weir_http_request_duration_seconds_bucket{route=\"/v1/sql\""),
        "{metrics}"
    );

    // The OpenAPI document describes every route the server has.
    let openapi = weir.get_json("/v1/openapi.json");
    for path in [
        "/v1/sql",
        "/v1/streams",
        "/v1/streams/{name}",
        "/v1/streams/{name}/records",
        "/v1/queries",
        "/v1/queries/{id}",
        "/v1/views",
        "/v1/views/{name}",
        "/v1/dashboards",
        "/v1/dashboards/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(openapi["paths"][path].is_object(), "OpenAPI lacks {path}");
    }
    let (status, body) = weir.get("/v1/nothing");
    assert_eq!(status, 404);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]["message"].is_string());

    assert!(
        weir.terminate(Duration::from_secs(10)),
        "SIGTERM must stop weir cleanly"
    );
}

/// The continuous-SQL "done when", as a user over HTTP: a stream with a watermark, a
/// tumbling view and a derived stream, out-of-order events, FLUSH, a late event counted
/// and absent, the queries and views routes, EXPLAIN, and a restart of the real binary.
#[test]
fn windows_over_http_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &[]);
    weir.sql_ok(
        "CREATE STREAM clicks (page TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND);
         CREATE MATERIALIZED VIEW views AS SELECT window_start, window_end, page, count(*) AS n
           FROM TUMBLE(clicks, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end, page;
         CREATE STREAM per_window AS SELECT window_start, window_end, count(*) AS n
           FROM TUMBLE(clicks, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
    );
    let send = |weir: &Weir, body: &str| {
        let (status, ack) = weir.ingest("clicks", "application/x-ndjson", body.to_string());
        assert_eq!(status, 200, "{ack}");
    };
    send(
        &weir,
        "{\"page\": \"/a\", \"ts\": \"2024-01-01T00:00:05Z\"}\n{\"page\": \"/b\", \"ts\": \"2024-01-01T00:00:01Z\"}\n",
    );
    send(
        &weir,
        "{\"page\": \"/a\", \"ts\": \"2024-01-01T00:00:13Z\"}\n",
    );
    send(
        &weir,
        "{\"page\": \"/late\", \"ts\": \"2024-01-01T00:00:02Z\"}\n",
    );
    weir.sql_ok("FLUSH");
    let expected_view = json!([
        ["2024-01-01T00:00:00", "2024-01-01T00:00:10", "/a", 1],
        ["2024-01-01T00:00:00", "2024-01-01T00:00:10", "/b", 1],
        ["2024-01-01T00:00:10", "2024-01-01T00:00:20", "/a", 1]
    ]);
    let expected_stream = json!([["2024-01-01T00:00:00", "2024-01-01T00:00:10", 2]]);
    assert_eq!(
        weir.sql_ok("SELECT * FROM views ORDER BY window_start, page")["rows"],
        expected_view
    );
    assert_eq!(
        weir.sql_ok("SELECT * FROM per_window")["rows"],
        expected_stream
    );

    let queries = weir.get_json("/v1/queries");
    assert_eq!(queries["queries"].as_array().unwrap().len(), 2);
    let query = weir.get_json("/v1/queries/per_window");
    assert_eq!(query["late_rows"], 1);
    assert_eq!(query["rows_in"], 4);
    assert_eq!(query["watermark"], "2024-01-01T00:00:11");
    assert_eq!(query["plan"]["nodes"][0]["kind"], "source");
    assert_eq!(query["plan"]["nodes"][0]["rows_out"], 4);
    assert!(query["rows_per_second"].as_f64().unwrap() > 0.0, "{query}");
    let aggregate = query["plan"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "aggregate")
        .expect("an aggregate node");
    assert_eq!(aggregate["state_rows"], 1, "one group open: [10 s, 20 s)");
    assert!(aggregate["state_bytes"].as_u64().unwrap() > 0);
    assert_eq!(aggregate["late_rows"], 1);
    // "Why no output yet?": the open window and what holds the watermark.
    assert_eq!(
        query["open_windows"],
        json!([{"window_end": "2024-01-01T00:00:20", "groups": 1}])
    );
    assert_eq!(query["progress"][0]["watermark"], "2024-01-01T00:00:11");
    assert_eq!(query["progress"][0]["idle"], false);
    assert_eq!(query["emit"], "final");
    assert!(
        query["last_checkpoint"]["epoch"].as_u64().unwrap() > 0,
        "{query}"
    );
    let clicks = weir.get_json("/v1/streams/clicks");
    assert_eq!(
        clicks["partitions"][0]["watermark"], "2024-01-01T00:00:11",
        "{clicks}"
    );
    let metrics = weir.get("/metrics").1;
    assert!(metrics.contains("weir_recovery_seconds "), "{metrics}");
    assert!(
        metrics.contains("weir_query_late_rows_total{query=\"per_window\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        query["plan"]["edges"].as_array().unwrap().len() + 1,
        query["plan"]["nodes"].as_array().unwrap().len()
    );
    let view = weir.get_json("/v1/views/views");
    assert_eq!(view["rows"], expected_view);
    assert_eq!(weir.get_json("/v1/views")["views"][0]["name"], "views");
    assert_eq!(weir.get("/v1/queries/nope").0, 404);
    let explain = weir.sql_ok(
        "EXPLAIN CREATE STREAM x AS SELECT window_end, count(*) AS n FROM TUMBLE(clicks, ts, INTERVAL '1' MINUTE) GROUP BY window_end",
    );
    let plan: Vec<String> = explain["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    assert!(plan.iter().any(|l| l.contains("emit: FINAL")), "{plan:?}");

    weir.kill9();
    let weir = Weir::start(dir.path(), &[]);
    weir.sql_ok("FLUSH");
    assert_eq!(
        weir.sql_ok("SELECT * FROM views ORDER BY window_start, page")["rows"],
        expected_view
    );
    assert_eq!(
        weir.sql_ok("SELECT * FROM per_window")["rows"],
        expected_stream,
        "nothing written twice"
    );
    send(
        &weir,
        "{\"page\": \"/b\", \"ts\": \"2024-01-01T00:00:25Z\"}\n",
    );
    weir.sql_ok("FLUSH");
    assert_eq!(
        weir.sql_ok("SELECT count(*) FROM per_window")["rows"],
        json!([[2]])
    );

    // Stopping a view's query drops the view; a derived stream keeps its rows.
    let (status, body) = weir
        .client
        .delete(format!("{}/v1/queries/per_window", weir.url))
        .send()
        .map(|r| (r.status().as_u16(), r.text().unwrap()))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        weir.sql_ok("SELECT count(*) FROM per_window")["rows"],
        json!([[2]])
    );
    assert_eq!(
        weir.get_json("/v1/queries")["queries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Reads SSE events (`event`, `data`) from a push-query response until `stop` says so.
fn read_events(
    reader: &mut impl std::io::BufRead,
    mut stop: impl FnMut(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    read_sse(reader, |e, _, d| stop(e, d))
        .into_iter()
        .map(|(event, _, data)| (event, data))
        .collect()
}

/// Reads SSE events (name, id, JSON data) until `stop` says so or the stream ends.
fn read_sse(
    reader: &mut impl std::io::BufRead,
    mut stop: impl FnMut(&str, &str, &Value) -> bool,
) -> Vec<(String, String, Value)> {
    let mut events = Vec::new();
    let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return events;
        }
        let text = line.trim_end();
        if let Some(v) = text.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = text.strip_prefix("id:") {
            id = v.trim().to_string();
        } else if let Some(v) = text.strip_prefix("data:") {
            data.push_str(v.trim());
        } else if text.is_empty() && !event.is_empty() {
            let value: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            let done = stop(&event, &id, &value);
            events.push((std::mem::take(&mut event), std::mem::take(&mut id), value));
            data.clear();
            if done {
                return events;
            }
        }
    }
}

#[test]
fn push_query_streams_rows_and_windows_as_they_close() {
    let (_dir, weir) = started();
    weir.sql_ok("CREATE STREAM clicks (page TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)");
    let (status, body) = weir.sql("SELECT page FROM clicks EMIT CHANGES");
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET /v1/sql/stream"),
        "{body}"
    );

    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let open = |sql: &str| {
        let response = client
            .get(format!("{}/v1/sql/stream", weir.url))
            .query(&[("sql", sql)])
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        std::io::BufReader::new(response)
    };
    let mut rows = open("SELECT page, ts FROM clicks WHERE page <> '/skip' EMIT CHANGES");
    let mut windows = open(
        "SELECT window_start, window_end, count(*) AS n FROM TUMBLE(clicks, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
    );
    // Grouped by one bound only: the other is known from the window's size.
    let mut by_start = open(
        "SELECT window_start, count(*) AS n FROM TUMBLE(clicks, ts, INTERVAL '10' SECOND) GROUP BY window_start",
    );
    let mut hop_by_end = open(
        "SELECT window_end, count(*) AS n FROM HOP(clicks, ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND) GROUP BY window_end",
    );
    let ready = read_events(&mut rows, |e, _| e == "ready");
    assert_eq!(ready[0].1["columns"][0]["name"], "page");
    read_events(&mut windows, |e, _| e == "ready");
    read_events(&mut by_start, |e, _| e == "ready");
    read_events(&mut hop_by_end, |e, _| e == "ready");

    weir.ingest("clicks", "application/x-ndjson", "{\"page\": \"/a\", \"ts\": \"2024-01-01T00:00:01Z\"}\n{\"page\": \"/skip\", \"ts\": \"2024-01-01T00:00:02Z\"}\n");
    let got = read_events(&mut rows, |e, _| e == "rows");
    assert_eq!(
        got.last().unwrap().1["rows"],
        json!([["/a", "2024-01-01T00:00:01"]])
    );

    weir.ingest(
        "clicks",
        "application/x-ndjson",
        "{\"page\": \"/b\", \"ts\": \"2024-01-01T00:00:12Z\"}\n",
    );
    let got = read_events(&mut windows, |e, _| e == "rows");
    assert_eq!(
        got.last().unwrap().1["rows"],
        json!([["2024-01-01T00:00:00", "2024-01-01T00:00:10", 2]])
    );
    let got = read_events(&mut windows, |e, _| e == "watermark");
    assert_eq!(got.last().unwrap().1["watermark"], "2024-01-01T00:00:11");
    let got = read_events(&mut by_start, |e, _| e == "rows");
    assert_eq!(
        got.last().unwrap().1["rows"],
        json!([["2024-01-01T00:00:00", 2]])
    );
    // [23:59:55, 00:00:05) and [00:00:00, 00:00:10) have closed at 00:00:11.
    let got = read_events(&mut hop_by_end, |e, d| {
        e == "rows"
            && d["rows"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r[0] == "2024-01-01T00:00:10")
    });
    let closed: Vec<Value> = got
        .iter()
        .filter(|(e, _)| e == "rows")
        .flat_map(|(_, d)| d["rows"].as_array().unwrap().clone())
        .collect();
    assert_eq!(
        closed,
        vec![
            json!(["2024-01-01T00:00:05", 2]),
            json!(["2024-01-01T00:00:10", 2])
        ]
    );

    // An unwindowed aggregate streams its changes: retract the old row, add the new.
    let mut counts = open("SELECT page, count(*) AS n FROM clicks GROUP BY page");
    read_events(&mut counts, |e, _| e == "ready");
    for _ in 0..2 {
        weir.ingest(
            "clicks",
            "application/x-ndjson",
            "{\"page\": \"/c\", \"ts\": \"2024-01-01T00:00:13Z\"}\n",
        );
        weir.sql_ok("FLUSH");
    }
    let got = read_events(&mut counts, |e, d| {
        e == "rows" && d["ops"] == json!(["-", "+"])
    });
    let changes: Vec<_> = got.iter().filter(|(e, _)| e == "rows").collect();
    assert_eq!(changes[0].1, json!({"rows": [["/c", 1]], "ops": ["+"]}));
    assert_eq!(
        changes[1].1,
        json!({"rows": [["/c", 1], ["/c", 2]], "ops": ["-", "+"]})
    );

    let (status, body) = weir
        .client
        .get(format!("{}/v1/sql/stream", weir.url))
        .query(&[(
            "sql",
            "SELECT page, count(*) FROM clicks GROUP BY page EMIT FINAL",
        )])
        .send()
        .map(|r| (r.status().as_u16(), r.text().unwrap()))
        .unwrap();
    assert_eq!(status, 400, "{body}");
}

#[test]
fn a_push_client_that_stops_reading_is_disconnected_and_the_server_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &[]);
    weir.sql_ok("CREATE STREAM big (id BIGINT, payload TEXT)");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/v1/sql/stream", weir.url))
        .query(&[("sql", "SELECT id, payload FROM big")])
        .send()
        .unwrap();
    let mut reader = std::io::BufReader::new(response);
    read_events(&mut reader, |e, _| e == "ready");
    // Never read again while far more results than the socket buffers and the server's
    // bounded queue can hold are produced.
    let payload = "x".repeat(200);
    let body: String = (0..2000)
        .map(|i| format!("{{\"id\": {i}, \"payload\": \"{payload}\"}}\n"))
        .collect();
    for _ in 0..120 {
        let (status, _) = weir.ingest("big", "application/x-ndjson", body.clone());
        assert_eq!(status, 200);
    }
    assert_eq!(weir.get("/healthz").0, 200);
    assert_eq!(weir.scalar("SELECT count(*) FROM big"), 240_000);
    // Reading again: after what was buffered, the server said why it hung up.
    let events = read_events(&mut reader, |e, _| e == "error");
    let (event, data) = events.last().expect("events");
    assert_eq!(event, "error", "the stream ended without an error event");
    assert!(
        data["message"]
            .as_str()
            .unwrap()
            .contains("fell more than 64 result batches behind"),
        "{data}"
    );
}

/// Dashboards are saved in the catalog: PUT creates then replaces, unknown fields are
/// kept, bad shapes are refused with the panel named, and they survive a restart.
#[test]
fn dashboards_are_kept_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &[]);
    let put = |weir: &Weir, id: &str, body: serde_json::Value| {
        let response = weir
            .client
            .put(format!("{}/v1/dashboards/{id}", weir.url))
            .json(&body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap())
    };
    let board = serde_json::json!({"title": "Ops", "layout": {"cols": 2},
        "panels": [{"title": "rate", "sql": "SELECT 1 AS x", "chart": "line", "options": {"y": "x"}}]});
    let (status, stored) = put(&weir, "ops", board.clone());
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["id"], "ops");
    assert_eq!(stored["layout"]["cols"], 2, "unknown fields are kept");
    let mut renamed = board.clone();
    renamed["title"] = "Operations".into();
    assert_eq!(put(&weir, "ops", renamed).0, 200);

    let (status, err) = put(
        &weir,
        "bad",
        serde_json::json!({"title": "x", "panels": [{"sql": "SELECT 1", "chart": "pie"}]}),
    );
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("panel 1"),
        "{err}"
    );
    let (status, _) = put(&weir, "no/slug", board.clone());
    assert!(status == 400 || status == 404, "{status}");

    drop(weir);
    let weir = Weir::start(dir.path(), &[]);
    let all = weir.get_json("/v1/dashboards");
    assert_eq!(all["dashboards"].as_array().unwrap().len(), 1, "{all}");
    let one = weir.get_json("/v1/dashboards/ops");
    assert_eq!(one["title"], "Operations");
    assert_eq!(one["panels"][0]["options"]["y"], "x");
    let deleted = weir
        .client
        .delete(format!("{}/v1/dashboards/ops", weir.url))
        .send()
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(weir.get("/v1/dashboards/ops").0, 404);
}

/// A push client that loses its connection resumes with Last-Event-ID: it gets the
/// events after the last one it saw, including rows that arrived while it was away.
#[test]
fn a_push_client_resumes_with_last_event_id() {
    let (_dir, weir) = started();
    weir.sql_ok("CREATE STREAM clicks (page TEXT, ts TIMESTAMP)");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/v1/sql/stream", weir.url);
    let response = client
        .get(&url)
        .query(&[("sql", "SELECT page FROM clicks")])
        .send()
        .unwrap();
    let mut reader = std::io::BufReader::new(response);
    let ready = read_event_ids(&mut reader, |e| e == "ready");
    let (id, _) = ready.last().unwrap().clone();
    assert!(id.ends_with(":0"), "{id}");
    weir.ingest("clicks", "application/x-ndjson", "{\"page\": \"/one\"}\n");
    let first = read_event_ids(&mut reader, |e| e == "rows");
    let (seen, data) = first.last().unwrap().clone();
    assert_eq!(data["rows"], json!([["/one"]]));
    drop(reader); // the connection is lost

    weir.ingest("clicks", "application/x-ndjson", "{\"page\": \"/two\"}\n");
    weir.ingest("clicks", "application/x-ndjson", "{\"page\": \"/three\"}\n");
    let response = client
        .get(&url)
        .header("Last-Event-ID", &seen)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut reader = std::io::BufReader::new(response);
    let mut pages = Vec::new();
    let resumed = read_event_ids(&mut reader, |e| {
        if e == "rows" {
            pages.push(());
        }
        pages.len() == 2
    });
    let rows: Vec<_> = resumed
        .iter()
        .filter(|(_, d)| d.get("rows").is_some())
        .map(|(_, d)| d["rows"].clone())
        .collect();
    assert_eq!(rows, vec![json!([["/two"]]), json!([["/three"]])]);
    let ids: Vec<u64> = resumed
        .iter()
        .map(|(i, _)| i.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let seen_n: u64 = seen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(ids.iter().all(|n| *n > seen_n), "{ids:?} after {seen_n}");

    let gone = client
        .get(&url)
        .header("Last-Event-ID", "999999:3")
        .send()
        .unwrap();
    assert_eq!(gone.status().as_u16(), 404);
}

/// Reads SSE events as (id, data) until `stop` says so (by event name).
fn read_event_ids(
    reader: &mut impl std::io::BufRead,
    mut stop: impl FnMut(&str) -> bool,
) -> Vec<(String, Value)> {
    read_sse(reader, |e, _, _| stop(e))
        .into_iter()
        .map(|(_, id, data)| (id, data))
        .collect()
}
