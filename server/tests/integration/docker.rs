//! docker/: the image built and run for real, and the compose file and Kubernetes
//! manifests checked against their schemas offline. Needs a Docker engine and the base
//! image `debian:bookworm-slim` (`.ci/run` starts dockerd and makes that image with
//! debootstrap, as there is no registry here); without them the tests say SKIPPED,
//! unless `WEIR_REQUIRE_DOCKER_TESTS=1` (CI), where they fail.
//!
//! The image is the Dockerfile's `prebuilt` target: its runtime stage around the `weir`
//! binary these tests were built with (the `build` stage needs the official Rust image,
//! which no registry serves here).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};

fn require(reason: &str) -> bool {
    if std::env::var_os("WEIR_REQUIRE_DOCKER_TESTS").is_some() {
        panic!("{reason} (WEIR_REQUIRE_DOCKER_TESTS is set)");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

fn docker(args: &[&str]) -> (bool, String) {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn docker_ok(args: &[&str]) -> String {
    let (ok, text) = docker(args);
    assert!(ok, "docker {}: {text}", args.join(" "));
    text.trim().to_string()
}

fn has_docker() -> bool {
    if !Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return require("no Docker engine answers (docker info)");
    }
    if !docker(&["image", "inspect", "debian:bookworm-slim"]).0 {
        return require("the base image debian:bookworm-slim is missing (.ci/run makes it)");
    }
    true
}

/// Removes what a test made, whatever happens.
struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in &self.0 {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = docker(&args);
        }
    }
}

fn sql(client: &reqwest::blocking::Client, url: &str, sql: &str) -> Value {
    let response = client
        .post(format!("{url}/v1/sql"))
        .json(&json!({ "sql": sql }))
        .send()
        .expect("POST /v1/sql");
    assert_eq!(response.status().as_u16(), 200, "{sql}");
    response.json().unwrap()
}

fn wait_ready(client: &reqwest::blocking::Client, url: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if client
            .get(format!("{url}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the container did not become ready: {}",
        docker(&["logs", name]).1
    );
}

/// Build the image, run it with a volume, use it over HTTP, stop it with SIGTERM and
/// kill it with SIGKILL, and start it again each time: its data and views stay.
#[test]
fn the_image_runs_weir_as_non_root_and_keeps_its_data_across_stop_and_kill() {
    if !has_docker() {
        return;
    }
    let tag = format!("{:08x}", rand::rng().random::<u32>());
    let (image, name, volume) = (
        format!("weir-test:{tag}"),
        format!("weir-test-{tag}"),
        format!("weir-test-{tag}"),
    );
    let _cleanup = Cleanup(vec![
        vec!["rm".into(), "-f".into(), name.clone()],
        vec!["volume".into(), "rm".into(), "-f".into(), volume.clone()],
        vec!["rmi".into(), "-f".into(), image.clone()],
    ]);
    // A build context of the Dockerfile and the binary alone.
    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(context.path().join("docker/bin")).unwrap();
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/Dockerfile");
    std::fs::copy(&dockerfile, context.path().join("docker/Dockerfile")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_weir"),
        context.path().join("docker/bin/weir"),
    )
    .unwrap();
    let started = Instant::now();
    docker_ok(&[
        "build",
        "-q",
        "--target",
        "prebuilt",
        "-f",
        &context.path().join("docker/Dockerfile").to_string_lossy(),
        "-t",
        &image,
        &context.path().to_string_lossy(),
    ]);
    let size = docker_ok(&["image", "inspect", "-f", "{{.Size}}", &image]);
    eprintln!(
        "built {image} in {:?}, {} MB",
        started.elapsed(),
        size.parse::<u64>().unwrap_or(0) / 1_000_000
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    docker_ok(&["volume", "create", &volume]);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "-e",
        &format!("WEIR_LISTEN=127.0.0.1:{port}"),
        "-e",
        "WEIR_PG_LISTEN=off",
        "-e",
        "WEIR_CHECKPOINT_INTERVAL=100ms",
        "-v",
        &format!("{volume}:/var/lib/weir"),
        &image,
    ]);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_ready(&client, &url, &name);
    assert_eq!(
        docker_ok(&["exec", &name, "id"]),
        "uid=10001(weir) gid=10001(weir) groups=10001(weir)",
        "the container runs as the weir user"
    );
    sql(
        &client,
        &url,
        "CREATE STREAM clicks (page TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts)",
    );
    sql(
        &client,
        &url,
        "CREATE MATERIALIZED VIEW per_page AS SELECT page, count(*) AS n FROM clicks GROUP BY page",
    );
    let body = "{\"page\": \"/a\", \"ts\": \"2024-01-01 00:00:01\"}\n{\"page\": \"/b\", \"ts\": \"2024-01-01 00:00:02\"}\n{\"page\": \"/a\", \"ts\": \"2024-01-01 00:00:03\"}\n";
    let response = client
        .post(format!("{url}/v1/streams/clicks/records"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    sql(&client, &url, "FLUSH");
    let view = "SELECT page, n FROM per_page ORDER BY page";
    let expected = json!([["/a", 2], ["/b", 1]]);
    assert_eq!(sql(&client, &url, view)["rows"], expected);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &name]);
        if health == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "health check: {health}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // docker stop: SIGTERM, a clean exit.
    docker_ok(&["stop", "-t", "30", &name]);
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &name]),
        "0"
    );
    docker_ok(&["start", &name]);
    wait_ready(&client, &url, &name);
    sql(&client, &url, "FLUSH");
    assert_eq!(
        sql(&client, &url, view)["rows"],
        expected,
        "after docker stop and start"
    );
    assert_eq!(
        sql(&client, &url, "SELECT count(*) FROM clicks")["rows"],
        json!([[3]])
    );

    // docker kill: SIGKILL.
    docker_ok(&["kill", &name]);
    docker_ok(&["start", &name]);
    wait_ready(&client, &url, &name);
    sql(&client, &url, "FLUSH");
    assert_eq!(
        sql(&client, &url, view)["rows"],
        expected,
        "after docker kill and start"
    );
}

/// The compose file and the Kubernetes manifests, checked against their schemas without
/// a network (`docker-compose config`, and `kubernetes-validate` with the Kubernetes
/// OpenAPI schemas it carries).
#[test]
fn the_compose_file_and_the_kubernetes_manifests_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker");
    let compose = Command::new("docker-compose")
        .args([
            "-f",
            &root.join("compose.yaml").to_string_lossy(),
            "config",
            "-q",
        ])
        .output();
    match compose {
        Ok(output) => assert!(
            output.status.success(),
            "docker-compose config: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(_) => {
            if !require("docker-compose is not installed") {
                return;
            }
        }
    }
    let manifests: Vec<String> = [
        "configmap.yaml",
        "secret.yaml",
        "service.yaml",
        "statefulset.yaml",
    ]
    .iter()
    .map(|f| root.join("k8s").join(f).to_string_lossy().to_string())
    .collect();
    let validate = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", "1.32"])
        .args(&manifests)
        .output();
    match validate {
        Ok(output) => assert!(
            output.status.success(),
            "kubernetes-validate: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(_) => {
            require("kubernetes-validate is not installed (pip install kubernetes-validate)");
        }
    }
}
