//! Console sessions: logging in with a token gives the browser an HttpOnly,
//! SameSite=Strict cookie holding a random ticket, so that the token itself is kept by
//! no page script and EventSource (which cannot send headers) is authenticated by the
//! cookie rather than by a token in a URL that would land in logs. Sessions live in
//! memory: after a restart the console asks to log in again.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::{Denied, Principal, Tokens, hex, random_bytes};

/// The session cookie's name.
pub const COOKIE: &str = "weir_session";
/// How long a console session lasts without logging in again.
pub const SESSION_MS: i64 = 12 * 3600 * 1000;

#[derive(Default)]
pub struct Sessions {
    by_ticket: Mutex<HashMap<String, (String, i64)>>,
}

impl Sessions {
    /// A new ticket for `principal`, valid for [`SESSION_MS`].
    pub fn open(&self, principal: &Principal, now_ms: i64) -> String {
        let ticket = hex(&random_bytes::<32>());
        let mut sessions = self.by_ticket.lock();
        sessions.retain(|_, (_, until)| *until > now_ms);
        sessions.insert(
            ticket.clone(),
            (principal.name.clone(), now_ms + SESSION_MS),
        );
        ticket
    }

    /// Who holds `ticket`, if the session and its token are both still valid.
    pub fn check(&self, ticket: &str, tokens: &Tokens, now_ms: i64) -> Result<Principal, Denied> {
        let name = {
            let sessions = self.by_ticket.lock();
            match sessions.get(ticket) {
                Some((name, until)) if *until > now_ms => name.clone(),
                _ => {
                    return Err(Denied::Unauthenticated(
                        "the console session has ended; log in again".into(),
                    ));
                }
            }
        };
        tokens.still_valid(&name, now_ms)
    }

    pub fn close(&self, ticket: &str) {
        self.by_ticket.lock().remove(ticket);
    }
}
