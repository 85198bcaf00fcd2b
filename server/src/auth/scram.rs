//! The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677), for Kafka's
//! SASL/SCRAM-SHA-256: the client proves it knows a token's secret without sending it,
//! and the server proves it knows it too. The user name is the token's name.
//!
//! Credentials are derived once per token when the server starts (a random salt,
//! 4096 PBKDF2 iterations, as Kafka's default); an unknown user name gets a salt
//! derived from it so that the first answer does not tell names apart.

use std::collections::HashMap;
use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};
use subtle::ConstantTimeEq;

use super::{Denied, Principal, Tokens, random_bytes};

pub const MECHANISM: &str = "SCRAM-SHA-256";
const ITERATIONS: u32 = 4096;

/// What the server keeps for one token.
struct Credentials {
    salt: [u8; 16],
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

/// Every token's SCRAM credentials.
pub struct Scram {
    credentials: HashMap<String, Credentials>,
    /// Keys the made-up salts of unknown user names.
    decoy: hmac::Key,
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// SaltedPassword, ClientKey's hash and ServerKey of a password.
fn derive(password: &str, salt: &[u8], iterations: u32) -> ([u8; 32], [u8; 32]) {
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations).expect("iterations > 0"),
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let client_key = hmac_sha256(&salted, b"Client Key");
    (sha256(&client_key), hmac_sha256(&salted, b"Server Key"))
}

impl Scram {
    pub fn new(tokens: &Tokens) -> Scram {
        let credentials = tokens
            .tokens
            .iter()
            .map(|t| {
                let salt = random_bytes::<16>();
                let (stored_key, server_key) = derive(t.secret(), &salt, ITERATIONS);
                (
                    t.name.clone(),
                    Credentials {
                        salt,
                        stored_key,
                        server_key,
                    },
                )
            })
            .collect();
        Scram {
            credentials,
            decoy: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()),
        }
    }

    /// Starts an exchange from the client's first message.
    pub fn start(&self, client_first: &[u8]) -> Result<(Exchange, Vec<u8>), Denied> {
        let bad = |why: &str| Denied::Unauthenticated(format!("SCRAM-SHA-256: {why}"));
        let text =
            std::str::from_utf8(client_first).map_err(|_| bad("the message is not UTF-8"))?;
        // gs2-header: "n,," (no channel binding) or "y,," (client could, server cannot).
        let (gs2, bare) = match text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
        {
            Some(bare) => (&text[..3], bare),
            None => {
                return Err(bad(
                    "channel binding and authorization identities are not supported",
                ));
            }
        };
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            if let Some(v) = attribute.strip_prefix("n=") {
                user = Some(v.replace("=2C", ",").replace("=3D", "="));
            } else if let Some(v) = attribute.strip_prefix("r=") {
                client_nonce = Some(v.to_string());
            }
        }
        let user = user.ok_or_else(|| bad("no user name (n=)"))?;
        let client_nonce = client_nonce
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no nonce (r=)"))?;
        let nonce = format!("{client_nonce}{}", B64.encode(random_bytes::<18>()));
        let salt = match self.credentials.get(&user) {
            Some(c) => c.salt.to_vec(),
            None => hmac::sign(&self.decoy, user.as_bytes()).as_ref()[..16].to_vec(),
        };
        let server_first = format!("r={nonce},s={},i={ITERATIONS}", B64.encode(&salt));
        let exchange = Exchange {
            user,
            nonce,
            gs2_header: gs2.to_string(),
            auth_prefix: format!("{bare},{server_first}"),
        };
        Ok((exchange, server_first.into_bytes()))
    }

    /// Checks the client's proof; on success, the server's final message and who it is.
    pub fn finish(
        &self,
        exchange: &Exchange,
        client_final: &[u8],
        tokens: &Tokens,
        now_ms: i64,
    ) -> Result<(Principal, Vec<u8>), Denied> {
        let failed = || {
            Denied::Unauthenticated(format!(
                "SCRAM-SHA-256 authentication failed for user {:?}",
                exchange.user
            ))
        };
        let text = std::str::from_utf8(client_final).map_err(|_| failed())?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(failed)?;
        let mut binding = None;
        let mut nonce = None;
        for attribute in without_proof.split(',') {
            if let Some(v) = attribute.strip_prefix("c=") {
                binding = Some(v);
            } else if let Some(v) = attribute.strip_prefix("r=") {
                nonce = Some(v);
            }
        }
        // The nonce must end with the one the server sent: librdkafka repeats its own
        // nonce in front of it, and Kafka's broker accepts that the same way.
        if !nonce.is_some_and(|n| n.ends_with(&exchange.nonce))
            || binding.and_then(|b| B64.decode(b).ok()) != Some(exchange.gs2_header.clone().into())
        {
            return Err(failed());
        }
        let credentials = self.credentials.get(&exchange.user).ok_or_else(failed)?;
        let proof = B64.decode(proof).map_err(|_| failed())?;
        if proof.len() != 32 {
            return Err(failed());
        }
        let auth_message = format!("{},{without_proof}", exchange.auth_prefix);
        let signature = hmac_sha256(&credentials.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ signature[i];
        }
        if !bool::from(sha256(&client_key).ct_eq(&credentials.stored_key)) {
            return Err(failed());
        }
        let principal = tokens.still_valid(&exchange.user, now_ms)?;
        let server_signature = hmac_sha256(&credentials.server_key, auth_message.as_bytes());
        Ok((
            principal,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

/// An exchange between its two round trips.
pub struct Exchange {
    user: String,
    nonce: String,
    gs2_header: String,
    /// client-first-message-bare "," server-first-message
    auth_prefix: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Role, Token};

    /// The client's side, as RFC 5802 describes it.
    fn client_final(password: &str, client_first_bare: &str, server_first: &str) -> String {
        let attrs: HashMap<_, _> = server_first
            .split(',')
            .filter_map(|a| a.split_once('='))
            .collect();
        let salt = B64.decode(attrs["s"]).unwrap();
        let iterations: u32 = attrs["i"].parse().unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(iterations).unwrap(),
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored = sha256(&client_key);
        let without_proof = format!("c={},r={}", B64.encode("n,,"), attrs["r"]);
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac_sha256(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn the_right_secret_authenticates_and_a_wrong_one_does_not() {
        let tokens = Tokens::new(vec![
            Token::new("app", Role::Write, "app-secret-0123456789", None).unwrap(),
        ])
        .unwrap();
        let scram = Scram::new(&tokens);
        let bare = "n=app,r=abcdef";
        let (exchange, first) = scram.start(format!("n,,{bare}").as_bytes()).unwrap();
        let first = String::from_utf8(first).unwrap();
        let last = client_final("app-secret-0123456789", bare, &first);
        let (principal, server_final) = scram
            .finish(&exchange, last.as_bytes(), &tokens, 0)
            .unwrap();
        assert_eq!(principal.role, Role::Write);
        assert!(server_final.starts_with(b"v="));

        let (exchange, first) = scram.start(format!("n,,{bare}").as_bytes()).unwrap();
        let last = client_final("wrong", bare, &String::from_utf8(first).unwrap());
        assert!(
            scram
                .finish(&exchange, last.as_bytes(), &tokens, 0)
                .is_err()
        );
        // An unknown user gets an answer of the same shape, then fails.
        let (exchange, first) = scram.start(b"n,,n=nobody,r=xyz").unwrap();
        assert!(first.starts_with(b"r=xyz"));
        let last = client_final("x", "n=nobody,r=xyz", &String::from_utf8(first).unwrap());
        assert!(
            scram
                .finish(&exchange, last.as_bytes(), &tokens, 0)
                .is_err()
        );
    }
}
