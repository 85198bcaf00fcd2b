//! Window table functions over a query, not only a stream: `TUMBLE((SELECT ...), ts,
//! size)`, `TUMBLE(cte, ts, size)` or `HOP(view, ...)` (cascaded windows, Flink's
//! `TUMBLE(TABLE window1, DESCRIPTOR(rowtime), ...)`). DataFusion hands a table
//! function its arguments as expressions, and a subquery there is a scalar subquery, so
//! before planning each such first argument is lifted out: replaced by a generated
//! name, with the SQL of the relation it stands for (the CTEs in scope included). The
//! engine plans that SQL and lets the window functions read the plan under the name.

use datafusion::sql::sqlparser::ast::{
    Cte, Expr, FunctionArg, FunctionArgExpr, Ident, Query, SetExpr, TableFactor,
};

use super::object_name;

/// A first argument lifted out of a window function: the name it now has, and the SQL
/// of the relation behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiftedInput {
    pub name: String,
    pub sql: String,
}

/// Lifts the first arguments of `TUMBLE` / `HOP` in `query` that are a subquery, a CTE
/// of the query or a name `relation` gives the SQL of (a view), innermost first,
/// naming each with `next_name`.
pub fn lift_window_inputs(
    query: &mut Query,
    relation: &dyn Fn(&str) -> Option<String>,
    next_name: &mut dyn FnMut() -> String,
) -> Vec<LiftedInput> {
    let mut lift = Lift {
        relation,
        next_name,
        inline: false,
        out: Vec::new(),
    };
    lift.query(query, &[]);
    lift.out
}

/// Replaces each view named as the first argument of `TUMBLE` / `HOP` by its definition
/// (`view_sql`), as a subquery: what a continuous query over a view computes, written
/// into the query itself so it stands alone (it is stored so, and planned again at
/// every start).
pub fn inline_window_views(query: &mut Query, view_sql: &dyn Fn(&str) -> Option<String>) {
    let mut none = String::new;
    let mut lift = Lift {
        relation: view_sql,
        next_name: &mut none,
        inline: true,
        out: Vec::new(),
    };
    lift.query(query, &[]);
}

struct Lift<'a> {
    relation: &'a dyn Fn(&str) -> Option<String>,
    next_name: &'a mut dyn FnMut() -> String,
    /// Only put views' definitions in place (see [`inline_window_views`]).
    inline: bool,
    out: Vec<LiftedInput>,
}

impl Lift<'_> {
    fn query(&mut self, query: &mut Query, outer: &[Cte]) {
        let mut scope = outer.to_vec();
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                self.query(&mut cte.query, &scope);
                scope.retain(|c| c.alias.name.value != cte.alias.name.value);
                scope.push(cte.clone());
            }
        }
        self.set_expr(&mut query.body, &scope);
    }

    fn set_expr(&mut self, body: &mut SetExpr, scope: &[Cte]) {
        match body {
            SetExpr::Select(select) => {
                for from in &mut select.from {
                    self.factor(&mut from.relation, scope);
                    for join in &mut from.joins {
                        self.factor(&mut join.relation, scope);
                    }
                }
            }
            SetExpr::Query(q) => self.query(q, scope),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, scope);
                self.set_expr(right, scope);
            }
            _ => {}
        }
    }

    fn factor(&mut self, factor: &mut TableFactor, scope: &[Cte]) {
        match factor {
            TableFactor::Derived { subquery, .. } => self.query(subquery, scope),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.factor(&mut table_with_joins.relation, scope);
                for join in &mut table_with_joins.joins {
                    self.factor(&mut join.relation, scope);
                }
            }
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } if matches!(object_name(name).as_str(), "tumble" | "hop") => {
                let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) =
                    args.args.first_mut()
                else {
                    return;
                };
                let with = match scope.is_empty() {
                    true => String::new(),
                    false => {
                        let ctes: Vec<String> = scope.iter().map(|c| c.to_string()).collect();
                        format!("WITH {} ", ctes.join(", "))
                    }
                };
                if self.inline {
                    if let Expr::Identifier(id) = first
                        && !scope.iter().any(|c| c.alias.name.value == id.value)
                        && let Some(sql) = (self.relation)(&super::normalize_ident(id))
                        && let Ok(mut parsed) =
                            datafusion::sql::sqlparser::parser::Parser::parse_sql(
                                &datafusion::sql::sqlparser::dialect::GenericDialect {},
                                &sql,
                            )
                        && let Some(datafusion::sql::sqlparser::ast::Statement::Query(q)) =
                            parsed.pop()
                    {
                        *first = Expr::Subquery(q);
                    }
                    return;
                }
                let sql = match first {
                    Expr::Subquery(q) => {
                        self.query(q, scope);
                        format!("{with}SELECT * FROM ({q}) AS lifted")
                    }
                    Expr::Identifier(id)
                        if scope.iter().any(|c| c.alias.name.value == id.value) =>
                    {
                        format!("{with}SELECT * FROM {id}")
                    }
                    Expr::Identifier(id) => match (self.relation)(&super::normalize_ident(id)) {
                        Some(sql) => sql,
                        None => return,
                    },
                    _ => return,
                };
                let lifted = (self.next_name)();
                *first = Expr::Identifier(Ident::new(lifted.clone()));
                self.out.push(LiftedInput { name: lifted, sql });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn lift(sql: &str) -> (String, Vec<LiftedInput>) {
        let mut statement = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        let Statement::Query(query) = &mut statement else {
            panic!()
        };
        let mut n = 0;
        let view = |name: &str| (name == "v").then(|| "SELECT * FROM v".to_string());
        let lifted = lift_window_inputs(query, &view, &mut || {
            n += 1;
            format!("w{n}")
        });
        (statement.to_string(), lifted)
    }

    #[test]
    fn lifts_subqueries_ctes_and_views_not_streams() {
        let (sql, lifted) = lift(
            "WITH c AS (SELECT * FROM TUMBLE(s, ts, INTERVAL '1' SECOND)) \
             SELECT * FROM TUMBLE(c, window_end, INTERVAL '1' MINUTE) \
             JOIN TUMBLE((SELECT * FROM TUMBLE(s, ts, INTERVAL '2' SECOND)), window_end, INTERVAL '1' MINUTE) ON true \
             JOIN HOP(v, ts, INTERVAL '1' SECOND, INTERVAL '2' SECOND) ON true",
        );
        assert!(sql.contains("TUMBLE(w1, window_end"), "{sql}");
        assert!(sql.contains("TUMBLE(w2, window_end"), "{sql}");
        assert!(sql.contains("HOP(w3, ts"), "{sql}");
        assert!(sql.contains("TUMBLE(s, ts"), "{sql}");
        assert_eq!(
            lifted[0].sql,
            "WITH c AS (SELECT * FROM TUMBLE(s, ts, INTERVAL '1' SECOND)) SELECT * FROM c"
        );
        assert!(lifted[1].sql.contains(
            "SELECT * FROM (SELECT * FROM TUMBLE(s, ts, INTERVAL '2' SECOND)) AS lifted"
        ));
        assert_eq!(lifted[2].sql, "SELECT * FROM v");
    }

    #[test]
    fn inlines_views_as_subqueries() {
        let mut statement = Parser::parse_sql(
            &GenericDialect {},
            "SELECT * FROM TUMBLE(v, window_start, INTERVAL '1' MINUTE)",
        )
        .unwrap()
        .remove(0);
        let Statement::Query(query) = &mut statement else {
            panic!()
        };
        let view = |name: &str| (name == "v").then(|| "SELECT a FROM s".to_string());
        inline_window_views(query, &view);
        assert_eq!(
            statement.to_string(),
            "SELECT * FROM TUMBLE((SELECT a FROM s), window_start, INTERVAL '1' MINUTE)"
        );
    }
}
