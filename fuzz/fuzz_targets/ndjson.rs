//! The NDJSON decoder, fed the input in two pieces: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oy3o::transport::ndjson::NdjsonDecoder;

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut decoder = NdjsonDecoder::default();
    let mut lines = Vec::new();
    decoder.feed(&data[..cut], &mut lines);
    decoder.feed(&data[cut..], &mut lines);
    let _ = decoder.finish();
});
