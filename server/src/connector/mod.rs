//! Generator streams: rows made from a stream's `WITH (connector = ...)` options instead of
//! written by clients, for demos, tests and benchmarks.
//!
//! Owns the generators' options, their schemas and their rows, as pure functions of the
//! options and a row index. Knows nothing about pacing, tasks, logs or SQL parsing: the
//! caller asks for rows `[start, start + len)`, appends them to the stream, remembers how
//! far it got, and sleeps between batches to keep to [`GeneratorSpec::rate`].
//!
//! Two connectors:
//!
//! - `connector = 'nexmark'`: the Nexmark benchmark's people, auctions and bids
//!   ([`nexmark`]), e.g.
//!   `CREATE STREAM bids WITH (connector = 'nexmark', event = 'bid', rate = 100000, max_events = 1000000)`.
//! - `connector = 'datagen'`: random or sequential values for declared columns, like
//!   Flink's `datagen` ([`datagen`]), e.g.
//!   `CREATE STREAM t (id BIGINT, name TEXT, ts TIMESTAMP) WITH (connector = 'datagen', "fields.id.kind" = 'sequence')`.
//!
//! Options shared by both:
//!
//! | option       | meaning                                              | default                  |
//! |--------------|------------------------------------------------------|--------------------------|
//! | `rate`       | events per second (`rows_per_second` for datagen)    | as fast as possible      |
//! | `max_events` | rows in the stream, after which it ends              | unbounded                |
//! | `base_time`  | event time of the first row, `'2024-01-01 00:00:00'` or RFC 3339 (UTC unless an offset is given) | when the stream is created |
//!
//! Event times advance with the row index from `base_time`: the n-th event is stamped
//! `base_time + n / rate`, whether or not the rows are produced at that pace. Without a
//! `rate` the rows come as fast as possible and are stamped as if at 10,000 events per
//! second, so windows and watermarks behave the same in a benchmark as in a demo.
//!
//! # Determinism
//!
//! Row `n` is a function of the options and `n` alone, never of the wall clock or of
//! earlier calls: the same options give the same rows, and `batch(start, len)` is the
//! slice `[start, start + len)` of any larger batch. A restart resumes by asking for the
//! next index, and the rows are those it would have produced without the restart. The
//! only input from outside is the default `base_time`, which the caller fixes once by
//! persisting [`GeneratorSpec::resolved_options`].

pub mod datagen;
pub mod kafka;
pub mod nexmark;
pub mod sink;

use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use self::datagen::DatagenSpec;
use self::nexmark::NexmarkSpec;

/// Event times are spaced as if at this many events per second when no `rate` is given
/// (the Nexmark generator's own default).
pub const DEFAULT_EVENT_RATE: u64 = 10_000;

/// The fastest `rate` accepted: one event per nanosecond, the resolution of event times.
const MAX_RATE: u64 = 1_000_000_000;

/// A hard end for unbounded streams, far beyond any real run (2^56 rows is over two
/// thousand years at a million rows per second), so index arithmetic cannot overflow.
const LAST_INDEX: u64 = 1 << 56;

/// A generator stream's options, parsed from `CREATE STREAM ... WITH (connector = '...', ...)`.
#[derive(Debug, Clone, PartialEq)]
pub enum GeneratorSpec {
    Nexmark(NexmarkSpec),
    Datagen(DatagenSpec),
}

impl GeneratorSpec {
    /// Parses a stream's `WITH` options (lowercase keys, unquoted values). `None` when there
    /// is no `connector` option: the stream is an ordinary one. Options the generators do
    /// not know are left to the caller, which owns the stream's other options.
    ///
    /// `now_ms` becomes `base_time` when the options do not give one.
    pub fn from_options(
        options: &[(String, String)],
        now_ms: i64,
    ) -> Result<Option<GeneratorSpec>, String> {
        Self::from_options_with_schema(options, now_ms, None)
    }

    /// Like [`from_options`](Self::from_options), with the stream's declared columns (the
    /// `CREATE STREAM t (...)` column list), which `datagen` needs and `nexmark` checks.
    pub fn from_options_with_schema(
        options: &[(String, String)],
        now_ms: i64,
        declared: Option<SchemaRef>,
    ) -> Result<Option<GeneratorSpec>, String> {
        let Some(connector) = option(options, "connector") else {
            return Ok(None);
        };
        let connector = connector.trim().to_ascii_lowercase();
        if connector == "kafka" {
            return Ok(None); // a source, not a generator: see `kafka`
        }
        if connector != "nexmark" && connector != "datagen" {
            return Err(format!(
                "unknown connector '{connector}'; connector must be 'kafka', 'nexmark' or 'datagen'"
            ));
        }
        let base_time_ns = match option(options, "base_time") {
            Some(text) => parse_base_time(text)?,
            None => now_ms.saturating_mul(1_000_000),
        };
        let spec = if connector == "nexmark" {
            GeneratorSpec::Nexmark(NexmarkSpec::from_options(options, base_time_ns, declared)?)
        } else {
            GeneratorSpec::Datagen(DatagenSpec::from_options(options, base_time_ns, declared)?)
        };
        Ok(Some(spec))
    }

    /// The options to persist so that a restart regenerates the same rows: every option
    /// the generator reads, `connector` and `base_time` included, with defaults written
    /// out. `from_options(&spec.resolved_options(), any_now)` gives back `spec`. Keys the
    /// generator does not read (`partitions`, ...) are not included: the caller keeps
    /// those and replaces or adds these.
    pub fn resolved_options(&self) -> Vec<(String, String)> {
        match self {
            GeneratorSpec::Nexmark(spec) => spec.resolved_options(),
            GeneratorSpec::Datagen(spec) => spec.resolved_options(),
        }
    }

    /// The Arrow schema of the rows.
    pub fn schema(&self) -> SchemaRef {
        match self {
            GeneratorSpec::Nexmark(spec) => spec.schema(),
            GeneratorSpec::Datagen(spec) => spec.schema(),
        }
    }

    /// The event-time column and the watermark delay in milliseconds to declare for it:
    /// `date_time` with 4 s for Nexmark; none for datagen, whose watermark, if any, is
    /// declared in its column list (`WATERMARK FOR ts AS ts - INTERVAL '1' SECOND`).
    pub fn watermark(&self) -> Option<(String, i64)> {
        match self {
            GeneratorSpec::Nexmark(spec) => Some(spec.watermark()),
            GeneratorSpec::Datagen(_) => None,
        }
    }

    /// Rows per second to produce so that event time keeps pace with the wall clock;
    /// `None` means as fast as possible.
    pub fn rate(&self) -> Option<u64> {
        match self {
            GeneratorSpec::Nexmark(spec) => spec.rate(),
            GeneratorSpec::Datagen(spec) => spec.rate(),
        }
    }

    /// Rows in the stream, after which it ends; `None` means unbounded.
    pub fn max_events(&self) -> Option<u64> {
        match self {
            GeneratorSpec::Nexmark(spec) => spec.max_events(),
            GeneratorSpec::Datagen(spec) => spec.max_events(),
        }
    }

    /// Rows `[start, start + len)` of the stream as one batch, cut short at
    /// [`max_events`](Self::max_events): empty once `start` is past the end. Each call is
    /// independent of earlier ones, so any index can be asked for first.
    pub fn batch(&self, start: u64, len: usize) -> RecordBatch {
        match self {
            GeneratorSpec::Nexmark(spec) => spec.batch(start, len),
            GeneratorSpec::Datagen(spec) => spec.batch(start, len),
        }
    }
}

/// The value of option `key`, if given.
fn option<'a>(options: &'a [(String, String)], key: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A whole number such as `1000000` or `1_000_000`.
fn parse_count(key: &str, text: &str) -> Result<u64, String> {
    let digits: String = text.trim().chars().filter(|c| *c != '_').collect();
    digits
        .parse()
        .map_err(|_| format!("{key} must be a whole number such as 1000000, got '{text}'"))
}

/// An events-per-second rate: 1 to 1,000,000,000.
fn parse_rate(key: &str, text: &str) -> Result<u64, String> {
    match parse_count(key, text) {
        Ok(rate) if (1..=MAX_RATE).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "{key} must be a whole number of events per second from 1 to {MAX_RATE}, such as 100000, got '{text}'"
        )),
    }
}

/// `base_time` as nanoseconds since the Unix epoch, parsed the way SQL casts a string to
/// TIMESTAMP: `'2024-01-01 00:00:00'`, `'2024-01-01T00:00:00.5Z'`, `'2024-01-01T02:00:00+02:00'`.
/// Without an offset the time is UTC.
fn parse_base_time(text: &str) -> Result<i64, String> {
    string_to_timestamp_nanos(text.trim()).map_err(|_| {
        format!(
            "base_time must be a timestamp such as '2024-01-01 00:00:00' or '2024-01-01T00:00:00Z', got '{text}'"
        )
    })
}

/// `base_time` written back in the form [`parse_base_time`] reads, to the nanosecond.
fn format_base_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.f")
        .to_string()
}

/// The event time of event number `n` at `rate` events per second:
/// `base + n * 1e9 / rate` nanoseconds, rounded down, saturating at the end of time.
fn event_time_ns(base_ns: i64, n: u64, rate: u64) -> i64 {
    let offset = match n.checked_mul(1_000_000_000) {
        Some(scaled) => scaled / rate,
        None => u64::try_from(u128::from(n) * 1_000_000_000 / u128::from(rate)).unwrap_or(u64::MAX),
    };
    base_ns.saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
}

/// The number of rows of `[start, start + len)` that exist in a stream of `total` rows
/// (`None`: unbounded).
fn rows_in_range(start: u64, len: usize, total: Option<u64>) -> usize {
    let end = total.unwrap_or(LAST_INDEX).min(LAST_INDEX);
    let available = end.saturating_sub(start);
    usize::try_from(available).map_or(len, |available| available.min(len))
}

/// The connector an option belongs to, for the options only one connector reads.
fn owner_of(key: &str) -> Option<&'static str> {
    match key {
        "event" => Some("nexmark"),
        "rows_per_second" | "seed" => Some("datagen"),
        "bootstrap_servers" | "topic" | "errors" => Some("kafka"),
        _ if key.starts_with("fields.") => Some("datagen"),
        _ => None,
    }
}

/// Refuses options that belong to another connector, so a misplaced option is an error
/// rather than silently ignored.
fn refuse_others_options(options: &[(String, String)], connector: &str) -> Result<(), String> {
    for (key, _) in options {
        if let Some(owner) = owner_of(key).filter(|owner| *owner != connector) {
            return Err(format!(
                "{key} is an option of connector '{owner}', not '{connector}'; remove it"
            ));
        }
    }
    Ok(())
}

/// `WITH (...)` options as the parsers get them, for tests.
#[cfg(test)]
pub(crate) fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<GeneratorSpec>();
    }

    #[test]
    fn no_connector_is_an_ordinary_stream() {
        let spec = GeneratorSpec::from_options(&opts(&[("partitions", "4")]), 0).unwrap();
        assert!(spec.is_none());
    }

    #[test]
    fn unknown_connector_names_the_choices() {
        let err = GeneratorSpec::from_options(&opts(&[("connector", "jdbc")]), 0).unwrap_err();
        assert_eq!(
            err,
            "unknown connector 'jdbc'; connector must be 'kafka', 'nexmark' or 'datagen'"
        );
    }

    #[test]
    fn base_time_forms() {
        let whole = parse_base_time("2024-01-01 00:00:00").unwrap();
        assert_eq!(whole, 1_704_067_200_000_000_000);
        assert_eq!(parse_base_time("2024-01-01T00:00:00Z").unwrap(), whole);
        assert_eq!(parse_base_time("2024-01-01T02:00:00+02:00").unwrap(), whole);
        assert_eq!(format_base_time(whole), "2024-01-01 00:00:00");
        let fraction = whole + 1_500_000;
        assert_eq!(format_base_time(fraction), "2024-01-01 00:00:00.001500");
        assert_eq!(
            parse_base_time(&format_base_time(fraction)).unwrap(),
            fraction
        );
        let err = parse_base_time("yesterday").unwrap_err();
        assert!(
            err.starts_with("base_time must be a timestamp such as"),
            "{err}"
        );
    }

    #[test]
    fn missing_base_time_is_now() {
        let now_ms = 1_704_067_200_123;
        let spec = GeneratorSpec::from_options(
            &opts(&[("connector", "nexmark"), ("event", "bid")]),
            now_ms,
        )
        .unwrap()
        .unwrap();
        let resolved = spec.resolved_options();
        assert!(resolved.contains(&("base_time".into(), "2024-01-01 00:00:00.123".into())));
        let again = GeneratorSpec::from_options(&resolved, 0).unwrap().unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn event_times_are_exact_and_saturate() {
        assert_eq!(event_time_ns(0, 3, 1_000), 3_000_000);
        assert_eq!(event_time_ns(0, 1, 3), 333_333_333);
        assert_eq!(event_time_ns(5, u64::MAX, 1), i64::MAX);
    }

    #[test]
    fn counts_and_rates() {
        assert_eq!(parse_count("max_events", "1_000_000"), Ok(1_000_000));
        assert_eq!(
            parse_count("max_events", "lots"),
            Err("max_events must be a whole number such as 1000000, got 'lots'".into())
        );
        assert_eq!(
            parse_rate("rate", "0"),
            Err("rate must be a whole number of events per second from 1 to 1000000000, such as 100000, got '0'".into())
        );
        assert_eq!(rows_in_range(10, 5, Some(12)), 2);
        assert_eq!(rows_in_range(20, 5, Some(12)), 0);
        assert_eq!(rows_in_range(20, 5, None), 5);
    }
}
