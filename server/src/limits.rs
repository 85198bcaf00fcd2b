//! The limits that keep the server up whatever one client sends, each with the flag that
//! raises it. A statement over a limit fails with an error naming the limit and the flag;
//! nothing else stops. Defaults suit a laptop and a small server alike.

use std::time::Duration;

/// Every limit of a server, set from `weir serve`'s flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// A bounded statement running longer is cancelled (`--statement-timeout`; `None`: no limit).
    pub statement_timeout: Option<Duration>,
    /// Memory one bounded query may hold in sorts, joins and aggregates before it spills
    /// or fails (`--query-memory`).
    pub query_memory_bytes: usize,
    /// Rows of one HTTP answer (`--max-result-rows`); more is refused with a hint to
    /// add LIMIT or use the streaming answer.
    pub max_result_rows: usize,
    /// Bytes of one answer's Arrow data (`--max-result-bytes`).
    pub max_result_bytes: usize,
    /// Bytes of one SQL text (`--max-sql-bytes`).
    pub max_sql_bytes: usize,
    /// How deeply expressions and subqueries may nest (`--max-sql-depth`).
    pub max_sql_depth: usize,
    /// Partitions of one stream (`--max-partitions`).
    pub max_partitions: u32,
    /// Columns of one stream (`--max-columns`).
    pub max_columns: usize,
    /// Continuous queries running at once (`--max-continuous-queries`).
    pub max_continuous_queries: usize,
    /// State one continuous query may hold unless its `WITH (state_limit = ...)` says
    /// otherwise (`--state-limit`).
    pub state_limit_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let memory = physical_memory_bytes();
        Limits {
            statement_timeout: Some(Duration::from_secs(300)),
            // A quarter of the machine for bounded queries, the rest for continuous
            // queries, the page cache and everything else.
            query_memory_bytes: (memory / 4).max(256 << 20) as usize,
            max_result_rows: 1_000_000,
            max_result_bytes: 256 << 20,
            max_sql_bytes: 1 << 20,
            max_sql_depth: 1000,
            max_partitions: 1024,
            max_columns: 1000,
            max_continuous_queries: 256,
            state_limit_bytes: (memory / 4).max(256 << 20),
        }
    }
}

/// The machine's memory (`/proc/meminfo`), or 4 GiB when it cannot be read.
pub fn physical_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024)
}

/// `512MiB`, `2 GiB`, `1g`, `64m`, `100kb` or plain bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 512MiB, 2GiB or 1048576"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use B, KiB, MiB, GiB or TiB"
            ));
        }
    };
    Ok((n * scale as f64) as u64)
}

/// A size for people: `1.5 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `5m`, `30s`, `1500ms`, `1h`, or `0` for no limit.
pub fn parse_timeout(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 5m or 0 (no limit)"))?;
    let ms = match unit.trim() {
        "" if n == 0 => 0,
        "ms" => n,
        "" | "s" => n * 1000,
        "m" | "min" => n * 60_000,
        "h" => n * 3_600_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use ms, s, m or h"
            ));
        }
    };
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

/// How deep the expression trees of a SQL text can be, outside string literals and
/// comments: brackets nest, and a chain of operators (`1 + 1 + ... + 1`, `a OR b OR
/// ...`) is as deep as it is long. Checked before parsing so that a pathological text
/// never reaches a recursive parser or planner.
pub fn nesting_depth(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    // Per open bracket: the operators met so far in its current comma-separated item.
    let mut levels: Vec<usize> = vec![0];
    let (mut deepest, mut i) = (0usize, 0usize);
    let depth = |levels: &[usize]| levels.len() - 1 + levels.iter().sum::<usize>();
    while i < bytes.len() {
        if let Some(end) = crate::sql::skip_literal(sql, i) {
            i = end;
            continue;
        }
        let c = bytes[i];
        match c {
            b'(' | b'[' => levels.push(0),
            b')' | b']' => {
                if levels.len() > 1 {
                    levels.pop();
                }
            }
            b',' | b';' => *levels.last_mut().expect("never empty") = 0,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'|' | b'&' | b'=' | b'<' | b'>' | b'^' | b'!' => {
                while bytes
                    .get(i + 1)
                    .is_some_and(|n| b"+-*/%|&=<>^!".contains(n) && *n != b'-')
                {
                    i += 1;
                }
                *levels.last_mut().expect("never empty") += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while bytes
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'_')
                {
                    i += 1;
                }
                let word = &sql[start..=i];
                if ["and", "or", "not"]
                    .iter()
                    .any(|w| word.eq_ignore_ascii_case(w))
                {
                    *levels.last_mut().expect("never empty") += 1;
                }
            }
            _ => {}
        }
        deepest = deepest.max(depth(&levels));
        i += 1;
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1 GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(format_bytes(1 << 30), "1 GiB");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(parse_timeout("0").unwrap(), None);
        assert_eq!(parse_timeout("5m").unwrap(), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_timeout("250ms").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_timeout("30").unwrap(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn depth_counts_brackets_outside_literals_and_comments() {
        assert_eq!(nesting_depth("SELECT ((1)), (2)"), 2);
        assert_eq!(nesting_depth("SELECT ((1)) + (2)"), 2);
        assert_eq!(nesting_depth("SELECT '((((' -- ((((\n, [1]"), 1);
        assert_eq!(
            nesting_depth(&format!(
                "SELECT {}1{}",
                "(".repeat(50_000),
                ")".repeat(50_000)
            )),
            50_000
        );
        assert_eq!(
            nesting_depth(&format!("SELECT 1{}", " + 1".repeat(50_000))),
            50_000
        );
        assert_eq!(
            nesting_depth("SELECT a FROM t WHERE a >= 1 AND b <> 2, c"),
            3
        );
        assert_eq!(
            nesting_depth(&format!("SELECT {}", "NOT ".repeat(300))),
            300
        );
    }
}
