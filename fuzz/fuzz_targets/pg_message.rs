//! Postgres frontend messages as the listener decodes them: at startup (SSLRequest,
//! StartupMessage) and in a session (Query, Parse, Bind, Execute, ...).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&phase, bytes)) = data.split_first() else {
        return;
    };
    let mut ctx = DecodeContext::default();
    if phase % 2 == 1 {
        ctx.awaiting_frontend_ssl = false;
        ctx.awaiting_frontend_startup = false;
    }
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(_)) = PgWireFrontendMessage::decode(&mut buf, &ctx) {}
});
