//! Splitting a simple-query text into its statements (so session statements and catalog
//! queries can be answered one by one), and recognising the statements the listener
//! answers itself.

/// One statement of a text: where it starts (in characters, for error positions) and
/// its text without the trailing `;`.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece<'a> {
    pub offset_chars: usize,
    pub text: &'a str,
}

/// Splits `sql` at top-level `;`, leaving quoted strings, quoted identifiers, dollar
/// quotes and comments whole. Blank statements are dropped.
pub fn split_statements<'a>(sql: &'a str) -> Vec<Piece<'a>> {
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let push = |from: usize, to: usize, pieces: &mut Vec<Piece<'a>>| {
        let text = &sql[from..to];
        let trimmed = text.trim_start();
        if !trimmed.trim().is_empty() && !only_comments(trimmed) {
            let skipped = text.len() - trimmed.len();
            pieces.push(Piece {
                offset_chars: sql[..from + skipped].chars().count(),
                text: trimmed.trim_end(),
            });
        }
    };
    while i < bytes.len() {
        if let Some(end) = crate::sql::skip_literal(sql, i) {
            i = end;
            continue;
        }
        match bytes[i] {
            b';' => {
                push(start, i, &mut pieces);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        push(start, bytes.len().min(sql.len()), &mut pieces);
    }
    pieces
}

fn only_comments(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with("--")
    })
}

/// The statement's words, uppercased, up to `n` of them.
pub fn leading_words(text: &str, n: usize) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .take(n)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// `COPY (query) TO STDOUT [...]`: the query.
pub fn copy_to_stdout(text: &str) -> Option<&str> {
    let rest = text.trim();
    if !rest.get(..4)?.eq_ignore_ascii_case("COPY") {
        return None;
    }
    let rest = rest[4..].trim_start();
    let rest = rest.strip_prefix('(')?;
    // The matching parenthesis, outside quotes.
    let mut depth = 1usize;
    let mut quote: Option<char> = None;
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    let tail = leading_words(&rest[i + 1..], 2);
                    return (tail == ["TO", "STDOUT"]).then(|| rest[..i].trim());
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether a query reads the Postgres catalog (and so goes through the compatibility
/// rewriter first).
pub fn is_catalog_query(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let first = leading_words(text, 1);
    if !matches!(
        first.first().map(String::as_str),
        Some("SELECT" | "WITH" | "SHOW")
    ) {
        return false;
    }
    [
        "pg_catalog",
        "information_schema",
        "current_setting(",
        "current_schema",
        "current_database(",
        "current_user",
        "session_user",
        "::regclass",
        "::regtype",
        "::oid",
        "format_type(",
        "has_table_privilege",
        "version()",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
        || lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w.starts_with("pg_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let sql = "SELECT 'a;b'; -- c;\nSELECT \"x;\" FROM t;; SELECT $$;$$ ;  ";
        let pieces: Vec<_> = split_statements(sql).into_iter().map(|p| p.text).collect();
        assert_eq!(
            pieces,
            vec![
                "SELECT 'a;b'",
                "-- c;\nSELECT \"x;\" FROM t",
                "SELECT $$;$$"
            ]
        );
        assert_eq!(split_statements("SELECT 1; SELECT 2")[1].offset_chars, 10);
        assert!(split_statements(" ; -- nothing\n").is_empty());
        // An escape string's \' does not end it: two statements, not one.
        assert_eq!(
            split_statements("SELECT E'\\''; INSERT INTO s VALUES (1)").len(),
            2
        );
        assert_eq!(split_statements("SELECT $1 + 1")[0].text, "SELECT $1 + 1");
    }

    #[test]
    fn recognises_copy_and_catalog_queries() {
        assert_eq!(
            copy_to_stdout("COPY (SELECT a FROM (t) WHERE b = ')' EMIT CHANGES) TO STDOUT"),
            Some("SELECT a FROM (t) WHERE b = ')' EMIT CHANGES")
        );
        assert_eq!(copy_to_stdout("COPY t TO STDOUT"), None);
        assert!(is_catalog_query(
            "SELECT c.relname FROM pg_catalog.pg_class c"
        ));
        assert!(is_catalog_query("select * from pg_type"));
        assert!(!is_catalog_query("SELECT page_count FROM pages"));
        assert!(!is_catalog_query("CREATE STREAM pg_x (a INT)"));
    }
}
