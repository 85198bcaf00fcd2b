//! Weir's Kafka listener with a real Kafka client: kcat (librdkafka, Debian's `kcat`).
//! Without it the tests say SKIPPED, unless `WEIR_REQUIRE_KAFKA_TESTS=1` (CI), where a
//! missing client fails.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::server::Weir;

fn has_kcat() -> bool {
    if Command::new("kcat").arg("-V").output().is_ok() {
        return true;
    }
    if std::env::var_os("WEIR_REQUIRE_KAFKA_TESTS").is_some() {
        panic!("kcat is required (WEIR_REQUIRE_KAFKA_TESTS is set)");
    }
    eprintln!("SKIPPED: kcat is not installed");
    false
}

/// Runs kcat against `port` with `args`, feeding `input`; (success, stdout, stderr).
pub(crate) fn kcat(port: u16, args: &[&str], input: &str) -> (bool, String, String) {
    let mut command = Command::new("kcat");
    // cargo points LD_LIBRARY_PATH at the librdkafka Weir builds; kcat keeps its own.
    command
        .env_remove("LD_LIBRARY_PATH")
        .arg("-b")
        .arg(format!("127.0.0.1:{port}"))
        .args(args);
    crate::server::run(command, input)
}

#[test]
fn kcat_produces_to_and_consumes_from_a_stream() {
    if !has_kcat() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &["--kafka-listen", "127.0.0.1:0"]);
    let port = weir
        .kafka_port
        .expect("the Kafka listener's port in the log");
    weir.sql_ok(
        "CREATE STREAM clicks (user_id BIGINT, page TEXT, ts TIMESTAMP) WITH (partitions = 2)",
    );

    // Metadata: the stream is a topic with its partitions, led by the one broker.
    let (ok, out, err) = kcat(port, &["-L", "-t", "clicks"], "");
    assert!(ok, "{err}");
    assert!(out.contains("topic \"clicks\" with 2 partitions"), "{out}");
    assert!(
        out.contains(&format!("broker 0 at 127.0.0.1:{port}")),
        "{out}"
    );

    // Produce to partition 1 (acks=all): ordinary rows, where the producer put them.
    let (ok, _, err) = kcat(
        port,
        &["-P", "-t", "clicks", "-p", "1"],
        "{\"user_id\": 1, \"page\": \"/home\", \"ts\": \"2024-01-01T00:00:01Z\"}\n\
         {\"user_id\": 2, \"page\": \"/cart\", \"ts\": \"2024-01-01T00:00:02Z\"}\n",
    );
    assert!(ok, "{err}");
    let rows =
        weir.sql_ok("SELECT user_id, page, _partition, _offset FROM clicks ORDER BY user_id");
    assert_eq!(
        rows["rows"],
        serde_json::json!([[1, "/home", 1, 0], [2, "/cart", 1, 1]])
    );

    // Compressed batches, in each codec Kafka clients use.
    for (i, codec) in ["gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let (ok, _, err) = kcat(
            port,
            &["-P", "-t", "clicks", "-p", "0", "-z", codec],
            &format!("{{\"user_id\": {}, \"page\": \"/{codec}\"}}\n", 10 + i),
        );
        assert!(ok, "{codec}: {err}");
    }
    assert_eq!(
        weir.sql_ok("SELECT page FROM clicks WHERE _partition = 0 ORDER BY _offset")["rows"],
        serde_json::json!([["/gzip"], ["/snappy"], ["/lz4"], ["/zstd"]])
    );
    weir.sql_ok("DROP STREAM clicks; CREATE STREAM clicks (user_id BIGINT, page TEXT, ts TIMESTAMP) WITH (partitions = 2)");
    let (ok, _, err) = kcat(
        port,
        &["-P", "-t", "clicks", "-p", "1"],
        "{\"user_id\": 1, \"page\": \"/home\", \"ts\": \"2024-01-01T00:00:01Z\"}\n\
         {\"user_id\": 2, \"page\": \"/cart\", \"ts\": \"2024-01-01T00:00:02Z\"}\n",
    );
    assert!(ok, "{err}");

    // A record that is not a row of the stream is refused, and nothing of its batch is
    // appended.
    let (_, _, err) = kcat(
        port,
        &["-P", "-t", "clicks", "-p", "0"],
        "{\"user_id\": \"x\", \"page\": \"/bad\"}\n",
    );
    assert!(err.contains("failed to validate record"), "{err}");
    assert_eq!(weir.scalar("SELECT count(*) FROM clicks"), 2);

    // Rows ingested over HTTP are fetched too, as JSON objects, offsets and all.
    weir.sql_ok("INSERT INTO clicks VALUES (3, '/pay', '2024-01-01 00:00:03')");
    let (ok, out, err) = kcat(
        port,
        &[
            "-C",
            "-t",
            "clicks",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%p %o %s\\n",
        ],
        "",
    );
    assert!(ok, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines.contains(&"1 0 {\"user_id\":1,\"page\":\"/home\",\"ts\":\"2024-01-01T00:00:01\"}"),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.contains("\"user_id\":3")), "{out}");

    // Offsets by time (kcat -o s@MS): the first row appended at or after it; a time
    // after every row gives the end.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (ok, out, err) = kcat(
        port,
        &[
            "-C", "-t", "clicks", "-p", "1", "-o", "s@0", "-e", "-f", "%o\\n",
        ],
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["0", "1"], "{out}");
    let (ok, out, err) = kcat(
        port,
        &[
            "-C",
            "-t",
            "clicks",
            "-p",
            "1",
            "-o",
            &format!("s@{}", now_ms + 60_000),
            "-e",
            "-f",
            "%o\\n",
        ],
        "",
    );
    assert!(ok, "{err}");
    assert!(out.trim().is_empty(), "{out}");

    // A topic that is no stream: the client's delivery fails (Metadata says it is
    // unknown; Weir does not create topics).
    let (_, _, err) = kcat(
        port,
        &[
            "-P",
            "-t",
            "nope",
            "-p",
            "0",
            "-X",
            "message.timeout.ms=2000",
        ],
        "{}\n",
    );
    assert!(err.contains("Delivery failed"), "{err}");
    assert_eq!(weir.scalar("SELECT count(*) FROM clicks"), 3);
}

#[test]
fn a_taken_kafka_port_is_an_error_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--pg-listen",
            "off",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(["--kafka-listen", &at])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--kafka-listen"), "{stderr}");
}

/// Offsets of the rows a group consumer printed (`%o` per line), in order.
fn consumed(out: &str) -> Vec<u64> {
    out.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn a_consumer_group_resumes_from_its_committed_offsets_across_restarts() {
    if !has_kcat() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &["--kafka-listen", "127.0.0.1:0"]);
    let port = weir.kafka_port.expect("the Kafka listener's port");
    weir.sql_ok("CREATE STREAM events (n BIGINT); INSERT INTO events VALUES (1), (2), (3)");
    let group = |port: u16, args: &[&str]| {
        let mut all = vec!["-G", "readers", "-e", "-f", "%o\\n"];
        all.extend_from_slice(args);
        all.push("events");
        let (ok, out, err) = kcat(port, &all, "");
        assert!(ok, "{err}");
        assert!(err.contains("Group readers rebalanced"), "{err}");
        consumed(&out)
    };
    // Joined, assigned the partition, read it all, committed on leaving.
    assert_eq!(group(port, &["-o", "beginning"]), [0, 1, 2]);
    weir.sql_ok("INSERT INTO events VALUES (4), (5)");
    assert_eq!(group(port, &[]), [3, 4]);
    // The committed offsets survive a restart of Weir.
    weir.terminate(std::time::Duration::from_secs(10));
    let weir = Weir::start(dir.path(), &["--kafka-listen", "127.0.0.1:0"]);
    let port = weir.kafka_port.expect("the Kafka listener's port");
    weir.sql_ok("INSERT INTO events VALUES (6)");
    assert_eq!(group(port, &[]), [5]);
}

/// Two members of one group share a stream's partitions: the second's join rebalances
/// the group, and each ends up with one partition.
#[test]
fn two_group_members_split_the_partitions() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    if !has_kcat() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &["--kafka-listen", "127.0.0.1:0"]);
    let port = weir.kafka_port.expect("the Kafka listener's port");
    weir.sql_ok("CREATE STREAM clicks (n BIGINT) WITH (partitions = 2)");
    // A member: kcat in group mode until killed; its assignment lines, as they come.
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    let member = |id: usize| {
        let mut child = Command::new("kcat")
            .env_remove("LD_LIBRARY_PATH")
            .args(["-b", &format!("127.0.0.1:{port}"), "-G", "split", "clicks"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kcat");
        let stderr = child.stderr.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("assigned:") {
                    let _ = tx.send((id, line));
                }
            }
        });
        child
    };
    // The latest assignment of each member, until `done` holds or 30 s pass.
    let mut latest: [String; 2] = Default::default();
    let wait = |latest: &mut [String; 2], done: &dyn Fn(&[String; 2]) -> bool| {
        let end = Instant::now() + Duration::from_secs(30);
        while !done(latest) {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((id, line)) => latest[id] = line,
                Err(_) => panic!("no such assignment in 30 s: {latest:?}"),
            }
        }
    };
    let mut a = member(0);
    wait(&mut latest, &|l| l[0].contains("clicks [0], clicks [1]"));
    let mut b = member(1);
    let one = |l: &String| l.contains("clicks [0]") != l.contains("clicks [1]");
    wait(&mut latest, &|l| one(&l[0]) && one(&l[1]) && l[0] != l[1]);
    let _ = (a.kill(), a.wait());
    let _ = (b.kill(), b.wait());
}

/// Apache Kafka's own Java client (kafka-clients 4.1.1, through kafka-console-producer
/// and kafka-console-consumer, unmodified): its producer is idempotent by default
/// (InitProducerId, sequence numbers), its consumer joins a group; the jars are those
/// `.ci/kafka-broker` fetches.
#[test]
fn the_java_client_produces_idempotently_and_consumes() {
    let libs = std::path::PathBuf::from(std::env::var("HOME").unwrap())
        .join(".cache/weir-kafka/4.1.1/libs");
    if !libs.join("kafka-clients-4.1.1.jar").exists() {
        if std::env::var_os("WEIR_REQUIRE_CONNECTOR_TESTS").is_some() {
            panic!(
                "Apache Kafka's jars are missing from {} (.ci/kafka-broker fetches them)",
                libs.display()
            );
        }
        eprintln!("SKIPPED: Apache Kafka's jars are not in {}", libs.display());
        return;
    }
    let classpath = format!("{}/*", libs.display());
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(
        dir.path(),
        &["--kafka-listen", "127.0.0.1:0", "--pg-listen", "off"],
    );
    let bootstrap = format!("127.0.0.1:{}", weir.kafka_port.unwrap());
    weir.sql_ok("CREATE STREAM orders (id BIGINT, item TEXT) WITH (partitions = 2)");

    let mut producer = Command::new("java")
        .args([
            "-Xmx256m",
            "-cp",
            &classpath,
            "org.apache.kafka.tools.ConsoleProducer",
        ])
        .args(["--bootstrap-server", &bootstrap, "--topic", "orders"])
        .args([
            "--producer-property",
            "enable.idempotence=true",
            "--producer-property",
            "acks=all",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Java console producer");
    producer
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\": 1, \"item\": \"tea\"}\n{\"id\": 2, \"item\": \"cake\"}\n{\"id\": 3, \"item\": \"jam\"}\n")
        .unwrap();
    let produced = producer.wait_with_output().unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    assert_eq!(
        weir.sql_ok("SELECT id, item FROM orders ORDER BY id")["rows"],
        serde_json::json!([[1, "tea"], [2, "cake"], [3, "jam"]])
    );

    let consumed = Command::new("java")
        .args([
            "-Xmx256m",
            "-cp",
            &classpath,
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
        ])
        .args([
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "orders",
            "--from-beginning",
        ])
        .args([
            "--group",
            "java-readers",
            "--max-messages",
            "3",
            "--timeout-ms",
            "30000",
        ])
        .output()
        .expect("run the Java console consumer");
    let out = String::from_utf8_lossy(&consumed.stdout);
    assert!(
        consumed.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            r#"{"id":1,"item":"tea"}"#,
            r#"{"id":2,"item":"cake"}"#,
            r#"{"id":3,"item":"jam"}"#
        ]
    );
}
