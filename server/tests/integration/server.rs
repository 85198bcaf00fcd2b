//! A `weir serve` child process on a free port with its own data dir.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Weir {
    child: Child,
    pub url: String,
    /// The Postgres listener's port, when it serves one.
    pub pg_port: Option<u16>,
    /// The Kafka listener's port, when it serves one.
    pub kafka_port: Option<u16>,
    pub client: reqwest::blocking::Client,
    /// Every line the server logged so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Weir {
    /// Starts `weir serve` on `data_dir` and waits for its "ready" log line.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Weir {
        Weir::start_with_env(data_dir, extra_args, &[])
    }

    /// Like [`Weir::start`], with extra environment variables.
    pub fn start_with_env(data_dir: &Path, extra_args: &[&str], envs: &[(&str, &str)]) -> Weir {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra_args)
            .envs(envs.iter().copied())
            .env("WEIR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weir");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            let log = lines;
            let mut sent = false;
            let (mut pg_port, mut kafka_port) = (None, None);
            // The port in "... protocol on 127.0.0.1:PORT ...".
            let port_after = |line: &str, marker: &str| {
                let at = line.find(marker)?;
                line[at + marker.len()..]
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok())
            };
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                pg_port = pg_port.or(port_after(&line, "Postgres protocol on "));
                kafka_port = kafka_port.or(port_after(&line, "Kafka protocol on "));
                log.lock().unwrap().push(line.clone());
                if !sent && let Some(at) = line.find("ready at http") {
                    let url: String = line[at + "ready at ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_string();
                    let _ = tx.send((url, pg_port, kafka_port));
                    sent = true;
                }
                if std::env::var_os("WEIR_TEST_LOGS").is_some() {
                    eprintln!("[weir] {line}");
                }
            }
        });
        let (url, pg_port, kafka_port) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("weir did not become ready in 60 s");
        // No connection reuse: after a 413 the server closes the connection without
        // reading the body, and a pooled connection could be the closed one.
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        Weir {
            child,
            url,
            pg_port,
            kafka_port,
            client,
            log,
        }
    }

    /// The server process's id (to sample its memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// `POST /v1/sql`; returns status and JSON body.
    pub fn sql(&self, sql: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/sql", self.url))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .expect("POST /v1/sql");
        let status = response.status().as_u16();
        (status, response.json().expect("JSON body"))
    }

    /// `POST /v1/sql` that must succeed.
    pub fn sql_ok(&self, sql: &str) -> Value {
        let (status, body) = self.sql(sql);
        assert_eq!(status, 200, "{sql}: {body}");
        body
    }

    /// The single value of a one-row, one-column query.
    pub fn scalar(&self, sql: &str) -> Value {
        let body = self.sql_ok(sql);
        body["rows"][0][0].clone()
    }

    pub fn ingest(
        &self,
        stream: &str,
        content_type: &str,
        body: impl Into<reqwest::blocking::Body>,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/streams/{stream}/records", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .expect("POST records");
        let status = response.status().as_u16();
        (status, response.json().expect("JSON body"))
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .expect("GET");
        (response.status().as_u16(), response.text().unwrap())
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (status, text) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait; returns whether it exited cleanly within `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> bool {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        false
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a program with `input` on stdin: (success, stdout, stderr).
pub fn run(mut command: Command, input: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
