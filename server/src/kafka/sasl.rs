//! SASL on the Kafka listener (SaslHandshake v1, then SaslAuthenticate): PLAIN (user =
//! a token's name, password = its secret; send it over TLS beyond loopback) and
//! SCRAM-SHA-256 (the secret never crosses the wire). Until a connection has
//! authenticated, only ApiVersions and these two requests are answered, as a Kafka
//! broker's SASL listener does.

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::encoded;
use crate::auth::scram::{Exchange, MECHANISM as SCRAM};
use crate::auth::{Auth, Principal, now_ms};

const PLAIN: &str = "PLAIN";
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// Where one connection is in its SASL exchange.
#[derive(Default)]
pub struct Sasl {
    mechanism: Option<&'static str>,
    scram: Option<Exchange>,
    /// Who the connection authenticated as.
    pub principal: Option<Principal>,
}

/// The result of a SASL step: the answer, and whether the connection must close after it.
pub struct Step {
    pub reply: Bytes,
    pub close: bool,
}

impl Sasl {
    pub fn handshake(
        &mut self,
        auth: &Auth,
        version: i16,
        request: SaslHandshakeRequest,
    ) -> Result<Bytes, String> {
        let offered: Vec<StrBytes> = if auth.is_enabled() {
            vec![
                StrBytes::from_static_str(PLAIN),
                StrBytes::from_static_str(SCRAM),
            ]
        } else {
            Vec::new()
        };
        let asked = request.mechanism.as_str();
        let chosen = [PLAIN, SCRAM]
            .into_iter()
            .find(|m| m.eq_ignore_ascii_case(asked) && auth.is_enabled());
        let response = SaslHandshakeResponse::default().with_mechanisms(offered);
        let response = match chosen {
            Some(mechanism) if self.principal.is_none() => {
                self.mechanism = Some(mechanism);
                response
            }
            Some(_) => response.with_error_code(ILLEGAL_SASL_STATE),
            None => {
                tracing::info!(
                    "kafka client asked for SASL mechanism {asked:?}; {}",
                    if auth.is_enabled() {
                        "Weir offers PLAIN and SCRAM-SHA-256"
                    } else {
                        "authentication is off (no --auth-token), so connect without SASL"
                    }
                );
                response.with_error_code(UNSUPPORTED_SASL_MECHANISM)
            }
        };
        encoded(&response, version)
    }

    pub fn authenticate(
        &mut self,
        auth: &Auth,
        version: i16,
        request: SaslAuthenticateRequest,
    ) -> Result<Step, String> {
        let answer =
            |bytes: Vec<u8>| SaslAuthenticateResponse::default().with_auth_bytes(bytes.into());
        let failed = |message: String| {
            tracing::info!("kafka SASL authentication refused: {message}");
            SaslAuthenticateResponse::default()
                .with_error_code(SASL_AUTHENTICATION_FAILED)
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        let (response, close) = match self.mechanism {
            None => (
                SaslAuthenticateResponse::default()
                    .with_error_code(ILLEGAL_SASL_STATE)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate before SaslHandshake",
                    ))),
                true,
            ),
            Some(PLAIN) => {
                let mut parts = request.auth_bytes.split(|b| *b == 0);
                let (_authzid, user, password) = (parts.next(), parts.next(), parts.next());
                fn text(b: Option<&[u8]>) -> &str {
                    b.and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
                }
                match auth
                    .tokens
                    .verify_named(text(user), text(password), now_ms())
                {
                    Ok(principal) => {
                        tracing::debug!(token = %principal.name, "kafka SASL/PLAIN login");
                        self.principal = Some(principal);
                        (answer(Vec::new()), false)
                    }
                    Err(e) => (failed(format!("SASL/PLAIN: {e}")), true),
                }
            }
            Some(_) => match self.scram.take() {
                None => match auth.scram.start(&request.auth_bytes) {
                    Ok((exchange, server_first)) => {
                        self.scram = Some(exchange);
                        (answer(server_first), false)
                    }
                    Err(e) => (failed(e.to_string()), true),
                },
                Some(exchange) => {
                    match auth
                        .scram
                        .finish(&exchange, &request.auth_bytes, &auth.tokens, now_ms())
                    {
                        Ok((principal, server_final)) => {
                            tracing::debug!(token = %principal.name, "kafka SASL/SCRAM login");
                            self.principal = Some(principal);
                            (answer(server_final), false)
                        }
                        Err(e) => (failed(e.to_string()), true),
                    }
                }
            },
        };
        Ok(Step {
            reply: encoded(&response, version)?,
            close,
        })
    }
}
