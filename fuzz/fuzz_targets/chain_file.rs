//! Chain files, as TOML and as JSON: a chain or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = oy3o::Chain::parse(text, Path::new("chain.toml"));
        let _ = oy3o::Chain::parse(text, Path::new("chain.json"));
    }
});
