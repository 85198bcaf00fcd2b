//! Who may do what: bearer tokens with a name and a role, checked the same way by every
//! listener (HTTP `Authorization: Bearer`, the console's session cookie, the Postgres
//! password, Kafka SASL/PLAIN and SASL/SCRAM-SHA-256).
//!
//! - A token is `NAME:ROLE:SECRET` (`--auth-token`, repeatable, or `WEIR_AUTH_TOKEN`,
//!   comma-separated) or a bare `SECRET` (an `admin` token named `admin`), or an entry
//!   of a tokens file (`--auth-file`, TOML, with an optional `expires` time).
//! - Roles are ordered: `read` may query and consume, `write` may also ingest (INSERT,
//!   HTTP ingest, Kafka produce), `admin` may do everything (DDL, dropping queries).
//! - Secrets are compared as SHA-256 digests in constant time, against every token
//!   without stopping at a match, so how long a check takes says nothing about which
//!   bytes were right. Secrets never appear in logs or `Debug` output.
//! - No tokens means no authentication: then Weir listens only on loopback unless
//!   `--insecure-listen` says otherwise (see [`check_exposure`]).

pub mod scram;
pub mod sessions;

pub use sessions::Sessions;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// What a caller may do; each role may do everything the ones before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Query streams and views, consume, run push queries.
    Read,
    /// Also ingest: INSERT, HTTP ingest, Kafka produce, dashboards.
    Write,
    /// Everything: CREATE / DROP, stopping queries, sinks.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text.trim().to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a request comes from once its credentials checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (never its secret).
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// The caller when authentication is off: may do everything.
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".into(),
            role: Role::Admin,
        }
    }

    /// Refuses an action that needs more than this principal's role.
    pub fn require(&self, needed: Role, action: &str) -> Result<(), Denied> {
        if self.role >= needed {
            Ok(())
        } else {
            let needs = match needed {
                Role::Admin => "the admin role".to_string(),
                other => format!("the {other} role or higher"),
            };
            Err(Denied::Forbidden(format!(
                "token {:?} has the {} role; {action} needs {needs}",
                self.name, self.role
            )))
        }
    }
}

/// Why credentials were refused: 401 (who are you?) or 403 (not allowed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
}

/// One token.
#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    secret: String,
    digest: [u8; 32],
    /// Milliseconds since the epoch after which the token is refused.
    pub expires_at_ms: Option<i64>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("secret", &"<hidden>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// The shortest secret accepted: guessing it must be hopeless.
pub const MIN_SECRET_LEN: usize = 16;

fn digest(secret: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Token {
    pub fn new(
        name: impl Into<String>,
        role: Role,
        secret: impl Into<String>,
        expires_at_ms: Option<i64>,
    ) -> Result<Token, String> {
        let name = name.into();
        let secret = secret.into();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return Err(format!(
                "token name {name:?} must be letters, digits, '-', '_', '.' or '@'"
            ));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the secret of token {name:?} has {} characters; use at least {MIN_SECRET_LEN} \
                 (e.g. openssl rand -hex 24)",
                secret.len()
            ));
        }
        Ok(Token {
            digest: digest(secret.as_bytes()),
            name,
            role,
            secret,
            expires_at_ms,
        })
    }

    /// `NAME:ROLE:SECRET`, or a bare `SECRET` (with at most one `:`) for an admin token
    /// named `admin`.
    pub fn from_flag(text: &str) -> Result<Token, String> {
        let text = text.trim();
        let mut parts = text.splitn(3, ':');
        if let (Some(name), Some(role), Some(secret)) = (parts.next(), parts.next(), parts.next()) {
            // NAME:ROLE:SECRET; a misspelt role must not make an admin token.
            let role = Role::parse(role).ok_or_else(|| {
                format!(
                    "token {name:?} has role {role:?}; use read, write or admin \
                     (NAME:ROLE:SECRET)"
                )
            })?;
            return Token::new(name, role, secret, None);
        }
        Token::new("admin", Role::Admin, text, None)
    }

    /// The secret, for SCRAM's salted password; never logged.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

/// The tokens file (`--auth-file`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: String,
    secret: String,
    /// RFC 3339, e.g. `2027-01-31T00:00:00Z`.
    expires: Option<String>,
}

/// The tokens a server accepts; empty means authentication is off.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    pub fn new(tokens: Vec<Token>) -> Result<Tokens, String> {
        let mut seen = std::collections::HashSet::new();
        for t in &tokens {
            if !seen.insert(t.name.as_str()) {
                return Err(format!(
                    "two tokens are named {:?}; names must differ",
                    t.name
                ));
            }
        }
        Ok(Tokens { tokens })
    }

    /// Reads a tokens file:
    ///
    /// ```toml
    /// [[tokens]]
    /// name = "dashboards"
    /// role = "read"
    /// secret = "..."
    /// expires = "2027-01-31T00:00:00Z"   # optional
    /// ```
    pub fn read_file(path: &Path) -> Result<Vec<Token>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the tokens file {}: {e}", path.display()))?;
        let file: TokensFile =
            toml::from_str(&text).map_err(|e| format!("tokens file {}: {e}", path.display()))?;
        file.tokens
            .into_iter()
            .map(|entry| {
                let role = Role::parse(&entry.role).ok_or_else(|| {
                    format!(
                        "tokens file {}: token {:?} has role {:?}; use read, write or admin",
                        path.display(),
                        entry.name,
                        entry.role
                    )
                })?;
                let expires = match &entry.expires {
                    None => None,
                    Some(at) => Some(
                        chrono::DateTime::parse_from_rfc3339(at)
                            .map_err(|e| {
                                format!(
                                    "tokens file {}: token {:?} expires {at:?}: {e} (write e.g. \
                                     2027-01-31T00:00:00Z)",
                                    path.display(),
                                    entry.name
                                )
                            })?
                            .timestamp_millis(),
                    ),
                };
                Token::new(entry.name, role, entry.secret, expires)
                    .map_err(|e| format!("tokens file {}: {e}", path.display()))
            })
            .collect()
    }

    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token a secret belongs to, checked against every token in constant time.
    pub fn verify(&self, secret: &str, now_ms: i64) -> Result<Principal, Denied> {
        let given = digest(secret.as_bytes());
        let mut found: Option<&Token> = None;
        for token in &self.tokens {
            if bool::from(token.digest.ct_eq(&given)) {
                found = Some(token);
            }
        }
        let token = found.ok_or_else(|| {
            Denied::Unauthenticated("the token is not valid for this Weir".into())
        })?;
        Self::live(token, now_ms)
    }

    /// A named token's secret checked (Kafka SASL/PLAIN: user = token name).
    pub fn verify_named(&self, name: &str, secret: &str, now_ms: i64) -> Result<Principal, Denied> {
        let principal = self.verify(secret, now_ms)?;
        if principal.name.as_bytes().ct_eq(name.as_bytes()).into() {
            Ok(principal)
        } else {
            Err(Denied::Unauthenticated(format!(
                "the user name {name:?} and the token do not belong together"
            )))
        }
    }

    /// The token named `name`, if it exists and has not expired (SCRAM looks tokens up
    /// by name before any secret is seen).
    pub fn named(&self, name: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| t.name == name)
    }

    /// A token's principal if it has not expired.
    pub fn live(token: &Token, now_ms: i64) -> Result<Principal, Denied> {
        if let Some(at) = token.expires_at_ms
            && now_ms >= at
        {
            let when = chrono::DateTime::from_timestamp_millis(at)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            return Err(Denied::Unauthenticated(format!(
                "token {:?} expired at {when}; ask for a new one",
                token.name
            )));
        }
        Ok(Principal {
            name: token.name.clone(),
            role: token.role,
        })
    }

    /// A principal's token still valid (console sessions outlive nothing they came from).
    pub fn still_valid(&self, name: &str, now_ms: i64) -> Result<Principal, Denied> {
        let token = self
            .named(name)
            .ok_or_else(|| Denied::Unauthenticated(format!("token {name:?} is gone")))?;
        Self::live(token, now_ms)
    }
}

/// Refuses to listen beyond loopback without authentication, unless the operator said
/// `--insecure-listen`: an open port on a network is how databases get wiped.
pub fn check_exposure(
    tokens: &Tokens,
    insecure: bool,
    listeners: &[(&str, SocketAddr)],
) -> Result<(), String> {
    if tokens.is_enabled() {
        return Ok(());
    }
    for (flag, address) in listeners {
        if !address.ip().is_loopback() {
            if insecure {
                tracing::warn!(
                    "{flag} {address} is reachable from other machines and no --auth-token is \
                     set: anyone who can reach it may read, write and drop everything \
                     (--insecure-listen)"
                );
            } else {
                return Err(format!(
                    "{flag} {address} is not a loopback address and no --auth-token is set: \
                     give a token (--auth-token NAME:ROLE:SECRET or --auth-file FILE), listen \
                     on 127.0.0.1, or pass --insecure-listen to allow unauthenticated access"
                ));
            }
        }
    }
    Ok(())
}

/// Everything the listeners check credentials against.
pub struct Auth {
    pub tokens: Tokens,
    pub sessions: Sessions,
    pub scram: scram::Scram,
}

impl Auth {
    pub fn new(tokens: Tokens) -> Auth {
        Auth {
            scram: scram::Scram::new(&tokens),
            tokens,
            sessions: Sessions::default(),
        }
    }

    /// No tokens: every caller may do everything.
    pub fn off() -> Auth {
        Auth::new(Tokens::default())
    }

    pub fn is_enabled(&self) -> bool {
        self.tokens.is_enabled()
    }

    /// The caller a secret names; anyone at all when authentication is off.
    pub fn check_secret(&self, secret: Option<&str>) -> Result<Principal, Denied> {
        if !self.is_enabled() {
            return Ok(Principal::anonymous());
        }
        match secret {
            Some(secret) => self.tokens.verify(secret, now_ms()),
            None => Err(Denied::Unauthenticated(
                "this Weir requires a token: send the header Authorization: Bearer <token> \
                 (or log in to the console)"
                    .into(),
            )),
        }
    }
}

/// Wall-clock milliseconds, for token expiry.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random source works");
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(vec![
            Token::new("ops", Role::Admin, "0123456789abcdef-ops", None).unwrap(),
            Token::new("dash", Role::Read, "0123456789abcdef-dash", None).unwrap(),
            Token::new("old", Role::Write, "0123456789abcdef-old", Some(1_000)).unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn a_secret_finds_its_token_and_role() {
        let t = tokens();
        let p = t.verify("0123456789abcdef-dash", 0).unwrap();
        assert_eq!((p.name.as_str(), p.role), ("dash", Role::Read));
        assert!(matches!(
            t.verify("nope", 0),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(p.require(Role::Write, "INSERT").is_err());
        assert!(p.require(Role::Read, "SELECT").is_ok());
    }

    #[test]
    fn expired_tokens_are_refused_with_when() {
        let t = tokens();
        assert!(t.verify("0123456789abcdef-old", 999).is_ok());
        let e = t.verify("0123456789abcdef-old", 1_000).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
    }

    #[test]
    fn flags_name_a_role_or_give_an_admin_token() {
        let t = Token::from_flag("ci:write:0123456789abcdef").unwrap();
        assert_eq!((t.name.as_str(), t.role), ("ci", Role::Write));
        let t = Token::from_flag("0123456789abcdef:x").unwrap();
        assert_eq!((t.name.as_str(), t.role), ("admin", Role::Admin));
        assert!(
            Token::from_flag("ci:wrte:0123456789abcdef")
                .unwrap_err()
                .contains("wrte")
        );
        assert!(Token::from_flag("short").unwrap_err().contains("at least"));
        assert!(!format!("{t:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn plain_names_must_match() {
        let t = tokens();
        assert!(t.verify_named("ops", "0123456789abcdef-ops", 0).is_ok());
        assert!(t.verify_named("dash", "0123456789abcdef-ops", 0).is_err());
    }

    #[test]
    fn open_listeners_need_a_token_or_the_insecure_flag() {
        let none = Tokens::default();
        let any: SocketAddr = "0.0.0.0:7878".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        assert!(check_exposure(&none, false, &[("--listen", local)]).is_ok());
        let e = check_exposure(&none, false, &[("--listen", any)]).unwrap_err();
        assert!(e.contains("--insecure-listen"), "{e}");
        assert!(check_exposure(&none, true, &[("--listen", any)]).is_ok());
        assert!(check_exposure(&tokens(), false, &[("--listen", any)]).is_ok());
    }
}
