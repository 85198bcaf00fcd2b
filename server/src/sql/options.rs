//! `WITH (...)` options of `CREATE STREAM` and the duration strings they use
//! (`retention = '7 days'`, `idle_timeout = '5 seconds'`).

use datafusion::arrow::compute::kernels::cast_utils::parse_interval_month_day_nano;
use datafusion::sql::sqlparser::ast::{Expr, SqlOption, Value};

/// The options a stream accepts, typed and defaulted. Unknown keys are refused so a typo
/// (`partition = 4`) does not silently fall back to a default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamOptions {
    pub partitions: Option<u32>,
    /// Partitioning key columns (`key = 'a'` or `key = 'a, b'`).
    pub key: Vec<String>,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub idle_timeout_ms: Option<i64>,
    /// Deduplication (`ROW_NUMBER() ... = 1`): how long a key is remembered after its
    /// row was emitted (`None`: forever).
    pub dedup_retention_ms: Option<i64>,
    /// Regular joins (no time bounds): how long past the watermark a row is held, by
    /// its event time (`None`: forever).
    pub state_ttl_ms: Option<i64>,
    /// Continuous queries: the state they may hold before they stop (`None`: the
    /// server's `--state-limit`).
    pub state_limit_bytes: Option<u64>,
    /// Options later layers interpret (`start`, `late_data`, `connector`, ...), as text.
    pub other: Vec<(String, String)>,
}

/// Keys `CREATE STREAM` understands beyond the typed ones; anything else is refused.
const PASS_THROUGH: &[&str] = &[
    "start",
    "parallelism",
    "late_data",
    "emit",
    "connector",
    "event",
    "rate",
    "max_events",
    "base_time",
    "seed",
    "rows_per_second",
    "segment_bytes",
    "bootstrap_servers",
    "topic",
    "format",
    "errors",
];

impl StreamOptions {
    pub fn parse(options: &[SqlOption]) -> Result<StreamOptions, String> {
        let mut out = StreamOptions::default();
        for option in options {
            let SqlOption::KeyValue { key, value } = option else {
                return Err(format!("unsupported option {option}; use key = value"));
            };
            let name = key.value.to_ascii_lowercase();
            let text = option_text(value);
            match name.as_str() {
                "partitions" => {
                    let n: u32 = text
                        .parse()
                        .ok()
                        .filter(|n| (1..=1024).contains(n))
                        .ok_or_else(|| {
                            format!("partitions must be a whole number from 1 to 1024, got {value}")
                        })?;
                    out.partitions = Some(n);
                }
                "key" => {
                    out.key = text
                        .split(',')
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty())
                        .collect();
                }
                "retention" => out.retention_ms = parse_optional_duration(&name, &text)?,
                "idle_timeout" => out.idle_timeout_ms = parse_optional_duration(&name, &text)?,
                "dedup_retention" => {
                    out.dedup_retention_ms = parse_optional_duration(&name, &text)?
                }
                "state_ttl" => out.state_ttl_ms = parse_optional_duration(&name, &text)?,
                "state_limit" => {
                    out.state_limit_bytes = Some(parse_bytes(&text).ok_or_else(|| {
                        format!(
                            "state_limit must be a size such as '1 GiB' or '512MiB', got {value}"
                        )
                    })?)
                }
                "retention_bytes" => {
                    out.retention_bytes = if is_unlimited(&text) {
                        None
                    } else {
                        Some(parse_bytes(&text).ok_or_else(|| {
                            format!("retention_bytes must be a byte count such as 1073741824 or '1 GiB', got {value}")
                        })?)
                    }
                }
                other
                    if PASS_THROUGH.contains(&other)
                        || other.starts_with("fields.")
                        || other.starts_with("properties.") =>
                {
                    out.other.push((name, text))
                }
                other => {
                    return Err(format!(
                        "unknown option {other:?}; CREATE STREAM accepts partitions, key, retention, \
                         retention_bytes, idle_timeout, dedup_retention, state_ttl, state_limit, {}",
                        PASS_THROUGH.join(", ")
                    ));
                }
            }
        }
        Ok(out)
    }
}

impl StreamOptions {
    /// Options as (lowercase key, text) pairs, unchecked: for statements whose options
    /// another layer checks (`CREATE SINK`).
    pub fn option_pairs(options: &[SqlOption]) -> Result<Vec<(String, String)>, String> {
        options
            .iter()
            .map(|option| match option {
                SqlOption::KeyValue { key, value } => {
                    Ok((key.value.to_ascii_lowercase(), option_text(value)))
                }
                other => Err(format!("unsupported option {other}; use key = value")),
            })
            .collect()
    }
}

fn option_text(value: &Expr) -> String {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

fn is_unlimited(text: &str) -> bool {
    matches!(
        text.to_ascii_lowercase().as_str(),
        "" | "unlimited" | "none" | "-1" | "infinite"
    )
}

fn parse_optional_duration(option: &str, text: &str) -> Result<Option<i64>, String> {
    if is_unlimited(text) {
        return Ok(None);
    }
    parse_duration_ms(text)
        .map(Some)
        .map_err(|e| format!("{option}: {e}"))
}

/// A duration such as `'7 days'`, `'90 seconds'` or `'1 hour 30 minutes'`, in milliseconds.
/// Months and years are refused: their length varies.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let interval = parse_interval_month_day_nano(text).map_err(|_| {
        format!("expected a duration such as '7 days' or '30 seconds', got {text:?}")
    })?;
    if interval.months != 0 {
        return Err(format!(
            "{text:?}: months and years have no fixed length; use days"
        ));
    }
    let ms = interval.days as i64 * 86_400_000 + interval.nanoseconds / 1_000_000;
    if ms < 0 {
        return Err(format!("{text:?}: a duration cannot be negative"));
    }
    Ok(ms)
}

/// A byte count such as `1073741824` or `1 GiB`.
fn parse_bytes(text: &str) -> Option<u64> {
    crate::limits::parse_bytes(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("7 days"), Ok(7 * 86_400_000));
        assert_eq!(parse_duration_ms("5 seconds"), Ok(5_000));
        assert_eq!(parse_duration_ms("1 hour 30 minutes"), Ok(5_400_000));
        assert!(parse_duration_ms("1 month").is_err());
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("2 MiB"), Some(2 << 20));
        assert_eq!(parse_bytes("lots"), None);
    }
}
