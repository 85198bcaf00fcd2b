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

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

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
    if let Statement::Insert(insert) = statement
        && let TableObject::TableName(name) = &insert.table
        && insert.columns.is_empty()
        && let Some(columns) = columns_of(&object_name(name))
    {
        insert.columns = columns
            .into_iter()
            .map(|c| ObjectName::from(vec![Ident::with_quote('"', c)]))
            .collect();
    }
}

/// The GROUP BY spelling of windows (Flink's legacy / Arroyo's): `tumble(ts, size)` and
/// `tumble_start(ts, size)` become `date_bin(size, ts)` (windows aligned to the epoch),
/// `tumble_end(ts, size)` becomes `date_bin(size, ts) + size`. The continuous planner
/// knows `date_bin(size, ts)` as a window key that closes at `start + size`.
pub fn rewrite_window_functions(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Function(function) = expr {
            let name = object_name(&function.name);
            if let FunctionArguments::List(list) = &function.args
                && let [
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(ts)),
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(size)),
                ] = list.args.as_slice()
            {
                let text = match name.as_str() {
                    "tumble" | "tumble_start" => Some(format!("date_bin({size}, {ts})")),
                    "tumble_end" => Some(format!("(date_bin({size}, {ts}) + {size})")),
                    _ => None,
                };
                if let Some(text) = text {
                    let parsed = Parser::new(&GenericDialect {})
                        .try_with_sql(&text)
                        .and_then(|mut p| p.parse_expr());
                    if let Ok(replacement) = parsed {
                        *expr = replacement;
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// How a push query asked for its results (`SELECT ... EMIT CHANGES`, ksqlDB's
/// spelling, or `EMIT FINAL` / `EMIT ON WINDOW CLOSE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Changes,
    Final,
}

/// Splits a trailing `EMIT ...` clause off `sql` (sqlparser does not know it).
pub fn strip_emit(sql: &str) -> (String, Option<Emit>) {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return (sql.to_string(), None);
    };
    let solid: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t, Token::Whitespace(_) | Token::SemiColon))
        .map(|(i, _)| i)
        .collect();
    let word = |i: usize| match &tokens[i] {
        Token::Word(w) => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    let n = solid.len();
    let (start, emit) = if n >= 2 && word(solid[n - 2]) == "EMIT" && word(solid[n - 1]) == "CHANGES"
    {
        (solid[n - 2], Emit::Changes)
    } else if n >= 2 && word(solid[n - 2]) == "EMIT" && word(solid[n - 1]) == "FINAL" {
        (solid[n - 2], Emit::Final)
    } else if n >= 4
        && word(solid[n - 4]) == "EMIT"
        && word(solid[n - 3]) == "ON"
        && word(solid[n - 2]) == "WINDOW"
        && word(solid[n - 1]) == "CLOSE"
    {
        (solid[n - 4], Emit::Final)
    } else {
        return (sql.to_string(), None);
    };
    (
        tokens[..start]
            .iter()
            .map(|t| t.to_string())
            .collect::<String>()
            .trim()
            .to_string(),
        Some(emit),
    )
}

/// Flink's table-valued window spelling, `TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), size))`,
/// which sqlparser does not parse, rewritten at the token level to Weir's
/// `TUMBLE(bids, ts, size)`. Text without that pattern is returned unchanged.
pub fn rewrite_flink_windows(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return sql.to_string();
    };
    let is_word =
        |t: &Token, w: &str| matches!(t, Token::Word(x) if x.value.eq_ignore_ascii_case(w));
    let next_solid =
        |from: usize| (from..tokens.len()).find(|&i| !matches!(tokens[i], Token::Whitespace(_)));
    let mut drop = vec![false; tokens.len()];
    // Text to put before a token (the keys of Flink's `SESSION(TABLE s PARTITION BY k, ...)`).
    let mut before: Vec<Option<String>> = vec![None; tokens.len()];
    let mut found = false;
    let mut i = 0;
    while i < tokens.len() {
        let matched = (|| {
            if !is_word(&tokens[i], "TABLE") {
                return None;
            }
            let open = next_solid(i + 1).filter(|&j| tokens[j] == Token::LParen)?;
            let func = next_solid(open + 1)?;
            if !["TUMBLE", "HOP", "SESSION"]
                .iter()
                .any(|f| is_word(&tokens[func], f))
            {
                return None;
            }
            // The `)` that closes `TABLE(`.
            let mut depth = 0;
            let close = (open..tokens.len()).find(|&j| {
                match tokens[j] {
                    Token::LParen => depth += 1,
                    Token::RParen => depth -= 1,
                    _ => {}
                }
                depth == 0
            })?;
            Some((open, func, close))
        })();
        let Some((open, func, close)) = matched else {
            i += 1;
            continue;
        };
        found = true;
        drop[i] = true;
        drop[open] = true;
        drop[close] = true;
        if is_word(&tokens[func], "SESSION")
            && let Some(j) = (func..close).find(|&j| is_word(&tokens[j], "PARTITION"))
            && let Some(by) = next_solid(j + 1).filter(|&k| is_word(&tokens[k], "BY"))
        {
            // PARTITION BY k1, k2 runs up to DESCRIPTOR; it becomes a trailing 'k1, k2'.
            let end = (by..close)
                .find(|&k| is_word(&tokens[k], "DESCRIPTOR"))
                .unwrap_or(close);
            let keys: String = tokens[by + 1..end].iter().map(|t| t.to_string()).collect();
            let keys = keys.trim().trim_end_matches(',').trim().replace('\'', "");
            for d in drop.iter_mut().take(end).skip(j) {
                *d = true;
            }
            // Keep the comma that separated the stream from what followed.
            if let Some(comma) = (j..end).rev().find(|&k| tokens[k] == Token::Comma) {
                drop[comma] = false;
            }
            before[close - 1] = Some(format!(", '{keys}'"));
        }
        for j in func..close {
            if is_word(&tokens[j], "TABLE") {
                drop[j] = true;
            }
            if is_word(&tokens[j], "DESCRIPTOR")
                && let Some(lp) = next_solid(j + 1).filter(|&k| tokens[k] == Token::LParen)
                && let Some(rp) = (lp..close).find(|&k| tokens[k] == Token::RParen)
            {
                drop[j] = true;
                drop[lp] = true;
                drop[rp] = true;
            }
        }
        i = func;
    }
    if !found {
        return sql.to_string();
    }
    tokens
        .iter()
        .zip(drop)
        .zip(before)
        .map(|((t, d), b)| {
            let mut text = b.unwrap_or_default();
            if !d {
                text.push_str(&t.to_string());
            }
            text
        })
        .collect()
}

/// The GROUP BY spelling of hopping and session windows (Flink's legacy group windows):
/// `SELECT hop_start(ts, slide, size), ... FROM s GROUP BY hop(ts, slide, size), k`
/// becomes `SELECT window_start, ... FROM HOP(s, ts, slide, size) GROUP BY window_start,
/// window_end, k`, and likewise `session(ts, gap)` with `session_start` / `session_end`
/// becomes `SESSION(s, ts, gap)`. An event belongs to several hopping windows, which no
/// scalar expression can say, so the window moves into FROM.
pub fn rewrite_group_windows(statement: &mut Statement) {
    let _ = statement.visit(&mut GroupWindows);
}

struct GroupWindows;

impl VisitorMut for GroupWindows {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{GroupByExpr, TableFunctionArgs};
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let GroupByExpr::Expressions(groups, _) = &mut select.group_by else {
            return ControlFlow::Continue(());
        };
        let found = groups.iter().enumerate().find_map(|(i, g)| match g {
            Expr::Function(f) => {
                let name = object_name(&f.name);
                let FunctionArguments::List(list) = &f.args else {
                    return None;
                };
                ((name == "hop" && list.args.len() == 3)
                    || (name == "session" && list.args.len() == 2))
                    .then(|| (i, name, list.args.clone()))
            }
            _ => None,
        });
        let Some((i, function, args)) = found else {
            return ControlFlow::Continue(());
        };
        if select.from.len() != 1 || !select.from[0].joins.is_empty() {
            return ControlFlow::Continue(());
        }
        let TableFactor::Table {
            name,
            args: table_args @ None,
            ..
        } = &mut select.from[0].relation
        else {
            return ControlFlow::Continue(());
        };
        let stream = object_name(name);
        let mut all = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(
            Expr::Identifier(Ident::new(stream)),
        ))];
        all.extend(args);
        *table_args = Some(TableFunctionArgs {
            args: all,
            settings: None,
        });
        *name = ObjectName::from(vec![Ident::new(function.to_uppercase())]);
        groups.splice(
            i..=i,
            [
                Expr::Identifier(Ident::new("window_start")),
                Expr::Identifier(Ident::new("window_end")),
            ],
        );
        let (start, end) = (format!("{function}_start"), format!("{function}_end"));
        let _ = visit_expressions_mut(select.as_mut(), |expr| {
            if let Expr::Function(f) = expr {
                let name = object_name(&f.name);
                if name == start {
                    *expr = Expr::Identifier(Ident::new("window_start"));
                } else if name == end {
                    *expr = Expr::Identifier(Ident::new("window_end"));
                }
            }
            ControlFlow::<()>::Continue(())
        });
        ControlFlow::Continue(())
    }
}

/// `SESSION(s, ts, gap)` keeps sessions per group key (SQL.md): the GROUP BY columns
/// other than `window_start` / `window_end` become its fourth argument, `'k1, k2'`, so
/// bounded and continuous queries mean the same sessions.
pub fn session_keys(statement: &mut Statement) {
    let _ = statement.visit(&mut SessionKeys);
}

struct SessionKeys;

impl VisitorMut for SessionKeys {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{GroupByExpr, Value};
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let GroupByExpr::Expressions(groups, _) = &select.group_by else {
            return ControlFlow::Continue(());
        };
        let keys: Vec<String> = groups
            .iter()
            .filter_map(|g| match g {
                Expr::Identifier(i) => Some(normalize_ident(i)),
                Expr::CompoundIdentifier(parts) => parts.last().map(normalize_ident),
                _ => None,
            })
            .filter(|k| k != "window_start" && k != "window_end")
            .collect();
        for table in &mut select.from {
            if let TableFactor::Table {
                name,
                args: Some(args),
                ..
            } = &mut table.relation
                && object_name(name) == "session"
                && args.args.len() == 3
                && !keys.is_empty()
            {
                args.args
                    .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(
                        Value::SingleQuotedString(keys.join(", ")).into(),
                    ))));
            }
        }
        ControlFlow::Continue(())
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
    fn flink_window_spelling() {
        assert_eq!(
            rewrite_flink_windows(
                "SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) GROUP BY 1"
            ),
            "SELECT * FROM TUMBLE( bids, date_time, INTERVAL '10' SECOND) GROUP BY 1"
        );
        assert_eq!(
            rewrite_flink_windows("SELECT 'TABLE(' FROM t"),
            "SELECT 'TABLE(' FROM t"
        );
    }

    #[test]
    fn group_by_window_functions() {
        let WeirStatement::DataFusion(statement) = parse_sql(
            "SELECT tumble_start(ts, INTERVAL '1' MINUTE), tumble_end(ts, INTERVAL '1' MINUTE) FROM s GROUP BY tumble(ts, INTERVAL '1' MINUTE)",
        )
        .unwrap()
        .remove(0)
        .statement
        else {
            panic!()
        };
        let DFStatement::Statement(mut statement) = *statement else {
            panic!()
        };
        rewrite_window_functions(&mut statement);
        assert_eq!(
            statement.to_string(),
            "SELECT date_bin(INTERVAL '1' MINUTE, ts), (date_bin(INTERVAL '1' MINUTE, ts) + INTERVAL '1' MINUTE) FROM s GROUP BY date_bin(INTERVAL '1' MINUTE, ts)"
        );
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
