//! The WebSocket request parser: any text frame gives a request or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        oy3o_server::fuzzing::request(text);
    }
});
