//! The Postgres wire protocol with real clients: psql (Debian's postgresql-client) and
//! psycopg 3 (PyPI). Without them the tests say SKIPPED, unless
//! `WEIR_REQUIRE_PG_TESTS=1` (CI), where a missing client fails.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::Weir;

fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var_os("WEIR_REQUIRE_PG_TESTS").is_some() {
        panic!("{what} is required (WEIR_REQUIRE_PG_TESTS is set)");
    }
    eprintln!("SKIPPED: {what} is not installed");
    false
}

fn has_psql() -> bool {
    Command::new("psql").arg("--version").output().is_ok()
}

fn started() -> (tempfile::TempDir, Weir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(dir.path(), &["--pg-listen", "127.0.0.1:0"]);
    let port = weir
        .pg_port
        .expect("the Postgres listener's port in the log");
    (dir, weir, port)
}

/// psql's arguments for Weir's listener on `port` (no ~/.psqlrc).
fn psql_connection(port: u16) -> Vec<String> {
    [
        "-X",
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-d",
        "weir",
    ]
    .map(String::from)
    .to_vec()
}

/// Runs a psql script (stdin); returns (success, stdout, stderr).
fn psql(port: u16, script: &str) -> (bool, String, String) {
    let mut child = Command::new("psql")
        .args(psql_connection(port))
        .args(["-U", "tester"])
        .args(["-v", "VERBOSITY=verbose", "-P", "pager=off"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn psql_runs_weirs_statements_catalog_and_errors() {
    if !require("psql", has_psql()) {
        return;
    }
    let (_dir, _weir, port) = started();
    let (_, out, err) = psql(
        port,
        "CREATE STREAM clicks (page TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (partitions = 2, key = 'page');
INSERT INTO clicks VALUES ('/a', '2024-01-01 00:00:01'), ('/b', '2024-01-01 00:00:03'), ('/a', '2024-01-01 00:00:12');
CREATE MATERIALIZED VIEW per_window AS SELECT window_start, count(*) AS n FROM TUMBLE(clicks, ts, INTERVAL '10' SECOND) GROUP BY window_start;
FLUSH;
SELECT * FROM per_window ORDER BY window_start;
BEGIN;
SET application_name = 'weir-test';
SHOW application_name;
SHOW server_version;
COMMIT;
SELECT count(*) AS c, sum(CASE WHEN page = '/a' THEN 1 ELSE 0 END) AS a FROM clicks; SELECT 'two' AS second;
CREATE STREAM pg_events (v BIGINT);
INSERT INTO pg_events VALUES (41);
SELECT v + 1 AS answer FROM pg_events;
\\d
\\d clicks
SELECT * FROM nope;
SELECT page FROM clicks WHERE;
",
    );
    for expected in [
        "CREATE STREAM",
        "INSERT 0 3",
        "CREATE MATERIALIZED VIEW",
        "FLUSH",
        " 2024-01-01 00:00:00 | 2",
        " 2024-01-01 00:00:10 | 1",
        "weir-test",
        "16.6",
        " 3 | 2",
        "two",
        // A stream whose name starts like a catalog table's is still a stream.
        " 42",
        // \d lists streams and views as tables, \d clicks their columns.
        "clicks",
        "per_window",
        "page",
        "timestamp",
    ] {
        assert!(
            out.contains(expected),
            "psql output lacks {expected:?}:\n{out}\n{err}"
        );
    }
    // Errors carry their SQLSTATE and the message Weir gives over HTTP.
    assert!(
        err.contains("ERROR:  42P01: unknown stream \"nope\""),
        "{err}"
    );
    assert!(err.contains("ERROR:  42601"), "{err}");
    // A parse error points at its token: psql underlines it.
    assert!(
        err.contains("LINE 1: SELECT page FROM clicks WHERE"),
        "{err}"
    );
}

#[test]
fn psql_copy_streams_a_push_query_until_cancelled() {
    if !require("psql", has_psql()) {
        return;
    }
    let (_dir, weir, port) = started();
    weir.sql_ok("CREATE STREAM taps (usr TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts)");
    // psql buffers what it writes to a pipe: stdbuf makes it write each row at once.
    let mut child = Command::new("stdbuf")
        .args(["-o0", "psql"])
        .args(psql_connection(port))
        .args([
            "-c",
            "COPY (SELECT usr, count(*) AS n FROM taps GROUP BY usr EMIT CHANGES) TO STDOUT",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The push query starts at the end of its input: send rows until they show up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while lines.len() < 3 && Instant::now() < deadline {
        weir.ingest(
            "taps",
            "application/x-ndjson",
            "{\"usr\": \"ann\", \"ts\": \"2024-01-01T00:00:01Z\"}\n",
        );
        weir.sql_ok("FLUSH");
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            lines.push(line);
        }
    }
    assert!(lines.len() >= 3, "rows streamed so far: {lines:?}");
    // Changes with their _op: the first count, then a retraction and the new count.
    assert_eq!(lines[0], "ann\t1\t+", "{lines:?}");
    assert_eq!(lines[1], "ann\t1\t-", "{lines:?}");
    assert_eq!(lines[2], "ann\t2\t+", "{lines:?}");
    // Ctrl-C: psql sends a cancel request; the query stops and psql says why.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    // The server keeps serving.
    let (ok, out, err) = psql(port, "SELECT count(*) AS taps FROM taps;\n");
    assert!(ok && out.contains("taps"), "{out}\n{err}");
}

const PSYCOPG_SCRIPT: &str = r#"
import sys, datetime, decimal
import psycopg
from psycopg import errors

port = int(sys.argv[1])
conn = psycopg.connect(host="127.0.0.1", port=port, dbname="weir", user="app", autocommit=True)
cur = conn.cursor()
cur.execute("CREATE STREAM kinds (i INT, b BIGINT, f DOUBLE, d DECIMAL(10, 2), t TEXT, ok BOOLEAN, raw BYTEA, day DATE, ts TIMESTAMP)")
row = (7, 2**40, 1.5, decimal.Decimal("12.34"), "héllo", True, b"\x00\x01", datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4, 5))
cur.execute("INSERT INTO kinds VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
cur.execute("INSERT INTO kinds VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", (None,) * 9)
assert cur.rowcount == 1, cur.rowcount
for binary in (False, True):
    c = conn.cursor(binary=binary)
    c.execute("SELECT i, b, f, d, t, ok, raw, day, ts FROM kinds WHERE i = %s", (7,))
    got = c.fetchone()
    assert got == row, (binary, got)
    c.execute("SELECT * FROM kinds WHERE i IS NULL")
    assert c.fetchone() == (None,) * 9
    c.execute("SELECT count(*) FROM kinds WHERE t = %s AND b > %s", ("héllo", 5))
    assert c.fetchone()[0] == 1
# A prepared statement run many times, and a large result fetched in pieces.
for n in range(3):
    cur.execute("SELECT %s::BIGINT + 1", (n,), prepare=True)
    assert cur.fetchone()[0] == n + 1
cur.execute("SELECT value FROM generate_series(1, 20000) AS t(value)")
total = 0
while True:
    rows = cur.fetchmany(5000)
    if not rows:
        break
    total += len(rows)
assert total == 20000, total
# SQLSTATEs map to psycopg's error classes.
for sql, cls in [("SELECT * FROM nope", errors.UndefinedTable), ("SELEC 1", errors.SyntaxError),
                 ("CREATE STREAM kinds (a INT)", errors.DuplicateTable)]:
    try:
        cur.execute(sql)
    except cls as e:
        print("error", type(e).__name__, e.sqlstate)
    else:
        raise AssertionError(sql)
cur.execute("SHOW STREAMS")
print("streams", [r[0] for r in cur.fetchall()])

# The same queries over HTTP and over Postgres give the same rows and types.
import json, urllib.request
def over_http(sql):
    request = urllib.request.Request(sys.argv[2] + "/v1/sql", data=json.dumps({"sql": sql}).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))
def as_json(v):
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    return v
PG_TYPE = {"INT": "int4", "BIGINT": "int8", "DOUBLE": "float8", "DECIMAL": "numeric", "TEXT": "text",
           "BOOLEAN": "bool", "DATE": "date", "TIMESTAMP": "timestamp"}
for sql in ["SELECT i, b, f, d, t, ok, day, ts FROM kinds ORDER BY i NULLS LAST",
            # The shape Grafana writes for a time series.
            "SELECT date_bin(INTERVAL '1 hour', ts) AS time, count(*) AS n, sum(f) AS total FROM kinds "
            "WHERE ts BETWEEN '2024-01-01T00:00:00Z' AND '2024-01-03T00:00:00Z' GROUP BY 1 ORDER BY 1",
            "SELECT _partition, _offset, t FROM kinds ORDER BY _offset"]:
    http = over_http(sql)
    cur.execute(sql)
    rows = [[as_json(v) for v in row] for row in cur.fetchall()]
    assert rows == http["rows"], (sql, rows, http["rows"])
    pg_types = [psycopg.adapters.types.get(d.type_code).name for d in cur.description]
    http_types = [PG_TYPE[c["type"].split("(")[0]] for c in http["columns"]]
    assert pg_types == http_types, (sql, pg_types, http_types)
print("same over HTTP")
print("ok")
"#;

#[test]
fn psycopg_extended_protocol_with_parameters_of_every_type() {
    let has_psycopg = Command::new("python3")
        .args(["-c", "import psycopg"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !require("psycopg (pip install 'psycopg[binary]')", has_psycopg) {
        return;
    }
    let (_dir, weir, port) = started();
    let out = Command::new("python3")
        .args(["-c", PSYCOPG_SCRIPT, &port.to_string(), &weir.url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("error UndefinedTable 42P01"), "{stdout}");
    assert!(stdout.contains("error SyntaxError 42601"), "{stdout}");
    assert!(stdout.contains("error DuplicateTable 42P07"), "{stdout}");
    assert!(stdout.contains("streams ['kinds']"), "{stdout}");
    assert!(stdout.contains("same over HTTP"), "{stdout}");
}

#[test]
fn a_taken_pg_port_is_a_clear_error() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--pg-listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--pg-listen"), "{err}");
}

/// pgjdbc's jar: `WEIR_PGJDBC_JAR`, or the one `.ci/run` fetched into ~/.cache/weir-jars.
fn pgjdbc_jar() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("WEIR_PGJDBC_JAR") {
        return Some(path.into());
    }
    let dir = std::path::Path::new(&std::env::var_os("HOME")?).join(".cache/weir-jars");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("postgresql-") && n.ends_with(".jar"))
        })
}

#[test]
fn pgjdbc_reads_metadata_and_runs_prepared_statements() {
    let jar = pgjdbc_jar();
    let has_java = Command::new("javac").arg("-version").output().is_ok();
    if !require(
        "pgjdbc (~/.cache/weir-jars/postgresql-*.jar) and a JDK",
        jar.is_some() && has_java,
    ) {
        return;
    }
    let classes = tempfile::tempdir().unwrap();
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/JdbcCheck.java");
    let compiled = Command::new("javac")
        .arg("-d")
        .arg(classes.path())
        .arg(source)
        .status()
        .unwrap();
    assert!(compiled.success());
    let (_dir, _weir, port) = started();
    let classpath = format!("{}:{}", jar.unwrap().display(), classes.path().display());
    let out = Command::new("java")
        .args(["-cp", &classpath, "JdbcCheck", &port.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "inserted 1",
        "product PostgreSQL 16.6",
        "table public.orders",
        "row 2 item-2 3.0 2024-01-01 00:00:02.0",
        "row 3 item-3 4.5 2024-01-01 00:00:03.0",
        "error 42P01",
        "ok",
    ] {
        assert!(stdout.contains(expected), "lacks {expected:?}:\n{stdout}");
    }
}

/// The sqllogictest CLI (`cargo install sqllogictest-bin`), on PATH or in ~/.cargo/bin.
fn sqllogictest_cli() -> Option<std::path::PathBuf> {
    let on_path = Command::new("sqllogictest")
        .arg("--version")
        .output()
        .is_ok();
    if on_path {
        return Some("sqllogictest".into());
    }
    let home = std::path::PathBuf::from(std::env::var_os("HOME")?);
    Some(home.join(".cargo/bin/sqllogictest")).filter(|p| p.exists())
}

#[test]
fn the_sqllogictest_cli_passes_the_suites_over_the_postgres_protocol() {
    let Some(cli) = sqllogictest_cli() else {
        require(
            "the sqllogictest CLI (cargo install sqllogictest-bin)",
            false,
        );
        return;
    };
    // Every file that needs no in-process hook (RESTART, ADVANCE CLOCK), each against a
    // fresh server, as the files create their own streams.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql-tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .flat_map(|dir| std::fs::read_dir(dir.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text.contains("RESTART") && !text.contains("ADVANCE CLOCK")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    for file in &files {
        let (_dir, _weir, port) = started();
        let out = Command::new(&cli)
            .args(["--engine", "postgres-extended", "--host", "127.0.0.1"])
            .args([
                "--port",
                &port.to_string(),
                "--db",
                "weir",
                "--user",
                "weir",
            ])
            .arg(file)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}:\n{}\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_malformed_message_closes_only_its_connection() {
    if !require("psql", has_psql()) {
        return;
    }
    let (_dir, _weir, port) = started();
    // A startup, then a Describe whose length field is 0: pgwire 0.41 panics decoding it
    // (fuzz/known-upstream/pgwire-describe-length-0); only that connection's task ends.
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut startup = Vec::new();
    let body = b"\x00\x03\x00\x00user\x00tester\x00database\x00weir\x00\x00";
    startup.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    startup.extend_from_slice(body);
    socket.write_all(&startup).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    socket.write_all(b"D\x00\x00\x00\x00").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(socket);
    let (ok, out, err) = psql(port, "SELECT 41 + 1;");
    assert!(
        ok && out.contains("42"),
        "the listener stopped serving: {err}"
    );
}
