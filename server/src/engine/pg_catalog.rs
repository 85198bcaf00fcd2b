//! What Postgres clients expect of the SQL surface when they connect and browse:
//! `pg_catalog` (from `datafusion-pg-catalog`: `pg_class`, `pg_attribute`, `pg_type`, ...,
//! built live from the session's catalog, so every stream and view shows up as a table),
//! `current_setting(name)`, and a `version()` that starts the way drivers parse it
//! (`PostgreSQL 16.6 ...`). The settings themselves are [`PG_SETTINGS`]; the Postgres
//! listener answers `SHOW name` from the same list.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;

/// The Postgres version Weir reports: clients parse it to pick their features.
pub const SERVER_VERSION: &str = "16.6";

/// Session settings as a Postgres 16 server reports them (name, value); names compare
/// case-insensitively.
pub const PG_SETTINGS: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", "160006"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("search_path", "public"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
    ("default_transaction_read_only", "off"),
    ("statement_timeout", "0"),
    ("max_identifier_length", "63"),
    ("is_superuser", "on"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("application_name", ""),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
];

/// The default of a Postgres setting, if Weir knows it.
pub fn pg_setting(name: &str) -> Option<&'static str> {
    PG_SETTINGS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// The text `version()` returns.
pub fn version_text() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Weir {}, on Apache DataFusion {})",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    )
}

/// Registers `pg_catalog` in catalog `weir`, `current_setting` and `version`.
pub fn register(session: &SessionContext) -> Result<()> {
    datafusion_pg_catalog::setup_pg_catalog(session, "weir", EmptyContextProvider)
        .map_err(|e| *e)?;
    session.register_udf(create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| match &args[0] {
            ColumnarValue::Scalar(name) => {
                let name = match name {
                    ScalarValue::Utf8(n) | ScalarValue::Utf8View(n) | ScalarValue::LargeUtf8(n) => {
                        n.clone()
                    }
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                    name.and_then(|n| pg_setting(&n)).map(str::to_string),
                )))
            }
            ColumnarValue::Array(names) => {
                let names = datafusion::arrow::compute::cast(names, &DataType::Utf8)?;
                let names = names.as_string::<i32>();
                let values: StringArray = (0..names.len())
                    .map(|i| {
                        (!names.is_null(i))
                            .then(|| pg_setting(names.value(i)))
                            .flatten()
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(values)))
            }
        }),
    ));
    session.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version_text(),
            ))))
        }),
    ));
    Ok::<(), DataFusionError>(())
}
