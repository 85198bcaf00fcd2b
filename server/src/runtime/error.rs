//! The runtime's errors: why a continuous query failed or could not start.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeError {
    /// Evaluating the query's plan on its rows failed (DataFusion or Arrow).
    Compute(String),
    /// Reading the source or writing the output or a checkpoint failed.
    Storage(String),
    /// A checkpoint that cannot be used for this query, with what to do.
    Checkpoint(String),
    /// The query stopped (or failed) while a caller waited for it.
    Stopped(String),
    /// The sink refused output (a push subscriber that fell behind or left).
    Sink(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Compute(m)
            | RuntimeError::Storage(m)
            | RuntimeError::Checkpoint(m)
            | RuntimeError::Stopped(m)
            | RuntimeError::Sink(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RuntimeError {}

impl From<datafusion::common::DataFusionError> for RuntimeError {
    fn from(e: datafusion::common::DataFusionError) -> Self {
        RuntimeError::Compute(datafusion_message(&e))
    }
}

/// A DataFusion error's message without the prefixes of its context ("Error during
/// planning: ..."): what users read.
pub fn datafusion_message(e: &datafusion::common::DataFusionError) -> String {
    let mut message = e.strip_backtrace();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Execution error: ",
        "Arrow error: ",
        "Invalid argument error: ",
        "This feature is not implemented: ",
        "External error: ",
        "SQL error: ",
    ] {
        while let Some(rest) = message.strip_prefix(prefix) {
            message = rest.to_string();
        }
    }
    message
}

impl From<datafusion::arrow::error::ArrowError> for RuntimeError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        RuntimeError::Compute(e.to_string())
    }
}

impl From<crate::log::LogError> for RuntimeError {
    fn from(e: crate::log::LogError) -> Self {
        RuntimeError::Storage(e.to_string())
    }
}

impl From<std::io::Error> for RuntimeError {
    fn from(e: std::io::Error) -> Self {
        RuntimeError::Storage(e.to_string())
    }
}

impl From<tokio::task::JoinError> for RuntimeError {
    fn from(e: tokio::task::JoinError) -> Self {
        RuntimeError::Compute(format!("a worker task failed: {e}"))
    }
}
