//! The connectors against the real systems: an Apache Kafka broker (`WEIR_TEST_KAFKA`,
//! `host:port`) and a PostgreSQL server (`WEIR_TEST_POSTGRES`, a URL), both started by
//! `.ci/run`. Without them the tests say SKIPPED, unless `WEIR_REQUIRE_CONNECTOR_TESTS=1`
//! (CI), where a missing one fails.

use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{Value, json};

use crate::server::Weir;

fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("WEIR_REQUIRE_CONNECTOR_TESTS").is_some() => {
            panic!("{var} is required (WEIR_REQUIRE_CONNECTOR_TESTS is set)")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set (.ci/run starts the server it names)");
            None
        }
    }
}

/// The test broker, if there is one.
pub fn kafka() -> Option<String> {
    required("WEIR_TEST_KAFKA")
}

/// A topic of its own for each test.
pub fn new_topic(bootstrap: &str, prefix: &str, partitions: i32) -> String {
    let name = format!("{prefix}_{:08x}", rand::rng().random::<u32>());
    let (admin, runtime) = admin(bootstrap);
    let results = runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap();
    for result in results {
        result.unwrap_or_else(|(topic, e)| panic!("create topic {topic}: {e}"));
    }
    name
}

/// Kafka's admin client for `bootstrap`, and a runtime to wait for its requests on.
fn admin(bootstrap: &str) -> (AdminClient<DefaultClientContext>, tokio::runtime::Runtime) {
    let client = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (client, runtime)
}

pub fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Sends `value` to `partition` of `topic`.
pub fn send(producer: &BaseProducer, topic: &str, partition: i32, value: &str) {
    loop {
        match producer.send(
            BaseRecord::<(), str>::to(topic)
                .partition(partition)
                .payload(value),
        ) {
            Ok(()) => return,
            Err((e, _))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("produce to {topic}: {e}"),
        }
    }
}

/// Polls `sql` (one value) until it equals `want`; panics after `timeout`.
pub fn wait_for(weir: &Weir, sql: &str, want: &Value, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = weir.scalar(sql);
        if &got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: got {got}, waited for {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn source_sql(stream: &str, bootstrap: &str, topic: &str, extra: &str) -> String {
    format!(
        "CREATE STREAM {stream} (id BIGINT, account TEXT, amount DOUBLE, ts TIMESTAMP, \
         WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH (connector = 'kafka', bootstrap_servers = '{bootstrap}', topic = '{topic}'{extra})"
    )
}

fn order(id: u64) -> String {
    json!({
        "id": id,
        "account": format!("acct{}", id % 7),
        "amount": (id % 100) as f64 / 4.0,
        "ts": format!("2024-01-01 00:{:02}:{:02}.{:03}", id / 60_000, (id / 1000) % 60, id % 1000),
    })
    .to_string()
}

/// Records flow into a topic of three partitions while Weir is killed with -9 five
/// times: the stream holds each record exactly once, the bad ones are in the dead-letter
/// stream, and a windowed view over the stream equals the bounded query.
#[test]
fn kafka_source_is_exactly_once_across_kill_9() {
    let Some(bootstrap) = kafka() else { return };
    let topic = new_topic(&bootstrap, "orders", 3);
    const RECORDS: u64 = 30_000;
    const BAD_EVERY: u64 = 997;
    let producer_topic = topic.clone();
    let producer_bootstrap = bootstrap.clone();
    let producing = std::thread::spawn(move || {
        let producer = producer(&producer_bootstrap);
        for id in 0..RECORDS {
            let value = if id % BAD_EVERY == 500 {
                format!("{{\"id\": {id}, \"amount\": \"lots\"}}")
            } else {
                order(id)
            };
            send(&producer, &producer_topic, (id % 3) as i32, &value);
            if id % 1000 == 999 {
                producer.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    });
    let bad = (0..RECORDS).filter(|id| id % BAD_EVERY == 500).count() as u64;

    let dir = tempfile::tempdir().unwrap();
    let args = ["--checkpoint-interval", "100ms", "--pg-listen", "off"];
    let mut weir = Weir::start(dir.path(), &args);
    weir.sql_ok(&source_sql(
        "orders",
        &bootstrap,
        &topic,
        ", errors = 'bad_orders'",
    ));
    weir.sql_ok(
        "CREATE MATERIALIZED VIEW per_second AS SELECT window_start, account, count(*) AS n, sum(amount) AS total \
         FROM TUMBLE(orders, ts, INTERVAL '1' SECOND) GROUP BY window_start, account",
    );
    let mut rng = rand::rng();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..700)));
        weir.kill9();
        weir = Weir::start(dir.path(), &args);
    }
    producing.join().unwrap();
    let good = RECORDS - bad;
    wait_for(
        &weir,
        "SELECT count(*) FROM orders",
        &json!(good),
        Duration::from_secs(60),
    );
    assert_eq!(
        weir.scalar("SELECT count(DISTINCT id) FROM orders"),
        json!(good)
    );
    // Dead letters are at least once across a crash; each bad record is there.
    wait_for(
        &weir,
        "SELECT count(DISTINCT kafka_offset * 10 + kafka_partition) FROM bad_orders",
        &json!(bad),
        Duration::from_secs(30),
    );
    let letter = weir.sql_ok("SELECT error, topic, source FROM bad_orders LIMIT 1");
    assert_eq!(
        letter["rows"][0],
        json!([
            "column \"amount\": expected DOUBLE, got \"lots\"",
            topic,
            "orders"
        ])
    );
    // Every Kafka partition to the stream's partition of the same number.
    let per_partition =
        weir.sql_ok("SELECT _partition, count(*) FROM orders GROUP BY 1 ORDER BY 1");
    assert_eq!(per_partition["rows"].as_array().unwrap().len(), 3);

    weir.sql_ok("FLUSH");
    let view = weir.sql_ok("SELECT * FROM per_second ORDER BY window_start, account");
    let bounded = weir.sql_ok(
        "SELECT window_start, account, count(*) AS n, sum(amount) AS total \
         FROM TUMBLE(orders, ts, INTERVAL '1' SECOND) GROUP BY window_start, account ORDER BY window_start, account",
    );
    assert_eq!(view["rows"], bounded["rows"]);

    // The source's status: every Kafka offset read, lag known.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = weir.get_json("/v1/streams/orders");
        assert_eq!(status["source"]["state"], "running", "{status}");
        let partitions = status["source"]["partitions"].as_array().unwrap();
        let next: i64 = partitions
            .iter()
            .map(|p| p["next_offset"].as_i64().unwrap())
            .sum();
        let lag: Option<i64> = partitions.iter().map(|p| p["lag"].as_i64()).sum();
        if next == RECORDS as i64 && lag == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = weir.get("/metrics").1;
    assert!(
        metrics.contains("weir_kafka_source_lag{stream=\"orders\""),
        "{metrics}"
    );
}

/// `errors = 'stop'` (the default): the source stops at a record that does not decode,
/// says which, and keeps what came before; clients cannot write a source stream; CREATE
/// names an unknown topic or an unreachable cluster.
#[test]
fn kafka_source_stops_at_a_bad_record_and_checks_at_create() {
    let Some(bootstrap) = kafka() else { return };
    let topic = new_topic(&bootstrap, "stops", 1);
    let producer = producer(&bootstrap);
    send(&producer, &topic, 0, &order(1));
    send(&producer, &topic, 0, "{\"id\": 2, \"ts\": \"yesterday\"}");
    send(&producer, &topic, 0, &order(3));
    producer.flush(Duration::from_secs(10)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &["--pg-listen", "off"]);
    weir.sql_ok(&source_sql("s", &bootstrap, &topic, ""));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = weir.get_json("/v1/streams/s");
        if status["source"]["state"] == "stopped" {
            break status;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let error = status["source"]["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "record at offset 1 of '{topic}' partition 0 does not decode: column \"ts\":"
        )),
        "{error}"
    );
    assert!(error.contains("errors = 'a_dead_letter_stream'"), "{error}");
    assert_eq!(weir.scalar("SELECT count(*) FROM s"), json!(1));

    let (code, body) = weir.sql("INSERT INTO s VALUES (9, 'a', 1.0, '2024-01-01 00:00:00')");
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is read from Kafka"),
        "{body}"
    );
    let (code, body) = weir.ingest("s", "application/x-ndjson", order(9));
    assert_eq!(code, 400, "{body}");

    let (code, body) = weir.sql(&source_sql("t", &bootstrap, "no_such_topic", ""));
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("topic 'no_such_topic' does not exist"),
        "{body}"
    );
    let (code, body) = weir.sql(&source_sql("t", "127.0.0.1:1", &topic, ""));
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot reach the Kafka cluster at 127.0.0.1:1"),
        "{body}"
    );
    let (code, body) = weir.sql(&source_sql("t", &bootstrap, &topic, ", topics = 'x'"));
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown option \"topics\""),
        "{body}"
    );
}

/// The test PostgreSQL server, if there is one.
fn postgres() -> Option<String> {
    required("WEIR_TEST_POSTGRES")
}

/// Runs `sql` with psql (the real client) and returns its unaligned output.
fn psql(url: &str, sql: &str) -> String {
    let output = std::process::Command::new("psql")
        .args([
            url,
            "-X",
            "-A",
            "-t",
            "-F",
            ",",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Polls `sql` with psql until it prints `want` (30 s at most).
fn wait_for_psql(url: &str, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = psql(url, sql);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}:\n{got}\nwanted:\n{want}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The rows of a Weir query as psql prints them (`a,b` lines).
fn as_psql_lines(rows: &Value) -> String {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.replace('T', " "),
                    // psql prints 10600, JSON 10600.0.
                    Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                        format!("{}", n.as_f64().unwrap() as i64)
                    }
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .map(|line| line + "\n")
        .collect()
}

/// A Kafka topic flows through Weir into PostgreSQL and back out to Kafka while Weir is
/// killed with -9: the table equals the view (upserts per checkpoint, with the epoch in
/// the same transaction), the stream sink's table holds each row once, and a
/// read_committed consumer of the Kafka sink's topic sees each row once.
#[test]
fn sinks_are_exactly_once_across_kill_9() {
    let (Some(bootstrap), Some(pg)) = (kafka(), postgres()) else {
        return;
    };
    let input = new_topic(&bootstrap, "payments", 2);
    let output = new_topic(&bootstrap, "big_payments", 2);
    let suffix = &input["payments_".len()..];
    let (view_table, stream_table) = (format!("per_account_{suffix}"), format!("big_{suffix}"));
    let changes_table = format!("counts_{suffix}");
    const RECORDS: u64 = 6_000;
    let producer_topic = input.clone();
    let producer_bootstrap = bootstrap.clone();
    let producing = std::thread::spawn(move || {
        let producer = producer(&producer_bootstrap);
        for id in 0..RECORDS {
            send(&producer, &producer_topic, (id % 2) as i32, &order(id));
            if id % 300 == 299 {
                producer.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    });

    let dir = tempfile::tempdir().unwrap();
    let args = ["--checkpoint-interval", "100ms", "--pg-listen", "off"];
    let mut weir = Weir::start(dir.path(), &args);
    weir.sql_ok(&source_sql("payments", &bootstrap, &input, ""));
    weir.sql_ok(
        "CREATE MATERIALIZED VIEW per_account AS SELECT account, count(*) AS n, sum(amount) AS total \
         FROM payments GROUP BY account",
    );
    weir.sql_ok("CREATE STREAM big AS SELECT id, account, amount FROM payments WHERE amount >= 20");
    weir.sql_ok(&format!(
        "CREATE SINK per_account_pg FROM per_account WITH (connector = 'postgres', url = '{pg}', \
         table = '{view_table}', primary_key = 'account')"
    ));
    weir.sql_ok(&format!(
        "CREATE SINK big_pg FROM big WITH (connector = 'postgres', url = '{pg}', table = '{stream_table}')"
    ));
    weir.sql_ok(
        "CREATE STREAM counts AS SELECT account, count(*) AS n FROM payments GROUP BY account EMIT CHANGES",
    );
    weir.sql_ok(&format!(
        "CREATE SINK counts_pg FROM counts WITH (connector = 'postgres', url = '{pg}', \
         table = '{changes_table}', primary_key = 'account')"
    ));
    weir.sql_ok(&format!(
        "CREATE SINK big_kafka FROM big WITH (connector = 'kafka', bootstrap_servers = '{bootstrap}', \
         topic = '{output}', key = 'account')"
    ));
    let mut rng = rand::rng();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..900)));
        weir.kill9();
        weir = Weir::start(dir.path(), &args);
    }
    producing.join().unwrap();
    wait_for(
        &weir,
        "SELECT count(*) FROM payments",
        &json!(RECORDS),
        Duration::from_secs(60),
    );
    weir.sql_ok("FLUSH");
    let big = weir.scalar("SELECT count(*) FROM big").as_u64().unwrap();
    assert!(big > 0);

    // The view's table: equal to the view once the sink caught up.
    let expected = as_psql_lines(
        &weir.sql_ok("SELECT account, n, total FROM per_account ORDER BY account")["rows"],
    );
    wait_for_psql(
        &pg,
        &format!("SELECT account, n, total FROM {view_table} ORDER BY account"),
        &expected,
    );
    // The EMIT CHANGES stream's table: its retractions applied, so it holds the counts.
    let expected = as_psql_lines(
        &weir.sql_ok("SELECT account, count(*) FROM payments GROUP BY account ORDER BY account")["rows"],
    );
    wait_for_psql(
        &pg,
        &format!("SELECT account, n FROM {changes_table} ORDER BY account"),
        &expected,
    );
    // The stream's table: each row once.
    wait_for_psql(
        &pg,
        &format!("SELECT count(*), count(DISTINCT id) FROM {stream_table}"),
        &format!("{big},{big}\n"),
    );
    let progress = psql(
        &pg,
        "SELECT split_part(sink, '-', 1) FROM weir_sink_progress \
         WHERE sink LIKE 'per_account_pg-%' OR sink LIKE 'big_pg-%' ORDER BY 1",
    );
    assert!(progress.starts_with("big_pg\n"), "{progress}");

    // The Kafka sink's topic, read committed: each row once.
    let ids = read_committed_ids(&bootstrap, &output, big as usize);
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (big as usize, big as usize));

    let sinks = weir.sql_ok("SHOW SINKS");
    assert_eq!(sinks["rows"].as_array().unwrap().len(), 4, "{sinks}");
    let listed = weir.get_json("/v1/sinks");
    let kafka_sink = listed["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "big_kafka")
        .unwrap()
        .clone();
    assert_eq!(kafka_sink["state"], "running", "{kafka_sink}");
    assert_eq!(kafka_sink["lag"], 0, "{kafka_sink}");
    assert_eq!(weir.get_json("/v1/sinks/big_pg")["connector"], "postgres");
    let (code, body) = weir.sql("DROP MATERIALIZED VIEW per_account");
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DROP SINK"),
        "{body}"
    );
    weir.sql_ok("DROP SINK per_account_pg");
    weir.sql_ok("DROP MATERIALIZED VIEW per_account");
}

/// Reads `topic` with isolation.level=read_committed until `want` messages came (and a
/// little longer, to see any beyond); returns the `id` of each.
fn read_committed_ids(bootstrap: &str, topic: &str, want: usize) -> Vec<i64> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("check-{topic}"))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since: Option<Instant> = None;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let value: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
                ids.push(value["id"].as_i64().unwrap());
                quiet_since = None;
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None if ids.len() >= want => {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
            None => {}
        }
    }
    ids
}

/// A broker of the test's own (`.ci/kafka-broker`), stopped when dropped.
struct OwnBroker {
    port: u16,
    dir: tempfile::TempDir,
    pid: Option<u32>,
}

impl OwnBroker {
    fn start() -> OwnBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut broker = OwnBroker {
            port,
            dir: tempfile::tempdir().unwrap(),
            pid: None,
        };
        broker.run();
        broker
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker (again) on its port and data dir.
    fn run(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/kafka-broker");
        let output = std::process::Command::new(script)
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .expect("run .ci/kafka-broker");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.pid = Some(
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .unwrap(),
        );
    }

    /// SIGTERM, and waits until the broker's process is gone.
    fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::path::Path::new(&format!("/proc/{pid}")).exists()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The broker goes away while the source runs and comes back: the source says it is
/// retrying, then resumes where it was, nothing lost or doubled; a partition added to
/// the topic is read too.
#[test]
fn kafka_source_resumes_after_the_broker_restarts_and_reads_new_partitions() {
    if kafka().is_none() {
        return;
    }
    let mut broker = OwnBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = new_topic(&bootstrap, "restarts", 1);
    let produce = |bootstrap: &str, partition: i32, ids: std::ops::Range<u64>| {
        let producer = producer(bootstrap);
        for id in ids {
            send(&producer, &topic, partition, &order(id));
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    };
    produce(&bootstrap, 0, 0..100);
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &["--pg-listen", "off"]);
    weir.sql_ok(&source_sql("s", &bootstrap, &topic, ""));
    wait_for(
        &weir,
        "SELECT count(*) FROM s",
        &json!(100),
        Duration::from_secs(30),
    );

    broker.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = weir.get_json("/v1/streams/s");
        if !status["source"]["error"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error shown while the broker is down: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        weir.scalar("SELECT count(*) FROM s"),
        json!(100),
        "the server keeps serving"
    );
    broker.run();
    produce(&bootstrap, 0, 100..200);
    wait_for(
        &weir,
        "SELECT count(*) FROM s",
        &json!(200),
        Duration::from_secs(60),
    );
    assert_eq!(weir.scalar("SELECT count(DISTINCT id) FROM s"), json!(200));

    // A second partition, found by the source's metadata check.
    let (admin, runtime) = admin(&bootstrap);
    runtime
        .block_on(admin.create_partitions(
            &[rdkafka::admin::NewPartitions::new(&topic, 2)],
            &AdminOptions::new(),
        ))
        .unwrap();
    produce(&bootstrap, 1, 200..250);
    wait_for(
        &weir,
        "SELECT count(*) FROM s",
        &json!(250),
        Duration::from_secs(60),
    );
    assert_eq!(weir.scalar("SELECT count(DISTINCT id) FROM s"), json!(250));
    let status = weir.get_json("/v1/streams/s");
    assert_eq!(
        status["source"]["partitions"].as_array().unwrap().len(),
        2,
        "{status}"
    );
}
