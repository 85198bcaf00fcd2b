//! `CREATE SINK name FROM stream_or_view WITH (connector = ..., ...)`: the options of the
//! sinks, parsed and checked. Pure; the sinks run in [`crate::external`].
//!
//! | connector  | option              | meaning                                                  | default          |
//! |------------|---------------------|----------------------------------------------------------|------------------|
//! | `postgres` | `url`               | `postgres://user:password@host:port/database`            | required         |
//! |            | `table`             | the table written (created when missing)                 | the sink's name  |
//! |            | `primary_key`       | `'a, b'`: rows are upserted by it (and deleted by it when a view's row goes) | required for a view |
//! | `kafka`    | `bootstrap_servers` | the Kafka cluster                                        | required         |
//! |            | `topic`             | the topic written (must exist)                           | required         |
//! |            | `format`            | `json`: each row a JSON object                           | `json`           |
//! |            | `key`               | a column whose value is the message key                  | none             |
//! |            | `delivery`          | `exactly_once` (Kafka transactions) or `at_least_once`   | `exactly_once`   |
//! |            | `properties.*`      | passed to the Kafka client                               | none             |

/// A sink's options.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkSpec {
    Postgres(PostgresSinkSpec),
    Kafka(KafkaSinkSpec),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostgresSinkSpec {
    pub url: String,
    pub table: String,
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSinkSpec {
    pub bootstrap_servers: String,
    pub topic: String,
    pub key: Option<String>,
    pub exactly_once: bool,
    pub properties: Vec<(String, String)>,
}

impl SinkSpec {
    /// Parses a sink's options (lowercase keys) for sink `name`.
    pub fn from_options(name: &str, options: &[(String, String)]) -> Result<SinkSpec, String> {
        let get = |key: &str| {
            options
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let connector = get("connector")
            .ok_or("a sink needs a connector: WITH (connector = 'postgres', ...) or WITH (connector = 'kafka', ...)")?
            .to_ascii_lowercase();
        let accepted: &[&str] = match connector.as_str() {
            "postgres" => &["connector", "url", "table", "primary_key"],
            "kafka" => &[
                "connector",
                "bootstrap_servers",
                "topic",
                "format",
                "key",
                "delivery",
            ],
            other => {
                return Err(format!(
                    "unknown sink connector '{other}'; connector must be 'postgres' or 'kafka'"
                ));
            }
        };
        for (key, _) in options {
            let passed = connector == "kafka" && key.starts_with("properties.");
            if !accepted.contains(&key.as_str()) && !passed {
                return Err(format!(
                    "unknown option \"{key}\" for a {connector} sink; it accepts {}{}",
                    accepted[1..].join(", "),
                    if connector == "kafka" {
                        ", properties.*"
                    } else {
                        ""
                    }
                ));
            }
        }
        let required = |key: &str, example: &str| {
            get(key).ok_or_else(|| {
                format!("a {connector} sink needs {key}; add {key} = '{example}' to WITH (...)")
            })
        };
        let columns = |text: Option<String>| -> Vec<String> {
            text.unwrap_or_default()
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty())
                .collect()
        };
        match connector.as_str() {
            "postgres" => Ok(SinkSpec::Postgres(PostgresSinkSpec {
                url: required("url", "postgres://user:password@localhost:5432/db")?,
                table: get("table").unwrap_or_else(|| name.to_string()),
                primary_key: columns(get("primary_key")),
            })),
            _ => {
                if let Some(format) = get("format")
                    && !format.eq_ignore_ascii_case("json")
                {
                    return Err(format!("a kafka sink writes format 'json', got '{format}'"));
                }
                let exactly_once = match get("delivery").map(|d| d.to_ascii_lowercase()).as_deref()
                {
                    None | Some("exactly_once") => true,
                    Some("at_least_once") => false,
                    Some(other) => {
                        return Err(format!(
                            "delivery must be 'exactly_once' or 'at_least_once', got '{other}'"
                        ));
                    }
                };
                Ok(SinkSpec::Kafka(KafkaSinkSpec {
                    bootstrap_servers: required("bootstrap_servers", "localhost:9092")?,
                    topic: required("topic", "alerts")?,
                    key: get("key").map(|k| k.to_ascii_lowercase()),
                    exactly_once,
                    properties: options
                        .iter()
                        .filter_map(|(k, v)| {
                            Some((k.strip_prefix("properties.")?.to_string(), v.clone()))
                        })
                        .collect(),
                }))
            }
        }
    }

    pub fn connector(&self) -> &'static str {
        match self {
            SinkSpec::Postgres(_) => "postgres",
            SinkSpec::Kafka(_) => "kafka",
        }
    }

    /// Where it writes, for SHOW SINKS: `postgres table t`, `kafka topic t`.
    pub fn target(&self) -> String {
        match self {
            SinkSpec::Postgres(p) => format!("table {}", p.table),
            SinkSpec::Kafka(k) => format!("topic {}", k.topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::opts;

    #[test]
    fn options_and_errors() {
        let spec = SinkSpec::from_options(
            "totals",
            &opts(&[
                ("connector", "postgres"),
                ("url", "postgres://h/db"),
                ("primary_key", "A, b"),
            ]),
        )
        .unwrap();
        assert_eq!(
            spec,
            SinkSpec::Postgres(PostgresSinkSpec {
                url: "postgres://h/db".into(),
                table: "totals".into(),
                primary_key: vec!["a".into(), "b".into()],
            })
        );
        let err = SinkSpec::from_options("s", &opts(&[("connector", "postgres"), ("uri", "x")]))
            .unwrap_err();
        assert_eq!(
            err,
            "unknown option \"uri\" for a postgres sink; it accepts url, table, primary_key"
        );
        let err = SinkSpec::from_options("s", &opts(&[("connector", "kafka"), ("topic", "t")]))
            .unwrap_err();
        assert_eq!(
            err,
            "a kafka sink needs bootstrap_servers; add bootstrap_servers = 'localhost:9092' to WITH (...)"
        );
        let err = SinkSpec::from_options("s", &opts(&[("connector", "s3")])).unwrap_err();
        assert!(err.starts_with("unknown sink connector 's3'"), "{err}");
    }
}
