//! Weir's SQL names for Arrow types, used wherever a type is shown to a user: column
//! listings, `DESCRIBE`, API responses and error messages (`expected BIGINT, got "abc"`).
//!
//! Owns only the naming, one way (Arrow → SQL). Parsing SQL type names into Arrow types
//! is DataFusion's job (its SQL planner), and this module does not second-guess it.
//! Types Weir has no SQL name for fall back to Arrow's own `Display` (`Duration(ms)`),
//! so a name is always shown, even if it is not SQL.

use arrow::datatypes::DataType;

/// The SQL name of an Arrow type, e.g. `BIGINT`, `TIMESTAMPTZ`, `DECIMAL(10,2)`, `TEXT[]`.
pub fn sql_type_name(dt: &DataType) -> String {
    let name = match dt {
        DataType::Int8 => "TINYINT",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INT",
        DataType::Int64 => "BIGINT",
        DataType::UInt8 => "TINYINT UNSIGNED",
        DataType::UInt16 => "SMALLINT UNSIGNED",
        DataType::UInt32 => "INT UNSIGNED",
        DataType::UInt64 => "BIGINT UNSIGNED",
        DataType::Float32 => "REAL",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTEA",
        DataType::Date32 => "DATE",
        DataType::Timestamp(_, None) => "TIMESTAMP",
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ",
        DataType::Interval(_) => "INTERVAL",
        DataType::Decimal128(p, s) => return format!("DECIMAL({p},{s})"),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => return format!("{}[]", sql_type_name(f.data_type())),
        other => return other.to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, IntervalUnit, TimeUnit};
    use std::sync::Arc;

    #[test]
    fn scalar_names() {
        let cases = [
            (DataType::Int8, "TINYINT"),
            (DataType::Int16, "SMALLINT"),
            (DataType::Int32, "INT"),
            (DataType::Int64, "BIGINT"),
            (DataType::UInt8, "TINYINT UNSIGNED"),
            (DataType::UInt16, "SMALLINT UNSIGNED"),
            (DataType::UInt32, "INT UNSIGNED"),
            (DataType::UInt64, "BIGINT UNSIGNED"),
            (DataType::Float32, "REAL"),
            (DataType::Float64, "DOUBLE"),
            (DataType::Boolean, "BOOLEAN"),
            (DataType::Utf8, "TEXT"),
            (DataType::LargeUtf8, "TEXT"),
            (DataType::Utf8View, "TEXT"),
            (DataType::Binary, "BYTEA"),
            (DataType::LargeBinary, "BYTEA"),
            (DataType::BinaryView, "BYTEA"),
            (DataType::Date32, "DATE"),
            (DataType::Interval(IntervalUnit::MonthDayNano), "INTERVAL"),
            (DataType::Decimal128(10, 2), "DECIMAL(10,2)"),
        ];
        for (dt, name) in cases {
            assert_eq!(sql_type_name(&dt), name, "{dt:?}");
        }
    }

    #[test]
    fn timestamps_with_and_without_zone() {
        for unit in [
            TimeUnit::Second,
            TimeUnit::Millisecond,
            TimeUnit::Microsecond,
            TimeUnit::Nanosecond,
        ] {
            assert_eq!(sql_type_name(&DataType::Timestamp(unit, None)), "TIMESTAMP");
            let tz = DataType::Timestamp(unit, Some("UTC".into()));
            assert_eq!(sql_type_name(&tz), "TIMESTAMPTZ");
        }
    }

    #[test]
    fn lists_nest() {
        let text = Arc::new(Field::new("item", DataType::Utf8, true));
        assert_eq!(sql_type_name(&DataType::List(text.clone())), "TEXT[]");
        assert_eq!(sql_type_name(&DataType::LargeList(text.clone())), "TEXT[]");
        assert_eq!(sql_type_name(&DataType::FixedSizeList(text, 3)), "TEXT[]");
        let nested = Arc::new(Field::new_list(
            "item",
            Field::new("item", DataType::Int64, true),
            true,
        ));
        assert_eq!(sql_type_name(&DataType::List(nested)), "BIGINT[][]");
    }

    #[test]
    fn unnamed_types_fall_back_to_arrow_display() {
        let dt = DataType::Duration(TimeUnit::Millisecond);
        assert_eq!(sql_type_name(&dt), dt.to_string());
        assert_eq!(
            sql_type_name(&DataType::Time64(TimeUnit::Nanosecond)),
            "Time64(ns)"
        );
    }
}
