//! Config files: the engine's keys and the server's `[server]` table, TOML and JSON.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for name in ["oy3o.toml", "oy3o.json"] {
            let _ = oy3o::Config::parse_file(text, Path::new(name));
            let _ = oy3o_server::Settings::parse_file(text, Path::new(name));
        }
    }
});
