//! Rewrites of the parsed SQL before DataFusion plans it.
//!
//! Hidden metadata columns: every stream exposes `_partition`, `_offset` and
//! `_ingest_time` to DataFusion, but like Kafka's record metadata they appear only when a
//! query names them. A `*` (or `s.*`) over a stream therefore gets an
//! `EXCLUDE (_partition, _offset, _ingest_time)`, which DataFusion already understands.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    ExcludeSelectItem, Ident, ObjectName, Query, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, Statement, TableFactor, TableObject, VisitMut, VisitorMut, WildcardAdditionalOptions,
};

use super::{normalize_ident, object_name};
use crate::stream::METADATA_COLUMNS;

/// Adds `EXCLUDE (metadata columns)` to every wildcard that expands a stream.
/// `is_stream` tells whether a (normalized) table name is a stream.
pub fn hide_metadata_columns(statement: &mut Statement, is_stream: &dyn Fn(&str) -> bool) {
    let mut visitor = HideMetadata { is_stream };
    let _ = statement.visit(&mut visitor);
}

/// `INSERT INTO s VALUES (...)` without a column list means the stream's own columns,
/// not its metadata columns: name them, so DataFusion matches values to user columns.
pub fn name_insert_columns(
    statement: &mut Statement,
    columns_of: &dyn Fn(&str) -> Option<Vec<String>>,
) {
    if let Statement::Insert(insert) = statement {
        if let TableObject::TableName(name) = &insert.table {
            if insert.columns.is_empty() {
                if let Some(columns) = columns_of(&object_name(name)) {
                    insert.columns = columns
                        .into_iter()
                        .map(|c| ObjectName::from(vec![Ident::with_quote('"', c)]))
                        .collect();
                }
            }
        }
    }
}

struct HideMetadata<'a> {
    is_stream: &'a dyn Fn(&str) -> bool,
}

impl VisitorMut for HideMetadata<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.fix_set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

impl HideMetadata<'_> {
    fn fix_set_expr(&self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                // Names (and aliases) under which a stream is visible in this FROM.
                let mut streams: Vec<String> = Vec::new();
                for table in &select.from {
                    let factors = std::iter::once(&table.relation)
                        .chain(table.joins.iter().map(|j| &j.relation));
                    for factor in factors {
                        if let TableFactor::Table {
                            name,
                            alias,
                            args: None,
                            ..
                        } = factor
                        {
                            let table_name = object_name(name);
                            if (self.is_stream)(&table_name) {
                                streams.push(
                                    alias
                                        .as_ref()
                                        .map_or(table_name, |a| normalize_ident(&a.name)),
                                );
                            }
                        }
                    }
                }
                if streams.is_empty() {
                    return;
                }
                for item in &mut select.projection {
                    match item {
                        SelectItem::Wildcard(options) => exclude_metadata(options),
                        SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(name),
                            options,
                        ) if streams.contains(&object_name(name)) => exclude_metadata(options),
                        _ => {}
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.fix_set_expr(left);
                self.fix_set_expr(right);
            }
            _ => {}
        }
    }
}

fn exclude_metadata(options: &mut WildcardAdditionalOptions) {
    let mut names: Vec<ObjectName> = match options.opt_exclude.take() {
        Some(ExcludeSelectItem::Single(name)) => vec![name],
        Some(ExcludeSelectItem::Multiple(names)) => names,
        None => Vec::new(),
    };
    for column in METADATA_COLUMNS {
        if !names.iter().any(|n| object_name(n) == column) {
            names.push(ObjectName::from(vec![Ident::new(column)]));
        }
    }
    options.opt_exclude = Some(ExcludeSelectItem::Multiple(names));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{WeirStatement, parse_sql};
    use datafusion::sql::parser::Statement as DFStatement;

    fn rewrite(sql: &str) -> String {
        let WeirStatement::DataFusion(statement) = parse_sql(sql).unwrap().remove(0).statement
        else {
            panic!("not a DataFusion statement")
        };
        let DFStatement::Statement(mut statement) = *statement else {
            panic!()
        };
        hide_metadata_columns(&mut statement, &|name| name == "s");
        statement.to_string()
    }

    #[test]
    fn wildcards_over_streams_hide_metadata() {
        assert_eq!(
            rewrite("SELECT * FROM s"),
            "SELECT * EXCLUDE (_partition, _offset, _ingest_time) FROM s"
        );
        assert!(rewrite("SELECT x.* FROM s AS x").contains("x.* EXCLUDE"));
        assert!(
            rewrite("SELECT * FROM (SELECT * FROM s) t")
                .starts_with("SELECT * FROM (SELECT * EXCLUDE")
        );
        assert_eq!(rewrite("SELECT * FROM other"), "SELECT * FROM other");
        assert_eq!(rewrite("SELECT _offset FROM s"), "SELECT _offset FROM s");
    }
}
