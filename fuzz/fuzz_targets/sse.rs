//! The SSE decoder, fed the input cut at a point the input itself picks: any bytes in any
//! pieces decode without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oy3o::transport::sse::SseDecoder;

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut decoder = SseDecoder::default();
    let mut events = Vec::new();
    decoder.feed(&data[..cut], &mut events);
    decoder.feed(&data[cut..], &mut events);
    let _ = decoder.finish();
});
