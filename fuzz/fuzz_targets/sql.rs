//! The SQL dialect wrapper: whatever the text, the parser answers statements or an
//! error. Texts deeper than the server's --max-sql-depth never reach it (the engine
//! checks first), and neither do they here.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if weir::limits::nesting_depth(text) > weir::limits::Limits::default().max_sql_depth {
        return;
    }
    let _ = weir::sql::parse_sql(text);
});
