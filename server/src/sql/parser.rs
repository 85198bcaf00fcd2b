//! The wrapper parser: peeks at the first words of each statement, parses Weir's own
//! statements with sqlparser's public primitives, and hands everything else to
//! DataFusion's `DFParser`, the pattern DataFusion itself uses for its extensions.

use datafusion::sql::parser::DFParserBuilder;
use datafusion::sql::sqlparser::ast::{ColumnDef, Expr};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use super::{CreateStream, WatermarkClause, WeirStatement, object_name};

/// A statement with where it starts in the SQL text, so errors can point at it.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    pub statement: WeirStatement,
    /// 1-based position of the statement among the `;`-separated ones.
    pub index: usize,
    /// 1-based line and column of its first token.
    pub line: u64,
    pub column: u64,
}

/// A SQL text that does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    /// 1-based line and column, when the parser reported one.
    pub position: Option<(u64, u64)>,
}

impl ParseError {
    fn new(message: impl Into<String>) -> Self {
        let message = message.into();
        let position = position_in_message(&message);
        ParseError { message, position }
    }
}

/// sqlparser reports positions inside its messages ("... at Line: 1, Column: 8").
pub fn position_in_message(message: &str) -> Option<(u64, u64)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// Parse `;`-separated statements of the Weir dialect.
pub fn parse_sql(sql: &str) -> Result<Vec<ParsedStatement>, ParseError> {
    let rewritten =
        super::temporal::rewrite_system_time(&super::rewrite::rewrite_flink_windows(sql));
    let sql = rewritten.as_str();
    let dialect = GenericDialect {};
    let mut df = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()
        .map_err(|e| ParseError::new(strip_prefix(&e.to_string())))?;
    let mut statements = Vec::new();
    let mut expecting_delimiter = false;
    loop {
        while df.parser.consume_token(&Token::SemiColon) {
            expecting_delimiter = false;
        }
        let first = df.parser.peek_token();
        if first.token == Token::EOF {
            break;
        }
        if expecting_delimiter {
            return Err(expected("';' between statements", &first));
        }
        let statement = match parse_weir_statement(&mut df.parser) {
            Some(result) => result.map_err(|e| ParseError::new(strip_prefix(&e.to_string())))?,
            None => WeirStatement::DataFusion(Box::new(
                df.parse_statement()
                    .map_err(|e| ParseError::new(strip_prefix(&e.to_string())))?,
            )),
        };
        statements.push(ParsedStatement {
            statement,
            index: statements.len() + 1,
            line: first.span.start.line,
            column: first.span.start.column,
        });
        expecting_delimiter = true;
    }
    Ok(statements)
}

fn strip_prefix(message: &str) -> String {
    message
        .trim_start_matches("SQL error: ")
        .trim_start_matches("ParserError(\"")
        .trim_end_matches("\")")
        .trim_start_matches("sql parser error: ")
        .to_string()
}

fn expected(what: &str, found: &TokenWithSpan) -> ParseError {
    ParseError::new(format!(
        "Expected: {what}, found: {}{}",
        found.token, found.span.start
    ))
}

fn word_is(token: &TokenWithSpan, word: &str) -> bool {
    matches!(&token.token, Token::Word(w) if w.value.eq_ignore_ascii_case(word))
}

/// Parses the statement if it is one of Weir's; `None` leaves it to DataFusion.
fn parse_weir_statement(p: &mut Parser) -> Option<Result<WeirStatement, ParserError>> {
    let first = p.peek_nth_token(0);
    let second = p.peek_nth_token(1);
    if word_is(&first, "CREATE") && word_is(&second, "STREAM") {
        p.next_token();
        p.next_token();
        return Some(parse_create_stream(p));
    }
    if word_is(&first, "DROP") && word_is(&second, "STREAM") {
        p.next_token();
        p.next_token();
        return Some((|| {
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = object_name(&p.parse_object_name(false)?);
            Ok(WeirStatement::DropStream { name, if_exists })
        })());
    }
    if word_is(&first, "SHOW") && word_is(&second, "STREAMS") {
        p.next_token();
        p.next_token();
        return Some(Ok(WeirStatement::ShowStreams));
    }
    if word_is(&first, "DESCRIBE") || word_is(&first, "DESC") {
        // `DESCRIBE s` and `DESCRIBE STREAM s`; `DESCRIBE SELECT ...` stays DataFusion's.
        let (name_token, skip) = if word_is(&second, "STREAM") {
            (p.peek_nth_token(2), 2)
        } else {
            (second.clone(), 1)
        };
        if matches!(name_token.token, Token::Word(ref w) if w.keyword != Keyword::SELECT) {
            for _ in 0..skip {
                p.next_token();
            }
            return Some(
                p.parse_object_name(false)
                    .map(|name| WeirStatement::Describe {
                        name: object_name(&name),
                    }),
            );
        }
    }
    if word_is(&first, "CREATE")
        && word_is(&second, "MATERIALIZED")
        && word_is(&p.peek_nth_token(2), "VIEW")
    {
        for _ in 0..3 {
            p.next_token();
        }
        return Some((|| {
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = object_name(&p.parse_object_name(false)?);
            let mut options = p.parse_options(Keyword::WITH)?;
            p.expect_keyword(Keyword::AS)?;
            let query = p.parse_query()?;
            parse_emit(p, &mut options)?;
            Ok(WeirStatement::CreateMaterializedView {
                name,
                if_not_exists,
                options,
                query,
            })
        })());
    }
    if word_is(&first, "DROP")
        && word_is(&second, "MATERIALIZED")
        && word_is(&p.peek_nth_token(2), "VIEW")
    {
        for _ in 0..3 {
            p.next_token();
        }
        return Some((|| {
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = object_name(&p.parse_object_name(false)?);
            Ok(WeirStatement::DropMaterializedView { name, if_exists })
        })());
    }
    if word_is(&first, "CREATE") && word_is(&second, "SINK") {
        p.next_token();
        p.next_token();
        return Some((|| {
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = object_name(&p.parse_object_name(false)?);
            p.expect_keyword(Keyword::FROM)?;
            let from = object_name(&p.parse_object_name(false)?);
            let options = p.parse_options(Keyword::WITH)?;
            Ok(WeirStatement::CreateSink {
                name,
                if_not_exists,
                from,
                options,
            })
        })());
    }
    if word_is(&first, "DROP") && word_is(&second, "SINK") {
        p.next_token();
        p.next_token();
        return Some((|| {
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = object_name(&p.parse_object_name(false)?);
            Ok(WeirStatement::DropSink { name, if_exists })
        })());
    }
    if word_is(&first, "SHOW") && word_is(&second, "SINKS") {
        p.next_token();
        p.next_token();
        return Some(Ok(WeirStatement::ShowSinks));
    }
    if word_is(&first, "SHOW") && word_is(&second, "QUERIES") {
        p.next_token();
        p.next_token();
        return Some(Ok(WeirStatement::ShowQueries));
    }
    if word_is(&first, "SHOW")
        && word_is(&second, "MATERIALIZED")
        && word_is(&p.peek_nth_token(2), "VIEWS")
    {
        for _ in 0..3 {
            p.next_token();
        }
        return Some(Ok(WeirStatement::ShowMaterializedViews));
    }
    if word_is(&first, "EXPLAIN") && word_is(&second, "CREATE") {
        p.next_token();
        return match parse_weir_statement(p) {
            Some(Ok(
                inner @ (WeirStatement::CreateStream(_)
                | WeirStatement::CreateMaterializedView { .. }),
            )) => Some(Ok(WeirStatement::ExplainContinuous(Box::new(inner)))),
            Some(Ok(_)) | None => Some(Err(ParserError::ParserError(
                "EXPLAIN CREATE explains CREATE STREAM ... AS SELECT and CREATE MATERIALIZED VIEW"
                    .into(),
            ))),
            Some(Err(e)) => Some(Err(e)),
        };
    }
    if word_is(&first, "FLUSH") {
        p.next_token();
        return Some(Ok(WeirStatement::Flush));
    }
    None
}

/// After `CREATE STREAM`: `[IF NOT EXISTS] name [(columns)] [WITH (...)] [AS query]`.
fn parse_create_stream(p: &mut Parser) -> Result<WeirStatement, ParserError> {
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = object_name(&p.parse_object_name(false)?);
    let mut columns = Vec::new();
    let mut watermark = None;
    if p.consume_token(&Token::LParen) {
        loop {
            if word_is(&p.peek_token(), "WATERMARK") {
                p.next_token();
                p.expect_keyword(Keyword::FOR)?;
                let column = p.parse_identifier()?;
                p.expect_keyword(Keyword::AS)?;
                let expr: Expr = p.parse_expr()?;
                if watermark
                    .replace(WatermarkClause { column, expr })
                    .is_some()
                {
                    return Err(ParserError::ParserError(
                        "a stream has at most one WATERMARK clause".into(),
                    ));
                }
            } else {
                let column: ColumnDef = p.parse_column_def()?;
                columns.push(column);
            }
            if p.consume_token(&Token::Comma) {
                continue;
            }
            p.expect_token(&Token::RParen)?;
            break;
        }
    }
    let mut options = p.parse_options(Keyword::WITH)?;
    let query = if p.parse_keyword(Keyword::AS) {
        let query = p.parse_query()?;
        parse_emit(p, &mut options)?;
        Some(query)
    } else {
        None
    };
    Ok(WeirStatement::CreateStream(Box::new(CreateStream {
        name,
        if_not_exists,
        columns,
        watermark,
        options,
        query,
    })))
}

/// A trailing `EMIT CHANGES` / `EMIT FINAL` / `EMIT ON WINDOW CLOSE` after a continuous
/// query's SELECT, kept as the option `emit = 'changes' | 'final'` (the same as writing it
/// in `WITH (...)`).
fn parse_emit(
    p: &mut Parser,
    options: &mut Vec<datafusion::sql::sqlparser::ast::SqlOption>,
) -> Result<(), ParserError> {
    use datafusion::sql::sqlparser::ast::{Ident, SqlOption, Value};
    if !word_is(&p.peek_token(), "EMIT") {
        return Ok(());
    }
    p.next_token();
    let mode = if word_is(&p.peek_token(), "CHANGES") {
        p.next_token();
        "changes"
    } else if word_is(&p.peek_token(), "FINAL")
        || (p.parse_keywords(&[Keyword::ON, Keyword::WINDOW]) && word_is(&p.peek_token(), "CLOSE"))
    {
        p.next_token(); // FINAL or CLOSE
        "final"
    } else {
        return p.expected(
            "CHANGES, FINAL or ON WINDOW CLOSE after EMIT",
            p.peek_token(),
        );
    };
    if options.iter().any(
        |o| matches!(o, SqlOption::KeyValue { key, .. } if key.value.eq_ignore_ascii_case("emit")),
    ) {
        return Err(ParserError::ParserError(
            "EMIT is given twice (in WITH and after the query); keep one".into(),
        ));
    }
    options.push(SqlOption::KeyValue {
        key: Ident::new("emit"),
        value: Expr::Value(Value::SingleQuotedString(mode.into()).into()),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> WeirStatement {
        let mut all = parse_sql(sql).unwrap();
        assert_eq!(all.len(), 1, "{sql}");
        all.remove(0).statement
    }

    #[test]
    fn create_stream_with_watermark_and_options() {
        let WeirStatement::CreateStream(c) = one(
            "CREATE STREAM IF NOT EXISTS Bids (auction BIGINT, date_time TIMESTAMP NOT NULL, \
             WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) \
             WITH (partitions = 4, key = 'auction')",
        ) else {
            panic!("not a CREATE STREAM")
        };
        assert_eq!(c.name, "bids");
        assert!(c.if_not_exists);
        assert_eq!(c.columns.len(), 2);
        assert_eq!(c.watermark.unwrap().column.value, "date_time");
        assert_eq!(c.options.len(), 2);
        assert!(c.query.is_none());
    }

    #[test]
    fn several_statements_with_positions() {
        let all = parse_sql("SHOW STREAMS;\n  FLUSH; SELECT 1;").unwrap();
        assert_eq!(all.len(), 3);
        assert!(matches!(all[0].statement, WeirStatement::ShowStreams));
        assert!(matches!(all[1].statement, WeirStatement::Flush));
        assert_eq!((all[1].index, all[1].line, all[1].column), (2, 2, 3));
        assert!(matches!(all[2].statement, WeirStatement::DataFusion(_)));
    }

    #[test]
    fn drop_and_describe() {
        assert!(matches!(
            one("DROP STREAM IF EXISTS s"),
            WeirStatement::DropStream {
                if_exists: true,
                ..
            }
        ));
        assert!(matches!(one("DESCRIBE s"), WeirStatement::Describe { .. }));
        assert!(matches!(
            one("DESCRIBE STREAM s"),
            WeirStatement::Describe { .. }
        ));
    }

    #[test]
    fn errors_carry_positions() {
        let err = parse_sql("SELECT 1;\nSELEC 2").unwrap_err();
        assert_eq!(err.position, Some((2, 1)), "{}", err.message);
        let err = parse_sql("CREATE STREAM s (a BIGINT, 5)").unwrap_err();
        assert!(err.position.is_some(), "{}", err.message);
    }
}
