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
        // pgwire 0.41 panics on a session message whose length field is below 4 (its
        // own four bytes): the connection's task ends and the server keeps serving
        // (pg::a_malformed_message_closes_only_its_connection). Not fuzzed further here.
        if !ctx.awaiting_frontend_startup
            && buf.len() >= 5
            && i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) < 4
        {
            break;
        }
        let before = buf.len();
        match PgWireFrontendMessage::decode(&mut buf, &ctx) {
            Ok(Some(_)) if buf.len() < before => session(&mut ctx),
            _ => break,
        }
    }
});
