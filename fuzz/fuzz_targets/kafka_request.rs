//! The Kafka listener's request decoder: a frame's header, its API's request body and a
//! Produce's record batches (every compression codec), as the listener reads them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = weir::kafka::decode_request(data);
});
