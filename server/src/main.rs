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
    /// A token callers must present: `NAME:ROLE:SECRET` (role read, write or admin) or a
    /// bare SECRET (an admin token named admin). Repeatable; WEIR_AUTH_TOKEN takes a
    /// comma-separated list (better than the flag, which other users can see in ps).
    #[arg(
        long = "auth-token",
        env = "WEIR_AUTH_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    auth_tokens: Vec<String>,
    /// A TOML file of tokens: [[tokens]] with name, role, secret and optional expires.
    #[arg(long, env = "WEIR_AUTH_FILE")]
    auth_file: Option<PathBuf>,
    /// Allow listening beyond loopback without a token (anyone who can reach the
    /// port may then do anything).
    #[arg(long, env = "WEIR_INSECURE_LISTEN")]
    insecure_listen: bool,
    /// Serve /metrics without a token (for a Prometheus without credentials).
    #[arg(long, env = "WEIR_METRICS_PUBLIC")]
    metrics_public: bool,
    /// Origins whose web pages may call the API (comma-separated, e.g.
    /// https://grafana.example.com): they pass the cross-site check and get CORS answers.
    #[arg(long, env = "WEIR_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// PEM certificate chain: TLS on the HTTP, Postgres and Kafka listeners.
    #[arg(long, env = "WEIR_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "WEIR_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Open connections per listener [default: 4096]
    #[arg(long, env = "WEIR_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Cancel a bounded statement running longer than this, e.g. 30s or 5m; 0 for no
    /// limit [default: 5m]
    #[arg(long, env = "WEIR_STATEMENT_TIMEOUT")]
    statement_timeout: Option<String>,
    /// Memory one bounded query may use for sorts, joins and aggregates, e.g. 2GiB
    /// [default: a quarter of the machine's memory]
    #[arg(long, env = "WEIR_QUERY_MEMORY")]
    query_memory: Option<String>,
    /// Rows of one answer [default: 1000000]
    #[arg(long, env = "WEIR_MAX_RESULT_ROWS")]
    max_result_rows: Option<usize>,
    /// Bytes of one answer, e.g. 256MiB [default: 256MiB]
    #[arg(long, env = "WEIR_MAX_RESULT_BYTES")]
    max_result_bytes: Option<String>,
    /// Bytes of one SQL text [default: 1MiB]
    #[arg(long, env = "WEIR_MAX_SQL_BYTES")]
    max_sql_bytes: Option<String>,
    /// How deep expressions may nest in one SQL text: brackets, and chains of operators
    /// (a + b + ...) [default: 1000]
    #[arg(long, env = "WEIR_MAX_SQL_DEPTH")]
    max_sql_depth: Option<usize>,
    /// Columns of one stream [default: 1000]
    #[arg(long, env = "WEIR_MAX_COLUMNS")]
    max_columns: Option<usize>,
    /// Continuous queries (views, derived streams, push queries) at once [default: 256]
    #[arg(long, env = "WEIR_MAX_CONTINUOUS_QUERIES")]
    max_continuous_queries: Option<usize>,
    /// State one continuous query may hold, unless its WITH (state_limit = ...) says
    /// otherwise, e.g. 1GiB [default: a quarter of the machine's memory]
    #[arg(long, env = "WEIR_STATE_LIMIT")]
    state_limit: Option<String>,
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
        config.auth_tokens.extend(self.auth_tokens);
        if self.auth_file.is_some() {
            config.auth_file = self.auth_file;
        }
        config.insecure_listen |= self.insecure_listen;
        config.metrics_public |= self.metrics_public;
        config.allowed_origins.extend(
            self.allowed_origins
                .into_iter()
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty()),
        );
        if self.tls_cert.is_some() {
            config.tls_cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            config.tls_key = self.tls_key;
        }
        if let Some(v) = self.max_connections {
            config.max_connections = v;
        }
        macro_rules! set {
            ($($field:ident),*) => {$(
                if self.$field.is_some() {
                    config.$field = self.$field;
                }
            )*};
        }
        set!(
            statement_timeout,
            query_memory,
            max_result_rows,
            max_result_bytes,
            max_sql_bytes,
            max_sql_depth,
            max_continuous_queries,
            max_columns,
            state_limit
        );
        config.limits()?;
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
    // Planning recurses over expression trees: 8 MiB stacks (tokio's default is 2 MiB)
    // leave room for the deepest text --max-sql-depth admits.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
        .expect("tokio runtime");
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
    let tokens = config.tokens()?;
    let tls = match config.tls()? {
        Some((cert, key)) => Some((
            weir::net::tls_config(&cert, &key, &[b"http/1.1"])?,
            weir::net::tls_config(&cert, &key, &[])?,
        )),
        None => None,
    };
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
    let mut exposed = vec![("--listen", address)];
    for (flag, l) in [
        ("--pg-listen", &pg_listener),
        ("--kafka-listen", &kafka_listener),
    ] {
        if let Some(at) = l.as_ref().and_then(|l| l.local_addr().ok()) {
            exposed.push((flag, at));
        }
    }
    weir::auth::check_exposure(&tokens, config.insecure_listen, &exposed)?;
    if tokens.is_enabled() {
        tracing::info!(
            "authentication on: {} token(s); callers send Authorization: Bearer <token>",
            tokens.len()
        );
    }
    let auth = Arc::new(weir::auth::Auth::new(tokens));
    let state = ApiState::configured(api::ApiOptions {
        body_limit: config.body_limit_bytes,
        console_dir: config.console_dir.clone(),
        auth: Some(auth.clone()),
        security: api::auth::HttpSecurity {
            allowed_origins: config.allowed_origins.clone(),
            metrics_public: config.metrics_public,
            tls: tls.is_some(),
            loopback_only: address.ip().is_loopback(),
        },
    });
    let http = weir::net::Acceptor::new(
        listener,
        tls.as_ref()
            .map(|(http, _)| tokio_rustls::TlsAcceptor::from(http.clone())),
        weir::net::ConnectionLimit::new("http", config.max_connections),
    );
    let server = tokio::spawn(api::serve(http, state.clone(), shutdown_signal()));
    tracing::info!("recovering data dir {}", config.data_dir.display());
    let engine = weir::engine::Engine::open(config.engine_config(), Arc::new(SystemClock))
        .await
        .map_err(|e| format!("cannot open data dir {}: {e}", config.data_dir.display()))?;
    state.set_engine(engine.clone());
    let other_tls = tls
        .as_ref()
        .map(|(_, other)| tokio_rustls::TlsAcceptor::from(other.clone()));
    let _pg = match pg_listener {
        Some(listener) => {
            let at = listener.local_addr().map_err(|e| e.to_string())?;
            if tls.is_some() {
                tracing::info!(
                    "Postgres protocol on {at} (psql \"host={} port={} dbname=weir sslmode=require\")",
                    at.ip(),
                    at.port()
                );
            } else {
                tracing::info!(
                    "Postgres protocol on {at} (psql -h {} -p {} -d weir)",
                    at.ip(),
                    at.port()
                );
            }
            Some(AbortOnDrop(tokio::spawn(weir::pg::serve(
                listener,
                engine.clone(),
                weir::pg::PgOptions {
                    auth: auth.clone(),
                    require_tls: other_tls.is_some(),
                    tls: other_tls.clone(),
                    limit: weir::net::ConnectionLimit::new("postgres", config.max_connections),
                },
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
                weir::kafka::KafkaOptions {
                    auth: auth.clone(),
                    tls: other_tls,
                    limit: weir::net::ConnectionLimit::new("kafka", config.max_connections),
                },
            ))))
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        "Weir is ready at {scheme}://{address} (data dir {})",
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
