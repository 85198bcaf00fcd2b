//! Statements as the Postgres extended protocol runs them: described before they run
//! (result columns, parameter types), run with `$n` parameters, and the catalog queries
//! clients send, over the same session as every other query.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;

use super::{Engine, Error, Result, StatementError, StatementResult};
use crate::sql::{WeirStatement, parse_sql};

/// What [`Engine::describe_sql`] learns of a statement.
#[derive(Debug, Default, Clone)]
pub struct Described {
    /// The result's columns; `None` when the statement returns no rows.
    pub schema: Option<SchemaRef>,
    /// The inferred type of each parameter `$1`, `$2`, ...
    pub params: Vec<Option<DataType>>,
}

/// The Postgres protocol's own bound on parameters per statement.
const MAX_PARAMETERS: usize = 65_535;

impl Engine {
    /// Runs one statement with values for its `$1`, `$2`, ... parameters (the Postgres
    /// extended protocol). Only queries and DML take parameters.
    pub async fn execute_with_params(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
        principal: &crate::auth::Principal,
    ) -> Result<Vec<StatementResult>, StatementError> {
        if params.is_empty() {
            return self.execute_sql_as(sql, principal).await;
        }
        let at_start = |error| StatementError {
            index: 1,
            line: 1,
            column: 1,
            error,
            completed: Vec::new(),
        };
        let mut statements = self.parse_checked(sql)?;
        super::authorize(&statements, principal)?;
        if statements.len() != 1 {
            return Err(at_start(Error::Invalid(
                "a statement with parameters ($1, ...) must be a single statement".into(),
            )));
        }
        match statements.pop().expect("one").statement {
            WeirStatement::DataFusion(statement) => self
                .run_datafusion(*statement, Some(params))
                .await
                .map(|r| vec![r])
                .map_err(at_start),
            _ => Err(at_start(Error::Invalid(
                "only queries and INSERT take parameters ($1, ...); write the values of Weir's \
                 own statements (CREATE STREAM, FLUSH, ...) into the SQL text"
                    .into(),
            ))),
        }
    }

    /// What one statement would return, without running it when it changes anything:
    /// its result columns (`None`: no rows, e.g. DDL or INSERT) and the types DataFusion
    /// infers for its parameters, in order (`None`: unknown). For the Postgres extended
    /// protocol's Describe.
    pub async fn describe_sql(&self, sql: &str) -> Result<Described> {
        self.check_sql_limits(sql)?;
        let mut statements = parse_sql(sql).map_err(|e| Error::Parse {
            message: e.message,
            position: e.position,
        })?;
        let Some(parsed) = statements.pop() else {
            return Ok(Described::default());
        };
        if !statements.is_empty() {
            return Err(Error::Invalid(
                "a prepared statement holds a single statement".into(),
            ));
        }
        match parsed.statement {
            WeirStatement::DataFusion(statement) => {
                let plan = self.plan_datafusion(*statement).await?;
                let mut params: Vec<(String, Option<DataType>)> = plan
                    .get_parameter_types()
                    .map_err(Error::from_datafusion)?
                    .into_iter()
                    .collect();
                params.sort_by_key(|(name, _)| {
                    name.trim_start_matches('$')
                        .parse::<usize>()
                        .unwrap_or(usize::MAX)
                });
                let count = params
                    .iter()
                    .filter_map(|(name, _)| name.trim_start_matches('$').parse::<usize>().ok())
                    .max()
                    .unwrap_or(0);
                if count > MAX_PARAMETERS {
                    return Err(Error::Invalid(format!(
                        "${count} is past the last parameter a statement may have (${MAX_PARAMETERS})"
                    )));
                }
                let mut types = vec![None; count];
                for (name, t) in params {
                    if let Ok(i) = name.trim_start_matches('$').parse::<usize>()
                        && i >= 1
                    {
                        types[i - 1] = t;
                    }
                }
                let rows = !matches!(
                    plan,
                    LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Statement(_)
                );
                Ok(Described {
                    schema: rows.then(|| Arc::new(plan.schema().as_arrow().clone())),
                    params: types,
                })
            }
            // Read-only statements with rows: their columns are those of their result.
            statement @ (WeirStatement::ShowStreams
            | WeirStatement::ShowQueries
            | WeirStatement::ShowSinks
            | WeirStatement::ShowMaterializedViews
            | WeirStatement::Describe { .. }
            | WeirStatement::ExplainContinuous(_)) => match self.execute(statement).await? {
                StatementResult::Rows { schema, .. } => Ok(Described {
                    schema: Some(schema),
                    params: Vec::new(),
                }),
                StatementResult::Ok { .. } => Ok(Described::default()),
            },
            _ => Ok(Described::default()),
        }
    }

    /// Runs a catalog query a Postgres client sent (already rewritten for DataFusion by
    /// the listener) over the same session as every other query.
    /// Runs a catalog query rewritten by `datafusion-pg-catalog`'s parser. Only a query
    /// is run this way (reads need no role beyond `read`, which every caller has); anything
    /// else is refused, so that no write reaches DataFusion past the role check.
    pub async fn execute_catalog_query(
        &self,
        statement: datafusion::sql::sqlparser::ast::Statement,
    ) -> Result<StatementResult> {
        if !matches!(
            statement,
            datafusion::sql::sqlparser::ast::Statement::Query(_)
        ) {
            return Err(Error::Invalid(
                "a catalog statement must be a query (SELECT ...)".into(),
            ));
        }
        self.run_datafusion(DFStatement::Statement(Box::new(statement)), None)
            .await
    }
}
