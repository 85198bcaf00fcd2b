//! The `weir` command: `weir serve` starts the server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use weir::api::{self, ApiState};
use weir::clock::SystemClock;
use weir::config::Config;

/// Weir: a streaming SQL database. Streams are partitioned, durable Arrow logs; SQL over
/// them runs on DataFusion.
#[derive(Parser)]
#[command(name = "weir", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (HTTP API on --listen, data in --data-dir).
    Serve(ServeArgs),
    /// Measure the engine: Nexmark queries streaming vs batch, state per group, peak RSS.
    Bench(BenchArgs),
    /// Exit 0 when the server at --url answers ready (GET /readyz): a container
    /// HEALTHCHECK without curl.
    Healthcheck(HealthcheckArgs),
}

#[derive(clap::Args)]
struct HealthcheckArgs {
    /// The server's HTTP address [default: 127.0.0.1 and the port of WEIR_LISTEN, or 7878]
    #[arg(long)]
    url: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
}

impl HealthcheckArgs {
    /// GET /readyz over a plain TCP connection; Ok when the answer is 200.
    fn check(&self) -> Result<(), String> {
        use std::io::{Read, Write};
        let address = match &self.url {
            Some(url) => url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            None => {
                let port = std::env::var("WEIR_LISTEN")
                    .ok()
                    .and_then(|l| l.rsplit(':').next().map(str::to_string))
                    .unwrap_or_else(|| "7878".into());
                format!("127.0.0.1:{port}")
            }
        };
        let timeout = std::time::Duration::from_secs(self.timeout.max(1));
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&address)
            .map_err(|e| format!("{address}: {e}"))?
            .next()
            .ok_or_else(|| format!("{address}: no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("cannot reach Weir at {address}: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer.lines().next().unwrap_or("");
        if status.split_whitespace().nth(1) == Some("200") {
            Ok(())
        } else {
            Err(format!("Weir at {address} is not ready: {status}"))
        }
    }
}

#[derive(clap::Args)]
struct BenchArgs {
    /// A short run (200,000 events, 100,000 groups), as CI runs it.
    #[arg(long)]
    quick: bool,
    /// Events to generate [default: 5,000,000, or 200,000 with --quick]
    #[arg(long)]
    events: Option<u64>,
    /// Groups of the state-size view [default: 1,000,000, or 100,000 with --quick]
    #[arg(long)]
    groups: Option<u64>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Runs of each query; the figures are their medians [default: 3, or 1 with --quick]
    #[arg(long)]
    repeats: Option<usize>,
    /// Run only the queries and sections whose name contains this text (e.g. `q0`,
    /// `tumbling`, `state`, `ingest`, `latency`), for profiling one of them.
    #[arg(long)]
    only: Option<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file; flags and WEIR_* variables override its settings.
    #[arg(long, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./weir-data]
    #[arg(long, env = "WEIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to serve the HTTP API on [default: 127.0.0.1:7878]
    #[arg(long, env = "WEIR_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Largest request body in bytes [default: 67108864]
    #[arg(long, env = "WEIR_BODY_LIMIT")]
    body_limit: Option<usize>,
    /// Segment size in bytes at which partitions roll [default: 67108864]
    #[arg(long, env = "WEIR_SEGMENT_BYTES")]
    segment_bytes: Option<u64>,
    /// Serve the console from this directory (e.g. console/dist) instead of the copy
    /// built into the binary; for console development.
    #[arg(long, env = "WEIR_CONSOLE_DIR")]
    console_dir: Option<PathBuf>,
    /// Time between checkpoints of continuous queries, e.g. 1s or 100ms; results become
    /// visible at checkpoints [default: 1s]
    #[arg(long, env = "WEIR_CHECKPOINT_INTERVAL", value_parser = parse_interval_ms)]
    checkpoint_interval: Option<u64>,
    /// Where checkpoints are kept: a directory or s3://bucket/prefix (credentials from the
    /// usual AWS_* variables; AWS_ENDPOINT_URL for an S3-compatible server)
    /// [default: DATA_DIR/checkpoints]
    #[arg(long, env = "WEIR_STORAGE")]
    storage: Option<String>,
    /// Address of the PostgreSQL wire protocol listener (psql -h HOST -p PORT -d weir),
    /// or `off` [default: 127.0.0.1:5433, skipped with a warning if that port is taken]
    #[arg(long, env = "WEIR_PG_LISTEN")]
    pg_listen: Option<String>,
    /// Address of the Kafka protocol listener (bootstrap.servers for Kafka clients), or
    /// `off` [default: off]
    #[arg(long, env = "WEIR_KAFKA_LISTEN")]
    kafka_listen: Option<String>,
}

/// `100ms`, `2s`, `1m`, or plain milliseconds.
fn parse_interval_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 100ms, 1s or 1m"))?;
    match unit.trim() {
        "" | "ms" => Ok(n),
        "s" => Ok(n * 1000),
        "m" => Ok(n * 60_000),
        other => Err(format!(
            "unknown unit {other:?} in {text:?}; use ms, s or m"
        )),
    }
}

impl ServeArgs {
    fn resolve(self) -> Result<Config, String> {
        let console_dir = self.console_dir.clone();
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.body_limit {
            config.body_limit_bytes = v;
        }
        if let Some(v) = self.segment_bytes {
            config.segment_bytes = v;
        }
        if console_dir.is_some() {
            config.console_dir = console_dir;
        }
        if let Some(v) = self.checkpoint_interval {
            config.checkpoint_interval_ms = v;
        }
        if self.storage.is_some() {
            config.storage = self.storage;
        }
        if self.pg_listen.is_some() {
            config.pg_listen = self.pg_listen;
        }
        if self.kafka_listen.is_some() {
            config.kafka_listen = self.kafka_listen;
        }
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = match cli.command {
        Command::Serve(args) => args
            .resolve()
            .and_then(|config| runtime.block_on(serve(config))),
        Command::Healthcheck(args) => args.check(),
        Command::Bench(args) => {
            let events = args
                .events
                .unwrap_or(if args.quick { 200_000 } else { 5_000_000 });
            let groups = args
                .groups
                .unwrap_or(if args.quick { 100_000 } else { 1_000_000 });
            runtime
                .block_on(weir::bench::bench(
                    events,
                    groups,
                    args.repeats.unwrap_or(if args.quick { 1 } else { 3 }),
                    args.only.as_deref(),
                ))
                .and_then(|figures| match &args.json {
                    Some(path) => std::fs::write(
                        path,
                        serde_json::to_vec_pretty(&figures).unwrap_or_default(),
                    )
                    .map_err(|e| format!("cannot write {}: {e}", path.display())),
                    None => Ok(()),
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e} (is another Weir running? try --listen 127.0.0.1:0)",
                config.listen
            )
        })?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let pg_listener = match config.pg_listen()? {
        weir::config::PgListen::Off => None,
        weir::config::PgListen::At(at, explicit) => match tokio::net::TcpListener::bind(at).await {
            Ok(listener) => Some(listener),
            Err(e) if !explicit => {
                tracing::warn!(
                    "not serving the Postgres protocol: cannot listen on {at}: {e} \
                     (give another address with --pg-listen, or --pg-listen off)"
                );
                None
            }
            Err(e) => {
                return Err(format!(
                    "cannot listen on {at} for the Postgres protocol (--pg-listen): {e}"
                ));
            }
        },
    };
    let kafka_listener = match config.kafka_listen()? {
        None => None,
        Some(at) => Some(tokio::net::TcpListener::bind(at).await.map_err(|e| {
            format!("cannot listen on {at} for the Kafka protocol (--kafka-listen): {e}")
        })?),
    };
    let state = match &config.console_dir {
        Some(dir) => ApiState::with_console_dir(config.body_limit_bytes, dir.clone()),
        None => ApiState::new(config.body_limit_bytes),
    };
    let server = tokio::spawn(api::serve(listener, state.clone(), shutdown_signal()));
    tracing::info!("recovering data dir {}", config.data_dir.display());
    let engine = weir::engine::Engine::open(config.engine_config(), Arc::new(SystemClock))
        .await
        .map_err(|e| format!("cannot open data dir {}: {e}", config.data_dir.display()))?;
    state.set_engine(engine.clone());
    let _pg = match pg_listener {
        Some(listener) => {
            let at = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(
                "Postgres protocol on {at} (psql -h {} -p {} -d weir)",
                at.ip(),
                at.port()
            );
            Some(AbortOnDrop(tokio::spawn(weir::pg::serve(
                listener,
                engine.clone(),
            ))))
        }
        None => None,
    };
    let _kafka = match kafka_listener {
        Some(listener) => {
            let at = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!("Kafka protocol on {at} (bootstrap.servers={at})");
            Some(AbortOnDrop(tokio::spawn(weir::kafka::serve(
                listener,
                engine.clone(),
                at,
                config.data_dir.clone(),
            ))))
        }
        None => None,
    };
    tracing::info!(
        "Weir is ready at http://{address} (data dir {})",
        config.data_dir.display()
    );
    server
        .await
        .map_err(|e| format!("server task failed: {e}"))?
        .map_err(|e| format!("server error: {e}"))?;
    engine.shutdown().await;
    tracing::info!("Weir stopped");
    Ok(())
}

/// Stops a listener's task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
