//! Temporal joins in Weir's dialect: `JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r`.
//!
//! sqlparser reads `FOR SYSTEM_TIME AS OF` only in dialects Weir does not use, and
//! DataFusion ignores it, so Weir carries it through in two steps:
//!
//! 1. [`rewrite_system_time`], on the SQL text before parsing: `rates FOR SYSTEM_TIME
//!    AS OF <expr>` becomes the table-function call `__weir_versioned(rates, <expr>)`,
//!    which the generic dialect parses.
//! 2. [`mark_temporal_joins`], on the parsed statement, with the catalog at hand: the
//!    call becomes `rates` again and the join's ON clause gains
//!    `__weir_as_of(<expr>, r.<rates' event-time column>)`, a marker that DataFusion
//!    plans as the condition `r.ts <= <expr>` and that the planners find in the join's
//!    filter: bounded queries expand it to "the latest version at or before `<expr>`"
//!    (`planner::temporal::expand_bounded`), continuous ones plan a temporal-join
//!    operator. `FOR SYSTEM_TIME AS OF PROCTIME()` adds no marker: it is a lookup join,
//!    the plain join against the table's rows as they are when each event is processed.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, JoinConstraint, JoinOperator, ObjectName, Query, SetExpr,
    TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::object_name;

/// The table function that carries `FOR SYSTEM_TIME AS OF` from the text to the AST.
const VERSIONED: &str = "__weir_versioned";
/// The marker in a temporal join's ON clause: `__weir_as_of(left time, right time)`.
pub const AS_OF: &str = "__weir_as_of";

const HOW: &str = "write ... FROM orders o [LEFT] JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r \
    ON o.currency = r.currency, where rates is a stream with a WATERMARK";

/// `table FOR SYSTEM_TIME AS OF expr` → `__weir_versioned(table, expr)` in the SQL text.
pub fn rewrite_system_time(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return sql.to_string();
    };
    let is_word =
        |t: &Token, w: &str| matches!(t, Token::Word(x) if x.value.eq_ignore_ascii_case(w));
    let solid: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    // (first token of the table name, FOR, first token after the expression)
    let mut found = Vec::new();
    for w in solid.windows(4) {
        let [f, s, a, o] = [w[0], w[1], w[2], w[3]];
        if !(is_word(&tokens[f], "FOR")
            && is_word(&tokens[s], "SYSTEM_TIME")
            && is_word(&tokens[a], "AS")
            && is_word(&tokens[o], "OF"))
        {
            continue;
        }
        // The table name before FOR: words joined by periods.
        let at = solid.iter().position(|&i| i == f).unwrap_or(0);
        if at == 0 || !matches!(tokens[solid[at - 1]], Token::Word(_)) {
            continue;
        }
        let mut start = at - 1;
        while start >= 2
            && tokens[solid[start - 1]] == Token::Period
            && matches!(tokens[solid[start - 2]], Token::Word(_))
        {
            start -= 2;
        }
        // The expression after OF: as far as sqlparser reads one.
        let mut parser = Parser::new(&GenericDialect {}).with_tokens(tokens[o + 1..].to_vec());
        if parser.parse_expr().is_err() {
            continue;
        }
        found.push((solid[start], f, o + 1 + parser.index()));
    }
    if found.is_empty() {
        return sql.to_string();
    }
    let text = |range: std::ops::Range<usize>| -> String {
        tokens[range].iter().map(|t| t.to_string()).collect()
    };
    let mut out = String::new();
    let mut at = 0;
    for (start, f, end) in found {
        // A match inside the previous one's expression (`... AS OF t FOR SYSTEM_TIME
        // AS OF ...`) is left as written; the parser then says what is wrong.
        if start < at {
            continue;
        }
        let of = (f..end).find(|&i| is_word(&tokens[i], "OF")).unwrap_or(f);
        out.push_str(&text(at..start));
        out.push_str(&format!(
            "{VERSIONED}({}, {})",
            text(start..f).trim(),
            text(of + 1..end).trim()
        ));
        at = end;
    }
    out.push_str(&text(at..tokens.len()));
    out
}

/// The SQL as the user wrote it: `__weir_versioned(table, expr)` → `table FOR
/// SYSTEM_TIME AS OF expr` (for the query text Weir stores and shows).
pub fn restore_system_time(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return sql.to_string();
    };
    let mut out = String::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_call = matches!(&tokens[i], Token::Word(w) if w.value.eq_ignore_ascii_case(VERSIONED))
            && tokens.get(i + 1) == Some(&Token::LParen);
        if !is_call {
            out.push_str(&tokens[i].to_string());
            i += 1;
            continue;
        }
        let (mut depth, mut comma, mut close) = (0, None, None);
        for (j, t) in tokens.iter().enumerate().skip(i + 1) {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
                Token::Comma if depth == 1 && comma.is_none() => comma = Some(j),
                _ => {}
            }
        }
        let (Some(comma), Some(close)) = (comma, close) else {
            out.push_str(&tokens[i].to_string());
            i += 1;
            continue;
        };
        let text = |r: std::ops::Range<usize>| -> String {
            tokens[r]
                .iter()
                .map(|t| t.to_string())
                .collect::<String>()
                .trim()
                .to_string()
        };
        out.push_str(&format!(
            "{} FOR SYSTEM_TIME AS OF {}",
            text(i + 2..comma),
            text(comma + 1..close)
        ));
        i = close + 1;
    }
    out
}

/// Turns each `__weir_versioned(table, expr)` back into `table` and marks its join.
/// `time_column_of` gives a stream's event-time (WATERMARK) column; `None` for a name
/// that is not a stream with one. An error says what is wrong and how to write it.
pub fn mark_temporal_joins(
    statement: &mut datafusion::sql::sqlparser::ast::Statement,
    time_column_of: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let mut marker = Marker {
        time_column_of,
        error: None,
    };
    let _ = statement.visit(&mut marker);
    match marker.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct Marker<'a> {
    time_column_of: &'a dyn Fn(&str) -> Option<String>,
    error: Option<String>,
}

impl VisitorMut for Marker<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Err(e) = self.mark(&mut query.body) {
            self.error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// The table and the time expression of a `__weir_versioned(...)` table factor.
fn versioned(factor: &TableFactor) -> Option<Result<(ObjectName, Expr), String>> {
    let TableFactor::Table { name, args, .. } = factor else {
        return None;
    };
    if !object_name(name).eq_ignore_ascii_case(VERSIONED) {
        return None;
    }
    let args: Vec<&FunctionArg> = args.as_ref().map(|a| a.args.iter().collect())?;
    let table = match args.first() {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(i)))) => {
            ObjectName::from(vec![i.clone()])
        }
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::CompoundIdentifier(parts)))) => {
            ObjectName::from(parts.clone())
        }
        _ => {
            return Some(Err(format!(
                "FOR SYSTEM_TIME AS OF follows a table name; {HOW}"
            )));
        }
    };
    match args.get(1) {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => Some(Ok((table, e.clone()))),
        _ => Some(Err(format!("FOR SYSTEM_TIME AS OF needs a time; {HOW}"))),
    }
}

fn is_proctime(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(f) if object_name(&f.name).eq_ignore_ascii_case("proctime"))
}

impl Marker<'_> {
    fn mark(&self, body: &mut SetExpr) -> Result<(), String> {
        match body {
            SetExpr::SetOperation { left, right, .. } => {
                self.mark(left)?;
                self.mark(right)
            }
            SetExpr::Select(select) => {
                for from in &mut select.from {
                    if versioned(&from.relation).is_some() {
                        return Err(format!(
                            "FOR SYSTEM_TIME AS OF names the versioned side of a join, not the \
                             first table of FROM; {HOW}"
                        ));
                    }
                    for join in &mut from.joins {
                        let Some(found) = versioned(&join.relation) else {
                            continue;
                        };
                        let (table, time) = found?;
                        let TableFactor::Table {
                            name, args, alias, ..
                        } = &mut join.relation
                        else {
                            unreachable!("versioned() matched a table factor");
                        };
                        *name = table.clone();
                        *args = None;
                        if is_proctime(&time) {
                            continue;
                        }
                        let stream = object_name(&table);
                        let column = (self.time_column_of)(&stream).ok_or_else(|| {
                            format!(
                                "{stream} has no event time to version it by: FOR SYSTEM_TIME \
                                 AS OF <time> joins a stream with a WATERMARK; join a view \
                                 (or use FOR SYSTEM_TIME AS OF PROCTIME()) for its rows as they \
                                 are now"
                            )
                        })?;
                        let qualifier = match alias {
                            Some(a) => a.name.clone(),
                            None => table
                                .0
                                .last()
                                .and_then(|p| p.as_ident())
                                .cloned()
                                .unwrap_or_else(|| Ident::new(stream.clone())),
                        };
                        let marker = Expr::Function(Function {
                            name: ObjectName::from(vec![Ident::new(AS_OF)]),
                            uses_odbc_syntax: false,
                            parameters: FunctionArguments::None,
                            args: FunctionArguments::List(FunctionArgumentList {
                                duplicate_treatment: None,
                                args: vec![
                                    FunctionArg::Unnamed(FunctionArgExpr::Expr(time)),
                                    FunctionArg::Unnamed(FunctionArgExpr::Expr(
                                        Expr::CompoundIdentifier(vec![
                                            qualifier,
                                            Ident::with_quote('"', column),
                                        ]),
                                    )),
                                ],
                                clauses: vec![],
                            }),
                            filter: None,
                            null_treatment: None,
                            over: None,
                            within_group: vec![],
                        });
                        let constraint = match &mut join.join_operator {
                            JoinOperator::Join(c)
                            | JoinOperator::Inner(c)
                            | JoinOperator::Left(c)
                            | JoinOperator::LeftOuter(c) => c,
                            _ => {
                                return Err(format!(
                                    "a temporal join is an INNER or LEFT join; {HOW}"
                                ));
                            }
                        };
                        match constraint {
                            JoinConstraint::On(on) => {
                                *on = Expr::BinaryOp {
                                    left: Box::new(Expr::Nested(Box::new(on.clone()))),
                                    op: BinaryOperator::And,
                                    right: Box::new(marker),
                                };
                            }
                            _ => {
                                return Err(format!(
                                    "a temporal join matches keys in an ON clause; {HOW}"
                                ));
                            }
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_system_time_clauses_do_not_panic() {
        // Found by the sql fuzz target.
        let text = include_str!("../../../fuzz/regressions/sql/overlapping-system-time");
        let _ = rewrite_system_time(text);
        assert!(crate::sql::parse_sql(text).is_err());
    }

    #[test]
    fn system_time_becomes_a_table_function() {
        assert_eq!(
            rewrite_system_time(
                "SELECT * FROM orders o JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.c = r.c"
            ),
            "SELECT * FROM orders o JOIN __weir_versioned(rates, o.ts) AS r ON o.c = r.c"
        );
        assert_eq!(
            rewrite_system_time(
                "SELECT 1 FROM a LEFT JOIN s.rates FOR SYSTEM_TIME AS OF PROCTIME() r ON true"
            ),
            "SELECT 1 FROM a LEFT JOIN __weir_versioned(s.rates, PROCTIME()) r ON true"
        );
        let sql = "SELECT * FROM orders o JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.c = r.c";
        assert_eq!(restore_system_time(&rewrite_system_time(sql)), sql);
        let plain = "SELECT 'FOR SYSTEM_TIME AS OF' FROM t";
        assert_eq!(rewrite_system_time(plain), plain);
    }
}
