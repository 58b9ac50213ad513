//! An incremental newline-delimited JSON splitter (Ollama's native API): one value per line,
//! bytes buffered across reads, `\r\n` tolerated, blank lines skipped.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::error::Result;

/// Decodes a body of byte chunks into lines; a last line without its newline is yielded too.
pub fn lines<S>(body: S) -> BoxStream<'static, Result<String>>
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    Box::pin(async_stream::try_stream! {
        let mut decoder = NdjsonDecoder::default();
        let mut lines = Vec::new();
        futures::pin_mut!(body);
        while let Some(chunk) = body.next().await {
            decoder.feed(&chunk?, &mut lines);
            for line in lines.drain(..) {
                yield line;
            }
        }
        if let Some(line) = decoder.finish() {
            yield line;
        }
    })
}

/// Feeds bytes in, gets complete lines out (not yet parsed, so the caller picks the type).
///
/// ```
/// use oy3o::transport::ndjson::NdjsonDecoder;
/// let mut d = NdjsonDecoder::default();
/// let mut out = Vec::new();
/// d.feed(b"{\"a\":1}\n{\"b\"", &mut out);
/// d.feed(b":2}\n", &mut out);
/// assert_eq!(out, ["{\"a\":1}", "{\"b\":2}"]);
/// ```
#[derive(Debug, Default)]
pub struct NdjsonDecoder {
    buffer: Vec<u8>,
}

impl NdjsonDecoder {
    /// Decodes `bytes`, pushing every completed non-blank line onto `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', bytes) {
            self.buffer.extend_from_slice(&bytes[start..end]);
            start = end + 1;
            self.emit(out);
        }
        self.buffer.extend_from_slice(&bytes[start..]);
    }

    /// At end of input: the last line if it had no newline.
    pub fn finish(&mut self) -> Option<String> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out.pop()
    }

    fn emit(&mut self, out: &mut Vec<String>) {
        let mut line = std::mem::take(&mut self.buffer);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            out.push(String::from_utf8_lossy(&line).into_owned());
        }
        line.clear();
        self.buffer = line;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_and_crlf_are_tolerated() {
        let mut d = NdjsonDecoder::default();
        let mut out = Vec::new();
        d.feed(b"{\"a\":1}\r\n\n  \n{\"b\":2}", &mut out);
        assert_eq!(out, ["{\"a\":1}"]);
        assert_eq!(d.finish().as_deref(), Some("{\"b\":2}"));
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn ollama_mid_stream_error_line_is_passed_through() {
        let mut d = NdjsonDecoder::default();
        let mut out = Vec::new();
        d.feed(b"{\"message\":{\"content\":\".\"},\"done\":false}\n{\"error\":\"an error was encountered while running the model\"}\n", &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[1].starts_with("{\"error\""));
    }

    proptest::proptest! {
        #[test]
        fn random_splits_give_the_same_lines(cuts in proptest::collection::vec(0usize..200, 0..10)) {
            let stream = "{\"m\":\"é世\"}\n{\"done\":false}\r\n\n{\"done\":true}\n".as_bytes();
            let mut whole = Vec::new();
            NdjsonDecoder::default().feed(stream, &mut whole);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = NdjsonDecoder::default();
            let mut split = Vec::new();
            let mut last = 0;
            for c in cuts {
                d.feed(&stream[last..c], &mut split);
                last = c;
            }
            d.feed(&stream[last..], &mut split);
            proptest::prop_assert_eq!(split, whole);
        }
    }
}
