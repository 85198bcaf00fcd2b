//! Safe to expose: tokens and roles on every listener, TLS, the browser checks, and the
//! limits that keep the server up, each through the real binary and real clients
//! (curl, psql, kcat).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::Weir;

const ADMIN: &str = "ops:admin:ops-secret-0123456789";
const ADMIN_SECRET: &str = "ops-secret-0123456789";
const READ_SECRET: &str = "dash-secret-0123456789";
const WRITE_SECRET: &str = "ingest-secret-0123456789";
const OLD_SECRET: &str = "old-secret-0123456789";

/// A tokens file with a writer and an expired token.
fn tokens_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("tokens.toml");
    std::fs::write(
        &path,
        format!(
            "[[tokens]]\nname = \"ingest\"\nrole = \"write\"\nsecret = \"{WRITE_SECRET}\"\n\n\
             [[tokens]]\nname = \"old\"\nrole = \"admin\"\nsecret = \"{OLD_SECRET}\"\n\
             expires = \"2020-01-01T00:00:00Z\"\n"
        ),
    )
    .unwrap();
    path
}

fn start_secured(dir: &std::path::Path, extra: &[&str]) -> Weir {
    let file = tokens_file(dir);
    let data = dir.join("data");
    let reader = format!("dash:read:{READ_SECRET}");
    let mut args = vec![
        "--auth-token",
        ADMIN,
        "--auth-token",
        &reader,
        "--auth-file",
        file.to_str().unwrap(),
    ];
    if !extra.contains(&"--pg-listen") {
        args.extend(["--pg-listen", "off"]);
    }
    args.extend_from_slice(extra);
    Weir::start(&data, &args)
}

/// A request with an optional bearer token and extra headers: (status, JSON or null, headers).
fn call(
    weir: &Weir,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let url = format!("{}{path}", weir.url);
    let mut request = match method {
        "GET" => weir.client.get(url),
        "POST" => weir.client.post(url),
        "DELETE" => weir.client.delete(url),
        "OPTIONS" => weir.client.request(reqwest::Method::OPTIONS, url),
        other => panic!("{other}"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

fn sql(weir: &Weir, token: Option<&str>, text: &str) -> (u16, Value) {
    let (status, body, _) = call(
        weir,
        "POST",
        "/v1/sql",
        token,
        Some(json!({ "sql": text })),
        &[],
    );
    (status, body)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn tokens_and_roles_guard_every_http_route() {
    let dir = tempfile::tempdir().unwrap();
    let weir = start_secured(dir.path(), &["--allowed-origins", "https://dash.example"]);

    // Without a token: 401 with the error shape and a WWW-Authenticate challenge.
    let (status, body, headers) = call(&weir, "GET", "/v1/streams", None, None, &[]);
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (status, body) = sql(&weir, Some("not-a-token"), "SELECT 1");
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    let (status, body) = sql(&weir, Some(OLD_SECRET), "SELECT 1");
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    // Probes stay open; metrics need a token unless --metrics-public.
    assert_eq!(call(&weir, "GET", "/healthz", None, None, &[]).0, 200);
    assert_eq!(call(&weir, "GET", "/readyz", None, None, &[]).0, 200);
    assert_eq!(call(&weir, "GET", "/metrics", None, None, &[]).0, 401);
    assert_eq!(
        call(&weir, "GET", "/metrics", Some(READ_SECRET), None, &[]).0,
        200
    );

    // admin: DDL. read: queries only. write: INSERT and ingest, no DDL.
    let (status, body) = sql(
        &weir,
        Some(ADMIN_SECRET),
        "CREATE STREAM s (k BIGINT, v TEXT)",
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = sql(&weir, Some(WRITE_SECRET), "INSERT INTO s VALUES (1, 'a')");
    assert_eq!(status, 200, "{body}");
    let ingest = weir
        .client
        .post(format!("{}/v1/streams/s/records", weir.url))
        .header("content-type", "application/x-ndjson");
    let response = ingest
        .try_clone()
        .unwrap()
        .bearer_auth(WRITE_SECRET)
        .body("{\"k\": 2, \"v\": \"b\"}\n")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = ingest
        .bearer_auth(READ_SECRET)
        .body("{\"k\": 3, \"v\": \"c\"}\n")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let (status, body) = sql(&weir, Some(READ_SECRET), "SELECT count(*) AS n FROM s");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], 2);
    for (token, statement) in [
        (READ_SECRET, "INSERT INTO s VALUES (9, 'x')"),
        (READ_SECRET, "DROP STREAM s"),
        (WRITE_SECRET, "CREATE STREAM t (k BIGINT)"),
        (WRITE_SECRET, "DROP STREAM s"),
    ] {
        let (status, body) = sql(&weir, Some(token), statement);
        assert_eq!(
            (status, code(&body)),
            (403, "forbidden"),
            "{statement}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains("role"),
            "{body}"
        );
    }
    // A text with one refused statement runs none of them.
    let (status, _) = sql(
        &weir,
        Some(WRITE_SECRET),
        "INSERT INTO s VALUES (7, 'z'); DROP STREAM s",
    );
    assert_eq!(status, 403);
    let (_, body) = sql(&weir, Some(READ_SECRET), "SELECT count(*) FROM s");
    assert_eq!(
        body["rows"][0][0], 2,
        "the INSERT before the refused DROP did not run"
    );
    let (status, _, _) = call(
        &weir,
        "DELETE",
        "/v1/queries/1",
        Some(WRITE_SECRET),
        None,
        &[],
    );
    assert_eq!(status, 403);

    // The console: log in with a token, get an HttpOnly SameSite cookie, use it, log out.
    let (status, body, headers) = call(
        &weir,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"token": READ_SECRET})),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["role"].as_str()),
        (Some("dash"), Some("read"))
    );
    let cookie = headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(READ_SECRET),
        "the cookie is a ticket, not the token"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let (status, _, _) = call(
        &weir,
        "GET",
        "/v1/streams",
        None,
        None,
        &[("cookie", &session)],
    );
    assert_eq!(status, 200);
    let (_, me, _) = call(
        &weir,
        "GET",
        "/v1/auth/me",
        None,
        None,
        &[("cookie", &session)],
    );
    assert_eq!(me["authenticated"], true, "{me}");
    let (status, _, _) = call(
        &weir,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"token": "wrong"})),
        &[],
    );
    assert_eq!(status, 401);
    call(
        &weir,
        "POST",
        "/v1/auth/logout",
        None,
        None,
        &[("cookie", &session)],
    );
    let (status, _, _) = call(
        &weir,
        "GET",
        "/v1/streams",
        None,
        None,
        &[("cookie", &session)],
    );
    assert_eq!(status, 401);

    // Browser safety: a page of another site may not change anything, even with a token
    // (a cross-site form POST carries cookies); listed origins may, and get CORS.
    let host = weir.url.trim_start_matches("http://").to_string();
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("origin", "null")],
    ] {
        let (status, body, _) = call(
            &weir,
            "POST",
            "/v1/sql",
            Some(ADMIN_SECRET),
            Some(json!({"sql": "DROP STREAM s"})),
            &headers,
        );
        assert_eq!(
            (status, code(&body)),
            (403, "forbidden_origin"),
            "{headers:?}: {body}"
        );
    }
    let same = format!("http://{host}");
    let (status, _, _) = call(
        &weir,
        "POST",
        "/v1/sql",
        Some(READ_SECRET),
        Some(json!({"sql": "SELECT 1"})),
        &[("origin", &same), ("sec-fetch-site", "same-origin")],
    );
    assert_eq!(status, 200);
    let (status, _, headers) = call(
        &weir,
        "POST",
        "/v1/sql",
        Some(READ_SECRET),
        Some(json!({"sql": "SELECT 1"})),
        &[
            ("origin", "https://dash.example"),
            ("sec-fetch-site", "cross-site"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://dash.example"
    );
    let preflight = [
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type",
        ),
    ];
    let (_, _, headers) = call(
        &weir,
        "OPTIONS",
        "/v1/sql",
        None,
        None,
        &[&[("origin", "https://dash.example")][..], &preflight[..]].concat(),
    );
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://dash.example"
    );
    let (_, _, headers) = call(
        &weir,
        "OPTIONS",
        "/v1/sql",
        None,
        None,
        &[&[("origin", "https://evil.example")][..], &preflight[..]].concat(),
    );
    assert!(headers.get("access-control-allow-origin").is_none());
    // The console's pages carry a strict CSP.
    let (_, _, headers) = call(&weir, "GET", "/", None, None, &[]);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    // No secret ever reaches the log.
    let log = weir.log();
    for secret in [ADMIN_SECRET, READ_SECRET, WRITE_SECRET, OLD_SECRET] {
        assert!(!log.contains(secret), "a secret was logged:\n{log}");
    }
}

/// Runs `weir serve ARGS` until it logs that it is ready or exits: (ready, its log).
fn serve_until_ready(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("serve")
        .args(args)
        .envs(envs.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut ready = false;
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("ready at") {
            ready = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    (ready, log)
}

#[test]
fn without_a_token_weir_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let open = [
        "--listen",
        "0.0.0.0:0",
        "--pg-listen",
        "off",
        "--data-dir",
        data,
    ];
    let (ready, log) = serve_until_ready(&open, &[]);
    assert!(!ready);
    assert!(
        log.contains("--auth-token") && log.contains("--insecure-listen"),
        "{log}"
    );
    // With --insecure-listen it starts, and says what that means.
    let (ready, log) = serve_until_ready(&[&open[..], &["--insecure-listen"]].concat(), &[]);
    assert!(
        ready && log.contains("reachable from other machines"),
        "{log}"
    );
    // With a token (here from WEIR_AUTH_TOKEN) it starts without a warning.
    let token = format!("ops:admin:{ADMIN_SECRET}");
    let (ready, log) = serve_until_ready(&open, &[("WEIR_AUTH_TOKEN", &token)]);
    assert!(ready && log.contains("authentication on"), "{log}");
    assert!(!log.contains(ADMIN_SECRET));
    // A short secret is refused with how to make a good one.
    let (ready, log) = serve_until_ready(&["--auth-token", "short", "--data-dir", data], &[]);
    assert!(!ready && log.contains("at least 16"), "{log}");
}

fn tool(name: &str, version_arg: &str, required_by: &str) -> bool {
    if Command::new(name).arg(version_arg).output().is_ok() {
        return true;
    }
    if std::env::var_os(required_by).is_some() {
        panic!("{name} is required ({required_by} is set)");
    }
    eprintln!("SKIPPED: {name} is not installed");
    false
}

use crate::server::run;

fn psql(port: u16, password: &str, extra: &str, script: &str) -> (bool, String, String) {
    let mut command = Command::new("psql");
    command
        .arg(format!(
            "host=127.0.0.1 port={port} dbname=weir user=someone {extra}"
        ))
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
            "-At",
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10");
    run(command, script)
}

#[test]
fn the_postgres_password_is_a_token() {
    if !tool("psql", "--version", "WEIR_REQUIRE_PG_TESTS") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let weir = start_secured(
        dir.path(),
        &["--pg-listen", "127.0.0.1:0", "--statement-timeout", "1s"],
    );
    let port = weir.pg_port.expect("the Postgres port");
    weir.client
        .post(format!("{}/v1/sql", weir.url))
        .bearer_auth(ADMIN_SECRET)
        .json(&json!({"sql": "CREATE STREAM s (k BIGINT); INSERT INTO s VALUES (1), (2)"}))
        .send()
        .unwrap();
    let (ok, _, err) = psql(port, "wrong-password", "", "SELECT 1;");
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");
    let (ok, _, err) = psql(port, OLD_SECRET, "", "SELECT 1;");
    assert!(!ok && err.contains("expired"), "{err}");
    let (ok, out, err) = psql(port, READ_SECRET, "", "SELECT count(*) FROM s;");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "2");
    let (ok, _, err) = psql(port, READ_SECRET, "", "INSERT INTO s VALUES (3);");
    assert!(!ok && err.contains("42501"), "{err}");
    let (ok, out, err) = psql(
        port,
        WRITE_SECRET,
        "",
        "INSERT INTO s VALUES (3); SELECT count(*) FROM s;",
    );
    assert!(ok, "{err}");
    assert!(out.trim().ends_with('3'), "{out}");
}

/// kcat with `-X` settings (SASL, TLS) before `args`, and short timeouts.
fn kcat(port: u16, security: &[&str], args: &[&str], input: &str) -> (bool, String, String) {
    let mut all: Vec<&str> = Vec::new();
    for setting in security {
        all.extend(["-X", setting]);
    }
    all.extend(["-X", "socket.timeout.ms=8000", "-m", "10"]);
    all.extend_from_slice(args);
    crate::kafka::kcat(port, &all, input)
}

fn sasl<'a>(mechanism: &'a str, user: &'a str, password: &'a str) -> Vec<String> {
    vec![
        "security.protocol=SASL_PLAINTEXT".into(),
        format!("sasl.mechanisms={mechanism}"),
        format!("sasl.username={user}"),
        format!("sasl.password={password}"),
    ]
}

#[test]
fn kafka_clients_authenticate_with_sasl_plain_and_scram() {
    if !tool("kcat", "-V", "WEIR_REQUIRE_KAFKA_TESTS") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let weir = start_secured(dir.path(), &["--kafka-listen", "127.0.0.1:0"]);
    let port = weir.kafka_port.expect("the Kafka port");
    weir.client
        .post(format!("{}/v1/sql", weir.url))
        .bearer_auth(ADMIN_SECRET)
        .json(&json!({"sql": "CREATE STREAM clicks (user_id BIGINT, page TEXT)"}))
        .send()
        .unwrap();
    for mechanism in ["PLAIN", "SCRAM-SHA-256"] {
        let writer = sasl(mechanism, "ingest", WRITE_SECRET);
        let writer: Vec<&str> = writer.iter().map(String::as_str).collect();
        let (ok, _, err) = kcat(
            port,
            &writer,
            &["-P", "-t", "clicks", "-p", "0"],
            "{\"user_id\": 1, \"page\": \"/a\"}\n",
        );
        assert!(ok, "{mechanism}: {err}");
        let reader = sasl(mechanism, "dash", READ_SECRET);
        let reader: Vec<&str> = reader.iter().map(String::as_str).collect();
        let (ok, out, err) = kcat(
            port,
            &reader,
            &["-C", "-t", "clicks", "-o", "beginning", "-e"],
            "",
        );
        assert!(ok, "{mechanism}: {err}");
        assert!(out.contains("\"page\":\"/a\""), "{mechanism}: {out}");
        // A wrong secret is refused; so is a right secret under another token's name.
        for (user, password) in [
            ("dash", "wrong-secret-0123456789"),
            ("ingest", READ_SECRET),
            ("old", OLD_SECRET),
        ] {
            let bad = sasl(mechanism, user, password);
            let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
            let (ok, out, err) = kcat(port, &bad, &["-L"], "");
            assert!(!ok || !out.contains("clicks"), "{mechanism} {user}: {out}");
            assert!(
                err.to_lowercase().contains("authentication"),
                "{mechanism} {user}: {err}"
            );
        }
    }
    // A read token may not produce: the broker says the topic is not authorized.
    let reader = sasl("PLAIN", "dash", READ_SECRET);
    let reader: Vec<&str> = reader.iter().map(String::as_str).collect();
    let (ok, _, err) = kcat(
        port,
        &reader,
        &["-P", "-t", "clicks", "-p", "0"],
        "{\"user_id\": 2}\n",
    );
    assert!(!ok || err.contains("authoriz"), "{err}");
    assert!(err.to_lowercase().contains("authoriz"), "{err}");
    // Without SASL the connection is closed at the first request past ApiVersions.
    let (ok, out, _) = kcat(port, &[], &["-L"], "");
    assert!(!ok || !out.contains("clicks"), "{out}");
    let (_, body) = sql(&weir, Some(READ_SECRET), "SELECT count(*) FROM clicks");
    assert_eq!(body["rows"][0][0], 2, "{body}");
}

/// A self-signed certificate for 127.0.0.1 and localhost, made with openssl.
fn certificate(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn tls_on_http_postgres_and_kafka() {
    if !tool("openssl", "version", "WEIR_REQUIRE_PG_TESTS")
        || !tool("curl", "--version", "WEIR_REQUIRE_PG_TESTS")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let weir = start_secured(
        dir.path(),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--pg-listen",
            "127.0.0.1:0",
            "--kafka-listen",
            "127.0.0.1:0",
        ],
    );
    assert!(weir.url.starts_with("https://"), "{}", weir.url);
    let curl = |args: &[&str]| {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--max-time", "20", "--cacert", &cert])
            .args(args);
        run(command, "")
    };
    let (ok, out, err) = curl(&[
        "-H",
        &format!("Authorization: Bearer {ADMIN_SECRET}"),
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"sql": "CREATE STREAM s (k BIGINT); INSERT INTO s VALUES (1), (2); SELECT count(*) AS n FROM s"}"#,
        &format!("{}/v1/sql", weir.url),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("\"rows\":[[2]]"), "{out}");
    // Plain HTTP on the TLS port gets no answer.
    let plain = weir.url.replace("https://", "http://");
    let (ok, out, _) = curl(&[&format!("{plain}/healthz")]);
    assert!(!ok || !out.contains("ok"), "{out}");

    if tool("psql", "--version", "WEIR_REQUIRE_PG_TESTS") {
        let port = weir.pg_port.unwrap();
        let verify = format!("sslmode=verify-full sslrootcert={cert}");
        let (ok, out, err) = psql(
            port,
            READ_SECRET,
            &verify,
            "SELECT count(*) FROM s; SELECT ssl FROM pg_stat_ssl LIMIT 0;",
        );
        assert!(ok || err.contains("pg_stat_ssl"), "{err}");
        assert!(out.starts_with('2'), "{out}\n{err}");
        let (ok, out, err) = psql(port, READ_SECRET, "sslmode=require", "SELECT 40 + 2;");
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "42");
    }
    if tool("kcat", "-V", "WEIR_REQUIRE_KAFKA_TESTS") {
        let port = weir.kafka_port.unwrap();
        let ca = format!("ssl.ca.location={cert}");
        let security = [
            "security.protocol=SASL_SSL",
            "sasl.mechanisms=SCRAM-SHA-256",
            "sasl.username=dash",
            &format!("sasl.password={READ_SECRET}"),
            &ca,
        ];
        let (ok, out, err) = kcat(
            port,
            &security,
            &["-C", "-t", "s", "-o", "beginning", "-e"],
            "",
        );
        assert!(ok, "{err}");
        assert_eq!(out.lines().count(), 2, "{out}");
    }
}

#[test]
fn limits_answer_clearly_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(
        dir.path(),
        &[
            "--pg-listen",
            "off",
            "--statement-timeout",
            "2s",
            "--query-memory",
            "32MiB",
            "--max-result-rows",
            "10000",
        ],
    );
    // A cross join that would run for days is cancelled by the timeout, while /healthz
    // and other queries keep answering.
    let url = weir.url.clone();
    let runaway = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        let response = client
            .post(format!("{url}/v1/sql"))
            .json(&json!({"sql": "SELECT count(*) FROM generate_series(1, 100000000) a CROSS JOIN generate_series(1, 100000000) b"}))
            .send()
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().unwrap(),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(weir.get("/healthz").0, 200);
    assert_eq!(weir.scalar("SELECT 40 + 2"), 42);
    let (status, body) = runaway.join().unwrap();
    assert_eq!((status, code(&body)), (408, "statement_timeout"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--statement-timeout")
    );

    // Over the query memory: a hash join of two large inputs fails; the next query runs.
    let (status, body) = weir.sql(
        "SELECT count(*) FROM generate_series(1, 3000000) a(v) JOIN generate_series(1, 3000000) b(v) ON a.v = b.v",
    );
    assert_eq!(
        (status, code(&body)),
        (400, "resources_exhausted"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--query-memory"),
        "{body}"
    );
    assert_eq!(weir.scalar("SELECT 1"), 1);

    // Too many rows for one answer.
    let (status, body) = weir.sql("SELECT v FROM generate_series(1, 20000) t(v)");
    assert_eq!((status, code(&body)), (400, "limit_exceeded"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-result-rows")
    );

    // 50,000-deep expressions: brackets, and a chain of operators.
    for text in [
        format!("SELECT {}1{}", "(".repeat(50_000), ")".repeat(50_000)),
        format!("SELECT 1{}", " + 1".repeat(50_000)),
        format!("SELECT {}true", "NOT ".repeat(50_000)),
    ] {
        let (status, body) = weir.sql(&text);
        assert_eq!(
            status,
            400,
            "{}",
            &body.to_string()[..200.min(body.to_string().len())]
        );
    }
    // A SQL text over the size limit.
    let (status, body) = weir.sql(&format!("SELECT '{}'", "x".repeat(2 << 20)));
    assert_eq!((status, code(&body)), (400, "limit_exceeded"), "{body}");
    assert_eq!(weir.get("/healthz").0, 200);

    // 2,000 idle connections do not keep a new client out.
    let address = weir.url.trim_start_matches("http://").to_string();
    let idle: Vec<_> = (0..2000)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    assert_eq!(weir.scalar("SELECT 7"), 7);
    drop(idle);
}

#[test]
fn a_continuous_query_over_its_state_budget_stops_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let weir = Weir::start(
        dir.path(),
        &["--pg-listen", "off", "--checkpoint-interval", "100ms"],
    );
    weir.sql_ok("CREATE STREAM events (k BIGINT, ts TIMESTAMP)");
    weir.sql_ok(
        "CREATE MATERIALIZED VIEW per_key WITH (state_limit = '256KiB') AS \
         SELECT k, count(*) AS n FROM events GROUP BY k",
    );
    let rows: String = (0..50_000)
        .map(|k| format!("{{\"k\": {k}, \"ts\": \"2026-01-01T00:00:00\"}}\n"))
        .collect();
    let (status, body) = weir.ingest("events", "application/x-ndjson", rows);
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    let status = loop {
        let queries = weir.get_json("/v1/queries");
        let status = queries["queries"][0]["status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if status.starts_with("failed") || started.elapsed() > Duration::from_secs(30) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.contains("state_limit"), "{status}");
    // The server keeps serving; a budget that is not a size is refused at CREATE.
    assert_eq!(weir.scalar("SELECT 1"), 1);
    let (status, body) = weir.sql(
        "CREATE MATERIALIZED VIEW other WITH (state_limit = 'lots') AS \
         SELECT k, count(*) AS n FROM events GROUP BY k",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("state_limit"),
        "{body}"
    );
}
