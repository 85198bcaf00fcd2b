//! Window functions over queries: the first arguments of `TUMBLE` / `HOP` that are a
//! subquery, a CTE or a view, lifted out and planned for the window functions to read
//! (see `sql::lift_window_inputs`), and views inlined as their definitions in continuous
//! queries.

use datafusion::sql::parser::Statement as DFStatement;

use super::{Engine, Error, Result};

/// The lifted window-function inputs of one statement, forgotten when it is planned.
pub(super) struct LiftedInputs {
    relations: crate::planner::Relations,
    names: Vec<String>,
}

impl Drop for LiftedInputs {
    fn drop(&mut self) {
        let mut relations = self.relations.write();
        for name in &self.names {
            relations.remove(name);
        }
    }
}

impl Engine {
    /// Plans the inputs of window functions that are queries, CTEs or views (see
    /// `sql::lift_window_inputs`) after Weir's rewrites, for the window functions to read
    /// while `statement` is planned; the guard forgets them.
    /// A view named there is its rows now (a continuous query has its views inlined
    /// first: [`Engine::inline_window_views`]).
    pub(super) async fn lift_window_inputs(
        &self,
        statement: &mut DFStatement,
        bounded: bool,
    ) -> Result<LiftedInputs> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut guard = LiftedInputs {
            relations: self.relations.clone(),
            names: Vec::new(),
        };
        let query = match statement {
            DFStatement::Statement(inner) => match inner.as_mut() {
                datafusion::sql::sqlparser::ast::Statement::Query(q) => q,
                datafusion::sql::sqlparser::ast::Statement::Insert(insert) => {
                    match insert.source.as_mut() {
                        Some(q) => q,
                        None => return Ok(guard),
                    }
                }
                _ => return Ok(guard),
            },
            _ => return Ok(guard),
        };
        let lifted = {
            let views = self.views.read();
            let relation = |name: &str| -> Option<String> {
                views
                    .contains_key(name)
                    .then(|| format!("SELECT * FROM \"{name}\""))
            };
            crate::sql::lift_window_inputs(query, &relation, &mut || {
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("{}{n}", crate::planner::LIFTED_PREFIX)
            })
        };
        for input in lifted {
            let parsed = crate::sql::parse_sql(&input.sql).map_err(|e| Error::Parse {
                message: e.message,
                position: None,
            })?;
            let Some(crate::sql::WeirStatement::DataFusion(mut inner)) =
                parsed.into_iter().next().map(|s| s.statement)
            else {
                return Err(Error::Invalid(format!(
                    "the first argument of a window function must be a query: {}",
                    input.sql
                )));
            };
            if let DFStatement::Statement(inner) = inner.as_mut() {
                self.rewrite_query(inner)?;
            }
            let plan = self
                .session
                .state()
                .statement_to_plan(*inner)
                .await
                .map_err(Error::from_datafusion)?;
            // Bounded, a temporal join in the input runs as plain SQL (continuous, the
            // planner finds its marker).
            let plan = match bounded {
                true => crate::planner::temporal::expand_bounded(plan)
                    .map_err(Error::from_datafusion)?,
                false => plan,
            };
            self.relations.write().insert(input.name.clone(), plan);
            guard.names.push(input.name);
        }
        Ok(guard)
    }

    /// A view named as a window function's input, in a continuous query, becomes its
    /// definition: a view's rows are state, not a log to follow, so the query computes
    /// what the view computes (from the same streams).
    pub(super) fn inline_window_views(&self, query: &mut datafusion::sql::sqlparser::ast::Query) {
        let queries = self.queries.lock();
        let views = self.views.read();
        crate::sql::inline_window_views(query, &|name| {
            views
                .contains_key(name)
                .then(|| queries.get(name).map(|q| q.def.select.clone()))
                .flatten()
        });
    }
}
