//! The engine's error type: what went wrong with a statement or a write, classified so
//! the API can pick a status code, and worded for the user who sent it.

use datafusion::common::DataFusionError;

use crate::catalog::CatalogError;
use crate::ingest::DecodeError;
use crate::log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQL text that does not parse; position is 1-based (line, column).
    #[error("{message}")]
    Parse {
        message: String,
        position: Option<(u64, u64)>,
    },
    /// A statement or request that is well-formed but not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// An unknown stream (or other object).
    #[error("{0}")]
    NotFound(String),
    /// Creating something that exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// A request body with a bad row.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{}", datafusion_message(.0))]
    DataFusion(#[from] DataFusionError),
    #[error("storage error: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The caller's role does not allow the statement.
    #[error("{0}")]
    Forbidden(String),
    /// Over one of the server's limits (SQL size, result size, partitions, ...); the
    /// message names the flag that raises it.
    #[error("{0}")]
    Limit(String),
    /// A query that needed more memory than `--query-memory` gives it.
    #[error("{0}")]
    ResourcesExhausted(String),
    /// A statement cancelled by `--statement-timeout`.
    #[error("{0}")]
    Timeout(String),
    /// Weir is still recovering its data.
    #[error("Weir is starting up (recovering streams); retry shortly")]
    NotReady,
    /// A bug: the message says so.
    #[error("internal error (a bug in Weir, please report it): {0}")]
    Internal(String),
}

impl Error {
    /// Whether the user can fix this by changing the request (4xx) or it is ours (5xx).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Parse { .. }
            | Error::Invalid(_)
            | Error::NotFound(_)
            | Error::AlreadyExists(_)
            | Error::Decode(_)
            | Error::Forbidden(_)
            | Error::Limit(_)
            | Error::ResourcesExhausted(_)
            | Error::Timeout(_) => true,
            Error::DataFusion(e) => is_user_datafusion_error(e),
            Error::Log(_) | Error::Catalog(_) | Error::NotReady | Error::Internal(_) => false,
        }
    }

    /// Classifies DataFusion errors: an unknown table is a not-found, the rest keep their kind.
    pub fn from_datafusion(e: DataFusionError) -> Error {
        let message = datafusion_message(&e);
        if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
            return Error::ResourcesExhausted(format!(
                "resources exhausted: the query needs more memory than --query-memory allows \
                 ({message}); add filters or a LIMIT, or raise --query-memory"
            ));
        }
        if let Some(rest) = message.strip_prefix("table '")
            && let Some((name, _)) = rest.split_once("' not found")
        {
            let short = name.rsplit('.').next().unwrap_or(name);
            return Error::NotFound(format!(
                "unknown stream \"{short}\"; SHOW STREAMS lists the streams that exist"
            ));
        }
        Error::DataFusion(e)
    }
}

fn is_user_datafusion_error(e: &DataFusionError) -> bool {
    match e.find_root() {
        DataFusionError::Internal(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ObjectStore(_) => false,
        DataFusionError::External(inner) => !inner.is::<LogError>(),
        _ => true,
    }
}

pub use crate::runtime::datafusion_message;

pub type Result<T, E = Error> = std::result::Result<T, E>;
