//! Postgres frontend messages as the listener decodes them: at startup (SSLRequest,
//! StartupMessage) and in a session (Query, Parse, Bind, Execute, ...). After the first
//! message of a connection the decoder moves on to the session, as the server's state
//! machine does; a message that consumes nothing ends the input.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&phase, bytes)) = data.split_first() else {
        return;
    };
    let mut ctx = DecodeContext::default();
    let session = |ctx: &mut DecodeContext| {
        ctx.awaiting_frontend_ssl = false;
        ctx.awaiting_frontend_startup = false;
    };
    if phase % 2 == 1 {
        session(&mut ctx);
    }
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.len();
        match PgWireFrontendMessage::decode(&mut buf, &ctx) {
            Ok(Some(_)) if buf.len() < before => session(&mut ctx),
            _ => break,
        }
    }
});
