//! SASL/SCRAM-SHA-256 on the Kafka listener: any client-first and client-final
//! messages end in an answer or a refusal, and only the right proof authenticates.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use weir::auth::{Role, Token, Tokens, scram::Scram};

static TOKENS: LazyLock<Tokens> = LazyLock::new(|| {
    Tokens::new(vec![
        Token::new("app", Role::Read, "fuzz-secret-0123456789", None).unwrap(),
    ])
    .unwrap()
});
static SCRAM: LazyLock<Scram> = LazyLock::new(|| Scram::new(&TOKENS));

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (first, last) = data.split_at(split);
    if let Ok((exchange, _)) = SCRAM.start(first) {
        let last = last.get(1..).unwrap_or_default();
        assert!(SCRAM.finish(&exchange, last, &TOKENS, 0).is_err());
    }
});
