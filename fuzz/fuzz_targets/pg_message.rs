//! Postgres frontend messages as the listener decodes them: at startup (SSLRequest,
//! StartupMessage) and in a session (Query, Parse, Bind, Execute, ...). After the first
//! message of a connection the decoder moves on to the session, as the server's state
//! machine does; a message that consumes nothing ends the input.
//!
//! pgwire 0.41 panics on some truncated messages (a Describe with length 0, an Execute
//! cut short: fuzz/known-upstream/). In the server such a panic ends only that
//! connection's task and the listener keeps serving
//! (pg::a_malformed_message_closes_only_its_connection), so here a panic inside pgwire
//! ends the input like a closed connection; what must not happen is a hang, an abort or
//! an allocation that takes the process down.
#![no_main]

use std::sync::Once;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};

static QUIET_PANICS: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic; pgwire's are contained per connection.
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
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
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            PgWireFrontendMessage::decode(&mut buf, &ctx)
        }));
        match decoded {
            Ok(Ok(Some(_))) if buf.len() < before => session(&mut ctx),
            _ => break,
        }
    }
});
