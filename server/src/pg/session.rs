//! The statements the listener answers itself: `SET`, `SHOW name`, transaction control
//! (accepted, not transactional) and the ones it accepts and ignores.

use super::split::leading_words;

/// A statement the listener answers itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Session {
    Set {
        name: String,
        value: String,
    },
    Show(String),
    Begin,
    Commit,
    Rollback,
    /// Accepted and ignored, answered with this tag.
    Ignored(String),
}

/// Recognises session statements (`SHOW STREAMS` and Weir's other SHOWs are not).
pub fn session_statement(text: &str) -> Option<Session> {
    let words = leading_words(text, 3);
    let first = words.first()?.as_str();
    match first {
        "BEGIN" | "START" => Some(Session::Begin),
        "COMMIT" | "END" => Some(Session::Commit),
        "ROLLBACK" | "ABORT" => Some(Session::Rollback),
        "RESET" | "DISCARD" | "DEALLOCATE" | "CLOSE" | "LISTEN" | "UNLISTEN" => {
            Some(Session::Ignored(first.to_string()))
        }
        "SHOW" => {
            let name = words.get(1)?;
            if matches!(
                name.as_str(),
                "STREAMS" | "QUERIES" | "MATERIALIZED" | "SINKS" | "TABLES" | "COLUMNS"
            ) {
                return None;
            }
            let rest = text.trim()[4..].trim().trim_end_matches(';').trim();
            Some(Session::Show(rest.trim_matches('"').to_string()))
        }
        "SET" => {
            let rest = text.trim()[3..].trim();
            let rest = strip_word(rest, "SESSION")
                .or_else(|| strip_word(rest, "LOCAL"))
                .unwrap_or(rest);
            if let Some(zone) = strip_word(rest, "TIME").and_then(|r| strip_word(r, "ZONE")) {
                return Some(Session::Set {
                    name: "TimeZone".into(),
                    value: unquote(zone),
                });
            }
            let (name, value) = match rest.split_once('=') {
                Some((n, v)) => (n.trim(), v.trim()),
                None => {
                    let (n, v) = rest.split_once(char::is_whitespace)?;
                    (n.trim(), strip_word(v.trim(), "TO").unwrap_or(v).trim())
                }
            };
            Some(Session::Set {
                name: name.trim_matches('"').to_string(),
                value: unquote(value),
            })
        }
        _ => None,
    }
}

fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    let rest = &text[word.len()..];
    (head.eq_ignore_ascii_case(word) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

fn unquote(value: &str) -> String {
    let v = value.trim().trim_end_matches(';').trim();
    let v = v
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(v);
    v.replace("''", "'")
}
