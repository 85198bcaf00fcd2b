//! Typed server configuration, defaulted in one place. Each setting comes from (highest
//! first) a command-line flag, its `WEIR_*` environment variable, the TOML config file
//! (`--config weir.toml`), or the default below, which works on a laptop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `weir serve` needs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where streams, segments and the catalog live. Default `./weir-data`.
    pub data_dir: PathBuf,
    /// Address of the HTTP API and console. Default `127.0.0.1:7878`.
    pub listen: SocketAddr,
    /// Largest accepted request body; larger ones get 413. Default 64 MiB.
    pub body_limit_bytes: usize,
    /// Segment size at which a partition rolls to a new file. Default 64 MiB.
    pub segment_bytes: u64,
    /// Seconds between retention passes over all streams. Default 30.
    pub retention_check_interval_secs: u64,
    /// Serve the console from this directory instead of the embedded copy. Default none.
    pub console_dir: Option<PathBuf>,
    /// Milliseconds between checkpoints of continuous queries; results become visible
    /// at checkpoints, so this is their freshness. Default 1000.
    pub checkpoint_interval_ms: u64,
    /// Where checkpoints are kept: a directory, or `s3://bucket/prefix`. Default
    /// `{data_dir}/checkpoints`.
    pub storage: Option<String>,
    /// Address of the PostgreSQL wire protocol listener, or `off`. Default
    /// [`DEFAULT_PG_LISTEN`], which is skipped with a warning when the port is taken;
    /// an address given explicitly must be free.
    pub pg_listen: Option<String>,
    /// Address of the Kafka protocol listener; off unless given.
    pub kafka_listen: Option<String>,
    /// Tokens, `NAME:ROLE:SECRET` or a bare admin `SECRET`. None: authentication is off
    /// (and Weir listens on loopback only, unless `insecure_listen`).
    pub auth_tokens: Vec<String>,
    /// A TOML file of tokens (`[[tokens]] name, role, secret, expires`).
    pub auth_file: Option<PathBuf>,
    /// Listen beyond loopback without authentication.
    pub insecure_listen: bool,
    /// `/metrics` without a token.
    pub metrics_public: bool,
    /// Origins whose pages may call the HTTP API (CORS and the Origin check).
    pub allowed_origins: Vec<String>,
    /// PEM certificate chain and private key: TLS on every listener.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Open connections per listener. Default 4096.
    pub max_connections: usize,
    /// Cancel bounded statements running longer (`30s`, `5m`; `0`: never). Default `5m`.
    pub statement_timeout: Option<String>,
    /// Memory of one bounded query (`2GiB`). Default a quarter of the machine's memory.
    pub query_memory: Option<String>,
    /// Rows of one answer. Default 1,000,000.
    pub max_result_rows: Option<usize>,
    /// Arrow bytes of one answer (`256MiB`).
    pub max_result_bytes: Option<String>,
    /// Bytes of one SQL text (`1MiB`).
    pub max_sql_bytes: Option<String>,
    /// Expression depth of one SQL text. Default 1000.
    pub max_sql_depth: Option<usize>,
    /// Continuous queries at once. Default 256.
    pub max_continuous_queries: Option<usize>,
    /// Columns of one stream. Default 1000.
    pub max_columns: Option<usize>,
    /// Default state budget of a continuous query (`1GiB`); a query's
    /// `WITH (state_limit = ...)` overrides it. Default a quarter of the machine's memory.
    pub state_limit: Option<String>,
}

/// The Postgres listener's address when none is configured (5433, beside a local
/// PostgreSQL's 5432).
pub const DEFAULT_PG_LISTEN: &str = "127.0.0.1:5433";

/// Where the Postgres listener goes.
#[derive(Debug, Clone, PartialEq)]
pub enum PgListen {
    Off,
    /// The address, and whether the user asked for it (then a taken port is an error).
    At(SocketAddr, bool),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./weir-data"),
            listen: "127.0.0.1:7878".parse().expect("valid default address"),
            body_limit_bytes: 64 << 20,
            segment_bytes: 64 << 20,
            retention_check_interval_secs: 30,
            console_dir: None,
            checkpoint_interval_ms: 1000,
            storage: None,
            pg_listen: None,
            kafka_listen: None,
            auth_tokens: Vec::new(),
            auth_file: None,
            insecure_listen: false,
            metrics_public: false,
            allowed_origins: Vec::new(),
            tls_cert: None,
            tls_key: None,
            max_connections: 4096,
            statement_timeout: None,
            query_memory: None,
            max_result_rows: None,
            max_result_bytes: None,
            max_sql_bytes: None,
            max_sql_depth: None,
            max_continuous_queries: None,
            max_columns: None,
            state_limit: None,
        }
    }
}

impl Config {
    /// Reads a TOML config file; every key is optional.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    /// The Postgres listener's address (`off` disables it).
    pub fn pg_listen(&self) -> Result<PgListen, String> {
        match self.pg_listen.as_deref().map(str::trim) {
            None => Ok(PgListen::At(
                DEFAULT_PG_LISTEN.parse().expect("valid default address"),
                false,
            )),
            Some(v) if v.eq_ignore_ascii_case("off") || v.is_empty() => Ok(PgListen::Off),
            Some(v) => v.parse().map(|a| PgListen::At(a, true)).map_err(|_| {
                format!("--pg-listen {v:?} is not an address such as 127.0.0.1:5433 (or off)")
            }),
        }
    }

    /// The Kafka listener's address, if it is on (`off` or nothing: it is not).
    pub fn kafka_listen(&self) -> Result<Option<SocketAddr>, String> {
        match self.kafka_listen.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("off") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                format!("--kafka-listen {v:?} is not an address such as 127.0.0.1:9092 (or off)")
            }),
        }
    }

    /// The tokens of `auth_tokens` and `auth_file`.
    pub fn tokens(&self) -> Result<crate::auth::Tokens, String> {
        let mut tokens = self
            .auth_tokens
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| crate::auth::Token::from_flag(t).map_err(|e| format!("--auth-token: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(path) = &self.auth_file {
            tokens.extend(crate::auth::Tokens::read_file(path)?);
        }
        crate::auth::Tokens::new(tokens)
    }

    /// The TLS settings, when both a certificate and a key are given.
    pub fn tls(&self) -> Result<Option<(PathBuf, PathBuf)>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some((cert.clone(), key.clone()))),
            (None, None) => Ok(None),
            (Some(_), None) => {
                Err("--tls-cert needs --tls-key (the certificate's private key)".into())
            }
            (None, Some(_)) => {
                Err("--tls-key needs --tls-cert (the certificate chain, PEM)".into())
            }
        }
    }

    /// The limits, from their settings and the defaults.
    pub fn limits(&self) -> Result<crate::limits::Limits, String> {
        use crate::limits::{parse_bytes, parse_timeout};
        let mut limits = crate::limits::Limits::default();
        let bytes = |flag: &str, v: &str| parse_bytes(v).map_err(|e| format!("--{flag}: {e}"));
        if let Some(v) = &self.statement_timeout {
            limits.statement_timeout =
                parse_timeout(v).map_err(|e| format!("--statement-timeout: {e}"))?;
        }
        if let Some(v) = &self.query_memory {
            limits.query_memory_bytes = bytes("query-memory", v)? as usize;
        }
        if let Some(v) = self.max_result_rows {
            limits.max_result_rows = v;
        }
        if let Some(v) = &self.max_result_bytes {
            limits.max_result_bytes = bytes("max-result-bytes", v)? as usize;
        }
        if let Some(v) = &self.max_sql_bytes {
            limits.max_sql_bytes = bytes("max-sql-bytes", v)? as usize;
        }
        if let Some(v) = self.max_sql_depth {
            limits.max_sql_depth = v;
        }
        if let Some(v) = self.max_continuous_queries {
            limits.max_continuous_queries = v;
        }
        if let Some(v) = self.max_columns {
            limits.max_columns = v;
        }
        if let Some(v) = &self.state_limit {
            limits.state_limit_bytes = bytes("state-limit", v)?;
        }
        Ok(limits)
    }

    pub fn engine_config(&self) -> crate::engine::EngineConfig {
        let mut engine = crate::engine::EngineConfig::new(&self.data_dir);
        engine.segment_bytes = self.segment_bytes;
        engine.retention_interval =
            std::time::Duration::from_secs(self.retention_check_interval_secs.max(1));
        engine.checkpoint_interval =
            std::time::Duration::from_millis(self.checkpoint_interval_ms.max(10));
        engine.storage = self.storage.clone();
        engine.limits = self.limits().unwrap_or_default();
        engine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_refuses_typos() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nbody_limit_bytes = 1024\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.body_limit_bytes, 1024);
        assert_eq!(config.data_dir, PathBuf::from("./weir-data"));
        std::fs::write(&path, "listne = \"127.0.0.1:9000\"\n").unwrap();
        assert!(Config::from_file(&path).unwrap_err().contains("listne"));
    }
}
